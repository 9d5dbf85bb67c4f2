"""The crash-style text renderer: model records printed the way crash 8.0.6 prints them.

People who read crash output every day scan it by position, and scripts parse it, so the
layout is crash's to the space: labels right-aligned so the colons line up in column 12,
the same flags after file names, the same number formats. The rules come from crash's
kernel.c (display_sys_stats), task.c (show_context) and tools.c (convert_time,
pages_to_size, ctime_tz). Values arrive already cleaned of control sequences.
"""

from __future__ import annotations

import time

from kdx.model.system import SystemInfo

_LABEL_WIDTH = 12
_GIB = 1 << 30
_MIB = 1 << 20
_KIB = 1 << 10
#: Fixed-point base of the kernel's load averages (FSHIFT = 11).
_FIXED_1 = 1 << 11


def _line(label: str, value: str) -> str:
    return f"{label:>{_LABEL_WIDTH}}: {value}".rstrip()


def ctime(epoch: int) -> str:
    """crash's date: ctime() in local time (TZ applies) with the zone name before the year."""
    return time.strftime("%a %b %e %T %Z %Y", time.localtime(epoch))


def duration(seconds: float | None) -> str:
    """crash's uptime: ``HH:MM:SS``, with ``N days, `` in front after the first day."""
    if seconds is None:
        return "(cannot calculate: unknown HZ value)"
    total = int(seconds)
    days, rest = divmod(total, 86400)
    hours, rest = divmod(rest, 3600)
    minutes, secs = divmod(rest, 60)
    clock = f"{hours:02d}:{minutes:02d}:{secs:02d}"
    return f"{days} days, {clock}" if days else clock


def load_average(values: list[float]) -> str:
    """crash's load averages: the kernel's fixed-point values rounded the kernel's way
    (add 0.005 in 1/2048 units, then truncate), which ``%.2f`` would not reproduce."""
    parts = []
    for value in values:
        fixed = round(value * _FIXED_1) + _FIXED_1 // 200
        whole, frac = fixed >> 11, ((fixed & (_FIXED_1 - 1)) * 100) >> 11
        parts.append(f"{whole}.{frac:02d}")
    return ", ".join(parts)


def memory_size(total: int) -> str:
    """crash's memory size: rounded up to the next GiB when at most 64 MiB short of it
    (firmware keeps some), then one decimal in GB, MB or whole KB, ``.0`` dropped."""
    next_gib = -(-total // _GIB) * _GIB
    if total and next_gib - total <= 64 * _MIB:
        total = next_gib
    if total == 0:
        return "0"
    if total >= _GIB:
        text = f"{total / _GIB:.1f} GB"
    elif total >= _MIB:
        text = f"{total / _MIB:.1f} MB"
    else:
        text = f"{int(total / _KIB)} KB"
    return text.replace(".0 ", " ")


def kernel_value(info: SystemInfo) -> str:
    flags = [("  [LIVEPATCH]", info.livepatch), ("  [TRANSITION]", info.livepatch_transition),
             ("  [TAINTED]", info.tainted)]
    return (info.kernel or "(none)") + "".join(text for text, on in flags if on)


#: The line ``sys`` adds when no vmlinux was used: where symbols and types came from.
DEBUG_SOURCES = {
    "dump": "kallsyms, BTF and ORC read from the dump (no source lines)",
    "symbols": "kallsyms read from the dump (the kernel has no BTF: no types)",
}


def dumpfile_value(info: SystemInfo) -> str:
    """The dump's name and crash's flags, spaced as crash spaces them per format."""
    if info.dump_kind == "kdump" and (info.partial or info.incomplete):
        flags = (" [PARTIAL DUMP]" if info.partial else "") + (
            " [INCOMPLETE]" if info.incomplete else "")
        return f"{info.dumpfile} {flags}"
    if info.dump_kind == "elf" and info.incomplete:
        return f"{info.dumpfile}  [INCOMPLETE]"
    return info.dumpfile


def cpus_value(info: SystemInfo) -> str:
    offline = f" [OFFLINE: {info.cpus_offline}]" if info.cpus_offline > 0 else ""
    return f"{info.cpus}{offline}"


def machine_value(info: SystemInfo) -> str:
    speed = f"{info.mhz} Mhz" if info.mhz else "unknown Mhz"
    return f"{info.machine}  ({speed})"


def panic_value(panic: str) -> str:
    hint = " (check log for details)" if "Oops: " in panic else ""
    return f'"{panic}"{hint}'


def task_value(info: SystemInfo) -> str:
    shared = f"(1 of {info.same_pid_tasks})  " if info.same_pid_tasks > 1 else ""
    thread_info = (f"[THREAD_INFO: {info.thread_info:x}]"
                   if info.thread_info is not None else "")
    return f"{info.task or 0:x}  {shared}{thread_info}"


def _system_lines(info: SystemInfo) -> list[tuple[str, str]]:
    rows = [
        ("KERNEL", kernel_value(info)),
        ("DUMPFILE", dumpfile_value(info)),
        *([("DEBUG INFO", DEBUG_SOURCES[info.debug_source])]
          if info.debug_source in DEBUG_SOURCES else []),
        ("CPUS", cpus_value(info)),
        ("DATE", ctime(info.date_epoch)),
        ("UPTIME", duration(info.uptime_seconds)),
        ("LOAD AVERAGE", load_average(info.load_average)),
        ("TASKS", str(info.tasks)),
        ("NODENAME", info.nodename),
        ("RELEASE", info.release),
        ("VERSION", info.version),
        ("MACHINE", machine_value(info)),
        ("MEMORY", memory_size(info.memory_bytes)),
    ]
    if info.panic is not None:
        rows.append(("PANIC", panic_value(info.panic)))
    return rows


def _task_lines(info: SystemInfo) -> list[tuple[str, str]]:
    if info.task is None:
        return []
    rows = [
        ("PID", str(info.pid)),
        ("COMMAND", f'"{info.command}"'),
        ("TASK", task_value(info)),
        ("CPU", str(info.cpu)),
        ("STATE", info.state or ""),
    ]
    if not info.panic_task_found and info.dump_kind != "live":
        rows.append(("WARNING", "panic task not found"))
    return rows


def render_sys(info: SystemInfo) -> str:
    """crash's start-up banner for ``info``: the ``sys`` fields, then the panic task."""
    rows = _system_lines(info) + _task_lines(info)
    return "\n".join(_line(label, value) for label, value in rows) + "\n"


SYSCALL_HEADER = "NUM  SYSTEM CALL                FILE AND LINE NUMBER"


def render_syscalls(entries: list) -> str:
    """crash's ``sys -c`` table: the source path is shown relative to the kernel tree as
    ``../path: line``, as crash prints it for distro kernels built out of tree."""
    lines = [SYSCALL_HEADER]
    for e in entries:
        if e.handler is None:
            lines.append(f"{e.number:3d}  invalid sys_call_table entry: {e.address:x}")
            continue
        where = ""
        if e.file:
            rel = e.file.split("/linux-", 1)[-1].split("/", 1)[-1] if e.file.startswith(
                "/") else e.file
            where = f"../{rel}: {e.line}"
        lines.append(f"{e.number:3d}  {e.handler:<26} {where}".rstrip())
    return "\n".join(lines) + "\n"
