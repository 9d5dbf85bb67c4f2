"""Reading the raw material of a diagnosis from the dump: log, stacks, registers.

Kept apart from the rules so the engine reasons over plain values. Everything is read
through the model (its log reader, its unwinder), so a verdict and the crash commands
never disagree about the same dump; what a filtered dump lacks (excluded pages, missing
debug info) becomes a warning.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

import drgn

from kdx.model.log import KernelLog, dmesg_timestamp
from kdx.model.stack import Frame, StackReader, backtrace

_IRQ_FRAMES = re.compile(r"^(__sysvec_|sysvec_|asm_sysvec_|asm_common_interrupt|common_interrupt"
                         r"|call_timer_fn|__run_timers|run_timer_softirq|handle_softirqs"
                         r"|__do_softirq|irq_exit|__irq_exit_rcu|handle_irq_event"
                         r"|__handle_irq_event_percpu|__hrtimer_run_queues|tasklet_action)")


@dataclass(frozen=True)
class LogText:
    """The model's kernel log as the rules search it: one entry per printed line."""

    lines: list[str]  # with timestamps, as dmesg prints them
    bare: list[str]  # the same lines without timestamps, for matching


def log_text(log: KernelLog) -> LogText:
    """``log`` (read by the model's one log reader) as dmesg lines: a record's first line
    carries its timestamp, the lines it continues onto do not."""
    lines: list[str] = []
    bare: list[str] = []
    for record in log.records:
        stamp = dmesg_timestamp(record.timestamp_ns)
        for i, text in enumerate(record.lines or [""]):
            bare.append(text)
            lines.append(f"{stamp} {text}" if i == 0 else text)
    return LogText(lines, bare)


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
class TaskStack:
    """A task's kernel frames, the model's own records as ``bt`` shows them, and the
    registers saved where an exception interrupted one of them (by frame index, in
    the lower-case names capstone and drgn use), which the culprit's code reasoning
    needs."""

    frames: list[Frame]
    registers: dict[int, dict[str, int]] = field(default_factory=dict)

    def registers_at(self, index: int) -> dict[str, int]:
        """The registers of the exception that interrupted frame ``index``, if any."""
        return self.registers.get(index, {})

    def head(self, count: int) -> TaskStack:
        """The innermost ``count`` frames."""
        return TaskStack(self.frames[:count],
                         {i: r for i, r in self.registers.items() if i < count})


def frame_label(frame: Frame) -> str:
    """``function+offset [module] file:line``, as a verdict names a frame."""
    if frame.function is None:
        return f"{frame.pc:#x}"
    text = f"{frame.function}+{frame.offset:#x}" if frame.offset is not None else (
        frame.function)
    if frame.module:
        text += f" [{frame.module}]"
    if frame.source_file:
        text += f" {Path(frame.source_file).name}:{frame.source_line}"
    return text + (" (inline)" if frame.inline else "")


#: crash's register names (the bt model's) to the lower-case ones capstone and drgn use.
_REGISTER_NAMES = {"RFLAGS": "rflags", "ORIG_RAX": "orig_rax"}


def task_frames(reader: StackReader, task: drgn.Object) -> tuple[TaskStack, list[str]]:
    """The kernel frames of ``task`` as ``bt`` shows them (same unwinder, so a verdict's
    stack and ``bt`` always agree, modules without debug info included), and the
    unwinder's warnings. Frames below the user-mode entry are not kernel frames."""
    bt = backtrace(reader, task)
    registers = {e.position: _lower_names(e.registers) for e in bt.exception_frames
                 if not e.user_mode and e.position < len(bt.frames)
                 and bt.frames[e.position].is_exception_frame}
    return TaskStack(list(bt.frames), registers), list(bt.warnings)


def _lower_names(registers: dict[str, int | None]) -> dict[str, int]:
    return {_REGISTER_NAMES.get(name, name.lower()): value
            for name, value in registers.items() if value is not None}


def ran_in_interrupt(frames: list[Frame], culprit_index: int) -> bool:
    """True when an interrupt or softirq entry sits below (called) the culprit frame."""
    return any(f.function and _IRQ_FRAMES.match(f.function) for f in frames[culprit_index + 1:])
