"""Submit 200 dumps to an embedded fleet and time how fast it triages them.

The dumps are lab vmcores (a few scenarios on both lab kernels), each streamed in with a
few bytes appended after its end so every copy has its own hash (no reader looks past a
dump's last page) and the store keeps every one. The fleet runs its real worker processes
with the lab's kernels as its debug-info store. Prints the time to the first result,
the time from receipt to first result per dump, dumps fully analysed per minute per core,
the stages' median job times, and the peak memory of a worker process. Usage:

    python benchmarks/fleet_ingest.py [--count 200] [--workers N] [--no-debuginfo]
"""

from __future__ import annotations

import argparse
import io
import os
import statistics
import tempfile
import time
from pathlib import Path

from sqlalchemy import func, select

from kdx.fleet.db import Job
from kdx.fleet.embedded import open_fleet
from kdx.fleet.service import FleetConfig
from kdx.lab.cache import default_cache

SCENARIOS = ("null-deref-module", "warn", "bug-on", "oom", "sysrq")


class Suffixed(io.RawIOBase):
    """A file's bytes followed by ``suffix``, read as one stream."""

    def __init__(self, path: Path, suffix: bytes) -> None:
        self._f = open(path, "rb")  # noqa: SIM115 (closed with the stream)
        self._suffix = io.BytesIO(suffix)

    def readable(self) -> bool:
        return True

    def read(self, size: int = -1) -> bytes:
        return self._f.read(size) or self._suffix.read(size)

    def close(self) -> None:
        self._f.close()
        super().close()


def lab_dumps() -> list[Path]:
    """The cached lab vmcores of ``SCENARIOS`` (kdump, kdump-compressed), every kernel;
    nothing is built here (``kdx lab run SCENARIO`` makes a missing one)."""
    found = sorted((default_cache() / "runs").glob("*/*-kdump-kdump-zlib/vmcore"))
    out = [p for p in found if p.parent.name.removesuffix("-kdump-kdump-zlib") in SCENARIOS]
    if not out:
        raise SystemExit("no lab dumps cached: run 'kdx lab run sysrq' first")
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=200)
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--no-debuginfo", action="store_true",
                        help="analyse without the vmlinux (from the dumps' own debug info)")
    args = parser.parse_args()
    sources = lab_dumps()
    os.environ.pop("KDX_DEBUG_DIRS", None)
    debuginfo = None if args.no_debuginfo else default_cache() / "kernels"
    with tempfile.TemporaryDirectory(prefix="kdx-fleet-bench-") as tmp:
        fleet = open_fleet(FleetConfig(data=Path(tmp), workers=args.workers,
                                       debuginfo=debuginfo))
        start = time.monotonic()
        first: float | None = None
        for i in range(args.count):
            with Suffixed(sources[i % len(sources)], i.to_bytes(8, "little")) as stream:
                fleet.ingest(stream, f"vmcore-{i}")
            if first is None and fleet.dumps(state="fast", limit=1):
                first = time.monotonic() - start
        submitted = time.monotonic() - start
        while not fleet.idle():
            if first is None and (fleet.dumps(state="fast", limit=1)
                                  or fleet.dumps(state="analysed", limit=1)):
                first = time.monotonic() - start
            time.sleep(0.1)
        elapsed = time.monotonic() - start
        metrics = fleet.metrics()
        with fleet.db.session() as s:
            fast = list(s.scalars(select(Job.seconds).where(Job.stage == "fast",
                                                            Job.state == "done")))
            full = list(s.scalars(select(Job.seconds).where(Job.stage == "full",
                                                            Job.state == "done")))
            peaks = {stage: s.scalar(select(func.max(Job.peak_memory))
                                     .where(Job.stage == stage)) or 0
                     for stage in ("fast", "full")}
        states = metrics["dumps"]
        fleet.close()
    firsts = sorted(metrics["first_result_seconds"])
    analysed = states.get("analysed", 0)
    print(f"{args.count} dumps ({len(sources)} lab vmcores, 16 MiB each) on {args.workers} "
          f"worker(s), debug info: {'none' if debuginfo is None else 'vmlinux'}")
    print(f"  submitted in                 {submitted:7.1f} s")
    print(f"  time to first result         {first or 0:7.2f} s")
    print(f"  receipt to first result      median {statistics.median(firsts):.1f} s, "
          f"max {firsts[-1]:.1f} s")
    print(f"  all analysed in              {elapsed:7.1f} s  ({analysed:.0f} analysed, "
          f"{states.get('failed', 0):.0f} failed)")
    print(f"  analysed per minute per core {analysed / (elapsed / 60) / args.workers:7.1f}")
    print(f"  job time, median             fast {statistics.median(fast):.2f} s, "
          f"full {statistics.median(full):.2f} s")
    print(f"  peak memory of a job process fast {peaks['fast'] / (1 << 20):.0f} MiB, "
          f"full {peaks['full'] / (1 << 20):.0f} MiB (resident, shared pages included)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
