"""Loaded BPF programs and maps, as crash's ``bpf`` lists them.

A BPF program runs kernel code nobody compiled into the image: a crash inside a JIT-ed
program, or a map that filled up, only shows in the dump through the kernel's ID
registries. Every program and map with an ID is in ``prog_idr`` and ``map_idr``; the
IDR index is the ID that ``bpftool`` shows, so the records carry it as crash does.

Fields a kernel lacks (``bpf_map.pages`` and ``bpf_map.user``, gone since 5.11) are
``None``, shown as crash shows them; a map's memory is then crash's estimate. An entry
that cannot be read becomes a warning rather than a record, so one freed object does not
hide the others.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable

import drgn
from drgn.helpers.linux.cpumask import for_each_possible_cpu
from drgn.helpers.linux.idr import idr_for_each

from kdx.model.disasm import Disassembly
from kdx.model.reading import READ_ERRORS
from kdx.model.records import Hex

__all__ = ["BpfInstruction", "BpfListing", "BpfMap", "BpfObjects", "BpfProgram",
           "BpfProgramCode", "bpf_instructions", "bpf_objects", "map_memlock"]

#: Map types whose values are per CPU, and those that hold file descriptors (one u32
#: each), by their uapi numbers: the memory estimate counts their values differently.
_PERCPU_MAPS = {5, 6, 10, 21}
_FD_MAPS = {3, 4, 8, 12, 13}


@dataclass(frozen=True)
class BpfInstruction:
    """One instruction of a program as the kernel holds it after verification
    (``insnsi``), with its raw fields; ``text`` is the kernel's own spelling."""

    index: int
    code: int
    dst: int
    src: int
    off: int
    imm: int
    imm64: Hex | None  # a 16-byte load's whole immediate (the next slot's half included)
    bytes: str  # the 8 (or 16) bytes, in hex
    text: str


@dataclass(frozen=True)
class BpfProgram:
    """One loaded program. ``xlated_bytes`` is the verified bytecode's size (8 bytes an
    instruction), ``jited_bytes`` the machine code's; ``memlock`` is ``pages`` times the
    page size where the kernel keeps it."""

    id: int
    address: Hex
    aux: Hex
    type: int
    type_name: str
    tag: str
    used_maps: tuple[int, ...]
    xlated_bytes: int
    jited_bytes: int
    bpf_func: Hex
    memlock: int | None
    load_time_ns: int | None
    gpl_compatible: bool | None
    name: str | None
    uid: int | None


@dataclass(frozen=True)
class BpfMap:
    """One map: its sizes and flags as created, and crash's memory estimate."""

    id: int
    address: Hex
    type: int
    type_name: str
    flags: int
    key_size: int | None
    value_size: int | None
    max_entries: int | None
    memlock: int | None
    name: str | None
    uid: int | None


@dataclass(frozen=True)
class BpfObjects:
    """Everything in prog_idr and map_idr, in ID order, with the widths crash gives the
    type columns (from the kernel's own enums) and a line for each unreadable entry."""

    programs: tuple[BpfProgram, ...]
    maps: tuple[BpfMap, ...]
    prog_type_width: int
    map_type_width: int
    boot_epoch: int | None = None
    warnings: tuple[str, ...] = field(default=())


@dataclass(frozen=True)
class BpfProgramCode:
    """A program's code when asked for: the verified bytecode (-t) and the machine code
    the JIT made of it (-j); None for what was not asked or could not be read."""

    id: int
    xlated: tuple[BpfInstruction, ...] | None
    jited: Disassembly | None


@dataclass(frozen=True)
class BpfListing:
    """What one ``bpf`` command shows: the chosen programs and maps, their code, and a
    line for each entry that could not be read."""

    programs: tuple[BpfProgram, ...]
    maps: tuple[BpfMap, ...]
    code: tuple[BpfProgramCode, ...]
    warnings: tuple[str, ...]


def _enum_names(prog: drgn.Program, name: str, prefix: str) -> dict[int, str]:
    """An enum's values and names without ``prefix``; the first name of a value wins,
    as a kernel alias (``CGROUP_STORAGE_DEPRECATED``) comes after the name it renames."""
    names: dict[int, str] = {}
    try:
        enumerators = prog.type(f"enum {name}").enumerators or ()
    except LookupError:
        return names
    for e in enumerators:
        names.setdefault(e.value, e.name[len(prefix):] if e.name.startswith(prefix)
                         else e.name)
    return names


def _longest(prog: drgn.Program, name: str) -> int:
    """The longest enumerator of an enum less 14 (``BPF_PROG_TYPE_``): crash's width for
    both type columns, the map's included."""
    try:
        enumerators = prog.type(f"enum {name}").enumerators or ()
    except LookupError:
        return 0
    return max((len(e.name) for e in enumerators), default=14) - len("BPF_PROG_TYPE_")


def _member(obj: drgn.Object, name: str) -> drgn.Object | None:
    """A member the kernel may not have (``None``), so one layout serves every version."""
    try:
        return obj.member_(name)
    except LookupError:
        return None


def _int(obj: drgn.Object, name: str) -> int | None:
    value = _member(obj, name)
    return None if value is None else value.value_()


def _name(obj: drgn.Object) -> str | None:
    raw = _member(obj, "name")
    if raw is None:
        return None
    return raw.string_().decode("utf-8", errors="backslashreplace")


def _uid(user: drgn.Object | None) -> int | None:
    """``user_struct.uid`` behind a pointer, or None when there is none to read."""
    if user is None or not user.value_():
        return None
    try:
        return user.uid.val.value_()
    except READ_ERRORS:
        return None


def _page_size(prog: drgn.Program) -> int:
    try:
        return prog["PAGE_SIZE"].value_()
    except (LookupError, ValueError):
        return 4096


def _possible_cpus(prog: drgn.Program) -> int:
    try:
        return sum(1 for _ in for_each_possible_cpu(prog))
    except READ_ERRORS:
        return 0


def map_memlock(map_type: int, key_size: int, value_size: int, max_entries: int,
                page_size: int, cpus: int) -> int:
    """crash's estimate of a map's memory where the kernel no longer counts pages
    (5.11 and later): key plus value (per CPU, or one u32 for descriptor maps), rounded
    to 8 bytes, times the entries, rounded up to pages. 0 when it cannot tell."""
    if map_type in _PERCPU_MAPS:
        if not cpus:
            return 0
        value = -(-value_size // 8) * 8 * cpus
    elif map_type in _FD_MAPS:
        value = 4
    else:
        value = value_size
    entry = -(-(key_size + value) // 8) * 8
    return -(-(max_entries * entry) // page_size) * page_size


def _idr_entries(prog: drgn.Program, symbol: str, type_name: str,
                 warnings: list[str]) -> list[tuple[int, drgn.Object]]:
    """(ID, object) for every entry of an IDR; a broken tree stops with a warning."""
    found: list[tuple[int, drgn.Object]] = []
    pointer = prog.type(type_name)
    try:
        for index, entry in idr_for_each(prog[symbol]):
            found.append((index, drgn.cast(pointer, entry)))
    except READ_ERRORS as err:
        warnings.append(f"{symbol}: cannot walk the rest of the IDR: {err}")
    return found


def _program(pid: int, bp: drgn.Object, types: dict[int, str], maps: dict[int, int],
             page_size: int) -> BpfProgram:
    """One program; ``maps`` turns the addresses in ``used_maps`` into IDs (a map not
    in map_idr is left out, as crash leaves it out)."""
    aux = bp.aux
    used: list[int] = []
    for i in range(aux.used_map_cnt.value_()):
        map_id = maps.get(aux.used_maps[i].value_())
        if map_id is not None:
            used.append(map_id)
    pages = _int(bp, "pages")
    gpl = _int(bp, "gpl_compatible")
    kind = bp.type.value_()
    return BpfProgram(
        id=pid, address=bp.value_(), aux=aux.value_(), type=kind,
        type_name=types.get(kind, ""), tag=bytes(bp.tag.to_bytes_()).hex(),
        used_maps=tuple(used), xlated_bytes=bp.len.value_() * 8,
        jited_bytes=bp.jited_len.value_(), bpf_func=bp.bpf_func.value_(),
        memlock=None if pages is None else pages * page_size,
        load_time_ns=_int(aux, "load_time"),
        gpl_compatible=None if gpl is None else bool(gpl),
        name=_name(aux), uid=_uid(_member(aux, "user")))


def _map(bm: drgn.Object, mid: int, types: dict[int, str], page_size: int,
         cpus: int) -> BpfMap:
    """One map, its memory counted the way its kernel counts it (5.3-5.10's
    ``bpf_map_memory``, older ``pages``) or else estimated as crash does."""
    kind = bm.map_type.value_()
    key, value, entries = (_int(bm, "key_size"), _int(bm, "value_size"),
                           _int(bm, "max_entries"))
    memory = _member(bm, "memory")
    pages = _int(memory, "pages") if memory is not None else _int(bm, "pages")
    if pages is not None:
        memlock: int | None = pages * page_size
    else:
        memlock = map_memlock(kind, key or 0, value or 0, entries or 0, page_size,
                              cpus) or None
    user = _member(memory, "user") if memory is not None else _member(bm, "user")
    return BpfMap(id=mid, address=bm.value_(), type=kind, type_name=types.get(kind, ""),
                  flags=bm.map_flags.value_(), key_size=key, value_size=value,
                  max_entries=entries, memlock=memlock, name=_name(bm), uid=_uid(user))


def bpf_objects(prog: drgn.Program, boot_epoch: int | None = None) -> BpfObjects:
    """Every program and map with an ID. Raises LookupError on a kernel without BPF
    IDs (before 4.13, or built without CONFIG_BPF_SYSCALL)."""
    prog["prog_idr"], prog["map_idr"]  # noqa: B018 (the kernel must have both)
    warnings: list[str] = []
    page_size, cpus = _page_size(prog), _possible_cpus(prog)
    map_types = _enum_names(prog, "bpf_map_type", "BPF_MAP_TYPE_")
    maps: list[BpfMap] = []
    for mid, bm in _idr_entries(prog, "map_idr", "struct bpf_map *", warnings):
        try:
            maps.append(_map(bm, mid, map_types, page_size, cpus))
        except READ_ERRORS as err:
            warnings.append(f"map {mid} at {bm.value_():#x} cannot be read: {err}")
    by_address = {m.address: m.id for m in maps}
    prog_types = _enum_names(prog, "bpf_prog_type", "BPF_PROG_TYPE_")
    programs: list[BpfProgram] = []
    for pid, bp in _idr_entries(prog, "prog_idr", "struct bpf_prog *", warnings):
        try:
            programs.append(_program(pid, bp, prog_types, by_address, page_size))
        except READ_ERRORS as err:
            warnings.append(f"program {pid} at {bp.value_():#x} cannot be read: {err}")
    return BpfObjects(tuple(programs), tuple(maps),
                      min(13, _longest(prog, "bpf_prog_type")),
                      _longest(prog, "bpf_map_type"), boot_epoch, tuple(warnings))


def _helper_namer(prog: drgn.Program) -> Callable[[int], str | None]:
    """Names a call's ``imm`` as crash does: a helper number below ``__BPF_FUNC_MAX_ID``
    by the kernel's ``func_id_str``, else the symbol at ``__bpf_call_base + imm``."""
    try:
        limit = prog.constant("__BPF_FUNC_MAX_ID").value_()
    except LookupError:
        limit = 0
    try:
        base = prog.symbol("__bpf_call_base").address
    except LookupError:
        base = None

    def name(imm: int) -> str | None:
        try:
            if 0 <= imm < limit:
                return prog["func_id_str"][imm].string_().decode()
            if base is not None:
                symbol = prog.symbol((base + imm) & 0xFFFFFFFFFFFFFFFF)
                if symbol.address == (base + imm) & 0xFFFFFFFFFFFFFFFF:
                    return symbol.name
        except READ_ERRORS:
            return None
        return None
    return name


def bpf_instructions(prog: drgn.Program, program: BpfProgram,
                     map_ids: dict[int, int]) -> list[BpfInstruction]:
    """The verified bytecode of ``program`` (``insnsi``), decoded; ``map_ids`` turns the
    map addresses the verifier wrote into 16-byte loads back into map IDs."""
    from kdx.model.bpfinsn import decode_program

    bp = drgn.Object(prog, "struct bpf_prog *", program.address)
    raw = prog.read(bp.insnsi.address_, program.xlated_bytes)
    return decode_program(raw, map_ids, _helper_namer(prog))
