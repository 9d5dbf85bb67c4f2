"""Priorities under a storm: fast passes before full analyses, embedded and on Celery.

The storm meets a backlog of full analyses queued before it (the dumps of a build whose
debug info arrived, analysed again), so those full jobs are older than every fast job of
the storm: a queue that took jobs in arrival order would run them first. With one worker
(the embedded pool: one lane for any stage, one for fast passes; Celery: one ``kdx
worker`` taking ``kdx.fast`` before ``kdx.full``), every fast pass must be stored before
any full analysis starts, but the one the general lane may take while the last fast pass
runs. Checked on the jobs' stored start and finish times.
"""

from __future__ import annotations

import signal
import subprocess
import sys
from pathlib import Path

import httpx
import pytest
from sqlalchemy import select
from test_scaleout import REDIS, Redis, _env, _until, _worker
from webfleet import RELEASE_61, TOKEN, free_port, lab_file

from kdx.fleet.client import FleetClient
from kdx.fleet.db import Job, open_database
from kdx.fleet.embedded import open_fleet
from kdx.fleet.service import FleetConfig
from kdx.target.debuginfo import DEBUG_DIRS_ENV

RUNS = ("sysrq-kdump-kdump-zlib", "null-deref-module-kdump-kdump-zlib")
#: vmcores analysed first, then analysed again as the backlog of full jobs
BACKLOG = 4
#: the storm: vmcores and kernel logs, all new
STORM_VMCORES, STORM_LOGS = 4, 26
#: full analyses that may start before the last fast pass is stored (the general lane's)
ALLOWED_EARLY = 1


def _vmcores(tmp: Path, start: int, count: int) -> list[Path]:
    """Copies of lab vmcores, each with its own last byte (so its own hash)."""
    out = []
    for i in range(start, start + count):
        data = bytearray(lab_file(tmp / "lab", RELEASE_61, RUNS[i % 2]).read_bytes())
        data[-1] = i & 0xFF
        path = tmp / "vmcores" / f"vmcore-{i}"
        path.parent.mkdir(exist_ok=True)
        path.write_bytes(bytes(data))
        out.append(path)
    return out


def _logs(tmp: Path, count: int) -> list[Path]:
    out = []
    for i in range(count):
        text = lab_file(tmp / "lab", RELEASE_61, RUNS[i % 2], "dmesg.txt").read_bytes()
        path = tmp / "logs" / str(i) / "vmcore-dmesg.txt"
        path.parent.mkdir(parents=True)
        path.write_bytes(text + f"[99999.{i:06d}] kdx storm copy {i}\n".encode())
        out.append(path)
    return out


def _storm(tmp: Path) -> list[Path]:
    vmcores, logs = _vmcores(tmp, BACKLOG, STORM_VMCORES), _logs(tmp, STORM_LOGS)
    # interleaved, as they would come from a fleet
    return [*(p for pair in zip(vmcores, logs) for p in pair), *logs[len(vmcores):]]


def _check_order(database: str, storm_from: int) -> None:
    """Every fast job of the storm (jobs from id ``storm_from``) finished before all but
    ``ALLOWED_EARLY`` of the full jobs after it started; every job done."""
    db = open_database(database, migrate=False)
    try:
        with db.session() as s:
            jobs = list(s.execute(select(Job.id, Job.stage, Job.state, Job.started,
                                         Job.finished).where(Job.id >= storm_from)))
    finally:
        db.close()
    assert {j.state for j in jobs} == {"done"}, jobs
    fast = [j for j in jobs if j.stage == "fast"]
    full = [j for j in jobs if j.stage == "full"]
    assert len(fast) == STORM_VMCORES + STORM_LOGS
    assert len(full) == BACKLOG + STORM_VMCORES
    last_fast = max(j.finished for j in fast)
    early = [j for j in full if j.started < last_fast]
    assert len(early) <= ALLOWED_EARLY, (last_fast, early)


def _last_job(database: str) -> int:
    db = open_database(database, migrate=False)
    try:
        with db.session() as s:
            return max(s.scalars(select(Job.id)))
    finally:
        db.close()


def test_embedded_pool_stores_every_fast_pass_before_the_full_backlog(tmp_path, monkeypatch):
    monkeypatch.delenv(DEBUG_DIRS_ENV, raising=False)  # analysed from the dump's own BTF
    monkeypatch.delenv("DEBUGINFOD_URLS", raising=False)
    config = FleetConfig(data=tmp_path / "data", workers=1, job_seconds=60)
    database = f"sqlite:///{tmp_path / 'data' / 'kdx.sqlite3'}"
    fleet = open_fleet(config)
    try:
        first = [fleet.ingest_path(p)[0] for p in _vmcores(tmp_path, 0, BACKLOG)]
        _until(fleet.idle, "the first vmcores to be analysed", 120)
        build_ids = {fleet.dump(d.id).build_id for d in first}
    finally:
        fleet.close()
    assert len(build_ids) == 1 and None not in build_ids
    # the server is down while the backlog and the storm come in
    fleet = open_fleet(config, workers=False)
    try:
        assert fleet.reanalyse_build(build_ids.pop()) == BACKLOG
        storm_from = _last_job(database) - BACKLOG + 1
        for path in _storm(tmp_path):
            fleet.ingest_path(path)
    finally:
        fleet.close()
    fleet = open_fleet(config)
    try:
        _until(fleet.idle, "the storm to be analysed", 180)
    finally:
        fleet.close()
    _check_order(database, storm_from)


@pytest.mark.skipif(REDIS is None, reason="redis-server is not installed "
                    "(Debian package redis-server)")
def test_celery_worker_takes_every_fast_pass_before_the_full_backlog(tmp_path):
    data = tmp_path / "data"
    data.mkdir()
    database = f"sqlite:///{data / 'kdx.sqlite3'}"
    (tmp_path / "tokens").write_text(TOKEN + "\n")
    redis_server = Redis(free_port(), tmp_path)
    redis_server.start()
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    api = subprocess.Popen(
        [sys.executable, "-m", "kdx", "serve", "--data", str(data), "--port", str(port),
         "--database", database, "--broker", redis_server.url, "--token-file",
         str(tmp_path / "tokens"), "--job-seconds", "60"],
        env=_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    worker = None
    try:
        assert "workers via redis://" in api.stdout.readline()
        worker = _worker(data, database, redis_server.url, tmp_path / "work0")
        with FleetClient(url, TOKEN) as client:
            first = [client.submit(p)[0].dump["id"] for p in _vmcores(tmp_path, 0, BACKLOG)]

            def analysed(ids: list[int]) -> bool:
                states = {d["id"]: d["state"] for d in client.dumps(limit=1000)}
                return all(states.get(i) == "analysed" for i in ids)

            _until(lambda: analysed(first), "the first vmcores to be analysed", 120)
            # the worker stops; the backlog and the storm wait in the broker
            worker.send_signal(signal.SIGTERM)
            assert worker.wait(60) is not None
            build_ids = {client.dump(i)["build_id"] for i in first}
            assert len(build_ids) == 1 and None not in build_ids
            queued = httpx.post(f"{url}/api/v1/debuginfo/{build_ids.pop()}/reanalyse",
                                headers={"Authorization": f"Bearer {TOKEN}"}, timeout=60)
            assert queued.json()["queued"] == BACKLOG
            storm_from = _last_job(database) - BACKLOG + 1
            storm = [client.submit(p)[0].dump["id"] for p in _storm(tmp_path)]
            worker = _worker(data, database, redis_server.url, tmp_path / "work1")
            _until(lambda: analysed(first + storm), "the storm to be analysed", 180)
        _check_order(database, storm_from)
    finally:
        for proc in (worker, api):
            if proc is not None and proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
                try:
                    proc.wait(60)
                except subprocess.TimeoutExpired:
                    proc.kill()
        redis_server.stop()
