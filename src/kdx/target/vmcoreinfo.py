"""VMCOREINFO: parse it, and recover it from guest memory when a dump lacks the note.

QEMU writes the note only when the guest exposed it through the vmcoreinfo device; without
it drgn refuses the dump. The kernel keeps the same text in a page of its own memory
(``vmcoreinfo_data``), so for an ELF dump we find it in the file and hand it to drgn.
"""

from __future__ import annotations

import mmap
import re
from pathlib import Path

from kdx.errors import KdxError
from kdx.target.formats import DumpFile

_REQUIRED = ("OSRELEASE=", "PAGESIZE=", "SYMBOL(swapper_pg_dir)=")


def parse(text: str) -> dict[str, str]:
    """``KEY=value`` lines into a dict (keys such as ``SYMBOL(init_uts_ns)`` kept whole)."""
    out: dict[str, str] = {}
    for line in text.splitlines():
        key, sep, value = line.partition("=")
        if sep:
            out[key] = value
    return out


def recover(path: Path, dump: DumpFile) -> bytes:
    """Find the kernel's VMCOREINFO text in the memory of an uncompressed (ELF) dump."""
    if dump.kind != "elf":
        raise KdxError(f"{dump.path} has no VMCOREINFO note and is compressed, so kdx cannot "
                       "search its memory; capture ELF dumps from QEMU, or start QEMU with "
                       "'-device vmcoreinfo' and load qemu_fw_cfg in the guest")
    with open(path, "rb") as f, mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ) as mem:
        pos = mem.find(b"OSRELEASE=")
        while pos != -1:
            end = mem.find(b"\0", pos, pos + 8192)
            text = mem[pos:end if end != -1 else pos + 8192]
            if all(k.encode() in text for k in _REQUIRED) and b"KERNELOFFSET=" in text:
                return bytes(text)
            pos = mem.find(b"OSRELEASE=", pos + 1)
    raise KdxError(f"{dump.path} has no VMCOREINFO note and none was found in its memory")


def release_of(text: str) -> str | None:
    found = re.search(r"^OSRELEASE=(\S+)", text, re.M)
    return found.group(1) if found else None
