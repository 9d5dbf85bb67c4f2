"""``dev``: character and block majors; ``-d`` disk I/O in flight; ``-p`` PCI devices."""

from __future__ import annotations

import argparse

from kdx.model.answers import DeviceTables
from kdx.model.devices import block_devices, char_devices, disk_io, pci_buses
from kdx.model.reading import READ_ERRORS
from kdx.render.crash.devices import render_devices, render_diskio, render_pci
from kdx.session.command import CommandError, crash_command, make_parser
from kdx.session.session import Session


def _parser() -> argparse.ArgumentParser:
    parser = make_parser("dev", "character and block devices, as crash lists them")
    parser.add_argument("-d", action="store_true", help="disks and their I/O in flight")
    parser.add_argument("-p", action="store_true", help="PCI devices")
    return parser


@crash_command("dev", "character and block devices; -d disk I/O; -p PCI devices", parser=_parser)
def _dev(session: Session, args: argparse.Namespace) -> None:
    prog = session.prog
    try:
        if args.d:
            disks = disk_io(prog)
            session.emit("dev-disks", disks, lambda: render_diskio(disks))
        elif args.p:
            buses = pci_buses(prog)
            session.emit("dev-pci", buses, lambda: render_pci(buses))
        else:
            chars, blocks = char_devices(prog), block_devices(prog)
            session.emit("dev", DeviceTables(chars, blocks),
                         lambda: render_devices(chars, blocks))
    except READ_ERRORS as err:
        raise CommandError(f"cannot read the device tables: {err}") from err
