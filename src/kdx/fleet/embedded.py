"""``open_fleet``: the whole fleet service in one data directory (SQLite, files, local workers).

This is the ``Fleet`` the web app, the API and ``kdx serve`` call. It puts the adapters
together: a ``DumpStore`` for the bytes (a directory, or S3 through ``open_store``),
``open_database`` for the records, ``SqlJobQueue`` and ``WorkerPool`` (or the Celery
``Dispatcher``) for the analyses.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import BinaryIO

from sqlalchemy import case, func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from kdx.errors import KdxError
from kdx.fleet import buckets
from kdx.fleet.celeryq import Dispatcher
from kdx.fleet.db import Database, Dump, Job, Label, dump_record, job_record, open_database
from kdx.fleet.debuginfo import DebugInfoStore, vmlinux_at_hand
from kdx.fleet.pipeline import file_kind
from kdx.fleet.queue import SqlJobQueue, WorkerPool, WorkerSettings
from kdx.fleet.records import DebugInfoRecord, DumpRecord, JobRecord, ProblemRecord
from kdx.fleet.s3store import open_store
from kdx.fleet.service import FleetConfig, ProblemFilter
from kdx.fleet.store import DumpStore, TooLarge

__all__ = ["EmbeddedFleet", "NotFound", "TooLarge", "kdump_dir_files", "open_fleet"]

NotFound = buckets.NotFound
#: How long the fast pass may take, and how much memory, whatever the full stage's limits:
#: it reads a header and the log, so a tight limit meant for whole analyses must not fail it.
FAST_SECONDS = 60.0
FAST_MEMORY = 2 << 30


def stage_limits(job_seconds: float, job_memory: int) -> tuple[dict[str, float], dict[str, int]]:
    """Seconds and bytes for each stage: the full analysis gets the configured limits, the
    fast pass its own (at least FAST_MEMORY when memory is limited at all)."""
    seconds = {"fast": FAST_SECONDS, "full": float(job_seconds)}
    memory = {"fast": max(FAST_MEMORY, job_memory) if job_memory else 0,
              "full": int(job_memory)}
    return seconds, memory
#: Names kdump tools give a dump while they are still writing it.
INCOMPLETE = re.compile(r"(^|[-._])incomplete($|[-._])")
_VMCORE_NAMES = re.compile(r"^(vmcore|vmcore\.flat|dump\.\d+)$")
_DMESG_NAMES = re.compile(r"^(vmcore-dmesg\.txt|dmesg\.\d+)$")
_LABEL_KEY = re.compile(r"^[A-Za-z0-9_.-]{1,64}$")


def open_fleet(config: FleetConfig, *, workers: bool = True) -> EmbeddedFleet:
    """Open (creating or upgrading) the fleet in ``config.data``; with ``workers``, start
    the local worker pool and queue again what a stopped server left running."""
    return EmbeddedFleet(config, workers=workers)


def kdump_dir_files(path: Path) -> tuple[Path | None, Path | None]:
    """The dump and the ``vmcore-dmesg.txt`` of a kdump output directory (kdump-utils'
    ``vmcore``/``vmcore.flat``, kdump-tools' ``dump.STAMP``/``dmesg.STAMP``).
    KdxError when a file is still being written (its name says ``incomplete``)."""
    names = sorted(p.name for p in path.iterdir() if p.is_file())
    busy = [n for n in names if INCOMPLETE.search(n)]
    if busy:
        raise KdxError(f"{path} is still being written ({busy[0]})")
    vmcore = next((path / n for n in names if _VMCORE_NAMES.match(n)), None)
    dmesg = next((path / n for n in names if _DMESG_NAMES.match(n)), None)
    return vmcore, dmesg


def _display_name(filename: str) -> str:
    """The submitted name, for display only: its last component, printable, bounded."""
    name = re.split(r"[\\/]", filename or "")[-1]
    name = "".join(c for c in name if c.isprintable())
    return name[:255] or "dump"


def _check_labels(labels: dict[str, str] | None) -> dict[str, str]:
    out = {}
    for key, value in (labels or {}).items():
        if not _LABEL_KEY.match(key):
            raise KdxError(f"label name {key[:70]!r} must be 1-64 letters, digits, '_', '.', '-'")
        text = str(value)
        if len(text) > 255 or not text.isprintable():
            raise KdxError(f"label {key}'s value must be printable and at most 255 characters")
        out[key] = text
    return out


class EmbeddedFleet:
    """The ``kdx.fleet.service.Fleet`` of one data directory."""

    def __init__(self, config: FleetConfig, *, workers: bool = True) -> None:
        if config.broker and not config.broker.startswith(("redis://", "rediss://")):
            raise KdxError(f"the broker must be a redis:// URL ({config.broker} given)")
        self.config = config
        data = Path(config.data)
        data.mkdir(parents=True, exist_ok=True)
        self.data = data
        self.url = config.database or f"sqlite:///{data / 'kdx.sqlite3'}"
        # the embedded default upgrades itself; a named database waits for --migrate
        self.db: Database = open_database(self.url, upgrade_old=config.database is None)
        self.store_spec = config.store or str(data / "dumps")
        self.store: DumpStore = open_store(self.store_spec, cache=data / "cache",
                                           endpoint=config.s3_endpoint)
        self.queue = SqlJobQueue(self.db)
        self.debug = DebugInfoStore(config.debuginfo) if config.debuginfo else None
        count = config.workers or os.cpu_count() or 1
        self.pool: WorkerPool | Dispatcher
        if config.broker:  # remote workers (kdx worker): this process only dispatches
            self.pool = Dispatcher(self.queue, config.broker, self._settings())
        else:
            self.pool = WorkerPool(self.queue, self._settings(), count, data / "tmp")
        self.recovered = 0
        self._lock: BinaryIO | None = None
        if workers:
            if not config.broker:
                self._lock = _lock_workers(data)
                _clean_tmp(data / "tmp", getattr(self.store, "tmp", None))
                self.recovered = self.queue.recover()
            self._requeue_stale()
            self.pool.start()

    def _settings(self) -> WorkerSettings:
        c = self.config
        seconds, memory = stage_limits(c.job_seconds, c.job_memory)
        return WorkerSettings(
            database=self.url, store=self.store_spec, data=str(self.data),
            cache=str(self.data / "cache"), s3_endpoint=c.s3_endpoint,
            debuginfo=str(c.debuginfo) if c.debuginfo else None,
            seconds=seconds, memory=memory)

    # -- ingest -----------------------------------------------------------------------

    def ingest(self, stream: BinaryIO, filename: str, *, labels: dict[str, str] | None = None,
               size: int | None = None) -> DumpRecord:
        return self._ingest(stream, filename, labels=labels, size=size)

    def _ingest(self, stream: BinaryIO, filename: str, *, labels: dict[str, str] | None,
                size: int | None, companion: str | None = None) -> DumpRecord:
        labels = _check_labels(labels)
        limit = self.config.max_upload
        if size is not None and size > limit:
            raise TooLarge(f"the dump is {size:,} bytes, over the limit of {limit:,}")
        stored = self.store.put(stream, limit=limit)
        if size is not None and stored.size != size:
            if stored.new:
                self.store.delete(stored.key)
            raise KdxError(f"the upload stopped after {stored.size:,} of {size:,} bytes")
        with self.store.open(stored.key) as f:
            kind = file_kind(f.read(8192))
        record = self._record_dump(stored.key, _display_name(filename), stored.size, kind,
                                   labels, companion)
        self.pool.wake()
        return record

    def _record_dump(self, key: str, filename: str, size: int, kind: str,
                     labels: dict[str, str], companion: str | None) -> DumpRecord:
        from kdx.fleet.db import utcnow

        try:
            with self.db.write() as s, s.begin():
                row = s.scalar(select(Dump).where(Dump.sha256 == key))
                if row is None:
                    row = Dump(sha256=key, filename=filename, size=size, kind=kind,
                               state="received", received=utcnow(), companion=companion,
                               pinned=False)
                    s.add(row)
                    s.flush()
                    self.queue.enqueue(s, row.id, "fast")
                elif companion and not row.companion:
                    row.companion = companion
                if companion and row.companion == companion:
                    self._store_log(s, row.id, companion)
                for k, v in labels.items():
                    if s.get(Label, (row.id, k)) is None:
                        s.add(Label(dump_id=row.id, key=k, value=v))
                return dump_record(s, row)
        except IntegrityError:  # the same bytes ingested at the same moment elsewhere
            found = self.dump_by_sha256(key)
            if found is None:
                raise
            return found

    def _store_log(self, s: Session, dump_id: int, key: str) -> None:
        """The ``vmcore-dmesg.txt`` that came with a dump, shown beside it at once."""
        from kdx.fleet.db import Output
        from kdx.fleet.pipeline import MAX_OUTPUT

        with self.store.open(key) as f:
            text = f.read(MAX_OUTPUT).decode("utf-8", errors="replace")
        if s.get(Output, (dump_id, "vmcore-dmesg.txt")) is None:
            s.add(Output(dump_id=dump_id, name="vmcore-dmesg.txt", text=text))

    def attach_log(self, dump_id: int, path: Path) -> None:
        """Keep ``path`` (a ``vmcore-dmesg.txt``) as the log that came with dump
        ``dump_id`` (kdump-tools writes it after the dump)."""
        with open(path, "rb") as f:
            key = self.store.put(f, limit=self.config.max_upload).key
        with self.db.write() as s, s.begin():
            row = s.get(Dump, dump_id)
            if row is None:
                raise NotFound(f"there is no dump {dump_id}")
            if row.companion is None:
                row.companion = key
                self._store_log(s, dump_id, key)

    def ingest_path(self, path: Path, *, labels: dict[str, str] | None = None
                    ) -> list[DumpRecord]:
        path = Path(path)
        if path.is_dir():
            vmcore, dmesg = kdump_dir_files(path)
            if vmcore is None and dmesg is None:
                raise KdxError(f"{path} holds no vmcore, vmcore.flat or vmcore-dmesg.txt")
            if vmcore is None:
                return [self._ingest_file(dmesg, labels)]
            companion = None
            if dmesg is not None:
                with open(dmesg, "rb") as f:
                    companion = self.store.put(f, limit=self.config.max_upload).key
            return [self._ingest_file(vmcore, labels, companion)]
        if not path.is_file():
            raise KdxError(f"{path}: no such file or directory")
        return [self._ingest_file(path, labels)]

    def _ingest_file(self, path: Path, labels: dict[str, str] | None,
                     companion: str | None = None) -> DumpRecord:
        with open(path, "rb") as f:
            return self._ingest(f, path.name, labels=labels, size=None, companion=companion)

    # -- dumps ------------------------------------------------------------------------

    def dump(self, dump_id: int) -> DumpRecord | None:
        with self.db.session() as s:
            row = s.get(Dump, dump_id)
            return dump_record(s, row, outputs=True) if row is not None else None

    def dump_by_sha256(self, sha256: str) -> DumpRecord | None:
        with self.db.session() as s:
            row = s.scalar(select(Dump).where(Dump.sha256 == sha256.lower()))
            return dump_record(s, row) if row is not None else None

    def dumps(self, *, state: str | None = None, problem_id: int | None = None,
              limit: int = 100, offset: int = 0) -> list[DumpRecord]:
        query = select(Dump).order_by(Dump.id.desc()).limit(limit).offset(offset)
        if state is not None:
            query = query.where(Dump.state == state)
        if problem_id is not None:
            query = query.where(Dump.problem_id == problem_id)
        with self.db.session() as s:
            return [dump_record(s, row) for row in s.scalars(query)]

    def dump_file(self, dump_id: int) -> Path | None:
        with self.db.session() as s:
            row = s.get(Dump, dump_id)
            key = row.sha256 if row is not None else None
        if key is None or not self.store.exists(key):
            return None
        return self.store.local_path(key)

    def release_dump_file(self, dump_id: int) -> None:
        """The download of ``dump_file`` is over (an object store's local copy goes)."""
        with self.db.session() as s:
            row = s.get(Dump, dump_id)
            key = row.sha256 if row is not None else None
        if key is not None:
            self.store.release(key)

    # -- problems ---------------------------------------------------------------------

    def problem(self, problem_id: int) -> ProblemRecord | None:
        with self.db.session() as s:
            found = buckets.problem_records(s, [problem_id])
            return found[0] if found else None

    def problems(self, where: ProblemFilter | None = None, *, limit: int = 100,
                 offset: int = 0) -> list[ProblemRecord]:
        with self.db.session() as s:
            return buckets.query_problems(s, where, limit, offset)

    def merge(self, into: int, other: int, *, reason: str, who: str) -> ProblemRecord:
        with self.db.write() as s, s.begin():
            buckets.merge(s, into, other, reason=reason, who=who)
        return self._problem(into)

    def split(self, problem_id: int, dump_ids: list[int], *, reason: str, who: str
              ) -> ProblemRecord:
        with self.db.write() as s, s.begin():
            new = buckets.split(s, problem_id, dump_ids, reason=reason, who=who)
        return self._problem(new)

    def _problem(self, problem_id: int) -> ProblemRecord:
        found = self.problem(problem_id)
        if found is None:
            raise NotFound(f"there is no problem {problem_id}")
        return found

    # -- jobs -------------------------------------------------------------------------

    def jobs(self, *, state: str | None = None, limit: int = 100) -> list[JobRecord]:
        query = select(Job).order_by(Job.id.desc()).limit(limit)
        if state is not None:
            query = query.where(Job.state == state)
        with self.db.session() as s:
            return [job_record(row) for row in s.scalars(query)]

    def _pending(self, s: Session, dump_id: int) -> bool:
        return s.scalar(select(func.count()).select_from(Job).where(
            Job.dump_id == dump_id, Job.state.in_(("queued", "running")))) > 0

    def retry(self, dump_id: int) -> DumpRecord:
        with self.db.write() as s, s.begin():
            row = s.get(Dump, dump_id)
            if row is None:
                raise NotFound(f"there is no dump {dump_id}")
            if not self._pending(s, dump_id):
                row.state, row.failure = "received", None
                self.queue.enqueue(s, dump_id, "fast")
            record = dump_record(s, row)
        self.pool.wake()
        return record

    def _queue_full(self, dump_ids: list[int], stages: list[str] | None = None) -> int:
        queued = 0
        with self.db.write() as s, s.begin():
            for dump_id, stage in zip(dump_ids, stages or ["full"] * len(dump_ids)):
                if not self._pending(s, dump_id):
                    self.queue.enqueue(s, dump_id, stage)
                    queued += 1
        self.pool.wake()
        return queued

    def _requeue_stale(self) -> int:
        """Dumps bucketed by older signature rules are analysed (and bucketed) again."""
        with self.db.session() as s:
            stale = buckets.stale_dumps(s)
        if not stale:
            return 0
        return self._queue_full([i for i, _ in stale], [stage for _, stage in stale])

    # -- debug info -------------------------------------------------------------------

    def debug_info(self) -> list[DebugInfoRecord]:
        without_debug = Dump.debug_source.in_(("dump", "symbols"))
        query = (select(Dump.build_id, func.max(Dump.release), func.count(),
                        func.sum(case((without_debug & (Dump.state == "analysed"), 1),
                                      else_=0)))
                 .where(Dump.build_id.is_not(None)).group_by(Dump.build_id)
                 .order_by(Dump.build_id))
        with self.db.session() as s:
            rows = s.execute(query).all()
        return [DebugInfoRecord(build_id=b, release=r,
                                vmlinux=vmlinux_at_hand(self.debug, r, b),
                                dumps=n, without=int(w or 0)) for b, r, n, w in rows]

    def reanalyse_build(self, build_id: str) -> int:
        with self.db.session() as s:
            ids = list(s.scalars(select(Dump.id).where(
                Dump.build_id == build_id, Dump.state.in_(("analysed", "failed")),
                Dump.kind == "vmcore",
                (Dump.debug_source.in_(("dump", "symbols"))) | (Dump.state == "failed"))))
        return self._queue_full(ids) if ids else 0

    # -- operations -------------------------------------------------------------------

    def metrics(self) -> dict[str, float | dict[str, float] | list[float]]:
        with self.db.session() as s:
            jobs = {k: float(v) for k, v in s.execute(
                select(Job.state, func.count()).group_by(Job.state)).all()}
            dumps = {k: float(v) for k, v in s.execute(
                select(Dump.state, func.count()).group_by(Dump.state)).all()}
            seconds = [float(x) for x in s.scalars(
                select(Job.seconds).where(Job.state == "done", Job.stage == "full",
                                          Job.seconds.is_not(None))
                .order_by(Job.id.desc()).limit(1000))]
            peak = s.scalar(select(func.max(Job.peak_memory)))
            firsts = [(a - b).total_seconds() for a, b in s.execute(
                select(Dump.first_result, Dump.received)
                .where(Dump.first_result.is_not(None)).order_by(Dump.id.desc()).limit(1000))]
        return {"queue_length": jobs.get("queued", 0.0), "jobs": jobs, "dumps": dumps,
                "analysis_seconds": seconds, "first_result_seconds": firsts,
                "workers": float(self.pool.count), "worker_peak_bytes": float(peak or 0)}

    def idle(self) -> bool:
        """No job queued or running."""
        counts = self.queue.counts()
        return not counts.get("queued") and not counts.get("running")

    def close(self) -> None:
        self.pool.stop()
        self.db.close()
        if self._lock is not None:
            self._lock.close()
            self._lock = None


def _lock_workers(data: Path) -> BinaryIO:
    """Hold ``DATA/workers.lock`` while this process runs the workers: a second server
    on the same data would take the first one's running jobs for abandoned ones."""
    import fcntl

    f = open(data / "workers.lock", "ab")  # noqa: SIM115 (held until close)
    try:
        fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        f.close()
        raise KdxError(f"another kdx serve runs the workers of {data}") from None
    return f


#: A temporary upload file this old belongs to no ingest still running.
_STALE_UPLOAD = 24 * 3600


def _clean_tmp(work: Path, uploads: Path | None) -> None:
    """Remove what killed workers left (reassembled dumps, stderr files) and upload
    files a dead server never finished."""
    import shutil
    import time

    now = time.time()
    for folder, age in ((work, 0), (uploads, _STALE_UPLOAD)):
        if folder is None or not folder.is_dir():
            continue
        for entry in folder.iterdir():
            try:
                if now - entry.lstat().st_mtime < age:
                    continue
                if entry.is_dir() and not entry.is_symlink():
                    shutil.rmtree(entry, ignore_errors=True)
                else:
                    entry.unlink()
            except OSError:
                continue

