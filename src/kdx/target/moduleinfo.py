"""Debug info for the kernel's loaded modules, whatever describes the kernel itself.

A module's own ``.ko`` (with DWARF) gives its functions source lines and its types;
without one, its functions are still named from the module's symbol table in memory.
Both providers, the vmlinux one and the one reading the dump itself, load modules this
way, so a module's frames look the same whichever describes the kernel.

Example::

    >>> missing, warnings = load_module_debug_info(prog, "6.1.0-57-cloud-amd64",
    ...                                            [Path("hello_crash.ko")])
    >>> missing
    ['dummy', 'loop', ...]
"""

from __future__ import annotations

import contextlib
from pathlib import Path
from typing import Sequence

import drgn

from kdx.target.debuginfo import (
    debug_roots,
    index_by_name,
    module_debug_files,
    module_search_dirs,
)

__all__ = ["add_module_kallsyms", "cover_init_sections", "load_module_debug_info"]


def load_module_debug_info(prog: drgn.Program, release: str, module_paths: Sequence[Path],
                           debug_dirs: Sequence[Path] = (), near: Path | None = None,
                           ) -> tuple[list[str], list[str]]:
    """Load the ``.ko`` files named, found beside the dump (``near``) or in the debug
    directories; return (modules still without debug info, warnings)."""
    warnings: list[str] = []
    named = index_by_name(module_debug_files(module_paths))
    prog.debug_info_options.directories = tuple(
        str(r / "usr/lib/debug") for r in debug_roots(release, debug_dirs)
    ) + ("/usr/lib/debug",)
    modules = _loaded_modules(prog, warnings)
    cover_init_sections(prog, modules)
    for mod in modules:
        path = named.get(mod.name)
        if path is not None and mod.wants_debug_file():
            mod.try_file(str(path))
            if mod.wants_debug_file():
                warnings.append(
                    f"{path} does not match the loaded module {mod.name} (build IDs differ)")
    beside = index_by_name(module_debug_files(module_search_dirs(near)))
    for mod in modules:
        if mod.wants_debug_file() and mod.name in beside:
            mod.try_file(str(beside[mod.name]))
    wanting = [m for m in modules if m.wants_debug_file()]
    if wanting:
        # drgn's standard finder: /usr/lib/debug and the debug directories, by name
        # and build ID, for these modules only (never the kernel's vmlinux here: a dump
        # opened without it must not pick it up from a debug directory).
        # A module still missing is reported below, by name.
        with contextlib.suppress(drgn.MissingDebugInfoError):
            prog.load_module_debug_info(*wanting)
    missing = sorted(m.name for m in modules if m.wants_debug_file())
    if missing:
        add_module_kallsyms(prog)
    return missing, warnings


def _loaded_modules(prog: drgn.Program, warnings: list[str]) -> list[drgn.Module]:
    """drgn's loaded modules, each once: a module list that loops (a corrupt dump) makes
    drgn repeat them, so the walk stops where a module comes round again."""
    seen: set[str] = set()
    out: list[drgn.Module] = []
    try:
        for mod, _new in prog.loaded_modules():
            if mod.name == "kernel":
                continue
            if mod.name in seen or len(out) >= 1 << 16:
                warnings.append(f"the module list loops (module {mod.name!r} comes round "
                                f"again after {len(out)} modules): the rest is not read")
                break
            seen.add(mod.name)
            out.append(mod)
    except (drgn.FaultError, drgn.BadDataError, ValueError, LookupError) as err:
        warnings.append(f"the module list is damaged after {len(out)} modules: {err}")
    return out


def add_module_kallsyms(prog: drgn.Program) -> None:
    """Name functions of modules without debug info from their symbol tables in memory,
    so stacks and verdicts say ``hello_init+0x11`` rather than a bare address.

    The tables are read when drgn first asks (an address or name no other finder
    knows), not here: many sessions never ask, and reading them costs start-up time."""
    if "kdx-module-kallsyms" not in prog.registered_symbol_finders():
        prog.register_symbol_finder("kdx-module-kallsyms", _ModuleKallsyms(),
                                    enable_index=-1)


class _ModuleKallsyms:
    """drgn's symbol finder over the modules' kallsyms, built on the first question."""

    def __init__(self) -> None:
        self._index: drgn.SymbolIndex | None = None

    def __call__(self, prog: drgn.Program, name: str | None, address: int | None,
                 one: bool) -> Sequence[drgn.Symbol]:
        if self._index is None:
            self._index = drgn.SymbolIndex(_module_symbols(prog))
        return self._index(prog, name, address, one)


def _module_symbols(prog: drgn.Program) -> list[drgn.Symbol]:
    """Every loaded module's kallsyms symbols; a module (or the module list) that cannot
    be read gives those read so far."""
    from drgn.helpers.linux.kallsyms import module_kallsyms

    from kdx.model.bounded import modules as for_each_module

    symbols: list[drgn.Symbol] = []
    try:
        for module in for_each_module(prog):
            with contextlib.suppress(LookupError, ValueError, drgn.FaultError,
                                     drgn.BadDataError, UnicodeDecodeError, OverflowError,
                                     IndexError):
                symbols.extend(module_kallsyms(module))
    except (LookupError, ValueError, drgn.FaultError, drgn.BadDataError):
        pass  # a damaged module list: the modules read so far are named
    return symbols


def cover_init_sections(prog: drgn.Program, modules: list[drgn.Module]) -> None:
    """Add the init sections of modules still initialising to their address ranges.

    drgn maps a module by its core sections only, so a crash in a module's init function
    (the classic case) left the faulting address unowned: no symbol, no source line and a
    stack that ends there. Until init finishes, the kernel keeps the init sections
    mapped, so they belong to the module and kdx says so.
    """
    for mod in modules:
        try:
            struct = mod.object
            if struct.state.value_() != prog.constant("MODULE_STATE_COMING").value_():
                continue
            extra = _init_range(prog, struct)
        except (LookupError, AttributeError, drgn.FaultError, ValueError):
            continue
        ranges = list(mod.address_ranges)
        # Newer drgn and kernels (mem[] layout) already map them: leave those alone.
        if extra and extra[1] > extra[0] and not any(
                start < extra[1] and extra[0] < end for start, end in ranges):
            mod.address_ranges = [*ranges, extra]


def _init_range(prog: drgn.Program, struct: drgn.Object) -> tuple[int, int] | None:
    """Start and end of a module's init sections (6.4+ ``mem[]``, older ``init_layout``)."""
    try:
        layout = struct.init_layout
        base = int(layout.base)
        return base, base + int(layout.size)
    except AttributeError:
        pass
    first = prog.constant("MOD_INIT_TEXT").value_()
    last = prog.constant("MOD_INIT_RODATA").value_()
    spans = [(int(struct.mem[i].base), int(struct.mem[i].size)) for i in range(first, last + 1)]
    spans = [(b, b + n) for b, n in spans if b and n]
    return (min(b for b, _ in spans), max(e for _, e in spans)) if spans else None
