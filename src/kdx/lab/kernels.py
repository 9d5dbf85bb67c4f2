"""Fetch and unpack Debian cloud kernels for the lab.

The lab boots the very kernels Debian ships to cloud servers, with their real debug info,
so the dumps it makes are the dumps users meet: bookworm's 6.1, trixie's 6.12 and sid's
newest (7.x), the one users meet first when a kernel changes. Packages come from the Debian
archive with ``apt-get download`` and are unpacked (never installed) into the lab cache.
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

__all__ = ["Kernel", "SUITE_OF_SPEC", "enable_suite_source", "fetch_kernel", "resolve_release",
           "suite_of"]

Progress = Optional[Callable[[str], None]]

#: Where the apt source and pin of a suite newer than the host go (see enable_suite_source).
APT_SOURCES = Path("/etc/apt/sources.list.d")
APT_PREFERENCES = Path("/etc/apt/preferences.d")
_RELEASE = re.compile(r"^\d+\.\d+\.\d+[-+][\w.+-]*-cloud-amd64$")
#: What ``--kernel`` accepts, and the Debian suite whose current cloud kernel it means.
SUITE_OF_SPEC: dict[str | None, str] = {
    None: "bookworm", "6.1": "bookworm", "bookworm": "bookworm",
    "6.12": "trixie", "trixie": "trixie",
    "7": "sid", "sid": "sid", "unstable": "sid",
}
#: Debian's release number in kernel names (``6.12.117+deb13``) -> the lab's suite. Kernels
#: named for a Debian not released yet (``+deb14``) come from sid.
_SUITE_OF_DEBIAN = {12: "bookworm", 13: "trixie"}


def suite_of(release: str) -> str:
    """The Debian suite a cloud kernel release comes from: ``6.1.0-57-cloud-amd64`` is
    bookworm's, ``6.12.117+deb13-cloud-amd64`` trixie's, ``7.2.13+deb14-cloud-amd64`` sid's."""
    found = re.search(r"\+deb(\d+)\b", release)
    if found is None:
        return "bookworm"
    return _SUITE_OF_DEBIAN.get(int(found.group(1)), "sid")


@dataclass(frozen=True)
class Kernel:
    """An unpacked Debian cloud kernel: image, debug vmlinux, modules and headers."""

    release: str
    root: Path

    @property
    def vmlinuz(self) -> Path:
        """The boot image: ``/boot/vmlinuz-RELEASE``, or ``/usr/lib/modules/RELEASE/vmlinuz``
        where sid's ``linux-binary`` package puts it."""
        classic = self.root / "boot" / f"vmlinuz-{self.release}"
        moved = self.root / "usr/lib/modules" / self.release / "vmlinuz"
        return moved if moved.exists() and not classic.exists() else classic

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
        """``6.1``, ``6.12``, ``7.2``: the upstream series of the release."""
        return ".".join(self.release.split(".")[:2])

    @property
    def suite(self) -> str:
        """``bookworm``, ``trixie`` or ``sid``: where the kernel (and its tools) come from."""
        return suite_of(self.release)

    @property
    def tools_suite(self) -> str:
        """The lab root whose tools (compiler, makedumpfile) fit this kernel: sid's for sid
        kernels, trixie's for the others (bookworm's own are used where the host has them)."""
        return "sid" if self.suite == "sid" else "trixie"


def _run(argv: list[str], what: str, cwd: Path | None = None) -> str:
    """Run a host command, turning failure into one sentence naming ``what`` failed."""
    if shutil.which(argv[0]) is None:
        raise MissingToolError(f"{argv[0]} is not installed; it is needed to {what}")
    proc = subprocess.run(argv, cwd=cwd, capture_output=True, text=True)
    if proc.returncode != 0:
        tail = (proc.stderr or proc.stdout).strip().splitlines()[-1:] or ["no output"]
        raise KdxError(f"could not {what}: {tail[0]}")
    return proc.stdout


def enable_suite_source(suite: str, progress: Progress = None) -> None:
    """Add ``suite`` (trixie, sid) to apt at pin priority 1, so its kernels can be
    downloaded but nothing on the host is upgraded to it."""
    source = APT_SOURCES / f"kdx-lab-{suite}.list"
    if suite == "bookworm" or source.exists():
        return
    if progress:
        progress(f"adding a low-priority {suite} apt source for its kernels")
    try:
        source.write_text(f"deb http://deb.debian.org/debian {suite} main\n")
        (APT_PREFERENCES / f"kdx-lab-{suite}").write_text(
            f"Package: *\nPin: release n={suite}\nPin-Priority: 1\n")
    except PermissionError as err:
        raise KdxError(f"adding the {suite} apt source needs root (or add it by hand)") from err
    _run(["apt-get", "update", "-qq"], "update the apt lists")


def resolve_release(spec: str | None, progress: Progress = None) -> str:
    """Turn ``--kernel`` into a kernel release.

    None/``6.1``/``bookworm`` mean the current bookworm cloud kernel, ``6.12``/``trixie``
    the current trixie one, ``7``/``sid`` sid's newest; a full release such as
    ``6.1.0-56-cloud-amd64`` is used as is.
    """
    if spec and _RELEASE.match(spec):
        return spec
    if spec in SUITE_OF_SPEC:
        enable_suite_source(SUITE_OF_SPEC[spec], progress)
    return _current_release(spec)


@functools.cache
def _current_release(spec: str | None) -> str:
    """The release apt offers now for ``spec``; asked once per process (apt-cache is slow,
    and a test session asks for the same kernel dozens of times)."""
    suite = SUITE_OF_SPEC.get(spec)
    if suite is None:
        raise KdxError(
            f"unknown kernel {spec!r}: give 6.1, 6.12, 7, bookworm, trixie, sid or a release "
            "such as 6.1.0-56-cloud-amd64"
        )
    argv = ["apt-cache", "depends", "linux-image-cloud-amd64"]
    if suite != "bookworm":
        argv[1:1] = ["-t", suite]
    out = _run(argv, f"look up the {suite} cloud kernel")
    found = re.search(r"Depends: linux-image-(\S+-cloud-amd64)\b", out)
    if not found:
        raise KdxError(f"apt knows no {suite} cloud kernel: run 'apt-get update' first")
    return found.group(1)


def _packages(release: str) -> list[str]:
    """The Debian packages that hold the image, debug info and headers of ``release``.

    The common headers and kbuild package names differ between suites (``linux-kbuild-6.1``
    but ``linux-kbuild-6.12.117+deb13``), so they are read from the headers' dependencies.
    Sid splits the image: ``linux-image-RELEASE`` is then an empty package depending on
    ``linux-binary-RELEASE`` (the vmlinuz), ``linux-modules-RELEASE`` and
    ``linux-base-RELEASE`` (config, System.map, modules.order), which are fetched instead.
    """
    image, headers = f"linux-image-{release}", f"linux-headers-{release}"
    out = _run(["apt-cache", "depends", image], f"look up the dependencies of {image}")
    parts = re.findall(rf"Depends: (linux-(?:base|binary|modules)-{re.escape(release)})$",
                       out, re.M)
    out = _run(["apt-cache", "depends", headers], f"look up the dependencies of {headers}")
    extra = re.findall(r"Depends: (linux-(?:kbuild-\S+|headers-\S+-common))$", out, re.M)
    if len(extra) < 2:
        raise KdxError(f"apt does not know {headers}: run 'apt-get update' first")
    return [*(parts or [image]), f"{image}-dbg", headers, *extra]


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
    enable_suite_source(kernel.suite, progress)
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
    /usr/src (sid's also sets ``KBUILD_OUTPUT`` to its own /usr/src directory); point both
    at the unpacked copy so modules build without installing anything."""
    makefile = root / "usr/src" / f"linux-headers-{release}" / "Makefile"
    text = re.sub(r"^(include |KBUILD_OUTPUT\s*:?=\s*).*/usr/src/", rf"\g<1>{root}/usr/src/",
                  makefile.read_text(), flags=re.M)
    makefile.write_text(text)
