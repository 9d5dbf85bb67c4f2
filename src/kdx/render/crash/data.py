"""Values and types printed the way crash's embedded gdb prints them.

crash hands ``struct``, ``union``, ``p``, ``whatis`` and ``vm -m`` to gdb, so what users
know (and what their scripts grep) is gdb's pretty-printed form: two spaces of indent per
level, ``name = value,`` lines, anonymous unions as bare ``{``, pointers in hex followed by
``<symbol>`` when they point into the kernel image, ``char`` as ``65 'A'``, char arrays as
escaped strings. crash sets gdb to print at most 256 elements and never to fold repeats.
The model reads the values once into trees (kdx.model.values); this module only lays them
out by gdb's rules (valprint.c, c-valprint.c, cp-valprint.c as configured by crash 8.0.6),
and lays out type declarations like gdb's ``ptype`` with crash's ``-o`` offsets
(symbols.c). It reads no memory and looks up no symbol: everything is in the records.
"""

from __future__ import annotations

from kdx.model.values import (
    ELEMENT_LIMIT,
    CString,
    Declaration,
    Followed,
    MemberValue,
    ObjectView,
    PercpuSymbol,
    PrintedValue,
    StructView,
    TaskValues,
    TypeLayout,
    Value,
)
from kdx.render.crash.layout import task_header
from kdx.render.crash.rd import render_rd

_ESCAPES = {7: "\\a", 8: "\\b", 9: "\\t", 10: "\\n", 11: "\\v", 12: "\\f", 13: "\\r",
            27: "\\033"}
_COMPOUND = ("struct", "union", "class")

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




def _error(value: Value) -> str:
    if value.fault is None:
        return "<optimized out>"
    return f"<error: Cannot access memory at address {value.fault:#x}>"


def _c_string(string: CString) -> str:
    """A string a char pointer points to, or gdb's error text when unreadable."""
    if string.fault and not string.data:
        return f"<error: Cannot access memory at address {string.address:#x}>"
    return string_literal(string.data, truncated=not string.terminated and not string.fault)


class Formatter:
    """Lays out value trees as gdb does inside crash; ``radix`` is 10 or 16."""

    def __init__(self, radix: int = 10) -> None:
        self.radix = radix

    # -- scalars --------------------------------------------------------------------

    def integer(self, value: int, size: int) -> str:
        if self.radix == 16:
            return hex(value & ((1 << (8 * size)) - 1)) if value < 0 else hex(value)
        return str(value)

    @staticmethod
    def symbolic(value: Value) -> str:
        """`` <symbol+offset>`` for an address in the kernel image, else nothing."""
        sym = value.symbol
        if sym is None:
            return ""
        return f" <{sym.name}+{sym.offset}>" if sym.offset else f" <{sym.name}>"

    def scalar(self, value: Value) -> str:
        kind = value.kind
        number = value.value
        if kind in ("pointer", "char_pointer"):
            address = value.pointer or 0
            if not address:
                return "0x0"
            if value.string is not None:
                return f"{address:#x} " + _c_string(value.string)
            return f"{address:#x}" + self.symbolic(value)
        if kind == "bool":
            # gdb's hexadecimal output (crash's -x) prints a bool as a number
            if self.radix == 16:
                return hex(int(bool(number)))
            return "true" if number else "false"
        if kind == "enum":
            return _enum_text(value)
        if kind == "float":
            return repr(number)
        if value.word is not None:
            number = value.word
        assert isinstance(number, int)
        if kind == "char":
            # gdb under crash's -x (output-radix 16) prints a char as a bare number
            if self.radix == 16:
                return self.integer(number, 1)
            return f"{self.integer(number, 1)} {char_literal(number)}"
        return self.integer(number, value.size or 8)

    # -- compound values ------------------------------------------------------------

    def value(self, value: Value, recurse: int = 0) -> str:
        """``value`` as gdb prints it nested ``recurse`` levels deep."""
        if value.unreadable:
            return _error(value)
        if value.kind in _COMPOUND:
            return self.compound(value, recurse)
        if value.kind == "array":
            return self.array(value, recurse)
        if value.kind == "function":
            return f"{{{value.type}}} {value.address or 0:#x}" + self.symbolic(value)
        return self.scalar(value)

    def compound(self, value: Value, recurse: int) -> str:
        members = value.members
        if not members:
            return "{<No data fields>}"
        pad = " " * (2 + 2 * recurse)
        lines = []
        for i, member in enumerate(members):
            sep = "," if i < len(members) - 1 else ""
            label = f"{member.name} = " if member.name else ""
            lines.append(f"{pad}{label}{self.value(member, recurse + 1)}{sep}")
        return "{\n" + "\n".join(lines) + "\n" + " " * (2 * recurse) + "}"

    def array(self, value: Value, recurse: int) -> str:
        length = value.length
        if length is None or (length == 0 and value.address is not None):
            if value.address is None:
                return "{}"
            text = f"{value.address:#x}"
            if value.string is not None:
                text += " " + _c_string(value.string)
            return text
        if value.data is not None:
            truncated = length > ELEMENT_LIMIT
            data = value.data[:ELEMENT_LIMIT]
            if not truncated and data.endswith(b"\0"):
                data = data[:-1]
            return string_literal(data, truncated=truncated)
        items = [self.value(element, recurse + 1) for element in value.elements]
        tail = "..." if length > ELEMENT_LIMIT else ""
        return "{" + ", ".join(items) + tail + "}"

    # -- top level ------------------------------------------------------------------

    def print_value(self, value: Value) -> str:
        """What follows ``$N = `` in gdb's ``print``: pointers (other than strings) get
        their type in front, functions their signature."""
        if value.kind == "pointer":
            return f"({value.type}) " + self.value(value)
        return self.value(value)


def _enum_text(value: Value) -> str:
    enum = value.enum
    if enum is None or not enum.names and not enum.flags:
        return str(value.value)
    if not enum.flags:
        return enum.names[0]
    parts = list(enum.names) + ([f"unknown: {enum.unknown:#x}"] if enum.unknown else [])
    return "(" + " | ".join(parts) + ")"


def struct_text(value: Value, radix: int = 10) -> str:
    """crash's ``struct NAME ADDR``: ``struct NAME {`` then gdb's members."""
    return f"{value.type} " + Formatter(radix).value(value)


def member_text(member: MemberValue, radix: int = 10) -> str:
    """One ``struct NAME.member ADDR`` block: the member's line from the struct (a
    nested member labelled with its whole path, as crash does), with the comma that
    follows it there."""
    comma = "" if member.last else ","
    assert member.value is not None
    return f"  {member.path} = {Formatter(radix).value(member.value, 1)}{comma}"


def task_member_text(member: MemberValue, radix: int = 10) -> str:
    """``  name = value,`` as crash's ``task -R`` prints a member (nested lines
    indented), or why the task_struct has no such member."""
    if member.value is None:
        return f"task: {member.path}: not a task_struct member ({member.error})"
    text = Formatter(radix).value(member.value)
    body = "\n".join("  " + line for line in text.split("\n")).lstrip()
    return f"  {member.path} = {body},"


def task_values_text(record: TaskValues, radix: int = 10, separator: str = "\n\n") -> str:
    """The structures shown for one task (each as ``struct`` prints it, ``separator``
    between them) or its chosen members; no header."""
    if record.members:
        return "\n".join(task_member_text(m, radix) for m in record.members)
    return separator.join(struct_text(v, radix) for v in record.values)


def task_values_block(record: TaskValues, radix: int = 10, separator: str = "\n") -> str:
    """crash's task header (``vm -m``, ``vm -v``) above the task's structures, one line
    apart."""
    header = task_header(record.pid, record.task, record.cpu, record.command)
    body = task_values_text(record, radix, separator)
    return header + ("\n" + body if body else "")


def print_text(printed: PrintedValue, radix: int = 10) -> str:
    """``p``'s answer: ``[symbol = ]$N = value``; after a symbol gdb's opening brace of
    a one-line-led structure moves to a line of its own, as crash prints it."""
    body = Formatter(radix).print_value(printed.value)
    leader = f"{printed.symbol} = " if printed.symbol else ""
    first = body.split("\n")[0]
    if leader and "{" in first and not first.endswith("{"):
        before, after = body.split("{", 1)
        body = before + "\n {" + after
    return "\n".join(line.rstrip()
                     for line in f"{leader}${printed.history} = {body}".split("\n"))


def percpu_text(record: PercpuSymbol) -> str:
    """crash's answer for a per-CPU symbol: its type, then its address on every CPU."""
    lines = ["PER-CPU DATA TYPE:", f"  {record.declaration};", "PER-CPU ADDRESSES:"]
    lines.extend(f"  [{a.cpu}]: {a.address:x}" for a in record.addresses)
    return "\n".join(lines)


# -- types ------------------------------------------------------------------------------


def ptype_lines(layout: TypeLayout) -> list[str]:
    """gdb's ``ptype`` text of a type: the C declaration with gdb's four-space
    indentation."""
    return ["    " * line.depth + line.text for line in layout.lines]


def declaration(layout: TypeLayout) -> str:
    """crash's ``struct NAME`` / ``whatis NAME`` text of a type, without the SIZE line:
    structs and unions end with ``}``, typedefs with ``} name;`` or ``type name;``."""
    lines = ptype_lines(layout)
    if layout.typedef:
        lines[-1] += ";"
    return "\n".join(lines)


def offsets_view(layout: TypeLayout, base: int | None = None) -> str:
    """crash's ``struct -o``: every member line prefixed with ``[offset]`` (or with the
    member's address when ``base`` is given), right-aligned in a field sized by the
    width of the struct's size."""
    size = layout.size or 0
    width = len(str(size)) + 4
    out = []
    for line in layout.lines:
        text = "    " * line.depth + line.text
        if not line.depth:
            out.append(text)
            continue
        if line.offset is None:
            out.append(" " * (len(str(size)) + 1) + text)
            continue
        label = f"  [{base + line.offset:x}]" if base is not None else f"  [{line.offset}]"
        out.append(label.rjust(width) + text[3:])
    return "\n".join(out)


def member_lines(layout: TypeLayout, members: tuple[str, ...] | list[str],
                 base: int | None = None) -> str:
    """``struct NAME.member [-o ADDR]``: the members' declaration lines with their
    offsets (or addresses) inside the struct's braces."""
    view = offsets_view(layout, base).splitlines()
    body = view[1:-1]
    chosen = [line for member in members for line, decl in zip(body, layout.lines[1:-1])
              if decl.member == member]
    return "\n".join([view[0], *chosen, view[-1]])


def size_line(size: int, radix: int = 10) -> str:
    return f"SIZE: {size:#x}" if radix == 16 else f"SIZE: {size}"


def whatis_text(found: Declaration) -> str:
    """``whatis``: a symbol's declaration; an enumerator's enum and value; an enum's
    list; a struct, union or typedef with crash's SIZE line; a base type as its SIZE
    line alone (crash has gdb declare only structs, unions and typedefs)."""
    if found.kind == "symbol":
        return found.declaration + ";"
    if found.kind == "enumerator":
        return f"enum{' ' + found.tag if found.tag else ''} = {found.value}"
    if found.type_kind == "enum" and not found.typedef:
        head = f"enum {found.tag} {{" if found.tag else "enum {"
        body = [f"  {e.name} = {e.value}" for e in found.enumerators]
        return "\n".join([head, *body, "};"])
    size = size_line(found.size or 0)
    if found.layout is not None and (found.type_kind in ("struct", "union") or found.typedef):
        return declaration(found.layout) + "\n" + size
    return size


# -- struct / union ---------------------------------------------------------------------


def struct_view_text(view: StructView, radix: int = 10) -> str:
    """``struct``/``union`` text: the declaration, or the objects (per CPU under
    ``[cpu]: address`` lines), separated by blank lines as crash separates them."""
    if view.address is None:
        assert view.layout is not None
        if view.members:
            return member_lines(view.layout, view.members)
        text = offsets_view(view.layout) if view.offsets else declaration(view.layout)
        return text + "\n" + size_line(view.size, radix)
    if view.cpus:
        return "\n".join(f"[{c.cpu}]: {c.address:x}\n" + _objects_text(view, c.objects, radix)
                         for c in view.cpus)
    return _objects_text(view, view.objects, radix)


def _objects_text(view: StructView, objects: tuple[ObjectView, ...], radix: int) -> str:
    blocks = []
    for obj in objects:
        if obj.layout is not None:
            text = offsets_view(obj.layout, obj.address) if obj.member is None else \
                member_lines(obj.layout, [obj.member], obj.address)
            blocks.append(text + "\n" + size_line(view.size, radix))
        elif obj.raw is not None:
            blocks.append(render_rd(obj.raw))
        elif obj.value is not None:
            blocks.append(struct_deref_text(obj.value, radix) if _has_followed(obj.value)
                          else struct_text(obj.value, radix))
        else:
            blocks.append("\n".join(followed_text(m.value, m.path, radix)
                                    if m.value.followed is not None
                                    else member_text(m, radix) for m in obj.members))
    return "\n\n".join(blocks)


def _has_followed(value: Value) -> bool:
    return any(m.followed is not None for m in value.members)


# -- struct -p: pointers followed one level --------------------------------------------


def followed_text(value: Value, name: str, radix: int = 10) -> str:
    """crash's ``struct -p`` lines for one pointer member: its declaration and value,
    then ``  -> `` and what it points to (the target's symbol in brackets, a string, a
    structure printed as gdb's ``p *ptr`` with five more spaces of indent)."""
    f = value.followed
    assert f is not None
    target, sym = f.target, f.symbol
    tag = f"<{sym}> " if sym else ""
    if f.category == "function":
        what = f"<{sym}>" if sym else ("(unknown)" if target else "NULL")
        return f"  {f.declaration} = {target:#x}\n  -> {what}"
    head = f"  {f.type}{' ' if f.typedef else ''}{name} = {target:#x}\n  -> "
    if f.category == "char":
        if not target:
            return head + tag + "NULL"
        if not f.readable or f.string is None:
            return head + tag + "(not accessible)"
        return head + tag + '"' + f.string.decode("utf-8", "replace") + '"'
    if f.category == "void":
        if sym:
            return head + f"<{sym}>"
        return head + ("NULL" if not target else "(unknown target type)")
    if not target or not f.readable:
        return head + ("NULL" if not target else "(not accessible)")
    if f.category == "pointer":
        return head + tag + f"{f.pointer or 0:x}"
    return _followed_object(f, name, radix)


def _followed_object(f: Followed, name: str, radix: int) -> str:
    star = "" if f.typedef else "*"
    head = f"  {f.base} {star}{name} = {f.target:#x}\n  -> "
    if not f.complete or f.value is None:
        return head + f"({f.base}: no debuginfo data)"
    tag = f"<{f.symbol}> " if f.symbol else ""
    lines = Formatter(radix).print_value(f.value).split("\n")
    if (f.typedef or f.from_symbol) and "(" in lines[0] and ")" in lines[0]:
        return head + tag
    return head + "\n".join([tag + lines[0], *(_fgets_chunks(line) for line in lines[1:])])


def _fgets_chunks(line: str) -> str:
    """One line of gdb's output as crash relays it under ``-> ``: read in pieces of
    1499 characters (its fgets buffer), each piece behind five spaces."""
    text = line + "\n"
    pieces = ["     " + text[i:i + 1499] for i in range(0, len(text), 1499)]
    return "".join(pieces).rstrip("\n")


def struct_deref_text(value: Value, radix: int = 10) -> str:
    """crash's ``struct -p NAME ADDR``: the structure as gdb prints it, each top-level
    pointer member replaced by its ``-p`` lines (which carry no comma)."""
    formatter = Formatter(radix)
    members = value.members
    lines = [f"{value.type} {{"]
    for i, member in enumerate(members):
        sep = "," if i < len(members) - 1 else ""
        if member.name and member.followed is not None:
            lines.append(followed_text(member, member.name, radix))
            continue
        label = f"{member.name} = " if member.name else ""
        lines.append(f"  {label}{formatter.value(member, 1)}{sep}")
    lines.append("}")
    return "\n".join(lines)


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


