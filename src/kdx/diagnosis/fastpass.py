"""The fast pass: what a dump is, in under two seconds, before the full analysis.

A fleet receiving a storm of dumps must say at once what each one is. The fast pass reads
only what needs no types and no unwinding: the dump header, VMCOREINFO (release, build ID,
crash time) and the kernel log, whose oops report names the bug, the faulting function and
the call trace. A ``vmcore-dmesg.txt`` alone gets the same verdict from its text.

Example::

    >>> report = fast_report(Path("vmcore"))
    >>> report.title, report.signature
    ('BUG: kernel NULL pointer dereference in hello_init [hello_crash]', '1f0c...')
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

__all__ = ["FastReport", "fast_report", "fast_report_from_text"]


@dataclass(frozen=True)
class FastReport:
    """The fast verdict on one dump or kernel log."""

    kind: str  # "vmcore" or "dmesg"
    host: str | None = None
    release: str | None = None
    build_id: str | None = None
    captured: str | None = None  # ISO 8601 UTC, from VMCOREINFO's CRASHTIME or the header
    title: str | None = None
    category: str | None = None
    culprit: str | None = None  # function (without offset)
    module: str | None = None
    signature: str | None = None  # same hash as the full analysis when the log allows
    signature_version: int = 0
    frames: list[str] = field(default_factory=list)  # the frames the signature hashed
    panic_message: str | None = None
    log_tail: list[str] = field(default_factory=list)  # the last lines of the log
    warnings: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-ready data."""
        return asdict(self)


def fast_report(path: Path) -> FastReport:
    """The fast verdict on a vmcore (any format drgn opens) or a ``vmcore-dmesg.txt``."""
    raise NotImplementedError


def fast_report_from_text(text: str) -> FastReport:
    """The fast verdict on a kernel log's text (dmesg, vmcore-dmesg.txt, a console log)."""
    raise NotImplementedError
