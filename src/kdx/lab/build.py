"""Build what the lab guest runs: the crash modules (against the kernel's own headers, with
debug info) and the small static helper programs."""

from __future__ import annotations

import hashlib
import shutil
import subprocess
from pathlib import Path
from typing import Callable, Sequence

from kdx.errors import KdxError, MissingToolError
from kdx.lab.cache import locked
from kdx.lab.kernels import Kernel

GUEST_DIR = Path(__file__).parent / "guest"


def digest(paths: Sequence[Path], *extra: str) -> str:
    """A short hash of file contents, so a changed source rebuilds and nothing else does."""
    h = hashlib.sha256()
    for p in sorted(paths):
        h.update(p.name.encode() + b"\0" + p.read_bytes() + b"\0")
    for e in extra:
        h.update(e.encode())
    return h.hexdigest()[:12]


def build_modules(cache: Path, kernel: Kernel,
                  progress: Callable[[str], None] | None = None) -> Path:
    """Build every lab module for ``kernel`` (once, under a lock); return their directory.
    ``progress`` hears about a lab root being built for the compiler (minutes, once)."""
    with locked(cache / "build" / f".modules-{kernel.release}.lock"):
        return _build_modules(cache, kernel, progress)


def _build_modules(cache: Path, kernel: Kernel,
                   progress: Callable[[str], None] | None) -> Path:
    """Build every lab module for ``kernel``; return the directory holding the ``.ko`` files.

    The kernel's headers name the compiler it was built with; a compiler the host lacks
    (gcc-14 for trixie's 6.12, gcc-16 for sid's 7.x on a bookworm host) is taken from the
    lab's root of the kernel's suite.
    """
    src = GUEST_DIR / "modules"
    sources = [p for p in src.iterdir() if p.is_file()]
    out = cache / "build" / kernel.release / f"modules-{digest(sources)}"
    if (out / ".complete").exists():
        return out
    shutil.rmtree(out, ignore_errors=True)
    out.mkdir(parents=True)
    for p in sources:
        shutil.copy(p, out / p.name)
    argv = ["make", "-s", "-C", str(kernel.headers), f"M={out}", "modules"]
    if shutil.which(kernel.compiler):
        proc = subprocess.run(argv, capture_output=True, text=True)
    else:
        from kdx.lab.roots import ensure_root, run_in_root

        root = ensure_root(cache, kernel.tools_suite, progress)
        done = run_in_root(root, argv, binds=[cache])
        proc = subprocess.CompletedProcess(argv, done.returncode, done.stdout.decode(),
                                           done.stderr.decode())
    if proc.returncode != 0 or not list(out.glob("*.ko")):
        lines = (proc.stderr or proc.stdout).strip().splitlines()
        errors = [line for line in lines if "error" in line.lower()] or lines[-1:]
        raise KdxError(f"building the lab modules for {kernel.release} failed: "
                       f"{errors[0] if errors else 'no output'}")
    (out / ".complete").write_text("")
    return out


def build_programs(cache: Path) -> Path:
    """Build the guest's helper programs (once, under a lock); return their directory."""
    with locked(cache / "build" / ".programs.lock"):
        return _build_programs(cache)


def _build_programs(cache: Path) -> Path:
    """Compile the guest's helper programs statically, so they run on any lab kernel."""
    src = GUEST_DIR / "programs"
    sources = sorted(src.glob("*.c"))
    out = cache / "build" / f"programs-{digest(sources)}"
    if (out / ".complete").exists():
        return out
    if shutil.which("gcc") is None:
        raise MissingToolError("gcc is not installed: run 'apt-get install gcc libc6-dev'")
    out.mkdir(parents=True, exist_ok=True)
    for c in sources:
        proc = subprocess.run(["gcc", "-static", "-O1", "-o", str(out / c.stem), str(c)],
                              capture_output=True, text=True)
        if proc.returncode != 0:
            raise KdxError(f"building {c.name} failed (is libc6-dev installed?): "
                           f"{proc.stderr.strip().splitlines()[-1:]}")
    (out / ".complete").write_text("")
    return out
