"""``bpf``: loaded BPF programs and maps, as crash lists them (kdx.model.bpf), with a
program's or map's details (-p ID, -m ID, -P, -M), its machine code (-j), verified
bytecode (-t, -T with bytes) and structures (-s, in hex with -x)."""

from __future__ import annotations

import argparse

import drgn

from kdx.model.bpf import (
    BpfListing,
    BpfMap,
    BpfObjects,
    BpfProgram,
    BpfProgramCode,
    bpf_instructions,
    bpf_objects,
)
from kdx.model.disasm import disassemble
from kdx.model.log import boot_epoch
from kdx.model.reading import READ_ERRORS
from kdx.model.system import system_info
from kdx.model.values import session_reader
from kdx.render.crash.bpf import (
    map_details,
    program_details,
    render_bpf,
    render_jited,
    render_xlated,
)
from kdx.render.crash.data import struct_text
from kdx.session.command import CommandError, crash_command, make_parser
from kdx.session.session import Session

__all__: list[str] = []  # the commands register themselves through @crash_command


def _number(word: str) -> int:
    """crash's stol: decimal when every character is a digit, else hexadecimal."""
    try:
        return int(word, 10) if word.isdigit() else int(word, 16)
    except ValueError as err:
        raise CommandError(f"invalid number: {word}") from err


def _bpf_parser() -> argparse.ArgumentParser:
    parser = make_parser("bpf", "loaded BPF programs and maps, as crash lists them")
    parser.add_argument("-p", dest="prog_id", type=_number, metavar="ID",
                        help="only this program, with its details")
    parser.add_argument("-m", dest="map_id", type=_number, metavar="ID",
                        help="only this map, with its details")
    parser.add_argument("-P", dest="all_progs", action="store_true",
                        help="every program with its details")
    parser.add_argument("-M", dest="all_maps", action="store_true",
                        help="every map with its details")
    parser.add_argument("-j", dest="jited", action="store_true",
                        help="the programs' machine code (with -p or -P)")
    parser.add_argument("-t", dest="xlated", action="store_true",
                        help="the programs' verified bytecode (with -p or -P)")
    parser.add_argument("-T", dest="opcodes", action="store_true",
                        help="-t with each instruction's bytes")
    parser.add_argument("-s", dest="structs", action="store_true",
                        help="the bpf_prog, bpf_prog_aux and bpf_map structures")
    parser.add_argument("-x", dest="hex", action="store_true", help="-s in hexadecimal")
    parser.add_argument("-d", dest="dec", action="store_true", help="-s in decimal")
    return parser


def _check(args: argparse.Namespace) -> None:
    """crash's option rules, with its messages."""
    progs = args.prog_id is not None or args.all_progs
    maps = args.map_id is not None or args.all_maps
    if args.hex and args.dec:
        raise CommandError("-d and -x are mutually exclusive")
    if args.jited and not progs:
        raise CommandError("-j option only applicable with -p or -P")
    if (args.xlated or args.opcodes) and not progs:
        raise CommandError("-t option only applicable with -p or -P")
    if args.structs and not (progs or maps):
        raise CommandError("-s option requires either -p, -P, -m or -M")
    if (args.hex or args.dec) and not (progs or maps):
        raise CommandError(f"-{'x' if args.hex else 'd'} option requires -s")


def _boot_epoch(session: Session) -> int | None:
    """The dump's boot date, which a program's load time counts from."""
    try:
        info = session.cached("sys", lambda: system_info(session.target))
    except READ_ERRORS:
        return None
    return boot_epoch(info.date_epoch, info.uptime_seconds)


def _structs(session: Session, names: list[tuple[str, int]], radix: int) -> list[str]:
    """``struct NAME ADDR`` of each (type, address), each after an empty line."""
    reader = session_reader(session.prog, session.cached)
    lines: list[str] = []
    for name, address in names:
        obj = drgn.Object(session.prog, f"struct {name}", address=address)
        lines += ["", struct_text(reader.read(obj), radix)]
    return lines


def _code(session: Session, objects: BpfObjects, program: BpfProgram,
          args: argparse.Namespace) -> BpfProgramCode:
    """The code ``-j`` and ``-t``/``-T`` ask for; bytecode that cannot be read is a
    warning, so the program's other lines still print."""
    jited = xlated = None
    if args.jited and program.jited_bytes:
        jited = disassemble(session.prog, program.bpf_func,
                            end=program.bpf_func + program.jited_bytes, with_source=False)
    if args.xlated or args.opcodes:
        map_ids = {m.address: m.id for m in objects.maps}
        try:
            xlated = tuple(bpf_instructions(session.prog, program, map_ids))
        except READ_ERRORS as err:
            session.warn(f"program {program.id}: cannot read its bytecode: {err}")
    return BpfProgramCode(program.id, xlated, jited)


def _program_lines(session: Session, objects: BpfObjects, program: BpfProgram,
                   code: BpfProgramCode, args: argparse.Namespace, radix: int) -> list[str]:
    """What crash prints under a program with -p/-P, in its order: details, machine
    code, bytecode, structures."""
    lines = program_details(objects, program)
    if args.jited:
        lines += ["", render_jited(code.jited) if code.jited else "(program not jited)"]
    if code.xlated is not None:
        lines += ["", render_xlated(list(code.xlated), args.opcodes)]
    if args.structs:
        lines += _structs(session, [("bpf_prog", program.address),
                                    ("bpf_prog_aux", program.aux)], radix)
    return lines


@crash_command("bpf", "loaded BPF programs and maps (-p ID -m ID -P -M -j -t -T -s -x -d)",
               parser=_bpf_parser)
def _bpf(session: Session, args: argparse.Namespace) -> None:
    _check(args)
    try:
        objects = bpf_objects(session.prog, _boot_epoch(session))
    except KeyError as err:
        raise CommandError("command not supported or applicable on this architecture or "
                           "kernel") from err
    except READ_ERRORS as err:
        raise CommandError(f"cannot read the BPF programs and maps: {err}") from err
    for warning in objects.warnings:
        session.warn(warning)
    if args.prog_id is not None and args.prog_id not in {p.id for p in objects.programs}:
        raise CommandError(f"invalid program ID: {args.prog_id}")
    if args.map_id is not None and args.map_id not in {m.id for m in objects.maps}:
        raise CommandError(f"invalid map ID: {args.map_id}")
    want_progs = args.prog_id is not None or args.all_progs
    want_maps = args.map_id is not None or args.all_maps
    if not (want_progs or want_maps):
        want_progs = want_maps = True
    radix = 16 if args.hex else 10 if args.dec else session.settings.radix
    programs = [p for p in objects.programs
                if args.all_progs or args.prog_id in (None, p.id)] if want_progs else []
    maps = [m for m in objects.maps
            if args.all_maps or args.map_id in (None, m.id)] if want_maps else []
    detailed_progs = args.prog_id is not None or args.all_progs
    detailed_maps = args.map_id is not None or args.all_maps
    codes = [_code(session, objects, p, args) for p in programs]
    listing = BpfListing(tuple(programs), tuple(maps), tuple(
        c for c in codes if c.xlated is not None or c.jited is not None), objects.warnings)

    def text() -> str:
        prog_blocks = [(p, _program_lines(session, objects, p, c, args, radix)
                        if detailed_progs else []) for p, c in zip(programs, codes)]
        map_blocks = [(m, _map_lines(session, m, args, radix) if detailed_maps else [])
                      for m in maps]
        return render_bpf(objects, prog_blocks if want_progs else None,
                          map_blocks if want_maps else None,
                          verbose_programs=args.all_progs, verbose_maps=args.all_maps)
    session.emit("bpf", listing, text)


def _map_lines(session: Session, bpf_map: BpfMap, args: argparse.Namespace,
               radix: int) -> list[str]:
    """What crash prints under a map with -m/-M: details, then its structure (-s)."""
    lines = map_details(bpf_map)
    if args.structs:
        lines += _structs(session, [("bpf_map", bpf_map.address)], radix)
    return lines
