"""crash's ``ipcs`` layouts (ipcs.c): a table per facility (shared memory, semaphores,
message queues), a block per segment with ``-M``, and the lookup of objects by ID or
address."""

from __future__ import annotations

from kdx.model.ipc import IpcObjects, MessageQueue, SemaphoreArray, SharedMemory
from kdx.render.crash.layout import rstrip_lines

__all__ = ["MSG_HEADER", "SEM_HEADER", "SHM_HEADER", "msg_row", "render_ipcs",
           "render_ipcs_lookup", "sem_row", "shm_block", "shm_row"]

SHM_HEADER = (f"{'SHMID_KERNEL':<16} {'KEY':<8} {'SHMID':<10} {'UID':<5} {'PERMS':<5} "
              f"{'BYTES':<10} {'NATTCH':<6} {'STATUS':<6}")
SEM_HEADER = (f"{'SEM_ARRAY':<16} {'KEY':<8} {'SEMID':<10} {'UID':<5} {'PERMS':<5} "
              f"{'NSEMS':<10}")
MSG_HEADER = (f"{'MSG_QUEUE':<16} {'KEY':<8} {'MSQID':<10} {'UID':<5} {'PERMS':<5} "
              f"{'USED-BYTES':<12} {'MESSAGES':<12}")


def _section(header: str, rows: list[str]) -> list[str]:
    return [header, *(rows or ["(none allocated)"]), ""]


def shm_row(s: SharedMemory) -> str:
    return (f"{s.shmid_kernel:<16x} {s.key:08x} {s.shmid:<10d} {s.uid:<5d} {s.perms:<5o} "
            f"{s.bytes:<10d} {s.nattch:<6d} {'dest' if s.destroyed else ''} "
            f"{'locked' if s.locked else ''}")


def sem_row(s: SemaphoreArray) -> str:
    return (f"{s.sem_array:<16x} {s.key:08x} {s.semid:<10d} {s.uid:<5d} {s.perms:<5o} "
            f"{s.nsems:<10d}")


def msg_row(m: MessageQueue) -> str:
    return (f"{m.msg_queue:<16x} {m.key:08x} {m.msqid:<10d} {m.uid:<5d} {m.perms:<5o} "
            f"{m.used_bytes:<12d} {m.messages:<12d}")


def shm_block(s: SharedMemory, verbose: bool) -> list[str]:
    """One segment shown on its own (``-M`` or an ID): header, line, with ``-M`` its
    pages and inode, then a blank line."""
    lines = [SHM_HEADER, shm_row(s)]
    if verbose:
        lines += [f"PAGES ALLOCATED/RESIDENT/SWAPPED: {s.allocated}/{s.resident}/"
                  f"{s.swapped}", f"INODE: {s.inode:x}"]
    return lines + [""]


def render_ipcs(objects: IpcObjects, *, shm: bool = True, sem: bool = True,
                msg: bool = True, verbose: bool = False) -> str:
    """The tables of the facilities chosen (all three by default); ``verbose``
    (``-M``) shows each segment as a block of its own."""
    lines: list[str] = []
    if shm and verbose:
        for s in objects.shared_memory:
            lines += shm_block(s, True)
        if not objects.shared_memory:
            lines += _section(SHM_HEADER, [])
    elif shm:
        lines += _section(SHM_HEADER, [shm_row(s) for s in objects.shared_memory])
    if sem:
        lines += _section(SEM_HEADER, [sem_row(s) for s in objects.semaphores])
    if msg:
        lines += _section(MSG_HEADER, [msg_row(m) for m in objects.message_queues])
    return rstrip_lines("\n".join(lines)) + "\n"


def render_ipcs_lookup(objects: IpcObjects, wanted: list[tuple[str, int]], *,
                       shm: bool = True, sem: bool = True, msg: bool = True,
                       verbose: bool = False) -> str:
    """``ipcs ID|ADDRESS ...``: for each value, the first object of each chosen
    facility whose ID or address it is. crash prints every "invalid id or address"
    line first and the objects found after them, so kdx does too."""
    invalid: list[str] = []
    found: list[str] = []
    for word, value in wanted:
        hits: list[str] = []
        if shm:
            hits += next((shm_block(s, verbose) for s in objects.shared_memory
                          if value in (s.shmid, s.shmid_kernel)), [])
        if sem:
            hits += next(([SEM_HEADER, sem_row(s), ""] for s in objects.semaphores
                          if value in (s.semid, s.sem_array)), [])
        if msg:
            hits += next(([MSG_HEADER, msg_row(m), ""] for m in objects.message_queues
                          if value in (m.msqid, m.msg_queue)), [])
        if not hits:
            invalid += [f"invalid id or address: {word}", ""]
        found += hits
    return rstrip_lines("\n".join(invalid + found)) + "\n"
