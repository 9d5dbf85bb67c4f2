"""What a worker does with one dump: the fast pass, then the full analysis.

The fast pass (``kdx.diagnosis.fastpass``) says within seconds what a dump is: host,
kernel, build ID, capture time, a title and a provisional signature; it is stored at
once so the UI shows it while the full analysis runs. The full stage opens the dump with
its vmlinux when the debug-info store has it (else from the dump's own kallsyms, BTF and
ORC, and says so), runs ``kdx analyze`` and the ``bt -a``, ``ps``, ``log`` and ``mod``
commands, stores all of it and buckets the dump by the full signature. A
``vmcore-dmesg.txt`` alone gets the fast pass only: its verdict comes from the log.

The ``run_*`` functions run in the worker child and read only files; the ``store_*``
functions write their results in the transaction that completes the job.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import re
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator

from sqlalchemy.orm import Session

from kdx.errors import KdxError
from kdx.fleet.buckets import BucketKey, assign, current_version
from kdx.fleet.db import Dump, Output, utcnow
from kdx.fleet.debuginfo import DebugInfoStore

__all__ = ["COMMANDS", "MAX_OUTPUT", "FullResult", "fast_result", "file_kind", "read_log",
           "readable", "run_fast", "run_full", "store_fast", "store_full"]

#: The command outputs stored with every full analysis.
COMMANDS = ("bt -a", "ps", "log", "mod")
_DUMP_MAGIC = (b"\x7fELF", b"KDUMP   ", b"DISKDUMP", b"makedumpfile\0")
#: A kernel message as dmesg, vmcore-dmesg and console logs print one.
_KERNEL_LINE = re.compile(r"^\s*(<\d+>)?\[\s*\d+\.\d+\]", re.M)
#: The most of a log read for its verdict (a kernel log is never this big).
_LOG_LIMIT = 32 << 20
#: The most of a command's output kept (a ps of a large machine is long enough).
MAX_OUTPUT = 4 << 20


def file_kind(head: bytes) -> str:
    """"vmcore" for anything that starts like a dump, "dmesg" for a kernel log's text,
    "vmcore" otherwise (the analysis then says what the file is not)."""
    if head.startswith(_DUMP_MAGIC):
        return "vmcore"
    try:
        text = head.decode("utf-8")
    except UnicodeDecodeError:
        # a cut multi-byte character at the end of the sample is still text
        try:
            text = head[:-4].decode("utf-8")
        except UnicodeDecodeError:
            return "vmcore"
    printable = sum(c.isprintable() or c in "\r\n\t" for c in text)
    return "dmesg" if text and printable / len(text) > 0.97 else "vmcore"


@contextlib.contextmanager
def readable(path: Path, tmp: Path) -> Iterator[Path]:
    """``path`` as a file drgn can open: a flattened dump is reassembled into ``tmp`` for
    the job's duration (and deleted after), anything else is used as is. A stream cut
    short fails the job, as it did before kdx could read one partially: the reassembled
    copy alone does not say where its holes are."""
    from kdx.target import flattened

    if not flattened.is_flattened(path):
        yield path
        return
    tmp.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=tmp, prefix="flat-") as work:
        out = Path(work) / "vmcore"
        if flattened.reassemble(path, out) is not None:
            raise KdxError(f"{path} is a truncated flattened dump: it ends before its end "
                           "marker")
        yield out


def read_log(path: Path, limit: int) -> str:
    """A kernel log's text: its last ``limit`` bytes at most (a log's end says how the
    kernel died)."""
    with open(path, "rb") as f:
        f.seek(0, 2)
        f.seek(max(0, f.tell() - limit))
        return f.read().decode("utf-8", errors="replace")


def fast_result(path: Path, kind: str) -> dict[str, Any]:
    """The fast pass's record of a dump or a kernel log, as plain data."""
    from kdx.diagnosis import fastpass

    if kind == "dmesg":
        text = read_log(path, _LOG_LIMIT)
        report = fastpass.fast_report_from_text(text).to_dict()
        if not _KERNEL_LINE.search(text) and not any(
                report.get(k) for k in ("release", "title", "panic_message")):
            raise KdxError(f"{path} is not a kernel log: no line of it is a kernel message")
        return report
    return fastpass.fast_report(path).to_dict()


def run_fast(path: Path, kind: str, companion: Path | None, tmp: Path) -> dict[str, Any]:
    """The fast stage: the fast pass on the dump (or, when the dump cannot be read and a
    ``vmcore-dmesg.txt`` came with it, on that log)."""
    try:
        with readable(path, tmp) as target:
            return fast_result(target, kind)
    except (KdxError, OSError, ValueError) as err:
        if companion is None:
            raise
        report = fast_result(companion, "dmesg")
        report.setdefault("warnings", []).append(f"read from vmcore-dmesg.txt: {err}")
        report["kind"] = kind
        return report


@dataclass
class FullResult:
    """The full analysis of one dump."""

    verdict: dict[str, Any] | None  # None: no types to analyse with (the fast verdict stays)
    key: BucketKey | None
    debug_source: str
    outputs: dict[str, str] = field(default_factory=dict)
    host: str | None = None
    release: str | None = None
    build_id: str | None = None
    captured: str | None = None


def _culprit(function: str | None, module: str | None) -> str | None:
    if not function:
        return None
    return f"{function} [{module}]" if module else function


def _command_text(dump: Any, command: str) -> str:
    try:
        result = dump.run(command)
    except Exception as err:  # noqa: BLE001 (one command's failure is its output)
        return f"{command}: failed: {err}"
    text = result.text + (result.error if result.error else "")
    return text[:MAX_OUTPUT]


def run_full(path: Path, debug: DebugInfoStore | None, release: str | None,
             build_id: str | None, tmp: Path) -> FullResult:
    """The full stage: open with the store's vmlinux (else the dump's own debug info),
    analyse, and capture the commands' outputs."""
    from kdx.api import Dump as ApiDump
    from kdx.target.open import open_dump

    found = debug.find(release, build_id) if debug is not None else None
    dirs = [debug.root] if debug is not None and debug.root.is_dir() else []
    with readable(path, tmp) as target_path:
        if found is not None:
            target = open_dump(target_path, found.vmlinux, found.modules, debug_dirs=dirs)
        else:
            target = open_dump(target_path, None, [], debug_dirs=dirs)
        dump = ApiDump(target)
        if target.debug_source == "symbols":
            return _symbols_only(dump, target)
        verdict = dump.analyze()
        outputs = {command: _command_text(dump, command) for command in COMMANDS}
        system = dump.sys()
    info = target.vmcoreinfo
    culprit = verdict.culprit
    version = getattr(verdict.signature, "version", None) or current_version()
    key = BucketKey(verdict.signature.hash, version, verdict.signature.title,
                    verdict.category, _culprit(culprit.function, culprit.module),
                    culprit.module)
    record = verdict.to_dict()
    record["warnings"] = list(dict.fromkeys([*record.get("warnings", []), *dump.warnings]))
    return FullResult(record, key, target.debug_source, outputs, host=system.nodename or None,
                      release=target.release or None, build_id=info.get("BUILD-ID"),
                      captured=system.date or None)


def _symbols_only(dump: Any, target: Any) -> FullResult:
    """A kernel built without BTF and no vmlinux at hand: no types, so no ``analyze``;
    the log verdict of the fast pass stands and the outputs that need no types are kept."""
    outputs = {"log": _command_text(dump, "log")}
    return FullResult(None, None, target.debug_source, outputs,
                      release=target.release or None,
                      build_id=target.vmcoreinfo.get("BUILD-ID"))


def _when(value: str | None) -> dt.datetime | None:
    if not value:
        return None
    try:
        parsed = dt.datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    if parsed.tzinfo is not None:
        parsed = parsed.astimezone(dt.timezone.utc).replace(tzinfo=None)
    return parsed


def _set_output(session: Session, dump_id: int, name: str, text: str) -> None:
    row = session.get(Output, (dump_id, name))
    if row is None:
        session.add(Output(dump_id=dump_id, name=name, text=text))
    else:
        row.text = text


def _fill(dump: Dump, host: str | None, release: str | None, build_id: str | None,
          captured: str | None) -> None:
    dump.host = host or dump.host
    dump.release = release or dump.release
    dump.build_id = build_id or dump.build_id
    dump.captured = _when(captured) or dump.captured


def _fast_key(report: dict[str, Any]) -> BucketKey | None:
    if not report.get("signature"):
        return None
    function, module = report.get("culprit"), report.get("module")
    return BucketKey(report["signature"], int(report.get("signature_version") or
                                               current_version()),
                     report.get("title") or report.get("panic_message") or "unknown crash",
                     report.get("category") or "unknown", _culprit(function, module), module)


def store_fast(session: Session, dump: Dump, report: dict[str, Any],
               log_text: str | None) -> bool:
    """Store the fast pass; True when a full analysis should follow (a vmcore)."""
    _fill(dump, report.get("host"), report.get("release"), report.get("build_id"),
          report.get("captured"))
    dump.fast = report
    dump.failure = None
    dump.first_result = dump.first_result or utcnow()
    if log_text is not None:
        _set_output(session, dump.id, "vmcore-dmesg.txt" if dump.kind == "vmcore" else "log",
                    log_text[:MAX_OUTPUT])
    final = dump.kind == "dmesg"
    key = _fast_key(report)
    if key is not None:
        assign(session, dump, key, final=final)
    if final:
        dump.state, dump.debug_source, dump.analysed = "analysed", "log", utcnow()
        return False
    dump.state = "fast"
    return True


def store_full(session: Session, dump: Dump, result: FullResult) -> None:
    """Store the full analysis and bucket the dump by its signature (moving it out of the
    fast pass's problem when that one differed)."""
    _fill(dump, result.host, result.release, result.build_id, result.captured)
    dump.verdict = result.verdict
    dump.debug_source = result.debug_source
    dump.failure = None
    for name, text in result.outputs.items():
        _set_output(session, dump.id, name, text)
    key = result.key if result.key is not None else _fast_key(dump.fast or {})
    if key is not None:
        assign(session, dump, key, final=True)
    dump.state, dump.analysed = "analysed", utcnow()
    dump.first_result = dump.first_result or dump.analysed
