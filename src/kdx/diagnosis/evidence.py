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

from kdx.model.stack import StackReader, backtrace
from kdx.textsafe import clean_bytes

_TIMESTAMP = re.compile(r"^\[\s*\d+\.\d+\]\s?")
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


#: crash's register names (the bt model's) to the lower-case ones capstone and drgn use.
_REGISTER_NAMES = {"RFLAGS": "rflags", "ORIG_RAX": "orig_rax"}


def task_frames(reader: StackReader, task: drgn.Object) -> tuple[list[FrameInfo], list[str]]:
    """The kernel frames of ``task`` as ``bt`` shows them (same unwinder, so a verdict's
    stack and ``bt`` always agree, modules without debug info included), and the
    unwinder's warnings. Frames below the user-mode entry are not kernel frames."""
    bt = backtrace(reader, task)
    registers = {e.position: e.registers for e in bt.exception_frames if not e.user_mode}
    out = []
    for i, frame in enumerate(bt.frames):
        regs = registers.get(i, {}) if frame.is_exception_frame else {}
        out.append(FrameInfo(frame.pc, frame.function, frame.offset, frame.module,
                             frame.source_file, frame.source_line, frame.is_exception_frame,
                             frame.inline, _lower_names(regs)))
    return out, list(bt.warnings)


def _lower_names(registers: dict[str, int | None]) -> dict[str, int]:
    return {_REGISTER_NAMES.get(name, name.lower()): value
            for name, value in registers.items() if value is not None}


def ran_in_interrupt(frames: list[FrameInfo], culprit_index: int) -> bool:
    """True when an interrupt or softirq entry sits below (called) the culprit frame."""
    return any(f.function and _IRQ_FRAMES.match(f.function) for f in frames[culprit_index + 1:])
