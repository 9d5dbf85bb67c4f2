"""A second program on the same dump, without the vmlinux's DWARF, for unwinding many stacks.

drgn resolves the DWARF scopes of every frame it unwinds (to expand inlined calls), which
with a distribution vmlinux costs about 2 ms a task: 10 s for ``foreach bt`` on a machine
with 5,000 tasks. The registers of each frame come from the kernel's ORC tables either
way, and the same dump opened with its own debug info (BTF for types, the in-memory ORC
tables, the modules' ``.ko`` files) unwinds a task in about 0.1 ms. So for many tasks the
unwinder takes each frame's registers from this companion and each return address's
inlined calls and source line from the vmlinux (once per address: most tasks sleep in
the same few places); see ``kdx.model.stack.unwind``.

The companion is opened on first use (about 0.3 s) and kept with the program. A dump
whose kernel has no BTF, or that the companion cannot open, has none: every stack is then
unwound with the vmlinux alone, as before.

Example::

    >>> target = open_dump(Path("vmcore"), Path("vmlinux"))
    >>> companion = unwinding_companion(target)
    >>> companion.stack_trace(1)[0].name
    '__schedule'
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import drgn

from kdx.errors import KdxError

if TYPE_CHECKING:
    from kdx.target.open import Target

__all__ = ["unwinding_companion"]

_CACHE_KEY = "kdx-unwinding-companion"


def unwinding_companion(target: Target) -> drgn.Program | None:
    """The companion program of ``target`` (a dump opened with a vmlinux), or None when
    there is no point (no vmlinux, a live kernel) or it cannot be opened (no BTF)."""
    cache = target.prog.cache
    if _CACHE_KEY not in cache:
        cache[_CACHE_KEY] = _open(target)
    return cache[_CACHE_KEY]


def _open(target: Target) -> drgn.Program | None:
    from kdx.target.novmlinux.provider import DumpInfoProvider
    from kdx.target.open import open_core

    if target.path is None or target.debug_source != "dwarf":
        return None
    try:
        companion = open_core(target.path)
        DumpInfoProvider(target.module_paths, None, target.debug_dirs).load(companion)
    except (KdxError, drgn.FaultError, drgn.MissingDebugInfoError, LookupError,
            ValueError, OSError):
        return None
    return companion.prog if companion.debug_source == "dump" else None
