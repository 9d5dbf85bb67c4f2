"""Decoding code from the dump: the :class:`Instruction` and :class:`Disassembly` records,
the :class:`Disassembler` that names targets and attaches source lines, :func:`disassemble`
(what ``dis`` runs) and the ranges of functions.

It reads memory through the raw memory readers and leaves spelling to
:mod:`~kdx.model.disasm.spelling` and source text to :mod:`~kdx.model.disasm.source`.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterable, Iterator

import capstone
import drgn

from kdx.model.disasm.source import (
    SourceText,
    _source_of,
    line_prefixes,
    load_sources,
    module_of,
)
from kdx.model.disasm.spelling import spell
from kdx.model.names import AddressNamer, address_namer
from kdx.model.rawmemory import KERNEL, ReadFault, extent_symbols, make_reader, read_span
from kdx.model.reading import READ_ERRORS
from kdx.model.records import Hex

__all__ = ["DEFAULT_SPAN", "Disassembler", "Disassembly", "FunctionRange", "Instruction",
           "MAX_INSN", "decode", "disassemble", "function_range", "is_text"]

#: The longest x86 instruction; a window this long always holds the next one.
MAX_INSN = 15
#: How much code ``dis`` reads when it does not know where a function ends.
DEFAULT_SPAN = 4096


# -- records ------------------------------------------------------------------------------

@dataclass(frozen=True)
class Instruction:
    """One decoded instruction, with what crash shows around it."""

    address: Hex
    symbol: str | None  # "hello_init+17" (crash's decimal offsets), None outside symbols
    bytes: str  # the encoding, as hex
    mnemonic: str  # with GNU's prefixes: "rep stos", "lock cmpxchg"
    operands: str  # GNU AT&T operands: "$0x1,0x0"
    target: Hex | None = None  # destination of a direct call or jump
    target_symbol: str | None = None
    rip_target: Hex | None = None  # address a %rip-relative operand refers to
    rip_symbol: str | None = None
    ftrace_nop: bool = False  # the 5-byte nop ftrace patches at a function's start
    source_file: str | None = None  # as the debug info names it (innermost inline)
    source_line: int | None = None
    function: str | None = None  # the innermost (possibly inlined) function

    @property
    def text(self) -> str:
        """The instruction as gdb prints it: mnemonic padded to six columns, operands,
        a bracketed symbol after a call/jump target, a ``# address`` comment after a
        %rip-relative operand, and crash's ``[FTRACE NOP]`` tag."""
        body = f"{self.mnemonic:<6} {self.operands}" if self.operands else self.mnemonic
        if self.target_symbol:
            body += f" <{self.target_symbol}>"
        if self.rip_target is not None:
            body += f"        # {self.rip_target:#x}"
            if self.rip_symbol:
                body += f" <{self.rip_symbol}>"
        if self.ftrace_nop:
            body += " [FTRACE NOP]"
        return body


@dataclass(frozen=True)
class Disassembly:
    """``dis`` output as data: the instructions and the source they came from."""

    start: Hex  # the first address decoded
    end: Hex  # one past the last instruction shown
    function: str | None  # the symbol the start falls in
    module: str | None  # the module, None for the kernel and user space
    space: str  # "kernel virtual" or "user virtual"
    instructions: list[Instruction] = field(default_factory=list)
    sources: list[SourceText] = field(default_factory=list)
    line_prefixes: dict[str, str] = field(default_factory=dict)  # file -> crash's directory
    fault: ReadFault | None = None  # where the code stopped being readable
    warnings: list[str] = field(default_factory=list)

    def source(self, file: str) -> SourceText | None:
        for src in self.sources:
            if src.file == file:
                return src
        return None


# -- decoding -----------------------------------------------------------------------------

def _decoder() -> capstone.Cs:
    md = capstone.Cs(capstone.CS_ARCH_X86, capstone.CS_MODE_64)
    md.syntax = capstone.CS_OPT_SYNTAX_ATT
    md.detail = True
    md.skipdata = False
    return md


def decode(code: bytes, address: int, bug_bytes: int = 0) -> Iterator:
    """Decode ``code`` at ``address``; an undecodable byte becomes a one-byte ``(bad)``
    so one odd byte never hides the rest of a function. ``bug_bytes`` are skipped after
    each ``ud2`` (crash's ``dis -b``: old kernels put BUG()'s file and line there)."""
    md = _decoder()
    offset = 0
    while offset < len(code):
        skipped = False
        for insn in md.disasm(code[offset:], address + offset):
            offset += insn.size
            yield insn
            if bug_bytes and insn.mnemonic == "ud2":
                offset += bug_bytes
                skipped = True
                break
        if not skipped and offset < len(code):
            yield _BadByte(address + offset, code[offset:offset + 1])
            offset += 1


class _BadByte:
    """What gdb prints for bytes it cannot decode: ``(bad)``."""

    def __init__(self, address: int, raw: bytes) -> None:
        self.address = address
        self.size = len(raw)
        self.bytes = raw


class Disassembler:
    """Turns code in the dump into ``Instruction`` records, naming symbols crash-style."""

    def __init__(self, prog: drgn.Program, symbols: AddressNamer | None = None,
                 radix: int = 10, namer: Callable[[int], str | None] | None = None) -> None:
        self.prog = prog
        self.symbols = symbols or address_namer(prog)
        self.radix = radix
        self.namer = namer or (lambda address: self.symbols.name(address, radix))

    def instruction(self, insn, *, with_source: bool = True,
                    user: bool = False) -> Instruction:
        address = insn.address
        raw = bytes(insn.bytes)
        symbol = None if user else self.namer(address)
        if isinstance(insn, _BadByte):
            return Instruction(address, symbol, raw.hex(), "(bad)", "")
        spelled = spell(insn)
        mnemonic = " ".join([*spelled.prefixes, spelled.mnemonic])
        operands = ",".join(spelled.operands)
        target_symbol = rip_symbol = None
        if not user:
            if spelled.target is not None:
                target_symbol = self.namer(spelled.target)
            if spelled.rip_target is not None and self._inside_symbol(spelled.rip_target):
                rip_symbol = self.namer(spelled.rip_target)
        loc = None if user else self.symbols.locate(address)
        ftrace = (loc is not None and loc.offset == 0 and mnemonic == "nopl"
                  and operands == "0x0(%rax,%rax,1)")
        file = line = function = None
        if with_source and not user:
            file, line, function = _source_of(self.prog, address)
        return Instruction(address, symbol, raw.hex(), mnemonic, operands, spelled.target,
                           target_symbol, spelled.rip_target, rip_symbol, ftrace, file, line,
                           function)

    def _inside_symbol(self, address: int) -> bool:
        """gdb names a %rip-relative target only inside a symbol's extent (crash just
        rewrites what gdb printed), unlike call targets, which crash names by the
        nearest symbol before them."""
        return bool(extent_symbols(self.prog, address))


def disassemble(prog: drgn.Program, start: int, *, end: int | None = None,
                count: int | None = None, target: int | None = None,
                last: int | None = None, user_task: drgn.Object | None = None,
                radix: int = 10, with_source: bool = True,
                source_dirs: Iterable[Path] = (),
                symbols: AddressNamer | None = None,
                namer: Callable[[int], str | None] | None = None,
                bug_bytes: int = 0) -> Disassembly:
    """Decode code from ``start``: up to ``end`` (a whole function), or ``count``
    instructions, or up to the first instruction at or past ``target`` (``dis -r``, as
    crash stops; only the ``last`` ones when given). ``user_task`` reads that task's user
    memory instead of the kernel's (``dis -u``)."""
    user = user_task is not None
    space = "user virtual" if user else KERNEL
    if end is not None:
        span = max(end - start, 1)
    elif target is not None:
        span = max(target - start, 0) + MAX_INSN
    else:
        span = min((count or 1) * MAX_INSN, 1 << 20)
    code, fault = read_span(make_reader(prog, space, user_task), space, start, span)
    chosen = _select(code, start, end=end, count=count, target=target,
                     cut=fault is not None or end is None, bug_bytes=bug_bytes)
    exhausted = chosen is None
    picked = chosen or []
    if exhausted:
        picked = _select_all(code, start, end, fault is not None or end is None, bug_bytes)
    if target is not None and last:
        picked = picked[-last:]
    dis = Disassembler(prog, symbols, radix, namer)
    instructions = [dis.instruction(i, with_source=with_source, user=user) for i in picked]
    decoded_end = picked[-1].address + picked[-1].size if picked else start
    loc = None if user else dis.symbols.locate(start)
    sources = [] if user or not with_source else load_sources(
        prog, instructions, source_dirs)
    prefixes = {} if user else line_prefixes(prog, instructions)
    return Disassembly(start, decoded_end, loc.name if loc else None,
                       None if user else module_of(prog, start), space, instructions,
                       sources, prefixes, fault if exhausted else None, [])


def _usable(insn, code: bytes, start: int, cut: bool) -> bool:
    """Whether a decoded instruction really is one: it must lie inside what was read,
    and an undecodable byte near the end of a cut-short read is a truncated instruction."""
    if insn.address + insn.size > start + len(code):
        return False
    return not (cut and isinstance(insn, _BadByte)
                and insn.address >= start + len(code) - MAX_INSN)


def _select(code: bytes, start: int, *, end: int | None, count: int | None,
            target: int | None, cut: bool, bug_bytes: int = 0) -> list | None:
    """The instructions asked for, or None when the code ran out before the request was
    met (the caller then reports why)."""
    chosen: list = []
    for insn in decode(code, start, bug_bytes):
        if not _usable(insn, code, start, cut):
            return None
        if end is not None and insn.address >= end:
            return chosen
        chosen.append(insn)
        if target is not None and insn.address >= target:
            return chosen
        if count is not None and target is None and len(chosen) >= count:
            return chosen
    if end is not None and target is None and count is None:
        return chosen if start + len(code) >= end else None
    return None


def _select_all(code: bytes, start: int, end: int | None, cut: bool,
                bug_bytes: int = 0) -> list:
    out = []
    for insn in decode(code, start, bug_bytes):
        if not _usable(insn, code, start, cut) or (end is not None and insn.address >= end):
            break
        out.append(insn)
    return out


# -- where functions are ------------------------------------------------------------------

@dataclass(frozen=True)
class FunctionRange:
    name: str
    start: Hex
    end: Hex


def function_range(prog: drgn.Program, address: int,
                   symbols: AddressNamer | None = None) -> FunctionRange | None:
    """The function ``address`` falls in, with its end: the symbol crash names for it,
    ending where drgn's symbol of that start says (crash asks gdb for the function's
    block, which ends at the same place), or at the next symbol for a label without a
    size."""
    symbols = symbols or address_namer(prog)
    loc = symbols.locate(address)
    if loc is None:
        return None
    size = 0
    with contextlib.suppress(LookupError, ValueError, OverflowError):
        size = max((s.size for s in prog.symbols(loc.start) if s.address == loc.start),
                   default=0)
    if not size:
        following = symbols.next_start(loc.start)
        size = (following - loc.start) if following else DEFAULT_SPAN
    end = loc.start + max(size, 1)
    if not _sizes_known(prog, loc.start):
        end = _without_padding(prog, loc.start, end)
    return FunctionRange(loc.name, loc.start, end)


def _sizes_known(prog: drgn.Program, address: int) -> bool:
    """Whether symbol sizes come from an ELF symbol table (a vmlinux or .ko): kallsyms
    keeps none, and its sizes run to the next symbol, alignment padding included."""
    try:
        return prog.module(address).debug_file_path is not None
    except LookupError:
        return True


def _without_padding(prog: drgn.Program, start: int, end: int) -> int:
    """``end`` moved back over the padding the linker put after a function (``int3``
    and multi-byte ``nop``), so a function sized from kallsyms ends where it does with a
    vmlinux."""
    try:
        code = prog.read(start, end - start)
    except READ_ERRORS:
        return end
    last_real = start
    for insn in _decoder().disasm(code, start):
        if not (insn.mnemonic.startswith("nop") or insn.mnemonic == "int3"):
            last_real = insn.address + insn.size
    return last_real if last_real > start else end


def is_text(prog: drgn.Program, address: int, symbols: AddressNamer | None = None) -> bool:
    """Whether ``address`` is code (crash's is_symbol_text)."""
    return (symbols or address_namer(prog)).is_text(address)
