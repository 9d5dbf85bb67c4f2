"""Read what a damaged kdump-compressed dump still holds, page by page, from the file itself.

A kdump file cut short (an interrupted copy, a full disk) or with damaged page descriptors
(flipped bits) still holds most of its pages. libkdumpfile cannot be given such a file: it
maps the file into memory, and touching a page whose descriptor points past the end of the
file kills the process with SIGBUS. So for these dumps only, kdx reads the pages itself:
the drgn program is a custom Linux kernel target whose physical memory is one segment read
by a callback over the real file (bitmap rank, descriptor, decompression), and a page whose
data is not in the file, or whose descriptor is impossible, raises drgn's FaultError, which
every command already reports as a page missing from the dump.

Why a read callback and not a repaired copy: a repaired kdump file must hold every page's
data at the offset its descriptor names, so repairing a multi-GB dump means copying it all
(a sparse copy saves nothing: the data is what must be there). The callback reads the dump
where it lies, writes nothing anywhere, and costs one pass over the descriptors at open
(the pass that counts what was lost) and the second bitmap in memory (one bit per page
frame: 4 MiB for 128 GiB of RAM). Sound dumps still go through libkdumpfile, which is
faster. Truncated ELF dumps need none of this: drgn reads them with ``pread`` and a page
past the end is already a FaultError.
"""

from __future__ import annotations

import bisect
import os
import struct
import sys
import zlib
from array import array
from dataclasses import dataclass
from functools import cache, lru_cache
from pathlib import Path
from typing import TYPE_CHECKING, Callable, Sequence

import drgn

from kdx.errors import KdxError

if TYPE_CHECKING:
    import ctypes

__all__ = ["KdumpPages", "KdumpSurvey", "elf_lost_pages", "partial_program", "survey_kdump"]

_HEADER = 424  # offset of status, block_size, sub_hdr_size, bitmap_blocks in the header
_DESC = struct.Struct("<qiIQ")  # page_desc: offset, size, flags, page_flags
_RANK_CHUNK = 512  # bytes of bitmap per entry of the rank table
_SCAN_CHUNK = 1 << 10  # descriptors read (and checked at once) at a time
_CACHED_PAGES = 1024
_ZLIB, _LZO, _SNAPPY, _ZSTD = 0x1, 0x2, 0x4, 0x20

Covered = Sequence[tuple[int, int]]  # sorted (start, end) byte ranges the file holds


@dataclass(frozen=True)
class KdumpSurvey:
    """What a pass over a kdump file's descriptors found: how much of it is readable."""

    size: int  # bytes in the file
    expected: int  # bytes its headers describe
    pages: int  # pages the second bitmap says were saved
    lost: int  # saved pages whose data lies past the end of the file
    bad: int  # saved pages whose descriptors are impossible (flipped bits)
    first_bad: int | None  # rank of the first of those
    #: False when the cut fell inside the descriptor table, so the last page's
    #: descriptor (which says where the file ends) is gone: ``expected`` is then the
    #: furthest end the descriptors still read show, a lower bound
    exact: bool = True

    @property
    def truncated(self) -> bool:
        return self.expected > self.size

    @property
    def sound(self) -> bool:
        return not self.truncated and not self.lost and not self.bad


@dataclass(frozen=True)
class _Layout:
    block: int
    bitmap_off: int
    half: int  # bytes in each bitmap
    descs: int  # offset of the first page descriptor


def _layout(f, name: Path, size: int) -> _Layout:  # noqa: ANN001 (a binary file)
    """The header fields that place the bitmaps and descriptors; a header that places them
    past the end of the file is a dump truncated inside its headers (one error line)."""
    f.seek(_HEADER)
    raw = f.read(16)
    if len(raw) < 16:
        raise KdxError(f"{name} is truncated: it has {size:,} bytes, too few for its header")
    block, sub_blocks, bitmap_blocks = struct.unpack("<xxxxiiI", raw)
    if not 0 < block <= 1 << 20 or sub_blocks < 0:
        raise KdxError(f"{name} has damaged kdump-compressed headers (block size {block}, "
                       f"{sub_blocks} sub-header blocks)")
    bitmap_off = (1 + sub_blocks) * block
    half = bitmap_blocks * block // 2
    descs = bitmap_off + 2 * half
    if descs > size:
        raise KdxError(f"{name} is truncated: it has {size:,} bytes but its headers describe "
                       f"at least {descs:,} before the first page (cut inside its headers)")
    return _Layout(block, bitmap_off, half, descs)


def _covered_end(covered: Covered | None, size: int) -> Callable[[int, int], bool]:
    """Whether the bytes [start, end) are in the file (a reassembled flattened stream cut
    short has holes, not only a short end)."""
    if covered is None:
        return lambda start, end: end <= size
    starts = [s for s, _e in covered]

    def inside(start: int, end: int) -> bool:
        i = bisect.bisect_right(starts, start) - 1
        return i >= 0 and end <= covered[i][1]
    return inside


def survey_kdump(path: Path, covered: Covered | None = None,
                 name: Path | None = None) -> KdumpSurvey:
    """Count the saved pages of the kdump file ``path`` that cannot be read: those lost to
    truncation and those whose descriptors are damaged. ``covered`` lists the byte ranges
    the file really holds when that is not simply all of it.

    The size the headers describe is where the last page's data ends (makedumpfile writes
    the pages in order); a descriptor pointing past the end of the file is a page lost to
    truncation when it points before that, and damage (a flipped bit) when beyond. In a
    reassembled stream cut short (``covered`` given) every page outside it is lost.
    Errors name the dump ``name`` (the file the user gave) when it is not ``path``."""
    size = path.stat().st_size
    with open(path, "rb") as f:
        lay = _layout(f, name or path, size)
        f.seek(lay.bitmap_off + lay.half)
        pages = int.from_bytes(f.read(lay.half), "little").bit_count()
        _check_count(f, lay, pages, name or path)
        expected = _expected_size(f, lay, pages)
        inside = _covered_end(covered, size)
        # a cut inside the table itself: every page's data, which follows the table,
        # is past the cut, so a sane descriptor pointing past the end is a lost page
        table_cut = lay.descs + pages * _DESC.size > size
        furthest = expected
        f.seek(lay.descs)
        lost = bad = done = 0
        first: int | None = None
        while done < pages:
            count = min(_SCAN_CHUNK, pages - done)
            table = f.read(count * _DESC.size)
            whole = len(table) // _DESC.size
            lost += count - whole  # descriptors past the end of the file
            if covered is None and _all_sane(table[:whole * _DESC.size], lay, size):
                done += count
                continue
            for i, (offset, length, _fl, _pf) in enumerate(_DESC.iter_unpack(
                    table[:whole * _DESC.size])):
                sane = offset >= lay.descs and 0 < length <= lay.block
                if sane and inside(offset, offset + length):
                    continue
                at = lay.descs + (done + i) * _DESC.size
                if sane and table_cut:
                    furthest = max(furthest, offset + length)
                if not inside(at, at + _DESC.size) or sane and (
                        covered is not None or table_cut
                        or offset + length <= max(expected, size)):
                    lost += 1
                else:
                    bad += 1
                    first = done + i if first is None else first
            done += count
    if table_cut:
        return KdumpSurvey(size, furthest, pages, lost, bad, first, exact=False)
    return KdumpSurvey(size, expected, pages, lost, bad, first)


def _all_sane(table: bytes, lay: _Layout, size: int) -> bool:
    """Whether every descriptor in ``table`` points at data of a sane length inside the
    file: the case of every intact dump, checked column by column at C speed (a large
    dump has millions of descriptors) before any is looked at one by one."""
    if not table:
        return True
    words, halves = array("Q", table), array("I", table)
    if sys.byteorder == "big":
        words.byteswap()
        halves.byteswap()
    offsets, lengths = words[0::3], halves[2::6]  # page_desc: offset, size, flags, ...
    return (min(offsets) >= lay.descs and min(lengths) > 0 and max(lengths) <= lay.block
            and max(offsets) + lay.block <= size)


def _check_count(f, lay: _Layout, pages: int, path: Path) -> None:  # noqa: ANN001
    """Refuse a file whose second bitmap counts more or fewer saved pages than it has
    descriptors (flipped bits): every page would be matched with another's data. Both
    makedumpfile and QEMU write the first page's data right after the descriptor table,
    so the first descriptor says how long the table really is."""
    f.seek(lay.descs)
    raw = f.read(_DESC.size)
    if len(raw) < _DESC.size:
        return
    offset, length, _fl, _pf = _DESC.unpack(raw)
    table_end = lay.descs + pages * _DESC.size
    if offset < lay.descs or not 0 < length <= lay.block or offset == table_end:
        return  # a damaged first descriptor: nothing to tell the table's length by
    if (offset - lay.descs) % _DESC.size:
        return
    held = (offset - lay.descs) // _DESC.size
    if held > pages and _padding(f, table_end):
        return  # pages dropped from the table, its end zeroed: not a damaged count
    raise KdxError(f"{path} has a damaged page bitmap: it counts {pages:,} saved pages but "
                   f"holds {held:,} page descriptors, so no page can be matched with its "
                   "data; the dump is corrupt")


def _padding(f, at: int) -> bool:  # noqa: ANN001 (a binary file)
    """Whether the descriptor at ``at`` is all zeros (never a real page's)."""
    f.seek(at)
    return not any(f.read(_DESC.size))


def _expected_size(f, lay: _Layout, pages: int) -> int:  # noqa: ANN001 (a binary file)
    """Where the last saved page's data ends, by its descriptor (at least the end of the
    descriptors when that one is cut off or damaged)."""
    table_end = lay.descs + pages * _DESC.size
    if pages == 0:
        return table_end
    f.seek(lay.descs + (pages - 1) * _DESC.size)
    raw = f.read(_DESC.size)
    if len(raw) < _DESC.size:
        return table_end
    offset, length, _fl, _pf = _DESC.unpack(raw)
    if offset < lay.descs or not 0 < length <= lay.block:
        return table_end
    return max(table_end, offset + length)


def _library(name: str) -> ctypes.CDLL | None:
    """A decompression library: the copy drgn's wheel carries, else the system's."""
    import ctypes.util

    folder = Path(drgn.__file__).resolve().parent.parent / "drgn.libs"
    for candidate in sorted(folder.glob(f"lib{name}-*.so*")) if folder.is_dir() else []:
        return ctypes.CDLL(str(candidate))
    found = ctypes.util.find_library(name)
    return ctypes.CDLL(found) if found else None


@cache
def _decompressor(flag: int) -> Callable[[bytes, int], bytes] | None:
    """A function (data, page size) -> page for one page_desc compression flag."""
    if flag == _ZLIB:
        return lambda data, _size: zlib.decompress(data)
    lib = _library({_LZO: "lzo2", _SNAPPY: "snappy", _ZSTD: "zstd"}.get(flag, ""))
    if lib is None:
        return None

    import ctypes

    def run(data: bytes, size: int) -> bytes:
        out = ctypes.create_string_buffer(size)
        length = ctypes.c_size_t(size)
        if flag == _LZO:
            ok = lib.lzo1x_decompress_safe(data, ctypes.c_size_t(len(data)), out,
                                           ctypes.byref(length), None) == 0
        elif flag == _SNAPPY:
            ok = lib.snappy_uncompress(data, ctypes.c_size_t(len(data)), out,
                                       ctypes.byref(length)) == 0
        else:
            lib.ZSTD_decompress.restype = ctypes.c_size_t
            got = lib.ZSTD_decompress(out, ctypes.c_size_t(size), data,
                                      ctypes.c_size_t(len(data)))
            ok = not lib.ZSTD_isError(ctypes.c_size_t(got))
            length = ctypes.c_size_t(got if ok else 0)
        if not ok:
            raise ValueError("decompression failed")
        return out.raw[:length.value]
    return run


class KdumpPages:
    """The physical memory of a kdump file, read page by page from the file; pages not
    saved, lost or damaged raise drgn.FaultError."""

    def __init__(self, path: Path, covered: Covered | None = None) -> None:
        self.path = path
        self._file = open(path, "rb")  # noqa: SIM115 (lives as long as the program)
        self.size = path.stat().st_size
        self.layout = _layout(self._file, path, self.size)
        self._file.seek(self.layout.bitmap_off + self.layout.half)
        self._second = self._file.read(self.layout.half)
        self._ranks = self._rank_table()
        self._inside = _covered_end(covered, self.size)
        self.page = lru_cache(maxsize=_CACHED_PAGES)(self._page)

    @property
    def memory_size(self) -> int:
        """Bytes of physical memory the bitmaps describe."""
        return self.layout.half * 8 * self.layout.block

    def _rank_table(self) -> list[int]:
        ranks, total = [], 0
        for at in range(0, len(self._second), _RANK_CHUNK):
            ranks.append(total)
            total += int.from_bytes(self._second[at:at + _RANK_CHUNK], "little").bit_count()
        return ranks

    def _saved(self, pfn: int) -> bool:
        byte = pfn >> 3
        return byte < len(self._second) and bool(self._second[byte] >> (pfn & 7) & 1)

    def _rank(self, pfn: int) -> int:
        byte = pfn >> 3
        chunk = byte // _RANK_CHUNK
        start = chunk * _RANK_CHUNK
        before = int.from_bytes(self._second[start:byte], "little").bit_count()
        low = self._second[byte] & ((1 << (pfn & 7)) - 1)
        return self._ranks[chunk] + before + low.bit_count()

    def _page(self, pfn: int) -> bytes:
        address = pfn * self.layout.block
        if not self._saved(pfn):
            raise drgn.FaultError("page excluded from the dump", address)
        at = self.layout.descs + self._rank(pfn) * _DESC.size
        # pread, never seek and read: forked workers (kdx.model.forked) share this file's
        # offset with the parent, and one's seek would move the other's read
        raw = os.pread(self._file.fileno(), _DESC.size, at)
        if len(raw) < _DESC.size or not self._inside(at, at + _DESC.size):
            raise drgn.FaultError("page missing from the dump (past its end)", address)
        offset, length, flags, _pf = _DESC.unpack(raw)
        block = self.layout.block
        if offset < self.layout.descs or not 0 < length <= block:
            raise drgn.FaultError("page missing from the dump (damaged descriptor)", address)
        if not self._inside(offset, offset + length):
            raise drgn.FaultError("page missing from the dump (past its end)", address)
        data = os.pread(self._file.fileno(), length, offset)
        return self._decode(data, flags, address)

    def _decode(self, data: bytes, flags: int, address: int) -> bytes:
        block = self.layout.block
        flag = flags & (_ZLIB | _LZO | _SNAPPY | _ZSTD)
        if not flag:
            if len(data) != block:
                raise drgn.FaultError("page missing from the dump (damaged descriptor)",
                                      address)
            return data
        decompress = _decompressor(flag)
        if decompress is None:
            raise drgn.FaultError(f"page unreadable: no library for compression {flag:#x}",
                                  address)
        try:
            page = decompress(data, block)
        except (zlib.error, ValueError, OSError):
            page = b""
        if len(page) != block:
            raise drgn.FaultError("page missing from the dump (damaged data)", address)
        return page

    def read(self, address: int, count: int, _offset: int, _physical: bool) -> bytes:
        """drgn's read callback: ``count`` bytes at physical ``address``."""
        block = self.layout.block
        out = bytearray()
        while count > 0:
            pfn, within = divmod(address, block)
            take = min(count, block - within)
            out += self.page(pfn)[within:within + take]
            address += take
            count -= take
        return bytes(out)


def partial_program(pages: KdumpPages, platform: drgn.Platform, note: bytes) -> drgn.Program:
    """A drgn program over ``pages``: a custom Linux kernel target (page tables walked by
    drgn from the physical memory), set up with the dump's VMCOREINFO text ``note``."""
    prog = drgn.Program(platform, vmcoreinfo=note)
    prog.set_linux_kernel_custom(note, False)
    prog.add_memory_segment(0, pages.memory_size, pages.read, True)
    return prog


def elf_lost_pages(loads: Sequence[tuple[int, int]], size: int, page: int = 4096) -> int:
    """Pages of the (file offset, file size) segments of an ELF core that lie past ``size``."""
    lost = 0
    for offset, filesz in loads:
        end = offset + filesz
        if end > size:
            lost += (end - max(offset, size) + page - 1) // page
    return lost
