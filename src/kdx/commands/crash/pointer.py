"""``*``: crash's pointer-to shortcut, ``* page ADDR`` is ``struct page ADDR``.

crash users type ``*page ffffea...`` (handled where the session reads a command word) or
``* page ffffea...`` and its alias ``size page``; this command hands the line to
``struct`` or ``union``, whichever the name is, so the output is theirs exactly.
"""

from __future__ import annotations

import argparse

from kdx.session.command import CommandError, Reported, crash_command, make_words_parser
from kdx.session.session import Session

__all__: list[str] = []


def _pointer_parser():
    return make_words_parser("*", "a struct or union, as struct/union show it (* page ADDR "
                             "is struct page ADDR)", "[-o] [-x|-d] NAME[.MEMBER] [ADDRESS ...]")


@crash_command("*", "struct or union by name: * page ADDR is struct page ADDR",
               parser=_pointer_parser)
def _pointer(session: Session, args: argparse.Namespace) -> None:
    words: list[str] = args.words
    names = [w for w in words if not w.startswith("-")]
    if not names:
        raise CommandError("which struct or union? (* NAME[.MEMBER] [ADDRESS])")
    name = names[0].lstrip("*")
    kind = session.type_kind(name.split(".", 1)[0])
    if kind is None:
        raise CommandError(f"invalid argument: {name}: not a struct or union")
    rest = [name if w == names[0] else w for w in words]
    if not session.run(["struct" if kind == "typedef" else kind, *rest]):
        raise Reported()
