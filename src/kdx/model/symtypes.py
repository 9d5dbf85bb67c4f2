"""The nm(1) type letters of kernel symbols, read from the kernel's own kallsyms tables.

Without a vmlinux, kernel symbols come from kallsyms (drgn's ``load_vmlinux_kallsyms``
or the dump provider's symbol finder). drgn's ``Symbol`` keeps only a binding and a
kind, which cannot tell ``d`` from ``r`` or ``b``; crash's ``sym`` prints the letter.
The kernel keeps it: each name in ``kallsyms_names`` expands to the letter followed by
the name (scripts/kallsyms), so the letters are read from the same tables, by the
token decoding the kernel's ``kallsyms_expand_symbol`` does.

Where the tables are comes from VMCOREINFO (``SYMBOL(kallsyms_names)`` and friends,
Linux 6.0+). A symbol provider that found them another way (by scanning memory, for
older kernels) leaves their addresses in ``prog.cache[TABLES_CACHE_KEY]``, a mapping
with :class:`KallsymsTables`' field names; :func:`program_tables` looks in both places.
"""

from __future__ import annotations

import struct
from collections.abc import Mapping
from dataclasses import dataclass

import drgn

from kdx.model.logring import vmcoreinfo_lines

__all__ = ["TABLES_CACHE_KEY", "KallsymsTables", "kallsyms_letters", "kallsyms_tables",
           "program_tables"]

#: Where a provider that located the tables itself leaves their addresses.
TABLES_CACHE_KEY = "kdx.kallsyms-tables"

#: The tables' entries in VMCOREINFO, in :class:`KallsymsTables` field order.
_LINES = ("SYMBOL(kallsyms_num_syms)", "SYMBOL(kallsyms_names)",
          "SYMBOL(kallsyms_token_table)", "SYMBOL(kallsyms_token_index)")
_FIELDS = ("num_syms", "names", "token_table", "token_index")
#: Read ahead while the names' end is unknown (the names run to ``kallsyms_markers``).
_CHUNK = 1 << 20


@dataclass(frozen=True)
class KallsymsTables:
    """Addresses of the kallsyms tables that hold names and letters."""

    num_syms: int
    names: int
    token_table: int
    token_index: int


def kallsyms_tables(lines: Mapping[str, str]) -> KallsymsTables | None:
    """The tables named in VMCOREINFO's lines; None when a line is missing."""
    if not all(key in lines for key in _LINES):
        return None
    return KallsymsTables(*(int(lines[key], 16) for key in _LINES))


def program_tables(prog: drgn.Program) -> KallsymsTables | None:
    """The tables of ``prog``: from VMCOREINFO, else from what the symbol provider
    left in ``prog.cache``; None when neither knows them."""
    found = kallsyms_tables(vmcoreinfo_lines(prog))
    if found is not None:
        return found
    cached = prog.cache.get(TABLES_CACHE_KEY)
    if isinstance(cached, KallsymsTables):
        return cached
    if isinstance(cached, Mapping):
        try:
            return KallsymsTables(*(int(cached[f]) for f in _FIELDS))
        except (KeyError, TypeError, ValueError):
            return None
    return None


def kallsyms_letters(prog: drgn.Program, tables: KallsymsTables) -> list[tuple[str, str]]:
    """(name, letter) of every kernel symbol, in kallsyms order (by address).

    Names are needed as well as letters: they pair each letter with drgn's symbol of
    the same name. Raises drgn.FaultError when the tables cannot be read and ValueError
    when they do not decode.
    """
    count = prog.read_u32(tables.num_syms)
    token = _tokens(prog, tables).__getitem__
    names = _NameReader(prog, tables)
    out = []
    for _ in range(count):
        expanded = "".join(map(token, names.next_name()))
        if not expanded:
            raise ValueError("an empty kallsyms name: the tables do not decode")
        out.append((expanded[1:], expanded[0]))
    return out


def _tokens(prog: drgn.Program, tables: KallsymsTables) -> list[str]:
    """The 256 strings a name byte stands for (``kallsyms_token_table`` entries at
    ``kallsyms_token_index`` offsets)."""
    index = struct.unpack("<256H", prog.read(tables.token_index, 512))
    size = max(index) + 256  # past the last token's start: tokens are short
    raw = prog.read(tables.token_table, size)
    out = []
    for start in index:
        end = raw.index(b"\0", start)
        out.append(raw[start:end].decode("latin-1"))
    return out


class _NameReader:
    """Walks ``kallsyms_names``: a length (one byte, or two when the first has its top
    bit set, Linux 6.1+), then that many token bytes, read in large chunks."""

    def __init__(self, prog: drgn.Program, tables: KallsymsTables) -> None:
        self.prog = prog
        self.address = tables.names
        span = tables.token_table - tables.names
        self.data = prog.read(tables.names, span if 0 < span <= 16 * _CHUNK else _CHUNK)
        self.at = 0

    def next_name(self) -> bytes:
        data, at = self.data, self.at
        if at + 2 > len(data):
            data = self._more()
        length = data[at]
        if length & 0x80:  # a "big" name: two bytes of length
            length = (length & 0x7F) | (data[at + 1] << 7)
            at += 1
        at += 1
        if at + length > len(data):
            data = self._more()
        self.at = at + length
        return data[at:at + length]

    def _more(self) -> bytes:
        self.data += self.prog.read(self.address + len(self.data), _CHUNK)
        return self.data
