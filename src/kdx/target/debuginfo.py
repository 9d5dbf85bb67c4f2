"""Find the debug info that matches a dump: the vmlinux and the modules' ``.ko`` files.

A vmlinux is accepted only when its build ID (or, lacking one, its release) matches the
dump's VMCOREINFO, because a wrong vmlinux gives plausible nonsense rather than an error.

Besides the system's standard places, the search looks in extra *debug directories*:
the ``directories`` argument, then ``$KDX_DEBUG_DIRS`` (paths separated by ``:``). Each
one is either a root that holds ``usr/lib/debug`` (an unpacked ``-dbg`` package) or a
directory of such roots named by kernel release (``DIR/6.1.0-57-cloud-amd64/usr/lib/debug``,
the layout of ``kdx lab``'s kernel cache). Whoever knows where debug info lives (the lab,
a support bundle, a CI job) names the directory; this module knows none of them.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path
from typing import Iterable, Iterator, Sequence

from kdx.errors import KdxError
from kdx.target.elfinfo import ElfInfo, read_elf_info
from kdx.target.formats import check_readable

#: The environment variable naming extra debug directories, ``:``-separated.
DEBUG_DIRS_ENV = "KDX_DEBUG_DIRS"


def extra_debug_dirs(directories: Sequence[Path] = ()) -> list[Path]:
    """The debug directories to search besides the system's: ``directories`` first, then
    those of ``$KDX_DEBUG_DIRS``, so a caller's choice wins over the environment's."""
    from_env = [Path(p) for p in os.environ.get(DEBUG_DIRS_ENV, "").split(os.pathsep) if p]
    return [*directories, *from_env]


def debug_roots(release: str, directories: Sequence[Path] = ()) -> list[Path]:
    """The existing roots holding ``usr/lib/debug`` for ``release`` among the extra debug
    directories: each directory itself, or its subdirectory named ``release``."""
    roots: list[Path] = []
    for base in extra_debug_dirs(directories):
        for root in (base / release, base):
            if (root / "usr/lib/debug").is_dir() and root not in roots:
                roots.append(root)
    return roots


def vmlinux_candidates(release: str, build_id: str | None, near: Path | None,
                       directories: Sequence[Path] = ()) -> Iterator[Path]:
    """Places a distro or a developer puts the vmlinux of ``release``, then the extra
    debug directories (``directories`` and ``$KDX_DEBUG_DIRS``)."""
    if near is not None:
        yield near / "vmlinux"
        yield near / f"vmlinux-{release}"
    if build_id:
        yield Path("/usr/lib/debug/.build-id") / build_id[:2] / f"{build_id[2:]}.debug"
    yield Path(f"/usr/lib/debug/boot/vmlinux-{release}")
    yield Path(f"/usr/lib/debug/lib/modules/{release}/vmlinux")
    yield Path(f"/boot/vmlinux-{release}")
    yield Path(f"/lib/modules/{release}/build/vmlinux")
    for root in debug_roots(release, directories):
        yield root / "usr/lib/debug/boot" / f"vmlinux-{release}"
        yield root / "usr/lib/debug/lib/modules" / release / "vmlinux"


def debuginfod_vmlinux(build_id: str | None) -> Path | None:
    """Ask debuginfod for the vmlinux when the user configured it (DEBUGINFOD_URLS)."""
    if not build_id or not os.environ.get("DEBUGINFOD_URLS"):
        return None
    tool = shutil.which("debuginfod-find")
    if tool is None:
        return None
    proc = subprocess.run([tool, "debuginfo", build_id], capture_output=True, text=True,
                          timeout=600)
    path = Path(proc.stdout.strip()) if proc.returncode == 0 else None
    return path if path and path.is_file() else None


def check_vmlinux(path: Path, release: str, build_id: str | None) -> ElfInfo:
    """Accept ``path`` as the dump's vmlinux or explain in one sentence why not."""
    check_readable(path, "vmlinux")
    info = read_elf_info(path)
    if build_id and info.build_id and info.build_id != build_id:
        theirs = info.release or "an unknown release"
        if info.release == release:
            raise KdxError(f"{path} is a different build of {release} than the dump "
                           f"(build ID {info.build_id[:12]}… vs {build_id[:12]}…)")
        raise KdxError(f"{path} is for Linux {theirs} but the dump is from Linux {release}")
    if info.release and info.release != release:
        raise KdxError(f"{path} is for Linux {info.release} but the dump is from Linux {release}")
    if not info.has_debug_info:
        raise KdxError(f"{path} has no debug info (it is stripped): use the vmlinux from the "
                       f"kernel's debug package, e.g. linux-image-{release}-dbg")
    return info


class VmlinuxNotFound(KdxError):
    """No vmlinux matching the dump was found (the dump's own BTF and kallsyms may do)."""


def find_vmlinux(release: str, build_id: str | None, near: Path | None,
                 directories: Sequence[Path] = ()) -> Path:
    """The first matching vmlinux among the standard places and the extra debug
    directories, or a sentence naming where it looked."""
    looked: list[str] = []
    for cand in vmlinux_candidates(release, build_id, near, directories):
        if cand.is_file():
            try:
                check_vmlinux(cand, release, build_id)
                return cand
            except KdxError:
                looked.append(f"{cand} (does not match)")
                continue
        looked.append(str(cand))
    found = debuginfod_vmlinux(build_id)
    if found:
        return found
    raise VmlinuxNotFound(f"no vmlinux with debug info for {release} found: pass it after the "
                   f"dump, or install linux-image-{release}-dbg, or name a debug directory in "
                   f"${DEBUG_DIRS_ENV} (looked in {', '.join(looked[:4])}, …)")


def module_debug_files(paths: Sequence[Path]) -> list[Path]:
    """The ``.ko`` / ``.ko.debug`` files named by the user, directories searched."""
    out: list[Path] = []
    for p in paths:
        if p.is_dir():
            out += sorted(q for q in p.rglob("*") if q.name.endswith((".ko", ".ko.debug")))
        else:
            check_readable(p, "module")
            out.append(p)
    return out


def module_search_dirs(near: Path | None) -> list[Path]:
    """A ``modules/`` directory beside the dump (where the lab and many support bundles
    put the ``.ko`` files); the distro paths are searched by drgn's standard finder."""
    return [near / "modules"] if near is not None and (near / "modules").is_dir() else []


def index_by_name(files: Iterable[Path]) -> dict[str, Path]:
    """Map module names (``hello_crash``) to files, first found wins."""
    out: dict[str, Path] = {}
    for f in files:
        name = f.name.split(".ko")[0].replace("-", "_")
        out.setdefault(name, f)
    return out
