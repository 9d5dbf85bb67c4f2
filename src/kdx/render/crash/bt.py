"""crash's ``bt`` text: backtraces laid out as crash 8.0.6 prints them (x86_64.c).

The layout people scan daily: the task header, ``#N [stack slot] function at address``
lines with `` [module]`` for module code, exception frames as register blocks right after
the entry frame that caught them, ``--- <IRQ stack> ---`` where the trace leaves an IRQ or
exception stack, and the user-mode registers last. ``-f`` words come after a frame's line
(and after its exception block), ``-l`` puts ``file: line`` under a frame. Lines carry no
trailing blanks (crash's ``-f`` lines have one).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from kdx.model.stack import (
    Backtrace,
    ExceptionFrame,
    FoundExceptionFrame,
    Frame,
    RawStack,
    StackOverflow,
    StackSearch,
    StackText,
    WordLabel,
)
from kdx.render.crash.layout import task_header


@dataclass(frozen=True)
class BtOptions:
    """How to print: crash's ``-l``, ``-s``, ``-x``/``-d``, ``-f`` and ``-F``/``-FF``
    (``symbolic`` 1 or 2, with the ``labels`` of the words that name something)."""

    lines: bool = False
    symbol_offsets: bool = False
    hex_offsets: bool = False
    full: bool = False
    symbolic: int = 0
    labels: dict[int, WordLabel] = field(default_factory=dict)


def _hex(value: int | None, width: int) -> str:
    return "?" * width if value is None else f"{value:0{width}x}"


def register_block(registers: dict[str, int | None]) -> list[str]:
    """The seven register lines of crash's exception frame."""
    r = {name: value for name, value in registers.items()}

    def h(name: str, width: int = 16) -> str:
        return _hex(r.get(name), width)

    return [
        f"    RIP: {h('RIP')}  RSP: {h('RSP')}  RFLAGS: {h('RFLAGS', 8)}",
        f"    RAX: {h('RAX')}  RBX: {h('RBX')}  RCX: {h('RCX')}",
        f"    RDX: {h('RDX')}  RSI: {h('RSI')}  RDI: {h('RDI')}",
        f"    RBP: {h('RBP')}   R8: {h('R8')}   R9: {h('R9')}",
        f"    R10: {h('R10')}  R11: {h('R11')}  R12: {h('R12')}",
        f"    R13: {h('R13')}  R14: {h('R14')}  R15: {h('R15')}",
        f"    ORIG_RAX: {h('ORIG_RAX')}  CS: {h('CS', 4)}  SS: {h('SS', 4)}",
    ]


def exception_rip(function: str | None, offset: int | None) -> str:
    """crash's ``[exception RIP: ...]`` text; offsets are decimal, as gdb's radix is."""
    if function is None:
        return "    [exception RIP: unknown or invalid address]"
    return f"    [exception RIP: {function}{f'+{offset}' if offset else ''}]"


def _symbol(frame: Frame, options: BtOptions) -> str:
    name = frame.function or f"{frame.pc:x}"
    if options.symbol_offsets and frame.offset:
        name += f"+0x{frame.offset:x}" if options.hex_offsets else f"+{frame.offset}"
    return name


def frame_line(frame: Frame, options: BtOptions) -> str:
    level = frame.level or 0
    module = f" [{frame.module}]" if frame.module else ""
    return (f"{' ' if level < 10 else ''}#{level} [{frame.sp:8x}] {_symbol(frame, options)} "
            f"at {frame.pc:x}{module}")


def _source_line(file: str | None, line: int | None) -> list[str]:
    return [f"    {file}: {line}"] if file and line else []


def _word(value: int, options: BtOptions) -> str:
    """One ``-f`` word: hex, or with ``-F`` its symbol or ``[slab-cache]`` (``-FF``:
    ``[address:slab-cache]``), left-aligned in 16 columns as crash pads them."""
    label = options.labels.get(value) if options.symbolic else None
    if label is None:
        return f"{value:016x}"
    if label.symbol is not None:
        return f"{label.symbol:<16}"
    text = f"[{value:x}:{label.slab_cache}]" if options.symbolic > 1 \
        else f"[{label.slab_cache}]"
    return f"{text:<16}"


def _data_lines(frame: Frame, options: BtOptions = BtOptions()) -> list[str]:
    if not frame.data:
        return []
    out = []
    address = frame.sp + 8
    for i in range(0, len(frame.data), 2):
        words = " ".join(_word(w, options) for w in frame.data[i:i + 2])
        out.append(f"    {address + 8 * i:x}: {words}".rstrip())
    return out


def _separator(stack: str) -> str:
    return "--- <IRQ stack> ---" if stack == "irq" else f"--- <{stack} exception stack> ---"


def exception_block(eframe: ExceptionFrame, options: BtOptions) -> list[str]:
    out = [] if eframe.user_mode else [exception_rip(eframe.function, eframe.offset)]
    out += register_block(eframe.registers)
    if options.lines and not eframe.user_mode:
        out += _source_line(eframe.source_file, eframe.source_line)
    return out


def render_backtrace(bt: Backtrace, options: BtOptions = BtOptions()) -> str:
    """One task's ``bt`` output, header included (only the header for an idle task
    ``bt -n idle`` skipped)."""
    out = [task_header(bt.pid, bt.task, bt.cpu, bt.comm)]
    if bt.start == "skipped":
        return out[0]
    eframes = {e.position: e for e in bt.exception_frames}
    pending: list[str] = []  # the previous frame's -f words, printed before the next frame
    previous_stack: str | None = None
    group_start = 0
    for i, frame in enumerate(bt.frames):
        if frame.inline:
            continue
        innermost = bt.frames[group_start]
        group_start = i + 1
        if i in eframes:
            out += exception_block(eframes[i], options)
        if frame.level is None:
            continue
        out += pending
        if previous_stack not in (None, "task", "unknown", "user", frame.stack):
            out.append(_separator(previous_stack))
        out.append(frame_line(frame, options))
        if options.lines:
            out += _source_line(innermost.source_file, innermost.source_line)
        pending = _data_lines(frame, options) if options.full else []
        previous_stack = frame.stack
    if len(bt.frames) in eframes:
        out += exception_block(eframes[len(bt.frames)], options)
    if bt.start == "active":
        out.append("(active)")
    elif not bt.frames and not bt.exception_frames:
        out.append("(no stack frames)")
    return "\n".join(out)


def render_backtraces(traces: list[Backtrace], options: BtOptions = BtOptions()) -> str:
    """Several tasks, separated by a blank line as crash separates them."""
    return "\n\n".join(render_backtrace(bt, options) for bt in traces)


# --- bt -t / -T -------------------------------------------------------------------------------


def render_text(scan: StackText, options: BtOptions = BtOptions()) -> str:
    out = [task_header(scan.pid, scan.task, scan.cpu, scan.comm)]
    if scan.start_function is not None and scan.start_pc is not None:
        out.append(f"{' ' * 14}START: {scan.start_function} at {scan.start_pc:x}")
    previous_stack: str | None = None
    for word in scan.words:
        if previous_stack not in (None, "task", "unknown", word.stack):
            out.append(_separator(previous_stack))
        previous_stack = word.stack
        name = word.function
        if options.symbol_offsets and word.offset:
            name += f"+0x{word.offset:x}" if options.hex_offsets else f"+{word.offset}"
        module = f" [{word.module}]" if word.module else ""
        out.append(f"  [{word.address:16x}] {name} at {word.value:x}{module}")
        if word.exception is not None:
            out += exception_block(word.exception, options)
    if scan.user_frame is not None:
        out += register_block(scan.user_frame.registers)
    return "\n".join(out)


# --- bt -e / -E ---------------------------------------------------------------------------------


def _found_block(found: FoundExceptionFrame) -> list[str]:
    mode = "USER" if found.user_mode else "KERNEL"
    out = ["", f"  {mode}-MODE EXCEPTION FRAME AT: {found.address:x}"]
    if not found.user_mode:
        out.append(exception_rip(found.function, found.offset))
    return out + register_block(found.registers)


def render_task_search(search: StackSearch) -> str:
    """``bt -e`` for one task."""
    out = [task_header(search.pid or 0, search.task or 0, search.cpu, search.comm or "")]
    for found in search.frames:
        out += _found_block(found)
    return "\n".join(out)


def render_cpu_search(searches: list[StackSearch]) -> str:
    """``bt -E``: each IRQ and exception stack, found frames or ``(none found)``."""
    out: list[str] = []
    for search in searches:
        name = "IRQ STACK" if search.stack == "irq" else f"{search.stack} EXCEPTION STACK"
        out.append(f"CPU {search.cpu} {name}:")
        if not search.frames:
            out += ["(none found)", ""]
            continue
        for found in search.frames:
            out += _found_block(found)
        out.append("")
    return "\n".join(out).rstrip("\n")


def render_referencing(traces: list[Backtrace], options: BtOptions = BtOptions()) -> str:
    """``bt -R``: each trace that references the value, followed by a blank line."""
    return "".join(render_backtrace(bt, options) + "\n\n" for bt in traces)


# --- bt -r ----------------------------------------------------------------------------------


def render_raw(raw: RawStack) -> str:
    """``bt -r``: the header, then the stack as ``rd -s`` shows memory: two words a line,
    a word that points into a symbol named ``symbol+offset``."""
    out = [task_header(raw.pid, raw.task, raw.cpu, raw.comm)]
    for i in range(0, len(raw.words), 2):
        pair = raw.words[i:i + 2]
        words = " ".join(f"{w.symbol:<16}" if w.symbol else f"{w.value:016x}"
                         for w in pair)
        out.append(f"{pair[0].address:16x}:  {words}".rstrip())
    return "\n".join(out)


# --- bt -v ----------------------------------------------------------------------------------


def render_overflows(found: list[StackOverflow]) -> str:
    """``bt -v``: each task whose stack end lost its magic, or crash's all-clear line."""
    if not found:
        return "No stack overflows detected"
    blocks = []
    for item in found:
        value = "?" if item.value is None else f"{item.value:x}"
        blocks.append(f"{task_header(item.pid, item.task, item.cpu, item.comm)}\n"
                      f"  possible stack overflow: {item.location:x}: {value} != "
                      "STACK_END_MAGIC\n")
    return "\n".join(blocks)
