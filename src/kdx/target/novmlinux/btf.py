"""A reader of BTF, the compact type format the kernel keeps in its own memory.

With ``CONFIG_DEBUG_INFO_BTF`` the kernel image carries the types of the whole kernel
(``__start_BTF``..``__stop_BTF``) and each module carries its own types as *split* BTF
on top of them. That is enough to read a dump's structures when the debuginfo vmlinux
cannot be had. This module only parses bytes into plain records; turning them into drgn
types is ``btftypes``'s job, so the parser can be tested and reused without drgn.

Format decisions (from ``include/uapi/linux/btf.h`` of the kernel and libbpf):

- The header's ``hdr_len`` is honoured: fields past ``str_len`` are read only when the
  header is long enough. Headers of 32 bytes or more carry ``layout_off``/``layout_len``
  (libbpf, 2026): a table giving, per kind, the size of the data after a type record and
  of each of its ``vlen`` elements. kdx uses it to step over kinds newer than it knows.
- ``info`` is decoded the newest way: ``vlen`` in bits 0-23, ``kind`` in bits 24-30,
  ``kind_flag`` in bit 31. The classic layout (16-bit ``vlen``, 5-bit ``kind``) left bits
  16-23 and 29-30 zero, and the kernel refuses BTF where they are not, so the wide
  decoding gives the same numbers on every valid classic blob: no version test is needed.
- The whole blob is damaged-dump safe: every length and offset is checked against the
  bytes before use, and any fault is one ``BtfError`` saying what is wrong.

Parsing is two-step for speed: ``parse_btf`` walks the type section once to index where
each type starts (about 0.1 s for the 95,000 types of a distribution kernel), and a type
is decoded into a ``BtfType`` the first time it is asked for.
"""

from __future__ import annotations

import struct
from array import array
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from enum import IntEnum

__all__ = [
    "ArrayInfo",
    "Btf",
    "BtfError",
    "BtfType",
    "Enumerator",
    "IntInfo",
    "Kind",
    "Member",
    "Param",
    "VarSecinfo",
    "parse_btf",
]

BTF_MAGIC = 0xEB9F
#: Types a BTF blob may hold (ids are 20 bits in the kernel's own checks).
MAX_TYPES = 0x000FFFFF
_HEADER = struct.Struct("<HBBIIIII")
_TYPE = struct.Struct("<III")
_U32 = struct.Struct("<I")
_S32 = struct.Struct("<i")

#: The data after a record of each kind: (fixed bytes, bytes per vlen element).
_LAYOUT: tuple[tuple[int, int], ...] = (
    (0, 0),    # 0 UNKN: not a valid kind
    (4, 0),    # INT
    (0, 0),    # PTR
    (12, 0),   # ARRAY
    (0, 12),   # STRUCT
    (0, 12),   # UNION
    (0, 8),    # ENUM
    (0, 0),    # FWD
    (0, 0),    # TYPEDEF
    (0, 0),    # VOLATILE
    (0, 0),    # CONST
    (0, 0),    # RESTRICT
    (0, 0),    # FUNC
    (0, 8),    # FUNC_PROTO
    (4, 0),    # VAR
    (0, 12),   # DATASEC
    (0, 0),    # FLOAT
    (4, 0),    # DECL_TAG
    (0, 0),    # TYPE_TAG
    (0, 12),   # ENUM64
)


class BtfError(ValueError):
    """BTF that cannot be read: a bad header, or a length or reference past its data."""


class Kind(IntEnum):
    """BTF kinds (``BTF_KIND_*``). Kinds newer than these stay plain ints."""

    UNKN = 0
    INT = 1
    PTR = 2
    ARRAY = 3
    STRUCT = 4
    UNION = 5
    ENUM = 6
    FWD = 7
    TYPEDEF = 8
    VOLATILE = 9
    CONST = 10
    RESTRICT = 11
    FUNC = 12
    FUNC_PROTO = 13
    VAR = 14
    DATASEC = 15
    FLOAT = 16
    DECL_TAG = 17
    TYPE_TAG = 18
    ENUM64 = 19


#: Kinds whose third word is a size; the others' is a type id.
_SIZED = frozenset({Kind.INT, Kind.ENUM, Kind.STRUCT, Kind.UNION, Kind.DATASEC,
                    Kind.FLOAT, Kind.ENUM64})
#: Kinds whose third word refers to another type.
_REFERRING = frozenset({Kind.PTR, Kind.TYPEDEF, Kind.VOLATILE, Kind.CONST, Kind.RESTRICT,
                        Kind.FUNC, Kind.FUNC_PROTO, Kind.VAR, Kind.DECL_TAG, Kind.TYPE_TAG})


@dataclass(frozen=True, slots=True)
class IntInfo:
    """The word after an INT: encoding flags, bit offset and width."""

    encoding: int
    offset: int
    bits: int

    @property
    def is_signed(self) -> bool:
        return bool(self.encoding & 1)

    @property
    def is_char(self) -> bool:
        return bool(self.encoding & 2)

    @property
    def is_bool(self) -> bool:
        return bool(self.encoding & 4)


@dataclass(frozen=True, slots=True)
class ArrayInfo:
    type_id: int
    index_type_id: int
    nelems: int


@dataclass(frozen=True, slots=True)
class Member:
    """A struct or union member; ``bit_size`` is 0 unless the member is a bitfield
    declared in the kind_flag encoding (the old encoding keeps it in the INT)."""

    name: str
    type_id: int
    bit_offset: int
    bit_size: int


@dataclass(frozen=True, slots=True)
class Enumerator:
    name: str
    value: int


@dataclass(frozen=True, slots=True)
class Param:
    """A function prototype's parameter; an unnamed one of type 0 means ``...``."""

    name: str
    type_id: int


@dataclass(frozen=True, slots=True)
class VarSecinfo:
    """A variable of a DATASEC: its VAR type id, offset in the section and size."""

    type_id: int
    offset: int
    size: int


@dataclass(frozen=True, slots=True)
class BtfType:
    """One decoded type. ``ref`` is the size for sized kinds and the referred type id
    for the others (see ``size`` and ``type_id``)."""

    id: int
    kind: int
    name: str
    kind_flag: bool
    vlen: int
    ref: int
    int_info: IntInfo | None = None
    array: ArrayInfo | None = None
    members: tuple[Member, ...] = ()
    enumerators: tuple[Enumerator, ...] = ()
    params: tuple[Param, ...] = ()
    secinfos: tuple[VarSecinfo, ...] = ()
    linkage: int = 0
    component_idx: int = -1

    @property
    def size(self) -> int | None:
        return self.ref if self.kind in _SIZED else None

    @property
    def type_id(self) -> int | None:
        return self.ref if self.kind in _REFERRING else None

    @property
    def is_signed_enum(self) -> bool:
        """ENUM and ENUM64 mark signed values with kind_flag."""
        return self.kind_flag


@dataclass(frozen=True, slots=True)
class _Header:
    hdr_len: int
    flags: int
    type_off: int
    type_len: int
    str_off: int
    str_len: int
    layout_off: int
    layout_len: int


def _header(data: bytes | memoryview, name: str) -> _Header:
    if len(data) < _HEADER.size:
        raise BtfError(f"{name} BTF is {len(data)} bytes, shorter than a BTF header")
    magic, version, flags, hdr_len, type_off, type_len, str_off, str_len = \
        _HEADER.unpack_from(data, 0)
    if magic != BTF_MAGIC:
        raise BtfError(f"{name} BTF has magic {magic:#06x}, not {BTF_MAGIC:#06x} "
                       "(not BTF, or big-endian)")
    if version != 1:
        raise BtfError(f"{name} BTF has version {version}; kdx reads version 1")
    if hdr_len < _HEADER.size or hdr_len > len(data):
        raise BtfError(f"{name} BTF header length {hdr_len} does not fit its "
                       f"{len(data)} bytes")
    layout_off = layout_len = 0
    if hdr_len >= _HEADER.size + 8:
        layout_off, layout_len = struct.unpack_from("<II", data, _HEADER.size)
    body = len(data) - hdr_len
    for what, off, length in (("type", type_off, type_len), ("string", str_off, str_len),
                              ("layout", layout_off, layout_len)):
        if off + length > body:
            raise BtfError(f"{name} BTF {what} section ({off}+{length}) runs past the "
                           f"{body} bytes after its header")
    if type_off % 4 or type_len % 4:
        raise BtfError(f"{name} BTF type section is not 4-byte aligned")
    return _Header(hdr_len, flags, type_off, type_len, str_off, str_len, layout_off,
                   layout_len)


class Btf:
    """Parsed BTF: the types of the kernel, or of one module on top of them.

    Type ids are those of the blob: 1.. for the kernel; for split BTF they continue
    after the base's last id, and ids below ``start_id`` are the base's. ``type(id)``
    decodes one type (cached); ``find`` looks names up through an index built on first
    use.
    """

    def __init__(self, data: bytes, header: _Header, base: Btf | None, name: str,
                 layout: Mapping[int, tuple[int, int]]) -> None:
        self.name = name
        self.base = base
        self.data = data
        self.header = header
        self._types_at = header.hdr_len + header.type_off
        self._str_at = header.hdr_len + header.str_off
        self._str_end = self._str_at + header.str_len
        self.start_id = base.start_id + base.count if base else 1
        self.start_str_off = base.start_str_off + base.header.str_len if base else 0
        self._layout = layout
        self._offsets, self._kinds, self._names, self._refs = self._index()
        self.count = len(self._offsets)
        self._decoded: dict[int, BtfType] = {}
        self._strings: dict[int, str] = {}
        self._by_name: dict[str, list[int]] | None = None
        self._enumerators: dict[str, tuple[int, int]] | None = None
        self._referrers: Counter[int] | None = None

    # -- indexing -----------------------------------------------------------------

    def _extra(self, kind: int, vlen: int, type_id: int) -> int:
        if 0 < kind < len(_LAYOUT):
            fixed, elem = _LAYOUT[kind]
        elif kind in self._layout:
            fixed, elem = self._layout[kind]
        else:
            raise BtfError(f"{self.name} BTF type {type_id} has unknown kind {kind}")
        return fixed + vlen * elem

    def _index(self) -> tuple[array, bytearray, array, array]:
        """Where each type starts, its kind, its name offset and its size or referred
        type: one pass, no decoding."""
        data, off = self.data, self._types_at
        end = off + self.header.type_len
        offsets, kinds, names, refs = array("I"), bytearray(), array("I"), array("I")
        unpack, layout = _TYPE.unpack_from, _LAYOUT
        type_id = self.start_id
        while off < end:
            if off + 12 > end:
                raise BtfError(f"{self.name} BTF type {type_id} is cut short by the end "
                               "of the type section")
            name_off, info, ref = unpack(data, off)
            kind = (info >> 24) & 0x7F
            vlen = info & 0xFFFFFF
            if 0 < kind < 20:
                fixed, elem = layout[kind]
                extra = fixed + vlen * elem if elem else fixed
            else:
                extra = self._extra(kind, vlen, type_id)
            offsets.append(off)
            kinds.append(kind)
            names.append(name_off)
            refs.append(ref)
            off += 12 + extra
            type_id += 1
        if off != end:
            raise BtfError(f"{self.name} BTF type {type_id - 1} runs past the end of the "
                           "type section")
        if len(offsets) + self.start_id > MAX_TYPES:
            raise BtfError(f"{self.name} BTF has more types than BTF allows")
        return offsets, kinds, names, refs

    # -- strings and ids ----------------------------------------------------------

    @property
    def last_id(self) -> int:
        return self.start_id + self.count - 1

    def string(self, offset: int) -> str:
        """The string at ``offset`` (split BTF: below ``start_str_off`` is the base's)."""
        if offset < self.start_str_off:
            assert self.base is not None
            return self.base.string(offset)
        cached = self._strings.get(offset)
        if cached is not None:
            return cached
        at = self._str_at + offset - self.start_str_off
        if at >= self._str_end:
            raise BtfError(f"{self.name} BTF string offset {offset} is past its string "
                           "section")
        stop = self.data.find(b"\0", at, self._str_end)
        if stop < 0:
            raise BtfError(f"{self.name} BTF string at {offset} has no terminating NUL")
        text = self.data[at:stop].decode("utf-8", "replace")
        self._strings[offset] = text
        return text

    def _check_id(self, type_id: int, owner: int, what: str) -> int:
        if type_id > self.last_id:
            raise BtfError(f"{self.name} BTF type {owner} refers to {what} type "
                           f"{type_id}, past the last type {self.last_id}")
        return type_id

    def owns(self, type_id: int) -> bool:
        """Whether ``type_id`` is one of this blob's own types (not the base's)."""
        return self.start_id <= type_id <= self.last_id

    def ids(self) -> range:
        """This blob's own type ids."""
        return range(self.start_id, self.last_id + 1)

    def kind_of(self, type_id: int) -> int:
        """A type's kind without decoding it."""
        if type_id == 0:
            return Kind.UNKN
        if type_id < self.start_id:
            assert self.base is not None
            return self.base.kind_of(type_id)
        if type_id > self.last_id:
            raise BtfError(f"{self.name} BTF has no type {type_id}")
        return self._kinds[type_id - self.start_id]

    # -- decoding -----------------------------------------------------------------

    def type(self, type_id: int) -> BtfType:
        """The decoded type ``type_id`` (0 is void: kind UNKN, no name)."""
        if type_id < self.start_id:
            if self.base is not None and type_id > 0:
                return self.base.type(type_id)
            if type_id == 0:
                return _VOID
        found = self._decoded.get(type_id)
        if found is None:
            if type_id > self.last_id:
                raise BtfError(f"{self.name} BTF has no type {type_id} (last is "
                               f"{self.last_id})")
            found = self._decode(type_id)
            self._decoded[type_id] = found
        return found

    def _decode(self, type_id: int) -> BtfType:
        off = self._offsets[type_id - self.start_id]
        name_off, info, ref = _TYPE.unpack_from(self.data, off)
        kind, vlen, kflag = (info >> 24) & 0x7F, info & 0xFFFFFF, bool(info >> 31)
        name = self.string(name_off)
        if kind in _REFERRING and kind != Kind.FUNC_PROTO:
            self._check_id(ref, type_id, "its")
        extras = _decoders.get(kind)
        fields = extras(self, type_id, off + 12, vlen, kflag) if extras else {}
        if kind == Kind.FUNC_PROTO:
            self._check_id(ref, type_id, "return")
        return BtfType(type_id, kind, name, kflag, vlen, ref, **fields)

    def _words(self, at: int, count: int) -> tuple[int, ...]:
        return struct.unpack_from(f"<{count}I", self.data, at)

    def _int(self, type_id: int, at: int, vlen: int, kflag: bool) -> dict:
        word = _U32.unpack_from(self.data, at)[0]
        return {"int_info": IntInfo((word >> 24) & 0x0F, (word >> 16) & 0xFF, word & 0xFF)}

    def _array(self, type_id: int, at: int, vlen: int, kflag: bool) -> dict:
        elem, index, nelems = self._words(at, 3)
        self._check_id(elem, type_id, "element")
        self._check_id(index, type_id, "index")
        return {"array": ArrayInfo(elem, index, nelems)}

    def _members(self, type_id: int, at: int, vlen: int, kflag: bool) -> dict:
        words = self._words(at, 3 * vlen)
        members = []
        for i in range(0, 3 * vlen, 3):
            name_off, member_type, offset = words[i:i + 3]
            self._check_id(member_type, type_id, "member")
            if kflag:
                bit_offset, bit_size = offset & 0xFFFFFF, offset >> 24
            else:
                bit_offset, bit_size = offset, 0
            members.append(Member(self.string(name_off), member_type, bit_offset, bit_size))
        return {"members": tuple(members)}

    def _enum(self, type_id: int, at: int, vlen: int, kflag: bool) -> dict:
        words = self._words(at, 2 * vlen)
        values = []
        for i in range(0, 2 * vlen, 2):
            raw = words[i + 1]
            value = raw - (1 << 32) if kflag and raw >= 1 << 31 else raw
            values.append(Enumerator(self.string(words[i]), value))
        return {"enumerators": tuple(values)}

    def _enum64(self, type_id: int, at: int, vlen: int, kflag: bool) -> dict:
        words = self._words(at, 3 * vlen)
        values = []
        for i in range(0, 3 * vlen, 3):
            raw = words[i + 1] | words[i + 2] << 32
            value = raw - (1 << 64) if kflag and raw >= 1 << 63 else raw
            values.append(Enumerator(self.string(words[i]), value))
        return {"enumerators": tuple(values)}

    def _params(self, type_id: int, at: int, vlen: int, kflag: bool) -> dict:
        words = self._words(at, 2 * vlen)
        params = tuple(Param(self.string(words[i]),
                             self._check_id(words[i + 1], type_id, "parameter"))
                       for i in range(0, 2 * vlen, 2))
        return {"params": params}

    def _var(self, type_id: int, at: int, vlen: int, kflag: bool) -> dict:
        return {"linkage": _U32.unpack_from(self.data, at)[0]}

    def _datasec(self, type_id: int, at: int, vlen: int, kflag: bool) -> dict:
        words = self._words(at, 3 * vlen)
        infos = tuple(VarSecinfo(self._check_id(words[i], type_id, "variable"),
                                 words[i + 1], words[i + 2])
                      for i in range(0, 3 * vlen, 3))
        return {"secinfos": infos}

    def _decl_tag(self, type_id: int, at: int, vlen: int, kflag: bool) -> dict:
        return {"component_idx": _S32.unpack_from(self.data, at)[0]}

    # -- names --------------------------------------------------------------------

    def _name_index(self) -> dict[str, list[int]]:
        if self._by_name is None:
            index: dict[str, list[int]] = {}
            strings, start = self._all_strings(), self.start_id
            for i, name_off in enumerate(self._names):
                if name_off:
                    name = strings.get(name_off)
                    if name is None:  # base strings, or an offset inside a string
                        name = self.string(name_off)
                    index.setdefault(name, []).append(start + i)
            self._by_name = index
        return self._by_name

    def _all_strings(self) -> dict[int, str]:
        """Every string of this blob's own section by offset, decoded in one sweep
        (several times faster than one look-up per name)."""
        pieces = self.data[self._str_at:self._str_end].split(b"\0")
        table, offset = {}, self.start_str_off
        for piece in pieces:
            table[offset] = piece.decode("utf-8", "replace")
            offset += len(piece) + 1
        return table

    def find(self, name: str, kinds: Iterable[int] | None = None) -> list[int]:
        """Ids of this blob's own types named ``name`` (of ``kinds`` when given)."""
        found = self._name_index().get(name, [])
        if kinds is None:
            return list(found)
        wanted = set(kinds)
        return [i for i in found if self._kinds[i - self.start_id] in wanted]

    def referrers(self, type_id: int) -> int:
        """How many of this blob's types (pointers, typedefs, qualifiers...) refer to
        ``type_id``: when several structs share a name (one per source file), the one
        the kernel refers to most is the one meant."""
        if self._referrers is None:
            referring = bytes(k in _REFERRING for k in range(256))
            kinds = self._kinds
            self._referrers = Counter(
                ref for i, ref in enumerate(self._refs) if referring[kinds[i]])
        return self._referrers[type_id]

    def enumerators(self) -> Mapping[str, tuple[int, int]]:
        """Every enumerator of this blob's own enums: name -> (enum type id, value)."""
        if self._enumerators is None:
            table: dict[str, tuple[int, int]] = {}
            for i, kind in enumerate(self._kinds):
                if kind in (Kind.ENUM, Kind.ENUM64):
                    enum = self.type(self.start_id + i)
                    for e in enum.enumerators:
                        table.setdefault(e.name, (enum.id, e.value))
            self._enumerators = table
        return self._enumerators

    def per_cpu_variables(self) -> dict[str, tuple[int, int]]:
        """The variables of the ``.data..percpu`` section: name -> (type id of the
        variable's type, offset in the section). BTF has no other variables."""
        result: dict[str, tuple[int, int]] = {}
        for sec_id in self.find(".data..percpu", (Kind.DATASEC,)):
            for info in self.type(sec_id).secinfos:
                var = self.type(info.type_id)
                if var.kind == Kind.VAR:
                    result[var.name] = (var.ref, info.offset)
        return result

    def __repr__(self) -> str:
        return (f"Btf({self.name!r}, ids {self.start_id}..{self.last_id}"
                f"{', split' if self.base else ''})")


_decoders = {
    Kind.INT: Btf._int,
    Kind.ARRAY: Btf._array,
    Kind.STRUCT: Btf._members,
    Kind.UNION: Btf._members,
    Kind.ENUM: Btf._enum,
    Kind.ENUM64: Btf._enum64,
    Kind.FUNC_PROTO: Btf._params,
    Kind.VAR: Btf._var,
    Kind.DATASEC: Btf._datasec,
    Kind.DECL_TAG: Btf._decl_tag,
}

_VOID = BtfType(0, Kind.UNKN, "", False, 0, 0)


def _layout_table(data: bytes, header: _Header, name: str) -> dict[int, tuple[int, int]]:
    """The optional per-kind layout table: kind -> (fixed bytes, bytes per element)."""
    if not header.layout_len:
        return {}
    if header.layout_len % 4:
        raise BtfError(f"{name} BTF layout section length {header.layout_len} is not a "
                       "multiple of 4")
    at = header.hdr_len + header.layout_off
    return {kind: (data[at + 4 * kind], data[at + 4 * kind + 1])
            for kind in range(header.layout_len // 4)}


def parse_btf(data: bytes, base: Btf | None = None, *, name: str = "vmlinux") -> Btf:
    """Parse a BTF blob (``base``: the kernel's BTF when ``data`` is a module's split
    BTF). Raises ``BtfError`` for anything that does not fit its bytes."""
    data = bytes(data)
    header = _header(data, name)
    if base is None and header.str_len and data[header.hdr_len + header.str_off] != 0:
        raise BtfError(f"{name} BTF string section does not start with an empty string")
    return Btf(data, header, base, name, _layout_table(data, header, name))
