"""Where the crash lab keeps what is slow to make: chroots, downloaded packages, runs.

Everything the lab builds is cached under one directory so that a second run, or a
team-mate on the same machine, reuses it instead of spending minutes rebuilding it.
``KDX_LAB_CACHE`` moves it (to a bigger disk, or a scratch directory in tests).
"""

from __future__ import annotations

import os
from pathlib import Path


def default_cache() -> Path:
    """Return the lab cache directory: ``$KDX_LAB_CACHE`` or ``~/.cache/kdx/lab``."""
    return Path(os.environ.get("KDX_LAB_CACHE") or Path.home() / ".cache" / "kdx" / "lab")
