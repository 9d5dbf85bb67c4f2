"""Fetch and unpack Debian cloud kernels for the lab.

The lab boots the very kernels Debian ships to cloud servers, with their real debug info,
so the dumps it makes are the dumps users meet. Packages come from the Debian archive with
``apt-get download`` and are unpacked (never installed) into the lab cache.
"""

from __future__ import annotations

import functools
import re
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Optional

from kdx.errors import KdxError, MissingToolError
from kdx.lab.cache import locked

Progress = Optional[Callable[[str], None]]

#: apt source that makes trixie's kernels fetchable from a bookworm host without upgrading it.
TRIXIE_SOURCE = Path("/etc/apt/sources.list.d/kdx-lab-trixie.list")
TRIXIE_PIN = Path("/etc/apt/preferences.d/kdx-lab-trixie")
_RELEASE = re.compile(r"^\d+\.\d+\.\d+[-+][\w.+-]*-cloud-amd64$")


@dataclass(frozen=True)
class Kernel:
    """An unpacked Debian cloud kernel: image, debug vmlinux, modules and headers."""

    release: str
    root: Path

    @property
    def vmlinuz(self) -> Path:
        return self.root / "boot" / f"vmlinuz-{self.release}"

    @property
    def vmlinux(self) -> Path:
        """The DWARF vmlinux from the -dbg package."""
        return self.root / "usr/lib/debug/boot" / f"vmlinux-{self.release}"

    @property
    def modules_dir(self) -> Path:
        return self.root / "lib/modules" / self.release

    @property
    def debug_modules_dir(self) -> Path:
        return self.root / "usr/lib/debug/lib/modules" / self.release

    @property
    def headers(self) -> Path:
        return self.root / "usr/src" / f"linux-headers-{self.release}"

    @property
    def compiler(self) -> str:
        """The gcc the kernel was built with (``gcc-12``, ``gcc-14``), from the headers."""
        text = (self.headers / ".kernelvariables").read_text()
        found = re.search(r"\)gcc-(\d+)", text)
        return f"gcc-{found.group(1)}" if found else "gcc"

    @property
    def series(self) -> str:
        """``6.1``, ``6.12``: the upstream series of the release."""
        return ".".join(self.release.split(".")[:2])


def _run(argv: list[str], what: str, cwd: Path | None = None) -> str:
    """Run a host command, turning failure into one sentence naming ``what`` failed."""
    if shutil.which(argv[0]) is None:
        raise MissingToolError(f"{argv[0]} is not installed; it is needed to {what}")
    proc = subprocess.run(argv, cwd=cwd, capture_output=True, text=True)
    if proc.returncode != 0:
        tail = (proc.stderr or proc.stdout).strip().splitlines()[-1:] or ["no output"]
        raise KdxError(f"could not {what}: {tail[0]}")
    return proc.stdout


def enable_trixie_source(progress: Progress = None) -> None:
    """Add trixie to apt at pin priority 1, so its kernels can be downloaded but nothing
    on the host is upgraded to trixie."""
    if TRIXIE_SOURCE.exists():
        return
    if progress:
        progress("adding a low-priority trixie apt source for 6.12 kernels")
    try:
        TRIXIE_SOURCE.write_text("deb http://deb.debian.org/debian trixie main\n")
        TRIXIE_PIN.write_text("Package: *\nPin: release n=trixie\nPin-Priority: 1\n")
    except PermissionError as err:
        raise KdxError("adding the trixie apt source needs root (or add it by hand)") from err
    _run(["apt-get", "update", "-qq"], "update the apt lists")


def resolve_release(spec: str | None, progress: Progress = None) -> str:
    """Turn ``--kernel`` into a kernel release.

    None/``6.1``/``bookworm`` mean the current bookworm cloud kernel, ``6.12``/``trixie``
    the current trixie one; a full release such as ``6.1.0-56-cloud-amd64`` is used as is.
    """
    if spec and _RELEASE.match(spec):
        return spec
    if spec in {"6.12", "trixie"}:
        enable_trixie_source(progress)
    return _current_release(spec)


@functools.cache
def _current_release(spec: str | None) -> str:
    """The release apt offers now for ``spec``; asked once per process (apt-cache is slow,
    and a test session asks for the same kernel dozens of times)."""
    suite = {None: "bookworm", "6.1": "bookworm", "bookworm": "bookworm",
             "6.12": "trixie", "trixie": "trixie"}.get(spec)
    if suite is None:
        raise KdxError(
            f"unknown kernel {spec!r}: give 6.1, 6.12, bookworm, trixie or a release "
            "such as 6.1.0-56-cloud-amd64"
        )
    argv = ["apt-cache", "depends", "linux-image-cloud-amd64"]
    if suite == "trixie":
        argv = ["apt-cache", "-t", "trixie", "depends", "linux-image-cloud-amd64"]
    out = _run(argv, f"look up the {suite} cloud kernel")
    found = re.search(r"Depends: linux-image-(\S+-cloud-amd64)\b", out)
    if not found:
        raise KdxError(f"apt knows no {suite} cloud kernel: run 'apt-get update' first")
    return found.group(1)


def _packages(release: str) -> list[str]:
    """The Debian packages that hold the image, debug info and headers of ``release``.

    The common headers and kbuild package names differ between suites (``linux-kbuild-6.1``
    but ``linux-kbuild-6.12.117+deb13``), so they are read from the headers' dependencies.
    """
    headers = f"linux-headers-{release}"
    out = _run(["apt-cache", "depends", headers], f"look up the dependencies of {headers}")
    extra = re.findall(r"Depends: (linux-(?:kbuild-\S+|headers-\S+-common))$", out, re.M)
    if len(extra) < 2:
        raise KdxError(f"apt does not know {headers}: run 'apt-get update' first")
    return [f"linux-image-{release}", f"linux-image-{release}-dbg", headers, *extra]


def fetch_kernel(cache: Path, spec: str | None = None, progress: Progress = None) -> Kernel:
    """Download and unpack the kernel ``spec`` names into ``cache``; reuse it if done."""
    release = resolve_release(spec, progress)
    kernel = Kernel(release, cache / "kernels" / release)
    if (kernel.root / ".complete").exists():
        return kernel
    with locked(cache / "kernels" / f".{release}.lock"):
        if not (kernel.root / ".complete").exists():
            _download_and_unpack(cache, kernel, progress)
    return kernel


def _download_and_unpack(cache: Path, kernel: Kernel, progress: Progress) -> None:
    release = kernel.release
    if not release.startswith("6.1."):
        enable_trixie_source(progress)
    debs = cache / "debs"
    debs.mkdir(parents=True, exist_ok=True)
    wanted = _packages(release)
    missing = [p for p in wanted if not list(debs.glob(f"{p}_*.deb"))]
    if missing:
        if progress:
            progress(f"downloading {len(missing)} Debian packages for {release}")
        _run(["apt-get", "download", *missing], f"download the {release} kernel packages", debs)
    tmp = kernel.root.with_name(release + ".part")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    for pkg in wanted:
        if progress:
            progress(f"unpacking {pkg}")
        deb = sorted(debs.glob(f"{pkg}_*.deb"))[-1]
        _run(["dpkg-deb", "-x", str(deb), str(tmp)], f"unpack {deb.name}")
    _point_headers_at(tmp, release)
    if (tmp / "usr/lib/modules").is_dir() and not (tmp / "lib").exists():
        (tmp / "lib").symlink_to("usr/lib")  # merged /usr (trixie): depmod wants /lib
    _run(["depmod", "-b", str(tmp), release], "index the kernel's modules")
    shutil.rmtree(kernel.root, ignore_errors=True)
    tmp.rename(kernel.root)
    # The headers Makefile names its own directory; fix it again after the rename.
    _point_headers_at(kernel.root, release)
    (kernel.root / ".complete").write_text(release + "\n")


def _point_headers_at(root: Path, release: str) -> None:
    """Debian's arch headers Makefile includes the common headers by absolute path under
    /usr/src; point it at the unpacked copy so modules build without installing anything."""
    makefile = root / "usr/src" / f"linux-headers-{release}" / "Makefile"
    text = re.sub(r"^include .*/usr/src/", f"include {root}/usr/src/",
                  makefile.read_text(), flags=re.M)
    makefile.write_text(text)
