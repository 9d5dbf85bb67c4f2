"""``runq``: the tasks queued on each CPU's run queue, as crash shows them.

Options as crash's: ``-t`` the run queue clocks and the current tasks' last arrival,
``-T`` each CPU's clock lag behind the newest, ``-m`` how long each current task has run,
``-g`` the fair queues by task group, ``-c CPUS`` only these CPUs.
"""

from __future__ import annotations

import argparse

from kdx.commands.crash.arguments import cpu_list
from kdx.model.reading import READ_ERRORS
from kdx.model.runqueue import root_task_group, run_queues
from kdx.model.tasks import crash_cpus
from kdx.render.crash.runq import (
    render_lag,
    render_milliseconds,
    render_runq,
    render_runq_groups,
    render_timestamps,
)
from kdx.session.command import CommandError, crash_command, make_parser
from kdx.session.session import Session


def _parser() -> argparse.ArgumentParser:
    parser = make_parser("runq", "the tasks on each CPU's run queue")
    view = parser.add_mutually_exclusive_group()
    view.add_argument("-t", dest="timestamps", action="store_true",
                      help="each run queue's clock and its current task's last arrival")
    view.add_argument("-T", dest="lag", action="store_true",
                      help="each CPU's clock lag behind the most recent one")
    view.add_argument("-m", dest="milliseconds", action="store_true",
                      help="how long each CPU's current task has been running")
    view.add_argument("-g", dest="groups", action="store_true",
                      help="the fair queues by task group")
    parser.add_argument("-c", dest="cpus", metavar="CPUS",
                        help="only these CPUs, e.g. 1 or 0,2-3")
    return parser


@crash_command("runq", "tasks on each CPU's run queue (-t -T -m -g -c)", parser=_parser)
def _runq(session: Session, args: argparse.Namespace) -> None:
    prog = session.prog
    cpus = cpu_list(session, args.cpus) if args.cpus else None
    cpu_count = len(crash_cpus(prog))
    try:
        queues = run_queues(prog, None if args.lag else cpus, groups=args.groups)
    except READ_ERRORS as err:
        raise CommandError(f"cannot read the run queues: {err}") from err
    for rq in queues:
        for warning in rq.warnings:
            session.warn(warning)
    if args.timestamps:
        session.emit("runq", queues, lambda: render_timestamps(queues))
    elif args.lag:
        session.emit("runq", queues, lambda: render_lag(queues, cpu_count))
    elif args.milliseconds:
        session.emit("runq", queues, lambda: render_milliseconds(queues, cpu_count))
    elif args.groups:
        try:
            root, label = root_task_group(prog)
        except LookupError as err:
            raise CommandError(str(err)) from err
        session.emit("runq", queues,
                     lambda: render_runq_groups(queues, root.value_(), label))
    else:
        session.emit("runq", queues, lambda: render_runq(queues))
