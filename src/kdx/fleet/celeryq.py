"""The Celery adapter of the job queue: ``kdx serve --broker redis://...`` and ``kdx worker``.

The ``jobs`` table stays the source of truth (state, lease, attempts, completion exactly
once under the lease check); Celery only delivers "run job N". The API process enqueues
jobs in the database as the embedded fleet does, and its ``Dispatcher`` publishes every
queued job to Redis after the transaction committed (an outbox: a message is never sent
for a job that was rolled back, and one a broker restart lost is sent again). A message
carries the job id, the dump's store key and its build ID, never the dump's bytes; a
second delivery of the same job finds it taken and does nothing.

Workers (``kdx worker``) run each job in its own child process with the stage's time and
memory limits, exactly as the embedded pool does (``WorkerPool.run_claim``). A job whose
worker was killed is taken back by the dispatcher once its time limit plus a margin passed
(its lease is void), and fails with the reason after ``MAX_ATTEMPTS`` tries: the dead
letter is the job's ``failed`` state and its reason. Infrastructure errors (database or
broker unreachable) are retried with backoff; a bad dump fails once with its reason.

Priorities: two queues, ``kdx.fast`` and ``kdx.full``, and Redis' "priority" queue order:
a worker always takes a fast pass first when one waits, so a storm of full analyses never
delays anyone's first result by more than the jobs already running.
"""

from __future__ import annotations

import os
import socket
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

from kdx.fleet.queue import STAGES, SqlJobQueue, WorkerPool, WorkerSettings

__all__ = ["MARGIN", "QUEUES", "Dispatcher", "celery_app", "default_work_dir", "run_worker"]

#: Queue of each stage; workers listen to them in this order.
QUEUES = {"fast": "kdx.fast", "full": "kdx.full"}
#: How much longer than its time limit a running job may go before it counts as abandoned.
MARGIN = 15.0
#: Seconds a queued job's message may be missing from the broker before it is sent again.
RESEND = 10.0
TASK = "kdx.run_job"


def celery_app(broker: str, seconds: dict[str, float]) -> Any:
    """A Celery app for long CPU jobs: late acknowledgement, one message prefetched, a
    message of a worker that died delivered again, a visibility timeout beyond the
    longest job, fast queue before full."""
    from celery import Celery

    longest = max(seconds.values())
    app = Celery("kdx", broker=broker, set_as_current=False)
    app.conf.update(
        task_acks_late=True,
        task_reject_on_worker_lost=True,
        worker_prefetch_multiplier=1,
        task_time_limit=longest + MARGIN,
        task_default_queue=QUEUES["full"],
        task_serializer="json", accept_content=["json"],
        broker_transport_options={"visibility_timeout": int(longest + 2 * MARGIN),
                                  "queue_order_strategy": "priority"},
        broker_connection_retry_on_startup=True,
        worker_hijack_root_logger=False,
        worker_send_task_events=False,
        task_ignore_result=True,
    )
    app.task(name=TASK, bind=True, acks_late=True)(_run_job)
    return app


class Dispatcher:
    """The API process's side: publishes queued jobs and takes back abandoned ones. It
    stands where the embedded fleet's ``WorkerPool`` does (``start``/``wake``/``stop``)."""

    count = 0  # no local workers

    def __init__(self, queue: SqlJobQueue, broker: str, settings: WorkerSettings,
                 *, interval: float = 0.5) -> None:
        self.queue = queue
        self.broker = broker
        self.settings = settings
        self.interval = interval
        self.app = celery_app(broker, settings.seconds)
        self._sent: dict[int, float] = {}
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.errors = 0

    def start(self) -> None:
        self._thread = threading.Thread(target=self._loop, daemon=True, name="kdx-dispatch")
        self._thread.start()

    def wake(self) -> None:
        self._wake.set()

    def running(self) -> dict[int, tuple[int, str]]:
        return {}

    def stop(self) -> None:
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout=30)
            self._thread = None

    def _loop(self) -> None:
        delay = self.interval
        while not self._stop.is_set():
            self._wake.wait(delay)
            self._wake.clear()
            try:
                self.dispatch()
                delay = self.interval
            except Exception as err:  # noqa: BLE001 (the broker or the database is down)
                self.errors += 1
                print(f"kdx serve: cannot dispatch jobs ({type(err).__name__}: "
                      f"{str(err).splitlines()[0] if str(err) else ''}); retrying",
                      file=sys.stderr, flush=True)
                delay = min(30.0, delay * 2)

    def dispatch(self) -> int:
        """Take back abandoned jobs, then send every queued job not sent yet (or whose
        message the broker lost). Returns how many were sent."""
        for stage in STAGES:
            self.queue.expire(stage, self.settings.seconds[stage] + MARGIN)
        queued = self.queue.queued()
        now = time.monotonic()
        self._sent = {k: v for k, v in self._sent.items() if k in {q[0] for q in queued}}
        lost: bool | None = None
        sent = 0
        for job_id, stage, key, build_id in queued:
            last = self._sent.get(job_id)
            if last is not None:
                if now - last < RESEND:
                    continue
                if lost is None:
                    lost = self._broker_empty()
                if not lost:
                    continue
            self.app.send_task(TASK, args=[job_id],
                               kwargs={"key": key, "build_id": build_id},
                               queue=QUEUES[stage])
            self._sent[job_id] = time.monotonic()
            sent += 1
        return sent

    def _broker_empty(self) -> bool:
        """No message waits in the broker (a restart lost them, or all were taken)."""
        with self.app.connection_for_write() as conn:
            client = conn.default_channel.client
            return all(client.llen(name) == 0 for name in QUEUES.values())


# -- the worker side ----------------------------------------------------------------------

_runner_lock = threading.Lock()
_runners: dict[int, tuple[SqlJobQueue, WorkerPool]] = {}


def _runner(app: Any) -> tuple[SqlJobQueue, WorkerPool]:
    """The worker process's queue and job runner (made once per app)."""
    from kdx.fleet.db import open_database

    with _runner_lock:
        found = _runners.get(id(app))
        if found is None:
            settings: WorkerSettings = app.conf.kdx_settings
            queue = SqlJobQueue(open_database(settings.database, migrate=False))
            pool = WorkerPool(queue, settings, 0, Path(settings.data) / "tmp")
            found = _runners[id(app)] = (queue, pool)
        return found


def _run_job(task: Any, job_id: int, key: str | None = None,
             build_id: str | None = None) -> str:
    """The Celery task: claim job ``job_id`` (if still queued) and run it in a child."""
    from sqlalchemy.exc import DBAPIError

    try:
        queue, pool = _runner(task.app)
        claim = queue.claim_job(job_id)
    except DBAPIError as err:  # the database is unreachable: not the dump's fault
        raise task.retry(exc=err, countdown=min(60, 2 ** task.request.retries),
                         max_retries=8) from None
    if claim is None:
        return "taken"
    pool.run_claim(claim)
    return "ran"


def run_worker(broker: str, settings: WorkerSettings, concurrency: int) -> int:
    """Run a Celery worker in this process (``kdx worker``) until SIGTERM/SIGINT."""
    app = celery_app(broker, settings.seconds)
    app.conf.kdx_settings = settings
    Path(settings.data, "tmp").mkdir(parents=True, exist_ok=True)
    name = f"kdx-{os.getpid()}@{socket.gethostname()}"
    app.worker_main(["worker", "--pool=threads", f"--concurrency={concurrency}",
                     "--queues", ",".join(QUEUES[s] for s in STAGES), "--hostname", name,
                     "--loglevel=WARNING", "--without-gossip", "--without-mingle",
                     "--without-heartbeat"])
    return 0


def default_work_dir() -> Path:
    """A worker's scratch directory (reassembled dumps, stderr files) when none is given."""
    return Path(tempfile.mkdtemp(prefix="kdx-worker-"))
