"""The kernel symbol table read from the dump (kallsyms), with and without VMCOREINFO's help.

Truth comes from elsewhere: the vmlinux ELF file's own symbol table (moved by the dump's
KASLR offset) and the table addresses the unedited VMCOREINFO names. The scan path is
tested on the same real dumps with the ``SYMBOL(kallsyms_*)`` lines deleted, which is
what a kernel before 6.0 looks like to kdx.
"""

from __future__ import annotations

import os
import random
import re
import struct
from pathlib import Path

import drgn
import pytest

from kdx.errors import KdxError
from kdx.lab.cache import default_cache
from kdx.target.elfinfo import section_table
from kdx.target.novmlinux.kallsyms import (
    KallsymsTables,
    load_kernel_symbols,
    locate_tables,
)
from kdx.target.open import Target, open_dump
from kdx.target.vmcoreinfo import parse

KERNELS = ["6.1", "6.12"]
NAMES = ("init_task", "_stext", "sysrq_handle_crash", "jiffies", "init_uts_ns")
_ELF64_SYM = struct.Struct("<IBBHQQ")


def _program(vmcore: Path, vmcoreinfo: bytes | None = None) -> drgn.Program:
    """A bare program on the dump: no debug info at all."""
    os.environ.setdefault("DRGN_DISABLE_PLUGINS", "*")
    prog = drgn.Program(vmcoreinfo=vmcoreinfo)
    prog.set_core_dump(str(vmcore))
    return prog


def _vmcoreinfo_bytes(prog: drgn.Program) -> bytes:
    return prog["VMCOREINFO"].string_()


def _without_kallsyms(text: bytes) -> bytes:
    """VMCOREINFO as a kernel before 6.0 writes it: no ``SYMBOL(kallsyms_*)`` lines."""
    return re.sub(rb"^SYMBOL\(kallsyms_[a-z_]+\)=[0-9a-f]+\n", b"", text, flags=re.M)


def _elf_symbols(vmlinux: Path, names: tuple[str, ...]) -> dict[str, int]:
    """Link-time addresses of ``names`` from the vmlinux's .symtab (the first of each)."""
    with open(vmlinux, "rb") as f:
        sections = section_table(f)
        symtab = next(s for s in sections if s.name == ".symtab")
        f.seek(sections[symtab.link].offset)
        strtab = f.read(sections[symtab.link].size)
        f.seek(symtab.offset)
        table = f.read(symtab.size)
    wanted = {n.encode() for n in names}
    found: dict[str, int] = {}
    for name_off, _info, _other, _shndx, value, _size in _ELF64_SYM.iter_unpack(table):
        name = strtab[name_off:strtab.find(b"\0", name_off)]
        if name in wanted and name.decode() not in found:
            found[name.decode()] = value
    return found


def _elf_u32(vmlinux: Path, address: int) -> int:
    """The u32 the vmlinux file holds at link-time ``address``."""
    with open(vmlinux, "rb") as f:
        sec = next(s for s in section_table(f) if s.addr <= address < s.addr + s.size
                   and s.type != 8)
        f.seek(sec.offset + address - sec.addr)
        return struct.unpack("<I", f.read(4))[0]


def _all_symbols(prog: drgn.Program, index: drgn.SymbolIndex) -> list[tuple]:
    return sorted((s.name, s.address, s.size, s.kind, s.binding)
                  for s in index(prog, None, None, False))


@pytest.fixture(scope="module", params=KERNELS)
def dump(request, lab):  # noqa: ANN001, ANN201
    return lab("sysrq", kernel=request.param)


def test_vmcoreinfo_path_matches_the_vmlinux_symtab(dump) -> None:  # noqa: ANN001
    prog = _program(dump.vmcore)
    info = parse(_vmcoreinfo_bytes(prog).decode())
    symbols = load_kernel_symbols(prog, info)
    assert symbols.how == "vmcoreinfo"
    slide = int(info["KERNELOFFSET"], 16)
    linked = _elf_symbols(dump.vmlinux, (*NAMES, "kallsyms_num_syms"))
    assert symbols.count == _elf_u32(dump.vmlinux, linked["kallsyms_num_syms"]) > 50_000
    for name in NAMES:
        assert symbols.address(prog, name) == linked[name] + slide, name
    assert symbols.tables.names == int(info["SYMBOL(kallsyms_names)"], 16)


def _assert_scan_matches_vmcoreinfo(vmcore: Path) -> KallsymsTables:
    """With the kallsyms lines deleted from VMCOREINFO, the scan finds the very tables
    they name, and the symbol index equals the one loaded through them."""
    original = _program(vmcore)
    text = _vmcoreinfo_bytes(original)
    info = parse(text.decode())
    reference = load_kernel_symbols(original, info)
    assert reference.how == "vmcoreinfo"

    prog = _program(vmcore, _without_kallsyms(text))
    assert b"kallsyms" not in _vmcoreinfo_bytes(prog)
    tables = locate_tables(prog)
    for field in ("names", "token_table", "token_index", "num_syms", "offsets",
                  "relative_base"):
        named = int(info.get(f"SYMBOL(kallsyms_{field})", "0"), 16)
        assert getattr(tables, field) == named, field
    assert tables.addresses == 0
    assert tables.count == reference.count

    symbols = load_kernel_symbols(prog)
    assert symbols.how == "scan"
    assert symbols.tables == tables
    everything = _all_symbols(prog, symbols.index)
    assert len(everything) == reference.count
    assert everything == _all_symbols(original, reference.index)
    return tables


def test_scan_locates_the_tables_vmcoreinfo_names(dump) -> None:  # noqa: ANN001
    tables = _assert_scan_matches_vmcoreinfo(dump.vmcore)
    assert tables.relative_base  # base-relative offsets on both kernels


def test_scan_on_the_newest_kernel() -> None:
    """Linux 7.x aligns the tables to 4 bytes and stores place-relative offsets (no
    ``kallsyms_relative_base``); the lab's sid kernel, when it has been built."""
    found = sorted((default_cache() / "runs").glob("7.*/sysrq-kdump-kdump-zlib/vmcore"))
    if not found:
        pytest.skip("no lab dump of a 7.x kernel (kdx lab --kernel sid)")
    tables = _assert_scan_matches_vmcoreinfo(found[-1])
    assert tables.relative_base == 0 and tables.num_syms == tables.names - 4


def test_stale_vmcoreinfo_lines_fall_back_to_the_scan(sysrq) -> None:  # noqa: ANN001
    prog = _program(sysrq.vmcore)
    info = parse(_vmcoreinfo_bytes(prog).decode())
    right = int(info["SYMBOL(kallsyms_names)"], 16)
    info["SYMBOL(kallsyms_names)"] = f"{right + 8:x}"
    symbols = load_kernel_symbols(prog, info)
    assert symbols.how == "scan"
    assert symbols.tables.names == right


def test_scan_without_stext_uses_the_kaslr_offset(sysrq) -> None:  # noqa: ANN001
    prog = _program(sysrq.vmcore)
    info = parse(_vmcoreinfo_bytes(prog).decode())
    stext = int(info.pop("SYMBOL(_stext)"), 16)
    info = {k: v for k, v in info.items() if "kallsyms" not in k}
    symbols = load_kernel_symbols(prog, info)
    assert (symbols.how, symbols.tables.stext) == ("scan", stext)
    assert symbols.address(prog, "_stext") == stext


class _KallsymsOnly:
    """A symbol provider that loads kallsyms alone (what the no-vmlinux provider starts
    with), stripping the kallsyms lines first when ``scan`` is set."""

    def __init__(self, scan: bool) -> None:
        self.scan = scan
        self.symbols = None

    def load(self, target: Target) -> None:
        info = dict(target.vmcoreinfo)
        if self.scan:
            info = {k: v for k, v in info.items() if "kallsyms" not in k}
        self.symbols = load_kernel_symbols(target.prog, info)
        target.prog.register_symbol_finder("kdx-kallsyms", self.symbols.index,
                                           enable_index=0)


@pytest.mark.parametrize("scan", [False, True], ids=["vmcoreinfo", "scan"])
def test_qemu_dump_without_vmcoreinfo_note(lab, scan: bool) -> None:  # noqa: ANN001
    dump = lab("sysrq", capture="qemu", fmt="elf", vmcoreinfo=False)
    provider = _KallsymsOnly(scan)
    target = open_dump(dump.vmcore, provider=provider)
    assert provider.symbols.how == ("scan" if scan else "vmcoreinfo")
    slide = int(target.vmcoreinfo["KERNELOFFSET"], 16)
    linked = _elf_symbols(dump.vmlinux, NAMES)
    for name in NAMES:
        assert target.prog.symbol(name).address == linked[name] + slide, name
    assert target.prog.symbol(linked["sysrq_handle_crash"] + slide + 4).name == \
        "sysrq_handle_crash"


# A program over synthetic memory: garbage, or a real kernel image cut short.

_BASE = 0xFFFFFFFF81000000
_INFO = {"OSRELEASE": "6.1.0", "SYMBOL(_stext)": f"{_BASE:x}"}


def _memory_program(chunks: list[tuple[int, bytes]]) -> drgn.Program:
    prog = drgn.Program(drgn.Platform(drgn.Architecture.X86_64))
    for address, data in chunks:
        prog.add_memory_segment(address, len(data),
                                lambda _a, count, offset, _p, d=data: d[offset:offset + count])
    return prog


def test_garbage_memory_gives_one_sentence() -> None:
    noise = random.Random(10).randbytes(24 << 20)
    with pytest.raises(KdxError, match=r"^the dump's kallsyms tables could not be found "
                                       r"in kernel memory \(kernel built without "):
        load_kernel_symbols(_memory_program([(_BASE, noise)]), _INFO)


def test_no_kernel_image_gives_one_sentence() -> None:
    with pytest.raises(KdxError, match="holds none of the kernel image"):
        load_kernel_symbols(_memory_program([]), _INFO)


@pytest.fixture(scope="module")
def image_61(sysrq) -> tuple[bytes, KallsymsTables]:  # noqa: ANN001
    """The first part of a real 6.1 kernel image, from ``_stext`` to the end of the page
    holding the end of its token index, with pages the dump left out as zeros. It stays
    at its own address: the kernel relocated ``kallsyms_relative_base`` there at boot."""
    prog = _program(sysrq.vmcore)
    symbols = load_kernel_symbols(prog)
    stext = symbols.tables.stext
    end = (symbols.tables.token_index + 512 - stext + 4095) & -4096
    image = bytearray()
    for page in range(stext, stext + end, 4096):
        try:
            image += prog.read(page, 4096)
        except drgn.FaultError:
            image += bytes(4096)
    return bytes(image), symbols.tables


def _info(tables: KallsymsTables) -> dict[str, str]:
    return {"OSRELEASE": "6.1.0", "SYMBOL(_stext)": f"{tables.stext:x}"}


def test_a_copied_image_is_found_again(image_61) -> None:  # noqa: ANN001
    """The synthetic program itself works: the whole copy yields the same tables."""
    image, tables = image_61
    found = locate_tables(_memory_program([(tables.stext, image)]), _info(tables))
    assert (found.names, found.token_table, found.offsets, found.count) == (
        tables.names, tables.token_table, tables.offsets, tables.count)


@pytest.mark.parametrize("cut", ["token_index", "names"])
def test_truncated_table_gives_one_sentence(image_61, cut: str) -> None:  # noqa: ANN001
    image, tables = image_61
    if cut == "token_index":  # the image ends inside the token index
        chunks = [(tables.stext, image[:tables.token_index + 300 - tables.stext])]
    else:  # 64 KiB in the middle of the names are missing from the dump
        middle = (tables.names + 600_000 - tables.stext) & -4096
        chunks = [(tables.stext, image[:middle]),
                  (tables.stext + middle + 65536, image[middle + 65536:])]
    with pytest.raises(KdxError, match=r"^the dump's kallsyms tables could not be found"):
        load_kernel_symbols(_memory_program(chunks), _info(tables))
