"""Pending timers — what crash's ``timer`` shows: the timer wheel of every CPU and, with
``-r``, the high-resolution timers of every clock base.

A hung task often waits on a timer, and a timer whose function lives in a buggy module
is a classic culprit; the lists answer "what was due to run, where and when". drgn's
timer helpers walk the wheel vectors and hrtimer trees; the records keep crash's order
(wheel timers by expiry, hrtimers in tree order) and its time base: jiffies for the
wheel, and for hrtimers "now" as jiffies since boot turned into nanoseconds.
"""

from __future__ import annotations

from dataclasses import dataclass

import drgn
from drgn.helpers.linux.cpumask import for_each_online_cpu, for_each_possible_cpu
from drgn.helpers.linux.percpu import per_cpu
from drgn.helpers.linux.timer import (
    hrtimer_clock_base_for_each,
    timer_base_for_each,
    timer_base_names,
)

from kdx.model.names import address_namer
from kdx.model.reading import READ_ERRORS
from kdx.model.records import Hex


@dataclass(frozen=True)
class Timer:
    """One wheel timer: ``tte`` is expires minus jiffies (negative when overdue)."""

    timer: Hex
    expires: int
    tte: int
    function: Hex
    symbol: str


@dataclass(frozen=True)
class TimerBase:
    """One CPU's timer base (``name`` is the kernel's: BASE_STD, BASE_LOCAL...).
    ``online`` False means the CPU was offline and nothing was read."""

    cpu: int
    name: str
    base: Hex
    online: bool
    timers: tuple[Timer, ...]


@dataclass(frozen=True)
class TimerWheel:
    jiffies: int
    bases: tuple[TimerBase, ...]


@dataclass(frozen=True)
class Hrtimer:
    hrtimer: Hex
    softexpires: int
    expires: int
    tte: int
    function: Hex
    symbol: str


@dataclass(frozen=True)
class ClockBase:
    """One hrtimer clock base: its index, address, time source and timers."""

    index: int
    base: Hex
    get_time: str
    now: int
    timers: tuple[Hrtimer, ...]


@dataclass(frozen=True)
class CpuHrtimers:
    cpu: int
    base: Hex
    online: bool
    clocks: tuple[ClockBase, ...]


def symbol_text(prog: drgn.Program, address: int) -> str:
    """``name`` or ``name+offset`` (decimal) as crash's value_to_symstr writes it; empty
    when the address has no name."""
    return address_namer(prog).name(address) or ""


def _signed(value: int) -> int:
    return ((value + (1 << 63)) % (1 << 64)) - (1 << 63)


# -- the wheel --------------------------------------------------------------------------


def _base_timers(prog: drgn.Program, base: drgn.Object, jiffies: int) -> tuple[Timer, ...]:
    found = []
    for timer in timer_base_for_each(base):
        try:
            expires = timer.expires.value_()
            function = timer.function.value_()
        except READ_ERRORS:
            continue
        found.append(Timer(timer.value_(), expires, _signed(expires - jiffies), function,
                           symbol_text(prog, function)))
    found.sort(key=lambda t: t.expires)
    return tuple(found)


def timer_wheel(prog: drgn.Program) -> TimerWheel:
    """Every CPU's timer bases with their pending timers, sorted by expiry."""
    jiffies = prog["jiffies"].value_()
    names = timer_base_names(prog)
    online = set(for_each_online_cpu(prog))
    bases = []
    for cpu in for_each_possible_cpu(prog):
        cpu_bases = per_cpu(prog["timer_bases"], cpu)
        for index, name in enumerate(names):
            base = cpu_bases[index].address_of_()
            timers = _base_timers(prog, base, jiffies) if cpu in online else ()
            bases.append(TimerBase(cpu, name, base.value_(), cpu in online, timers))
    return TimerWheel(jiffies, tuple(bases))


# -- hrtimers ---------------------------------------------------------------------------


def _ktime(value: drgn.Object) -> int:
    return value.value_() & ((1 << 64) - 1)


def _clock(prog: drgn.Program, index: int, clock: drgn.Object, uptime_ns: int) -> ClockBase:
    try:
        get_time = symbol_text(prog, clock.get_time.value_())
    except AttributeError:
        get_time = ""
    offset = _ktime(clock.offset) if clock.offset.value_() else 0
    now = (uptime_ns + offset) & ((1 << 64) - 1)
    timers = []
    for timer in hrtimer_clock_base_for_each(clock.address_of_()):
        expires = _ktime(timer.node.expires)
        soft = _ktime(timer._softexpires)
        function = timer.function.value_()
        timers.append(Hrtimer(timer.value_(), soft, expires, _signed(expires - now),
                              function, symbol_text(prog, function)))
    return ClockBase(index, clock.address_of_().value_(), get_time, now, tuple(timers))


def hrtimers(prog: drgn.Program, hz: int) -> list[CpuHrtimers]:
    """Every CPU's hrtimer clock bases. "now" is jiffies since boot in nanoseconds, with
    ``hz`` the tick rate, plus each clock base's offset (crash's rule)."""
    jiffies = prog["jiffies"].value_()
    uptime_ns = ((jiffies - ((-300 * hz) & 0xFFFFFFFF)) & ((1 << 64) - 1)) * (10**9 // hz)
    online = set(for_each_online_cpu(prog))
    found = []
    for cpu in for_each_possible_cpu(prog):
        cpu_base = per_cpu(prog["hrtimer_bases"], cpu)
        clocks: tuple[ClockBase, ...] = ()
        if cpu in online:
            clocks = tuple(_clock(prog, i, clock, uptime_ns)
                           for i, clock in enumerate(cpu_base.clock_base))
        found.append(CpuHrtimers(cpu, cpu_base.address_, cpu in online, clocks))
    return found
