"""``Fleet``: the one facade the web app, the JSON API and the CLI clients call.

Everything a page shows or a client asks goes through these methods and comes back as
``kdx.fleet.records``; how dumps are stored, queued and analysed stays behind them.
``FleetConfig`` names the three adapters (store, database, queue); the embedded defaults
live in one data directory.

Example::

    >>> fleet = open_fleet(FleetConfig(data=Path("/srv/kdx")))
    >>> with open("vmcore", "rb") as f:
    ...     dump = fleet.ingest(f, "vmcore", labels={"team": "storage"})
    >>> fleet.dump(dump.id).state
    'received'
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO, Protocol

from kdx.fleet.records import DebugInfoRecord, DumpRecord, JobRecord, ProblemRecord

__all__ = ["Fleet", "FleetConfig", "ProblemFilter"]


@dataclass(frozen=True)
class FleetConfig:
    """Where the fleet keeps things. ``database``/``store``/``broker`` default to the
    embedded implementations inside ``data`` (SQLite, a directory, local workers)."""

    data: Path
    database: str | None = None  # SQLAlchemy URL; default sqlite:///DATA/kdx.sqlite3
    store: str | None = None  # a directory or s3://bucket/prefix; default DATA/dumps
    s3_endpoint: str | None = None  # an S3-compatible server's URL; default AWS_ENDPOINT_URL
    broker: str | None = None  # None: local workers; redis://... for Celery
    workers: int = 0  # local worker processes (0: the number of cores)
    debuginfo: Path | None = None  # build-ID keyed debug-info store
    job_seconds: float = 600  # hard time limit of one analysis (the full stage), seconds
    job_memory: int = 4 << 30  # hard memory limit of one analysis (the full stage), bytes
    max_upload: int = 64 << 30  # bytes


@dataclass(frozen=True)
class ProblemFilter:
    """What the problems page filters and sorts by (all optional)."""

    kernel: str | None = None
    host: str | None = None
    module: str | None = None
    category: str | None = None
    label: str | None = None  # "key=value"
    since: str | None = None  # ISO date
    sort: str = "last_seen"  # or "count", "hosts", "first_seen", "title"
    descending: bool = True
    labels: dict[str, str] = field(default_factory=dict)


class Fleet(Protocol):
    """The fleet service as its callers see it."""

    def ingest(self, stream: BinaryIO, filename: str, *, labels: dict[str, str] | None = None,
               size: int | None = None) -> DumpRecord:
        """Store a dump streamed from ``stream`` (never held in memory), deduplicated by
        content hash, and queue its analysis; a dump already stored is returned as is."""

    def ingest_path(self, path: Path, *, labels: dict[str, str] | None = None) -> list[DumpRecord]:
        """Ingest a file, or a kdump output directory (``vmcore``, ``vmcore.flat``,
        ``vmcore-dmesg.txt``) as one report."""

    def dump(self, dump_id: int) -> DumpRecord | None: ...

    def dump_by_sha256(self, sha256: str) -> DumpRecord | None:
        """The dump with these contents, if stored (clients skip re-uploading it)."""

    def dumps(self, *, state: str | None = None, problem_id: int | None = None,
              limit: int = 100, offset: int = 0) -> list[DumpRecord]: ...

    def dump_file(self, dump_id: int) -> Path | None:
        """Where the dump's bytes can be read (for downloads), or None."""

    def problem(self, problem_id: int) -> ProblemRecord | None: ...

    def problems(self, where: ProblemFilter | None = None, *, limit: int = 100,
                 offset: int = 0) -> list[ProblemRecord]: ...

    def merge(self, into: int, other: int, *, reason: str, who: str) -> ProblemRecord:
        """Fold problem ``other`` into ``into``; the reason is kept."""

    def split(self, problem_id: int, dump_ids: list[int], *, reason: str, who: str
              ) -> ProblemRecord:
        """Move ``dump_ids`` out of a problem into a new one; the reason is kept."""

    def jobs(self, *, state: str | None = None, limit: int = 100) -> list[JobRecord]: ...

    def retry(self, dump_id: int) -> DumpRecord:
        """Queue a failed (or finished) dump's analysis again."""

    def debug_info(self) -> list[DebugInfoRecord]:
        """The kernel builds seen, whether their vmlinux is at hand, and how many dumps
        were analysed without it."""

    def reanalyse_build(self, build_id: str) -> int:
        """Queue again every dump of ``build_id`` analysed without its vmlinux (it has
        arrived); returns how many."""

    def metrics(self) -> dict[str, float | dict[str, float] | list[float]]:
        """Queue length, jobs by state, analysis seconds (for a histogram), seconds from
        receipt to first result."""

    def close(self) -> None: ...
