"""Time the fast pass on every lab dump in the cache (its target: under 2 s a dump).

Two figures per dump: the fast pass in a warm process (what a fleet worker pays per dump)
and a one-shot process (start Python, import kdx, read the dump, exit). Flattened dumps
are timed once more with their reassembled copy removed, since a fleet sees each one once.

    python benchmarks/bench_fastpass.py [-n 3]
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
from pathlib import Path

from timing import compile_kdx, timed

from kdx.diagnosis.fastpass import fast_report
from kdx.lab.cache import default_cache

_ONE_SHOT = ("import sys; from pathlib import Path; from kdx.diagnosis.fastpass import "
             "fast_report; fast_report(Path(sys.argv[1]))")


def _dumps() -> list[Path]:
    runs = sorted(p.parent for p in (default_cache() / "runs").glob("*/*/truth.json"))
    return [next(r.glob("vmcore*")) for r in runs if any(r.glob("vmcore*"))]


def _uncached_flattened(dump: Path, repeat: int) -> float:
    """The fast pass on a copy of a flattened dump, whose reassembled copy is not there
    yet (each copy has its own; it is removed after)."""
    import shutil
    import tempfile
    import time

    from kdx.target.formats import identify
    from kdx.target.open import _reassemble

    times = []
    with tempfile.TemporaryDirectory() as tmp:
        for i in range(repeat):
            copy = Path(tmp) / f"vmcore-{i}.flat"
            shutil.copy(dump, copy)
            start = time.perf_counter()
            fast_report(copy)
            times.append(time.perf_counter() - start)
            _reassemble(identify(copy), None).unlink()  # the cached copy: found, removed
    return statistics.median(times)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-n", type=int, default=3, help="runs per figure (median)")
    args = parser.parse_args()
    compile_kdx()
    warm, cold = [], []
    print(f"{'dump':<62} {'warm':>7} {'one-shot':>9}")
    for dump in _dumps():
        fast_report(dump)  # reassemble a flattened dump once, outside the timing
        w = timed(lambda d=dump: fast_report(d), args.n)
        c = timed(lambda d=dump: subprocess.run([sys.executable, "-c", _ONE_SHOT, str(d)],
                                                check=True), args.n)
        warm.append(w)
        cold.append(c)
        label = f"{dump.parent.parent.name[:14]}/{dump.parent.name}"
        print(f"{label:<62} {w:7.3f} {c:9.3f}")
        if dump.name.endswith(".flat"):
            print(f"{'  (flattened, reassembled afresh)':<62} "
                  f"{_uncached_flattened(dump, args.n):7.3f}")
    print(f"\n{len(warm)} dumps: median {statistics.median(warm):.3f} s warm, "
          f"{statistics.median(cold):.3f} s one-shot; slowest {max(warm):.3f} s warm, "
          f"{max(cold):.3f} s one-shot")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
