"""``waitq``: the tasks on a wait queue named by symbol, ``struct.member ADDRESS`` or
address, as crash prints them (kdx.model.waitq)."""

from __future__ import annotations

import argparse
import re

import drgn

from kdx.commands.crash.arguments import hex_word, tasks_for_argument
from kdx.model.reading import READ_ERRORS
from kdx.model.waitq import wait_queue
from kdx.render.crash.waitq import render_waitq
from kdx.session.command import CommandError, crash_command, make_parser
from kdx.session.session import Session

__all__: list[str] = []  # the commands register themselves through @crash_command


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
