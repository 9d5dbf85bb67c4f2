"""Who waits for which sleeping lock, who holds it, and whether the waits form a cycle.

A task blocked in ``mutex_lock()``, ``down_read()``/``down_write()`` or ``down()`` sleeps
with a *waiter* record on its own kernel stack (``struct mutex_waiter``,
``rwsem_waiter``, ``semaphore_waiter``: a ``list_head`` then the task pointer), linked
into the lock's ``wait_list``. That is found without DWARF for the sleeping frame: scan
the task's stack for a word equal to the task's address whose surrounding list links
are consistent, then walk the ring; the one node that is not itself a waiter on its
task's stack is the lock's ``wait_list``. The blocked frames' names (from any unwinder)
say which kind of lock it is, and so where the lock starts and how to read its owner.

Edges task -> lock -> owner then form a wait-for graph; a walk from each blocked task
that comes back to a task already on its path is a deadlock cycle ("A holds X and waits
for Y, held by B, which waits for X"). Every list walk is bounded
(:mod:`kdx.model.bounded`), and a lock whose memory the dump lacks is simply left out.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Iterable, Sequence

import drgn
from drgn.helpers.linux.locking import (
    RwsemLocked,
    mutex_owner,
    rwsem_locked,
    rwsem_owner,
)

from kdx.model.bounded import ListLoopError, list_nodes
from kdx.model.names import address_namer
from kdx.model.reading import READ_ERRORS
from kdx.model.records import Hex
from kdx.textsafe import decode

__all__ = ["LOCK_KINDS", "LockGraph", "LockWait", "blocked_on", "describe_cycle", "lock_graph",
           "lock_kind"]

#: Waiters any one lock can sensibly have queued; a longer ring is corrupt.
_WAITER_LIMIT = 1 << 16

#: The kinds of sleeping lock kdx follows: the lock's C type, and the names of the
#: functions a task sleeping on it has on its stack (clone suffixes removed).
LOCK_KINDS: dict[str, tuple[str, re.Pattern[str]]] = {
    "mutex": ("struct mutex", re.compile(
        r"^(__mutex_lock\w*|mutex_lock\w*|__ww_mutex_lock\w*|ww_mutex_lock\w*)$")),
    "rw_semaphore": ("struct rw_semaphore", re.compile(
        r"^(rwsem_down_\w+_slowpath|down_read\w*|down_write\w*|__down_read\w*|"
        r"__down_write\w*)$")),
    "semaphore": ("struct semaphore", re.compile(
        r"^(__down|__down_common|__down_interruptible|__down_killable|__down_timeout|"
        r"down|down_interruptible|down_killable|down_timeout)$")),
}
_WAITER_TYPES = ("struct mutex_waiter", "struct rwsem_waiter", "struct semaphore_waiter")
_SUFFIX = re.compile(r"(\.(isra|constprop|part|cold)(\.\d+)*)+$")


@dataclass(frozen=True)
class LockWait:
    """One blocked task and the sleeping lock it waits for: the lock's kind, address and
    symbol (None for a lock inside a dynamically allocated object), its owner (None for
    semaphores, which record none, and for reader-held rwsems), and how many tasks queue
    on it."""

    pid: int
    comm: str
    task: Hex
    kind: str  # "mutex", "rw_semaphore", "semaphore"
    lock: Hex
    symbol: str | None  # "crashlab_lock_b", "some_table+0x40"
    owner_pid: int | None
    owner_comm: str | None
    owner_task: Hex | None
    waiters: int

    @property
    def lock_name(self) -> str:
        """The lock as a person names it: its symbol, else its kind and address."""
        return self.symbol or f"{self.kind} {self.lock:#x}"


@dataclass(frozen=True)
class LockGraph:
    """The wait-for graph of the blocked tasks: every wait found, the first deadlock
    cycle (its waits in order, each one's owner waiting in the next; empty when there is
    none) and the cycle in one sentence."""

    waits: list[LockWait]
    cycle: list[LockWait]
    text: str  # "crashlab_a (PID 260) holds crashlab_lock_a and waits for ..."


def lock_kind(functions: Iterable[str]) -> str | None:
    """The kind of sleeping lock a stack's frames (innermost first) are blocked in."""
    for name in functions:
        bare = _SUFFIX.sub("", name or "")
        for kind, (_ctype, pattern) in LOCK_KINDS.items():
            if pattern.match(bare):
                return kind
    return None


def blocked_on(prog: drgn.Program, task: drgn.Object, kind: str) -> LockWait | None:
    """The lock of ``kind`` that ``task`` is queued on, found from the waiter record on
    its stack (see the module docstring); None when none is found or it is unreadable."""
    try:
        waiter = _waiter_on_stack(prog, task)
        if waiter is None:
            return None
        head, count = _wait_list_head(prog, waiter)
    except (*READ_ERRORS, ListLoopError):
        return None
    if head is None:
        return None
    ctype = LOCK_KINDS[kind][0]
    lock = head - drgn.offsetof(prog.type(ctype), "wait_list")
    owner = _owner(prog, kind, lock)
    found = address_namer(prog).locate(lock)
    return LockWait(
        pid=int(task.pid), comm=decode(task.comm.string_()), task=task.value_(), kind=kind,
        lock=lock, symbol=found.text(16) if found is not None else None,
        owner_pid=int(owner.pid) if owner is not None else None,
        owner_comm=decode(owner.comm.string_()) if owner is not None else None,
        owner_task=owner.value_() if owner is not None else None, waiters=count)


def lock_graph(prog: drgn.Program, blocked: Sequence[tuple[drgn.Object, Sequence[str]]]
               ) -> LockGraph:
    """The wait-for graph of ``blocked``: (task, its frames' function names) pairs, in
    the order the caller wants the waits reported."""
    waits = []
    for task, functions in blocked:
        kind = lock_kind(functions)
        wait = blocked_on(prog, task, kind) if kind else None
        if wait is not None:
            waits.append(wait)
    cycle = _first_cycle(waits)
    return LockGraph(waits, cycle, describe_cycle(cycle))


def describe_cycle(cycle: Sequence[LockWait]) -> str:
    """"A (PID 1) holds X and waits for Y, held by B (PID 2), which waits for X"."""
    if not cycle:
        return ""
    first, last = cycle[0], cycle[-1]
    parts = [f"{first.comm} (PID {first.pid}) holds {last.lock_name} and waits for "
             f"{first.lock_name}"]
    for wait in cycle[1:]:
        parts.append(f"held by {wait.comm} (PID {wait.pid}), which waits for "
                     f"{wait.lock_name}")
    return ", ".join(parts)


# --- finding the waiter and the lock ---------------------------------------------------------


def _task_offset(prog: drgn.Program) -> int:
    """Where a waiter record keeps its task pointer (the same in every kind)."""
    for name in _WAITER_TYPES:
        try:
            return drgn.offsetof(prog.type(name), "task")
        except (LookupError, ValueError):
            continue
    return 16  # struct list_head, then the task pointer


def _stack_range(prog: drgn.Program, task: drgn.Object) -> tuple[int, int] | None:
    try:
        base = task.stack.value_()
        size = prog["THREAD_SIZE"].value_()
    except READ_ERRORS:
        return None
    return (base, base + size) if base else None


def _waiter_on_stack(prog: drgn.Program, task: drgn.Object) -> int | None:
    """The address of ``task``'s waiter record: a word on its stack equal to the task,
    behind a list_head whose neighbours point back at it."""
    stack = _stack_range(prog, task)
    if stack is None:
        return None
    start = max(stack[0], task.thread.sp.value_() & ~7)
    if not stack[0] <= start < stack[1]:
        start = stack[0]
    address = task.value_()
    offset = _task_offset(prog)
    data = prog.read(start, stack[1] - start)
    for i in range(0, len(data) - 7, 8):
        if int.from_bytes(data[i:i + 8], "little") != address:
            continue
        waiter = start + i - offset
        if waiter >= start and _linked(prog, waiter):
            return waiter
    return None


def _linked(prog: drgn.Program, node: int) -> bool:
    try:
        nxt, prev = prog.read_word(node), prog.read_word(node + 8)
        return prog.read_word(nxt + 8) == node and prog.read_word(prev) == node
    except READ_ERRORS:
        return False


def _wait_list_head(prog: drgn.Program, waiter: int) -> tuple[int | None, int]:
    """(the lock's ``wait_list`` in the ring through ``waiter``, the waiters on it)."""
    offset = _task_offset(prog)
    head = None
    waiters = 1
    for node in list_nodes(prog, waiter, limit=_WAITER_LIMIT, what="lock wait list"):
        if _is_waiter(prog, node, offset):
            waiters += 1
        elif head is None:
            head = node
        else:
            return None, 0  # two nodes that are no waiter: not a lock's wait list
    return head, waiters


def _is_waiter(prog: drgn.Program, node: int, offset: int) -> bool:
    """Whether ``node`` is a waiter record on the stack of the task it names."""
    try:
        task = drgn.Object(prog, "struct task_struct *", prog.read_word(node + offset))
        stack = _stack_range(prog, task)
    except READ_ERRORS:
        return False
    return stack is not None and stack[0] <= node < stack[1]


def _owner(prog: drgn.Program, kind: str, lock: int) -> drgn.Object | None:
    """The task holding the lock, when the lock records one."""
    try:
        if kind == "mutex":
            owner = mutex_owner(drgn.Object(prog, "struct mutex *", lock))
        elif kind == "rw_semaphore":
            sem = drgn.Object(prog, "struct rw_semaphore *", lock)
            if rwsem_locked(sem) != RwsemLocked.WRITE_LOCKED:
                return None  # a reader-held rwsem records at most a stale reader
            owner = rwsem_owner(sem)
        else:
            return None
        if not owner or not owner.value_():
            return None
        owner.pid.read_()
        return owner
    except READ_ERRORS:
        return None


# --- the graph -------------------------------------------------------------------------------


def _first_cycle(waits: Sequence[LockWait]) -> list[LockWait]:
    """The first cycle of task -> lock -> owner edges, starting from the earliest wait on
    it; [] when the waits end at a running task or an unknown owner."""
    by_task = {w.task: w for w in waits}
    for start in waits:
        path: list[LockWait] = []
        seen: dict[int, int] = {}
        wait: LockWait | None = start
        while wait is not None and wait.task not in seen:
            seen[wait.task] = len(path)
            path.append(wait)
            wait = by_task.get(wait.owner_task) if wait.owner_task else None
        if wait is not None:
            cycle = path[seen[wait.task]:]
            first = min(range(len(cycle)), key=lambda i: waits.index(cycle[i]))
            return cycle[first:] + cycle[:first]
    return []
