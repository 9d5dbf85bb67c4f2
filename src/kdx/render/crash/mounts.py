"""crash's ``mount`` table (filesys.c show_mounts): MOUNT SUPERBLK TYPE DEVNAME DIRNAME.

Addresses are right-aligned in 16 columns; the type is padded to the width of
``rootfs`` and the device name to nine columns, and when both together grow past 17
columns crash trims the padding so a long pair stays separated by one space.
"""

from __future__ import annotations

from kdx.model.mounts import Mount
from kdx.render.crash.layout import VADDR_WIDTH, field, rstrip_lines

_DEVNAME_WIDTH = len("DEVNAME") + 2

MOUNT_HEADER = (field("MOUNT", VADDR_WIDTH, center=True) + " "
                + field("SUPERBLK", VADDR_WIDTH, center=True) + " "
                + field("TYPE", len("rootfs"), left=True) + " "
                + field("DEVNAME", _DEVNAME_WIDTH, left=True) + " DIRNAME")


def mount_line(entry: Mount) -> str:
    """One mount line."""
    kind = f"{entry.type:<6} " if entry.type is not None else "unknown "
    device = entry.devname if entry.devname is not None else "(unknown)"
    middle = kind + f"{device:<{_DEVNAME_WIDTH}} "
    while len(middle) > 17 and middle[-2] == " ":
        middle = middle[:-1]
    return (f"{entry.mount:>16x} {entry.superblock:>16x} {middle}{entry.dirname}")


def render_mounts(entries: list[Mount]) -> str:
    """The header and one line per mount (the header alone for an empty list)."""
    return rstrip_lines("\n".join([MOUNT_HEADER, *(mount_line(m) for m in entries)]))
