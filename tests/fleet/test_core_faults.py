"""Faults the workers must survive: an analysis over its time limit, one over its memory
limit, and ``kdx serve`` killed with SIGKILL in the middle of 20 jobs. Every job ends
analysed or failed with a reason; nothing is lost and nothing completes twice."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from sqlalchemy import func, select

from kdx.fleet.db import Job
from kdx.fleet.embedded import open_fleet
from kdx.fleet.service import FleetConfig
from kdx.target.debuginfo import DEBUG_DIRS_ENV

SRC = Path(__file__).resolve().parents[2] / "src"


def wait_until(check, limit: float = 300, what: str = "jobs") -> None:
    """Poll ``check`` (a guard against a hang, not a timing)."""
    deadline = time.monotonic() + limit
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"{what}: still waiting after {limit:.0f} s")
        time.sleep(0.2)


def _analyse_one(tmp_path: Path, vmcore: Path, **limits):
    with pytest.MonkeyPatch.context() as mp:
        mp.delenv(DEBUG_DIRS_ENV, raising=False)
        fleet = open_fleet(FleetConfig(data=tmp_path / "data", workers=1, **limits))
    try:
        dump = fleet.ingest_path(vmcore)[0]
        wait_until(fleet.idle)
        return fleet.dump(dump.id), fleet.jobs()
    finally:
        fleet.close()


def test_an_analysis_over_its_time_limit_fails(tmp_path, sysrq):
    dump, jobs = _analyse_one(tmp_path, sysrq.vmcore, job_seconds=0.1)
    assert dump.state == "failed"
    assert dump.failure == "analysis took longer than 0.1 s"
    assert dump.fast is not None and dump.release  # the fast pass had its own limit
    assert [(j.stage, j.state) for j in jobs] == [("full", "failed"), ("fast", "done")]


def test_an_analysis_over_its_memory_limit_fails(tmp_path, sysrq):
    dump, jobs = _analyse_one(tmp_path, sysrq.vmcore, job_memory=300 << 20)
    assert dump.state == "failed"
    assert dump.failure == "ran out of memory (limit 300 MiB)"
    assert jobs[0].stage == "full" and jobs[0].failure == dump.failure


def test_a_crashing_analysis_fails_with_its_signal(tmp_path, sysrq):
    with pytest.MonkeyPatch.context() as mp:
        mp.delenv(DEBUG_DIRS_ENV, raising=False)
        fleet = open_fleet(FleetConfig(data=tmp_path / "data", workers=1))
    try:
        dump = fleet.ingest_path(sysrq.vmcore)[0]

        def full_running() -> bool:
            return any(stage == "full" for _, stage in fleet.pool.running().values())

        wait_until(lambda: full_running() or fleet.idle(), what="the full analysis")
        (pid,) = [p for p, (_, stage) in fleet.pool.running().items() if stage == "full"]
        os.kill(pid, signal.SIGSEGV)  # as drgn would on a dump that breaks it
        wait_until(fleet.idle)
        failed = fleet.dump(dump.id)
        assert failed.state == "failed"
        assert failed.failure == "the analysis crashed (SIGSEGV)"
        assert fleet.retry(dump.id).state == "received"  # and it can be retried
        wait_until(fleet.idle)
        assert fleet.dump(dump.id).state == "analysed"
    finally:
        fleet.close()


def _serve(data: Path, *options: str) -> subprocess.Popen:
    env = dict(os.environ, PYTHONPATH=str(SRC))
    env.pop(DEBUG_DIRS_ENV, None)
    return subprocess.Popen([sys.executable, "-m", "kdx", "serve", "--data", str(data),
                             "--port", "0", "--workers", "2", *options], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _stop(server: subprocess.Popen) -> tuple[str, str]:
    try:
        server.send_signal(signal.SIGTERM)
        out, err = server.communicate(timeout=60)
    finally:
        if server.poll() is None:
            server.kill()
    assert server.returncode == 0, err
    return out, err


def test_serve_watches_a_kdump_target_and_ingests_once(tmp_path, sysrq):
    data, target = tmp_path / "data", tmp_path / "crash"
    run = target / "10.0.0.9-2026-12-05-08:00:00"
    run.mkdir(parents=True)
    (run / "vmcore-dmesg.txt").symlink_to(sysrq.dir / "dmesg.txt")
    (run / "vmcore-incomplete").write_bytes(b"")  # kdump still writing
    reader = open_fleet(FleetConfig(data=data), workers=False)
    server = _serve(data, "--watch", str(target), "--watch-interval", "0.2")
    try:
        wait_until(lambda: (data / "kdx.sqlite3").exists(), what="the server")
        (run / "vmcore-incomplete").unlink()
        (run / "vmcore").symlink_to(sysrq.vmcore)  # the rename kdump does when done
        wait_until(lambda: reader.dumps(state="analysed"), what="the watched dump")
    finally:
        out, _ = _stop(server)
    assert f"watching {target}" in out
    (dump,) = reader.dumps()
    assert dump.filename == "vmcore" and dump.verdict["category"] == "sysrq"
    assert "sysrq" in reader.dump(dump.id).outputs["vmcore-dmesg.txt"].lower()
    again = _serve(data, "--watch", str(target), "--watch-interval", "0.2")
    try:
        # a new report: once it is in, the restarted watcher has looked at the old
        # directory in the same polls
        late = target / "late-dmesg.txt"
        late.write_bytes((sysrq.dir / "dmesg.txt").read_bytes() + b"[ 99.0] late\n")
        wait_until(lambda: len(reader.dumps(state="analysed")) == 2, what="the late log")
    finally:
        _stop(again)
    assert [d.filename for d in reader.dumps()] == ["late-dmesg.txt", "vmcore"]
    assert len([j for j in reader.jobs() if j.dump_id == dump.id]) == 2  # not again
    reader.close()


def _reports(tmp_path: Path, sysrq, count: int = 20, vmcores: int = 4) -> list[Path]:
    """Logs made distinct by a line, and copies of one small dump made distinct by bytes
    appended after its end (which no reader looks at)."""
    out = []
    log = (sysrq.dir / "dmesg.txt").read_bytes()
    data = sysrq.vmcore.read_bytes()
    for i in range(count):
        path = tmp_path / "in" / f"report-{i}"
        path.parent.mkdir(exist_ok=True)
        if i < vmcores:
            path.write_bytes(data + i.to_bytes(8, "little"))
        else:
            path.write_bytes(log + f"[ 99.0] copy {i}\n".encode())
        out.append(path)
    return out


def test_a_killed_server_loses_nothing_and_completes_nothing_twice(tmp_path, sysrq):
    data = tmp_path / "data"
    ingest = open_fleet(FleetConfig(data=data), workers=False)
    ids = [ingest.ingest_path(p)[0].id for p in _reports(tmp_path, sysrq)]
    assert len(set(ids)) == 20

    def done() -> int:
        with ingest.db.session() as s:
            return s.scalar(select(func.count()).select_from(Job).where(Job.state == "done"))

    server = _serve(data)
    try:
        wait_until(lambda: done() >= 4, what="the first results")
        server.send_signal(signal.SIGKILL)
        server.wait(timeout=30)
    finally:
        if server.poll() is None:
            server.kill()
    interrupted = done()
    assert interrupted < 24  # killed in the middle: 20 fast jobs and 4 full ones
    with ingest.db.session() as s:
        running = s.scalar(select(func.count()).select_from(Job).where(
            Job.state == "running"))
    restarted = _serve(data)
    try:
        wait_until(ingest.idle, what="the restarted server's jobs")
        restarted.send_signal(signal.SIGTERM)
        out, err = restarted.communicate(timeout=60)
    finally:
        if restarted.poll() is None:
            restarted.kill()
    assert restarted.returncode == 0, err
    assert "kdx serve: http://127.0.0.1:" in out and "stopped" in err
    # what the killed server left running was queued again, unless its last children
    # finished first (their leases were still valid then)
    requeued = re.search(r"(\d+) interrupted job\(s\) queued again", out)
    assert requeued is None or 1 <= int(requeued.group(1)) <= running
    for dump_id in ids:
        dump = ingest.dump(dump_id)
        assert dump.state in ("analysed", "failed"), dump
        assert dump.state == "analysed" or dump.failure
    assert sum(ingest.dump(i).state == "analysed" for i in ids) == 20
    with ingest.db.session() as s:
        jobs = list(s.scalars(select(Job)))
    assert all(j.state in ("done", "failed") for j in jobs)
    assert all(j.completions == (1 if j.state == "done" else 0) for j in jobs)
    # one fast job per report and one full job per vmcore: none ran twice to completion
    assert sorted((j.dump_id, j.stage) for j in jobs if j.state == "done") == sorted(
        [(i, "fast") for i in ids] + [(i, "full") for i in ids[:4]])
    ingest.close()
