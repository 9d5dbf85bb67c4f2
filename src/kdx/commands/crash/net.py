"""``net``: network devices (``-n PID`` for another namespace), the ARP cache (``-a``),
a task's sockets (``-s [PID|TASK ...]``, ``-S`` with the socket and inet_sock structures,
``-R REF`` only the socket a reference names) and ``-N ADDR`` (a number as an IPv4
address), as crash prints them."""

from __future__ import annotations

import argparse

import drgn

from kdx.commands.crash.arguments import for_each_task_argument, tasks_for_argument
from kdx.model.net import (
    TaskSockets,
    arp_cache,
    ipv4_text,
    net_devices,
    net_namespace,
    socket_matches,
    socket_reference,
    task_sockets,
)
from kdx.model.reading import READ_ERRORS
from kdx.model.values import ValueReader, session_reader
from kdx.render.crash.data import struct_text
from kdx.render.crash.net import render_arp, render_devices, render_sockets
from kdx.session.command import CommandError, crash_command, make_parser
from kdx.session.session import Session


def _parser() -> argparse.ArgumentParser:
    parser = make_parser("net", "network devices, ARP cache and sockets, as crash")
    parser.add_argument("-a", action="store_true", help="the ARP cache")
    parser.add_argument("-s", action="store_true",
                        help="the sockets of the tasks named (default: the current task)")
    parser.add_argument("-S", dest="full", action="store_true",
                        help="like -s, with the socket and inet_sock structures")
    parser.add_argument("-R", dest="ref", metavar="REF",
                        help="with -s/-S: only the socket or sock address, or descriptor")
    parser.add_argument("-N", dest="number", metavar="ADDR",
                        help="a decimal or hexadecimal number as an IPv4 address")
    parser.add_argument("-x", dest="hex", action="store_true",
                        help="-S structures in hexadecimal")
    parser.add_argument("-d", dest="dec", action="store_true",
                        help="-S structures in decimal")
    parser.add_argument("-n", action="store_true",
                        help="the devices of the network namespace of the task named "
                        "(default: the current task)")
    parser.add_argument("tasks", nargs="*", metavar="PID|TASK")
    return parser


def _number(word: str) -> int:
    """crash's stol: decimal when every character is a digit, else hexadecimal."""
    try:
        return int(word, 10) if word.isdigit() else int(word, 16)
    except ValueError as err:
        raise CommandError(f"not a valid number: {word}") from err


def _structures(reader: ValueReader, record: TaskSockets, radix: int) -> dict[int, str]:
    """``-S``: each socket's ``struct socket`` and, when it has one, its sock as
    ``struct inet_sock`` (crash's choice whatever the family), by descriptor."""
    prog = reader.prog
    texts = {}
    for entry in record.sockets:
        parts = []
        for type_name, address in (("struct socket", entry.socket),
                                   ("struct inet_sock", entry.sock)):
            if not address:
                continue
            try:
                value = reader.read(drgn.Object(prog, type_name, address=address))
                parts.append(struct_text(value, radix))
            except drgn.FaultError as err:
                parts.append(f"{type_name}: cannot read memory at {err.address:x}")
        texts[entry.fd] = "\n".join(parts)
    return texts


def _sockets(session: Session, args: argparse.Namespace) -> None:
    """``-s``/``-S`` for the tasks named. With ``-R``, each task is searched on its own
    (as crash's ``foreach net -R`` does): a task with a match prints its header, the
    matching sockets and a blank line; the others print nothing."""
    radix = 16 if args.hex else 10
    records = []
    texts: list[str] = []

    def visit(_form: str, task: drgn.Object) -> None:
        record = task_sockets(task, session.warn)
        if args.ref is not None:
            ref = socket_reference(args.ref, record.max_fds)
            record = TaskSockets(record.task, tuple(
                s for s in record.sockets if socket_matches(s, ref)), record.max_fds)
            if not record.sockets:
                return
        records.append(record)
        reader = session_reader(session.prog, session.cached)
        dumps = _structures(reader, record, radix) if args.full else None
        text = render_sockets(record, dumps, reference=args.ref is not None) + "\n"
        if args.ref is not None:
            texts.append(text + "\n")
        else:
            texts.append(("\n" if texts else "") + text)

    for_each_task_argument(session, args.tasks, visit)
    session.emit("net-sockets", records, lambda: "".join(texts))


@crash_command("net", "network devices and addresses; -a ARP cache; -s/-S PID sockets (-R REF); -n"
               " PID namespace; -N ADDR", parser=_parser)
def _net(session: Session, args: argparse.Namespace) -> None:
    prog = session.prog
    if args.hex and args.dec:
        raise CommandError("-d and -x are mutually exclusive")
    if args.number is not None:
        address = ipv4_text(_number(args.number))
        session.emit("net-address", address, lambda: address)
        return
    if args.s and args.full:
        session.warn("only one -s or -S option allowed")
        args.full = False
    if args.s or args.full:
        _sockets(session, args)
        return
    if args.ref is not None:
        raise CommandError("-R needs -s or -S")
    if args.a:
        try:
            entries = arp_cache(prog)
        except READ_ERRORS as err:
            raise CommandError(f"cannot read the ARP cache: {err}") from err
        session.emit("net-arp", entries, lambda: render_arp(entries))
        if not args.n:
            return
    if args.tasks and not args.n:
        raise CommandError("a task is only taken with -s or -n")
    namespace = None
    if args.n:
        task = session.current_task
        if args.tasks:
            task = tasks_for_argument(session, args.tasks[0])[1][0]
        namespace = net_namespace(task)
    devices = net_devices(prog, namespace, session.warn)
    session.emit("net-devices", devices, lambda: render_devices(devices))
