"""The kernel log read with no types at all, through the layout VMCOREINFO publishes.

On every lab dump, a bare ``drgn.Program`` (the core dump and nothing else: no vmlinux,
no BTF, no symbols) must give the very records the vmlinux's types give, field for
field, and ``log`` must print the same text in every form. The pre-5.10 structured
buffer, which no lab kernel has, is checked on a buffer built in memory.
"""

from __future__ import annotations

import json
import struct
from pathlib import Path

import drgn
import pytest
from conftest import LabDump
from drgn.helpers.linux.kallsyms import load_vmlinux_kallsyms

from kdx.lab.cache import default_cache
from kdx.model.log import kernel_log
from kdx.model.logring import untyped_records
from kdx.render.crash.log import LogOptions, render_log

#: The 6.1 and 6.12 lab dumps present in the lab cache.
_RUNS = sorted(p.parent for p in (default_cache() / "runs").glob("6.1*/*/truth.json"))

_OPTIONS = [LogOptions(), LogOptions(timestamps="none"), LogOptions(level=True),
            LogOptions(dictionary=True), LogOptions(caller=True),
            LogOptions(timestamps="none", level=True, caller=True, dictionary=True)]


def _lab_dump(run: Path) -> LabDump:
    truth = json.loads((run / "truth.json").read_text())
    truth.setdefault("vmcore", str(run / "vmcore"))
    return LabDump(run, truth)


def bare_program(dump: LabDump) -> drgn.Program:
    """The dump's memory and nothing else. Its VMCOREINFO is handed over explicitly,
    as kdx does for QEMU dumps without the note (recovered from the guest's memory)."""
    typed = dump.target
    note = typed.prog["VMCOREINFO"].string_()
    prog = drgn.Program(typed.prog.platform, vmcoreinfo=note)
    prog.set_core_dump(str(typed.read_path))
    return prog


@pytest.mark.skipif(not _RUNS, reason="no lab dumps in the cache")
@pytest.mark.parametrize("run", _RUNS, ids=[f"{p.parent.name[:4]}-{p.name}" for p in _RUNS])
def test_untyped_log_equals_typed_log(run: Path) -> None:
    dump = _lab_dump(run)
    typed = kernel_log(dump.target.prog)
    bare = bare_program(dump)
    with pytest.raises(LookupError):
        bare.type("struct printk_info")  # the reader really has no types
    untyped = kernel_log(bare)
    assert untyped.lockless and typed.lockless
    assert untyped.warnings == []
    assert len(untyped.records) > 100
    assert untyped.records == typed.records
    assert any(r.dictionary for r in untyped.records)  # SUBSYSTEM=/DEVICE= lines read
    assert all((r.caller_tid is None) != (r.caller_cpu is None) for r in untyped.records)
    assert any(r.caller_tid for r in untyped.records)
    # with kallsyms, as the dump provider gives it, pid_max sets the caller-id width too
    bare.register_symbol_finder("kallsyms", load_vmlinux_kallsyms(bare), enable_index=0)
    untyped = kernel_log(bare)
    assert untyped.caller_width == typed.caller_width == 6
    for options in _OPTIONS:
        assert render_log(untyped, options) == render_log(typed, options), options


def test_no_printk_layout_names_the_missing_line(null_deref) -> None:  # noqa: ANN001
    bare = bare_program(null_deref)
    lines = {k: v for k, v in _vmcoreinfo(bare).items() if k != "OFFSET(printk_info.seq)"}
    with pytest.raises(LookupError, match=r"no OFFSET\(printk_info.seq\) line"):
        untyped_records(bare, lines)
    with pytest.raises(LookupError, match="no printk buffer"):
        untyped_records(bare, {"OSRELEASE": "6.1"})


def _vmcoreinfo(prog: drgn.Program) -> dict[str, str]:
    text = prog["VMCOREINFO"].string_().decode()
    return dict(line.split("=", 1) for line in text.splitlines() if "=" in line)


# --- the structured buffer (before 5.10), built in memory ------------------------------------

_BASE = 0xFFFF_FFFF_8200_0000
_BUF = _BASE + 0x1000
#: struct printk_log as x86_64 4.x-5.9 lays it out (packed, records 4-byte aligned) with
#: CONFIG_PRINTK_CALLER: ts_nsec, len, text_len, dict_len, facility, flags:5 level:3,
#: caller_id.
_HEADER = struct.Struct("<QHHHBBI")
_STRUCTURED_INFO = {
    "SYMBOL(log_buf)": f"{_BASE:x}", "SYMBOL(log_buf_len)": f"{_BASE + 8:x}",
    "SYMBOL(log_first_idx)": f"{_BASE + 12:x}", "SYMBOL(log_next_idx)": f"{_BASE + 16:x}",
    "SIZE(printk_log)": "20", "OFFSET(printk_log.ts_nsec)": "0",
    "OFFSET(printk_log.len)": "8", "OFFSET(printk_log.text_len)": "10",
    "OFFSET(printk_log.dict_len)": "12", "OFFSET(printk_log.caller_id)": "16",
}


def _structured_record(text: bytes, dictionary: bytes, ts: int, level: int, flags: int,
                       caller: int) -> bytes:
    size = (_HEADER.size + len(text) + len(dictionary) + 3) & ~3
    raw = _HEADER.pack(ts, size, len(text), len(dictionary), 0, flags | level << 5, caller)
    return (raw + text + dictionary).ljust(size, b"\0")


def _structured_program() -> drgn.Program:
    """A 4 KiB log buffer that wrapped: the oldest record at 0xF00, then a wrap mark,
    then two records from the buffer's start."""
    buf = bytearray(0x1000)
    first = _structured_record(b"oldest", b"", 1_500_000, 6, 0, 7)
    buf[0xF00:0xF00 + len(first)] = first
    # a zero len after the oldest record: the next one starts over at 0
    second = _structured_record(b"usb 1-1: new", b"SUBSYSTEM=usb\0DEVICE=+usb:1-1", 2_000_001,
                                4, 0, 0x80000001)
    third = _structured_record(b" more", b"", 3_000_000, 4, 8, 42)
    buf[:len(second)] = second
    buf[len(second):len(second) + len(third)] = third
    end = len(second) + len(third)
    head = struct.pack("<QIII", _BUF, len(buf), 0xF00, end)
    memory = head.ljust(0x1000, b"\0") + bytes(buf)
    prog = drgn.Program(drgn.Platform(drgn.Architecture.X86_64,
                                      drgn.PlatformFlags.IS_64_BIT
                                      | drgn.PlatformFlags.IS_LITTLE_ENDIAN))
    prog.add_memory_segment(_BASE, len(memory),
                            lambda address, count, offset, physical:
                            memory[offset:offset + count])
    return prog


def test_structured_buffer_from_vmcoreinfo() -> None:
    records, lockless, warnings = untyped_records(_structured_program(), _STRUCTURED_INFO)
    assert not lockless
    assert warnings == ["log_first_seq is unknown: record numbers count from 0"]
    assert [(r.seq, r.text, r.timestamp, r.level, r.continuation) for r in records] == [
        (0, b"oldest", 1_500_000, 6, False),
        (1, b"usb 1-1: new", 2_000_001, 4, False),
        (2, b" more", 3_000_000, 4, True)]
    assert [(r.caller_tid, r.caller_cpu) for r in records] == [(7, None), (None, 1), (42, None)]
    assert records[1].context == {b"SUBSYSTEM": b"usb", b"DEVICE": b"+usb:1-1"}
