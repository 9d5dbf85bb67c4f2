"""The system summary of a dump — what crash prints at start-up and for ``sys`` — as data.

``SystemInfo`` holds plain values only, so the same record feeds the crash-style text
renderer, ``--json`` and, later, a database. ``system_info`` computes every field by the
rule crash 8.0.6 uses (kernel.c display_sys_stats, task.c show_context), because users
compare the two side by side; where crash's rule gives a wrong answer kdx gives the right
one, and docs/crash-differences.md lists each such place.

Text read from the dump (names, versions, the panic line) is cleaned of terminal control
sequences here, once, so no renderer can forget to.
"""

from __future__ import annotations

import datetime
import re
from dataclasses import dataclass, field
from typing import Callable, TypeVar

import drgn
from drgn.helpers.linux.cpumask import (
    for_each_possible_cpu,
    num_online_cpus,
    num_present_cpus,
)
from drgn.helpers.linux.kconfig import get_kconfig
from drgn.helpers.linux.mmzone import for_each_online_pgdat
from drgn.helpers.linux.panic import panic_task
from drgn.helpers.linux.sched import idle_task, loadavg, task_cpu, task_on_cpu, task_thread_info
from drgn.helpers.linux.timekeeping import (
    ktime_get_coarse_ns,
    ktime_get_real_seconds,
    uptime,
)

from kdx.model.log import KernelLog, kernel_log, text_lines
from kdx.model.reading import READ_ERRORS
from kdx.model.records import Hex
from kdx.model.taint import KernelTaint, kernel_taint
from kdx.target.open import Target
from kdx.textsafe import decode, one_line

T = TypeVar("T")


@dataclass(frozen=True)
class SystemInfo:
    """One machine at the moment it crashed, field for field as crash's banner shows it."""

    kernel: str | None  # the vmlinux as the user named it, or as kdx found it
    #: "dwarf" (a vmlinux), "dump" (kallsyms, BTF, ORC from the dump), "symbols" (kallsyms)
    debug_source: str
    dumpfile: str  # the dump as the user named it; /proc/kcore for the live kernel
    dump_kind: str  # "elf", "kdump" or "live": decides how crash flags the file
    dump_format: str  # human description, e.g. "kdump-compressed (zlib)"
    partial: bool  # filtered by makedumpfile (dump level > 0): crash's [PARTIAL DUMP]
    incomplete: bool  # marked incomplete by the capture (it ran out of space)
    tainted: bool
    taint_mask: int
    taint_flags: str  # the kernel's letters with its padding collapsed, e.g. "G OE"
    livepatch: bool
    livepatch_transition: bool
    cpus: int  # present CPUs
    cpus_offline: int  # present but not online (stopped CPUs leave the online mask)
    date: str  # crash time, ISO 8601 in UTC
    date_epoch: int
    uptime_seconds: float | None  # jiffies / hz; the boot-time clock if hz is None
    hz: int | None
    load_average: list[float]  # exact: the kernel keeps them in 1/2048 units
    tasks: int  # every PID's task (threads too) plus one idle task per CPU
    nodename: str
    release: str
    version: str
    machine: str
    mhz: int | None
    memory_bytes: int  # present memory of all online nodes, not rounded
    panic: str | None  # the line crash picks, else the oops line; "" if none; None if live
    pid: int | None
    command: str | None
    task: Hex | None
    thread_info: Hex | None
    same_pid_tasks: int  # tasks sharing the PID (the idle tasks for PID 0)
    cpu: int | None
    state: str | None  # e.g. "TASK_RUNNING (PANIC)"
    panic_task_found: bool
    warnings: list[str] = field(default_factory=list)


def system_info(target: Target, log: KernelLog | None = None) -> SystemInfo:
    """Compute the summary of ``target``; fields that cannot be read become warnings.
    ``log`` is the kernel log when the caller has read it already."""
    prog = target.prog
    warnings: list[str] = []

    def get(what: str, fn: Callable[[], T], default: T) -> T:
        try:
            return fn()
        except READ_ERRORS as err:
            warnings.append(f"cannot read the {what}: {err}")
            return default

    taint = get("taint flags", lambda: kernel_taint(prog), KernelTaint(0, ""))
    taint_mask, taint_letters = taint.mask, taint.letters
    epoch = get("date", lambda: ktime_get_real_seconds(prog).value_(), 0)
    hz = get("tick rate", lambda: kernel_hz(prog), None)
    tasks = get("task list", lambda: _task_table(prog), _TaskTable([], []))
    if not target.live and log is None:
        log = get("kernel log", lambda: kernel_log(prog), None)
    if log is not None:  # a log read in part: the panic line may be in what was lost
        warnings += [f"cannot read the whole kernel log: {w}" for w in log.warnings[:1]]
    panic = None if target.live else get("panic message", lambda: panic_line(prog, log), "")
    context = _NO_CONTEXT if target.live else get(
        "panic task", lambda: _context_fields(prog, _panic_context(prog), tasks, panic or ""),
        _NO_CONTEXT)
    uts = get("utsname", lambda: _utsname(prog), {})
    cpus, offline = get("CPU masks", lambda: _cpus(prog), (0, 0))
    return SystemInfo(
        **_file_fields(target),
        tainted=taint_mask != 0,
        taint_mask=taint_mask,
        taint_flags=taint_letters,
        livepatch=get("livepatch state", lambda: _livepatch(prog, taint_letters), False),
        livepatch_transition=get("livepatch transition", lambda: _klp_transition(prog), False),
        cpus=cpus,
        cpus_offline=offline,
        date=datetime.datetime.fromtimestamp(epoch, datetime.timezone.utc).isoformat(),
        date_epoch=epoch,
        uptime_seconds=get("uptime", lambda: _uptime(prog, hz), None),
        hz=hz,
        load_average=get("load average", lambda: list(loadavg(prog)), [0.0, 0.0, 0.0]),
        tasks=len(tasks.all),
        nodename=uts.get("nodename", ""),
        release=uts.get("release", target.release),
        version=uts.get("version", ""),
        machine=uts.get("machine", ""),
        mhz=get("processor speed", lambda: _mhz(prog), None),
        memory_bytes=get("memory size", lambda: _memory_bytes(prog), 0),
        panic=panic,
        **context,
        warnings=warnings,
    )


def _file_fields(target: Target) -> dict:
    """KERNEL and DUMPFILE: the files as named, and what crash flags about the dump.
    Only kdump-compressed files record a dump level, so only they can be [PARTIAL DUMP]
    (crash flags an ELF dump only for a netdump-era NT_DISKDUMP note, which makedumpfile's
    ELF output lacks)."""
    dump = target.dump
    return {
        "kernel": str(target.vmlinux) if target.vmlinux else None,
        "debug_source": target.debug_source,
        "dumpfile": "/proc/kcore" if dump is None else str(target.path),
        "dump_kind": "live" if dump is None else dump.kind,
        "dump_format": "live kernel" if dump is None else dump.description,
        "partial": bool(dump and dump.kind == "kdump" and (dump.dump_level or 0) > 0),
        "incomplete": bool(dump and dump.incomplete),
    }


# --- time -------------------------------------------------------------------------------

#: Every CONFIG_HZ value some architecture's Kconfig offers.
_HZ_CHOICES = (100, 250, 300, 1000, 24, 32, 48, 64, 128, 200, 256, 500, 512, 1024, 1200)


def jiffies_now(prog: drgn.Program) -> int:
    """The jiffies counter at the time of the dump (64 bits where the kernel has them)."""
    return _jiffies(prog)


def _jiffies(prog: drgn.Program) -> int:
    try:
        return prog["jiffies_64"].value_()
    except KeyError:
        return prog["jiffies"].value_()


def _initial_jiffies(hz: int) -> int:
    """The kernel starts jiffies 300 s before wrapping 32 bits, to flush out wrap bugs."""
    return (-300 * hz) & 0xFFFFFFFF


def kernel_hz(prog: drgn.Program) -> int | None:
    """The kernel's tick rate, needed to turn jiffies into time.

    crash 8.0.6 guesses HZ from a constant in the deadline I/O scheduler and falls back to
    1000 on x86_64; on kernels where that guess fails (Debian's 6.12, HZ=250) its UPTIME
    is wrong by minutes. kdx picks the HZ under which jiffies agree with the monotonic
    clock when one clearly does (a tick rate off by a factor r misses by |uptime - 300 s|
    times |1 - r|, since jiffies start 300 s before wrapping); near 300 s of uptime every
    rate agrees, and there it reads CONFIG_HZ from the kernel's config (which takes
    longer: the config is compressed in memory). Failing both, the closest rate.
    """
    misses = _hz_misses(prog)
    if misses and _decisive(misses):
        return misses[0][1]
    try:
        return int(get_kconfig(prog)["CONFIG_HZ"])
    except (LookupError, ValueError):
        pass
    if misses:
        best_miss, best, uptime_s = misses[0]
        return best if best_miss <= 5 + uptime_s / 1000 else None
    return None


def _hz_misses(prog: drgn.Program) -> list[tuple[float, int, float]]:
    """(seconds by which jiffies under that HZ miss the monotonic clock, HZ, monotonic
    seconds) for every HZ choice, closest first; empty if either clock is unreadable."""
    try:
        jiffies = _jiffies(prog)
        monotonic = ktime_get_coarse_ns(prog).value_() / 1e9
    except READ_ERRORS:
        return []
    return sorted((abs((jiffies - _initial_jiffies(hz)) / hz - monotonic), hz, monotonic)
                  for hz in _HZ_CHOICES)


def _decisive(misses: list[tuple[float, int, float]]) -> bool:
    """Whether one HZ agrees with the clock and every other is far off: the right one
    misses by a fraction of a second (when ticks started, the last tick), the nearest
    wrong one by seconds."""
    best, second = misses[0][0], misses[1][0]
    return best < 1 and second >= 3 and second >= 10 * best


def _uptime(prog: drgn.Program, hz: int | None) -> float:
    """Seconds since boot as crash counts them: jiffies since their start, over HZ.

    Without HZ, the boot-time clock is the best remaining answer (it also counts time
    spent suspended, which jiffies do not).
    """
    if hz is None:
        return uptime(prog)
    return (_jiffies(prog) - _initial_jiffies(hz)) / hz


# --- CPUs, tasks, memory ------------------------------------------------------------------


def _cpus(prog: drgn.Program) -> tuple[int, int]:
    """(present, offline) as crash counts them; panic() takes stopped CPUs offline."""
    present = num_present_cpus(prog)
    online = num_online_cpus(prog)
    if not present:
        present = sum(1 for _ in for_each_possible_cpu(prog))
    return present, max(present - (online or present), 0)


@dataclass(frozen=True)
class _TaskTable:
    all: list[int]  # task_struct addresses
    idle: list[int]


def _task_table(prog: drgn.Program) -> _TaskTable:
    """crash's task table (the one definition in kdx.model.tasks, which imports this
    module, hence the late import)."""
    from kdx.model.tasks import idle_tasks, task_addresses

    return _TaskTable(task_addresses(prog), [t.value_() for t in idle_tasks(prog)])


def _memory_bytes(prog: drgn.Program) -> int:
    """Present memory of every online node, as crash totals it (spanned if none present)."""
    page = prog["PAGE_SIZE"].value_()
    total = 0
    for pgdat in for_each_online_pgdat(prog):
        pages = pgdat.node_present_pages.value_() or pgdat.node_spanned_pages.value_()
        total += pages * page
    return total


def _mhz(prog: drgn.Program) -> int | None:
    """x86_64's calibrated CPU clock; None where the kernel has none to report."""
    try:
        khz = prog["cpu_khz"].value_()
    except KeyError:
        return None
    return khz // 1000 or None


def _utsname(prog: drgn.Program) -> dict[str, str]:
    name = prog["init_uts_ns"].name
    return {key: one_line(getattr(name, key).string_())
            for key in ("nodename", "release", "version", "machine")}


# --- taint ----------------------------------------------------------------------------------


def _livepatch(prog: drgn.Program, letters: str) -> bool:
    """crash's [LIVEPATCH]: the K taint, or kpatch's module loaded."""
    if "K" in letters:
        return True
    return any(mod.name == "kpatch" for mod, _ in prog.loaded_modules())


def _klp_transition(prog: drgn.Program) -> bool:
    """A live patch is still being applied or removed (crash 9's [TRANSITION])."""
    try:
        return bool(prog["klp_transition_patch"].value_())
    except KeyError:
        return False


# --- the panic ------------------------------------------------------------------------------

#: Log text crash takes as the panic message, most telling first; the whole log line
#: containing the first pattern found is the message.
PANIC_PATTERNS = (
    "SysRq : Crash",
    "SysRq : Trigger a crash",
    "SysRq : Netdump",
    "Kernel panic: ",
    "Kernel panic - ",
    "Kernel BUG at",
    "kernel BUG at",
    "Unable to handle kernel paging request",
    "Unable to handle kernel NULL pointer dereference",
    "BUG: unable to handle kernel ",
    "general protection fault: ",
    "double fault: ",
    "divide error: ",
    "stack segment: ",
    "[Hardware Error]: ",
    "Bad mode in ",
    "Oops: ",
)
#: Looser words crash falls back to, line by line, when no pattern matched.
PANIC_KEYWORDS = ("Unable to handle kernel", "BUG: unable to handle kernel", "Kernel BUG at",
                  "kernel BUG at", "Bad mode in", "Oops", "Kernel panic")


#: Oops openers in the wording of Linux 5.x and 6.x that crash 8.0.6's lists predate:
#: the stack-guard-page report, then any die() header ("<what>: <error code> [#<n>]"),
#: which a general protection fault prints as "general protection fault, probably for
#: non-canonical address 0x...: 0000 [#1]" and a guard page hit as "stack guard page:
#: 0000 [#1]". Only 6.7+ prefix these with "Oops: ", which crash's own rules catch.
OOPS_OPENERS = (
    re.compile(r"BUG: \S+ stack guard page was hit at "),
    re.compile(r": [0-9a-f]{4} \[#\d+\]"),
)


def choose_panic_line(lines: list[str]) -> str:
    """The panic message for a log of ``lines`` (text without timestamps): the line
    crash shows, or, where crash shows none, the first line that opens an oops.

    drgn's panic_message() ranks differently and returns only the matched part; kdx
    follows crash so that the two tools agree on the PANIC line. When kdump took over
    in oops_end() (panic_on_oops) no "Kernel panic" line was logged, and crash 8.0.6
    finds nothing in a 6.1 general protection fault or stack overflow report; kdx then
    shows the oops line rather than an empty message (docs/crash-differences.md).
    """
    for pattern in PANIC_PATTERNS:
        for line in lines:
            if pattern in line:
                return line
    for line in lines:
        if any(word in line for word in PANIC_KEYWORDS):
            return line
    for opener in OOPS_OPENERS:
        for line in lines:
            if opener.search(line):
                return line
    return ""


def panic_line(prog: drgn.Program, log: KernelLog | None = None) -> str:
    """The panic message of the dump's kernel log (``log`` when already read)."""
    return choose_panic_line(text_lines(log if log is not None else kernel_log(prog)))


@dataclass(frozen=True)
class _Context:
    task: drgn.Object
    found: bool  # False: no panic task, crash's fallback to CPU 0's idle task


def _panic_context(prog: drgn.Program) -> _Context:
    task = panic_task(prog)
    if task:
        return _Context(task, True)
    return _Context(idle_task(prog, 0), False)


#: The task fields when there is no crashed task to show (the live kernel, or a dump
#: whose task list cannot be read).
_NO_CONTEXT: dict = {"pid": None, "command": None, "task": None, "thread_info": None,
                     "same_pid_tasks": 0, "cpu": None, "state": None,
                     "panic_task_found": False}


def _context_fields(prog: drgn.Program, context: _Context, tasks: _TaskTable,
                    panic: str) -> dict:
    """PID, COMMAND, TASK, CPU and STATE of the task crash's banner shows."""
    task = context.task
    pid = task.pid.value_()
    return {
        "pid": pid,
        "command": one_line(task.comm.string_()),
        "task": task.value_(),
        "thread_info": task_thread_info(task).value_(),
        "same_pid_tasks": len(tasks.idle) if pid == 0 else 1,
        "cpu": task_cpu(task),
        "state": _state_with_role(prog, task, context, panic),
        "panic_task_found": context.found,
    }


def _state_with_role(prog: drgn.Program, task: drgn.Object, context: _Context,
                     panic: str) -> str:
    """The state, then what the task was doing on its CPU: crash marks the panic task
    (PANIC) or (SYSRQ), and any other task on a CPU (ACTIVE)."""
    state = task_state_string(prog, task)
    if context.found:
        return f"{state} ({'SYSRQ' if _sysrq_marked(prog, task, panic) else 'PANIC'})"
    if task_on_cpu(task):
        return f"{state} (ACTIVE)"
    return state


#: Frames to look through for the SysRq handler; the real ones come first.
_SYSRQ_FRAMES = 64


def _sysrq_marked(prog: drgn.Program, task: drgn.Object, panic: str) -> bool:
    """Whether crash says (SYSRQ) rather than (PANIC) for the panic task.

    crash does for an old-style "SysRq :" panic line, and when it finds the task's
    registers by scanning its stack and meets sysrq_handle_crash on the way: that is, a
    SysRq crash not captured by kdump (kdump's register notes, or a kexec frame reached
    first, end the scan). kdx reproduces both so the STATE lines agree.
    """
    if "SysRq :" in panic:
        return True
    try:
        # frame by frame, stopping at the first answer: naming frames costs DWARF
        # lookups, and the user-mode ones at the end would read every module's symbols
        for _, frame in zip(range(_SYSRQ_FRAMES), prog.stack_trace(task)):
            name = frame.name or ""
            if "kexec" in name:
                return False
            if name == "sysrq_handle_crash":
                return True
    except READ_ERRORS:
        pass
    return False


# --- task state -----------------------------------------------------------------------------

_STATE_WORDS = {
    "(running)": "RUNNING", "(sleeping)": "INTERRUPTIBLE", "(disk sleep)": "UNINTERRUPTIBLE",
    "(stopped)": "STOPPED", "(tracing stop)": "TRACED", "(zombie)": "ZOMBIE",
    "(dead)": "DEAD", "(wakekill)": "WAKEKILL", "(waking)": "WAKING", "(parked)": "PARKED",
}
#: How crash names each bit, in the order it prints them.
_STATE_NAMES = (
    ("INTERRUPTIBLE", "TASK_INTERRUPTIBLE"), ("UNINTERRUPTIBLE", "TASK_UNINTERRUPTIBLE"),
    ("STOPPED", "TASK_STOPPED"), ("TRACED", "TASK_TRACED"), ("DEAD", None),
    ("ZOMBIE", "EXIT_ZOMBIE"), ("WAKING", "TASK_WAKING"), ("WAKEKILL", "TASK_WAKEKILL"),
    ("NOLOAD", "TASK_NOLOAD"), ("NEW", "TASK_NEW"),
)


def task_state_bits(names: list[str]) -> dict[str, int]:
    """Bit values of the task states, read from the kernel's ``task_state_array``.

    The array lists the states /proc reports, one bit each after "running"; since Linux
    4.14 (when "I (idle)" joined it) the states /proc hides follow "parked" in a fixed
    order, which is how crash learns them too. Older kernels get only the listed bits.
    """
    bits: dict[str, int] = {}
    for i, name in enumerate(names):
        key = next((v for k, v in _STATE_WORDS.items() if k in name), None)
        if key:
            bits[key] = bits.get(key, 0) | (1 << (i - 1) if i else 0)
    parked = bits.get("PARKED")
    if parked and any("(idle)" in name for name in names):
        bits["DEAD"] = bits.get("DEAD", 0) | parked << 1
        for shift, key in enumerate(("WAKEKILL", "WAKING", "NOLOAD", "NEW"), start=2):
            bits[key] = parked << shift
    return bits


def format_task_state(state: int, bits: dict[str, int]) -> str:
    """crash's long form of a state word: TASK_RUNNING, or the set states joined by |."""
    if state == bits.get("RUNNING", 0):
        return "TASK_RUNNING"
    if "PARKED" in bits and state == bits["PARKED"]:
        return "TASK_PARKED"
    parts = []
    for key, name in _STATE_NAMES:
        value = bits.get(key, 0)
        if not value or not state & value:
            continue
        if key == "DEAD":
            name = "EXIT_DEAD|TASK_DEAD" if bin(state & value).count("1") > 1 else "EXIT_DEAD"
        parts.append(name)
    return "|".join(parts)


def task_state_string(prog: drgn.Program, task: drgn.Object) -> str:
    """The task's state as crash shows it: the raw state word with exit_state ORed in."""
    try:
        state = task.member_("__state").value_()  # renamed from "state" in Linux 5.14
    except LookupError:
        state = task.state.value_()
    names = [decode(s.string_()) for s in prog["task_state_array"]]
    return format_task_state(state | task.exit_state.value_(), task_state_bits(names))


