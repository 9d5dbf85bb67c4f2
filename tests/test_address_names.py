"""One name per address: ``sym``, ``kmem ADDR``, ``rd -s``, ``dis``, ``bt`` and ``p``
print the same ``symbol+offset`` for an address, and crash 8.0.6's, on real lab dumps.

The sample holds the return address of every frame of ``bt -a`` (named from the stack
slot by ``rd -s``), alias-rich symbols (``jiffies``/``jiffies_64``,
``_text``/``_stext``/``startup_64``), the ``entry_SYSCALL_64_after_hwframe`` label,
string literals (``.LC`` labels) pointed to by ``pageflag_names``, a function pointer of
``def_chr_fops`` as ``p`` shows it, the crashing module's init text (where
hello_crash faults) and a module's core text. The one documented difference from crash
is the module init text, which crash 8.0.6 cannot name (docs/crash-differences.md).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

import drgn
import pytest
from crash_script import crash_sections, kdx_sections

from kdx.model.modules import ModuleInfo, ModuleRegion
from kdx.model.names import AddressName, AddressNamer, address_namer
from kdx.model.symbols import ModuleSymbols, SymbolEntry, SymbolTable
from kdx.target.open import Target

FRAME = re.compile(r"^\s*#\s*\d+ \[([0-9a-f]+)\] (\S+) at ([0-9a-f]+)")
EXCEPTION_RIP = re.compile(r"\[exception RIP: (\S+)\]")
RIP = re.compile(r"^\s*RIP: ([0-9a-f]+)")
SHOWN = re.compile(r"^([0-9a-f]+) \((.)\) (\(\S+ module\)(?:\+\d+)?|\S+)")
DISASSEMBLED = re.compile(r"^0x([0-9a-f]+) <([^>]+)>:")
WORD = re.compile(r"^[0-9a-f]+:\s+(\S+)$")  # rd -s ADDR 1: a name replaces the value
POINTER = re.compile(r"= 0x([0-9a-f]+) <([^>]+)>")


@dataclass
class Sample:
    """An address, why it is in the sample, and each command's name for it."""

    address: int
    why: str
    text: bool = False  # code: ``dis`` names it too
    slot: int | None = None  # a stack word holding it: ``rd -s`` names it there
    names: dict[str, str] = field(default_factory=dict)  # command -> name (kdx)

    def commands(self) -> list[str]:
        out = [f"sym {self.address:x}", f"kmem {self.address:x}"]
        if self.text:
            out.append(f"dis {self.address:x} 1")
        if self.slot is not None:
            out.append(f"rd -s {self.slot:x} 1")
        return out


@pytest.fixture(scope="module")
def opened(null_deref_each) -> Target:  # noqa: ANN001 (fixture)
    """The shared opened dump's target (kdx_sections runs sessions on a Target)."""
    return null_deref_each.target


def _frames(text: str) -> tuple[list[tuple[int, str, int]], list[tuple[str, int]]]:
    """``bt -a``'s frames (stack slot, function, return address) and exception RIPs."""
    frames, exceptions = [], []
    pending: str | None = None
    for line in text.splitlines():
        if found := FRAME.match(line):
            frames.append((int(found[1], 16), found[2], int(found[3], 16)))
        elif found := EXCEPTION_RIP.search(line):
            pending = found[1]
        elif pending and (found := RIP.match(line)):
            exceptions.append((pending, int(found[1], 16)))
            pending = None
    return frames, exceptions


def _shown(text: str) -> str | None:
    """The name on the first line of ``sym``/``kmem`` output (crash's show_symbol)."""
    found = SHOWN.match(text.splitlines()[0]) if text else None
    return found[3] if found else None


def _name_in(command: str, text: str, sample: Sample) -> str | None:
    """What one command's output calls ``sample``."""
    if command.startswith(("sym ", "kmem ")):
        return _shown(text)
    if command.startswith("dis "):
        found = DISASSEMBLED.match(text)
        return found[2] if found and int(found[1], 16) == sample.address else None
    found = WORD.match(text)
    return found[1] if found and not re.fullmatch(r"[0-9a-f]{16}", found[1]) else None


def _samples(target: Target) -> tuple[dict[int, Sample], dict[int, str]]:
    """The sample, and bt's function name for each return address."""
    prog = target.prog
    first = ["bt -a", "p def_chr_fops"]
    texts = kdx_sections(target, first).sections
    samples: dict[int, Sample] = {}

    def add(address: int, why: str, text: bool = False, slot: int | None = None) -> None:
        sample = samples.setdefault(address, Sample(address, why))
        sample.text = sample.text or text
        sample.slot = sample.slot if sample.slot is not None else slot

    frames, exceptions = _frames(texts["bt -a"])
    bt_names = {}
    for slot, name, address in frames:
        if address >= 1 << 63:
            add(address, f"bt frame {name}", text=True, slot=slot)
            bt_names[address] = name
    for name, address in exceptions:
        add(address, f"exception RIP {name}", text=True)
        samples[address].names["bt"] = name
    jiffies = prog.symbol("jiffies_64").address
    add(jiffies, "jiffies and jiffies_64")
    add(jiffies + 4, "inside jiffies_64")
    add(prog.symbol("_text").address, "_text, _stext and startup_64", text=True)
    add(prog.symbol("startup_64").address + 8, "inside startup_64", text=True)
    label = prog.symbol("entry_SYSCALL_64_after_hwframe").address
    add(label + 8, "entry_SYSCALL_64_after_hwframe", text=True)
    for found in POINTER.finditer(texts["p def_chr_fops"]):
        address = int(found[1], 16)
        add(address, f"def_chr_fops member {found[2]}", text=True)
        samples[address].names["p"] = found[2]
    for i in range(4):  # {mask, "name"}: the names are string literals
        entry = prog["pageflag_names"][i]
        add(entry.name.value_(), f"string literal {i}", slot=entry.name.address_)
    table = address_namer(prog).table
    core = next(e for m in table.modules for e in m.entries
                if e.type in "tT" and not e.name.startswith("__pfx_")
                and not m.info.region_of(e.address).init)
    add(core.address + 3, f"module core text {core.name} [{core.module}]", text=True)
    return samples, bt_names


def _init_region(target: Target, address: int) -> bool:
    """Whether ``address`` is module init text, which crash 8.0.6 cannot name."""
    table = address_namer(target.prog).table
    return any(r.init and r.contains(address) for m in table.modules
               for r in m.info.regions)


def test_every_command_gives_an_address_the_same_name(opened, null_deref_each,
                                                      crash) -> None:  # noqa: ANN001
    samples, bt_names = _samples(opened)
    commands = [c for s in samples.values() for c in s.commands()]
    ours = kdx_sections(opened, commands).sections
    theirs = crash_sections(crash, null_deref_each, commands + ["bt -a"])
    crash_frames, _ = _frames(theirs["bt -a"])
    crash_bt = {address: name for _slot, name, address in crash_frames}
    compared_with_crash = 0
    for sample in samples.values():
        for command in sample.commands():
            name = _name_in(command, ours[command], sample)
            assert name, f"kdx {command} ({sample.why}) names nothing: {ours[command]!r}"
            sample.names[command.split()[0] + (" -s" if command.startswith("rd") else "")] = \
                name
        names = set(sample.names.values())
        assert len(names) == 1, f"{sample.address:x} ({sample.why}) has several names: " \
                                f"{sample.names}"
        (name,) = names
        if sample.address in bt_names:  # bt names the function, without the offset
            assert bt_names[sample.address] == name.split("+")[0], (sample.why, name)
        if _init_region(opened, sample.address):
            assert "_MODULE_INIT" in (_shown(theirs[f"sym {sample.address:x}"]) or "")
            continue
        for command in sample.commands():
            assert _name_in(command, theirs[command], sample) == name, \
                f"{command} ({sample.why}): crash {theirs[command]!r}, kdx {name}"
            compared_with_crash += 1
        if sample.address in crash_bt:
            assert crash_bt[sample.address] == name.split("+")[0], (sample.why, name)
    by_why = {s.why: s.names["sym"] for s in samples.values()}
    assert by_why["jiffies and jiffies_64"] == "jiffies"
    assert by_why["inside jiffies_64"] == "jiffies_64+4"
    assert by_why["_text, _stext and startup_64"] == "_stext"
    assert by_why["inside startup_64"] == "startup_64+8"
    assert by_why["entry_SYSCALL_64_after_hwframe"] == "entry_SYSCALL_64_after_hwframe+8"
    assert any(w.startswith("exception RIP hello_init+") for w in by_why), by_why
    assert any(n.startswith(".LC") for w, n in by_why.items() if "string literal" in w)
    assert sum(1 for s in samples.values() if "rd -s" in s.names) >= 10
    outside_init = [s for s in samples.values() if not _init_region(opened, s.address)]
    assert compared_with_crash >= 2 * len(outside_init)


# -- the policy on a synthetic table (no dump needed) -----------------------------------


def _synthetic_namer() -> AddressNamer:
    """A namer over a hand-made table: kernel aliases and a module with init text."""
    kernel = [SymbolEntry(0x1000, "T", "_stext"), SymbolEntry(0x1000, "T", "_text"),
              SymbolEntry(0x1000, "T", "startup_64"),
              SymbolEntry(0x2000, "T", ".text.unlikely"), SymbolEntry(0x2000, "t", "cold_path"),
              SymbolEntry(0x3000, "T", "SyS_pause"), SymbolEntry(0x3000, "T", "sys_pause"),
              SymbolEntry(0x4000, "D", "jiffies"), SymbolEntry(0x4000, "D", "jiffies_64"),
              SymbolEntry(0x5000, "D", "_end")]
    init = ModuleRegion("INIT_TEXT", 0x9000, 0x1000)
    info = ModuleInfo("hello", 0x8800, 0x8000, 0x1000, 0x8000, 0x1000, 0x9000, 0x1000,
                      "coming", "OE", None, "mem",
                      [ModuleRegion("TEXT", 0x8000, 0x1000), init])
    entries = [SymbolEntry(0x8100, "t", "helper", "hello"),
               SymbolEntry(0x9000, "t", "hello_init", "hello"),
               SymbolEntry(0x9000, "T", "init_module", "hello")]
    table = SymbolTable(kernel, [ModuleSymbols(info, entries, [16, 32, 32])], 0x1000, [],
                        [0, 0, 104, 0, 8, 0, 0, 0, 8, 0])
    return AddressNamer(drgn.Program(), table)


@pytest.mark.parametrize(("address", "expected"), [
    (0x1000, "_stext"),  # the first of three aliases at the address
    (0x1008, "startup_64+8"),  # inside: the last one
    (0x2000, "cold_path"),  # a section name gives way
    (0x3000, "sys_pause"),  # so does a SyS_ alias
    (0x4000, "jiffies"),
    (0x4004, "jiffies_64+4"),
    (0x5000, "_end"),
    (0x8100 + 5, "helper+5"),
    (0x9000 + 17, "hello_init+17"),  # kallsyms order: the module's own name first
    (0x8010, "_MODULE_TEXT_START_hello+16"),  # before the region's first symbol
])
def test_the_naming_policy(address: int, expected: str) -> None:
    assert _synthetic_namer().name(address) == expected


@pytest.mark.parametrize("address", [0x0, 0xfff, 0x5001, 0x8000 + 0x1000 + 0x2000])
def test_addresses_outside_the_kernel_and_modules_have_no_name(address: int) -> None:
    assert _synthetic_namer().locate(address) is None


def test_a_name_is_a_record() -> None:
    found = _synthetic_namer().locate(0x9011)
    assert found == AddressName("hello_init", 0x9000, 17, "hello", 32, "t")
    assert found.is_function and found.text(16) == "hello_init+0x11"
    assert _synthetic_namer().next_start(0x1008) == 0x2000


def test_sym_n_passes_over_aliases_as_crash_does() -> None:
    """crash's next_symbol: the kernel symbol after one is at a higher address."""
    table = _synthetic_namer().table
    stext = SymbolEntry(0x1000, "T", "_stext")
    assert table.neighbour(stext, +1) == SymbolEntry(0x2000, "T", ".text.unlikely")
    assert table.neighbour(SymbolEntry(0x1000, "T", "_text"), -1) == stext
