"""Character and block devices, disk I/O in flight and PCI devices — what crash's
``dev`` shows.

"Which driver owned this major, which disk had I/O stuck in flight, what hardware was
there" are questions about driver crashes and I/O hangs. The records follow crash's
walk: character majors from the ``chrdevs`` hash (with their cdev found directly or
through ``cdev_map``), block majors from ``major_names`` (with the first gendisk of that
major found among the block device inodes), disks from the block class, PCI devices
bus by bus.
"""

from __future__ import annotations

from dataclasses import dataclass

import drgn
from drgn.helpers.linux.block import (
    disk_name,
    for_each_disk,
    request_queue_busy_iter,
    rq_data_dir,
)
from drgn.helpers.linux.device import dev_name
from drgn.helpers.linux.pci import for_each_pci_root_bus, pci_bus_for_each_child

from kdx.model.bounded import list_for_each_entry
from kdx.model.reading import READ_ERRORS
from kdx.model.records import Hex
from kdx.model.timers import symbol_text
from kdx.textsafe import decode

#: Size of the kernel's chrdevs/major_names/cdev_map hashes (CHRDEV_MAJOR_HASH_SIZE).
_MAJOR_HASH = 255
#: Disks crash's ``dev -d`` does not list.
_SKIPPED_DISKS = ("ram", "loop")


@dataclass(frozen=True)
class CharDevice:
    """One registered character major range. ``cdev``/``ops`` are 0 when none is known;
    ``ops_symbol`` names the file_operations."""

    major: int
    name: str
    cdev: Hex
    ops: Hex
    ops_symbol: str


@dataclass(frozen=True)
class BlockDevice:
    """One registered block major, with the first gendisk of that major (0 if none)."""

    major: int
    name: str
    gendisk: Hex
    ops: Hex
    ops_symbol: str


@dataclass(frozen=True)
class DiskIo:
    """One disk and its requests in flight, by direction."""

    major: int
    gendisk: Hex
    name: str
    queue: Hex
    read: int
    write: int


@dataclass(frozen=True)
class PciDevice:
    device: Hex
    name: str
    pci_class: int
    vendor: int
    device_id: int
    type: str


@dataclass(frozen=True)
class PciBus:
    """A PCI bus: a root bus has ``name`` and no parent; a child bus has its parent."""

    bus: Hex
    name: str
    parent: Hex
    root: bool
    self_device: PciDevice | None
    devices: tuple[PciDevice, ...]


def _text(raw: bytes) -> str:
    return decode(raw)


# -- character devices ------------------------------------------------------------------


def _cdev_from_map(prog: drgn.Program, major: int, minor: int) -> drgn.Object | None:
    """The cdev ``cdev_map`` holds for exactly (major, minor), as crash searches it."""
    try:
        probe = prog["cdev_map"].probes[major % _MAJOR_HASH].read_()
    except (KeyError, LookupError):
        return None
    wanted = (major << 20) | minor
    seen = set()
    while probe and probe.value_() not in seen:
        seen.add(probe.value_())
        if probe.dev.value_() == wanted:
            return drgn.cast("struct cdev *", probe.data)
        probe = probe.next.read_()
    return None


def _char_device(prog: drgn.Program, entry: drgn.Object) -> CharDevice:
    name = _text(entry.name.string_())
    major = entry.major.value_()
    cdev = entry.cdev.read_()
    ops = cdev.ops.value_() if cdev else 0
    if not ops:
        found = _cdev_from_map(prog, major, entry.baseminor.value_())
        if found is not None:
            cdev = found
            ops = found.ops.value_()
    if not ops:
        return CharDevice(major, name, 0, 0, "")
    return CharDevice(major, name, cdev.value_(), ops, symbol_text(prog, ops))


def char_devices(prog: drgn.Program) -> list[CharDevice]:
    """Every char_device_struct of the chrdevs hash, bucket by bucket, chain order."""
    found = []
    for head in prog["chrdevs"]:
        entry = head.read_()
        seen = set()
        while entry and entry.value_() not in seen:
            seen.add(entry.value_())
            found.append(_char_device(prog, entry))
            entry = entry.next.read_()
    return found


# -- block devices ----------------------------------------------------------------------


def _first_disk_of_major(prog: drgn.Program) -> dict[int, drgn.Object]:
    """major → the first gendisk with fops among the block device inodes (crash's
    search_blockdev_inodes)."""
    found: dict[int, drgn.Object] = {}
    superblock = prog["blockdev_superblock"].read_()
    for inode in list_for_each_entry("struct inode", superblock.s_inodes.address_of_(),
                                     "i_sb_list"):
        try:
            bdev = drgn.container_of(inode, "struct bdev_inode", "vfs_inode").bdev
            disk = bdev.bd_disk.read_()
            if not disk or not disk.fops.value_():
                continue
            found.setdefault(disk.major.value_(), disk)
        except READ_ERRORS:
            continue
    return found


def block_devices(prog: drgn.Program) -> list[BlockDevice]:
    """The first blk_major_name of every major_names bucket (crash shows no chains)."""
    disks = _first_disk_of_major(prog)
    found = []
    for head in prog["major_names"]:
        entry = head.read_()
        if not entry:
            continue
        major = entry.major.value_()
        name = _text(entry.name.string_())
        disk = disks.get(major)
        if disk is None:
            found.append(BlockDevice(major, name, 0, 0, ""))
            continue
        ops = disk.fops.value_()
        found.append(BlockDevice(major, name, disk.value_(), ops, symbol_text(prog, ops)))
    return found


def disk_io(prog: drgn.Program) -> list[DiskIo]:
    """Every disk with the requests it had in flight (driver tags), by direction.
    RAM and loop disks are left out, as crash leaves them out."""
    found = []
    for disk in for_each_disk(prog):
        name = _text(disk_name(disk))
        if name.startswith(_SKIPPED_DISKS):
            continue
        queue = disk.queue.read_()
        read = write = 0
        try:
            for rq in request_queue_busy_iter(queue, "driver"):
                if rq_data_dir(rq):
                    write += 1
                else:
                    read += 1
        except READ_ERRORS:
            pass
        found.append(DiskIo(disk.major.value_(), disk.value_(), name,
                            queue.value_(), read, write))
    return found


# -- PCI --------------------------------------------------------------------------------

_PCIE_TYPES = {0: "ENDPOINT", 1: "LEG_END", 4: "ROOT_PORT", 5: "UPSTREAM",
               6: "DOWNSTREAM", 7: "PCI_BRIDGE", 8: "PCIE_BRIDGE", 9: "RC_END",
               10: "RC_EC"}


def pci_device(dev: drgn.Object) -> PciDevice:
    kind = _PCIE_TYPES.get((dev.pcie_flags_reg.value_() & 0xF0) >> 4, "")
    if dev.hdr_type.value_() in (1, 2):
        kind += " [BRIDGE]"
    return PciDevice(dev.value_(), _text(dev_name(dev.dev.address_of_())),
                     dev.member_("class").value_() >> 8, dev.vendor.value_(),
                     dev.device.value_(), kind)


def _bus(bus: drgn.Object, root: bool, found: list[PciBus]) -> None:
    self_dev = bus.self.read_()
    devices = tuple(pci_device(d) for d in list_for_each_entry(
        "struct pci_dev", bus.devices.address_of_(), "bus_list"))
    name = _text(dev_name(bus.dev.address_of_())) if root else ""
    found.append(PciBus(bus.value_(), name, bus.parent.value_(), root,
                        pci_device(self_dev) if self_dev else None, devices))
    for child in pci_bus_for_each_child(bus):
        _bus(child, False, found)


def pci_buses(prog: drgn.Program) -> list[PciBus]:
    """Root buses, each followed depth-first by its child buses (crash's order)."""
    found: list[PciBus] = []
    for root in for_each_pci_root_bus(prog):
        _bus(root, True, found)
    return found

