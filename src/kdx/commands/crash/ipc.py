"""``ipcs``: System V shared memory, semaphores and message queues, as crash prints them
(kdx.model.ipc), for the initial IPC namespace or a task's, all of them or those named
by ID or address."""

from __future__ import annotations

import argparse

from kdx.commands.crash.arguments import tasks_for_argument
from kdx.model.ipc import IpcObjects, ipc_objects
from kdx.model.reading import READ_ERRORS
from kdx.render.crash.ipc import render_ipcs, render_ipcs_lookup
from kdx.session.command import CommandError, crash_command, make_parser
from kdx.session.session import Session

__all__: list[str] = []  # the commands register themselves through @crash_command


def _ipcs_parser() -> argparse.ArgumentParser:
    parser = make_parser("ipcs", "System V IPC objects, as crash lists them")
    parser.add_argument("-s", dest="sem", action="store_true", help="semaphore arrays")
    parser.add_argument("-m", dest="shm", action="store_true",
                        help="shared memory segments")
    parser.add_argument("-M", dest="verbose", action="store_true",
                        help="shared memory segments with their pages and inode")
    parser.add_argument("-q", dest="msg", action="store_true", help="message queues")
    parser.add_argument("-n", dest="task", metavar="PID|TASK",
                        help="the IPC namespace of this task")
    parser.add_argument("ids", nargs="*", metavar="ID|ADDRESS",
                        help="only the object with this ID or structure address")
    return parser


def _ipc_value(word: str) -> int:
    """crash's stol: decimal when every character is a digit, else hexadecimal."""
    try:
        return int(word, 10) if word.isdigit() else int(word, 16)
    except ValueError as err:
        raise CommandError(f"not a valid number: {word}") from err


@crash_command("ipcs", "System V shared memory, semaphores and message queues (-s -m -M -q, -n "
               "PID, ID|ADDRESS)", parser=_ipcs_parser)
def _ipcs(session: Session, args: argparse.Namespace) -> None:
    wanted = [(word, _ipc_value(word)) for word in args.ids]
    namespace = None
    if args.task is not None:
        namespace = tasks_for_argument(session, args.task)[1][0].nsproxy.ipc_ns.read_()
    try:
        objects = ipc_objects(session.prog, namespace)
    except READ_ERRORS as err:
        raise CommandError(f"cannot read the IPC objects: {err}") from err
    shm, sem, msg = args.shm or args.verbose, args.sem, args.msg
    if not (shm or sem or msg):
        shm = sem = msg = True
    chosen = {"shm": shm, "sem": sem, "msg": msg, "verbose": args.verbose}
    if wanted:
        values = {value for _word, value in wanted}
        named = IpcObjects(
            tuple(s for s in objects.shared_memory if shm and {s.shmid, s.shmid_kernel}
                  & values),
            tuple(s for s in objects.semaphores if sem and {s.semid, s.sem_array} & values),
            tuple(m for m in objects.message_queues if msg and {m.msqid, m.msg_queue}
                  & values))
        session.emit("ipcs", named, lambda: render_ipcs_lookup(objects, wanted, **chosen))
        return
    session.emit("ipcs", objects, lambda: render_ipcs(objects, **chosen))
