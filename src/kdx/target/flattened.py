"""makedumpfile's flattened format: recognise it, measure it, and reassemble it.

``makedumpfile -F`` (and QEMU's kdump output, and every dump sent over ssh by kdump) writes
a stream instead of a seekable file: a 4 KiB header starting with ``makedumpfile``, then
records of (offset, size) in big-endian 64-bit integers followed by ``size`` bytes that
belong at ``offset`` of the real dump, ended by a record whose offset is -1. drgn refuses
such files, so kdx rewrites each record at its offset to get the ordinary dump back.
"""

from __future__ import annotations

import os
import struct
from pathlib import Path
from typing import BinaryIO, Callable, Iterator

from kdx.errors import KdxError

SIGNATURE = b"makedumpfile\0"
HEADER_SIZE = 4096
_RECORD = struct.Struct(">qq")
_END_OFFSET = -1
_COPY_CHUNK = 1 << 20
_CUT_LIMIT = 1 << 42  # 4 TiB: far records of a cut stream, sparse in the copy


def is_flattened(path: Path) -> bool:
    """True when ``path`` starts with the flattened-format signature."""
    with open(path, "rb") as f:
        return f.read(len(SIGNATURE)) == SIGNATURE


class Truncated(KdxError):
    """The stream ends before its end marker (an interrupted copy or capture)."""


def _records(f: BinaryIO, name: str) -> Iterator[tuple[int, int, int]]:
    """Yield (dump offset, size, stream offset of the data) for each record of ``f``."""
    f.seek(HEADER_SIZE)
    limit = _offset_limit(f)
    while True:
        raw = f.read(_RECORD.size)
        if len(raw) < _RECORD.size:
            raise Truncated(f"{name} is a truncated flattened dump: it ends before its end "
                            "marker")
        offset, size = _RECORD.unpack(raw)
        if offset == _END_OFFSET:
            return
        if offset < 0 or size < 0 or offset + size > limit:
            raise KdxError(f"{name} is a corrupt flattened dump: bad record at byte {f.tell()}")
        start = f.tell()
        yield offset, size, start
        f.seek(start + size)


def _offset_limit(f: BinaryIO) -> int:
    """How far into the dump a record may reach: a whole stream (its end marker last)
    carries a dump no larger than itself; a stream cut short carries the start of one
    of unknown size, whose later records may lie far beyond the cut."""
    size = os.fstat(f.fileno()).st_size
    f.seek(max(size - _RECORD.size, 0))
    tail = f.read(_RECORD.size)
    f.seek(HEADER_SIZE)
    whole = len(tail) == _RECORD.size and _RECORD.unpack(tail)[0] == _END_OFFSET
    return size if whole else max(size, _CUT_LIMIT)


def stream_length(path: Path) -> int:
    """Length in bytes of the flattened stream, up to and including its end marker.

    A stream written to a raw disk is followed by whatever the disk held before, so the lab
    uses this to cut it to its real size.
    """
    with open(path, "rb") as f:
        for _ in _records(f, str(path)):
            pass
        return f.tell()


def reassemble(
    src: Path, dst: Path, progress: Callable[[int, int], None] | None = None
) -> list[tuple[int, int]] | None:
    """Write the ordinary dump that the flattened stream ``src`` describes to ``dst``.

    ``progress`` is called with (bytes done, bytes total) of the stream. The output is
    written to a temporary name and renamed, so an interrupted run leaves no half dump.
    Returns None for a whole stream; for one cut short (also noted beside ``dst``, see
    ``covered_ranges``), the (start, end) byte ranges of the dump that its records did
    carry, merged and sorted: the rest of ``dst`` is holes that must not be read as data.
    """
    total = src.stat().st_size
    tmp = dst.with_name(dst.name + ".part")
    try:
        with open(src, "rb") as f, open(tmp, "wb") as out:
            carried, cut = _write_records(src, f, out, total, progress)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    if cut and not any(end > start for start, end in carried):
        tmp.unlink(missing_ok=True)
        raise KdxError(f"{src} is a truncated flattened dump: it ends before its first record")
    covered = _merged(carried) if cut else None
    side = _covered_path(dst)
    if covered is not None:  # before the dump appears: a reader of it then finds both
        import json

        side.write_text(json.dumps(covered) + "\n")
    else:
        side.unlink(missing_ok=True)
    tmp.replace(dst)
    return covered


def _write_records(src: Path, f: BinaryIO, out: BinaryIO, total: int,
                   progress: Callable[[int, int], None] | None
                   ) -> tuple[list[tuple[int, int]], bool]:
    """Write each record at its offset; (the byte ranges written, whether the stream was
    cut short)."""
    carried: list[tuple[int, int]] = []
    try:
        for offset, size, start in _records(f, str(src)):
            f.seek(start)
            out.seek(offset)
            written = _copy(f, out, size)
            carried.append((offset, offset + written))
            if written < size:
                return carried, True
            if progress:
                progress(start + size, total)
    except Truncated:
        return carried, True
    return carried, False


def _covered_path(dst: Path) -> Path:
    return dst.with_name(dst.name + ".covered")


def covered_ranges(dst: Path) -> list[tuple[int, int]] | None:
    """What ``reassemble`` returned for the dump it wrote to ``dst``: None when the stream
    was whole, else the byte ranges its records carried."""
    try:
        import json

        ranges = json.loads(_covered_path(dst).read_text())
    except FileNotFoundError:
        return None
    except (OSError, ValueError):
        return []  # an unreadable note of what is there: trust no page of it
    return [(int(a), int(b)) for a, b in ranges]


def _copy(f: BinaryIO, out: BinaryIO, size: int) -> int:
    """Copy up to ``size`` bytes from ``f`` to ``out``; how many the stream still held."""
    left = size
    while left:
        chunk = f.read(min(left, _COPY_CHUNK))
        if not chunk:
            break
        out.write(chunk)
        left -= len(chunk)
    return size - left


def _merged(ranges: list[tuple[int, int]]) -> list[tuple[int, int]]:
    out: list[tuple[int, int]] = []
    for start, end in sorted(r for r in ranges if r[1] > r[0]):
        if out and start <= out[-1][1]:
            out[-1] = (out[-1][0], max(out[-1][1], end))
        else:
            out.append((start, end))
    return out
