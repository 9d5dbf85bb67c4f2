"""``bt``: the backtrace of a task, of the panic task, or of the active task of each CPU.

crash's options with crash's meaning: ``-a`` active tasks, ``-p`` panic task, ``-c CPUS``,
``-g`` the task's whole thread group, ``-f`` frame data (``-F``/``-FF`` named), ``-l``
source lines, ``-s``/``-x``/``-d`` symbol offsets, ``-t``/``-T`` text symbols on the
stack, ``-e``/``-E`` exception frame search, ``-r`` the raw stack, ``-R REF`` only the
traces that reference a symbol or value, ``-S SP``/``-I IP`` a trace from a chosen
stack address, ``-v`` the stack-overflow check of every task, ``-o`` (crash's old
unwinder; kdx has one), ``-n idle`` (skip the stack of an idle task the crash NMI
stopped). ``-O``, ``-A`` and ``-D`` are answered in one line: they concern crash's own
unwinder or other architectures. Tasks are PIDs (decimal) or task addresses (hexadecimal);
without any, the current context (``set``) is used. ``foreach ... bt`` reaches
:func:`run_bt` through the command's ``for_tasks``.
"""

from __future__ import annotations

import argparse
from dataclasses import replace
from typing import Iterable

import drgn
from drgn.helpers.linux.sched import task_cpu

from kdx.commands.crash.arguments import (
    add_display_options,
    cpu_list,
    hex_word,
    tasks_for_argument,
)
from kdx.model.reading import READ_ERRORS
from kdx.model.stack import (
    Backtrace,
    StackReader,
    backtrace,
    backtrace_from,
    check_stack_overflows,
    cpu_exception_frames,
    label_stack_words,
    raw_stack,
    references,
    stack_text,
    task_exception_frames,
)
from kdx.model.tasks import active_task, all_tasks, crash_cpus
from kdx.render.crash.bt import (
    BtOptions,
    render_backtraces,
    render_cpu_search,
    render_overflows,
    render_raw,
    render_referencing,
    render_task_search,
    render_text,
)
from kdx.session.command import CommandError, crash_command, make_parser
from kdx.session.session import Session


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
    which.add_argument("-v", dest="check", action="store_true",
                       help="check every task's stack for an overflow (STACK_END_MAGIC)")
    parser.add_argument("-g", dest="group", action="store_true",
                        help="every thread of the task's thread group, the leader first")
    parser.add_argument("-S", dest="start_sp", metavar="SP",
                        help="start the trace at this stack address (hexadecimal)")
    parser.add_argument("-I", dest="start_ip", metavar="IP",
                        help="with -S: the instruction address to start from")
    parser.add_argument("-n", dest="skip", metavar="idle",
                        help="idle: show only the header of an idle task that the crash "
                             "NMI stopped in its idle loop")
    parser.add_argument("-O", dest="old_default", action="store_true",
                        help="crash's toggle of its default unwinder: kdx has one")
    parser.add_argument("-A", dest="all_registers", action="store_true",
                        help=argparse.SUPPRESS)
    parser.add_argument("-D", dest="framesize_debug", metavar="OPTION",
                        help=argparse.SUPPRESS)
    add_display_options(parser)
    parser.add_argument("tasks", nargs="*", metavar="PID|TASK",
                        help="a PID (decimal) or task address (hexadecimal)")
    return parser


def reader_for(session: Session) -> StackReader:
    return session.cached("stack-reader", lambda: StackReader(session.prog))


# --- choosing tasks ---------------------------------------------------------------------------


def active_tasks(prog: drgn.Program, cpus: Iterable[int] | None = None) -> list[drgn.Object]:
    """The task each CPU was running (every CPU crash knows, or those of ``cpus``)."""
    out = []
    for cpu in crash_cpus(prog) if cpus is None else cpus:
        try:
            out.append(active_task(prog, cpu))
        except READ_ERRORS as err:
            raise CommandError(f"cannot determine the active task of CPU {cpu}: {err}") \
                from err
    return out


def thread_group(prog: drgn.Program, task: drgn.Object) -> list[drgn.Object]:
    """crash's ``-g``: the thread group leader, then its other threads in task table
    order (an idle task is its own group)."""
    if task.pid.value_() == 0:
        return [task]
    tgid = task.tgid.value_()
    leader = task.group_leader
    others = [t for t in all_tasks(prog)
              if t.tgid.value_() == tgid and t.value_() != leader.value_()]
    return [leader, *others]


def _selected(session: Session, args: argparse.Namespace) -> list[drgn.Object]:
    tasks = _chosen(session, args)
    if not args.group:
        return tasks
    if args.active or args.cpus:
        raise CommandError(f"-{'a' if args.active else 'c'} option cannot be used with "
                           "the -g option")
    return [t for task in tasks for t in thread_group(session.prog, task)]


def _chosen(session: Session, args: argparse.Namespace) -> list[drgn.Object]:
    prog = session.prog
    if args.active:
        return active_tasks(prog)
    if args.cpus:
        return active_tasks(prog, cpu_list(session, args.cpus))
    if args.panic:
        task = reader_for(session).panic_task
        if not task:
            raise CommandError("no panic task found")
        return [drgn.Object(prog, "struct task_struct *", value=task)]
    if args.tasks:
        return [t for word in args.tasks for t in tasks_for_argument(session, word)[1]]
    return [session.current_task]


# --- running ------------------------------------------------------------------------------------


def options_from(args: argparse.Namespace) -> BtOptions:
    return BtOptions(lines=args.lines, symbol_offsets=args.offsets, hex_offsets=args.hex,
                     full=args.full or bool(args.symbolic), symbolic=args.symbolic)


def _trace(session: Session, task: drgn.Object, args: argparse.Namespace,
           frame_data: bool) -> Backtrace:
    reader = reader_for(session)
    start_sp = getattr(args, "start_sp", None)
    if start_sp is None:
        return backtrace(reader, task, frame_data=frame_data)
    sp = hex_word(start_sp, "stack address")
    start_ip = getattr(args, "start_ip", None)
    ip = None if start_ip is None else hex_word(start_ip, "text address")
    region = reader.task_region(task)
    cpu = task_cpu_or_none(task)
    in_cpu_stack = cpu is not None and any(sp in r for r in reader.cpu_regions(cpu))
    if not sp or (region is not None and sp not in region and not in_cpu_stack):
        valid = f" (valid range: {region.start:x} - {region.end:x})" if region else ""
        raise CommandError(f"non-process stack address for this task: {sp:x}{valid}")
    return backtrace_from(reader, task, sp, ip, frame_data=frame_data)


#: From this many tasks on, stacks are unwound through the companion program
#: (``kdx.target.companion``): opening it costs about what unwinding 150 tasks saves.
_COMPANION_FROM = 200


def _traces(session: Session, tasks: list[drgn.Object], args: argparse.Namespace,
            frame_data: bool) -> list[tuple[Backtrace | None, str]]:
    """Each task's backtrace, or why its stack cannot be read, in the tasks' order.

    Many tasks (``foreach bt``, ``bt -a`` on a big machine) are shared among forked
    workers (:mod:`kdx.model.forked`); the first is unwound here first, so every
    worker inherits the caches it fills (the symbol table, the modules, the stacks'
    regions) instead of building its own."""
    from kdx.model.forked import fork_map, worker_count

    def one(task: drgn.Object) -> tuple[Backtrace | None, str]:
        try:
            return _trace(session, task, args, frame_data), ""
        except READ_ERRORS as err:
            return None, f"cannot read the stack of task {task.value_():x}: {err}"

    if not tasks:
        return []
    reader = reader_for(session)
    if len(tasks) >= _COMPANION_FROM and reader.companion is None:
        from kdx.target.companion import unwinding_companion

        reader.companion = unwinding_companion(session.target)
    first = one(tasks[0])
    return [first, *fork_map(one, tasks[1:], worker_count(len(tasks) - 1))]


def task_cpu_or_none(task: drgn.Object) -> int | None:
    try:
        return task_cpu(task)
    except READ_ERRORS:
        return None


#: per-task stack warnings shown one by one; beyond this many, one line sums them up
_PROBLEMS_SHOWN = 3


def _warn_problems(session: Session, problems: list[str]) -> None:
    """Each task's stack problem, or (many tasks, a damaged dump) the first few and one
    line counting the rest, so the warnings do not drown the stacks."""
    for line in problems[:_PROBLEMS_SHOWN]:
        session.warn(line)
    rest = len(problems) - _PROBLEMS_SHOWN
    if rest > 0:
        session.warn(f"and {rest} more stack problems like these (pages missing from the "
                     "dump or damaged)")


def run_bt(session: Session, tasks: list[drgn.Object], args: argparse.Namespace) -> None:
    """Show ``tasks`` as the display options in ``args`` ask (bt and foreach bt)."""
    reader = reader_for(session)
    options = options_from(args)
    if options.lines and not session.target.has_source_lines:
        session.warn("kernel source lines need the vmlinux's DWARF (this dump was opened "
                     "without it): only modules named with their .ko files show lines")
    if args.raw:
        start = getattr(args, "start_sp", None)
        raws = [raw_stack(reader, task, None if start is None
                          else hex_word(start, "stack address")) for task in tasks]
        for raw in raws:
            if raw.unreadable_from is not None:
                session.warn(f"PID {raw.pid}: the stack is not in the dump from "
                             f"{raw.unreadable_from:x}")
        session.emit("bt-raw", raws, lambda: "\n\n".join(render_raw(r) for r in raws))
        return
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
    problems: list[str] = []
    skip_idle = getattr(args, "skip", None) == "idle"
    for trace, problem in _traces(session, tasks, args, options.full):
        if trace is None:
            problems.append(problem)
            continue
        if skip_idle and idle_in_nmi(trace):
            trace = replace(trace, start="skipped", frames=[], exception_frames=[],
                            warnings=[])
        if args.ref is not None and not references(trace, args.ref):
            continue
        if args.ref is None:
            problems += [f"PID {trace.pid}: {warning}" for warning in trace.warnings]
        traces.append(trace)
    _warn_problems(session, problems)
    if options.symbolic:
        values = [w for t in traces for f in t.frames for w in (f.data or [])]
        labels = label_stack_words(reader, values)
        options = BtOptions(lines=options.lines, symbol_offsets=options.symbol_offsets,
                            hex_offsets=options.hex_offsets, full=True,
                            symbolic=options.symbolic, labels=labels)
    if args.ref is not None:
        if traces or session.json:
            session.emit("bt", traces, lambda: render_referencing(traces, options))
        return
    session.emit("bt", traces, lambda: render_backtraces(traces, options))


def idle_in_nmi(trace: Backtrace) -> bool:
    """crash's ``-n idle`` rule: an idle task whose stack starts where the crash NMI
    stopped it has nothing to show but its idle loop."""
    return trace.pid == 0 and trace.start == "nmi"


def _unsupported(option: str) -> CommandError:
    return CommandError(f"-{option} option not supported or applicable on this "
                        "architecture or kernel")


def _crash_only_options(session: Session, args: argparse.Namespace) -> bool:
    """Options about crash's own machinery or other architectures: one line each, as
    crash's x86_64 answers them; True when the command is done."""
    if args.all_registers:  # s390x's vector registers
        raise _unsupported("A")
    if args.skip is not None and args.skip != "idle":
        raise _unsupported("n")
    if args.framesize_debug is not None:
        raise CommandError("-D debugs crash's own frame-size cache; kdx's unwinder "
                           "(drgn's) has none")
    if args.old_default:
        session.warn("kdx has one unwinder (drgn's): there is no default method for -O "
                     "to toggle")
        return True
    return False


@crash_command("bt", "backtrace of a task, the panic task or every CPU's active task",
               parser=_parser, for_tasks=run_bt)
def _bt(session: Session, args: argparse.Namespace) -> None:
    if _crash_only_options(session, args):
        return
    if args.check:
        reader = reader_for(session)
        found = check_stack_overflows(reader, all_tasks(session.prog))
        session.emit("bt-overflow", found, lambda: render_overflows(found))
        return
    if args.cpu_eframes:
        reader = reader_for(session)
        cpus = crash_cpus(session.prog)
        searches = cpu_exception_frames(reader, cpus)
        session.emit("bt-eframes", searches, lambda: render_cpu_search(searches))
        return
    run_bt(session, _selected(session, args), args)
