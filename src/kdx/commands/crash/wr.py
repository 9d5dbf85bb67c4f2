"""``wr``: kdx never writes, to a dump or to kernel memory; say so in one line.

crash's ``wr`` modifies memory on a live system. kdx opens dumps read-only (a dump is
evidence), so the command only points to the commands that read what ``wr`` would change.
"""

from __future__ import annotations

import argparse

from kdx.session.command import CommandError, crash_command, make_words_parser
from kdx.session.session import Session

__all__: list[str] = []


def _wr_parser():
    return make_words_parser("wr", "crash's memory write; kdx never writes memory",
                             "[-u|-k|-p] [-8|-16|-32|-64] [address|symbol] value")


@crash_command("wr", "write memory: never in kdx (read it with rd, p, struct)",
               parser=_wr_parser, needs_types=False)
def _wr(session: Session, args: argparse.Namespace) -> None:
    raise CommandError("kdx never writes to a dump or to kernel memory; read the value "
                       "with rd ADDRESS, p SYMBOL or struct TYPE ADDRESS")
