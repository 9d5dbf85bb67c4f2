"""crash's ``mach`` layouts (x86_64.c x86_64_display_machine_stats, display_cpu_data,
display_memmap): labels right-aligned to column 22, stacks listed per CPU."""

from __future__ import annotations

from kdx.model.machine import CpuStack, MachineInfo, MemoryRange
from kdx.model.values import CpuInfoValue
from kdx.render.crash.data import struct_text
from kdx.render.crash.layout import rstrip_lines
from kdx.render.crash.sys import memory_size

_E820_TYPES = {0: "(invalid type)", 1: "E820_RAM", 2: "E820_RESERVED", 3: "E820_ACPI",
               4: "E820_NVS", 5: "E820_UNUSABLE", 12: "E820_PRAM",
               128: "E820_RESERVED_KERN"}


def _line(label: str, value: str) -> str:
    return f"{label:>22}: {value}".rstrip()


def _stack_line(stack: CpuStack) -> str:
    text = f"{f'CPU {stack.cpu}':>22}: {stack.base:016x}"
    if not stack.available:
        text += " [unavailable]"
    if not stack.online:
        text += " [OFFLINE]"
    return text


def render_machine(info: MachineInfo) -> str:
    cpus = str(info.cpus) + (f" [OFFLINE: {info.cpus_offline}]" if info.cpus_offline else "")
    lines = [_line("MACHINE TYPE", info.machine),
             _line("MEMORY SIZE", memory_size(info.memory_bytes)),
             _line("CPUS", cpus),
             _line("PROCESSOR SPEED", f"{info.mhz} Mhz" if info.mhz else "(unknown)"),
             _line("HZ", str(info.hz) if info.hz else "(unknown)"),
             _line("PAGE SIZE", str(info.page_size)),
             _line("KERNEL VIRTUAL BASE", f"{info.kernel_virtual_base:x}"),
             _line("KERNEL VMALLOC BASE", f"{info.vmalloc_base:x}")]
    if info.vmemmap_base is not None:
        lines.append(_line("KERNEL VMEMMAP BASE", f"{info.vmemmap_base:x}"))
    lines += [_line("KERNEL START MAP", f"{info.start_map:x}"),
              _line("KERNEL MODULES BASE", f"{info.modules_base:x}"),
              _line("KERNEL STACK SIZE", str(info.stack_size)),
              _line("IRQ STACK SIZE", str(info.irq_stack_size)),
              _line("IRQ STACKS", "")]
    lines.extend(_stack_line(s) for s in info.irq_stacks)
    for stack in info.exception_stacks:
        lines.append(f"{stack.name:>11} STACK SIZE: {stack.size}")
        lines.append(f"{stack.name + ' STACKS:':>23}")
        lines.extend(_stack_line(s) for s in stack.stacks)
    return rstrip_lines("\n".join(lines))


def render_cpu_infos(infos: list[CpuInfoValue]) -> str:
    """``mach -c``: each CPU's cpuinfo_x86 as crash's ``struct`` prints it."""
    chunks = []
    for info in infos:
        lead = "\n" if info.cpu else ""
        if info.value is None:
            chunks.append(f"{lead}CPU {info.cpu}: [OFFLINE]")
        else:
            chunks.append(f"{lead}CPU {info.cpu}:\n" + struct_text(info.value))
    return rstrip_lines("\n".join(chunks))


def render_memmap(ranges: list[MemoryRange]) -> str:
    lines = ["      PHYSICAL ADDRESS RANGE         TYPE"]
    lines.extend(f"{r.start:016x} - {r.end:016x}  {_E820_TYPES.get(r.type, f'type {r.type}')}"
                 for r in ranges)
    return rstrip_lines("\n".join(lines))
