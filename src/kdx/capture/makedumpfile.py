"""Which kernels an installed makedumpfile knows, to warn before it filters a newer one.

makedumpfile finds the kernel's page classes (free, cache, user pages) from structures and
page flags that change between releases; each release names the newest kernel it was
checked against (``LATEST_VERSION`` in its makedumpfile.h). Run on a newer kernel it may
mistake live kernel data for pages it may drop, and the dump then lacks task_structs or
page tables that every tool needs. The table below comes from each release's header.
"""

from __future__ import annotations

import re
import shutil
import subprocess

from kdx.capture.system import System

__all__ = ["SUPPORTED_UP_TO", "installed_version", "newest_supported", "parse_version"]

#: makedumpfile release -> the newest Linux (major, minor) it supports
SUPPORTED_UP_TO: dict[tuple[int, int, int], tuple[int, int]] = {
    (1, 7, 0): (5, 15), (1, 7, 1): (5, 17), (1, 7, 2): (6, 0), (1, 7, 3): (6, 3),
    (1, 7, 4): (6, 6), (1, 7, 5): (6, 8), (1, 7, 6): (6, 11), (1, 7, 7): (6, 14),
    (1, 7, 8): (6, 17), (1, 7, 9): (7, 0),
}


def parse_version(text: str) -> tuple[int, ...] | None:
    """``1:1.7.6-1+b1`` (a Debian version) or ``1.7.6`` as a tuple of numbers."""
    m = re.search(r"(?:^|[:\s])(\d+)\.(\d+)(?:\.(\d+))?", text)
    if not m:
        return None
    return tuple(int(g) for g in m.groups() if g is not None)


def installed_version(system: System) -> tuple[int, ...] | None:
    """The makedumpfile version installed under ``system``'s root: from dpkg's status
    file, else (on the live system) from ``makedumpfile -v``."""
    status = system.read("/var/lib/dpkg/status") or ""
    for block in status.split("\n\n"):
        if re.search(r"^Package: makedumpfile$", block, re.M):
            m = re.search(r"^Version: (\S+)", block, re.M)
            if m and re.search(r"^Status: .*installed$", block, re.M):
                return parse_version(m.group(1))
    program = shutil.which("makedumpfile") if system.live else None
    if program is None:
        return None
    try:
        out = subprocess.run([program, "-v"], capture_output=True, text=True, timeout=5)
    except (OSError, subprocess.SubprocessError):
        return None
    m = re.search(r"version (\d+\.\d+(?:\.\d+)?)", out.stdout + out.stderr)
    return parse_version(m.group(1)) if m else None


def newest_supported(version: tuple[int, ...]) -> tuple[int, int] | None:
    """The newest kernel ``version`` supports; None when it is newer than the table (it
    knows more than kdx does) or older than 1.7.0 (then 5.15 is a generous ceiling)."""
    full = (*version, 0, 0)[:3]
    if full > max(SUPPORTED_UP_TO):
        return None
    known = [v for v in SUPPORTED_UP_TO if v <= full]
    return SUPPORTED_UP_TO[max(known)] if known else SUPPORTED_UP_TO[min(SUPPORTED_UP_TO)]
