"""Reading kernel stacks from the dump: which stack (task, IRQ, exception) an address lies
on, the stack words, saved registers and ``pt_regs``, module ORC tables and kallsyms.

:class:`StackReader` is opened once per dump and shared by every stack view, so what it
looks up (stack regions per CPU, ORC tables) is cached there, apart from the unwinding
and the scanners built on it.
"""

from __future__ import annotations

import bisect
import struct
from dataclasses import dataclass
from typing import Iterator

import drgn
from drgn.helpers.linux.panic import panic_task
from drgn.helpers.linux.percpu import per_cpu

from kdx.model.names import AddressName, AddressNamer, address_namer
from kdx.model.reading import READ_ERRORS

__all__ = ["StackReader"]

#: Kernel addresses have the top bit set on x86_64; anything below is user space.
_KERNEL_START = 1 << 63
#: How far past an entry frame's stack pointer a ``pt_regs`` is looked for.
_PT_REGS_SEARCH = 0x200
#: crash's register names and the kernel's ``struct pt_regs`` members.
_PT_REGS_MEMBERS = {"RIP": "ip", "RSP": "sp", "RFLAGS": "flags", "RAX": "ax", "RBX": "bx",
                    "RCX": "cx", "RDX": "dx", "RSI": "si", "RDI": "di", "RBP": "bp",
                    "R8": "r8", "R9": "r9", "R10": "r10", "R11": "r11", "R12": "r12",
                    "R13": "r13", "R14": "r14", "R15": "r15", "ORIG_RAX": "orig_ax",
                    "CS": "cs", "SS": "ss"}
#: x86_64 exception stacks by TSS IST slot, named as crash names them, with the member
#: of ``struct cea_exception_stacks`` that sizes each.
_IST_STACKS = (("DOUBLEFAULT", "DF_stack"), ("NMI", "NMI_stack"), ("DEBUG", "DB_stack"),
               ("MCE", "MCE_stack"), ("VC", "VC_stack"))


# --- internal helpers ------------------------------------------------------------------------


@dataclass(frozen=True)
class _Region:
    kind: str
    start: int
    end: int

    def __contains__(self, address: int) -> bool:
        return self.start <= address < self.end


@dataclass
class _OrcTable:
    addresses: list[int]
    entries: drgn.Object | None  # a module's entries, typed
    raw: bytes = b""  # the kernel image's entries, 6 bytes each (read without types)


def _orc_flags(table: _OrcTable, ip: int, function_start: int) -> int | None:
    """The flags word of the kernel image's ORC entry for ``ip``, or None when no entry
    inside the function holding ``ip`` (from ``function_start``) describes it."""
    i = bisect.bisect_right(table.addresses, ip) - 1
    if i < 0 or table.addresses[i] < function_start:
        return None
    return int.from_bytes(table.raw[6 * i + 4:6 * i + 6], "little")


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
        #: a program on the same dump without the vmlinux's DWARF, which unwinds a task
        #: some twenty times faster (``kdx.target.companion``); a command about to unwind
        #: many tasks sets it, and the unwinder then names its frames from ``calls_at``
        self.companion: drgn.Program | None = None
        #: tasks unwound through the companion, and those it could not vouch for
        self.companion_counts = [0, 0]
        self._companion_task: drgn.Type | None = None
        self._calls: dict[int, tuple[drgn.StackFrame, ...]] = {}
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

    @property
    def has_dwarf(self) -> bool:
        """Whether the kernel itself has DWARF (a vmlinux): then drgn's unwind is whole."""
        try:
            return self.prog.main_module().debug_file_path is not None
        except LookupError:
            return False

    def module_of(self, address: int) -> drgn.Module | None:
        try:
            return self.prog.module(address)
        except LookupError:
            return None

    def symbol(self, address: int) -> AddressName | None:
        """The name of ``address`` (module functions without debug info included, from
        the module's kallsyms)."""
        return self.namer.locate(address)

    def calls_at(self, lookup_pc: int) -> tuple[drgn.StackFrame, ...]:
        """The vmlinux's frames for the code at ``lookup_pc``: the inlined calls there,
        innermost first, then the function. drgn looks up DWARF scopes once per address
        here, where a stack trace looks them up for every frame of every task."""
        calls = self._calls.get(lookup_pc)
        if calls is None:
            # drgn takes a listed pc for a return address and looks up the byte before it
            calls = tuple(self.prog.stack_trace_from_pcs([lookup_pc + 1]))
            self._calls[lookup_pc] = calls
        return calls

    def companion_task(self, address: int) -> drgn.Object:
        """The task at ``address`` as an object of the companion program."""
        assert self.companion is not None
        if self._companion_task is None:
            self._companion_task = self.companion.type("struct task_struct *")
        return drgn.Object(self.companion, self._companion_task, address)

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

    def kernel_orc_covers(self, ip: int, function_start: int) -> bool:
        """Whether the kernel image's own ORC table describes the code at ``ip``: an
        entry inside the function holding ``ip``, with a known stack-pointer rule.
        objtool leaves some functions out; drgn then guesses, often wrongly."""
        table = self._kernel_orc()
        if table is None:
            return True  # nothing to check against: trust drgn
        flags = _orc_flags(table, ip, function_start)
        return flags is not None and flags & 0xF != 0  # sp_reg UNDEFINED: end or unknown

    def kernel_orc_ends(self, ip: int, function_start: int) -> bool:
        """Whether the kernel image's ORC table marks the code at ``ip`` as the bottom of
        a stack (``ret_from_fork``, the entry code): an end, not a gap."""
        table = self._kernel_orc()
        flags = None if table is None else _orc_flags(table, ip, function_start)
        if flags is None or flags & 0xF:  # no entry, or a stack-pointer rule
            return False
        if self._orc_old_types:  # type:2 then end:1
            return bool(flags >> 10 & 1)
        return flags >> 8 & 7 == 1  # ORC_TYPE_END_OF_STACK

    def _kernel_orc(self) -> _OrcTable | None:
        if "kernel" not in self._orc:
            self._orc["kernel"] = self._load_kernel_orc()
        return self._orc["kernel"]

    def _load_kernel_orc(self) -> _OrcTable | None:
        try:
            ips = self.prog.symbol("__start_orc_unwind_ip").address
            end = self.prog.symbol("__stop_orc_unwind_ip").address
            units = self.prog.symbol("__start_orc_unwind").address
            count = (end - ips) // 4
            if not 0 < count < 1 << 24:
                return None
            raw_ips = self.prog.read(ips, 4 * count)
            raw = self.prog.read(units, 6 * count)
        except (LookupError, *READ_ERRORS):
            return None
        addresses = [ips + 4 * i + v for i, (v,) in enumerate(struct.iter_unpack("<i", raw_ips))]
        return _OrcTable(addresses, None, raw)

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
