"""Symbols as crash 8.0.6's ``sym`` prints them (symbols.c show_symbol, cmd_sym).

A symbol line is ``ADDRESS (TYPE) NAME``, then ``+OFFSET`` in decimal when the address
is inside the symbol, `` [MODULE]`` for a module symbol found by name or address, and
`` FILE: LINE`` for a text address whose line is known. Listings (``-l``, ``-m``, ``-q``)
leave out the source lines; module region boundaries read ``ADDRESS MODULE START: NAME``.
Lines end without trailing blanks (crash leaves one after a module name when it has no
line to print).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator

from kdx.model.symbols import SymbolAnswer, SymbolEntry, SymbolHit

#: crash's pseudo-symbol at the start of a module, printed as ``(NAME module)``.
_MODULE_START = "_MODULE_START_"


def hit_line(found: SymbolHit) -> str:
    """crash's show_symbol: ``ADDR (T) name+offset [module] file: line``."""
    if found.name.startswith(_MODULE_START):
        text = f"{found.address:x} ({found.type}) ({found.name[len(_MODULE_START):]} module)"
        return text + (f"+{found.offset}" if found.offset else "")
    text = f"{found.address:x} ({found.type}) {found.name}"
    if found.offset:
        text += f"+{found.offset}"
    if found.module:
        text += f" [{found.module}]"
    if found.source_file:
        text += f" {found.source_file}: {found.source_line}"
    return text


def entry_line(entry: SymbolEntry, with_module: bool = False) -> str:
    if entry.marker:
        return f"{entry.address:x} {entry.marker}: {entry.name}"
    text = f"{entry.address:x} ({entry.type}) {entry.name}"
    return f"{text} [{entry.module}]" if with_module and entry.module else text


def entry_lines(entries: Iterable[SymbolEntry], with_module: bool = False) -> Iterator[str]:
    return (entry_line(e, with_module) for e in entries)


def answer_lines(found: SymbolAnswer) -> Iterator[str]:
    """``sym ARG``: the symbol(s), crash's not-found text with the names containing the
    argument, or crash's invalid-address line."""
    if found.error:
        yield f"sym: {found.error}: {found.query}"
        return
    if found.hits:
        yield from (hit_line(h) for h in found.hits)
        return
    yield f"symbol not found: {found.query}"
    yield "possible alternatives:"
    alternatives = list(found.alternatives)
    if not alternatives:
        yield "  (none found)"
    yield from ("  " + line for line in entry_lines(alternatives, with_module=True))
