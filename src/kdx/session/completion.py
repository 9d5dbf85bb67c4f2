"""Tab completion for the interactive session, through readline.

What a crash user wants completed, found from the session's own tables: command words and
aliases first on the line, a command's options after ``-``, ``struct.member`` after a
type name and a dot, PIDs and task addresses after ``bt``, ``ps``, ``set`` (and
``task``, ``foreach``), file names after ``>`` and ``-i``, else symbols and struct,
union and typedef names. The tables are built on first use and kept for the session.
"""

from __future__ import annotations

import bisect
import glob
import os
from typing import Any

import drgn

from kdx.session.session import Session

__all__ = ["Completer", "install"]

#: Commands whose arguments are tasks.
_TASK_COMMANDS = {"bt", "ps", "set", "task", "foreach", "files", "vm", "sig", "net"}
#: Words after which a file name comes.
_FILE_WORDS = {">", ">>", "-i", "extend", "py", "python"}
#: How many types the type-name table may visit.
_TYPE_LIMIT = 40000


class Completer:
    """``complete(text, state)`` for readline, with ``candidates`` for tests."""

    def __init__(self, session: Session) -> None:
        self.session = session
        self._symbols: list[str] | None = None
        self._types: list[str] | None = None
        self._matches: list[str] = []

    def complete(self, text: str, state: int) -> str | None:
        if state == 0:
            import readline

            line = readline.get_line_buffer()
            self._matches = self.candidates(line[:readline.get_begidx()], text)
        return self._matches[state] if state < len(self._matches) else None

    def candidates(self, before: str, text: str) -> list[str]:
        """What ``text`` may become, after the line's ``before`` part."""
        try:
            return sorted(set(self._candidates(before.split(), before, text)))
        except Exception:  # noqa: BLE001 (a completion must never break the prompt)
            return []

    def _candidates(self, words: list[str], before: str, text: str) -> list[str]:
        if "." in text and not text.startswith((".", "/", "~")):
            return self._members(text)
        if not words or before.rstrip().endswith("|"):
            names = [*self.session.commands._index, *(a.alias for a in
                                                      self.session.aliases.entries)]
            return [n + " " for n in names if n.startswith(text)]
        if words[-1] in _FILE_WORDS or before.rstrip().endswith(">"):
            return _files(text)
        command = self.session.aliases.resolve(words)[0]
        if text.startswith("-"):
            return _options(self.session, command, text)
        if command in _TASK_COMMANDS and (not text or text[0].isdigit()):
            return self._tasks(text)
        return [*_prefixed(self._symbol_names(), text), *_prefixed(self._type_names(), text)]

    def _members(self, text: str) -> list[str]:
        path, _, partial = text.rpartition(".")
        head, *rest = path.split(".")
        kind = self.session.type_kind(head)
        if kind is None:
            return []
        type_ = self.session.prog.type(head if kind == "typedef" else f"{kind} {head}")
        for member in rest:
            type_ = _strip(type_).member(member).type
        names = _member_names(_strip(type_))
        return [f"{path}.{n}" for n in names if n.startswith(partial)]

    def _tasks(self, text: str) -> list[str]:
        from drgn.helpers.linux.pid import for_each_task

        tasks = self.session.cached("completion-tasks", lambda: [
            (t.pid.value_(), t.value_()) for t in for_each_task(self.session.prog)])
        words = [str(pid) for pid, _ in tasks] + [f"{address:x}" for _, address in tasks]
        return [w for w in words if w.startswith(text)]

    def _symbol_names(self) -> list[str]:
        if self._symbols is None:
            self._symbols = sorted({s.name for s in self.session.prog.symbols()})
        return self._symbols

    def _type_names(self) -> list[str]:
        if self._types is None:
            self._types = sorted(_reachable_type_names(self.session.prog))
        return self._types


def _prefixed(names: list[str], text: str) -> list[str]:
    """The sorted ``names`` starting with ``text`` (a bisection, not a scan)."""
    start = bisect.bisect_left(names, text)
    end = bisect.bisect_left(names, text + "\U0010ffff")
    return names[start:end] if text else names[start:min(end, start + 5000)]


def _files(text: str) -> list[str]:
    found = glob.glob(glob.escape(os.path.expanduser(text)) + "*")
    return [f + "/" if os.path.isdir(f) else f for f in found]


def _options(session: Session, command: str, text: str) -> list[str]:
    found = session.commands.get(command)
    if found is None:
        return []
    parser = found.parser()
    return [o for o in parser._option_string_actions if o.startswith(text)]


def _strip(type_: drgn.Type) -> drgn.Type:
    """Through typedefs, pointers and arrays to the type that has members."""
    while type_.kind in (drgn.TypeKind.TYPEDEF, drgn.TypeKind.POINTER, drgn.TypeKind.ARRAY):
        type_ = type_.type
    return type_


def _member_names(type_: drgn.Type) -> list[str]:
    """Members' names, those of unnamed inner structs and unions included."""
    if type_.kind not in (drgn.TypeKind.STRUCT, drgn.TypeKind.UNION):
        return []
    names: list[str] = []
    for member in type_.members:
        if member.name:
            names.append(member.name)
        else:
            names += _member_names(_strip(member.type))
    return names


def _reachable_type_names(prog: drgn.Program) -> set[str]:
    """struct/union tags and typedef names reachable from a few central kernel objects
    (drgn cannot list every type; these reach most of the ones people name)."""
    seen: set[int] = set()
    names: set[str] = set()
    todo: list[Any] = []
    for symbol in ("init_task", "init_mm", "init_net", "super_blocks", "runqueues",
                   "modules", "init_pid_ns", "jiffies", "contig_page_data", "vmap_area_list"):
        try:
            todo.append(prog[symbol].type_)
        except (KeyError, LookupError):
            continue
    while todo and len(seen) < _TYPE_LIMIT:
        type_ = todo.pop()
        if id(type_) in seen:
            continue
        seen.add(id(type_))
        kind = type_.kind
        if kind == drgn.TypeKind.TYPEDEF:
            names.add(type_.name)
        if kind in (drgn.TypeKind.STRUCT, drgn.TypeKind.UNION):
            if type_.tag:
                names.add(type_.tag)
            if type_.is_complete():
                todo += [m.type for m in type_.members]
        elif kind in (drgn.TypeKind.TYPEDEF, drgn.TypeKind.POINTER, drgn.TypeKind.ARRAY):
            todo.append(type_.type)
        elif kind == drgn.TypeKind.FUNCTION:
            todo += [type_.type, *(p.type for p in type_.parameters)]
    return names


def install(session: Session) -> None:
    """Make Tab complete in ``input()`` with this session's tables."""
    import readline

    completer = Completer(session)
    readline.set_completer(completer.complete)
    readline.set_completer_delims(" \t\n|")
    readline.parse_and_bind("tab: complete")
