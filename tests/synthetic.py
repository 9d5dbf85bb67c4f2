"""A small drgn program built in memory, for unit tests that need no dump.

It has a ``struct item`` type, one object of it (``item0``) in a page of memory whose
bytes the tests choose, and symbols ``_text``, ``item0``, ``handler`` and ``_end``, so
that parsers, the value reader and the renderers can be tested on exact, known values.
"""

from __future__ import annotations

import struct

import drgn

BASE = 0xFFFF_FFFF_8100_0000
ITEM = BASE + 0x100
HANDLER = BASE + 0x400
NAME = BASE + 0x200
MISSING = 0xFFFF_8880_DEAD_0000


def _memory() -> bytes:
    page = bytearray(0x1000)
    # struct item at ITEM: pid, state, flags (bits), tag, ok, name, buf, next, fn, bits
    struct.pack_into("<iIIbBxxQ8sQQI", page, 0x100,
                     -5, 2, 13, 65, 1, NAME, b"abc\0\0\0\0\0", HANDLER + 4, HANDLER, 0x3B)
    page[0x200:0x206] = b"hi\tx\0z"
    return bytes(page)


def program() -> drgn.Program:
    """The synthetic program (x86-64 little-endian)."""
    prog = drgn.Program(drgn.Platform(drgn.Architecture.X86_64,
                                      drgn.PlatformFlags.IS_64_BIT
                                      | drgn.PlatformFlags.IS_LITTLE_ENDIAN))
    memory = _memory()
    prog.add_memory_segment(BASE, len(memory),
                            lambda address, count, offset, physical:
                            memory[offset:offset + count])
    int_ = prog.int_type("int", 4, True)
    uint = prog.int_type("unsigned int", 4, False)
    char = prog.int_type("char", 1, True)
    uchar = prog.int_type("unsigned char", 1, False)
    bool_ = prog.bool_type("_Bool", 1)
    ulong = prog.int_type("unsigned long", 8, False)
    state = prog.enum_type("state", uint, [drgn.TypeEnumerator("IDLE", 0),
                                           drgn.TypeEnumerator("RUN", 1),
                                           drgn.TypeEnumerator("STOP", 2)])
    flags = prog.enum_type("flags", uint, [drgn.TypeEnumerator("F_A", 1),
                                           drgn.TypeEnumerator("F_B", 2),
                                           drgn.TypeEnumerator("F_C", 8)])
    fn = prog.function_type(prog.void_type(), ())
    item = prog.struct_type("item", 56, [
        drgn.TypeMember(int_, "pid", 0),
        drgn.TypeMember(state, "state", 32),
        drgn.TypeMember(flags, "flags", 64),
        drgn.TypeMember(char, "tag", 96),
        drgn.TypeMember(bool_, "ok", 104),
        drgn.TypeMember(prog.pointer_type(char), "name", 128),
        drgn.TypeMember(prog.array_type(char, 8), "buf", 192),
        drgn.TypeMember(prog.pointer_type(ulong), "next", 256),
        drgn.TypeMember(prog.pointer_type(fn), "fn", 320),
        drgn.TypeMember(drgn.Object(prog, uint, bit_field_size=3), "low", 384),
        drgn.TypeMember(drgn.Object(prog, uint, bit_field_size=5), "high", 387),
    ])
    types = {"int": int_, "unsigned int": uint, "char": char, "unsigned char": uchar,
             "unsigned long": ulong, "_Bool": bool_, "struct item": item,
             "enum state": state, "enum flags": flags, "long": prog.int_type("long", 8, True)}

    def find_type(prog: drgn.Program, kinds: drgn.TypeKindSet, name: str,
                  filename: str | None) -> drgn.Type | None:
        for spelling, type_ in types.items():
            if type_.kind in kinds and spelling.split()[-1] == name:
                return type_
        return None

    symbols = [drgn.Symbol("_text", BASE, 0, drgn.SymbolBinding.GLOBAL, drgn.SymbolKind.OBJECT),
               drgn.Symbol("item0", ITEM, 56, drgn.SymbolBinding.GLOBAL,
                           drgn.SymbolKind.OBJECT),
               drgn.Symbol("handler", HANDLER, 16, drgn.SymbolBinding.GLOBAL,
                           drgn.SymbolKind.FUNC),
               drgn.Symbol("_end", BASE + 0x1000, 0, drgn.SymbolBinding.GLOBAL,
                           drgn.SymbolKind.OBJECT)]

    def find_symbols(prog: drgn.Program, name: str | None, address: int | None,
                     one: bool) -> list[drgn.Symbol]:
        found = [s for s in symbols if (name is None or s.name == name) and
                 (address is None or s.address <= address < s.address + max(s.size, 1))]
        return found[:1] if one else found

    def find_object(prog: drgn.Program, name: str, flags: drgn.FindObjectFlags,
                    filename: str | None) -> drgn.Object | None:
        if name == "item0" and flags & drgn.FindObjectFlags.VARIABLE:
            return drgn.Object(prog, item, address=ITEM)
        return None

    prog.register_type_finder("synthetic", find_type, enable_index=0)
    prog.register_symbol_finder("synthetic", find_symbols, enable_index=0)
    prog.register_object_finder("synthetic", find_object, enable_index=0)
    return prog


class Namer:
    """The address namer's interface over the synthetic symbols (nearest at or before)."""

    def __init__(self, prog: drgn.Program) -> None:
        self.prog = prog

    def locate(self, address: int):  # noqa: ANN201 (an AddressName)
        from kdx.model.names import AddressName

        try:
            sym = self.prog.symbol(address)
        except LookupError:
            return None
        return AddressName(sym.name, sym.address, address - sym.address)
