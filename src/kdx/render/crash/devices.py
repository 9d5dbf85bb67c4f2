"""crash's ``dev`` layouts (dev.c dump_chrdevs, dump_blkdevs_v3, display_all_diskio,
do_pci2): majors with their cdev or gendisk and operations, disk I/O, the PCI tree."""

from __future__ import annotations

from kdx.model.devices import BlockDevice, CharDevice, DiskIo, PciBus, PciDevice
from kdx.render.crash.layout import VADDR_WIDTH, field, rstrip_lines

CHR_HEADER = ("CHRDEV    NAME         " + "  " + field("CDEV", VADDR_WIDTH, center=True)
              + "  " + field("OPERATIONS", VADDR_WIDTH, left=True))
BLK_HEADER = ("BLKDEV    NAME         " + "  "
              + field("GENDISK", VADDR_WIDTH, center=True, right=True) + "  "
              + field("OPERATIONS", VADDR_WIDTH, left=True))
DISKIO_HEADER = ("MAJOR " + field("GENDISK", VADDR_WIDTH + 2, left=True) + " NAME       "
                 + field("REQUEST_QUEUE", VADDR_WIDTH + 2, left=True)
                 + " TOTAL  READ WRITE")


def _major_line(major: int, name: str, address: int, ops: int, symbol: str) -> str:
    start = f" {major:3d}      {name:<13} "
    if not ops:
        return start + " " + field("(none)", VADDR_WIDTH, center=True)
    return start + f" {address:>16x}  " + (symbol or f"{ops:x}")


def render_devices(chars: list[CharDevice], blocks: list[BlockDevice]) -> str:
    lines = [CHR_HEADER]
    lines.extend(_major_line(c.major, c.name, c.cdev, c.ops, c.ops_symbol) for c in chars)
    lines += ["", BLK_HEADER]
    lines.extend(_major_line(b.major, b.name, b.gendisk, b.ops, b.ops_symbol)
                 for b in blocks)
    return rstrip_lines("\n".join(lines))


def render_diskio(disks: list[DiskIo]) -> str:
    lines = [DISKIO_HEADER]
    for d in disks:
        lines.append(f"{d.major:>5} {d.gendisk:<16x}   {d.name:<10} {d.queue:<16x}   "
                     f"{d.read + d.write:5d} {d.read:>5} {d.write:>5}")
    return rstrip_lines("\n".join(lines))


_DEV_HEADER = ("  " + field("PCI DEV", VADDR_WIDTH, center=True) + " "
               + field("DO:BU:SL.FN", 12, center=True) + " " + field("CLASS", 6, center=True)
               + " " + field("PCI_ID", 9, center=True) + " " + field("TYPE", 10, center=True))


def _pci_line(dev: PciDevice) -> str:
    return (f"  {dev.device:<16x} {field(dev.name, 12, center=True)} "
            f"{field(f'{dev.pci_class:04x}', 6, center=True)} "
            f"{field(f'{dev.vendor:x}:{dev.device_id:x}', 9, center=True)} "
            f"{field(dev.type, 10, center=True)}")


def render_pci(buses: list[PciBus]) -> str:
    lines: list[str] = []
    for i, bus in enumerate(buses):
        if bus.root:
            if i:
                lines.append("")
            lines.append(field("ROOT BUS", VADDR_WIDTH, center=True) + " "
                         + field("BUSNAME", 7, center=True))
            lines.append(f"{bus.bus:<16x} {field(bus.name, 7, center=True)}")
        else:
            lines.append("  " + field("PCI BUS", VADDR_WIDTH, center=True) + " "
                         + field("PARENT BUS", VADDR_WIDTH, center=True))
            lines.append(f"  {bus.bus:<16x} {bus.parent:<16x}")
        lines.append(_DEV_HEADER)
        if bus.self_device is not None:
            lines.append(_pci_line(bus.self_device))
        lines.extend(_pci_line(d) for d in bus.devices)
        if not bus.root:
            lines.append("")
    if buses:
        lines += ["", ""]  # crash ends the list with an empty line
    return rstrip_lines("\n".join(lines))
