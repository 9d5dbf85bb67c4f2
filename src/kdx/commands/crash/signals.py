"""``sig``: a task's signal handlers, blocked and pending signals, as crash prints them
(the current task when no PID or task address is given).

``-g`` shows a thread group as crash does: the handlers and shared queue once (they are
the group's), then each thread's own pending state; a thread names its group. ``-l``
lists the signal names and ``-s SIGSET`` names the signals of a sigset value, such as a
BLOCKED or SIGNAL word from this output or from /proc/PID/status.
"""

from __future__ import annotations

import argparse

import drgn

from kdx.commands.crash.arguments import for_each_task_argument
from kdx.model.reading import READ_ERRORS
from kdx.model.signals import (
    ThreadGroupSignals,
    decode_sigset,
    signal_names,
    task_signals,
)
from kdx.model.tasks import all_tasks
from kdx.render.crash.signals import (
    render_signal_names,
    render_signals,
    render_sigset,
    render_thread_group,
)
from kdx.session.command import CommandError, crash_command, make_parser
from kdx.session.session import Session


def _parser() -> argparse.ArgumentParser:
    parser = make_parser("sig", "signal handling of tasks, as crash prints it")
    parser.add_argument("-g", dest="group", action="store_true",
                        help="the whole thread group: handlers once, then every thread")
    parser.add_argument("-l", dest="list", action="store_true",
                        help="list the signal numbers and names")
    parser.add_argument("-s", dest="sigset", metavar="SIGSET",
                        help="name the signals set in this 64-bit hexadecimal value")
    parser.add_argument("tasks", nargs="*", metavar="PID|TASK",
                        help="PIDs or task addresses (default: the current task)")
    return parser


def _signals(task: drgn.Object):  # noqa: ANN202 (TaskSignals)
    try:
        return task_signals(task)
    except READ_ERRORS as err:
        raise CommandError(f"cannot read the signal state of task "
                           f"{task.value_():x}: {err}") from err


def _sigset_value(text: str) -> int:
    digits = text[2:] if text.lower().startswith("0x") else text
    try:
        value = int(digits, 16)
    except ValueError:
        raise CommandError(f"invalid input: {text}") from None
    if value >> 64:
        raise CommandError(f"invalid input: {text}")
    return value


def _thread_group(session: Session, task: drgn.Object, shown_idle: list[bool]
                  ) -> ThreadGroupSignals | None:
    """crash's ``sig -g`` for one task: its group leader's record, then the leader's
    and every other thread's, in task table order. The idle tasks (all in group 0)
    are shown once, however many of them were named."""
    if task.pid.value_() == 0:
        if shown_idle[0]:
            return None
        shown_idle[0] = True
    elif task.pid.value_() != task.tgid.value_():
        task = task.group_leader
    tgid = task.tgid.value_()
    members = [t for t in session.cached("sig-task-table",
                                         lambda: all_tasks(session.prog))
               if t.tgid.value_() == tgid and t.value_() != task.value_()]
    leader = _signals(task)
    return ThreadGroupSignals(leader, (leader, *(_signals(t) for t in members)))


@crash_command("sig", "signal handlers, blocked and pending signals of a task (-g thread group, -l"
               " names, -s SIGSET)", parser=_parser)
def _sig(session: Session, args: argparse.Namespace) -> None:
    if args.list:
        names = signal_names()
        session.emit("sig-list", names, lambda: render_signal_names(names))
        return
    if args.sigset is not None:
        decoded = decode_sigset(_sigset_value(args.sigset))
        session.emit("sig-sigset", decoded, lambda: render_sigset(decoded))
        return
    records = []
    texts = []
    shown_idle = [False]

    def visit(_form: str, task: drgn.Object) -> None:
        if args.group:
            group = _thread_group(session, task, shown_idle)
            if group is not None:
                records.append(group)
                texts.append(render_thread_group(group) + "\n\n")
            return
        record = _signals(task)
        records.append(record)
        texts.append(render_signals(record) + "\n\n")

    for_each_task_argument(session, args.tasks, visit)
    session.emit("sig-group" if args.group else "sig", records, lambda: "".join(texts))
