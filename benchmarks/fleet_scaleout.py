"""The scaled-out fleet (Celery on Redis, ``kdx worker`` processes) under a burst of dumps.

For 1 and then 2 workers (one job at a time each) on this machine: a fresh fleet in a
temporary directory dispatching through a private ``redis-server``, a burst of ``--count``
lab vmcores (each with bytes appended after its end, so every copy has its own hash),
then the time to the first result, the median, 95th percentile and maximum time from a
dump's receipt to its fast result and to its full analysis (stored times), and dumps fully
analysed per minute; finally the ratio of the two rates. The debug-info side of per-job
time is ``benchmarks/fleet_debuginfo.py``. Usage:

    python benchmarks/fleet_scaleout.py [--count 100]
"""

from __future__ import annotations

import argparse
import io
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from sqlalchemy import func, select

from kdx.fleet.db import Dump
from kdx.fleet.embedded import open_fleet
from kdx.fleet.service import FleetConfig
from kdx.lab.cache import default_cache

RELEASE = "6.1.0-57-cloud-amd64"
RUNS = ("sysrq-kdump-kdump-zlib", "null-deref-module-kdump-kdump-zlib",
        "warn-kdump-kdump-zlib", "oom-kdump-kdump-zlib")


def _port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _redis(folder: Path) -> tuple[subprocess.Popen, str]:
    server = shutil.which("redis-server")
    if server is None:
        raise SystemExit("redis-server is not installed (Debian package redis-server)")
    port = _port()
    proc = subprocess.Popen([server, "--port", str(port), "--bind", "127.0.0.1", "--save",
                             "", "--appendonly", "no", "--dir", str(folder)],
                            stdout=subprocess.DEVNULL)
    time.sleep(0.5)
    return proc, f"redis://127.0.0.1:{port}/0"


def _spread(values: list[float]) -> str:
    """median / p95 / max of seconds, as printed."""
    ordered = sorted(values)
    p95 = ordered[min(len(ordered) - 1, round(0.95 * (len(ordered) - 1)))]
    return f"median {statistics.median(ordered):.1f} s, p95 {p95:.1f} s, max {ordered[-1]:.1f} s"


def _burst(count: int, workers: int, tmp: Path) -> dict[str, float]:
    redis_proc, broker = _redis(tmp)
    fleet = open_fleet(FleetConfig(data=tmp / "data", broker=broker))
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(sys.path))
    procs = [subprocess.Popen(
        [sys.executable, "-m", "kdx", "worker", "--database", fleet.url, "--broker", broker,
         "--store", fleet.store_spec, "--work", str(tmp / f"work{i}")], env=env,
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL) for i in range(workers)]
    try:
        time.sleep(3)  # the workers connect
        start = time.monotonic()
        for i in range(count):
            path = default_cache() / "runs" / RELEASE / RUNS[i % len(RUNS)] / "vmcore"
            data = io.BytesIO(path.read_bytes() + f"copy {i}".encode())
            fleet.ingest(data, f"vmcore-{i}")
        first = None
        while True:
            with fleet.db.session() as s:
                done = s.scalar(select(func.count()).select_from(Dump).where(
                    Dump.state.in_(("analysed", "failed"))))
                some = s.scalar(select(func.count()).select_from(Dump).where(
                    Dump.first_result.is_not(None)))
            if some and first is None:
                first = time.monotonic() - start
            if done == count:
                break
            time.sleep(0.2)
        total = time.monotonic() - start
        with fleet.db.session() as s:
            rows = list(s.execute(select(Dump.received, Dump.first_result, Dump.analysed)))
        fast = [(f - r).total_seconds() for r, f, _ in rows if f is not None]
        full = [(a - r).total_seconds() for r, _, a in rows if a is not None]
        return {"first": first or total, "fast": _spread(fast), "full": _spread(full),
                "per_minute": count / total * 60}
    finally:
        for proc in procs:
            proc.terminate()
        for proc in procs:
            proc.wait(60)
        fleet.close()
        redis_proc.terminate()
        redis_proc.wait(30)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=100)
    args = parser.parse_args()
    rates = {}
    for workers in (1, 2):
        with tempfile.TemporaryDirectory(prefix="kdx-scaleout-") as tmp:
            got = _burst(args.count, workers, Path(tmp))
        rates[workers] = got["per_minute"]
        print(f"{workers} worker(s): {args.count} dumps, first result after "
              f"{got['first']:.1f} s, {got['per_minute']:.1f} dumps/min\n"
              f"  receipt to fast result: {got['fast']}\n"
              f"  receipt to full analysis: {got['full']}", flush=True)
    print(f"2 workers / 1 worker: {rates[2] / rates[1]:.2f}x ({os.cpu_count()} cores)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
