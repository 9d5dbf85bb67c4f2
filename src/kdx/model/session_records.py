"""The session's own answers (aliases, settings, help, extensions): records of plain
values, in a module of their own so that starting a session imports no model.

:mod:`kdx.model.answers` re-exports them with every other answer record.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["Alias", "CommandSummary", "ExtensionInfo", "HelpText", "SessionSetting"]


@dataclass(frozen=True)
class Alias:
    """One alias of the session: ``hex`` is ``set radix 16``; ``origin`` says where it
    comes from (``builtin``, ``runtime``, or the rc file that set it)."""

    origin: str
    alias: str
    command: list[str]


@dataclass(frozen=True)
class ExtensionInfo:
    """A loaded extension (its file or entry-point name) and the commands it added."""

    name: str
    commands: list[str]


@dataclass(frozen=True)
class SessionSetting:
    """One ``set`` variable of the session and its value as ``set -v`` shows it."""

    name: str
    value: str


@dataclass(frozen=True)
class HelpText:
    """``help COMMAND``: the command's usage text."""

    command: str
    text: str


@dataclass(frozen=True)
class CommandSummary:
    """One line of bare ``help``: a command word and what it does."""

    name: str
    summary: str
