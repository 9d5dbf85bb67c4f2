"""The system call table (crash's ``sys -c``): number, handler and where it is defined."""

from __future__ import annotations

from dataclasses import dataclass

import drgn

from kdx.model.names import address_namer
from kdx.model.rawmemory import symbol_address
from kdx.model.records import Hex


@dataclass(frozen=True)
class SyscallEntry:
    number: int
    handler: str | None  # None: the entry points at no known symbol
    address: Hex
    file: str | None  # as the debug info names it (build-relative on distro kernels)
    line: int | None


def _is_header(file: str) -> bool:
    return file.endswith(".h") and "include/" in file


def _definition(prog: drgn.Program, start: int, end: int) -> tuple[str | None, int | None]:
    """The first source line of the handler that is not an inlined header helper: a
    syscall stub often starts inside an inline from include/, which says nothing about
    where the call is implemented (crash skips those too)."""
    for address in range(start, end):
        try:
            loc = prog.source_location(address)[0]
        except (LookupError, IndexError):
            continue
        if loc.filename and not _is_header(loc.filename):
            return loc.filename, loc.line
    return None, None


def syscall_table(prog: drgn.Program) -> list[SyscallEntry]:
    """Every entry of ``sys_call_table``, named as crash names it (among aliases such as
    ``__x64_sys_pause`` and ``__do_sys_pause`` crash has its own rules; the address
    namer of model.names follows them, and costs far less than a lookup per entry in
    drgn's symbol list), with the first source line of each handler."""
    symbols = address_namer(prog)
    table = prog["sys_call_table"]
    count = table.type_.length or 0
    addresses = [int(a) for a in table.read_()] if count else []
    ni = symbol_address(prog, "sys_ni_syscall")
    known: dict[int, tuple[str | None, str | None, int | None]] = {}
    out = []
    for number, address in enumerate(addresses):
        if address not in known:
            loc = symbols.locate(address)
            if loc is None or loc.offset:
                known[address] = (None, None, None)
            else:
                name = "sys_ni_syscall" if address == ni else loc.name
                end = symbols.next_start(address) or address + 1
                known[address] = (name, *_definition(prog, address, end))
        name, file, line = known[address]
        out.append(SyscallEntry(number, name, address, file, line))
    return out
