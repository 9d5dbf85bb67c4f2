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

from kdx.model.files import crash_path, inode_type
from kdx.model.reading import READ_ERRORS, c_string
from kdx.model.records import Hex


@dataclass(frozen=True)
class Mount:
    """One mount. ``mount`` is the ``struct mount`` address (crash's first column on
    Linux 3.3 and later); ``type``/``devname`` are None when the dump lacks their text."""

    mount: Hex
    superblock: Hex
    type: str | None
    devname: str | None
    dirname: str



def mount_record(mount: drgn.Object) -> Mount:
    """One ``struct mount *`` as a record."""
    superblock = mount.mnt.mnt_sb.read_()
    fstype = c_string(superblock.s_type.name) if superblock else None
    parent = mount.mnt_parent.read_()
    try:
        dirname = crash_path(mount.mnt_mountpoint, parent)
    except READ_ERRORS:
        dirname = "(unknown)"
    return Mount(mount.value_(), superblock.value_(), fstype,
                 c_string(mount.mnt_devname), dirname)


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
        except READ_ERRORS as err:
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


# -- mount -f / -i ----------------------------------------------------------------------

#: inode.i_state bits that make an inode dirty (I_DIRTY_SYNC|I_DIRTY_DATASYNC|I_DIRTY_PAGES)
_I_DIRTY = 0x7


@dataclass(frozen=True)
class MountFile:
    """An open file of a file system (``mount -f``): dentry, inode, crash's type name
    and the path inside the file system, without its leading ``/``."""

    dentry: Hex
    inode: Hex
    type: str
    path: str


@dataclass(frozen=True)
class MountDetail:
    """A mount with what ``-f`` (``files``) and ``-i`` (``dirty_inodes``) add; a field
    is None when its option was not given."""

    mount: Mount
    files: tuple[MountFile, ...] | None = None
    dirty_inodes: tuple[Hex, ...] | None = None


def open_files_by_superblock(prog: drgn.Program,
                             warn: Callable[[str], None] | None = None) \
        -> dict[int, list[MountFile]]:
    """Every file open in a task's descriptor table, once each, by the super block of
    its inode (crash's per-super-block ``s_files`` list is gone since Linux 3.13; the
    descriptor tables are where a dump still shows what is open)."""
    from drgn.helpers.linux.fs import for_each_file
    from drgn.helpers.linux.pid import for_each_task

    seen: set[int] = set()
    found: dict[int, list[MountFile]] = {}
    for task in for_each_task(prog):
        try:
            if not task.files:
                continue
            files = list(for_each_file(task))
        except READ_ERRORS as err:
            if warn is not None:
                warn(f"PID {task.pid.value_()}: cannot read its open files: {err}")
            continue
        for _fd, file in files:
            if not file or file.value_() in seen:
                continue
            seen.add(file.value_())
            try:
                dentry = file.f_path.dentry.read_()
                inode = dentry.d_inode.read_() if dentry else None
                if not inode:
                    continue
                kind, path = inode_type(prog, inode, crash_path(dentry, None))
                found.setdefault(inode.i_sb.value_(), []).append(
                    MountFile(dentry.value_(), inode.value_(), kind, path[1:]))
            except READ_ERRORS:
                continue
    return found


def dirty_inodes(prog: drgn.Program, superblock: int) -> tuple[int, ...]:
    """The inodes of a super block whose state is dirty, in ``s_inodes`` order (crash
    walked ``s_dirty``, which Linux 2.6.32 replaced by the writeback lists)."""
    from kdx.model.bounded import list_for_each_entry

    sb = drgn.Object(prog, "struct super_block *", superblock)
    found = []
    for inode in list_for_each_entry("struct inode", sb.s_inodes.address_of_(),
                                     "i_sb_list"):
        if inode.i_state.value_() & _I_DIRTY:
            found.append(inode.value_())
    return tuple(found)
