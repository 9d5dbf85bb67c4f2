"""The value tree and its crash text renderer, on a program built in memory.

tests/synthetic.py writes a ``struct item`` whose every byte the test knows; the reader
must find those values (names of enumerators, strings, the symbol a pointer points at,
bit fields, an unreadable string), and the renderer must print them as gdb under crash
does, with no program at hand.
"""

from __future__ import annotations

import dataclasses

import drgn
import pytest
import synthetic

from kdx.model.values import (
    CString,
    Declaration,
    Enumerator,
    MemberValue,
    PrintedValue,
    SymbolName,
    Value,
    ValueReader,
    type_layout,
)
from kdx.render.crash.data import (
    member_lines,
    member_text,
    offsets_view,
    print_text,
    struct_deref_text,
    struct_text,
    whatis_text,
)


@pytest.fixture(scope="module")
def prog() -> drgn.Program:
    return synthetic.program()


@pytest.fixture(scope="module")
def reader(prog: drgn.Program) -> ValueReader:
    return ValueReader(prog, synthetic.Namer(prog))  # type: ignore[arg-type]


def _member(value: Value, name: str) -> Value:
    return next(m for m in value.members if m.name == name)


def test_tree_holds_the_values(prog: drgn.Program, reader: ValueReader) -> None:
    value = reader.read(prog["item0"])
    assert (value.kind, value.type, value.address, value.size) == \
        ("struct", "struct item", synthetic.ITEM, 56)
    assert _member(value, "pid").value == -5
    assert _member(value, "state").enum is not None
    assert _member(value, "state").enum.names == ("STOP",)
    flags = _member(value, "flags").enum
    assert flags is not None and (flags.names, flags.flags, flags.unknown) == \
        (("F_A", "F_C"), True, 4)
    assert _member(value, "name").string == CString(synthetic.NAME, b"hi\tx", True)
    assert _member(value, "buf").data == b"abc\0\0\0\0\0"
    assert _member(value, "next").pointer == synthetic.HANDLER + 4
    assert _member(value, "next").symbol == SymbolName("handler", 4)
    assert _member(value, "fn").symbol == SymbolName("handler", 0)
    low, high = _member(value, "low"), _member(value, "high")
    assert (low.value, low.bit_size, high.value, high.bit_size) == (3, 3, 7, 5)


def test_unreadable_parts_are_marked(prog: drgn.Program, reader: ValueReader) -> None:
    item = prog.type("struct item")
    value = reader.read(drgn.Object(prog, item, address=synthetic.MISSING))
    assert value.kind == "struct" and all(m.unreadable for m in value.members)
    assert _member(value, "pid").fault == synthetic.MISSING
    pointer = drgn.Object(prog, prog.pointer_type(prog.type("char")), synthetic.MISSING)
    string = reader.read(pointer).string
    assert string == CString(synthetic.MISSING, b"", False, True)


def test_struct_text(prog: drgn.Program, reader: ValueReader) -> None:
    value = reader.read(prog["item0"])
    assert struct_text(value) == "\n".join([
        "struct item {",
        "  pid = -5,",
        "  state = STOP,",
        "  flags = (F_A | F_C | unknown: 0x4),",
        "  tag = 65 'A',",
        "  ok = true,",
        f'  name = {synthetic.NAME:#x} "hi\\tx",',
        '  buf = "abc\\000\\000\\000\\000",',
        f"  next = {synthetic.HANDLER + 4:#x} <handler+4>,",
        f"  fn = {synthetic.HANDLER:#x} <handler>,",
        "  low = 3,",
        "  high = 7",
        "}"])
    hexa = struct_text(value, 16).split("\n")
    assert hexa[1] == "  pid = 0xfffffffb," and hexa[4] == "  tag = 0x41,"
    assert hexa[5] == "  ok = 0x1,"


def test_unreadable_text(prog: drgn.Program, reader: ValueReader) -> None:
    value = reader.read(drgn.Object(prog, "struct item", address=synthetic.MISSING))
    error = f"<error: Cannot access memory at address {synthetic.MISSING:#x}>"
    assert struct_text(value).split("\n")[1] == f"  pid = {error},"
    pointer = drgn.Object(prog, prog.pointer_type(prog.type("char")), synthetic.MISSING)
    assert print_text(PrintedValue("p", 3, None, reader.read(pointer))) == \
        f"$3 = {synthetic.MISSING:#x} {error}"


def test_print_and_member_text(prog: drgn.Program, reader: ValueReader) -> None:
    item = prog["item0"]
    assert print_text(PrintedValue("item0.next", 1, None, reader.read(item.next))) == \
        f"$1 = (unsigned long *) {synthetic.HANDLER + 4:#x} <handler+4>"
    assert print_text(PrintedValue("item0.pid", 2, "item0", reader.read(item.pid))) == \
        "item0 = $2 = -5"
    assert member_text(reader.member(item, "flags")) == \
        "  flags = (F_A | F_C | unknown: 0x4),"
    assert member_text(reader.member(item, "high")) == "  high = 7"
    assert member_text(MemberValue("pid", reader.read(item.pid), True), 16) == \
        "  pid = 0xfffffffb"


def test_pointers_followed(prog: drgn.Program, reader: ValueReader) -> None:
    text = struct_deref_text(reader.followed(prog["item0"])).split("\n")
    assert text[6:8] == [f"  char *name = {synthetic.NAME:#x}", '  -> "hi\tx"']
    assert text[9:11] == [f"  unsigned long *next = {synthetic.HANDLER + 4:#x}", "  -> 0"]
    assert text[11:13] == [f"  void (*fn)(void) = {synthetic.HANDLER:#x}", "  -> <handler>"]


def test_layouts(prog: drgn.Program) -> None:
    layout = type_layout(prog.type("struct item"))
    assert [line.member for line in layout.lines][:3] == [None, "pid", "state"]
    view = offsets_view(layout).split("\n")
    assert view[1] == "   [0] int pid;" and view[-2] == "  [48] unsigned int high : 5;"
    assert offsets_view(layout, synthetic.ITEM).split("\n")[2] == \
        "  [ffffffff81000104] enum state state;"
    assert member_lines(layout, ["flags"]) == \
        "struct item {\n   [8] enum flags flags;\n}"


def test_whatis_text(prog: drgn.Program) -> None:
    layout = type_layout(prog.type("struct item"))
    found = Declaration("item", "type", "struct item", "struct", size=56, layout=layout)
    assert whatis_text(found).split("\n")[-2:] == ["}", "SIZE: 56"]
    enum = Declaration("enum state", "type", "enum state", "enum", tag="state",
                       enumerators=(Enumerator("IDLE", 0), Enumerator("RUN", 1)))
    assert whatis_text(enum) == "enum state {\n  IDLE = 0\n  RUN = 1\n};"
    assert whatis_text(dataclasses.replace(enum, kind="enumerator", value=1)) == \
        "enum state = 1"
    assert whatis_text(Declaration("int", "type", "int", "int", size=4)) == "SIZE: 4"


def test_renderers_hold_no_program() -> None:
    """The value renderers import neither drgn nor a model that reads: everything they
    print comes from the records."""
    import ast
    import importlib
    from pathlib import Path

    for name in ("kdx.render.crash.data", "kdx.render.crash.machine"):
        source = Path(importlib.import_module(name).__file__ or "").read_text()
        tree = ast.parse(source)
        imported = {alias.name for node in ast.walk(tree) if isinstance(node, ast.Import)
                    for alias in node.names}
        imported |= {node.module or "" for node in ast.walk(tree)
                     if isinstance(node, ast.ImportFrom)}
        assert not {m for m in imported if m == "drgn" or m.startswith("drgn.")}, name
        assert "Program" not in source, name


def test_64_bit_words(prog: drgn.Program, reader: ValueReader) -> None:
    """A 64-bit integer is kept in ``word`` (JSON writes it in hex), printed as gdb does."""
    from kdx.render.json_out import plain

    big = reader.read(drgn.Object(prog, "unsigned long", (1 << 64) - 2))
    negative = reader.read(drgn.Object(prog, "long", -1))
    assert (big.kind, big.word, big.value) == ("int", (1 << 64) - 2, None)
    assert print_text(PrintedValue("x", 1, None, big)) == "$1 = 18446744073709551614"
    assert print_text(PrintedValue("y", 2, None, negative)) == "$2 = -1"
    assert print_text(PrintedValue("y", 3, None, negative), 16) == "$3 = 0xffffffffffffffff"
    assert plain(big)["word"] == "0xfffffffffffffffe"
    assert plain(negative)["word"] == "0xffffffffffffffff"
