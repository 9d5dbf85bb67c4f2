"""``net``: network devices (``-n PID`` for another namespace), the ARP cache (``-a``)
and a task's sockets (``-s [PID|TASK ...]``), as crash prints them."""

from __future__ import annotations

import argparse

import drgn

from kdx.commands.crash.files import for_each_task_argument, tasks_for_argument
from kdx.model.net import arp_cache, net_devices, net_namespace, task_sockets
from kdx.render.crash.net import render_arp, render_devices, render_sockets
from kdx.session.command import CommandError, CrashCommand, make_parser
from kdx.session.session import Session

_READ_ERRORS = (drgn.FaultError, drgn.ObjectAbsentError, LookupError, ValueError)


def _parser() -> argparse.ArgumentParser:
    parser = make_parser("net", "network devices, ARP cache and sockets, as crash")
    parser.add_argument("-a", action="store_true", help="the ARP cache")
    parser.add_argument("-s", action="store_true",
                        help="the sockets of the tasks named (default: the current task)")
    parser.add_argument("-n", action="store_true",
                        help="the devices of the network namespace of the task named "
                        "(default: the current task)")
    parser.add_argument("tasks", nargs="*", metavar="PID|TASK")
    return parser


def _sockets(session: Session, words: list[str]) -> None:
    records = []
    texts: list[str] = []

    def visit(_form: str, task: drgn.Object) -> None:
        record = task_sockets(task, session.warn)
        records.append(record)
        texts.append(("\n" if texts else "") + render_sockets(record) + "\n")

    for_each_task_argument(session, words, visit)
    session.emit("net-sockets", records, lambda: "".join(texts))


def _net(session: Session, args: argparse.Namespace) -> None:
    prog = session.prog
    if args.s:
        _sockets(session, args.tasks)
        return
    if args.a:
        try:
            entries = arp_cache(prog)
        except _READ_ERRORS as err:
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


COMMANDS = [
    CrashCommand("net", "network devices and addresses; -a ARP cache; -s PID sockets; "
                 "-n PID namespace", _parser, _net),
]
