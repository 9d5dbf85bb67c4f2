"""crash's ``waitq`` layout (kernel.c dump_waitq): the task header of each task on the
queue, or one line saying the queue is empty."""

from __future__ import annotations

from kdx.model.waitq import WaitQueue
from kdx.render.crash.layout import rstrip_lines, task_header

__all__ = ["render_waitq"]


def render_waitq(queue: WaitQueue) -> str:
    if not queue.tasks:
        if queue.name:
            return f'wait queue "{queue.name}" ({queue.address:x}) is empty'
        return f"wait queue {queue.address:x} is empty"
    return rstrip_lines("\n".join(task_header(t.pid, t.task, t.cpu, t.command)
                                  for t in queue.tasks))
