"""Values and types printed the way crash's embedded gdb prints them.

crash hands ``struct``, ``union``, ``p``, ``whatis`` and ``vm -m`` to gdb, so what users
know (and what their scripts grep) is gdb's pretty-printed form: two spaces of indent per
level, ``name = value,`` lines, anonymous unions as bare ``{``, pointers in hex followed by
``<symbol>`` when they point into the kernel image, ``char`` as ``65 'A'``, char arrays as
escaped strings. crash sets gdb to print at most 256 elements and never to fold repeats.
drgn reads the values and knows the types; this module only lays them out by gdb's rules
(valprint.c, c-valprint.c, cp-valprint.c as configured by crash 8.0.6), and lays out type
declarations like gdb's ``ptype`` with crash's ``-o`` offsets (symbols.c).
"""

from __future__ import annotations

from typing import Callable

import drgn

#: crash sets gdb's "print elements" to 256.
PRINT_MAX = 256

_CHAR_KINDS = {drgn.PrimitiveType.C_CHAR, drgn.PrimitiveType.C_SIGNED_CHAR,
               drgn.PrimitiveType.C_UNSIGNED_CHAR}
_ESCAPES = {7: "\\a", 8: "\\b", 9: "\\t", 10: "\\n", 11: "\\v", 12: "\\f", 13: "\\r",
            27: "\\033"}
_COMPOUND = (drgn.TypeKind.STRUCT, drgn.TypeKind.UNION, drgn.TypeKind.CLASS)
_READ_ERRORS = (drgn.FaultError, drgn.ObjectAbsentError)


def is_char_type(type_: drgn.Type) -> bool:
    """True for char, signed char, unsigned char and their typedefs (u8, __s8...), which
    gdb prints as characters."""
    t = type_.unaliased()
    return t.kind == drgn.TypeKind.INT and t.primitive in _CHAR_KINDS


def _char_escape(byte: int, quote: str) -> str:
    if byte in _ESCAPES:
        return _ESCAPES[byte]
    if chr(byte) in (quote, "\\"):
        return "\\" + chr(byte)
    if 32 <= byte < 127:
        return chr(byte)
    return f"\\{byte:03o}"


def char_literal(value: int) -> str:
    """gdb's ``'c'`` for one byte (its low eight bits)."""
    return "'" + _char_escape(value & 0xFF, "'") + "'"


def string_literal(data: bytes, *, truncated: bool = False) -> str:
    """gdb's quoted string for ``data``: escapes for control characters and bytes above
    127 in octal, ``...`` after a string cut at the element limit."""
    body = "".join(_char_escape(b, '"') for b in data)
    return f'"{body}"' + ("..." if truncated else "")


class Formatter:
    """Formats drgn objects as gdb does inside crash; ``radix`` is 10 or 16."""

    def __init__(self, prog: drgn.Program, radix: int = 10) -> None:
        self.prog = prog
        self.radix = radix
        self._image = _kernel_image(prog)

    # -- scalars --------------------------------------------------------------------

    def integer(self, value: int, size: int) -> str:
        if self.radix == 16:
            return hex(value & ((1 << (8 * size)) - 1)) if value < 0 else hex(value)
        return str(value)

    def symbolic(self, address: int) -> str:
        """`` <symbol+offset>`` for an address in the kernel image, else nothing."""
        if not address or not self._image[0] <= address < self._image[1]:
            return ""
        try:
            sym = self.prog.symbol(address)
        except LookupError:
            return ""
        offset = address - sym.address
        return f" <{sym.name}+{offset}>" if offset else f" <{sym.name}>"

    def pointer(self, obj: drgn.Object) -> str:
        address = obj.value_()
        if not address:
            return "0x0"
        text = f"{address:#x}"
        target = obj.type_.unaliased().type
        if is_char_type(target):
            return text + " " + self.c_string(address)
        return text + self.symbolic(address)

    def c_string(self, address: int) -> str:
        """The string a char pointer points to, or gdb's error text when unreadable."""
        data = bytearray()
        try:
            while len(data) < PRINT_MAX:
                chunk = self.prog.read(address + len(data), 1)
                if chunk == b"\0":
                    return string_literal(bytes(data))
                data += chunk
        except drgn.FaultError:
            if not data:
                return f"<error: Cannot access memory at address {address:#x}>"
            return string_literal(bytes(data))
        return string_literal(bytes(data), truncated=True)

    def enum(self, obj: drgn.Object) -> str:
        type_ = obj.type_.unaliased()
        value = obj.value_()
        enumerators = type_.enumerators or ()
        for name, number in enumerators:
            if number == value:
                return name
        values = [number for _, number in enumerators]
        if value > 0 and values and all(v >= 0 and bin(v).count("1") <= 1 for v in values):
            parts, rest = [], value
            for name, number in enumerators:
                if number and rest & number:
                    parts.append(name)
                    rest &= ~number
            if rest:
                parts.append(f"unknown: {rest:#x}")
            return "(" + " | ".join(parts) + ")"
        return str(value)

    def scalar(self, obj: drgn.Object) -> str:
        type_ = obj.type_.unaliased()
        kind = type_.kind
        if kind == drgn.TypeKind.POINTER:
            return self.pointer(obj)
        if kind == drgn.TypeKind.BOOL:
            # gdb's hexadecimal output (crash's -x) prints a bool as a number
            if self.radix == 16:
                return hex(int(obj.value_()))
            return "true" if obj.value_() else "false"
        if kind == drgn.TypeKind.ENUM:
            return self.enum(obj)
        if kind == drgn.TypeKind.FLOAT:
            return repr(obj.value_())
        value = obj.value_()
        if is_char_type(type_):
            # gdb under crash's -x (output-radix 16) prints a char as a bare number
            if self.radix == 16:
                return self.integer(value, 1)
            return f"{self.integer(value, 1)} {char_literal(value)}"
        return self.integer(value, type_.size or 8)

    # -- compound values ------------------------------------------------------------

    def value(self, obj: drgn.Object, recurse: int = 0) -> str:
        """``obj`` as gdb prints it nested ``recurse`` levels deep."""
        kind = obj.type_.unaliased_kind()
        try:
            if kind in _COMPOUND:
                return self.compound(obj, recurse)
            if kind == drgn.TypeKind.ARRAY:
                return self.array(obj, recurse)
            if kind == drgn.TypeKind.FUNCTION:
                return f"{{{obj.type_.type_name()}}} {obj.address_:#x}" + \
                    self.symbolic(obj.address_ or 0)
            return self.scalar(obj)
        except _READ_ERRORS as err:
            address = getattr(err, "address", None)
            if address is None:
                return "<optimized out>"
            return f"<error: Cannot access memory at address {address:#x}>"

    def compound(self, obj: drgn.Object, recurse: int) -> str:
        members = obj.type_.unaliased().members or ()
        if not members:
            return "{<No data fields>}"
        pad = " " * (2 + 2 * recurse)
        lines = []
        for i, member in enumerate(members):
            sep = "," if i < len(members) - 1 else ""
            try:
                field = obj.member_(member.name) if member.name else _anonymous(obj, member)
                text = self.value(field, recurse + 1)
            except _READ_ERRORS as err:
                text = self._error(err)
            label = f"{member.name} = " if member.name else ""
            lines.append(f"{pad}{label}{text}{sep}")
        return "{\n" + "\n".join(lines) + "\n" + " " * (2 * recurse) + "}"

    def array(self, obj: drgn.Object, recurse: int) -> str:
        type_ = obj.type_.unaliased()
        length = type_.length
        if length is None or (length == 0 and obj.address_ is not None):
            if obj.address_ is None:
                return "{}"
            text = f"{obj.address_:#x}"
            if is_char_type(type_.type):
                text += " " + self.c_string(obj.address_)
            return text
        if is_char_type(type_.type):
            data = obj.to_bytes_()
            truncated = len(data) > PRINT_MAX
            data = data[:PRINT_MAX]
            if not truncated and data.endswith(b"\0"):
                data = data[:-1]
            return string_literal(data, truncated=truncated)
        shown = min(length, PRINT_MAX)
        items = [self.value(obj[i], recurse + 1) for i in range(shown)]
        tail = "..." if length > PRINT_MAX else ""
        return "{" + ", ".join(items) + tail + "}"

    def _error(self, err: Exception) -> str:
        address = getattr(err, "address", None)
        if address is None:
            return "<optimized out>"
        return f"<error: Cannot access memory at address {address:#x}>"

    # -- top level ------------------------------------------------------------------

    def print_value(self, obj: drgn.Object) -> str:
        """What follows ``$N = `` in gdb's ``print``: pointers (other than strings) get
        their type in front, functions their signature."""
        kind = obj.type_.unaliased_kind()
        if kind == drgn.TypeKind.POINTER and not is_char_type(obj.type_.unaliased().type):
            return f"({obj.type_.type_name()}) " + self.value(obj)
        return self.value(obj)


def _anonymous(obj: drgn.Object, member: drgn.TypeMember) -> drgn.Object:
    """The unnamed struct or union member of ``obj``, which drgn has no name for: taken
    at its offset, in memory or from the value's bytes."""
    if obj.address_ is not None:
        return drgn.Object(obj.prog_, member.type, address=obj.address_ + member.offset)
    return drgn.Object.from_bytes_(obj.prog_, member.type, obj.to_bytes_(),
                                   bit_offset=member.bit_offset)


def _kernel_image(prog: drgn.Program) -> tuple[int, int]:
    """Where gdb would find symbols: the vmlinux image from _text to _end."""
    try:
        return prog.symbol("_text").address, prog.symbol("_end").address
    except LookupError:
        return 0, 0


def struct_text(obj: drgn.Object, formatter: Formatter) -> str:
    """crash's ``struct NAME ADDR``: ``struct NAME {`` then gdb's members."""
    return f"{obj.type_.type_name()} " + formatter.value(obj)


# -- types ------------------------------------------------------------------------------


def ptype_lines(type_: drgn.Type) -> list[str]:
    """gdb's ``ptype`` text of a type: drgn's C declaration with gdb's four-space
    indentation."""
    lines = []
    for line in str(type_).split("\n"):
        stripped = line.lstrip("\t")
        lines.append("    " * (len(line) - len(stripped)) + stripped)
    return lines


def declaration(type_: drgn.Type) -> str:
    """crash's ``struct NAME`` / ``whatis NAME`` text of a type, without the SIZE line:
    structs and unions end with ``}``, typedefs with ``} name;`` or ``type name;``."""
    lines = ptype_lines(type_)
    if type_.kind == drgn.TypeKind.TYPEDEF:
        lines[-1] += ";"
    return "\n".join(lines)


def member_name(line: str) -> str | None:
    """The member a ptype line declares, by crash's rule (show_member_offset): the word
    before ``:`` for bit fields, the name inside ``(*...)`` for function pointers, else
    the last word when it ends the declaration."""
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
    except (LookupError, ValueError):
        return None


def offsets_view(type_: drgn.Type, base: int | None = None) -> str:
    """crash's ``struct -o``: every member line prefixed with ``[offset]`` (or with the
    member's address when ``base`` is given), right-aligned in a field sized by the
    width of the struct's size."""
    compound = type_.unaliased()
    size = compound.size or 0
    width = len(str(size)) + 4
    out = []
    for line in ptype_lines(compound):
        if not line[:1].isspace():
            out.append(line)
            continue
        name = member_name(line)
        offset = _member_offset(compound, name) if name else None
        if offset is None:
            out.append(" " * (len(str(size)) + 1) + line)
            continue
        label = f"  [{base + offset:x}]" if base is not None else f"  [{offset}]"
        out.append(label.rjust(width) + line[3:])
    return "\n".join(out)


# -- numbers ----------------------------------------------------------------------------

_KB, _MB, _GB = 1 << 10, 1 << 20, 1 << 30


def eval_text(value: int, bits: bool = False) -> str:
    """crash's ``eval`` block for a 64-bit value: hex (with a KB/MB/GB hint when the value
    is a whole number of them), decimal (signed too when negative), octal, binary."""
    value &= (1 << 64) - 1
    hint = ""
    if value >= _KB:
        for unit, name in ((_GB, "GB"), (_MB, "MB"), (_KB, "KB")):
            if value % unit == 0:
                hint = f"({value // unit}{name})"
                break
    signed = value - (1 << 64) if value >> 63 else value
    lines = [
        f"hexadecimal: {value:x}  {hint}".rstrip(),
        f"    decimal: {value}  " + (f"({signed})" if signed < 0 else ""),
        f"      octal: {value:o}",
        f"     binary: {value:064b}",
    ]
    if bits:
        lines.extend(_bits_set(value))
    return "\n".join(line.rstrip() for line in lines)


def _bits_set(value: int) -> list[str]:
    """``eval -b``: the numbers of the bits set, wrapped as crash wraps them."""
    head = "   bits set: "
    lines, current = [], head
    for bit in range(63, -1, -1):
        if value >> bit & 1:
            current += f"{bit} "
            if len(current) >= 77:
                lines.append(current)
                current = " " * len(head)
    lines.append(current)
    return lines


_CONTROL_NAMES = ["NUL", "SOH", "STX", "ETX", "EOT", "ENQ", "ACK", "BEL", "BS", "HT", "LF",
                  "VT", "FF", "CR", "SO", "SI", "DLE", "DC1", "DC2", "DC3", "DC4", "NAK",
                  "SYN", "ETB", "CAN", "EM", "SUB", "ESC", "FS", "GS", "RS", "US"]


def ascii_text(value: int, wide: bool = False) -> str:
    """crash's ``ascii NUMBER``: the number zero-padded to 16 hex digits, then its eight
    bytes from the lowest as characters, with <NAME> for control bytes and <xx> above
    127."""
    value &= (1 << 64) - 1
    out = []
    for i in range(8):
        byte = value >> (8 * i) & 0xFF
        if 0x20 <= byte < 0x7F:
            out.append(chr(byte))
        elif byte > 0x7F:
            out.append(f"<{byte:02x}>")
        elif byte == 0x7F:
            out.append("<DEL>")
        else:
            out.append(f"<{_CONTROL_NAMES[byte]}>")
    return f"{value:016x}: " + "".join(out)


def ascii_chart() -> str:
    """``ascii`` without arguments: the 7-bit chart, eight columns by high nibble and
    sixteen rows by low nibble; control codes by name, right-aligned in four columns."""
    lines = ["", "      0    1" + "".join(f"{c:>4}" for c in range(2, 8)),
             "    +" + "-" * 31]
    for row in range(16):
        cells = []
        for column in range(8):
            code = column * 16 + row
            if code < 32:
                cells.append(f"{_CONTROL_NAMES[code]:>4}")
            elif code == 32:
                cells.append("  SP")
            elif code == 127:
                cells.append(" DEL")
            else:
                cells.append(f"  {chr(code)} ")
        lines.append(f"  {row:X} |" + "".join(cells).rstrip())
    return "\n".join(lines) + "\n"


# -- struct -p: pointers followed one level --------------------------------------------


def _exact_symbol(prog: drgn.Program, address: int) -> str | None:
    """The symbol that starts exactly at ``address`` (crash's value_symbol)."""
    if not address:
        return None
    try:
        sym = prog.symbol(address)
    except LookupError:
        return None
    return sym.name if sym.address == address else None


def _symbol_value(prog: drgn.Program, name: str) -> drgn.Object | None:
    """The object of a symbol crash would print instead of the raw target (data of an
    array, struct, union, integer or pointer type), else None."""
    try:
        obj = prog.object(name)
    except (KeyError, LookupError, ValueError):
        return None
    if obj.type_.unaliased_kind() in (drgn.TypeKind.ARRAY, drgn.TypeKind.STRUCT,
                                      drgn.TypeKind.UNION, drgn.TypeKind.INT,
                                      drgn.TypeKind.POINTER):
        return obj
    return None


def _readable(prog: drgn.Program, address: int) -> bool:
    try:
        prog.read(address, 8)
        return True
    except (drgn.FaultError, ValueError, OverflowError):
        return False


def _raw_string(prog: drgn.Program, address: int) -> str | None:
    """The C string at ``address`` as crash's read_string returns it (no escaping)."""
    data = bytearray()
    try:
        while len(data) < 1535:
            byte = prog.read(address + len(data), 1)
            if byte == b"\0":
                break
            data += byte
    except drgn.FaultError:
        if not data:
            return None
    return data.decode("utf-8", "replace")


def pointer_deref_text(formatter: Formatter, field: drgn.Object, name: str,
                       next_history: Callable[[], int]) -> str | None:
    """crash's ``struct -p`` lines for one pointer member: its declaration and value,
    then ``  -> `` and what it points to (the target's symbol in brackets, a string, a
    structure printed as gdb's ``p *ptr`` with five more spaces of indent), or None when
    the member is not a pointer. ``next_history`` is called for each value gdb would
    print (they take $N numbers)."""
    prog = formatter.prog
    type_ = field.type_
    pointer = type_.unaliased()
    if pointer.kind != drgn.TypeKind.POINTER:
        return None
    typedef = type_.kind == drgn.TypeKind.TYPEDEF
    target = field.value_()
    target_type = pointer.type
    target_kind = target_type.unaliased_kind()
    sym = _exact_symbol(prog, target)
    if target_kind == drgn.TypeKind.FUNCTION and not typedef:
        what = f"<{sym}>" if sym else ("(unknown)" if target else "NULL")
        return f"  {type_.variable_declaration(name)} = {target:#x}\n  -> {what}"
    typeptr = type_.type_name()
    ptrptr = target_kind == drgn.TypeKind.POINTER and not typedef
    charptr = not typedef and not ptrptr and "char *" in typeptr
    voidptr = not typedef and not ptrptr and "void *" in typeptr
    symbol_obj = _symbol_value(prog, sym) if sym else None
    head = f"  {typeptr}{' ' if typedef else ''}{name} = {target:#x}\n  -> "
    if charptr:
        tag = f"<{sym}> " if sym else ""
        if not target:
            return head + tag + "NULL"
        text = _raw_string(prog, target) if _readable(prog, target) else None
        return head + tag + (f'"{text}"' if text is not None else "(not accessible)")
    if voidptr and symbol_obj is None:
        if sym:
            return head + f"<{sym}>"
        return head + ("NULL" if not target else "(unknown target type)")
    if not target or not _readable(prog, target):
        return head + ("NULL" if not target else "(not accessible)")
    if ptrptr:
        tag = f"<{sym}> " if sym else ""
        value = int.from_bytes(prog.read(target, 8), "little")
        return head + tag + f"{value:x}"
    base = type_.type_name() if typedef else target_type.type_name()
    star = "" if typedef else "*"
    head = f"  {base} {star}{name} = {target:#x}\n  -> "
    if symbol_obj is None and not target_type.is_complete():
        return head + f"({base}: no debuginfo data)"
    obj = symbol_obj if symbol_obj is not None else drgn.Object(prog, target_type,
                                                                 address=target)
    next_history()
    lines = formatter.print_value(obj).split("\n")
    first = (f"<{sym}> " if sym else "") + lines[0]
    if (typedef or symbol_obj is not None) and "(" in lines[0] and ")" in lines[0]:
        return head + (f"<{sym}> " if sym else "")
    return head + "\n".join([first, *(_fgets_chunks(line) for line in lines[1:])])


def _fgets_chunks(line: str) -> str:
    """One line of gdb's output as crash relays it under ``-> ``: read in pieces of
    1499 characters (its fgets buffer), each piece behind five spaces."""
    text = line + "\n"
    pieces = ["     " + text[i:i + 1499] for i in range(0, len(text), 1499)]
    return "".join(pieces).rstrip("\n")


def struct_deref_text(obj: drgn.Object, formatter: Formatter,
                      next_history: Callable[[], int]) -> str:
    """crash's ``struct -p NAME ADDR``: the structure as gdb prints it, each top-level
    pointer member replaced by its ``-p`` lines (which carry no comma)."""
    members = obj.type_.unaliased().members or ()
    lines = [f"{obj.type_.type_name()} {{"]
    for i, member in enumerate(members):
        sep = "," if i < len(members) - 1 else ""
        try:
            field = obj.member_(member.name) if member.name else _anonymous(obj, member)
            followed = None
            if member.name and field.type_.unaliased_kind() == drgn.TypeKind.POINTER:
                followed = pointer_deref_text(formatter, field, member.name, next_history)
            if followed is not None:
                lines.append(followed)
                continue
            text = formatter.value(field, 1)
        except _READ_ERRORS as err:
            text = formatter._error(err)
        label = f"{member.name} = " if member.name else ""
        lines.append(f"  {label}{text}{sep}")
    lines.append("}")
    return "\n".join(lines)
