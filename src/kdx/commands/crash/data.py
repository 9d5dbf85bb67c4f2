"""gdb's data commands: ``struct``, ``union``, ``p`` and ``whatis``.

crash answers these through its embedded gdb; kdx reads the objects through drgn into
value trees (kdx.model.values) and prints them in gdb's layout (kdx.render.crash.data).
``p`` takes a symbol or a C expression over symbols and numbers (kdx.model.expr):
members (``.`` and ``->``), indexing, ``&``, ``*``, casts to any type the debug info
knows, and integer arithmetic.
"""

from __future__ import annotations

import argparse
import re
from dataclasses import dataclass
from typing import Callable

import drgn
from drgn.helpers.linux.cpumask import for_each_possible_cpu
from drgn.helpers.linux.percpu import per_cpu_ptr
from drgn.helpers.linux.sched import task_cpu

from kdx.commands.crash.arguments import cpu_list
from kdx.model.expr import (
    ExpressionError,
    ExpressionParser,
    is_percpu_symbol,
    is_symbol,
    member_object,
    symbol_object,
)
from kdx.model.rawmemory import (
    KERNEL,
    USER,
    MemoryDisplay,
    MemoryWord,
    make_reader,
    read_memory,
    read_span,
    symbol_or_hex,
)
from kdx.model.values import (
    CpuAddress,
    CpuObjects,
    Declaration,
    Enumerator,
    MemberValue,
    ObjectView,
    PercpuSymbol,
    PrintedValue,
    StructView,
    TypeLayout,
    ValueReader,
    session_reader,
    type_layout,
)
from kdx.render.crash.data import percpu_text, print_text, struct_view_text, whatis_text
from kdx.session.command import CommandError, crash_command, make_parser
from kdx.session.session import Session

_MASK64 = (1 << 64) - 1


# -- p ----------------------------------------------------------------------------------


def _history(session: Session) -> int:
    """gdb's value-history number: $1, $2... for the session."""
    counter = session.cached("gdb-value-history", lambda: [0])
    counter[0] += 1
    return counter[0]


def _p_parser() -> argparse.ArgumentParser:
    parser = make_parser("p", "print the value of a symbol or expression, as gdb does "
                         "in crash")
    radix = parser.add_mutually_exclusive_group()
    radix.add_argument("-x", action="store_const", const=16, dest="radix",
                       help="integers in hexadecimal")
    radix.add_argument("-d", action="store_const", const=10, dest="radix",
                       help="integers in decimal (the default)")
    parser.add_argument("expression", nargs=argparse.REMAINDER, help="symbol or C expression")
    return parser


#: gdb print formats kdx's ``p`` takes, as the radix they mean.
_PRINT_FORMATS = {"x": 16, "d": 10, "u": 10}


@crash_command("p", "print a symbol or C expression as gdb does", parser=_p_parser,
               aliases=("print",))
def _p(session: Session, args: argparse.Namespace) -> None:
    fmt = None
    if args.expression and args.expression[0].startswith("/"):  # gdb's p/x, p/d
        fmt, args.expression = args.expression[0][1:], args.expression[1:]
        if fmt not in _PRINT_FORMATS:
            raise CommandError(f"format /{fmt} is not supported (/x, /d and /u are)")
        args.radix = _PRINT_FORMATS[fmt]
    if not args.expression:
        raise CommandError("p: an expression is required")
    prog = session.prog
    text = " ".join(args.expression)
    first = args.expression[0]
    if len(args.expression) == 1 and is_percpu_symbol(prog, first):
        _percpu(session, first)
        return
    value = ExpressionParser(prog, text).parse()
    number = _history(session)
    # crash names the symbol first (``jiffies = $1 = ...``), but not after p/FMT
    leader = first if fmt is None and is_symbol(prog, first) else None
    record = PrintedValue(text, number, leader,
                          session_reader(prog, session.cached).read(value))
    radix = args.radix or session.settings.radix
    session.emit("p", record, lambda: print_text(record, radix))


def _percpu(session: Session, name: str) -> None:
    """crash's answer for a per-CPU symbol: its type, then its address on every CPU."""
    prog = session.prog
    obj = prog[name]
    addresses = tuple(CpuAddress(cpu, per_cpu_ptr(obj.address_of_(), cpu).value_())
                      for cpu in for_each_possible_cpu(prog))
    record = PercpuSymbol(name, obj.type_.type_name(), obj.type_.variable_declaration(name),
                          addresses)
    session.emit("p-percpu", record, lambda: percpu_text(record))


# -- struct / union ---------------------------------------------------------------------


def _struct_parser(kind: str) -> Callable[[], argparse.ArgumentParser]:
    def build() -> argparse.ArgumentParser:
        parser = make_parser(kind, f"show a {kind} type, or a {kind} in memory, as crash "
                             "does")
        parser.add_argument("-o", action="store_true", dest="offsets",
                            help="show member offsets (or addresses, with ADDR)")
        radix = parser.add_mutually_exclusive_group()
        radix.add_argument("-x", action="store_const", const=16, dest="radix",
                           help="integers in hexadecimal")
        radix.add_argument("-d", action="store_const", const=10, dest="radix",
                           help="integers in decimal")
        parser.add_argument("-c", dest="count", metavar="COUNT",
                            help="show COUNT consecutive objects from ADDR (a negative "
                            "COUNT: the ones leading up to ADDR)")
        parser.add_argument("-l", dest="list_offset", metavar="OFFSET|STRUCT.MEMBER",
                            help="ADDR points to this member (a list_head) inside the "
                            f"{kind}")
        parser.add_argument("-r", action="store_true", dest="raw",
                            help="raw hexadecimal dump of the object's bytes")
        parser.add_argument("-p", action="store_true", dest="deref",
                            help="follow pointer members one level")
        space = parser.add_mutually_exclusive_group()
        space.add_argument("-u", action="store_true", dest="user",
                           help="ADDR is a user address of the current task")
        space.add_argument("-f", action="store_true", dest="file",
                           help="ADDR is an offset in the dump file")
        parser.add_argument("words", nargs=argparse.REMAINDER,
                            metavar=f"{kind.upper()}[.MEMBER[,MEMBER]] [ADDR|SYMBOL]"
                            "[:CPUSPEC] [COUNT]",
                            help="the type, then optionally the hexadecimal address or "
                            "symbol of the object (CPUSPEC: a per-CPU one on CPUs a, "
                            "0,1, 1-3, or the current CPU when empty), then a count")
        return parser
    return build


_FLAG_DESTS = {"o": ("offsets", True), "r": ("raw", True), "p": ("deref", True),
               "u": ("user", True), "f": ("file", True), "x": ("radix", 16),
               "h": ("radix", 16), "d": ("radix", 10), "v": (None, None)}


def _late_options(args: argparse.Namespace) -> None:
    """Take options from among the words, where crash's getopt finds them too
    (``struct list_head -o ADDR``, ``struct x.y ADDR -px``, ``-c 2`` anywhere)."""
    words: list[str] = []
    pending = list(args.words)
    while pending:
        word = pending.pop(0)
        if not word.startswith("-") or len(word) < 2 or re.fullmatch(r"-\d+", word):
            words.append(word)
            continue
        for i, letter in enumerate(word[1:], start=1):
            if letter in "cl":
                value = word[i + 1:] or (pending.pop(0) if pending else None)
                if value is None:
                    raise CommandError(f"option -{letter} needs a value")
                setattr(args, "count" if letter == "c" else "list_offset", value)
                break
            if letter not in _FLAG_DESTS:
                raise CommandError(f"invalid option: -{letter}")
            dest, value = _FLAG_DESTS[letter]
            if dest is not None:
                setattr(args, dest, value)
    args.words = words


def _lookup_compound(prog: drgn.Program, kind: str, name: str) -> drgn.Type:
    """The struct (or union) called ``name``: its tag first, then a typedef of one."""
    for spelling in (f"{kind} {name}", name):
        try:
            type_ = prog.type(spelling)
        except (LookupError, SyntaxError, ValueError):
            continue
        if type_.unaliased_kind() == getattr(drgn.TypeKind, kind.upper()):
            return type_
    raise CommandError(f"invalid data structure reference: {name}")


def _object_address(prog: drgn.Program, word: str) -> int:
    address = symbol_or_hex(prog, word)
    if address is None:
        raise CommandError(f"symbol not found: {word}")
    return address



def _check_members(layout: TypeLayout, members: list[str], type_name: str) -> None:
    """crash's error for a member the type does not declare."""
    declared = {line.member for line in layout.lines[1:-1]}
    for member in members:
        if member not in declared:
            raise CommandError(f"invalid data structure reference: {type_name}.{member}")


@dataclass
class _StructRequest:
    """What one ``struct``/``union`` command asks for, once its words are read."""

    kind: str
    type_: drgn.Type
    members: list[str]
    address: int
    count: int
    radix: int
    offsets: bool
    raw: bool
    deref: bool
    user: bool
    file: bool

    @property
    def size(self) -> int:
        return self.type_.unaliased().size or 0


def _count(word: str) -> int:
    try:
        return int(word, 0)
    except ValueError as err:
        raise CommandError(f"invalid count: {word}") from err


def _list_offset(prog: drgn.Program, text: str) -> int:
    """``-l``: a number of bytes, or ``struct.member`` naming the member ADDR is at."""
    if re.fullmatch(r"\d+|0[xX][0-9a-fA-F]+", text):
        return int(text, 0)
    name, _, member = text.partition(".")
    if member:
        for spelling in (f"struct {name}", f"union {name}", name):
            try:
                return drgn.offsetof(prog.type(spelling), member)
            except (LookupError, SyntaxError, ValueError):
                continue
    raise CommandError(f"invalid -l option: {text}")


def _cpus(session: Session, spec: str) -> list[int]:
    """crash's cpuspec: empty for the current task's CPU, else a CPU list (``a``,
    ``0,2-3``) read as every command reads one."""
    if spec == "":
        return [task_cpu(session.current_task)]
    return cpu_list(session, spec)


def _percpu_base(session: Session, word: str) -> tuple[int, bool]:
    """The address a cpuspec applies to and whether it is a per-CPU symbol's (a plain
    symbol's cpuspec is ignored with crash's warning)."""
    prog = session.prog
    if re.match(r"[A-Za-z_]", word) and is_symbol(prog, word):
        if not is_percpu_symbol(prog, word):
            session.warn(f"{word} is not percpu; cpuspec ignored.")
            return prog.symbol(word).address, False
        return prog.symbol(word).address, True
    return _object_address(prog, word), True


def _struct_command(kind: str) -> Callable[[Session, argparse.Namespace], None]:
    def run(session: Session, args: argparse.Namespace) -> None:
        prog = session.prog
        _late_options(args)
        if not args.words:
            raise CommandError(f"{kind}: a {kind} name is required")
        if len(args.words) > 3:
            raise CommandError(f"too many arguments: {' '.join(args.words[3:])}")
        name, _, members = args.words[0].partition(".")
        if members.endswith((",", ".")) or args.words[0].endswith((",", ".")):
            raise CommandError(f"invalid format: {args.words[0]}")
        address_word = args.words[1] if len(args.words) > 1 else None
        if len(args.words) > 2:
            if args.count is not None:
                raise CommandError("too many arguments!")
            args.count = args.words[2]
        type_ = _lookup_compound(prog, kind, name)
        radix = args.radix or session.settings.radix
        if address_word is None:
            if args.count is not None:
                raise CommandError("no kernel virtual address argument entered")
            if args.deref:
                raise CommandError("-p option requires address argument")
            view = _declaration(kind, type_, members, args.offsets)
            session.emit(kind, view, lambda: struct_view_text(view, radix))
            return
        member_list = [m.strip() for m in members.split(",") if m.strip()]
        if len(member_list) > 1 and args.offsets:
            raise CommandError("-o option not valid with multiple member format")
        if len(member_list) > 1 and args.raw:
            raise CommandError("only one structure member allowed with -r")
        word, colon, cpuspec = address_word.partition(":")
        cpus = None
        if colon:
            if args.file:
                raise CommandError("-f option cannot be used with percpu")
            address, percpu = _percpu_base(session, word)
            cpus = _cpus(session, cpuspec) if percpu else None
        elif args.file:
            address = _count(word if word.isdigit() else "0x" + word)
        else:
            address = _object_address(prog, word)
        if args.list_offset is not None:
            address -= _list_offset(prog, args.list_offset)
        request = _StructRequest(kind, type_, member_list, address & _MASK64,
                                 _count(args.count) if args.count is not None else 1,
                                 radix, args.offsets, args.raw, args.deref,
                                 args.user, args.file)
        view = _struct_view(session, request, cpus)
        for _ in range(_followed_objects(view)):
            _history(session)  # gdb numbers each object it prints under ``-> ``
        session.emit(kind, view, lambda: struct_view_text(view, radix))
    return run


def _declaration(kind: str, type_: drgn.Type, members: str, offsets: bool) -> StructView:
    """``struct NAME[.member]`` without an address: the type's declaration (the
    struct's own layout, not a typedef's, when offsets are shown)."""
    chosen = tuple(m.strip() for m in members.split(",") if m.strip())
    layout = type_layout(type_.unaliased() if offsets or chosen else type_)
    _check_members(layout, list(chosen), type_.type_name())
    return StructView(kind, type_.type_name(), type_.unaliased().size or 0,
                      offsets=offsets, layout=layout, members=chosen)


def _struct_view(session: Session, request: _StructRequest,
                 cpus: list[int] | None) -> StructView:
    """The objects the request names, or each CPU's copies of them (``ADDR:cpuspec``)."""
    objects: tuple[ObjectView, ...] = ()
    copies: tuple[CpuObjects, ...] = ()
    if cpus is None:
        objects = _objects(session, request, request.address)
    else:
        offsets = session.prog["__per_cpu_offset"]
        copies = tuple(
            CpuObjects(cpu, address, _objects(session, request, address))
            for cpu, address in ((c, (request.address + offsets[c].value_()) & _MASK64)
                                 for c in cpus))
    return StructView(request.kind, request.type_.type_name(), request.size,
                      request.address, request.count, request.offsets,
                      members=tuple(request.members), objects=objects, cpus=copies)


def _followed_objects(view: StructView) -> int:
    """How many objects ``-p`` printed under ``-> `` (each takes a gdb history number)."""
    count = 0
    for copy in (view.objects, *(c.objects for c in view.cpus)):
        for obj in copy:
            values = [m.value for m in obj.members]
            if obj.value is not None:
                values += list(obj.value.members)
            count += sum(v.followed is not None and v.followed.value is not None
                         for v in values)
    return count


def _objects(session: Session, request: _StructRequest,
             address: int) -> tuple[ObjectView, ...]:
    """``count`` consecutive objects from ``address`` (a negative count ends there)."""
    count = request.count
    if count < 0:
        address -= request.size * (abs(count) - 1)
    return tuple(_object_view(session, request, address + i * request.size, i * request.size)
                 for i in range(abs(count)))


def _object_view(session: Session, request: _StructRequest, address: int,
                 index_offset: int) -> ObjectView:
    """One object in the form the options ask for: member addresses (-o), raw bytes
    (-r), pointers followed (-p), chosen members, or the whole object."""
    if request.offsets:
        layout = type_layout(request.type_.unaliased())
        member = request.members[0] if request.members else None
        if member is not None:
            _check_members(layout, [member], request.type_.type_name())
        return ObjectView(address, layout=layout, member=member)
    if request.raw:
        return ObjectView(address, raw=_raw_display(session, request, address, index_offset))
    obj = _read_object(session, request, address, index_offset)
    reader = session_reader(session.prog, session.cached)
    if request.members:
        return ObjectView(address, members=tuple(_member(reader, request, obj, path)
                                                 for path in request.members))
    if request.deref:
        return ObjectView(address, value=reader.followed(obj))
    return ObjectView(address, value=reader.read(obj))


def _member(reader: ValueReader, request: _StructRequest, obj: drgn.Object,
            path: str) -> MemberValue:
    """One chosen member; with ``-p`` a top-level pointer member is followed."""
    found = reader.member(obj, path)
    if not request.deref or "." in path or "[" in path:
        return found
    field, _ = member_object(obj, path)
    return MemberValue(path, reader.follow_member(field, path, found.value), found.last)


def _space(request: _StructRequest) -> str:
    return USER if request.user else KERNEL


def _read_object(session: Session, request: _StructRequest, address: int,
                 index_offset: int) -> drgn.Object:
    """The object at ``address``: in kernel memory as it is, or from the bytes of the
    current task's user memory (-u) or of the dump file (-f)."""
    prog = session.prog
    if not request.user and not request.file:
        return drgn.Object(prog, request.type_, address=address)
    data = _object_bytes(session, request, address, request.size, index_offset)
    return drgn.Object.from_bytes_(prog, request.type_, data)


def _object_bytes(session: Session, request: _StructRequest, address: int, size: int,
                  index_offset: int) -> bytes:
    if request.file:
        path = session.target.read_path
        if path is None:
            raise CommandError("-f option requires a dumpfile")
        with open(path, "rb") as dump:
            dump.seek(request.address + index_offset)
            data = dump.read(size)
        if len(data) < size:
            raise CommandError(f"dump file offset {address:x} is beyond the end of the "
                               "file")
        return data
    read = make_reader(session.prog, USER, session.current_task)
    data, fault = read_span(read, USER, address, size)
    if fault is not None:
        raise CommandError(f"{request.type_.type_name()} struct: {fault.reason}: user "
                           f"virtual address: {fault.address:x}  type: "
                           "\"gdb_readmem_callback\"")
    return data



def _raw_display(session: Session, request: _StructRequest, address: int,
                 index_offset: int) -> MemoryDisplay:
    """``-r``: the object's bytes (or one member's) as rd reads them: 8, 16 or 32-bit
    values when that is the whole size, else 64-bit words."""
    size = request.size
    if request.members:
        path = request.members[0]
        field, _ = member_object(drgn.Object(session.prog, request.type_, address=0), path)
        offset, size = field.address_ or 0, drgn.sizeof(field.type_)
        address += offset
        index_offset += offset
    unit = size if size in (1, 2, 4) else 8
    count = max(1, -(-size // 8)) if unit == 8 else 1
    if request.file:
        data = _object_bytes(session, request, address, unit * count, index_offset)
        words = [MemoryWord(request.address + index_offset + i,
                            int.from_bytes(data[i:i + unit], "little"))
                 for i in range(0, len(data), unit)]
        return MemoryDisplay(request.address + index_offset, KERNEL, unit, count, False,
                             data.hex(), words)
    task = session.current_task if request.user else None
    display = read_memory(session.prog, address, unit=unit, count=count,
                          space=_space(request), task=task)
    if display.fault is not None:
        raise CommandError(display.fault.message(display.type_name))
    return display


# -- whatis -----------------------------------------------------------------------------


def _whatis_parser() -> argparse.ArgumentParser:
    parser = make_parser("whatis", "show the declaration of a symbol or a type")
    parser.add_argument("words", nargs="+", metavar="SYMBOL|TYPE",
                        help="a symbol, a struct/union/enum/typedef name, or "
                        "'struct NAME' etc.")
    return parser



def _type_declaration(name: str, type_: drgn.Type) -> Declaration:
    """``whatis`` of a type: its layout (structs, unions, typedefs), its enumerators
    (enums) and its size."""
    unaliased = type_.unaliased()
    kind = unaliased.kind.name.lower()
    typedef = type_.kind == drgn.TypeKind.TYPEDEF
    enumerators = tuple(Enumerator(n, v) for n, v in unaliased.enumerators or ()) \
        if kind == "enum" else ()
    layout = type_layout(type_) if kind in ("struct", "union") or typedef else None
    try:
        size: int | None = drgn.sizeof(type_)
    except TypeError:
        size = None
    return Declaration(name, "type", type_.type_name(), kind, typedef, size,
                       tag=unaliased.tag if kind == "enum" else None, layout=layout,
                       enumerators=enumerators)


def _enumerator(prog: drgn.Program, name: str) -> Declaration | None:
    """``enum TAG = VALUE`` when ``name`` is an enumerator, as crash answers."""
    try:
        constant = prog.constant(name)
    except (KeyError, LookupError):
        return None
    type_ = constant.type_
    return Declaration(name, "enumerator", type_.type_name(), "enum",
                       tag=type_.unaliased().tag, value=constant.value_())


def _symbol_declaration(prog: drgn.Program, name: str) -> Declaration | None:
    try:
        obj = symbol_object(prog, name)
    except ExpressionError:
        return None
    type_ = obj.type_
    return Declaration(name, "symbol", type_.type_name(), type_.unaliased_kind().name.lower(),
                       type_.kind == drgn.TypeKind.TYPEDEF,
                       declaration=type_.variable_declaration(name))


def _find_declaration(prog: drgn.Program, words: list[str]) -> Declaration:
    if words[0] in ("struct", "union", "enum"):
        spelling = " ".join(words)
        try:
            return _type_declaration(spelling, prog.type(spelling))
        except (LookupError, SyntaxError, ValueError) as err:
            raise CommandError(f"cannot resolve: {spelling}") from err
    if len(words) == 1:
        found = _symbol_declaration(prog, words[0]) or _enumerator(prog, words[0])
        if found is not None:
            return found
    spelling = " ".join(words)
    for candidate in (spelling, f"struct {spelling}", f"union {spelling}",
                      f"enum {spelling}"):
        try:
            type_ = prog.type(candidate)
        except (LookupError, SyntaxError, ValueError):
            continue
        return _type_declaration(spelling, type_)
    raise CommandError(f"cannot resolve: {spelling}")


@crash_command("whatis", "show the declaration of a symbol or type", parser=_whatis_parser)
def _whatis(session: Session, args: argparse.Namespace) -> None:
    found = _find_declaration(session.prog, args.words)
    session.emit("whatis", found, lambda: whatis_text(found))


for _kind in ("struct", "union"):
    crash_command(_kind, f"show a {_kind} type or {_kind}s in memory (-o -c -l -r -p -u -f "
                  "ADDR:cpuspec)", parser=_struct_parser(_kind))(_struct_command(_kind))
