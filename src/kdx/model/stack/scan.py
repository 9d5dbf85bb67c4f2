"""Kernel stack traces as data: the frames crash's ``bt`` shows, and what lies between them.

drgn does the unwinding (ORC and DWARF CFI); this module turns its frames into the
backtrace a crash user reads, and fills the gaps drgn leaves on real dumps:

- **Where an active task starts.** A kdump dump saves, for each CPU, the registers of the
  interrupted context: for an oops, the faulting instruction; for the other CPUs, what
  they ran when the NMI stopped them. crash instead starts at the kdump path itself
  (``machine_kexec``, ``crash_nmi_callback``) found on the stack, so the first frames say
  how the dump was taken. kdx finds the same return address and lets drgn unwind from it,
  and keeps the result only if it joins the trace from the saved registers.
- **Modules without debug info.** drgn cannot unwind through them and stops after a bogus
  frame. kdx names their functions from the module's in-memory kallsyms and steps over
  them with the module's ORC table (also in memory), or, failing that, by finding the
  next return address on the stack as crash does; drgn then carries on.
- **Exception frames.** drgn gives the registers of an interrupted frame; crash shows the
  whole ``pt_regs`` (with ``ORIG_RAX``), found on the stack next to the entry frame.
- **The user-mode boundary.** drgn may unwind into user space and beyond (garbage frames
  down to 0x0); the trace ends at the first user-mode frame, whose registers become the
  user-mode exception frame crash prints last.

Around the trace: crash's other views of a stack -- the text addresses on it (``-t``),
exception frames found by search (``-e``/``-E``), the words named (``-F``), the raw
stack (``-r``), a trace from a chosen stack address (``-S``/``-I``), whether a trace
references something (``-R``) and the stack-end magic check (``-v``).

Records hold plain values (addresses as ints) so they serve text, JSON and storage alike;
text from the dump (command names) is cleaned here.
"""

from __future__ import annotations

import bisect
import struct
from dataclasses import dataclass, field, replace
from typing import Iterator, Sequence

import drgn
from drgn.helpers.linux.panic import panic_task
from drgn.helpers.linux.percpu import per_cpu
from drgn.helpers.linux.sched import cpu_curr, task_cpu

from kdx.model.names import AddressName, AddressNamer, address_namer
from kdx.model.reading import READ_ERRORS
from kdx.model.records import Hex
from kdx.textsafe import decode

#: Kernel addresses have the top bit set on x86_64; anything below is user space.
_KERNEL_START = 1 << 63
#: Frames beyond this many are a runaway unwind, not a stack.
_MAX_FRAMES = 256
#: How far past an entry frame's stack pointer a ``pt_regs`` is looked for.
_PT_REGS_SEARCH = 0x200
#: The register order of crash's exception frame block.
REGISTER_NAMES = ("RIP", "RSP", "RFLAGS", "RAX", "RBX", "RCX", "RDX", "RSI", "RDI", "RBP",
                  "R8", "R9", "R10", "R11", "R12", "R13", "R14", "R15", "ORIG_RAX", "CS",
                  "SS")
#: crash's register names and the kernel's ``struct pt_regs`` members.
_PT_REGS_MEMBERS = {"RIP": "ip", "RSP": "sp", "RFLAGS": "flags", "RAX": "ax", "RBX": "bx",
                    "RCX": "cx", "RDX": "dx", "RSI": "si", "RDI": "di", "RBP": "bp",
                    "R8": "r8", "R9": "r9", "R10": "r10", "R11": "r11", "R12": "r12",
                    "R13": "r13", "R14": "r14", "R15": "r15", "ORIG_RAX": "orig_ax",
                    "CS": "cs", "SS": "ss"}
#: crash's register names and drgn's.
_DRGN_REGISTERS = {"RIP": "rip", "RSP": "rsp", "RFLAGS": "rflags", "RAX": "rax",
                   "RBX": "rbx", "RCX": "rcx", "RDX": "rdx", "RSI": "rsi", "RDI": "rdi",
                   "RBP": "rbp", "R8": "r8", "R9": "r9", "R10": "r10", "R11": "r11",
                   "R12": "r12", "R13": "r13", "R14": "r14", "R15": "r15", "CS": "cs",
                   "SS": "ss"}
#: x86_64 exception stacks by TSS IST slot, named as crash names them, with the member
#: of ``struct cea_exception_stacks`` that sizes each.
_IST_STACKS = (("DOUBLEFAULT", "DF_stack"), ("NMI", "NMI_stack"), ("DEBUG", "DB_stack"),
               ("MCE", "MCE_stack"), ("VC", "VC_stack"))
#: Return addresses crash starts an active task at, on a kdump dump: the panic task's
#: kexec call, and the NMI handler that stopped the other CPUs.
_PANIC_START = ("machine_kexec", "crash_kexec")
_NMI_START = ("crash_nmi_callback",)


# --- records ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Frame:
    """One frame, innermost first. Physical frames carry crash's ``#N`` level; the
    functions inlined into them (``inline``) come just before them with the same level.
    A frame interrupted by an exception (``is_exception_frame``) is shown by crash as an
    exception frame block, so it has no level unless its ``pt_regs`` lie on an exception
    stack (NMI...), where crash prints both."""

    level: int | None
    sp: Hex  # crash's [...] column: where the return address lies, or the interrupted SP
    pc: Hex  # the return address, or the interrupted instruction
    function: str | None  # the symbol as crash names it (inline frames: the DWARF name)
    offset: int | None  # from the symbol's start to ``pc``
    module: str | None  # None for the kernel itself
    source_file: str | None
    source_line: int | None
    inline: bool
    is_exception_frame: bool
    stack: str  # "task", "irq", an exception stack ("NMI"...) or "unknown"
    data: list[Hex] | None = None  # bt -f: the words from sp+8 to the next frame's sp


@dataclass(frozen=True)
class ExceptionFrame:
    """A ``pt_regs`` crash prints as a register block: an exception or interrupt taken in
    kernel mode (``position`` is the index of the interrupted frame in ``frames``), or
    the user-mode entry at the bottom (``position == len(frames)``)."""

    position: int
    address: Hex | None  # where the pt_regs lie; None when only the dump's notes had them
    user_mode: bool
    stack: str
    function: str | None  # the exception RIP's symbol
    offset: int | None
    module: str | None
    source_file: str | None
    source_line: int | None
    registers: dict[str, Hex | None]  # crash's names: RIP ... ORIG_RAX CS SS


@dataclass(frozen=True)
class Backtrace:
    """One task's stack as crash's ``bt`` prints it."""

    pid: int
    task: Hex
    cpu: int
    comm: str
    active: bool  # running on its CPU when the dump was taken
    panic: bool
    start: str  # "kdump" or "nmi" (crash's starting frames found), "registers" (the
    # dump's saved registers), "scheduled" (a sleeping task's saved context), "active"
    # (running on a live system: no trace), "none", "skipped" (bt -n idle: an idle task
    # the crash NMI stopped, shown by its header alone)
    frames: list[Frame]
    exception_frames: list[ExceptionFrame]
    warnings: list[str] = field(default_factory=list)

    def numbered(self) -> list[Frame]:
        """The frames crash numbers, in order."""
        return [f for f in self.frames if f.level is not None and not f.inline]


@dataclass(frozen=True)
class StackWord:
    """A stack word holding a kernel text address (``bt -t``/``-T``)."""

    address: Hex
    value: Hex
    function: str
    offset: int
    module: str | None
    stack: str  # "task", "irq" or an exception stack name
    exception: ExceptionFrame | None = None  # registers crash prints after this word


@dataclass(frozen=True)
class StackText:
    """The text addresses on a task's stack, as ``bt -t`` lists them."""

    pid: int
    task: Hex
    cpu: int
    comm: str
    start_function: str | None  # -t: where the scan starts (crash's START line)
    start_pc: Hex | None
    words: list[StackWord]
    user_frame: ExceptionFrame | None


@dataclass(frozen=True)
class FoundExceptionFrame:
    """A ``pt_regs`` found by searching a stack (``bt -e``/``-E``)."""

    address: Hex
    user_mode: bool
    function: str | None
    offset: int | None
    registers: dict[str, Hex | None]


@dataclass(frozen=True)
class StackSearch:
    """The exception frames found on one stack."""

    cpu: int | None  # the CPU whose stack it is, or the task's CPU
    stack: str  # "task", "irq" or an exception stack name
    pid: int | None
    task: Hex | None
    comm: str | None
    frames: list[FoundExceptionFrame]
    readable: bool = True


# --- internal helpers ------------------------------------------------------------------------


@dataclass(frozen=True)
class _Region:
    kind: str
    start: int
    end: int

    def __contains__(self, address: int) -> bool:
        return self.start <= address < self.end


@dataclass(frozen=True)
class _Raw:
    """A drgn frame, and whether its pc stands for a call site: frames kdx unwinds from a
    return address start at ``ret - 1`` so that drgn looks up the call, not what follows."""

    frame: drgn.StackFrame
    call_site: bool = False

    @property
    def interrupted(self) -> bool:
        return self.frame.interrupted and not self.call_site

    @property
    def pc(self) -> int:
        return self.frame.pc + 1 if self.call_site else self.frame.pc

    @property
    def lookup_pc(self) -> int:
        """The address that belongs to the frame's function (a return address may not)."""
        return self.frame.pc if self.frame.interrupted else self.frame.pc - 1


@dataclass
class _OrcTable:
    addresses: list[int]
    entries: drgn.Object


# --- the reader ------------------------------------------------------------------------------


class StackReader:
    """What unwinding needs to know about one program, learned once per session: the
    address namer (kdx.model.names), stacks of each CPU, ORC tables of modules without
    debug info."""

    def __init__(self, prog: drgn.Program) -> None:
        self.prog = prog
        self.regs_type = prog.type("struct pt_regs")
        self.regs_size = drgn.sizeof(self.regs_type)
        self.thread_size = prog["THREAD_SIZE"].value_()
        self.regs_offsets = {name: drgn.offsetof(self.regs_type, member)
                             for name, member in _PT_REGS_MEMBERS.items()}
        self._text = (prog.symbol("_stext").address, prog.symbol("_etext").address)
        try:  # init code: gone after boot, but the frames of boot's first task keep it
            self._init_text = (prog.symbol("_sinittext").address,
                               prog.symbol("_einittext").address)
        except LookupError:
            self._init_text = (0, 0)
        self._orc: dict[str, _OrcTable | None] = {}
        self._cpu_regions: dict[int, list[_Region]] = {}
        try:
            task = panic_task(prog)
            self.panic_task = task.value_() if task else 0
        except READ_ERRORS:
            self.panic_task = 0
        try:
            orc = prog.type("struct orc_entry")
            self._orc_old_types = any(m.name == "end" for m in orc.members)
        except LookupError:
            self._orc_old_types = True

    # -- symbols ------------------------------------------------------------------------

    @property
    def namer(self) -> AddressNamer:
        """The program's address namer: every frame and stack word is named by it."""
        return address_namer(self.prog)

    def module_of(self, address: int) -> drgn.Module | None:
        try:
            return self.prog.module(address)
        except LookupError:
            return None

    def symbol(self, address: int) -> AddressName | None:
        """The name of ``address`` (module functions without debug info included, from
        the module's kallsyms)."""
        return self.namer.locate(address)

    def is_text(self, value: int) -> bool:
        """Whether ``value`` is a kernel or module text address (crash's is_kernel_text)."""
        if value < _KERNEL_START:
            return False
        if self._text[0] <= value < self._text[1]:
            return True
        if self._init_text[0] <= value < self._init_text[1]:
            return True
        module = self.module_of(value)
        if module is None or isinstance(module, drgn.MainModule):
            return False
        # a noreturn call ends a function: its return address is the next one's start
        return any(sym is not None and sym.is_function
                   for sym in (self.symbol(value), self.symbol(value - 1)))

    # -- stacks ---------------------------------------------------------------------------

    def task_region(self, task: drgn.Object) -> _Region | None:
        try:
            base = task.stack.value_()
        except READ_ERRORS:
            return None
        return _Region("task", base, base + self.thread_size) if base else None

    def cpu_regions(self, cpu: int) -> list[_Region]:
        """The IRQ stack and the exception stacks of ``cpu``."""
        if cpu not in self._cpu_regions:
            regions = []
            irq = self._irq_region(cpu)
            if irq:
                regions.append(irq)
            regions += self._exception_regions(cpu)
            self._cpu_regions[cpu] = regions
        return self._cpu_regions[cpu]

    def _irq_region(self, cpu: int) -> _Region | None:
        """The hard IRQ stack: its per-CPU pointer holds its top minus one word (a
        variable of its own before 6.2 and from 6.15, in ``pcpu_hot`` in between)."""
        try:
            try:
                top = per_cpu(self.prog["hardirq_stack_ptr"], cpu).value_()
            except KeyError:
                top = per_cpu(self.prog["pcpu_hot"], cpu).hardirq_stack_ptr.value_()
        except READ_ERRORS:
            return None
        if not top:
            return None
        top += 8
        return _Region("irq", top - self.thread_size, top)

    def _exception_regions(self, cpu: int) -> list[_Region]:
        """The IST stacks, from the tops the CPU's TSS holds; crash names them the same
        way and skips those not mapped (the VC stacks without SEV-ES)."""
        try:
            ist = per_cpu(self.prog["cpu_tss_rw"], cpu).x86_tss.ist
            tops = [ist[i].value_() for i in range(len(_IST_STACKS))]
        except READ_ERRORS:
            return []
        try:
            estacks = self.prog.type("struct cea_exception_stacks")
            sizes = {m.name: drgn.sizeof(m.type) for m in estacks.members}
        except LookupError:
            sizes = {}
        page = self.prog["PAGE_SIZE"].value_()
        regions = []
        for (name, member), top in zip(_IST_STACKS, tops):
            size = sizes.get(member, page)
            if not top or not self._readable(top - size):
                break
            regions.append(_Region(name, top - size, top))
        return regions

    def _readable(self, address: int) -> bool:
        try:
            self.prog.read(address, 8)
            return True
        except READ_ERRORS:
            return False

    def classify(self, address: int, task_region: _Region | None, cpu: int) -> str:
        if address < _KERNEL_START:
            return "user"
        if task_region is not None and address in task_region:
            return "task"
        for region in self.cpu_regions(cpu):
            if address in region:
                return region.kind
        return "unknown"

    def words(self, start: int, end: int) -> Iterator[tuple[int, int]]:
        """``(address, value)`` of each readable stack word in [start, end), page by page
        so that one page missing from the dump costs only that page."""
        page = 4096
        address = start
        while address < end:
            chunk_end = min(end, (address // page + 1) * page)
            try:
                data = self.prog.read(address, chunk_end - address)
            except READ_ERRORS:
                address = chunk_end
                continue
            for i in range(0, len(data) - 7, 8):
                yield address + i, struct.unpack_from("<Q", data, i)[0]
            address = chunk_end

    def read_word(self, address: int) -> int:
        return struct.unpack("<Q", self.prog.read(address, 8))[0]

    # -- pt_regs ----------------------------------------------------------------------------

    def pt_regs_at(self, address: int) -> dict[str, int]:
        data = self.prog.read(address, self.regs_size)
        return {name: struct.unpack_from("<Q", data, off)[0]
                for name, off in self.regs_offsets.items()}

    def regs_object(self, ip: int, sp: int, bp: int = 0) -> drgn.Object:
        """A kernel-mode ``struct pt_regs`` value to start drgn's unwinder from."""
        data = bytearray(self.regs_size)
        for name, value in (("RIP", ip), ("RSP", sp), ("RBP", bp), ("CS", 0x10),
                            ("SS", 0x18), ("RFLAGS", 0x2)):
            struct.pack_into("<Q", data, self.regs_offsets[name], value)
        return drgn.Object.from_bytes_(self.prog, self.regs_type, bytes(data))

    def find_pt_regs(self, start: int, rip: int, rsp: int) -> int | None:
        """Where the ``pt_regs`` holding ``rip``/``rsp`` lie, at or just above ``start``
        (the entry frame's stack pointer)."""
        ip_off, sp_off = self.regs_offsets["RIP"], self.regs_offsets["RSP"]
        words = dict(self.words(start, start + _PT_REGS_SEARCH + self.regs_size))
        for address in range(start, start + _PT_REGS_SEARCH + 8, 8):
            if words.get(address + ip_off) == rip and words.get(address + sp_off) == rsp:
                return address
        return None

    # -- ORC of modules without debug info ---------------------------------------------------

    def _orc_table(self, module: drgn.Module) -> _OrcTable | None:
        if module.name not in self._orc:
            self._orc[module.name] = self._load_orc(module)
        return self._orc[module.name]

    def _load_orc(self, module: drgn.Module) -> _OrcTable | None:
        """A module's ORC table as the kernel keeps it: sorted IPs stored as offsets from
        their own slot, and the matching entries."""
        try:
            arch = module.object.arch
            count = arch.num_orcs.value_()
            base = arch.orc_unwind_ip.value_()
            if not count or not base:
                return None
            raw = self.prog.read(base, 4 * count)
            entries = drgn.Object(self.prog, self.prog.array_type(
                arch.orc_unwind.type_.type, count), address=arch.orc_unwind.value_())
        except READ_ERRORS:
            return None
        addresses = [base + 4 * i + v for i, (v,) in enumerate(struct.iter_unpack("<i", raw))]
        return _OrcTable(addresses, entries)

    def orc_step(self, module: drgn.Module, ip: int, sp: int, bp: int | None
                 ) -> tuple[int, int, int | None] | None:
        """One ORC unwind step from ``ip`` (an address inside the function) with stack
        pointer ``sp``: the caller's return address, stack pointer and frame pointer.
        Only call frames are handled: modules rarely contain anything else."""
        table = self._orc_table(module)
        if table is None:
            return None
        i = bisect.bisect_right(table.addresses, ip) - 1
        if i < 0:
            return None
        try:
            entry = table.entries[i].read_()
            sp_reg, bp_reg = entry.sp_reg.value_(), entry.bp_reg.value_()
            sp_offset, bp_offset = entry.sp_offset.value_(), entry.bp_offset.value_()
            kind = entry.type.value_()
        except READ_ERRORS:
            return None
        call = 0 if self._orc_old_types else 2
        if kind != call:
            return None
        if sp_reg == _ORC_REG_SP:
            cfa = sp + sp_offset
        elif sp_reg == _ORC_REG_BP and bp is not None:
            cfa = bp + sp_offset
        else:
            return None
        try:
            ret = self.read_word(cfa - 8)
            if bp_reg == _ORC_REG_PREV_SP:
                bp = self.read_word(cfa + bp_offset)
            elif bp_reg == _ORC_REG_BP and bp is not None:
                bp = self.read_word(bp + bp_offset)
        except READ_ERRORS:
            return None
        return ret, cfa, bp


_ORC_REG_PREV_SP = 1
_ORC_REG_BP = 4
_ORC_REG_SP = 5


# --- unwinding --------------------------------------------------------------------------------


def _stack_trace(prog: drgn.Program, start: drgn.Object | int, call_site: bool = False
                 ) -> list[_Raw]:
    """drgn's frames from ``start``, cut at a runaway length; the first physical frame's
    group is marked as a call site when ``start`` was built from a return address."""
    out: list[_Raw] = []
    first_group = call_site
    for frame in prog.stack_trace(start):
        out.append(_Raw(frame, first_group))
        if not frame.is_inline:
            first_group = False
        if len(out) >= _MAX_FRAMES:
            break
    return out


def _groups(raw: Sequence[_Raw]) -> list[list[_Raw]]:
    """Frames grouped as [inlined..., physical]."""
    groups: list[list[_Raw]] = []
    current: list[_Raw] = []
    for r in raw:
        current.append(r)
        if not r.frame.is_inline:
            groups.append(current)
            current = []
    if current:
        groups.append(current)
    return groups


def _is_user(r: _Raw) -> bool:
    if r.frame.pc < _KERNEL_START:
        return True
    if r.interrupted:
        try:
            return bool(r.frame.register("cs") & 3)
        except LookupError:
            return False
    return False


class _Unwind:
    """One task's unwind: drgn's frames, re-started and repaired as the module docstring
    describes."""

    def __init__(self, reader: StackReader, task: drgn.Object, cpu: int, active: bool,
                 panic: bool) -> None:
        self.reader = reader
        self.prog = reader.prog
        self.task = task
        self.cpu = cpu
        self.active = active
        self.panic = panic
        self.region = reader.task_region(task)
        self.warnings: list[str] = []
        self.start = "none"

    def run(self) -> list[_Raw]:
        try:
            plain = _stack_trace(self.prog, self.task)
        except READ_ERRORS as err:
            self.warnings.append(f"cannot unwind from the saved registers: {err}")
            plain = []
        if plain:
            self.start = "registers" if self.active else "scheduled"
        raw = plain
        if self.active:
            started = self._kdump_start(plain)
            if started is not None:
                raw = started
        raw = self._past_modules(raw)
        return self._cut(raw)

    # -- crash's starting frames ------------------------------------------------------------

    def _kdump_start(self, plain: list[_Raw]) -> list[_Raw] | None:
        names = _PANIC_START if self.panic else _NMI_START
        tried = 0
        for address, value in self._candidates(names):
            tried += 1
            if tried > 4:
                break
            try:
                raw = _stack_trace(self.prog, self.reader.regs_object(value - 1, address + 8),
                                   call_site=True)
            except READ_ERRORS:
                continue
            if self._joins(raw, plain):
                self.start = "kdump" if self.panic else "nmi"
                return raw
        return None

    def _candidates(self, names: Sequence[str]) -> Iterator[tuple[int, int]]:
        """Return addresses into ``names`` on the task's stack, then the CPU's IRQ and
        exception stacks, lowest first: the order crash searches them in."""
        regions = [self.region] if self.region else []
        regions += self.reader.cpu_regions(self.cpu)
        for region in regions:
            for address, value in self.reader.words(region.start, region.end):
                if value < _KERNEL_START or not self.reader.is_text(value):
                    continue
                sym = self.reader.symbol(value - 1)
                if sym is not None and sym.name in names:
                    yield address, value

    def _joins(self, raw: list[_Raw], plain: list[_Raw]) -> bool:
        """Whether a trace started from a return address reaches the frame of the saved
        registers (same stack pointer, same function): then it is the same stack."""
        if not plain:
            return len(raw) > 1
        target = plain[0]
        target_sym = self.reader.symbol(target.lookup_pc)
        for r in raw:
            if r.frame.sp != target.frame.sp:
                continue
            if r.frame.pc == target.frame.pc:
                return True
            sym = self.reader.symbol(r.lookup_pc)
            if sym is not None and target_sym is not None and sym.name == target_sym.name:
                return True
        return False

    # -- modules without debug info ----------------------------------------------------------

    def _past_modules(self, raw: list[_Raw]) -> list[_Raw]:
        """Replace what drgn made of the frames below a module function it had no debug
        info for."""
        out: list[_Raw] = []
        rest = raw
        for _ in range(_MAX_FRAMES):
            groups = _groups(rest)
            for group in groups:
                out += group
                phys = group[-1]
                if _is_user(phys):
                    return out
                module = self._module_without_debug_info(phys.lookup_pc)
                if module is not None:
                    rest = self._step_over(module, phys)
                    break
            else:
                return out
            if not rest:
                return out
        return out

    def _module_without_debug_info(self, address: int) -> drgn.Module | None:
        module = self.reader.module_of(address)
        if module is None or isinstance(module, drgn.MainModule):
            return None
        return module if module.wants_debug_file() else None

    def _step_over(self, module: drgn.Module, phys: _Raw) -> list[_Raw]:
        frame = phys.frame
        try:
            bp: int | None = frame.register("rbp")
        except LookupError:
            bp = None
        step = self.reader.orc_step(module, phys.lookup_pc, frame.sp, bp)
        if step is None:
            step = self._scan_for_caller(frame.sp, bp)
            where = self.reader.symbol(phys.lookup_pc)
            self.warnings.append(
                f"no debug info or ORC entry for {where.name if where else hex(phys.pc)} "
                f"[{module.name}]: its caller was found by scanning the stack")
        if step is None:
            self.warnings.append(f"cannot unwind past {hex(phys.pc)} [{module.name}]")
            return []
        ret, sp, bp = step
        if ret < _KERNEL_START:
            return []
        try:
            return _stack_trace(self.prog, self.reader.regs_object(ret - 1, sp, bp or 0),
                                call_site=True)
        except READ_ERRORS as err:
            self.warnings.append(f"cannot unwind from {hex(ret)}: {err}")
            return []

    def _scan_for_caller(self, sp: int, bp: int | None) -> tuple[int, int, int | None] | None:
        """crash's way: the next word up the stack that is a return address (kernel text
        right after a call instruction)."""
        end = self.region.end if self.region and sp in self.region else sp + 4096
        for address, value in self.reader.words(sp, end):
            if self.reader.is_text(value) and self._after_call(value):
                return value, address + 8, bp
        return None

    def _after_call(self, address: int) -> bool:
        try:
            code = self.prog.read(address - 7, 7)
        except READ_ERRORS:
            return False
        if code[2] == 0xE8:  # call rel32
            return True
        # call r/m64: FF /2, two to seven bytes long
        return any(code[7 - n] == 0xFF and (code[8 - n] >> 3) & 7 == 2 for n in range(2, 8))

    # -- the end of the stack --------------------------------------------------------------

    def _cut(self, raw: list[_Raw]) -> list[_Raw]:
        """Keep the kernel frames and the first user-mode one (it holds the user
        registers); drop garbage past it and any zero pc."""
        out = []
        for r in raw:
            out.append(r)
            if _is_user(r) and not r.frame.is_inline:
                break
            if r.frame.pc == 0:
                out.pop()
                self.warnings.append("the unwind ran into a zero return address")
                break
        return out


# --- building the records -----------------------------------------------------------------


def task_context(reader: StackReader, task: drgn.Object) -> tuple[int, int, str, bool]:
    """PID, CPU, command and whether the task is on its CPU (crash's active task)."""
    pid = task.pid.value_()
    cpu = task_cpu(task)
    comm = decode(task.comm.string_())
    try:
        active = cpu_curr(reader.prog, cpu).value_() == task.value_()
    except READ_ERRORS:
        active = False
    return pid, cpu, comm, active


def backtrace(reader: StackReader, task: drgn.Object, *, frame_data: bool = False
              ) -> Backtrace:
    """The backtrace of ``task`` (a ``struct task_struct *``); whatever the dump lacks
    becomes a warning and the frames that could be read."""
    pid, cpu, comm, active = task_context(reader, task)
    panic = task.value_() == reader.panic_task
    if active and reader.prog.flags & drgn.ProgramFlags.IS_LIVE:
        # a running task's registers change as they are read: crash says "(active)"
        return Backtrace(pid, task.value_(), cpu, comm, active, panic, "active", [], [])
    unwind = _Unwind(reader, task, cpu, active, panic)
    raw = unwind.run()
    frames, eframes = _records(reader, unwind, raw)
    if frame_data:
        frames = _with_data(reader, frames)
    return Backtrace(pid, task.value_(), cpu, comm, active, panic, unwind.start, frames,
                     eframes, unwind.warnings)


def _records(reader: StackReader, unwind: _Unwind, raw: list[_Raw]
             ) -> tuple[list[Frame], list[ExceptionFrame]]:
    frames: list[Frame] = []
    eframes: list[ExceptionFrame] = []
    level = 0
    prev: _Raw | None = None
    for gi, group in enumerate(_groups(raw)):
        phys = group[-1]
        if _is_user(phys):
            eframes.append(_exception_frame(reader, unwind, prev, phys, len(frames), True))
            break
        eframe = None
        if phys.interrupted and gi > 0:
            eframe = _exception_frame(reader, unwind, prev, phys,
                                      len(frames) + len(group) - 1, False)
            eframes.append(eframe)
        # crash numbers an interrupted frame only when its registers came from an
        # exception stack (it prints the eframe, the stack separator, then the frame).
        numbered = eframe is None or eframe.stack not in ("task", "irq", "unknown")
        for r in group:
            frames.append(_frame(reader, unwind, r, level if numbered else None,
                                 eframe is not None))
        if numbered:
            level += 1
        prev = phys
    return _irq_entry_slots(frames, eframes), eframes


def _irq_entry_slots(frames: list[Frame], eframes: list[ExceptionFrame]) -> list[Frame]:
    """crash shows an interrupt's entry frame (the first on the task stack after the IRQ
    stack) at the address of the ``pt_regs`` it saved, one word above its return address."""
    out = list(frames)
    numbered = [i for i, f in enumerate(frames) if f.level is not None and not f.inline]
    for eframe in eframes:
        if eframe.user_mode or eframe.address is None or eframe.stack != "task":
            continue
        before = [i for i in numbered if i < eframe.position]
        if len(before) >= 2 and frames[before[-2]].stack == "irq" \
                and frames[before[-1]].stack == "task":
            out[before[-1]] = replace(frames[before[-1]], sp=eframe.address)
    return out


def _frame(reader: StackReader, unwind: _Unwind, r: _Raw, level: int | None,
           exception: bool) -> Frame:
    frame = r.frame
    sp = frame.sp if r.interrupted else frame.sp - 8
    try:
        source = frame.source()
        source_file, source_line = source.filename or None, source.line or None
    except LookupError:
        source_file = source_line = None
    if frame.is_inline:
        module = reader.module_of(r.lookup_pc)
        module_name = None if module is None or isinstance(module, drgn.MainModule) \
            else module.name
        return Frame(level, sp, r.pc, frame.function_name or frame.name, None, module_name,
                     source_file, source_line, True, exception,
                     reader.classify(sp, unwind.region, unwind.cpu))
    sym = reader.symbol(r.lookup_pc)
    return Frame(level, sp, r.pc, sym.name if sym else frame.function_name,
                 r.pc - sym.start if sym else None, sym.module if sym else None,
                 source_file, source_line, False, exception,
                 reader.classify(sp, unwind.region, unwind.cpu))


def _exception_frame(reader: StackReader, unwind: _Unwind, prev: _Raw | None, phys: _Raw,
                     position: int, user: bool) -> ExceptionFrame:
    frame = phys.frame
    address = None
    if prev is not None:
        address = reader.find_pt_regs(prev.frame.sp, frame.pc, frame.sp)
    registers: dict[str, int | None]
    if address is not None:
        registers = dict(reader.pt_regs_at(address))
    else:
        known = frame.registers()
        registers = {name: known.get(_DRGN_REGISTERS.get(name, "")) for name in REGISTER_NAMES}
        registers["ORIG_RAX"] = None
    registers = {name: registers.get(name) for name in REGISTER_NAMES}
    function = offset = module = source_file = source_line = None
    if not user:
        sym = reader.symbol(frame.pc)
        if sym is not None:
            function, offset, module = sym.name, frame.pc - sym.start, sym.module
        try:
            source = frame.source()
            source_file, source_line = source.filename or None, source.line or None
        except LookupError:
            pass
    stack = reader.classify(address, unwind.region, unwind.cpu) if address else "unknown"
    return ExceptionFrame(position, address, user, stack, function, offset, module,
                          source_file, source_line, registers)


def _with_data(reader: StackReader, frames: list[Frame]) -> list[Frame]:
    """Attach crash's ``bt -f`` words: from a frame's slot to the next numbered frame's
    slot, when both lie on the same stack."""
    numbered = [i for i, f in enumerate(frames) if f.level is not None and not f.inline]
    out = list(frames)
    for i, j in zip(numbered, numbered[1:]):
        this, nxt = frames[i], frames[j]
        if this.stack != nxt.stack or not 0 < nxt.sp - this.sp < reader.thread_size:
            continue
        words = [value for _, value in reader.words(this.sp + 8, nxt.sp + 8)]
        if len(words) == (nxt.sp - this.sp) // 8:
            out[i] = _replace_data(this, words)
    return out


def _replace_data(frame: Frame, words: list[int]) -> Frame:
    return replace(frame, data=words)


# --- bt -t / -T --------------------------------------------------------------------------------


def stack_text(reader: StackReader, task: drgn.Object, bt: Backtrace, *, whole: bool
               ) -> StackText:
    """Every kernel text address on the stack: the whole task stack (``-T``), or (``-t``)
    from the trace's first frame up through each stack the trace visits, with crash's
    landmarks on the way: an interrupt's entry frame and registers where the trace comes
    back from the IRQ stack, the registers an exception stack saved where it leaves it."""
    region = reader.task_region(task)
    user = next((e for e in bt.exception_frames if e.user_mode), None)
    if whole:
        words = _text_words(reader, region.start, region.end, "task") if region else []
        return StackText(bt.pid, bt.task, bt.cpu, bt.comm, None, None, words, user)
    words: list[StackWord] = []
    for kind, first in _segments(bt):
        start = first.sp
        eframe = _eframe_after(bt, first)
        if words and eframe is not None and eframe.address is not None \
                and eframe.stack == kind:
            # back from the IRQ stack: the entry frame, its registers, then past them
            words.append(_word_of(first, kind, eframe))
            start = eframe.address + reader.regs_size
        elif first.is_exception_frame:
            # back from an exception stack: the interrupted function at its own SP
            words.append(_word_of(first, kind, None))
            start = first.sp
        end = _region_end(reader, kind, region, bt.cpu)
        if end is None:
            continue
        words += _text_words(reader, start, end, kind)
        saved = next((e for e in bt.exception_frames if e.stack == kind
                      and kind not in ("task", "irq")
                      and not e.user_mode), None)
        if saved is not None and words:
            words[-1] = replace(words[-1], exception=saved)
    first = bt.numbered()[0] if bt.numbered() else None
    return StackText(bt.pid, bt.task, bt.cpu, bt.comm, first.function if first else None,
                     first.pc if first else None, words, user)


def _segments(bt: Backtrace) -> list[tuple[str, Frame]]:
    """The stacks the numbered frames visit, in order, with the first frame on each."""
    out: list[tuple[str, Frame]] = []
    for frame in bt.numbered():
        if not out or out[-1][0] != frame.stack:
            out.append((frame.stack, frame))
    return out


def _eframe_after(bt: Backtrace, frame: Frame) -> ExceptionFrame | None:
    """The kernel-mode exception frame printed right after ``frame``, if any."""
    index = bt.frames.index(frame)
    for eframe in bt.exception_frames:
        if eframe.user_mode or eframe.position <= index:
            continue
        between = bt.frames[index + 1:eframe.position]
        if all(f.level is None or f.inline for f in between):
            return eframe
    return None


def _word_of(frame: Frame, kind: str, eframe: ExceptionFrame | None) -> StackWord:
    return StackWord(frame.sp, frame.pc, frame.function or f"{frame.pc:x}",
                     frame.offset or 0, frame.module, kind, eframe)


def _text_words(reader: StackReader, start: int, end: int, kind: str) -> list[StackWord]:
    """The words in [start, end) that are kernel text, named as crash names them: a
    function's own start by that function, a return address by its caller."""
    words = []
    for address, value in reader.words(start, end):
        if not reader.is_text(value):
            continue
        sym = reader.symbol(value)
        if sym is None or sym.start != value:
            sym = reader.symbol(value - 1) or sym
        if sym is None:
            continue
        words.append(StackWord(address, value, sym.name, value - sym.start, sym.module,
                               kind))
    return words


def _region_end(reader: StackReader, kind: str, task_region: _Region | None, cpu: int
                ) -> int | None:
    """Where crash stops scanning a stack: the top, less the saved registers at the top
    of an exception stack."""
    if kind == "task":
        return task_region.end if task_region else None
    for region in reader.cpu_regions(cpu):
        if region.kind == kind:
            return region.end - (reader.regs_size if kind != "irq" else 0)
    return None


# --- bt -e / -E ---------------------------------------------------------------------------------

#: Bits of RFLAGS that always read as zero, and the one that always reads as one.
_RFLAGS_ZERO = 0xFFFFFFFFFFC08028
_RFLAGS_ONE = 0x2
_KERNEL_CS, _KERNEL_SS = 0x10, 0x18
_USER_CS, _USER_SS, _USER32_CS = 0x33, 0x2B, 0x23


def _plausible(reader: StackReader, address: int, regs: dict[str, int]) -> bool:
    """crash's test for a real exception frame: sane flags, and kernel or user segments
    with instruction and stack pointers of the same world."""
    rflags, cs, ss = regs["RFLAGS"], regs["CS"], regs["SS"]
    rip, rsp = regs["RIP"], regs["RSP"]
    if rflags & _RFLAGS_ZERO or not rflags & _RFLAGS_ONE:
        return False
    if cs == _KERNEL_CS:
        if not reader.is_text(rip) or rsp < _KERNEL_START:
            return False
        return ss == _KERNEL_SS or rsp in (address + reader.regs_size,
                                           address + reader.regs_size + 8)
    if cs in (_USER_CS, _USER32_CS) and ss == _USER_SS:
        return 0 < rip < _KERNEL_START and 0 < rsp < _KERNEL_START
    return False


def search_exception_frames(reader: StackReader, start: int, end: int
                            ) -> list[FoundExceptionFrame]:
    """Every plausible ``pt_regs`` starting in [start, end - sizeof(pt_regs)]."""
    found = []
    words = dict(reader.words(start, end))
    offsets = reader.regs_offsets
    last = end - reader.regs_size
    address = start
    while address <= last:
        try:
            regs = {name: words[address + off] for name, off in offsets.items()}
        except KeyError:
            address += 8
            continue
        if _plausible(reader, address, regs):
            user = bool(regs["CS"] & 3)
            function = offset = None
            if not user:
                sym = reader.symbol(regs["RIP"])
                if sym is not None:
                    function, offset = sym.name, regs["RIP"] - sym.start
            found.append(FoundExceptionFrame(address, user, function, offset,
                                             {n: regs.get(n) for n in REGISTER_NAMES}))
        address += 8
    return found


def task_exception_frames(reader: StackReader, task: drgn.Object, bt: Backtrace
                          ) -> StackSearch:
    """``bt -e``: the task's stack, from where its trace starts (all of it if the trace
    starts on another stack)."""
    region = reader.task_region(task)
    frames: list[FoundExceptionFrame] = []
    if region is not None:
        on_task = [f.sp for f in bt.numbered() if f.stack == "task"]
        start = on_task[0] if on_task and bt.numbered()[0].stack == "task" else region.start
        frames = search_exception_frames(reader, start, region.end)
    return StackSearch(bt.cpu, "task", bt.pid, bt.task, bt.comm, frames, region is not None)


def cpu_exception_frames(reader: StackReader, cpus: Sequence[int]) -> list[StackSearch]:
    """``bt -E``: the IRQ stack of every CPU, then every exception stack of every CPU."""
    out = []
    for kinds in (("irq",), tuple(name for name, _ in _IST_STACKS)):
        for cpu in cpus:
            for region in reader.cpu_regions(cpu):
                if region.kind in kinds:
                    out.append(StackSearch(cpu, region.kind, None, None, None,
                                           search_exception_frames(reader, region.start,
                                                                   region.end)))
    return out


# --- bt -S / -I: a trace from a chosen stack address ---------------------------------------


def backtrace_from(reader: StackReader, task: drgn.Object, sp: int, ip: int | None = None,
                   *, frame_data: bool = False) -> Backtrace:
    """The trace of ``task`` as if it stood at stack address ``sp`` (crash's ``bt -S``),
    with ``ip`` as the instruction there (``-I``). Without ``ip`` the stack is scanned
    from ``sp`` for the first return address (a text address right after a call), and
    the trace starts at its slot: crash's own -S picks its starting function another
    way, so the first frame may differ while the callers below it agree."""
    pid, cpu, comm, active = task_context(reader, task)
    panic = task.value_() == reader.panic_task
    unwind = _Unwind(reader, task, cpu, active, panic)
    unwind.start = "stack-address"
    region = unwind.region
    if ip is None:
        end = region.end if region is not None and sp in region else sp + reader.thread_size
        found = next(((address, value) for address, value in reader.words(sp, end)
                      if reader.is_text(value) and unwind._after_call(value)), None)
        if found is None:
            unwind.warnings.append(f"no return address on the stack above {sp:x}")
            return Backtrace(pid, task.value_(), cpu, comm, active, panic, unwind.start,
                             [], [], unwind.warnings)
        start, call_site = reader.regs_object(found[1] - 1, found[0] + 8), True
    else:
        start, call_site = reader.regs_object(ip, sp), False
    try:
        raw = _stack_trace(reader.prog, start, call_site=call_site)
    except READ_ERRORS as err:
        unwind.warnings.append(f"cannot unwind from {sp:x}: {err}")
        raw = []
    raw = unwind._cut(unwind._past_modules(raw))
    frames, eframes = _records(reader, unwind, raw)
    if frame_data:
        frames = _with_data(reader, frames)
    return Backtrace(pid, task.value_(), cpu, comm, active, panic, unwind.start, frames,
                     eframes, unwind.warnings)


# --- bt -F / -FF: stack words named -------------------------------------------------------


@dataclass(frozen=True)
class WordLabel:
    """What ``bt -F`` shows for a stack word instead of its hex value: the symbol it
    points into (``symbol+offset``), or the slab cache of the object it points into."""

    value: Hex
    symbol: str | None
    slab_cache: str | None


def label_stack_words(reader: StackReader, values: Sequence[int]) -> dict[int, WordLabel]:
    """Labels for the kernel addresses among ``values`` that name something, by crash's
    rule (memory.c format_stack_entry): a readable address inside a kernel or module
    symbol is named by it (decimal offset), else one inside a slab object by its cache."""
    from drgn.helpers.linux.slab import find_containing_slab_cache

    namer = reader.namer
    labels: dict[int, WordLabel] = {}
    for value in set(values):
        if value < _KERNEL_START or not reader._readable(value):
            continue
        name = namer.name(value)
        if name:
            labels[value] = WordLabel(value, name, None)
            continue
        try:
            cache = find_containing_slab_cache(reader.prog, value)
            if cache:
                labels[value] = WordLabel(value, None,
                                          decode(cache.name.string_()))
        except READ_ERRORS:
            continue
    return labels


# --- bt -r: the raw stack ---------------------------------------------------------------------


@dataclass(frozen=True)
class RawWord:
    address: Hex
    value: Hex
    symbol: str | None  # symbol+offset when the value points into one (rd -s)


@dataclass(frozen=True)
class RawStack:
    """A task's whole kernel stack as ``bt -r`` dumps it (``rd -s`` style words)."""

    pid: int
    task: Hex
    cpu: int
    comm: str
    start: Hex
    words: list[RawWord]
    unreadable_from: Hex | None  # where the dump stopped supplying the stack


def raw_stack(reader: StackReader, task: drgn.Object, start: int | None = None
              ) -> RawStack:
    """THREAD_SIZE bytes from the stack's base (or from ``start``, crash's ``-S``),
    each word named when it points into a symbol, as crash's ``rd -s`` names it."""
    pid, cpu, comm, _ = task_context(reader, task)
    region = reader.task_region(task)
    base = start if start is not None else (region.start if region else 0)
    namer = reader.namer
    words: list[RawWord] = []
    stopped = None
    if base:
        for address, value in reader.words(base, base + reader.thread_size):
            if words and address != words[-1].address + 8:
                stopped = words[-1].address + 8  # crash's rd stops at the first gap
                break
            name = namer.name(value) if value >= _KERNEL_START else None
            words.append(RawWord(address, value, name))
        if not words:
            stopped = base
        elif words[-1].address + 8 < base + reader.thread_size and stopped is None:
            stopped = words[-1].address + 8
    return RawStack(pid, task.value_(), cpu, comm, base, words, stopped)


# --- bt -v: stack overflow check -------------------------------------------------------------

#: What the kernel writes at the far end of every task stack (end_of_stack()).
STACK_END_MAGIC = 0x57AC6E9D


@dataclass(frozen=True)
class StackOverflow:
    """A task whose stack end no longer holds STACK_END_MAGIC: its stack overflowed, or
    something wrote past it."""

    pid: int
    task: Hex
    cpu: int
    comm: str
    location: Hex  # where the magic should be
    value: Hex | None  # what is there (None: not in the dump)


def check_stack_overflows(reader: StackReader, tasks: Sequence[drgn.Object]
                          ) -> list[StackOverflow]:
    """crash's ``bt -v`` on kernels with the thread_info in the task (x86_64 since
    4.9): the magic word at each stack's lowest address, boot's own idle task
    (init_task, whose stack predates the magic) excepted. A stack base the dump lacks
    is skipped, as crash skips it."""
    try:
        init_task = reader.prog["init_task"].address_
    except KeyError:
        init_task = None
    found = []
    for task in tasks:
        try:
            base = task.stack.value_()
        except READ_ERRORS:
            continue
        if task.value_() == init_task or not base:
            continue
        try:
            magic = reader.read_word(base)
        except READ_ERRORS:
            continue
        if magic != STACK_END_MAGIC:
            pid, cpu, comm, _ = task_context(reader, task)
            found.append(StackOverflow(pid, task.value_(), cpu, comm, base, magic))
    return found


# --- bt -R: does a trace reference something ---------------------------------------------


def references(bt: Backtrace, ref: str) -> bool:
    """crash's ``bt -R`` test: a symbol name matches a frame's function or an exception
    frame's RIP function; a hexadecimal value matches a frame's address or any register
    of an exception frame."""
    text = ref[2:] if ref.lower().startswith("0x") else ref
    try:
        value: int | None = int(text, 16)
    except ValueError:
        value = None
    if value is None:
        return any(f.function == ref for f in bt.numbered()) or any(
            e.function == ref for e in bt.exception_frames)
    if any(f.pc == value for f in bt.numbered()):
        return True
    return any(v == value for e in bt.exception_frames for v in e.registers.values())
