"""Run several commands in one crash session and split its output per command.

crash prints no separator between piped commands, so each is preceded by an ``eval`` of
a marker number whose answer is easy to find; one crash start serves many comparisons.
``kdx_sections`` cuts a kdx session's output the same way, so the two compare key by key.
"""

from __future__ import annotations

import io
import re
from dataclasses import dataclass

from kdx.session.session import Session

MARK = "eval 0x5ca1ab{:02x}"
_MARK = re.compile(r"hexadecimal: 5ca1ab([0-9a-f]{2})\b")
_EVAL_LINES = re.compile(r"^\s*(decimal|octal|binary):")


def crash_sections(crash, dump, wanted: list[str]) -> dict[str, str]:  # noqa: ANN001
    script = [line for i, c in enumerate(wanted) for line in (MARK.format(i), c)]
    sections: dict[int, list[str]] = {}
    current = None
    for line in crash(dump, script).splitlines():
        found = _MARK.search(line)
        if found:
            if current is not None and line[:found.start()].strip():
                sections[current].append(line[:found.start()].rstrip())
            current = int(found.group(1), 16)
            sections[current] = []
        elif current is not None and not _EVAL_LINES.match(line):
            sections[current].append(line.rstrip())
    return {wanted[i]: "\n".join(lines).strip("\n") for i, lines in sections.items()}


@dataclass
class KdxRun:
    """What one kdx session printed for a list of commands."""

    sections: dict[str, str]  # command -> its output, lines right-stripped, ends trimmed
    stderr: str  # every warning and error line, in order
    failed: list[str]  # the commands whose execution reported failure


def kdx_sections(target, commands: list[str]) -> KdxRun:  # noqa: ANN001 (Target)
    """Run ``commands`` in one kdx session on ``target``, cut the output per command the
    way ``crash_sections`` cuts crash's, so the two compare key by key."""
    out, err = io.StringIO(), io.StringIO()
    session = Session(target, out=out, err=err)
    sections, failed = {}, []
    for command in commands:
        start = out.tell()
        if not session.execute(command):
            failed.append(command)
        text = out.getvalue()[start:]
        sections[command] = "\n".join(line.rstrip() for line in text.split("\n")).strip("\n")
    assert "Traceback" not in err.getvalue()
    return KdxRun(sections, err.getvalue(), failed)


def kdx_outputs(target, commands: list[str]) -> dict[str, str]:  # noqa: ANN001 (Target)
    """``kdx_sections`` for commands that must all succeed: their outputs by command."""
    run = kdx_sections(target, commands)
    assert not run.failed, run.stderr
    return run.sections
