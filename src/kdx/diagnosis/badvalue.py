"""The value that killed the kernel: what the faulting access read or wrote, through
which pointer, what that pointer's value means, and where it points.

An oops says *where* the CPU stopped; the engineer's next question is *why the pointer
was bad*. The answer is usually in plain sight once three facts are joined: the faulting
instruction's memory operand (base register + offset), the pointer's value (a poison
pattern the kernel wrote on purpose, NULL, a user address...), and the C expression the
compiler made of it (the frame's variables from DWARF, and the struct member at that
offset). This module joins them into one :class:`~kdx.diagnosis.verdict.Explanation`.

Example (the lab's ``gpf`` dump)::

    >>> explain_access(prog, task, pc, registers).text  # doctest: +SKIP
    'reads `next->value` (offset 0x10 of struct crashlab_entry) through a pointer that
     is LIST_POISON1 (0xdead000000000100), loaded from `entry->list.next`: ...'
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Iterator

import capstone
import drgn

from kdx.diagnosis.code import disassembler
from kdx.diagnosis.verdict import Explanation, PointsTo
from kdx.model.memory.slabtrack import SlabTrack, slab_tracks

__all__ = ["classify_value", "explain_access", "member_at", "points_to"]

_MASK = (1 << 64) - 1
_POISON_DELTA = 0xDEAD000000000000  # x86-64's CONFIG_ILLEGAL_POINTER_VALUE
_NEAR_NULL = 0x10000  # offsets from NULL up to this are "NULL + member"

#: include/linux/poison.h pointers, relative to POISON_POINTER_DELTA.
_POISON_POINTERS = {
    0x100: ("list-poison1", "LIST_POISON1",
            "list_del() leaves it in a removed entry's next pointer, so the entry was "
            "used after it left its list"),
    0x122: ("list-poison2", "LIST_POISON2",
            "list_del() leaves it in a removed entry's prev pointer, so the entry was "
            "used after it left its list"),
    0x300: ("timer-entry-static", "TIMER_ENTRY_STATIC",
            "a statically initialised timer that was never set up"),
}

#: Byte patterns the slab allocator and page allocator fill memory with (poison.h).
_POISON_BYTES = {
    0x6B: ("slab-free-poison", "slab poison POISON_FREE (0x6b bytes)",
           "slub_debug fills freed objects with it: the pointer was read from a freed "
           "object (a use-after-free)"),
    0x5A: ("slab-uninit-poison", "slab poison POISON_INUSE (0x5a bytes)",
           "the pointer was read from slab memory that was never initialised"),
    0xCC: ("slab-red-zone", "a slab red zone (0xcc bytes, SLUB_RED_ACTIVE)",
           "the pointer was read past the end of a slab object, from its red zone"),
    0xBB: ("slab-red-zone-inactive", "a freed object's red zone (0xbb bytes, "
           "SLUB_RED_INACTIVE)", "the pointer was read next to a freed slab object"),
    0xAA: ("page-poison", "page poison (0xaa bytes, PAGE_POISON)",
           "the pointer was read from a freed page"),
}


@dataclass(frozen=True)
class _Operand:
    """The faulting instruction's memory operand."""

    access: str  # "read", "write", "update" (both) or "access"
    register: str | None  # the base register (None: an absolute address)
    pointer: int  # the base register's value (or the absolute address)
    offset: int  # displacement (plus any scaled index) from ``pointer``
    address: int


def classify_value(value: int, five_level: bool = False) -> tuple[str | None, str, str]:
    """(kind, name, meaning) of a pointer value; kind is None for an ordinary kernel
    address.

    >>> classify_value(0xdead000000000100)[0]
    'list-poison1'
    >>> classify_value(0x6b6b6b6b6b6b6b6b)[0]
    'slab-free-poison'
    """
    value &= _MASK
    if value == 0:
        return "null", "NULL", "a pointer that was never set, or a failed lookup"
    if value < _NEAR_NULL:
        return ("near-null", f"NULL + {value:#x}",
                "a member address computed from a NULL struct pointer")
    if value - _POISON_DELTA in _POISON_POINTERS:
        return _POISON_POINTERS[value - _POISON_DELTA]
    byte = value & 0xFF
    if byte in _POISON_BYTES and value == int.from_bytes(bytes([byte]) * 8, "little"):
        return _POISON_BYTES[byte]
    if value >> 48 == 0xDEAD:
        return ("poison-pointer", f"a poison pointer (POISON_POINTER_DELTA + "
                f"{value - _POISON_DELTA:#x})", "the kernel writes such values into "
                "pointers it retires, so the object was used after it was torn down")
    bits = 56 if five_level else 47
    top = value >> bits
    if top not in (0, (1 << (64 - bits)) - 1):
        return ("non-canonical", "a non-canonical address",
                "no CPU can map it: the pointer was corrupted (overwritten memory, a "
                "use-after-free, or a stray bit flip)")
    if top == 0:
        return ("user-address", "a user-space address",
                "kernel code followed a pointer into user space (a user pointer used "
                "without copy_from_user, or one stored in a kernel structure)")
    return None, "a kernel address", ""


def _operand(prog: drgn.Program, pc: int, registers: dict[str, int]) -> _Operand | None:
    try:
        code = prog.read(pc, 16)
    except drgn.FaultError:
        return None
    ins = next(disassembler().disasm(code, pc), None)
    if ins is None:
        return None
    for op in ins.operands:
        if op.type != capstone.x86.X86_OP_MEM:
            continue
        found = _memory_operand(ins, op, registers)
        if found is not None:
            return found
    return None


def _memory_operand(ins: capstone.CsInsn, op: capstone.x86.X86Op,
                    registers: dict[str, int]) -> _Operand | None:
    offset = op.mem.disp
    if op.mem.index:
        value = registers.get(ins.reg_name(op.mem.index))
        if value is None:
            return None
        offset += value * op.mem.scale
    register = ins.reg_name(op.mem.base) if op.mem.base else None
    if register == "rip":
        return None  # a global variable: its address is the symbol's, never bad
    if register is None:
        pointer, offset = offset & _MASK, 0
    elif register in registers:
        pointer = registers[register]
    else:
        return None
    writes = bool(op.access & capstone.CS_AC_WRITE)
    reads = bool(op.access & capstone.CS_AC_READ)
    access = "update" if writes and reads else "write" if writes else "read" if reads \
        else "access"
    return _Operand(access, register, pointer, offset, (pointer + offset) & _MASK)


def _loader(prog: drgn.Program, start: int, pc: int, register: str,
            registers: dict[str, int]) -> tuple[int, int] | None:
    """(holder address, offset) when the instruction that last set ``register`` before
    ``pc`` loaded it from ``offset(holder_register)`` and the holder register still
    holds its value at ``pc``: that is where the bad pointer was read from."""
    if not 0 < pc - start <= 4096:
        return None
    try:
        code = prog.read(start, pc - start)
    except drgn.FaultError:
        return None
    md = disassembler()
    last = None
    written_after: set[str] = set()
    for ins in md.disasm(code, start):
        written = {ins.reg_name(r) for r in ins.regs_access()[1]}
        written_after |= written
        if _full(register) in {_full(w) for w in written}:
            last, written_after = ins, set()
    if last is None or last.mnemonic not in ("mov", "movq"):
        return None
    source = next((op for op in last.operands if op.type == capstone.x86.X86_OP_MEM), None)
    if source is None or not source.mem.base or source.mem.index:
        return None
    holder = last.reg_name(source.mem.base)
    if holder == "rip" or _full(holder) in {_full(w) for w in written_after} \
            or holder not in registers:
        return None
    return registers[holder], source.mem.disp


def _full(register: str) -> str:
    """The 64-bit register a sub-register name belongs to (``eax`` -> ``rax``)."""
    names = {"eax": "rax", "ebx": "rbx", "ecx": "rcx", "edx": "rdx", "esi": "rsi",
             "edi": "rdi", "ebp": "rbp", "esp": "rsp"}
    if register in names:
        return names[register]
    if register.startswith("r") and register[-1] in "dwb" and register[1:-1].isdigit():
        return register[:-1]
    return register


def member_at(type_: drgn.Type, offset: int) -> str | None:
    """The member path (``list.next``) of a struct or union that covers byte
    ``offset``, or None.

    >>> member_at(prog.type("struct list_head"), 8)  # doctest: +SKIP
    'prev'
    """
    type_ = _underlying(type_)
    if type_.kind not in (drgn.TypeKind.STRUCT, drgn.TypeKind.UNION):
        return None
    for member in type_.members or ():
        start = (member.bit_offset or 0) // 8
        try:
            size = drgn.sizeof(member.type)
        except (TypeError, ValueError):
            size = 0
        if not start <= offset < start + max(size, 1):
            continue
        inner = member_at(member.type, offset - start)
        if member.name is None:  # an anonymous struct or union: its members are ours
            if inner:
                return inner
            continue
        return f"{member.name}.{inner}" if inner else member.name
    return None


def _underlying(type_: drgn.Type) -> drgn.Type:
    while type_.kind == drgn.TypeKind.TYPEDEF:
        type_ = type_.type
    return type_


def _pointee(type_: drgn.Type) -> drgn.Type | None:
    type_ = _underlying(type_)
    return _underlying(type_.type) if type_.kind == drgn.TypeKind.POINTER else None


def _type_name(type_: drgn.Type) -> str:
    try:
        return type_.type_name()
    except (TypeError, ValueError):
        return "?"


def _locals(frames: list[drgn.StackFrame]) -> Iterator[tuple[str, drgn.Object]]:
    """The pointer-typed variables visible at the faulting pc, innermost scope first."""
    seen: set[str] = set()
    for frame in frames:
        try:
            names = frame.locals()
        except (ValueError, LookupError):
            continue
        for name in names:
            if name in seen:
                continue
            seen.add(name)
            try:
                obj = frame[name]
            except (KeyError, LookupError, ValueError):
                continue
            if obj.absent_ or _pointee(obj.type_) is None:
                continue
            yield name, obj


def _value(obj: drgn.Object) -> int | None:
    try:
        return obj.value_() & _MASK
    except (drgn.FaultError, drgn.ObjectAbsentError, ValueError, TypeError):
        return None


def _pointer_members(obj: drgn.Object, path: str, depth: int
                     ) -> Iterator[tuple[str, drgn.Object]]:
    """(``path.member``, value) of the pointer members of the struct ``obj``, nested
    structs included down to ``depth`` levels."""
    type_ = _underlying(obj.type_)
    if type_.kind not in (drgn.TypeKind.STRUCT, drgn.TypeKind.UNION) or depth < 0:
        return
    for member in type_.members or ():
        if member.name is None:
            continue
        try:
            child = obj.member_(member.name)
        except (LookupError, ValueError, drgn.FaultError):
            continue
        kind = _underlying(child.type_).kind
        name = f"{path}.{member.name}" if path else member.name
        if kind == drgn.TypeKind.POINTER:
            yield name, child
        elif kind in (drgn.TypeKind.STRUCT, drgn.TypeKind.UNION):
            yield from _pointer_members(child, name, depth - 1)


def _loaded_from(variables: list[tuple[str, drgn.Object]], value: int
                 ) -> tuple[str, drgn.Object, int] | None:
    """(``holder->member``, the member's object, the holder's address) for the first
    struct a variable points to whose pointer member holds ``value``."""
    for name, obj in variables:
        pointee = _pointee(obj.type_)
        holder = _value(obj)
        if pointee is None or holder is None or holder < _NEAR_NULL:
            continue
        if pointee.kind not in (drgn.TypeKind.STRUCT, drgn.TypeKind.UNION):
            continue
        try:
            target = obj[0].read_()
        except (drgn.FaultError, ValueError, TypeError, LookupError):
            continue
        for path, member in _pointer_members(target, "", 2):
            if _value(member) == value:
                return f"{name}->{path}", member, holder
    return None


def _expression(base: str, pointee: drgn.Type | None, offset: int) -> tuple[str, str | None,
                                                                             str | None]:
    """(C expression, member, struct name) for ``offset`` bytes into ``*base``."""
    if pointee is None:
        return (f"*{base}" if offset == 0 else f"{base} + {offset:#x}"), None, None
    member = member_at(pointee, offset)
    if member:
        return f"{base}->{member}", member, _type_name(pointee)
    if offset == 0:
        return f"*{base}", None, _type_name(pointee)
    try:
        size = drgn.sizeof(pointee)
    except (TypeError, ValueError):
        size = 0
    if size and offset % size == 0 and pointee.kind not in (drgn.TypeKind.STRUCT,
                                                             drgn.TypeKind.UNION):
        return f"{base}[{offset // size}]", None, None
    return f"{base} + {offset:#x}", None, _type_name(pointee)


def _drgn_frames(prog: drgn.Program, task: drgn.Object, pc: int) -> list[drgn.StackFrame]:
    """drgn's frames (inline scopes included) at the interrupted ``pc``: only they carry
    the DWARF variables."""
    try:
        trace = prog.stack_trace(task)
    except (ValueError, LookupError, drgn.FaultError):
        return []
    return [f for f in trace if f.pc == pc and f.interrupted]


def _where(prog: drgn.Program, address: int) -> tuple[str, list[SlabTrack]] | None:
    """What ``address`` is, from the same lookup ``kmem ADDR`` uses; for a slab object
    SLUB tracks (slub_debug=U), also who allocated and who freed it."""
    from kdx.model.memory.pages import identify

    try:
        report = identify(prog, address)
    except (drgn.FaultError, LookupError, ValueError, TypeError, OverflowError):
        return None
    if report.slab is not None:
        slab = report.slab
        state = "allocated" if slab.allocated else "free"
        inside = address - int(slab.object)
        return (f"{slab.cache.name} object {int(slab.object):#x}"
                + (f" (+{inside:#x})" if inside else "") + f", {state}",
                _tracks(prog, int(slab.object)))
    if report.context is not None:
        task = report.context.task
        return f"the stack or task_struct of {task.comm} (PID {task.pid})", []
    if report.symbol is not None:
        return (f"{report.symbol.name}" + (f" [{report.symbol.module}]"
                                           if getattr(report.symbol, "module", None) else ""),
                [])
    if report.vmap is not None:
        return f"vmalloc area {int(report.vmap.start):#x}-{int(report.vmap.end):#x}", []
    if report.page is None:
        return "no page: the address is not mapped in the dump", []
    return None


def points_to(prog: drgn.Program, address: int, role: str) -> PointsTo | None:
    """What ``address`` is (``kmem ADDR``'s answer, with SLUB's tracks), as a record."""
    where = _where(prog, address)
    return PointsTo(address, role, None, *where) if where else None


def _tracks(prog: drgn.Program, obj: int) -> list[SlabTrack]:
    """SLUB's alloc and free tracks of the slab object at ``obj`` (empty without them)."""
    from drgn.helpers.linux.slab import slab_object_info

    from kdx.model.system import jiffies_now, kernel_hz

    try:
        info = slab_object_info(prog, obj)
        if info is None or not info.slab_cache:
            return []
        return slab_tracks(prog, info.slab_cache, obj, jiffies_now(prog), kernel_hz(prog))
    except (drgn.FaultError, LookupError, ValueError, TypeError, OverflowError):
        return []


def _holder_member(variables: list[tuple[str, drgn.Object]], holder: int, offset: int
                   ) -> tuple[str, drgn.Object, int] | None:
    """(``var->member``, the member, holder) for a variable pointing at ``holder`` whose
    type has a pointer member at ``offset``."""
    for name, obj in variables:
        pointee = _pointee(obj.type_)
        if pointee is None or _value(obj) != holder:
            continue
        path = member_at(pointee, offset)
        if not path:
            continue
        try:
            member = _member_path(obj[0], path)
        except (LookupError, ValueError, drgn.FaultError):
            continue
        if _pointee(member.type_) is not None:
            return f"{name}->{path}", member, holder
    return None


def _member_path(obj: drgn.Object, path: str) -> drgn.Object:
    for part in path.split("."):
        obj = obj.member_(part)
    return obj


def explain_access(prog: drgn.Program, task: drgn.Object | None, pc: int,
                   registers: dict[str, int], five_level: bool = False,
                   start: int | None = None) -> Explanation | None:
    """The explanation of the memory access at ``pc`` (in a function starting at
    ``start``) with the saved ``registers``; None when the instruction accesses no
    memory through a register or an absolute address."""
    operand = _operand(prog, pc, registers)
    if operand is None:
        return None
    kind, name, meaning = classify_value(operand.pointer, five_level)
    if kind is None:  # the pointer is a kernel address: the access itself may be the news
        kind, name, meaning = classify_value(operand.address, five_level)
    variables = list(_locals(_drgn_frames(prog, task, pc))) if task is not None else []
    direct = next(((n, o) for n, o in variables if _value(o) == operand.pointer), None)
    loaded = None
    source = (_loader(prog, start, pc, operand.register, registers)
              if start is not None and operand.register else None)
    if source is not None:
        loaded = _holder_member(variables, *source)
    if loaded is None and operand.pointer >= _NEAR_NULL:  # NULL is in too many members
        loaded = _loaded_from(variables, operand.pointer)
    expression = member = struct = None
    if direct is not None:
        expression, member, struct = _expression(direct[0], _pointee(direct[1].type_),
                                                 operand.offset)
    elif loaded is not None:
        expression, member, struct = _expression(loaded[0], _pointee(loaded[1].type_),
                                                 operand.offset)
    points = _points_to(prog, operand, loaded, kind)
    text = _sentence(operand, kind, name, meaning, expression, member, struct,
                     loaded[0] if loaded else None, points)
    return Explanation(
        access=operand.access, address=operand.address, register=operand.register,
        pointer=operand.pointer, offset=operand.offset, value_kind=kind, value_name=name,
        value_meaning=meaning, expression=expression, member=member, struct=struct,
        loaded_from=loaded[0] if loaded else None, points_to=points, text=text)


def _points_to(prog: drgn.Program, operand: _Operand,
               loaded: tuple[str, drgn.Object, int] | None, kind: str | None
               ) -> list[PointsTo]:
    out = []
    if loaded is not None:
        where = _where(prog, loaded[2])
        if where:
            out.append(PointsTo(loaded[2], "the object the pointer was read from",
                                loaded[0].split("->", 1)[0], *where))
    if kind in (None, "user-address") and operand.address >= _NEAR_NULL:
        where = _where(prog, operand.address)
        if where:
            out.append(PointsTo(operand.address, "the address accessed", None, *where))
    return out


def _sentence(operand: _Operand, kind: str | None, name: str, meaning: str,
              expression: str | None, member: str | None, struct: str | None,
              loaded_from: str | None, points: list[PointsTo]) -> str:
    verb = {"read": "reads", "write": "writes", "update": "updates",
            "access": "accesses"}[operand.access]
    if expression:
        text = f"{verb} `{expression}`"
        if member and struct:
            text += f" (offset {operand.offset:#x} of {struct})"
    else:
        base = operand.register.upper() if operand.register else "an absolute address"
        text = f"{verb} {operand.address:#x} ({base}"
        text += f" + {operand.offset:#x})" if operand.offset else ")"
    if kind is not None:
        value = "" if kind in ("null", "near-null") else f" ({operand.pointer:#x})"
        text += f" through a pointer that is {name}{value}"
        if loaded_from and not (expression or "").startswith(loaded_from):
            text += f", loaded from `{loaded_from}`"
        elif loaded_from and kind in ("null", "near-null"):
            text += f": `{loaded_from}` is {name}"
        text += f": {meaning}" if meaning else ""
    for point in points:
        if point.variable:
            text += f"; `{point.variable}` points to {point.what}"
        else:
            text += f"; {point.address:#x} is {point.what}"
        if point.tracks:
            text += "".join(f"; {t.text}" for t in point.tracks)
    return text
