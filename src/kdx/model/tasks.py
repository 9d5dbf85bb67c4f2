"""The task table of a dump — what crash's ``ps`` lists — as plain records.

``TaskInfo`` holds one task the way crash's task table sees it: PID, parent, CPU, the
two-letter state, memory use, command name, and the flags ``ps`` filters on. ``task_list``
builds every record, in crash's order (by PID; the idle tasks, one per CPU, first), by
crash's rules (task.c refresh_*_task_table, show_ps_data, task_state_string; memory.c
get_task_mem_usage), because users compare the two tools line by line.

It has to be fast: a busy server has thousands of tasks, and ``ps`` is the first command
anyone runs. So the layout of ``struct task_struct`` is resolved once per program, each
task is read with a single memory read and decoded with one ``struct`` unpack, memory
use is computed once per ``mm_struct`` (threads share it), and the machine-wide values
(total RAM, per-CPU offsets, state bits) are read once.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from typing import Callable, Iterable, Sequence

import drgn
from drgn.helpers.linux.cpumask import for_each_possible_cpu, for_each_present_cpu
from drgn.helpers.linux.mm import virt_to_phys
from drgn.helpers.linux.panic import panic_task
from drgn.helpers.linux.pid import for_each_task
from drgn.helpers.linux.sched import cpu_curr, idle_task, task_cpu

from kdx.model.reading import READ_ERRORS
from kdx.model.records import Hex
from kdx.model.system import task_state_bits
from kdx.textsafe import decode, one_line

#: task_struct.flags bits crash tests (include/linux/sched.h).
PF_EXITING = 0x00000004
PF_KTHREAD = 0x00200000


@dataclass(frozen=True)
class TaskInfo:
    """One task as crash's ``ps`` shows it, plus what its options filter and sort on."""

    pid: int
    ppid: int
    cpu: int
    task: Hex  # task_struct address
    state: str  # crash's two-letter code: RU IN UN ZO ST TR DE SW WA PA ID NE (?? unknown)
    state_value: int  # the raw state word with exit_state ORed in, as crash reads it
    mem_percent: float  # RSS over the pages below high_memory, in percent
    vsz_kib: int
    rss_kib: int
    comm: str  # cleaned of terminal control sequences
    kernel_thread: bool  # PF_KTHREAD: crash shows the name in brackets
    active: bool  # running on a CPU when the dump was taken: crash's ">" marker
    tgid: int
    group_leader: bool  # pid == tgid
    parent: Hex  # task_struct address of task->parent (what crash's PPID follows)
    mm: Hex  # mm_struct address, 0 for kernel threads
    policy: int | None  # scheduling policy (0 NORMAL, 1 FIFO, 2 RR, 3 BATCH, 5 IDLE, ...)
    prio: int | None
    start_time: int | None  # nanoseconds since boot
    last_run: int | None  # sched_info.last_arrival: crash's "last run" timestamp (ns)
    utime: int | None  # cumulative user time (ns)
    stime: int | None  # cumulative system time (ns)


# --- crash's state codes --------------------------------------------------------------------


def state_code(state: int, bits: dict[str, int]) -> str:
    """crash's two-letter state for a state word (task_state_string, short form).

    The tests run in crash's order and the last one that matches wins, so a killable
    sleep (UNINTERRUPTIBLE|WAKEKILL) is UN, an idle kworker (UNINTERRUPTIBLE|NOLOAD) is
    ID, and a zombie whose state also says TASK_DEAD stays ZO.
    """
    code = "??"
    matched = False

    def has(key: str) -> bool:
        return bool(bits.get(key)) and bool(state & bits[key])

    if state == bits.get("RUNNING", 0):
        code = "RU"
    if has("INTERRUPTIBLE"):
        code, matched = "IN", True
    if has("UNINTERRUPTIBLE"):
        code, matched = ("ID" if has("NOLOAD") else "UN"), True
    if has("ZOMBIE"):
        code, matched = "ZO", True
    if has("STOPPED"):
        code, matched = "ST", True
    if has("TRACED"):
        code, matched = "TR", True
    if has("DEAD") and not matched:
        code = "DE"
    for key, name in (("PARKED", "PA"), ("WAKING", "WA"), ("NEW", "NE")):
        if bits.get(key) and state == bits[key]:
            code = name
    return code


def read_state_bits(prog: drgn.Program) -> dict[str, int]:
    """The kernel's task state bits, learned from ``task_state_array`` as crash does."""
    return task_state_bits([decode(s.string_()) for s in prog["task_state_array"]])


# --- the layout of task_struct and mm_struct ------------------------------------------------


@dataclass(frozen=True)
class _Field:
    key: str
    offset: int
    fmt: str  # struct format character, or "Ns" for a byte string
    count: int  # array elements (1 for scalars)


def _resolve(type_: drgn.Type, designator: str) -> tuple[int, drgn.Type] | None:
    """Offset and type of ``a.b.c`` inside ``type_``, or None if a member is missing."""
    offset = 0
    for name in designator.split("."):
        type_ = type_.unaliased()
        if type_.kind not in (drgn.TypeKind.STRUCT, drgn.TypeKind.UNION):
            return None
        try:
            offset += drgn.offsetof(type_, name)
            member = type_.member(name)
        except LookupError:
            return None
        type_ = member.type
    return offset, type_


def _scalar(type_: drgn.Type) -> drgn.Type | None:
    """The integer or pointer type inside ``type_`` (atomic_long_t is a struct of one)."""
    type_ = type_.unaliased()
    while type_.kind == drgn.TypeKind.STRUCT and len(type_.members) == 1:
        type_ = type_.members[0].type.unaliased()
    if type_.kind in (drgn.TypeKind.INT, drgn.TypeKind.BOOL, drgn.TypeKind.ENUM,
                      drgn.TypeKind.POINTER):
        return type_
    return None


_FORMATS = {1: "b", 2: "h", 4: "i", 8: "q"}


def _format(type_: drgn.Type) -> str | None:
    char = _FORMATS.get(type_.size or 0)
    if char is None:
        return None
    signed = type_.kind in (drgn.TypeKind.INT, drgn.TypeKind.ENUM) and type_.is_signed
    return char if signed else char.upper()


def _field(type_: drgn.Type, key: str, *designators: str) -> _Field | None:
    """The first of ``designators`` that exists, as a field to unpack."""
    for designator in designators:
        found = _resolve(type_, designator)
        if found is None:
            continue
        offset, member = found
        unaliased = member.unaliased()
        if unaliased.kind == drgn.TypeKind.ARRAY:
            element = unaliased.type.unaliased()
            length = unaliased.length or 0
            if element.kind == drgn.TypeKind.INT and element.size == 1:
                return _Field(key, offset, f"{length}s", 1)
            scalar = _scalar(element)
            fmt = _format(scalar) if scalar is not None else None
            # Array of one-member structs (atomic_long_t): the scalar sits at offset 0.
            if fmt is not None and element.size == scalar.size:
                return _Field(key, offset, fmt, length)
            continue
        scalar = _scalar(member)
        fmt = _format(scalar) if scalar is not None else None
        if fmt is not None:
            return _Field(key, offset, fmt, 1)
    return None


class _Record:
    """The fields of a structure that a table needs, decoded with one read and one unpack.

    Going through drgn objects costs about a microsecond per member; reading the span of
    the wanted members at once and unpacking it with a precompiled ``struct`` costs about
    as much for the whole task, which is what makes ``ps`` on thousands of tasks quick.
    Fields the kernel lacks (``None``) are simply absent from the result.
    """

    def __init__(self, prog: drgn.Program, fields: Iterable[_Field | None]) -> None:
        present = sorted((f for f in fields if f is not None), key=lambda f: f.offset)
        order = "<" if prog.platform.flags & drgn.PlatformFlags.IS_LITTLE_ENDIAN else ">"
        parts: list[str] = []
        self.slices: dict[str, tuple[int, int]] = {}
        index = 0
        self.start = present[0].offset if present else 0
        position = self.start
        for f in present:
            if f.offset < position:  # overlapping members (unions): keep the first
                continue
            parts.append(f"{f.offset - position}x" if f.offset > position else "")
            width = struct.calcsize(order + (f.fmt if "s" in f.fmt else f.fmt * f.count))
            parts.append(f.fmt if "s" in f.fmt else f.fmt * f.count)
            items = 1 if "s" in f.fmt else f.count
            self.slices[f.key] = (index, items)
            index += items
            position = f.offset + width
        self.struct = struct.Struct(order + "".join(parts))
        self.size = self.struct.size

    def __contains__(self, key: str) -> bool:
        return key in self.slices

    def read(self, prog: drgn.Program, address: int) -> dict[str, object]:
        values = self.struct.unpack(prog.read(address + self.start, self.size))
        out: dict[str, object] = {}
        for key, (index, items) in self.slices.items():
            out[key] = values[index] if items == 1 else values[index:index + items]
        return out


@dataclass
class _Layouts:
    """Where the values ps needs live in this kernel's task_struct and mm_struct."""

    task: _Record
    mm: _Record
    percpu_rss: list[tuple[int, int]]  # (count, counters) offsets of the counters summed
    rss_items: list[int]  # indexes of the RSS counters crash adds up: file, anon, shmem
    byte_order: str


def _rss_items(prog: drgn.Program) -> list[int]:
    """The RSS counters crash adds: file and anon pages, and shmem pages where the kernel
    counts them (since 4.5). Swap entries are not resident and are left out."""
    items = []
    for name in ("MM_FILEPAGES", "MM_ANONPAGES", "MM_SHMEMPAGES"):
        try:
            items.append(prog.constant(name).value_())
        except LookupError:
            continue
    return items


def _percpu_counters(mm: drgn.Type, items: list[int]) -> list[tuple[int, int]]:
    """Offsets of ``rss_stat[i].count`` and ``.counters`` when the mm's RSS counters are
    percpu_counters (Linux 6.2+), else an empty list."""
    found = _resolve(mm, "rss_stat")
    if found is None or found[1].unaliased().kind != drgn.TypeKind.ARRAY:
        return []
    counter = found[1].unaliased().type
    count, counters = _resolve(counter, "count"), _resolve(counter, "counters")
    if count is None or counters is None:
        return []
    size = counter.size or 0
    return [(found[0] + i * size + count[0], found[0] + i * size + counters[0])
            for i in items]


def _layouts(prog: drgn.Program) -> _Layouts:
    task = prog.type("struct task_struct")
    mm = prog.type("struct mm_struct")
    task_record = _Record(prog, [
        _field(task, "state", "__state", "state"),
        _field(task, "exit_state", "exit_state"),
        _field(task, "flags", "flags"),
        _field(task, "pid", "pid"),
        _field(task, "tgid", "tgid"),
        _field(task, "cpu", "cpu", "thread_info.cpu"),
        _field(task, "parent", "parent", "p_pptr"),
        _field(task, "mm", "mm"),
        _field(task, "comm", "comm"),
        _field(task, "policy", "policy"),
        _field(task, "prio", "prio"),
        _field(task, "start_time", "start_time"),
        _field(task, "last_run", "sched_info.last_arrival"),
        _field(task, "utime", "utime"),
        _field(task, "stime", "stime"),
        _field(task, "rss_cache", "rss_stat.count"),
    ])
    items = _rss_items(prog)
    percpu = _percpu_counters(mm, items)
    mm_fields = [_field(mm, "total_vm", "total_vm"), _field(mm, "mm_count", "mm_count")]
    if not percpu:
        mm_fields += [_field(mm, "rss", "rss_stat.count", "_rss", "rss"),
                      _field(mm, "anon_rss", "_anon_rss"), _field(mm, "file_rss", "_file_rss")]
    order = "little" if prog.platform.flags & drgn.PlatformFlags.IS_LITTLE_ENDIAN else "big"
    return _Layouts(task_record, _Record(prog, mm_fields), percpu, items, order)


# --- machine-wide values -----------------------------------------------------------------------


@dataclass(frozen=True)
class _Machine:
    page_size: int
    total_pages: int
    cpus: list[int]
    per_cpu_offsets: list[int]
    bits: dict[str, int]
    active: frozenset[int]


def _total_pages(prog: drgn.Program, page_size: int) -> int:
    """crash's memory base for %MEM: the pages below high_memory (not totalram_pages)."""
    try:
        return virt_to_phys(prog, prog["high_memory"]).value_() // page_size
    except READ_ERRORS:
        from drgn.helpers.linux.mm import totalram_pages

        return totalram_pages(prog)


def _per_cpu_offsets(prog: drgn.Program, cpus: Sequence[int]) -> list[int]:
    try:
        offsets = prog["__per_cpu_offset"]
    except KeyError:
        return [0 for _ in cpus]
    return [offsets[cpu].value_() for cpu in cpus]


def panic_task_address(prog: drgn.Program) -> int:
    """The panicking task's address, 0 when there is none (live kernel, no crash)."""
    try:
        return panic_task(prog).value_()
    except READ_ERRORS:
        return 0


def active_task(prog: drgn.Program, cpu: int) -> drgn.Object:
    """The task ``cpu`` was running (its runqueue's ``curr``); raises READ_ERRORS."""
    return cpu_curr(prog, cpu)


def active_tasks(prog: drgn.Program, cpus: Sequence[int] | None = None) -> dict[int, int]:
    """CPU -> the task each CPU was running (its runqueue's ``curr``): crash's active
    set, which with the panic task makes the tasks ``ps`` marks with ``>``."""
    cpus = crash_cpus(prog) if cpus is None else cpus
    active: dict[int, int] = {}
    for cpu in cpus:
        try:
            active[cpu] = active_task(prog, cpu).value_()
        except READ_ERRORS:
            continue
    return active


def _machine(prog: drgn.Program) -> _Machine:
    page_size = prog["PAGE_SIZE"].value_()
    cpus = crash_cpus(prog)
    panic = panic_task_address(prog)
    active = set(active_tasks(prog, cpus).values()) | ({panic} if panic else set())
    return _Machine(page_size, _total_pages(prog, page_size), cpus,
                    _per_cpu_offsets(prog, cpus), read_state_bits(prog),
                    frozenset(active))


# --- crash's task table order: the one definition every command uses ----------------------


def crash_cpus(prog: drgn.Program) -> list[int]:
    """The CPUs crash knows on x86_64: every possible CPU up to the highest present one.

    crash sizes its per-CPU tables by the highest present CPU (when fewer CPUs are present
    than have per-CPU areas), so this is the set whose idle tasks ``ps`` lists, whose
    active tasks ``bt -a`` shows and what ``a``/``all`` means in a CPU list. A possible
    CPU above the highest present one has no idle task in crash's table.
    """
    highest = max(for_each_present_cpu(prog), default=0)
    return [cpu for cpu in for_each_possible_cpu(prog) if cpu <= highest]


def idle_tasks(prog: drgn.Program, cpus: Sequence[int] | None = None) -> list[drgn.Object]:
    """The idle task of each of crash's CPUs, in CPU order (what PID 0 names); a CPU
    whose runqueue cannot be read is left out."""
    out = []
    for cpu in crash_cpus(prog) if cpus is None else cpus:
        try:
            task = idle_task(prog, cpu)
            if task.value_():
                out.append(task)
        except READ_ERRORS:
            continue
    return out


def task_addresses(prog: drgn.Program, cpus: Sequence[int] | None = None,
                   warn: Callable[[str], None] | None = None) -> list[int]:
    """crash's task table, unsorted: each CPU's idle task, then every task that owns a PID
    in the initial namespace (threads included; a zombie whose PID is gone is not).

    A damaged or filtered dump may lose part of the PID table: the tasks are then also
    looked for on the task list, on the runqueues (each CPU's ``curr``) and as the panic
    task, so that one lost page does not hide every task behind it; ``warn`` is told so,
    and where the task list ended, since threads and tasks beyond that end are lost."""
    seen: dict[int, None] = {t.value_(): None for t in idle_tasks(prog, cpus)}
    try:
        for task in for_each_task(prog):
            seen.setdefault(task.value_(), None)
        return list(seen)
    except READ_ERRORS as err:  # the PID table is damaged: every other route adds
        if warn is not None:
            warn(f"the PID table cannot be read ({unreadable_reason(err)}): tasks were "
                 "looked for on the task list, the runqueues and as the panic task "
                 "(threads other than a process's first are not on the task list)")
    for address in _other_routes(prog, cpus, warn):
        seen.setdefault(address, None)
    return list(seen)


def _other_routes(prog: drgn.Program, cpus: Sequence[int] | None,
                  warn: Callable[[str], None] | None = None) -> list[int]:
    """Tasks found off the PID table: the task list (bounded), each CPU's running task
    and the panic task."""
    from kdx.model.bounded import ListLoopError, list_for_each_entry

    found: list[int] = []
    try:
        for task in list_for_each_entry("struct task_struct",
                                        prog["init_task"].tasks.address_of_(), "tasks",
                                        what="task list"):
            found.append(task.value_())
    except READ_ERRORS as err:  # ends at the first lost or looping link; what was read counts
        if warn is not None and isinstance(err, ListLoopError):
            warn(f"the task list was read up to its loop ({len(found)} tasks): {err}")
        elif warn is not None:
            warn(f"the task list ends after {len(found)} tasks at a link that cannot be "
                 f"followed ({unreadable_reason(err)})")
    found += active_tasks(prog, cpus).values()
    panic = panic_task_address(prog)
    return found + ([panic] if panic else [])


def unreadable_reason(err: Exception) -> str:
    """Why a task (or any object) could not be read, in a few words for a warning."""
    text = str(err)
    if "Excluded page" in text or "excluded" in text.lower():
        return "page excluded from the dump"
    if isinstance(err, drgn.FaultError):
        return "page missing from the dump"
    return "damaged data"


def unreadable_summary(counts: dict[str, int], what: str = "tasks") -> str:
    """One warning line for every object of a kind that could not be read, by reason."""
    total = sum(counts.values())
    reasons = ", ".join(f"{n} {reason}" if len(counts) > 1 else reason
                        for reason, n in sorted(counts.items()))
    noun = what if total != 1 else what.rstrip("s")
    return f"{total} {noun} could not be read ({reasons})"


def all_tasks(prog: drgn.Program) -> list[drgn.Object]:
    """crash's task table in crash's order (the order of ``ps``, ``foreach`` and
    ``bt -g``): the idle tasks by CPU, then every other task by PID. A task whose PID
    cannot be read (a page missing from the dump) is left out."""
    idle = idle_tasks(prog)
    idle_set = {t.value_() for t in idle}
    keyed = []
    for address in task_addresses(prog):
        if address in idle_set:
            continue
        task = drgn.Object(prog, "struct task_struct *", address)
        try:
            pid = task.pid.value_()
        except READ_ERRORS:
            continue
        if pid:
            keyed.append(((pid, address), task))
    return idle + [task for _key, task in sorted(keyed, key=lambda k: k[0])]


class _MemoryUse:
    """RSS and VSZ per crash's get_task_mem_usage, computed once per mm and thread group."""

    def __init__(self, prog: drgn.Program, layouts: _Layouts, machine: _Machine,
                 raw: dict[int, dict]) -> None:
        self.prog, self.layouts, self.machine = prog, layouts, machine
        self.mms: dict[int, tuple[int, int, int] | None] = {}
        self.group_cache: dict[int, int] = {}
        if "rss_cache" in layouts.task:
            # SPLIT_RSS_COUNTING (before 6.2): each thread caches counts not yet folded
            # into the mm; crash adds the positive ones of every thread in the group.
            for values in raw.values():
                cached = values["rss_cache"]
                total = sum(max(cached[i], 0) for i in layouts.rss_items if i < len(cached))
                self.group_cache[values["tgid"]] = self.group_cache.get(values["tgid"], 0) \
                    + total

    def _percpu_sum(self, count_addr: int, counters_addr: int) -> int:
        """percpu_counter_sum_positive over crash's CPUs (offline ones too: a dump's
        stopped CPUs are offline, but their counts are real)."""
        prog, order = self.prog, self.layouts.byte_order
        count = int.from_bytes(prog.read(count_addr, 8), order, signed=True)
        counters = prog.read_word(counters_addr)
        for offset in self.machine.per_cpu_offsets:
            count += int.from_bytes(prog.read(counters + offset, 4), order, signed=True)
        return max(count, 0)

    def mm_values(self, mm: int) -> tuple[int, int, int] | None:
        """(total_vm, mm_count, rss pages from the mm) for one mm, read once."""
        if mm in self.mms:
            return self.mms[mm]
        try:
            values = self.layouts.mm.read(self.prog, mm)
            if self.layouts.percpu_rss:
                rss = sum(self._percpu_sum(mm + a, mm + b)
                          for a, b in self.layouts.percpu_rss)
            else:
                counts = values.get("rss", ())
                if isinstance(counts, tuple):
                    rss = sum(max(counts[i], 0) for i in self.layouts.rss_items
                              if i < len(counts))
                else:
                    rss = int(counts or 0)
                rss += int(values.get("anon_rss", 0) or 0) + int(values.get("file_rss", 0) or 0)
            result = (int(values.get("total_vm", 0)), int(values.get("mm_count", 1)), rss)
        except READ_ERRORS:
            result = None
        self.mms[mm] = result
        return result

    def of(self, values: dict, kernel_thread: bool) -> tuple[float, int, int]:
        """(%MEM, VSZ KiB, RSS KiB) of one task."""
        mm = values["mm"]
        zombie = values["state_word"] & self.machine.bits.get("ZOMBIE", 0)
        if zombie or not mm:
            return 0.0, 0, 0
        found = self.mm_values(mm)
        if found is None:
            return 0.0, 0, 0
        total_vm, mm_count, rss = found
        if values["flags"] & PF_EXITING and mm_count <= 0:
            return 0.0, 0, 0
        rss += self.group_cache.get(values["tgid"], 0)
        page = self.machine.page_size
        vsz, rss_kib = total_vm * page // 1024, rss * page // 1024
        if kernel_thread and not rss:
            return 0.0, vsz, 0
        percent = rss * 100 / self.machine.total_pages if self.machine.total_pages else 0.0
        return percent, vsz, rss_kib


def _read_tasks(prog: drgn.Program, layouts: _Layouts, addresses: Iterable[int],
                warn: Callable[[str], None]) -> dict[int, dict]:
    """Each task's fields, read with one memory read per task."""
    raw: dict[int, dict] = {}
    record = layouts.task
    lost: dict[str, int] = {}
    for address in addresses:
        try:
            values = record.read(prog, address)
        except READ_ERRORS as err:
            reason = unreadable_reason(err)
            lost[reason] = lost.get(reason, 0) + 1
            continue
        if "cpu" not in values:
            try:
                values["cpu"] = task_cpu(drgn.Object(prog, "struct task_struct *", address))
            except READ_ERRORS:
                values["cpu"] = 0
        values["state_word"] = int(values.get("state", 0)) | int(values.get("exit_state", 0))
        raw[address] = values
    if lost:
        warn(unreadable_summary(lost))
    return raw


def task_list(prog: drgn.Program, warnings: list[str] | None = None) -> list[TaskInfo]:
    """Every task of crash's task table, sorted as crash sorts it: by PID, and the idle
    tasks (all PID 0) by CPU. Tasks that cannot be read are left out, with a warning
    appended to ``warnings``."""
    warn = warnings.append if warnings is not None else (lambda _msg: None)
    layouts = _layouts(prog)
    machine = _machine(prog)
    raw = _read_tasks(prog, layouts, task_addresses(prog, machine.cpus, warn), warn)
    pids = {address: int(values["pid"]) for address, values in raw.items()}
    memory = _MemoryUse(prog, layouts, machine, raw)
    codes: dict[int, str] = {}  # few distinct state words: decode each once
    tasks = [_task_info(prog, address, values, pids, memory, machine, codes)
             for address, values in raw.items()]
    tasks.sort(key=lambda t: (t.pid, t.cpu if t.pid == 0 else 0))
    return tasks


def _parent_pid(prog: drgn.Program, parent: int, pids: dict[int, int]) -> int:
    if parent in pids:
        return pids[parent]
    try:
        return drgn.Object(prog, "struct task_struct *", parent).pid.value_()
    except READ_ERRORS:
        return -1


def _task_info(prog: drgn.Program, address: int, values: dict, pids: dict[int, int],
               memory: _MemoryUse, machine: _Machine, codes: dict[int, str]) -> TaskInfo:
    flags = int(values["flags"])
    kernel_thread = bool(flags & PF_KTHREAD)
    percent, vsz, rss = memory.of(values, kernel_thread)
    pid, tgid = int(values["pid"]), int(values["tgid"])
    comm = values["comm"]
    word = values["state_word"]
    if word not in codes:
        codes[word] = state_code(word, machine.bits)
    get = values.get
    return TaskInfo(
        pid=pid,
        ppid=_parent_pid(prog, int(values["parent"]), pids),
        cpu=int(values["cpu"]),
        task=address,
        state=codes[word],
        state_value=word,
        mem_percent=percent,
        vsz_kib=vsz,
        rss_kib=rss,
        comm=one_line(comm.split(b"\0", 1)[0]) if isinstance(comm, bytes) else "",
        kernel_thread=kernel_thread,
        active=address in machine.active,
        tgid=tgid,
        group_leader=pid == tgid,
        parent=int(values["parent"]),
        mm=int(values["mm"]),
        policy=get("policy"),
        prio=get("prio"),
        start_time=get("start_time"),
        last_run=get("last_run"),
        utime=get("utime"),
        stime=get("stime"),
    )


# --- what the other views of a task need ------------------------------------------------------


@dataclass(frozen=True)
class TaskContext:
    """The current context as ``set`` shows it (crash's show_context)."""

    pid: int
    command: str
    task: Hex
    thread_info: Hex
    same_pid_tasks: int  # how many tasks share the PID: crash's "(1 of N)" for PID 0
    cpu: int
    state: str  # e.g. "TASK_RUNNING (PANIC)"


def task_context(prog: drgn.Program, info: TaskInfo, tasks: Sequence[TaskInfo],
                 panic_state: str | None = None) -> TaskContext:
    """The context block of ``info``. ``panic_state`` is the panic task's state as the
    system summary words it (with "(PANIC)" or "(SYSRQ)"); other tasks get their state
    and "(ACTIVE)" when they were on a CPU."""
    from drgn.helpers.linux.sched import task_thread_info

    from kdx.model.system import task_state_string

    task = drgn.Object(prog, "struct task_struct *", info.task)
    if panic_state is not None and info.task == panic_task_address(prog):
        state = panic_state
    else:
        state = task_state_string(prog, task) + (" (ACTIVE)" if info.active else "")
    try:
        thread_info = task_thread_info(task).value_()
    except READ_ERRORS:
        thread_info = info.task
    return TaskContext(info.pid, info.comm, info.task, thread_info,
                       sum(1 for t in tasks if t.pid == info.pid), info.cpu, state)


@dataclass(frozen=True)
class TaskTimes:
    """``ps -t``: how long a task has existed and the CPU time it used."""

    pid: int
    task: Hex
    run_seconds: int | None  # whole seconds since the task started; None without uptime
    start_time: int  # nanoseconds since boot
    utime: int  # nanoseconds
    stime: int


def task_times(info: TaskInfo, uptime_seconds: float | None) -> TaskTimes:
    """crash's rule: the run time counts whole seconds, the start time rounded down."""
    start = info.start_time or 0
    run = None
    if uptime_seconds is not None:
        run = max(int(uptime_seconds) - start // 1_000_000_000, 0)
    return TaskTimes(info.pid, info.task, run, start, info.utime or 0, info.stime or 0)


@dataclass(frozen=True)
class TaskRlimit:
    name: str
    current: Hex | None  # None: unlimited
    maximum: Hex | None


def task_rlimit_list(prog: drgn.Program, info: TaskInfo) -> list[TaskRlimit]:
    """The task's resource limits, in the kernel's RLIMIT_* order."""
    from drgn.helpers.linux.resource import task_rlimits

    limits = task_rlimits(drgn.Object(prog, "struct task_struct *", info.task))
    return [TaskRlimit(name, limit.cur, limit.max) for name, limit in limits.items()]


@dataclass(frozen=True)
class TaskArgs:
    """``ps -a``: a user task's command line and environment, or why they are missing
    (kernel threads have none; dumps usually exclude user pages)."""

    pid: int
    task: Hex
    arguments: list[str] | None
    environment: list[str] | None
    error: str | None


def task_args(prog: drgn.Program, info: TaskInfo) -> TaskArgs:
    from drgn.helpers.linux.mm import mm_cmdline, mm_environ

    start = 0
    if not info.mm:
        return TaskArgs(info.pid, info.task, None, None, "no user stack")
    mm = drgn.Object(prog, "struct mm_struct *", info.mm)
    try:
        # crash names the user address it could not reach; drgn's fault names the
        # page-table entry, so report the start of the area being read instead.
        start = mm.arg_start.value_()
        arguments = [decode(a) for a in mm_cmdline(mm)]
        start = mm.env_start.value_()
        environment = [decode(e) for e in mm_environ(mm)]
    except drgn.FaultError:
        return TaskArgs(info.pid, info.task, None, None,
                        f"cannot access user stack address: {start:x}")
    except (NotImplementedError, *READ_ERRORS) as err:
        return TaskArgs(info.pid, info.task, None, None, f"cannot read the user stack: {err}")
    return TaskArgs(info.pid, info.task, arguments, environment, None)


def kernel_stack_pointer(prog: drgn.Program, info: TaskInfo) -> int | None:
    """The stack pointer saved when the task last left its CPU (crash's KSTACKP); None for
    a task that was on a CPU, whose saved value is stale."""
    if info.active:
        return None
    task = drgn.Object(prog, "struct task_struct *", info.task)
    for designator in ("thread.sp", "thread.ksp", "thread.cpu_context.sp"):
        try:
            return _member_path(task, designator).value_()
        except READ_ERRORS:
            continue
    return None


def _member_path(obj: drgn.Object, designator: str) -> drgn.Object:
    for name in designator.split("."):
        obj = obj.member_(name)
    return obj


def run_queue_clocks(prog: drgn.Program, cpus: Sequence[int] | None = None) -> dict[int, int]:
    """Each CPU's runqueue clock (ns), what crash measures ``ps -m`` ages against."""
    from drgn.helpers.linux.sched import cpu_rq

    clocks = {}
    for cpu in crash_cpus(prog) if cpus is None else cpus:
        try:
            clocks[cpu] = cpu_rq(prog, cpu).clock.value_()
        except READ_ERRORS:
            continue
    return clocks
