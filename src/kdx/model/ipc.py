"""Smaller kernel tables crash users look at: swap devices (``swap``), System V IPC
objects (``ipcs``), the tasks on a wait queue (``waitq``) and the tasks using a file
(``fuser``).

Each answers one question about a stuck system: is swap full, which shared memory or
semaphore a process may be waiting on, who sleeps on this wait queue, who holds this
file. drgn's swap, ipc and wait helpers do the walking.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Iterable

import drgn
from drgn.helpers.linux.ipc import (
    for_each_sysv_msg_queue,
    for_each_sysv_sem_array,
    for_each_sysv_shm,
)
from drgn.helpers.linux.swap import for_each_swap_info, swap_file_path, swap_is_file
from drgn.helpers.linux.wait import waitqueue_for_each_entry

from kdx.model.files import TaskId, task_files, task_id
from kdx.model.reading import READ_ERRORS
from kdx.model.records import Hex
from kdx.textsafe import decode

_SHM_DEST = 0o1000
_SHM_LOCKED = 0o2000


# -- swap -------------------------------------------------------------------------------


@dataclass(frozen=True)
class SwapDevice:
    """One swap area: sizes in KiB, ``partition`` False for a swap file."""

    swap_info: Hex
    partition: bool
    size_kb: int
    used_kb: int
    priority: int
    filename: str


def swap_devices(prog: drgn.Program) -> list[SwapDevice]:
    page_kb = prog["PAGE_SIZE"].value_() // 1024 if "PAGE_SIZE" in prog else 4
    found = []
    for si in for_each_swap_info(prog):
        try:
            path = decode(swap_file_path(si)) if si.swap_file else "(unknown)"
        except READ_ERRORS:
            path = "(unknown)"
        found.append(SwapDevice(si.value_(), not swap_is_file(si),
                                si.pages.value_() * page_kb,
                                si.inuse_pages.value_() * page_kb, si.prio.value_(), path))
    return found


# -- ipcs -------------------------------------------------------------------------------


@dataclass(frozen=True)
class SharedMemory:
    """One shared memory segment. ``inode`` is the shmem (or hugetlbfs) inode behind
    it, ``resident`` its pages in memory and ``swapped`` those in swap (``ipcs -M``)."""

    shmid_kernel: Hex
    key: int
    shmid: int
    uid: int
    perms: int
    bytes: int
    nattch: int
    destroyed: bool
    locked: bool
    inode: Hex = 0
    resident: int = 0
    swapped: int = 0
    allocated: int = 0  # pages the segment's size spans


@dataclass(frozen=True)
class SemaphoreArray:
    sem_array: Hex
    key: int
    semid: int
    uid: int
    perms: int
    nsems: int


@dataclass(frozen=True)
class MessageQueue:
    msg_queue: Hex
    key: int
    msqid: int
    uid: int
    perms: int
    used_bytes: int
    messages: int


@dataclass(frozen=True)
class IpcObjects:
    shared_memory: tuple[SharedMemory, ...]
    semaphores: tuple[SemaphoreArray, ...]
    message_queues: tuple[MessageQueue, ...]


def _perm(perm: drgn.Object) -> tuple[int, int, int, int]:
    """key, id, uid and mode of a kern_ipc_perm."""
    return (perm.key.value_() & 0xFFFFFFFF, perm.id.value_(), perm.uid.val.value_(),
            perm.mode.value_())


def _live(perm: drgn.Object) -> bool:
    return not perm.deleted.value_()


_HPAGE_SHIFT = 21


def _shm_pages(shm: drgn.Object) -> tuple[int, int, int]:
    """(inode, resident pages, swapped pages) of a segment, counted as crash does: a
    hugetlbfs file's cached pages are huge pages, a shmem file's swapped count is its
    shmem_inode_info's."""
    prog = shm.prog_
    try:
        inode = shm.shm_file.f_path.dentry.d_inode.read_()
        pages = inode.i_mapping.nrpages.value_()
        fs_name = inode.i_sb.s_type.name.string_()
    except READ_ERRORS:
        return 0, 0, 0
    if fs_name == b"hugetlbfs":
        try:
            info = drgn.cast("struct hugetlbfs_sb_info *", inode.i_sb.s_fs_info)
            per_page = 1 << info.hstate.order.value_()
        except READ_ERRORS:
            per_page = (1 << _HPAGE_SHIFT) // prog["PAGE_SIZE"].value_()
        return inode.value_(), pages * per_page, 0
    try:
        info = drgn.container_of(inode, "struct shmem_inode_info", "vfs_inode")
        swapped = info.swapped.value_()
    except READ_ERRORS:
        swapped = 0
    return inode.value_(), pages, swapped


def ipc_objects(prog: drgn.Program, namespace: drgn.Object | None = None) -> IpcObjects:
    """The System V IPC objects of ``namespace`` (the initial one by default)."""
    shms, sems, msgs = [], [], []
    source = prog if namespace is None else namespace
    page = prog["PAGE_SIZE"].value_()
    for shm in for_each_sysv_shm(source):
        if not _live(shm.shm_perm):
            continue
        key, ident, uid, mode = _perm(shm.shm_perm)
        shms.append(SharedMemory(shm.value_(), key, ident, uid, mode & 0o777,
                                 shm.shm_segsz.value_(), shm.shm_nattch.value_(),
                                 bool(mode & _SHM_DEST), bool(mode & _SHM_LOCKED),
                                 *_shm_pages(shm), -(-shm.shm_segsz.value_() // page)))
    for sem in for_each_sysv_sem_array(source):
        if not _live(sem.sem_perm):
            continue
        key, ident, uid, mode = _perm(sem.sem_perm)
        sems.append(SemaphoreArray(sem.value_(), key, ident, uid, mode & 0o777,
                                   sem.sem_nsems.value_()))
    for msq in for_each_sysv_msg_queue(source):
        if not _live(msq.q_perm):
            continue
        key, ident, uid, mode = _perm(msq.q_perm)
        msgs.append(MessageQueue(msq.value_(), key, ident, uid, mode & 0o777,
                                 msq.q_cbytes.value_(), msq.q_qnum.value_()))
    return IpcObjects(tuple(shms), tuple(sems), tuple(msgs))


# -- waitq ------------------------------------------------------------------------------


@dataclass(frozen=True)
class WaitQueue:
    """The tasks on a wait queue, in queue order. crash stops at the first entry whose
    ``private`` is not a task (a callback entry), and so does kdx: ``stopped_at`` is
    that entry's address, or 0."""

    address: Hex
    name: str | None
    tasks: tuple[TaskId, ...]
    stopped_at: Hex = 0


def wait_queue(prog: drgn.Program, address: int, name: str | None,
               is_task: Callable[[int], drgn.Object | None]) -> WaitQueue:
    """Walk the ``wait_queue_head`` at ``address``; ``is_task(addr)`` returns the task
    at that address, or None."""
    head = drgn.Object(prog, "struct wait_queue_head *", address)
    tasks = []
    for entry in waitqueue_for_each_entry(head):
        task = is_task(entry.private.value_())
        if task is None:
            return WaitQueue(address, name, tuple(tasks), entry.value_())
        tasks.append(task_id(task))
    return WaitQueue(address, name, tuple(tasks))


# -- fuser ------------------------------------------------------------------------------


@dataclass(frozen=True)
class FileUser:
    """A task using the file, and how: root, cwd, fd and/or mmap."""

    task: TaskId
    uses: tuple[str, ...]


def _same_path(path: str | None, wanted: str) -> bool:
    """Paths compared without a trailing ``/``: crash names a mount's root ``/tmp/``."""
    if not path:
        return False
    return (path.rstrip("/") or "/") == (wanted.rstrip("/") or "/")


def file_users(tasks: Iterable[drgn.Object], wanted: str,
               warn: Callable[[str], None] | None = None) -> list[FileUser]:
    """The tasks whose root, cwd, open files or mappings are ``wanted`` (a path, or a
    hexadecimal inode or dentry address)."""
    from kdx.model.vm import task_vm

    try:
        address = int(wanted, 16) if not wanted.startswith("/") else None
    except ValueError:
        address = None
    found = []
    for task in tasks:
        uses = []
        try:
            files = task_files(task)
        except READ_ERRORS as err:
            if warn is not None:
                warn(f"PID {task.pid.value_()}: cannot read its files: {err}")
            continue
        if address is None:
            if _same_path(files.root, wanted):
                uses.append("root")
            if _same_path(files.cwd, wanted):
                uses.append("cwd")
            if any(_same_path(f.path, wanted) for f in files.files):
                uses.append("fd")
        elif any(address in (f.inode, f.dentry) for f in files.files):
            uses.append("fd")
        if address is None and task.mm:
            try:
                if any(_same_path(v.file, wanted) for v in task_vm(task).vmas):
                    uses.append("mmap")
            except READ_ERRORS as err:
                if warn is not None:
                    warn(f"PID {task.pid.value_()}: cannot read its mappings: {err}")
        if uses:
            found.append(FileUser(files.task, tuple(uses)))
    return found
