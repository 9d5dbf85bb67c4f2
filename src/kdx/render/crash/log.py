"""The kernel log as crash 8.0.6's ``log`` prints it (kernel.c dump_log_entry, printk.c
dump_record).

Each record is one line: a prefix, then the text. The prefix is ``[%5d.%06d] `` (or
``[<date>] `` with ``-T``, nothing with ``-t``), then ``[%*s] `` with the caller id for
``-c``, then ``<level>`` for ``-m``. A record's further lines, and its dictionary lines
for ``-d``, are indented by the prefix's width so they line up under the text. A
data-less record is an empty line. Text arrives from the model free of control
characters, and nothing here adds any.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

from kdx.model.log import AuditRecord, KernelLog, LogRecord, dmesg_timestamp
from kdx.render.crash.sys import ctime


@dataclass(frozen=True)
class LogOptions:
    """crash's ``log`` flags."""

    timestamps: str = "seconds"  # "seconds", "human" (-T) or "none" (-t)
    level: bool = False  # -m
    caller: bool = False  # -c
    dictionary: bool = False  # -d
    boot_epoch: int | None = None  # needed for "human"


def _prefix(record: LogRecord, log: KernelLog, options: LogOptions) -> str:
    parts = []
    if options.timestamps == "seconds":
        parts.append(dmesg_timestamp(record.timestamp_ns) + " ")
    elif options.timestamps == "human":
        epoch = (options.boot_epoch or 0) + record.timestamp_ns // 1_000_000_000
        parts.append(f"[{ctime(epoch)}] ")
    if options.caller:
        parts.append(f"[{caller_id(record):>{log.caller_width}}] ")
    if options.level:
        parts.append(f"<{record.level:x}>")
    return "".join(parts)


def caller_id(record: LogRecord) -> str:
    """``T123`` for a thread, ``C1`` for a CPU outside task context (crash's -c)."""
    if record.caller_cpu is not None:
        return f"C{record.caller_cpu}"
    return f"T{record.caller_tid or 0}"


def log_lines(log: KernelLog, options: LogOptions) -> Iterator[str]:
    """The output of ``log``, one printed line at a time."""
    for record in log.records:
        if record.dataless:
            yield ""
            continue
        prefix = _prefix(record, log, options)
        indent = " " * len(prefix)
        first, *rest = record.lines or [""]
        yield (prefix + first).rstrip()
        for line in rest:
            yield (indent + line).rstrip()
        if options.dictionary:
            for key, value in record.dictionary.items():
                yield f"{indent}{key}={value}".rstrip()


def render_log(log: KernelLog, options: LogOptions) -> str:
    return "\n".join(log_lines(log, options))


def render_audit(records: list[AuditRecord] | None) -> str:
    """crash's ``log -a``: ``type=N text`` per message, or why there is none."""
    if records is None:
        return "log: this kernel has no audit queues"
    if not records:
        return "log: kernel audit log is empty"
    return "\n".join(f"type={r.type} {r.text}" for r in records)
