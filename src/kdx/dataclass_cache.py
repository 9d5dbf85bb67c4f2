"""Compiled dataclass methods kept between runs, so that the ``kdx`` command starts sooner.

When a dataclass is defined, :mod:`dataclasses` writes its ``__init__``, ``__repr__``,
``__eq__``, ``__hash__`` (and, frozen, ``__setattr__``/``__delattr__``) as Python source
and compiles that source: about 0.4 ms a class. kdx's model is made of records, and a
short session (``sys``, ``ps``, ``bt -a``, ``log``) defines some 80 of them: compiling
their methods took a tenth of the session. The source is the same from run to run, so the
``kdx`` command keeps its compiled code in the user's cache, keyed by the very text
:mod:`dataclasses` generated and by the Python version (code objects are version
specific). A class defined from the cache gets code compiled from the same text, hence
behaves the same; a missing, stale, damaged or unwritable cache only means compiling
again. Only the command line installs it; importing kdx as a library changes nothing.

Example::

    >>> install()          # before the modules that define records are imported
"""

from __future__ import annotations

import atexit
import builtins
import contextlib
import dataclasses
import marshal
import os
import sys
from pathlib import Path
from types import CodeType
from typing import Any

from kdx.cachefile import write_whole

__all__ = ["cache_file", "install"]

#: Past this many entries a module's file keeps only what the last run used, so that
#: the classes of older kdx versions do not pile up.
_MAX_ENTRIES = 500


def cache_file() -> Path:
    """The directory of stored code: ``$XDG_CACHE_HOME/kdx/dataclasses-<python>``, one
    file per module that defines dataclasses (a run reads only its modules' files)."""
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "kdx" / f"dataclasses-{sys.hexversion:x}"


class _CompiledSources:
    """Stands in for ``exec`` inside :mod:`dataclasses`: source it has compiled before
    runs from the stored code object, anything else is compiled (and remembered)."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.stored: dict[str, dict[str, CodeType]] = {}  # by module, read when first used
        self.used: dict[str, dict[str, CodeType]] = {}
        self.fresh: set[str] = set()  # modules with sources this run had to compile
        self.compiled = 0

    def exec(self, source: Any, globals: Any = None, locals: Any = None,  # noqa: A002
             /, **kwargs: Any) -> None:
        if not isinstance(source, str) or kwargs:
            builtins.exec(source, globals, locals, **kwargs)
            return
        module = _module_name(globals)
        if module not in self.stored:
            self.stored[module] = _load(self.folder / f"{module}.marshal")
        code = self.stored[module].get(source)
        if code is None:
            code = compile(source, "<string>", "exec")
            self.compiled += 1
            self.fresh.add(module)
        self.used.setdefault(module, {})[source] = code
        builtins.exec(code, globals, locals)

    def save(self) -> None:
        """Store the code of each module that had to compile some, each file written
        whole or not at all; a cache that cannot be written is skipped silently."""
        with contextlib.suppress(OSError):  # the single file earlier versions kept
            self.folder.with_suffix(".marshal").unlink()
        for module in sorted(self.fresh):
            kept = {**self.stored.get(module, {}), **self.used[module]}
            _store(self.folder / f"{module}.marshal",
                   kept if len(kept) <= _MAX_ENTRIES else self.used[module])


def _module_name(globals: Any) -> str:  # noqa: A002
    """The module a class is defined in (dataclasses runs its methods' source in that
    module's namespace), as a safe file name."""
    name = globals.get("__name__") if isinstance(globals, dict) else None
    if not isinstance(name, str) or not name.replace(".", "").replace("_", "").isalnum():
        return "_"
    return name


def _store(path: Path, entries: dict[str, CodeType]) -> None:
    write_whole(path, [marshal.dumps(entries)])


def _load(path: Path) -> dict[str, CodeType]:
    try:
        stored = marshal.loads(path.read_bytes())
    except (OSError, EOFError, ValueError, TypeError):
        return {}
    if not isinstance(stored, dict):
        return {}
    return {k: v for k, v in stored.items()
            if isinstance(k, str) and isinstance(v, CodeType)}


def install() -> _CompiledSources | None:
    """Make :mod:`dataclasses` use the stored code from now on and store what it
    compiles when the process ends; returns the cache (None if already installed)."""
    if isinstance(getattr(getattr(dataclasses, "exec", None), "__self__", None),
                  _CompiledSources):
        return None
    cache = _CompiledSources(cache_file())
    dataclasses.exec = cache.exec  # type: ignore[attr-defined]
    atexit.register(cache.save)
    return cache
