"""crash's ``irq`` layouts (kernel.c generic_dump_irq, generic_show_interrupts,
generic_get_irq_affinity, display_bh_4).

The list shows every IRQ number: its descriptor and action centred in 16 columns, or
``(unused)``, with shared actions on continuation lines. ``-s`` is /proc/interrupts as
crash prints it (only IRQs with an action; the chip name right-aligned in eight columns
joined to the flow name), ``-a`` the CPUs each action may run on as ranges, ``-d``
the interrupt descriptor table (``[vector] handler``).
"""

from __future__ import annotations

from kdx.model.irq import IdtEntry, Irq, Softirq
from kdx.render.crash.layout import VADDR_WIDTH, field, rstrip_lines

LIST_HEADER = (" IRQ  " + field("IRQ_DESC/_DATA", VADDR_WIDTH, center=True) + "  "
               + field("IRQACTION", VADDR_WIDTH, center=True) + "  NAME")
AFFINITY_HEADER = "IRQ NAME                 AFFINITY"
SOFTIRQ_HEADER = "SOFTIRQ_VEC " + field("ACTION", VADDR_WIDTH, center=True, right=True)

_UNUSED = field("(unused)", VADDR_WIDTH, center=True)


def _address(value: int) -> str:
    return field(f"{value:x}", VADDR_WIDTH, center=True)


def irq_lines(entry: Irq) -> list[str]:
    """One IRQ of the list: a line per action (one line when it has none)."""
    start = field(str(entry.irq), 4, center=True, right=True) + "  " + \
        (_address(entry.desc) if entry.desc else _UNUSED) + "  "
    if not entry.actions:
        return [start + _UNUSED + "  "]
    lines = []
    for i, action in enumerate(entry.actions):
        name = f'"{action.name}"' if action.name is not None else ""
        lead = start if i == 0 else " " * (4 + 2 + VADDR_WIDTH + 2)
        lines.append(lead + _address(action.action) + "  " + name)
    return lines


def render_irqs(entries: list[Irq]) -> str:
    lines = [LIST_HEADER]
    for entry in entries:
        lines.extend(irq_lines(entry))
    return rstrip_lines("\n".join(lines))


def _names(entry: Irq) -> str:
    return ",".join(a.name for a in entry.actions if a.name is not None)


def render_stats(entries: list[Irq], cpus: tuple[int, ...]) -> str:
    """``irq -s``: the counts per CPU of every IRQ with an action."""
    lines = ["     " + "".join(f"{f'CPU{cpu}':>10} " for cpu in cpus)]
    for entry in entries:
        if not entry.desc or not entry.actions:
            continue
        counts = dict(zip(entry.cpus, entry.counts))
        text = f"{entry.irq:3d}: " + "".join(f"{counts.get(cpu, 0):10d} " for cpu in cpus)
        if entry.chip is not None:
            text += f"{entry.chip:>8}"
            if entry.flow is not None:
                text += f"-{entry.flow:<8}"
        lines.append(text + " " + _names(entry))
    return rstrip_lines("\n".join(lines))


def cpu_ranges(cpus: tuple[int, ...]) -> str:
    """``0-1,3`` for CPUs 0, 1 and 3."""
    parts = []
    run: list[int] = []
    for cpu in sorted(cpus):
        if run and cpu == run[-1] + 1:
            run.append(cpu)
            continue
        if run:
            parts.append(str(run[0]) if len(run) == 1 else f"{run[0]}-{run[-1]}")
        run = [cpu]
    if run:
        parts.append(str(run[0]) if len(run) == 1 else f"{run[0]}-{run[-1]}")
    return ",".join(parts)


def render_affinity(entries: list[Irq], cpu_count: int) -> str:
    """``irq -a``: each IRQ with an action, its action names and allowed CPUs (those
    crash counts: below the number of CPUs)."""
    lines = [AFFINITY_HEADER]
    for entry in entries:
        if not entry.desc or not entry.actions:
            continue
        allowed = tuple(c for c in entry.affinity if c < cpu_count)
        lines.append(f"{entry.irq:3d} {_names(entry):<20} {cpu_ranges(allowed)}")
    return rstrip_lines("\n".join(lines))


def render_softirqs(entries: list[Softirq]) -> str:
    """``irq -b``: the softirq vector."""
    lines = [SOFTIRQ_HEADER]
    for entry in entries:
        gap = " " * (4 if entry.index < 10 else 3)
        address = field(f"{entry.action:x}", VADDR_WIDTH, center=True, right=True)
        text = f"    [{entry.index}]{gap} {address}  <{entry.symbol or ''}>"
        if entry.module:
            text += f"  [{entry.module}]"
        lines.append(text)
    return rstrip_lines("\n".join(lines))


def idt_line(entry: IdtEntry) -> str:
    """``  [N] symbol+offset``: the vector right-aligned in brackets, the offset in
    decimal, a bare 16-digit address when no symbol covers the handler."""
    if entry.symbol is None:
        name = f"{entry.address:016x}"
    else:
        name = entry.symbol + (f"+{entry.offset}" if entry.offset else "")
    return f"{f'[{entry.vector}]':>5} {name}"


def render_idt(entries: list[IdtEntry]) -> str:
    return rstrip_lines("\n".join(idt_line(e) for e in entries))
