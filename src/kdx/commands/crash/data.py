"""Data display: ``struct``, ``union``, ``p``, ``whatis``, ``eval`` and ``ascii``.

crash answers these through its embedded gdb; kdx answers them through drgn and prints
gdb's layout (kdx.render.crash.data). ``p`` takes a symbol or a C expression over symbols
and numbers: members (``.`` and ``->``), indexing, ``&``, ``*``, casts to any type the
debug info knows, and integer arithmetic. ``eval`` follows crash's own number rules (not
C's): a word that is all decimal digits is decimal, any other number is hexadecimal, a
``k``/``m``/``g`` suffix multiplies, and a symbol stands for its address.
"""

from __future__ import annotations

import argparse
import re
from dataclasses import dataclass
from typing import Callable

import drgn
from drgn.helpers.linux.cpumask import for_each_possible_cpu
from drgn.helpers.linux.percpu import per_cpu_ptr

from kdx.model.answers import AsciiValues, EvalResult
from kdx.model.memdump import (
    KERNEL,
    USER,
    MemoryDisplay,
    MemoryWord,
    make_reader,
    read_memory,
    read_span,
    symbol_or_hex,
)
from kdx.render.crash.data import (
    Formatter,
    ascii_chart,
    ascii_text,
    declaration,
    eval_text,
    member_name,
    offsets_view,
    pointer_deref_text,
    struct_deref_text,
    struct_text,
)
from kdx.render.crash.rd import render_rd
from kdx.session.command import CommandError, CrashCommand, make_parser
from kdx.session.session import Session

_MASK64 = (1 << 64) - 1


# -- tokens -----------------------------------------------------------------------------

_TOKEN = re.compile(r"\s*(->|<<|>>|[A-Za-z_$][A-Za-z0-9_$]*|0[xX][0-9a-fA-F]+[uUlL]*"
                    r"|[0-9]+[uUlL]*|[-+*/%&|^~!().\[\]#]|\S)")


def tokenize(text: str) -> list[str]:
    tokens = []
    pos = 0
    while pos < len(text):
        match = _TOKEN.match(text, pos)
        if not match or not match.group(1):
            break
        tokens.append(match.group(1))
        pos = match.end()
    return tokens


class _Tokens:
    def __init__(self, tokens: list[str]) -> None:
        self.tokens = tokens
        self.pos = 0

    def peek(self, ahead: int = 0) -> str | None:
        i = self.pos + ahead
        return self.tokens[i] if i < len(self.tokens) else None

    def take(self) -> str:
        token = self.peek()
        if token is None:
            raise CommandError("the expression ends too early")
        self.pos += 1
        return token

    def expect(self, token: str) -> None:
        if self.take() != token:
            raise CommandError(f"expected '{token}' in the expression")


# -- p: C expressions on drgn objects ----------------------------------------------------

_BINARY_LEVELS: list[tuple[str, ...]] = [("|",), ("^",), ("&",), ("<<", ">>"), ("+", "-"),
                                        ("*", "/", "%")]


class ExpressionParser:
    """A small C expression evaluator over drgn objects; drgn does the arithmetic and
    the type rules, this only parses."""

    def __init__(self, prog: drgn.Program, text: str) -> None:
        self.prog = prog
        self.tokens = _Tokens(tokenize(text))
        if not self.tokens.tokens:
            raise CommandError("empty expression")

    def parse(self) -> drgn.Object:
        value = self.binary(0)
        if self.tokens.peek() is not None:
            raise CommandError(f"unexpected '{self.tokens.peek()}' in the expression")
        return value

    def binary(self, level: int) -> drgn.Object:
        if level == len(_BINARY_LEVELS):
            return self.unary()
        left = self.binary(level + 1)
        while self.tokens.peek() in _BINARY_LEVELS[level]:
            op = self.tokens.take()
            right = self.binary(level + 1)
            left = _apply(op, left, right)
        return left

    def unary(self) -> drgn.Object:
        token = self.tokens.peek()
        if token == "&":
            self.tokens.take()
            return self.unary().address_of_()
        if token == "*":
            self.tokens.take()
            return self.unary()[0]
        if token == "-":
            self.tokens.take()
            return -self.unary()
        if token == "~":
            self.tokens.take()
            return ~self.unary()
        if token == "!":
            self.tokens.take()
            return drgn.Object(self.prog, "int", int(not self.unary()))
        if token == "sizeof" and self.tokens.peek(1) == "(":
            self.tokens.take()
            return drgn.Object(self.prog, "unsigned long", drgn.sizeof(self.paren_type()))
        if token == "(":
            cast = self.try_cast()
            if cast is not None:
                return drgn.cast(cast, self.unary())
        return self.postfix(self.primary())

    def paren_type(self) -> drgn.Type:
        cast = self.try_cast()
        if cast is None:
            raise CommandError("sizeof needs a type in parentheses")
        return cast

    def try_cast(self) -> drgn.Type | None:
        """A parenthesised type name at the cursor (consumed), or None."""
        depth, end = 0, None
        for i in range(self.tokens.pos, len(self.tokens.tokens)):
            token = self.tokens.tokens[i]
            depth += token == "("
            depth -= token == ")"
            if depth == 0:
                end = i
                break
        if end is None or end == self.tokens.pos + 1:
            return None
        words = self.tokens.tokens[self.tokens.pos + 1:end]
        if not re.match(r"[A-Za-z_]", words[0]):
            return None
        try:
            type_ = self.prog.type(" ".join(words))
        except (LookupError, SyntaxError, ValueError):
            return None
        self.tokens.pos = end + 1
        return type_

    def postfix(self, value: drgn.Object) -> drgn.Object:
        while self.tokens.peek() in (".", "->", "["):
            token = self.tokens.take()
            if token == "[":
                index = self.binary(0)
                self.tokens.expect("]")
                value = value[index.value_()]
                continue
            name = self.tokens.take()
            try:
                value = value.member_(name)
            except (LookupError, TypeError) as err:
                raise CommandError(f"there is no member named {name}") from err
        return value

    def primary(self) -> drgn.Object:
        token = self.tokens.take()
        if token == "(":
            value = self.binary(0)
            self.tokens.expect(")")
            return value
        if token[0].isdigit():
            return _literal(self.prog, token)
        if re.match(r"[A-Za-z_]", token):
            return symbol_object(self.prog, token)
        raise CommandError(f"unexpected '{token}' in the expression")


def symbol_object(prog: drgn.Program, name: str) -> drgn.Object:
    """The object a symbol names. An array declared without its size (``extern char
    linux_banner[]``, as some debug info has it) gets the length its symbol's size
    implies, as gdb finds it from the defining unit."""
    try:
        obj = prog[name]
    except KeyError as err:
        raise CommandError(f'no symbol "{name}" in current context') from err
    type_ = obj.type_.unaliased()
    if type_.kind != drgn.TypeKind.ARRAY or type_.length is not None \
            or obj.address_ is None:
        return obj
    try:
        size = prog.symbol(name).size
    except LookupError:
        return obj
    element = drgn.sizeof(type_.type)
    if not size or not element:
        return obj
    array = prog.array_type(type_.type, size // element, qualifiers=obj.type_.qualifiers)
    return drgn.Object(prog, array, address=obj.address_)


def _literal(prog: drgn.Program, token: str) -> drgn.Object:
    digits = token.rstrip("uUlL")
    value = int(digits, 16) if digits.lower().startswith("0x") else int(digits)
    unsigned = "u" in token.lower()[len(digits):]
    if not unsigned and value < 1 << 31:
        return drgn.Object(prog, "int", value)
    if not unsigned and value < 1 << 63:
        return drgn.Object(prog, "long", value)
    return drgn.Object(prog, "unsigned long", value & _MASK64)


def _apply(op: str, left: drgn.Object, right: drgn.Object) -> drgn.Object:
    operations: dict[str, Callable[[drgn.Object, drgn.Object], drgn.Object]] = {
        "+": lambda a, b: a + b, "-": lambda a, b: a - b, "*": lambda a, b: a * b,
        "/": lambda a, b: a / b, "%": lambda a, b: a % b, "<<": lambda a, b: a << b,
        ">>": lambda a, b: a >> b, "&": lambda a, b: a & b, "|": lambda a, b: a | b,
        "^": lambda a, b: a ^ b,
    }
    try:
        return operations[op](left, right)
    except (TypeError, ZeroDivisionError) as err:
        raise CommandError(f"cannot compute {op}: {err}") from err


# -- p ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class PrintedValue:
    """What ``p`` printed: the expression, its type, the gdb-style text, for an object
    in memory its address, and for a number, pointer, bool or enum its value."""

    expression: str
    history: int
    type: str
    address: int | None
    text: str
    value: int | bool | None = None


def _history(session: Session) -> int:
    """gdb's value-history number: $1, $2... for the session."""
    counter = session.cached("gdb-value-history", lambda: [0])
    counter[0] += 1
    return counter[0]


def _is_symbol(prog: drgn.Program, word: str) -> bool:
    try:
        prog.symbol(word)
        return True
    except LookupError:
        return False


def _percpu_symbol(prog: drgn.Program, word: str) -> bool:
    try:
        address = prog.symbol(word).address
        start = prog.symbol("__per_cpu_start").address
        end = prog.symbol("__per_cpu_end").address
    except LookupError:
        return False
    return start <= address < end


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
    if len(args.expression) == 1 and _percpu_symbol(prog, first):
        _percpu(session, first)
        return
    value = ExpressionParser(prog, text).parse()
    formatter = Formatter(prog, args.radix or 10)
    number = _history(session)
    body = formatter.print_value(value)
    # crash names the symbol first (``jiffies = $1 = ...``), but not after p/FMT
    leader = f"{first} = " if fmt is None and _is_symbol(prog, first) else ""
    if leader and "{" in body.split("\n")[0] and not body.split("\n")[0].endswith("{"):
        before, after = body.split("{", 1)
        body = before + "\n {" + after
    out = "\n".join(line.rstrip() for line in f"{leader}${number} = {body}".split("\n"))
    record = PrintedValue(text, number, value.type_.type_name(), value.address_, out,
                          _scalar(value))
    session.emit("p", record, out)


def _scalar(value: drgn.Object) -> int | bool | None:
    if value.type_.unaliased_kind() not in (drgn.TypeKind.INT, drgn.TypeKind.BOOL,
                                            drgn.TypeKind.ENUM, drgn.TypeKind.POINTER):
        return None
    try:
        return value.value_()
    except (drgn.FaultError, drgn.ObjectAbsentError):
        return None


def _percpu(session: Session, name: str) -> None:
    """crash's answer for a per-CPU symbol: its type, then its address on every CPU."""
    prog = session.prog
    obj = prog[name]
    lines = ["PER-CPU DATA TYPE:", f"  {obj.type_.variable_declaration(name)};",
             "PER-CPU ADDRESSES:"]
    addresses = {}
    for cpu in for_each_possible_cpu(prog):
        address = per_cpu_ptr(obj.address_of_(), cpu).value_()
        addresses[cpu] = address
        lines.append(f"  [{cpu}]: {address:x}")
    session.emit("p-percpu", {"symbol": name, "type": obj.type_.type_name(),
                              "addresses": addresses}, "\n".join(lines))


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


def _member_declarations(type_: drgn.Type, members: str) -> str:
    """``struct NAME.member`` without an address: the member's declaration line with its
    offset inside the struct's braces, as crash shows it (several members, which crash
    refuses, come in one block)."""
    view = offsets_view(type_).splitlines()
    lines = view[1:-1]
    out = [view[0]]
    for member in (m.strip() for m in members.split(",") if m.strip()):
        found = [line for line in lines if member_name(line.split("]", 1)[-1]) == member]
        if not found:
            raise CommandError(f"invalid data structure reference: "
                               f"{type_.type_name()}.{member}")
        out.extend(found)
    return "\n".join([*out, view[-1]])


def _member_object(obj: drgn.Object, path: str) -> tuple[drgn.Object, drgn.Object]:
    """The member at ``path`` (``se.on_rq``) and the object holding it."""
    value = parent = obj
    for part in path.split("."):
        parent = value
        try:
            value = value.member_(part)
        except (LookupError, TypeError) as err:
            raise CommandError(f"invalid data structure reference: "
                               f"{obj.type_.type_name()}.{path}") from err
    return value, parent


def member_text(obj: drgn.Object, path: str, formatter: Formatter) -> str:
    """One ``struct NAME.member ADDR`` block: the member's line from the struct (a
    nested member labelled with its whole path, as crash does), with the comma that
    follows it there."""
    value, parent = _member_object(obj, path)
    names = [m.name for m in parent.type_.unaliased().members or ()]
    last = path.split(".")[-1]
    comma = "" if names and names[-1] == last else ","
    return f"  {path} = {formatter.value(value, 1)}{comma}"


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
    """crash's cpuspec: empty for the current task's CPU, ``a``/``all``, or a list of
    numbers and ranges."""
    possible = list(for_each_possible_cpu(session.prog))
    if spec == "":
        from drgn.helpers.linux.sched import task_cpu
        return [task_cpu(session.current_task)]
    if spec in ("a", "all"):
        return possible
    cpus: set[int] = set()
    for part in spec.split(","):
        first, _, last = part.partition("-")
        try:
            cpus.update(range(int(first), int(last or first) + 1))
        except ValueError as err:
            raise CommandError(f"invalid cpu specification: {spec}") from err
    return [cpu for cpu in possible if cpu in cpus]


def _percpu_base(session: Session, word: str) -> tuple[int, bool]:
    """The address a cpuspec applies to and whether it is a per-CPU symbol's (a plain
    symbol's cpuspec is ignored with crash's warning)."""
    prog = session.prog
    if re.match(r"[A-Za-z_]", word) and _is_symbol(prog, word):
        if not _percpu_symbol(prog, word):
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
        size = type_.unaliased().size or 0
        size_line = f"SIZE: {size:#x}" if args.radix == 16 else f"SIZE: {size}"
        if address_word is None:
            if args.count is not None:
                raise CommandError("no kernel virtual address argument entered")
            if args.deref:
                raise CommandError("-p option requires address argument")
            _declaration(session, kind, type_, members, args.offsets, size_line)
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
                                 args.radix or 10, args.offsets, args.raw, args.deref,
                                 args.user, args.file)
        if cpus is None:
            text = _objects_text(session, request, request.address)
        else:
            text = _percpu_text(session, request, cpus)
        session.emit(kind, {"type": type_.type_name(), "address": request.address,
                            "count": request.count, "text": text}, text)
    return run


def _declaration(session: Session, kind: str, type_: drgn.Type, members: str,
                 offsets: bool, size_line: str) -> None:
    """``struct NAME[.member]`` without an address: the type's declaration."""
    size = type_.unaliased().size or 0
    if members:
        text = _member_declarations(type_, members)
        session.emit(kind, {"type": type_.type_name(), "size": size, "text": text}, text)
        return
    text = offsets_view(type_) if offsets else declaration(type_)
    session.emit(kind, {"type": type_.type_name(), "size": size, "text": text},
                 text + "\n" + size_line)


def _percpu_text(session: Session, request: _StructRequest, cpus: list[int]) -> str:
    """``ADDR:cpuspec``: each CPU's copy under a ``[cpu]: address`` line."""
    offsets = session.prog["__per_cpu_offset"]
    blocks = []
    for cpu in cpus:
        address = (request.address + offsets[cpu].value_()) & _MASK64
        blocks.append(f"[{cpu}]: {address:x}\n" + _objects_text(session, request, address))
    return "\n".join(blocks)


def _objects_text(session: Session, request: _StructRequest, address: int) -> str:
    """``count`` consecutive objects from ``address`` (a negative count ends there),
    separated by blank lines as crash separates them."""
    count = request.count
    if count < 0:
        address -= request.size * (abs(count) - 1)
    blocks = []
    for i in range(abs(count)):
        blocks.append(_object_text(session, request, address + i * request.size,
                                   i * request.size))
    return "\n\n".join(blocks)


def _object_text(session: Session, request: _StructRequest, address: int,
                 index_offset: int) -> str:
    """One object in the form the options ask for: member addresses (-o), raw bytes
    (-r), pointers followed (-p), chosen members, or the whole object."""
    prog = session.prog
    type_ = request.type_
    if request.offsets:
        text = offsets_view(type_, base=address) if not request.members else \
            _member_addresses(type_, request.members[0], address)
        size = request.size
        return text + "\n" + (f"SIZE: {size:#x}" if request.radix == 16 else f"SIZE: {size}")
    if request.raw:
        return _raw_text(session, request, address, index_offset)
    obj = _read_object(session, request, address, index_offset)
    formatter = Formatter(prog, request.radix)
    history = lambda: _history(session)  # noqa: E731 (gdb numbers each value it prints)
    if request.members:
        lines = []
        for path in request.members:
            followed = None
            if request.deref and "." not in path and "[" not in path:
                field, _ = _member_object(obj, path)
                followed = pointer_deref_text(formatter, field, path, history)
            lines.append(followed if followed is not None
                         else member_text(obj, path, formatter))
        return "\n".join(lines)
    if request.deref:
        return struct_deref_text(obj, formatter, history)
    return struct_text(obj, formatter)


def _member_addresses(type_: drgn.Type, member: str, address: int) -> str:
    """``struct NAME.member -o ADDR``: the member's declaration line with its address."""
    view = offsets_view(type_, base=address).splitlines()
    found = [line for line in view[1:-1] if member_name(line.split("]", 1)[-1]) == member]
    if not found:
        raise CommandError(f"invalid data structure reference: "
                           f"{type_.type_name()}.{member}")
    return "\n".join([view[0], *found, view[-1]])


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


def _raw_text(session: Session, request: _StructRequest, address: int,
              index_offset: int) -> str:
    """``-r``: the object's bytes (or one member's) as rd shows them: 8, 16 or 32-bit
    values when that is the whole size, else 64-bit words, with the ASCII column."""
    size = request.size
    if request.members:
        path = request.members[0]
        field, _ = _member_object(drgn.Object(session.prog, request.type_, address=0), path)
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
        display = MemoryDisplay(request.address + index_offset, KERNEL, unit, count, False,
                                data.hex(), words)
    else:
        task = session.current_task if request.user else None
        display = read_memory(session.prog, address, unit=unit, count=count,
                              space=_space(request), task=task)
    text = render_rd(display)
    if display.fault is not None:
        raise CommandError(display.fault.message(display.type_name))
    return text


# -- whatis -----------------------------------------------------------------------------


def _whatis_parser() -> argparse.ArgumentParser:
    parser = make_parser("whatis", "show the declaration of a symbol or a type")
    parser.add_argument("words", nargs="+", metavar="SYMBOL|TYPE",
                        help="a symbol, a struct/union/enum/typedef name, or "
                        "'struct NAME' etc.")
    return parser


def _enum_text(type_: drgn.Type) -> str:
    """An enum as crash lists it: ``enum NAME {``, one ``  A = 0`` line per enumerator
    (no commas), ``};``."""
    enum = type_.unaliased()
    head = f"enum {enum.tag} {{" if enum.tag else "enum {"
    body = [f"  {name} = {value}" for name, value in enum.enumerators or ()]
    return "\n".join([head, *body, "};"])


def _type_text(type_: drgn.Type) -> str:
    """A type as ``whatis`` shows it: an enum's list; a struct, union or typedef with
    crash's SIZE line; a base type as its SIZE line alone (crash has gdb declare only
    structs, unions and typedefs)."""
    kind = type_.unaliased_kind()
    if kind == drgn.TypeKind.ENUM and type_.kind != drgn.TypeKind.TYPEDEF:
        return _enum_text(type_)
    size = f"SIZE: {drgn.sizeof(type_)}"
    if kind in (drgn.TypeKind.STRUCT, drgn.TypeKind.UNION) or \
            type_.kind == drgn.TypeKind.TYPEDEF:
        return declaration(type_) + "\n" + size
    return size


def _enumerator(prog: drgn.Program, name: str) -> str | None:
    """``enum TAG = VALUE`` when ``name`` is an enumerator, as crash answers."""
    try:
        constant = prog.constant(name)
    except (KeyError, LookupError):
        return None
    tag = constant.type_.unaliased().tag
    return f"enum{' ' + tag if tag else ''} = {constant.value_()}"


def _whatis(session: Session, args: argparse.Namespace) -> None:
    prog = session.prog
    words = args.words
    if words[0] in ("struct", "union", "enum"):
        spelling = " ".join(words)
        try:
            type_ = prog.type(spelling)
        except (LookupError, SyntaxError, ValueError) as err:
            raise CommandError(f"cannot resolve: {spelling}") from err
        text = _type_text(type_)
        session.emit("whatis", {"name": spelling, "kind": "type", "text": text}, text)
        return
    name = words[0]
    if len(words) == 1:
        try:
            obj = symbol_object(prog, name)
        except CommandError:
            obj = None
        if obj is not None:
            text = obj.type_.variable_declaration(name) + ";"
            session.emit("whatis", {"name": name, "kind": "symbol", "text": text}, text)
            return
        enumerator = _enumerator(prog, name)
        if enumerator is not None:
            session.emit("whatis", {"name": name, "kind": "enumerator",
                                    "text": enumerator}, enumerator)
            return
    spelling = " ".join(words)
    for candidate in (spelling, f"struct {spelling}", f"union {spelling}",
                      f"enum {spelling}"):
        try:
            type_ = prog.type(candidate)
        except (LookupError, SyntaxError, ValueError):
            continue
        text = _type_text(type_)
        session.emit("whatis", {"name": spelling, "kind": "type", "text": text}, text)
        return
    raise CommandError(f"cannot resolve: {spelling}")


# -- eval / ascii -----------------------------------------------------------------------

_EVAL_TOKEN = re.compile(r"\s*(<<|>>|[0-9A-Za-z_]+|[-+*/%&|^~#()])")
_EVAL_LEVELS: list[tuple[str, ...]] = [("|",), ("^",), ("&",), ("<<", ">>"), ("+", "-"),
                                      ("*", "/", "%"), ("#",)]
_UNITS = {"k": 1 << 10, "m": 1 << 20, "g": 1 << 30}


def crash_number(prog: drgn.Program | None, word: str) -> int:
    """A number by crash's rules: a symbol's address, decimal when all digits, else
    hexadecimal (``0x`` optional), with an optional k, m or g multiplier."""
    if prog is not None and re.match(r"[A-Za-z_]", word):
        try:
            return prog.symbol(word).address
        except LookupError:
            pass
    factor = 1
    if word[-1:].lower() in _UNITS and len(word) > 1:
        factor, word = _UNITS[word[-1].lower()], word[:-1]
    if word.isdigit():
        return int(word) * factor
    try:
        return int(word, 16) * factor
    except ValueError as err:
        raise CommandError(f"invalid expression: {word}") from err


class EvalParser:
    def __init__(self, prog: drgn.Program, text: str) -> None:
        self.prog = prog
        tokens, pos = [], 0
        while pos < len(text):
            match = _EVAL_TOKEN.match(text, pos)
            if not match:
                if text[pos:].strip():
                    raise CommandError(f"invalid expression: {text}")
                break
            tokens.append(match.group(1))
            pos = match.end()
        self.tokens = _Tokens(tokens)
        self.text = text

    def parse(self) -> int:
        value = self.binary(0)
        if self.tokens.peek() is not None:
            raise CommandError(f"invalid expression: {self.text}")
        return value & _MASK64

    def binary(self, level: int) -> int:
        if level == len(_EVAL_LEVELS):
            return self.unary()
        left = self.binary(level + 1)
        while self.tokens.peek() in _EVAL_LEVELS[level]:
            op = self.tokens.take()
            right = self.binary(level + 1)
            left = _integer_op(op, left, right)
        return left

    def unary(self) -> int:
        token = self.tokens.take()
        if token == "-":
            return -self.unary() & _MASK64
        if token == "~":
            return ~self.unary() & _MASK64
        if token == "(":
            value = self.binary(0)
            self.tokens.expect(")")
            return value
        return crash_number(self.prog, token)


def _integer_op(op: str, a: int, b: int) -> int:
    if op in "/%" and b == 0:
        raise CommandError("division by zero")
    results = {"+": lambda: a + b, "-": lambda: a - b, "*": lambda: a * b,
               "/": lambda: a // b, "%": lambda: a % b, "<<": lambda: a << (b & 63),
               ">>": lambda: a >> b, "&": lambda: a & b, "|": lambda: a | b,
               "^": lambda: a ^ b, "#": lambda: pow(a, b, 1 << 64)}
    return results[op]() & _MASK64


def _eval_parser() -> argparse.ArgumentParser:
    parser = make_parser("eval", "evaluate an expression; show it in hex, decimal, octal "
                         "and binary")
    parser.add_argument("-b", action="store_true", dest="bits",
                        help="also list the bits that are set")
    parser.add_argument("expression", nargs=argparse.REMAINDER)
    return parser


def _eval(session: Session, args: argparse.Namespace) -> None:
    words = list(args.expression)
    bits = args.bits
    if words and words[0] == "-b":
        bits, words = True, words[1:]
    if not words:
        raise CommandError("eval: an expression is required")
    value = EvalParser(session.prog, " ".join(words)).parse()
    signed = value - (1 << 64) if value >> 63 else value
    session.emit("eval", EvalResult(value, signed), eval_text(value, bits))


def _ascii_parser() -> argparse.ArgumentParser:
    parser = make_parser("ascii", "show a number's bytes as ASCII, or the ASCII chart")
    parser.add_argument("numbers", nargs="*", metavar="NUMBER",
                        help="hexadecimal values (0x optional)")
    return parser


def _ascii(session: Session, args: argparse.Namespace) -> None:
    if not args.numbers:
        session.emit("ascii", AsciiValues(True, []), ascii_chart())
        return
    values = []
    for word in args.numbers:
        digits = word[2:] if word.lower().startswith("0x") else word
        try:
            values.append(int(digits, 16) & _MASK64)
        except ValueError as err:
            raise CommandError(f"not a hexadecimal number: {word}") from err
    session.emit("ascii", AsciiValues(False, values), "\n".join(ascii_text(v) for v in values))


COMMANDS = [
    CrashCommand("struct", "show a struct type or structs in memory (-o -c -l -r -p -u -f "
                 "ADDR:cpuspec)",
                 _struct_parser("struct"), _struct_command("struct")),
    CrashCommand("union", "show a union type or unions in memory (-o -c -l -r -p -u -f "
                 "ADDR:cpuspec)",
                 _struct_parser("union"), _struct_command("union")),
    CrashCommand("p", "print a symbol or C expression as gdb does", _p_parser, _p,
                 aliases=("print",)),
    CrashCommand("whatis", "show the declaration of a symbol or type", _whatis_parser,
                 _whatis),
    CrashCommand("eval", "evaluate an expression in hex, decimal, octal and binary",
                 _eval_parser, _eval),
    CrashCommand("ascii", "show a number's bytes as ASCII characters", _ascii_parser,
                 _ascii),
]
