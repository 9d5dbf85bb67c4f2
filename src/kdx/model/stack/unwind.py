"""The unwinder: drgn's frames for one task, repaired where real dumps need it, turned into
the :class:`~kdx.model.stack.records.Backtrace` crash's ``bt`` shows.

The package docstring lists what is repaired (kdump starting frames, modules without
debug info, exception frames, the user-mode boundary); this module holds that logic and
the building of frame records, so the scanners can reuse it for ``bt -S``/``-I``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, replace
from typing import Iterator, Sequence

import drgn
from drgn.helpers.linux.sched import cpu_curr, task_cpu

from kdx.model.reading import READ_ERRORS
from kdx.model.stack.prologue import prologue_step
from kdx.model.stack.reader import _KERNEL_START, StackReader
from kdx.model.stack.records import REGISTER_NAMES, Backtrace, ExceptionFrame, Frame
from kdx.textsafe import one_line

__all__ = ["backtrace", "task_context"]

#: Frames beyond this many are a runaway unwind, not a stack.
_MAX_FRAMES = 256
#: crash's register names and drgn's.
_DRGN_REGISTERS = {"RIP": "rip", "RSP": "rsp", "RFLAGS": "rflags", "RAX": "rax",
                   "RBX": "rbx", "RCX": "rcx", "RDX": "rdx", "RSI": "rsi", "RDI": "rdi",
                   "RBP": "rbp", "R8": "r8", "R9": "r9", "R10": "r10", "R11": "r11",
                   "R12": "r12", "R13": "r13", "R14": "r14", "R15": "r15", "CS": "cs",
                   "SS": "ss"}
#: Return addresses crash starts an active task at, on a kdump dump: the panic task's
#: kexec call, and the NMI handler that stopped the other CPUs.
_PANIC_START = ("machine_kexec", "crash_kexec")
_NMI_START = ("crash_nmi_callback",)


class _CompanionFrame:
    """A frame unwound by the companion program (``kdx.target.companion``) and named by
    the vmlinux: registers, pc and stack pointer are the companion's; the function, the
    inlined call and the source line are the vmlinux's frame for the same code. It
    answers what the unwinder asks of a ``drgn.StackFrame``."""

    __slots__ = ("_regs", "_named")

    def __init__(self, regs: drgn.StackFrame, named: drgn.StackFrame) -> None:
        self._regs = regs
        self._named = named

    @property
    def pc(self) -> int:
        return self._regs.pc

    @property
    def sp(self) -> int:
        return self._regs.sp

    @property
    def interrupted(self) -> bool:
        return self._regs.interrupted

    @property
    def is_inline(self) -> bool:
        return self._named.is_inline

    @property
    def function_name(self) -> str | None:
        return self._named.function_name

    @property
    def name(self) -> str | None:
        return self._named.name

    def source(self) -> drgn.SourceLocation:
        return self._named.source()

    def register(self, name: str) -> int:
        return self._regs.register(name)

    def registers(self) -> dict[str, int]:
        return self._regs.registers()


@dataclass(frozen=True)
class _Raw:
    """A drgn frame, and whether its pc stands for a call site: frames kdx unwinds from a
    return address start at ``ret - 1`` so that drgn looks up the call, not what follows."""

    frame: drgn.StackFrame | _CompanionFrame
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


def _companion_trace(reader: StackReader, task: drgn.Object) -> list[_Raw] | None:
    """``task``'s frames unwound by the companion program and named by the vmlinux, or
    None where the two could differ: a frame in a module (the vmlinux's program may hold
    debug info the companion lacks) or in kernel code the ORC tables leave out (drgn
    follows the vmlinux's CFI there). The caller then unwinds with the vmlinux."""
    try:
        trace = reader.companion.stack_trace(reader.companion_task(task.value_()))
    except READ_ERRORS:
        return None  # the vmlinux's unwind says what could not be read
    frames = list(trace)
    out: list[_Raw] = []
    for i, frame in enumerate(frames):
        if frame.is_inline or len(out) >= _MAX_FRAMES:
            return None
        lookup = frame.pc if frame.interrupted else frame.pc - 1
        if not _is_user(_Raw(frame)):
            sym = reader.symbol(lookup)
            if sym is None or sym.module is not None:
                return None
            # a stack's bottom has no rule to go on by; anywhere else it is a gap
            if not reader.kernel_orc_covers(lookup, sym.start) and not (
                    i == len(frames) - 1 and reader.kernel_orc_ends(lookup, sym.start)):
                return None
        out += [_Raw(_CompanionFrame(frame, named)) for named in reader.calls_at(lookup)]
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


#: Retpoline and return thunks: an indirect call passes through one, never a real caller.
_THUNK = re.compile(r"^__x86_(indirect_thunk|indirect_call_thunk|indirect_jump_thunk|return_thunk)")


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
        plain = self._plain()
        if plain:
            self.start = "registers" if self.active else "scheduled"
        plain = self._past_entry(plain)
        raw = plain
        if self.active:
            started = self._kdump_start(plain)
            if started is not None:
                raw = started
        raw = self._past_modules(raw)
        return self._cut(raw)

    def _plain(self) -> list[_Raw]:
        """drgn's frames from the task's saved registers: through the companion program
        when one is set and vouches for them, else with the vmlinux."""
        if self.reader.companion is not None:
            quick = _companion_trace(self.reader, self.task)
            self.reader.companion_counts[quick is None] += 1
            if quick is not None:
                return quick
        try:
            return _stack_trace(self.prog, self.task)
        except READ_ERRORS as err:
            self.warnings.append(f"cannot unwind from the saved registers: {err}")
            return []

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
            raw = self._past_gaps(raw)
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

    # -- a CPU stopped on a function's first instruction ----------------------------------------

    def _past_entry(self, raw: list[_Raw]) -> list[_Raw]:
        """A CPU caught on the first instruction of code no unwind table covers (QEMU
        stopping a panicking CPU as it enters a retpoline thunk) ends drgn's trace there,
        though the return address is plainly at the stack pointer. Continue from it; a
        thunk, which only forwards an indirect call, is dropped as crash drops it."""
        if len(raw) != 1 or _is_user(raw[0]) or raw[0].frame.is_inline:
            return raw
        frame = raw[0].frame
        sym = self.reader.symbol(frame.pc)
        if sym is None or sym.start != frame.pc:
            return raw
        try:
            ret = self.reader.read_word(frame.sp)
            bp: int | None = frame.register("rbp")
        except LookupError:
            bp = None
        except READ_ERRORS:
            return raw
        if ret < _KERNEL_START or not self.reader.is_text(ret) or not self._after_call(ret):
            return raw
        try:
            rest = _stack_trace(self.prog, self.reader.regs_object(ret - 1, frame.sp + 8,
                                                                    bp or 0), call_site=True)
        except READ_ERRORS:
            return raw
        return rest if _THUNK.match(sym.name) else raw + rest

    # -- kernel code no unwind table covers ---------------------------------------------------

    def _past_gaps(self, raw: list[_Raw]) -> list[_Raw]:
        """Without a vmlinux, drgn unwinds the kernel by its ORC tables, which leave out
        some functions (``__crash_kexec`` on 6.1): drgn then stops, or guesses through a
        stale frame pointer and skips callers. From such a frame, continue by reading the
        function's code (``prologue``). With DWARF, nothing is missing and nothing
        changes."""
        if not raw or self.reader.has_dwarf:
            return raw
        out: list[_Raw] = []
        rest = raw
        for _ in range(8):
            gap = self._first_gap(rest)
            if gap is None:
                return out + rest
            out += rest[:gap + 1]
            step = self._prologue_step(rest[gap])
            if step is None:
                return out
            try:
                rest = _stack_trace(self.prog, self.reader.regs_object(
                    step[0] - 1, step[1], step[2] or 0), call_site=True)
            except READ_ERRORS:
                return out
        return out + rest

    def _first_gap(self, raw: list[_Raw]) -> int | None:
        """The first kernel-image frame whose code the ORC tables do not describe."""
        for i, r in enumerate(raw):
            if r.frame.is_inline or _is_user(r):
                continue
            sym = self.reader.symbol(r.lookup_pc)
            if sym is None or sym.module is not None:
                continue
            if not self.reader.kernel_orc_covers(r.lookup_pc, sym.start):
                return i
        return None

    def _prologue_step(self, last: _Raw) -> tuple[int, int, int | None] | None:
        frame = last.frame
        if last.frame.is_inline or _is_user(last) or frame.pc < _KERNEL_START:
            return None
        if self.region is not None and not self._on_own_stacks(frame.sp):
            return None
        sym = self.reader.symbol(last.lookup_pc)
        if sym is None or sym.module is not None:
            return None
        ip = frame.pc if frame.interrupted else last.lookup_pc + 1
        try:
            bp: int | None = frame.register("rbp")
        except LookupError:
            bp = None
        step = prologue_step(self.prog, sym.start, ip, frame.sp, bp)
        if step is None or not self.reader.is_text(step[0]) or not self._after_call(step[0]):
            return None
        return step

    def _on_own_stacks(self, sp: int) -> bool:
        """Whether ``sp`` is on the task's stack or on its CPU's IRQ and exception stacks
        (a panic in an interrupt runs on those)."""
        regions = [self.region, *self.reader.cpu_regions(self.cpu)]
        return any(region is not None and sp in region for region in regions)

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
    comm = one_line(task.comm.string_())
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
