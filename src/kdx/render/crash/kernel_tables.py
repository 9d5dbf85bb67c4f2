"""crash's layouts for ``swap`` (memory.c dump_swap_info), ``ipcs`` (ipcs.c), ``waitq``
(kernel.c dump_waitq) and ``fuser`` (filesys.c show_fuser)."""

from __future__ import annotations

from kdx.model.kernel_tables import FileUser, IpcObjects, SwapDevice, WaitQueue
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


def render_ipcs(objects: IpcObjects) -> str:
    shm = [f"{s.shmid_kernel:<16x} {s.key:08x} {s.shmid:<10d} {s.uid:<5d} {s.perms:<5o} "
           f"{s.bytes:<10d} {s.nattch:<6d} {'dest' if s.destroyed else ''} "
           f"{'locked' if s.locked else ''}" for s in objects.shared_memory]
    sem = [f"{s.sem_array:<16x} {s.key:08x} {s.semid:<10d} {s.uid:<5d} {s.perms:<5o} "
           f"{s.nsems:<10d}" for s in objects.semaphores]
    msg = [f"{m.msg_queue:<16x} {m.key:08x} {m.msqid:<10d} {m.uid:<5d} {m.perms:<5o} "
           f"{m.used_bytes:<12d} {m.messages:<12d}" for m in objects.message_queues]
    lines = _section(SHM_HEADER, shm) + _section(SEM_HEADER, sem) + _section(MSG_HEADER, msg)
    return rstrip_lines("\n".join(lines)) + "\n"


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
