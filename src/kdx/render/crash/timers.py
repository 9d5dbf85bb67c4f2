"""crash's ``timer`` layouts (kernel.c dump_timer_data_timer_bases, dump_hrtimer_data).

Wheel: JIFFIES, then per CPU and base the timers by expiry with their time to expire;
column widths follow the jiffies value and the largest time to expire. Hrtimers: per CPU
and clock base, CURRENT and the timers in tree order; crash sizes those columns from
the *last* timer of a base, so kdx does the same.
"""

from __future__ import annotations

from kdx.model.timers import ClockBase, CpuHrtimers, TimerBase, TimerWheel
from kdx.render.crash.layout import VADDR_WIDTH, field, rstrip_lines


def _base_lines(base: TimerBase, flen: int) -> list[str]:
    lines = [f"TIMER_BASES[{base.cpu}][{base.name}]: {base.base:x}"]
    highest = max((abs(t.tte) for t in base.timers), default=0)
    tlen = max(len(str(highest)) + 1, len("TTE"))
    lines.append(f"  {'EXPIRES':<{flen}}     {'TTE':<{tlen}}     TIMER_LIST     FUNCTION")
    for t in base.timers:
        address = field(f"{t.timer:>16x}", 16, center=True)
        lines.append(f"  {t.expires:>{flen}}  {t.tte:>{tlen}}  {address}  "
                     f"{t.function:>16x}  <{t.symbol}>")
    if not base.timers:
        lines.append("  (none)")
    return lines


def render_wheel(wheel: TimerWheel) -> str:
    flen = max(len(str(wheel.jiffies)), len("JIFFIES"))
    lines = [f"{'JIFFIES':<{flen}}", f"{wheel.jiffies:>{flen}}", ""]
    last_cpu = None
    for base in wheel.bases:
        if base.cpu != last_cpu:
            if last_cpu is not None:
                lines.append("")
            last_cpu = base.cpu
            if not base.online:
                lines.append(f"TIMER_BASES[{base.cpu}]: [OFFLINE]")
        if base.online:
            lines.extend(_base_lines(base, flen))
    return rstrip_lines("\n".join(lines))


def _center(text: str, width: int) -> str:
    return field(text, width, center=True, right=True)


def _clock_lines(clock: ClockBase) -> list[str]:
    lines = [f"  CLOCK: {clock.index}  HRTIMER_CLOCK_BASE: {clock.base:x}  [{clock.get_time}]"]
    if not clock.timers:
        return [*lines, "  (empty)"]
    last = clock.timers[-1]
    elen = max(len(str(last.expires)), 7)
    slen = max(len(str(last.softexpires)), 11)
    tlen = len(str(last.tte))
    lines.append("  " + _center("CURRENT", slen))
    lines.append("  " + _center(str(clock.now), slen))
    lines.append("  " + "  ".join([_center("SOFTEXPIRES", slen), _center("EXPIRES", elen),
                                   _center("TTE", tlen),
                                   field("HRTIMER", VADDR_WIDTH, center=True),
                                   field("FUNCTION", VADDR_WIDTH, center=True)]))
    for t in clock.timers:
        lines.append(f"  {_center(str(t.softexpires), slen)}  {_center(str(t.expires), elen)}"
                     f"  {t.tte:>{tlen}}  {t.hrtimer:x}  {t.function:x}  <{t.symbol}>")
    return lines


def render_hrtimers(cpus: list[CpuHrtimers]) -> str:
    lines: list[str] = []
    for i, cpu in enumerate(cpus):
        if i:
            lines.append("")
        if not cpu.online:
            lines.append(f"CPU: {cpu.cpu}  [OFFLINE]")
            continue
        lines.append(f"CPU: {cpu.cpu}  HRTIMER_CPU_BASE: {cpu.base:x}")
        for j, clock in enumerate(cpu.clocks):
            if j:
                lines.append("")
            lines.extend(_clock_lines(clock))
    return rstrip_lines("\n".join(lines))
