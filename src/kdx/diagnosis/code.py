"""The code at the culprit: disassembly around the faulting instruction, the registers it
uses, and the source lines when the file is at hand.

This is the reasoning an engineer does by hand in the classic case — ``movb $0x1,(%rax)``
with RAX = 0 writes through NULL — done for them, with capstone as the disassembler.
"""

from __future__ import annotations

from pathlib import Path

import capstone
import drgn

from kdx.diagnosis.verdict import Instruction, SourceExcerpt

_CONTEXT_LINES = 3
_AFTER = 2  # instructions shown after the faulting one


def disassembler() -> capstone.Cs:
    """capstone for x86-64 in AT&T syntax with operand details (what the reasoning
    about registers and memory operands reads)."""
    md = capstone.Cs(capstone.CS_ARCH_X86, capstone.CS_MODE_64)
    md.syntax = capstone.CS_OPT_SYNTAX_ATT
    md.detail = True
    return md


def disassemble_around(prog: drgn.Program, pc: int, offset: int | None,
                       before: int = 6) -> list[Instruction]:
    """Instructions from the function start (or a few before ``pc``) to just after it,
    spelled as crash's ``dis`` spells them."""
    from kdx.model.disasm import disassemble

    start = pc - offset if offset is not None and offset < 4096 else pc
    try:
        listing = disassemble(prog, start, end=pc + 24, with_source=False)
    except (drgn.FaultError, LookupError, ValueError):
        return []
    insns = listing.instructions
    at = next((i for i, ins in enumerate(insns) if ins.address == pc), None)
    if at is None:
        return []
    chosen = insns[max(0, at - before):at + 1 + _AFTER]
    return [Instruction(ins.address, f"+{ins.address - start:#x}: {ins.text}",
                        ins.address == pc) for ins in chosen]


def effective_addresses(prog: drgn.Program, pc: int, registers: dict[str, int]
                        ) -> tuple[dict[str, int], list[int]]:
    """(registers used to form memory addresses, the addresses) of the instruction at pc."""
    try:
        code = prog.read(pc, 16)
    except drgn.FaultError:
        return {}, []
    ins = next(disassembler().disasm(code, pc), None)
    if ins is None:
        return {}, []
    used: dict[str, int] = {}
    addresses: list[int] = []
    for op in ins.operands:
        if op.type != capstone.x86.X86_OP_MEM:
            continue
        address = op.mem.disp
        for reg, scale in ((op.mem.base, 1), (op.mem.index, op.mem.scale)):
            if reg == 0:
                continue
            name = ins.reg_name(reg)
            if name == "rip":
                address += ins.address + ins.size
                continue
            value = registers.get(name)
            if value is not None:
                used[name] = value
                address += value * scale
        addresses.append(address & 0xFFFFFFFFFFFFFFFF)
    return used, addresses


def read_source(file: str | None, line: int | None, dirs: list[Path]) -> SourceExcerpt | None:
    """A few lines around ``file:line``, found where ``dis -s`` finds sources."""
    from kdx.model.disasm import find_source
    from kdx.model.disasm import read_source as source_lines

    path = find_source(file, dirs) if file and line else None
    if path is None or line is None:
        return None
    try:
        lines = source_lines(path)
    except OSError:
        return None
    first = max(1, line - _CONTEXT_LINES)
    last = min(len(lines), line + _CONTEXT_LINES)
    return SourceExcerpt(str(path), first, lines[first - 1:last], line)


def backward_jumps(prog: drgn.Program, start: int, end: int) -> list[tuple[int, int]]:
    """(jump address, target) of every jump in [start, end) that goes back, to an
    address at or after ``start``: the loops of a function's code."""
    try:
        code = prog.read(start, end - start)
    except drgn.FaultError:
        return []
    out = []
    for ins in disassembler().disasm(code, start):
        if capstone.x86.X86_GRP_JUMP not in ins.groups or not ins.operands:
            continue
        op = ins.operands[0]
        target = op.imm & 0xFFFFFFFFFFFFFFFF  # capstone gives a signed 64-bit value
        if op.type == capstone.x86.X86_OP_IMM and start <= target <= ins.address:
            out.append((ins.address, target))
    return out
