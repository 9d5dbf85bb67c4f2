"""The open files of a task — what crash's ``files`` shows — as plain records.

A task's file table answers "what was this process doing?": which files, devices, pipes
and sockets it held when the machine died. ``task_files`` reads it with drgn's helpers
(``for_each_file``) and names every file the way crash 8.0.6 names it (filesys.c
get_pathname and inode_type), because users compare the two and scripts parse crash's
paths: pseudo files (pipes, sockets, anonymous inodes) carry their dentry name rather than
the kernel's ``socket:[ino]`` form, and a mount's root directory ends with ``/``.

Names come from dump memory, so they are cleaned of terminal control sequences here.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import drgn
from drgn.helpers.linux.fs import for_each_file, for_each_mount
from drgn.helpers.linux.pid import find_task
from drgn.helpers.linux.sched import task_cpu

from kdx.model.reading import READ_ERRORS
from kdx.model.records import Hex
from kdx.textsafe import decode

#: How deep a dentry walk may go before kdx calls the chain corrupt.
_MAX_DEPTH = 256

_S_IFMT = 0o170000
_TYPE_NAMES = {
    0o100000: "REG",
    0o120000: "LNK",
    0o040000: "DIR",
    0o020000: "CHR",
    0o060000: "BLK",
    0o010000: "FIFO",
    0o140000: "SOCK",
}



@dataclass(frozen=True)
class TaskId:
    """Who a per-task record is about, as crash's task header names it."""

    pid: int
    task: Hex
    cpu: int | None
    command: str


@dataclass(frozen=True)
class OpenFile:
    """One open file descriptor. ``dentry``/``inode`` are 0 when the file has none, and
    ``type`` is then ``?`` as in crash."""

    fd: int
    file: Hex
    dentry: Hex
    inode: Hex
    type: str  # REG, DIR, CHR, BLK, FIFO, PIPE, SOCK, LNK, UNKN or ?
    path: str


@dataclass(frozen=True)
class TaskFiles:
    """A task's root, working directory and open files. ``root``/``cwd`` are None when
    the task has no fs_struct (an exiting task): crash then prints no ROOT line."""

    task: TaskId
    root: str | None
    cwd: str | None
    files: tuple[OpenFile, ...]


@dataclass(frozen=True)
class DentryInfo:
    """What ``files -d`` shows about one dentry."""

    dentry: Hex
    inode: Hex
    superblock: Hex
    type: str  # as in OpenFile, or N/A for a negative dentry
    path: str


def task_id(task: drgn.Object) -> TaskId:
    """The header fields of ``task``; a CPU that cannot be read is None."""
    try:
        cpu: int | None = task_cpu(task)
    except READ_ERRORS:
        cpu = None
    return TaskId(pid=task.pid.value_(), task=task.value_(),
                  cpu=cpu, command=decode(task.comm.string_()))


# -- crash's path names ---------------------------------------------------------------


def _component(dentry: drgn.Object) -> str | None:
    """A dentry's own name, or None where crash stops walking: an empty name, or a name
    whose length disagrees with the length the dentry records."""
    qstr = dentry.d_name
    length = qstr.len.value_()
    if not length or not qstr.name.value_():
        return None
    raw = qstr.name.string_()
    if len(raw) != length:
        return None
    return decode(raw)


def crash_path(dentry: drgn.Object, mount: drgn.Object | None) -> str:
    """The path crash prints for ``dentry`` seen through ``mount`` (``struct mount *``,
    or None to stay inside the dentry's file system).

    crash joins the names from the dentry up to the root, crossing each mount to its
    mount point, and only adds a ``/`` between names when neither side already has one.
    That gives the kernel's path in the common case, ``/tmp/`` for the root of a mount at
    /tmp, and the bare dentry name (``TCPv6``, ``[eventpoll]``) for pseudo files.
    """
    path = ""
    current = dentry.read_()
    start = current.value_()
    for _ in range(_MAX_DEPTH):
        name = _component(current)
        if name is None:
            break
        if current.value_() == start:
            path = name
        elif (len(name) > 1 or name != "/") and not path.startswith("/"):
            path = f"{name}/{path}"
        else:
            path = name + path
        parent = current.d_parent.read_()
        if parent.value_() == current.value_() and mount is not None:
            if path.startswith("//"):
                path = path[1:]
            parent = mount.mnt_mountpoint.read_()
            mount_parent = mount.mnt_parent.read_()
            if mount_parent.value_() == mount.value_():
                break
            mount = mount_parent
        if parent.value_() == current.value_() or not parent.value_():
            break
        current = parent
    return path


def _mount_of(vfsmount: drgn.Object) -> drgn.Object | None:
    if not vfsmount.value_():
        return None
    return drgn.container_of(vfsmount, "struct mount", "mnt")


def inode_type(prog: drgn.Program, inode: drgn.Object, path: str) -> tuple[str, str]:
    """crash's type name for ``inode`` and the path as crash then prints it: pipes named
    PIPE (on kernels that mark them) lose their path, as do sockets shown as ``/``."""
    mode = inode.i_mode.value_()
    kind = _TYPE_NAMES.get(mode & _S_IFMT, "UNKN")
    if kind == "FIFO" and _is_pipe(prog, inode):
        return "PIPE", ""
    if kind == "SOCK" and path == "/":
        return kind, ""
    return kind, path


def _is_pipe(prog: drgn.Program, inode: drgn.Object) -> bool:
    """Old kernels give pipes their own inode operations; crash calls those PIPE."""
    try:
        ops = prog.symbol("pipe_inode_operations").address
    except LookupError:
        return False
    return inode.i_op.value_() == ops


# -- the records ----------------------------------------------------------------------


def _fs_paths(task: drgn.Object) -> tuple[str | None, str | None]:
    fs = task.fs.read_()
    if not fs:
        return None, None
    root = crash_path(fs.root.dentry, _mount_of(fs.root.mnt)) if fs.root.dentry else ""
    cwd = crash_path(fs.pwd.dentry, _mount_of(fs.pwd.mnt)) if fs.pwd.dentry else ""
    return root, cwd


def open_file(prog: drgn.Program, fd: int, file: drgn.Object) -> OpenFile:
    """One descriptor as crash's file_dump describes it."""
    dentry = file.f_path.dentry.read_()
    if not dentry:
        return OpenFile(fd, file.value_(), 0, 0, "?", "?")
    inode = dentry.d_inode.read_()
    if not inode:
        return OpenFile(fd, file.value_(), dentry.value_(), 0, "?", "?")
    path = crash_path(dentry, _mount_of(file.f_path.mnt))
    kind, path = inode_type(prog, inode, path)
    return OpenFile(fd, file.value_(), dentry.value_(), inode.value_(), kind, path)


def task_files(task: drgn.Object, warn: Callable[[str], None] | None = None) -> TaskFiles:
    """The ``files`` record of ``task``: its root, cwd and every open descriptor in fd
    order. A descriptor whose file cannot be read from the dump is left out, with a
    warning, rather than guessed."""
    prog = task.prog_
    try:
        root, cwd = _fs_paths(task)
    except READ_ERRORS as err:
        _say(warn, f"PID {task.pid.value_()}: cannot read its root and cwd: {err}")
        root = cwd = None
    files = []
    for fd, file in for_each_file(task):
        if not file:
            continue
        try:
            files.append(open_file(prog, fd, file))
        except READ_ERRORS as err:
            _say(warn, f"PID {task.pid.value_()} fd {fd}: cannot read file "
                 f"{file.value_():x}: {err}")
    return TaskFiles(task_id(task), root, cwd, tuple(files))


def _say(warn: Callable[[str], None] | None, message: str) -> None:
    if warn is not None:
        warn(message)


def dentry_info(prog: drgn.Program, address: int) -> DentryInfo:
    """``files -d``: a dentry's inode, super block, type and path.

    As crash does, the path is taken through a mount of the dentry's super block in the
    mount namespace of PID 1 (the last such mount wins), then through the pipe and socket
    pseudo mounts, and stays empty when no mount matches.
    """
    dentry = drgn.Object(prog, "struct dentry *", address)
    inode = dentry.d_inode.read_()
    superblock = inode.i_sb.read_() if inode else dentry.d_sb.read_()
    path = ""
    if superblock:
        mount = _mount_for_superblock(prog, superblock.value_())
        if mount is not None:
            path = crash_path(dentry, mount)
    kind = "N/A"
    if inode:
        kind, path = inode_type(prog, inode, path)
    return DentryInfo(address, inode.value_(), superblock.value_(), kind, path)


def _mount_for_superblock(prog: drgn.Program, superblock: int) -> drgn.Object | None:
    found = None
    try:
        init = find_task(prog, 1)
        mounts = for_each_mount(init.nsproxy.mnt_ns) if init else for_each_mount(prog)
        for mount in mounts:
            if mount.mnt.mnt_sb.value_() == superblock:
                found = mount
    except READ_ERRORS:
        found = None
    if found is not None:
        return found
    for name in ("pipe_mnt", "sock_mnt"):
        try:
            vfsmount = prog[name].read_()
        except (KeyError, LookupError, drgn.FaultError):
            continue
        if vfsmount and vfsmount.mnt_sb.value_() == superblock:
            return _mount_of(vfsmount)
    return None


# -- the page cache of an inode (files -c, files -p) -------------------------------------


@dataclass(frozen=True)
class InodePages:
    """An inode's page cache: its address_space, the kernel's count of cached pages,
    and (for ``files -p``) the struct page addresses in index order."""

    inode: Hex
    mapping: Hex
    nrpages: int
    pages: tuple[Hex, ...] = ()


def inode_mapping(prog: drgn.Program, inode: int) -> tuple[int, int]:
    """(i_mapping, nrpages) of the inode at ``inode``, as ``files -c`` shows them."""
    mapping = drgn.Object(prog, "struct inode", address=inode).i_mapping.read_()
    return mapping.value_(), mapping.nrpages.value_()


def inode_pages(prog: drgn.Program, inode: int) -> InodePages:
    """``files -p``: the pages of the inode's page cache, read from its xarray (value
    entries, which stand for swapped-out or evicted pages, are not pages)."""
    from drgn.helpers.linux.xarray import xa_for_each, xa_is_value

    mapping, nrpages = inode_mapping(prog, inode)
    pages = []
    if nrpages:
        space = drgn.Object(prog, "struct address_space", address=mapping)
        for _index, entry in xa_for_each(space.i_pages.address_of_()):
            if entry and not xa_is_value(entry):
                pages.append(entry.value_())
    return InodePages(inode, mapping, nrpages, tuple(pages))


def max_fds(task: drgn.Object) -> int:
    """The size of the task's descriptor table (crash reads a number up to it as a
    descriptor in ``files -R``)."""
    try:
        return task.files.fdt.max_fds.value_() if task.files else 0
    except READ_ERRORS:
        return 0
