"""``foreach`` on real lab dumps, against crash 8.0.6: the tasks each selector picks
(PIDs, names, patterns, kernel/user/gleader/active, states), in crash's order, under
crash's headers, and what each verb (bt, task, files, vm, set) prints for them.

crash's outputs come from the cached runs test_bt.py also reads (same command lists).
"""

from __future__ import annotations

import io
import re

import pytest
from test_bt import (
    ORACLE_MORE,
    ORACLE_MORE_612,
    ORACLE_SYSRQ,
    crash_sections,
    normalise_crash,
    parse_bt,
    run,
    session_for,
)

_HEADER = re.compile(r'^PID: (\d+)\s+TASK: ([0-9a-f]+)\s+CPU: (\S+)\s+COMMAND: "(.*)"$')

#: The commands of the hung-task dump's crash run.
ORACLE_HUNG = ("ps", "foreach UN bt", "runq", "runq -t", "runq -m", "runq -g", "bt -v",
               "bt -r", "foreach UN set", "foreach bt -R schedule_timeout")

#: Compared line for line on the 6.1 null-deref dump.
SAME_TEXT = ["foreach task -R pid,comm", "foreach 1 task", "foreach files", "foreach vm",
             "foreach set", "foreach RU bt", "foreach kernel set", "foreach user set",
             "foreach gleader set", "foreach active set", "foreach 'k.*' set",
             "foreach ID set", "foreach IN set", "foreach UN set", "foreach sh set"]


def headers(text: str) -> list[tuple[int, str, str, str]]:
    return [(int(m[1]), m[2], m[3], m[4]) for line in text.splitlines()
            if (m := _HEADER.match(line))]


def ps_rows(text: str) -> list[dict[str, str]]:
    """crash's ps table: PID, TASK, ST, COMM (kernel threads in brackets), active mark."""
    rows = []
    for line in text.splitlines()[1:]:
        parts = line.lstrip(">").split()
        if len(parts) < 9:
            continue
        rows.append({"pid": parts[0], "task": parts[3], "state": parts[4],
                     "comm": " ".join(parts[8:]), "active": line.startswith(">")})
    return rows


@pytest.mark.oracle
@pytest.mark.parametrize("command", SAME_TEXT)
def test_foreach_matches_crash(command: str, null_deref, crash) -> None:  # noqa: ANN001
    theirs = normalise_crash(crash_sections(crash, null_deref, ORACLE_MORE)[command],
                             null_deref)
    ours = run(null_deref, command)
    assert ours.splitlines() == theirs.rstrip("\n").splitlines()


@pytest.mark.oracle
def test_selectors_pick_crash_s_tasks(null_deref, crash) -> None:  # noqa: ANN001
    """The tasks each selector picks, checked against crash's ps: states by the ST
    column, kernel threads by their brackets, active ones by ">", names and patterns by
    COMM; all in ps order."""
    sections = crash_sections(crash, null_deref, ORACLE_MORE)
    rows = ps_rows(sections["ps"])
    assert len(rows) > 40
    expected = {
        "foreach kernel set": [r for r in rows if r["comm"].startswith("[")],
        "foreach user set": [r for r in rows if not r["comm"].startswith("[")],
        "foreach active set": [r for r in rows if r["active"]],
        "foreach ID set": [r for r in rows if r["state"] == "ID"],
        "foreach IN set": [r for r in rows if r["state"] == "IN"],
        "foreach 'k.*' set": [r for r in rows if re.search("k.*", r["comm"].strip("[]"))],
        "foreach sh set": [r for r in rows if r["comm"] == "sh"],
    }
    for command, want in expected.items():
        ours = headers(run(null_deref, command))
        assert [(str(p), t) for p, t, _, _ in ours] == [(r["pid"], r["task"]) for r in want], \
            command
        assert headers(sections[command]) == ours
    assert not headers(run(null_deref, "foreach UN set"))


@pytest.mark.oracle
def test_foreach_UN_bt_on_the_hung_task_dump(lab, crash) -> None:  # noqa: ANN001
    """The one task in D state is the hung task the kernel's watchdog named, blocked in
    the module's mutex wait; kdx prints crash's trace for it."""
    dump = lab("hung-task", kernel="6.1", capture="kdump", fmt="kdump-zlib")
    sections = crash_sections(crash, dump, ORACLE_HUNG)
    for command in ("foreach UN bt", "foreach UN set", "foreach bt -R schedule_timeout"):
        assert run(dump, command).splitlines() == \
            sections[command].rstrip("\n").splitlines(), command
    [trace] = parse_bt(run(dump, "foreach UN bt"))
    assert f"task {trace.comm}:{trace.pid} blocked" in dump.truth["panic_message"]
    assert dump.truth["function"] in trace.names()


@pytest.mark.oracle
@pytest.mark.parametrize("command", ["foreach RU set", "foreach gleader set",
                                     "foreach bt -R schedule_timeout", "foreach UN bt"])
def test_foreach_on_612(command: str, null_deref_612, crash) -> None:  # noqa: ANN001
    theirs = crash_sections(crash, null_deref_612, ORACLE_MORE_612)[command]
    ours = run(null_deref_612, command)
    assert ours.splitlines() == theirs.rstrip("\n").splitlines()
    if command != "foreach UN bt":
        assert headers(ours)


def _error(dump, line: str) -> str:  # noqa: ANN001
    session = session_for(dump)
    session.out, session.err = io.StringIO(), io.StringIO()
    assert not session.execute(line)
    assert session.out.getvalue() == ""
    return session.err.getvalue()


@pytest.mark.parametrize(("line", "message"), [
    ("foreach 1 vtop", "foreach vtop needs an address"),
    ("foreach 1 sig -Z", "unrecognized arguments: -Z"),
    ("foreach kernel user bt", "user and kernel are mutually exclusive!"),
    ("foreach RU IN bt", "only one task state allowed"),
    ("foreach bt -g", "bt -g option is not supported when issued from foreach"),
    ("foreach 1", "no command given"),
])
def test_errors_are_one_line(line: str, message: str, null_deref) -> None:  # noqa: ANN001
    err = _error(null_deref, line)
    assert len(err.splitlines()) == 1 and message in err, err


#: The verbs that hand the selected tasks to the session's own commands.
#: Verbs kdx runs through the plain command; PANIC stands for the panicking insmod's PID,
#: which changes each time the lab builds the dump.
DELEGATED = ["foreach 1 PANIC sig", "foreach 1 PANIC net -s", "foreach 1 PANIC ps",
             "foreach 1 PANIC vtop 401000", "foreach insmod net"]


@pytest.mark.oracle
def test_delegated_verbs_match_crash(null_deref, crash) -> None:  # noqa: ANN001
    from crash_script import crash_sections as sections
    from crash_script import kdx_sections

    pid = null_deref.truth["pid"]
    commands = [c.replace("PANIC", str(pid)) for c in DELEGATED]
    theirs = sections(crash, null_deref, commands)
    ours = kdx_sections(session_for(null_deref).target, commands)
    assert not ours.failed, ours.stderr
    for command in commands:
        mine, crash_lines = ours.sections[command].split("\n"), theirs[command].split("\n")
        if command == "foreach insmod net":  # crash's warning is on stdout, kdx's on stderr
            assert crash_lines[:2] == ["WARNING: net command requires -s or -S option", ""]
            crash_lines = crash_lines[2:]
            assert "net command requires -s or -S option" in ours.stderr
        if "vtop" in command:  # crash prints the PAGE table header for the first task only
            mine = [line for line in mine if not line.lstrip().startswith("PAGE       PHYS")]
            crash_lines = [line for line in crash_lines
                           if not line.lstrip().startswith("PAGE       PHYS")]
        assert mine == crash_lines, command
    assert [h[0] for h in headers(ours.sections[f"foreach 1 {pid} sig"])] == [1, pid]
    assert [r["pid"] for r in ps_rows(ours.sections[f"foreach 1 {pid} ps"])] == ["1", str(pid)]


def test_unknown_name_selects_nothing(null_deref) -> None:  # noqa: ANN001
    """As crash: a name no task has is reported, and the command runs on nothing
    (rather than on every task)."""
    session = session_for(null_deref)
    session.out, session.err = io.StringIO(), io.StringIO()
    assert session.execute("foreach nosuchtask set")
    assert session.out.getvalue() == ""
    assert 'unknown argument: "nosuchtask"' in session.err.getvalue()


def test_selectors_combine(null_deref) -> None:  # noqa: ANN001
    """Filters apply to every task, names pick among what passes: kernel + a user
    task's PID selects nothing, user + 1 selects init; options before the verb reach it."""
    assert run(null_deref, "foreach kernel 1 set") == ""
    assert [h[0] for h in headers(run(null_deref, "foreach user 1 sh set"))] == \
        [1, next(h[0] for h in headers(run(null_deref, "foreach sh set")))]
    assert run(null_deref, "foreach -R pid 1 task") == run(null_deref, "foreach 1 task -R pid")
    task = headers(run(null_deref, "foreach 1 set"))[0][1]
    assert headers(run(null_deref, f"foreach {task} set"))[0][0] == 1


@pytest.mark.oracle
@pytest.mark.parametrize("command", ["foreach RU bt", "foreach active set"])
def test_foreach_on_sysrq(command: str, sysrq, crash) -> None:  # noqa: ANN001
    """The SysRq dump: every running task's trace (both CPUs' idle and active tasks),
    and the active tasks' context, the panic task (truth's) marked (PANIC) as crash marks
    it, the other CPU's (ACTIVE)."""
    theirs = crash_sections(crash, sysrq, ORACLE_SYSRQ)[command]
    ours = run(sysrq, command)
    assert ours.splitlines() == theirs.rstrip("\n").splitlines()
    if command == "foreach active set":
        assert "(ACTIVE)" in ours
        panic = ours.split("\n\n")[[h[0] for h in headers(ours)].index(sysrq.truth["pid"])]
        assert panic.endswith("STATE: TASK_RUNNING (PANIC)")


# -- foreach vm -v / -R, foreach files -c / -R ---------------------------------------------

#: The vm and files options' crash run (one cached run per dump).
VM_FILES = ("foreach cat vm -v", "foreach vm -R busybox", "foreach files -R scratch",
            "foreach files -R FIFO", "foreach fileholder files -c",
            "foreach files -c -R null", "foreach vm -m -R busybox", "foreach files -p")


@pytest.mark.oracle
def test_foreach_vm_and_files_options_match_crash(null_deref_each, crash) -> None:  # noqa: ANN001, E501
    from crash_script import crash_sections as script_sections
    from crash_script import kdx_sections

    commands = list(VM_FILES)
    theirs = script_sections(crash, null_deref_each, commands)
    target = session_for(null_deref_each).target
    run = kdx_sections(target, commands)
    *same, vm_error, files_error = commands
    for command in same:
        assert theirs[command], command
        assert run.sections[command] == theirs[command], command
    ours = run.sections
    # -R: only the tasks with a match, each with only its matching VMAs or files
    assert {h[3] for h in headers(ours["foreach files -R scratch"])} == {"fileholder"}
    assert all(line.endswith("/bin/busybox") for line in ours["foreach vm -R busybox"]
               .split("\n") if line.startswith(("ff", "0")) and " " in line.strip()
               and len(line.split()) == 5)
    assert all(line.split()[-1] == "/dev/null" for line in ours["foreach files -c -R null"]
               .split("\n") if line[:3].strip().isdigit())
    assert [h[3] for h in headers(ours["foreach cat vm -v"])] == ["cat"]
    assert ours["foreach cat vm -v"].count("struct vm_area_struct {") >= 5
    assert theirs[vm_error] == "foreach: vm: -m is not applicable to the -R option"
    assert theirs[files_error] == "foreach: files command does not support -p option"
    assert run.failed == [vm_error, files_error]
    assert "vm: -m is not applicable to the -R option" in run.stderr
    assert "files command does not support -p option" in run.stderr


def test_foreach_sig_options(null_deref) -> None:  # noqa: ANN001
    assert "-l and -s options are not applicable" in _error(null_deref, "foreach sig -l")
    text = run(null_deref, "foreach insmod sig -g")
    assert text.startswith("PID: ") and "\n  PID: " in text
