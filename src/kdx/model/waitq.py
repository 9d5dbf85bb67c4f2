"""The tasks on a wait queue, as crash's ``waitq`` lists them: who sleeps on this
queue, the question behind a task blocked in the kernel. drgn's wait helpers walk the
queue's entries.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import drgn
from drgn.helpers.linux.wait import waitqueue_for_each_entry

from kdx.model.files import TaskId, task_id
from kdx.model.records import Hex

__all__ = ["WaitQueue", "wait_queue"]


@dataclass(frozen=True)
class WaitQueue:
    """The tasks on a wait queue, in queue order. crash stops at the first entry whose
    ``private`` is not a task (a callback entry), and so does kdx: ``stopped_at`` is
    that entry's address, or 0."""

    address: Hex
    name: str | None
    tasks: tuple[TaskId, ...]
    stopped_at: Hex = 0


def wait_queue(prog: drgn.Program, address: int, name: str | None,
               is_task: Callable[[int], drgn.Object | None]) -> WaitQueue:
    """Walk the ``wait_queue_head`` at ``address``; ``is_task(addr)`` returns the task
    at that address, or None."""
    head = drgn.Object(prog, "struct wait_queue_head *", address)
    tasks = []
    for entry in waitqueue_for_each_entry(head):
        task = is_task(entry.private.value_())
        if task is None:
            return WaitQueue(address, name, tuple(tasks), entry.value_())
        tasks.append(task_id(task))
    return WaitQueue(address, name, tuple(tasks))
