"""``log`` (``dmesg``) on real lab dumps: line for line against crash 8.0.6, against the
``makedumpfile --dump-dmesg`` text the lab saved beside each dump, and as JSON.

crash runs once per dump on every option below (separated by ``eval`` markers, whose
output is easy to find); kdx runs the same options in one in-process session. crash
runs in the lab's trixie root, whose zone is UTC, so kdx runs with TZ=UTC for ``-T``.
"""

from __future__ import annotations

import datetime
import io
import json
import re
import time

import pytest
from crash_script import crash_parts

from kdx.diagnosis.evidence import log_text
from kdx.model.log import KernelLog, LogRecord, printable, text_block, text_lines
from kdx.render.crash.log import LogOptions, render_log
from kdx.session.session import Session

OPTIONS = ["log", "log -t", "log -m", "log -T", "log -d", "log -c", "log -a", "log -t -m"]
#: makedumpfile prints the caller id after the time when the kernel records it (6.12).
_CALLER_FIELD = re.compile(r"^(\[[ 0-9.]+\]) \[ *[TC][0-9]+\] ")
_DUMPS = ["null_deref", "sysrq", "null_deref_612"]
#: makedumpfile's caller field ("[      T1] ") is this wide; its continuation lines (a
#: message of several lines) are indented past it
_CALLER_WIDTH = len("[      T1] ")


def _without_caller(line: str) -> str:
    """A line of makedumpfile's dmesg as ``log`` prints it without the caller field: the
    field dropped, and a continuation line's indent shortened by its width."""
    if line.startswith(" " * (15 + _CALLER_WIDTH)):
        line = line[_CALLER_WIDTH:]
    return _CALLER_FIELD.sub(r"\1 ", line).rstrip()


@pytest.fixture(autouse=True)
def _utc(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TZ", "UTC")
    time.tzset()


@pytest.fixture(scope="module")
def dumps(request) -> dict:  # noqa: ANN001 (fixture)
    """Each dump with its opened target, built once for the module."""
    def load(name: str):  # noqa: ANN202
        dump = request.getfixturevalue(name)
        return dump, dump.target
    return {name: load(name) for name in _DUMPS}


def kdx_output(target, line: str, json_mode: bool = False) -> str:  # noqa: ANN001
    out, err = io.StringIO(), io.StringIO()
    session = Session(target, json=json_mode, out=out, err=err)
    assert session.execute(line), err.getvalue()
    assert "error" not in err.getvalue()
    return out.getvalue()


def crash_sections(crash, dump) -> dict[str, list[str]]:  # noqa: ANN001 (fixtures)
    """crash's lines for each of OPTIONS on ``dump``."""
    parts = crash_parts(crash, dump, OPTIONS)
    return {option: part.split("\n") if part else [] for option, part in zip(OPTIONS, parts)}


# --- against crash ------------------------------------------------------------------------


@pytest.mark.oracle
@pytest.mark.parametrize("name", _DUMPS)
@pytest.mark.parametrize("option", [o for o in OPTIONS if o != "log -T"])
def test_log_matches_crash_line_for_line(name: str, option: str, dumps, crash) -> None:  # noqa: ANN001
    dump, target = dumps[name]
    theirs = crash_sections(crash, dump)[option]
    ours = kdx_output(target, option).rstrip("\n").split("\n")
    assert len(theirs) > (400 if option != "log -a" else 0)  # crash's output was split
    assert ours == theirs


@pytest.mark.oracle
@pytest.mark.parametrize("name", ["null_deref", "sysrq"])
def test_log_T_matches_crash_on_6_1(name: str, dumps, crash) -> None:  # noqa: ANN001
    """On 6.1 crash guesses the tick rate right, and its boot time is kdx's."""
    dump, target = dumps[name]
    theirs = crash_sections(crash, dump)["log -T"]
    ours = kdx_output(target, "log -T").rstrip("\n").split("\n")
    assert theirs[0].startswith("[") and "UTC 20" in theirs[0]
    assert ours == theirs


_RTC = re.compile(r"^\[(.+? UTC \d{4})\] rtc_cmos .*setting system clock to .* \((\d+)\)$")


def _rtc_line(lines: list[str]) -> tuple[int, int]:
    """(time -T shows, time the RTC line itself reports) for the record where the kernel
    set its clock from the RTC: the one line whose true wall time is in the log."""
    for line in lines:
        found = _RTC.match(line)
        if found:
            shown = datetime.datetime.strptime(found.group(1), "%a %b %d %H:%M:%S UTC %Y")
            return int(shown.replace(tzinfo=datetime.timezone.utc).timestamp()), \
                int(found.group(2))
    raise AssertionError("no rtc_cmos clock line in the log")


@pytest.mark.oracle
def test_log_T_on_6_12_is_right_where_crash_is_not(dumps, crash) -> None:  # noqa: ANN001
    """crash 8.0.6 takes HZ=1000 for Debian's 6.12 (HZ=250): its boot time, and every
    -T date, is minutes early. kdx's date for the RTC record is the RTC's own time."""
    dump, target = dumps["null_deref_612"]
    ours_shown, rtc = _rtc_line(kdx_output(target, "log -T").split("\n"))
    theirs_shown, _ = _rtc_line(crash_sections(crash, dump)["log -T"])
    assert abs(ours_shown - rtc) <= 1
    assert rtc - theirs_shown > 60


# --- against makedumpfile and the lab's truth -------------------------------------------


@pytest.mark.parametrize("name", _DUMPS)
def test_log_matches_makedumpfile_dmesg(name: str, dumps) -> None:  # noqa: ANN001
    dump, target = dumps[name]
    saved = (dump.dir / "dmesg.txt").read_text(errors="backslashreplace").splitlines()
    theirs = [_without_caller(line) for line in saved]
    ours = kdx_output(target, "log").rstrip("\n").split("\n")
    assert len(ours) > 400
    assert ours == theirs


@pytest.mark.parametrize("name", _DUMPS)
def test_panic_record_names_the_crashing_task(name: str, dumps) -> None:  # noqa: ANN001
    """The Oops record was logged by the task that crashed (caller ids: 5.10+)."""
    dump, target = dumps[name]
    doc = json.loads(kdx_output(target, "log", json_mode=True))
    assert doc["kind"] == "log"
    records = doc["data"]["records"]
    message = dump.truth["panic_message"]
    panic = next(r for r in records if any(message in line for line in r["lines"]))
    assert panic["caller_tid"] == dump.truth["pid"]
    assert panic["level"] in (0, 1)  # KERN_EMERG (panic) or KERN_ALERT (Oops)
    assert [r["seq"] for r in records] == list(range(records[0]["seq"],
                                                      records[0]["seq"] + len(records)))


def test_dmesg_is_log(dumps) -> None:  # noqa: ANN001
    _, target = dumps["null_deref"]
    assert kdx_output(target, "dmesg -m") == kdx_output(target, "log -m")


def test_json_of_log_and_audit(dumps, kdx) -> None:  # noqa: ANN001
    dump, _ = dumps["null_deref"]
    proc = kdx(dump.vmcore, dump.vmlinux, "--json", "-c", "log -T", "-c", "log -a", check=True)
    decoder, text, docs, at = json.JSONDecoder(), proc.stdout, [], 0
    while text[at:].strip():
        doc, end = decoder.raw_decode(text, at + len(text[at:]) - len(text[at:].lstrip()))
        docs.append(doc)
        at = end
    assert [d["kind"] for d in docs] == ["log", "log-audit"]
    first = docs[0]["data"]["records"][0]
    assert first["lines"][0].startswith("Linux version ") and first["timestamp_ns"] == 0
    assert docs[0]["data"]["boot_epoch"] > 1_700_000_000
    assert docs[1]["data"] == []  # the lab runs no auditd, and nothing is queued


# --- what the renderer does with records --------------------------------------------------


def _record(*lines: str, dataless: bool = False, **fields) -> LogRecord:  # noqa: ANN003
    base = {"seq": 7, "timestamp_ns": 9_121_619_000, "level": 6, "facility": 0,
            "caller_tid": 42, "caller_cpu": None, "continuation": False}
    return LogRecord(**{**base, **fields}, lines=list(lines), dataless=dataless)


def test_continuation_lines_and_dictionary_line_up_under_the_text() -> None:
    log = KernelLog([_record("first", "second", dictionary={"SUBSYSTEM": "pci"}),
                     _record(dataless=True), _record("", caller_cpu=1)],
                    caller_width=6, lockless=True)
    options = LogOptions(level=True, caller=True, dictionary=True)
    assert render_log(log, options).split("\n") == [
        "[    9.121619] [   T42] <6>first",
        " " * 27 + "second",
        " " * 27 + "SUBSYSTEM=pci",
        "",
        "[    9.121619] [    C1] <6>",
    ]
    assert render_log(log, LogOptions(timestamps="none")).split("\n")[:2] == ["first", "second"]


def test_one_reader_gives_the_rules_and_the_report_the_same_lines() -> None:
    """``sys``'s panic line and the diagnosis search the lines of the model's log: a
    record's continuation lines carry no timestamp, a data-less record is empty."""
    log = KernelLog([_record("first", "second"), _record(dataless=True),
                     _record("Oops: 0002 [#1]", timestamp_ns=12_000_001_000)],
                    caller_width=6, lockless=True)
    assert text_lines(log) == ["first", "second", "", "Oops: 0002 [#1]"]
    text = log_text(log)
    assert text.bare == text_lines(log)
    assert text.lines == ["[    9.121619] first", "second", "[    9.121619] ",
                          "[   12.000001] Oops: 0002 [#1]"]
    assert render_log(log, LogOptions()).split("\n") == [
        "[    9.121619] first", "               second", "", "[   12.000001] Oops: 0002 [#1]"]


def test_log_text_from_the_dump_cannot_reach_the_terminal(dumps) -> None:  # noqa: ANN001
    hostile = b"a\x1b]0;owned\x07b\x1b[2Jc\rd\x9be\xe2\x80\xaef\xffg\tend"
    text = printable(hostile)
    assert text == "a.]0;owned.b.[2Jc.d\\x9be.f\\xffg\tend"
    log = KernelLog([_record(*text.split("\n"))], caller_width=8, lockless=True)
    out = io.StringIO()
    session = Session(dumps["null_deref"][1], out=out, err=io.StringIO())
    session.write(render_log(log, LogOptions()))
    assert not any(ord(c) < 0x20 and c != "\t" for c in out.getvalue())


def test_text_block_finds_wrapped_and_dataless_records() -> None:
    """The cases drgn 0.3.0 misreads, by the kernel's rules for logical positions."""
    ring = 1 << 17
    # A regular block: drgn read it right.
    assert text_block(5 * ring + 100, 5 * ring + 180, ring, 8, 60) == (-1, 0)
    # A wrapping block: its data restarts at the ring's start, after its 8-byte ID.
    assert text_block(5 * ring + ring - 40, 6 * ring + 72, ring, 8, 72) == (8, 64)
    # ... and a truncated one keeps to the block's end.
    assert text_block(5 * ring + ring - 40, 6 * ring + 30, ring, 8, 30) == (8, 22)
    # Data-less records (FAILED_LPOS, NO_LPOS) print as empty lines in crash.
    assert text_block(0x1, 0x1, ring, 8, 3) is None
    assert text_block(0x3, 0x3, ring, 8, 0) is None
