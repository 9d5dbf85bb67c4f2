"""An example kdx extension: ``runnable``, the tasks in state R per CPU.

Load it in a session with ``extend examples/kdx_runnable.py``, then type ``runnable`` (or
``runnable -c 1``, or ``runnable --json``-mode output with ``kdx --json``). It shows the
whole extension API: a command declared with ``kdx.extension.command``, its options from
``make_parser``, a record printed as text or JSON through ``session.emit``, and a
one-line failure with ``CommandError``.
"""

from __future__ import annotations

from dataclasses import dataclass

from drgn.helpers.linux.pid import for_each_task
from drgn.helpers.linux.sched import task_cpu, task_state_to_char

from kdx.extension import CommandError, Session, command, make_parser


@dataclass(frozen=True, order=True)
class Runnable:
    cpu: int
    pid: int
    comm: str


def _parser():
    parser = make_parser("runnable", "the tasks in state R, per CPU")
    parser.add_argument("-c", dest="cpu", type=int, metavar="CPU", help="only this CPU")
    return parser


@command("runnable", "tasks in state R, per CPU (example extension)", parser=_parser)
def runnable(session: Session, args) -> None:  # noqa: ANN001 (argparse.Namespace)
    rows = sorted(Runnable(task_cpu(t), t.pid.value_(),
                           t.comm.string_().decode(errors="replace"))
                  for t in for_each_task(session.prog) if task_state_to_char(t) == "R")
    if args.cpu is not None:
        rows = [r for r in rows if r.cpu == args.cpu]
        if not rows:
            raise CommandError(f"no runnable task on CPU {args.cpu}")
    text = "\n".join(["CPU    PID  COMMAND", *(f"{r.cpu:>3}  {r.pid:>5}  {r.comm}"
                                                for r in rows)])
    session.emit("runnable", rows, text)
