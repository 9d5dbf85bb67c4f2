"""crash's ``sig`` layout (task.c dump_signal_data): the signal_struct line, one line per
signal (k_sigaction address, handler, mask, flags and their names), then the pending
state. Handler and k_sigaction columns are ten wide, the user-address width of x86_64.
"""

from __future__ import annotations

from kdx.model.signals import (
    DecodedSigset,
    QueuedSignal,
    SignalName,
    TaskSignals,
    ThreadGroupSignals,
)
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


def _header(record: TaskSignals) -> str:
    t = record.task
    return task_header(t.pid, t.task, t.cpu, t.command)


def _group_lines(record: TaskSignals) -> list[str]:
    """The thread-group half: the signal_struct, every handler."""
    lines = [f"SIGNAL_STRUCT: {record.signal_struct:x}  NR_THREADS: {record.nr_threads}",
             ACTIONS_HEADER]
    for a in record.actions:
        handler = _HANDLERS.get(a.handler, f"{a.handler:x}")
        lines.append(f"{'' if a.signal >= 10 else ' '}[{a.signal}] "
                     f"{a.sigaction:<{UVADDR_WIDTH}x} {handler:>{UVADDR_WIDTH}} "
                     f"{a.mask:016x} {a.flags:x} {flag_names(a.flags)}")
    return lines


def _shared_lines(record: TaskSignals) -> list[str]:
    return ["SHARED_PENDING", f"    SIGNAL: {record.shared_signal:016x}",
            *_queue_lines(record.shared_queue)]


def _task_lines(record: TaskSignals) -> list[str]:
    """The task half: pending flag, blocked set, private queue."""
    return [f"SIGPENDING: {'yes' if record.sigpending else 'no'}",
            f"   BLOCKED: {record.blocked:016x}",
            "PRIVATE_PENDING",
            f"    SIGNAL: {record.private_signal:016x}",
            *_queue_lines(record.private_queue)]


def render_signals(record: TaskSignals) -> str:
    lines = [_header(record), *_group_lines(record), *_task_lines(record),
             *_shared_lines(record)]
    return rstrip_lines("\n".join(lines))


def render_thread_group(group: ThreadGroupSignals) -> str:
    """``sig -g``: the leader's header and the group's handlers and shared queue, then
    each thread, indented under its own header, with its private state."""
    lines = [_header(group.leader), *_group_lines(group.leader),
             *_shared_lines(group.leader)]
    for thread in group.threads:
        lines += ["", *("  " + line for line in [_header(thread), *_task_lines(thread)])]
    return rstrip_lines("\n".join(lines))


def render_signal_names(names: list[SignalName]) -> str:
    """``sig -l``: ``[N] NAME`` (``/ALIAS``), the one-digit numbers indented by one."""
    lines = []
    for s in names:
        alias = f"/{s.alias}" if s.alias else ""
        pad = " " if s.signal < 10 else ""
        lines.append(f"{pad}[{s.signal}] {s.name}{alias}")
    return "\n".join(lines)


#: crash starts a new line before a name that would take a line past this width.
SIGSET_WIDTH = 80


def render_sigset(decoded: DecodedSigset) -> str:
    """``sig -s``: the names of the signals set, space separated, wrapped at 80
    columns; ``(none)`` for an empty set."""
    if not decoded.signals:
        return "(none)"
    lines: list[str] = []
    current = ""
    for s in decoded.signals:
        word = f" {s.name}" if current else s.name
        if len(current) + len(word) > SIGSET_WIDTH:
            lines.append(current)
            current, word = "", s.name
        current += word
    lines.append(current)
    return "\n".join(lines)
