"""Unwind one frame by reading the function's own code, where no table describes it.

The kernel's ORC tables leave some functions out (objtool skips code it cannot follow:
``__crash_kexec`` on Debian's 6.1, for one), and drgn stops there. With a vmlinux,
DWARF's call-frame information covers them; without one, the code itself still says how
much the function pushed on the stack before the call: ``push`` instructions and a ``sub
$N,%rsp``. That is enough for the ordinary compiled function, which is all that sits
between ``machine_kexec`` and ``crash_kexec``. Frames with a realigned or variable stack
are refused, and every result must land on a return address (code right after a call).

Example::

    >>> prologue_step(prog, start=0xffffffff81164640, ip=0xffffffff811646b7,
    ...               sp=0xffffc90000a3bb10, bp=0xffffc90000a3bc40)
    (0xffffffff81dcd06e, 0xffffc90000a3bbd0, 0xffffc90000a3bc40)
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import drgn

from kdx.model.reading import READ_ERRORS

if TYPE_CHECKING:
    import capstone

__all__ = ["prologue_step", "stack_depth"]

#: Functions longer than this before the call site are not analysed (a guess gets worse).
_MAX_BYTES = 4096


def stack_depth(code: bytes, start: int, ip: int) -> tuple[int, int | None] | None:
    """Bytes the function at ``start`` has pushed below its return address by ``ip``,
    and how deep it saved its caller's ``%rbp`` (None if it did not), following the code
    in address order; None when the code moves the stack pointer in a way that cannot be
    followed (realignment, ``leave``, ``mov`` into ``%rsp``)."""
    import capstone  # on first use: most stacks never need it, and it costs start-up time

    md = capstone.Cs(capstone.CS_ARCH_X86, capstone.CS_MODE_64)
    md.syntax = capstone.CS_OPT_SYNTAX_ATT
    depth = peak = 0
    saved_bp: int | None = None
    for insn in md.disasm(code, start):
        if insn.address >= ip:
            return depth, saved_bp
        change = _rsp_change(insn)
        if change is None:
            return None
        depth += change
        peak = max(peak, depth)
        if saved_bp is None and insn.mnemonic in ("push", "pushq") and insn.op_str == "%rbp":
            saved_bp = depth
        if insn.mnemonic in ("ret", "jmp"):
            # Code after an exit path (an epilogue's pops, then ret or a tail jump) is
            # reached by a jump from the body, where the stack was as deep as the body
            # keeps it: compiled x86-64 code keeps one depth between prologue and exits.
            depth = peak
    return None


def _rsp_change(insn: capstone.CsInsn) -> int | None:
    """How far one instruction moves %rsp down (negative: up); None: cannot follow."""
    name, ops = insn.mnemonic, insn.op_str
    if name in ("subq", "addq", "pushq", "popq", "cmpq", "testq"):
        name = name[:-1]  # AT&T's operand-size suffix
    if name == "push":
        return 8
    if name == "pop":
        return -8
    if name in ("pushfq", "pushf"):
        return 8
    if name in ("popfq", "popf"):
        return -8
    if "%rsp" not in ops.split(",")[-1] or not ops.endswith("%rsp"):
        return 0 if name != "leave" else None
    if name in ("sub", "add") and ops.startswith("$"):
        value = int(ops[1:].split(",")[0], 0)
        return value if name == "sub" else -value
    if name in ("cmp", "test"):
        return 0
    return None  # and, mov, lea into %rsp: a realigned or variable frame


def prologue_step(prog: drgn.Program, start: int, ip: int, sp: int, bp: int | None
                  ) -> tuple[int, int, int | None] | None:
    """The caller's return address, stack pointer and frame pointer for a frame at ``ip``
    (inside the function starting at ``start``) with stack pointer ``sp`` and frame
    pointer ``bp``; None when the code does not allow it."""
    if not start <= ip < start + _MAX_BYTES:
        return None
    try:
        code = prog.read(start, ip - start + 16)
    except READ_ERRORS:
        return None
    layout = stack_depth(code, start, ip)
    if layout is None or layout[0] < 0:
        return None
    depth, saved_bp = layout
    try:
        ret = int.from_bytes(prog.read(sp + depth, 8), "little")
        if saved_bp is not None:
            bp = int.from_bytes(prog.read(sp + depth - saved_bp, 8), "little")
    except READ_ERRORS:
        return None
    return ret, sp + depth + 8, bp
