"""crash's ``runq`` text (task.c dump_CFS_runqueues, dump_tasks_by_task_group,
dump_on_rq_timestamp, dump_on_rq_milliseconds, dump_on_rq_lag).

Per CPU a ``CPU N RUNQUEUE:`` block: the CURRENT task, the RT priority array and the
fair tree, each task as ``[prio] PID: ...  TASK: ...  COMMAND: "..."``, or
``[no tasks queued]``; blank lines between CPUs.
"""

from __future__ import annotations

from kdx.model.runqueue import CpuRunqueue, GroupQueue, QueuedTask


def task_text(task: QueuedTask) -> str:
    return f'PID: {task.pid:<5}  TASK: {task.task:x}  COMMAND: "{task.comm}"'


def _current(rq: CpuRunqueue) -> str:
    if rq.current is None:
        return f"  CURRENT: {rq.current_address:x}"
    return f"  CURRENT: {task_text(rq.current)}"


def _entries(tasks: list[QueuedTask]) -> list[str]:
    if not tasks:
        return ["     [no tasks queued]"]
    return [f"     [{t.prio:3d}] {task_text(t)}" for t in tasks]


def render_runq(queues: list[CpuRunqueue]) -> str:
    blocks = []
    for rq in queues:
        lines = [f"CPU {rq.cpu} RUNQUEUE: {rq.runqueue:x}", _current(rq),
                 f"  RT PRIO_ARRAY: {rq.rt_prio_array:x}", *_entries(rq.rt_tasks),
                 f"  CFS RB_ROOT: {rq.cfs_root:x}", *_entries(rq.cfs_tasks)]
        blocks.append("\n".join(lines))
    return "\n\n".join(blocks)


# --- -g ---------------------------------------------------------------------------------------


def _group_lines(group: GroupQueue) -> list[str]:
    out: list[str] = []
    for entry in group.entries:
        if isinstance(entry, GroupQueue):
            name = f" <{entry.name}>" if entry.name else ""
            throttled = " (THROTTLED)" if entry.throttled else ""
            out.append(f"{' ' * (2 + 3 * entry.depth)}TASK_GROUP: {entry.task_group:x}  "
                       f"CFS_RQ: {entry.cfs_rq:x} {name}{throttled}".rstrip())
            out += _group_lines(entry)
        else:
            mark = " [CURRENT]" if entry.current else ""
            out.append(f"{' ' * (5 + 3 * group.depth)}[{entry.prio:3d}] {task_text(entry)}"
                       f"{mark}")
    if not group.entries:
        out.append(f"{' ' * (5 + 3 * group.depth)}[no tasks queued]")
    return out


def render_runq_groups(queues: list[CpuRunqueue], root: int, label: str) -> str:
    blocks = []
    for rq in queues:
        lines = [f"CPU {rq.cpu}", _current(rq)]
        if rq.root_group is not None:
            lines.append(f"  {label}_TASK_GROUP: {root:x}  CFS_RQ: {rq.root_group.cfs_rq:x}")
            lines += _group_lines(rq.root_group)
        blocks.append("\n".join(lines))
    return "\n\n".join(blocks)


# --- -t, -m, -T -------------------------------------------------------------------------------


def render_timestamps(queues: list[CpuRunqueue]) -> str:
    """``runq -t``: each CPU's clock, and under it the current task's last arrival in
    as many digits."""
    lines = []
    for rq in queues:
        clock = f"{rq.clock}"
        lines.append(f"{' ' if rq.cpu < 10 else ''}CPU {rq.cpu}: {clock}")
        if rq.current is None:
            lines.append("")
            continue
        indent = (7 if rq.cpu < 10 else 8 if rq.cpu < 100 else 9) + (rq.cpu < 10)
        lines.append(f"{' ' * indent}{rq.current_last_arrival:0{len(clock)}d}  "
                     f"{task_text(rq.current)}")
    return "\n".join(lines)


def duration(ns: int) -> str:
    """crash's ``days hh:mm:ss.mmm``."""
    ms = ns // 1_000_000
    secs, ms = divmod(ms, 1000)
    mins, secs = divmod(secs, 60)
    hours, mins = divmod(mins, 60)
    days, hours = divmod(hours, 24)
    return f"{days} {hours:02d}:{mins:02d}:{secs:02d}.{ms:03d}"


def render_milliseconds(queues: list[CpuRunqueue], cpu_count: int) -> str:
    """``runq -m``: how long each CPU's current task has run since it last arrived."""
    width = 1 if cpu_count < 10 else 2 if cpu_count < 100 else 3 if cpu_count < 1000 else 4
    lines = []
    max_days = None
    for rq in queues:
        if max_days is None:
            max_days = len(duration(rq.clock).split(" ")[0])
        indent = width - (0 if rq.cpu < 10 else 1 if rq.cpu < 100 else 2)
        if rq.current is None:
            lines.append(f"{' ' * indent}CPU {rq.cpu}: [unknown]")
            continue
        text = duration(max(rq.clock - rq.current_last_arrival, 0))
        pad = " " * (max_days - len(text.split(" ")[0]))
        lines.append(f"{' ' * indent}CPU {rq.cpu}: [{pad}{text}]  {task_text(rq.current)}")
    return "\n".join(lines)


def render_lag(queues: list[CpuRunqueue], cpu_count: int) -> str:
    """``runq -T``: each CPU's clock behind the most recent one, in seconds."""
    if not queues:
        return ""
    ordered = sorted(queues, key=lambda rq: -rq.clock)
    newest = ordered[0].clock
    digits = len(str(cpu_count))
    lines = []
    for rq in ordered:
        indent = 2 + digits - len(str(rq.cpu))
        lines.append(f"{' ' * indent}CPU {rq.cpu}: {(newest - rq.clock) / 1e9:.2f} secs")
    return "\n".join(lines)
