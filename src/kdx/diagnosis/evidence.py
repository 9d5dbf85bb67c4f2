"""Reading the raw material of a diagnosis from the dump: log, stacks, registers.

Kept apart from the rules so the engine reasons over plain values; every reader here
tolerates what a filtered dump lacks (excluded pages, missing debug info) and says so.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import drgn
from drgn.helpers.linux.printk import get_dmesg

from kdx.textsafe import clean_bytes

_TIMESTAMP = re.compile(r"^\[\s*\d+\.\d+\]\s?")
#: Kernel addresses start here on x86-64; anything below is a user frame.
KERNEL_START = 0xFFFF800000000000
_IRQ_FRAMES = re.compile(r"^(__sysvec_|sysvec_|asm_sysvec_|asm_common_interrupt|common_interrupt"
                         r"|call_timer_fn|__run_timers|run_timer_softirq|handle_softirqs"
                         r"|__do_softirq|irq_exit|__irq_exit_rcu|handle_irq_event"
                         r"|__handle_irq_event_percpu|__hrtimer_run_queues|tasklet_action)")


@dataclass(frozen=True)
class LogText:
    lines: list[str]  # with timestamps, as the kernel printed them
    bare: list[str]  # the same lines without timestamps, for matching


def read_log(prog: drgn.Program) -> LogText:
    text = clean_bytes(get_dmesg(prog))
    lines = text.splitlines()
    return LogText(lines, [_TIMESTAMP.sub("", line) for line in lines])


def oops_block(log: LogText, start: int) -> list[str]:
    """The report that starts at line ``start``: a few lines of lead-in, then up to the
    end-of-trace or panic line."""
    first = max(0, start - 3)
    out = []
    for i in range(first, min(len(log.lines), start + 80)):
        out.append(log.lines[i])
        bare = log.bare[i]
        if i > start and (bare.startswith("---[ end") or "Kernel Offset:" in bare):
            break
    return out


@dataclass(frozen=True)
class FrameInfo:
    """One stack frame, reduced to plain values."""

    pc: int
    function: str | None
    offset: int | None
    module: str | None
    file: str | None
    line: int | None
    interrupted: bool
    inline: bool
    registers: dict[str, int]

    def label(self) -> str:
        if self.function is None:
            return f"{self.pc:#x}"
        text = f"{self.function}+{self.offset:#x}" if self.offset is not None else self.function
        if self.module:
            text += f" [{self.module}]"
        if self.file:
            text += f" {Path(self.file).name}:{self.line}"
        return text + (" (inline)" if self.inline else "")


def _symbol(prog: drgn.Program, pc: int) -> tuple[str | None, int | None]:
    try:
        sym = prog.symbol(pc)
        return sym.name, pc - sym.address
    except LookupError:
        return None, None


def _module_name(prog: drgn.Program, pc: int) -> str | None:
    try:
        mod = prog.module(pc)
    except LookupError:
        return None
    return None if mod.name == "kernel" else mod.name


def frames_of(prog: drgn.Program, trace: drgn.StackTrace) -> list[FrameInfo]:
    """Kernel frames of ``trace``, stopping at the first user-space address (drgn's
    unwinder may otherwise walk on through user memory)."""
    out: list[FrameInfo] = []
    for frame in trace:
        pc = frame.pc
        if pc < KERNEL_START:
            break
        name, offset = _symbol(prog, pc)
        function = frame.name or name
        if function and name and function != name and not frame.is_inline:
            offset = _function_offset(prog, function, pc, offset)
        try:
            file, line, _column = frame.source()
        except LookupError:
            file, line = None, None
        regs = {}
        if frame.interrupted:
            try:
                regs = {k: int(v) for k, v in frame.registers().items()}
            except (LookupError, ValueError):
                regs = {}
        out.append(FrameInfo(pc, function, None if frame.is_inline else offset,
                             _module_name(prog, pc), file, line, bool(frame.interrupted),
                             bool(frame.is_inline), regs))
    return out


def _function_offset(prog: drgn.Program, function: str, pc: int, fallback: int | None
                     ) -> int | None:
    """Offset of ``pc`` in the DWARF function (an alias such as init_module may own the
    ELF symbol of hello_init)."""
    try:
        obj = prog.function(function)
        return pc - obj.address_
    except (LookupError, ValueError, TypeError):
        return fallback


def ran_in_interrupt(frames: list[FrameInfo], culprit_index: int) -> bool:
    """True when an interrupt or softirq entry sits below (called) the culprit frame."""
    return any(f.function and _IRQ_FRAMES.match(f.function) for f in frames[culprit_index + 1:])


def task_trace(prog: drgn.Program, task: drgn.Object) -> drgn.StackTrace | None:
    """The stack of ``task``: the crashed thread's own registers for the panic task."""
    pid = int(task.pid)
    try:
        crashed = prog.crashed_thread()
        if crashed.tid == pid or (pid == 0 and crashed.object == task):
            return crashed.stack_trace()
    except (LookupError, ValueError):
        pass
    try:
        return prog.stack_trace(task)
    except (LookupError, ValueError, drgn.FaultError):
        return None
