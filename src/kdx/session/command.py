"""What a crash-style command is: a name, an option parser and a function on a session.

Commands live one family per module in ``kdx.commands.crash``; each declares its commands
with :func:`crash_command` on the function that runs it (name, summary, option parser,
aliases), so a command module holds its commands and nothing another command needs (that
lives in ``kdx.commands.crash.arguments``). The session imports a module the first time
one of its words is typed (``kdx.commands.crash.INDEX``), so adding a command never means
editing a shared list beyond that index, which a test checks.
"""

from __future__ import annotations

import argparse
import importlib
import pkgutil
from dataclasses import dataclass
from types import ModuleType
from typing import TYPE_CHECKING, Callable, NoReturn, TypeVar

from kdx.errors import KdxError

if TYPE_CHECKING:
    import drgn

    from kdx.session.session import Session


class CommandError(KdxError):
    """A command failed; the session prints one line and goes on."""


class Reported(Exception):
    """A command ran another that failed and printed why: the session prints nothing
    more and counts the command as failed."""


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

    def print_help(self, file=None) -> NoReturn:  # noqa: ANN001 (argparse's signature)
        """``-h``: hand the text to the session, which prints it where the command's
        output goes (a pipe, a file, JSON), not straight to the terminal."""
        raise HelpShown(self.format_help())


def make_parser(name: str, description: str) -> CommandParser:
    """A parser for one command, named as the user typed it."""
    return CommandParser(prog=name, description=description, add_help=True)


class WordsParser(CommandParser):
    """The parser of a command that takes the rest of the line as words (``*``,
    ``repeat``, ``gdb``, ``alias``): options belong to the command it runs, so only a
    lone ``-h`` is its own; ``args.words`` holds them all."""

    def parse_args(self, args=None, namespace=None):  # noqa: ANN001, ANN201 (argparse's)
        words = list(args or [])
        if words in (["-h"], ["--help"]):
            self.print_help()
        return argparse.Namespace(words=words)


def make_words_parser(name: str, description: str, usage: str) -> WordsParser:
    """A :class:`WordsParser` whose help shows ``usage``."""
    return WordsParser(prog=name, description=description, usage=f"{name} {usage}",
                       add_help=True)


@dataclass(frozen=True)
class CrashCommand:
    """One crash command: ``run(session, args)`` writes through ``session.emit``.

    ``for_tasks(session, tasks, args)``, when a command has it, runs the command on tasks
    chosen elsewhere (``foreach``'s verbs): another command reaches it through the
    session's command table, never by importing the command's module.
    """

    name: str
    summary: str
    parser: Callable[[], CommandParser]
    run: Callable[[Session, argparse.Namespace], None]
    aliases: tuple[str, ...] = ()
    for_tasks: Callable[[Session, list[drgn.Object], argparse.Namespace], None] | None = None
    #: False for the commands that work from symbols and raw memory alone, on a kernel
    #: without BTF opened without its vmlinux
    needs_types: bool = True


#: The run function of a command, as :func:`crash_command` receives and returns it.
Run = TypeVar("Run", bound=Callable[..., None])

#: Commands declared with :func:`crash_command`, by the module that declares them.
_DECLARED: dict[str, list[CrashCommand]] = {}


def crash_command(name: str, summary: str, *, parser: Callable[[], CommandParser],
                  aliases: tuple[str, ...] = (),
                  for_tasks: Callable[[Session, list[drgn.Object], argparse.Namespace], None]
                  | None = None, needs_types: bool = True) -> Callable[[Run], Run]:
    """Declare the decorated ``run(session, args)`` as the crash command ``name``.

    ``summary`` is its line in ``help``, ``parser`` builds its option parser, ``aliases``
    are other words for it, and ``for_tasks`` (see CrashCommand) lets ``foreach`` run it
    on tasks it chose; ``needs_types=False`` marks a command that works without types
    (symbols and raw memory). The function itself is returned unchanged.
    """
    def declare(run: Run) -> Run:
        command = CrashCommand(name, summary, parser, run, tuple(aliases), for_tasks,
                               needs_types)
        _DECLARED.setdefault(run.__module__, []).append(command)
        return run
    return declare


def module_commands(module: ModuleType) -> list[CrashCommand]:
    """The commands ``module`` declares: with :func:`crash_command`, or listed in a
    ``COMMANDS`` list (the older form)."""
    return [*getattr(module, "COMMANDS", []), *_DECLARED.get(module.__name__, [])]


class CommandTable:
    """The session's commands by name, importing each family's module on first use."""

    def __init__(self) -> None:
        from kdx.commands.crash import INDEX

        self._index = INDEX
        self._loaded: dict[str, CrashCommand] = {}
        self._added: dict[str, CrashCommand] = {}  # extensions' commands

    def _load(self, module_name: str) -> None:
        module = importlib.import_module(f"kdx.commands.crash.{module_name}")
        for command in module_commands(module):
            for name in (command.name, *command.aliases):
                self._loaded[name] = command

    def get(self, name: str) -> CrashCommand | None:
        if name not in self._loaded and name in self._index:
            self._load(self._index[name])
        return self._loaded.get(name) or self._added.get(name)

    def __contains__(self, name: object) -> bool:
        return name in self._index or name in self._added

    def add(self, command: CrashCommand) -> None:
        """Register an extension's command (``extend``); a built-in name is refused."""
        for name in (command.name, *command.aliases):
            if name in self._index:
                raise CommandError(f"{name}: a kdx command has that name")
        for name in (command.name, *command.aliases):
            self._added[name] = command

    def remove(self, command: CrashCommand) -> None:
        for name in (command.name, *command.aliases):
            self._added.pop(name, None)

    def __getitem__(self, name: str) -> CrashCommand:
        command = self.get(name)
        if command is None:
            raise KeyError(name)
        return command

    def values(self) -> list[CrashCommand]:
        for module_name in set(self._index.values()):
            self._load(module_name)
        return [*self._loaded.values(), *self._added.values()]


def load_commands() -> CommandTable:
    return CommandTable()


def scan_commands() -> dict[str, str]:
    """Command word → module, found by importing every module (what INDEX must say)."""
    import kdx.commands.crash as package

    found: dict[str, str] = {}
    for info in pkgutil.iter_modules(package.__path__):
        module = importlib.import_module(f"{package.__name__}.{info.name}")
        for command in module_commands(module):
            for name in (command.name, *command.aliases):
                found[name] = info.name
    return found
