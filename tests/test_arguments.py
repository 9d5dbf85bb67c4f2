"""The argument layer of the crash commands, without a dump: CPU lists, task words and
selectors read as crash reads them, and command modules that never import each other."""

from __future__ import annotations

import ast
import io
import re
from pathlib import Path

import pytest
from crash_script import crash_sections, kdx_outputs

import kdx.commands.crash as crash_package
from kdx.commands.crash import INDEX
from kdx.commands.crash.arguments import (
    TaskFilter,
    cpu_list,
    hex_word,
    parse_cpu_spec,
    parse_selectors,
    parse_task_filter,
    task_word,
    tasks_for_argument,
)
from kdx.model.tasks import TaskInfo, all_tasks, crash_cpus, task_list
from kdx.session.command import CommandError
from kdx.session.session import Session

# --- CPU lists (crash's make_cpumask) ---------------------------------------------------------

CPUS = [0, 1, 2, 3]


@pytest.mark.parametrize("text, cpus", [
    ("1", [1]),
    ("0,2-3", [0, 2, 3]),
    ("3,1", [1, 3]),  # sorted, as crash walks its bitmap
    ("1-2,2", [1, 2]),  # each once
    ("a", CPUS),
    ("all", CPUS),
    ("1,all", CPUS),
])
def test_cpu_spec_reads_crash_lists(text: str, cpus: list[int]) -> None:
    assert parse_cpu_spec(text, CPUS) == cpus


@pytest.mark.parametrize("text", ["4", "0-4", "al", "", "1,", "x", "-1", "2-1", "1-", "1 2"])
def test_cpu_spec_has_one_error(text: str) -> None:
    with pytest.raises(CommandError) as info:
        parse_cpu_spec(text, CPUS)
    assert str(info.value) == f"invalid cpu specification: {text}"


def test_cpu_spec_only_takes_known_cpus() -> None:
    """A possible CPU above the highest present one is not crash's (see crash_cpus)."""
    assert parse_cpu_spec("all", [0, 1]) == [0, 1]
    with pytest.raises(CommandError):
        parse_cpu_spec("2", [0, 1])


# --- task words (crash's str_to_context) --------------------------------------------------------

PIDS = {0, 1, 10, 16, 100}
TASKS = {0xFFFF888001234000, 0xFFFF888001238000}


@pytest.mark.parametrize("word, found", [
    ("1", ("pid", 1)),
    ("100", ("pid", 100)),  # decimal 100 and hex 0x100 (no such PID): the PID 100
    ("10", ("pid", 10)),  # decimal 10 and hex 16 both PIDs: decimal wins
    ("0x10", ("pid", 16)),  # only hexadecimal
    ("64", ("pid", 100)),  # no PID 64: PID 0x64
    ("ffff888001234000", ("task", 0xFFFF888001234000)),
    ("0xffff888001238000", ("task", 0xFFFF888001238000)),
    ("0", ("pid", 0)),
    ("99999", None),
    ("ffff888000000000", None),
    ("init", None),
])
def test_task_word_follows_crash(word: str, found: tuple[str, int] | None) -> None:
    assert task_word(word, PIDS, TASKS) == found


def _task(pid: int, comm: str, *, tgid: int | None = None, kernel: bool = False,
          state: str = "IN", active: bool = False) -> TaskInfo:
    return TaskInfo(pid=pid, ppid=1, cpu=0, task=0xFFFF888000000000 + pid * 0x4000,
                    state=state, state_value=0, mem_percent=0.0, vsz_kib=0, rss_kib=0,
                    comm=comm, kernel_thread=kernel, active=active, tgid=tgid or pid,
                    group_leader=(tgid or pid) == pid, parent=0, mm=0, policy=0, prio=120,
                    start_time=0, last_run=0, utime=0, stime=0)


TABLE = [_task(0, "swapper/0", kernel=True, state="RU", active=True),
         _task(1, "systemd"),
         _task(2, "kthreadd", kernel=True),
         _task(300, "bash", state="RU", active=True),
         _task(301, "bash", tgid=300)]


def test_selectors_read_numbers_names_and_patterns() -> None:
    warnings: list[str] = []
    selectors = parse_selectors(["1", f"{TABLE[2].task:x}", "bash", "'^k.*d$'", "\\1x",
                                 "12345"], TABLE, warnings.append)
    assert [(s.kind, s.value if s.kind in ("pid", "task") else s.text)
            for s in selectors] == [("pid", 1), ("task", TABLE[2].task), ("comm", "bash"),
                                    ("regex", "^k.*d$"), ("comm", "1x")]
    assert warnings == ["invalid task or pid value: 12345"]
    assert [t.pid for t in TABLE if selectors[3].matches(t)] == [2]


def test_selector_rejects_a_bad_pattern() -> None:
    with pytest.raises(CommandError, match="invalid regular expression"):
        parse_selectors(["'ba(sh'"], TABLE, lambda _m: None)


@pytest.mark.parametrize("words, pids", [
    ([], [0, 1, 2, 300, 301]),
    (["kernel"], [0, 2]),
    (["user"], [1, 300, 301]),
    (["gleader"], [1, 300]),
    (["active"], [0, 300]),
    (["RU"], [0, 300]),
    (["user", "RU"], [300]),
    (["bash"], [300, 301]),
    (["gleader", "bash"], [300]),
    (["1", "2"], [1, 2]),
])
def test_foreach_filter_combines_as_crash(words: list[str], pids: list[int]) -> None:
    selection = parse_task_filter(words, TABLE, lambda _m: None)
    assert [t.pid for t in selection.select(TABLE)] == pids


def test_foreach_filter_errors_and_unknown_names() -> None:
    with pytest.raises(CommandError, match="user and kernel are mutually exclusive"):
        parse_task_filter(["user", "kernel"], TABLE, lambda _m: None)
    with pytest.raises(CommandError, match="only one task state allowed"):
        parse_task_filter(["RU", "IN"], TABLE, lambda _m: None)
    warnings: list[str] = []
    selection = parse_task_filter(["nosuchtask"], TABLE, warnings.append)
    assert warnings == ['unknown argument: "nosuchtask"']
    assert selection == TaskFilter(named=[])  # named, but nothing: nothing runs
    assert selection.select(TABLE) == []


def test_hex_word_has_one_error() -> None:
    assert hex_word("0xffff888000001000") == hex_word("ffff888000001000") == 0xFFFF888000001000
    with pytest.raises(CommandError) as info:
        hex_word("zz", "dentry address")
    assert str(info.value) == "invalid dentry address: zz"


# --- no command module imports another -------------------------------------------------------

def _imports(tree: ast.AST) -> list[tuple[str, list[str]]]:
    """(module, names) of every import in a module, those inside functions included."""
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module:
            found.append((node.module, [a.name for a in node.names]))
        elif isinstance(node, ast.Import):
            found += [(a.name, []) for a in node.names]
    return found


def test_no_command_module_imports_another() -> None:
    package = Path(crash_package.__file__).parent
    commands = set(INDEX.values())
    assert "arguments" not in commands  # the shared layer declares no command
    wrong = []
    for path in sorted(package.glob("*.py")):
        for module, names in _imports(ast.parse(path.read_text())):
            match = re.fullmatch(r"kdx\.commands\.crash\.(\w+)", module)
            if not match or match.group(1) not in commands or match.group(1) == path.stem:
                continue
            wrong.append(f"{path.name} imports {module} {names}")
    assert wrong == []


# --- on real dumps: one task order and one CPU set, as crash has them -----------------------

#: Commands whose task headers show crash's CPU set and idle tasks.
ORACLE = ["bt -c all", "bt -c 1,0", "bt 0", "bt -a"]


@pytest.fixture(scope="module")
def opened(null_deref_each):  # noqa: ANN001, ANN201 (fixtures)
    return null_deref_each.target


def _headers(text: str) -> list[str]:
    return [line for line in text.splitlines() if line.startswith("PID:")]


@pytest.mark.oracle
def test_cpu_lists_and_idle_tasks_match_crash(null_deref_each, opened, crash) -> None:  # noqa: ANN001
    """``bt -c all`` and ``bt -a`` cover crash's CPU set, ``bt -c 1,0`` comes in CPU
    order, ``bt 0`` names every idle task: the task headers equal crash's."""
    theirs = crash_sections(crash, null_deref_each, ORACLE)
    ours = kdx_outputs(opened, ORACLE)
    for command in ORACLE:
        assert _headers(ours[command]) == _headers(theirs[command]), command
    cpus = crash_cpus(opened.prog)
    assert len(_headers(ours["bt -c all"])) == len(cpus) == len(_headers(ours["bt 0"])) > 1
    assert [line.split()[5] for line in _headers(ours["bt -c 1,0"])] == ["0", "1"]


def test_one_task_order_for_every_command(null_deref_each, opened) -> None:  # noqa: ANN001
    """ps's table, the task objects bt -g and fuser walk, and PID 0 all follow the one
    order of the model: idle tasks by CPU, then by PID."""
    prog = opened.prog
    table = task_list(prog)
    assert [t.value_() for t in all_tasks(prog)] == [t.task for t in table]
    idle = [t for t in table if t.pid == 0]
    assert [t.cpu for t in idle] == crash_cpus(prog)
    session = Session(opened, out=io.StringIO(), err=io.StringIO())
    form, tasks = tasks_for_argument(session, "0")
    assert form == "pid" and [t.value_() for t in tasks] == [t.task for t in idle]
    pid = null_deref_each.truth["pid"]
    panic = next(t for t in table if t.pid == pid)
    assert tasks_for_argument(session, str(pid))[1][0].value_() == panic.task
    form, tasks = tasks_for_argument(session, f"{panic.task:x}")
    assert (form, [t.value_() for t in tasks]) == ("task", [panic.task])
    assert cpu_list(session, "all") == crash_cpus(prog)
