"""crash's ``sig`` layout (task.c dump_signal_data): the signal_struct line, one line per
signal (k_sigaction address, handler, mask, flags and their names), then the pending
state. Handler and k_sigaction columns are ten wide, the user-address width of x86_64.
"""

from __future__ import annotations

from kdx.model.signals import QueuedSignal, TaskSignals
from kdx.render.crash.layout import UVADDR_WIDTH, VADDR_WIDTH, field, rstrip_lines, task_header

ACTIONS_HEADER = (" SIG " + field("SIGACTION", VADDR_WIDTH, center=True) + " "
                  + field("HANDLER", UVADDR_WIDTH, right=True) + " "
                  + field("MASK", 16, center=True) + " " + field("FLAGS", VADDR_WIDTH, left=True))

_FLAG_NAMES = ((0x1, "SA_NOCLDSTOP"), (0x04000000, "SA_RESTORER"), (0x2, "SA_NOCLDWAIT"),
               (0x4, "SA_SIGINFO"), (0x08000000, "SA_ONSTACK"), (0x10000000, "SA_RESTART"),
               (0x40000000, "SA_NODEFER"), (0x80000000, "SA_RESETHAND"))
_HANDLERS = {0: "SIG_DFL", 1: "SIG_IGN", (1 << 64) - 1: "SIG_ERR"}


def flag_names(flags: int) -> str:
    """``(SA_RESTORER|SA_RESTART)`` for the flags crash names, empty when none."""
    names = [name for bit, name in _FLAG_NAMES if flags & bit]
    return f"({'|'.join(names)})" if names else ""


def _queue_lines(queue: tuple[QueuedSignal, ...]) -> list[str]:
    if not queue:
        return ["  SIGQUEUE: (empty)"]
    lines = ["  SIGQUEUE:  SIG  " + field("SIGINFO", VADDR_WIDTH, center=True)]
    lines.extend(f"             {q.signal:3d}  {q.siginfo:x}" for q in queue)
    return lines


def render_signals(record: TaskSignals) -> str:
    t = record.task
    lines = [task_header(t.pid, t.task, t.cpu, t.command),
             f"SIGNAL_STRUCT: {record.signal_struct:x}  NR_THREADS: {record.nr_threads}",
             ACTIONS_HEADER]
    for a in record.actions:
        handler = _HANDLERS.get(a.handler, f"{a.handler:x}")
        lines.append(f"{'' if a.signal >= 10 else ' '}[{a.signal}] "
                     f"{a.sigaction:<{UVADDR_WIDTH}x} {handler:>{UVADDR_WIDTH}} "
                     f"{a.mask:016x} {a.flags:x} {flag_names(a.flags)}")
    lines += [f"SIGPENDING: {'yes' if record.sigpending else 'no'}",
              f"   BLOCKED: {record.blocked:016x}",
              "PRIVATE_PENDING",
              f"    SIGNAL: {record.private_signal:016x}",
              *_queue_lines(record.private_queue),
              "SHARED_PENDING",
              f"    SIGNAL: {record.shared_signal:016x}",
              *_queue_lines(record.shared_queue)]
    return rstrip_lines("\n".join(lines))
