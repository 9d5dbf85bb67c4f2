"""The printk ring read with no types at all, from the layout VMCOREINFO describes.

A kernel built without BTF, or a dump whose types are not loaded (yet), has no
``struct printk_ringbuffer`` to read the log through. The kernel publishes the ring's
layout in VMCOREINFO for exactly this reader's sake (makedumpfile ``--dump-dmesg`` reads
it the same way): the address of ``prb`` and the offsets and sizes of the fields a
reader needs. :mod:`kdx.model.log` calls :func:`untyped_records` when the typed reader
cannot run; the records it returns have the fields of drgn's ``PrintkRecord`` (text
``None`` for a data-less record), so the rest of the log model stays the same.

Two layouts are read:

- the lockless ring (5.10+): ``SYMBOL(prb)``, ``printk_ringbuffer``, ``prb_desc_ring``,
  ``prb_desc``, ``prb_data_blk_lpos``, ``printk_info``, ``dev_printk_info``,
  ``prb_data_ring`` and ``atomic_long_t`` lines;
- the structured buffer (3.5 to 5.9): ``SYMBOL(log_buf)``, ``log_first_idx``,
  ``log_next_idx`` and the ``printk_log`` lines.

VMCOREINFO gives no offsets for the byte after the text length (``facility``, then the
``flags:5``/``level:3`` bit fields): both layouts have kept those two bytes right after
the last described ``u16`` since they exist, so they are read there.
"""

from __future__ import annotations

import struct
from collections.abc import Callable, Mapping
from typing import NamedTuple

import drgn

__all__ = ["RawRecord", "untyped_records", "vmcoreinfo_lines"]

#: enum desc_state (printk_ringbuffer.h): the states of a readable descriptor.
_DESC_COMMITTED, _DESC_FINALIZED = 1, 2
#: enum printk_info_flags / printk_log flags: a pr_cont() continuation.
_LOG_CONT = 8


class RawRecord(NamedTuple):
    """One record as the ring holds it, in the shape of drgn's ``PrintkRecord``; text
    ``None`` marks a data-less record."""

    text: bytes | None
    facility: int
    level: int
    seq: int
    timestamp: int
    caller_tid: int | None
    caller_cpu: int | None
    continuation: bool
    context: dict[bytes, bytes]


def vmcoreinfo_lines(prog: drgn.Program) -> dict[str, str]:
    """VMCOREINFO's ``KEY=value`` lines; empty when the program has none."""
    try:
        text = prog["VMCOREINFO"].string_().decode(errors="replace")
    except (KeyError, LookupError, drgn.FaultError):
        return {}
    out: dict[str, str] = {}
    for line in text.splitlines():
        key, sep, value = line.partition("=")
        if sep:
            out[key] = value
    return out


class _Layout:
    """Typed access to the VMCOREINFO lines; a missing line raises LookupError naming it."""

    def __init__(self, lines: Mapping[str, str]) -> None:
        self.lines = lines

    def has(self, key: str) -> bool:
        return key in self.lines

    def symbol(self, name: str) -> int:
        return int(self._get(f"SYMBOL({name})"), 16)

    def size(self, name: str) -> int:
        return int(self._get(f"SIZE({name})"))

    def offset(self, name: str) -> int:
        return int(self._get(f"OFFSET({name})"))

    def _get(self, key: str) -> str:
        try:
            return self.lines[key]
        except KeyError:
            raise LookupError(f"VMCOREINFO has no {key} line") from None


def untyped_records(prog: drgn.Program, lines: Mapping[str, str] | None = None
                    ) -> tuple[list[RawRecord], bool, list[str]]:
    """The log's records read through VMCOREINFO alone, whether the ring is the
    lockless one, and warnings. LookupError says which line is missing."""
    layout = _Layout(vmcoreinfo_lines(prog) if lines is None else lines)
    if layout.has("SYMBOL(prb)"):
        return _lockless(prog, layout), True, []
    if layout.has("SYMBOL(log_buf)"):
        records, warnings = _structured(prog, layout)
        return records, False, warnings
    raise LookupError("VMCOREINFO describes no printk buffer (no SYMBOL(prb) or "
                      "SYMBOL(log_buf) line)")


# --- the lockless ring (5.10+) --------------------------------------------------------------


class _Ring(NamedTuple):
    """Where the parts of the lockless ring are, and how big."""

    count_bits: int
    descs: bytes  # every descriptor, read at once
    infos: bytes  # every printk_info, read at once
    head_id: int
    tail_id: int
    data: bytes  # the whole text ring
    word: int  # sizeof(long)


def _lockless(prog: drgn.Program, layout: _Layout) -> list[RawRecord]:
    ring = _read_ring(prog, layout)
    id_mask = (1 << (ring.word * 8 - 2)) - 1  # the state's two top bits are flags
    decode = _info_decoder(layout)
    read_desc = _desc_decoder(layout, ring.word)
    records = []
    current = ring.tail_id
    while True:
        record = _lockless_record(ring, current, read_desc, decode, layout)
        if record is not None:
            records.append(record)
        if current == ring.head_id:
            break
        current = (current + 1) & id_mask
    return records


def _read_ring(prog: drgn.Program, layout: _Layout) -> _Ring:
    word = 8 if prog.platform is None or prog.platform.flags & drgn.PlatformFlags.IS_64_BIT \
        else 4
    rb = prog.read_word(layout.symbol("prb"))  # struct printk_ringbuffer *prb
    desc_ring = rb + layout.offset("printk_ringbuffer.desc_ring")
    count_bits = prog.read_u32(desc_ring + layout.offset("prb_desc_ring.count_bits"))
    count = 1 << count_bits
    counter = layout.offset("atomic_long_t.counter")
    data_ring = rb + layout.offset("printk_ringbuffer.text_data_ring")
    size_bits = prog.read_u32(data_ring + layout.offset("prb_data_ring.size_bits"))
    return _Ring(
        count_bits,
        prog.read(prog.read_word(desc_ring + layout.offset("prb_desc_ring.descs")),
                  count * layout.size("prb_desc")),
        prog.read(prog.read_word(desc_ring + layout.offset("prb_desc_ring.infos")),
                  count * layout.size("printk_info")),
        prog.read_word(desc_ring + layout.offset("prb_desc_ring.head_id") + counter),
        prog.read_word(desc_ring + layout.offset("prb_desc_ring.tail_id") + counter),
        prog.read(prog.read_word(data_ring + layout.offset("prb_data_ring.data")),
                  1 << size_bits),
        word,
    )


def _desc_decoder(layout: _Layout, word: int) -> Callable[[bytes, int], tuple[int, int, int]]:
    """A reader of (state_var, text begin, text next) from the descriptor at an offset."""
    fmt = struct.Struct("<Q" if word == 8 else "<I")
    state = layout.offset("prb_desc.state_var") + layout.offset("atomic_long_t.counter")
    lpos = layout.offset("prb_desc.text_blk_lpos")
    begin = lpos + layout.offset("prb_data_blk_lpos.begin")
    end = lpos + layout.offset("prb_data_blk_lpos.next")

    def read(descs: bytes, at: int) -> tuple[int, int, int]:
        return (fmt.unpack_from(descs, at + state)[0], fmt.unpack_from(descs, at + begin)[0],
                fmt.unpack_from(descs, at + end)[0])
    return read


def _lockless_record(ring: _Ring, desc_id: int,
                     read_desc: Callable[[bytes, int], tuple[int, int, int]],
                     decode: Callable[[bytes, int], _Info], layout: _Layout
                     ) -> RawRecord | None:
    """The record of descriptor ``desc_id``; None unless it is committed or finalized
    (a record being written, or one already reused)."""
    index = desc_id & ((1 << ring.count_bits) - 1)
    state_var, begin, end = read_desc(ring.descs, index * layout.size("prb_desc"))
    shift = ring.word * 8 - 2
    if state_var & ((1 << shift) - 1) != desc_id or \
            state_var >> shift not in (_DESC_COMMITTED, _DESC_FINALIZED):
        return None
    info = decode(ring.infos, index * layout.size("printk_info"))
    return RawRecord(_block_text(ring, begin, end, info.text_len), info.facility,
                     info.level, info.seq, info.timestamp, *_caller(info.caller_id),
                     info.continuation, info.context)


def _block_text(ring: _Ring, begin: int, end: int, text_len: int) -> bytes | None:
    """A record's text from its data block's logical positions (the kernel's get_data):
    after the block's ID, restarting at the ring's start when the block wraps, and never
    longer than the block. None for a data-less record."""
    size = len(ring.data)
    begin, end = begin % size, end % size
    if begin == end:
        return None
    start = begin + ring.word if begin < end else ring.word
    length = max(0, min(text_len, end - start))
    return ring.data[start:start + length]


class _Info(NamedTuple):
    seq: int
    timestamp: int
    text_len: int
    facility: int
    level: int
    continuation: bool
    caller_id: int
    context: dict[bytes, bytes]


def _info_decoder(layout: _Layout) -> Callable[[bytes, int], _Info]:
    """A reader of one ``struct printk_info`` at an offset of the info array."""
    seq = layout.offset("printk_info.seq")
    ts = layout.offset("printk_info.ts_nsec")
    text_len = layout.offset("printk_info.text_len")
    caller = layout.offset("printk_info.caller_id")
    fields = _dev_info_fields(layout)

    def decode(infos: bytes, at: int) -> _Info:
        length, facility, bits = struct.unpack_from("<HBB", infos, at + text_len)
        context = {}
        for key, offset, size in fields:
            value = infos[at + offset:at + offset + size].split(b"\0", 1)[0]
            if value:
                context[key] = value
        return _Info(struct.unpack_from("<Q", infos, at + seq)[0],
                     struct.unpack_from("<Q", infos, at + ts)[0], length, facility,
                     bits >> 5, bool(bits & 0x1F & _LOG_CONT),
                     struct.unpack_from("<I", infos, at + caller)[0], context)
    return decode


def _dev_info_fields(layout: _Layout) -> list[tuple[bytes, int, int]]:
    """(key, offset in printk_info, size) of the SUBSYSTEM and DEVICE strings."""
    if not layout.has("OFFSET(printk_info.dev_info)"):
        return []
    base = layout.offset("printk_info.dev_info")
    subsystem = layout.offset("dev_printk_info.subsystem")
    device = layout.offset("dev_printk_info.device")
    return [(b"SUBSYSTEM", base + subsystem, device - subsystem),
            (b"DEVICE", base + device, layout.size("dev_printk_info") - device)]


def _caller(caller_id: int) -> tuple[int | None, int | None]:
    """(thread, CPU): the top bit marks a CPU id (printk_caller_id)."""
    if caller_id & 0x80000000:
        return None, caller_id & 0x7FFFFFFF
    return caller_id, None


# --- the structured buffer (3.5 to 5.9) -----------------------------------------------------


def _structured(prog: drgn.Program, layout: _Layout) -> tuple[list[RawRecord], list[str]]:
    """Records of the pre-5.10 ``log_buf``: ``struct printk_log`` headers, each followed
    by its text and its dictionary, a zero length marking the wrap to the start."""
    warnings: list[str] = []
    buf = prog.read_word(layout.symbol("log_buf"))
    first = prog.read_u32(layout.symbol("log_first_idx"))
    end = prog.read_u32(layout.symbol("log_next_idx"))
    seq = _first_seq(prog, warnings)
    header = layout.size("printk_log")
    at = {name: layout.offset(f"printk_log.{name}")
          for name in ("ts_nsec", "len", "text_len", "dict_len")}
    caller = layout.offset("printk_log.caller_id") \
        if layout.has("OFFSET(printk_log.caller_id)") else None
    records: list[RawRecord] = []
    index = first
    limit = prog.read_u32(layout.symbol("log_buf_len")) if layout.has(
        "SYMBOL(log_buf_len)") else 1 << 24
    while index != end and len(records) <= limit:
        raw = prog.read(buf + index, header)
        length = struct.unpack_from("<H", raw, at["len"])[0]
        if not length:
            if index < end:  # a wrap mark before the end: a corrupt buffer
                break
            index = 0
            continue
        records.append(_structured_record(prog, buf + index, raw, at, caller, header, seq))
        index += length
        seq += 1
    return records, warnings


def _structured_record(prog: drgn.Program, address: int, raw: bytes, at: dict[str, int],
                       caller: int | None, header: int, seq: int) -> RawRecord:
    text_len, dict_len = (struct.unpack_from("<H", raw, at[k])[0]
                          for k in ("text_len", "dict_len"))
    facility, bits = struct.unpack_from("<BB", raw, at["dict_len"] + 2)
    body = prog.read(address + header, text_len + dict_len) if text_len + dict_len else b""
    context = {}
    for pair in body[text_len:].split(b"\0") if dict_len else []:
        key, sep, value = pair.partition(b"=")
        if sep:
            context[key] = value
    tid, cpu = _caller(struct.unpack_from("<I", raw, caller)[0]) if caller is not None \
        else (None, None)
    return RawRecord(body[:text_len], facility, bits >> 5, seq,
                     struct.unpack_from("<Q", raw, at["ts_nsec"])[0], tid, cpu,
                     bool(bits & 0x1F & _LOG_CONT), context)


def _first_seq(prog: drgn.Program, warnings: list[str]) -> int:
    """``log_first_seq``, which VMCOREINFO does not give: from the symbol table when
    there is one; else records are numbered from 0."""
    try:
        return prog.read_u64(prog.symbol("log_first_seq").address)
    except (LookupError, drgn.FaultError):
        warnings.append("log_first_seq is unknown: record numbers count from 0")
        return 0
