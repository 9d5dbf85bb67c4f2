"""What gdb answers to ``ptype``, ``whatis``, ``info symbol``, ``info address`` and
``info line``, computed from kdx's own model (drgn's types, symbols and line tables).

crash users type ``gdb ptype struct page`` or ``gdb info symbol ADDR`` from habit; kdx has
no gdb, so these functions produce gdb's wording from what kdx already knows.
"""

from __future__ import annotations

import drgn

from kdx.errors import KdxError
from kdx.model.expr import ExpressionParser

__all__ = ["GdbError", "info_address", "info_line", "info_symbol", "list_lines", "relative_source",
           "type_of", "type_text"]


class GdbError(KdxError):
    """gdb's own message for a question it cannot answer."""


def type_of(prog: drgn.Program, text: str) -> drgn.Type:
    """The type named by ``text``, or the type of the expression ``text``."""
    try:
        return prog.type(text)
    except (LookupError, SyntaxError, ValueError):
        pass
    try:
        return ExpressionParser(prog, text).parse().type_
    except KdxError as err:
        raise GdbError(f"No symbol \"{text}\" in current context.") from err


def _names_type(prog: drgn.Program, text: str) -> bool:
    try:
        prog.type(text)
        return True
    except (LookupError, SyntaxError, ValueError):
        return False


def type_text(prog: drgn.Program, text: str, expand: bool) -> str:
    """``ptype`` (``expand``: typedefs resolved, the struct's members) or ``whatis``."""
    kind = type_of(prog, text)
    if not expand:
        if kind.kind == drgn.TypeKind.TYPEDEF and _names_type(prog, text):
            kind = kind.type  # gdb: whatis on a typedef's name unrolls one level
        return f"type = {kind.type_name()}"
    while kind.kind == drgn.TypeKind.TYPEDEF:
        kind = kind.type
    body = str(kind).replace("\t", "    ")
    return f"type = {body}"


def info_symbol(prog: drgn.Program, address: int) -> str:
    try:
        symbol = prog.symbol(address)
    except LookupError:
        return f"No symbol matches {address:#x}."
    offset = address - symbol.address
    where = ".text" if symbol.kind == drgn.SymbolKind.FUNC else ".data"
    name = symbol.name if not offset else f"{symbol.name} + {offset}"
    return f"{name} in section {where}"


def info_address(prog: drgn.Program, name: str) -> str:
    try:
        symbol = prog.symbol(name)
    except LookupError as err:
        raise GdbError(f"No symbol \"{name}\" in current context.") from err
    if symbol.kind == drgn.SymbolKind.FUNC:
        return f"Symbol \"{name}\" is a function at address {symbol.address:#x}."
    return f"Symbol \"{name}\" is static storage at address {symbol.address:#x}."


def _location(prog: drgn.Program, where: str) -> tuple[int, str, int]:
    """Address, file and line of a function name or an address."""
    try:
        address = prog.symbol(where).address
    except LookupError:
        try:
            address = int(where.lstrip("*"), 0)
        except ValueError as err:
            raise GdbError(f"Function \"{where}\" not defined.") from err
    try:
        found = prog.source_location(address)
    except (LookupError, ValueError, drgn.FaultError):
        found = None
    if not found or not len(found) or not found[0].line:
        raise GdbError(f"No line number information available for address {address:#x}")
    return address, found[0].filename, found[0].line


def _frames(prog: drgn.Program, address: int) -> list[tuple[str, int, int]]:
    """Every (inlined) source position at ``address``: a new row changes one of them."""
    try:
        return [(f.filename, f.line, f.column) for f in prog.source_location(address)]
    except (LookupError, ValueError, drgn.FaultError):
        return []


def _named(prog: drgn.Program, address: int) -> str:
    try:
        symbol = prog.symbol(address)
    except LookupError:
        return f"{address:#x}"
    offset = address - symbol.address
    return f"{address:#x} <{symbol.name}{'+' + str(offset) if offset else ''}>"


def info_line(prog: drgn.Program, where: str) -> str:
    """gdb's ``info line``: the line, and the addresses its code spans."""
    address, filename, line = _location(prog, where)
    end = address + 1
    try:
        symbol = prog.symbol(address)
        limit = symbol.address + symbol.size
    except LookupError:
        limit = address + 1
    start = _frames(prog, address)
    while end < limit and _frames(prog, end) == start:  # until the next line-table row
        end += 1
    return (f"Line {line} of \"{relative_source(filename)}\" starts at address "
            f"{_named(prog, address)} and ends at {_named(prog, end)}.")


def list_lines(prog: drgn.Program, where: str) -> str:
    """gdb's ``list`` without the sources: the line it would centre on, and why not."""
    _, filename, line = _location(prog, where)
    return f"{max(1, line - 5)}\t{relative_source(filename)}: No such file or directory."


def relative_source(filename: str) -> str:
    """The path as the kernel's build recorded it for its own sources."""
    marker = "/linux-"
    if filename.startswith("/") and marker in filename:
        rest = filename.split(marker, 1)[1]
        return rest.split("/", 1)[1] if "/" in rest else filename
    return filename
