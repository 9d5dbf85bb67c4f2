"""The debug-info store (``kdx serve --debuginfo DIR``): vmlinux files found by build ID.

A dump is analysed with its kernel's vmlinux when the store has it, else from what the dump
itself carries (kallsyms, BTF, ORC) and says so; when the vmlinux arrives later, the dumps
of that build can be analysed again. The store accepts the layouts people already have:

- ``DIR/<build-id>/vmlinux`` (module ``.ko`` files, any names, in
  ``DIR/<build-id>/modules/``);
- ``DIR/.build-id/ab/cdef....debug`` (the layout of ``/usr/lib/debug``);
- ``DIR/<release>/usr/lib/debug/...`` or ``DIR/usr/lib/debug/...`` (unpacked ``-dbg``
  packages), searched by ``kdx.target.debuginfo`` as it does for ``$KDX_DEBUG_DIRS``.

debuginfod is asked too when ``DEBUGINFOD_URLS`` is set (``kdx.target.debuginfo``).
Every candidate is checked against the dump's build ID before it is used.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

from kdx.errors import KdxError
from kdx.target.debuginfo import (
    VmlinuxNotFound,
    check_vmlinux,
    debug_roots,
    debuginfod_vmlinux,
    vmlinux_candidates,
)

__all__ = ["DebugFiles", "DebugInfoStore", "vmlinux_at_hand"]

_BUILD_ID = re.compile(r"^[0-9a-f]{8,64}$")


@dataclass(frozen=True)
class DebugFiles:
    """The debug info found for one kernel build."""

    vmlinux: Path
    modules: list[Path] = field(default_factory=list)


class DebugInfoStore:
    """Lookups in one build-ID keyed directory (which may not exist yet)."""

    def __init__(self, root: Path) -> None:
        self.root = root

    def _by_build_id(self, build_id: str) -> list[Path]:
        if not _BUILD_ID.match(build_id):
            return []
        return [self.root / build_id / "vmlinux",
                self.root / ".build-id" / build_id[:2] / f"{build_id[2:]}.debug"]

    def find(self, release: str | None, build_id: str | None, *,
             debuginfod: bool = True) -> DebugFiles | None:
        """The checked vmlinux (and module files) for this build, or None."""
        if not release:
            return None
        for cand in self._by_build_id(build_id or ""):
            if cand.is_file():
                try:
                    check_vmlinux(cand, release, build_id)
                except KdxError:
                    continue
                mods = cand.parent / "modules"
                return DebugFiles(cand, [mods] if mods.is_dir() else [])
        try:
            vmlinux = _find_in_trees(self.root, release, build_id, debuginfod)
        except VmlinuxNotFound:
            return None
        return DebugFiles(vmlinux, [])

    def has(self, release: str | None, build_id: str | None) -> bool:
        """Whether the store has this build's vmlinux (no network lookups)."""
        return self.find(release, build_id, debuginfod=False) is not None


def vmlinux_at_hand(store: DebugInfoStore | None, release: str | None,
                    build_id: str | None) -> bool:
    """Whether an analysis of this build would find its vmlinux: in the store, or where
    kdx looks anyway (the distro's debug paths, ``$KDX_DEBUG_DIRS``); debuginfod is not
    asked (this answers a page, not an analysis)."""
    if store is not None and store.has(release, build_id):
        return True
    if not release:
        return False
    for cand in vmlinux_candidates(release, build_id, None):
        if cand.is_file():
            try:
                check_vmlinux(cand, release, build_id)
            except KdxError:
                continue
            return True
    return False


def _find_in_trees(root: Path, release: str, build_id: str | None,
                   debuginfod: bool) -> Path:
    """Unpacked debug packages under ``root``, then debuginfod (as kdx.target finds them)."""
    for base in debug_roots(release, [root]):
        if root != base and root not in base.parents:
            continue  # a root from $KDX_DEBUG_DIRS: not the store's
        for cand in (base / "usr/lib/debug/boot" / f"vmlinux-{release}",
                     base / "usr/lib/debug/lib/modules" / release / "vmlinux"):
            if cand.is_file():
                try:
                    check_vmlinux(cand, release, build_id)
                except KdxError:
                    continue
                return cand
    found = debuginfod_vmlinux(build_id) if debuginfod else None
    if found is None:
        raise VmlinuxNotFound(f"no vmlinux for {release} in {root}")
    return found
