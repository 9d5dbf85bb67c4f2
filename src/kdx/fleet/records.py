"""The records the fleet's layers exchange: plain, typed, JSON-ready.

The web pages, the JSON API, the CLI clients and the tests read these and nothing else, so
the database and queue behind ``kdx.fleet.service.Fleet`` can change (SQLite or
PostgreSQL, local workers or Celery) without a page or a client noticing.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

__all__ = ["DebugInfoRecord", "DumpRecord", "DumpState", "JobRecord", "ProblemEvent",
           "ProblemRecord", "DUMP_STATES"]

#: A dump's life: received -> fast (fast pass stored) -> analysed, or failed (with reason).
DumpState = str
DUMP_STATES = ("received", "fast", "analysed", "failed")


@dataclass(frozen=True)
class DumpRecord:
    """One submitted dump (a vmcore, or a ``vmcore-dmesg.txt`` alone)."""

    id: int
    sha256: str
    filename: str  # as submitted, for display only; never used as a path
    size: int
    kind: str  # "vmcore" or "dmesg"
    state: DumpState
    received: str  # ISO 8601, UTC
    labels: dict[str, str] = field(default_factory=dict)
    host: str | None = None  # from the dump (utsname nodename)
    release: str | None = None  # kernel release, from VMCOREINFO or the log
    build_id: str | None = None
    captured: str | None = None  # capture time from the dump (ISO 8601), when known
    problem_id: int | None = None
    failure: str | None = None  # why the analysis failed, one sentence
    debug_source: str | None = None  # "dwarf", "dump", "symbols", "log"
    fast: dict[str, Any] | None = None  # the fast pass: title, category, signature...
    verdict: dict[str, Any] | None = None  # the full ``kdx analyze`` record (to_dict)
    outputs: dict[str, str] = field(default_factory=dict)  # "bt -a", "ps", "log", "mod"


@dataclass(frozen=True)
class JobRecord:
    """One unit of work on one dump."""

    id: int
    dump_id: int
    stage: str  # "fast" or "full"
    state: str  # "queued", "running", "done", "failed"
    attempts: int
    created: str
    started: str | None = None
    finished: str | None = None
    failure: str | None = None
    seconds: float | None = None


@dataclass(frozen=True)
class ProblemEvent:
    """A person's merge or split of problems, kept with the reason."""

    at: str
    action: str  # "merge" or "split"
    reason: str
    who: str
    detail: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class ProblemRecord:
    """Dumps with one signature: one bug."""

    id: int
    signature: str  # the bucket key (hash), with its version
    signature_version: int
    title: str  # syzbot style
    category: str
    culprit: str | None  # function [module]
    module: str | None
    count: int
    hosts: int  # distinct hosts
    kernels: list[str]  # releases affected
    first_seen: str
    last_seen: str
    new: bool  # first seen in the last day, or in a kernel build not seen before
    dump_ids: list[int] = field(default_factory=list)
    per_day: list[tuple[str, int]] = field(default_factory=list)  # (YYYY-MM-DD, count)
    events: list[ProblemEvent] = field(default_factory=list)
    merged_into: int | None = None


@dataclass(frozen=True)
class DebugInfoRecord:
    """One kernel build the fleet has seen: is its vmlinux in the debug-info store?"""

    build_id: str
    release: str | None
    vmlinux: bool  # the store (or debuginfod) has the matching vmlinux
    dumps: int  # dumps of this build
    without: int  # of those, analysed without a vmlinux (can be re-analysed)
