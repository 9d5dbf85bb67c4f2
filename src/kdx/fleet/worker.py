"""One job, in its own process: ``main`` (or ``python -m kdx.fleet.worker JOB_ID --lease L``).

The server's worker pool forks a process for every job and calls ``main`` in it, so a
dump that crashes drgn, eats all memory or never finishes takes only this process down.
It limits its own address space (RLIMIT_AS), dies with its parent, runs the job's stage
and stores the result under the job's lease (``kdx.fleet.queue``). A failure it can
explain is stored as one sentence; anything else makes it exit non-zero and the pool
explains it (killed, crashed, out of memory).
"""

from __future__ import annotations

import argparse
import contextlib
import ctypes
import json
import os
import resource
import signal
import sys
import time
from pathlib import Path
from typing import Any

__all__ = ["main", "run_job"]

_PR_SET_PDEATHSIG = 1
#: Exit status of a child that stored its own failure (the pool has nothing to add).
EXPLAINED = 0


def _die_with_parent(parent: int) -> None:
    """Ask the kernel to kill this process when the server dies (SIGKILL included)."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
    except (OSError, AttributeError):
        pass
    if os.getppid() != parent:  # the server died before prctl took effect
        os._exit(3)


def _limit_memory(limit: int) -> None:
    if limit > 0:
        resource.setrlimit(resource.RLIMIT_AS, (limit, limit))


def _reason(err: BaseException, memory: int, names: dict[str, str]) -> str:
    """One sentence for an exception the analysis raised, naming the dump as it was
    submitted (``names`` maps the store's paths to that name), not by the server's
    paths. Longer names go first: a store path contains the bare key."""
    text = _first_line(err)
    for stored, shown in sorted(names.items(), key=lambda item: -len(item[0])):
        text = text.replace(stored, shown)
    from kdx.errors import KdxError
    from kdx.fleet.queue import memory_message, out_of_memory

    if isinstance(err, MemoryError) or out_of_memory(text):
        return memory_message(memory)
    if isinstance(err, KdxError):
        return text or type(err).__name__
    return f"the analysis failed: {type(err).__name__}{': ' + text[:300] if text else ''}"


def _first_line(err: BaseException) -> str:
    lines = str(err).splitlines()
    return lines[0] if lines else ""


def run_job(job_id: int, lease: str, settings: dict[str, Any], memory: int) -> int:
    """Run the claimed job ``job_id`` and store its result (or its failure) under
    ``lease``. Returns the process exit status."""
    from kdx.fleet import pipeline
    from kdx.fleet.db import Dump, Job, open_database
    from kdx.fleet.debuginfo import DebugInfoStore
    from kdx.fleet.queue import Claim, SqlJobQueue
    from kdx.fleet.s3store import open_store

    started = time.monotonic()
    db = open_database(settings["database"], migrate=False)
    queue = SqlJobQueue(db)
    store = open_store(settings["store"], cache=_cache_dir(settings),
                       endpoint=settings.get("s3_endpoint"))
    tmp = Path(settings["data"]) / "tmp"
    debug = DebugInfoStore(Path(settings["debuginfo"])) if settings.get("debuginfo") else None
    with db.session() as s:
        job = s.get(Job, job_id)
        dump = s.get(Dump, job.dump_id) if job is not None else None
        if job is None or dump is None or job.lease != lease or job.state != "running":
            return 4  # no longer ours
        claim = Claim(job.id, job.dump_id, job.stage, lease, job.attempts)
        kind, key, companion = dump.kind, dump.sha256, dump.companion
        names = {key: dump.filename}
        release, build_id = dump.release, dump.build_id
    try:
        path = store.local_path(key)
        names[str(path)] = names[key]
        if claim.stage == "fast":
            side = store.local_path(companion) if companion else None
            if side is not None:
                names[str(side)] = "vmcore-dmesg.txt"
            report = pipeline.run_fast(path, kind, side, tmp)
            log_path = path if kind == "dmesg" else side
            log_text = (pipeline.read_log(log_path, pipeline.MAX_OUTPUT)
                        if log_path is not None else None)

            def save(s: Any) -> None:
                row = s.get(Dump, claim.dump_id)
                if pipeline.store_fast(s, row, report, log_text):
                    queue.enqueue(s, row.id, "full")
        else:
            result = pipeline.run_full(path, debug, release, build_id, tmp)

            def save(s: Any) -> None:
                pipeline.store_full(s, s.get(Dump, claim.dump_id), result)
    except Exception as err:  # noqa: BLE001 (every failure becomes the job's reason)
        names[str(tmp)] = "(temporary files)"
        queue.fail(claim, _reason(err, memory, names), time.monotonic() - started,
                   peak_memory=_peak())
        return EXPLAINED
    finally:
        _release(store, key, companion if claim.stage == "fast" else None)
    queue.complete(claim, time.monotonic() - started, save, peak_memory=_peak())
    return 0


def _cache_dir(settings: dict[str, Any]) -> Path:
    """Where an object store's dumps are downloaded (shared by a machine's job children)."""
    return Path(settings.get("cache") or Path(settings["data"]) / "cache")


def _release(store: Any, key: str, companion: str | None) -> None:
    """Give back the local copies of the job's files (an object store's downloads)."""
    for name in (key, companion):
        if name:
            with contextlib.suppress(OSError):
                store.release(name)


def _peak() -> int:
    """This process's peak resident memory, bytes."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def _parse(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="kdx.fleet.worker")
    parser.add_argument("job", type=int)
    parser.add_argument("--lease", required=True)
    parser.add_argument("--parent", type=int, default=0)
    parser.add_argument("--memory", type=int, default=0, help="address-space limit, bytes")
    parser.add_argument("--settings", required=True, help="the pool's WorkerSettings (JSON)")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = _parse(sys.argv[1:] if argv is None else argv)
    if args.parent:
        _die_with_parent(args.parent)
    _limit_memory(args.memory)
    try:
        return run_job(args.job, args.lease, json.loads(args.settings), args.memory)
    except MemoryError:
        # too little memory even to store the reason: the pool explains the exit
        print("MemoryError", file=sys.stderr)
        return 5


if __name__ == "__main__":
    sys.exit(main())
