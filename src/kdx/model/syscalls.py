"""The system call table (crash's ``sys -c``): number, handler and where it is defined."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Optional

import drgn

#: Names the symbol at an address the way the caller wants (crash picks among aliases
#: such as __x64_sys_pause and __do_sys_pause by its own rules).
Namer = Optional[Callable[[int], Optional[str]]]


@dataclass(frozen=True)
class SyscallEntry:
    number: int
    handler: str | None  # None: the entry points at no known symbol
    address: int
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


def syscall_table(prog: drgn.Program, namer: Namer = None) -> list[SyscallEntry]:
    table = prog["sys_call_table"]
    count = table.type_.length or 0
    addresses = [int(a) for a in table.read_()] if count else []
    try:
        ni = prog.symbol("sys_ni_syscall").address
    except LookupError:
        ni = None
    known: dict[int, tuple[str | None, str | None, int | None]] = {}
    out = []
    for number, address in enumerate(addresses):
        if address not in known:
            try:
                sym = prog.symbol(address)
            except LookupError:
                known[address] = (None, None, None)
            else:
                name = "sys_ni_syscall" if address == ni else (
                    (namer(address) if namer else None) or sym.name)
                known[address] = (name, *_definition(prog, address, sym.address + sym.size))
        name, file, line = known[address]
        out.append(SyscallEntry(number, name, address, file, line))
    return out
