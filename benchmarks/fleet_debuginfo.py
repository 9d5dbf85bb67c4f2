"""What a worker could save by keeping a kernel build's debug info between jobs.

A full job runs in a child forked from a process that imported kdx and drgn, as the
workers' jobs do. For lab vmcores of one kernel build this measures, median of
``--repeat`` runs per dump:

- the full job (``pipeline.run_full``) with the build's vmlinux from the debug-info store
  (DWARF), and without it (the dump's own BTF, kallsyms and ORC);
- inside a DWARF job, what drgn spends on the vmlinux: attaching it (``try_file``), then
  the first lookup, which builds drgn's DWARF index (the part a cache would keep), and the
  resident memory of a program with the index built (what a cache entry would cost);
- whether a program can take a vmlinux loaded before its core dump, or a second core
  dump (what a per-build template process forking job children would need).

Usage: python benchmarks/fleet_debuginfo.py [--repeat 5]
"""

from __future__ import annotations

import argparse
import multiprocessing
import resource
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Callable

from kdx.fleet import pipeline
from kdx.fleet.debuginfo import DebugInfoStore
from kdx.lab.cache import default_cache

RELEASE = "6.1.0-57-cloud-amd64"
RUNS = ("sysrq-kdump-kdump-zlib", "null-deref-module-kdump-kdump-zlib",
        "warn-kdump-kdump-zlib", "oom-kdump-kdump-zlib")


def _in_child(func: Callable[..., Any], *args: Any) -> Any:
    """Run ``func`` in a forked child (a job's process) and return its result."""
    ctx = multiprocessing.get_context("fork")
    with ctx.Pool(1) as pool:
        return pool.apply(func, args)


def _full(vmcore: str, store: str | None, tmp: str) -> tuple[float, str]:
    start = time.monotonic()
    debug = DebugInfoStore(Path(store)) if store else None
    result = pipeline.run_full(Path(vmcore), debug, RELEASE, None, Path(tmp))
    return time.monotonic() - start, result.debug_source


def _index(vmcore: str, vmlinux: str) -> tuple[float, float, float, float]:
    """(set_core_dump, try_file, first lookup, RSS MiB) of a fresh program."""
    from drgn import Program

    start = time.monotonic()
    prog = Program()
    prog.set_core_dump(vmcore)
    core = time.monotonic()
    prog.main_module("kernel", create=True).try_file(vmlinux)
    loaded = time.monotonic()
    prog.function("schedule")
    looked = time.monotonic()
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return core - start, loaded - core, looked - loaded, rss


def _orders(first: str, second: str, vmlinux: str) -> list[str]:
    """What drgn says to the orders a template process would need."""
    from drgn import Program

    out = []
    prog = Program()
    prog.main_module("kernel", create=True).try_file(vmlinux)
    prog.set_core_dump(first)
    try:
        prog["init_task"]
        out.append("vmlinux before the core dump: symbols found")
    except LookupError as err:
        out.append(f"vmlinux before the core dump: {type(err).__name__}: {err}")
    prog = Program()
    prog.set_core_dump(first)
    try:
        prog.set_core_dump(second)
        out.append("a second core dump: accepted")
    except ValueError as err:
        out.append(f"a second core dump: {type(err).__name__}: {err}")
    return out


def _alone(vmcore: Path, folder: Path) -> str:
    """A link to the dump in a folder of its own: no vmlinux beside it."""
    link = folder / "vmcore"
    if not link.exists():
        folder.mkdir()
        link.symlink_to(vmcore)
    return str(link)


def _kaslr(vmcore: Path) -> str:
    data = vmcore.read_bytes()
    at = data.find(b"KERNELOFFSET=")
    return data[at + 13:data.find(b"\n", at)].decode() if at >= 0 else "?"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    runs = default_cache() / "runs" / RELEASE
    store = default_cache() / "kernels"  # DIR/<release>/usr/lib/debug/... (read only)
    vmlinux = str((runs / RUNS[0] / "vmlinux").resolve())
    dwarf, btf, index = [], [], []
    with tempfile.TemporaryDirectory(prefix="kdx-debuginfo-") as tmp:
        for _ in range(args.repeat):
            for run in RUNS:
                vmcore = _alone(runs / run / "vmcore", Path(tmp) / run)
                seconds, source = _in_child(_full, vmcore, str(store), tmp)
                assert source == "dwarf", source
                dwarf.append(seconds)
                seconds, source = _in_child(_full, vmcore, None, tmp)
                assert source == "dump", source
                btf.append(seconds)
                index.append(_in_child(_index, vmcore, vmlinux))
    med = statistics.median
    print(f"{len(RUNS)} lab vmcores of {RELEASE}, {args.repeat} runs each, median per job:")
    print(f"  full job with the vmlinux (DWARF):   {med(dwarf):.2f} s")
    print(f"  full job without it (dump's BTF):    {med(btf):.2f} s")
    core, attach, first, rss = (med(i[k] for i in index) for k in range(4))
    print(f"  drgn: set_core_dump {core:.3f} s, vmlinux try_file {attach:.3f} s, first "
          f"lookup (DWARF index) {first:.2f} s, RSS with the index {rss:.0f} MiB")
    share = first / med(dwarf)
    print(f"  the index is {share:.0%} of a DWARF job: the most a per-build cache could save")
    for line in _in_child(_orders, str(runs / RUNS[0] / "vmcore"),
                          str(runs / RUNS[1] / "vmcore"), vmlinux):
        print(f"  {line}")
    offsets = (f"{run.split('-kdump')[0]} {_kaslr(runs / run / 'vmcore')}" for run in RUNS)
    print("  KASLR offsets (KERNELOFFSET): " + ", ".join(offsets))
    return 0


if __name__ == "__main__":
    sys.exit(main())
