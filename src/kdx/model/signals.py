"""A task's signal handling — what crash's ``sig`` shows: the handler of every signal
(thread-group level), then whether a signal is pending, the blocked set and the private
and shared pending queues.

"Was the signal that should have woken or killed this process blocked, ignored or never
sent?" is a common question about a hung process. Masks are 64-bit values (x86_64 has
one word per sigset).
"""

from __future__ import annotations

from dataclasses import dataclass

import drgn
from drgn.helpers.linux.list import list_for_each_entry

from kdx.model.files import TaskId, task_id

#: TIF_SIGPENDING on x86.
_TIF_SIGPENDING = 2


@dataclass(frozen=True)
class SignalAction:
    """Signal ``signal``'s k_sigaction: its address, handler (0 SIG_DFL, 1 SIG_IGN,
    2**64-1 SIG_ERR, else a user address), mask and sa_flags."""

    signal: int
    sigaction: int
    handler: int
    mask: int
    flags: int


@dataclass(frozen=True)
class QueuedSignal:
    """One queued signal: its number and the address of its siginfo."""

    signal: int
    siginfo: int


@dataclass(frozen=True)
class TaskSignals:
    task: TaskId
    signal_struct: int
    nr_threads: int
    actions: tuple[SignalAction, ...]
    sigpending: bool
    blocked: int
    private_signal: int
    private_queue: tuple[QueuedSignal, ...]
    shared_signal: int
    shared_queue: tuple[QueuedSignal, ...]


def _sigset(value: drgn.Object) -> int:
    return value.sig[0].value_()


def _queue(pending: drgn.Object) -> tuple[QueuedSignal, ...]:
    return tuple(QueuedSignal(q.info.si_signo.value_(), q.info.address_of_().value_())
                 for q in list_for_each_entry("struct sigqueue",
                                              pending.list.address_of_(), "list"))


def task_signals(task: drgn.Object) -> TaskSignals:
    """The ``sig`` record of ``task``."""
    signal = task.signal.read_()
    sighand = task.sighand.read_()
    actions = []
    if sighand:
        for index, action in enumerate(sighand.action):
            sa = action.sa
            actions.append(SignalAction(index + 1, action.address_of_().value_(),
                                        sa.sa_handler.value_(), _sigset(sa.sa_mask),
                                        sa.sa_flags.value_()))
    flags = task.thread_info.flags.value_()
    shared_signal = _sigset(signal.shared_pending.signal) if signal else 0
    shared_queue = _queue(signal.shared_pending) if signal else ()
    return TaskSignals(task_id(task), signal.value_(),
                       signal.nr_threads.value_() if signal else 0, tuple(actions),
                       bool(flags & (1 << _TIF_SIGPENDING)), _sigset(task.blocked),
                       _sigset(task.pending.signal), _queue(task.pending),
                       shared_signal, shared_queue)
