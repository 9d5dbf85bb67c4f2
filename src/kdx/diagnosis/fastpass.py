"""The fast pass: what a dump is, in under two seconds, before the full analysis.

A fleet receiving a storm of dumps must say at once what each one is. The fast pass reads
only what needs no types and no unwinding: the dump header, VMCOREINFO (release, build ID,
crash time), the host name from ``init_uts_ns`` (whose address and layout VMCOREINFO
gives) and the kernel log, read through the layout VMCOREINFO publishes
(:mod:`kdx.model.logring`). The log's oops report names the bug, the faulting function
and the call trace; the same rules, titles and signature as ``kdx analyze`` turn it into
a verdict, so the fast result and the full one land in the same bucket. A
``vmcore-dmesg.txt`` alone gets the same verdict from its text.

Where the log cannot give what the dump's stacks give, the fast result differs and says
so in its warnings; the fleet re-buckets the dump when the full analysis arrives:

- a report the log lost (a log ring overwritten, a dump taken by QEMU of a hung guest that
  printed nothing) gets no category and no signature;
- a crash whose log names no culprit frame (no RIP line and no call trace, e.g. when the
  trace printing itself failed) gets a signature from the title alone.

Example::

    >>> report = fast_report(Path("vmcore"))
    >>> report.title, report.signature
    ('BUG: kernel NULL pointer dereference in hello_init [hello_crash]', '1f0c...')
"""

from __future__ import annotations

import datetime as dt
import re
import struct
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from kdx.diagnosis import rules
from kdx.diagnosis.checkers import first_outside
from kdx.diagnosis.oopslog import LogFrame, bare_lines, culprit_frames
from kdx.diagnosis.signature import SIGNATURE_VERSION, is_generic, make_signature
from kdx.errors import KdxError

__all__ = ["FastReport", "fast_report", "fast_report_from_text"]

#: Lines of the log's end kept in the report.
TAIL_LINES = 60
#: A text file larger than this is read from its end (a log is never this big).
_TEXT_LIMIT = 32 << 20
#: Bytes sniffed to tell a text log from a binary dump.
_SNIFF = 64 << 10
#: ``struct new_utsname``: six fields of 65 bytes (sysname, nodename, release, ...).
_UTS_FIELD = 65
_PANIC_FUNCTIONS = ("panic", "vpanic", "nmi_panic")
_LINUX_VERSION = re.compile(r"Linux version (\S+)")
_TASK_LINE = re.compile(r"CPU: (?P<cpu>\d+) (?:UID: \d+ )?PID: (?P<pid>\d+) Comm: (?P<comm>\S+)"
                        r".*?(?:Not tainted|Tainted: .*?)\s+(?P<release>\d+\.\d+[\w.+~-]*) #")
_HOSTNAME_SET = re.compile(r"Hostname set to <([^>]{1,64})>")


@dataclass(frozen=True)
class FastReport:
    """The fast verdict on one dump or kernel log."""

    kind: str  # "vmcore" or "dmesg"
    host: str | None = None
    release: str | None = None
    build_id: str | None = None
    captured: str | None = None  # ISO 8601 UTC, from VMCOREINFO's CRASHTIME or the header
    title: str | None = None
    category: str | None = None
    culprit: str | None = None  # function (without offset)
    module: str | None = None
    signature: str | None = None  # same hash as the full analysis when the log allows
    signature_version: int = 0
    frames: list[str] = field(default_factory=list)  # the frames the signature hashed
    panic_message: str | None = None
    log_tail: list[str] = field(default_factory=list)  # the last lines of the log
    warnings: list[str] = field(default_factory=list)
    dump_format: str | None = None  # e.g. "kdump-compressed (zlib)"; None for a log
    comm: str | None = None  # the task the report names
    pid: int | None = None

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-ready data."""
        return asdict(self)


def fast_report(path: Path) -> FastReport:
    """The fast verdict on a vmcore (any format drgn opens) or a ``vmcore-dmesg.txt``
    (told by its content, not its name). A file that is neither raises KdxError in one
    sentence; a damaged or truncated dump gives what could be read, with warnings."""
    from kdx.target.formats import check_readable

    path = Path(path)
    check_readable(path, "dump or kernel log")
    with open(path, "rb") as f:
        head = f.read(_SNIFF)
    if _is_text(head):
        return fast_report_from_text(_read_text(path))
    return _from_dump(path)


def fast_report_from_text(text: str) -> FastReport:
    """The fast verdict on a kernel log's text (dmesg, vmcore-dmesg.txt, a console log).
    Its characters are made printable as the dump's log model does (a control character
    becomes ``.``), since the text is as untrusted as the dump it came from."""
    from kdx.model.log import printable

    text = printable(text.replace("\r\n", "\n").encode("utf-8", errors="replace"))
    lines = bare_lines(text)
    shown = text.splitlines()[-TAIL_LINES:]
    warnings = [] if any(lines) else ["the text holds no kernel log lines"]
    version = next((m[1] for line in lines[:50] if (m := _LINUX_VERSION.search(line))), None)
    host = next((m[1] for line in lines if (m := _HOSTNAME_SET.search(line))), None)
    if host is None:
        warnings.append("the log does not name the host (no 'Hostname set to' line)")
    verdict = _verdict(lines, warnings)
    log_release = verdict.pop("log_release", None)
    release = version or log_release
    return FastReport(kind="dmesg", host=_clean(host), release=release, log_tail=shown,
                      warnings=warnings, **verdict)


def _is_text(head: bytes) -> bool:
    """A kernel log is UTF-8 (or Latin-1) text without NUL bytes; a dump never is."""
    if not head or b"\0" in head:
        return False
    sample = head.decode("utf-8", errors="replace")
    odd = sum(1 for c in sample if c == "\ufffd" or (ord(c) < 32 and c not in "\n\r\t"))
    return odd <= len(sample) // 100


def _read_text(path: Path) -> str:
    size = path.stat().st_size
    with open(path, "rb") as f:
        if size > _TEXT_LIMIT:
            f.seek(size - _TEXT_LIMIT)
        return f.read(_TEXT_LIMIT).decode("utf-8", errors="replace")


def _from_dump(path: Path) -> FastReport:
    from kdx.target.open import open_core

    try:
        target = open_core(path)
    except KdxError as err:
        message = str(err)
        if "not a crash dump kdx knows" in message:
            raise KdxError(f"{path.name} is neither a crash dump kdx knows (ELF, "
                           "kdump-compressed, makedumpfile flattened) nor a kernel log") from None
        raise KdxError(_one_line(err)) from None
    info = target.vmcoreinfo
    warnings = list(target.warnings)
    lines, shown = _dump_log(target.prog, warnings)
    verdict = _verdict(lines, warnings)
    verdict.pop("log_release", None)
    return FastReport(
        kind="vmcore", host=_host(target, warnings), release=info.get("OSRELEASE") or None,
        build_id=info.get("BUILD-ID") or None, captured=_captured(target, warnings),
        log_tail=shown[-TAIL_LINES:], warnings=warnings,
        dump_format=target.dump.description if target.dump else None, **verdict)


def _dump_log(prog: Any, warnings: list[str]) -> tuple[list[str], list[str]]:
    """(bare lines, lines with timestamps) of the dump's log, read without types."""
    import drgn

    from kdx.diagnosis.evidence import log_text
    from kdx.model.log import kernel_log

    try:
        log = kernel_log(prog)
    except (LookupError, drgn.FaultError, ValueError, OverflowError, struct.error,
            IndexError) as err:
        warnings.append(f"the kernel log cannot be read: {_one_line(err)}")
        return [], []
    warnings.extend(log.warnings)
    text = log_text(log)
    return text.bare, text.lines


def _verdict(lines: list[str], warnings: list[str]) -> dict[str, Any]:
    """The FastReport fields a log's crash report gives: category, title, culprit,
    signature (and ``log_release``, the release a task line names)."""
    from kdx.model.system import choose_panic_line

    panic = choose_panic_line(lines) if lines else ""
    match = rules.first_match(lines)
    task = next((m for line in lines[match.index if match else 0:]
                 if (m := _TASK_LINE.search(line))), None)
    out: dict[str, Any] = {"panic_message": panic or None,
                           "comm": task["comm"] if task else None,
                           "pid": int(task["pid"]) if task else None,
                           "log_release": task["release"] if task else None}
    if match is None:
        if lines:
            warnings.append("the log holds no crash report kdx recognises")
        return out
    frames = culprit_frames(lines, match.index, match.rule.culprit)
    frames = _past_checker(frames, match.rule.culprit)
    culprit = _culprit(frames, match.rule.culprit)
    if culprit is None and match.rule.culprit != rules.CULPRIT_PROCESS:
        warnings.append("the log names no culprit function (no RIP line or call trace)")
    function, module = (culprit.function, culprit.module) if culprit else (None, None)
    title = rules.title(match, function, module, out["comm"], panic)
    signature = make_signature(match.rule.category, title, [f.function for f in frames],
                               module)
    out.update(title=title, category=match.rule.category, culprit=function, module=module,
               signature=signature.hash, signature_version=SIGNATURE_VERSION,
               frames=signature.frames)
    return out


def _past_checker(frames: list[LogFrame], strategy: str) -> list[LogFrame]:
    """The frames from the first caller outside a checker the report stopped in
    (kdx.diagnosis.checkers), as the full analysis blames it; else all of them."""
    if strategy not in (rules.CULPRIT_EXCEPTION, rules.CULPRIT_WARN_SITE):
        return frames
    found = first_outside([f.function for f in frames])
    return frames[found:] if found is not None else frames


def _culprit(frames: list[LogFrame], strategy: str) -> LogFrame | None:
    """The culprit as the full analysis picks it: the RIP line's function for an
    exception, the first meaningful frame after panic() for a panic, the blocked task's
    first meaningful frame; none for an OOM (a process is to blame)."""
    if strategy == rules.CULPRIT_PROCESS:
        return None
    if strategy in (rules.CULPRIT_EXCEPTION, rules.CULPRIT_WARN_SITE):
        return frames[0] if frames else None
    if strategy == rules.CULPRIT_PANIC_CALLER:
        last = max((i for i, f in enumerate(frames) if f.function in _PANIC_FUNCTIONS),
                   default=-1)
        frames = frames[last + 1:]
    return next((f for f in frames if not is_generic(f.function)), None)


def _host(target: Any, warnings: list[str]) -> str | None:
    """The node name from ``init_uts_ns`` (VMCOREINFO gives its address and the offset of
    its ``name``), else from a kdump-compressed header's copy of the utsname."""
    import drgn

    info = target.vmcoreinfo
    try:
        base = int(info["SYMBOL(init_uts_ns)"], 16)
        offset = int(info.get("OFFSET(uts_namespace.name)", "-1"))
        if offset < 0:  # older kernels: find "Linux\0" at the start of the struct
            offset = target.prog.read(base, 64).index(b"Linux\0")
        uts = target.prog.read(base + offset, 2 * _UTS_FIELD)
        if uts.startswith(b"Linux\0"):
            return _clean(uts[_UTS_FIELD:].split(b"\0", 1)[0].decode(errors="replace"))
    except (KeyError, ValueError, drgn.FaultError) as err:
        header = _header_host(target)
        if header:
            return header
        warnings.append(f"the host name cannot be read: {_one_line(err)}")
        return None
    header = _header_host(target)
    if header is None:
        warnings.append("init_uts_ns holds no utsname: the host name is unknown")
    return header


def _header_host(target: Any) -> str | None:
    """The node name in a kdump-compressed header (``disk_dump_header.utsname``)."""
    if target.dump is None or target.dump.kind != "kdump" or target.read_path is None:
        return None
    with open(target.read_path, "rb") as f:
        head = f.read(12 + 2 * _UTS_FIELD)
    name = head[12 + _UTS_FIELD:12 + 2 * _UTS_FIELD].split(b"\0", 1)[0]
    return _clean(name.decode(errors="replace")) if name else None


def _captured(target: Any, warnings: list[str]) -> str | None:
    """When the kernel crashed: VMCOREINFO's CRASHTIME (written by kexec on panic), else
    the kdump-compressed header's timestamp (QEMU and makedumpfile fill it in)."""
    crashtime = target.vmcoreinfo.get("CRASHTIME", "")
    seconds = int(crashtime) if crashtime.isdigit() else _header_time(target)
    if not seconds:
        warnings.append("the dump records no crash time (no CRASHTIME in VMCOREINFO)")
        return None
    try:
        when = dt.datetime.fromtimestamp(seconds, dt.timezone.utc)
    except (OverflowError, OSError, ValueError):
        return None
    return when.strftime("%Y-%m-%dT%H:%M:%SZ")


def _header_time(target: Any) -> int | None:
    if target.dump is None or target.dump.kind != "kdump" or target.read_path is None:
        return None
    at = (12 + 6 * _UTS_FIELD + 7) & ~7  # disk_dump_header.timestamp (struct timeval)
    with open(target.read_path, "rb") as f:
        f.seek(at)
        raw = f.read(8)
    return struct.unpack("<q", raw)[0] if len(raw) == 8 else None


def _clean(name: str | None) -> str | None:
    """A host name from the dump is untrusted: printable characters only."""
    if name is None:
        return None
    text = "".join(c for c in name if c.isprintable()).strip()
    return text[:64] or None


def _one_line(err: BaseException) -> str:
    """A library's error message as one line of reasonable length."""
    text = " ".join(str(err).split())
    return text if len(text) <= 500 else text[:497] + "..."
