"""``sys``: the system summary, and ``help``: the list of commands."""

from __future__ import annotations

import argparse

from kdx.model.log import KernelLog, kernel_log
from kdx.model.reading import READ_ERRORS
from kdx.model.session_records import CommandSummary, HelpText
from kdx.model.system import system_info
from kdx.render.crash.sys import render_sys
from kdx.session.command import CommandError, crash_command, make_parser
from kdx.session.session import Session


def _sys_parser():
    parser = make_parser("sys", "the system summary of the dump, as crash prints it")
    parser.add_argument("what", nargs="?", choices=["config"], help="config: the kernel's "
                        "build configuration, when the kernel carries it")
    parser.add_argument("-c", dest="syscalls", action="store_true",
                        help="the system call table: number, handler, file and line")
    return parser


@crash_command("sys", "system summary: kernel, dump, date, uptime, panic", parser=_sys_parser)
def _sys(session: Session, args: argparse.Namespace) -> None:
    if args.what == "config":
        _config(session)
        return
    if args.syscalls:
        from kdx.model.syscalls import syscall_table
        from kdx.render.crash.sys import render_syscalls

        entries = session.cached("syscalls", lambda: syscall_table(session.prog))
        session.emit("syscalls", entries, lambda: render_syscalls(entries))
        return
    info = session.cached("sys", lambda: system_info(session.target, _session_log(session)))
    for message in info.warnings:  # a zero that could not be read is said to be one
        session.warn(f"sys: {message}")
    session.emit("sys", info, lambda: render_sys(info))


def _session_log(session: Session) -> KernelLog | None:
    """The kernel log ``sys`` takes its panic line from, read once for ``sys`` and
    ``log`` alike; None on a live kernel (no panic line) or when it cannot be read
    (``sys`` then reads it itself and says why among its warnings)."""
    if session.target.live:
        return None
    try:
        return session.cached("log", lambda: kernel_log(session.prog))
    except READ_ERRORS:
        return None


def _config(session: Session) -> None:
    from drgn.helpers.linux.kconfig import get_kconfig

    try:
        config = get_kconfig(session.prog)
    except LookupError as err:
        raise CommandError("this kernel does not carry its configuration "
                           "(CONFIG_IKCONFIG is not set)") from err
    session.emit("sys-config", dict(config),
                 lambda: "\n".join(f"{k}={v}" for k, v in config.items()))


def _help_parser():
    parser = make_parser("help", "list the commands, or describe one")
    parser.add_argument("command", nargs="?")
    return parser


@crash_command("help", "list the commands or describe one", parser=_help_parser,
               needs_types=False)
def _help(session: Session, args: argparse.Namespace) -> None:
    if args.command:
        command = session.commands.get(args.command)
        if command is None:
            raise CommandError(f"{args.command}: no such command")
        text = command.parser().format_help()
        session.emit("help", HelpText(args.command, text), text)
        return
    names = sorted({c.name for c in session.commands.values()})
    width = max(len(n) for n in names)
    rows = [f"{n:<{width}}  {session.commands[n].summary}" for n in names]
    summaries = [CommandSummary(n, session.commands[n].summary) for n in names]
    session.emit("help-index", summaries, "\n".join(rows))
