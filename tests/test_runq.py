"""``runq`` on real lab dumps, against crash 8.0.6, on 6.1 (CFS) and 6.12 (EEVDF): the
run queue and priority array addresses, each CPU's current task, the queued tasks with
their priorities, the task-group view, the clocks and the current tasks' run times.

crash's outputs come from the cached runs test_bt.py and test_foreach.py also read (and
one ``runq`` run on the 6.12 soft-lockup dump).
"""

from __future__ import annotations

import json
import re

import pytest
from drgn import Object
from drgn.helpers.linux.sched import task_cpu
from test_bt import (
    ORACLE_MORE,
    ORACLE_MORE_612,
    ORACLE_SYSRQ,
    crash_sections,
    run,
    session_for,
)
from test_foreach import ORACLE_HUNG

VIEWS = ["runq", "runq -t", "runq -m", "runq -g", "runq -T"]
_QUEUED = re.compile(r'^\s+\[\s*(\d+)\] PID: (\d+)\s+TASK: ([0-9a-f]+)\s+COMMAND: "(.*)"')


def _dumps(lab, null_deref, null_deref_612):  # noqa: ANN001, ANN202
    return {
        "sysrq 6.1": (lab("sysrq"), ORACLE_SYSRQ),
        "null-deref 6.1": (null_deref, ORACLE_MORE),
        "null-deref 6.12": (null_deref_612, ORACLE_MORE_612),
        "hung-task 6.1": (lab("hung-task", kernel="6.1", capture="kdump",
                              fmt="kdump-zlib"), ORACLE_HUNG),
    }


#: (dump, view) pairs crash was run on.
CASES = [(which, view)
         for which in ("null-deref 6.1", "null-deref 6.12", "hung-task 6.1", "sysrq 6.1")
         for view in VIEWS
         if (which, view) not in (("hung-task 6.1", "runq -T"), ("sysrq 6.1", "runq -T"))]


@pytest.mark.oracle
@pytest.mark.parametrize(("which", "view"), CASES)
def test_runq_matches_crash(which: str, view: str, lab, null_deref, null_deref_612,  # noqa: ANN001
                            crash) -> None:  # noqa: ANN001
    dump, oracle = _dumps(lab, null_deref, null_deref_612)[which]
    theirs = crash_sections(crash, dump, oracle)[view].rstrip("\n")
    ours = run(dump, view)
    assert ours.splitlines() == theirs.splitlines()


@pytest.mark.oracle
def test_612_queues_a_task_behind_the_panic(lab, crash) -> None:  # noqa: ANN001
    """On the 6.12 soft-lockup dump a kthread spins with preemption off on the panic CPU,
    so a worker bound to that CPU waits in its EEVDF tree: both tools list it with its
    priority, and the spinning thread as the CPU's CURRENT (the truth's PID), not as a
    queued task."""
    dump = lab("soft-lockup", kernel="6.12")
    cpu, pid = dump.truth["cpu"], dump.truth["pid"]
    text = run(dump, "runq")
    block = text.split("\n\n")[cpu]
    assert block.startswith(f"CPU {cpu} RUNQUEUE: ")
    queued = [m.groups() for line in block.splitlines() if (m := _QUEUED.match(line))]
    assert queued
    assert f"CURRENT: PID: {pid} " in block
    assert str(pid) not in [q[1] for q in queued]
    prog = session_for(dump).prog
    for prio, qpid, task, _ in queued:
        waiting = Object(prog, "struct task_struct *", int(task, 16))
        assert (waiting.pid.value_(), waiting.prio.value_()) == (int(qpid), int(prio))
        assert task_cpu(waiting) == cpu
    theirs = crash_sections(crash, dump, ("runq",))["runq"]
    assert text.splitlines() == theirs.rstrip("\n").splitlines()


def test_runq_c_and_json(null_deref) -> None:  # noqa: ANN001
    """-c picks CPUs out of the same output; JSON carries the same records."""
    whole = run(null_deref, "runq").split("\n\n")
    assert run(null_deref, "runq -c 1") == whole[1]
    data = json.loads(run(null_deref, "runq", json_mode=True))["data"]
    assert [q["cpu"] for q in data] == [0, 1]
    panic = data[null_deref.truth["cpu"]]
    assert panic["current"]["pid"] == null_deref.truth["pid"]
    assert panic["clock"] >= panic["current_last_arrival"] > 0
