"""``bt``: the backtrace of a task, of the panic task, or of the active task of each CPU.

crash's options with crash's meaning: ``-a`` active tasks, ``-p`` panic task, ``-c CPUS``,
``-f`` frame data, ``-l`` source lines, ``-s``/``-x``/``-d`` symbol offsets, ``-t``/``-T``
text symbols on the stack, ``-e``/``-E`` exception frame search. Tasks are PIDs
(decimal) or task addresses (hexadecimal); without any, the current context
(``set``) is used. ``foreach ... bt`` reuses :func:`run_bt`.
"""

from __future__ import annotations

import argparse
from typing import Iterable

import drgn
from drgn.helpers.linux.cpumask import for_each_possible_cpu, for_each_present_cpu
from drgn.helpers.linux.pid import find_task, for_each_task
from drgn.helpers.linux.sched import cpu_curr, idle_task

from kdx.model.stack import (
    READ_ERRORS,
    StackReader,
    backtrace,
    cpu_exception_frames,
    stack_text,
    task_exception_frames,
)
from kdx.render.crash.bt import (
    BtOptions,
    render_backtraces,
    render_cpu_search,
    render_task_search,
    render_text,
)
from kdx.session.command import CommandError, CrashCommand, make_parser
from kdx.session.session import Session


def add_display_options(parser: argparse.ArgumentParser) -> None:
    """The options that change how each task's trace is shown (shared with foreach)."""
    parser.add_argument("-f", dest="full", action="store_true",
                        help="show the stack words of each frame")
    parser.add_argument("-l", dest="lines", action="store_true",
                        help="show the source file and line of each frame")
    parser.add_argument("-s", dest="offsets", action="store_true",
                        help="show symbol offsets (function+offset)")
    radix = parser.add_mutually_exclusive_group()
    radix.add_argument("-x", dest="hex", action="store_true",
                       help="offsets in hexadecimal (with -s)")
    radix.add_argument("-d", dest="decimal", action="store_true",
                       help="offsets in decimal (with -s)")
    text = parser.add_mutually_exclusive_group()
    text.add_argument("-t", dest="text", action="store_true",
                      help="list the text symbols on the stack from the trace's start")
    text.add_argument("-T", dest="text_all", action="store_true",
                      help="list the text symbols on the whole task stack")
    text.add_argument("-e", dest="eframes", action="store_true",
                      help="search the task stack for exception frames")


def _parser() -> argparse.ArgumentParser:
    parser = make_parser("bt", "show the kernel stack trace of tasks")
    which = parser.add_mutually_exclusive_group()
    which.add_argument("-a", dest="active", action="store_true",
                       help="the active task of every CPU")
    which.add_argument("-p", dest="panic", action="store_true", help="the panic task")
    which.add_argument("-c", dest="cpus", metavar="CPUS",
                       help="the active task of CPUs, e.g. 1 or 0,2-3")
    which.add_argument("-E", dest="cpu_eframes", action="store_true",
                       help="search every CPU's IRQ and exception stacks for exception "
                            "frames")
    add_display_options(parser)
    parser.add_argument("tasks", nargs="*", metavar="PID|TASK",
                        help="a PID (decimal) or task address (hexadecimal)")
    return parser


def reader_for(session: Session) -> StackReader:
    return session.cached("stack-reader", lambda: StackReader(session.prog))


# --- choosing tasks ---------------------------------------------------------------------------


def idle_tasks(prog: drgn.Program) -> list[drgn.Object]:
    """The idle task of every present CPU, in CPU order."""
    out = []
    for cpu in for_each_present_cpu(prog):
        try:
            out.append(idle_task(prog, cpu))
        except READ_ERRORS:
            continue
    return out


def all_tasks(prog: drgn.Program) -> list[drgn.Object]:
    """crash's task table order: the idle tasks by CPU, then every task by PID."""
    others = sorted(for_each_task(prog), key=lambda t: (t.pid.value_(), t.value_()))
    return idle_tasks(prog) + [t for t in others if t.pid.value_() != 0]


def active_tasks(prog: drgn.Program, cpus: Iterable[int] | None = None) -> list[drgn.Object]:
    out = []
    for cpu in for_each_present_cpu(prog) if cpus is None else cpus:
        try:
            out.append(cpu_curr(prog, cpu))
        except READ_ERRORS as err:
            raise CommandError(f"cannot determine the active task of CPU {cpu}: {err}") \
                from err
    return out


def parse_cpus(text: str, prog: drgn.Program) -> list[int]:
    """``1``, ``0,2-3`` or ``a``/``all``, as crash's ``-c`` takes them."""
    possible = list(for_each_possible_cpu(prog))
    if text in ("a", "all"):
        return list(for_each_present_cpu(prog))
    cpus: list[int] = []
    try:
        for part in text.split(","):
            low, _, high = part.partition("-")
            cpus += range(int(low), int(high or low) + 1)
    except ValueError as err:
        raise CommandError(f"invalid CPU list: {text}") from err
    bad = [c for c in cpus if c not in possible]
    if bad:
        raise CommandError(f"invalid CPU: {bad[0]}")
    return cpus


def task_from_word(prog: drgn.Program, word: str) -> list[drgn.Object]:
    """The tasks a PID or task address names (PID 0 names every idle task)."""
    if word.isdigit():
        pid = int(word)
        if pid == 0:
            return idle_tasks(prog)
        task = find_task(prog, pid)
        if task:
            return [task]
    try:
        address = int(word, 16)
    except ValueError:
        raise CommandError(f"invalid task or pid value: {word}") from None
    for task in [*idle_tasks(prog), *for_each_task(prog)]:
        if task.value_() == address:
            return [task]
    raise CommandError(f"invalid task or pid value: {word}")


def _selected(session: Session, args: argparse.Namespace) -> list[drgn.Object]:
    prog = session.prog
    if args.active:
        return active_tasks(prog)
    if args.cpus:
        return active_tasks(prog, parse_cpus(args.cpus, prog))
    if args.panic:
        task = reader_for(session).panic_task
        if not task:
            raise CommandError("no panic task found")
        return [drgn.Object(prog, "struct task_struct *", value=task)]
    if args.tasks:
        return [t for word in args.tasks for t in task_from_word(prog, word)]
    return [session.current_task]


# --- running ------------------------------------------------------------------------------------


def options_from(args: argparse.Namespace) -> BtOptions:
    return BtOptions(lines=args.lines, symbol_offsets=args.offsets, hex_offsets=args.hex,
                     full=args.full)


def run_bt(session: Session, tasks: list[drgn.Object], args: argparse.Namespace) -> None:
    """Show ``tasks`` as the display options in ``args`` ask (bt and foreach bt)."""
    reader = reader_for(session)
    options = options_from(args)
    if args.eframes:
        searches = []
        for task in tasks:
            bt = backtrace(reader, task)
            searches.append(task_exception_frames(reader, task, bt))
        session.emit("bt-eframes", searches,
                     lambda: "\n\n".join(render_task_search(s) for s in searches))
        return
    if args.text or args.text_all:
        scans = []
        for task in tasks:
            bt = backtrace(reader, task)
            scans.append(stack_text(reader, task, bt, whole=args.text_all))
        session.emit("bt-text", scans,
                     lambda: "\n\n".join(render_text(s, options) for s in scans))
        return
    traces = []
    for task in tasks:
        try:
            trace = backtrace(reader, task, frame_data=args.full)
        except READ_ERRORS as err:
            session.warn(f"cannot read the stack of task {task.value_():x}: {err}")
            continue
        for warning in trace.warnings:
            session.warn(f"PID {trace.pid}: {warning}")
        traces.append(trace)
    session.emit("bt", traces, lambda: render_backtraces(traces, options))


def _bt(session: Session, args: argparse.Namespace) -> None:
    if args.cpu_eframes:
        reader = reader_for(session)
        cpus = list(for_each_present_cpu(session.prog))
        searches = cpu_exception_frames(reader, cpus)
        session.emit("bt-eframes", searches, lambda: render_cpu_search(searches))
        return
    run_bt(session, _selected(session, args), args)


COMMANDS = [
    CrashCommand("bt", "backtrace of a task, the panic task or every CPU's active task",
                 _parser, _bt),
]
