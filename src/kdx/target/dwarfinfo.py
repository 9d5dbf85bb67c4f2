"""The compilation directory (DW_AT_comp_dir) of a debug file's first unit, read straight
from its ``.debug_info`` and ``.debug_abbrev`` sections.

``dis -l`` prints a kernel source name after the directory it was compiled in, and drgn
does not expose DW_AT_comp_dir, so this minimal reader walks the first unit's first DIE.
It reads a debug file, not the kernel, and so sits beside the ELF reader.
"""

from __future__ import annotations

import struct

from kdx.target.elfinfo import section_table

__all__ = ["first_comp_dir"]


_DW_AT_NAME = 0x03
_DW_AT_COMP_DIR = 0x1B
_FIXED_FORMS = {0x01: 8, 0x0B: 1, 0x05: 2, 0x06: 4, 0x07: 8, 0x0C: 1, 0x11: 1, 0x12: 2,
                0x13: 4, 0x14: 8, 0x17: 4, 0x0E: 4, 0x1F: 4, 0x10: 4, 0x19: 0, 0x1E: 16,
                0x25: 1, 0x26: 2, 0x27: 3, 0x28: 4, 0x29: 1, 0x2A: 2, 0x2B: 3, 0x2C: 4,
                0x20: 8, 0x1C: 4, 0x1D: 4}


def _uleb(data: bytes, pos: int) -> tuple[int, int]:
    value = shift = 0
    while True:
        b = data[pos]
        pos += 1
        value |= (b & 0x7F) << shift
        shift += 7
        if not b & 0x80:
            return value, pos


def _sections(f) -> dict[str, tuple[int, int, int]]:  # noqa: ANN001 (a binary file)
    """ELF64 section name -> (offset, size, flags)."""
    return {s.name: (s.offset, s.size, s.flags) for s in section_table(f)}


def first_comp_dir(path: str, max_units: int = 64) -> str | None:
    """DW_AT_comp_dir of the first compilation unit that names its file relatively (the
    C files; assembly units name theirs absolutely): a minimal reader of each unit's
    first DIE, because drgn does not expose it and crash's file names depend on it."""
    with open(path, "rb") as f:
        sections = _sections(f)
        if ".debug_info" not in sections or ".debug_abbrev" not in sections:
            return None
        info_off, info_size, flags = sections[".debug_info"]
        if flags & 0x800:  # SHF_COMPRESSED
            return None
        unit = 0
        for _ in range(max_units):
            if unit + 12 > info_size:
                return None
            f.seek(info_off + unit)
            info = f.read(min(info_size - unit, 4096))
            length, version = struct.unpack_from("<IH", info, 0)
            if length == 0xFFFFFFFF or version not in (2, 3, 4, 5):
                return None
            name, comp_dir = _unit_names(f, sections, info, version)
            if name and comp_dir and not name.startswith("/"):
                return comp_dir
            unit += 4 + length
    return None


def _unit_names(f, sections, info: bytes, version: int) -> tuple[str | None, str | None]:  # noqa: ANN001
    """DW_AT_name and DW_AT_comp_dir of a unit's first DIE."""
    if version >= 5:
        _unit_type, _addr_size, abbrev_off = struct.unpack_from("<BBI", info, 6)
        pos = 12
    else:
        abbrev_off, _addr_size = struct.unpack_from("<IB", info, 6)
        pos = 11
    code, pos = _uleb(info, pos)
    ab_off, ab_size, _ = sections[".debug_abbrev"]
    f.seek(ab_off + abbrev_off)
    abbrev = f.read(min(ab_size - abbrev_off, 65536))
    name = comp_dir = None
    for attr, form, _implicit in _abbrev_specs(abbrev, code):
        if attr == _DW_AT_NAME:
            name = _read_string(f, sections, info, pos, form)
        elif attr == _DW_AT_COMP_DIR:
            comp_dir = _read_string(f, sections, info, pos, form)
        pos = _skip_form(info, pos, form)
    return name, comp_dir


def _abbrev_specs(abbrev: bytes, wanted: int) -> list[tuple[int, int, int]]:
    pos = 0
    while pos < len(abbrev):
        code, pos = _uleb(abbrev, pos)
        if code == 0:
            break
        _tag, pos = _uleb(abbrev, pos)
        pos += 1  # has_children
        specs = []
        while True:
            attr, pos = _uleb(abbrev, pos)
            form, pos = _uleb(abbrev, pos)
            implicit = 0
            if form == 0x21:  # DW_FORM_implicit_const
                implicit, pos = _uleb(abbrev, pos)
            if attr == 0 and form == 0:
                break
            specs.append((attr, form, implicit))
        if code == wanted:
            return specs
    raise ValueError("abbreviation not found")


def _skip_form(info: bytes, pos: int, form: int) -> int:
    if form in _FIXED_FORMS:
        return pos + _FIXED_FORMS[form]
    if form == 0x08:  # DW_FORM_string
        return info.index(b"\0", pos) + 1
    if form in (0x0F, 0x0D, 0x15, 0x1A, 0x1B):  # udata, sdata, ref_udata, strx, addrx
        return _uleb(info, pos)[1]
    if form == 0x21:
        return pos
    if form in (0x0A, 0x18):  # block1... exprloc
        size, pos = _uleb(info, pos) if form == 0x18 else (info[pos], pos + 1)
        return pos + size
    raise ValueError(f"DWARF form {form:#x} not handled")


def _read_string(f, sections, info: bytes, pos: int, form: int) -> str | None:  # noqa: ANN001
    if form == 0x08:
        return info[pos:info.index(b"\0", pos)].decode(errors="replace")
    table = {0x0E: ".debug_str", 0x1F: ".debug_line_str"}.get(form)
    if table is None or table not in sections:
        return None
    offset, = struct.unpack_from("<I", info, pos)
    sec_off, sec_size, _ = sections[table]
    f.seek(sec_off + offset)
    raw = f.read(min(4096, sec_size - offset))
    return raw[:raw.index(b"\0")].decode(errors="replace")
