"""Build every lab dump the test suite reads, two at a time, before the tests start.

Each QEMU guest runs on one host core (single-threaded TCG), so two builds at once
halve a cold run; the lab's locks and cache make this a no-op when the dumps exist.
"""

from __future__ import annotations

import sys
import time
from concurrent.futures import ThreadPoolExecutor, as_completed

from kdx.lab import scenarios
from kdx.lab.cache import default_cache
from kdx.lab.run import RunRequest, run

FORMATS = [("kdump", f, True) for f in ("kdump-lzo", "kdump-zstd", "kdump-raw", "elf",
                                         "flattened")]
FORMATS += [("qemu", "elf", True), ("qemu", "elf", False), ("qemu", "kdump-zlib", True),
            ("qemu", "kdump-zlib", False)]
#: The bug classes also taken by QEMU (tests/test_analyze.py QEMU_TAKEN).
QEMU_TAKEN = ("use-after-free", "double-free", "list-corruption", "refcount-underflow",
              "abba-deadlock", "rcu-stall", "stack-protector", "invalid-opcode")
#: The scenarios tests read on Debian sid's newest kernel (tests/test_lab_sid.py).
SID_SCENARIOS = ("oom", "null-deref-module", "warn", "sysrq")


def requests() -> list[RunRequest]:
    """Slow scenarios first, so the two workers finish together."""
    out = [RunRequest(name, kernel=kernel) for kernel in ("6.1", "6.12")
           for name in scenarios.SCENARIOS]
    out += [RunRequest("sysrq", capture=c, format=f, vmcoreinfo=v) for c, f, v in FORMATS]
    out += [RunRequest("null-deref-module", capture="qemu", format="elf"),
            RunRequest("null-deref-module", format="elf")]
    out += [RunRequest(name, kernel="sid") for name in SID_SCENARIOS]
    # one bug taken by QEMU as well as by kdump: the signature buckets must not tell them
    # apart (pvpanic and notifier frames; a timer callback's softirq path)
    out += [RunRequest("oom", capture="qemu", format="elf"),
            RunRequest("irq-context", capture="qemu", format="elf")]
    # the diagnosis issue's bug classes taken by QEMU too (tests/test_analyze.py)
    out += [RunRequest(name, capture="qemu", format="elf") for name in QEMU_TAKEN]
    return out


def main() -> int:
    cache = default_cache()
    todo = requests()
    started = time.monotonic()

    def build(req: RunRequest) -> str:
        run(cache, req)
        return req.label()

    failed = 0
    # Unpack each kernel (and make the sid root) once before the parallel part (both
    # workers would wait anyway).
    for kernel in ("6.1", "6.12", "sid"):
        run(cache, RunRequest("sysrq", kernel=kernel))
    with ThreadPoolExecutor(max_workers=2) as pool:
        futures = {pool.submit(build, req): req for req in todo}
        for done, future in enumerate(as_completed(futures), 1):
            req = futures[future]
            try:
                future.result()
                status = "ok"
            except Exception as err:  # report every failure, let the tests say the rest
                failed += 1
                status = f"FAILED: {err}"
            print(f"[prebuild {time.monotonic() - started:6.0f}s] {done}/{len(todo)} "
                  f"{req.kernel or '6.1'} {req.label()}: {status}", file=sys.stderr, flush=True)
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
