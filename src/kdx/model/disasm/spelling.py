"""GNU AT&T spelling of capstone's x86-64 instructions.

crash disassembles through gdb, so its users read GNU AT&T syntax: ``mov %rdi,%rbx``,
``nopl 0x0(%rax,%rax,1)``, ``call 0xffffffff... <panic>``. capstone's own AT&T output adds
size suffixes everywhere, prints decimal immediates and spaces after commas, so
:func:`spell` respells each instruction the way GNU's disassembler does. It is pure text
work on one decoded instruction, apart from reading the dump.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import capstone
from capstone import x86 as cs_x86

from kdx.model.records import Hex

__all__ = ["Spelled", "spell"]
_OP_REG = cs_x86.X86_OP_REG
_OP_IMM = cs_x86.X86_OP_IMM
_OP_MEM = cs_x86.X86_OP_MEM

_PREFIX_WORDS = {"rep", "repe", "repne", "repz", "repnz", "lock", "notrack", "bnd",
                 "xacquire", "xrelease", "rex64", "data16", "addr32"}
_PREFIX_SPELLING = {"repe": "repz", "repne": "repnz"}
#: Mnemonics GNU spells differently from capstone's AT&T names.
_MNEMONIC_SPELLING = {"pushfq": "pushf", "popfq": "popf", "retq": "ret", "leaveq": "leave",
                      "callq": "call", "jmpq": "jmp", "movabsq": "movabs", "lidtq": "lidt",
                      "lgdtq": "lgdt", "sidtq": "sidt", "sgdtq": "sgdt", "ljmpl": "ljmp",
                      "lcalll": "lcall", "lretl": "lret", "lretq": "lretq", "wait": "fwait"}
#: Instructions whose implicit register operands GNU writes out and capstone does not.
_IMPLICIT = {"monitor": ["%rax", "%ecx", "%edx"], "mwait": ["%eax", "%ecx"]}
#: Segment prefix bytes GNU names as words when nothing uses them (``cs call ...``).
_SEGMENT_WORDS = {0x2E: "cs", 0x3E: "ds", 0x26: "es", 0x36: "ss"}
#: Instructions that are 64-bit by nature in long mode: GNU never adds a suffix.
_NO_SUFFIX = {"push", "pop", "call", "jmp", "ret", "leave"}
#: String instructions: GNU shows their implicit segments (``%es:(%rdi)``).
_STRING_OPS = re.compile(r"(movs|cmps|stos|lods|scas|ins|outs)[bwlq]\Z")
#: Port I/O: GNU writes the %dx port operand as ``(%dx)``.
_PORT_OPS = re.compile(r"(in|out|ins[bwld]?|outs[bwld]?)\Z")
_SUFFIX_SIZE = {"b": 1, "w": 2, "l": 4, "q": 8}


def _hex(value: int) -> str:
    return f"{value:#x}"


def _signed_hex(value: int) -> str:
    return f"-{-value:#x}" if value < 0 else f"{value:#x}"


def _split_operands(op_str: str) -> list[str]:
    """capstone's operand text split at the commas that separate operands."""
    out: list[str] = []
    depth, current = 0, ""
    for ch in op_str:
        if ch == "(":
            depth += 1
        elif ch == ")":
            depth -= 1
        if ch == "," and depth == 0:
            out.append(current.strip())
            current = ""
            continue
        current += ch
    if current.strip():
        out.append(current.strip())
    return out


@dataclass(frozen=True)
class Spelled:
    """One instruction in GNU's words, before symbols are added."""

    prefixes: list[str]
    mnemonic: str
    operands: list[str]
    target: Hex | None  # a direct call/jump's destination
    rip_target: Hex | None  # the address a %rip-relative operand points to


def spell(insn: capstone.CsInsn) -> Spelled:
    """The AT&T spelling gdb (GNU opcodes) gives a capstone instruction (decoded in
    detail mode): capstone's operand text is taken apart and each operand rebuilt from
    capstone's details, the mnemonic's size suffix kept only where GNU keeps it."""
    words = insn.mnemonic.split()
    prefixes = [_PREFIX_SPELLING.get(w, w) for w in words[:-1] if w in _PREFIX_WORDS]
    mnemonic = words[-1] if words else insn.mnemonic
    raw = bytes(insn.bytes)
    if raw.endswith(b"\x66\x90") and set(raw) == {0x66, 0x90} and raw.count(0x90) == 1:
        return Spelled(["data16"] * (len(raw) - 2), "xchg", ["%ax", "%ax"], None, None)
    texts = _split_operands(insn.op_str)
    imms = [op for op in insn.operands if op.type == _OP_IMM]
    mems = [op for op in insn.operands if op.type == _OP_MEM]
    regs = [op for op in insn.operands if op.type == _OP_REG]
    branch = (insn.group(capstone.CS_GRP_JUMP) or insn.group(capstone.CS_GRP_CALL))
    string_op = bool(_STRING_OPS.match(mnemonic))
    operands: list[str] = []
    target = rip_target = None
    mems_used = bool(mems)
    for text in texts:
        star = "*" if text.startswith("*") else ""
        body = text[1:] if star else text
        if body.startswith("$") and imms:
            op = imms.pop(0)
            operands.append("$" + _hex(op.imm & ((1 << (8 * (op.size or 8))) - 1)))
        elif branch and not star and imms and not body.startswith("%"):
            op = imms.pop(0)
            target = op.imm & 0xFFFF_FFFF_FFFF_FFFF
            operands.append(_hex(target))
        elif body.startswith("%") and ":" not in body and "(" not in body:
            operands.append(star + body.replace(" ", ""))
        elif mems:
            text_op, rip = _memory(insn, mems.pop(0), string_op)
            if rip is not None:
                rip_target = rip
            operands.append(star + text_op)
        else:
            operands.append(star + body.replace(" ", ""))
    prefixes = _data16_prefixes(raw, mnemonic) + prefixes
    seg_word = _SEGMENT_WORDS.get(insn.prefix[1])
    if seg_word and not mems_used and "notrack" not in prefixes:
        prefixes.append(seg_word)
    operands = operands or list(_IMPLICIT.get(mnemonic, []))
    if insn.opcode[0] in (0xD0, 0xD1) and operands and operands[0] == "$0x1":
        operands.pop(0)  # shift by one: GNU leaves the implicit count out
    if _PORT_OPS.match(insn.insn_name() or ""):
        operands = ["(%dx)" if o == "%dx" else o for o in operands]
    mnemonic = _mnemonic(insn, mnemonic, regs, string_op)
    return Spelled(_dedupe(prefixes), mnemonic, operands, target, rip_target)


def _dedupe(words: list[str]) -> list[str]:
    seen: list[str] = []
    for w in words:
        if w not in seen:
            seen.append(w)
    return seen


def _data16_prefixes(raw: bytes, mnemonic: str) -> list[str]:
    """GNU names each operand-size prefix beyond the one that makes ``nopw``: long nops
    (``66 66 2e 0f 1f 84 ...``) read ``data16 nopw %cs:0x0(%rax,%rax,1)``."""
    if not mnemonic.startswith("nop"):
        return []
    count = 0
    for b in raw:
        if b == 0x66:
            count += 1
        elif b in (0x2E, 0x3E, 0x26, 0x36, 0x64, 0x65, 0xF2, 0xF3):
            continue
        else:
            break
    return ["data16"] * max(0, count - 1)


def _mnemonic(insn: capstone.CsInsn, mnemonic: str, regs: list, string_op: bool) -> str:
    """Drop the size suffix capstone always adds when GNU would not: when a register
    operand already says the size, or for instructions 64-bit by nature."""
    mnemonic = _MNEMONIC_SPELLING.get(mnemonic, mnemonic)
    if string_op:
        return mnemonic[:-1] if mnemonic.startswith(("stos", "lods", "scas")) else mnemonic
    base = insn.insn_name() or mnemonic
    if mnemonic in _NO_SUFFIX or mnemonic == base:
        return mnemonic
    suffix = mnemonic[len(base):] if mnemonic.startswith(base) else ""
    if len(suffix) != 1 or suffix not in _SUFFIX_SIZE:
        return mnemonic
    if base in _NO_SUFFIX:
        return base
    size = _SUFFIX_SIZE[suffix]
    if any(op.size == size for op in regs):
        return base
    return mnemonic


def _memory(insn: capstone.CsInsn, op, string_op: bool) -> tuple[str, int | None]:  # noqa: ANN001
    """A memory operand as GNU writes it: ``%gs:0x28``, ``-0x8(%rbp)``,
    ``0x0(%rax,%rax,1)``, ``%es:(%rdi)``, with the target of a %rip-relative one. A
    segment override stays on the operand (``data16 nopw %cs:0x0(%rax,%rax,1)``), as the
    gdb 10 inside crash 8.0.6 prints it; binutils 2.37 and later write ``cs nopw``."""
    mem = op.mem
    seg = insn.reg_name(mem.segment) if mem.segment else None
    base = insn.reg_name(mem.base) if mem.base else None
    index = insn.reg_name(mem.index) if mem.index else None
    if string_op:
        seg = "es" if base in ("rdi", "edi") else "ds" if base in ("rsi", "esi") else seg
    rip = None
    if base or index:
        inner = f"%{base}" if base else ""
        if index:
            inner += f",%{index},{mem.scale}"
        encoded = insn.disp_size > 0 and not string_op
        disp = _signed_hex(mem.disp) if (mem.disp or encoded) else ""
        text = f"{disp}({inner})"
        if base == "rip":
            rip = (insn.address + insn.size + mem.disp) & 0xFFFF_FFFF_FFFF_FFFF
    else:
        text = _hex(mem.disp & 0xFFFF_FFFF_FFFF_FFFF)
    if seg:
        text = f"%{seg}:{text}"
    return text, rip
