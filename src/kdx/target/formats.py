"""Recognise what kind of file a user handed us, before any library touches it.

The answer drives the rest of opening (reassemble a flattened stream, recover a missing
VMCOREINFO note) and, when the file is no dump at all, lets the error say what it is.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from pathlib import Path

from kdx.errors import KdxError
from kdx.target import flattened

ELF_MAGIC = b"\x7fELF"
ET_CORE = 4
ET_EXEC = 2
ET_DYN = 3
ET_REL = 1
_KDUMP_SIGS = (b"KDUMP   ", b"DISKDUMP")
_COMPRESSION = {1: "zlib", 2: "lzo", 4: "snappy", 0x20: "zstd"}
DUMP_DH_COMPRESSED_INCOMPLETE = 0x8


@dataclass(frozen=True)
class DumpFile:
    """What a dump file is: its container format and, for kdump files, its details."""

    path: Path
    kind: str  # "elf", "kdump", "flattened"
    compression: str | None = None
    dump_level: int | None = None
    incomplete: bool = False
    machine: str | None = None

    @property
    def description(self) -> str:
        if self.kind == "kdump":
            return f"kdump-compressed ({self.compression})"
        return {"elf": "ELF core", "flattened": "makedumpfile flattened"}[self.kind]


def check_readable(path: Path, what: str = "dump") -> None:
    """One clear sentence for a path that does not exist, is a directory, or is empty."""
    if not path.exists():
        raise KdxError(f"{path}: no such file")
    if path.is_dir():
        raise KdxError(f"{path} is a directory, not a {what} file")
    try:
        with open(path, "rb") as f:
            f.read(1)
    except PermissionError as err:
        raise KdxError(f"{path}: permission denied (try as root or fix its mode)") from err
    if path.stat().st_size == 0:
        raise KdxError(f"{path} is empty, not a {what}")


def _elf_type(head: bytes) -> int:
    return struct.unpack_from("<H", head, 16)[0] if len(head) >= 18 else -1


def identify(path: Path) -> DumpFile:
    """Classify ``path`` as an ELF core, a kdump-compressed or a flattened file."""
    check_readable(path)
    with open(path, "rb") as f:
        head = f.read(4096 * 2)
    if head.startswith(ELF_MAGIC):
        etype = _elf_type(head)
        if etype == ET_CORE:
            flags = struct.unpack_from("<I", head, 48)[0] if len(head) >= 52 else 0
            return DumpFile(path, "elf", incomplete=bool(flags & 1))
        kind = {ET_EXEC: "an executable (a vmlinux?)", ET_DYN: "a shared object",
                ET_REL: "a relocatable object (a .ko?)"}.get(etype, "not a core dump")
        raise KdxError(f"{path} is an ELF file but {kind}, not a crash dump")
    if head[:8] in _KDUMP_SIGS:
        return _kdump_details(path, head)
    if head.startswith(flattened.SIGNATURE):
        return DumpFile(path, "flattened")
    if len(head) < 64:
        raise KdxError(f"{path} is too short ({len(head)} bytes) to be a crash dump")
    raise KdxError(f"{path} is not a crash dump kdx knows (not ELF, kdump-compressed "
                   "or makedumpfile flattened)")


def _kdump_details(path: Path, head: bytes) -> DumpFile:
    """Read status, compression and dump level from the kdump main and sub headers."""
    # disk_dump_header (64-bit): signature[8], header_version, utsname (6*65), pad to 8,
    # timestamp (16), status, block_size, ...
    utsname_end = 12 + 6 * 65
    off = (utsname_end + 7) & ~7
    if len(head) < off + 24:
        raise KdxError(f"{path} is a truncated kdump-compressed dump (header cut short)")
    status, block_size = struct.unpack_from("<Ii", head, off + 16)
    compression = next((name for bit, name in _COMPRESSION.items() if status & bit),
                       "none")
    dump_level = None
    if 0 < block_size <= len(head) - 16:
        # kdump_sub_header starts at block 1: phys_base (8), dump_level (4).
        dump_level = struct.unpack_from("<i", head, block_size + 8)[0]
    machine = head[12 + 4 * 65:12 + 5 * 65].split(b"\0")[0].decode(errors="replace") or None
    return DumpFile(path, "kdump", compression=compression, dump_level=dump_level,
                    incomplete=bool(status & DUMP_DH_COMPRESSED_INCOMPLETE), machine=machine)
