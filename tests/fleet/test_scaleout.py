"""The fleet scaled out: ``kdx serve --broker`` (no local workers), two ``kdx worker``
processes and a real ``redis-server``, sharing SQLite and the dump store in one directory.

Over 100 dumps (lab vmcores, copies with a changed last byte, and kernel logs) are
submitted through the API; one worker is SIGKILLed while it runs a job and Redis is
restarted (losing every message) once; then every dump must be analysed exactly once per
stage, bucketed with its own kind, and no job may be left queued or running.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import pytest
from conftest import fresh_postgres_database, service_url
from sqlalchemy import select
from webfleet import RELEASE_61, TOKEN, free_port, lab_file

from kdx.fleet.client import FleetClient
from kdx.fleet.db import Job, open_database
from kdx.target.debuginfo import DEBUG_DIRS_ENV

SRC = Path(__file__).resolve().parents[2] / "src"
REDIS = shutil.which("redis-server")
pytestmark = pytest.mark.skipif(REDIS is None, reason="redis-server is not installed "
                                "(Debian package redis-server)")
#: Lab runs whose kernel log is sent as a dump of its own, and how many copies of each.
LOGS = ("sysrq-kdump-kdump-zlib", "null-deref-module-kdump-kdump-zlib",
        "warn-kdump-kdump-zlib", "bug-on-kdump-kdump-zlib", "oom-kdump-kdump-zlib")
LOG_COPIES = 20
VMCORES = ("sysrq-kdump-kdump-zlib", "null-deref-module-kdump-kdump-zlib")
JOB_SECONDS = "30"


def _env() -> dict[str, str]:
    env = dict(os.environ, PYTHONPATH=str(SRC))
    env.pop(DEBUG_DIRS_ENV, None)
    env.pop("DEBUGINFOD_URLS", None)
    return env


def _until(check, what: str, limit: float = 240) -> None:  # noqa: ANN001
    """A guard against a hang, not a timing."""
    deadline = time.monotonic() + limit
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"still waiting for {what}")
        time.sleep(0.2)


class Redis:
    """A redis-server on a loopback port, keeping nothing on disk."""

    def __init__(self, port: int, folder: Path) -> None:
        self.port, self.folder = port, folder
        self.proc: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        self.proc = subprocess.Popen(
            [REDIS, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "",
             "--appendonly", "no", "--dir", str(self.folder)],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        import redis

        client = redis.Redis(port=self.port)

        def up() -> bool:
            try:
                return bool(client.ping())
            except redis.ConnectionError:
                return False

        _until(up, "redis to start", 30)

    def stop(self) -> None:
        if self.proc is not None:
            self.proc.terminate()
            self.proc.wait(30)
            self.proc = None


def _worker(data: Path, database: str, broker: str, work: Path) -> subprocess.Popen:
    work.mkdir()
    log = (work / "stderr").open("w")  # noqa: SIM115 (the child holds it)
    return subprocess.Popen(
        [sys.executable, "-m", "kdx", "worker", "--database",
         database, "--broker", broker, "--store",
         str(data / "dumps"), "--work", str(work), "--concurrency", "1",
         "--job-seconds", JOB_SECONDS], env=_env(), stdout=subprocess.DEVNULL,
        stderr=log, text=True)


def _running_job_child(pid: int, age: float = 0.25) -> bool:
    """Whether a job child (a process that made its own session) descends from ``pid``
    and has run for ``age`` seconds (a full analysis, not a job storing its result)."""
    parents: dict[int, int] = {}
    sessions: dict[int, int] = {}
    started: dict[int, float] = {}
    tick = os.sysconf("SC_CLK_TCK")
    uptime = float(Path("/proc/uptime").read_text().split()[0])
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        parents[int(entry.name)] = int(fields[1])
        sessions[int(entry.name)] = int(fields[3])
        started[int(entry.name)] = int(fields[19]) / tick
    for child, sid in sessions.items():
        if sid != child or uptime - started[child] < age:
            continue
        up = parents.get(child, 0)
        while up > 1:
            if up == pid:
                return True
            up = parents.get(up, 0)
    return False


def _descendants(pid: int) -> list[int]:
    parents: dict[int, int] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                parents[int(entry.name)] = int(
                    (entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
            except OSError:
                continue
    found, todo = [], [pid]
    while todo:
        up = todo.pop()
        kids = [p for p, pp in parents.items() if pp == up]
        found += kids
        todo += kids
    return found


def _stop_tree(pid: int, sig: int) -> list[int]:
    """Send ``sig`` to ``pid`` and then to its descendants (looked for again after the
    parent stopped, so no child it was starting is missed). Returns them all."""
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, sig)
    tree = _descendants(pid)
    for child in tree:
        with contextlib.suppress(ProcessLookupError):
            os.kill(child, sig)
    return [pid, *tree]


def _jobs_of(pids: list[int]) -> set[int]:
    """The jobs these processes run: a job child's stderr is the pool's
    ``stderr-job<ID>-…`` file."""
    jobs = set()
    for pid in pids:
        with contextlib.suppress(OSError):
            found = re.match(r"stderr-job(\d+)-", Path(os.readlink(f"/proc/{pid}/fd/2")).name)
            if found:
                jobs.add(int(found.group(1)))
    return jobs


def _stopped_victim(worker: subprocess.Popen, db_url: str) -> int | None:
    """Freeze the worker and its job children (SIGSTOP) and name the job it is running,
    if that job is still running in the database: a frozen job cannot complete, so the
    job named is one the worker will be killed in the middle of. None (and the worker
    let go on) when it runs no job, or its job has just completed."""
    tree = _stop_tree(worker.pid, signal.SIGSTOP)
    jobs = _jobs_of(tree)
    running: list[int] = []
    if len(jobs) == 1:
        db = open_database(db_url, migrate=False)
        try:
            with db.session() as s:
                running = list(s.scalars(select(Job.id).where(Job.state == "running",
                                                              Job.id.in_(jobs))))
        finally:
            db.close()
    if len(running) == 1:
        return running[0]
    _stop_tree(worker.pid, signal.SIGCONT)
    return None


def _kill_and_restart(worker: subprocess.Popen, redis_server: Redis) -> None:
    """SIGKILL a (frozen) worker and its processes, a machine lost in the middle of a job,
    then restart the broker (losing every message it held)."""
    _stop_tree(worker.pid, signal.SIGKILL)
    worker.wait(30)
    redis_server.stop()
    redis_server.start()


def _inputs(tmp: Path) -> dict[str, tuple[Path, str]]:
    """File name -> (file, the lab run it shows): vmcores, their copies with a changed
    last byte, and each run's kernel log with a line added per copy."""
    out: dict[str, tuple[Path, str]] = {}
    for run in VMCORES:
        original = lab_file(tmp / "lab", RELEASE_61, run)
        copy = tmp / f"{run}-copy"
        data = bytearray(original.read_bytes())
        data[-1] ^= 0xFF
        copy.write_bytes(bytes(data))
        out[original.name], out[copy.name] = (original, run), (copy, run)
    for run in LOGS:
        text = lab_file(tmp / "lab", RELEASE_61, run, "dmesg.txt").read_bytes()
        for i in range(LOG_COPIES):
            path = tmp / "logs" / f"{run}-{i}" / "vmcore-dmesg.txt"
            path.parent.mkdir(parents=True)
            path.write_bytes(text + f"[99999.{i:06d}] kdx test copy {i}\n".encode())
            out[f"{run}-{i}"] = (path, run)
    return out


@pytest.fixture(scope="module")
def scaled(tmp_path_factory):  # noqa: ANN001, ANN201 (fixtures)
    tmp = tmp_path_factory.mktemp("scaleout")
    data = tmp / "data"
    data.mkdir()
    (tmp / "tokens").write_text(TOKEN + "\n")
    # PostgreSQL when scripts/services runs it (as a deployment would), else shared SQLite
    server = service_url("KDX_TEST_DATABASE")
    fresh = fresh_postgres_database(server) if server else None
    database = next(fresh) if fresh else f"sqlite:///{data / 'kdx.sqlite3'}"
    redis_server = Redis(free_port(), tmp)
    redis_server.start()
    port = free_port()
    api = subprocess.Popen(
        [sys.executable, "-m", "kdx", "serve", "--data", str(data), "--port", str(port),
         "--database", database, "--broker", redis_server.url, "--token-file", str(tmp / "tokens"),
         "--job-seconds", JOB_SECONDS], env=_env(), stdout=subprocess.PIPE,
        stderr=subprocess.PIPE, text=True)
    workers: list[subprocess.Popen] = []
    try:
        banner = api.stdout.readline()
        assert "workers via redis://" in banner, (banner, api.stderr.read())
        workers = [_worker(data, database, redis_server.url, tmp / f"work{i}")
                   for i in range(2)]
        yield tmp, database, f"http://127.0.0.1:{port}", redis_server, workers
    finally:
        for proc in [*workers, api]:
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        for proc in [*workers, api]:
            try:
                proc.wait(60)
            except subprocess.TimeoutExpired:
                proc.kill()
        redis_server.stop()
        if fresh:
            fresh.close()  # drops the database


def test_every_dump_analysed_once_through_a_killed_worker_and_a_broker_restart(scaled):
    tmp, database, url, redis_server, workers = scaled
    inputs = _inputs(tmp)
    assert len(inputs) >= 100
    ids: dict[str, int] = {}
    with FleetClient(url, TOKEN) as client:
        victim: int | None = None

        def frozen_in_a_job() -> bool:
            nonlocal victim
            if _running_job_child(workers[0].pid, 0):  # frozen, a job cannot finish
                victim = _stopped_victim(workers[0], database)
            return victim is not None

        for name, (path, _run) in inputs.items():
            (sent,) = client.submit(path)
            assert not sent.skipped
            ids[name] = sent.dump["id"]
            if victim is None and frozen_in_a_job():
                _kill_and_restart(workers[0], redis_server)
        assert len(set(ids.values())) == len(inputs)  # every copy is a dump of its own
        if victim is None:
            _until(frozen_in_a_job, "worker 0 to run a job")
            _kill_and_restart(workers[0], redis_server)

        def finished() -> bool:
            states = Counter(d["state"] for d in client.dumps(limit=1000))
            return sum(states[s] for s in ("analysed", "failed")) == len(inputs)

        _until(finished, "every dump to be analysed", 300)
        dumps = {d["id"]: d for d in client.dumps(limit=1000)}

    assert {d["state"] for d in dumps.values()} == {"analysed"}, [
        (d["filename"], d["failure"]) for d in dumps.values() if d["state"] != "analysed"]
    # exactly once: one done job per dump and stage, completed once; nothing left over
    db = open_database(database, migrate=False)
    try:
        with db.session() as s:
            jobs = list(s.execute(select(Job.id, Job.dump_id, Job.stage, Job.state,
                                         Job.completions, Job.attempts)))
    finally:
        db.close()
    assert not [j for j in jobs if j.state in ("queued", "running")]
    done = Counter((j.dump_id, j.stage) for j in jobs if j.state == "done")
    assert all(j.completions == 1 for j in jobs if j.state == "done")
    vmcore_ids = {ids[p.name] for p, _ in inputs.values() if "dmesg" not in p.name}
    assert len(vmcore_ids) == 2 * len(VMCORES)
    expected = {(i, "fast") for i in ids.values()} | {(i, "full") for i in vmcore_ids}
    assert set(done) == expected and set(done.values()) == {1}
    # the killed worker's job was taken back once its lease ran out and ran again, once;
    # every other job ran once (a second delivery of a message finds its job taken)
    attempts = {j.id: j.attempts for j in jobs if j.attempts != 1}
    assert attempts == {victim: 2}, (victim, attempts)
    # buckets: one problem per lab scenario, whatever the kind of file
    problem_of_run: dict[str, set[int]] = {}
    for name, (_path, run) in inputs.items():
        problem_of_run.setdefault(run, set()).add(dumps[ids[name]]["problem_id"])
    assert all(len(p) == 1 and None not in p for p in problem_of_run.values()), problem_of_run
    assert len({next(iter(p)) for p in problem_of_run.values()}) == len(LOGS)


@pytest.mark.parametrize(("option", "value", "says"), [
    ("--broker", "amqp://127.0.0.1//", "--broker must be a redis:// URL"),
    ("--store", "/nonexistent/kdx-store", "no such directory"),
])
def test_worker_refuses_bad_options_in_one_line(tmp_path, option, value, says):
    args = {"--database": f"sqlite:///{tmp_path / 'db'}", "--broker": "redis://127.0.0.1:1/0",
            "--store": str(tmp_path)}
    args[option] = value
    done = subprocess.run([sys.executable, "-m", "kdx", "worker",
                           *[w for kv in args.items() for w in kv]], env=_env(),
                          capture_output=True, text=True, timeout=60)
    assert done.returncode != 0
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("kdx: error: ") and says in lines[0]
