"""crash's ``dis`` output: instructions as gdb prints them, through crash's filter.

Each line is ``0xADDRESS <symbol+offset>:`` and a tab, then the instruction: the
mnemonic padded to six columns, GNU AT&T operands, ``<symbol+offset>`` after a call or
jump target, ``# 0xADDRESS <symbol>`` after a %rip-relative operand and ``[FTRACE NOP]``
on the nop ftrace patches at a function's start (crash's x86_64_dis_filter). Offsets are
decimal, as in crash, unless ``-x`` asks for hexadecimal.

``-l`` puts crash's ``FILE: LINE`` line before each run of instructions from one source
line. When kdx has the source file (module sources in the lab, a tree the user points
to), the source text follows it, ``objdump -S`` style, numbered as gdb numbers lines:
crash has no way to show it, and it is what tells a reader which statement faulted.
``-s`` is crash's source listing: ``FILE:``/``LINE:`` and the lines around, ``*`` on the
one the address belongs to.
"""

from __future__ import annotations

from kdx.model.disasm import (
    CONTEXT_BEFORE,
    Disassembly,
    Instruction,
    SourceListing,
    display_path,
)


def instruction_line(insn: Instruction) -> str:
    """``0xffffffffc05a9011 <hello_init+17>:\\tmovb   $0x1,0x0``."""
    label = f"{insn.address:#x} <{insn.symbol}>:" if insn.symbol else f"{insn.address:#x}:"
    return f"{label}\t{insn.text}".rstrip()


def render_disassembly(dis: Disassembly, *, lines: bool = False) -> str:
    """The instructions, with ``-l``'s source-line headers (and source text when found).
    User code is printed as crash prints it, straight from gdb's ``x/i``: indented by
    three spaces, without symbols."""
    if dis.space == "user virtual":
        return "\n".join("   " + instruction_line(i) for i in dis.instructions)
    out: list[str] = []
    previous = ""
    printed: dict[str, int] = {}
    for insn in dis.instructions:
        if lines:
            header = ""
            if insn.source_file and insn.source_line:
                header = f"{display_path(insn.source_file, dis.line_prefixes)}: " \
                         f"{insn.source_line}"
            if header != previous:
                out.append(header)
                previous = header
                if header:
                    out += _source_text(dis, insn, printed)
        out.append(instruction_line(insn))
    return "\n".join(out)


def _source_text(dis: Disassembly, insn: Instruction, printed: dict[str, int]) -> list[str]:
    """The source lines a group stands for, gdb-numbered: the line itself, and the lines
    skipped since the last one shown when the code moved forward a little (objdump -S)."""
    assert insn.source_file is not None and insn.source_line is not None
    src = dis.source(insn.source_file)
    if src is None or src.path is None:
        return []
    line = insn.source_line
    last = printed.get(insn.source_file)
    first = line
    if last is not None and 0 < line - last <= CONTEXT_BEFORE:
        first = last + 1
    shown = [f"{n}\t{text}" for n in range(first, line + 1)
             if (text := src.line(n)) is not None]
    printed[insn.source_file] = max(line, last or 0)
    return shown


def render_listing(listing: SourceListing) -> str:
    """crash's ``dis -s``: ``FILE:`` and ``LINE:``, a blank line, the numbered lines with
    ``*`` marking the address's own, and a blank line to end."""
    out = [f"FILE: {listing.file or '(unknown)'}",
           f"LINE: {listing.line if listing.line else '(unknown)'}", ""]
    for number, text in listing.lines:
        mark = "* " if number == listing.line else "  "
        out.append(f"{mark}{number}\t{text}")
    text = "\n".join(out)
    return text + "\n" if listing.lines else text
