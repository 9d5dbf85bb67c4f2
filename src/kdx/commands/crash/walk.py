"""``list`` and ``tree``: walk a linked list, a red-black tree or an XArray.

Arguments follow crash 8.0.6 (tools.c cmd_list, cmd_tree): ``list [-o] OFFSET|STRUCT.MEMBER
[-s|-S STRUCT[.MEMBER,...]] [-l OFFSET] [-e END] [-h [-O OFFSET]|-H] [-r] [-x|-d] START``
and ``tree -t rbtree|radix|xarray|maple [-r OFFSET] [-o OFFSET] [-s ...] [-p] [-l] [-N]
[-v] START``.
The walkers (kdx.model.walk) find the addresses crash finds, in its order; ``-s`` text
comes from the same gdb-style formatter as ``struct``. A walk that faults or loops keeps
what it read and ends with crash's one-line message.
"""

from __future__ import annotations

import argparse
import re
from typing import Callable, Iterator

import drgn

from kdx.model.expr import crash_number
from kdx.model.names import address_namer
from kdx.model.reading import read_c_string
from kdx.model.values import ValueReader, session_reader
from kdx.model.walk import (
    ListSpec,
    WalkEntry,
    WalkError,
    WalkResult,
    compound_type,
    member_offset,
    rb_root_node,
    read_pointer,
    walk_list,
    walk_maple,
    walk_rbtree,
    walk_xarray,
)
from kdx.render.crash.data import member_text, struct_text
from kdx.render.crash.walk import maple_detail, render_walk
from kdx.session.command import CommandError, CommandParser, crash_command
from kdx.session.session import Session

_NUMBER = re.compile(r"^(0[xX])?[0-9a-fA-F]+$")


class IntermixedParser(CommandParser):
    """crash's getopt takes options anywhere among the arguments
    (``list task_struct.tasks -s task_struct.pid -h init_task``); argparse needs its
    intermixed mode for that."""

    def parse_args(self, args=None, namespace=None):  # noqa: ANN001, ANN201
        return self.parse_intermixed_args(args, namespace)


# -- shared: offsets, addresses, -s text ----------------------------------------------------


def _offset(prog: drgn.Program, word: str, option: str) -> int:
    """A number of bytes or a ``struct.member`` name, as crash's -o/-r/-l/-O take them."""
    if _NUMBER.match(word):
        return crash_number(None, word)
    offset = member_offset(prog, word)
    if offset is None:
        raise CommandError(f"invalid {option} argument: {word}")
    return offset


def _is_kernel_hex(word: str) -> bool:
    """A hexadecimal number in the kernel half of the address space: crash takes it for
    the start, not the offset, when two numbers are given."""
    try:
        return int(word, 16) >= 1 << 63
    except ValueError:
        return False


def _kernel_address(prog: drgn.Program, word: str) -> int | None:
    """A symbol's address, ``symbol.member`` (a kdx extension: the member's address),
    or None when the word is neither."""
    try:
        return prog.symbol(word).address
    except LookupError:
        pass
    name, dot, members = word.partition(".")
    if dot and members:
        try:
            obj = prog[name]
            return drgn.offsetof(obj.type_, members) + (obj.address_ or 0)
        except (KeyError, LookupError, TypeError, ValueError, SyntaxError):
            return None
    return None


class StructPrinter:
    """Prints crash's ``-s`` text for each address: the whole structure when a name has
    no member, else ``  member = value,`` lines."""

    def __init__(self, reader: ValueReader, specs: list[str], radix: int) -> None:
        prog = self.prog = reader.prog
        self.reader = reader
        self.radix = radix
        self.items: list[tuple[drgn.Type, list[str]]] = []
        for spec in specs:
            name, _, members = spec.partition(".")
            type_ = compound_type(prog, name)
            if type_ is None:
                raise CommandError(f"invalid data structure reference: {name}")
            paths = [m for m in members.replace(",", " ").split() if m]
            self.items.append((type_, paths))

    def text(self, address: int) -> str:
        out = []
        for type_, paths in self.items:
            obj = drgn.Object(self.prog, type_, address=address)
            try:
                if not paths:
                    out.append(struct_text(self.reader.read(obj), self.radix))
                else:
                    out.extend(_indented(type_, p, member_text(self.reader.member(obj, p),
                                                              self.radix))
                               for p in paths)
            except drgn.FaultError as err:
                out.append(f"  <error: Cannot access memory at address {err.address:#x}>")
        return "\n".join(out)


class FastPrinter(StructPrinter):
    """crash's ``-S``: members of up to 8 bytes (and strings) read straight from memory
    and printed as unsigned numbers (pointers in hex) without gdb's formatting; strings
    are quoted, code pointers named; larger members are printed as ``-s`` does."""

    def text(self, address: int) -> str:
        out = []
        for type_, paths in self.items:
            obj = drgn.Object(self.prog, type_, address=address)
            if not paths:
                out.append(super().text(address))
                continue
            for path in paths:
                out.append(self._member(obj, path))
        return "\n".join(line for line in out if line)

    def _member(self, obj: drgn.Object, path: str) -> str:
        try:
            member = _subobject(obj, path)
        except (LookupError, TypeError, ValueError) as err:
            raise CommandError(f"Can't get offset of '{path}'") from err
        type_ = member.type_.unaliased()
        width = drgn.sizeof(type_) if type_.kind != drgn.TypeKind.FUNCTION else 0
        pointer = type_.kind == drgn.TypeKind.POINTER
        string = type_.kind in (drgn.TypeKind.POINTER, drgn.TypeKind.ARRAY) and \
            _is_char(type_.type)
        name = path.split(".")[-1]
        if not (0 < width <= 8 or string):
            return member_text(self.reader.member(obj, path), self.radix)
        try:
            raw = self.prog.read(member.address_, width)
        except drgn.FaultError:
            return f"cannot access member: {name} at {member.address_:x}"
        value = int.from_bytes(raw, "little")
        line = ""
        if width in (1, 2, 4, 8):
            hexa = pointer or self.radix == 16
            line = f"  {name} = " + (f"{value:#x}" if hexa else f"{value}")
        if string and pointer:
            line += f'  "{read_c_string(self.prog, value).decode("latin-1")}"'
        elif string:
            text = raw.split(b"\0")[0].decode("latin-1")
            line += f'  {name} = "{text}"'
        else:
            line += _text_symbol(self.prog, value)
        return line


def _subobject(obj: drgn.Object, path: str) -> drgn.Object:
    for part in path.split("."):
        obj = obj.member_(part)
    return obj


def _is_char(type_: drgn.Type | None) -> bool:
    if type_ is None:
        return False
    t = type_.unaliased()
    return t.kind == drgn.TypeKind.INT and t.size == 1 and "char" in t.name


def _text_symbol(prog: drgn.Program, value: int) -> str:
    """`` <name>`` when ``value`` is the start of a function, as crash marks code."""
    found = address_namer(prog).locate(value)
    if found is not None and not found.offset and found.is_function:
        return f" <{found.name}>"
    return ""


def _anonymous_depth(type_: drgn.Type, name: str) -> int | None:
    """How many unnamed structs or unions enclose member ``name`` of ``type_``."""
    for member in type_.unaliased().members or ():
        if member.name == name:
            return 0
        if member.name is None:
            inner = _anonymous_depth(member.type, name)
            if inner is not None:
                return inner + 1
    return None


def _indented(type_: drgn.Type, path: str, text: str) -> str:
    """gdb indents a member inside unnamed structs or unions two columns per level, and
    crash's ``-s`` keeps that indentation."""
    depth = _anonymous_depth(type_, path.split(".")[0]) or 0
    pad = "  " * depth
    return "\n".join(pad + line for line in text.split("\n")) if depth else text


def _radix(args: argparse.Namespace) -> int:
    if args.hex and args.dec:
        raise CommandError("-d and -x are mutually exclusive")
    return 16 if args.hex else 10


def _printer(reader: ValueReader, args: argparse.Namespace, radix: int) \
        -> StructPrinter | None:
    if args.structs and args.fast:
        raise CommandError("-S and -s options are mutually exclusive")
    if args.fast:
        return FastPrinter(reader, args.fast, radix)
    return StructPrinter(reader, args.structs, radix) if args.structs else None


def _finish(session: Session, kind: str, entries: list[WalkEntry], error: str | None,
            empty: bool = False) -> None:
    """Print what was walked, then the message that ended it (as one error line)."""
    result = WalkResult(kind, tuple(entries), empty=empty, error=error)
    if entries or empty or session.json:
        session.emit(kind, result, lambda: render_walk(result))
    if error:
        raise CommandError(error)


def _collect(walk: Iterator[WalkEntry], entries: list[WalkEntry]) -> str | None:
    try:
        for entry in walk:
            entries.append(entry)
    except WalkError as err:
        return str(err)
    except drgn.FaultError as err:
        return f"cannot read memory at {err.address:x}"
    return None


# -- list ------------------------------------------------------------------------------------


def _list_parser() -> CommandParser:
    parser = IntermixedParser(prog="list", add_help=False,
                           description="walk a linked list; print each structure address")
    parser.add_argument("-o", dest="offset", help="offset of the next pointer: bytes or "
                        "struct.member")
    parser.add_argument("-e", dest="end", help="stop at this address")
    parser.add_argument("-s", dest="structs", action="append", default=[],
                        help="print each entry as STRUCT or STRUCT.MEMBER[,MEMBER]")
    parser.add_argument("-S", dest="fast", action="append", default=[],
                        help="like -s, members read straight from memory")
    parser.add_argument("-l", dest="link_offset", help="with -s: offset of the link "
                        "inside the structure when START is a link address")
    parser.add_argument("-O", dest="head_member", help="with -h: offset of the list "
                        "head inside the START structure")
    parser.add_argument("-h", dest="embedded", action="store_true",
                        help="START is a structure containing the list_head")
    parser.add_argument("-H", dest="head", action="store_true",
                        help="START is a standalone list head")
    parser.add_argument("-r", dest="reverse", action="store_true",
                        help="follow list_head.prev instead of next")
    parser.add_argument("-B", dest="brent", action="store_true",
                        help="accepted for crash compatibility (loops are always detected)")
    parser.add_argument("-x", dest="hex", action="store_true", help="hexadecimal -s output")
    parser.add_argument("-d", dest="dec", action="store_true", help="decimal -s output")
    parser.add_argument("words", nargs="*", metavar="[OFFSET|STRUCT.MEMBER] START")
    return parser


def _list_arguments(prog: drgn.Program, args: argparse.Namespace) -> tuple[int, int]:
    """(next-pointer offset, start) from the positional words, by crash's rules."""
    offset = _offset(prog, args.offset, "-o") if args.offset else None
    start = None
    words = list(args.words)
    if len(words) > 2:
        raise CommandError("too many arguments")
    for i, word in enumerate(words):
        if "." in word and member_offset(prog, word) is not None:
            if offset is not None:
                raise CommandError(f"offset value {offset} ({offset:#x}) already entered")
            offset = member_offset(prog, word)
            continue
        address = _kernel_address(prog, word)
        if address is not None:
            if start is not None:
                raise CommandError("list start already entered")
            start = address
            continue
        if not _NUMBER.match(word):
            raise CommandError(f"invalid argument: {word}")
        if start is not None:
            offset = crash_number(None, word)
        elif offset is not None or i == len(words) - 1 or _is_kernel_hex(word):
            start = int(word, 16)
        else:
            offset = crash_number(None, word)
    if start is None:
        raise CommandError("starting address required")
    return offset or 0, start


def _list_spec(prog: drgn.Program, args: argparse.Namespace) -> ListSpec | None:
    """The walk crash does for these options; None for an empty ``-H`` list."""
    offset, start = _list_arguments(prog, args)
    end = crash_number(prog, args.end) if args.end else 0
    if not (args.head or args.embedded or args.reverse):
        return ListSpec(start=start, next_offset=offset, end=end)
    head_offset = offset
    next_offset = 8 if args.reverse else 0
    if args.head:
        end = end or start
        start = read_pointer(prog, start + next_offset)
    elif args.head_member:
        head = start + _offset(prog, args.head_member, "-O")
        end = end or head
        start = read_pointer(prog, head + next_offset)
    else:
        start += head_offset
    if start == end and (args.head or args.head_member):
        return None
    return ListSpec(start=start, next_offset=next_offset, head_offset=head_offset, end=end,
                    head_format=True)


@crash_command("list", "walk a linked list and print each entry (-s: its contents)",
               parser=_list_parser)
def _list(session: Session, args: argparse.Namespace) -> None:
    prog = session.prog
    radix = _radix(args)
    if args.link_offset and not (args.structs or args.fast):
        raise CommandError("-l option can only be used with -s or -S option")
    link = _offset(prog, args.link_offset, "-l") if args.link_offset else 0
    try:
        spec = _list_spec(prog, args)
    except WalkError as err:
        raise CommandError(str(err)) from err
    if spec is None:
        _finish(session, "list", [], None, empty=True)
        return
    printer = _printer(session_reader(prog, session.cached), args, radix)

    def entries() -> Iterator[WalkEntry]:
        for address in walk_list(prog, spec):
            text = printer.text(address - link) if printer else ""
            yield WalkEntry(address, None, text)

    found: list[WalkEntry] = []
    error = _collect(entries(), found)
    _finish(session, "list", found, error)


# -- tree ------------------------------------------------------------------------------------

_TREE_TYPES = {"ra": "xarray", "x": "xarray", "rb": "rbtree", "m": "maple"}


def _tree_parser() -> CommandParser:
    parser = IntermixedParser(prog="tree", add_help=False,
                           description="walk a red-black tree, radix tree or XArray")
    parser.add_argument("-t", dest="type", default="rbtree",
                        help="rbtree (default), radix, xarray or maple")
    parser.add_argument("-r", dest="root_offset", help="offset of the root inside START")
    parser.add_argument("-o", dest="node_offset", help="rbtree: offset of the rb_node "
                        "inside each structure")
    parser.add_argument("-s", dest="structs", action="append", default=[],
                        help="print each entry as STRUCT or STRUCT.MEMBER[,MEMBER]")
    parser.add_argument("-S", dest="fast", action="append", default=[],
                        help="like -s, members read straight from memory")
    parser.add_argument("-p", dest="position", action="store_true",
                        help="show each entry's position in the tree")
    parser.add_argument("-l", dest="linear", action="store_true",
                        help="rbtree: in order, leftmost first")
    parser.add_argument("-N", dest="node", action="store_true",
                        help="START is a node, not a root")
    parser.add_argument("-v", dest="verbose", action="store_true",
                        help="maple trees: dump the tree, every node and every slot")
    parser.add_argument("-x", dest="hex", action="store_true", help="hexadecimal -s output")
    parser.add_argument("-d", dest="dec", action="store_true", help="decimal -s output")
    parser.add_argument("--help", action="help", help="show this help")
    parser.add_argument("words", nargs="*", metavar="START")
    return parser


def _tree_kind(word: str) -> str:
    for prefix, kind in _TREE_TYPES.items():
        if word.startswith(prefix):
            return kind
    raise CommandError(f"invalid tree type: {word}")


def _tree_start(prog: drgn.Program, words: list[str]) -> int:
    if not words:
        raise CommandError("a starting address is required")
    if len(words) > 1:
        raise CommandError("too many arguments entered")
    address = _kernel_address(prog, words[0])
    if address is None:
        if not _NUMBER.match(words[0]):
            raise CommandError(f"invalid start argument: {words[0]}")
        address = int(words[0], 16)
    return address


@crash_command("tree", "walk a red-black tree, radix tree, XArray or maple tree (-s: contents)",
               parser=_tree_parser)
def _tree(session: Session, args: argparse.Namespace) -> None:
    prog = session.prog
    kind = _tree_kind(args.type)
    names = {"rbtree": "rbtrees", "xarray": "Xarrays", "maple": "maple trees"}
    if kind != "maple" and args.verbose:
        raise CommandError(f"-v option is not applicable to {names[kind]}")
    if kind != "rbtree" and args.linear:
        raise CommandError(f"-l option is not applicable to {names[kind]}")
    if kind != "rbtree" and args.node_offset:
        raise CommandError(f"-o option is not applicable to {names[kind]}")
    if args.root_offset and args.node:
        raise CommandError("-r and -N options are mutually exclusive")
    radix = _radix(args)
    start = _tree_start(prog, args.words)
    if not args.node and args.root_offset:
        start += _offset(prog, args.root_offset, "-r")
    printer = _printer(session_reader(prog, session.cached), args, radix)
    text: Callable[[int], str] = printer.text if printer else (lambda _address: "")
    if kind == "rbtree":
        node_offset = _offset(prog, args.node_offset, "-o") if args.node_offset else 0
        walk = _rbtree_entries(prog, start, node_offset, args, text)
    elif kind == "maple":
        walk = _maple_entries(prog, start, args, text)
    else:
        walk = _xarray_entries(prog, start, args, text)
    found: list[WalkEntry] = []
    error = _collect(walk, found)
    _finish(session, "tree", found, error)


def _rbtree_entries(prog: drgn.Program, start: int, node_offset: int,
                    args: argparse.Namespace, text: Callable[[int], str]) \
        -> Iterator[WalkEntry]:
    node = start if args.node else rb_root_node(prog, start)
    for address, position in walk_rbtree(prog, node, node_offset, linear=args.linear):
        shown = f"  position: {position}" if args.position else None
        yield WalkEntry(address, shown, text(address))


def _maple_entries(prog: drgn.Program, start: int, args: argparse.Namespace,
                   text: Callable[[int], str]) -> Iterator[WalkEntry]:
    """crash's maple tree walk: each non-NULL leaf slot in index order, ``-p`` with a
    running count of the entries shown (crash's "index") and the slot path; ``-v`` every
    tree, node and slot line as crash dumps them."""
    count = 0
    for event in walk_maple(prog, start, is_node=args.node):
        if event.kind != "entry":
            if args.verbose:
                yield WalkEntry(event.address, None, "", maple_detail(event))
            continue
        entry = event.address
        position = None
        if entry:
            count += 1
            if args.position:
                position = f"  index: {count}  position: {event.path}/{event.slot}"
        detail = maple_detail(event) if args.verbose else None
        if entry or args.verbose:
            yield WalkEntry(entry, position, text(entry) if entry else "", detail)


def _xarray_entries(prog: drgn.Program, start: int, args: argparse.Namespace,
                    text: Callable[[int], str]) -> Iterator[WalkEntry]:
    mask = None
    for entry, index, path in walk_xarray(prog, start, is_node=args.node):
        if mask is None:
            slots = prog.type("struct xa_node").member("slots").type.length or 64
            mask = slots - 1
        shown = f"  index: {index}  position: {path}/{index & mask}" if args.position \
            else None
        yield WalkEntry(entry, shown, text(entry))
