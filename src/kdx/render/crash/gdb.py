"""gdb's own layout for ``gdb bt`` and ``gdb disassemble`` (records from dataclasses import replace

from kdx.model.gdbstack)."""

from __future__ import annotations

from dataclasses import replace

from kdx.model.gdbstack import GdbDisassembly, GdbFrame

__all__ = ["render_gdb_backtrace", "render_gdb_disassembly"]


def render_gdb_backtrace(frames: list[GdbFrame], more: bool, full: bool) -> str:
    """``#2  0xffffffff8253... in do_init_module (mod=0x...) at kernel/module/main.c:2478``;
    ``bt full`` adds each frame's locals, indented as gdb indents them."""
    out: list[str] = []
    previous: GdbFrame | None = None
    for frame in frames:
        # gdb gives the address to the innermost frame at a pc; the function an inline
        # frame was inlined into follows at the same pc without it
        folded = previous is not None and previous.inline and previous.pc == frame.pc
        out.append(_frame_line(frame, show_address=not folded))
        previous = frame
        if full:
            out += _locals(frame)
    if more:
        out.append("(More stack frames follow...)")
    return "\n".join(out)


def _frame_line(frame: GdbFrame, show_address: bool) -> str:
    where = f"{frame.pc:#018x} in " if show_address else ""
    args = ", ".join(f"{name}={value}" for name, value in frame.arguments)
    line = f"#{frame.level:<3d}{where}{frame.function or '??'} ({args})"
    if frame.file and frame.line:
        line += f" at {frame.file}:{frame.line}"  # as the line table names it, like gdb
    return line


def _locals(frame: GdbFrame) -> list[str]:
    if not frame.debug_info:
        return ["No symbol table info available."]
    if not frame.local_values:
        return ["No locals."]
    return [f"        {name} = {value}" for name, value in frame.local_values]


def render_gdb_disassembly(dis: GdbDisassembly) -> str:
    """gdb's listing: ``<+N>`` offsets for a whole function, ``<sym+N>`` for a range."""
    if dis.function:
        head = f"Dump of assembler code for function {dis.function}:"
    else:
        head = f"Dump of assembler code from {dis.start:#x} to {dis.end:#x}:"
    out = [head]
    for insn in dis.instructions:
        offset = insn.address - dis.start
        label = f"<+{offset}>" if dis.function else _range_label(insn.symbol)
        encoding = " ".join(insn.bytes[i:i + 2] for i in range(0, len(insn.bytes), 2))
        raw = f"\t{encoding}" if dis.raw else ""
        text = replace(insn, ftrace_nop=False).text  # crash's tag, not gdb's
        out.append(f"   {insn.address:#x} {label}:{raw}\t{text}".rstrip())
    out.append("End of assembler dump.")
    return "\n".join(out)


def _range_label(symbol: str | None) -> str:
    """gdb spells the offset even when it is zero: ``<schedule+0>``."""
    if not symbol:
        return ""
    return f"<{symbol}>" if "+" in symbol else f"<{symbol}+0>"
