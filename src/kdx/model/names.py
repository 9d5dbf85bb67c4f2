"""One address namer: ``symbol+offset [module]`` as every kdx command and the diagnosis
print it.

crash users read ``sym``, ``rd -s``, ``dis``, ``bt`` and ``kmem`` side by side, and crash
names an address the same way in all of them (symbols.c value_search over one sorted
table). kdx had grown a namer per command, each with its own alias rule, so one address
could get two names. This module is the only place that decides; commands format the
records it returns.

The policy
----------
**Index.** One table per drgn Program, built on first use and kept in ``prog.cache``
(see :mod:`kdx.model.symbols` for how it is read):

- kernel symbols from the vmlinux ``.symtab``, all of them as crash stores them:
  functions, objects, zero-sized assembly labels (``entry_SYSCALL_64_after_hwframe``),
  section symbols named after their section (``.bss``) and the compiler's string-literal
  labels (``.LC0``); sorted by address, then name; per-CPU offsets before ``_text``
  left out; moved by the KASLR offset. Without a vmlinux, the kernel's symbols come
  from kallsyms in the dump (the program's symbol finder), with their nm letters read
  from the kallsyms tables and sorted the same way: the same names, except for the
  symbols kallsyms never holds (``.LC`` labels, section and absolute symbols,
  ``__crc_``/``__kstrtab_`` names), and the per-CPU symbols lettered ``A``.
- module symbols from each module's kallsyms in memory, core and init regions alike, so
  a module without debug info is named and a module still initialising has its init
  text named (``hello_init+17``, where crash 8.0.6 says
  ``_MODULE_INIT_START_hello_crash+17``: the one deliberate difference).

**Clone suffixes.** ``.isra.N``, ``.part.N`` and ``.llvm.N`` are cut from a name, as
crash's strip_symbol_end cuts them (``finish_task_switch.isra.0`` is
``finish_task_switch``); ``.constprop.N`` and ``.cold`` stay: crash keeps them, and a
``.cold`` part is a different piece of code, not a copy.

**Kernel addresses.** An address from the first kernel symbol (``_text``) to the last
one is named after the symbol at or before it. Among aliases (several names at one
address) the address itself gets the first name in the table's order (``jiffies`` over
``jiffies_64``, ``_stext`` over ``startup_64``, ``__memset`` over ``memset``), except
that a section-like ``.text.*`` name, a ``SyS_``/``compat_SyS_`` syscall alias and a
``*_text_start`` region marker give way to the next name; any later byte gets the
last name before it (``jiffies_64+4``, ``memset+2``, ``entry_SYSCALL_64_after_hwframe+110``).

**Module addresses.** An address inside a module's region (text, data, init...) is named
after the nearest module symbol at or before it in the same region; among aliases the
first in the module's kallsyms order, which puts the module's own name before the
``init_module``/``cleanup_module`` aliases the kernel adds. Before the first symbol of a
region the name is crash's pseudo-symbol for the region (``_MODULE_START_loop``, type
``m``).

**Anything else** (user addresses, the direct map, per-CPU offsets, vmalloc, addresses
past the last kernel symbol) has no name: ``locate`` returns None.

Records are plain data (:class:`AddressName`); ``text()`` writes crash's ``name+offset``
with a decimal (or ``radix=16``) offset.
"""

from __future__ import annotations

import bisect
from dataclasses import dataclass
from pathlib import Path

import drgn

from kdx.model.modules import ModuleInfo, ModuleRegion, module_at, module_list
from kdx.model.records import Hex
from kdx.model.symbols import (
    ModuleSymbols,
    SymbolAnswer,
    SymbolHit,
    SymbolTable,
    named_answer,
    parse_address,
    source_line,
    strip_clone_suffix,
    symbol_table,
)

__all__ = ["AddressName", "AddressNamer", "address_namer", "strip_clone_suffix",
           "symbol_answer", "symbol_hit"]

#: Where the namer of a program and its index are kept in ``prog.cache``.
_CACHE_KEY = "kdx.address-namer"
_TABLE_KEY = "kdx.symbol-table"
#: nm letters crash counts as code (is_symbol_text); weak symbols only inside the text.
_TEXT_LETTERS = frozenset("tT")
_WEAK_LETTERS = frozenset("wW")
#: Names that give way to the next alias at the same address (crash's value_search).
_YIELDING_PREFIXES = (".text.", "SyS_", "compat_SyS_")


@dataclass(frozen=True)
class AddressName:
    """What an address is called: ``offset`` bytes into the symbol ``name`` that starts
    at ``start``. ``module`` is None for the kernel itself; ``size`` is the symbol's
    ELF size (0 for a label); ``type`` its nm(1) letter (``m`` for crash's pseudo-symbol
    of a module region)."""

    name: str
    start: Hex
    offset: int
    module: str | None = None
    size: int = 0
    type: str = "?"

    @property
    def is_function(self) -> bool:
        """Whether the symbol is code by its type letter (functions and weak symbols)."""
        return self.type in _TEXT_LETTERS or self.type in _WEAK_LETTERS

    def text(self, radix: int = 10) -> str:
        """crash's value_to_symstr: ``name``, ``name+17`` (or ``name+0x11``)."""
        if not self.offset:
            return self.name
        return f"{self.name}+{self.offset:#x}" if radix == 16 else f"{self.name}+{self.offset}"


class AddressNamer:
    """Names addresses by the module docstring's policy, from one index per program.

    Get it with :func:`address_namer` (one per program). The index is read on the first
    question (half a second for a distribution kernel's 120,000 symbols) and kept with
    the program, so another ``AddressNamer(prog)`` shares it; answers are cached, since a
    stack or a disassembly asks for the same few addresses again and again.
    """

    def __init__(self, prog: drgn.Program, table: SymbolTable | None = None,
                 vmlinux: Path | None = None) -> None:
        self.prog = prog
        self._table = table
        self._vmlinux = vmlinux
        self._cache: dict[int, AddressName | None] = {}
        self._text: tuple[int, int] | None = None

    @property
    def table(self) -> SymbolTable:
        """The index: crash's symbol table, which ``sym`` also lists."""
        if self._table is None:
            table = self.prog.cache.get(_TABLE_KEY)
            if table is None:
                vmlinux = self._vmlinux or _vmlinux_of(self.prog)
                modules, why = _modules(self.prog)
                table = symbol_table(self.prog, vmlinux, modules)
                if why:
                    table.warnings.append(why)
                self.prog.cache[_TABLE_KEY] = table
            self._table = table
        return self._table

    # -- naming ---------------------------------------------------------------------------

    def locate(self, address: int) -> AddressName | None:
        """The name of ``address``, or None when the policy gives it none."""
        if address not in self._cache:
            self._cache[address] = self._locate(address)
        return self._cache[address]

    def name(self, address: int, radix: int = 10) -> str | None:
        """``name+offset`` for ``address``, or None."""
        found = self.locate(address)
        return None if found is None else found.text(radix)

    def in_range(self, address: int) -> bool:
        """crash's in_ksymbol_range: from the first kernel symbol to the last, or a module."""
        table = self.table
        if table.kernel and table.first_kernel <= address <= table.kernel[-1].address:
            return True
        return self._module_at(address) is not None

    def next_start(self, address: int) -> int | None:
        """Where the next symbol after ``address`` starts, in the kernel or the module
        holding ``address`` (the end of a label without a size)."""
        found = self._module_at(address)
        if found is not None:
            symbols = self._module_symbols(found[0])
            return next((e.address for e in symbols.entries if e.address > address), None)
        addresses = self.table.addresses
        i = bisect.bisect_right(addresses, address)
        return addresses[i] if i < len(addresses) else None

    def is_text(self, address: int) -> bool:
        """Whether ``address`` is code, as crash's is_symbol_text() decides from the
        symbol's type letter; anything between ``_stext`` and ``_etext`` is code too."""
        found = self.locate(address)
        if found is not None and found.type in _TEXT_LETTERS:
            return True
        start, end = self._text_range()
        if found is not None and found.type in _WEAK_LETTERS:
            return start <= found.start < end
        return start <= address < end

    # -- the policy ---------------------------------------------------------------------------

    def _locate(self, address: int) -> AddressName | None:
        found = self._module_at(address)
        if found is not None:
            return self._module_name(found[0], found[1], address)
        return self._kernel_name(address)

    def _kernel_name(self, address: int) -> AddressName | None:
        table = self.table
        if not table.kernel or not table.first_kernel <= address <= table.kernel[-1].address:
            return None
        i = bisect.bisect_left(table.addresses, address)
        if i < len(table.kernel) and table.addresses[i] == address:
            i = self._preferred_alias(i)
        else:
            i -= 1
        entry = table.kernel[i]
        return AddressName(entry.name, entry.address, address - entry.address, None,
                           table.kernel_sizes[i], entry.type)

    def _preferred_alias(self, i: int) -> int:
        """The first name at an address, unless it is one crash passes over."""
        table = self.table
        entry = table.kernel[i]
        if i + 1 >= len(table.kernel) or table.addresses[i + 1] != entry.address:
            return i
        if entry.name.startswith(_YIELDING_PREFIXES) or "_text_start" in entry.name:
            return i + 1
        return i

    def _module_name(self, info: ModuleInfo, region: ModuleRegion,
                     address: int) -> AddressName:
        """The nearest symbol at or before ``address`` in its region, the first of its
        aliases in kallsyms order (a dotted label gives way to a real name)."""
        symbols = self._module_symbols(info)
        best: int | None = None
        for i, entry in enumerate(symbols.entries):
            if entry.address > address:
                break
            if not region.contains(entry.address):
                continue
            if best is None or entry.address > symbols.entries[best].address or (
                    entry.address == symbols.entries[best].address
                    and symbols.entries[best].name.startswith(".")
                    and not entry.name.startswith(".")):
                best = i
        if best is None:
            return AddressName(_region_pseudo_name(info, region), region.base,
                               address - region.base, info.name, 0, "m")
        entry = symbols.entries[best]
        size = symbols.sizes[best] if best < len(symbols.sizes) else 0
        return AddressName(entry.name, entry.address, address - entry.address, info.name,
                           size, entry.type)

    def _module_at(self, address: int) -> tuple[ModuleInfo, ModuleRegion] | None:
        return module_at([m.info for m in self.table.modules], address)

    def _module_symbols(self, info: ModuleInfo) -> ModuleSymbols:
        return next(m for m in self.table.modules if m.info is info)

    def _text_range(self) -> tuple[int, int]:
        """The kernel's text, from its first symbol (``_text``/``_stext``) to ``_etext``."""
        if self._text is None:
            try:
                end = self.prog.symbol("_etext").address
            except LookupError:
                end = 0
            self._text = (self.table.first_kernel, end)
        return self._text


def address_namer(prog: drgn.Program, vmlinux: Path | None = None) -> AddressNamer:
    """The program's one namer, built on first use and kept with the program."""
    namer = prog.cache.get(_CACHE_KEY)
    if namer is None:
        namer = prog.cache[_CACHE_KEY] = AddressNamer(prog, vmlinux=vmlinux)
    return namer


def symbol_hit(namer: AddressNamer, address: int, lines: bool = True) -> SymbolHit | None:
    """``address`` as ``sym`` and ``kmem`` show it (crash's show_symbol): type letter,
    name and offset, module, and the source line of code."""
    found = namer.locate(address)
    if found is None:
        return None
    where = None
    if lines and (found.is_function or found.type == "m"):
        where = source_line(namer.prog, address)
    return SymbolHit(address, found.type, found.name, found.offset, found.module,
                     where[0] if where else None, where[1] if where else None)


def symbol_answer(namer: AddressNamer, query: str) -> SymbolAnswer:
    """crash's ``sym ARG``: the symbols called ``ARG``, else the name of the hex address
    ``ARG``, else the symbols whose names contain it."""
    table = namer.table
    named = named_answer(namer.prog, table, query)
    if named is not None:
        return named
    address = parse_address(query)
    if address is not None:
        found = symbol_hit(namer, address) if namer.in_range(address) else None
        if found is None:
            return SymbolAnswer(query, error="invalid address")
        return SymbolAnswer(query, hits=[found])
    return SymbolAnswer(query, alternatives=list(table.search(query)))


def _region_pseudo_name(info: ModuleInfo, region: ModuleRegion) -> str:
    """The name of crash's pseudo-symbol at a region's start (``_MODULE_START_loop``,
    ``_MODULE_INIT_TEXT_START_hello_crash``), shown for an address before any symbol."""
    kind = {"CORE": "", "INIT": "INIT_"}.get(region.kind, region.kind + "_")
    return f"_MODULE_{kind}START_{info.name}"


def _modules(prog: drgn.Program) -> tuple[list[ModuleInfo], str | None]:
    """The loaded modules, and why there are none when the kernel's types are missing
    (a kernel without BTF: kernel symbols come from kallsyms, module ones cannot)."""
    try:
        return module_list(prog), None
    except LookupError as err:
        return [], f"modules are not named: no struct module type ({err})"


def _vmlinux_of(prog: drgn.Program) -> Path | None:
    """The vmlinux drgn reads the kernel's symbols from, if it has one."""
    try:
        path = prog.main_module().debug_file_path
    except LookupError:
        return None
    return Path(path) if path else None
