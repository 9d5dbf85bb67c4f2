"""crash's ``mount`` table (filesys.c show_mounts): MOUNT SUPERBLK TYPE DEVNAME DIRNAME.

Addresses are right-aligned in 16 columns; the type is padded to the width of
``rootfs`` and the device name to nine columns, and when both together grow past 17
columns crash trims the padding so a long pair stays separated by one space. With
``-f``/``-i`` each mount repeats the header and is followed by its open files (crash's
``file_dump`` dentry-only lines) or dirty inodes and a blank line.
"""

from __future__ import annotations

from kdx.model.mounts import Mount, MountDetail, MountFile
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


FILES_TITLE = field("OPEN FILES", VADDR_WIDTH, center=True)
FILES_HEADER = (field("DENTRY", VADDR_WIDTH, center=True, left=True) + "  "
                + field("INODE", VADDR_WIDTH, center=True, left=True) + "  TYPE  PATH")


def file_line(entry: MountFile) -> str:
    return (f"{field(f'{entry.dentry:x}', VADDR_WIDTH, center=True, right=True)}  "
            f"{field(f'{entry.inode:x}', VADDR_WIDTH, center=True, right=True)}  "
            f"{entry.type:<4}  {entry.path}")


def detail_lines(detail: MountDetail) -> list[str]:
    """One mount as ``-f``/``-i`` show it: the header and line, its open files and its
    dirty inodes, then a blank line."""
    lines = [MOUNT_HEADER, mount_line(detail.mount)]
    if detail.files is not None:
        if detail.files:
            lines += [FILES_TITLE, FILES_HEADER, *(file_line(f) for f in detail.files)]
        else:
            lines += [FILES_TITLE, "No open files found"]
    if detail.dirty_inodes is not None:
        lines.append("DIRTY INODES")
        lines += [f"{i:x}" for i in detail.dirty_inodes] or ["No dirty inodes found"]
    return lines + [""]


def render_details(details: list[MountDetail]) -> str:
    return rstrip_lines("\n".join(line for d in details for line in detail_lines(d)))
