"""BTF records as drgn types, and the drgn type finder that serves them.

``BtfTypes`` converts the types of the kernel's BTF (and of each module's split BTF)
into ``drgn.Type`` objects on demand and caches them. Struct and union members are
lazy, so asking for ``struct task_struct`` converts one struct, not the thousands it
reaches through pointers. ``register`` plugs it into a program as the type finder
``kdx-btf``; enumerator constants and per-CPU variables, which drgn asks the *object*
finder for, are offered as ``find_constant`` and ``per_cpu_variable`` for the provider
that owns the object finder.

Register the finder before anything reads ``prog["VMCOREINFO"]`` (kdx's open and
drgn's ``load_vmlinux_kallsyms`` both do): that read makes drgn look up ``char`` and keep
the answer for good, and drgn's own default is a signed char, while kernels since 6.2
build with ``-funsigned-char``. Members typed ``char`` come from BTF either way; only
the name ``char`` typed in an expression depends on the order.

This module also reads the BTF out of a dump: the kernel's between the symbols
``__start_BTF`` and ``__stop_BTF`` (a symbol finder, kallsyms, must be registered), the
modules' from the kernel's ``btf_modules`` list, walked through the kernel's own types.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import PurePath

import drgn

from kdx.target.novmlinux.btf import Btf, BtfError, BtfType, Kind, Member, parse_btf

__all__ = [
    "FINDER_NAME",
    "BtfTypes",
    "has_btf",
    "add_module_btf",
    "load",
    "load_btf_types",
    "module_btfs",
    "register",
    "vmlinux_btf_bytes",
]

#: The name of kdx's type finder in the program.
FINDER_NAME = "kdx-btf"
#: Larger BTF than this is taken as a damaged length, not read (6.1's is 4 MiB).
MAX_BTF_BYTES = 256 << 20
#: More modules than this on ``btf_modules`` means a damaged (looping) list.
MAX_MODULES = 65536

_QUALIFIERS = {
    Kind.CONST: drgn.Qualifiers.CONST,
    Kind.VOLATILE: drgn.Qualifiers.VOLATILE,
    Kind.RESTRICT: drgn.Qualifiers.RESTRICT,
}
#: BTF kinds that carry a drgn type of each kind a lookup may ask for.
_LOOKUP_KINDS = {
    drgn.TypeKind.STRUCT: (Kind.STRUCT,),
    drgn.TypeKind.UNION: (Kind.UNION,),
    drgn.TypeKind.ENUM: (Kind.ENUM, Kind.ENUM64),
    drgn.TypeKind.TYPEDEF: (Kind.TYPEDEF,),
    drgn.TypeKind.INT: (Kind.INT,),
    drgn.TypeKind.BOOL: (Kind.INT,),
    drgn.TypeKind.FLOAT: (Kind.FLOAT,),
}
_ENUM_BASE = {1: "char", 2: "short", 4: "int", 8: "long"}


def _module_key(filename: str) -> str:
    """A module name from a module name or a ``.ko`` path (``a-b.ko.xz`` -> ``a_b``)."""
    base = PurePath(filename).name
    base = re.sub(r"\.ko(\.[a-z0-9]+)?$", "", base)
    return base.replace("-", "_")


@dataclass
class BtfTypes:
    """The kernel's and the modules' BTF, converted to drgn types on demand."""

    prog: drgn.Program
    vmlinux: Btf
    modules: Mapping[str, Btf] = field(default_factory=dict)
    #: Modules whose BTF could not be read or parsed: name -> why.
    skipped: dict[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.modules = {_module_key(name): btf for name, btf in self.modules.items()}
        self._cache: dict[Btf, dict[int, drgn.Type]] = {}
        self._busy: set[tuple[int, int]] = set()
        flags = self.prog.platform.flags if self.prog.platform else None
        self._word = 8 if flags is None or flags & drgn.PlatformFlags.IS_64_BIT else 4
        self._per_cpu: dict[str, tuple[Btf, int]] | None = None

    # -- conversion ---------------------------------------------------------------

    def type(self, btf: Btf, type_id: int) -> drgn.Type:
        """The drgn type of ``type_id`` of ``btf`` (a module's ids below its start are
        the kernel's, converted once for all modules)."""
        while btf.base is not None and type_id < btf.start_id:
            btf = btf.base
        cache = self._cache.setdefault(btf, {})
        found = cache.get(type_id)
        if found is not None:
            return found
        key = (id(btf), type_id)
        if key in self._busy:
            raise BtfError(f"{btf.name} BTF type {type_id} refers to itself")
        self._busy.add(key)
        try:
            found = self._convert(btf, btf.type(type_id))
        finally:
            self._busy.discard(key)
        cache[type_id] = found
        return found

    def _convert(self, btf: Btf, t: BtfType) -> drgn.Type:
        prog, lang = self.prog, drgn.Language.C
        kind = t.kind
        if kind == Kind.UNKN:
            return prog.void_type(language=lang)
        if kind == Kind.INT:
            return self._int(t)
        if kind == Kind.PTR:
            return prog.pointer_type(self.type(btf, t.ref), self._word, language=lang)
        if kind == Kind.ARRAY:
            assert t.array is not None
            return prog.array_type(self.type(btf, t.array.type_id), t.array.nelems,
                                   language=lang)
        if kind in (Kind.STRUCT, Kind.UNION):
            return self._compound(btf, t)
        if kind in (Kind.ENUM, Kind.ENUM64):
            return self._enum(t)
        if kind == Kind.FWD:
            make = prog.union_type if t.kind_flag else prog.struct_type
            return make(t.name or None, language=lang)
        if kind == Kind.TYPEDEF:
            return prog.typedef_type(t.name, self.type(btf, t.ref), language=lang)
        if kind in _QUALIFIERS:
            inner = self.type(btf, t.ref)
            return inner.qualified(inner.qualifiers | _QUALIFIERS[kind])
        if kind in (Kind.FUNC, Kind.VAR, Kind.TYPE_TAG, Kind.DECL_TAG):
            return self.type(btf, t.ref)  # their type is the one referred to
        if kind == Kind.FUNC_PROTO:
            return self._function(btf, t)
        if kind == Kind.FLOAT:
            return prog.float_type(t.name, t.ref, language=lang)
        raise BtfError(f"{btf.name} BTF type {t.id} ({_kind_name(kind)}) is not a type "
                       "of C values")

    def _int(self, t: BtfType) -> drgn.Type:
        info = t.int_info
        assert info is not None
        if info.is_bool:
            return self.prog.bool_type(t.name, t.ref, language=drgn.Language.C)
        return self.prog.int_type(t.name, t.ref, info.is_signed, language=drgn.Language.C)

    def _enum(self, t: BtfType) -> drgn.Type:
        base = _ENUM_BASE.get(t.ref, "int")
        name = base if t.is_signed_enum else f"unsigned {base}"
        compatible = self.prog.int_type(name, t.ref, t.is_signed_enum)
        enumerators = [drgn.TypeEnumerator(e.name, e.value) for e in t.enumerators]
        return self.prog.enum_type(t.name or None, compatible, enumerators,
                                   language=drgn.Language.C)

    def _compound(self, btf: Btf, t: BtfType) -> drgn.Type:
        last = len(t.members) - 1
        members = [drgn.TypeMember(self._member_thunk(btf, t, m, i == last), m.name or None,
                                   m.bit_offset + self._int_offset(btf, t, m))
                   for i, m in enumerate(t.members)]
        make = self.prog.union_type if t.kind == Kind.UNION else self.prog.struct_type
        return make(t.name or None, t.ref, members, language=drgn.Language.C)

    def _int_offset(self, btf: Btf, owner: BtfType, member: Member) -> int:
        """Old-style bitfields (no kind_flag) keep their extra bit offset in the INT."""
        if owner.kind_flag or btf.kind_of(member.type_id) != Kind.INT:
            return 0
        info = btf.type(member.type_id).int_info
        return info.offset if info else 0

    def _member_thunk(self, btf: Btf, owner: BtfType, member: Member,
                      last: bool) -> Callable[[], drgn.Object | drgn.Type]:
        """What a lazy member computes: its type, or a bitfield object of its type.

        A trailing zero-length array is a flexible array member (``x[]``): DWARF calls
        it an incomplete array and so does kdx; BTF cannot tell it from ``x[0]``.
        """
        def thunk() -> drgn.Object | drgn.Type:
            member_type = self._member_type(btf, owner, member, last)
            size = member.bit_size or self._old_bitfield(btf, owner, member)
            if size:
                return drgn.Object(self.prog, member_type, bit_field_size=size)
            return member_type
        return thunk

    def _member_type(self, btf: Btf, owner: BtfType, member: Member,
                     last: bool) -> drgn.Type:
        if last and owner.kind == Kind.STRUCT:
            qualifiers, type_id = drgn.Qualifiers.NONE, member.type_id
            while btf.kind_of(type_id) in _QUALIFIERS:  # const char name[]
                qualifiers |= _QUALIFIERS[btf.kind_of(type_id)]
                type_id = btf.type(type_id).ref
            array = btf.type(type_id).array if btf.kind_of(type_id) == Kind.ARRAY else None
            if array is not None and array.nelems == 0:
                return self.prog.array_type(self.type(btf, array.type_id),
                                            qualifiers=qualifiers,
                                            language=drgn.Language.C)
        return self.type(btf, member.type_id)

    def _old_bitfield(self, btf: Btf, owner: BtfType, member: Member) -> int:
        if owner.kind_flag or btf.kind_of(member.type_id) != Kind.INT:
            return 0
        t = btf.type(member.type_id)
        info = t.int_info
        if info is None or (info.bits == 8 * t.ref and info.offset == 0):
            return 0
        return info.bits

    def _function(self, btf: Btf, t: BtfType) -> drgn.Type:
        params = list(t.params)
        variadic = bool(params) and params[-1].type_id == 0 and not params[-1].name
        if variadic:
            params.pop()
        parameters = [drgn.TypeParameter(self._param_thunk(btf, p.type_id), p.name or None)
                      for p in params]
        return self.prog.function_type(self.type(btf, t.ref), parameters, variadic,
                                       language=drgn.Language.C)

    def _param_thunk(self, btf: Btf, type_id: int) -> Callable[[], drgn.Type]:
        return lambda: self.type(btf, type_id)

    # -- lookups ------------------------------------------------------------------

    def add_module(self, name: str, btf: Btf) -> None:
        """Serve the types of module ``name`` too (its split BTF on ``vmlinux``)."""
        if btf.base is not self.vmlinux:
            raise BtfError(f"the BTF of module {name} is not split on this kernel's BTF")
        self.modules = {**self.modules, _module_key(name): btf}
        self._per_cpu = None

    def _search_order(self, filename: str | None) -> list[Btf]:
        """vmlinux first, then the modules; only the named module (and the kernel
        types it builds on) when ``filename`` names a loaded module."""
        if filename:
            key = _module_key(filename)
            if key in ("vmlinux", "kernel"):
                return [self.vmlinux]
            if key in self.modules:
                return [self.modules[key], self.vmlinux]
        return [self.vmlinux, *self.modules.values()]

    def find(self, kinds: drgn.TypeKindSet | set[drgn.TypeKind], name: str,
             filename: str | None = None) -> drgn.Type | None:
        """The type ``name`` of one of ``kinds`` (complete ones before declarations)."""
        fallback = None
        for btf in self._search_order(filename):
            for kind in kinds:
                candidates = [i for i in btf.find(name, _LOOKUP_KINDS.get(kind, ()))
                              if self._matches(btf, i, kind)]
                if candidates:
                    return self.type(btf, max(candidates, key=btf.referrers))
                if fallback is None and kind in (drgn.TypeKind.STRUCT, drgn.TypeKind.UNION):
                    fallback = self._declaration(btf, name, kind)
        return fallback

    def _matches(self, btf: Btf, type_id: int, kind: drgn.TypeKind) -> bool:
        if kind not in (drgn.TypeKind.INT, drgn.TypeKind.BOOL):
            return True
        info = btf.type(type_id).int_info
        return info is not None and info.is_bool == (kind == drgn.TypeKind.BOOL)

    def _declaration(self, btf: Btf, name: str, kind: drgn.TypeKind) -> drgn.Type | None:
        want_union = kind == drgn.TypeKind.UNION
        for type_id in btf.find(name, (Kind.FWD,)):
            if btf.type(type_id).kind_flag == want_union:
                return self.type(btf, type_id)
        return None

    def find_constant(self, name: str, filename: str | None = None) -> drgn.Object | None:
        """The enumerator ``name`` as a value of its enum type (what
        ``prog.constant(name)`` asks the object finder for)."""
        for btf in self._search_order(filename):
            found = btf.enumerators().get(name)
            if found is not None:
                return drgn.Object(self.prog, self.type(btf, found[0]), found[1])
        return None

    def constant_value(self, name: str) -> int | None:
        """The value of the enumerator ``name`` (no drgn object needed)."""
        for btf in self._search_order(None):
            found = btf.enumerators().get(name)
            if found is not None:
                return found[1]
        return None

    def per_cpu_variable(self, name: str) -> drgn.Type | None:
        """The type of the per-CPU variable ``name`` (the only variables BTF types)."""
        if self._per_cpu is None:
            table: dict[str, tuple[Btf, int]] = {}
            for btf in (self.vmlinux, *self.modules.values()):
                for var, (type_id, _) in btf.per_cpu_variables().items():
                    table.setdefault(var, (btf, type_id))
            self._per_cpu = table
        found = self._per_cpu.get(name)
        return self.type(*found) if found else None

    def finder(self, prog: drgn.Program, kinds: drgn.TypeKindSet, name: str,
               filename: str | None) -> drgn.Type | None:
        """drgn's type finder signature over ``find``."""
        return self.find(kinds, name, filename)


def _kind_name(kind: int) -> str:
    try:
        return Kind(kind).name
    except ValueError:
        return f"kind {kind}"


def register(prog: drgn.Program, types: BtfTypes) -> None:
    """Make ``types`` the program's first type finder."""
    prog.register_type_finder(FINDER_NAME, types.finder, enable_index=0)


# -- reading BTF from a dump ---------------------------------------------------------


def _read(prog: drgn.Program, address: int, size: int, what: str) -> bytes:
    if not 0 < size <= MAX_BTF_BYTES:
        raise BtfError(f"{what} has an implausible size of {size} bytes")
    try:
        return prog.read(address, size)
    except drgn.FaultError as err:
        raise BtfError(f"{what} is not in the dump ({err})") from err


def vmlinux_btf_bytes(prog: drgn.Program) -> bytes:
    """The kernel's BTF, between ``__start_BTF`` and ``__stop_BTF`` (found through the
    program's symbol finders: kallsyms)."""
    try:
        start = prog.symbol("__start_BTF").address
        stop = prog.symbol("__stop_BTF").address
    except LookupError as err:
        raise BtfError("the kernel has no BTF (no __start_BTF symbol: built without "
                       "CONFIG_DEBUG_INFO_BTF?)") from err
    return _read(prog, start, stop - start, "the kernel's BTF")


def _btf_module_entries(prog: drgn.Program, types: BtfTypes) -> Iterator[drgn.Object]:
    """The ``struct btf_module`` entries of the kernel's ``btf_modules`` list."""
    list_head = types.find({drgn.TypeKind.STRUCT}, "list_head", "vmlinux")
    entry_type = types.find({drgn.TypeKind.STRUCT}, "btf_module", "vmlinux")
    if list_head is None or entry_type is None:
        raise BtfError("the kernel's BTF has no struct list_head or struct btf_module")
    try:
        head_address = prog.symbol("btf_modules").address
    except LookupError as err:
        raise BtfError("the kernel has no btf_modules symbol") from err
    head = drgn.Object(prog, list_head, address=head_address)
    node = head.next
    for _ in range(MAX_MODULES):
        if node.value_() == head_address:
            return
        yield drgn.container_of(node, entry_type, "list")
        node = node.next
    raise BtfError("the kernel's btf_modules list does not end (damaged)")


def _module_blobs(prog: drgn.Program,
                  types: BtfTypes) -> Iterator[tuple[str, bytes | BtfError]]:
    """Each module on ``btf_modules`` with its BTF, or why that BTF cannot be read
    (a filtered dump may lack one module's pages and still hold the others')."""
    for entry in _btf_module_entries(prog, types):
        try:
            name = entry.module.name.string_().decode(errors="replace")
        except drgn.FaultError as err:
            raise BtfError(f"the btf_modules list is not readable ({err})") from err
        try:
            btf = entry.btf
            yield name, _read(prog, btf.data.value_(), btf.data_size.value_(),
                              f"the BTF of module {name}")
        except drgn.FaultError as err:
            yield name, BtfError(f"the BTF of module {name} is not in the dump ({err})")
        except BtfError as err:
            yield name, err


def module_btfs(prog: drgn.Program, types: BtfTypes) -> dict[str, bytes]:
    """Each loaded module's split BTF that the dump holds, by module name, as the
    kernel keeps it (``btf_modules``: ``mod->btf_data`` is freed once the module is
    live)."""
    return {name: blob for name, blob in _module_blobs(prog, types)
            if isinstance(blob, bytes)}


def has_btf(prog: drgn.Program) -> bool:
    """Whether kallsyms knows the kernel's BTF section (``CONFIG_DEBUG_INFO_BTF``)."""
    try:
        prog.symbol("__start_BTF")
        prog.symbol("__stop_BTF")
    except LookupError:
        return False
    return True


def load(prog: drgn.Program) -> BtfTypes | None:
    """The kernel's BTF from the dump, registered as the program's first type finder;
    None when the kernel has none. Damaged BTF raises ``BtfError``. Module types are
    added by ``add_module_btf``."""
    if not has_btf(prog):
        return None
    types = BtfTypes(prog, parse_btf(vmlinux_btf_bytes(prog)))
    register(prog, types)
    return types


def add_module_btf(prog: drgn.Program, types: BtfTypes) -> None:
    """Add every loaded module's split BTF to ``types``. A module whose BTF is damaged
    or missing from the dump is left out and named in ``types.skipped``; a list that
    cannot be walked raises ``BtfError``."""
    for name, data in _module_blobs(prog, types):
        try:
            if isinstance(data, BtfError):
                raise data
            types.add_module(name, parse_btf(data, types.vmlinux, name=name))
        except BtfError as err:
            types.skipped[name] = str(err)


def load_btf_types(prog: drgn.Program) -> BtfTypes:
    """The kernel's and every module's BTF from the dump, not yet registered (the
    standalone form of ``load`` + ``add_module_btf``). A kernel without BTF, or damaged
    kernel BTF, raises ``BtfError``; a module list that cannot be walked is noted in
    ``skipped`` under ``"*"``."""
    types = BtfTypes(prog, parse_btf(vmlinux_btf_bytes(prog)))
    try:
        add_module_btf(prog, types)
    except BtfError as err:
        types.skipped["*"] = str(err)
    return types
