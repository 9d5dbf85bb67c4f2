"""Read the kdump-related files of a live system, or of a saved copy of one.

Every capture-side check reads the same handful of files (``/proc/cmdline``,
``/proc/iomem``, ``/proc/meminfo``, ``/sys/kernel/kexec_crash_*``, sysctls, the kdump
service configuration). Reading them through one object rooted at ``/`` or at a saved
copy lets ``kdx kdump status --root DIR`` diagnose a machine from files a user sent,
and lets the tests run on the real files the lab's guests saved.
"""

from __future__ import annotations

import os
import platform
import re
from dataclasses import dataclass
from pathlib import Path

PAGE_SIZE = 4096


@dataclass(frozen=True)
class IomemEntry:
    """One line of ``/proc/iomem``: an inclusive physical range, its name and depth."""

    start: int
    end: int
    name: str
    depth: int
    parent: str | None

    @property
    def size(self) -> int:
        return self.end - self.start + 1


@dataclass(frozen=True)
class RamFigure:
    """The system RAM the kernel's crashkernel arithmetic starts from, and where it came
    from (the source decides how exact it is)."""

    bytes: int
    source: str
    note: str | None = None


@dataclass(frozen=True)
class System:
    """A live system (``root`` is ``/``) or a saved copy whose paths mirror one."""

    root: Path = Path("/")

    @property
    def live(self) -> bool:
        return self.root.resolve() == Path("/")

    def path(self, name: str) -> Path:
        return self.root / name.lstrip("/")

    def read(self, name: str) -> str | None:
        """The file's text, or None when it is absent or unreadable (kdump files are often
        root-only, and a saved copy holds only some of them)."""
        try:
            return self.path(name).read_text(errors="replace")
        except OSError:
            return None

    def exists(self, name: str) -> bool:
        return self.path(name).exists()

    def cmdline(self) -> str | None:
        text = self.read("/proc/cmdline")
        return None if text is None else text.strip("\n\0 ")

    def int_file(self, name: str) -> int | None:
        """An integer sysfs/procfs file such as ``/sys/kernel/kexec_crash_size``."""
        text = self.read(name)
        try:
            return int(text.split()[0], 0) if text and text.split() else None
        except ValueError:
            return None

    def sysctl(self, dotted: str) -> int | None:
        """``kernel.panic_on_oops`` → the integer in ``/proc/sys/kernel/panic_on_oops``."""
        return self.int_file("/proc/sys/" + dotted.replace(".", "/"))

    def release(self) -> str | None:
        """The running kernel's release, from ``/proc/version`` (saved copies have it;
        ``uname`` would describe the analysing host instead)."""
        text = self.read("/proc/version")
        m = re.match(r"Linux version (\S+)", text or "")
        if m:
            return m.group(1)
        return os.uname().release if self.live else None

    def meminfo(self) -> dict[str, int]:
        """``/proc/meminfo`` in bytes (page counts such as HugePages_Total stay counts)."""
        out: dict[str, int] = {}
        for line in (self.read("/proc/meminfo") or "").splitlines():
            m = re.match(r"([\w()]+):\s+(\d+)(\s+kB)?", line)
            if m:
                out[m.group(1)] = int(m.group(2)) * (1024 if m.group(3) else 1)
        return out

    def iomem(self) -> list[IomemEntry]:
        return parse_iomem(self.read("/proc/iomem") or "")

    def os_release(self) -> dict[str, str]:
        out: dict[str, str] = {}
        for name in ("/etc/os-release", "/usr/lib/os-release"):
            for line in (self.read(name) or "").splitlines():
                key, sep, value = line.partition("=")
                if sep:
                    out[key.strip()] = value.strip().strip('"')
            if out:
                break
        return out


def parse_iomem(text: str) -> list[IomemEntry]:
    """Parse ``/proc/iomem``; nesting is two spaces per level."""
    entries: list[IomemEntry] = []
    stack: list[str] = []
    for line in text.splitlines():
        m = re.match(r"( *)([0-9a-fA-F]+)-([0-9a-fA-F]+) : (.*)$", line)
        if not m:
            continue
        depth = len(m.group(1)) // 2
        del stack[depth:]
        parent = stack[-1] if stack else None
        name = m.group(4).strip()
        entries.append(IomemEntry(int(m.group(2), 16), int(m.group(3), 16), name, depth,
                                  parent))
        stack.append(name)
    return entries


def iomem_hidden(entries: list[IomemEntry]) -> bool:
    """Unprivileged readers see every address as 0 (the kernel hides them)."""
    return bool(entries) and all(e.start == 0 and e.end == 0 for e in entries)


def system_ram(system: System) -> RamFigure:
    """The RAM figure the kernel passes to its crashkernel parser.

    The kernel uses ``memblock_phys_mem_size()``: the usable RAM ranges of the firmware
    map after the kernel's own trimming, each cut to whole pages. ``/proc/iomem``'s
    top-level "System RAM" ranges are that table, so summing them page-trimmed gives the
    kernel's number exactly (on the lab's guests it equals the total in the boot log's
    "Memory: …K/…K available" line). ``/sys/firmware/memmap`` is the untrimmed firmware
    table (a few KiB more); ``MemTotal`` is far lower (it excludes the kernel image, the
    struct pages and the crashkernel area itself), so it is only the last resort.
    """
    entries = system.iomem()
    if entries and not iomem_hidden(entries):
        total = sum(_page_trimmed(e.start, e.end) for e in entries
                    if e.name == "System RAM" and e.parent != "System RAM")
        if total:
            return RamFigure(total, "/proc/iomem System RAM")
    total = _firmware_memmap_ram(system)
    if total:
        return RamFigure(total, "/sys/firmware/memmap",
                         "the firmware map is a few KiB larger than the kernel's figure")
    mem_total = system.meminfo().get("MemTotal")
    if mem_total:
        return RamFigure(mem_total, "/proc/meminfo MemTotal",
                         "MemTotal leaves out the kernel, struct pages and any crashkernel "
                         "area, so it is lower than the figure the kernel uses; read "
                         "/proc/iomem as root for the exact one")
    return RamFigure(0, "unknown")


def _page_trimmed(start: int, end: int) -> int:
    lo = -(-start // PAGE_SIZE) * PAGE_SIZE
    hi = (end + 1) // PAGE_SIZE * PAGE_SIZE
    return max(hi - lo, 0)


def _firmware_memmap_ram(system: System) -> int:
    base = system.path("/sys/firmware/memmap")
    total = 0
    try:
        dirs = sorted(base.iterdir())
    except OSError:
        return 0
    for d in dirs:
        kind = system.read(f"/sys/firmware/memmap/{d.name}/type")
        if (kind or "").strip() != "System RAM":
            continue
        start = system.int_file(f"/sys/firmware/memmap/{d.name}/start")
        end = system.int_file(f"/sys/firmware/memmap/{d.name}/end")
        if start is not None and end is not None:
            total += _page_trimmed(start, end)
    return total


def machine_arch() -> str:
    """This machine's architecture in the kernel's uname spelling."""
    arch = platform.machine()
    return {"arm64": "aarch64", "amd64": "x86_64"}.get(arch, arch)


def human(n: int) -> str:
    """A size as people write it: exact binary units when they are exact."""
    for shift, unit in ((60, "EiB"), (50, "PiB"), (40, "TiB"), (30, "GiB"), (20, "MiB")):
        if n and n % (1 << shift) == 0:
            return f"{n >> shift} {unit}"
    if n >= 1 << 30:
        return f"{n / (1 << 30):.1f} GiB"
    if n >= 1 << 20:
        return f"{n / (1 << 20):.1f} MiB"
    if n and n % 1024 == 0:
        return f"{n >> 10} KiB"
    return f"{n} bytes"
