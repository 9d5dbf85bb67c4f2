"""``kdx sys`` on real lab dumps: against crash 8.0.6, against the lab's ground truth, as
JSON, and on input that is not a usable dump.

crash runs inside the lab's trixie root, whose clock zone is UTC; kdx runs with TZ=UTC so
that the DATE lines are comparable whatever the host's zone.
"""

from __future__ import annotations

import datetime
import json
import re
import shutil
from pathlib import Path

import pytest
from json_schemas import schema_problems

from kdx.lab.cache import default_cache
from kdx.lab.oracle import parse_sys
from kdx.model.system import (
    SystemInfo,
    choose_panic_line,
    format_task_state,
    task_state_bits,
)
from kdx.render.crash.sys import (
    ctime,
    dumpfile_value,
    duration,
    load_average,
    memory_size,
    render_sys,
)

_CONTEXT_LINE = re.compile(r"^\s*(PID|COMMAND|TASK|CPU|STATE): (.*?)\s*$")


@pytest.fixture(autouse=True)
def _utc(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TZ", "UTC")


def crash_banner(crash, dump) -> dict[str, str]:  # noqa: ANN001 (fixtures)
    """crash's banner fields: ``sys``, then the panic task as ``set`` prints it."""
    text = crash(dump, ["sys", "set"])
    fields = parse_sys(text)
    for line in text.splitlines():
        found = _CONTEXT_LINE.match(line)
        if found:
            fields[found.group(1)] = found.group(2)
    return fields


def kdx_sys(kdx, *args: str | Path) -> str:  # noqa: ANN001 (fixture)
    proc = kdx("sys", *args, check=True)
    assert "Traceback" not in proc.stderr
    return proc.stdout


def kdx_json(kdx, dump) -> dict:  # noqa: ANN001 (fixtures)
    text = kdx_sys(kdx, "--json", dump.vmcore, dump.vmlinux)
    assert schema_problems(text) == []
    doc = json.loads(text)
    assert doc["kind"] == "sys"
    return doc["data"]


# --- against crash ---------------------------------------------------------------------


@pytest.mark.oracle
@pytest.mark.parametrize("name", ["null_deref", "sysrq"])
def test_sys_matches_crash_field_by_field(name: str, request, kdx, crash) -> None:  # noqa: ANN001
    """Both tools get the same vmlinux and dump paths, so even KERNEL and DUMPFILE match.
    These are 6.1 kdump captures, where crash's HZ guess works (see crash-differences)."""
    dump = request.getfixturevalue(name)
    ours = parse_sys(kdx_sys(kdx, dump.vmcore, dump.vmlinux))
    theirs = crash_banner(crash, dump)
    assert theirs["PANIC"] and theirs["STATE"]  # crash's output was parsed
    assert ours == theirs


@pytest.mark.oracle
def test_qemu_capture_matches_crash(lab, kdx, crash) -> None:  # noqa: ANN001
    """A QEMU capture: the stopped CPU shows as offline, and crash says (SYSRQ) because it
    finds the panic task's registers by scanning its stack, past sysrq_handle_crash."""
    dump = lab("sysrq", capture="qemu", fmt="elf")
    ours = parse_sys(kdx_sys(kdx, dump.vmcore, dump.vmlinux))
    assert ours == crash_banner(crash, dump)
    assert ours["CPUS"] == "2 [OFFLINE: 1]"
    assert ours["STATE"] == "TASK_RUNNING (SYSRQ)"


def _console_seconds(dump, text: str) -> float:  # noqa: ANN001
    """The printk timestamp of the console line containing ``text``."""
    for line in (dump.dir / "console.log").read_text(errors="replace").splitlines():
        if text in line:
            return float(re.search(r"\[\s*(\d+\.\d+)\]", line).group(1))
    raise AssertionError(f"{text!r} not in the console log")


@pytest.mark.oracle
def test_uptime_right_where_crash_is_wrong(lab, kdx, crash) -> None:  # noqa: ANN001
    """On Debian's 6.12 (HZ=250) crash 8.0.6 falls back to HZ=1000 and reports minutes of
    uptime for a guest that panicked seconds after boot; kdx matches the console."""
    dump = lab("sysrq", kernel="6.12")
    data = kdx_json(kdx, dump)
    panicked_at = _console_seconds(dump, dump.truth["panic_message"])
    assert data["hz"] == 250
    assert abs(data["uptime_seconds"] - panicked_at) < 1.0
    crash_uptime = crash_banner(crash, dump)["UPTIME"]
    assert crash_uptime != duration(data["uptime_seconds"])  # the documented difference
    assert crash_uptime.startswith("00:03:")  # 300 s of jiffies head start over 4


# --- against the ground truth ----------------------------------------------------------------


def _config_hz(release: str) -> int:
    config = default_cache() / "kernels" / release / "boot" / f"config-{release}"
    return int(re.search(r"^CONFIG_HZ=(\d+)$", config.read_text(), re.M).group(1))


@pytest.mark.parametrize("name", ["null_deref", "sysrq"])
def test_sys_agrees_with_truth(name: str, request, kdx) -> None:  # noqa: ANN001
    dump = request.getfixturevalue(name)
    truth = dump.truth
    data = kdx_json(kdx, dump)
    assert data["release"] == truth["release"]
    assert (data["pid"], data["command"], data["cpu"]) == (truth["pid"], truth["comm"],
                                                           truth["cpu"])
    assert data["state"] == "TASK_RUNNING (PANIC)"
    assert data["hz"] == _config_hz(truth["release"])
    assert abs(data["uptime_seconds"] - _console_seconds(dump, truth["panic_message"])) < 1.0
    assert data["partial"] is True and data["dump_format"] == "kdump-compressed (zlib)"


def test_panic_line_of_a_panic(sysrq, kdx) -> None:  # noqa: ANN001
    assert kdx_json(kdx, sysrq)["panic"] == sysrq.truth["panic_message"]


def test_panic_line_of_an_oops_captured_by_kdump(null_deref, kdx) -> None:  # noqa: ANN001
    """kdump takes over in oops_end(), before panic() logs "Kernel panic", so the line
    crash (and kdx) shows is the oops line; the module taints the kernel."""
    data = kdx_json(kdx, null_deref)
    assert data["panic"].startswith("Oops: 0002 [#1]")
    assert data["tainted"] is True and "O" in data["taint_flags"].split()[-1]


@pytest.mark.oracle
@pytest.mark.parametrize("scenario", ["gpf", "stack-overflow"])
def test_panic_line_of_an_oops_crash_misses(scenario: str, lab, kdx, crash) -> None:  # noqa: ANN001
    """kdump took over in oops_end(), so no "Kernel panic" line exists, and 6.1 words
    these oopses in a way crash 8.0.6's lists miss: crash shows PANIC: "", kdx the oops
    line the console shows (the lab's truth). Every other banner field still agrees."""
    dump = lab(scenario)
    ours = parse_sys(kdx_sys(kdx, dump.vmcore, dump.vmlinux))
    theirs = crash_banner(crash, dump)
    assert theirs["PANIC"] == '""'  # the documented difference
    assert ours["PANIC"] == f'"{dump.truth["panic_message"]}"'
    assert {k: v for k, v in ours.items() if k != "PANIC"} == \
        {k: v for k, v in theirs.items() if k != "PANIC"}


@pytest.mark.parametrize("scenario", ["gpf", "stack-overflow"])
def test_panic_line_of_the_real_log_with_and_without_panic(scenario: str, lab) -> None:  # noqa: ANN001
    """The dump's own log, read by the model: as kdump left it (no "Kernel panic" line)
    the oops line is chosen; had panic() run first, its line would win, as in crash."""
    from kdx.model.log import kernel_log, text_lines

    dump = lab(scenario)
    lines = text_lines(kernel_log(dump.target.prog))
    assert not any("Kernel panic" in line for line in lines)
    assert choose_panic_line(lines) == dump.truth["panic_message"]
    panicked = [*lines, "Kernel panic - not syncing: Fatal exception"]
    assert choose_panic_line(panicked) == "Kernel panic - not syncing: Fatal exception"


# --- JSON ---------------------------------------------------------------------------------------


def test_json_has_every_field_and_renders_to_the_text(sysrq, kdx) -> None:  # noqa: ANN001
    """The JSON is the whole record: rebuilding it and rendering gives the text output."""
    data = kdx_json(kdx, sysrq)
    assert data["dumpfile"] == str(sysrq.vmcore)
    assert data["kernel"] == str(sysrq.vmlinux)
    assert len(data["load_average"]) == 3
    assert data["tasks"] > 10 and data["cpus"] == 2 and data["memory_bytes"] > 256 << 20
    assert data["date"] == datetime.datetime.fromtimestamp(
        data["date_epoch"], datetime.timezone.utc).isoformat()
    assert data["warnings"] == []
    assert re.fullmatch(r"0x[0-9a-f]{16}", data["task"])  # schema 2: addresses as strings
    for key in ("task", "thread_info"):
        data[key] = int(data[key], 16)
    text = kdx_sys(kdx, sysrq.vmcore, sysrq.vmlinux)
    assert render_sys(SystemInfo(**data)) == text


# --- bad input -------------------------------------------------------------------------------


def _other_release_vmlinux(release: str) -> Path | None:
    for path in sorted((default_cache() / "kernels").glob("*/usr/lib/debug/boot/vmlinux-*")):
        if not path.name.endswith(release):
            return path
    return None


def _bad_cases(tmp_path: Path, sysrq, null_deref) -> dict[str, list]:  # noqa: ANN001
    (tmp_path / "empty").write_bytes(b"")
    (tmp_path / "random").write_bytes(bytes(range(256)) * 4096)
    with open(sysrq.vmcore, "rb") as f:  # cut inside its bitmaps (a later cut opens)
        (tmp_path / "truncated").write_bytes(f.read(20000))
    ko = null_deref.modules / "hello_crash.ko"
    cases = {
        "missing": [tmp_path / "no-such-vmcore"],
        "empty": [tmp_path / "empty"],
        "directory": [tmp_path],
        "random bytes": [tmp_path / "random"],
        "truncated": [tmp_path / "truncated"],
        "program as vmlinux": [sysrq.vmcore, "/bin/ls"],
        "unloaded module as vmlinux": [sysrq.vmcore, ko],
        "dump as vmlinux": [sysrq.vmcore, sysrq.vmcore],
    }
    other = _other_release_vmlinux(sysrq.truth["release"])
    if other is not None:
        cases["other release's vmlinux"] = [sysrq.vmcore, other]
    return cases


_EXPECTED = {
    "missing": "no such file", "empty": "is empty", "directory": "is a directory",
    "random bytes": "not a crash dump", "truncated": "is truncated",
    "program as vmlinux": "shared library or program",
    "unloaded module as vmlinux": "not a module loaded in the dump",
    "dump as vmlinux": "not an ELF file", "other release's vmlinux": "is for Linux",
}


def test_bad_input_gives_one_error_line(tmp_path: Path, sysrq, null_deref, kdx) -> None:  # noqa: ANN001
    cases = _bad_cases(tmp_path, sysrq, null_deref)
    assert (null_deref.modules / "hello_crash.ko").is_file()
    for what, args in cases.items():
        proc = kdx("sys", *args)
        errors = [line for line in proc.stderr.splitlines() if line.startswith("kdx: error:")]
        assert proc.returncode != 0, what
        assert "Traceback" not in proc.stderr, what
        assert len(errors) == 1, (what, proc.stderr)
        assert _EXPECTED[what] in errors[0], (what, errors[0])
        assert proc.stdout == "", what


def test_a_copy_of_a_dump_opens_and_only_the_name_changes(tmp_path: Path, sysrq, kdx) -> None:  # noqa: ANN001
    """The truncation check must not refuse a complete copy (same bytes, new name)."""
    copy = tmp_path / "copy.vmcore"
    shutil.copyfile(sysrq.vmcore, copy)
    ours = parse_sys(kdx_sys(kdx, copy, sysrq.vmlinux))
    assert ours["DUMPFILE"] == f"{copy}  [PARTIAL DUMP]"
    assert ours["PANIC"] == f'"{sysrq.truth["panic_message"]}"'


# --- the rules, on exact values --------------------------------------------------------------

#: task_state_array of Linux 4.14 and later (checked on 6.1 and 6.12).
_STATE_ARRAY = ["R (running)", "S (sleeping)", "D (disk sleep)", "T (stopped)",
                "t (tracing stop)", "X (dead)", "Z (zombie)", "P (parked)", "I (idle)"]


@pytest.mark.parametrize(("state", "text"), [
    (0x0, "TASK_RUNNING"),
    (0x1, "TASK_INTERRUPTIBLE"),
    (0x402, "TASK_UNINTERRUPTIBLE|TASK_NOLOAD"),  # TASK_IDLE, a sleeping kworker
    (0x40, "TASK_PARKED"),
    (0x20, "EXIT_ZOMBIE"),
    (0x10 | 0x80, "EXIT_DEAD|TASK_DEAD"),
    (0x8, "TASK_TRACED"),
    (0x4 | 0x100, "TASK_STOPPED|TASK_WAKEKILL"),
    (0x800, "TASK_NEW"),
])
def test_task_state_names_follow_crash(state: int, text: str) -> None:
    assert format_task_state(state, task_state_bits(_STATE_ARRAY)) == text


def test_panic_line_choice_follows_crash_priorities() -> None:
    log = ["BUG: kernel NULL pointer dereference, address: 0000000000000000",
           "Oops: 0002 [#1] PREEMPT SMP NOPTI", "CPU: 1 PID: 5 Comm: x",
           "Kernel panic - not syncing: Fatal exception"]
    assert choose_panic_line(log) == "Kernel panic - not syncing: Fatal exception"
    assert choose_panic_line(log[:3]) == "Oops: 0002 [#1] PREEMPT SMP NOPTI"
    assert choose_panic_line(["foo", "an Oops without colon here"]) == \
        "an Oops without colon here"
    assert choose_panic_line(["nothing", "to see"]) == ""


#: Oops reports of 6.1 as the lab's guests logged them, when kdump took over before
#: panic() (panic_on_oops) so no "Kernel panic" line follows.
_GPF_61 = ["crashlab_gpf: removed entry 3, now reading its successor",
           "general protection fault, probably for non-canonical address "
           "0xdead000000000110: 0000 [#1] PREEMPT SMP NOPTI",
           "CPU: 1 PID: 235 Comm: insmod Tainted: G           O       6.1.0-57-cloud-amd64",
           "RIP: 0010:crashlab_gpf_init+0x5a/0x1000 [crashlab_gpf]"]
_GUARD_61 = ["NX (Execute Disable) protection: active",
             "BUG: TASK stack guard page was hit at 00000000d515ff1d (stack is "
             "00000000f80db8da..00000000647ead91)",
             "stack guard page: 0000 [#1] PREEMPT SMP NOPTI",
             "RIP: 0010:crashlab_recurse+0x1b/0x60 [crashlab_stack]"]


def test_panic_line_of_oopses_crash_8_misses() -> None:
    """crash 8.0.6 finds nothing in these logs; kdx shows the line that opens the oops,
    the guard page report before its die() header."""
    assert choose_panic_line(_GPF_61) == _GPF_61[1]
    assert choose_panic_line(_GUARD_61) == _GUARD_61[1]
    assert choose_panic_line(["#DF stack guard page: 0000 [#2] SMP"]) == \
        "#DF stack guard page: 0000 [#2] SMP"
    # crash's own rules still win wherever they find a line.
    assert choose_panic_line([*_GPF_61, "Kernel panic - not syncing: Fatal exception"]) == \
        "Kernel panic - not syncing: Fatal exception"
    assert choose_panic_line(["Oops: general protection fault, probably for non-canonical "
                              "address 0xdead000000000110: 0000 [#1] PREEMPT SMP NOPTI"]) \
        .startswith("Oops: general protection fault")
    # A plain colon and a number is not an oops header.
    assert choose_panic_line(["usb 1-1: 0000 devices", "x: 12ab [#] y"]) == ""


def test_formats_follow_crash() -> None:
    assert duration(8.8) == "00:00:08"
    assert duration(3 * 86400 + 3723.9) == "3 days, 01:02:03"
    assert duration(None) == "(cannot calculate: unknown HZ value)"
    # avenrun 164 is 0.08; 297 (0.14502) is 0.14 in the kernel's rounding, not %.2f's 0.15.
    assert load_average([164 / 2048, 297 / 2048, 0.0]) == "0.08, 0.14, 0.00"
    assert memory_size(536_346_624) == "511.5 MB"
    assert memory_size((4 << 30) - (32 << 20)) == "4 GB"  # within 64 MiB of 4 GiB
    assert memory_size((4 << 30) - (100 << 20)) == "3.9 GB"
    assert memory_size(512 << 10) == "512 KB"
    assert ctime(1795685899) == "Thu Nov 26 09:38:19 UTC 2026"


def test_dumpfile_flags_are_spaced_like_crash() -> None:
    base = dict(kernel="/v", debug_source="dwarf", dumpfile="/d", dump_format="",
                tainted=False, taint_mask=0,
                taint_flags="", livepatch=False, livepatch_transition=False, cpus=1,
                cpus_offline=0, date="", date_epoch=0, uptime_seconds=0.0, hz=250,
                load_average=[0.0, 0.0, 0.0], tasks=1, nodename="", release="", version="",
                machine="", mhz=None, memory_bytes=0, panic="", pid=None, command=None,
                task=None, thread_info=None, same_pid_tasks=0, cpu=None, state=None,
                panic_task_found=False)
    kdump = SystemInfo(**base, dump_kind="kdump", partial=True, incomplete=True)
    assert dumpfile_value(kdump) == "/d  [PARTIAL DUMP] [INCOMPLETE]"
    elf = SystemInfo(**base, dump_kind="elf", partial=False, incomplete=True)
    assert dumpfile_value(elf) == "/d  [INCOMPLETE]"
    plain = SystemInfo(**base, dump_kind="elf", partial=False, incomplete=False)
    assert dumpfile_value(plain) == "/d"


def test_hz_from_the_clocks_only_when_one_rate_clearly_fits() -> None:
    from kdx.model.system import _decisive

    # 8 s after boot at HZ=250: 250 fits within a tick, 256 misses by 6.6 s
    assert _decisive([(0.2, 250, 8.0), (6.6, 256, 8.0), (48.5, 300, 8.0)])
    # near 300 s of uptime every rate fits: the config must decide
    assert not _decisive([(0.2, 250, 299.0), (0.21, 256, 299.0), (0.3, 300, 299.0)])
    assert not _decisive([(0.9, 250, 170.0), (3.0, 256, 170.0)])  # not 10 times apart
    assert not _decisive([(1.5, 250, 8.0), (60.0, 300, 8.0)])  # even the best is off


def test_hz_falls_back_to_the_config_when_the_clocks_cannot_tell(
        sysrq, monkeypatch: pytest.MonkeyPatch) -> None:  # noqa: ANN001
    """Debian builds without CONFIG_IKCONFIG, so on lab dumps the clocks decide; a kernel
    that carries its config is consulted when they cannot."""
    from kdx.model import system

    prog = sysrq.opened.prog
    assert system.kernel_hz(prog) == _config_hz(sysrq.truth["release"])
    ambiguous = [(0.1, hz, 300.0) for hz in (1000, 250, 300)]  # a wrong rate first
    monkeypatch.setattr(system, "_hz_misses", lambda _prog: ambiguous)
    monkeypatch.setattr(system, "get_kconfig", lambda _prog: {"CONFIG_HZ": "300"})
    assert system.kernel_hz(prog) == 300
    monkeypatch.setattr(system, "get_kconfig", lambda _prog: {})  # no config either
    assert system.kernel_hz(prog) == 1000  # the closest
