"""crash's ``search`` output: ``ADDRESS: VALUE`` per hit (``ADDRESS: TEXT`` for strings).

A value the user gave as a symbol or an expression is echoed after the hit in
parentheses, as crash does (memory.c search_ulong, show_opt_string). With ``-x COUNT``
each hit is a block: the values before it as ``rd`` shows memory, the hit with its
address right-aligned in 16 columns, the values after it, then an empty line.
"""

from __future__ import annotations

from kdx.model.rawmemory import MemoryDisplay, MemoryWord
from kdx.model.search import SearchHit, SearchResult
from kdx.render.crash.layout import rstrip_lines
from kdx.render.crash.rd import render_rd


def _label(label: str | None) -> str:
    """crash echoes an expression as typed (it has its parentheses), a symbol in
    parentheses."""
    if not label:
        return ""
    return f" {label}" if label.startswith("(") else f" ({label})"


def _memory(address: int, data: str, unit: int) -> list[str]:
    """``rd``'s lines for the context bytes (hexadecimal, with the ASCII column)."""
    raw = bytes.fromhex(data)
    count = len(raw) // unit
    if not count:
        return []
    words = [MemoryWord(address + i * unit,
                        int.from_bytes(raw[i * unit:(i + 1) * unit], "little"), None)
             for i in range(count)]
    display = MemoryDisplay(address, "kernel", unit, count, False, raw[:count * unit].hex(),
                            words, [], None)
    return render_rd(display).split("\n")


def _context_block(hit: SearchHit, result: SearchResult) -> list[str]:
    span = result.context * result.unit
    lines = _memory(hit.address - span, hit.before or "", result.unit)
    lines.append(f"{hit.address:>16x}:  {hit.value or 0:x}{_label(hit.label)}")
    lines += _memory(hit.address + result.unit, hit.after or "", result.unit)
    return lines


def render_search(result: SearchResult) -> str:
    if result.context:
        blocks = ["\n".join(_context_block(hit, result)) for hit in result.hits]
        return rstrip_lines("\n\n".join(blocks))
    lines = []
    for hit in result.hits:
        if hit.text is not None:
            lines.append(f"{hit.address:x}: {hit.text}")
            continue
        lines.append(f"{hit.address:x}: {hit.value or 0:x}{_label(hit.label)}")
    return rstrip_lines("\n".join(lines))
