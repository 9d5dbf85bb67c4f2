"""A vmlinux's symbol rows kept on disk, so a session names addresses without reading
the ``.symtab`` again.

Turning a distribution kernel's ~120,000 ELF symbols into crash's sorted table is pure
Python work (unpacking, nm letters, sorting, cutting clone suffixes) of about a third of
a second: the largest part of a short session such as ``bt``. What it produces depends
on the vmlinux file alone (the KASLR offset is applied afterwards), so it is computed
once per file and stored in the user's cache, keyed by the file's path, size and
modification time. A missing, stale, damaged or unwritable cache only means the rows
are computed again; it never changes an answer.

Example::

    >>> rows = cached_rows(Path("vmlinux"), lambda: build(Path("vmlinux")))
"""

from __future__ import annotations

import contextlib
import marshal
import os
import sys
import zlib
from pathlib import Path
from typing import Any, Callable, TypeVar

__all__ = ["cache_dir", "cached_rows"]

#: Bumped whenever what is stored changes shape or meaning, so old files are ignored.
_FORMAT = 2

Rows = TypeVar("Rows")


def cache_dir() -> Path:
    """Where the rows are kept: ``$XDG_CACHE_HOME/kdx/symbols`` (``~/.cache`` by default)."""
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "kdx" / "symbols"


def cached_rows(vmlinux: Path, build: Callable[[], Rows]) -> Rows:
    """``build()``'s result for ``vmlinux``, from the cache when it holds this very file's
    (same path, size and modification time), else built and stored for next time.

    ``build`` must return plain data marshal can store (lists, tuples, ints, strs,
    bytes); flat columns (one string, one ``array`` as bytes) read back fastest."""
    try:
        key = _key(vmlinux)
    except OSError:
        return build()
    # a short name for the file; the whole key inside it decides whether it is this file's
    path = cache_dir() / f"{zlib.crc32(key.encode()):08x}.marshal"
    found = _load(path, key)
    if found is not None:
        return found
    rows = build()
    _store(path, key, rows)
    return rows


def _key(vmlinux: Path) -> str:
    st = vmlinux.stat()
    return f"{_FORMAT}:{sys.byteorder}:{vmlinux.resolve()}:{st.st_size}:{st.st_mtime_ns}"


def _load(path: Path, key: str) -> Any:
    """The stored rows, or None when there are none, they belong to another file, or
    they cannot be read back whole (marshal refuses a truncated or foreign file with an
    exception, never bad data of the right shape: the file is written whole or not at
    all, see :func:`_store`)."""
    try:
        stored = marshal.loads(path.read_bytes())  # load(file) reads a few bytes at a time
    except (OSError, EOFError, ValueError, TypeError):
        return None
    if not isinstance(stored, tuple) or len(stored) != 2 or stored[0] != key:
        return None
    return stored[1]


def _store(path: Path, key: str, rows: object) -> None:
    """Write the rows to a temporary file beside ``path`` and rename it into place, so
    a reader sees the old state or the whole new file; a cache that cannot be written
    is skipped silently (the next session builds the rows again)."""
    import tempfile

    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, temp = tempfile.mkstemp(dir=path.parent, prefix=".tmp-", suffix=".marshal")
    except OSError:
        return
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(marshal.dumps((key, rows)))
        os.replace(temp, path)
    except (OSError, ValueError):
        with contextlib.suppress(OSError):
            os.unlink(temp)
