"""The crash utility as a test oracle: what kdx reports is checked against what crash says.

The oracle is trixie's crash 8.0.6 run inside the lab's trixie chroot (bookworm's 8.0.2
misreads the kernels the lab tests). This module only runs crash and parses its output; it
never interprets a dump itself, so a bug in kdx cannot hide in the oracle too.

Why crash's output is predictable here: with ``-s`` and stdin a pipe, crash prints neither
its banner, its prompt nor the commands it reads, so stdout holds only the commands'
output. It never pages either, because it picks a pager only when stdout is a terminal and
ours is always a pipe. (``set scroll off`` is deliberately not sent: with no pager chosen
it changes nothing and prints a ``scroll: off (none)`` line into the output.)
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Sequence

from kdx.errors import KdxError
from kdx.lab.roots import ensure_root, run_in_root


def _dirs_to_bind(*files: Path) -> list[Path]:
    """Directories crash must see for ``files``: each one's own and its symlink target's.

    Binding the symlink's directory keeps the path crash prints equal to the one given;
    binding the target's directory lets the link resolve inside the root, where the rest
    of the host is invisible.
    """
    dirs: list[Path] = []
    for file in files:
        for path in (Path(os.path.abspath(file)), Path(file).resolve()):
            if path.parent not in dirs:
                dirs.append(path.parent)
    return dirs


def _failure_detail(stderr: bytes, stdout: bytes) -> str:
    """The lines of a failed crash start worth showing, on one line.

    crash prints its start-up errors as ``crash: ...`` on stdout or stderr, often followed
    by a usage text that hides them in a plain tail, so those lines come first.
    """
    lines = [
        line.strip()
        for raw in (stderr, stdout)
        for line in raw.decode("utf-8", errors="replace").splitlines()
        if line.strip()
    ]
    errors = [line for line in lines if line.startswith("crash: ")]
    return " | ".join((errors or lines)[-3:]) or "no output"


def run_crash(
    cache: Path,
    vmlinux: Path,
    vmcore: Path,
    commands: Sequence[str],
    *,
    timeout: float = 600,
    binds: Sequence[Path] = (),
) -> str:
    """Run trixie's ``crash -s vmlinux vmcore`` on ``commands`` and return its stdout.

    The trixie root is built first if needed (minutes, once). ``binds`` adds host
    directories crash must also see, such as module debug info for ``mod -S``. The output
    of all commands is concatenated, as crash prints it; it comes from the dump, so print
    it through :func:`kdx.textsafe.clean`.
    """
    vmlinux, vmcore = Path(os.path.abspath(vmlinux)), Path(os.path.abspath(vmcore))
    for what, path in (("vmlinux", vmlinux), ("vmcore", vmcore)):
        if not path.is_file():
            raise KdxError(f"cannot run crash: the {what} {path} does not exist")
    for command in commands:
        if "\n" in command:
            raise KdxError(f"crash commands are one line each, not {command!r}")
    root = ensure_root(cache, "trixie")
    # Without the final "q" crash would exit with status 1 at end of input.
    script = "".join(f"{command}\n" for command in commands) + "q\n"
    proc = run_in_root(
        root,
        ["crash", "-s", str(vmlinux), str(vmcore)],
        binds=[*_dirs_to_bind(vmlinux, vmcore), *binds],
        input=script.encode(),
        timeout=timeout,
    )
    if proc.returncode != 0:
        raise KdxError(
            f"crash could not open {vmcore.name} with {vmlinux.name} "
            f"(exit {proc.returncode}): {_failure_detail(proc.stderr, proc.stdout)}"
        )
    return proc.stdout.decode("utf-8", errors="backslashreplace")


# crash right-aligns every label of sys and of its banner to twelve columns ("LOAD
# AVERAGE" and "DEBUG KERNEL" fill them), so the colon is always at index 12; the banner's
# task lines ("         PID: 1") are indented to match. bt's "PID: 1  TASK: ..." is not,
# which is what tells the end of the sys block when the next command's output follows.
_LABEL_END = 12
_LABEL = re.compile(r"[A-Z][A-Z _]*\Z")
_FIRST_FIELDS = ("KERNEL", "SYSTEM MAP")


def _field(line: str) -> tuple[str, str] | None:
    """``(label, value)`` if ``line`` is a labelled line of crash's sys output."""
    if len(line) <= _LABEL_END or line[_LABEL_END] != ":":
        return None
    label = line[:_LABEL_END].strip()
    if not _LABEL.match(label) or line[_LABEL_END + 1 : _LABEL_END + 2] not in ("", " "):
        return None
    return label, line[_LABEL_END + 1 :].strip()


def parse_sys(text: str) -> dict[str, str]:
    """Parse the output of crash's ``sys`` command (or its start-up banner) into a dict.

    Keys are crash's labels (``KERNEL``, ``LOAD AVERAGE``, ``PANIC``...); values are kept
    as crash prints them, stripped, quotes and flags such as ``[TAINTED]`` included, so a
    comparison with kdx shows crash's exact words. The banner adds the panic task's
    ``PID``, ``COMMAND``, ``TASK``, ``CPU`` and ``STATE``; ``sys`` alone stops at ``PANIC``.

    The block starts at ``KERNEL`` (or ``SYSTEM MAP``) when present, so text other
    commands printed before it is skipped. It ends at a blank line, a repeated label, or a
    line that is neither labelled nor indented past the labels: crash's ``-s`` output runs
    one command's output straight into the next. An indented line continues the previous
    value, as the further file names of ``DUMPFILES`` do; it is joined with a newline.
    """
    lines = text.splitlines()
    start = 0
    for i, line in enumerate(lines):
        found = _field(line)
        if found and found[0] in _FIRST_FIELDS:
            start = i
            break
    fields: dict[str, str] = {}
    last: str | None = None
    for line in lines[start:]:
        found = _field(line)
        if found:
            if found[0] in fields:
                break
            fields[found[0]] = found[1]
            last = found[0]
        elif last is None:
            continue  # whatever precedes the block
        elif line.strip() and line.startswith(" " * (_LABEL_END + 1)):
            value = fields[last]
            fields[last] = f"{value}\n{line.strip()}" if value else line.strip()
        else:
            break
    return fields
