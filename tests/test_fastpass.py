"""The fast pass on real lab dumps and their vmcore-dmesg.txt, against crash, readelf,
the lab's ground truth and the full analysis; and on files that are no dump at all."""

from __future__ import annotations

import datetime as dt
import re
import shutil
import subprocess

import pytest

from kdx.diagnosis.fastpass import FastReport, fast_report, fast_report_from_text
from kdx.diagnosis.oopslog import bare_lines, call_trace
from kdx.diagnosis.signature import SIGNATURE_VERSION
from kdx.errors import KdxError
from kdx.lab.cache import default_cache


@pytest.fixture(scope="module")
def fast_null_deref(null_deref) -> FastReport:  # noqa: ANN001 (fixture)
    return fast_report(null_deref.vmcore)


def _crash_sys(crash, dump) -> dict[str, str]:  # noqa: ANN001 (fixtures)
    """crash's ``sys`` fields (the oracle's run shared with test_sys)."""
    text = crash(dump, ["sys", "set"])
    return dict(re.findall(r"^\s*([A-Z ]+): (.*)$", text, re.M))


def test_null_deref_fast_report(fast_null_deref, null_deref, crash):
    report = fast_null_deref
    truth = null_deref.truth
    assert report.kind == "vmcore"
    assert report.dump_format == "kdump-compressed (zlib)"
    sys_fields = _crash_sys(crash, null_deref)
    # the lab guest's init sets its host name (lab/guest/init.sh), crash reads the same
    assert report.host == sys_fields["NODENAME"] == "kdx-lab"
    assert report.release == truth["release"] == "6.1.0-57-cloud-amd64"
    readelf = subprocess.run(["readelf", "-n", str(null_deref.vmlinux)], capture_output=True,
                             text=True, check=True).stdout
    assert report.build_id == re.search(r"Build ID: ([0-9a-f]+)", readelf)[1]
    crash_date = dt.datetime.strptime(sys_fields["DATE"], "%a %b %d %H:%M:%S UTC %Y")
    assert report.captured == crash_date.strftime("%Y-%m-%dT%H:%M:%SZ")
    assert report.title == "BUG: kernel NULL pointer dereference in hello_init [hello_crash]"
    assert report.category == truth["category"] == "null-pointer-dereference"
    assert (report.culprit, report.module) == (truth["function"], truth["module"])
    assert (report.comm, report.pid) == (truth["comm"], truth["pid"])
    assert report.panic_message == "Oops: 0002 [#1] PREEMPT SMP NOPTI"
    assert report.frames == ["hello_init"]
    assert report.signature_version == SIGNATURE_VERSION == 2
    assert re.fullmatch(r"[0-9a-f]{16}", report.signature)
    assert report.warnings == []
    assert any("Modules linked in: hello_crash" in line for line in report.log_tail)


def test_fast_signature_is_the_full_analysis_signature(fast_null_deref, null_deref):
    verdict = null_deref.opened.analyze()
    assert fast_null_deref.signature == verdict.signature.hash
    assert fast_null_deref.frames == verdict.signature.frames
    assert fast_null_deref.title == verdict.signature.title
    assert fast_null_deref.category == verdict.category


def test_vmcore_dmesg_txt_alone_gives_the_same_verdict(fast_null_deref, null_deref):
    text = (null_deref.dir / "dmesg.txt").read_text()
    report = fast_report_from_text(text)
    same = ("title", "category", "culprit", "module", "signature", "signature_version",
            "frames", "panic_message", "comm", "pid", "release")
    assert {k: getattr(report, k) for k in same} == {k: getattr(fast_null_deref, k)
                                                     for k in same}
    assert report.kind == "dmesg"
    assert report.host is None and report.build_id is None and report.captured is None
    assert any("host" in w for w in report.warnings)
    assert report.log_tail[-1].endswith("CR2: 0000000000000000")


def test_a_log_file_is_told_by_its_content_not_its_name(null_deref, tmp_path):
    renamed = tmp_path / "vmcore"  # a kernel log under a dump's name
    shutil.copy(null_deref.dir / "dmesg.txt", renamed)
    report = fast_report(renamed)
    assert report.kind == "dmesg"
    assert report.culprit == "hello_init"


def test_dmesg_with_caller_ids_and_newer_warning_format(lab):
    """7.x's log carries caller ids (``[    T252]``) and the new WARNING line; its fast
    verdict is the 6.1 one's."""
    found = sorted((default_cache() / "runs").glob("7.*/warn-kdump-kdump-zlib/dmesg.txt"))
    if not found:
        pytest.skip("no lab dump of a 7.x kernel (kdx lab run warn --kernel RELEASE)")
    text = found[-1].read_text()
    assert "[    T" in text and "WARNING: crashlab_warn.c:" in text
    report = fast_report_from_text(text)
    reference = fast_report_from_text((lab("warn").dir / "dmesg.txt").read_text())
    assert report.category == reference.category == "warn"
    assert report.title == "WARNING in crashlab_check_budget [crashlab_warn]"
    assert report.signature == reference.signature
    assert report.release == found[-1].parent.parent.name


def test_call_trace_skips_unreliable_entries_and_keeps_contexts(lab):
    lines = bare_lines((lab("irq-context").dir / "dmesg.txt").read_text())
    start = next(i for i, line in enumerate(lines) if line.startswith("BUG: kernel NULL"))
    frames, _end = call_trace(lines, start)
    names = [f.function for f in frames if f.reliable]
    assert names[:4] == ["call_timer_fn", "__run_timers", "run_timer_softirq",
                         "handle_softirqs"]
    # The timer's softirq runs on the way out of the timer interrupt, or, when softirqs
    # were already pending for too long, in ksoftirqd: either is a real boot.
    if names[4] == "__irq_exit_rcu":
        assert names[5] == "sysvec_apic_timer_interrupt"
        assert "native_safe_halt" in names  # the interrupted context's RIP line
    else:
        assert names[4:6] == ["run_ksoftirqd", "smpboot_thread_fn"]
        assert "kthread" in names
    assert all(f.module is None for f in frames if f.reliable)


def test_qemu_dump_without_crash_time_says_so(lab):
    report = fast_report(lab("null-deref-module", capture="qemu", fmt="elf").vmcore)
    assert report.captured is None
    assert any("crash time" in w for w in report.warnings)
    assert report.host == "kdx-lab" and report.culprit == "hello_init"


def test_random_bytes_are_refused_in_one_line(tmp_path):
    junk = tmp_path / "upload.bin"
    junk.write_bytes(bytes(range(256)) * 4096)
    with pytest.raises(KdxError) as err:
        fast_report(junk)
    assert "neither a crash dump" in str(err.value) and "\n" not in str(err.value)
    empty = tmp_path / "empty"
    empty.write_bytes(b"")
    with pytest.raises(KdxError, match="is empty"):
        fast_report(empty)


def test_text_without_a_report_gives_warnings():
    report = fast_report_from_text("hello\nworld\x1b[2J\n")
    assert report.category is None and report.signature is None
    assert "the log holds no crash report kdx recognises" in report.warnings
    assert report.log_tail == ["hello", "world.[2J"]  # no escape reaches a page or terminal


def test_truncated_dump_gives_what_it_can(null_deref, lab, tmp_path):
    # An ELF dump cut short keeps its log (low memory comes first): a verdict with a
    # warning. A kdump-compressed one cut in half loses the log: warnings, no verdict.
    elf = lab("null-deref-module", fmt="elf").vmcore
    cut = tmp_path / "cut.elf"
    with open(elf, "rb") as src, open(cut, "wb") as dst:
        dst.write(src.read(elf.stat().st_size - (4 << 20)))
    report = fast_report(cut)
    assert "is truncated" in report.warnings[0]
    assert report.culprit == "hello_init"
    half = tmp_path / "half.kdump"
    half.write_bytes(null_deref.vmcore.read_bytes()[:null_deref.vmcore.stat().st_size // 2])
    report = fast_report(half)
    assert report.release == "6.1.0-57-cloud-amd64"
    assert "is truncated" in report.warnings[0]
    assert report.signature is None
    assert all("\n" not in w for w in report.warnings)
    head = tmp_path / "head.kdump"
    head.write_bytes(null_deref.vmcore.read_bytes()[:3000])
    with pytest.raises(KdxError, match="is truncated") as err:
        fast_report(head)
    assert "\n" not in str(err.value)


def test_flattened_dump(lab):
    flat = lab("sysrq", fmt="flattened").vmcore
    report = fast_report(flat)
    assert report.dump_format == "kdump-compressed (zlib)"
    assert report.title == "SysRq triggered crash"
    assert report.culprit == "sysrq_handle_crash"


def test_damaged_vmcoreinfo_key_is_refused_not_a_crash(null_deref, kdx, tmp_path):
    """A VMCOREINFO key starting with '.' (one flipped bit: 'O' -> '.') made libkdumpfile
    crash the whole process; kdx now refuses the dump in one line before opening it."""
    data = bytearray(null_deref.vmcore.read_bytes())
    at = data.index(b"\nOFFSET(prb_data_ring.data)=", 0, 1 << 16) + 1
    data[at] = ord(".")
    damaged = tmp_path / "damaged"
    damaged.write_bytes(bytes(data))
    proc = kdx(damaged, null_deref.vmlinux, "-c", "sys")  # a separate process: a crash
    assert proc.returncode == 1, proc.returncode           # would show as -11 here
    assert "damaged VMCOREINFO note" in proc.stderr and "Traceback" not in proc.stderr
    with pytest.raises(KdxError, match=r"line \d+: key '\.FFSET\(prb_data_ring\.data\)'"):
        fast_report(damaged)


def test_damaged_kdump_header_is_one_error_line(null_deref, tmp_path):
    """A header claiming a bitmap of terabytes (bitmap_blocks at byte 436) once made the
    completeness check read it all (MemoryError)."""
    data = bytearray(null_deref.vmcore.read_bytes())
    data[436:440] = (0xF0000000).to_bytes(4, "little")
    damaged = tmp_path / "damaged"
    damaged.write_bytes(bytes(data))
    with pytest.raises(KdxError, match="is truncated") as err:
        fast_report(damaged)
    assert "\n" not in str(err.value)
