"""Disassembly of kernel and module code as crash's ``dis`` shows it, with source lines.

crash disassembles through gdb, so its users read GNU AT&T syntax: ``mov %rdi,%rbx``,
``nopl 0x0(%rax,%rax,1)``, ``call 0xffffffff... <panic>``. kdx decodes with capstone and
spells each instruction the way GNU's disassembler does (capstone's own AT&T output adds
size suffixes everywhere, prints decimal immediates and spaces after commas), so that a
``dis`` from kdx can be read, diffed and grepped like one from crash. The few spellings
that still differ are listed in docs/crash-differences.md.

Source lines come from drgn (the innermost inlined location, as gdb's line table gives
it), and the text of a line from the source file when it can be found: at the path the
debug info names, else by its name in the directories of the module ``.ko`` files and
beside the dump. This works for module code too, including a module's ``__init``
function that crash 8.0.6 cannot disassemble at all (its init section is only known to
crash as ``_MODULE_INIT_START_<module>``).
"""

from __future__ import annotations

import contextlib
import os
import re
import struct
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterable, Iterator

import capstone
import drgn
from capstone import x86 as cs_x86

from kdx.model.memdump import (
    KERNEL,
    ReadFault,
    extent_symbols,
    make_reader,
    read_span,
)
from kdx.model.names import AddressNamer, address_namer
from kdx.model.records import Hex
from kdx.target.elfinfo import section_table

#: The longest x86 instruction; a window this long always holds the next one.
MAX_INSN = 15
#: How much code ``dis`` reads when it does not know where a function ends.
DEFAULT_SPAN = 4096

# -- GNU AT&T spelling ------------------------------------------------------------------

_OP_REG = cs_x86.X86_OP_REG
_OP_IMM = cs_x86.X86_OP_IMM
_OP_MEM = cs_x86.X86_OP_MEM

_PREFIX_WORDS = {"rep", "repe", "repne", "repz", "repnz", "lock", "notrack", "bnd",
                 "xacquire", "xrelease", "rex64", "data16", "addr32"}
_PREFIX_SPELLING = {"repe": "repz", "repne": "repnz"}
#: Mnemonics GNU spells differently from capstone's AT&T names.
_MNEMONIC_SPELLING = {"pushfq": "pushf", "popfq": "popf", "retq": "ret", "leaveq": "leave",
                      "callq": "call", "jmpq": "jmp", "movabsq": "movabs", "lidtq": "lidt",
                      "lgdtq": "lgdt", "sidtq": "sidt", "sgdtq": "sgdt", "ljmpl": "ljmp",
                      "lcalll": "lcall", "lretl": "lret", "lretq": "lretq", "wait": "fwait"}
#: Instructions whose implicit register operands GNU writes out and capstone does not.
_IMPLICIT = {"monitor": ["%rax", "%ecx", "%edx"], "mwait": ["%eax", "%ecx"]}
#: Segment prefix bytes GNU names as words when nothing uses them (``cs call ...``).
_SEGMENT_WORDS = {0x2E: "cs", 0x3E: "ds", 0x26: "es", 0x36: "ss"}
#: Instructions that are 64-bit by nature in long mode: GNU never adds a suffix.
_NO_SUFFIX = {"push", "pop", "call", "jmp", "ret", "leave"}
#: String instructions: GNU shows their implicit segments (``%es:(%rdi)``).
_STRING_OPS = re.compile(r"(movs|cmps|stos|lods|scas|ins|outs)[bwlq]\Z")
#: Port I/O: GNU writes the %dx port operand as ``(%dx)``.
_PORT_OPS = re.compile(r"(in|out|ins[bwld]?|outs[bwld]?)\Z")
_SUFFIX_SIZE = {"b": 1, "w": 2, "l": 4, "q": 8}


def _hex(value: int) -> str:
    return f"{value:#x}"


def _signed_hex(value: int) -> str:
    return f"-{-value:#x}" if value < 0 else f"{value:#x}"


def _split_operands(op_str: str) -> list[str]:
    """capstone's operand text split at the commas that separate operands."""
    out: list[str] = []
    depth, current = 0, ""
    for ch in op_str:
        if ch == "(":
            depth += 1
        elif ch == ")":
            depth -= 1
        if ch == "," and depth == 0:
            out.append(current.strip())
            current = ""
            continue
        current += ch
    if current.strip():
        out.append(current.strip())
    return out


@dataclass(frozen=True)
class Spelled:
    """One instruction in GNU's words, before symbols are added."""

    prefixes: list[str]
    mnemonic: str
    operands: list[str]
    target: Hex | None  # a direct call/jump's destination
    rip_target: Hex | None  # the address a %rip-relative operand points to


def spell(insn: capstone.CsInsn) -> Spelled:
    """The AT&T spelling gdb (GNU opcodes) gives a capstone instruction (decoded in
    detail mode): capstone's operand text is taken apart and each operand rebuilt from
    capstone's details, the mnemonic's size suffix kept only where GNU keeps it."""
    words = insn.mnemonic.split()
    prefixes = [_PREFIX_SPELLING.get(w, w) for w in words[:-1] if w in _PREFIX_WORDS]
    mnemonic = words[-1] if words else insn.mnemonic
    raw = bytes(insn.bytes)
    if raw.endswith(b"\x66\x90") and set(raw) == {0x66, 0x90} and raw.count(0x90) == 1:
        return Spelled(["data16"] * (len(raw) - 2), "xchg", ["%ax", "%ax"], None, None)
    texts = _split_operands(insn.op_str)
    imms = [op for op in insn.operands if op.type == _OP_IMM]
    mems = [op for op in insn.operands if op.type == _OP_MEM]
    regs = [op for op in insn.operands if op.type == _OP_REG]
    branch = (insn.group(capstone.CS_GRP_JUMP) or insn.group(capstone.CS_GRP_CALL))
    string_op = bool(_STRING_OPS.match(mnemonic))
    operands: list[str] = []
    target = rip_target = None
    mems_used = bool(mems)
    for text in texts:
        star = "*" if text.startswith("*") else ""
        body = text[1:] if star else text
        if body.startswith("$") and imms:
            op = imms.pop(0)
            operands.append("$" + _hex(op.imm & ((1 << (8 * (op.size or 8))) - 1)))
        elif branch and not star and imms and not body.startswith("%"):
            op = imms.pop(0)
            target = op.imm & 0xFFFF_FFFF_FFFF_FFFF
            operands.append(_hex(target))
        elif body.startswith("%") and ":" not in body and "(" not in body:
            operands.append(star + body.replace(" ", ""))
        elif mems:
            text_op, rip = _memory(insn, mems.pop(0), string_op)
            if rip is not None:
                rip_target = rip
            operands.append(star + text_op)
        else:
            operands.append(star + body.replace(" ", ""))
    prefixes = _data16_prefixes(raw, mnemonic) + prefixes
    seg_word = _SEGMENT_WORDS.get(insn.prefix[1])
    if seg_word and not mems_used and "notrack" not in prefixes:
        prefixes.append(seg_word)
    operands = operands or list(_IMPLICIT.get(mnemonic, []))
    if insn.opcode[0] in (0xD0, 0xD1) and operands and operands[0] == "$0x1":
        operands.pop(0)  # shift by one: GNU leaves the implicit count out
    if _PORT_OPS.match(insn.insn_name() or ""):
        operands = ["(%dx)" if o == "%dx" else o for o in operands]
    mnemonic = _mnemonic(insn, mnemonic, regs, string_op)
    return Spelled(_dedupe(prefixes), mnemonic, operands, target, rip_target)


def _dedupe(words: list[str]) -> list[str]:
    seen: list[str] = []
    for w in words:
        if w not in seen:
            seen.append(w)
    return seen


def _data16_prefixes(raw: bytes, mnemonic: str) -> list[str]:
    """GNU names each operand-size prefix beyond the one that makes ``nopw``: long nops
    (``66 66 2e 0f 1f 84 ...``) read ``data16 nopw %cs:0x0(%rax,%rax,1)``."""
    if not mnemonic.startswith("nop"):
        return []
    count = 0
    for b in raw:
        if b == 0x66:
            count += 1
        elif b in (0x2E, 0x3E, 0x26, 0x36, 0x64, 0x65, 0xF2, 0xF3):
            continue
        else:
            break
    return ["data16"] * max(0, count - 1)


def _mnemonic(insn: capstone.CsInsn, mnemonic: str, regs: list, string_op: bool) -> str:
    """Drop the size suffix capstone always adds when GNU would not: when a register
    operand already says the size, or for instructions 64-bit by nature."""
    mnemonic = _MNEMONIC_SPELLING.get(mnemonic, mnemonic)
    if string_op:
        return mnemonic[:-1] if mnemonic.startswith(("stos", "lods", "scas")) else mnemonic
    base = insn.insn_name() or mnemonic
    if mnemonic in _NO_SUFFIX or mnemonic == base:
        return mnemonic
    suffix = mnemonic[len(base):] if mnemonic.startswith(base) else ""
    if len(suffix) != 1 or suffix not in _SUFFIX_SIZE:
        return mnemonic
    if base in _NO_SUFFIX:
        return base
    size = _SUFFIX_SIZE[suffix]
    if any(op.size == size for op in regs):
        return base
    return mnemonic


def _memory(insn: capstone.CsInsn, op, string_op: bool) -> tuple[str, int | None]:  # noqa: ANN001
    """A memory operand as GNU writes it: ``%gs:0x28``, ``-0x8(%rbp)``,
    ``0x0(%rax,%rax,1)``, ``%es:(%rdi)``, with the target of a %rip-relative one. A
    segment override stays on the operand (``data16 nopw %cs:0x0(%rax,%rax,1)``), as the
    gdb 10 inside crash 8.0.6 prints it; binutils 2.37 and later write ``cs nopw``."""
    mem = op.mem
    seg = insn.reg_name(mem.segment) if mem.segment else None
    base = insn.reg_name(mem.base) if mem.base else None
    index = insn.reg_name(mem.index) if mem.index else None
    if string_op:
        seg = "es" if base in ("rdi", "edi") else "ds" if base in ("rsi", "esi") else seg
    rip = None
    if base or index:
        inner = f"%{base}" if base else ""
        if index:
            inner += f",%{index},{mem.scale}"
        encoded = insn.disp_size > 0 and not string_op
        disp = _signed_hex(mem.disp) if (mem.disp or encoded) else ""
        text = f"{disp}({inner})"
        if base == "rip":
            rip = (insn.address + insn.size + mem.disp) & 0xFFFF_FFFF_FFFF_FFFF
    else:
        text = _hex(mem.disp & 0xFFFF_FFFF_FFFF_FFFF)
    if seg:
        text = f"%{seg}:{text}"
    return text, rip


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
class SourceText:
    """Lines of one source file, as far as a disassembly or listing needs them."""

    file: str  # as the debug info names it
    path: str | None  # where kdx found it on this machine; None when not found
    first_line: int  # number of lines[0]
    lines: list[str] = field(default_factory=list)

    def line(self, number: int) -> str | None:
        i = number - self.first_line
        return self.lines[i] if 0 <= i < len(self.lines) else None


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


@dataclass(frozen=True)
class SourceListing:
    """``dis -s``: the source around an address, crash's ``*`` on its line."""

    address: Hex
    symbol: str | None
    file: str | None  # as the debug info names it; None when unknown
    line: int | None
    path: str | None  # the file kdx read; None when not found
    lines: list[tuple[int, str]] = field(default_factory=list)  # (number, text)
    warnings: list[str] = field(default_factory=list)


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


def _source_of(prog: drgn.Program, address: int) -> tuple[str | None, int | None, str | None]:
    """The innermost source location of ``address``, as gdb's line table gives it."""
    try:
        loc = prog.source_location(address)[0]
    except (LookupError, ValueError, OverflowError):
        return None, None, None
    return (loc.filename or None, loc.line or None, loc.name())


def module_of(prog: drgn.Program, address: int) -> str | None:
    """The name of the loaded module ``address`` is in, None for the kernel."""
    try:
        mod = prog.module(address)
    except (LookupError, ValueError, OverflowError):
        return None
    return None if mod.name == "kernel" or isinstance(mod, drgn.MainModule) else mod.name


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
    return FunctionRange(loc.name, loc.start, loc.start + max(size, 1))


def is_text(prog: drgn.Program, address: int, symbols: AddressNamer | None = None) -> bool:
    """Whether ``address`` is code (crash's is_symbol_text)."""
    return (symbols or address_namer(prog)).is_text(address)


# -- source files -------------------------------------------------------------------------

def source_dirs(prog: drgn.Program, near: Path | None,
                extra: Iterable[Path] = ()) -> list[Path]:
    """Where module sources may be besides their debug-info path: the directories of the
    ``.ko`` files drgn loaded (the ones the user named or kdx found beside the dump) and
    ``modules/`` beside the dump, as the lab and support bundles lay them out."""
    dirs: list[Path] = []
    for path in extra:
        path = Path(path)
        dirs.append(path if path.is_dir() else path.parent)
    for mod in _modules(prog):
        file = getattr(mod, "debug_file_path", None)
        if file and not isinstance(mod, drgn.MainModule):
            dirs.append(Path(file).parent)
    if near is not None:
        dirs += [near / "modules", near]
    out: list[Path] = []
    for d in dirs:
        if d.is_dir() and d not in out:
            out.append(d)
    return out


def _modules(prog: drgn.Program) -> list:
    try:
        return list(prog.modules())
    except (AttributeError, TypeError, LookupError):
        return []


def find_source(file: str, dirs: Iterable[Path], *, by_name: bool = True) -> Path | None:
    """The source file the debug info calls ``file``: at that path if it exists, else
    that (relative) path under one of ``dirs``, else, with ``by_name`` (module code: its
    sources sit beside the ``.ko``), a file of the same name in one of ``dirs``."""
    candidate = Path(file)
    if candidate.is_absolute() and candidate.is_file():
        return candidate
    for d in dirs:
        guesses = [] if candidate.is_absolute() else [d / file]
        if by_name:
            guesses.append(d / candidate.name)
        for guess in guesses:
            if guess.is_file():
                return guess
    return None


_file_cache: dict[Path, list[str]] = {}


def read_source(path: Path) -> list[str]:
    """A source file's lines (tabs kept, line ends dropped), read once per run."""
    if path not in _file_cache:
        text = path.read_bytes().decode("utf-8", errors="replace")
        _file_cache[path] = text.splitlines()
    return _file_cache[path]


def load_sources(prog: drgn.Program, instructions: list[Instruction],
                 dirs: Iterable[Path]) -> list[SourceText]:
    """The lines of each source file the instructions came from, from the first to the
    last line they refer to (plus the few before, which objdump -S style output shows).
    Files are looked up by name only for module code: a kernel file's name (``main.c``)
    is too common to guess."""
    dirs = list(dirs)
    in_module = bool(instructions) and module_of(prog, instructions[0].address) is not None
    wanted: dict[str, list[int]] = {}
    for insn in instructions:
        if insn.source_file and insn.source_line:
            wanted.setdefault(insn.source_file, []).append(insn.source_line)
    out: list[SourceText] = []
    for file, lines in wanted.items():
        path = find_source(file, dirs, by_name=in_module)
        if path is None:
            out.append(SourceText(file, None, min(lines), []))
            continue
        try:
            text = read_source(path)
        except OSError:
            out.append(SourceText(file, None, min(lines), []))
            continue
        first = max(1, min(lines) - CONTEXT_BEFORE)
        out.append(SourceText(file, str(path), first, text[first - 1:max(lines)]))
    return out


#: Lines of source shown before the first line of a disassembled group (objdump -S).
CONTEXT_BEFORE = 10


def source_listing(prog: drgn.Program, address: int, *, count: int | None = None,
                   dirs: Iterable[Path] = (),
                   symbols: AddressNamer | None = None) -> SourceListing:
    """``dis -s``: the lines around ``address``'s source line, by crash's rules: from five
    lines before it to the end of the function (the first line after it that is a bare
    ``}``), or ``count`` lines past it."""
    name = (symbols or address_namer(prog)).name(address)
    file, line, _ = _source_of(prog, address)
    if file is None or line is None:
        return SourceListing(address, name, None, None, None)
    path = find_source(file, dirs, by_name=module_of(prog, address) is not None)
    if path is None:
        return SourceListing(address, name, file, line, None)
    try:
        text = read_source(path)
    except OSError as err:
        return SourceListing(address, name, file, line, None, [], [f"{path}: {err.strerror}"])
    first = max(line - 5, 1)
    shown: list[tuple[int, str]] = []
    number = first
    while number <= len(text):
        content = text[number - 1]
        if count is not None and number > line + count:
            break
        shown.append((number, content))
        if count is None and number > line and content == "}":
            break
        number += 1
    return SourceListing(address, name, file, line, str(path), shown)


# -- crash's file names for dis -l ----------------------------------------------------------

def line_prefixes(prog: drgn.Program, instructions: list[Instruction]) -> dict[str, str]:
    """crash prints a relative source name after the compilation directory it is
    relative to (``debian/build/.../drivers/tty/sysrq.c: 151``): that directory for each
    relative file of a kernel address. Module files are left as the debug info names
    them (out-of-tree modules name theirs absolutely)."""
    out: dict[str, str] = {}
    comp_dir: str | None | bool = False
    for insn in instructions:
        file = insn.source_file
        if not file or file.startswith("/") or file in out:
            continue
        if module_of(prog, insn.address) is not None:
            continue
        if comp_dir is False:
            comp_dir = kernel_compile_dir(prog)
        if comp_dir:
            out[file] = comp_dir
    return out


_comp_dirs: dict[str, str | None] = {}


def kernel_compile_dir(prog: drgn.Program) -> str | None:
    """The kernel's DW_AT_comp_dir (one build directory for all of vmlinux)."""
    try:
        path = prog.main_module().debug_file_path
    except (LookupError, AttributeError, ValueError):
        return None
    if not path:
        return None
    if path not in _comp_dirs:
        try:
            _comp_dirs[path] = first_comp_dir(path)
        except (OSError, ValueError, struct.error, IndexError, KeyError):
            _comp_dirs[path] = None
    return _comp_dirs[path]


_DW_AT_NAME = 0x03
_DW_AT_COMP_DIR = 0x1B
_FIXED_FORMS = {0x01: 8, 0x0B: 1, 0x05: 2, 0x06: 4, 0x07: 8, 0x0C: 1, 0x11: 1, 0x12: 2,
                0x13: 4, 0x14: 8, 0x17: 4, 0x0E: 4, 0x1F: 4, 0x10: 4, 0x19: 0, 0x1E: 16,
                0x25: 1, 0x26: 2, 0x27: 3, 0x28: 4, 0x29: 1, 0x2A: 2, 0x2B: 3, 0x2C: 4,
                0x20: 8, 0x1C: 4, 0x1D: 4}


def _uleb(data: bytes, pos: int) -> tuple[int, int]:
    value = shift = 0
    while True:
        b = data[pos]
        pos += 1
        value |= (b & 0x7F) << shift
        shift += 7
        if not b & 0x80:
            return value, pos


def _sections(f) -> dict[str, tuple[int, int, int]]:  # noqa: ANN001 (a binary file)
    """ELF64 section name -> (offset, size, flags)."""
    return {s.name: (s.offset, s.size, s.flags) for s in section_table(f)}


def first_comp_dir(path: str, max_units: int = 64) -> str | None:
    """DW_AT_comp_dir of the first compilation unit that names its file relatively (the
    C files; assembly units name theirs absolutely): a minimal reader of each unit's
    first DIE, because drgn does not expose it and crash's file names depend on it."""
    with open(path, "rb") as f:
        sections = _sections(f)
        if ".debug_info" not in sections or ".debug_abbrev" not in sections:
            return None
        info_off, info_size, flags = sections[".debug_info"]
        if flags & 0x800:  # SHF_COMPRESSED
            return None
        unit = 0
        for _ in range(max_units):
            if unit + 12 > info_size:
                return None
            f.seek(info_off + unit)
            info = f.read(min(info_size - unit, 4096))
            length, version = struct.unpack_from("<IH", info, 0)
            if length == 0xFFFFFFFF or version not in (2, 3, 4, 5):
                return None
            name, comp_dir = _unit_names(f, sections, info, version)
            if name and comp_dir and not name.startswith("/"):
                return comp_dir
            unit += 4 + length
    return None


def _unit_names(f, sections, info: bytes, version: int) -> tuple[str | None, str | None]:  # noqa: ANN001
    """DW_AT_name and DW_AT_comp_dir of a unit's first DIE."""
    if version >= 5:
        _unit_type, _addr_size, abbrev_off = struct.unpack_from("<BBI", info, 6)
        pos = 12
    else:
        abbrev_off, _addr_size = struct.unpack_from("<IB", info, 6)
        pos = 11
    code, pos = _uleb(info, pos)
    ab_off, ab_size, _ = sections[".debug_abbrev"]
    f.seek(ab_off + abbrev_off)
    abbrev = f.read(min(ab_size - abbrev_off, 65536))
    name = comp_dir = None
    for attr, form, _implicit in _abbrev_specs(abbrev, code):
        if attr == _DW_AT_NAME:
            name = _read_string(f, sections, info, pos, form)
        elif attr == _DW_AT_COMP_DIR:
            comp_dir = _read_string(f, sections, info, pos, form)
        pos = _skip_form(info, pos, form)
    return name, comp_dir


def _abbrev_specs(abbrev: bytes, wanted: int) -> list[tuple[int, int, int]]:
    pos = 0
    while pos < len(abbrev):
        code, pos = _uleb(abbrev, pos)
        if code == 0:
            break
        _tag, pos = _uleb(abbrev, pos)
        pos += 1  # has_children
        specs = []
        while True:
            attr, pos = _uleb(abbrev, pos)
            form, pos = _uleb(abbrev, pos)
            implicit = 0
            if form == 0x21:  # DW_FORM_implicit_const
                implicit, pos = _uleb(abbrev, pos)
            if attr == 0 and form == 0:
                break
            specs.append((attr, form, implicit))
        if code == wanted:
            return specs
    raise ValueError("abbreviation not found")


def _skip_form(info: bytes, pos: int, form: int) -> int:
    if form in _FIXED_FORMS:
        return pos + _FIXED_FORMS[form]
    if form == 0x08:  # DW_FORM_string
        return info.index(b"\0", pos) + 1
    if form in (0x0F, 0x0D, 0x15, 0x1A, 0x1B):  # udata, sdata, ref_udata, strx, addrx
        return _uleb(info, pos)[1]
    if form == 0x21:
        return pos
    if form in (0x0A, 0x18):  # block1... exprloc
        size, pos = _uleb(info, pos) if form == 0x18 else (info[pos], pos + 1)
        return pos + size
    raise ValueError(f"DWARF form {form:#x} not handled")


def _read_string(f, sections, info: bytes, pos: int, form: int) -> str | None:  # noqa: ANN001
    if form == 0x08:
        return info[pos:info.index(b"\0", pos)].decode(errors="replace")
    table = {0x0E: ".debug_str", 0x1F: ".debug_line_str"}.get(form)
    if table is None or table not in sections:
        return None
    offset, = struct.unpack_from("<I", info, pos)
    sec_off, sec_size, _ = sections[table]
    f.seek(sec_off + offset)
    raw = f.read(min(4096, sec_size - offset))
    return raw[:raw.index(b"\0")].decode(errors="replace")


def display_path(file: str, prefixes: dict[str, str]) -> str:
    """The file name ``dis -l`` prints, as crash builds it (directory + relative name)."""
    prefix = prefixes.get(file)
    if not prefix:
        return file
    return os.path.join(prefix, file) if not prefix.endswith("/") else prefix + file
