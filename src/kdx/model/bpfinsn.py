"""Decode a BPF program's verified bytecode into the spelling crash's ``bpf -t`` uses
(the kernel's verifier-log notation: ``r2 += -4``, ``if r0 >= 0x4 goto pc+3``).

After verification the kernel has rewritten the program: a map load holds the map's
address (shown as ``map[id:N]`` when it is a live map) and a helper call holds the
helper's offset from ``__bpf_call_base`` (shown by the helper's symbol). Classes crash's
decoder does not know (``JMP32``) print as crash prints them, ``BUG``.
"""

from __future__ import annotations

import struct
from typing import Callable

from kdx.model.bpf import BpfInstruction

__all__ = ["decode_program", "spell"]

_LD, _LDX, _ST, _STX, _ALU, _JMP, _ALU64 = 0, 1, 2, 3, 4, 5, 7
_CLASS = {0: "ld", 1: "ldx", 2: "st", 3: "stx", 4: "alu", 5: "jmp", 6: "BUG", 7: "alu64"}
_SIZE = {0x00: "u32", 0x08: "u16", 0x10: "u8", 0x18: "u64"}
_ALU_OPS = {0x00: "+=", 0x10: "-=", 0x20: "*=", 0x30: "/=", 0x40: "|=", 0x50: "&=",
            0x60: "<<=", 0x70: ">>=", 0x80: "neg", 0x90: "%=", 0xa0: "^=", 0xb0: "=",
            0xc0: "s>>=", 0xd0: "endian"}
_JMP_OPS = {0x00: "jmp", 0x10: "==", 0x20: ">", 0x30: ">=", 0x40: "&", 0x50: "!=",
            0x60: "s>", 0x70: "s>=", 0x80: "call", 0x90: "exit", 0xa0: "<", 0xb0: "<=",
            0xc0: "s<", 0xd0: "s<="}
_LD_IMM_DW = 0x18
_PSEUDO_CALL = 1

#: Names a helper call by its instruction's ``imm`` (None: unknown).
HelperNamer = Callable[[int], "str | None"]


def _alu(code: int, dst: int, src: int, imm: int) -> str:
    cls, op = code & 7, code & 0xf0
    u32 = "(u32) " if cls == _ALU else ""
    if op == 0xd0:
        if cls == _ALU64:
            return f"BUG_alu64_{code:02x}"
        return f"({code:02x}) r{dst} = {'be' if code & 8 else 'le'}{imm} r{dst}"
    if op == 0x80:
        return f"({code:02x}) r{dst} = {u32}-r{dst}"
    operand = f"r{src}" if code & 8 else str(imm)
    return f"({code:02x}) {u32}r{dst} {_ALU_OPS.get(op, '?')} {u32}{operand}"


def _memory(code: int, dst: int, src: int, off: int, imm: int) -> str:
    cls, mode, size = code & 7, code & 0xe0, _SIZE[code & 0x18]
    if cls == _STX:
        if mode == 0x60:
            return f"({code:02x}) *({size} *)(r{dst} {off:+d}) = r{src}"
        if mode == 0xc0:
            return f"({code:02x}) lock *({size} *)(r{dst} {off:+d}) += r{src}"
        return f"BUG_{code:02x}"
    if cls == _ST:
        if mode != 0x60:
            return f"BUG_st_{code:02x}"
        return f"({code:02x}) *({size} *)(r{dst} {off:+d}) = {imm}"
    if mode != 0x60:
        return f"BUG_ldx_{code:02x}"
    return f"({code:02x}) r{dst} = *({size} *)(r{src} {off:+d})"


def _load(code: int, dst: int, src: int, imm: int, imm64: int | None,
          map_ids: dict[int, int]) -> str:
    mode, size = code & 0xe0, _SIZE[code & 0x18]
    if mode == 0x20:
        return f"({code:02x}) r0 = *({size} *)skb[{imm}]"
    if mode == 0x40:
        return f"({code:02x}) r0 = *({size} *)skb[r{src} + {imm}]"
    if code == _LD_IMM_DW and imm64 is not None:
        value = f"map[id:{map_ids[imm64]}]" if imm64 in map_ids else f"{imm64:#x}"
        return f"({code:02x}) r{dst} = {value}"
    return f"BUG_ld_{code:02x}"


def _jump(code: int, dst: int, src: int, off: int, imm: int, helper: HelperNamer) -> str:
    op = code & 0xf0
    if op == 0x80:
        if src == _PSEUDO_CALL:
            return f"({code:02x}) call pc{imm:+d}"
        return f"({code:02x}) call {helper(imm) or 'unknown'}#{imm}"
    if code == 0x05:
        return f"({code:02x}) goto pc{off:+d}"
    if code == 0x95:
        return f"({code:02x}) exit"
    right = f"r{src}" if code & 8 else f"{imm & 0xffffffff:#x}"
    return f"({code:02x}) if r{dst} {_JMP_OPS.get(op, '?')} {right} goto pc{off:+d}"


def spell(code: int, dst: int, src: int, off: int, imm: int, imm64: int | None,
          map_ids: dict[int, int], helper: HelperNamer) -> str:
    """One instruction as crash's ``bpf -t`` writes it, ``(code)`` first."""
    cls = code & 7
    if cls in (_ALU, _ALU64):
        return _alu(code, dst, src, imm)
    if cls in (_ST, _STX, _LDX):
        return _memory(code, dst, src, off, imm)
    if cls == _LD:
        return _load(code, dst, src, imm, imm64, map_ids)
    if cls == _JMP:
        return _jump(code, dst, src, off, imm, helper)
    return f"({code:02x}) {_CLASS[cls]}"


def decode_program(raw: bytes, map_ids: dict[int, int],
                   helper: HelperNamer = lambda _imm: None) -> list[BpfInstruction]:
    """Every instruction of ``raw`` (8 bytes each, little-endian); a 16-byte load takes
    two slots and the next index is skipped, as the kernel counts them."""
    out: list[BpfInstruction] = []
    index, count = 0, len(raw) // 8
    while index < count:
        chunk = raw[index * 8:index * 8 + 8]
        code, regs, off, imm = struct.unpack("<BBhi", chunk)
        dst, src = regs & 0xf, regs >> 4
        imm64 = None
        width = 1
        if code == _LD_IMM_DW and index + 1 < count:
            high = struct.unpack("<i", raw[index * 8 + 12:index * 8 + 16])[0]
            imm64 = ((high & 0xffffffff) << 32) | (imm & 0xffffffff)
            width = 2
        data = raw[index * 8:(index + width) * 8]
        out.append(BpfInstruction(index, code, dst, src, off, imm, imm64, data.hex(),
                                  spell(code, dst, src, off, imm, imm64, map_ids, helper)))
        index += width
    return out
