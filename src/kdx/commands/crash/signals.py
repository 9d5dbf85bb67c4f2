"""``sig``: a task's signal handlers, blocked and pending signals, as crash prints them
(the current task when no PID or task address is given)."""

from __future__ import annotations

import argparse

import drgn

from kdx.commands.crash.files import for_each_task_argument
from kdx.model.signals import task_signals
from kdx.render.crash.signals import render_signals
from kdx.session.command import CommandError, CrashCommand, make_parser
from kdx.session.session import Session

_READ_ERRORS = (drgn.FaultError, drgn.ObjectAbsentError, LookupError, ValueError)


def _parser() -> argparse.ArgumentParser:
    parser = make_parser("sig", "signal handling of tasks, as crash prints it")
    parser.add_argument("tasks", nargs="*", metavar="PID|TASK",
                        help="PIDs or task addresses (default: the current task)")
    return parser


def _sig(session: Session, args: argparse.Namespace) -> None:
    records = []
    texts = []

    def visit(_form: str, task: drgn.Object) -> None:
        try:
            record = task_signals(task)
        except _READ_ERRORS as err:
            raise CommandError(f"cannot read the signal state of task "
                               f"{task.value_():x}: {err}") from err
        records.append(record)
        texts.append(render_signals(record) + "\n\n")

    for_each_task_argument(session, args.tasks, visit)
    session.emit("sig", records, lambda: "".join(texts))


COMMANDS = [
    CrashCommand("sig", "signal handlers, blocked and pending signals of a task",
                 _parser, _sig),
]
