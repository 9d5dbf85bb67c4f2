"""Writing a file of the user's cache so that no reader ever sees half of it.

kdx keeps what it can compute again (symbol columns, compiled record methods) under
``~/.cache/kdx``, where several kdx processes may read and write at once, and where a
reader may have the old file mapped into memory. A file is therefore written beside its
place under a temporary name and renamed over it: readers see the old file or the whole
new one. A cache that cannot be written is simply skipped (the next run computes the
data again), so every error is swallowed and reported only by the return value.

Example::

    >>> write_whole(Path("~/.cache/kdx/x.bin").expanduser(), [b"header", b"data"])
    True
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterable
from pathlib import Path

__all__ = ["write_whole"]


def write_whole(path: Path, chunks: Iterable[bytes]) -> bool:
    """Write ``chunks`` to ``path`` whole or not at all; whether it was written."""
    import tempfile  # here: the many runs that write nothing never need it

    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, temp = tempfile.mkstemp(dir=path.parent, prefix=".tmp-", suffix=path.suffix)
    except OSError:
        return False
    try:
        with os.fdopen(fd, "wb") as f:
            for chunk in chunks:
                f.write(chunk)
        os.replace(temp, path)
    except (OSError, ValueError):
        with contextlib.suppress(OSError):
            os.unlink(temp)
        return False
    return True
