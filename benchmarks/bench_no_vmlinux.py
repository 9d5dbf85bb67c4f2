"""Without a vmlinux, is kdx still fast? kdx --no-vmlinux against kdx with the vmlinux,
crash 8.0.6 and drgn-crash (both need the vmlinux) on the same dumps.

Rows: open + sys, bt -a, and ``kdx analyze``. Each cell is the median wall time of a
one-shot run (start, open, run, exit). Reading kallsyms and BTF from the dump replaces
indexing a ~400 MB DWARF vmlinux, so the no-vmlinux open should cost well under half.

    python benchmarks/bench_no_vmlinux.py [-n 3] [--kernel 6.1 --kernel 6.12]
"""

from __future__ import annotations

import argparse
import subprocess
import sys

from timing import compile_kdx, drgn_crash, kdx_command, timed

from kdx.lab.cache import default_cache
from kdx.lab.oracle import run_crash
from kdx.lab.run import RunRequest, dump_name, run

ROWS = [("open + sys", "sys"), ("bt -a", "bt -a"), ("analyze", None)]


def _kdx(vmcore: str, vmlinux: str | None, command: str | None) -> None:
    debug = [vmlinux] if vmlinux else ["--no-vmlinux"]
    words = (["analyze", vmcore, *debug] if command is None
             else [vmcore, *debug, "-c", command])
    subprocess.run([*kdx_command(), *words], capture_output=True, check=True)


def bench_dump(kernel: str, repeat: int) -> None:
    cache = default_cache()
    req = RunRequest("null-deref-module", kernel=kernel)
    out = run(cache, req, lambda m: print(f"[lab] {m}", file=sys.stderr))
    vmcore, vmlinux = str(out / dump_name(req)), str((out / "vmlinux").resolve())
    print(f"\n{out.parent.name} null-deref-module: {vmcore}")
    print(f"  {'command':<11} {'no-vmlinux':>10} {'kdx':>7} {'crash':>7} {'drgn-crash':>10} "
          f"{'÷kdx':>6} {'÷crash':>7} {'÷drgn':>6}")
    for name, command in ROWS:
        without = timed(lambda c=command: _kdx(vmcore, None, c), repeat)
        kdx = timed(lambda c=command: _kdx(vmcore, vmlinux, c), repeat)
        if command is None:  # crash and drgn-crash have no analyze
            print(f"  {name:<11} {without:9.2f}s {kdx:6.2f}s {'-':>7} {'-':>10} "
                  f"{without / kdx:6.2f} {'-':>7} {'-':>6}")
            continue
        crash = timed(lambda c=command: run_crash(cache, out / "vmlinux", out / dump_name(req),
                                                  [c]), repeat)
        drgn = timed(lambda c=command: subprocess.run(
            [drgn_crash(), vmlinux, vmcore], input=f"{c}\nq\n".encode(), capture_output=True),
            repeat)
        print(f"  {name:<11} {without:9.2f}s {kdx:6.2f}s {crash:6.2f}s {drgn:9.2f}s "
              f"{without / kdx:6.2f} {without / crash:7.2f} {without / drgn:6.2f}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-n", "--repeat", type=int, default=3)
    parser.add_argument("--kernel", action="append", help="lab kernel(s), default 6.1 and 6.12")
    args = parser.parse_args()
    compile_kdx()
    for kernel in args.kernel or ["6.1", "6.12"]:
        bench_dump(kernel, args.repeat)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
