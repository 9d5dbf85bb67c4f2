"""Run several commands in one crash session and split its output per command.

crash prints no separator between piped commands, so each is preceded by an ``eval`` of
a marker number whose answer is easy to find; one crash start serves many comparisons.
``kdx_sections`` cuts a kdx session's output the same way, so the two compare key by key.
"""

from __future__ import annotations

import io
import re
from dataclasses import dataclass, field

from kdx.session.session import Session

MARK = "eval 0x5ca1ab{:02x}"
_MARK = re.compile(r"hexadecimal: 5ca1ab([0-9a-f]{2})\b")
#: The rest of a marker's own ``eval`` answer, on the lines right after its hexadecimal.
_EVAL_LINES = re.compile(r"^\s*(decimal|octal|binary):")


def crash_parts(crash, dump, wanted: list[str]) -> list[str]:  # noqa: ANN001 (fixtures)
    """crash's output of each command of ``wanted`` (in order, repeats allowed), lines
    right-stripped and ends trimmed, from one crash session.

    Only the three lines that follow a marker are taken as the marker's own ``eval``
    answer, so the output of an ``eval`` under test survives.
    """
    script = [line for i, c in enumerate(wanted) for line in (MARK.format(i), c)]
    sections: dict[int, list[str]] = {}
    current, marker_lines = None, 0
    for line in crash(dump, script).splitlines():
        found = _MARK.search(line)
        if found:
            if current is not None and line[:found.start()].strip():
                sections[current].append(line[:found.start()].rstrip())
            current, marker_lines = int(found.group(1), 16), 3
            sections[current] = []
        elif marker_lines and _EVAL_LINES.match(line):
            marker_lines -= 1
        elif current is not None:
            marker_lines = 0
            sections[current].append(line.rstrip())
    assert sorted(sections) == list(range(len(wanted))), "crash's output was not split"
    return ["\n".join(sections[i]).strip("\n") for i in range(len(wanted))]


def gdb_bytes(text: str) -> str:
    r"""crash's text with every character above ASCII written as kdx writes it: the octal
    escapes of its UTF-8 bytes. crash's gdb prints a char array's bytes that happen to
    form valid UTF-8 as characters (garbage bytes past a name's NUL can), kdx escapes
    every byte above 127 (docs/crash-differences.md).

    >>> print(gdb_bytes('name = "x\\000\u9062"'))
    name = "x\000\351\201\242"
    """
    return "".join(c if ord(c) < 128 else "".join(f"\\{b:03o}" for b in c.encode())
                   for c in text)


def crash_sections(crash, dump, wanted: list[str]) -> dict[str, str]:  # noqa: ANN001
    """``crash_parts`` by command, for lists without repeats."""
    return dict(zip(wanted, crash_parts(crash, dump, wanted)))


@dataclass
class KdxRun:
    """What one kdx session printed for a list of commands."""

    sections: dict[str, str]  # command -> its output, lines right-stripped, ends trimmed
    stderr: str  # every warning and error line, in order
    failed: list[str]  # the commands whose execution reported failure
    parts: list[str] = field(default_factory=list)  # the outputs in order, repeats kept


def kdx_sections(target, commands: list[str]) -> KdxRun:  # noqa: ANN001 (Target)
    """Run ``commands`` in one kdx session on ``target``, cut the output per command the
    way ``crash_sections`` cuts crash's, so the two compare key by key."""
    out, err = io.StringIO(), io.StringIO()
    session = Session(target, out=out, err=err)
    parts, failed = [], []
    for command in commands:
        start = out.tell()
        if not session.execute(command):
            failed.append(command)
        text = out.getvalue()[start:]
        parts.append("\n".join(line.rstrip() for line in text.split("\n")).strip("\n"))
    assert "Traceback" not in err.getvalue()
    return KdxRun(dict(zip(commands, parts)), err.getvalue(), failed, parts)


def kdx_outputs(target, commands: list[str]) -> dict[str, str]:  # noqa: ANN001 (Target)
    """``kdx_sections`` for commands that must all succeed: their outputs by command."""
    run = kdx_sections(target, commands)
    assert not run.failed, run.stderr
    return run.sections
