"""``ps``'s answers that pair a task with more about it (children, threads, last run,
limits), apart from :mod:`kdx.model.answers`, so that ``ps`` imports the task model
alone and not every model the other answers hold.

:mod:`kdx.model.answers` re-exports them with every other answer record.
"""

from __future__ import annotations

from dataclasses import dataclass

from kdx.model.tasks import TaskInfo, TaskRlimit

__all__ = ["TaskChildren", "TaskLastRun", "TaskRlimits", "TaskThreads"]


@dataclass(frozen=True)
class TaskChildren:
    """``ps -c``: a task and its children."""

    task: TaskInfo
    children: list[TaskInfo]


@dataclass(frozen=True)
class TaskThreads:
    """``ps -g``: a thread group leader and its other threads."""

    task: TaskInfo
    threads: list[TaskInfo]


@dataclass(frozen=True)
class TaskLastRun:
    """``ps -l``/``ps -m``: when a task last ran (ns of its CPU's clock), and with
    ``-m`` how long ago that was."""

    task: TaskInfo
    last_run: int | None
    since_ns: int | None


@dataclass(frozen=True)
class TaskRlimits:
    """``ps -r``: a task's resource limits."""

    task: TaskInfo
    limits: list[TaskRlimit]
