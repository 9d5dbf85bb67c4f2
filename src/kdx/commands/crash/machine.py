"""``mach``: machine facts and per-CPU stacks; ``-c`` each CPU's cpuinfo_x86; ``-m`` the
e820 memory map."""

from __future__ import annotations

import argparse

from kdx.model.machine import cpu_infos, e820_map, machine_info
from kdx.model.reading import READ_ERRORS
from kdx.model.system import system_info
from kdx.model.values import CpuInfoValue, session_reader
from kdx.render.crash.machine import render_cpu_infos, render_machine, render_memmap
from kdx.session.command import CommandError, crash_command, make_parser
from kdx.session.session import Session


def _parser() -> argparse.ArgumentParser:
    parser = make_parser("mach", "machine facts, as crash prints them")
    parser.add_argument("-c", action="store_true", help="each CPU's cpuinfo_x86")
    parser.add_argument("-m", action="store_true", help="the e820 physical memory map")
    return parser


@crash_command("mach", "machine type, memory, CPUs, address layout and stacks; -c cpuinfo; -m e820"
               " map", parser=_parser)
def _mach(session: Session, args: argparse.Namespace) -> None:
    prog = session.prog
    try:
        if args.c:
            reader = session_reader(prog, session.cached)
            record = [CpuInfoValue(cpu, None if info is None else info.address_,
                                   None if info is None else reader.read(info))
                      for cpu, info in cpu_infos(prog)]
            session.emit("mach-cpus", record, lambda: render_cpu_infos(record))
        elif args.m:
            ranges = e820_map(prog)
            session.emit("mach-memmap", ranges, lambda: render_memmap(ranges))
        else:
            system = session.cached("sys", lambda: system_info(session.target))
            info = machine_info(prog, system)
            session.emit("mach", info, lambda: render_machine(info))
    except READ_ERRORS as err:
        raise CommandError(f"cannot read the machine data: {err}") from err
