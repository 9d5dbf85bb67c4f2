"""Time kdx, crash 8.0.6 and drgn-crash on the same dumps, command by command.

Rows: (a) open + sys, (b) bt -a, (c) ps, (d) log, (e) foreach bt. Each cell is the median
wall time of a one-shot run (start, open the dump, run the command, exit), so start-up
cost counts, as it does for a user. Two dumps show how cost grows with the task count:
the null-deref-module dump (~65 tasks) and a sysrq dump with 5,000 extra sleepers.

    python benchmarks/bench_commands.py [-n 3] [--skip-large]
"""

from __future__ import annotations

import argparse
import subprocess
import sys

from timing import compile_kdx, drgn_crash, timed

from kdx.lab.cache import default_cache
from kdx.lab.oracle import run_crash
from kdx.lab.run import RunRequest, dump_name, run

ROWS = [("open + sys", "sys"), ("bt -a", "bt -a"), ("ps", "ps"), ("log", "log"),
        ("foreach bt", "foreach bt")]





def bench_dump(label: str, req: RunRequest, repeat: int) -> None:
    cache = default_cache()
    out = run(cache, req, lambda m: print(f"[lab] {m}", file=sys.stderr))
    vmcore, vmlinux = out / dump_name(req), (out / "vmlinux").resolve()
    print(f"\n{label}: {vmcore}")
    print(f"  {'command':<12} {'kdx':>8} {'crash':>8} {'drgn-crash':>11} "
          f"{'kdx/crash':>10} {'kdx/drgn':>9}")
    for name, command in ROWS:
        kdx = timed(lambda c=command: subprocess.run(
            [sys.executable, "-m", "kdx", str(vmcore), str(vmlinux), "-c", c],
            capture_output=True), repeat)
        crash = timed(lambda c=command: run_crash(cache, vmlinux, vmcore, [c]), repeat)
        drgn = timed(lambda c=command: subprocess.run(
            [drgn_crash(), str(vmlinux), str(vmcore)], input=f"{c}\nq\n".encode(),
            capture_output=True), repeat)
        print(f"  {name:<12} {kdx:7.2f}s {crash:7.2f}s {drgn:10.2f}s "
              f"{kdx / crash:10.3f} {kdx / drgn:9.3f}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-n", "--repeat", type=int, default=3)
    parser.add_argument("--skip-large", action="store_true",
                        help="skip the 5,000-task dump (its first build takes minutes)")
    args = parser.parse_args()
    compile_kdx()
    bench_dump("small guest", RunRequest("null-deref-module"), args.repeat)
    if not args.skip_large:
        bench_dump("5,000 extra tasks", RunRequest("sysrq", tasks=5000, memory_mb=2048),
                   args.repeat)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
