"""Machine facts — what crash's ``mach`` shows: type, memory, CPUs, the kernel's address
space layout and the interrupt and exception stacks of every CPU; ``-c`` the per-CPU
``cpuinfo_x86``; ``-m`` the BIOS (e820) memory map.

Where each CPU's IRQ and exception stacks live is what one needs to read a backtrace
that crossed an interrupt or an NMI. The exception stacks are named as crash names
them: from the interrupt descriptor table, by the handler using each IST slot.
"""

from __future__ import annotations

from dataclasses import dataclass

import drgn
from drgn.helpers.linux.cpumask import for_each_online_cpu, for_each_possible_cpu
from drgn.helpers.linux.irq import gate_desc_func
from drgn.helpers.linux.mm import follow_phys
from drgn.helpers.linux.percpu import per_cpu

from kdx.model.names import address_namer
from kdx.model.reading import READ_ERRORS
from kdx.model.records import Hex

#: x86_64's __START_KERNEL_map and MODULES_VADDR (a 1 GiB kernel image area).
START_KERNEL_MAP = 0xFFFFFFFF80000000
MODULES_VADDR = 0xFFFFFFFFC0000000
#: Slots of the TSS interrupt stack table crash looks at.
_IST_SLOTS = 7
#: Handler name fragments → crash's stack names, in crash's order (later wins).
_IST_NAMES = (("nmi", "NMI"), ("debug", "DEBUG"), ("stack", "STACKFAULT"),
              ("double", "DOUBLEFAULT"), ("machine", "MCE"), ("vmm", "VC"))
#: crash's stack name → member of struct cea_exception_stacks giving its size.
_STACK_MEMBERS = {"DEBUG": "DB_stack", "NMI": "NMI_stack", "DOUBLEFAULT": "DF_stack",
                  "MCE": "MCE_stack", "VC": "VC_stack"}


@dataclass(frozen=True)
class CpuStack:
    cpu: int
    base: Hex
    available: bool = True
    online: bool = True


@dataclass(frozen=True)
class ExceptionStack:
    name: str
    size: int
    stacks: tuple[CpuStack, ...]


@dataclass(frozen=True)
class MachineInfo:
    machine: str
    memory_bytes: int
    cpus: int
    cpus_offline: int
    mhz: int | None
    hz: int | None
    page_size: int
    kernel_virtual_base: Hex
    vmalloc_base: Hex
    vmemmap_base: Hex | None
    start_map: Hex
    modules_base: Hex
    stack_size: int
    irq_stack_size: int
    irq_stacks: tuple[CpuStack, ...]
    exception_stacks: tuple[ExceptionStack, ...]


@dataclass(frozen=True)
class MemoryRange:
    """One e820 entry: [start, end) and its type number."""

    start: Hex
    end: Hex
    type: int


def _cpu_count(prog: drgn.Program) -> int:
    return max(for_each_possible_cpu(prog), default=0) + 1


def _value(prog: drgn.Program, name: str) -> int | None:
    try:
        return prog[name].value_()
    except KeyError:
        return None


def _irq_stacks(prog: drgn.Program, cpus: int, online: set[int],
                size: int) -> tuple[CpuStack, ...]:
    """Each CPU's IRQ stack base: the stack pointer the kernel keeps for it, moved from
    its top (one word below the end) back to the start."""
    found = []
    for cpu in range(cpus):
        try:
            try:
                pointer = per_cpu(prog["pcpu_hot"], cpu).hardirq_stack_ptr.value_()
            except KeyError:
                pointer = per_cpu(prog["hardirq_stack_ptr"], cpu).value_()
        except READ_ERRORS:
            pointer = 0
        if pointer and pointer & 0xFFF:
            pointer += 8
        found.append(CpuStack(cpu, pointer - size if pointer else 0, True, cpu in online))
    return tuple(found)


def ist_names(prog: drgn.Program) -> list[str]:
    """crash's name of each IST slot, from the handlers the IDT points there."""
    names = ["(unknown)"] * _IST_SLOTS
    try:
        table = prog["idt_table"]
    except KeyError:
        return names
    for gate in table:
        ist = gate.bits.ist.value_()
        if not ist:
            continue
        try:
            found = address_namer(prog).locate(gate_desc_func(gate).value_())
        except (LookupError, drgn.FaultError):
            continue
        if found is None:
            continue
        handler = found.name
        for fragment, name in _IST_NAMES:
            if fragment in handler:
                names[ist - 1] = name
    return names


def _mapped(prog: drgn.Program, address: int) -> bool:
    """Whether the kernel's page tables map ``address`` (crash's test: a stack page left
    out of the dump still counts as there)."""
    try:
        follow_phys(prog["init_mm"].address_of_(), address)
        return True
    except (drgn.FaultError, ValueError):
        return False


def _exception_stacks(prog: drgn.Program, cpus: int,
                      online: set[int]) -> tuple[ExceptionStack, ...]:
    names = ist_names(prog)
    try:
        cea = prog.type("struct cea_exception_stacks")
    except LookupError:
        cea = None
    tops: list[list[int]] = []
    for cpu in range(cpus):
        try:
            tss = per_cpu(prog["cpu_tss_rw"], cpu)
            tops.append([tss.x86_tss.ist[i].value_() for i in range(_IST_SLOTS)])
        except READ_ERRORS:
            break
    found = []
    for slot in range(_IST_SLOTS):
        if not tops or not tops[0][slot]:
            break
        name = names[slot]
        size = 0
        if cea is not None and name in _STACK_MEMBERS:
            size = drgn.sizeof(cea.member(_STACK_MEMBERS[name]).type)
        stacks = []
        for cpu, row in enumerate(tops):
            if not row[slot]:
                break
            base = row[slot] - size
            stacks.append(CpuStack(cpu, base, _mapped(prog, base), cpu in online))
        found.append(ExceptionStack(name, size, tuple(stacks)))
    return tuple(found)


def machine_info(prog: drgn.Program, system) -> MachineInfo:  # noqa: ANN001 (SystemInfo)
    """``mach``'s record; ``system`` is the session's ``sys`` record (memory, CPUs,
    speed and HZ are the same facts there)."""
    cpus = _cpu_count(prog)
    online = set(for_each_online_cpu(prog))
    try:
        irq_size = drgn.sizeof(prog.type("struct irq_stack"))
    except LookupError:
        irq_size = 16384
    return MachineInfo(
        machine=system.machine, memory_bytes=system.memory_bytes, cpus=system.cpus,
        cpus_offline=system.cpus_offline, mhz=system.mhz, hz=system.hz,
        page_size=prog["PAGE_SIZE"].value_() if "PAGE_SIZE" in prog else 4096,
        kernel_virtual_base=_value(prog, "page_offset_base") or 0,
        vmalloc_base=_value(prog, "vmalloc_base") or 0,
        vmemmap_base=_value(prog, "vmemmap_base"),
        start_map=START_KERNEL_MAP, modules_base=MODULES_VADDR,
        stack_size=_stack_size(prog),
        irq_stack_size=irq_size,
        irq_stacks=_irq_stacks(prog, cpus, online, irq_size),
        exception_stacks=_exception_stacks(prog, cpus, online))


def _stack_size(prog: drgn.Program) -> int:
    """THREAD_SIZE: the size of the boot task's stack."""
    try:
        return drgn.sizeof(prog["init_stack"])
    except (KeyError, LookupError, ValueError):
        return 16384


def cpu_infos(prog: drgn.Program) -> list[tuple[int, drgn.Object | None]]:
    """Each CPU's ``cpuinfo_x86`` (None for an offline CPU)."""
    online = set(for_each_online_cpu(prog))
    return [(cpu, per_cpu(prog["cpu_info"], cpu) if cpu in online else None)
            for cpu in range(_cpu_count(prog))]


def e820_map(prog: drgn.Program) -> list[MemoryRange]:
    """The firmware memory map the kernel booted with."""
    table = prog["e820_table"].read_()
    return [MemoryRange(e.addr.value_(), e.addr.value_() + e.size.value_(), e.type.value_())
            for e in table.entries[:table.nr_entries.value_()]]
