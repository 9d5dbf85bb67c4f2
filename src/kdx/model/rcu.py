"""What the current RCU grace period still waits for, read from the tree RCU state.

A stall report in the log is a snapshot taken when the detector fired; the dump says
what was still outstanding when the kernel died. Each leaf ``rcu_node`` covers CPUs
``grplo..grphi``; bit ``i`` of its ``qsmask`` is set while CPU ``grplo + i`` has not yet
reported a quiescent state for the current grace period, and its ``blkd_tasks`` list
holds the tasks preempted inside an RCU read-side critical section (linked through
``task_struct.rcu_node_entry``; those from ``gp_tasks`` on block the current period).
Walks are bounded (:mod:`kdx.model.bounded`).
"""

from __future__ import annotations

from dataclasses import dataclass

import drgn

from kdx.model.bounded import ListLoopError, list_for_each_entry
from kdx.model.reading import READ_ERRORS

__all__ = ["GracePeriodWait", "grace_period_wait"]

#: Tasks one rcu_node can sensibly have blocked; a longer list is corrupt.
_BLOCKED_LIMIT = 1 << 16


@dataclass(frozen=True)
class GracePeriodWait:
    """The CPUs whose quiescent state the current grace period still waits for, and the
    PIDs of the tasks blocking it from inside a read-side critical section."""

    in_progress: bool
    cpus: list[int]
    blocked_pids: list[int]


def grace_period_wait(prog: drgn.Program) -> GracePeriodWait | None:
    """The outstanding quiescent states of tree RCU, or None when the kernel has no
    ``rcu_state`` (tiny RCU) or the dump lacks it."""
    try:
        state = _global(prog, "rcu_state", "struct rcu_state")
        levels = int(_global(prog, "rcu_num_lvls", "int"))
        count = int(_global(prog, "rcu_num_nodes", "int"))
        in_progress = bool(int(state.gp_seq) & 0x3)  # RCU_SEQ_STATE_MASK
        cpus: list[int] = []
        blocked: list[int] = []
        for i in range(count):
            node = state.node[i]
            if int(node.level) != levels - 1:
                continue
            cpus += _pending_cpus(node)
            blocked += _blocking_pids(node)
    except (*READ_ERRORS, ListLoopError):
        return None
    return GracePeriodWait(in_progress, sorted(cpus), blocked)


def _global(prog: drgn.Program, name: str, type_name: str) -> drgn.Object:
    """A kernel global by its symbol and C type: BTF types only per-CPU variables, so
    without a vmlinux ``prog[name]`` has no type for these."""
    try:
        return prog[name]
    except LookupError:
        return drgn.Object(prog, type_name, address=prog.symbol(name).address)


def _pending_cpus(node: drgn.Object) -> list[int]:
    mask = int(node.qsmask)
    low = int(node.grplo)
    return [low + bit for bit in range(mask.bit_length()) if mask >> bit & 1]


def _blocking_pids(node: drgn.Object) -> list[int]:
    """PIDs on ``blkd_tasks`` from ``gp_tasks`` on: the ones this grace period waits
    for (tasks queued before ``gp_tasks`` only block the next one)."""
    first = node.gp_tasks.value_()
    if not first:
        return []
    pids: list[int] = []
    started = False
    for task in list_for_each_entry("struct task_struct", node.blkd_tasks.address_of_(),
                                    "rcu_node_entry", limit=_BLOCKED_LIMIT,
                                    what="rcu_node blocked-task list"):
        started = started or task.rcu_node_entry.address_of_().value_() == first
        if started:
            pids.append(int(task.pid))
    return pids
