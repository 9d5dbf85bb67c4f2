"""One function over a long list, shared among forked worker processes.

Unwinding a stack is drgn's C code under Python's one lock, about 4 ms a task: ``foreach
bt`` on 5,000 tasks is 20 s of one core. Forked after the dump is opened, a worker
inherits the opened program (its memory map, its debug info and every cache already
filled) at no cost, works on its share of the list and sends back plain records; the
parent puts them back in the list's order, so the answer is the one a single process
gives. A worker that fails, dies or stalls costs time, not an answer: the parent does
its share itself.

Example::

    >>> traces = fork_map(lambda task: backtrace(reader, task), tasks, worker_count(len(tasks)))
"""

from __future__ import annotations

import contextlib
import os
import pickle
import select
import signal
import time
from dataclasses import dataclass
from typing import Callable, Sequence, TypeVar

__all__ = ["MIN_ITEMS", "fork_map", "worker_count"]

Item = TypeVar("Item")
Result = TypeVar("Result")

#: Below this many items a fork costs more than it saves (about 10 ms a worker).
MIN_ITEMS = 200

#: At most this many workers, however many CPUs there are: each holds a copy of what it
#: touches, and the parent merges their answers alone.
_MAX_JOBS = 8

#: A worker still silent this long after the parent finished its own share (and at
#: least this many times the parent's own time) is taken to have stalled.
_GRACE_S = 30.0
_GRACE_FACTOR = 5.0


def worker_count(items: int) -> int:
    """How many processes should share ``items`` items: ``KDX_JOBS`` when set (1 turns
    the workers off), else one per CPU this process may run on for long lists, and 1
    (no fork) for short ones or where there is no fork."""
    if not hasattr(os, "fork") or items < 2:
        return 1
    wanted = os.environ.get("KDX_JOBS", "").strip()
    if wanted.isdigit():
        return max(1, min(int(wanted), items))
    if items < MIN_ITEMS:
        return 1
    try:
        cpus = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        cpus = os.cpu_count() or 1
    return max(1, min(cpus, _MAX_JOBS))


@dataclass
class _Worker:
    pid: int
    fd: int
    share: list[int]  # indices of the items it works on
    data: bytearray


def fork_map(fn: Callable[[Item], Result], items: Sequence[Item], jobs: int) -> list[Result]:
    """``[fn(item) for item in items]``, with ``jobs`` processes sharing the work.

    ``fn`` must not raise for an item it can answer (turn expected errors into results)
    and its results must pickle; a worker whose ``fn`` raises is redone by the parent,
    where the exception then surfaces as it would without workers.
    """
    if jobs <= 1 or len(items) < 2:
        return [fn(item) for item in items]
    jobs = min(jobs, len(items))
    # interleaved shares: neighbours in the task list tend to cost alike
    shares = [list(range(j, len(items), jobs)) for j in range(jobs)]
    workers: list[_Worker] = []
    try:
        for share in shares[1:]:
            worker = _start(fn, items, share)
            if worker is None:  # no fork possible now: the parent does this share
                shares[0].extend(share)
            else:
                workers.append(worker)
        results: dict[int, Result] = {}
        started = time.monotonic()
        for i in shares[0]:
            results[i] = fn(items[i])
        grace = max(_GRACE_S, _GRACE_FACTOR * (time.monotonic() - started))
        for worker, values in _collect(workers, time.monotonic() + grace):
            if values is None:
                values = [fn(items[i]) for i in worker.share]
            results.update(zip(worker.share, values))
    finally:
        _reap(workers)
    return [results[i] for i in range(len(items))]


def _start(fn: Callable[[Item], Result], items: Sequence[Item],
           share: list[int]) -> _Worker | None:
    """Fork one worker for ``share``; None when the system refuses a process or a pipe."""
    try:
        read_fd, write_fd = os.pipe()
    except OSError:
        return None
    try:
        pid = os.fork()
    except OSError:
        os.close(read_fd)
        os.close(write_fd)
        return None
    if pid == 0:  # the worker: never returns
        os.close(read_fd)
        _work(fn, items, share, write_fd)
    os.close(write_fd)
    return _Worker(pid, read_fd, share, bytearray())


def _work(fn: Callable[[Item], Result], items: Sequence[Item], share: list[int],
          fd: int) -> None:
    """Answer ``share`` and write the pickled answers to ``fd``; leave by ``os._exit`` so
    nothing of the parent's (buffered output, exit handlers) runs twice."""
    code = 1
    try:
        signal.signal(signal.SIGINT, signal.SIG_DFL)  # Ctrl-C ends workers silently
        data = pickle.dumps([fn(items[i]) for i in share], pickle.HIGHEST_PROTOCOL)
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view):]
        code = 0
    except BaseException:  # noqa: BLE001 - the parent redoes this share
        pass
    finally:
        os._exit(code)


def _collect(workers: list[_Worker], deadline: float,
             ) -> list[tuple[_Worker, list | None]]:
    """Each worker's answers (None: it failed, died or is still silent at ``deadline``)."""
    open_fds = {w.fd: w for w in workers}
    while open_fds:
        left = deadline - time.monotonic()
        if left <= 0:
            break
        ready, _, _ = select.select(list(open_fds), [], [], left)
        for fd in ready:
            chunk = os.read(fd, 1 << 20)
            if chunk:
                open_fds[fd].data += chunk
            else:
                del open_fds[fd]
    out: list[tuple[_Worker, list | None]] = []
    for worker in workers:
        values = None
        if worker.fd in open_fds:  # stalled: end it now, before its share is redone
            _end(worker)
        elif _exited_ok(worker):
            with contextlib.suppress(Exception):
                loaded = pickle.loads(worker.data)
                if isinstance(loaded, list) and len(loaded) == len(worker.share):
                    values = loaded
        out.append((worker, values))
    return out


def _exited_ok(worker: _Worker) -> bool:
    try:
        _, status = os.waitpid(worker.pid, 0)
    except ChildProcessError:
        return False
    worker.pid = 0
    return os.waitstatus_to_exitcode(status) == 0


def _reap(workers: list[_Worker]) -> None:
    """Close every pipe and end and wait for every worker still there (a stalled one,
    or all of them when the parent is interrupted)."""
    for worker in workers:
        with contextlib.suppress(OSError):
            os.close(worker.fd)
        _end(worker)


def _end(worker: _Worker) -> None:
    if worker.pid:
        with contextlib.suppress(OSError):
            os.kill(worker.pid, signal.SIGKILL)
        with contextlib.suppress(ChildProcessError):
            os.waitpid(worker.pid, 0)
        worker.pid = 0
