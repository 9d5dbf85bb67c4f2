"""VMCOREINFO: parse it, and recover it from guest memory when a dump lacks the note.

QEMU writes the note only when the guest exposed it through the vmcoreinfo device; without
it drgn refuses the dump. The kernel keeps the same text in a page of its own memory
(``vmcoreinfo_data``), so we find it in the saved pages and hand it to drgn.
"""

from __future__ import annotations

import mmap
import os
import re
import struct
import zlib
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


_HEX = re.compile(rb"[0-9a-fA-F]+")
_DEC = re.compile(rb"-?[0-9]+")
_NUMBER = re.compile(rb"-?(?:0x[0-9a-fA-F]+|[0-9]+)")  # NUMBER(VMALLOC_START)=0x... (6.x)
_KEY = re.compile(rb"[A-Za-z0-9_()./-]+")
#: what each kind of field's value must look like (drgn refuses the note otherwise)
_FORMATS = (
    (re.compile(rb"BUILD-ID$"), re.compile(rb"(?:[0-9a-fA-F]{2}){1,64}")),
    (re.compile(rb"(?:SYMBOL\(.*\)|KERNELOFFSET)$"), _HEX),
    (re.compile(rb"(?:PAGESIZE|CRASHTIME)$"), _DEC),
    (re.compile(rb"(?:SIZE|LENGTH|OFFSET|NUMBER)\(.*\)$"), _NUMBER),
    (re.compile(rb"OSRELEASE$"), re.compile(rb"[\x21-\x7e]{1,64}")),
)


def sanitize(text: bytes) -> tuple[bytes, list[str]]:
    """``text`` without the lines a bit flip made unreadable (a key with odd characters or
    an empty dot-separated part, a value not of its field's form), and the damaged keys
    (shown escaped). Dropping one bad field keeps the rest of the note usable."""
    kept: list[bytes] = []
    bad: list[str] = []
    for line in text.split(b"\0", 1)[0].split(b"\n"):
        if not line:
            continue
        key, sep, value = line.partition(b"=")
        if sep and _line_ok(key, value):
            kept.append(line)
        else:
            bad.append(key[:40].decode("ascii", errors="backslashreplace"))
    return b"\n".join(kept) + b"\n", bad


def _line_ok(key: bytes, value: bytes) -> bool:
    if not _KEY.fullmatch(key) or key.startswith(b".") or key.endswith(b".") or b".." in key:
        return False
    for name, form in _FORMATS:
        if name.match(key):
            return bool(form.fullmatch(value))
    return all(0x20 <= c < 0x7F for c in value)


def complete(text: bytes) -> bool:
    """Whether ``text`` has the fields without which no kernel dump can be read."""
    return all(k.encode() in text for k in _REQUIRED)


def recover(path: Path, dump: DumpFile) -> bytes:
    """Find the kernel's VMCOREINFO text in the memory saved in ``path``."""
    found = _scan_elf(path) if dump.kind == "elf" else _scan_kdump(path, dump)
    if found is None:
        raise KdxError(f"{dump.path} has no VMCOREINFO note and none was found in its memory")
    return found


def _match(data: bytes | mmap.mmap, start: int = 0) -> bytes | None:
    """The VMCOREINFO text starting at an ``OSRELEASE=`` in ``data``, if one is there."""
    return next((text for _pos, text in _matches(data, start)), None)


def _matches(data: bytes | mmap.mmap, start: int = 0):  # noqa: ANN202 (a generator)
    """Each (position, text) of a complete VMCOREINFO text in ``data`` from ``start``."""
    pos = data.find(b"OSRELEASE=", start)
    while pos != -1:
        end = data.find(b"\0", pos, pos + 8192)
        text = bytes(data[pos:end if end != -1 else pos + 8192])
        if all(k.encode() in text for k in _REQUIRED) and b"KERNELOFFSET=" in text:
            yield pos, text
        pos = data.find(b"OSRELEASE=", pos + 1)


def _scan_elf(path: Path) -> bytes | None:
    with open(path, "rb") as f, mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ) as mem:
        return _match(mem)


_PAGE_DESC = struct.Struct("<qIIQ")  # offset, size, flags, page_flags


def _scan_kdump(path: Path, dump: DumpFile) -> bytes | None:
    """Decompress each saved page of a kdump-compressed file and look for the text.

    The kernel keeps VMCOREINFO in one page of its own, so no match spans two pages. Only
    zlib (what QEMU writes) and uncompressed pages can be read without extra libraries.
    """
    with open(path, "rb") as f:
        head = f.read(4096)
        off = (12 + 6 * 65 + 7) & ~7
        _status, block, sub_blocks, bitmap_blocks = struct.unpack_from("<IiiI", head, off + 16)
        size = os.fstat(f.fileno()).st_size
        if not 0 < block <= 1 << 20 or sub_blocks < 0 or \
                (1 + sub_blocks + bitmap_blocks) * block > size:
            return None  # damaged sizes: never read or allocate what the file cannot hold
        f.seek((1 + sub_blocks) * block)
        bitmap = f.read(bitmap_blocks * block)
        pages = sum(bin(b).count("1") for b in bitmap[len(bitmap) // 2:])
        f.seek((1 + sub_blocks + bitmap_blocks) * block)
        descs = f.read(pages * _PAGE_DESC.size)
        for i in range(len(descs) // _PAGE_DESC.size):
            offset, length, flags, _ = _PAGE_DESC.unpack_from(descs, i * _PAGE_DESC.size)
            if offset <= 0 or not 0 < length <= block:
                continue
            f.seek(offset)
            raw = f.read(length)
            if flags & ~1:
                raise KdxError(f"{dump.path} has no VMCOREINFO note and its pages are "
                               f"{dump.compression}-compressed, which kdx cannot search; "
                               "capture with '-device vmcoreinfo' and qemu_fw_cfg loaded")
            try:
                page = zlib.decompress(raw) if flags & 1 else raw
            except zlib.error:
                continue
            found = _match(page)
            if found:
                return found
    return None


def copies_in_memory(path: Path, limit: int = 8) -> list[bytes]:
    """Up to ``limit`` complete VMCOREINFO texts found in an ELF dump's saved memory (the
    kernel keeps its own copy; a damaged note may have sound twins there)."""
    found: list[bytes] = []
    with open(path, "rb") as f, mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ) as mem:
        for _pos, text in _matches(mem):
            found.append(text)
            if len(found) >= limit:
                break
    return found


def release_of(text: str) -> str | None:
    found = re.search(r"^OSRELEASE=(\S+)", text, re.M)
    return found.group(1) if found else None


_PT_NOTE = 4
_NOTE_LIMIT = 16 << 20


def note_text(path: Path, dump: DumpFile) -> bytes | None:
    """The VMCOREINFO note as the dump file stores it (None when it has none), read
    without drgn: from the kdump sub-header's offset, or from an ELF note segment."""
    try:
        with open(path, "rb") as f:
            return _kdump_note(f) if dump.kind == "kdump" else _elf_note(f)
    except (OSError, struct.error, ValueError, OverflowError):
        return None


def _kdump_note(f) -> bytes | None:  # noqa: ANN001 (a binary file)
    head = f.read(4096)
    version = struct.unpack_from("<i", head, 8)[0]
    off = (12 + 6 * 65 + 7) & ~7
    block = struct.unpack_from("<i", head, off + 20)[0]
    if version < 3 or not 0 < block <= 1 << 20:
        return None
    f.seek(block + 32)  # kdump_sub_header.offset_vmcoreinfo, size_vmcoreinfo
    offset, size = struct.unpack("<qQ", f.read(16))
    if offset <= 0 or not 0 < size <= _NOTE_LIMIT:
        return None
    f.seek(offset)
    return f.read(size)


def _elf_note(f) -> bytes | None:  # noqa: ANN001 (a binary file)
    head = f.read(64)
    phoff = struct.unpack_from("<Q", head, 0x20)[0]
    phentsize, phnum = struct.unpack_from("<HH", head, 0x36)
    f.seek(phoff)
    table = f.read(phentsize * min(phnum, 4096))
    for i in range(len(table) // max(phentsize, 56)):
        p_type, _flags, offset = struct.unpack_from("<IIQ", table, i * phentsize)
        size = struct.unpack_from("<Q", table, i * phentsize + 32)[0]
        if p_type != _PT_NOTE or size > _NOTE_LIMIT:
            continue
        f.seek(offset)
        found = _note_named(f.read(size), b"VMCOREINFO")
        if found is not None:
            return found
    return None


def _note_named(notes: bytes, name: bytes) -> bytes | None:
    at = 0
    while at + 12 <= len(notes):
        namesz, descsz, _type = struct.unpack_from("<III", notes, at)
        start = at + 12 + ((namesz + 3) & ~3)
        if notes[at + 12:at + 12 + namesz].rstrip(b"\0") == name:
            return notes[start:start + descsz]
        at = start + ((descsz + 3) & ~3)
    return None


def check_note(path: Path, dump: DumpFile) -> None:
    """Refuse a VMCOREINFO note with a key libkdumpfile cannot take: a key with an empty
    dot-separated part (``.FFSET(...)``, a flipped bit in a damaged dump) crashes the
    process that opens it, so it is caught here, before any library reads the file."""
    text = note_text(path, dump)
    if not text:
        return
    for number, line in enumerate(text.split(b"\n"), 1):
        key = line.split(b"=", 1)[0]
        if b"=" in line and (key.startswith(b".") or key.endswith(b".") or b".." in key):
            shown = key[:40].decode("ascii", errors="replace")
            raise KdxError(f"{dump.path} has a damaged VMCOREINFO note (line {number}: key "
                           f"{shown!r}); the dump is corrupt")
