"""A crash-style session on one target: run command lines, with pipes and redirection.

The session owns what commands share (the opened target, the current task set by ``set``,
JSON mode, a cache for records that are costly to build) and the plumbing a crash user
expects: ``ps | grep sleep`` hands the output to the shell, ``log > dmesg.txt`` writes it
to a file, and a failing command prints one line while the session goes on.
"""

from __future__ import annotations

import io
import os
import shlex
import subprocess
import sys
from typing import Any, Callable, TextIO

import drgn

from kdx.errors import KdxError
from kdx.render.json_out import to_json
from kdx.session.aliases import AliasTable
from kdx.session.command import (
    CommandError,
    CommandTable,
    HelpShown,
    Reported,
    load_commands,
)
from kdx.session.extensions import Extensions
from kdx.session.settings import Settings
from kdx.target.open import Target
from kdx.textsafe import clean

#: Words crash hands to the shell without a ``!`` (main.c's list).
EXTERNAL_COMMANDS = frozenset({"vi", "pwd", "grep", "cat", "more", "less", "echo", "ls",
                               "clear"})


class Session:
    def __init__(self, target: Target, *, json: bool = False, out: TextIO | None = None,
                 err: TextIO | None = None) -> None:
        self.target = target
        self.prog = target.prog
        self.json = json
        self.out: TextIO = out or sys.stdout
        self.err: TextIO = err or sys.stderr
        self.commands: CommandTable = load_commands()
        self._current_task: drgn.Object | None = None
        self._cache: dict[str, Any] = {}
        self.aliases = AliasTable.builtin()
        self.extensions = Extensions()
        #: what ``alias`` records as a new alias's origin (an rc file while it runs)
        self.alias_origin = "runtime"
        self.settings = Settings(pager=os.environ.get("PAGER") or "less")

    # -- state shared by commands -------------------------------------------------------

    @property
    def current_task(self) -> drgn.Object:
        """The task commands default to: the panic task until ``set`` changes it."""
        if self._current_task is None:
            from drgn.helpers.linux.panic import panic_task

            try:
                self._current_task = panic_task(self.prog)
            except (LookupError, ValueError, drgn.FaultError) as err:
                raise CommandError(f"no panic task in this dump: {err}") from err
        return self._current_task

    @current_task.setter
    def current_task(self, task: drgn.Object) -> None:
        self._current_task = task

    def cached(self, key: str, build: Callable[[], Any]) -> Any:
        """Build a record once per session (task lists, the log) and reuse it."""
        if key not in self._cache:
            self._cache[key] = build()
        return self._cache[key]

    # -- output ---------------------------------------------------------------------------

    def write(self, text: str) -> None:
        """Write command text; control sequences are stripped, whatever their source."""
        self.out.write("\n".join(clean(line) for line in text.split("\n")))

    def emit(self, kind: str, record: Any, text: str | Callable[[], str]) -> None:
        """Print ``record``: as versioned JSON in JSON mode, else as its crash-style text."""
        if self.json:
            self.out.write(to_json(kind, record) + "\n")
            return
        body = text() if callable(text) else text
        self.write(body if body.endswith("\n") or not body else body + "\n")

    def warn(self, message: str) -> None:
        self.err.write(f"kdx: warning: {clean(message)}\n")

    # -- running command lines ------------------------------------------------------------

    def execute(self, line: str) -> bool:
        """Run one command line; False when it failed (the error was printed)."""
        line = line.strip()
        if not line or line.startswith(("#", "//")):
            return True
        if line.startswith("!"):
            return self._shell(line[1:].strip() or os.environ.get("SHELL", "/bin/sh"))
        try:
            command_part, pipe_to = _split_pipe(line)
            command_part, redirect, mode = _split_redirect(command_part)
            words = shlex.split(command_part)
        except ValueError as err:
            self.err.write(f"kdx: error: cannot parse the command line: {err}\n")
            return False
        if not words:
            return True
        if pipe_to is None and redirect is None and not self._paging():
            return self._run(words)
        saved, buffer = self.out, io.StringIO()
        self.out = buffer
        try:
            ok = self._run(words)
        finally:
            self.out = saved
        return self._deliver(buffer.getvalue(), pipe_to, redirect, mode) and ok

    def run(self, words: list[str]) -> bool:
        """Run one command given as words (aliases resolved): what a command that runs
        another (``*``, ``repeat``, ``gdb``) calls; False when it failed (printed)."""
        return self._run(words)

    def _paging(self) -> bool:
        return self.settings.scroll and self.out is sys.stdout and self.out.isatty()

    def _run(self, words: list[str]) -> bool:
        words = self.aliases.resolve(words)
        if not words:
            return True
        if words[0] in EXTERNAL_COMMANDS and words[0] not in self.commands:
            return self._shell(shlex.join(words))
        words = self._shortcut(words)
        name, argv = words[0], words[1:]
        if name not in self.commands and "/" in name:  # gdb style: x/8xg ADDR
            name, fmt = name.split("/", 1)
            argv = ["/" + fmt, *argv]
        command = self.commands.get(name)
        if command is None and not self.extensions.entry_points_seen:
            self.extensions.load_entry_points(self.commands)  # an installed extension's?
            command = self.commands.get(name)
        if command is None:
            self.err.write(f"kdx: error: {clean(name)}: no such command (try 'help')\n")
            return False
        if command.needs_types and self.target.debug_source == "symbols":
            self.err.write(f"{name}: error: needs the kernel's types: this kernel has no BTF "
                           "and no vmlinux was given (log, sym, rd, dis, eval work)\n")
            return False
        parser = command.parser()
        try:
            args = parser.parse_args(argv)
            command.run(self, args)
            return True
        except HelpShown as shown:
            if shown.args:
                text = shown.args[0]
                from kdx.model.session_records import HelpText

                self.emit("help", HelpText(name, text), text)
            return True
        except Reported:
            return False
        except KdxError as err:
            self.err.write(f"{name}: error: {clean(str(err))}\n")
        except drgn.FaultError as err:
            self.err.write(f"{name}: error: memory not in the dump: {err}\n")
        except KeyboardInterrupt:
            self.err.write(f"{name}: interrupted\n")
        except BrokenPipeError:
            return True
        except Exception as err:  # one bad command must never end the session
            self.err.write(f"{name}: error: unexpected {type(err).__name__}: {clean(str(err))}\n")
        return False

    def _shortcut(self, words: list[str]) -> list[str]:
        """crash's shortcuts for data commands: ``*page ADDR`` is ``struct page ADDR``;
        a bare symbol is ``p SYMBOL``, a struct or union name (``task_struct.comm ADDR``)
        is ``struct``/``union``, a typedef or ``enum`` alone is ``whatis``."""
        name = words[0]
        if name in self.commands or "/" in name:
            return words
        if name.startswith("*") and len(name) > 1:
            words = [name[1:], *words[1:]]
            name = words[0]
        if name == "enum":
            return ["whatis", *words]
        if len(words) == 1 and self._is_symbol(name):
            return ["p", name]
        kind = self._type_kind(name.split(".", 1)[0])
        if kind == "typedef":  # crash: a typedef'd struct with an address is struct
            return ["whatis", name] if len(words) == 1 else ["struct", *words]
        return [kind, *words] if kind else words

    def type_kind(self, name: str) -> str | None:
        """"struct" or "union" for such a tag, "typedef" for another type name, or None."""
        return self._type_kind(name)

    def _is_symbol(self, name: str) -> bool:
        try:
            self.prog.object(name)
            return True
        except (LookupError, ValueError):
            return False

    def _type_kind(self, name: str) -> str | None:
        """"struct" or "union" for such a tag, "typedef" for another type name, or None."""
        for kind in ("struct", "union"):
            try:
                self.prog.type(f"{kind} {name}")
                return kind
            except (LookupError, SyntaxError, ValueError):
                continue
        try:
            self.prog.type(name)
        except (LookupError, SyntaxError, ValueError):
            return None
        return "typedef"

    def _shell(self, command: str) -> bool:
        """``!CMD`` and crash's shell words (``ls``, ``grep``...): run by the shell, on the
        terminal itself when output is not captured, so an interactive program works."""
        if self.out is sys.stdout:
            self.out.flush()
            subprocess.run(command, shell=True)
        else:
            proc = subprocess.run(command, shell=True, stdout=subprocess.PIPE, text=True)
            self.out.write(proc.stdout)
        return True

    def _deliver(self, text: str, pipe_to: str | None, redirect: str | None,
                 mode: str) -> bool:
        if redirect is not None:
            try:
                with open(redirect, mode, encoding="utf-8") as f:
                    f.write(text)
            except OSError as err:
                self.err.write(f"kdx: error: cannot write {redirect}: {err.strerror}\n")
                return False
            return True
        if pipe_to is None:  # set scroll on, on a terminal: the pager has the terminal
            self.out.flush()
            subprocess.run(self.settings.pager, shell=True, input=text, text=True)
            return True
        proc = subprocess.run(pipe_to, shell=True, input=text, text=True,
                              stdout=subprocess.PIPE)
        self.out.write(proc.stdout)
        return True


def _unquoted(line: str, char: str) -> int:
    """Index of the first ``char`` outside quotes, or -1."""
    quote = ""
    for i, c in enumerate(line):
        if quote:
            if c == quote:
                quote = ""
        elif c in "'\"":
            quote = c
        elif c == char and not (char == ">" and line[i - 1:i] == "-"):  # p a->b
            return i
    if quote:
        raise ValueError("unterminated quote")
    return -1


def _split_pipe(line: str) -> tuple[str, str | None]:
    i = _unquoted(line, "|")
    return (line, None) if i < 0 else (line[:i], line[i + 1:].strip())


def _split_redirect(part: str) -> tuple[str, str | None, str]:
    i = _unquoted(part, ">")
    if i < 0:
        return part, None, "w"
    mode, target = "w", part[i + 1:]
    if target.startswith(">"):
        mode, target = "a", target[1:]
    name = target.strip()
    if not name:
        raise ValueError("redirection without a file name")
    return part[:i], name, mode
