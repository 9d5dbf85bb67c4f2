"""``swap``, ``ipcs``, ``waitq`` and ``fuser``: smaller kernel tables, as crash prints
them."""

from __future__ import annotations

import argparse
import re

import drgn

from kdx.commands.crash.arguments import hex_word, tasks_for_argument
from kdx.model.answers import FileUsers
from kdx.model.ipc import (
    IpcObjects,
    file_users,
    ipc_objects,
    swap_devices,
    wait_queue,
)
from kdx.model.reading import READ_ERRORS
from kdx.model.tasks import all_tasks
from kdx.render.crash.ipc import (
    render_fuser,
    render_ipcs,
    render_ipcs_lookup,
    render_swap,
    render_waitq,
)
from kdx.session.command import CommandError, crash_command, make_parser
from kdx.session.session import Session

# -- swap -------------------------------------------------------------------------------


def _swap_parser() -> argparse.ArgumentParser:
    return make_parser("swap", "swap devices, as crash lists them")


@crash_command("swap", "swap devices: size, use, priority, file", parser=_swap_parser)
def _swap(session: Session, _args: argparse.Namespace) -> None:
    try:
        devices = swap_devices(session.prog)
    except READ_ERRORS as err:
        raise CommandError(f"cannot read the swap devices: {err}") from err
    session.emit("swap", devices, lambda: render_swap(devices))


# -- ipcs -------------------------------------------------------------------------------


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


# -- waitq ------------------------------------------------------------------------------


def _waitq_parser() -> argparse.ArgumentParser:
    parser = make_parser("waitq", "tasks on a wait queue, as crash lists them")
    parser.add_argument("queue", metavar="SYMBOL|STRUCT.MEMBER|ADDRESS")
    parser.add_argument("address", nargs="?", metavar="STRUCT_ADDRESS",
                        help="the structure's address, with STRUCT.MEMBER")
    return parser


def _queue_address(session: Session, args: argparse.Namespace) -> tuple[int, str | None]:
    prog = session.prog
    word = args.queue
    if re.fullmatch(r"(0[xX])?[0-9a-fA-F]+", word):  # a number first, as in crash
        return hex_word(word), None
    if "." not in word:
        try:
            return prog.symbol(word).address, word
        except LookupError as err:
            raise CommandError(f"no symbol {word}") from err
    struct, member = word.split(".", 1)
    if args.address is None:
        raise CommandError(f"must supply an address for {struct}")
    try:
        offset = drgn.offsetof(prog.type(f"struct {struct}"), member)
    except LookupError as err:
        raise CommandError(f"{member} is not a member of {struct}") from err
    return hex_word(args.address) + offset, None


@crash_command("waitq", "tasks queued on a wait queue (symbol, struct.member ADDR, or address)",
               parser=_waitq_parser)
def _waitq(session: Session, args: argparse.Namespace) -> None:
    address, name = _queue_address(session, args)

    def task_at(value: int) -> drgn.Object | None:
        if not value:
            return None
        try:
            return tasks_for_argument(session, f"{value:x}")[1][0]
        except CommandError:
            return None

    try:
        queue = wait_queue(session.prog, address, name, task_at)
    except READ_ERRORS as err:
        raise CommandError(f"cannot read the wait queue at {address:x}: {err}") \
            from err
    session.emit("waitq", queue, lambda: render_waitq(queue))


# -- fuser ------------------------------------------------------------------------------


def _fuser_parser() -> argparse.ArgumentParser:
    parser = make_parser("fuser", "tasks using a file, as crash lists them")
    parser.add_argument("paths", nargs="+", metavar="PATH|INODE")
    return parser


@crash_command("fuser", "tasks using a file: root, cwd, fd, mmap", parser=_fuser_parser)
def _fuser(session: Session, args: argparse.Namespace) -> None:
    tasks = all_tasks(session.prog)
    records = []
    texts = []
    for wanted in args.paths:
        if not wanted.startswith("/") and not re.fullmatch(r"(0[xX])?[0-9a-fA-F]+", wanted):
            raise CommandError(f"invalid argument: {wanted}")
        users = file_users(tasks, wanted, session.warn)
        records.append(FileUsers(wanted, users))
        texts.append(render_fuser(users, wanted) + "\n")
    session.emit("fuser", records, lambda: "".join(texts))
