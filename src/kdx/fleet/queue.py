"""The durable job queue on the ``jobs`` table, and the local workers that drain it.

A job is claimed by one atomic UPDATE (queued -> running, a fresh lease token, attempts+1)
that only one claimer can win, on SQLite as on PostgreSQL. Results are stored in the same
transaction as an UPDATE that requires the lease to still match, so a job whose worker was
given up on (killed, or the server restarted) can never complete twice. Fast jobs are
claimed before full ones: the first result of every dump comes before anyone's deep dive.

``WorkerPool`` runs N local workers. Each job runs in its own child process (forked from
a server that preloaded the analysis, then ``kdx.fleet.worker``) with a hard time limit
(the process group is killed) and a memory limit (RLIMIT_AS, set by the child), so a dump
that crashes or hangs the analysis fails with its reason and never blocks the queue.
``JobQueue`` is the interface a distributed queue (Celery) implements instead.
"""

from __future__ import annotations

import contextlib
import json
import multiprocessing
import multiprocessing.context
import multiprocessing.process
import os
import secrets
import signal
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Protocol

from sqlalchemy import case, func, select, update
from sqlalchemy.orm import Session

from kdx.fleet.db import Database, Dump, Job, utcnow

__all__ = ["MAX_ATTEMPTS", "PRELOAD", "Claim", "JobQueue", "SqlJobQueue", "WorkerPool",
           "WorkerSettings", "describe_exit", "memory_message", "out_of_memory"]

#: A job interrupted this many times (the server died under it each time) fails.
MAX_ATTEMPTS = 3
STAGES = ("fast", "full")


@dataclass(frozen=True)
class Claim:
    """A job a worker holds: valid as long as its lease matches the table's."""

    job_id: int
    dump_id: int
    stage: str
    lease: str
    attempts: int


class JobQueue(Protocol):
    """Durable jobs: queue, claim, finish (under the lease), recover after a crash."""

    def enqueue(self, session: Session, dump_id: int, stage: str) -> int: ...

    def claim(self, stages: tuple[str, ...] = STAGES) -> Claim | None: ...

    def complete(self, claim: Claim, seconds: float, store: Callable[[Session], None],
                 *, peak_memory: int | None = None) -> bool: ...

    def fail(self, claim: Claim, reason: str, seconds: float | None = None,
             *, peak_memory: int | None = None) -> bool: ...

    def requeue(self, claim: Claim) -> bool: ...

    def recover(self) -> int: ...


class SqlJobQueue:
    """The embedded queue: the ``jobs`` table of the fleet database."""

    def __init__(self, db: Database) -> None:
        self.db = db

    def enqueue(self, session: Session, dump_id: int, stage: str) -> int:
        """Queue ``stage`` of ``dump_id`` in the caller's transaction."""
        if stage not in STAGES:
            raise ValueError(f"unknown stage {stage!r}")
        job = Job(dump_id=dump_id, stage=stage, state="queued", attempts=0, created=utcnow(),
                  completions=0)
        session.add(job)
        session.flush()
        return job.id

    def claim(self, stages: tuple[str, ...] = STAGES) -> Claim | None:
        """Take the oldest queued job of ``stages``, fast stage first; None when there is
        none."""
        order = (case((Job.stage == "fast", 0), else_=1), Job.id)
        for _ in range(20):
            with self.db.session() as s:  # look first: an idle poll takes no write lock
                row = s.execute(select(Job.id, Job.dump_id, Job.stage, Job.attempts)
                                .where(Job.state == "queued", Job.stage.in_(stages))
                                .order_by(*order).limit(1)).first()
            if row is None:
                return None
            lease = secrets.token_hex(16)
            with self.db.write() as s, s.begin():
                won = s.execute(update(Job).where(Job.id == row.id, Job.state == "queued")
                                .values(state="running", lease=lease, started=utcnow(),
                                        attempts=Job.attempts + 1)).rowcount
            if won == 1:
                return Claim(row.id, row.dump_id, row.stage, lease, row.attempts + 1)
        return None

    def claim_job(self, job_id: int) -> Claim | None:
        """Take job ``job_id`` if it is still queued (a broker delivered "run job N"; a
        second delivery of the same job finds it taken and does nothing)."""
        lease = secrets.token_hex(16)
        with self.db.write() as s, s.begin():
            won = s.execute(update(Job).where(Job.id == job_id, Job.state == "queued")
                            .values(state="running", lease=lease, started=utcnow(),
                                    attempts=Job.attempts + 1)).rowcount
            if won != 1:
                return None
            job = s.get(Job, job_id)
            return Claim(job.id, job.dump_id, job.stage, lease, job.attempts)

    def queued(self, limit: int = 1000) -> list[tuple[int, str, str, str | None]]:
        """The queued jobs, oldest first: (job id, stage, dump's store key, build ID)."""
        with self.db.session() as s:
            return [(r.id, r.stage, r.sha256, r.build_id) for r in s.execute(
                select(Job.id, Job.stage, Dump.sha256, Dump.build_id)
                .join(Dump, Dump.id == Job.dump_id).where(Job.state == "queued")
                .order_by(Job.id).limit(limit))]

    def expire(self, stage: str, seconds: float) -> int:
        """Running jobs of ``stage`` started more than ``seconds`` ago belong to a worker
        that died (a live one kills its job at the time limit): their leases are void and
        they are queued again, or failed once interrupted ``MAX_ATTEMPTS`` times."""
        import datetime as dt

        cutoff = utcnow() - dt.timedelta(seconds=seconds)
        with self.db.write() as s, s.begin():
            stale = list(s.scalars(select(Job).where(Job.state == "running",
                                                     Job.stage == stage,
                                                     Job.started < cutoff)))
            for job in stale:
                _void(s, job, "its worker stopped while it ran")
            return len(stale)

    def _finish(self, s: Session, claim: Claim, **values: object) -> bool:
        return s.execute(update(Job).where(Job.id == claim.job_id, Job.lease == claim.lease,
                                           Job.state == "running")
                         .values(finished=utcnow(), **values)).rowcount == 1

    def complete(self, claim: Claim, seconds: float, store: Callable[[Session], None],
                 *, peak_memory: int | None = None) -> bool:
        """Mark the job done and run ``store`` (the results) in one transaction, only if
        the lease still holds; False (nothing stored) otherwise."""
        with self.db.write() as s, s.begin():
            if not self._finish(s, claim, state="done", seconds=seconds,
                                completions=Job.completions + 1, peak_memory=peak_memory):
                return False
            store(s)
        return True

    def fail(self, claim: Claim, reason: str, seconds: float | None = None,
             *, peak_memory: int | None = None) -> bool:
        """Mark the job and its dump failed with ``reason``, if the lease still holds."""
        with self.db.write() as s, s.begin():
            if not self._finish(s, claim, state="failed", failure=reason, seconds=seconds,
                                peak_memory=peak_memory):
                return False
            dump = s.get(Dump, claim.dump_id)
            if dump is not None:
                dump.state, dump.failure = "failed", reason
        return True

    def requeue(self, claim: Claim) -> bool:
        """Give a claimed job back (the server is stopping); it runs again later."""
        with self.db.write() as s, s.begin():
            return s.execute(update(Job).where(Job.id == claim.job_id,
                                               Job.lease == claim.lease,
                                               Job.state == "running")
                             .values(state="queued", lease=None, started=None)).rowcount == 1

    def recover(self) -> int:
        """After a server died: its running jobs are queued again (their old leases are
        void); one interrupted ``MAX_ATTEMPTS`` times fails instead. Returns how many."""
        with self.db.write() as s, s.begin():
            running = list(s.scalars(select(Job).where(Job.state == "running")))
            for job in running:
                _void(s, job, "the server stopped while it ran")
            return len(running)

    def counts(self) -> dict[str, int]:
        with self.db.session() as s:
            return dict(s.execute(select(Job.state, func.count()).group_by(Job.state)).all())


def _void(s: Session, job: Job, why: str) -> None:
    """Take an abandoned running job back: queued again, or failed (the dead letter:
    state ``failed`` and the reason) after ``MAX_ATTEMPTS`` attempts."""
    job.lease, job.started = None, None
    if job.attempts >= MAX_ATTEMPTS:
        job.state, job.finished = "failed", utcnow()
        job.failure = f"the analysis was interrupted {job.attempts} times ({why})"
        dump = s.get(Dump, job.dump_id)
        if dump is not None:
            dump.state, dump.failure = "failed", job.failure
    else:
        job.state = "queued"


@dataclass(frozen=True)
class WorkerSettings:
    """What a worker child needs to find everything (passed to it as JSON)."""

    database: str
    store: str
    data: str
    debuginfo: str | None
    seconds: dict[str, float]  # per stage
    memory: dict[str, int]  # per stage, bytes
    #: where an object store's dumps are downloaded for analysis (default DATA/cache)
    cache: str | None = None
    s3_endpoint: str | None = None  # an s3:// store's server (default AWS_ENDPOINT_URL)

    def to_json(self) -> str:
        return json.dumps(self.__dict__)


_OOM_WORDS = ("memoryerror", "bad_alloc", "cannot allocate memory", "out of memory",
              "failed to map segment")


def out_of_memory(text: str) -> bool:
    """Whether an error text says an allocation failed (drgn, libelf, the loader...)."""
    lowered = text.lower()
    return any(word in lowered for word in _OOM_WORDS)


def memory_message(limit: int) -> str:
    size = (f"{limit / (1 << 30):g} GiB" if limit >= 1 << 30
            else f"{limit / (1 << 20):g} MiB")
    return f"ran out of memory (limit {size})"


def describe_exit(returncode: int, stderr: str, memory: int) -> str:
    """One sentence for a worker child that died without storing a result."""
    if out_of_memory(stderr):
        return memory_message(memory)
    if returncode < 0:
        try:
            name = signal.Signals(-returncode).name
        except ValueError:
            name = f"signal {-returncode}"
        return f"the analysis crashed ({name})"
    last = next((line.strip() for line in reversed(stderr.splitlines()) if line.strip()), "")
    return f"the analysis failed (exit status {returncode}{': ' + last[:300] if last else ''})"


class WorkerPool:
    """N threads, each running one job at a time in a child process it supervises, and
    one more that runs fast jobs only: a storm of full analyses never delays the first
    result of a new dump by more than one fast pass."""

    def __init__(self, queue: SqlJobQueue, settings: WorkerSettings, count: int,
                 tmp: Path) -> None:
        self.queue = queue
        self.settings = settings
        self.count = count
        self.tmp = tmp
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        self._children: dict[int, multiprocessing.process.BaseProcess] = {}
        self._jobs: dict[int, tuple[int, str]] = {}  # pid -> (job id, stage)
        self._lock = threading.Lock()

    def start(self) -> None:
        self.tmp.mkdir(parents=True, exist_ok=True)
        lanes = [STAGES] * self.count + [("fast",)]
        for i, stages in enumerate(lanes):
            thread = threading.Thread(target=self._loop, args=(stages,), daemon=True,
                                      name=f"kdx-worker-{i}" if i < self.count else "kdx-fast")
            thread.start()
            self._threads.append(thread)

    def running(self) -> dict[int, tuple[int, str]]:
        """The jobs running now: process id -> (job id, stage)."""
        with self._lock:
            return dict(self._jobs)

    def wake(self) -> None:
        """A job was queued: look now rather than at the next poll."""
        self._wake.set()

    def stop(self) -> None:
        """Stop claiming, kill running children; their jobs are queued again."""
        self._stop.set()
        self._wake.set()
        with self._lock:
            children = list(self._children.values())
        for child in children:
            _kill_group(child)
        for thread in self._threads:
            thread.join(timeout=30)
        self._threads.clear()

    def _loop(self, stages: tuple[str, ...]) -> None:
        while not self._stop.is_set():
            claim = self.queue.claim(stages)
            if claim is None:
                self._wake.wait(0.5)
                self._wake.clear()
                continue
            self._run(claim)

    def run_claim(self, claim: Claim) -> None:
        """Run one claimed job in its own child process, under the stage's limits (what
        a Celery task does with the job it was handed)."""
        self.tmp.mkdir(parents=True, exist_ok=True)
        self._run(claim)

    def _run(self, claim: Claim) -> None:
        limit = self.settings.seconds[claim.stage]
        memory = self.settings.memory[claim.stage]
        start = time.monotonic()
        # named after the job, so an operator (or a test) sees which job a process runs
        fd, err_name = tempfile.mkstemp(dir=self.tmp, prefix=f"stderr-job{claim.job_id}-")
        os.close(fd)
        err = Path(err_name)
        try:
            child = _spawn().Process(
                target=_child, daemon=True, name=f"kdx-job-{claim.job_id}",
                args=(claim.job_id, claim.lease, memory, self.settings.to_json(), err_name,
                      dict(os.environ)))
            child.start()
            with self._lock:
                self._children[child.pid] = child
                self._jobs[child.pid] = (claim.job_id, claim.stage)
            try:
                child.join(limit)
                timed_out = child.exitcode is None
                if timed_out:
                    _kill_group(child)
            finally:
                with self._lock:
                    self._children.pop(child.pid, None)
                    self._jobs.pop(child.pid, None)
            seconds = time.monotonic() - start
            code = child.exitcode
            if self._stop.is_set() and (timed_out or code != 0):
                self.queue.requeue(claim)
            elif timed_out:
                self.queue.fail(claim, f"analysis took longer than {limit:g} s", seconds)
            elif code != 0:
                text = _tail(err)
                self.queue.fail(claim, describe_exit(code or 0, text, memory), seconds)
        finally:
            err.unlink(missing_ok=True)


#: What every job imports, loaded once into the fork server its processes start from.
PRELOAD = ["kdx.fleet.worker", "kdx.fleet.pipeline", "kdx.fleet.queue",
           "kdx.diagnosis.fastpass", "kdx.diagnosis.analyze", "kdx.api",
           "kdx.session.session", "kdx.target.open", "sqlalchemy.dialects.sqlite"]
_spawn_lock = threading.Lock()
_context: multiprocessing.context.BaseContext | None = None


def _spawn() -> multiprocessing.context.BaseContext:
    """Jobs start from a fork server that imported drgn, SQLAlchemy and kdx once, so a
    job costs a fork, not an interpreter start (most of a fast pass)."""
    global _context
    with _spawn_lock:
        if _context is None:
            ctx = multiprocessing.get_context("forkserver")
            ctx.set_forkserver_preload(PRELOAD)
            _context = ctx
        return _context


def _child(job_id: int, lease: str, memory: int, settings: str, err_path: str,
           env: dict[str, str]) -> None:
    """A job's process: its own process group, the server's environment, stderr to a
    file the pool reads when it dies, then ``kdx.fleet.worker``'s limits and run."""
    from kdx.fleet import worker

    os.setsid()
    os.environ.clear()
    os.environ.update(env)
    err = os.open(err_path, os.O_WRONLY | os.O_APPEND)
    os.dup2(err, 2)
    os.close(err)
    sys.exit(worker.main([str(job_id), "--lease", lease, "--memory", str(memory),
                          "--parent", str(os.getppid()), "--settings", settings]))


def _tail(path: Path, size: int = 4096) -> str:
    with open(path, "rb") as f:
        f.seek(0, os.SEEK_END)
        f.seek(max(0, f.tell() - size))
        return f.read().decode(errors="replace")


def _kill_group(child: multiprocessing.process.BaseProcess) -> None:
    """Kill the child and anything it started; reap it."""
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(child.pid, signal.SIGKILL)  # its group: it called setsid
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.kill(child.pid, signal.SIGKILL)  # in case it was killed before setsid
    child.join(10)
