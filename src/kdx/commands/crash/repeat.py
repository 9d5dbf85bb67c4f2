"""``repeat [-SECONDS] COMMAND``: run a command again and again, as crash does.

On a live kernel the output changes each time; on a dump it never does, which crash's own
help says. kdx runs the command once, and tells the user why once is enough, instead of
printing the same answer until Ctrl-C.
"""

from __future__ import annotations

import argparse

from kdx.session.command import CommandError, Reported, crash_command, make_words_parser
from kdx.session.session import Session

__all__: list[str] = []


def _repeat_parser():
    return make_words_parser("repeat", "repeat a command (meaningful on a live system; a "
                             "dump never changes, so kdx runs it once)",
                             "[-SECONDS] COMMAND [ARGS ...]")


@crash_command("repeat", "repeat a command (on a dump: once, it never changes)",
               parser=_repeat_parser, needs_types=False)
def _repeat(session: Session, args: argparse.Namespace) -> None:
    words: list[str] = list(args.words)
    if words and words[0].startswith("-"):
        if not words[0][1:].isdigit():
            raise CommandError(f"repeat: invalid delay: {words[0]} (-SECONDS)")
        words = words[1:]
    if not words:
        raise CommandError("repeat: which command? (repeat [-SECONDS] COMMAND)")
    session.warn("repeat: a dump never changes: the command runs once")
    if not session.run(words):
        raise Reported()
