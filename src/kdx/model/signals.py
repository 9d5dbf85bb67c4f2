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

from kdx.model.bounded import list_for_each_entry
from kdx.model.files import TaskId, task_id
from kdx.model.records import Hex

#: TIF_SIGPENDING on x86.
_TIF_SIGPENDING = 2


@dataclass(frozen=True)
class SignalAction:
    """Signal ``signal``'s k_sigaction: its address, handler (0 SIG_DFL, 1 SIG_IGN,
    2**64-1 SIG_ERR, else a user address), mask and sa_flags."""

    signal: int
    sigaction: Hex
    handler: Hex
    mask: Hex
    flags: Hex


@dataclass(frozen=True)
class QueuedSignal:
    """One queued signal: its number and the address of its siginfo."""

    signal: int
    siginfo: Hex


@dataclass(frozen=True)
class TaskSignals:
    task: TaskId
    signal_struct: Hex
    nr_threads: int
    actions: tuple[SignalAction, ...]
    sigpending: bool
    blocked: Hex
    private_signal: Hex
    private_queue: tuple[QueuedSignal, ...]
    shared_signal: Hex
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


# -- sig -l / sig -s: signal names -------------------------------------------------------

#: The number of signals a 64-bit sigset holds, and the first real-time signal (crash
#: names the real-time range by these, whatever the C library reserves).
NSIG = 64
SIGRTMIN = 32

#: Names of the classic signals (x86_64 numbering), with the alias crash also lists.
_CLASSIC: dict[int, tuple[str, str | None]] = {
    1: ("SIGHUP", None), 2: ("SIGINT", None), 3: ("SIGQUIT", None), 4: ("SIGILL", None),
    5: ("SIGTRAP", None), 6: ("SIGABRT", "SIGIOT"), 7: ("SIGBUS", None),
    8: ("SIGFPE", None), 9: ("SIGKILL", None), 10: ("SIGUSR1", None),
    11: ("SIGSEGV", None), 12: ("SIGUSR2", None), 13: ("SIGPIPE", None),
    14: ("SIGALRM", None), 15: ("SIGTERM", None), 16: ("SIGSTKFLT", None),
    17: ("SIGCHLD", "SIGCLD"), 18: ("SIGCONT", None), 19: ("SIGSTOP", None),
    20: ("SIGTSTP", None), 21: ("SIGTTIN", None), 22: ("SIGTTOU", None),
    23: ("SIGURG", None), 24: ("SIGXCPU", None), 25: ("SIGXFSZ", None),
    26: ("SIGVTALRM", None), 27: ("SIGPROF", None), 28: ("SIGWINCH", None),
    29: ("SIGIO", "SIGPOLL"), 30: ("SIGPWR", None), 31: ("SIGSYS", "SIGUNUSED"),
}


@dataclass(frozen=True)
class SignalName:
    """One signal number with crash's name for it and, for a few, the alias."""

    signal: int
    name: str
    alias: str | None = None


def signal_name(number: int) -> SignalName:
    """crash's name of signal ``number`` (1..64): the classic names, then SIGRTMIN,
    SIGRTMIN+1..+16, SIGRTMAX-15..-1 and SIGRTMAX, so that every real-time signal is
    named from the closer end, as crash and bash's ``kill -l`` do."""
    if number in _CLASSIC:
        name, alias = _CLASSIC[number]
        return SignalName(number, name, alias)
    if number == SIGRTMIN:
        return SignalName(number, "SIGRTMIN")
    if number == NSIG:
        return SignalName(number, "SIGRTMAX")
    if not SIGRTMIN < number < NSIG:
        raise ValueError(f"no signal {number}")
    below_max = (NSIG - SIGRTMIN - 1) // 2  # how many are named from SIGRTMAX
    above_min = NSIG - SIGRTMIN - 1 - below_max
    if number - SIGRTMIN <= above_min:
        return SignalName(number, f"SIGRTMIN+{number - SIGRTMIN}")
    return SignalName(number, f"SIGRTMAX-{NSIG - number}")


def signal_names() -> list[SignalName]:
    """``sig -l``: every signal a sigset can hold, in order."""
    return [signal_name(n) for n in range(1, NSIG + 1)]


@dataclass(frozen=True)
class DecodedSigset:
    """``sig -s``: a sigset value and the signals whose bits it sets (bit 0 = signal 1)."""

    value: Hex
    signals: tuple[SignalName, ...]


def decode_sigset(value: int) -> DecodedSigset:
    """The signals of a 64-bit sigset value; bits past signal 64 are not signals."""
    if value < 0 or value >> NSIG:
        raise ValueError(f"a sigset is {NSIG} bits: {value:x}")
    return DecodedSigset(value, tuple(signal_name(n) for n in range(1, NSIG + 1)
                                      if value >> (n - 1) & 1))


# -- sig -g: a thread group ------------------------------------------------------------


@dataclass(frozen=True)
class ThreadGroupSignals:
    """``sig -g``: the thread group's leader (its signal_struct, handlers and shared
    queue are the group's) and every thread's own pending state, the leader first."""

    leader: TaskSignals
    threads: tuple[TaskSignals, ...]
