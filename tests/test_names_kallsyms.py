"""Addresses named from kallsyms, with no vmlinux symbol table: the same names as the
vmlinux gives, by the same policy, on real lab dumps of both kernels.

The kallsyms table is built on the shared opened dump with its vmlinux symbol finder
switched off and drgn's kallsyms finder the only one (as the dump provider registers
it), so the kernel's symbols come from the dump alone; module symbols come from the
modules' in-memory kallsyms either way. kallsyms lacks, by the kernel's design, the
symbols scripts/kallsyms leaves out (``__crc_``/``__kstrtab_``/``__kstrtabns_`` names,
``.L`` labels, section symbols, absolute symbols, the kallsyms tables themselves) and
the letters of per-CPU symbols (``A`` up to 6.14): those are the documented differences
and everything else must be equal.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from contextlib import contextmanager

import drgn
import pytest
from crash_script import kdx_sections
from drgn.helpers.linux.kallsyms import load_vmlinux_kallsyms
from test_log_vmcoreinfo import bare_program

from kdx.model.modules import module_list
from kdx.model.names import AddressName, AddressNamer, address_namer
from kdx.model.symbols import SymbolEntry, SymbolTable, symbol_table
from kdx.render.crash.sym import entry_lines
from kdx.target.elfinfo import section_table

#: A frame's return address, or an exception frame's RIP.
FRAME = re.compile(r"^\s*(?:#\s*\d+ \[[0-9a-f]+\] \S+ at|RIP:) ([0-9a-f]{16})")
#: Names scripts/kallsyms never stores (is_ignored_symbol), besides section symbols.
_IGNORED_PREFIXES = ("__crc_", "__kstrtab_", "__kstrtabns_", ".L")
_KALLSYMS_TABLES = {"kallsyms_addresses", "kallsyms_offsets", "kallsyms_relative_base",
                    "kallsyms_num_syms", "kallsyms_names", "kallsyms_markers",
                    "kallsyms_seqs_of_names", "kallsyms_token_table",
                    "kallsyms_token_index"}


@contextmanager
def kallsyms_only(prog: drgn.Program) -> Iterator[None]:
    """Kernel symbols from kallsyms alone while inside; the vmlinux's finder after."""
    enabled = prog.enabled_symbol_finders()
    if "kallsyms" not in prog.registered_symbol_finders():
        prog.register_symbol_finder("kallsyms", load_vmlinux_kallsyms(prog))
    prog.set_enabled_symbol_finders(["kallsyms"])
    try:
        yield
    finally:
        prog.set_enabled_symbol_finders(enabled)


@pytest.fixture(scope="module")
def namers(null_deref_each) -> tuple[AddressNamer, AddressNamer]:  # noqa: ANN001
    """(the vmlinux namer, a namer whose kernel symbols come from kallsyms)."""
    prog = null_deref_each.target.prog
    vmlinux = address_namer(prog)
    vmlinux.table  # noqa: B018 (built before the finders change)
    with kallsyms_only(prog):
        table = symbol_table(prog, None, module_list(prog))
    assert table.warnings == []
    return vmlinux, AddressNamer(prog, table=table)


def _key(found: AddressName | None) -> tuple | None:
    """Everything a name says but the size, which kallsyms does not record."""
    if found is None:
        return None
    return found.name, found.start, found.offset, found.module, found.type


def test_every_bt_frame_is_named_the_same(null_deref_each, namers) -> None:  # noqa: ANN001
    vmlinux, kallsyms = namers
    text = kdx_sections(null_deref_each.target, ["bt -a"]).sections["bt -a"]
    frames = [int(m[1], 16) for line in text.splitlines()
              if (m := FRAME.match(line)) and int(m[1], 16) >= 1 << 63]
    assert len(frames) > 10
    for address in frames:
        assert _key(kallsyms.locate(address)) == _key(vmlinux.locate(address)), hex(address)
    names = {kallsyms.name(a) for a in frames}
    assert any(n.startswith("hello_init+") for n in names)  # module init text
    assert any(n.startswith("entry_SYSCALL_64_after_hwframe+") for n in names)


def test_data_and_module_addresses_are_named_the_same(namers) -> None:  # noqa: ANN001
    vmlinux, kallsyms = namers
    prog = vmlinux.prog
    jiffies = prog.symbol("jiffies_64").address
    init_task = prog.symbol("init_task").address
    module_code = next(e for m in kallsyms.table.modules for e in m.entries
                       if e.type in "tT" and not e.name.startswith("__pfx_")
                       and not m.info.region_of(e.address).init)
    expected = {jiffies: "jiffies", jiffies + 4: "jiffies_64+4",
                init_task + 0x10: "init_task+16",
                module_code.address + 3: f"{module_code.name}+3"}
    for address, name in expected.items():
        assert kallsyms.name(address) == name
        assert _key(kallsyms.locate(address)) == _key(vmlinux.locate(address))
    assert kallsyms.locate(jiffies).type == "D"
    assert kallsyms.locate(module_code.address).module == module_code.module


def _documented(entry: SymbolEntry, sections: set[str]) -> bool:
    """A vmlinux symbol kallsyms does not hold, by the kernel's own choice."""
    return (entry.name.startswith(_IGNORED_PREFIXES) or entry.name in sections
            or entry.name in _KALLSYMS_TABLES or entry.type in "aA")


def test_sym_l_lists_the_same_kernel_symbols(null_deref_each, namers) -> None:  # noqa: ANN001
    vmlinux, kallsyms = namers
    with open(null_deref_each.vmlinux, "rb") as f:
        sections = {s.name for s in section_table(f)}
    theirs, ours = _split(vmlinux.table), _split(kallsyms.table)
    # per-CPU symbols: the same names at the same offsets, every letter "A"
    assert [(e.address, e.name) for e in ours[0]] == \
        [(e.address, e.name) for e in theirs[0]]
    assert {e.type for e in ours[0]} == {"A"}
    wanted = [e for e in theirs[1] if not _documented(e, sections)]
    assert len(wanted) > 80_000
    # the kallsyms tables list themselves from 6.4 or so on, not on 6.1
    tables = [e for e in ours[1] if e.name in _KALLSYMS_TABLES]
    assert set(tables) <= set(theirs[1])
    listed = [e for e in ours[1] if e.name not in _KALLSYMS_TABLES]
    assert list(entry_lines(listed)) == list(entry_lines(wanted))


def _split(table: SymbolTable) -> tuple[list[SymbolEntry], list[SymbolEntry]]:
    """(the per-CPU symbols before ``_text``, the kernel's own from ``_text`` on)."""
    rows = list(table.kernel)
    return ([e for e in rows if e.address < table.first_kernel],
            [e for e in rows if e.address >= table.first_kernel])


def test_a_program_without_types_names_kernel_addresses(null_deref) -> None:  # noqa: ANN001
    """No types at all (a kernel without BTF): kernel names still come from kallsyms;
    modules cannot be listed, and the table says so."""
    prog = bare_program(null_deref)
    prog.register_symbol_finder("kallsyms", load_vmlinux_kallsyms(prog), enable_index=0)
    namer = AddressNamer(prog)
    jiffies = prog.symbol("jiffies_64").address
    assert namer.name(jiffies + 4) == "jiffies_64+4"
    assert namer.locate(prog.symbol("schedule").address).type == "T"
    assert namer.table.modules == []
    assert any("no struct module type" in w for w in namer.table.warnings)


def test_letters_guessed_without_the_tables() -> None:
    """Without readable kallsyms tables, letters come from drgn's kind and binding
    (kallsyms' lower-case letters have binding UNKNOWN in drgn: local)."""
    from kdx.model.symbols import _letter_from_symbol

    def letter(binding: drgn.SymbolBinding, kind: drgn.SymbolKind) -> str:
        return _letter_from_symbol(drgn.Symbol("x", 1 << 63, 8, binding, kind))

    assert letter(drgn.SymbolBinding.GLOBAL, drgn.SymbolKind.FUNC) == "T"
    assert letter(drgn.SymbolBinding.UNKNOWN, drgn.SymbolKind.FUNC) == "t"
    assert letter(drgn.SymbolBinding.UNKNOWN, drgn.SymbolKind.OBJECT) == "d"
    assert letter(drgn.SymbolBinding.GLOBAL, drgn.SymbolKind.OBJECT) == "D"
    assert letter(drgn.SymbolBinding.WEAK, drgn.SymbolKind.UNKNOWN) == "W"
    assert letter(drgn.SymbolBinding.WEAK, drgn.SymbolKind.OBJECT) == "V"


def test_tables_left_by_a_provider_are_used(null_deref) -> None:  # noqa: ANN001
    """A provider that found the kallsyms tables by scanning memory (a kernel before
    6.0) leaves them in the program's cache; the letters are then read all the same."""
    from kdx.model.symtypes import TABLES_CACHE_KEY, program_tables

    typed = null_deref.target.prog
    note = b"\n".join(line for line in typed["VMCOREINFO"].string_().splitlines()
                      if not line.startswith(b"SYMBOL(kallsyms_")) + b"\n"
    prog = drgn.Program(typed.platform, vmcoreinfo=note)
    prog.set_core_dump(str(null_deref.target.read_path))
    assert program_tables(prog) is None
    prog.register_symbol_finder("kallsyms", load_vmlinux_kallsyms(typed), enable_index=0)
    guessed = AddressNamer(prog)
    assert guessed.locate(prog.symbol("init_task").address).type == "D"
    assert guessed.locate(prog.symbol("saved_command_line").address).type == "D"  # is B
    assert any("guessed" in w for w in guessed.table.warnings)
    vmcoreinfo = typed["VMCOREINFO"].string_().decode()
    lines = dict(line.split("=", 1) for line in vmcoreinfo.splitlines() if "=" in line)
    prog.cache.clear()
    prog.cache[TABLES_CACHE_KEY] = {
        field: int(lines[f"SYMBOL(kallsyms_{field})"], 16)
        for field in ("num_syms", "names", "token_table", "token_index")}
    read = AddressNamer(prog)
    assert read.locate(prog.symbol("saved_command_line").address).type == "B"
    assert read.locate(prog.symbol("jiffies_64").address + 4).type == "D"
    assert not any("guessed" in w for w in read.table.warnings)
