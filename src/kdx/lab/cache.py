"""Where the crash lab keeps what is slow to make: chroots, downloaded packages, runs.

Everything the lab builds is cached under one directory so that a second run, or a
team-mate on the same machine, reuses it instead of spending minutes rebuilding it.
``KDX_LAB_CACHE`` moves it (to a bigger disk, or a scratch directory in tests).
"""

from __future__ import annotations

import fcntl
import os
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator


def default_cache() -> Path:
    """Return the lab cache directory: ``$KDX_LAB_CACHE`` or ``~/.cache/kdx/lab``."""
    return Path(os.environ.get("KDX_LAB_CACHE") or Path.home() / ".cache" / "kdx" / "lab")


@contextmanager
def locked(path: Path) -> Iterator[None]:
    """Hold an exclusive lock file while making something shared in the cache, so two
    processes (parallel tests, two terminals) never build the same thing at once."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        yield
