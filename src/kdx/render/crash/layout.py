"""Column helpers shared by the crash-style renderers: crash's field justification.

crash lays out nearly every table with one routine (tools.c mkstring): a value is
left-, right- or centre-justified in a field, and when centring cannot be exact the odd
space goes to the side the caller names. Reproducing that rule once keeps headers and rows
aligned exactly as crash users read them. These helpers only place text; they never decide
what a column holds.
"""

from __future__ import annotations

#: Width of a kernel virtual address column on 64-bit machines (crash's VADDR_PRLEN).
VADDR_WIDTH = 16
#: Width of a user virtual address column on x86_64 (crash's UVADDR_PRLEN).
UVADDR_WIDTH = 10


def field(text: str, width: int, *, center: bool = False, left: bool = False,
          right: bool = False) -> str:
    """``text`` placed in ``width`` columns the way crash's mkstring places it.

    Text as wide as the field or wider comes back unchanged. Centred text that cannot be
    centred exactly leans left unless ``right`` is given, as in crash.
    """
    extra = width - len(text)
    if extra <= 0:
        return text
    if center:
        half = extra // 2
        if extra % 2:
            lead, trail = (half + 1, half) if right else (half, half + 1)
        else:
            lead = trail = half
        return " " * lead + text + " " * trail
    if left:
        return text + " " * extra
    if right:
        return " " * extra + text
    return text


def hexaddr(value: int) -> str:
    """An address as crash prints it: lowercase hex without ``0x``."""
    return f"{value:x}"


def rstrip_lines(text: str) -> str:
    """Drop trailing blanks on every line: kdx never ends a line with whitespace, where
    crash sometimes does (see docs/crash-differences.md)."""
    return "\n".join(line.rstrip() for line in text.split("\n"))


def task_header(pid: int, task: int, cpu: int | None, command: str) -> str:
    """crash's one-line task header (``PID: 1  TASK: ...  CPU: 0  COMMAND: "init"``)
    printed above the output of ``files``, ``vm`` and other per-task commands."""
    cpu_text = "-" if cpu is None else str(cpu)
    return (f"PID: {pid:<7d}  TASK: {field(hexaddr(task), VADDR_WIDTH, left=True)}  "
            f"CPU: {cpu_text:<3}  COMMAND: \"{command}\"")
