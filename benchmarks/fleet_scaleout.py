"""The scaled-out fleet (Celery on Redis, ``kdx worker`` processes) under a burst of dumps.

For 1 and then 2 workers (one job at a time each) on this machine: a fresh fleet in a
temporary directory dispatching through a private ``redis-server``, a burst of ``--count``
lab vmcores (each with bytes appended after its end, so every copy has its own hash),
then the time to the first result, the median time from receipt to first result, and
dumps fully analysed per minute; finally the ratio of the two rates. Usage:

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


def _burst(count: int, workers: int, tmp: Path) -> dict[str, float]:
    redis_proc, broker = _redis(tmp)
    fleet = open_fleet(FleetConfig(data=tmp / "data", broker=broker))
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(sys.path))
    procs = [subprocess.Popen(
        [sys.executable, "-m", "kdx", "worker", "--database", fleet.url, "--broker", broker,
         "--store", str(fleet.store.root), "--work", str(tmp / f"work{i}")], env=env,
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
            waits = [(a - b).total_seconds() for a, b in s.execute(
                select(Dump.first_result, Dump.received))]
        return {"first": first or total, "median_first": statistics.median(waits),
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
              f"{got['first']:.1f} s, median receipt-to-first-result "
              f"{got['median_first']:.1f} s, {got['per_minute']:.1f} dumps/min", flush=True)
    print(f"2 workers / 1 worker: {rates[2] / rates[1]:.2f}x ({os.cpu_count()} cores)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
