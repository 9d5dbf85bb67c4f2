"""Time kdx, crash 8.0.6 and drgn-crash on the same dumps, command by command.

Rows: (a) open + sys, (b) bt -a, (c) ps, (d) log, (e) foreach bt, and (f) one session
running sys, ps, bt -a and log in turn on the small sysrq dump (what a first look at a
dump costs). Each cell is the median wall time of a one-shot run (start, open the dump,
run the commands, exit), so start-up cost counts, as it does for a user; the three tools
take turns within each repetition, so a machine busy with other work slows them alike.
Three dumps show how cost grows with the task count: the null-deref-module dump (~65
tasks), the sysrq dump, and a sysrq dump with 5,000 extra sleepers.

    python benchmarks/bench_commands.py [-n 3] [--skip-large] [--rows NAME ...]
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
from pathlib import Path

from timing import compile_kdx, drgn_crash, kdx_command, timed_alternating

from kdx.lab.cache import default_cache
from kdx.lab.oracle import run_crash
from kdx.lab.run import RunRequest, dump_name, run

ROWS = [("open + sys", ["sys"]), ("bt -a", ["bt -a"]), ("ps", ["ps"]), ("log", ["log"]),
        ("foreach bt", ["foreach bt"])]
SESSION = [("session", ["sys", "ps", "bt -a", "log"])]


def bench_dump(label: str, req: RunRequest, rows: list[tuple[str, list[str]]],
               repeat: int) -> None:
    cache = default_cache()
    out = run(cache, req, lambda m: print(f"[lab] {m}", file=sys.stderr))
    vmcore, vmlinux = out / dump_name(req), (out / "vmlinux").resolve()
    print(f"\n{label}: {vmcore}  (load average {os.getloadavg()[0]:.1f})")
    print(f"  {'command':<12} {'kdx':>8} {'crash':>8} {'drgn-crash':>11} "
          f"{'kdx/crash':>10} {'kdx/drgn':>9}")
    for name, commands in rows:
        kdx, crash, drgn = timed_alternating([
            lambda c=commands: _kdx(vmcore, vmlinux, c),
            lambda c=commands: run_crash(cache, vmlinux, vmcore, c),
            lambda c=commands: _drgn(vmcore, vmlinux, c),
        ], repeat)
        print(f"  {name:<12} {kdx:7.2f}s {crash:7.2f}s {drgn:10.2f}s "
              f"{kdx / crash:10.3f} {kdx / drgn:9.3f}", flush=True)


def _kdx(vmcore: Path, vmlinux: Path, commands: list[str]) -> None:
    words = [w for c in commands for w in ("-c", c)]
    subprocess.run([*kdx_command(), str(vmcore), str(vmlinux), "--no-rc",
                    *words], capture_output=True, check=True)


def _drgn(vmcore: Path, vmlinux: Path, commands: list[str]) -> None:
    script = "".join(f"{c}\n" for c in commands) + "q\n"
    subprocess.run([drgn_crash(), str(vmlinux), str(vmcore)], input=script.encode(),
                   capture_output=True)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-n", "--repeat", type=int, default=3)
    parser.add_argument("--skip-large", action="store_true",
                        help="skip the 5,000-task dump (its first build takes minutes)")
    parser.add_argument("--rows", nargs="+", metavar="NAME",
                        help="only these rows (e.g. session 'foreach bt')")
    args = parser.parse_args()

    def chosen(rows: list[tuple[str, list[str]]]) -> list[tuple[str, list[str]]]:
        return [r for r in rows if not args.rows or r[0] in args.rows]

    compile_kdx()
    plan = [("small guest", RunRequest("null-deref-module"), chosen(ROWS)),
            ("small sysrq kdump, one session", RunRequest("sysrq"), chosen(SESSION))]
    if not args.skip_large:
        plan.append(("5,000 extra tasks", RunRequest("sysrq", tasks=5000, memory_mb=2048),
                     chosen(ROWS)))
    for label, req, rows in plan:
        if rows:
            bench_dump(label, req, rows, args.repeat)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
