"""Interrupts — what crash's ``irq`` shows: descriptors and actions, per-CPU counts,
affinity, and the softirq vector.

Which device owned which line, how often it fired on each CPU and where it was allowed
to run explain many hangs and storms. drgn's irq helpers find descriptors in the radix
or maple tree; the records keep crash's view: every IRQ number below ``nr_irqs``, with
or without a descriptor.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import drgn
from drgn.helpers.linux.cpumask import for_each_cpu, for_each_online_cpu
from drgn.helpers.linux.irq import (
    for_each_irq_desc,
    irq_desc_affinity_mask,
    irq_desc_kstat_cpu,
    irq_get_nr_irqs,
)

from kdx.model.names import address_namer
from kdx.model.reading import READ_ERRORS, c_string
from kdx.model.records import Hex


@dataclass(frozen=True)
class IrqAction:
    action: Hex
    name: str | None  # None when the action has no readable name


@dataclass(frozen=True)
class Irq:
    """One IRQ number: its descriptor (0 when none is allocated) and actions, the chip
    and flow names, the count per online CPU (``counts[i]`` for ``cpus[i]``) and the
    CPUs it may run on."""

    irq: int
    desc: Hex
    actions: tuple[IrqAction, ...] = ()
    chip: str | None = None
    flow: str | None = None
    cpus: tuple[int, ...] = ()
    counts: tuple[int, ...] = ()
    affinity: tuple[int, ...] = ()


@dataclass(frozen=True)
class Softirq:
    """One entry of ``softirq_vec``: its index and action function."""

    index: int
    action: Hex
    symbol: str | None
    module: str | None



def _actions(desc: drgn.Object) -> tuple[IrqAction, ...]:
    found = []
    action = desc.action.read_()
    seen = set()
    while action and action.value_() not in seen:
        seen.add(action.value_())
        found.append(IrqAction(action.value_(), c_string(action.name)))
        action = action.next.read_()
    return tuple(found)


def irq_record(desc: drgn.Object, irq: int, cpus: tuple[int, ...]) -> Irq:
    actions = _actions(desc)
    chip = desc.irq_data.chip.read_()
    chip_name = c_string(chip.name) if chip else None
    counts = tuple(irq_desc_kstat_cpu(desc, cpu) for cpu in cpus)
    try:
        affinity = tuple(for_each_cpu(irq_desc_affinity_mask(desc)))
    except READ_ERRORS:
        affinity = ()
    return Irq(irq, desc.value_(), actions, chip_name, c_string(desc.name), cpus, counts,
               affinity)


def irqs(prog: drgn.Program, warn: Callable[[str], None] | None = None) -> list[Irq]:
    """Every IRQ number below ``nr_irqs``, as crash walks them."""
    cpus = tuple(for_each_online_cpu(prog))
    descs = dict(for_each_irq_desc(prog))
    found = []
    for irq in range(irq_get_nr_irqs(prog)):
        desc = descs.get(irq)
        if desc is None or not desc:
            found.append(Irq(irq, 0))
            continue
        try:
            found.append(irq_record(desc, irq, cpus))
        except READ_ERRORS as err:
            if warn is not None:
                warn(f"IRQ {irq}: cannot read its descriptor {desc.value_():x}: {err}")
            found.append(Irq(irq, desc.value_()))
    return found


def softirqs(prog: drgn.Program) -> list[Softirq]:
    """The softirq vector's set actions, with their symbols and modules."""
    found = []
    for index, entry in enumerate(prog["softirq_vec"]):
        address = entry.action.value_()
        if not address:
            continue
        found_name = address_namer(prog).locate(address)
        symbol = found_name.name if found_name and not found_name.offset else None
        module = found_name.module if found_name else None
        found.append(Softirq(index, address, symbol, module))
    return found


@dataclass(frozen=True)
class IdtEntry:
    """One gate of the x86_64 interrupt descriptor table: its vector, handler address,
    and the symbol the address falls in (None when no symbol covers it) with the
    offset into it."""

    vector: int
    address: Hex
    symbol: str | None
    offset: int = 0


_GATE_SIZE = 16


def _gate_address(raw: bytes) -> int:
    """The handler of a 64-bit gate: offset bits 0-15, 16-31 and 32-63 are spread over
    the descriptor's two quadwords."""
    low = int.from_bytes(raw[:8], "little")
    high = int.from_bytes(raw[8:16], "little")
    return ((high << 32) & 0xFFFFFFFF00000000) | (low & 0xFFFF) | ((low >> 32) & 0xFFFF0000)


def idt_entries(prog: drgn.Program) -> list[IdtEntry]:
    """The 256 gates of ``idt_table`` (crash's ``irq -d``), each named by the symbol
    its handler address falls in."""
    table = prog["idt_table"]
    count = len(table) if table.type_.kind == drgn.TypeKind.ARRAY else 256
    size = drgn.sizeof(table.type_.type) if table.type_.kind == drgn.TypeKind.ARRAY \
        else _GATE_SIZE
    raw = prog.read(table.address_, size * count)
    found = []
    for vector in range(count):
        address = _gate_address(raw[vector * size:(vector + 1) * size])
        name = address_namer(prog).locate(address)
        if name is not None:
            found.append(IdtEntry(vector, address, name.name, name.offset))
        else:
            found.append(IdtEntry(vector, address, None))
    return found
