"""Time opening a dump and printing ``sys`` with kdx, crash 8.0.6 and drgn-crash.

All three run on the same lab dump in one run; the script prints each median wall time
and the ratios kdx/crash and kdx/drgn-crash. Usage:

    python benchmarks/bench_open_sys.py [--scenario null-deref-module] [--kernel 6.1] [-n 3]
"""

from __future__ import annotations

import argparse
import subprocess
import sys

from timing import compile_kdx, drgn_crash, kdx_command, timed

from kdx.lab.cache import default_cache
from kdx.lab.oracle import run_crash
from kdx.lab.run import RunRequest, dump_name, run


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scenario", default="null-deref-module")
    parser.add_argument("--kernel")
    parser.add_argument("-n", "--repeat", type=int, default=3)
    args = parser.parse_args()
    compile_kdx()
    cache = default_cache()
    req = RunRequest(scenario=args.scenario, kernel=args.kernel)
    out = run(cache, req, lambda m: print(f"[lab] {m}", file=sys.stderr))
    vmcore, vmlinux = out / dump_name(req), (out / "vmlinux").resolve()
    kdx = [*kdx_command(), "sys", str(vmcore), str(vmlinux)]

    rows = {
        "kdx": timed(lambda: subprocess.run(kdx, capture_output=True, check=True), args.repeat),
        "crash 8.0.6": timed(lambda: run_crash(cache, vmlinux, vmcore, ["sys"]), args.repeat),
        "drgn-crash": timed(lambda: subprocess.run([drgn_crash(), str(vmlinux), str(vmcore)],
                                                   input=b"sys\nq\n", capture_output=True),
                            args.repeat),
    }
    print(f"open + sys on {vmcore} (median of {args.repeat})")
    for name, secs in rows.items():
        print(f"  {name:<12} {secs:7.2f} s")
    print(f"  kdx/crash      {rows['kdx'] / rows['crash 8.0.6']:.3f}")
    print(f"  kdx/drgn-crash {rows['kdx'] / rows['drgn-crash']:.3f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
