"""``dis``: disassemble kernel, module or user code, with source lines.

The options and their rules are crash's (kernel.c cmd_dis): a bare function name or the
exact start of a function disassembles the whole function, any other address one
instruction (or COUNT), ``-r`` from the function's start up to the address, ``-f`` from
the address to the function's end, ``-l`` source lines, ``-s`` the source listing.
Unlike crash 8.0.6, module code works with the module's ``.ko`` debug info, init
functions included, and ``-l``/``-s`` show the module's source text when it is found.
"""

from __future__ import annotations

import argparse
import re
from dataclasses import replace
from pathlib import Path

from kdx.commands.crash.arguments import expression_address
from kdx.model.answers import BugBytes
from kdx.model.disasm import (
    Disassembly,
    disassemble,
    function_range,
    is_text,
    source_dirs,
    source_listing,
)
from kdx.model.names import AddressNamer, address_namer
from kdx.model.rawmemory import USER_SPACE_END
from kdx.render.crash.dis import render_disassembly, render_listing
from kdx.session.command import CommandError, crash_command, make_parser
from kdx.session.session import Session


def _parser():
    parser = make_parser("dis", "disassemble code at an address or a whole function, "
                         "as crash's dis")
    parser.add_argument("-l", dest="lines", action="store_true",
                        help="show the source file and line before each group of "
                        "instructions (and the source text when the file is found)")
    parser.add_argument("-s", dest="source", action="store_true",
                        help="list the source around the address, * on its line")
    parser.add_argument("-r", dest="reverse", action="store_true",
                        help="from the start of the function up to the address")
    parser.add_argument("-f", dest="forward", action="store_true",
                        help="from the address to the end of the function")
    parser.add_argument("-u", dest="user", action="store_true",
                        help="the address is a user address of the current task")
    radix = parser.add_mutually_exclusive_group()
    radix.add_argument("-x", dest="radix", action="store_const", const=16,
                       help="symbol offsets in hexadecimal")
    radix.add_argument("-d", dest="radix", action="store_const", const=10,
                       help="symbol offsets in decimal (the default)")
    parser.add_argument("-b", dest="bug_bytes", nargs="?", const="", metavar="NUM",
                        help="skip NUM bytes after each ud2 from now on (BUG()'s encoded "
                        "file and line on old kernels); alone: show the number")
    parser.add_argument("address", nargs="?", metavar="ADDR|SYMBOL",
                        help="an address (hexadecimal), a symbol, or symbol+offset")
    parser.add_argument("count", nargs="?", metavar="COUNT",
                        help="how many instructions (with -r: the last COUNT before "
                        "the address; with -s: source lines past it)")
    return parser


def _check_options(args: argparse.Namespace) -> None:
    """crash's mutually exclusive options, with its words."""
    if args.reverse and args.forward:
        raise CommandError("-r and -f are mutually exclusive")
    if args.source and args.reverse:
        raise CommandError("-r and -s are mutually exclusive")
    if args.source and args.forward:
        raise CommandError("-f and -s are mutually exclusive")
    if args.source and args.user:
        raise CommandError("-s can only be used with kernel addresses")


def _count(text: str | None) -> int | None:
    if text is None:
        return None
    try:
        value = int(text, 0)
    except ValueError as err:
        raise CommandError(f"invalid count argument: {text}") from err
    if value <= 0:
        raise CommandError(f"invalid count argument: {text}")
    return value


def _bug_bytes(session: Session) -> list[int]:
    """The session's ``dis -b`` setting (0: a modern x86_64 kernel's ud2 stands alone)."""
    return session.cached("dis-bug-bytes", lambda: [0])


@crash_command("dis", "disassemble a function or address (with -l/-s source lines)", parser=_parser,
               needs_types=False)
def _dis(session: Session, args: argparse.Namespace) -> None:
    _check_options(args)
    if args.bug_bytes == "":
        value = _bug_bytes(session)[0]
        session.emit("dis-bug-bytes", BugBytes(value),
                     f"encoded bytes being skipped after ud2a: {value}")
        return
    if args.bug_bytes is not None:
        # crash reads the number with atoi(): anything else is 0
        digits = re.match(r"\d*", args.bug_bytes)
        _bug_bytes(session)[0] = int(digits.group() or 0) if digits else 0
        if args.address is None:
            return
    if args.address is None:
        raise CommandError("dis: an address or symbol is required")
    prog = session.prog
    count = _count(args.count)
    symbols = address_namer(prog)
    address = expression_address(prog, args.address)
    near = session.target.path.parent if session.target.path else None
    dirs = session.cached("source-dirs", lambda: source_dirs(prog, near))
    radix = args.radix or 10
    if args.user:
        _user(session, address, count, radix)
        return
    if address < USER_SPACE_END:
        raise CommandError(f"{address:x} is not a kernel virtual address")
    if args.source:
        _listing(session, address, count, dirs, symbols, args.address)
        return
    func = function_range(prog, address, symbols)
    if func is None:
        if args.reverse or args.forward:
            raise CommandError(f"cannot resolve address: {address:x}")
        session.warn(f"{address:x}: no associated kernel symbol found")
    whole = (func is not None and count is None and func.start == address
             and _plain(args.address) and is_text(prog, address, symbols))
    kwargs: dict = {"radix": radix, "source_dirs": dirs, "symbols": symbols,
                    "with_source": True, "bug_bytes": _bug_bytes(session)[0]}
    if args.reverse:
        assert func is not None
        dis = disassemble(prog, func.start, target=address, last=count, **kwargs)
    elif args.forward and count is None:
        # decoded from the function's start, as crash does, so that an address inside
        # an instruction starts at the next real one
        assert func is not None
        dis = disassemble(prog, func.start, end=func.end, **kwargs)
        dis = replace(dis, start=address,
                      instructions=[i for i in dis.instructions if i.address >= address])
    elif whole:
        assert func is not None
        dis = disassemble(prog, func.start, end=func.end, **kwargs)
    else:
        dis = disassemble(prog, address, count=count or 1, **kwargs)
    _show(session, dis, args.lines)


def _plain(text: str) -> bool:
    """A lone symbol or address, not an expression: crash disassembles a whole function
    only for those."""
    return "+" not in text and "-" not in text


def _show(session: Session, dis: Disassembly, lines: bool) -> None:
    """Print the instructions, then one warning line for each thing missing from them."""
    if dis.fault is not None:
        dis.warnings.append(dis.fault.message("gdb_readmem_callback")
                            + " (the rest of the code is not in the dump)")
    if dis.module is not None and dis.module in session.target.missing_modules:
        dis.warnings.append(f"module {dis.module} has no debug info: no symbols inside it "
                            "or source lines (name its .ko file after the dump)")
    elif lines and dis.module is None and not session.target.has_source_lines:
        dis.warnings.append("kernel source lines need the vmlinux's DWARF (this dump was "
                            "opened without it)")
    elif lines and dis.module is not None:
        for src in dis.sources:
            if src.path is None:
                dis.warnings.append(f"{src.file}: source file not found (looked at that "
                                    "path and beside the module files); lines only")
    session.emit("dis", dis, lambda: render_disassembly(dis, lines=lines))
    if not session.json:
        for warning in dis.warnings:
            session.warn(warning)
    if not dis.instructions and dis.fault is not None:
        raise CommandError(f"cannot read code at {dis.start:x}: "
                           f"{dis.fault.message('gdb_readmem_callback')}")


def _listing(session: Session, address: int, count: int | None, dirs: list[Path],
             symbols: AddressNamer, arg: str) -> None:
    prog = session.prog
    if not is_text(prog, address, symbols):
        raise CommandError(f"{address:x}: not a kernel text address")
    listing = source_listing(prog, address, count=count, dirs=dirs, symbols=symbols)
    session.emit("dis-source", listing, lambda: render_listing(listing))
    if listing.file is None:
        raise CommandError(f"{arg}: no source line is known for this address (no debug "
                           "info for its code?)")
    if listing.path is None:
        raise CommandError(f"{arg}: source code is not available ({listing.file} was not "
                           "found at that path, nor beside the dump's modules)")


def _user(session: Session, address: int, count: int | None, radix: int) -> None:
    task = session.current_task
    if not task.mm:
        raise CommandError("the current task is a kernel thread: it has no user "
                           "address space")
    dis = disassemble(session.prog, address, count=count or 1, user_task=task, radix=radix,
                      with_source=False)
    if not dis.instructions:
        reason = dis.fault.message("gdb_readmem_callback") if dis.fault else "unreadable"
        raise CommandError(f"cannot read user code at {address:x}: {reason}")
    _show(session, dis, False)
