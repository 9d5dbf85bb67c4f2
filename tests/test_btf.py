"""The BTF reader and type finder, with the DWARF of the same kernels as the oracle.

Each lab dump is opened twice: with its vmlinux (DWARF types, the shared ``opened``
dump) and as a bare drgn program that knows only kallsyms and the BTF read from the
dump itself. The structures kdx reads must come out the same from both. Damaged BTF is
made here byte by byte: it must fail with ``BtfError`` and nothing else.
"""

from __future__ import annotations

import struct

import drgn
import pytest
from drgn.helpers.linux.kallsyms import load_vmlinux_kallsyms
from drgn.helpers.linux.list import list_for_each_entry

from kdx.target.novmlinux.btf import Btf, BtfError, Kind, parse_btf
from kdx.target.novmlinux.btftypes import (
    BtfTypes,
    add_module_btf,
    load,
    load_btf_types,
    register,
    vmlinux_btf_bytes,
)

#: Structures kdx's commands read.
STRUCTS = [
    "task_struct", "list_head", "module", "pt_regs", "mm_struct", "printk_ringbuffer",
    "prb_desc", "printk_info", "kmem_cache", "page", "rq", "cfs_rq", "file", "dentry",
    "inode", "super_block", "net_device", "timer_list", "hrtimer", "irq_desc",
    "new_utsname", "pid", "upid", "signal_struct", "sighand_struct",
    "inactive_task_frame", "console",
]
ENUMS = ["module_state", "pid_type", "zone_stat_item"]
KERNELS = ["6.1", "6.12"]


def _bare_program(vmcore: str) -> tuple[drgn.Program, BtfTypes]:
    """A program with no debug info but kallsyms and the dump's own BTF."""
    prog = drgn.Program()
    prog.set_core_dump(vmcore)
    prog.register_symbol_finder("kallsyms", load_vmlinux_kallsyms(prog), enable_index=0)
    types = load_btf_types(prog)
    register(prog, types)
    return prog, types


_bare: dict[str, tuple[drgn.Program, BtfTypes]] = {}


def bare(dump) -> tuple[drgn.Program, BtfTypes]:  # noqa: ANN001 (LabDump)
    key = str(dump.vmcore)
    if key not in _bare:
        _bare[key] = _bare_program(key)
    return _bare[key]


@pytest.fixture(scope="module", params=KERNELS)
def kernel_dump(request, lab):  # noqa: ANN001, ANN201 (fixtures)
    return lab("null-deref-module", kernel=None if request.param == "6.1" else "6.12")


def is_61(dump) -> bool:  # noqa: ANN001 (LabDump)
    return dump.truth["release"].startswith("6.1.")


def layout(t: drgn.Type, base: int = 0, indent: str = "") -> list[tuple]:
    """Member names, bit offsets, type names and bitfield sizes, anonymous members
    opened in place."""
    rows = []
    for m in t.members:
        inner = m.type.unqualified()
        name = m.name if m.name is not None else "<anonymous>"
        rows.append((indent + name, base + m.bit_offset, m.type.type_name(),
                     m.bit_field_size))
        if m.name is None and inner.kind in (drgn.TypeKind.STRUCT, drgn.TypeKind.UNION):
            rows += layout(inner, base + m.bit_offset, indent + "  ")
    return rows


@pytest.mark.parametrize("name", STRUCTS)
def test_struct_layout_matches_dwarf(kernel_dump, name: str) -> None:  # noqa: ANN001
    dwarf = kernel_dump.target.prog.type(f"struct {name}")
    btf = bare(kernel_dump)[0].type(f"struct {name}")
    assert btf.size == dwarf.size
    assert layout(btf) == layout(dwarf)


def test_bitfields_and_char_match_dwarf(kernel_dump) -> None:  # noqa: ANN001
    prog, types = bare(kernel_dump)
    bits = [row for row in layout(prog.type("struct task_struct")) if row[3]]
    assert len(bits) >= 4  # sched_reset_on_fork, sched_contributes_to_load, ...
    dwarf_char = kernel_dump.target.prog.type("char")
    # 6.2 and later build with -funsigned-char: BTF must say so as DWARF does.
    assert dwarf_char.is_signed == is_61(kernel_dump)
    comm = prog.type("struct task_struct").member("comm").type
    for char in (types.find({drgn.TypeKind.INT}, "char"), comm.type):
        assert char.primitive == drgn.PrimitiveType.C_CHAR
        assert char.is_signed == dwarf_char.is_signed
    assert prog.type("_Bool").kind == drgn.TypeKind.BOOL


@pytest.mark.parametrize("name", ENUMS)
def test_enum_constants_match_dwarf(kernel_dump, name: str) -> None:  # noqa: ANN001
    dwarf = kernel_dump.target.prog.type(f"enum {name}")
    btf = bare(kernel_dump)[0].type(f"enum {name}")
    assert len(btf.enumerators) > 2
    assert btf.enumerators == dwarf.enumerators


def test_find_constant_and_per_cpu_variable(kernel_dump) -> None:  # noqa: ANN001
    dwarf = kernel_dump.target.prog
    prog, types = bare(kernel_dump)
    coming = types.find_constant("MODULE_STATE_COMING")
    assert coming is not None
    assert coming.value_() == dwarf.constant("MODULE_STATE_COMING").value_() == 1
    assert coming.type_.type_name() == "enum module_state"
    assert types.find_constant("NO_SUCH_ENUMERATOR_ANYWHERE") is None
    rq = types.per_cpu_variable("runqueues")
    assert rq is not None and rq.type_name() == "struct rq"
    assert types.per_cpu_variable("init_task") is None  # not per-CPU: not in BTF
    type_id, offset = types.vmlinux.per_cpu_variables()["runqueues"]
    assert offset == (dwarf.symbol("runqueues").address
                      - dwarf.symbol("__per_cpu_start").address)


def test_lookup_is_lazy(kernel_dump) -> None:  # noqa: ANN001
    """task_struct reaches most of the kernel through pointers; converting it must not."""
    prog = drgn.Program()
    prog.set_core_dump(str(kernel_dump.vmcore))
    types = BtfTypes(prog, bare(kernel_dump)[1].vmlinux)
    task = types.find({drgn.TypeKind.STRUCT}, "task_struct")
    assert task is not None and task.size == kernel_dump.target.prog.type(
        "struct task_struct").size
    assert sum(len(c) for c in types._cache.values()) < 50


def _dwarf_btf_modules(prog: drgn.Program) -> set[str]:
    head = prog.object("btf_modules")
    return {entry.module.name.string_().decode()
            for entry in list_for_each_entry("struct btf_module", head.address_of_(), "list")}


def test_module_btf_list_matches_dwarf(kernel_dump) -> None:  # noqa: ANN001
    dwarf = kernel_dump.target.prog
    types = bare(kernel_dump)[1]
    assert not types.skipped
    assert set(types.modules) == _dwarf_btf_modules(dwarf)
    loaded = {m.name for m, _ in dwarf.loaded_modules() if m.name != "kernel"}
    if is_61(kernel_dump):
        # Debian 6.1's own modules have BTF; the lab's hello_crash was built without.
        assert "hello_crash" in loaded and "hello_crash" not in types.modules
        assert set(types.modules) == loaded - {"hello_crash"}
    else:
        assert set(types.modules) == loaded


def test_module_type_found_by_name_and_by_module(lab) -> None:  # noqa: ANN001
    dump = lab("gpf", kernel="6.12")
    dwarf = dump.target.prog.type("struct crashlab_entry")
    prog, types = bare(dump)
    for filename in (None, "crashlab_gpf", "/lib/modules/x/crashlab-gpf.ko.xz"):
        found = prog.type("struct crashlab_entry", filename)
        assert found.size == dwarf.size == 24
        assert layout(found) == layout(dwarf)
    with pytest.raises(LookupError):
        prog.type("struct crashlab_entry", "vmlinux")
    # A module's reference to a kernel type is the kernel's type.
    module = types.modules["crashlab_gpf"]
    entry = module.type(module.find("crashlab_entry")[0])
    assert entry.members[0].type_id in types.vmlinux.find("list_head", [Kind.STRUCT])
    assert not module.owns(entry.members[0].type_id)


def test_load_registers_kernel_types_then_module_types(lab) -> None:  # noqa: ANN001
    """The provider's sequence: ``load`` (kernel BTF, finder registered), then
    ``add_module_btf``; constants by value for the globals table."""
    dump = lab("gpf", kernel="6.12")
    prog = drgn.Program()
    prog.set_core_dump(str(dump.vmcore))
    prog.register_symbol_finder("kallsyms", load_vmlinux_kallsyms(prog), enable_index=0)
    types = load(prog)
    assert types is not None
    assert prog.type("struct module").size == dump.target.prog.type("struct module").size
    assert types.constant_value("MODULE_STATE_GOING") == 2
    assert types.constant_value("__NR_CPUMASK_BITS_NOT_AN_ENUMERATOR") is None
    with pytest.raises(LookupError):
        prog.type("struct crashlab_entry")
    add_module_btf(prog, types)
    assert prog.type("struct crashlab_entry").size == 24
    assert set(types.modules) == set(bare(dump)[1].modules)


def test_vmlinux_btf_is_the_section_between_its_symbols(kernel_dump) -> None:  # noqa: ANN001
    prog, types = bare(kernel_dump)
    data = vmlinux_btf_bytes(prog)
    assert data[:2] == b"\x9f\xeb"
    assert types.vmlinux.count > 90_000
    assert types.vmlinux.find("task_struct", [Kind.STRUCT])


# -- damaged BTF ----------------------------------------------------------------------

STRINGS = b"\0int\0pair\0a\0b\0"  # offsets: int 1, pair 5, a 10, b 12


def _type(name_off: int, kind: int, vlen: int, ref: int, kflag: int = 0) -> bytes:
    return struct.pack("<III", name_off, kflag << 31 | kind << 24 | vlen, ref)


def small_types(member_type: int = 1) -> bytes:
    """[1] int (4 bytes), [2] struct pair { int a; int b:3; } with kind_flag."""
    return (_type(1, Kind.INT, 0, 4) + struct.pack("<I", 1 << 24 | 32)
            + _type(5, Kind.STRUCT, 2, 8, kflag=1)
            + struct.pack("<III", 10, member_type, 0)
            + struct.pack("<III", 12, member_type, 3 << 24 | 32))


def blob(types: bytes, strings: bytes = STRINGS, *, extra: bytes = b"",
         magic: int = 0xEB9F, hdr_len: int | None = None) -> bytes:
    """A BTF blob: header (``extra`` words after str_len), types, strings."""
    head = 24 + len(extra)
    header = struct.pack("<HBBIIIII", magic, 1, 0, hdr_len or head, 0, len(types),
                         len(types), len(strings))
    return header + extra + types + strings


def test_small_blob_decodes() -> None:
    btf = parse_btf(blob(small_types()))
    pair = btf.type(btf.find("pair")[0])
    assert [(m.name, m.type_id, m.bit_offset, m.bit_size) for m in pair.members] == [
        ("a", 1, 0, 0), ("b", 1, 32, 3)]
    assert btf.type(1).int_info.is_signed and btf.type(1).size == 4


def test_header_with_layout_section_steps_over_unknown_kinds() -> None:
    """A 2026 header (layout_off/layout_len) and a kind from the future: its size comes
    from the layout table, and the types after it still decode."""
    future = 20
    types = _type(0, future, 2, 0) + b"\xaa" * (4 + 2 * 8) + small_types(2)
    layout_table = bytearray(4 * (future + 1))
    layout_table[4 * future:4 * future + 2] = bytes([4, 8])
    strings_at = len(types)
    data = bytearray(blob(types, extra=struct.pack("<II", strings_at + len(STRINGS),
                                                   len(layout_table))))
    data += layout_table
    btf = parse_btf(bytes(data))
    assert btf.count == 3 and btf.kind_of(1) == future
    assert [m.name for m in btf.type(btf.find("pair")[0]).members] == ["a", "b"]
    with pytest.raises(BtfError, match="unknown kind 20"):
        parse_btf(blob(types))  # without the layout table it cannot be stepped over


def test_split_btf_continues_ids_and_strings() -> None:
    base = parse_btf(blob(small_types()))
    own_strings = b"\0mine\0"
    # [3] typedef mine -> [2] (the base's struct); name at base str_len + 1.
    split = parse_btf(blob(_type(len(STRINGS) + 1, Kind.TYPEDEF, 0, 2), own_strings),
                      base, name="mod")
    assert split.start_id == 3 and split.find("mine") == [3]
    assert split.type(3).name == "mine" and split.type(2).name == "pair"
    assert split.find("pair") == []  # the base's types are the base's to find


@pytest.mark.parametrize("data, message", [
    (b"\x9f\xeb\x01", "shorter than a BTF header"),
    (blob(small_types(), magic=0x1234), "magic"),
    (blob(small_types(), hdr_len=4096), "header length"),
    (blob(small_types())[:-3], "string section"),
    (blob(small_types()[:-4]), "type section"),
    (blob(_type(1, Kind.STRUCT, 0xFFFFFF, 8)), "runs past"),
    (blob(_type(1, 31, 0, 0)), "unknown kind"),
])
def test_bad_headers_and_lengths_raise_btf_error(data: bytes, message: str) -> None:
    with pytest.raises(BtfError, match=message):
        parse_btf(data)


def test_bad_references_raise_btf_error_when_decoded() -> None:
    btf = parse_btf(blob(small_types(member_type=99)))
    with pytest.raises(BtfError, match="member type 99"):
        btf.type(2)
    bad_name = parse_btf(blob(_type(500, Kind.INT, 0, 4) + struct.pack("<I", 32)))
    with pytest.raises(BtfError, match="string offset 500"):
        bad_name.type(1)
    with pytest.raises(BtfError, match="no type 7"):
        bad_name.type(7)


def _decode_all(btf: Btf) -> None:
    for type_id in btf.ids():
        btf.type(type_id)
    btf.enumerators()
    btf.per_cpu_variables()


def test_every_damaged_byte_gives_btf_error_or_a_valid_result() -> None:
    """Each byte of a blob (header, types, strings) set to 0xff and to 0x00: parsing and
    decoding everything either works or raises BtfError, never anything else."""
    good = blob(small_types() + _type(0, Kind.PTR, 0, 2) + _type(0, Kind.ARRAY, 0, 0)
                + struct.pack("<III", 1, 1, 4))
    outcomes = {"ok": 0, "error": 0}
    for i in range(len(good)):
        for value in (0x00, 0xFF):
            data = good[:i] + bytes([value]) + good[i + 1:]
            try:
                _decode_all(parse_btf(data))
                outcomes["ok"] += 1
            except BtfError:
                outcomes["error"] += 1
    assert outcomes["ok"] and outcomes["error"]


def test_a_type_that_contains_itself_is_an_error_not_a_hang() -> None:
    prog = drgn.Program(drgn.host_platform)
    looping = parse_btf(blob(_type(1, Kind.TYPEDEF, 0, 2) + _type(0, Kind.CONST, 0, 1)))
    types = BtfTypes(prog, looping)
    with pytest.raises(BtfError, match="refers to itself"):
        types.find({drgn.TypeKind.TYPEDEF}, "int")
