"""crash's ``rd`` layout and gdb's ``x`` layout for memory read from the dump.

``rd`` (memory.c display_memory): each line starts with the address right-aligned in 16
columns and ``:  ``, then 16 bytes' worth of values (2 of 64 bits, 4 of 32, 8 of 16, 16
of 8) in zero-padded hex, each followed by a space, and, for hexadecimal values, two
spaces and the bytes as ASCII (dots for the unprintable), the last line padded so the
ASCII column lines up. ``-s`` puts ``symbol+offset`` (left-aligned in 16 columns) in
place of a value that names one, and drops the ASCII column; ``-d``/``-D`` print signed
and unsigned decimal in crash's field widths; ``-a`` prints printable runs, 60
characters a line. Trailing blanks that crash leaves are not printed.

``x`` (gdb's examine command, which crash hands to gdb): ``0xADDRESS <symbol+offset>:``,
a tab, and tab-separated values, 8 a line for bytes and halfwords, 4 for words, 2 for
giants.
"""

from __future__ import annotations

import struct

from kdx.model.rawmemory import CString, MemoryDisplay, ascii_column

BYTES_PER_LINE = 16
#: Where crash starts the ASCII column, by value size (memory.c ASCII_START_*).
_ASCII_START = {1: 51 + 16, 2: 43 + 16, 4: 39 + 16, 8: 37 + 16}
#: printf widths of crash's decimal values, by size: (signed, unsigned).
_DECIMAL_WIDTH = {8: (15, 20), 4: (12, 12), 2: (5, 5), 1: (3, 3)}
_ADDRESS_WIDTH = 16
ASCII_PER_LINE = 60


def _signed(value: int, unit: int) -> int:
    bits = 8 * unit
    return value - (1 << bits) if value >> (bits - 1) else value


def _value_text(value: int, unit: int, radix: str, symbol: str | None) -> str:
    if symbol is not None:
        return f"{symbol:<16}"
    if radix == "d":
        # crash prints 8- and 16-bit values through unsigned C types even with -d
        shown = _signed(value, unit) if unit >= 4 else value
        return f"{shown:>{_DECIMAL_WIDTH[unit][0]}}"
    if radix == "u":
        return f"{value:>{_DECIMAL_WIDTH[unit][1]}}"
    return f"{value:0{2 * unit}x}"


def render_rd(display: MemoryDisplay, *, radix: str = "x", symbolic: bool = False,
              show_ascii: bool = True) -> str:
    """``rd``'s lines for ``display``; ``radix`` is ``x``, ``d`` (signed) or ``u``."""
    if display.ascii:
        return _render_strings(display)
    unit = display.unit
    per_line = BYTES_PER_LINE // unit
    ascii_column_shown = radix == "x" and not symbolic and show_ascii
    raw = display.raw
    lines: list[str] = []
    words = display.words
    for first in range(0, len(words), per_line):
        chunk = words[first:first + per_line]
        head = f"{chunk[0].address:>{_ADDRESS_WIDTH}x}:  "
        body = "".join(
            _value_text(w.value, unit, radix, w.symbol if symbolic and radix == "x" else None)
            + " " for w in chunk)
        line = head + body
        # crash prints a line's ASCII column when it starts the next line or finishes:
        # a read that fails leaves the line it was filling without one
        last_before_fault = display.fault is not None and first + per_line >= len(words)
        if ascii_column_shown and not last_before_fault:
            line = line.ljust(_ASCII_START[unit]) + "  " + ascii_column(
                raw[first * unit:(first + len(chunk)) * unit])
        lines.append(line.rstrip())
    return "\n".join(lines)


def _render_strings(display: MemoryDisplay) -> str:
    lines = []
    for run in display.strings:
        for i in range(0, len(run.text), ASCII_PER_LINE):
            lines.append(f"{run.address + i:>{_ADDRESS_WIDTH}x}:  "
                         f"{run.text[i:i + ASCII_PER_LINE]}".rstrip())
    return "\n".join(lines)


# -- gdb's x ------------------------------------------------------------------------------

#: Values a line of gdb's x holds, by size letter.
X_PER_LINE = {"b": 8, "h": 8, "w": 4, "g": 2}
X_SIZES = {"b": 1, "h": 2, "w": 4, "g": 8}
_C_ESCAPES = {7: "\\a", 8: "\\b", 9: "\\t", 10: "\\n", 11: "\\v", 12: "\\f", 13: "\\r",
              27: "\\033", 34: '\\"', 92: "\\\\"}


def x_label(address: int, symbol: str | None) -> str:
    return f"{address:#x} <{symbol}>:" if symbol else f"{address:#x}:"


def x_value(value: int, fmt: str, unit: int, symbol: str | None = None) -> str:
    """One value the way gdb's x prints it in format ``fmt``."""
    bits = 8 * unit
    if fmt in ("x", "z"):
        return f"0x{value:0{2 * unit}x}"
    if fmt == "d":
        return str(_signed(value, unit))
    if fmt == "u":
        return str(value)
    if fmt == "o":
        return f"0{value:o}" if value else "0"
    if fmt == "t":
        return f"{value:0{bits}b}"
    if fmt == "a":
        return f"{value:#x} <{symbol}>" if symbol else f"{value:#x}"
    if fmt == "c":
        return _char(value)
    if fmt == "f":
        if unit == 4:
            return f"{struct.unpack('<f', value.to_bytes(4, 'little'))[0]:.9g}"
        if unit == 8:
            return f"{struct.unpack('<d', value.to_bytes(8, 'little'))[0]:.17g}"
        return str(_signed(value, unit))
    return f"{value:#x}"


def _char(value: int) -> str:
    """``76 'L'``: gdb prints a char's signed value and the char, escaped as C does."""
    byte = value & 0xFF
    if byte == 39:
        shown = "\\'"
    elif byte == 34:
        shown = '"'
    elif byte in _C_ESCAPES:
        shown = _C_ESCAPES[byte]
    elif 0x20 <= byte < 0x7F:
        shown = chr(byte)
    else:
        shown = f"\\{byte:03o}"
    return f"{_signed(byte, 1)} '{shown}'"


def render_x(display: MemoryDisplay, fmt: str, size: str, labels: list[str | None],
             value_symbols: list[str | None] | None = None) -> str:
    """gdb's ``x/NFU`` lines: ``labels[i]`` names the address of value i (used at the
    start of each line), ``value_symbols`` the values themselves for format ``a``."""
    per_line = X_PER_LINE[size]
    lines = []
    words = display.words
    for first in range(0, len(words), per_line):
        chunk = words[first:first + per_line]
        values = [x_value(w.value, fmt, display.unit,
                          value_symbols[first + i] if value_symbols else None)
                  for i, w in enumerate(chunk)]
        lines.append(x_label(chunk[0].address, labels[first]) + "\t" + "\t".join(values))
    return "\n".join(lines)


def c_string(raw: bytes, terminated: bool = True) -> str:
    """A string as gdb's ``x/s`` quotes it: C escapes, octal for other bytes."""
    out = []
    for byte in raw:
        if byte in _C_ESCAPES:
            out.append(_C_ESCAPES[byte])
        elif 0x20 <= byte < 0x7F:
            out.append(chr(byte))
        else:
            out.append(f"\\{byte:03o}")
    text = '"' + "".join(out) + '"'
    return text if terminated else text + "..."


def render_strings(strings: list[CString], labels: list[str | None]) -> str:
    return "\n".join(
        f"{x_label(s.address, label)}\t{c_string(bytes.fromhex(s.data), s.terminated)}"
        for s, label in zip(strings, labels))
