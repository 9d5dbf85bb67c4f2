"""``ps``, ``set`` and ``task`` on real lab dumps, against crash 8.0.6 and the lab's truth.

crash runs once per dump on every command below (separated by ``eval`` markers, whose
output is easy to find), and kdx runs the same commands in one session, in the same
order, so that ``set`` moves the current task the same way in both. Each section is
compared line by line: every PID, PPID, CPU, task address, state, %MEM, VSZ, RSS, name
and ``>`` marker.
"""

from __future__ import annotations

import io
import json
import re
from dataclasses import replace

import pytest
from crash_script import crash_parts
from crash_script import kdx_sections as kdx_run

from kdx.model.tasks import TaskContext, TaskInfo, state_code
from kdx.render.crash.ps import center, info_header, ps_line, render_context, render_ps
from kdx.session.session import Session


def commands(pid: int) -> list[str]:
    """What both tools run, in this order (the crash output is cached by this list)."""
    return ["ps", "ps -k", "ps -u", "ps -G", "ps -S", "ps -A", f"ps -p {pid}", "ps -p",
            "ps -c 1", f"ps -c {pid}", f"ps {pid} 1 kthreadd", "ps 'kworker/0*'", "ps -s",
            "ps -k -G", f"ps -t {pid}", "ps -t 1 2", f"ps -g {pid}", "ps -g 1",
            f"ps -r {pid}", f"ps -a {pid}", "ps -a 1 2", "set", "set -c 0", "set", "set -p",
            f"set {pid}", "task -R pid,comm", "task -R pid,comm,tgid 1", f"task {pid}",
            "ps -l", "ps -m"]


def _keys(wanted: list[str]) -> list[str]:
    """Section names: the command, with " (2)" on its second run."""
    keys: list[str] = []
    for command in wanted:
        keys.append(command if command not in keys else f"{command} ({keys.count(command) + 1})")
    return keys


def crash_sections(crash, dump) -> dict[str, str]:  # noqa: ANN001 (fixtures)
    wanted = commands(dump.truth["pid"])
    return dict(zip(_keys(wanted), crash_parts(crash, dump, wanted)))


def kdx_sections(dump) -> dict[str, str]:  # noqa: ANN001
    wanted = commands(dump.truth["pid"])
    run = kdx_run(dump.target, wanted)
    assert not run.failed, run.stderr
    return dict(zip(_keys(wanted), run.parts))


@pytest.fixture(scope="module", params=["6.1", "6.12"])
def both(request, lab, crash):  # noqa: ANN001
    """(dump, crash's sections, kdx's sections) for the null-deref dump of each kernel."""
    dump = lab("null-deref-module", kernel=None if request.param == "6.1" else "6.12")
    return dump, crash_sections(crash, dump), kdx_sections(dump)


_ROW = re.compile(r"^(>| ) +(\d+) +(-?\d+) +(\d+) +(\S+) +(\S\S) +([\d.]+) +(\d+) +(\d+)  (.*)$")


def rows(text: str) -> list[tuple[str, ...]]:
    return [m.groups() for m in map(_ROW.match, text.splitlines()) if m]


# --- ps against crash --------------------------------------------------------------------------


TABLES = ["ps", "ps -k", "ps -u", "ps -G", "ps -A", "ps -s", "ps -k -G", "ps 'kworker/0*'"]


@pytest.mark.oracle
@pytest.mark.parametrize("command", TABLES)
def test_ps_tables_match_crash(both, command: str) -> None:
    dump, theirs, ours = both
    expected = rows(theirs[command])
    assert expected, theirs[command]  # crash's table was found and parsed
    assert rows(ours[command]) == expected
    assert ours[command].splitlines() == theirs[command].splitlines()


@pytest.mark.oracle
def test_ps_every_task_and_marker(both) -> None:
    """The full table: all tasks, crash's order, the panic task marked active."""
    dump, theirs, ours = both
    table = rows(ours["ps"])
    pids = [int(r[1]) for r in table]
    assert pids == sorted(pids) and pids[:2] == [0, 0]
    panic = [r for r in table if int(r[1]) == dump.truth["pid"]]
    assert panic and panic[0][0] == ">" and panic[0][9] == dump.truth["comm"]
    assert int(panic[0][3]) == dump.truth["cpu"]
    assert sum(r[0] == ">" for r in table) == sum(r[0] == ">" for r in rows(theirs["ps"]))
    assert {r[9] for r in table if r[9].startswith("[")} >= {"[kthreadd]"}


@pytest.mark.oracle
@pytest.mark.parametrize("command", ["ps -S", "ps -p {pid}", "ps -p", "ps -c 1", "ps -c {pid}",
                                     "ps {pid} 1 kthreadd", "ps -g {pid}", "ps -g 1",
                                     "ps -r {pid}", "ps -a {pid}", "ps -a 1 2", "ps -l",
                                     "ps -m"])
def test_ps_views_match_crash(both, command: str) -> None:
    dump, theirs, ours = both
    command = command.format(pid=dump.truth["pid"])
    assert theirs[command]
    assert ours[command].splitlines() == theirs[command].splitlines()


@pytest.mark.oracle
def test_ps_times_match_crash(both) -> None:
    """START TIME, UTIME and STIME always; RUN TIME only where crash knows the real HZ
    (6.1; on 6.12 its guess is wrong, see docs/crash-differences.md)."""
    dump, theirs, ours = both
    for command in (f"ps -t {dump.truth['pid']}", "ps -t 1 2"):
        mine, crash_lines = ours[command].splitlines(), theirs[command].splitlines()
        assert len(mine) >= 5 and sum("RUN TIME" in line for line in mine) >= 1
        if "6.1." not in dump.truth["release"]:
            mine = [line for line in mine if "RUN TIME" not in line]
            crash_lines = [line for line in crash_lines if "RUN TIME" not in line]
        assert mine == crash_lines


@pytest.mark.oracle
@pytest.mark.parametrize("scenario,kernel", [("oom", None), ("hung-task", "6.12")])
def test_ps_matches_crash_on_busy_dumps(scenario: str, kernel: str | None, lab, crash) -> None:  # noqa: ANN001
    """A 250 MB memory hog (RSS from the per-thread caches on 6.1) and a task stuck in D
    state: the memory columns and the UN state agree with crash too."""
    dump = lab(scenario, kernel=kernel)
    theirs = crash(dump, ["ps", "ps -S"])
    table_end = theirs.index("  RU: ")
    session = Session(dump.target, out=io.StringIO(),
                      err=io.StringIO())
    assert session.execute("ps") and session.execute("ps -S")
    ours = "\n".join(line.rstrip() for line in session.out.getvalue().splitlines())
    assert rows(ours) == rows(theirs[:table_end]) and len(rows(ours)) > 50
    assert ours.splitlines() == theirs.rstrip("\n").splitlines()
    if scenario == "oom":
        assert max(int(r[8]) for r in rows(ours)) > 100 << 10  # KiB
    else:
        assert "UN" in {r[5] for r in rows(ours)}


# --- set and task ----------------------------------------------------------------------------


def context(text: str) -> dict[str, str]:
    found = re.findall(r"^\s*(PID|COMMAND|TASK|CPU|STATE): (.*)$", text, re.M)
    return dict(found)


@pytest.mark.oracle
@pytest.mark.parametrize("command", ["set", "set -c 0", "set (2)", "set -p", "set {pid}"])
def test_set_matches_crash(both, command: str) -> None:
    dump, theirs, ours = both
    command = command.format(pid=dump.truth["pid"])
    assert context(theirs[command])
    assert ours[command].splitlines() == theirs[command].splitlines()


@pytest.mark.oracle
def test_set_and_task_agree_with_truth(both) -> None:
    dump, theirs, ours = both
    truth = dump.truth
    fields = context(ours["set"])
    assert fields["PID"] == str(truth["pid"])
    assert fields["COMMAND"] == f'"{truth["comm"]}"'
    assert fields["CPU"] == str(truth["cpu"])
    assert fields["STATE"] == "TASK_RUNNING (PANIC)"
    members = dict(re.findall(r"^  (\w+) = (.*),$", ours["task -R pid,comm"], re.M))
    # comm is a char[16]: gdb (so crash) prints the NULs after the name as \000s
    padding = "\\000" * (16 - 1 - len(truth["comm"]))
    assert members == {"pid": str(truth["pid"]), "comm": f'"{truth["comm"]}{padding}"'}
    for command in ("task -R pid,comm", "task -R pid,comm,tgid 1"):
        crash_members = dict(re.findall(r"^  (\w+) = (.*),$", theirs[command], re.M))
        mine = dict(re.findall(r"^  (\w+) = (.*),$", ours[command], re.M))
        assert mine == crash_members and len(mine) == command.count(",") + 1


@pytest.mark.oracle
def test_task_dump_values_match_crash(both) -> None:
    """The whole task_struct: the header, and every top-level integer member both
    print."""
    dump, theirs, ours = both
    command = f"task {dump.truth['pid']}"
    assert ours[command].splitlines()[0] == theirs[command].splitlines()[0]
    scalar = re.compile(r"^  (\w+) = (-?\d+|0x[0-9a-f]+),?$", re.M)

    def task_struct(text: str) -> dict[str, str]:  # the first struct, not thread_info's
        return dict(scalar.findall(text.split("\n}\n")[0]))

    mine, crash_values = task_struct(ours[command]), task_struct(theirs[command])
    common = set(mine) & set(crash_values)
    assert len(common) > 30
    assert {k: mine[k] for k in common} == {k: crash_values[k] for k in common}


# --- JSON and the command line -----------------------------------------------------------------


def test_json_parses_and_agrees_with_the_table(null_deref, kdx) -> None:  # noqa: ANN001
    proc = kdx(null_deref.vmcore, null_deref.vmlinux, "--json", "-c", "ps", "-c", "ps -S",
               "-c", "set", check=True)
    docs = [json.loads(d) for d in re.split(r"(?m)^(?=\{)", proc.stdout) if d.strip()]
    assert [d["kind"] for d in docs] == ["ps", "ps-summary", "set"]
    tasks = docs[0]["data"]
    panic = [t for t in tasks if t["pid"] == null_deref.truth["pid"]]
    assert panic and panic[0]["active"] and panic[0]["comm"] == null_deref.truth["comm"]
    assert sum(docs[1]["data"].values()) == len(tasks)
    assert docs[2]["data"]["pid"] == null_deref.truth["pid"]


def test_errors_are_one_line(null_deref, kdx) -> None:  # noqa: ANN001
    proc = kdx(null_deref.vmcore, null_deref.vmlinux, "-c", "ps -k -u", "-c", "ps -S 1",
               "-c", "set 99999", "-c", "ps -p -c")
    assert "Traceback" not in proc.stderr
    errors = [line for line in proc.stderr.splitlines() if "error" in line]
    assert len(errors) == 4, proc.stderr


# --- the renderer on its own --------------------------------------------------------------------


def _fake(**changes) -> TaskInfo:  # noqa: ANN003
    base = TaskInfo(pid=128, ppid=1, cpu=1, task=0xffff888003a1c000, state="RU",
                    state_value=0, mem_percent=0.34, vsz_kib=2260, rss_kib=1812,
                    comm="insmod", kernel_thread=False, active=True, tgid=128,
                    group_leader=True, parent=0xffff888003a10000, mm=0xffff888003b00000,
                    policy=0, prio=120, start_time=1, last_run=2, utime=3, stime=4)
    return replace(base, **changes)


def test_escape_sequences_never_reach_the_terminal() -> None:
    evil = _fake(comm="\x1b[31mevil\x1b]0;title\x07\x9b2J")
    for text in (render_ps([evil]), info_header(evil),
                 render_context(TaskContext(1, evil.comm, evil.task, evil.task, 1, 0, "x"))):
        assert "\x1b" not in text and "\x07" not in text and "\x9b" not in text
        assert "evil" in text


def test_row_layout_follows_crash() -> None:
    assert ps_line(_fake()) == (">     128       1   1  ffff888003a1c000  RU   0.3     2260"
                                "     1812  insmod")
    assert ps_line(_fake(active=False, kernel_thread=True, mem_percent=12.25, comm="kswapd0")) \
        == ("      128       1   1  ffff888003a1c000  RU  12.2     2260     1812  [kswapd0]")
    assert center("TASK", 16) == "      TASK      "
    assert center("KSTACKP", 16, rjust=True) == "     KSTACKP    "


@pytest.mark.parametrize("state,code", [(0, "RU"), (1, "IN"), (2, "UN"), (0x402, "ID"),
                                        (0x102, "UN"), (0x20 | 0x80, "ZO"), (4, "ST"),
                                        (8, "TR"), (0x10, "DE"), (0x40, "PA"), (0x200, "WA"),
                                        (0x800, "NE")])
def test_state_codes_follow_crash(state: int, code: str) -> None:
    bits = {"RUNNING": 0, "INTERRUPTIBLE": 1, "UNINTERRUPTIBLE": 2, "STOPPED": 4,
            "TRACED": 8, "DEAD": 0x10 | 0x80, "ZOMBIE": 0x20, "PARKED": 0x40,
            "WAKEKILL": 0x100, "WAKING": 0x200, "NOLOAD": 0x400, "NEW": 0x800}
    assert state_code(state, bits) == code


def test_thread_group_selection_follows_crash() -> None:
    """The lab's guests run no multi-threaded process, so -G's rules are checked here:
    without names only leaders pass; a named thread stands for its leader, once."""
    import kdx.commands.crash.ps as ps
    from kdx.commands.crash.arguments import parse_selectors
    from kdx.session.command import module_commands

    leader = _fake(pid=100, tgid=100, task=0x1000, active=False)
    thread = _fake(pid=101, tgid=100, task=0x2000, group_leader=False, active=False)
    other = _fake(pid=102, tgid=102, task=0x3000, comm="sleep", active=False)
    table = [leader, thread, other]
    parser = module_commands(ps)[0].parser()

    def picked(*argv: str) -> list[int]:
        args = parser.parse_args(list(argv))
        selectors = parse_selectors(args.targets, table, lambda _msg: None)
        return [t.pid for t in ps.select(table, args, selectors, bool(args.targets)).tasks]

    assert picked() == [100, 101, 102]
    assert picked("-G") == [100, 102]
    assert picked("-G", "101") == [100]
    assert picked("-G", "101", "100") == [100]
    assert picked("-G", "insmod") == [100]  # by name: only the leader matches
    assert picked("insmod") == [100, 101]
    assert picked("99999") == []
    assert picked("sle*p") == [102]  # a pattern
    assert picked("'sle.p'") == [102]  # quoted as crash quotes one


# --- ps -y (scheduling policy), -H (no header), -C (per-CPU blocks) ------------------------------

_POLICY_COMMANDS = ["ps -y FIFO", "ps -y 0", "ps -y normal,fifo -k", "ps -H", "ps -H -k",
                    "ps -l -C 0", "ps -m -C all", "ps -y 1 -G", "ps -y IDLE", "ps -y 5,6",
                    "ps -H -u"]


def _echo_sections(text: str, count: int) -> list[list[str]]:
    sections: dict[int, list[str]] = {}
    current = None
    for line in text.splitlines():
        found = re.fullmatch(r"==ps-section (\d+)==", line)
        if found:
            current = int(found.group(1))
            sections[current] = []
        elif current is not None and line.strip():
            sections[current].append(line.rstrip())
    return [sections.get(i, []) for i in range(count)]


@pytest.mark.oracle
@pytest.mark.parametrize("kernel", ["6.1", "6.12"])
def test_policy_header_and_cpu_options_match_crash(kernel, lab, crash) -> None:  # noqa: ANN001
    dump = lab("null-deref-module", kernel=None if kernel == "6.1" else kernel)
    script = [line for i, c in enumerate(_POLICY_COMMANDS)
              for line in (f"echo ==ps-section {i}==", c)]
    theirs = _echo_sections(crash(dump, script), len(_POLICY_COMMANDS))
    target = dump.target
    out = io.StringIO()
    session = Session(target, out=out, err=io.StringIO())
    ours = []
    for command in _POLICY_COMMANDS:
        start = out.tell()
        session.execute(command)
        ours.append([line.rstrip() for line in out.getvalue()[start:].splitlines()
                     if line.strip()])
    for command, mine, oracle in zip(_POLICY_COMMANDS, ours, theirs):
        assert mine == oracle, f"{command}:\n--- crash\n" + "\n".join(oracle[:20]) + \
            "\n--- kdx\n" + "\n".join(mine[:20])
    by_command = dict(zip(_POLICY_COMMANDS, ours))
    fifo = by_command["ps -y FIFO"]
    assert fifo[0].split()[0] == "PID" and len(fifo) > 2
    assert all(line.endswith("]") for line in fifo[1:])  # FIFO tasks here: kernel threads
    assert "PID" not in by_command["ps -H"][0]
    assert len(by_command["ps -H"]) == len(by_command["ps -y 0"]) - 1 + len(fifo) - 1 + \
        len(by_command["ps -y 5,6"]) - (1 if by_command["ps -y 5,6"] else 0)
    assert by_command["ps -l -C 0"][0] == "CPU: 0"
