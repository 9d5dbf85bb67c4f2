"""A vmlinux's symbol rows kept on disk, so a session names addresses without reading
the ``.symtab`` again.

Turning a distribution kernel's ~120,000 ELF symbols into crash's sorted table is pure
Python work (unpacking, nm letters, sorting, cutting clone suffixes) of about a third of
a second: the largest part of a short session such as ``bt``. What it produces depends
on the vmlinux file alone (the KASLR offset is applied afterwards), so it is computed
once per file and stored in the user's cache, keyed by the file's path, size and
modification time. A missing, stale, damaged or unwritable cache only means the rows
are computed again; it never changes an answer.

The rows are stored as flat columns (addresses, sizes, name offsets, letters, names)
and mapped into memory rather than read: a session looks up a few hundred of the
120,000 symbols, and copying 6 MB into a fresh process cost it 15 ms. A file is only
ever replaced whole (written beside and renamed), never changed in place, so a mapping
stays valid while a session uses it.

Example::

    >>> small, columns = cached_columns(Path("vmlinux"), lambda: build(Path("vmlinux")))
    >>> columns["values"][0]          # a memoryview of unsigned 64-bit integers
"""

from __future__ import annotations

import contextlib
import marshal
import mmap
import os
import struct
import sys
import zlib
from pathlib import Path
from typing import Any, Callable

from kdx.cachefile import write_whole

__all__ = ["Columns", "as_views", "cache_dir", "cached_columns"]

#: Bumped whenever what is stored changes shape or meaning, so old files are ignored.
_FORMAT = 3
_MAGIC = b"kdx-symbols\0"
_HEAD = struct.Struct("<12sI")  # magic, length of the marshalled header that follows

#: What a builder gives and a load returns: small marshal-able data, and named columns
#: (typecode as the ``array``/``memoryview`` modules spell it, then the raw bytes; a
#: load gives each as a memoryview of that type).
Columns = tuple[Any, dict[str, tuple[str, bytes]]]
Loaded = tuple[Any, dict[str, memoryview]]


def cache_dir() -> Path:
    """Where the rows are kept: ``$XDG_CACHE_HOME/kdx/symbols`` (``~/.cache`` by default)."""
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "kdx" / "symbols"


def cached_columns(vmlinux: Path, build: Callable[[], Columns]) -> Loaded:
    """``build()``'s result for ``vmlinux``, from the cache when it holds this very file's
    (same path, size and modification time), else built and stored for next time."""
    try:
        key = _key(vmlinux)
    except OSError:
        return as_views(build())
    # a short name for the file; the whole key inside it decides whether it is this file's
    path = cache_dir() / f"{zlib.crc32(key.encode()):08x}.columns"
    found = _load(path, key)
    if found is not None:
        return found
    built = build()
    _store(path, key, built)
    return as_views(built)


def _key(vmlinux: Path) -> str:
    st = vmlinux.stat()
    return f"{_FORMAT}:{sys.byteorder}:{vmlinux.resolve()}:{st.st_size}:{st.st_mtime_ns}"


def as_views(built: Columns) -> Loaded:
    """A builder's columns as a load returns them (memoryviews of their types)."""
    small, columns = built
    return small, {name: memoryview(data).cast(code) for name, (code, data) in columns.items()}


def _load(path: Path, key: str) -> Loaded | None:
    """The stored columns, or None when there are none, they belong to another file, or
    the file is not whole (every column must lie inside it)."""
    try:
        with open(path, "rb") as f:
            mapped = mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ)
    except (OSError, ValueError):  # missing, unreadable, or empty (nothing to map)
        return None
    try:
        magic, length = _HEAD.unpack_from(mapped)
        if magic != _MAGIC:
            return None
        stored_key, small, layout = marshal.loads(mapped[_HEAD.size:_HEAD.size + length])
        if stored_key != key:
            return None
        view = memoryview(mapped)
        base = _data_start(length)
        columns = {}
        for name, code, start, size in layout:
            if not base <= base + start <= base + start + size <= len(mapped):
                return None
            columns[name] = view[base + start:base + start + size].cast(code)
    except (struct.error, EOFError, ValueError, TypeError):
        return None
    return small, columns


def _data_start(header_length: int) -> int:
    """Where the columns begin: after the header, 8-byte aligned (columns are placed
    relative to it, each 8-byte aligned too)."""
    end = _HEAD.size + header_length
    return end + -end % 8


def _store(path: Path, key: str, built: Columns) -> None:
    """Write the columns to a temporary file beside ``path`` and rename it into place, so
    a reader sees the old file or the whole new one (and a mapping of the old one stays
    valid); a cache that cannot be written is skipped silently (the next session builds
    the rows again)."""
    small, columns = built
    layout, offset, blobs = [], 0, []
    for name, (code, data) in columns.items():
        layout.append((name, code, offset, len(data)))
        padded = len(data) + -len(data) % 8  # each column starts 8-byte aligned
        blobs.append(data + bytes(padded - len(data)))
        offset += padded
    header = marshal.dumps((key, small, layout))
    base = _data_start(len(header))
    head = _HEAD.pack(_MAGIC, len(header)) + header
    if not write_whole(path, [head, bytes(base - len(head)), *blobs]):
        return
    for older in path.parent.glob("*.marshal"):  # what earlier kdx versions stored
        with contextlib.suppress(OSError):
            older.unlink()
