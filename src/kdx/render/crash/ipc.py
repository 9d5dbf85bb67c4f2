"""crash's layouts for ``swap`` (memory.c dump_swap_info), ``ipcs`` (ipcs.c), ``waitq``
(kernel.c dump_waitq) and ``fuser`` (filesys.c show_fuser)."""

from __future__ import annotations

from kdx.model.ipc import (
    FileUser,
    IpcObjects,
    MessageQueue,
    SemaphoreArray,
    SharedMemory,
    SwapDevice,
    WaitQueue,
)
from kdx.render.crash.layout import VADDR_WIDTH, field, rstrip_lines, task_header

SWAP_HEADER = "SWAP_INFO_STRUCT    TYPE       SIZE       USED     PCT  PRI  FILENAME"
SHM_HEADER = (f"{'SHMID_KERNEL':<16} {'KEY':<8} {'SHMID':<10} {'UID':<5} {'PERMS':<5} "
              f"{'BYTES':<10} {'NATTCH':<6} {'STATUS':<6}")
SEM_HEADER = (f"{'SEM_ARRAY':<16} {'KEY':<8} {'SEMID':<10} {'UID':<5} {'PERMS':<5} "
              f"{'NSEMS':<10}")
MSG_HEADER = (f"{'MSG_QUEUE':<16} {'KEY':<8} {'MSQID':<10} {'UID':<5} {'PERMS':<5} "
              f"{'USED-BYTES':<12} {'MESSAGES':<12}")
FUSER_HEADER = " PID   " + field("TASK", VADDR_WIDTH, center=True) + "  COMM             USAGE"


def render_swap(devices: list[SwapDevice]) -> str:
    lines = [SWAP_HEADER]
    for d in devices:
        pct = d.used_kb * 100 // d.size_kb if d.size_kb else 0
        lines.append(
            f"{field(f'{d.swap_info:x}', VADDR_WIDTH, center=True)}  "
            f"{'PARTITION' if d.partition else '  FILE   '} "
            f"{field(f'{d.size_kb}k', 10, center=True, right=True)} "
            f"{field(f'{d.used_kb}k', 10, center=True, right=True)} "
            f"{field(f'{pct:2d}%', 4, center=True, right=True)} {d.priority:>4}  {d.filename}")
    return rstrip_lines("\n".join(lines))


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


def render_waitq(queue: WaitQueue) -> str:
    if not queue.tasks:
        if queue.name:
            return f'wait queue "{queue.name}" ({queue.address:x}) is empty'
        return f"wait queue {queue.address:x} is empty"
    return rstrip_lines("\n".join(task_header(t.pid, t.task, t.cpu, t.command)
                                  for t in queue.tasks))


def _command(comm: str) -> str:
    """crash's COMM column: the quoted name cut to 16 columns, its last one blanked."""
    text = f'"{comm}"\n'[:16]
    return text[:-1].ljust(16)


def render_fuser(users: list[FileUser], wanted: str) -> str:
    if not users:
        return f"No users of {wanted} found"
    lines = [FUSER_HEADER]
    lines.extend(f"{u.task.pid:>5}  {u.task.task:>16x}  {_command(u.task.command)} "
                 f"{' '.join(u.uses)}" for u in users)
    return rstrip_lines("\n".join(lines))
