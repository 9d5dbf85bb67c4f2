"""The kernel log of a dump — what crash's ``log`` prints — as data.

This is kdx's one reader of the log: ``log``, ``sys``'s panic line and the diagnosis all
take their lines from ``kernel_log``, so a repair made here reaches every one of them.

Records come from drgn's printk helper (``get_printk_records``), which reads both the
lockless ring buffer (5.10+) and the older structured one through the kernel's types.
When there are none (a kernel built without BTF, a dump opened without its vmlinux
before types are found), :mod:`kdx.model.logring` reads the same records through the
layout VMCOREINFO publishes; both give the same records. drgn 0.3.0 gets two kinds of
lockless record wrong, and kdx repairs exactly those from the descriptor ring:

- a record whose text wraps past the end of the text ring: drgn reads it from the ring's
  start without skipping the 8-byte block ID, so the text starts with binary garbage and
  loses its last 8 characters (drgn pull request #635, unmerged);
- a data-less record (an empty message, or one whose text could not be stored): drgn
  returns bytes from the ring's start; crash prints it as an empty line.

Log text is untrusted. Each byte is turned into text the way crash prints it — a
non-printable character becomes ``.`` — except that valid UTF-8 stays readable and
invalid bytes show as ``\\xNN``; no control character survives into the record, so no
renderer can print one.
"""

from __future__ import annotations

import struct
import unicodedata
from dataclasses import dataclass, field

import drgn
from drgn.helpers.linux.printk import get_printk_records

from kdx.model.logring import untyped_records

#: pid_max limits and the caller-id width crash uses for each (printk.c); wider PIDs get
#: crash's default of 8 characters, as does the pre-5.10 ring.
_CALLER_WIDTHS = ((99999, 6), (999999, 7))
_DEFAULT_CALLER_WIDTH = 8


@dataclass(frozen=True)
class LogRecord:
    """One printk record, one or more lines of text."""

    seq: int
    timestamp_ns: int  # local_clock() at printk time: nanoseconds since boot
    level: int  # 0 (emerg) .. 7 (debug)
    facility: int
    caller_tid: int | None  # thread that logged it (5.10+, or CONFIG_PRINTK_CALLER)
    caller_cpu: int | None  # CPU that logged it, outside task context
    continuation: bool  # a pr_cont() record that continues the previous one
    lines: list[str]  # the text, split at embedded newlines; [] for a data-less record
    dictionary: dict[str, str] = field(default_factory=dict)  # SUBSYSTEM=, DEVICE=...
    dataless: bool = False  # no text stored: crash prints an empty line


@dataclass(frozen=True)
class KernelLog:
    """The log buffer in order, oldest record first."""

    records: list[LogRecord]
    caller_width: int  # the width crash pads caller ids to: [    T123]
    lockless: bool  # the 5.10+ ring buffer
    warnings: list[str] = field(default_factory=list)


# An answer record (kdx.model.answers re-exports it) kept here, so that ``log`` imports
# the log model alone.
@dataclass(frozen=True)
class LogDocument:
    """``log --json``: every record, and the boot time ``log -T`` adds to timestamps
    (None unless ``-T`` was given)."""

    records: list[LogRecord]
    boot_epoch: int | None


@dataclass(frozen=True)
class AuditRecord:
    """An audit message still queued in the kernel, not yet read by auditd."""

    queue: str  # the kernel queue it sits in, e.g. audit_hold_queue
    type: int  # netlink message type (AUDIT_*)
    text: str


def kernel_log(prog: drgn.Program) -> KernelLog:
    """Read the log buffer; repairs drgn cannot make cost a warning, not the log.
    Without the printk types the records come from VMCOREINFO's layout instead; a
    LookupError then names the line it lacks."""
    warnings: list[str] = []
    try:
        records = get_printk_records(prog)
    except LookupError as typed_error:
        return _untyped_log(prog, typed_error)
    except (drgn.FaultError, ValueError, OverflowError) as err:
        return _unreadable_log(prog, err)
    lockless = _has_symbol(prog, "prb")
    repairs: dict[int, bytes | None] = {}
    if lockless:
        try:
            repairs = _lockless_repairs(prog, records)
        except (drgn.FaultError, LookupError, AttributeError, ValueError) as err:
            warnings.append(f"cannot check the log's descriptor ring: {err}")
    out = [_record(r, repairs) for r in records]
    damaged = [r.seq for r in records if repairs.get(r.seq, b"") is DAMAGED]
    if damaged:
        warnings.append(f"{len(damaged)} log records have damaged descriptors (the first is "
                        f"record {damaged[0]}): their text is not shown")
    return KernelLog(out, _caller_width(prog, lockless), lockless, warnings)


def _unreadable_log(prog: drgn.Program, err: Exception) -> KernelLog:
    """The log when its ring lies in pages the dump lacks (or holds garbage): the records
    read through VMCOREINFO's layout if that path reads, else none, and a warning."""
    try:
        records, lockless, warnings = untyped_records(prog)
        warnings = [f"the kernel log is damaged ({err}): read record by record", *warnings]
        return KernelLog([_record(r, {}) for r in records], _caller_width(prog, lockless),
                         lockless, warnings)
    except (LookupError, drgn.FaultError, ValueError, OverflowError):
        return KernelLog([], 0, _has_symbol(prog, "prb"),
                         [f"the kernel log cannot be read: {err}"])


def _untyped_log(prog: drgn.Program, typed_error: LookupError) -> KernelLog:
    """The log read through VMCOREINFO alone, for a program without printk types."""
    try:
        records, lockless, warnings = untyped_records(prog)
    except LookupError as err:
        raise LookupError(f"cannot read the log: no printk types ({typed_error}) and "
                          f"{err}") from err
    out = [_record(r, {}) for r in records]
    return KernelLog(out, _caller_width(prog, lockless), lockless, warnings)


def text_lines(log: KernelLog) -> list[str]:
    """The log's text one line at a time, without timestamps: records split at their
    newlines, a data-less record as an empty line (as crash's ``log -t`` prints it).
    What the panic-line and oops rules search."""
    return [line for record in log.records for line in (record.lines or [""])]


def dmesg_timestamp(timestamp_ns: int) -> str:
    """A record's time as dmesg and crash's ``log`` print it: ``[   12.345678]``."""
    seconds, nanos = divmod(timestamp_ns, 1_000_000_000)
    return f"[{seconds:5d}.{nanos // 1000:06d}]"


def _has_symbol(prog: drgn.Program, name: str) -> bool:
    try:
        prog[name]
    except KeyError:
        return False
    return True


def _record(rec, repairs: dict[int, bytes | None]) -> LogRecord:  # noqa: ANN001 (PrintkRecord)
    """A drgn ``PrintkRecord`` or a :class:`~kdx.model.logring.RawRecord` as a record."""
    text: bytes | None = repairs.get(rec.seq, rec.text)  # None: data-less
    return LogRecord(
        seq=rec.seq,
        timestamp_ns=rec.timestamp,
        level=rec.level & 7,
        facility=rec.facility,
        caller_tid=rec.caller_tid,
        caller_cpu=rec.caller_cpu,
        continuation=rec.continuation,
        lines=[] if text is None else printable(text).split("\n"),
        dictionary={printable(k): printable(v) for k, v in rec.context.items()},
        dataless=text is None,
    )


def _lockless_repairs(prog: drgn.Program, records: list) -> dict[int, bytes | None]:
    """Correct text for the records drgn misreads: ``None`` for a data-less record, the
    real text for one that wraps the text ring. A record's descriptor sits at its
    sequence number modulo the ring size (the kernel keeps the two in step)."""
    prb = prog["prb"]
    ring = prb.desc_ring
    count = 1 << ring.count_bits.value_()
    desc_type = prog.type("struct prb_desc")
    size = drgn.sizeof(desc_type)
    descs = prog.read(ring.descs.value_(), count * size)
    begin_at = drgn.offsetof(desc_type, "text_blk_lpos.begin")
    next_at = drgn.offsetof(desc_type, "text_blk_lpos.next")
    long_size = drgn.sizeof(prog.type("unsigned long"))
    fmt = "<Q" if long_size == 8 else "<I"
    data_ring = prb.text_data_ring
    ring_size = 1 << data_ring.size_bits.value_()
    data = data_ring.data.value_()
    state_at = drgn.offsetof(desc_type, "state_var")
    id_mask = (1 << (long_size * 8 - 2)) - 1
    text = prog.read(data, ring_size)
    repairs: dict[int, bytes | None] = {}
    for rec in records:
        at = (rec.seq % count) * size
        begin = struct.unpack_from(fmt, descs, at + begin_at)[0]
        end = struct.unpack_from(fmt, descs, at + next_at)[0]
        desc_id = struct.unpack_from(fmt, descs, at + state_at)[0] & id_mask
        if not _block_sound(begin, end, ring_size, long_size, desc_id, text):
            repairs[rec.seq] = DAMAGED
            continue
        block = text_block(begin, end, ring_size, long_size, len(rec.text))
        if block is None:
            repairs[rec.seq] = None
        elif block[0] != -1:
            start, length = block
            repairs[rec.seq] = prog.read(data + start, length) if length else b""
    return repairs


#: the text shown for a record whose descriptor is damaged (its text cannot be trusted)
DAMAGED = b"<kdx: damaged log record: its descriptor does not point at its text>"


def _block_sound(begin: int, end: int, ring_size: int, long_size: int, desc_id: int,
                 text: bytes) -> bool:
    """Whether a descriptor's text block is plausible: no longer than the ring, and
    starting with the descriptor's own ID, as the kernel writes every block."""
    if begin == end:
        return True  # data-less
    if not 0 < end - begin <= ring_size:
        return False
    start = begin % ring_size if begin % ring_size < end % ring_size else 0
    if start + long_size > len(text):
        return False
    fmt = "<Q" if long_size == 8 else "<I"
    return struct.unpack_from(fmt, text, start)[0] == desc_id


def text_block(begin: int, end: int, ring_size: int, long_size: int,
               drgn_length: int) -> tuple[int, int] | None:
    """Where a record's text really is, from its descriptor's logical positions.

    None for a data-less record; ``(-1, 0)`` when drgn read it right (the text lies
    after the block ID, before the ring's end); ``(offset, length)`` in the text ring
    for a block that wraps: it restarts at the ring's start, its ID first. drgn read
    ``drgn_length`` bytes from offset 0, which is min(text_len, end), so the real length
    is min(drgn_length, end - ID size), the bound the kernel's get_data() applies.
    """
    begin, end = begin % ring_size, end % ring_size
    if begin == end:
        return None
    if begin < end:
        return -1, 0
    return long_size, max(0, min(drgn_length, end - long_size))


def _caller_width(prog: drgn.Program, lockless: bool) -> int:
    if not lockless:
        return _DEFAULT_CALLER_WIDTH
    pid_max = _pid_max(prog)
    if pid_max is None:
        return _DEFAULT_CALLER_WIDTH
    return next((w for limit, w in _CALLER_WIDTHS if pid_max <= limit), _DEFAULT_CALLER_WIDTH)


def _pid_max(prog: drgn.Program) -> int | None:
    """``pid_max`` (an int): typed, or from the symbol table alone when there are no
    types; None when neither knows it."""
    try:
        return prog["pid_max"].value_()
    except (KeyError, drgn.FaultError):
        pass
    try:
        return prog.read_u32(prog.symbol("pid_max").address)
    except (LookupError, drgn.FaultError):
        return None


def printable(raw: bytes) -> str:
    """Log bytes as safe text: crash's ``.`` for each control character (newlines and
    tabs excepted), UTF-8 kept, undecodable bytes as ``\\xNN``."""
    text = raw.decode("utf-8", errors="backslashreplace")
    if text.isprintable():
        return text
    return "".join(c if c in "\n\t" or unicodedata.category(c) not in ("Cc", "Cf")
                   else "." for c in text)


def boot_epoch(crash_epoch: int, uptime_seconds: float | None) -> int | None:
    """The boot time crash's ``log -T`` adds record timestamps to: the crash time minus
    the whole seconds of uptime (kernel.c uses the same truncation)."""
    if uptime_seconds is None:
        return None
    return crash_epoch - int(uptime_seconds)


# --- audit ----------------------------------------------------------------------------------

#: The kernel's queues of unsent audit messages, in crash's order: 4.11+ then older names.
_AUDIT_QUEUES = (("audit_hold_queue", "audit_retry_queue", "audit_queue"),
                 ("audit_skb_hold_queue", "audit_skb_queue"))


def audit_records(prog: drgn.Program) -> list[AuditRecord] | None:
    """Audit messages still queued in the kernel; None when the kernel has no audit."""
    for names in _AUDIT_QUEUES:
        if not _has_symbol(prog, names[-1]):
            continue
        out: list[AuditRecord] = []
        for name in names:
            if _has_symbol(prog, name):
                out.extend(_audit_queue(prog, name))
        return out
    return None


def _audit_queue(prog: drgn.Program, name: str) -> list[AuditRecord]:
    """The messages of one ``struct sk_buff_head``: netlink header, then the text."""
    head = prog[name]
    if not head.qlen.value_():
        return []
    head_address = head.address_of_().value_()
    header = drgn.sizeof(prog.type("struct nlmsghdr"))
    header = (header + 3) & ~3  # NLMSG_ALIGN
    out = []
    skb = head.next
    for _ in range(head.qlen.value_()):
        if skb.value_() == head_address or not skb:
            break
        data = skb.data
        message = drgn.Object(prog, "struct nlmsghdr *", data.value_())
        length = max(0, skb.len.value_() - header)
        raw = prog.read(data.value_() + header, length) if length else b""
        out.append(AuditRecord(name, message.nlmsg_type.value_(),
                               printable(raw.split(b"\0", 1)[0])))
        skb = skb.next
    return out
