"""Values read from the dump as one tree: what ``struct``, ``union``, ``p`` and their
kin show, read once, so that renderers never touch the dump.

A :class:`Value` holds one object as its type describes it: the scalar (integers, chars,
bools, floats, enums with the enumerator names their value matches), the pointer with the
symbol it points at or, for a ``char *``, the string it points to; the members of a
structure or union (anonymous ones unnamed); the elements of an array, or a char array's
bytes. A part that cannot be read is marked ``unreadable`` with the address that failed
(or none, for a value the debug info says is optimized out) instead of stopping the read:
one excluded page must not hide the rest of a structure.

Like gdb under crash, the tree stops at :data:`ELEMENT_LIMIT` elements of an array and
bytes of a string (``length`` keeps the full count), and names only addresses inside the
kernel image (gdb knows vmlinux, not modules). Addresses are named by the one address
namer, through :meth:`ValueReader.name`.

Example::

    >>> reader = ValueReader(prog)
    >>> value = reader.read(prog["init_task"])
    >>> next(m for m in value.members if m.name == "pid").value
    0
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any, Callable

import drgn

from kdx.model.expr import has_member, member_object
from kdx.model.names import AddressNamer, address_namer
from kdx.model.rawmemory import MemoryDisplay
from kdx.model.records import Hex
from kdx.model.tasks import TaskInfo

__all__ = [
    "ELEMENT_LIMIT",
    "CString",
    "CpuAddress",
    "CpuInfoValue",
    "CpuObjects",
    "Declaration",
    "EnumValue",
    "Enumerator",
    "Followed",
    "LayoutLine",
    "MemberValue",
    "ObjectView",
    "PercpuSymbol",
    "PrintedValue",
    "StructView",
    "SymbolName",
    "TaskValues",
    "TypeLayout",
    "Value",
    "ValueReader",
    "is_char_type",
    "session_reader",
    "task_values",
    "type_layout",
]

#: crash sets gdb's "print elements" to 256: array elements and string bytes shown.
ELEMENT_LIMIT = 256

#: crash's read_string() buffer for ``struct -p``'s strings.
FOLLOWED_STRING_LIMIT = 1535

_PAGE = 4096
_CHAR_KINDS = {drgn.PrimitiveType.C_CHAR, drgn.PrimitiveType.C_SIGNED_CHAR,
               drgn.PrimitiveType.C_UNSIGNED_CHAR}
_COMPOUND = {drgn.TypeKind.STRUCT: "struct", drgn.TypeKind.UNION: "union",
             drgn.TypeKind.CLASS: "class"}
_READ_ERRORS = (drgn.FaultError, drgn.ObjectAbsentError)


def is_char_type(type_: drgn.Type) -> bool:
    """True for char, signed char, unsigned char and their typedefs (u8, __s8...), which
    gdb prints as characters."""
    t = type_.unaliased()
    return t.kind == drgn.TypeKind.INT and t.primitive in _CHAR_KINDS


# -- records ----------------------------------------------------------------------------


@dataclass(frozen=True)
class SymbolName:
    """The symbol an address falls in: ``name+offset`` (offset 0 at its first byte)."""

    name: str
    offset: int


@dataclass(frozen=True)
class EnumValue:
    """An enum's value by name: the enumerator equal to it, or (``flags``) the bit-flag
    enumerators it combines, with the bits none of them names in ``unknown``; no names
    when neither applies."""

    names: tuple[str, ...]
    flags: bool = False
    unknown: int = 0


@dataclass(frozen=True)
class CString:
    """The bytes of a C string, without its NUL: ``terminated`` when the NUL was found
    within the limit, ``fault`` when memory ended first (no bytes at all: unreadable)."""

    address: Hex
    data: bytes
    terminated: bool
    fault: bool = False


@dataclass(frozen=True)
class Followed:
    """A pointer followed one level, as ``struct -p`` shows it: where it points
    (``target``), what kind of thing that is (``category``: function, char, void,
    pointer or object), the symbol starting there, and what was read there: a string,
    a pointer's value, or the object (a symbol's own object when the target is a
    symbol's data)."""

    name: str
    type: str
    typedef: bool
    target: Hex
    category: str
    declaration: str = ""
    symbol: str | None = None
    readable: bool = False
    string: bytes | None = None
    pointer: Hex | None = None
    base: str = ""
    complete: bool = True
    value: Value | None = None
    from_symbol: bool = False


@dataclass(frozen=True)
class Value:
    """One object of the dump as its type describes it.

    ``kind`` says which fields apply: ``int``, ``char``, ``bool``, ``float`` and
    ``enum`` (``value``; ``enum`` the enumerator names; a 64-bit integer in ``word``
    instead, which JSON writes in hexadecimal, as it does addresses, so that no reader
    rounds it), ``pointer`` (``pointer`` the
    address; ``symbol`` what it points at), ``char_pointer`` (``pointer``; ``string``
    what it points to), ``function`` (``address``, ``symbol``), ``struct``/``union``/``class``
    (``members``), ``array`` (``elements`` or, for chars, ``data``; ``length`` the full
    count, None when the type has none). ``unreadable`` marks a value that could not be
    read; ``fault`` is the address that failed (None: optimized out)."""

    kind: str
    type: str
    name: str | None = None
    address: Hex | None = None
    size: int = 0
    value: int | float | bool | None = None
    word: Hex | None = None
    pointer: Hex | None = None
    symbol: SymbolName | None = None
    enum: EnumValue | None = None
    string: CString | None = None
    data: bytes | None = None
    length: int | None = None
    members: tuple[Value, ...] = ()
    elements: tuple[Value, ...] = ()
    bit_size: int | None = None
    unreadable: bool = False
    fault: Hex | None = None
    followed: Followed | None = None


@dataclass(frozen=True)
class MemberValue:
    """One member chosen by path (``struct NAME.se.on_rq ADDR``): its value, and whether
    it is the last member of the structure holding it (gdb puts no comma after it); no
    value, and the reason in ``error``, for a path the structure does not have (where
    ``task -R`` goes on with the next one)."""

    path: str
    value: Value | None
    last: bool = False
    error: str | None = None


@dataclass(frozen=True)
class LayoutLine:
    """One line of a type's C declaration (drgn's spelling, ``depth`` levels in), the
    member it declares by crash's rule, and that member's byte offset."""

    depth: int
    text: str
    member: str | None = None
    offset: int | None = None


@dataclass(frozen=True)
class TypeLayout:
    """A type's declaration line by line, for ``struct NAME`` and ``ptype``."""

    type: str
    kind: str
    typedef: bool
    size: int | None
    lines: tuple[LayoutLine, ...]


@dataclass(frozen=True)
class Enumerator:
    name: str
    value: int


@dataclass(frozen=True)
class Declaration:
    """What ``whatis`` found for a word: a ``symbol`` (its C declaration), an
    ``enumerator`` (its enum's tag and its value) or a ``type`` (its layout, its
    enumerators for an enum, its size)."""

    name: str
    kind: str
    type: str
    type_kind: str
    typedef: bool = False
    size: int | None = None
    declaration: str = ""
    tag: str | None = None
    value: int | None = None
    layout: TypeLayout | None = None
    enumerators: tuple[Enumerator, ...] = ()


@dataclass(frozen=True)
class TaskValues:
    """Structures shown for one task (its mm_struct, its VMAs, its task_struct and
    thread_info) or chosen members of its task_struct."""

    pid: int
    task: Hex
    cpu: int | None
    command: str
    values: tuple[Value, ...] = ()
    members: tuple[MemberValue, ...] = ()


@dataclass(frozen=True)
class CpuInfoValue:
    """One CPU's cpuinfo_x86 (``mach -c``); no value for an offline CPU."""

    cpu: int
    address: Hex | None
    value: Value | None


# -- reading ----------------------------------------------------------------------------


class ValueReader:
    """Builds :class:`Value` trees from drgn objects of one program, naming addresses
    through one namer (built once: its index covers every kernel symbol)."""

    def __init__(self, prog: drgn.Program, namer: AddressNamer | None = None) -> None:
        self.prog = prog
        self._namer = namer
        self._image: tuple[int, int] | None = None

    # -- names -------------------------------------------------------------------------

    def name(self, address: int) -> SymbolName | None:
        """The symbol ``address`` falls in, by the one address namer; None outside the
        kernel image, where gdb has no symbols."""
        if not address or not self._in_image(address):
            return None
        if self._namer is None:
            self._namer = address_namer(self.prog)
        found = self._namer.locate(address)
        return None if found is None else SymbolName(found.name, found.offset)

    def exact_symbol(self, address: int) -> str | None:
        """The symbol that starts exactly at ``address`` (crash's value_symbol)."""
        if not address:
            return None
        if self._namer is None:
            self._namer = address_namer(self.prog)
        found = self._namer.locate(address)
        return found.name if found is not None and not found.offset else None

    def _in_image(self, address: int) -> bool:
        if self._image is None:
            try:
                self._image = (self.prog.symbol("_text").address,
                               self.prog.symbol("_end").address)
            except LookupError:
                self._image = (0, 0)
        return self._image[0] <= address < self._image[1]

    # -- trees -------------------------------------------------------------------------

    def read(self, obj: drgn.Object, name: str | None = None) -> Value:
        """``obj`` as a tree; unreadable parts are marked, never raised."""
        try:
            return self._value(obj, name)
        except _READ_ERRORS as err:
            return _unreadable(obj.type_, name, err)

    def member(self, obj: drgn.Object, path: str) -> MemberValue:
        """The member at ``path`` of ``obj`` (an :class:`~kdx.model.expr.ExpressionError`
        when there is none)."""
        value, parent = member_object(obj, path)
        names = [m.name for m in parent.type_.unaliased().members or ()]
        last = path.split(".")[-1]
        return MemberValue(path, self.read(value, path), bool(names) and names[-1] == last)

    def followed(self, obj: drgn.Object) -> Value:
        """``obj`` for ``struct -p``: its top-level named pointer members followed."""
        value = self.read(obj)
        if value.unreadable or not value.members:
            return value
        members = obj.type_.unaliased().members or ()
        out = []
        for member, read in zip(members, value.members):
            if member.name and not read.unreadable and \
                    member.type.unaliased_kind() == drgn.TypeKind.POINTER:
                read = self.follow_member(obj.member_(member.name), member.name, read)
            out.append(read)
        return dataclasses.replace(value, members=tuple(out))

    def follow_member(self, field: drgn.Object, name: str, read: Value | None = None) \
            -> Value:
        """``field`` with its pointer followed (when it is one), or marked unreadable."""
        read = read if read is not None else self.read(field, name)
        if field.type_.unaliased_kind() != drgn.TypeKind.POINTER or read.unreadable:
            return read
        try:
            return dataclasses.replace(read, followed=self._follow(field, name))
        except _READ_ERRORS as err:
            return _unreadable(field.type_, name, err)

    def c_string(self, address: int, limit: int = ELEMENT_LIMIT) -> CString:
        """The C string at ``address``, at most ``limit`` bytes, read a page at a time
        (memory is present or absent by pages)."""
        data = bytearray()
        while len(data) < limit:
            at = address + len(data)
            want = min(limit - len(data), _PAGE - at % _PAGE)
            try:
                chunk = self.prog.read(at, want)
            except (drgn.FaultError, ValueError, OverflowError):
                return CString(address, bytes(data), False, True)
            end = chunk.find(b"\0")
            if end >= 0:
                return CString(address, bytes(data + chunk[:end]), True)
            data += chunk
        return CString(address, bytes(data), False)

    def _value(self, obj: drgn.Object, name: str | None) -> Value:
        type_ = obj.type_.unaliased()
        kind = type_.kind
        common = {"type": obj.type_.type_name(), "name": name, "address": obj.address_,
                  "size": _size(obj.type_), "bit_size": obj.bit_field_size_}
        if kind in _COMPOUND:
            return Value(_COMPOUND[kind], members=self._members(obj), **common)
        if kind == drgn.TypeKind.ARRAY:
            return self._array(obj, type_, common)
        if kind == drgn.TypeKind.FUNCTION:
            return Value("function", symbol=self.name(obj.address_ or 0), **common)
        if kind == drgn.TypeKind.POINTER:
            address = obj.value_()
            if is_char_type(type_.type):
                string = self.c_string(address) if address else None
                return Value("char_pointer", pointer=address, string=string, **common)
            return Value("pointer", pointer=address, symbol=self.name(address), **common)
        if kind == drgn.TypeKind.ENUM:
            number = obj.value_()
            return Value("enum", value=number, enum=_enum(type_, number), **common)
        if kind == drgn.TypeKind.BOOL:
            return Value("bool", value=bool(obj.value_()), **common)
        if kind == drgn.TypeKind.FLOAT:
            return Value("float", value=obj.value_(), **common)
        if is_char_type(type_):
            return Value("char", value=obj.value_(), **common)
        if common["size"] == 8:  # a 64-bit word: JSON must not round it (see Value)
            return Value("int", word=obj.value_(), **common)
        return Value("int", value=obj.value_(), **common)

    def _members(self, obj: drgn.Object) -> tuple[Value, ...]:
        out = []
        for member in obj.type_.unaliased().members or ():
            try:
                field = obj.member_(member.name) if member.name else _anonymous(obj, member)
            except _READ_ERRORS as err:
                out.append(_unreadable(member.type, member.name, err))
                continue
            out.append(self.read(field, member.name))
        return tuple(out)

    def _array(self, obj: drgn.Object, type_: drgn.Type, common: dict) -> Value:
        length = type_.length
        char = is_char_type(type_.type)
        if length is None or (length == 0 and obj.address_ is not None):
            string = self.c_string(obj.address_) if char and obj.address_ else None
            return Value("array", length=length, string=string, **common)
        if char:
            shown = min(length, ELEMENT_LIMIT + 1)
            data = self.prog.read(obj.address_, shown) if obj.address_ is not None \
                else obj.to_bytes_()[:shown]
            return Value("array", length=length, data=data, **common)
        elements = tuple(self.read(obj[i]) for i in range(min(length, ELEMENT_LIMIT)))
        return Value("array", length=length, elements=elements, **common)

    # -- struct -p -------------------------------------------------------------------

    def _follow(self, field: drgn.Object, name: str) -> Followed:
        """What ``struct -p`` shows under one pointer member, by crash's rules: a
        function's symbol, a string, a void pointer's symbol, a pointer's value, or the
        object pointed to (the symbol's own object when one starts there)."""
        type_ = field.type_
        pointer = type_.unaliased()
        typedef = type_.kind == drgn.TypeKind.TYPEDEF
        target = field.value_()
        target_type = pointer.type
        target_kind = target_type.unaliased_kind()
        sym = self.exact_symbol(target)
        typeptr = type_.type_name()
        base = {"name": name, "type": typeptr, "typedef": typedef, "target": target,
                "symbol": sym}
        if target_kind == drgn.TypeKind.FUNCTION and not typedef:
            return Followed(category="function", declaration=type_.variable_declaration(name),
                            **base)
        ptrptr = target_kind == drgn.TypeKind.POINTER and not typedef
        if not typedef and not ptrptr and "char *" in typeptr:
            readable = bool(target) and self._readable(target)
            string = None
            if readable:
                found = self.c_string(target, FOLLOWED_STRING_LIMIT)
                string = found.data if found.data or not found.fault else None
            return Followed(category="char", readable=readable, string=string, **base)
        symbol_obj = self._symbol_object(sym) if sym else None
        if not typedef and not ptrptr and "void *" in typeptr and symbol_obj is None:
            return Followed(category="void", **base)
        readable = bool(target) and self._readable(target)
        if ptrptr:
            value = int.from_bytes(self.prog.read(target, 8), "little") if readable else None
            return Followed(category="pointer", readable=readable, pointer=value, **base)
        spelled = type_.type_name() if typedef else target_type.type_name()
        complete = symbol_obj is not None or target_type.is_complete()
        if not readable or not complete:
            return Followed(category="object", readable=readable, base=spelled,
                            complete=complete, **base)
        obj = symbol_obj if symbol_obj is not None else \
            drgn.Object(self.prog, target_type, address=target)
        return Followed(category="object", readable=True, base=spelled, complete=True,
                        value=self.read(obj), from_symbol=symbol_obj is not None, **base)

    def _readable(self, address: int) -> bool:
        try:
            self.prog.read(address, 8)
            return True
        except (drgn.FaultError, ValueError, OverflowError):
            return False

    def _symbol_object(self, name: str) -> drgn.Object | None:
        """The object of a symbol crash would print instead of the raw target (data of
        an array, struct, union, integer or pointer type), else None."""
        try:
            obj = self.prog.object(name)
        except (KeyError, LookupError, ValueError):
            return None
        if obj.type_.unaliased_kind() in (drgn.TypeKind.ARRAY, drgn.TypeKind.STRUCT,
                                          drgn.TypeKind.UNION, drgn.TypeKind.INT,
                                          drgn.TypeKind.POINTER):
            return obj
        return None


def _size(type_: drgn.Type) -> int:
    try:
        return drgn.sizeof(type_)
    except TypeError:
        return 0


def _unreadable(type_: drgn.Type, name: str | None, err: Exception) -> Value:
    unaliased = type_.unaliased()
    kind = _COMPOUND.get(unaliased.kind, unaliased.kind.name.lower())
    if kind == "pointer" and is_char_type(unaliased.type):
        kind = "char_pointer"
    elif kind == "int" and is_char_type(unaliased):
        kind = "char"
    return Value(kind, type_.type_name(), name=name, size=_size(type_), unreadable=True,
                 fault=getattr(err, "address", None))


def _enum(type_: drgn.Type, value: int) -> EnumValue:
    """The enumerator equal to ``value``; or, when every enumerator is a single bit (or
    zero), the ones ``value`` combines, as gdb decodes flag enums."""
    enumerators = type_.enumerators or ()
    for name, number in enumerators:
        if number == value:
            return EnumValue((name,))
    values = [number for _, number in enumerators]
    if value > 0 and values and all(v >= 0 and bin(v).count("1") <= 1 for v in values):
        parts, rest = [], value
        for name, number in enumerators:
            if number and rest & number:
                parts.append(name)
                rest &= ~number
        return EnumValue(tuple(parts), True, rest)
    return EnumValue(())


def _anonymous(obj: drgn.Object, member: drgn.TypeMember) -> drgn.Object:
    """The unnamed struct or union member of ``obj``, which drgn has no name for: taken
    at its offset, in memory or from the value's bytes."""
    if obj.address_ is not None:
        return drgn.Object(obj.prog_, member.type, address=obj.address_ + member.offset)
    return drgn.Object.from_bytes_(obj.prog_, member.type, obj.to_bytes_(),
                                   bit_offset=member.bit_offset)


# -- types ------------------------------------------------------------------------------


def type_layout(type_: drgn.Type) -> TypeLayout:
    """``type_``'s C declaration (drgn's, one line per member) with each line's member
    and offset, for ``struct NAME``, ``struct -o`` and ``whatis``."""
    compound = type_.unaliased()
    lines = []
    for line in str(type_).split("\n"):
        text = line.lstrip("\t")
        member = member_name(text)
        offset = _member_offset(compound, member) if member and line != text else None
        lines.append(LayoutLine(len(line) - len(text), text, member, offset))
    try:
        size: int | None = drgn.sizeof(type_)
    except TypeError:
        size = None
    return TypeLayout(type_.type_name(), compound.kind.name.lower(),
                      type_.kind == drgn.TypeKind.TYPEDEF, size, tuple(lines))


def member_name(line: str) -> str | None:
    """The member a declaration line declares, by crash's rule (show_member_offset):
    the word before ``:`` for bit fields, the name inside ``(*...)`` for function
    pointers, else the last word when it ends the declaration."""
    words = line.split()
    if not words:
        return None
    target = None
    if ":" in line:
        for i, word in enumerate(words):
            if i and word == ":":
                target = words[i - 1]
                break
    elif "(*" in line:
        for word in words:
            for prefix in ("(*", "*(*", "**(*"):
                if word.startswith(prefix):
                    target = word[len(prefix):].split(")")[0]
                    break
            if target:
                break
    if target is None:
        target = words[-1] if ";" in words[-1] else None
    if target is None:
        return None
    for ch in "*[];()":
        target = target.replace(ch, " ")
    target = target.strip().split(" ")[0] if target.strip() else ""
    return target or None


def _member_offset(type_: drgn.Type, name: str) -> int | None:
    try:
        return type_.member(name).bit_offset // 8
    except (LookupError, ValueError, TypeError):
        return None


# -- command records --------------------------------------------------------------------


@dataclass(frozen=True)
class PrintedValue:
    """What ``p`` printed: the expression, gdb's value-history number, the symbol crash
    names first (``jiffies = $1 = ...``; None after ``p/FMT`` or for an expression), and
    the value."""

    expression: str
    history: int
    symbol: str | None
    value: Value


@dataclass(frozen=True)
class CpuAddress:
    cpu: int
    address: Hex


@dataclass(frozen=True)
class PercpuSymbol:
    """``p`` of a per-CPU symbol: its declaration and its address on every CPU."""

    symbol: str
    type: str
    declaration: str
    addresses: tuple[CpuAddress, ...]


@dataclass(frozen=True)
class ObjectView:
    """One object of ``struct``/``union`` at ``address``, in the form asked for: its
    value (pointers followed for ``-p``), chosen members, its raw bytes (``-r``), or
    its members' addresses (``-o``: the type's layout, ``member`` alone when one was
    named)."""

    address: Hex
    value: Value | None = None
    members: tuple[MemberValue, ...] = ()
    raw: MemoryDisplay | None = None
    layout: TypeLayout | None = None
    member: str | None = None


@dataclass(frozen=True)
class CpuObjects:
    """The objects of one CPU's copy of a per-CPU variable (``ADDR:cpuspec``)."""

    cpu: int
    address: Hex
    objects: tuple[ObjectView, ...]


@dataclass(frozen=True)
class StructView:
    """What ``struct``/``union`` showed: without an address the type's layout (only
    ``members`` when named; ``offsets`` for ``-o``), else ``count`` objects from
    ``address``, or each chosen CPU's copies."""

    kind: str
    type: str
    size: int
    address: Hex | None = None
    count: int = 1
    offsets: bool = False
    layout: TypeLayout | None = None
    members: tuple[str, ...] = ()
    objects: tuple[ObjectView, ...] = ()
    cpus: tuple[CpuObjects, ...] = ()


def session_reader(prog: drgn.Program,
                   cached: Callable[[str, Callable[[], Any]], Any]) -> ValueReader:
    """The reader a session shares among its commands, naming addresses with the same
    namer as ``rd`` and ``dis`` (``cached`` is the session's cache)."""
    return cached("value-reader", lambda: ValueReader(prog, address_namer(prog)))


def task_values(reader: ValueReader, task: TaskInfo, members: list[str] | None = None,
                thread_info: bool = False) -> TaskValues:
    """A task's task_struct as a value tree (and its thread_info after it, as crash's
    ``foreach task`` shows it, when asked and the kernel has one inside), or the members
    ``task -R`` names: designators such as ``se.on_rq`` or ``comm[0]``; one the
    task_struct does not have is kept with the reason, and the others still shown."""
    obj = drgn.Object(reader.prog, "struct task_struct *", task.task)[0]
    if not members:
        values = [reader.read(obj)]
        if thread_info and has_member(obj.type_, "thread_info"):
            values.append(reader.read(obj.thread_info))
        return TaskValues(task.pid, task.task, task.cpu, task.comm, values=tuple(values))
    chosen = []
    for designator in members:
        try:
            value = obj.subobject_(designator)
        except (LookupError, ValueError) as err:
            chosen.append(MemberValue(designator, None, error=str(err)))
            continue
        chosen.append(MemberValue(designator, reader.read(value, designator)))
    return TaskValues(task.pid, task.task, task.cpu, task.comm, members=tuple(chosen))
