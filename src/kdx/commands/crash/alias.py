"""``alias``: list, show, make and delete the session's aliases, as crash's does.

``alias`` lists every alias (crash's built-in ones first), ``alias NAME`` shows one,
``alias NAME COMMAND...`` makes one (the command must exist, the name must not be a
command), and ``alias NAME ""`` deletes it. The table itself is kdx.session.aliases.
"""

from __future__ import annotations

import argparse

from kdx.session.aliases import render_aliases
from kdx.session.command import CommandError, crash_command, make_words_parser
from kdx.session.session import Session

__all__: list[str] = []


def _alias_parser():
    return make_words_parser("alias", "list the aliases, show one, make one "
                             "(alias NAME COMMAND...) or delete one (alias NAME \"\")",
                             "[NAME [COMMAND ...]]")


@crash_command("alias", "list, show, make or delete command aliases", parser=_alias_parser,
               needs_types=False)
def _alias(session: Session, args: argparse.Namespace) -> None:
    words: list[str] = args.words
    table = session.aliases
    if len(words) > 1:
        _define(session, words[0], words[1:])
        if session.alias_origin != "runtime":  # an rc file's alias: made quietly
            return
    chosen = table.entries if not words else [a for a in table.entries if a.alias == words[0]]
    if words and not chosen:
        if len(words) > 1:  # deleted: said so already
            return
        raise CommandError(f"alias does not exist: {words[0]}")
    session.emit("alias", chosen, lambda: render_aliases(chosen, table.entries))


def _define(session: Session, name: str, command: list[str]) -> None:
    if name in session.commands:
        raise CommandError(f"cannot alias existing command name: {name}")
    if command == [""]:
        if session.aliases.remove(name):
            session.write(f"alias deleted: {name}\n")
        return
    first = command[0].split()[0] if command[0].strip() else ""
    if first not in session.commands and first not in ("clear", "q"):
        raise CommandError(f"invalid alias attempt on non-existent command: {first}")
    session.aliases.define(session.alias_origin, name, command)
