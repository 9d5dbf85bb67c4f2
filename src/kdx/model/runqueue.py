"""The scheduler's run queues as crash's ``runq`` shows them.

Per CPU: the ``struct rq`` address, the task the CPU was running (crash's "active set":
``rq->curr``, or the panic task on the panic CPU), the real-time priority array with the
tasks queued in each of its lists, and the fair class's red-black tree in key order
(EEVDF on 6.6+, CFS before: the tree is the same), descending into task groups. The
running task is not in the tree (the scheduler takes it out), so crash lists it only as
CURRENT, and kdx too. ``-g`` views the same queues by task group; ``-t``/``-m`` compare
``rq->clock`` with the current task's ``sched_info.last_arrival``.

drgn's helpers give the run queues (``cpu_rq``) and walk the lists and trees
(``list_for_each_entry``, ``rbtree_inorder_for_each_entry``); this module only puts them
in crash's order. Records hold plain values.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Sequence

import drgn
from drgn.helpers.linux.panic import panic_task
from drgn.helpers.linux.rbtree import rbtree_inorder_for_each_entry
from drgn.helpers.linux.sched import cpu_rq, task_cpu

from kdx.model.bounded import list_for_each_entry
from kdx.model.reading import READ_ERRORS
from kdx.model.records import Hex
from kdx.model.tasks import crash_cpus
from kdx.textsafe import decode

#: A corrupt tree or list must not loop forever.
_MAX_ENTRIES = 100_000


@dataclass(frozen=True)
class QueuedTask:
    """A task on a run queue: ``prio`` is the task's priority (the RT list index for
    real-time queues, as crash prints it)."""

    pid: int
    task: Hex
    comm: str
    prio: int
    current: bool = False  # -g: the CPU's current task, listed first with [CURRENT]


@dataclass(frozen=True)
class GroupQueue:
    """``runq -g``: a task group's fair queue on one CPU, with what is queued in it."""

    task_group: Hex
    cfs_rq: Hex
    name: str | None
    throttled: bool
    depth: int
    entries: list[QueuedTask | GroupQueue] = field(default_factory=list)


@dataclass(frozen=True)
class CpuRunqueue:
    cpu: int
    runqueue: Hex  # struct rq address
    current: QueuedTask | None
    current_address: Hex
    rt_prio_array: Hex
    rt_tasks: list[QueuedTask]
    cfs_root: Hex  # the rb_root of the root cfs_rq's tasks_timeline
    cfs_tasks: list[QueuedTask]
    clock: int  # rq->clock, ns
    current_last_arrival: int  # the current task's sched_info.last_arrival, ns
    root_group: GroupQueue | None = None  # filled for -g
    warnings: list[str] = field(default_factory=list)


def _queued(task: drgn.Object, prio: int | None = None, current: bool = False) -> QueuedTask:
    return QueuedTask(task.pid.value_(), task.value_(), decode(task.comm.string_()),
                      task.prio.value_() if prio is None else prio, current)


def active_task(prog: drgn.Program, cpu: int) -> drgn.Object:
    """crash's active task of a CPU: the panic task on its CPU, else ``rq->curr``."""
    try:
        panic = panic_task(prog)
        if panic and task_cpu(panic) == cpu:
            return panic
    except READ_ERRORS:
        pass
    return cpu_rq(prog, cpu).curr.read_()


def _rt_tasks(rq: drgn.Object) -> list[QueuedTask]:
    """Each non-empty list of the RT priority array, by index; a group entity's queue
    is listed in place (crash's dump_RT_prio_array)."""
    out: list[QueuedTask] = []
    _rt_array(rq.rt.active, out, 0)
    return out


def _rt_array(array: drgn.Object, out: list[QueuedTask], depth: int) -> None:
    if depth > 32:
        return
    for index, queue in enumerate(array.queue):
        for rt_se in list_for_each_entry("struct sched_rt_entity", queue.address_of_(),
                                         "run_list"):
            if len(out) > _MAX_ENTRIES:
                return
            my_q = getattr(rt_se, "my_q", None)
            if my_q is not None and my_q.value_():
                _rt_array(my_q.active, out, depth + 1)
                continue
            task = drgn.container_of(rt_se, "struct task_struct", "rt")
            out.append(_queued(task, index))


def _cfs_tasks(cfs_rq: drgn.Object, depth: int = 0) -> list[QueuedTask]:
    """The fair tree in order; a group entity stands for its own queue, the current
    group entity's queue (not in the tree) first (crash's dump_tasks_in_cfs_rq)."""
    out: list[QueuedTask] = []
    if depth > 32:
        return out
    curr = cfs_rq.curr.read_()
    if curr and _group_queue(curr) is not None:
        out += _cfs_tasks(_group_queue(curr), depth + 1)
    for se in rbtree_inorder_for_each_entry("struct sched_entity",
                                            cfs_rq.tasks_timeline.rb_root.address_of_(),
                                            "run_node"):
        if len(out) > _MAX_ENTRIES:
            break
        my_q = _group_queue(se)
        if my_q is not None:
            out += _cfs_tasks(my_q, depth + 1)
            continue
        out.append(_queued(drgn.container_of(se, "struct task_struct", "se")))
    return out


def _group_queue(se: drgn.Object) -> drgn.Object | None:
    try:
        my_q = se.my_q.read_()
    except AttributeError:  # no group scheduling
        return None
    return my_q if my_q else None


def _group_name(tg: drgn.Object) -> str | None:
    """The cgroup directory name crash prints in ``<...>`` ("/" for the root)."""
    try:
        cgroup = tg.css.cgroup.read_()
        if not cgroup:
            return None
        kn = cgroup.kn.read_()
        if not kn:
            return None
        if not kn.parent:
            return "/"
        return decode(kn.name.string_())
    except READ_ERRORS:
        return None


def _group_tree(cfs_rq: drgn.Object, current: drgn.Object, depth: int) -> GroupQueue:
    """``runq -g``'s view of one fair queue: the CPU's current task first when it is
    this queue's current entity, then the tree; a group entity opens its group."""
    tg = cfs_rq.tg.read_()
    try:
        throttled = bool(cfs_rq.throttled.value_())
    except AttributeError:
        throttled = False
    group = GroupQueue(tg.value_(), cfs_rq.value_(), _group_name(tg) if depth else None,
                       throttled, depth)
    if depth > 32:
        return group
    curr = cfs_rq.curr.read_()
    curr_q = _group_queue(curr) if curr else None
    if curr_q is not None:
        group.entries.append(_group_tree(curr_q, current, depth + 1))
    elif curr and drgn.container_of(curr, "struct task_struct", "se").value_() == \
            current.value_():
        group.entries.append(_queued(current, current=True))
    for se in rbtree_inorder_for_each_entry("struct sched_entity",
                                            cfs_rq.tasks_timeline.rb_root.address_of_(),
                                            "run_node"):
        my_q = _group_queue(se)
        if my_q is not None:
            group.entries.append(_group_tree(my_q, current, depth + 1))
        else:
            group.entries.append(_queued(drgn.container_of(se, "struct task_struct", "se")))
    return group


def root_task_group(prog: drgn.Program) -> tuple[drgn.Object, str]:
    """The root task group and crash's name for it (ROOT, or INIT on old kernels)."""
    for name, label in (("root_task_group", "ROOT"), ("init_task_group", "INIT")):
        try:
            return prog[name].address_of_(), label
        except KeyError:
            continue
    raise LookupError("cannot determine root task_group")


def run_queues(prog: drgn.Program, cpus: Sequence[int] | None = None, *,
               groups: bool = False) -> list[CpuRunqueue]:
    """The run queue of every CPU crash knows (or those of ``cpus``), in CPU order."""
    out = []
    for cpu in crash_cpus(prog) if cpus is None else cpus:
        out.append(_cpu_runqueue(prog, cpu, groups))
    return out


def _cpu_runqueue(prog: drgn.Program, cpu: int, groups: bool) -> CpuRunqueue:
    rq = cpu_rq(prog, cpu)
    warnings: list[str] = []
    current = active_task(prog, cpu)
    try:
        current_record: QueuedTask | None = _queued(current)
    except READ_ERRORS:
        current_record = None
    rt_tasks: list[QueuedTask] = []
    cfs_tasks: list[QueuedTask] = []
    try:
        rt_tasks = _rt_tasks(rq)
    except READ_ERRORS as err:
        warnings.append(f"CPU {cpu}: cannot read the RT queue: {err}")
    try:
        cfs_tasks = _cfs_tasks(rq.cfs.address_of_())
    except READ_ERRORS as err:
        warnings.append(f"CPU {cpu}: cannot read the fair queue: {err}")
    root_group = None
    if groups:
        try:
            tg, _ = root_task_group(prog)
            root_group = _group_tree(tg.cfs_rq[cpu].read_(), current, 0)
        except READ_ERRORS as err:
            warnings.append(f"CPU {cpu}: cannot read the task groups: {err}")
    try:
        last_arrival = current.sched_info.last_arrival.value_()
    except READ_ERRORS:
        last_arrival = 0
    return CpuRunqueue(cpu, rq.value_(), current_record, current.value_(),
                       rq.rt.active.address_of_().value_(), rt_tasks,
                       rq.cfs.tasks_timeline.address_of_().value_(), cfs_tasks,
                       rq.clock.value_(), last_arrival, root_group, warnings)
