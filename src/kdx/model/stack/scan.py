"""crash's other views of a stack, found by scanning its words rather than unwinding: the
text addresses on it (``bt -t``/``-T``), exception frames found by search (``-e``/``-E``),
a trace from a chosen stack address (``-S``/``-I``), the words named (``-F``), the raw
stack (``-r``), the stack-end magic check (``-v``) and whether a trace references
something (``-R``).

They sit apart from the unwinder because each is a pass over stack memory with its own
record, and only ``-S``/``-I`` reuse the unwinding.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Sequence

import drgn

from kdx.model.reading import READ_ERRORS
from kdx.model.stack.reader import _IST_STACKS, _KERNEL_START, StackReader, _Region
from kdx.model.stack.records import (
    REGISTER_NAMES,
    Backtrace,
    ExceptionFrame,
    FoundExceptionFrame,
    Frame,
    RawStack,
    RawWord,
    StackOverflow,
    StackSearch,
    StackText,
    StackWord,
    WordLabel,
)
from kdx.model.stack.unwind import _records, _stack_trace, _Unwind, _with_data, task_context
from kdx.textsafe import decode

__all__ = ["STACK_END_MAGIC", "backtrace_from", "check_stack_overflows", "cpu_exception_frames",
           "label_stack_words", "raw_stack", "references", "search_exception_frames", "stack_text",
           "task_exception_frames"]


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


# --- bt -F / -FF: stack words named -----------------------------------------------------------


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
