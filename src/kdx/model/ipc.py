"""System V IPC objects as crash's ``ipcs`` lists them: shared memory segments,
semaphore arrays and message queues.

A process stuck in ``semop`` or ``msgrcv`` waits on one of these objects, and a
segment's resident and swapped pages show where its memory went. drgn's ipc helpers
walk an IPC namespace's id tables.
"""

from __future__ import annotations

from dataclasses import dataclass

import drgn
from drgn.helpers.linux.ipc import (
    for_each_sysv_msg_queue,
    for_each_sysv_sem_array,
    for_each_sysv_shm,
)

from kdx.model.reading import READ_ERRORS
from kdx.model.records import Hex

__all__ = ["IpcObjects", "MessageQueue", "SemaphoreArray", "SharedMemory", "ipc_objects"]

_SHM_DEST = 0o1000
_SHM_LOCKED = 0o2000


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
