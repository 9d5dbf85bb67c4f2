"""Just enough ELF reading to tell whether a vmlinux belongs to a dump, and kdx's one
reader of an ELF section table.

Matching a debug file to a dump must happen before drgn loads gigabytes of DWARF, and must
name both releases when they differ, so we read the GNU build ID note, the presence of
``.debug_info`` and the ``Linux version`` banner straight from the section table. The
symbol tables of the models (nm letters, module sections) and the DWARF unit reader of
``dis -l`` need the same table, so :func:`section_table` is the only place that parses it.
"""

from __future__ import annotations

import re
import struct
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from kdx.errors import KdxError

__all__ = ["ElfError", "ElfInfo", "Section", "read_elf_info", "section_table"]

_NT_GNU_BUILD_ID = 3
_SHT_NOTE = 7
_SHT_NOBITS = 8


#: One ELF64 section header (Elf64_Shdr) up to sh_link.
_SHDR = struct.Struct("<IIQQQQI")


class ElfError(KdxError, ValueError):
    """The file is not an ELF64 little-endian file with a section table."""


@dataclass(frozen=True)
class Section:
    """One entry of an ELF section table: what the readers of sections need."""

    name: str
    type: int
    flags: int
    addr: int
    offset: int
    size: int
    link: int


def section_table(f: BinaryIO) -> list[Section]:
    """The section table of the ELF64 little-endian file open in ``f`` (read from its
    start), in section-index order; raises ElfError for anything else."""
    f.seek(0)
    head = f.read(64)
    if not head.startswith(b"\x7fELF"):
        raise ElfError("not an ELF file")
    if head[4] != 2 or head[5] != 1:
        raise ElfError("not a 64-bit little-endian ELF file")
    shoff = struct.unpack_from("<Q", head, 0x28)[0]
    shentsize, shnum, shstrndx = struct.unpack_from("<HHH", head, 0x3A)
    f.seek(shoff)
    table = f.read(shentsize * shnum)
    if len(table) < shentsize * shnum or shnum == 0 or shentsize < _SHDR.size:
        raise ElfError("a truncated ELF file (its section table is missing)")
    raw = [_SHDR.unpack_from(table, i * shentsize) for i in range(shnum)]
    f.seek(raw[shstrndx][4])
    names = f.read(raw[shstrndx][5])
    return [Section(names[name_off:names.find(b"\0", name_off)].decode(errors="replace"),
                    stype, flags, addr, offset, size, link)
            for name_off, stype, flags, addr, offset, size, link in raw]


def _sections(path: Path) -> list[Section]:
    """The section table of ``path``, with errors that say what file kdx needs."""
    with open(path, "rb") as f:
        try:
            return section_table(f)
        except ElfError as err:
            hint = (" (a compressed vmlinuz? kdx needs the uncompressed vmlinux with debug "
                    "info from the -dbg package)") if str(err) == "not an ELF file" else ""
            raise ElfError(f"{path} is {err}{hint}") from None


@dataclass(frozen=True)
class ElfInfo:
    """Identity of a kernel ELF file (vmlinux or .ko)."""

    path: Path
    build_id: str | None
    has_debug_info: bool
    release: str | None


def read_elf_info(path: Path) -> ElfInfo:
    sections = _sections(path)
    build_id = None
    release = None
    with open(path, "rb") as f:
        for sec in sections:
            if sec.type == _SHT_NOTE and build_id is None:
                f.seek(sec.offset)
                build_id = _find_build_id(f.read(sec.size))
        rodata = next((s for s in sections if s.name == ".rodata"), None)
        if rodata and rodata.type != _SHT_NOBITS:
            f.seek(rodata.offset)
            found = re.search(rb"Linux version (\S+) \(", f.read(rodata.size))
            release = found.group(1).decode(errors="replace") if found else None
    has_debug = any(s.name in (".debug_info", ".zdebug_info") and s.type != _SHT_NOBITS
                    for s in sections)
    return ElfInfo(path, build_id, has_debug, release)


def _find_build_id(notes: bytes) -> str | None:
    pos = 0
    while pos + 12 <= len(notes):
        namesz, descsz, ntype = struct.unpack_from("<III", notes, pos)
        name_start = pos + 12
        desc_start = name_start + ((namesz + 3) & ~3)
        if ntype == _NT_GNU_BUILD_ID and notes[name_start:name_start + namesz] == b"GNU\0":
            return notes[desc_start:desc_start + descsz].hex()
        pos = desc_start + ((descsz + 3) & ~3)
    return None
