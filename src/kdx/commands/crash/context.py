"""``set`` and ``task``: choose the task other commands work on, and show its task_struct.

``set`` moves the session's current task (the panic task until then) the way crash's
does — by PID, task address, CPU (``-c``: that CPU's active task) or back to the panic
task (``-p``) — and prints crash's context block. ``task`` prints a task_struct, whole or
only the members named with ``-R``, under crash's one-line task header.
"""

from __future__ import annotations

import argparse
import re

import drgn

from kdx.commands.crash.arguments import parse_selectors, tasks_of
from kdx.model.expr import has_member
from kdx.model.tasks import (
    TaskInfo,
    active_tasks,
    panic_task_address,
    task_context,
)
from kdx.model.values import session_reader, task_values
from kdx.render.crash.data import task_values_text
from kdx.render.crash.ps import render_context, render_task
from kdx.session.command import CommandError, crash_command, make_parser
from kdx.session.session import Session
from kdx.session.settings import VARIABLES, render_settings

# --- set ----------------------------------------------------------------------------------------


def _set_parser():
    parser = make_parser("set", "set the current task by PID, task address or CPU, "
                                "and show it")
    parser.add_argument("-c", metavar="CPU", type=int, help="the task active on CPU")
    parser.add_argument("-p", action="store_true", help="back to the panic task")
    parser.add_argument("-v", action="store_true", help="list the session's variables")
    parser.add_argument("target", nargs="?", metavar="pid|task|variable",
                        help="a PID, a task address, or a variable: "
                        f"{', '.join(VARIABLES)}")
    parser.add_argument("value", nargs="?", help="the variable's new value (radix 10|16, "
                        "scroll on|off, silent on|off)")
    return parser


def _current_info(session: Session) -> TaskInfo:
    address = session.current_task.value_()
    for task in tasks_of(session):
        if task.task == address:
            return task
    raise CommandError(f"the current task {address:x} is not in the task table")


def _show(session: Session, info: TaskInfo) -> None:
    from kdx.model.system import system_info

    panic_state = None
    if info.task == panic_task_address(session.prog):
        panic_state = session.cached("sys", lambda: system_info(session.target)).state
    context = task_context(session.prog, info, tasks_of(session), panic_state)
    session.emit("set", context, lambda: render_context(context))


def _switch(session: Session, info: TaskInfo) -> None:
    session.current_task = drgn.Object(session.prog, "struct task_struct *", info.task)
    _show(session, info)


def _by_address(session: Session, address: int) -> TaskInfo:
    for task in tasks_of(session):
        if task.task == address:
            return task
    raise CommandError(f"no task at {address:x}")


@crash_command("set", "set or show the current task (PID, task, -c CPU, -p)", parser=_set_parser)
def _set(session: Session, args: argparse.Namespace) -> None:
    if args.v:
        target = session.target
        rows = session.settings.listing(str(target.vmlinux or "(none)"),
                                        str(target.path or "/proc/kcore"))
        session.emit("set-variables", rows, lambda: render_settings(rows))
    elif args.target in VARIABLES:
        said = session.settings.assign(args.target, args.value)
        name = "radix" if args.target in ("hex", "dec") else args.target
        rows = [row for row in session.settings.listing("", "") if row.name == name]
        session.emit("set-variables", rows, said)
    elif args.p:
        panic = panic_task_address(session.prog)
        if not panic:
            raise CommandError("no panic task found!")
        _switch(session, _by_address(session, panic))
    elif args.c is not None:
        _set_cpu(session, args.c)
    elif args.target is not None:
        tasks = tasks_of(session)
        if not re.fullmatch(r"(0[xX])?[0-9a-fA-F]+", args.target):
            raise CommandError(f"invalid task or pid value: {args.target} "
                               "(kdx's set takes a PID, a task address, -c or -p)")
        warnings: list[str] = []
        selectors = parse_selectors([args.target], tasks, warnings.append)
        if not selectors:
            raise CommandError(f"invalid task or pid value: {args.target}")
        _switch(session, next(t for t in tasks if selectors[0].matches(t)))
    else:
        _show(session, _current_info(session))


def _set_cpu(session: Session, cpu: int) -> None:
    """The CPU's active task: the panic task on its CPU, else the runqueue's current."""
    active = active_tasks(session.prog)
    if cpu not in active:
        count = len(active)
        raise CommandError(f"invalid cpu number: system has only {count} "
                           f"cpu{'s' if count > 1 else ''}")
    panic = panic_task_address(session.prog)
    address = active[cpu]
    if panic:
        info = _by_address(session, panic)
        if info.cpu == cpu:
            address = panic
    _switch(session, _by_address(session, address))


# --- task ---------------------------------------------------------------------------------------


def _task_parser():
    parser = make_parser("task", "show a task_struct, whole or the members named")
    parser.add_argument("-R", action="append", default=[], metavar="MEMBER[,MEMBER...]",
                        help="only these members (a.b and a[1] reach inside)")
    base = parser.add_mutually_exclusive_group()
    base.add_argument("-x", action="store_true", help="integers in hexadecimal")
    base.add_argument("-d", action="store_true", help="integers in decimal")
    parser.add_argument("targets", nargs="*", metavar="pid|task|member")
    return parser


@crash_command("task", "show the current or named tasks' task_struct (-R members)",
               parser=_task_parser)
def _task(session: Session, args: argparse.Namespace) -> None:
    base = 16 if args.x else 10 if args.d else session.settings.radix
    prog = session.prog
    table = tasks_of(session)
    members = [m for spec in args.R for m in spec.split(",") if m]
    numbers = []
    task_type = prog.type("struct task_struct")
    for word in args.targets:
        if re.fullmatch(r"(0[xX])?[0-9a-fA-F]+", word) and not has_member(task_type, word):
            numbers.append(word)
        else:
            members += [m for m in word.split(",") if m]
    selectors = parse_selectors(numbers, table, session.warn)
    if numbers:
        chosen = [t for s in selectors for t in table if s.matches(t)]
    else:
        chosen = [_current_info(session)]
    reader = session_reader(prog, session.cached)
    records = [task_values(reader, info, members) for info in chosen]
    session.emit("task", records, lambda: "".join(
        render_task(info, task_values_text(record, base))
        for info, record in zip(chosen, records)))


