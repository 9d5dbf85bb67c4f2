"""The kernel's own symbol table (kallsyms), read from the dump without a vmlinux.

Since Linux 6.0, VMCOREINFO names the kallsyms tables (``SYMBOL(kallsyms_names)=`` and
friends) and drgn decodes them. Older kernels (RHEL 8/9, Ubuntu 20.04/22.04, Debian 11)
and dumps whose VMCOREINFO was recovered only in part name none of them, yet the tables
are still in the kernel image. We find them by their shape:

- ``kallsyms_token_index`` is 256 increasing u16 offsets, each the start of one of the
  256 NUL-terminated strings of ``kallsyms_token_table`` just before it: a signature that
  random data practically never fakes, so it is searched for first;
- ``kallsyms_markers`` holds, every 256 symbols, the offset of that symbol in
  ``kallsyms_names``, which it follows; ``kallsyms_num_syms`` directly precedes the names.
  Walking the names must land on every marker and end where the markers begin;
- the addresses (``kallsyms_offsets`` + ``kallsyms_relative_base``, or
  ``kallsyms_addresses``) sit before ``kallsyms_num_syms`` (kernels before 6.4) or after
  the token index (6.4 and later). Each layout is tried and kept only if ``_stext`` and the
  other symbols VMCOREINFO names decode to the addresses VMCOREINFO gives.

The located addresses are handed to drgn's own kallsyms loader, so both paths yield the
same ``drgn.SymbolIndex``.
"""

from __future__ import annotations

import re
import struct
from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import Callable, Iterator, Optional

import drgn

from kdx.errors import KdxError

__all__ = ["KallsymsTables", "KernelSymbols", "load_kernel_symbols", "locate_tables"]

Progress = Optional[Callable[[str], None]]

#: Where x86_64 links ``_stext`` before KASLR moves it by ``KERNELOFFSET``.
_X86_64_TEXT_BASE = 0xFFFFFFFF81000000
_PAGE = 4096
#: The kernel image is read in chunks of this size, from ``_stext`` on.
_CHUNK = 4 << 20
#: At most this much of the image is searched: the tables sit in .rodata, some 20 MB in
#: on distribution kernels; a bound keeps a dump without kallsyms from being read whole.
_SCAN_LIMIT = 160 << 20
#: A run of unreadable memory this long means the image has ended.
_HOLE_LIMIT = 16 << 20
#: The longest name entry in bytes: a two-byte length and KSYM_NAME_LEN (512) tokens.
_MAX_ENTRY = 2 + 512
#: Markers are 256 symbols apart, each name entry at least 2 bytes long.
_MARKER_STEP = (2 * 256, 256 * _MAX_ENTRY)
#: How far before the token table the names and markers are looked for.
_NAMES_WINDOW = 24 << 20
#: The tables are aligned to 8 bytes on 64-bit kernels before 7.x, to 4 since (and on
#: 32-bit ones): the search steps by the smaller.
_MIN_ALIGN = 4
_MAX_ALIGN = 8
#: How many candidate marker arrays are tried, longest first.
_MARKER_TRIES = 16

#: The first entries of a token index: 0, then offsets of the second and third tokens.
_TOKEN_INDEX_HEAD = re.compile(rb"\x00\x00[\x02-\x40]\x00[\x04-\x7f]\x00")
#: The first two markers: 0, then the offset of symbol 256 (below 0x20000).
_MARKERS_HEAD = re.compile(rb"\x00\x00\x00\x00(?=[\x00-\xff][\x02-\xff][\x00-\x01]\x00)")

#: VMCOREINFO symbols whose value is the symbol's own address (not a pointer read through
#: it, as ``mem_section`` and ``vmemmap`` are): a found table must agree on each it has.
_CHECKED_SYMBOLS = ("_stext", "init_uts_ns", "swapper_pg_dir", "init_top_pgt",
                    "node_online_map", "prb", "printk_rb_static", "clear_seq",
                    "vmap_area_list", "node_data", "log_buf")

_NOT_FOUND = ("the dump's kallsyms tables could not be found in kernel memory "
              "(kernel built without CONFIG_KALLSYMS, or its image not saved in the dump?)")


@dataclass(frozen=True)
class KallsymsTables:
    """Addresses of the kernel's kallsyms tables (0 where the kernel has none)."""

    names: int
    token_table: int
    token_index: int
    num_syms: int  # the address of the u32 count
    offsets: int
    relative_base: int
    addresses: int
    stext: int
    count: int = 0  # the number of symbols, when known before loading
    markers: int = 0  # found by the scan only


@dataclass(frozen=True)
class KernelSymbols:
    """The kernel's symbol table: a drgn symbol finder and where it came from."""

    index: drgn.SymbolIndex
    tables: KallsymsTables
    how: str  # "vmcoreinfo" or "scan"
    count: int

    def address(self, prog: drgn.Program, name: str) -> int | None:
        """The address of the symbol ``name``, or None when kallsyms does not have it."""
        found = self.index(prog, name, None, True)
        return found[0].address if found else None


def load_kernel_symbols(prog: drgn.Program, vmcoreinfo: Mapping[str, str] | None = None,
                        progress: Progress = None) -> KernelSymbols:
    """The kernel's kallsyms as a drgn ``SymbolIndex``, from the tables VMCOREINFO names
    or, when it names none (or wrong ones), from tables located in kernel memory.
    ``vmcoreinfo`` defaults to the program's own; raises KdxError in one sentence."""
    info = dict(vmcoreinfo) if vmcoreinfo is not None else _program_vmcoreinfo(prog)
    stext = _stext(prog, info)
    named = _named_tables(info, stext)
    if named is not None:
        try:
            index = _load(prog, named, info)
            named = replace(named, count=_count(prog, named))
            return KernelSymbols(index, named, "vmcoreinfo", named.count)
        except KdxError:
            pass  # VMCOREINFO may be stale or partial: the tables in memory decide
    if progress:
        progress("searching kernel memory for the kallsyms symbol table")
    index, tables = _scan(prog, info, stext)
    return KernelSymbols(index, tables, "scan", tables.count)


def locate_tables(prog: drgn.Program, vmcoreinfo: Mapping[str, str] | None = None
                  ) -> KallsymsTables:
    """Where the kallsyms tables are in kernel memory, found by scanning it (never from
    VMCOREINFO's ``SYMBOL(kallsyms_*)`` lines, which this exists to do without)."""
    info = dict(vmcoreinfo) if vmcoreinfo is not None else _program_vmcoreinfo(prog)
    return _scan(prog, info, _stext(prog, info))[1]


def _program_vmcoreinfo(prog: drgn.Program) -> dict[str, str]:
    try:
        text = prog["VMCOREINFO"].string_().decode(errors="replace")
    except (LookupError, drgn.FaultError) as err:
        raise KdxError(f"the dump has no readable VMCOREINFO, so its kernel symbols "
                       f"cannot be found: {err}") from None
    return dict(line.split("=", 1) for line in text.splitlines() if "=" in line)


def _symbol(info: Mapping[str, str], name: str) -> int:
    """A ``SYMBOL(name)=hex`` value of VMCOREINFO, 0 when absent or unreadable."""
    try:
        return int(info.get(f"SYMBOL({name})", "0"), 16)
    except ValueError:
        return 0


def _stext(prog: drgn.Program, info: Mapping[str, str]) -> int:
    """Where the kernel text starts: VMCOREINFO says so on every kernel since 2.6.24; on
    x86_64 the link address moved by KERNELOFFSET gives the same when the line is lost."""
    found = _symbol(info, "_stext")
    if found:
        return found
    if prog.platform is not None and prog.platform.arch == drgn.Architecture.X86_64:
        try:
            return _X86_64_TEXT_BASE + int(info.get("KERNELOFFSET", "0"), 16)
        except ValueError:
            pass
    raise KdxError("the dump's VMCOREINFO says neither where the kernel text starts "
                   "(_stext) nor its KASLR offset, so its symbol table cannot be found")


def _named_tables(info: Mapping[str, str], stext: int) -> KallsymsTables | None:
    """The tables as VMCOREINFO names them (Linux 6.0+), or None when it lacks any."""
    found = {name: _symbol(info, f"kallsyms_{name}") for name in (
        "names", "token_table", "token_index", "num_syms", "offsets", "relative_base",
        "addresses")}
    needed = ("names", "token_table", "token_index", "num_syms")
    if not all(found[n] for n in needed) or not (found["offsets"] or found["addresses"]):
        return None
    return KallsymsTables(stext=stext, **found)


def _loader() -> Callable[..., drgn.SymbolIndex]:
    """drgn's private loader of built-in kallsyms, the one its public helper calls."""
    try:
        from _drgn import _linux_helper_load_builtin_kallsyms
    except ImportError:
        raise KdxError("this drgn has no loader for the kernel's built-in kallsyms "
                       "(drgn 0.0.30 or later is needed to read symbols without a "
                       "vmlinux)") from None
    return _linux_helper_load_builtin_kallsyms


def _load(prog: drgn.Program, tables: KallsymsTables,
          info: Mapping[str, str] | None = None) -> drgn.SymbolIndex:
    """Decode the tables with drgn, then check the result against VMCOREINFO."""
    try:
        index = _loader()(prog, tables.names, tables.token_table, tables.token_index,
                          tables.num_syms, tables.offsets, tables.relative_base,
                          tables.addresses, tables.stext)
    except (drgn.FaultError, drgn.BadDataError, drgn.MissingDebugInfoError, ValueError,
            OverflowError, MemoryError) as err:
        raise KdxError(f"the dump's kallsyms tables cannot be decoded: {err}") from None
    if info is not None:
        _check(prog, index, info)
    return index


def _check(prog: drgn.Program, index: drgn.SymbolIndex, info: Mapping[str, str]) -> None:
    """Every symbol VMCOREINFO places must be where the decoded table puts it."""
    for name in _CHECKED_SYMBOLS:
        expected = _symbol(info, name)
        if not expected:
            continue
        found = index(prog, name, None, False)
        if found and all(sym.address != expected for sym in found):
            raise KdxError(f"the kallsyms table found in the dump puts {name} at "
                           f"{found[0].address:#x}, but VMCOREINFO says {expected:#x}")


def _count(prog: drgn.Program, tables: KallsymsTables) -> int:
    try:
        return int.from_bytes(prog.read(tables.num_syms, 4), "little")
    except drgn.FaultError:
        return 0


class _Image:
    """The kernel image from ``_stext`` on, read in large chunks as the search needs it.

    Pages the dump left out (filtered by makedumpfile, or freed by the kernel) read as
    zeros, page by page, so a hole neither stops the search nor makes it loop; the
    search ends at ``_SCAN_LIMIT`` or after ``_HOLE_LIMIT`` of unreadable memory.
    """

    def __init__(self, prog: drgn.Program, base: int) -> None:
        self.prog = prog
        self.base = base
        self.data = bytearray()
        self.readable = 0  # bytes actually read from the dump
        self._hole = 0

    def grow(self) -> bool:
        """Append the next chunk; False when the search must end."""
        if len(self.data) >= _SCAN_LIMIT or self._hole >= _HOLE_LIMIT:
            return False
        start = self.base + len(self.data)
        try:
            self.data += self.prog.read(start, _CHUNK)
            self.readable += _CHUNK
            self._hole = 0
            return True
        except drgn.FaultError:
            pass
        for page in range(start, start + _CHUNK, _PAGE):
            try:
                self.data += self.prog.read(page, _PAGE)
                self.readable += _PAGE
                self._hole = 0
            except drgn.FaultError:
                self.data += bytes(_PAGE)
                self._hole += _PAGE
        return True

    def read(self, address: int, size: int) -> bytes:
        """``size`` bytes at ``address``, from the chunks read so far or from the dump."""
        pos = address - self.base
        if pos >= 0 and pos + size <= len(self.data):
            return bytes(self.data[pos:pos + size])
        return self.prog.read(address, size)


def _scan(prog: drgn.Program, info: Mapping[str, str],
          stext: int) -> tuple[drgn.SymbolIndex, KallsymsTables]:
    """Locate the tables in the kernel image and load them; KdxError when nothing fits."""
    word = 8 if prog.platform is None or (
        prog.platform.flags & drgn.PlatformFlags.IS_64_BIT) else 4
    image = _Image(prog, stext)
    searched = 0
    while image.grow():
        for token_table, token_index in _token_tables(image, searched):
            found = _complete(prog, image, info, stext, token_table, token_index, word)
            if found is not None:
                return found
        # The next search restarts a little back, for an index cut by the chunk's end.
        searched = max(0, len(image.data) - 1024)
    if image.readable == 0:
        raise KdxError("the dump holds none of the kernel image, so its kallsyms symbol "
                       "table cannot be read")
    raise KdxError(_NOT_FOUND)


def _token_tables(image: _Image, start: int) -> Iterator[tuple[int, int]]:
    """(token_table, token_index) addresses of every token table in the image from
    ``start`` on whose index agrees exactly with its string boundaries."""
    data = image.data
    for match in _TOKEN_INDEX_HEAD.finditer(data, start):
        pos = match.start()
        if (image.base + pos) % _MIN_ALIGN or pos + 512 > len(data):
            continue
        index = struct.unpack_from("<256H", data, pos)
        if any(b - a < 2 for a, b in zip(index, index[1:])):
            continue
        table = _token_table_before(data, pos, index)
        if table is not None:
            yield image.base + table, image.base + pos


def _token_table_before(data: bytearray, index_pos: int,
                        index: tuple[int, ...]) -> int | None:
    """Where the token table described by ``index`` starts, if it ends (with its padding)
    right before ``index_pos`` and its strings start exactly at the indexed offsets."""
    last = index_pos - 1
    while last >= 0 and index_pos - last <= _MAX_ALIGN + 1 and data[last] == 0:
        last -= 1
    if last < 0 or index_pos - last > _MAX_ALIGN + 1:
        return None
    start = data.rfind(b"\0", 0, last) + 1 - index[255]
    if start < 0 or start % _MIN_ALIGN:
        return None
    strings = bytes(data[start:last + 1]).split(b"\0")
    if len(strings) != 256 or not all(strings):
        return None
    offset = 0
    for expected, token in zip(index, strings):
        if offset != expected:
            return None
        offset += len(token) + 1
    return start


def _complete(prog: drgn.Program, image: _Image, info: Mapping[str, str], stext: int,
              token_table: int, token_index: int, word: int
              ) -> tuple[drgn.SymbolIndex, KallsymsTables] | None:
    """From a token table, the names, count and addresses around it, loaded and checked."""
    names = _find_names(image, token_table, word)
    if names is None:
        return None
    names_at, count, markers_at, align = names
    num_syms = names_at - align
    for offsets, relative_base, addresses in _address_layouts(
            num_syms, token_index, count, align, word):
        if not _plausible(image, stext, relative_base, addresses, count, word):
            continue
        tables = KallsymsTables(names_at, token_table, token_index, num_syms, offsets,
                                relative_base, addresses, stext, count, markers_at)
        try:
            return _load(prog, tables, info), tables
        except KdxError:
            continue
    return None


def _address_layouts(num_syms: int, token_index: int, count: int, align: int,
                     word: int) -> Iterator[tuple[int, int, int]]:
    """Candidate (offsets, relative_base, addresses) in the link orders kernels used:
    before 6.4 the addresses come first and end right before ``kallsyms_num_syms``; from
    6.4 they follow the token index (and 7.0 dropped ``kallsyms_relative_base``)."""
    def up(value: int) -> int:
        return (value + align - 1) & -align

    relative_base = num_syms - word
    yield relative_base - up(4 * count), relative_base, 0
    yield 0, 0, num_syms - up(word * count)
    after = up(token_index + 512)
    yield after, up(after + 4 * count), 0
    yield after, 0, 0
    yield 0, 0, after


def _plausible(image: _Image, stext: int, relative_base: int, addresses: int, count: int,
               word: int) -> bool:
    """A cheap look before drgn decodes every name: the base of relative offsets, or the
    highest absolute address, must lie near the kernel text."""
    where = relative_base or (addresses + word * (count - 1) if addresses else 0)
    if not where:
        return True  # place-relative offsets: only decoding tells
    try:
        value = int.from_bytes(image.read(where, word), "little")
    except drgn.FaultError:
        return False
    return abs(value - stext) < 1 << 32


def _find_names(image: _Image, token_table: int,
                word: int) -> tuple[int, int, int, int] | None:
    """(kallsyms_names, symbol count, kallsyms_markers, alignment) before the token
    table: the markers whose names walk lands on every marker (longest run first)."""
    data = image.data
    end = token_table - image.base
    window = max(0, end - _NAMES_WINDOW)
    runs = [(m.start(), _marker_run(data, m.start(), end))
            for m in _MARKERS_HEAD.finditer(data, window, end)
            if (image.base + m.start()) % _MIN_ALIGN == 0]
    # The real markers make by far the longest run; the nearest wins a tie.
    runs.sort(key=lambda run: (len(run[1]), run[0]), reverse=True)
    aligns = sorted({word, _MIN_ALIGN}, reverse=True)
    for pos, markers in runs[:_MARKER_TRIES]:
        for count_markers in range(len(markers), max(1, len(markers) - 3), -1):
            for align in aligns:
                found = _names_for(data, pos, markers[:count_markers], align)
                if found is not None:
                    return image.base + found[0], found[1], image.base + pos, align
    return None


def _marker_run(data: bytearray, pos: int, end: int) -> list[int]:
    """The increasing u32 values at ``pos``, 256 plausible symbols apart."""
    values = [0]
    pos += 4
    while pos + 4 <= end:
        value = int.from_bytes(data[pos:pos + 4], "little")
        if not _MARKER_STEP[0] <= value - values[-1] <= _MARKER_STEP[1]:
            break
        values.append(value)
        pos += 4
    return values


def _names_for(data: bytearray, markers_pos: int, markers: list[int],
               align: int) -> tuple[int, int] | None:
    """(names position, count) of the names table the ``markers`` at ``markers_pos``
    index, for a kernel aligning its tables to ``align`` bytes: the u32 count (padded to
    ``align``) precedes the names, which end (padded) where the markers start."""
    if len(markers) < 2:
        return None
    last = markers[-1]
    low = max(align, markers_pos - last - 256 * _MAX_ENTRY)
    start = (markers_pos - last) & -align
    for names in range(start, low - 1, -align):
        count = int.from_bytes(data[names - align:names - align + 4], "little")
        if not 256 * (len(markers) - 1) < count <= 256 * len(markers):
            continue
        if any(data[names - align + 4:names]):
            continue
        if _walk_names(data, names, count, markers, markers_pos, align):
            return names, count
    return None


def _walk_names(data: bytearray, names: int, count: int, markers: list[int],
                markers_pos: int, align: int) -> bool:
    """True when ``count`` length-prefixed names from ``names`` land on every marker and
    end, padded, where the markers start. A length byte with its top bit set is the first
    of two (Linux 6.1+); older kernels have no names that long, so both read the same."""
    pos = names
    limit = markers_pos
    for i in range(count):
        if not i & 0xFF and pos - names != markers[i >> 8]:
            return False
        if pos >= limit:
            return False
        length = data[pos]
        if length & 0x80:
            length = (length & 0x7F) | (data[pos + 1] << 7)
            pos += 1
        if length == 0:
            return False
        pos += 1 + length
    return pos <= markers_pos < pos + align
