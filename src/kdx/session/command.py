"""What a crash-style command is: a name, an option parser and a function on a session.

Commands live one family per module in ``kdx.commands.crash``; each module exposes
``COMMANDS``, a list of ``CrashCommand``. The session finds them by walking that package,
so adding a command never means editing a shared list.
"""

from __future__ import annotations

import argparse
import importlib
import pkgutil
from dataclasses import dataclass
from typing import TYPE_CHECKING, Callable, NoReturn

from kdx.errors import KdxError

if TYPE_CHECKING:
    from kdx.session.session import Session


class CommandError(KdxError):
    """A command failed; the session prints one line and goes on."""


class HelpShown(Exception):
    """``-h`` was given: the parser printed its help, the command must not run."""


class CommandParser(argparse.ArgumentParser):
    """An option parser that reports mistakes as CommandError instead of exiting, so a
    typo in the interactive session costs one line, not the session."""

    def error(self, message: str) -> NoReturn:
        raise CommandError(f"{self.prog}: {message}")

    def exit(self, status: int = 0, message: str | None = None) -> NoReturn:
        if message:
            raise CommandError(message.strip())
        raise HelpShown()


def make_parser(name: str, description: str) -> CommandParser:
    """A parser for one command, named as the user typed it."""
    return CommandParser(prog=name, description=description, add_help=True)


@dataclass(frozen=True)
class CrashCommand:
    """One crash command: ``run(session, args)`` writes through ``session.emit``."""

    name: str
    summary: str
    parser: Callable[[], CommandParser]
    run: Callable[[Session, argparse.Namespace], None]
    aliases: tuple[str, ...] = ()


def load_commands() -> dict[str, CrashCommand]:
    """Every command (and alias) found in the ``kdx.commands.crash`` package."""
    import kdx.commands.crash as package

    table: dict[str, CrashCommand] = {}
    for info in sorted(pkgutil.iter_modules(package.__path__), key=lambda i: i.name):
        module = importlib.import_module(f"{package.__name__}.{info.name}")
        for command in getattr(module, "COMMANDS", []):
            for name in (command.name, *command.aliases):
                table[name] = command
    return table
