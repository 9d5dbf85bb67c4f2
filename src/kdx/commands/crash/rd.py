"""``rd``: read memory as crash does; ``x``: gdb's examine command, which crash passes to
its gdb.

``rd [-8|-16|-32|-64] [-s] [-a] [-p] [-u] [-x] [-d|-D] [-o OFFSET] [-e END] ADDR [COUNT]``
follows crash's memory.c cmd_rd: 64-bit hexadecimal values with an ASCII column by
default, one value unless COUNT says more, ``-a`` a string up to its first unprintable
byte, addresses below the kernel's half read as user addresses of the current task.
Reading stops at the first value the dump cannot supply, with crash's reason
(``page excluded: kernel virtual address: ...  type: "64-bit KVADDR"``).

``x [/NFU] ADDR`` takes gdb's count, format (x d u o t a c f s i z) and size (b h w g);
the format and size are remembered from one ``x`` to the next, as in gdb. A scalar
variable's value is the address (``x jiffies`` reads where jiffies points, as gdb does);
``&jiffies`` is its address.
"""

from __future__ import annotations

import argparse
import re

import drgn

from kdx.commands.crash.arguments import expression_address, hex_word
from kdx.model.answers import RawDumpFile
from kdx.model.disasm import disassemble
from kdx.model.names import AddressNamer, address_namer
from kdx.model.rawmemory import (
    FILE,
    KERNEL,
    USER,
    USER_SPACE_END,
    MemoryDisplay,
    extent_symbols,
    make_reader,
    network_order,
    read_memory,
    read_span,
    read_strings,
    space_of,
    with_slab_caches,
)
from kdx.render.crash.dis import instruction_line
from kdx.render.crash.rd import X_SIZES, render_rd, render_strings, render_x
from kdx.session.command import CommandError, crash_command, make_parser
from kdx.session.session import Session


def _symbols(session: Session) -> AddressNamer:
    return address_namer(session.prog)


def _number(text: str, what: str) -> int:
    """A count or offset: decimal, or hexadecimal with 0x (or with hex letters)."""
    try:
        return int(text, 0)
    except ValueError:
        try:
            return int(text, 16)
        except ValueError as err:
            raise CommandError(f"invalid {what}: {text}") from err


# -- rd -----------------------------------------------------------------------------------

def _rd_parser():
    parser = make_parser("rd", "read memory, as crash's rd: hexadecimal values with "
                         "their ASCII, symbols, decimal or strings")
    size = parser.add_mutually_exclusive_group()
    for bits in (8, 16, 32, 64):
        size.add_argument(f"-{bits}", dest="unit", action="store_const", const=bits // 8,
                          help=f"{bits}-bit values" + (" (the default)" if bits == 64 else ""))
    size.add_argument("-a", dest="ascii", action="store_true",
                      help="printable ASCII: a string up to its first unprintable byte, "
                      "or the printable runs among COUNT bytes")
    parser.add_argument("-s", dest="symbolic", action="store_true",
                        help="show values that are kernel or module addresses as "
                        "symbol+offset (64-bit values only)")
    parser.add_argument("-S", dest="slab", action="count", default=0,
                        help="as -s, and name the slab cache of values that point into "
                        "a slab object, [cache] (-SS: [value:cache])")
    space = parser.add_mutually_exclusive_group()
    space.add_argument("-p", dest="physical", action="store_true",
                       help="ADDR is a physical address")
    space.add_argument("-u", dest="user", action="store_true",
                       help="ADDR is a user address of the current task")
    space.add_argument("-f", dest="file", action="store_true",
                       help="ADDR is an offset in the dump file")
    parser.add_argument("-N", dest="network", action="store_true",
                        help="16- and 32-bit values in network byte order")
    parser.add_argument("-R", dest="reverse", action="store_true",
                        help="show the COUNT values that end at ADDR")
    parser.add_argument("-r", dest="output", metavar="FILE",
                        help="copy the raw bytes (COUNT bytes, or up to -e) to FILE")
    parser.add_argument("-x", dest="no_ascii", action="store_true",
                        help="leave out the ASCII column")
    radix = parser.add_mutually_exclusive_group()
    radix.add_argument("-d", dest="radix", action="store_const", const="d",
                       help="signed decimal values")
    radix.add_argument("-D", dest="radix", action="store_const", const="u",
                       help="unsigned decimal values")
    parser.add_argument("-o", dest="offset", metavar="OFFSET",
                        help="add OFFSET to the address")
    parser.add_argument("-e", dest="end", metavar="END",
                        help="read up to this address (instead of COUNT)")
    parser.add_argument("address", metavar="ADDR|SYMBOL",
                        help="a hexadecimal address, a symbol or symbol+offset")
    parser.add_argument("count", nargs="?", metavar="COUNT",
                        help="how many values (default 1; with -a: bytes)")
    return parser


@crash_command("rd", "read memory: hex values and ASCII (-s/-S symbols and slab caches, -a "
               "strings, -8/-16/-32, -d, -N, -R, -p, -u, -f, -r FILE)", parser=_rd_parser,
               needs_types=False)
def _rd(session: Session, args: argparse.Namespace) -> None:
    prog = session.prog
    unit = args.unit or 8
    args.symbolic = args.symbolic or bool(args.slab)
    if args.symbolic and unit != 8:
        option = "-S" if args.slab else "-s"
        raise CommandError(f"{option} option is only allowed with 64-bit display")
    address = _address(prog, args.address, physical=args.physical or args.file)
    if args.offset is not None:
        address += _number(args.offset, "offset")
    if args.output is not None:
        _rd_to_file(session, args, address)
        return
    count = _rd_count(args, address, unit)
    if args.reverse:
        count = count or 1
        address -= (count - 1) * (1 if args.ascii else unit)
    space = FILE if args.file else space_of(address, physical=args.physical,
                                            user=args.user)
    task = session.current_task if space == USER else None
    radix = args.radix or "x"
    symbols = _symbols(session) if args.symbolic and radix == "x" else None
    display = read_memory(prog, address, unit=1 if args.ascii else unit, count=count,
                          space=space, task=task, symbols=symbols, ascii=args.ascii,
                          path=_dump_path(session) if args.file else None)
    if args.slab and radix == "x":
        display = with_slab_caches(prog, display, with_value=args.slab > 1)
    if args.network:
        display = network_order(display)
    shown = display.words or display.strings
    if shown or session.json:
        session.emit("rd", display, lambda: render_rd(
            display, radix=radix, symbolic=args.symbolic, show_ascii=not args.no_ascii))
    if display.fault is not None:
        raise CommandError(display.fault.message(display.type_name))


def _dump_path(session: Session) -> str:
    path = session.target.read_path
    if path is None:
        raise CommandError("-f option requires a dumpfile")
    return str(path)


def _rd_to_file(session: Session, args: argparse.Namespace, address: int) -> None:
    """``rd -r FILE``: COUNT bytes (or up to -e) copied to FILE, as crash copies them."""
    if args.count is not None:
        count = _number(args.count, "count")
    elif args.end is not None:
        count = _rd_count(argparse.Namespace(**{**vars(args), "ascii": True}), address, 1)
    else:
        raise CommandError("-r option requires either a count argument or the -e option")
    space = FILE if args.file else space_of(address, physical=args.physical,
                                            user=args.user)
    task = session.current_task if space == USER else None
    read = make_reader(session.prog, space, task,
                       _dump_path(session) if args.file else None)
    data, fault = read_span(read, space, address, count)
    if fault is not None:
        raise CommandError(fault.message("raw dump to file"))
    try:
        with open(args.output, "wb") as out:
            out.write(data)
    except OSError as err:
        raise CommandError(f"cannot open output file: {args.output}") from err
    session.emit("rd-file", RawDumpFile(address, count, args.output),
                 f"{count} bytes copied from {address:#x} to {args.output}")


def _address(prog: drgn.Program, text: str, *, physical: bool = False) -> int:
    return hex_word(text) if physical else expression_address(prog, text)


def _rd_count(args: argparse.Namespace, address: int, unit: int) -> int | None:
    if args.count is not None:
        count = _number(args.count, "count")
        if count <= 0:
            raise CommandError(f"invalid count request: {count}")
        return count
    if args.end is not None:
        end = _number(args.end if args.end.lower().startswith("0x") else "0x" + args.end,
                      "ending address")
        if end <= address:
            raise CommandError(f"invalid ending address: {end:x}")
        return max((end - address) // (1 if args.ascii else unit), 1)
    return None if args.ascii else 1


# -- x ------------------------------------------------------------------------------------

_FORMAT = re.compile(r"/(?P<count>\d*)(?P<letters>[a-zA-Z]*)\Z")
_FORMATS = set("xduotacfsiz")
_SIZE_LETTERS = set("bhwg")


def _x_parser():
    parser = make_parser("x", "examine memory as gdb's x/NFU does (through crash's gdb)")
    parser.add_argument("format", nargs="?", metavar="/NFU",
                        help="count N, format F (x d u o t a c f s i z), size U (b h w g)")
    parser.add_argument("address", nargs="+", metavar="ADDR",
                        help="an address or expression: 0x..., symbol, &symbol, symbol+N")
    return parser


def _x_format(session: Session, spec: str | None) -> tuple[int, str, str]:
    """gdb's decode_format with its memory of the last format and size."""
    state = session.cached("x-state", lambda: {"fmt": "x", "size": "w"})
    count, fmt, size = 1, state["fmt"], None
    if spec is not None:
        m = _FORMAT.match(spec)
        if m is None:
            raise CommandError(f"invalid format: {spec} (use /NFU, e.g. /8xg)")
        count = int(m.group("count")) if m.group("count") else 1
        for letter in m.group("letters"):
            if letter in _SIZE_LETTERS:
                size = letter
            elif letter in _FORMATS:
                fmt = letter
            else:
                raise CommandError(f"undefined output format or size letter: {letter}")
    if fmt == "a":
        size = size or "g"
    elif fmt == "c":
        size = size or "b"
    elif fmt == "f" and size is None:
        size = state["size"] if state["size"] in ("w", "g") else "g"
    elif fmt == "s":
        size = size or "b"
    size = size or state["size"]
    if count <= 0:
        raise CommandError("the count must be positive")
    return count, fmt, size


def _remember(session: Session, fmt: str, size: str) -> None:
    """gdb keeps the format and size of an x that worked for the next one."""
    state = session.cached("x-state", lambda: {"fmt": "x", "size": "w"})
    state["fmt"] = fmt
    if fmt not in ("s", "i"):
        state["size"] = size


def _x_address(prog: drgn.Program, text: str) -> int:
    """gdb's reading of x's argument: ``&sym`` and numbers are addresses; a variable is
    its value when it is a number or pointer, its address when an array, function or
    structure."""
    text = text.strip()
    if text.startswith("&"):
        return _address(prog, text[1:])
    if re.fullmatch(r"0[xX][0-9a-fA-F]+|\d+", text):
        return int(text, 0)
    if re.fullmatch(r"[A-Za-z_][\w.]*", text):
        try:
            obj = prog.object(text)
        except (LookupError, ValueError):
            obj = None
        if obj is not None:
            kind = obj.type_.unaliased_kind()
            if kind in (drgn.TypeKind.INT, drgn.TypeKind.BOOL, drgn.TypeKind.ENUM,
                        drgn.TypeKind.POINTER):
                try:
                    return obj.value_() & 0xFFFF_FFFF_FFFF_FFFF
                except drgn.FaultError as err:
                    raise CommandError(f"cannot read {text}: {err}") from err
            if obj.address_ is not None:
                return obj.address_
    return _address(prog, text)


def _gdb_symbol(session: Session, address: int) -> str | None:
    """gdb's name for an address in x's output: the symbol whose extent holds it,
    preferring a sized one (``jiffies_64``, not its alias ``jiffies``), offsets in
    decimal, clone suffixes kept."""
    found = extent_symbols(session.prog, address)
    pool = [s for s in found if s.size] or found
    if not pool:
        return None
    start = max(s.address for s in pool)
    best = min((s for s in pool if s.address == start), key=lambda s: s.name)
    offset = address - best.address
    return f"{best.name}+{offset}" if offset else best.name


@crash_command("x", "examine memory as gdb's x /NFU ADDR (x d u o t a c f s i z; b h w g)",
               parser=_x_parser)
def _x(session: Session, args: argparse.Namespace) -> None:
    count, fmt, size = _x_format(session, args.format)
    address = _x_address(session.prog, " ".join(args.address))
    space = KERNEL if address >= USER_SPACE_END else USER
    task = session.current_task if space == USER else None
    if fmt == "i":
        _x_instructions(session, address, count, task)
        _remember(session, fmt, size)
        return
    if fmt == "s":
        strings, fault = read_strings(session.prog, address, count, space, task)
        labels = [_gdb_symbol(session, s.address) for s in strings]
        if strings:
            session.emit("x-s", strings, lambda: render_strings(strings, labels))
        if fault is not None:
            raise CommandError(f"cannot access memory at address {fault.address:#x} "
                               f"({fault.message('x')})")
        _remember(session, fmt, size)
        return
    unit = X_SIZES[size]
    display = read_memory(session.prog, address, unit=unit, count=count, space=space,
                          task=task)
    _emit_x(session, display, fmt, size)
    _remember(session, fmt, size)


def _emit_x(session: Session, display: MemoryDisplay, fmt: str, size: str) -> None:
    labels = [_gdb_symbol(session, w.address) for w in display.words]
    values = [_gdb_symbol(session, w.value) for w in display.words] if fmt == "a" else None
    if display.words or session.json:
        session.emit("x", display, lambda: render_x(display, fmt, size, labels, values))
    if display.fault is not None:
        raise CommandError(f"cannot access memory at address {display.fault.address:#x} "
                           f"({display.fault.message(display.type_name)})")


def _x_instructions(session: Session, address: int, count: int,
                    task: drgn.Object | None) -> None:
    dis = disassemble(session.prog, address, count=count, user_task=task,
                      with_source=False, symbols=_symbols(session),
                      namer=lambda a: _gdb_symbol(session, a))
    # gdb's x/i: three spaces in front, no crash [FTRACE NOP] tag
    lines = ["   " + instruction_line(i).replace(" [FTRACE NOP]", "")
             for i in dis.instructions]
    if dis.instructions or session.json:
        session.emit("x-i", dis, "\n".join(lines))
    if dis.fault is not None:
        raise CommandError(f"cannot access memory at address {dis.fault.address:#x}")
