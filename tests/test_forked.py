"""Stacks unwound by forked workers are the stacks one process unwinds: ``foreach bt`` and
``bt -a`` print the same bytes with the workers forced on (``KDX_JOBS``) as without them,
on real lab dumps; and the worker pool itself keeps order and survives failing workers."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from kdx.model.forked import MIN_ITEMS, fork_map, worker_count

COMMANDS = ["foreach bt", "foreach bt -f", "foreach UN bt", "bt -a", "foreach bt -l"]
HEADER = re.compile(r'^PID: (\d+)\s+TASK: ([0-9a-f]+)', re.M)


def _session(dump, jobs: int, vmcore: Path | None = None,  # noqa: ANN001 (LabDump)
             ) -> subprocess.CompletedProcess[str]:
    args = [sys.executable, "-m", "kdx", str(vmcore or dump.vmcore), str(dump.vmlinux),
            "--no-rc"]
    for command in COMMANDS:
        args += ["-c", command]
    env = dict(os.environ, COLUMNS="200", NO_COLOR="1", KDX_JOBS=str(jobs))
    return subprocess.run(args, capture_output=True, text=True, env=env, timeout=900)


@pytest.mark.parametrize("kernel", ["6.1", "6.12"])
def test_workers_print_what_one_process_prints(lab, kernel: str) -> None:  # noqa: ANN001
    dump = lab("sysrq", kernel=kernel)
    alone = _session(dump, 1)
    shared = _session(dump, 3)
    assert alone.returncode == shared.returncode == 0, shared.stderr
    assert shared.stdout == alone.stdout
    assert shared.stderr == alone.stderr
    assert "Traceback" not in shared.stderr
    # real stacks: every task of the dump, the panic task's crash path among them
    pids = {int(m[1]) for m in HEADER.finditer(shared.stdout)}
    assert len(pids) > 50
    assert dump.truth["pid"] in pids  # the task that wrote to sysrq-trigger
    assert "sysrq_handle_crash" in shared.stdout
    assert shared.stdout.count(" #0 [") > 3 * len(pids)  # five verbs, most tasks a frame


def test_workers_read_a_truncated_dump_as_one_process(lab, tmp_path: Path) -> None:  # noqa: ANN001
    """A dump cut short is read by kdx's own page reader, whose file the workers share
    with the parent: each reads at its own offsets, so the stacks are the same."""
    from kdx.lab.damage import damage

    dump = lab("sysrq")
    cut = tmp_path / "cut.vmcore"
    # Which pages a cut loses depends on where each build's tasks lie in memory: cut as
    # much as still leaves most tasks readable, so the workers have stacks to share.
    for fraction in (0.97, 0.99, 0.995, 0.999):
        damage(dump.vmcore, cut, "truncate", at=fraction)
        alone = _session(dump, 1, cut)
        if len(HEADER.findall(alone.stdout)) > 100:
            break
    shared = _session(dump, 3, cut)
    assert "is truncated at byte" in shared.stderr
    assert shared.stdout == alone.stdout
    assert shared.stderr == alone.stderr
    assert len(HEADER.findall(shared.stdout)) > 100  # three foreach bt, 30+ tasks each
    assert "Traceback" not in shared.stderr


def test_shares_come_back_in_order_from_other_processes() -> None:
    parent = os.getpid()
    results = fork_map(lambda i: (i, os.getpid()), list(range(50)), 3)
    assert [i for i, _pid in results] == list(range(50))
    pids = {pid for _i, pid in results}
    assert parent in pids and len(pids) == 3


def test_a_failing_worker_costs_time_not_answers() -> None:
    parent = os.getpid()

    def fragile(i: int) -> int:
        if os.getpid() != parent and i % 3 == 1:
            raise RuntimeError("worker failure")
        return i * i

    assert fork_map(fragile, list(range(30)), 3) == [i * i for i in range(30)]


def test_a_worker_killed_midway_costs_time_not_answers() -> None:
    parent = os.getpid()

    def dies(i: int) -> int:
        if os.getpid() != parent:
            os._exit(9)
        return -i

    assert fork_map(dies, list(range(10)), 4) == [-i for i in range(10)]


def test_an_error_of_the_parent_surfaces() -> None:
    def broken(i: int) -> int:
        raise ValueError(f"item {i}")

    with pytest.raises(ValueError, match="item 0"):
        fork_map(broken, [0, 1, 2, 3], 2)


def test_worker_count(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("KDX_JOBS", raising=False)
    assert worker_count(MIN_ITEMS - 1) == 1
    assert worker_count(MIN_ITEMS) == min(len(os.sched_getaffinity(0)), 8)
    monkeypatch.setenv("KDX_JOBS", "3")
    assert worker_count(10) == 3
    assert worker_count(2) == 2
    monkeypatch.setenv("KDX_JOBS", "1")
    assert worker_count(10_000) == 1
    monkeypatch.setenv("KDX_JOBS", "many")
    assert worker_count(10) == 1
