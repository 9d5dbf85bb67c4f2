"""The session's aliases: crash's built-in ones, the rc files' and the user's.

A crash user types ``hex``, ``px``, ``for`` or ``lsmod`` without thinking, and keeps their
own words in ``~/.crashrc``; kdx resolves the first word of a command line through this
table before running it, once (as crash does), and lists the table in crash's layout.
"""

from __future__ import annotations

import shlex
from dataclasses import dataclass

from kdx.model.session_records import Alias

__all__ = ["BUILTIN", "AliasTable", "render_aliases"]

#: crash's built-in aliases, in its order (alias_init; crash 9 adds ``last``).
BUILTIN: tuple[tuple[str, str], ...] = (
    ("man", "help"), ("?", "help"), ("quit", "q"), ("sf", "set scroll off"),
    ("sn", "set scroll on"), ("hex", "set radix 16"), ("dec", "set radix 10"),
    ("g", "gdb"), ("px", "p -x"), ("pd", "p -d"), ("for", "foreach"), ("size", "*"),
    ("dmesg", "log"), ("lsmod", "mod"), ("last", "ps -l"),
)

#: crash's ORIGIN column is at least this wide.
_MIN_ORIGIN = 7


@dataclass
class AliasTable:
    """Aliases in the order they were made; a new definition of a name replaces it."""

    entries: list[Alias]

    @classmethod
    def builtin(cls) -> AliasTable:
        return cls([Alias("builtin", name, command.split()) for name, command in BUILTIN])

    def get(self, name: str) -> Alias | None:
        return next((a for a in self.entries if a.alias == name), None)

    def define(self, origin: str, name: str, command: list[str]) -> Alias:
        self.remove(name)
        alias = Alias(origin, name, list(command))
        self.entries.append(alias)
        return alias

    def remove(self, name: str) -> bool:
        before = len(self.entries)
        self.entries = [a for a in self.entries if a.alias != name]
        return len(self.entries) != before

    def resolve(self, words: list[str]) -> list[str]:
        """``words`` with its first word replaced by what it is an alias of (once)."""
        alias = self.get(words[0]) if words else None
        if alias is None:
            return words
        expanded: list[str] = []
        for word in alias.command:  # an alias made of one quoted string: "alias x 'p -x'"
            expanded += shlex.split(word) if " " in word else [word]
        return [*expanded, *words[1:]]


def render_aliases(aliases: list[Alias], every: list[Alias]) -> str:
    """crash's listing: ORIGIN (as wide as the widest origin), ALIAS, COMMAND."""
    width = max([_MIN_ORIGIN, *(len(a.origin) for a in every)])
    lines = [f"{'ORIGIN':<{width}}  ALIAS    COMMAND"]
    for alias in aliases:
        command = "".join(f"{word} " for word in alias.command)
        lines.append(f"{alias.origin:<{width}}  {alias.alias:<7}  {command}")
    return "\n".join(lines)
