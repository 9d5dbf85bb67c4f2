"""The kernel's own crash report read from log text: its RIP line and its call traces.

The fast pass has no types and no unwinder, only the log; and a ``vmcore-dmesg.txt`` has
nothing else. The kernel prints what the full analysis reads from memory: the faulting
function (``RIP: 0010:hello_init+0x11/0x1000 [hello_crash]``) and the stack its unwinder
walked (``Call Trace:``), marking the entries it could not vouch for with ``?``. This
module turns that text into frames in stack order, the shape the signature is made of.
It also turns a dmesg-style file (timestamps, caller ids) into the bare lines the rules
search, as the dump's log model gives them.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

__all__ = ["LogFrame", "bare_lines", "call_trace", "culprit_frames", "rip_frame"]

#: ``[   12.345678] ``, optionally followed by a caller id ``[    T123] `` / ``[     C1] ``.
_STAMP = re.compile(r"^\[\s*\d+\.\d+\](?:\s*\[\s*[TC]\d+\])?\s?")
#: A syslog priority prefix (``<4>``), as ``dmesg -r`` and some consoles keep it.
_PRIORITY = re.compile(r"^<\d{1,3}>")
#: ``? func+0x1/0x2 [module buildid]``, or the old ``[<ffffffff81000000>] func+...``.
_FRAME = re.compile(r"^\s*(?:\[<[0-9a-f]+>\]\s*)?(?P<unreliable>\? )?"
                    r"(?P<func>[A-Za-z_][\w.]*)\+0x[0-9a-f]+/0x[0-9a-f]+"
                    r"(?: \[(?P<module>[\w-]+)(?: [0-9a-f]+)?\])?\s*$")
#: ``RIP: 0010:func+0x11/0x1000 [module]`` (also the old ``RIP: 0010:[<addr>] func+..``).
_RIP = re.compile(r"\bRIP: (?P<cs>[0-9a-f]{4}):(?:\[<[0-9a-f]+>\]\s*)?"
                  r"(?P<func>[A-Za-z_][\w.]*)\+0x[0-9a-f]+/0x[0-9a-f]+"
                  r"(?: \[(?P<module>[\w-]+)(?: [0-9a-f]+)?\])?")
#: Lines a call trace may hold besides frames: context markers and register dumps.
_TRACE_NOISE = re.compile(r"^\s*(</?(IRQ|TASK|NMI|SOFTIRQ|EOE|EOI)>|"
                          r"(RIP|RSP|RAX|RBX|RCX|RDX|RSI|RDI|RBP|R\d+|Code|FS|GS|CS|CR\d|"
                          r"DR\d|PKRU)\s*:|\?\s+0x[0-9a-f]+\s*$|0x[0-9a-f]+\s*$)")
_PANIC_LINE = "Kernel panic - not syncing"
#: How far after a report's first line its trace is looked for.
_WINDOW = 120


@dataclass(frozen=True)
class LogFrame:
    """One entry of a printed call trace (or a RIP line)."""

    function: str
    module: str | None
    reliable: bool  # False for the ``?`` entries the unwinder did not vouch for


def bare_lines(text: str) -> list[str]:
    """The log lines without timestamps, caller ids or priorities, as the rules read
    them; a record's indented continuation lines are kept as they are."""
    out = []
    for line in text.splitlines():
        line = _PRIORITY.sub("", line.rstrip("\r"))
        out.append(_STAMP.sub("", line, count=1))
    return out


def rip_frame(line: str) -> LogFrame | None:
    """The kernel-mode function a RIP line names (None for user mode or an address)."""
    found = _RIP.search(line)
    if found is None or int(found["cs"], 16) & 3:
        return None
    return LogFrame(found["func"], found["module"], True)


def call_trace(lines: list[str], start: int) -> tuple[list[LogFrame], int]:
    """The frames of the first ``Call Trace:`` at or after line ``start`` (reliable and
    unreliable, RIP lines of interrupted contexts included) and the line after it; an
    empty list and ``start`` when there is none close by."""
    head = next((i for i in range(start, min(len(lines), start + _WINDOW))
                 if lines[i].strip().startswith("Call Trace:")), None)
    if head is None:
        return [], start
    frames: list[LogFrame] = []
    i = head + 1
    while i < len(lines):
        line = lines[i]
        found = _FRAME.match(line)
        if found:
            frames.append(LogFrame(found["func"], found["module"],
                                   found["unreliable"] is None))
        elif (rip := rip_frame(line)) is not None:
            frames.append(rip)
        elif not _TRACE_NOISE.match(line):
            break
        i += 1
    return frames, i


def culprit_frames(lines: list[str], start: int, strategy: str) -> list[LogFrame]:
    """The reliable frames from where the report starts, in stack order: for an
    exception the RIP line's function then its callers; for a panic the trace after
    ``Kernel panic - not syncing`` (panic() and what ran before it included: the
    signature skips those); for a blocked task its own trace. ``strategy`` is one of
    :mod:`kdx.diagnosis.rules`' ``CULPRIT_*`` names."""
    from kdx.diagnosis import rules

    if strategy in (rules.CULPRIT_EXCEPTION, rules.CULPRIT_WARN_SITE):
        return _exception_frames(lines, start)
    if strategy in (rules.CULPRIT_PANIC_CALLER, rules.CULPRIT_PROCESS):
        panic = next((i for i in range(start, min(len(lines), start + 400))
                      if _PANIC_LINE in lines[i]), start)
        frames, _end = call_trace(lines, panic)
        return [f for f in frames if f.reliable]
    frames, _end = call_trace(lines, start)
    return [f for f in frames if f.reliable]


def _exception_frames(lines: list[str], start: int) -> list[LogFrame]:
    """The RIP line's function, then the reliable frames of the trace that follows it."""
    for i in range(start, min(len(lines), start + _WINDOW)):
        rip = rip_frame(lines[i])
        if rip is not None:
            frames, _end = call_trace(lines, i + 1)
            return [rip] + [f for f in frames if f.reliable]
        if i > start and _PANIC_LINE in lines[i]:
            break
    return []
