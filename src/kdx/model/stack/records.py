"""The records of kernel stack views: a backtrace's frames and exception frames, and what
crash's other ``bt`` options list (text words, found exception frames, named words, raw
stack, stack-end checks).

They hold plain values (addresses as ints) so they serve text, JSON and storage alike, and
import nothing from the dump side: renderers and callers that only consume traces need
nothing else from this package.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from kdx.model.records import Hex

__all__ = ["Backtrace", "ExceptionFrame", "FoundExceptionFrame", "Frame", "REGISTER_NAMES",
           "RawStack", "RawWord", "StackOverflow", "StackSearch", "StackText", "StackWord",
           "WordLabel"]


#: The register order of crash's exception frame block.
REGISTER_NAMES = ("RIP", "RSP", "RFLAGS", "RAX", "RBX", "RCX", "RDX", "RSI", "RDI", "RBP",
                  "R8", "R9", "R10", "R11", "R12", "R13", "R14", "R15", "ORIG_RAX", "CS",
                  "SS")


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


# --- bt -F / -FF: stack words named -------------------------------------------------------


@dataclass(frozen=True)
class WordLabel:
    """What ``bt -F`` shows for a stack word instead of its hex value: the symbol it
    points into (``symbol+offset``), or the slab cache of the object it points into."""

    value: Hex
    symbol: str | None
    slab_cache: str | None


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
