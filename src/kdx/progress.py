"""Progress for long work (downloads, lab runs, scans) on a terminal, silence elsewhere.

On a terminal the user sees a spinner with the current step and a line per finished step;
in pipes and CI each step is one plain line on stderr, so logs stay readable.
"""

from __future__ import annotations

import sys
import time
from contextlib import contextmanager
from typing import Callable, Iterator


@contextmanager
def steps(title: str) -> Iterator[Callable[[str], None]]:
    """Yield a callback that reports one step; the spinner (on a tty) shows the latest."""
    started = time.monotonic()
    if not sys.stderr.isatty():

        def plain(msg: str) -> None:
            print(f"[{time.monotonic() - started:6.1f}s] {msg}", file=sys.stderr, flush=True)

        yield plain
        return
    from rich.console import Console  # only on a terminal: rich costs start-up time

    console = Console(stderr=True, highlight=False)
    with console.status(title) as status:

        def fancy(msg: str) -> None:
            console.print(f"[dim]{time.monotonic() - started:6.1f}s[/dim] {msg}",
                           markup=True, emoji=False)
            status.update(f"{title}: {msg}")

        yield fancy
