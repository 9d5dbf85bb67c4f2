"""crash's ``bpf`` layout (bpf.c): a program table and a map table, with ``-P``/``-p`` and
``-M``/``-m`` adding detail lines under each entry and repeating the header before the
next, so a long listing reads entry by entry.

The type columns are as wide as the kernel's longest enumerator (the program's capped at
13, keeping its header at 80 columns); a type name wider than its column pushes the rest
of the line, as in crash. ``LOAD_TIME`` is the dump's boot date plus the load time, where
crash adds the load time to the boot date of the machine running crash.
"""

from __future__ import annotations

import time

from kdx.model.bpf import BpfInstruction, BpfMap, BpfObjects, BpfProgram
from kdx.model.disasm import Disassembly
from kdx.render.crash.layout import VADDR_WIDTH, field, rstrip_lines

__all__ = ["map_details", "map_header", "program_details", "program_header", "render_bpf",
           "render_jited", "render_xlated"]


def program_header(objects: BpfObjects) -> str:
    """The program table's header, its type column as wide as the kernel's enum."""
    return (f"{field('ID', 4, center=True)} {field('BPF_PROG', VADDR_WIDTH, center=True)} "
            f"{field('BPF_PROG_AUX', VADDR_WIDTH, center=True)} "
            f"{field('BPF_PROG_TYPE', objects.prog_type_width, center=True)} "
            "      TAG        USED_MAPS")


def map_header(objects: BpfObjects) -> str:
    """The map table's header."""
    return (f"{field('ID', 4, center=True)} {field('BPF_MAP', VADDR_WIDTH, center=True)} "
            f"{field('BPF_MAP_TYPE', objects.map_type_width, center=True)} MAP_FLAGS")


def _program_line(objects: BpfObjects, p: BpfProgram) -> str:
    used = ",".join(str(i) for i in p.used_maps)
    return (f"{field(str(p.id), 4, center=True)} "
            f"{field(f'{p.address:x}', VADDR_WIDTH, center=True)} "
            f"{field(f'{p.aux:x}', VADDR_WIDTH, center=True)} "
            f"{field(p.type_name, objects.prog_type_width, center=True)} {p.tag} "
            f"{field(used, len('USED_MAPS'), center=True)}")


def _known(value: int | None) -> str:
    return "(unknown)" if value is None else str(value)


def _load_time(objects: BpfObjects, p: BpfProgram) -> str:
    if p.load_time_ns is None or objects.boot_epoch is None:
        return "(unknown)"
    epoch = objects.boot_epoch + p.load_time_ns // 1_000_000_000
    return time.strftime("%a %b %d %H:%M:%S %Y", time.localtime(epoch))


def program_details(objects: BpfObjects, p: BpfProgram) -> list[str]:
    """The three lines ``-P`` and ``-p`` add under a program."""
    gpl = "(unknown)" if p.gpl_compatible is None else ("yes" if p.gpl_compatible else "no")
    name = "(unknown)" if p.name is None else (f'"{p.name}"' if p.name else "(unused)")
    return [f"     XLATED: {p.xlated_bytes}  JITED: {p.jited_bytes}  "
            f"MEMLOCK: {_known(p.memlock)}",
            f"     LOAD_TIME: {_load_time(objects, p)}",
            f"     GPL_COMPATIBLE: {gpl}  NAME: {name}  UID: {_known(p.uid)}"]


def _map_line(objects: BpfObjects, m: BpfMap) -> str:
    return (f"{field(str(m.id), 4, center=True)} "
            f"{field(f'{m.address:x}', VADDR_WIDTH, center=True)} "
            f"{field(m.type_name, objects.map_type_width, center=True)}  {m.flags:08x}")


def map_details(m: BpfMap) -> list[str]:
    """The two lines ``-M`` and ``-m`` add under a map."""
    name = "(unknown)" if m.name is None else (f'"{m.name}"' if m.name else "(unused)")
    uid = "(unused)" if m.uid is None else str(m.uid)
    return [f"     KEY_SIZE: {_known(m.key_size)}  VALUE_SIZE: {_known(m.value_size)}  "
            f"MAX_ENTRIES: {_known(m.max_entries)}  MEMLOCK: {_known(m.memlock)}",
            f"     NAME: {name}  UID: {uid}"]


def render_jited(dis: Disassembly) -> str:
    """A program's machine code as crash shows it: gdb's ``x/i`` lines, indented."""
    if not dis.instructions:
        return "(program not jited)"
    return "\n".join(f"   {i.address:#x}:\t{i.text}" for i in dis.instructions)


def render_xlated(insns: list[BpfInstruction], opcodes: bool = False) -> str:
    """The verified bytecode, one instruction a line (``-T``: its bytes under it)."""
    lines: list[str] = []
    for insn in insns:
        lines.append(f"{insn.index:4d}: {insn.text}")
        if opcodes:
            lines.append("       " + " ".join(insn.bytes[i:i + 2]
                                              for i in range(0, len(insn.bytes), 2)))
    return "\n".join(lines)


def render_bpf(objects: BpfObjects, programs: list[tuple[BpfProgram, list[str]]] | None,
               maps: list[tuple[BpfMap, list[str]]] | None, *, verbose_programs: bool,
               verbose_maps: bool) -> str:
    """The listing: each table (None: not asked for) with the lines under each entry.
    With both tables an empty line comes between them, even when there is no program;
    ``-P``/``-M`` repeat a table's header before each later entry."""
    out: list[str] = []
    if programs is not None:
        for n, (program, extra) in enumerate(programs):
            if n == 0 or verbose_programs:
                out += ([""] if n else []) + [program_header(objects)]
            out.append(_program_line(objects, program))
            out += extra
        if maps is not None:
            out.append("")
    for n, (bpf_map, extra) in enumerate(maps or []):
        if n == 0 or verbose_maps:
            out += ([""] if n else []) + [map_header(objects)]
        out.append(_map_line(objects, bpf_map))
        out += extra
    return rstrip_lines("\n".join(out))
