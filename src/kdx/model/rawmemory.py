"""Memory of the dump as crash's ``rd`` shows it. Addresses are named by
:mod:`kdx.model.names`.

Two things live here because ``rd``, ``x`` and ``dis`` all need them: turning what a
user types (``jiffies``, ``hello_init+0x11``, ``ffffffffc05a9011``) into an address by
crash's rules, and reading memory that stops at the first unit the dump cannot supply,
with the reason in crash's words
(``page excluded``, ``invalid kernel virtual address``), because a partial dump is the
normal case and the user must see where and why the data ends.

Records are plain values (addresses and values as ints, bytes as hex), so they serve the
crash-style renderer, ``--json`` and a database alike.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field, replace
from typing import Callable

import drgn

from kdx.model.names import AddressNamer
from kdx.model.records import Hex

#: Where x86_64's user half ends: crash reads lower addresses as user virtual ones.
USER_SPACE_END = 0x0000_8000_0000_0000
PAGE_SIZE = 4096
#: How far ``rd -a`` without a count reads looking for the end of a string.
ASCII_LIMIT = 1 << 20

KERNEL = "kernel virtual"
USER = "user virtual"
PHYSICAL = "physical"
FILE = "dump file"
#: crash's short names of the address spaces, used in its ``type:`` strings.
SPACE_TAGS = {KERNEL: "KVADDR", USER: "UVADDR", PHYSICAL: "PHYSADDR", FILE: "FILEADDR"}

#: Printable as crash's ASCII column and ``rd -a`` see it: isprint() in the C locale.
PRINTABLE = frozenset(range(0x20, 0x7F))

_TOKEN = re.compile(r"\s*([+-])\s*")
_IDENT = re.compile(r"[A-Za-z_.$][\w.$]*\Z")
_HEX = re.compile(r"(0[xX])?[0-9a-fA-F]+\Z")



# -- addresses from what the user typed ---------------------------------------------------

def parse_address(prog: drgn.Program, text: str) -> int:
    """The address ``text`` names, by crash's rules: a lone hexadecimal word that is not a
    symbol is an address (``ffffffffc05a9011``, with or without ``0x``); otherwise an
    expression of symbols and numbers joined by ``+``/``-``, where a number after the
    first term is decimal unless written ``0x...``. Raises LookupError (unknown symbol)
    or ValueError (malformed)."""
    text = text.strip()
    if not text:
        raise ValueError("an address or symbol is needed")
    parts = _TOKEN.split(text)
    if len(parts) == 1:
        if _IDENT.match(text) and (value := symbol_address(prog, text)) is not None:
            return value
        if _HEX.match(text):
            return int(text, 16)
        raise LookupError(f"symbol not found: {text}")
    total = _term(prog, parts[0], first=True)
    for sign, term in zip(parts[1::2], parts[2::2]):
        value = _term(prog, term, first=False)
        total = total + value if sign == "+" else total - value
    return total & 0xFFFF_FFFF_FFFF_FFFF


def _term(prog: drgn.Program, term: str, *, first: bool) -> int:
    if not term:
        raise ValueError("malformed expression")
    if term.lower().startswith("0x"):
        return int(term, 16)
    if term.isdigit():
        return int(term, 16) if first else int(term)
    if _IDENT.match(term) and (value := symbol_address(prog, term)) is not None:
        return value
    if first and _HEX.match(term):
        return int(term, 16)
    raise LookupError(f"symbol not found: {term}")


def symbol_address(prog: drgn.Program, name: str) -> int | None:
    """A symbol's address: the ELF symbol tables first (what crash reads), then the debug
    info, which also knows variables the symbol tables lost."""
    try:
        return prog.symbol(name).address
    except LookupError:
        pass
    try:
        obj = prog.object(name)
    except (LookupError, ValueError):
        return None
    return obj.address_


def symbol_or_hex(prog: drgn.Program, word: str) -> int | None:
    """crash's reading of an address argument: a symbol's address, else a hex number;
    None when the word is neither (each command words its own error)."""
    try:
        return prog.symbol(word).address
    except LookupError:
        pass
    try:
        return int(word, 16)
    except ValueError:
        return None


def extent_symbols(prog: drgn.Program, address: int) -> list[drgn.Symbol]:
    """The symbols whose extent holds ``address`` (or that start there, for labels
    without a size), as gdb looks names up; assembler-local ``.L`` labels left out."""
    if address < USER_SPACE_END:
        return []
    try:
        found = prog.symbols(address)
    except (LookupError, ValueError, OverflowError):
        return []
    return [s for s in found if s.name and not s.name.startswith(".L")
            and (s.size or s.address == address)]


# -- reading ------------------------------------------------------------------------------

@dataclass(frozen=True)
class ReadFault:
    """Where reading stopped and why, in crash's terms."""

    address: Hex
    space: str  # KERNEL, USER or PHYSICAL
    reason: str  # "page excluded", "invalid", "seek error" or "read error"
    detail: str  # drgn's own message

    def message(self, type_name: str) -> str:
        """crash's readmem() error line, e.g. ``page excluded: kernel virtual address:
        ff143b93c1da5000  type: "64-bit KVADDR"``."""
        if self.reason == "invalid":
            return f'invalid {self.space} address: {self.address:x}  type: "{type_name}"'
        return f'{self.reason}: {self.space} address: {self.address:x}  type: "{type_name}"'


def fault_reason(err: Exception) -> str:
    """crash's name for a failed read: makedumpfile's excluded pages, addresses no page
    table maps, and addresses outside every segment of an ELF dump."""
    text = str(err).lower()
    if "excluded" in text:
        return "page excluded"
    if "not present" in text or "page i/o address" in text or "translat" in text \
            or "not mapped" in text:
        return "invalid"
    if "no current user process" in text:
        return "invalid"
    if "segment" in text:
        return "seek error"
    return "read error"


def space_of(address: int, physical: bool = False, user: bool = False) -> str:
    """The address space crash reads ``address`` in (low addresses are user ones)."""
    if physical:
        return PHYSICAL
    if user or address < USER_SPACE_END:
        return USER
    return KERNEL


Reader = Callable[[int, int], bytes]


def file_reader(path: str | os.PathLike) -> Reader:
    """``read(offset, size)`` of the dump file itself (crash's ``-f``): what is on disk
    at that offset, compressed or not; reading past the end is a fault."""
    def read(offset: int, size: int) -> bytes:
        with open(path, "rb") as dump:
            dump.seek(offset)
            data = dump.read(size)
        if len(data) < size:
            raise drgn.FaultError("seek error: beyond the end of the dump file",
                                  offset + len(data))
        return data
    return read


def make_reader(prog: drgn.Program, space: str, task: drgn.Object | None = None,
                path: str | os.PathLike | None = None) -> Reader:
    """A ``read(address, size)`` for one address space; user memory is the task's,
    file offsets are in ``path``."""
    if space == FILE:
        if path is None:
            raise ValueError("reading dump file offsets needs the dump file")
        return file_reader(path)
    if space == PHYSICAL:
        return lambda address, size: prog.read(address, size, True)
    if space == USER:
        from drgn.helpers.linux.mm import access_process_vm

        if task is None or not task.mm:
            def no_mm(address: int, size: int) -> bytes:
                raise drgn.FaultError("no current user process (a kernel thread)", address)
            return no_mm
        return lambda address, size: access_process_vm(task, address, size)
    return lambda address, size: prog.read(address, size)


def read_span(read: Reader, space: str, address: int, size: int,
              unit: int = 1) -> tuple[bytes, ReadFault | None]:
    """Read ``size`` bytes page by page and stop at the first whole ``unit`` that cannot
    be read: what comes before it is returned with the fault, as crash prints what it
    could before its error line."""
    out = bytearray()
    pos = address
    end = address + size
    while pos < end:
        chunk = min(end, (pos // PAGE_SIZE + 1) * PAGE_SIZE) - pos
        try:
            out += read(pos, chunk)
        except (drgn.FaultError, ValueError, OverflowError) as err:
            whole = len(out) - len(out) % unit
            reason = fault_reason(err) if isinstance(err, drgn.FaultError) else "invalid"
            return bytes(out[:whole]), ReadFault(address + whole, space, reason, str(err))
        pos += chunk
    return bytes(out), None


@dataclass(frozen=True)
class MemoryWord:
    """One value as ``rd`` shows it; ``symbol`` is set by ``rd -s`` when it names one."""

    address: Hex
    value: Hex  # unsigned, in the dump's (little-endian) byte order
    symbol: str | None = None


@dataclass(frozen=True)
class MemoryString:
    """A run of printable bytes, as ``rd -a`` shows them."""

    address: Hex
    text: str


@dataclass(frozen=True)
class MemoryDisplay:
    """What ``rd`` read: values of one size, or strings (``-a``), up to a possible fault."""

    address: Hex  # the first address shown (after -o)
    space: str  # KERNEL, USER or PHYSICAL
    unit: int  # bytes per value: 1, 2, 4 or 8 (1 for strings)
    count: int | None  # values asked for; None: a string up to its first unprintable byte
    ascii: bool  # -a: strings instead of values
    data: str  # every byte read, as hex
    words: list[MemoryWord] = field(default_factory=list)
    strings: list[MemoryString] = field(default_factory=list)
    fault: ReadFault | None = None

    @property
    def type_name(self) -> str:
        """crash's ``type:`` string for this read (``64-bit KVADDR``, ``ascii``)."""
        if self.ascii:
            return "ascii"
        return f"{self.unit * 8}-bit {SPACE_TAGS[self.space]}"

    @property
    def raw(self) -> bytes:
        return bytes.fromhex(self.data)


def read_memory(prog: drgn.Program, address: int, *, unit: int = 8, count: int | None = 1,
                space: str = KERNEL, task: drgn.Object | None = None,
                symbols: AddressNamer | None = None, ascii: bool = False,
                path: str | os.PathLike | None = None) -> MemoryDisplay:
    """Read ``count`` values of ``unit`` bytes at ``address`` (or, with ``ascii``, the
    printable runs among ``count`` bytes, or one string when ``count`` is None).

    With ``symbols``, each value that falls in a symbol is named as crash's ``rd -s``
    names it: kernel and module addresses only, never numbers or per-CPU offsets.
    """
    read = make_reader(prog, space, task, path)
    if ascii:
        return _read_ascii(read, address, count, space)
    assert count is not None and count > 0
    data, fault = read_span(read, space, address, unit * count, unit)
    words = []
    for i in range(0, len(data), unit):
        value = int.from_bytes(data[i:i + unit], "little")
        name = None
        if symbols is not None and value >= USER_SPACE_END:
            name = symbols.name(value)
        words.append(MemoryWord(address + i, value, name))
    return MemoryDisplay(address, space, unit, count, False, data.hex(), words, [], fault)


def with_slab_caches(prog: drgn.Program, display: MemoryDisplay,
                     with_value: bool = False) -> MemoryDisplay:
    """``rd -S``: each value without a symbol that points into a slab object is named by
    its cache, ``[cache]`` (``-SS``: ``[value:cache]``), as crash names it."""
    from drgn.helpers.linux.slab import find_containing_slab_cache

    words = []
    for word in display.words:
        if word.symbol is None and word.value >= USER_SPACE_END:
            try:
                cache = find_containing_slab_cache(prog, word.value)
                name = cache.name.string_().decode(errors="replace") if cache else None
            except (drgn.FaultError, ValueError, OverflowError, LookupError):
                name = None
            if name is not None:
                label = f"[{word.value:x}:{name}]" if with_value else f"[{name}]"
                word = replace(word, symbol=label)
        words.append(word)
    return replace(display, words=words)


def network_order(display: MemoryDisplay) -> MemoryDisplay:
    """``rd -N``: 16- and 32-bit values in network (big-endian) byte order."""
    if display.unit not in (2, 4):
        return display
    words = [replace(w, value=int.from_bytes(w.value.to_bytes(display.unit, "little"),
                                             "big")) for w in display.words]
    return replace(display, words=words)


def _read_ascii(read: Reader, address: int, count: int | None,
                space: str) -> MemoryDisplay:
    """``rd -a``: with a count, every printable run among ``count`` bytes; without one,
    the string at ``address`` up to its first unprintable byte."""
    limit = ASCII_LIMIT if count is None else count
    data = bytearray()
    fault: ReadFault | None = None
    pos = address
    while len(data) < limit:
        chunk = min(limit - len(data), PAGE_SIZE - pos % PAGE_SIZE)
        piece, fault = read_span(read, space, pos, chunk)
        data += piece
        pos += len(piece)
        if fault is not None:
            break
        if count is None and any(b not in PRINTABLE for b in piece):
            break
    if count is None:
        stop = next((i for i, b in enumerate(data) if b not in PRINTABLE), len(data))
        if stop < len(data):
            fault = None
        data = data[:stop]
    runs: list[MemoryString] = []
    start: int | None = None
    for i, b in enumerate(data):
        if b in PRINTABLE and start is None:
            start = i
        elif b not in PRINTABLE and start is not None:
            runs.append(MemoryString(address + start, data[start:i].decode("ascii")))
            start = None
    if start is not None:
        runs.append(MemoryString(address + start, data[start:].decode("ascii")))
    return MemoryDisplay(address, space, 1, count, True, bytes(data).hex(), [], runs, fault)


def ascii_column(raw: bytes) -> str:
    """crash's ASCII column: printable bytes as themselves, everything else as a dot."""
    return "".join(chr(b) if b in PRINTABLE else "." for b in raw)


@dataclass(frozen=True)
class CString:
    """A NUL-terminated string in memory, as gdb's ``x/s`` shows it."""

    address: Hex
    data: str  # its bytes before the NUL, as hex
    terminated: bool  # False when the read stopped (fault or length limit) before a NUL


#: How long a string ``x/s`` follows before giving up on finding its end.
STRING_LIMIT = 4096


def read_strings(prog: drgn.Program, address: int, count: int, space: str = KERNEL,
                 task: drgn.Object | None = None) -> tuple[list[CString], ReadFault | None]:
    """``count`` consecutive C strings from ``address`` (each starts after the previous
    one's NUL), up to the first unreadable byte."""
    read = make_reader(prog, space, task)
    out: list[CString] = []
    pos = address
    for _ in range(count):
        data = bytearray()
        fault = None
        terminated = False
        while len(data) < STRING_LIMIT:
            chunk = min(PAGE_SIZE - (pos + len(data)) % PAGE_SIZE, STRING_LIMIT - len(data))
            piece, fault = read_span(read, space, pos + len(data), chunk)
            nul = piece.find(b"\0")
            if nul >= 0:
                data += piece[:nul]
                terminated = True
                break
            data += piece
            if fault is not None:
                break
        if fault is not None and not terminated and not data:
            return out, fault
        out.append(CString(pos, bytes(data).hex(), terminated))
        if fault is not None and not terminated:
            return out, fault
        pos += len(data) + 1
    return out, None
