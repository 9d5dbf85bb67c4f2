"""What every benchmark here shares: a median timer and where drgn-crash is."""

from __future__ import annotations

import shutil
import statistics
import sys
import time
from pathlib import Path
from typing import Callable


def timed(fn: Callable[[], object], repeat: int) -> float:
    """Median wall time of ``repeat`` calls, so one slow outlier does not decide."""
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def timed_alternating(fns: list[Callable[[], object]], repeat: int) -> list[float]:
    """The median wall time of each of ``fns``, run in turn ``repeat`` times (a, b, c,
    a, b, c, ...), so a burst of other work on the machine slows each of them alike."""
    times: list[list[float]] = [[] for _ in fns]
    for _ in range(repeat):
        for fn, spent in zip(fns, times):
            start = time.perf_counter()
            fn()
            spent.append(time.perf_counter() - start)
    return [statistics.median(t) for t in times]


def kdx_command() -> list[str]:
    """The ``kdx`` command as users run it: the console script installed beside this
    Python (as drgn-crash is run), else ``python -m kdx`` (which also imports runpy)."""
    script = Path(sys.executable).parent / "kdx"
    return [str(script)] if script.exists() else [sys.executable, "-m", "kdx"]


def drgn_crash() -> str:
    """drgn's crash-compatible front end, installed beside this Python's drgn."""
    return shutil.which("drgn-crash") or str(Path(sys.executable).parent / "drgn-crash")


def compile_kdx() -> None:
    """Byte-compile kdx before timing it. An editable install (or PYTHONDONTWRITEBYTECODE)
    leaves kdx without .pyc files, so every run would compile ~40 modules (~70 ms) that
    an installed kdx, and drgn-crash, never compile; that is not kdx's speed."""
    import compileall

    import kdx

    compileall.compile_dir(str(Path(kdx.__file__).parent), quiet=1)
