"""The symbol table crash's ``sym`` works on, and the index every address name comes
from (:mod:`kdx.model.names` holds the naming rules): kernel symbols from the vmlinux,
module symbols from the modules' in-memory kallsyms.

drgn answers "which symbol holds this address" by symbol size and prefers global
aliases; crash answers by address order alone, and crash users compare the two side by
side. So kdx builds crash's table (symbols.c store_symbols, value_search) from the same
sources crash uses:

- kernel symbols from the vmlinux ``.symtab``, with the nm(1) type letter BFD gives them
  (drgn's Symbol has no section, hence no letter), sorted by address then name, filtered
  the way crash's x86_64_verify_symbol filters them (per-CPU symbols before ``_text``)
  and moved by the KASLR offset; without a vmlinux, from kallsyms in the dump, with
  the letters the kallsyms tables keep (:mod:`kdx.model.symtypes`);
- module symbols from each module's kallsyms in memory (``mod->kallsyms``), which needs
  no debug info and still holds a module's init symbols while its init function runs.
  Their type letters come from the kernel's own ``typetab``.

Source lines come from drgn's DWARF line tables. Everything here is plain data; the
table is built once per program, by the address namer that owns it.
"""

from __future__ import annotations

import bisect
import struct
from array import array
from collections import deque
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, overload

import drgn

from kdx.model.modules import ModuleInfo, ModuleRegion, module_at
from kdx.model.records import Hex
from kdx.model.symtypes import kallsyms_letters, program_tables
from kdx.target.elfinfo import Section, section_table

if TYPE_CHECKING:
    from kdx.model.symbol_cache import Columns

_SHT_SYMTAB = 2
_SHT_NOBITS = 8
_SHF_WRITE = 0x1
_SHF_ALLOC = 0x2
_SHF_EXECINSTR = 0x4
_SHN_UNDEF = 0
_SHN_ABS = 0xFFF1
_SHN_COMMON = 0xFFF2
_STB_LOCAL, _STB_GLOBAL, _STB_WEAK, _STB_GNU_UNIQUE = 0, 1, 2, 10
_STT_OBJECT, _STT_SECTION, _STT_GNU_IFUNC = 1, 3, 10
_ELF64_SYM = struct.Struct("<IBBHQQ")

#: Name suffixes of compiler clones that crash (strip_symbol_end) cuts off.
_CLONE_MARKS = (".isra.", ".part.", ".llvm.")


@dataclass(frozen=True)
class SymbolEntry:
    """One row of the table: a symbol, or (``marker`` set) a module region boundary
    that crash lists as ``ADDR MODULE TEXT START: name``."""

    address: Hex
    type: str  # nm(1) letter: t/T text, d/D data, r/R read-only, b/B bss...
    name: str
    module: str | None = None
    marker: str | None = None


@dataclass(frozen=True)
class SymbolHit:
    """A symbol found for a query, with the source line of text addresses."""

    address: Hex  # the address asked about (the symbol's own for a name)
    type: str
    name: str
    offset: int
    module: str | None
    source_file: str | None
    source_line: int | None


@dataclass(frozen=True)
class SymbolAnswer:
    """What ``sym ARG`` says about one argument."""

    query: str
    hits: list[SymbolHit] = field(default_factory=list)
    alternatives: list[SymbolEntry] = field(default_factory=list)  # name not found
    error: str | None = None  # e.g. "invalid address"


class ModuleSymbols:
    """One module's symbols from its kallsyms, with each symbol's size (``sizes[i]`` is
    that of ``entries[i]``).

    Given ``read`` instead of the rows, they are read from the module's kallsyms the
    first time they are asked for: naming a stack's kernel frames needs no module's
    symbols, only where each module lies (``info``). ``read`` returns the rows and a
    warning when they cannot be read (then there are none)."""

    def __init__(self, info: ModuleInfo, entries: list[SymbolEntry] | None = None,
                 sizes: list[int] | None = None, *,
                 read: Callable[[], tuple[list[tuple[SymbolEntry, int]], str | None]]
                 | None = None) -> None:
        self.info = info
        self._entries = entries
        self._sizes = sizes if sizes is not None else []
        self._read = read
        self.warning: str | None = None

    @property
    def entries(self) -> list[SymbolEntry]:
        """The symbols in address order, kallsyms order among equals."""
        if self._entries is None:
            rows, self.warning = self._read() if self._read is not None else ([], None)
            self._entries, self._sizes = [e for e, _ in rows], [n for _, n in rows]
        return self._entries

    @property
    def sizes(self) -> list[int]:
        self.entries  # noqa: B018 - reads the rows on first use
        return self._sizes


class SymbolTable:
    """crash's symbol table as data: the index the address namer
    (:mod:`kdx.model.names`) names addresses from, and ``sym``'s listings and searches
    over the same rows. It holds no naming rule of its own."""

    def __init__(self, kernel: Sequence[SymbolEntry], modules: list[ModuleSymbols],
                 first_kernel: int, warnings: list[str],
                 kernel_sizes: Sequence[int] | None = None) -> None:
        self.kernel = kernel
        self.modules = modules
        self._warnings = warnings
        self.addresses: Sequence[int] = kernel.addresses if isinstance(
            kernel, KernelRows) else [e.address for e in kernel]
        self.kernel_sizes = kernel_sizes or [0] * len(kernel)
        self.first_kernel = first_kernel
        self._names: dict[str, list[SymbolEntry]] | None = None

    @property
    def warnings(self) -> list[str]:
        """What could not be read, every module's symbols included (which are otherwise
        read only when first asked for)."""
        for mod in self.modules:
            mod.entries  # noqa: B018 - reads the rows on first use
            if mod.warning is not None and mod.warning not in self._warnings:
                self._warnings.append(mod.warning)
        return self._warnings

    def named(self, name: str) -> list[SymbolEntry]:
        """Every symbol called ``name``: kernel ones first, then modules in crash's order."""
        if self._names is None:
            names: dict[str, list[SymbolEntry]] = {}
            for entry in self.all_symbols():
                names.setdefault(entry.name, []).append(entry)
            self._names = names
        return self._names.get(name, [])

    def search(self, text: str) -> Iterator[SymbolEntry]:
        """Symbols whose name contains ``text`` (crash's ``sym -q``), in table order."""
        return (e for e in self.all_symbols() if text in e.name)

    def all_symbols(self) -> Iterator[SymbolEntry]:
        yield from self.kernel
        for mod in self.modules:
            yield from mod.entries

    def neighbour(self, entry: SymbolEntry, step: int) -> SymbolEntry | None:
        """The symbol before (-1) or after (+1) ``entry`` in its own table. As crash's
        next_symbol, the kernel symbol after one is the next at a higher address (its
        aliases are passed over); the one before is simply the previous row."""
        table = self.kernel if entry.module is None else next(
            (m.entries for m in self.modules if m.info.name == entry.module), [])
        try:
            i = table.index(entry)
        except ValueError:
            return None
        j = i + step
        if step > 0 and entry.module is None:
            while j < len(table) and table[j].address <= entry.address:
                j += 1
        return table[j] if 0 <= j < len(table) else None

    # -- listings --------------------------------------------------------------------------

    def module_rows(self, name: str | None = None) -> Iterator[SymbolEntry]:
        """Each module's region markers around the symbols in the region, as crash's
        ``sym -m`` prints them (regions of size 0 are left out, as crash does)."""
        for mod in self.modules:
            if name is not None and mod.info.name != name:
                continue
            for region in mod.info.regions:
                if not region.size:
                    continue
                start, end = _region_labels(region)
                yield SymbolEntry(region.base, "", mod.info.name, mod.info.name, start)
                yield from (e for e in mod.entries if region.contains(e.address))
                yield SymbolEntry(region.base + region.size, "", mod.info.name,
                                  mod.info.name, end)


def _region_labels(region: ModuleRegion) -> tuple[str, str]:
    """crash's words for a region's ends: MODULE START/END and MODULE INIT START/END
    before 6.4, MODULE <TYPE> START/END with the memory type from 6.4."""
    kind = {"CORE": "", "INIT": "INIT "}.get(region.kind, region.kind + " ")
    return f"MODULE {kind}START", f"MODULE {kind}END"


# --- building the table -------------------------------------------------------------------


def symbol_table(prog: drgn.Program, vmlinux: Path | None,
                 modules: list[ModuleInfo]) -> SymbolTable:
    """Build crash's table for ``prog``; module symbols that cannot be read are warned
    about and left out."""
    warnings: list[str] = []
    if vmlinux is None:
        kernel, sizes, first = _kallsyms_kernel_symbols(prog, modules, warnings)
    else:
        kernel, sizes, first = _kernel_symbols(prog, vmlinux)
    mods = [ModuleSymbols(info, read=partial(_module_rows_or_warning, prog, info))
            for info in modules]
    return SymbolTable(kernel, mods, first, warnings, sizes)


def _module_rows_or_warning(prog: drgn.Program, info: ModuleInfo
                            ) -> tuple[list[tuple[SymbolEntry, int]], str | None]:
    try:
        return _module_kallsyms_rows(prog, info), None
    except (drgn.FaultError, LookupError, AttributeError, ValueError) as err:
        return [], f"cannot read the symbols of module {info.name}: {err}"


def strip_clone_suffix(name: str) -> str:
    """``foo.isra.0`` -> ``foo``: crash names compiler clones after the original."""
    if "." not in name:  # nearly every name: the table holds ~120,000 of them
        return name
    for mark in _CLONE_MARKS:
        cut = name.find(mark)
        if cut >= 0:
            return name[:cut]
    return name


def _section_letter(sec: Section) -> str:
    """The letter BFD (decode_section_type) gives symbols of a section, lower case."""
    has_contents = sec.type != _SHT_NOBITS
    loads = bool(sec.flags & _SHF_ALLOC) and has_contents
    if sec.flags & _SHF_EXECINSTR:
        return "t"
    if loads:
        return "d" if sec.flags & _SHF_WRITE else "r"
    if not has_contents:
        return "b"
    if sec.name.startswith((".debug", ".zdebug", ".gnu.linkonce.wi.", ".line", ".stab")):
        return "N"
    return "n" if not sec.flags & _SHF_WRITE else "?"


def nm_letter(bind: int, kind: int, shndx: int, sections: list[Section]) -> str:
    """The nm(1) type letter of an ELF symbol, by BFD's rules (bfd_decode_symclass)."""
    if shndx == _SHN_COMMON:
        return "C"
    if shndx == _SHN_UNDEF:
        if bind == _STB_WEAK:
            return "v" if kind == _STT_OBJECT else "w"
        return "U"
    if kind == _STT_GNU_IFUNC:
        return "i"
    if bind == _STB_WEAK:
        return "V" if kind == _STT_OBJECT else "W"
    if bind == _STB_GNU_UNIQUE:
        return "u"
    if bind not in (_STB_LOCAL, _STB_GLOBAL):
        return "?"
    if shndx == _SHN_ABS:
        letter = "a"
    elif shndx < len(sections):
        letter = _section_letter(sections[shndx])
    else:
        return "?"
    return letter.upper() if bind == _STB_GLOBAL else letter


def _symtab(path: Path) -> tuple[list[tuple[str, int, int, int, int]], list[Section]]:
    """(name, st_info, section index, value, size) of every ``.symtab`` symbol of an ELF
    file but the null one, and its sections."""
    with open(path, "rb") as f:
        sections = section_table(f)
        symtab = next((s for s in sections if s.type == _SHT_SYMTAB), None)
        if symtab is None:
            raise ValueError(f"{path} has no symbol table")
        strtab = sections[symtab.link]
        f.seek(symtab.offset)
        data = f.read(symtab.size)
        f.seek(strtab.offset)
        strings = f.read(strtab.size)
    text = strings.decode("latin-1")  # one decode: names are ASCII, slices stay cheap
    rows = [(text[name_off:text.index("\0", name_off)], info, shndx, value, size)
            for name_off, info, _other, shndx, value, size in _ELF64_SYM.iter_unpack(data[24:])]
    return rows, sections


def elf_symbols(path: Path) -> tuple[list[tuple[int, str, str, int]], list[Section]]:
    """(value, name, nm letter, size) of every defined ``.symtab`` symbol of an ELF file,
    in BFD's order (address, then name: strcmp, and kernel names are ASCII), named as
    BFD names them (a section symbol after its section), and its sections."""
    rows, sections = _symtab(path)
    pairs = {(info, shndx) for _name, info, shndx, _value, _size in rows}
    letters = {pair: nm_letter(pair[0] >> 4, pair[0] & 0xF, pair[1], sections)
               for pair in pairs}  # the letter depends on st_info and section alone
    out = [(value, name or _section_name(info, shndx, sections), letters[info, shndx], size)
           for name, info, shndx, value, size in rows if shndx != _SHN_UNDEF]
    out.sort()
    return out, sections


def _section_name(info: int, shndx: int, sections: list[Section]) -> str:
    if info & 0xF == _STT_SECTION and shndx < len(sections):
        return sections[shndx].name
    return ""


def module_sections(path: Path, entries: list[SymbolEntry]) -> list[tuple[str, int, int]]:
    """(name, address, size) of the sections of the .ko at ``path`` that the loaded
    module's symbols ``entries`` fall in, in the .ko's section order: where each section
    was loaded is the address of a symbol in it minus the symbol's offset in the file."""
    rows, sections = _symtab(path)
    defined: dict[str, tuple[int, int]] = {}
    for name, _info, shndx, value, _size in rows:
        if 0 < shndx < len(sections):
            defined.setdefault(name, (shndx, value))
    starts: dict[int, int] = {}
    for entry in entries:
        if entry.name not in defined:
            continue
        shndx, value = defined[entry.name]
        if shndx in starts:
            continue
        if any(start <= entry.address < start + sections[i].size
               for i, start in starts.items()):
            continue
        starts[shndx] = entry.address - value
    # crash keeps no section of size 0 (6.12's empty .data holds __start_alloc_tags)
    return [(sections[i].name, starts[i], sections[i].size) for i in sorted(starts)
            if sections[i].size]


def _kaslr_offset(prog: drgn.Program) -> int:
    try:
        return prog.main_module().debug_file_bias or 0
    except LookupError:
        return 0


def _kernel_symbols(prog: drgn.Program, vmlinux: Path) -> tuple[KernelRows, Sequence[int], int]:
    """crash's kernel table, the size of each symbol and the address of the first kernel
    (non per-CPU) symbol.

    Sorted as BFD sorts minisymbols (address, then name; the undefined symbols BFD puts
    first are never kept); before ``_text`` only per-CPU symbols survive; addresses
    inside the kernel's sections move by the KASLR offset, absolute and per-CPU ones do
    not.
    """
    from kdx.model.symbol_cache import cached_columns

    stored = _columns(*cached_columns(vmlinux, lambda: _vmlinux_rows(vmlinux)))
    if stored is None:  # a cache of another shape: the rows as the vmlinux gives them
        from kdx.model.symbol_cache import as_views

        stored = _columns(*as_views(_vmlinux_rows(vmlinux)))
        assert stored is not None
    values, names, letters, sizes, first, (low, high) = stored
    offset = _kaslr_offset(prog)
    # values are sorted, so the ones that move are one run of them
    lo, hi = bisect.bisect_left(values, low), bisect.bisect_right(values, high)
    rows = KernelRows(_Relocated(values, lo, hi, offset), letters, names)
    first_address = first + offset if low <= first <= high else first
    return rows, sizes, first_address


def _vmlinux_rows(vmlinux: Path) -> Columns:
    """What the kernel's table takes from the vmlinux alone, before the KASLR offset:
    the first kernel symbol's address and the span of addresses that relocate, then the
    kept symbols as columns: file addresses, sizes, where each name starts in ``names``
    (one more than there are names), nm letters (one byte each) and the names (Latin-1,
    each followed by a newline).

    Flat columns rather than 120,000 objects, so that :mod:`kdx.model.symbol_cache`
    maps them back at once and a session makes only the names and addresses it asks
    about."""
    raw, sections = elf_symbols(vmlinux)
    start, first = _first_kernel_symbol(raw)
    kept = _per_cpu_symbols(raw[:start]) + raw[start:]
    kept = [(value, strip_clone_suffix(name), letter, size)
            for value, name, letter, size in kept if name]
    starts = array("I", [0])
    for row in kept:
        starts.append(starts[-1] + len(row[1]) + 1)
    names = "".join(f"{r[1]}\n" for r in kept).encode("latin-1")
    return (first, _relocated_span(sections)), {
        "values": ("Q", array("Q", [r[0] for r in kept]).tobytes()),
        "sizes": ("Q", array("Q", [r[3] for r in kept]).tobytes()),
        "starts": ("I", starts.tobytes()),
        "letters": ("B", "".join(r[2] for r in kept).encode("latin-1")),
        "names": ("B", names),
    }


def _columns(small: Any, columns: dict[str, memoryview]
             ) -> tuple[memoryview, _Names, str, memoryview, int, tuple[int, int]] | None:
    """The stored rows as sequences (addresses, names, letters, sizes) with the first
    kernel symbol and the relocated span; None when they do not fit together (a cache
    written by another build of kdx)."""
    try:
        first, (low, high) = small
        values, sizes, starts = columns["values"], columns["sizes"], columns["starts"]
        letters, names = str(columns["letters"], "latin-1"), columns["names"]
    except (KeyError, TypeError, ValueError):
        return None
    if not (isinstance(first, int) and isinstance(low, int) and isinstance(high, int)
            and len(values) == len(sizes) == len(letters) == len(starts) - 1
            and (not len(values) or starts[len(values)] == len(names))):
        return None
    return values, _Names(names, starts), letters, sizes, first, (low, high)


class _Relocated(Sequence[int]):
    """Sorted file addresses with the run ``[lo, hi)`` moved by the KASLR offset, added
    as each address is asked for: a session looks up a few hundred of 120,000."""

    def __init__(self, values: Sequence[int], lo: int, hi: int, offset: int) -> None:
        self._values, self._lo, self._hi, self._offset = values, lo, hi, offset

    def __len__(self) -> int:
        return len(self._values)

    @overload
    def __getitem__(self, i: int) -> int: ...

    @overload
    def __getitem__(self, i: slice) -> list[int]: ...

    def __getitem__(self, i: int | slice) -> int | list[int]:
        if isinstance(i, slice):
            return [self[j] for j in range(*i.indices(len(self)))]
        if i < 0:
            i += len(self._values)
        value = self._values[i]
        return value + self._offset if self._lo <= i < self._hi else value

    def __iter__(self) -> Iterator[int]:
        values, lo, hi = self._values, self._lo, self._hi
        yield from values[:lo]
        yield from map(self._offset.__add__, values[lo:hi])
        yield from values[hi:]

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Sequence) and list(self) == list(other)

    __hash__ = None  # type: ignore[assignment]


class _Names(Sequence[str]):
    """Symbol names kept as one block of Latin-1 text, each cut out when it is asked for."""

    def __init__(self, text: memoryview, starts: Sequence[int]) -> None:
        self._text, self._starts = text, starts

    def __len__(self) -> int:
        return len(self._starts) - 1

    @overload
    def __getitem__(self, i: int) -> str: ...

    @overload
    def __getitem__(self, i: slice) -> list[str]: ...

    def __getitem__(self, i: int | slice) -> str | list[str]:
        if isinstance(i, slice):
            return [self[j] for j in range(*i.indices(len(self)))]
        if i < 0:
            i += len(self)
        if not 0 <= i < len(self):
            raise IndexError("symbol index out of range")
        return str(self._text[self._starts[i]:self._starts[i + 1] - 1], "latin-1")

    def __iter__(self) -> Iterator[str]:
        return iter(str(self._text, "latin-1").split("\n")[:-1])

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Sequence) and list(self) == list(other)

    __hash__ = None  # type: ignore[assignment]


def _first_kernel_symbol(raw: list[tuple[int, str, str, int]]) -> tuple[int, int]:
    """Index and (file) address of ``_text``/``_stext``: crash's first kernel symbol."""
    for i, (value, name, _letter, _size) in enumerate(raw):
        if name in ("_text", "_stext"):
            return i, value
    return len(raw), 0


def _per_cpu_symbols(early: list[tuple[int, str, str, int]]) -> list[tuple[int, str, str, int]]:
    """The symbols before ``_text`` crash keeps (x86_64_verify_symbol): from
    ``__per_cpu_start`` on, the per-CPU ones (data, or named ``per_cpu*``)."""
    at = next((i for i, row in enumerate(early) if row[1] == "__per_cpu_start"), None)
    if at is None:
        return []
    return [early[at]] + [row for row in early[at + 1:]
                          if row[1].startswith("per_cpu") or row[1] == "__per_cpu_end"
                          or row[2] in "VdD"]


class KernelRows(Sequence[SymbolEntry]):
    """The kernel's rows of the table, kept as columns: ~120,000 symbols cost a third of
    a second less than as objects, and ``sym -l`` makes each row only when it prints it."""

    def __init__(self, addresses: Sequence[int], types: Sequence[str],
                 names: Sequence[str]) -> None:
        self.addresses = addresses
        self.types = types
        self.names = names

    def __len__(self) -> int:
        return len(self.addresses)

    @overload
    def __getitem__(self, i: int) -> SymbolEntry: ...

    @overload
    def __getitem__(self, i: slice) -> list[SymbolEntry]: ...

    def __getitem__(self, i: int | slice) -> SymbolEntry | list[SymbolEntry]:
        if isinstance(i, slice):
            return [self[j] for j in range(*i.indices(len(self)))]
        return SymbolEntry(self.addresses[i], self.types[i], self.names[i])

    def __iter__(self) -> Iterator[SymbolEntry]:
        return map(SymbolEntry, self.addresses, self.types, self.names)

    def index(self, entry: object, start: int = 0, stop: int | None = None) -> int:
        """Where ``entry`` is, found by address first."""
        if isinstance(entry, SymbolEntry) and entry.module is None and entry.marker is None:
            i = bisect.bisect_left(self.addresses, entry.address)
            while i < len(self) and self.addresses[i] == entry.address:
                if self.names[i] == entry.name and self.types[i] == entry.type:
                    return i
                i += 1
        raise ValueError(f"{entry!r} is not in the kernel's symbols")


def _kallsyms_kernel_symbols(prog: drgn.Program, modules: list[ModuleInfo],
                             warnings: list[str]) -> tuple[KernelRows, list[int], int]:
    """The kernel's symbols from the program's symbol finder, for a program without a
    vmlinux file (kallsyms, from the dump provider): crash's order (address, then name,
    as the vmlinux path sorts them) and filters, letters from the kallsyms tables.

    What kallsyms cannot give: sizes (drgn guesses them from the next symbol), the
    absolute and section symbols and the compiler's ``.L`` labels scripts/kallsyms
    leaves out, and the letters of per-CPU symbols, which x86_64 kernels up to 6.14
    mark ``A`` (absolute) whatever they were.
    """
    low, high = _module_span(modules)
    symbols = [s for s in _drgn_symbols(prog)
               if s.name and (not low <= s.address < high
                              or module_at(modules, s.address) is None)]
    raw = [(s.address, s.name, letter, s.size)
           for s, letter in zip(symbols, _symbol_letters(prog, symbols, warnings))]
    raw.sort()
    start, first = _first_kernel_symbol(raw)
    low, high = _per_cpu_bounds(raw[:start])
    kept = [row for row in raw[:start] if low <= row[0] <= high] + raw[start:]
    rows = KernelRows([r[0] for r in kept], [r[2] for r in kept],
                      [strip_clone_suffix(r[1]) for r in kept])
    return rows, [r[3] for r in kept], first


def _module_span(modules: list[ModuleInfo]) -> tuple[int, int]:
    """The lowest and highest address of any module region, so that the kernel's ~100,000
    symbols (all outside it) skip the per-module lookup."""
    spans = [(r.base, r.base + r.size) for m in modules for r in m.regions if r.size]
    if not spans:
        return 0, 0
    return min(s for s, _ in spans), max(e for _, e in spans)


def _per_cpu_bounds(early: list[tuple[int, str, str, int]]) -> tuple[int, int]:
    """``__per_cpu_start`` and ``__per_cpu_end`` among the symbols below the kernel: the
    per-CPU offsets crash keeps before ``_text``; (1, 0) when there are none."""
    bounds = {n: a for a, n, _, _ in early if n in ("__per_cpu_start", "__per_cpu_end")}
    return bounds.get("__per_cpu_start", 1), bounds.get("__per_cpu_end", 0)


def _symbol_letters(prog: drgn.Program, symbols: list[drgn.Symbol],
                    warnings: list[str]) -> list[str]:
    """The letter of each of ``symbols``, read from the kallsyms tables (found through
    VMCOREINFO or the provider: :func:`kdx.model.symtypes.program_tables`); guessed
    from drgn's kind and binding, with a warning, when they cannot be read. drgn lists
    kallsyms symbols in the tables' order, which pairs them at once; any other order
    is paired by name (a name's symbols in address order)."""
    tables = program_tables(prog)
    if tables is None:
        warnings.append("the kallsyms tables are not known: kernel symbol types are "
                        "guessed from drgn's symbol kinds")
        return [_letter_from_symbol(s) for s in symbols]
    try:
        pairs = kallsyms_letters(prog, tables)
    except (drgn.FaultError, ValueError, IndexError) as err:
        warnings.append(f"cannot read the kernel's symbol types from kallsyms: {err}")
        return [_letter_from_symbol(s) for s in symbols]
    if [s.name for s in symbols] == [name for name, _ in pairs]:
        return [letter for _, letter in pairs]
    by_name: dict[str, deque[str]] = {}
    for name, letter in pairs:
        by_name.setdefault(name, deque()).append(letter)
    return [queue.popleft() if (queue := by_name.get(s.name)) else _letter_from_symbol(s)
            for s in symbols]


def _letter_from_symbol(sym: drgn.Symbol) -> str:
    """A letter from drgn's kind and binding alone: text or data, local or global."""
    weak = sym.binding == drgn.SymbolBinding.WEAK
    if weak:
        return "V" if sym.kind == drgn.SymbolKind.OBJECT else "W"
    letter = "t" if sym.kind == drgn.SymbolKind.FUNC else "d"
    return letter.upper() if sym.binding == drgn.SymbolBinding.GLOBAL else letter


def _drgn_symbols(prog: drgn.Program) -> list[drgn.Symbol]:
    try:
        return list(prog.symbols())
    except (LookupError, ValueError):
        return []


def _relocated_span(sections: list[Section]) -> tuple[int, int]:
    """The addresses crash relocates: from ``.text`` to the end of the furthest section
    that follows it in the section table."""
    start = next((i for i, s in enumerate(sections) if s.name == ".text"), None)
    if start is None:
        return 1, 0
    return sections[start].addr, max(s.addr + s.size for s in sections[start:])


def module_kallsyms(prog: drgn.Program, info: ModuleInfo) -> list[SymbolEntry]:
    """A module's symbols from its in-memory kallsyms: what the kernel itself knows,
    without debug info. Like crash, only defined, named symbols inside the module's
    regions are kept; their order is the kallsyms order, stably sorted by address."""
    return [entry for entry, _size in _module_kallsyms_rows(prog, info)]


def _module_kallsyms_rows(prog: drgn.Program,
                          info: ModuleInfo) -> list[tuple[SymbolEntry, int]]:
    """``module_kallsyms`` with each symbol's size."""
    mod = drgn.Object(prog, "struct module *", info.address)
    try:
        ks = mod.kallsyms
    except AttributeError:  # before 4.5 the fields sit in struct module
        ks = mod
    count = ks.num_symtab.value_()
    if count <= 1:
        return []
    symtab = prog.read(ks.symtab.value_(), count * _ELF64_SYM.size)
    types = _typetab(prog, ks, count)
    rows = list(_ELF64_SYM.iter_unpack(symtab))
    strings = _read_strtab(prog, ks.strtab.value_(), max(r[0] for r in rows))
    out = []
    for i in range(1, count):
        name_off, st_info, _other, shndx, value, size = rows[i]
        if shndx == _SHN_UNDEF or info.region_of(value) is None:
            continue
        name = strings[name_off:strings.find(b"\0", name_off)].decode(errors="replace")
        if not name:
            continue
        letter = types[i] if types is not None else _letter_from_info(st_info)
        if types is not None and st_info >> 4 == _STB_GLOBAL:
            letter = letter.upper()  # the kernel keeps it lower case; nm and crash do not
        out.append((SymbolEntry(value, letter, strip_clone_suffix(name), info.name), size))
    out.sort(key=lambda row: row[0].address)
    return out


def _typetab(prog: drgn.Program, ks: drgn.Object, count: int) -> str | None:
    """The nm letters the kernel keeps for module symbols (Linux 5.2+), lower case."""
    try:
        address = ks.typetab.value_()
    except AttributeError:
        return None
    return prog.read(address, count).decode("latin-1")


def _letter_from_info(st_info: int) -> str:
    """Before 5.2 the kernel stored the nm letter in st_info."""
    return chr(st_info) if 0x20 <= st_info < 0x7F else "?"


def _read_strtab(prog: drgn.Program, address: int, last_offset: int) -> bytes:
    """The string table up to the end of its last-referenced name, read in one piece."""
    data = prog.read(address, last_offset + 1)
    while data.find(b"\0", last_offset) < 0:
        data += prog.read(address + len(data), 256)
    return data


# --- answers ---------------------------------------------------------------------------------


def is_text(entry: SymbolEntry) -> bool:
    return entry.type in ("t", "T", "W", "w", "m") and entry.marker is None


def source_line(prog: drgn.Program, address: int) -> tuple[str, int] | None:
    """File and line of a text address, innermost inlined call first (as gdb reports
    it); None without line tables for it (a module without debug info)."""
    try:
        locations = prog.source_location(address)
    except (LookupError, ValueError, drgn.FaultError):
        return None
    if not len(locations) or not locations[0].line:
        return None
    return locations[0].filename, locations[0].line


def hit(prog: drgn.Program, entry: SymbolEntry, offset: int, lines: bool = True) -> SymbolHit:
    """A table entry as a query answer, with its source line when it is text."""
    where = source_line(prog, entry.address + offset) if lines and is_text(entry) else None
    return SymbolHit(entry.address + offset, entry.type, entry.name, offset, entry.module,
                     where[0] if where else None, where[1] if where else None)


def named_answer(prog: drgn.Program, table: SymbolTable, query: str) -> SymbolAnswer | None:
    """``sym NAME``: every symbol called ``query``; None when no symbol is (then crash
    reads the argument as an address, see :func:`kdx.model.names.symbol_answer`)."""
    named = table.named(query)
    if not named:
        return None
    return SymbolAnswer(query, hits=[hit(prog, e, 0) for e in named])


def parse_address(text: str) -> int | None:
    """crash's hexadecimal(): hex digits with an optional ``0x``, no sign."""
    digits = text[2:] if text.lower().startswith("0x") else text
    if not digits or any(c not in "0123456789abcdefABCDEF" for c in digits):
        return None
    return int(digits, 16)
