"""The mounted file systems of a mount namespace — what crash's ``mount`` lists.

"What was mounted where" matters when a crash involves a file system; crash users read
crash's table of mount, super block, type, device and directory. The directory is named
the way crash names it (its mount point seen through the parent mount, the same path
walk as ``files``), so the two tools agree on every line.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import drgn
from drgn.helpers.linux.fs import for_each_mount

from kdx.model.files import crash_path
from kdx.textsafe import clean_bytes

_READ_ERRORS = (drgn.FaultError, drgn.ObjectAbsentError, ValueError, LookupError)


@dataclass(frozen=True)
class Mount:
    """One mount. ``mount`` is the ``struct mount`` address (crash's first column on
    Linux 3.3 and later); ``type``/``devname`` are None when the dump lacks their text."""

    mount: int
    superblock: int
    type: str | None
    devname: str | None
    dirname: str


def _string(pointer: drgn.Object) -> str | None:
    try:
        if not pointer.value_():
            return None
        return clean_bytes(pointer.string_())
    except _READ_ERRORS:
        return None


def mount_record(mount: drgn.Object) -> Mount:
    """One ``struct mount *`` as a record."""
    superblock = mount.mnt.mnt_sb.read_()
    fstype = _string(superblock.s_type.name) if superblock else None
    parent = mount.mnt_parent.read_()
    try:
        dirname = crash_path(mount.mnt_mountpoint, parent)
    except _READ_ERRORS:
        dirname = "(unknown)"
    return Mount(mount.value_(), superblock.value_(), fstype,
                 _string(mount.mnt_devname), dirname)


def mount_namespace(task: drgn.Object) -> drgn.Object:
    """The mount namespace ``task`` sees (crash's ``-n``)."""
    return task.nsproxy.mnt_ns.read_()


def mounts(prog: drgn.Program, namespace: drgn.Object | None = None,
           warn: Callable[[str], None] | None = None) -> list[Mount]:
    """Every mount of ``namespace`` (PID 1's by default, as crash), in the kernel's
    order. A mount that cannot be read costs a warning, not the list."""
    if namespace is None:
        namespace = _default_namespace(prog)
    found = []
    for mount in for_each_mount(namespace):
        try:
            found.append(mount_record(mount))
        except _READ_ERRORS as err:
            if warn is not None:
                warn(f"cannot read mount {mount.value_():x}: {err}")
    return found


def _default_namespace(prog: drgn.Program) -> drgn.Object:
    """crash takes the namespace of the lowest PID from 1 up that exists."""
    from drgn.helpers.linux.pid import find_task

    for pid in range(1, 64):
        task = find_task(prog, pid)
        if task:
            return mount_namespace(task)
    return prog["init_task"].nsproxy.mnt_ns.read_()
