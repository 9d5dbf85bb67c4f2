"""gdb's ``bt`` and ``disassemble`` under crash, answered from kdx's model.

crash users type ``gdb bt`` to see arguments and source lines the way gdb prints them
(``#2  0x... in do_init_module (mod=0x...) at kernel/module/main.c:2478``) and ``gdb
disassemble FUNC`` for gdb's ``<+N>`` listing. crash's gdb starts the trace at the
exception's registers and cannot name module code (``#0 ... in ?? ()``); kdx names it.

>>> frames = gdb_backtrace(prog, task, start=None)   # doctest: +SKIP
>>> frames[0].function                                 # doctest: +SKIP
'hello_init'
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass, field

import drgn

from kdx.model.disasm import MAX_INSN, Instruction, disassemble, function_range
from kdx.model.gdbview import GdbError
from kdx.model.names import AddressNamer, address_namer
from kdx.model.reading import READ_ERRORS
from kdx.model.records import Hex

__all__ = ["GdbDisassembly", "GdbFrame", "gdb_backtrace", "gdb_disassembly", "parse_range",
           "quote"]

#: The most frames one ``gdb bt`` walks (gdb's own traces of a kernel stack are short).
MAX_FRAMES = 64

#: Where x86-64 kernel addresses begin: a frame below it is user space.
KERNEL_START = 0xFFFF800000000000

#: gdb's ``print elements`` default: the most characters of a string it shows.
STRING_LIMIT = 200


@dataclass
class GdbFrame:
    """One line of gdb's ``bt``: arguments as gdb prints them, locals for ``bt full``."""

    level: int
    pc: Hex
    function: str | None
    inline: bool
    arguments: list[tuple[str, str]] = field(default_factory=list)
    file: str | None = None
    line: int | None = None
    local_values: list[tuple[str, str]] = field(default_factory=list)
    debug_info: bool = True


@dataclass
class GdbDisassembly:
    """gdb's ``disassemble``: a whole function (``<+N>`` offsets) or a range."""

    function: str | None  # set for "for function X", None for "from A to B"
    start: Hex
    end: Hex
    instructions: list[Instruction]
    raw: bool  # /r: the encoding beside each instruction


def gdb_backtrace(prog: drgn.Program, task: drgn.Object, start: int | None,
                  full: bool = False, limit: int | None = None) -> list[GdbFrame]:
    """The frames gdb shows for ``task``: from the ``struct pt_regs`` at ``start`` (the
    exception crash's gdb starts at) or from the task's saved registers."""
    origin = task
    if start is not None:
        origin = drgn.Object(prog, "struct pt_regs *", start)
    try:
        trace = prog.stack_trace(origin)
    except READ_ERRORS as err:
        raise GdbError(f"No stack. ({err})") from err
    namer = address_namer(prog)
    frames: list[GdbFrame] = []
    for level, frame in enumerate(trace):
        if level >= min(limit or MAX_FRAMES, MAX_FRAMES) or frame.pc < KERNEL_START:
            break  # gdb's trace of a kernel stack ends at the system call's entry
        frames.append(_frame(prog, namer, level, frame, full))
    return frames


def _frame(prog: drgn.Program, namer: AddressNamer, level: int, frame: drgn.StackFrame,
           full: bool) -> GdbFrame:
    name = frame.function_name or _symbol_name(frame)
    try:
        filename, line, _ = frame.source()
    except LookupError:
        filename, line = None, None
    record = GdbFrame(level, frame.pc, name, frame.is_inline, file=filename, line=line,
                      debug_info=filename is not None)
    if filename is None or name is None:
        return record
    params = _parameter_names(prog, name)
    record.arguments = [(p, _value(prog, namer, frame, p)) for p in params]
    if full:
        with contextlib.suppress(*READ_ERRORS):
            record.local_values = [(n, _value(prog, namer, frame, n))
                                   for n in frame.locals() if n not in params]
    return record


def _symbol_name(frame: drgn.StackFrame) -> str | None:
    try:
        return frame.symbol().name
    except LookupError:
        return None


def _parameter_names(prog: drgn.Program, function: str) -> list[str]:
    """The function's parameters, from its DWARF type (gdb prints them in this order)."""
    try:
        kind = prog.function(function).type_
        return [p.name for p in kind.parameters if p.name]
    except (LookupError, ValueError, AttributeError):
        return []


def _value(prog: drgn.Program, namer: AddressNamer, frame: drgn.StackFrame,
           name: str) -> str:
    """A value as gdb prints it in a frame line: numbers in decimal, pointers in hex with
    the symbol they point at, ``<optimized out>`` when the debug info has no location."""
    try:
        value = frame[name]
        if value.absent_:
            return "<optimized out>"
        return _spell(prog, namer, value, value.type_.unqualified())
    except READ_ERRORS:
        return f"<error: Cannot access memory for {name}>"
    except (LookupError, TypeError):
        return "<optimized out>"


def _spell(prog: drgn.Program, namer: AddressNamer, value: drgn.Object,
           kind: drgn.Type) -> str:
    while kind.kind == drgn.TypeKind.TYPEDEF:
        kind = kind.type.unqualified()
    if kind.kind == drgn.TypeKind.POINTER:
        address = value.value_()
        if _is_char(kind.type):
            return f"{address:#x} {_string_at(prog, address)}" if address else "0x0"
        found = namer.locate(address) if address else None
        return f"{address:#x} <{found.text(10)}>" if found else f"{address:#x}"
    if kind.kind == drgn.TypeKind.ARRAY and _is_char(kind.type):
        data = value.to_bytes_()
        return quote(data[:-1] if data.endswith(b"\0") else data)
    if kind.kind in (drgn.TypeKind.INT, drgn.TypeKind.BOOL, drgn.TypeKind.ENUM):
        return str(value.value_())
    return "..."


def _is_char(kind: drgn.Type) -> bool:
    while kind.kind == drgn.TypeKind.TYPEDEF:
        kind = kind.type
    return kind.kind == drgn.TypeKind.INT and kind.size == 1


def _string_at(prog: drgn.Program, address: int) -> str:
    """gdb's view of a ``char *``: the string, or why it cannot be read."""
    try:
        data = prog.read(address, STRING_LIMIT, False)
    except READ_ERRORS:
        try:  # a short string at the end of a page: one byte at a time
            data = bytes(_bytes_until_nul(prog, address))
        except READ_ERRORS:
            return f"<error: Cannot access memory at address {address:#x}>"
    end = data.find(b"\0")
    text = quote(data if end < 0 else data[:end])
    return text if end >= 0 else text + "..."


def _bytes_until_nul(prog: drgn.Program, address: int) -> list[int]:
    out: list[int] = []
    while len(out) < STRING_LIMIT:
        byte = prog.read(address + len(out), 1, False)[0]
        if byte == 0:
            break
        out.append(byte)
    return out


def quote(data: bytes) -> str:
    """A C string in gdb's quoting: printable ASCII as is, the rest as octal escapes.

    >>> quote(b'ab"\\0')
    '"ab\\"\\000"'
    """
    out = []
    for byte in data:
        char = chr(byte)
        if char in '"\\':
            out.append("\\" + char)
        elif 32 <= byte < 127:
            out.append(char)
        else:
            out.append(f"\\{byte:03o}")
    return '"' + "".join(out) + '"'


def parse_range(prog: drgn.Program, text: str) -> tuple[int, int | None]:
    """gdb's ``disassemble`` argument: ``FUNC``, ``ADDR``, ``START,END`` or
    ``START,+LENGTH``; the end is None when a whole function is asked for."""
    first, _, second = (part.strip() for part in text.partition(","))
    start = _address(prog, first)
    if not second:
        return start, None
    if second.startswith("+"):
        return start, start + _number(second[1:])
    return start, _address(prog, second)


def _address(prog: drgn.Program, word: str) -> int:
    try:
        return prog.symbol(word).address
    except LookupError:
        pass
    try:
        return _number(word)
    except GdbError:
        raise GdbError(f"No symbol \"{word}\" in current context.") from None


def _number(word: str) -> int:
    try:
        return int(word, 0)
    except ValueError:
        raise GdbError(f"A syntax error in expression, near `{word}'.") from None


def gdb_disassembly(prog: drgn.Program, start: int, end: int | None,
                    raw: bool = False) -> GdbDisassembly:
    """A whole function when ``end`` is None (as gdb's ``disassemble FUNC`` or ``ADDR``),
    else the range."""
    function = None
    if end is None:
        found = function_range(prog, start)
        if found is None:
            raise GdbError("No function contains specified address.")
        function, start, end = found.name, found.start, found.end
        dis = disassemble(prog, start, end=end, with_source=False)
        instructions = dis.instructions
    else:  # gdb decodes every instruction that starts before the end, whole
        dis = disassemble(prog, start, end=end + MAX_INSN, with_source=False)
        instructions = [i for i in dis.instructions if i.address < end]
    if not instructions and dis.fault is not None:
        raise GdbError(f"Cannot access memory at address {start:#x}")
    return GdbDisassembly(function, start, end, instructions, raw)
