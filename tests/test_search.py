"""``search`` on real lab dumps (6.1 and 6.12), against crash 8.0.6.

The values are the panic task's address (found in its own task_struct, in other tasks'
lists, on stacks, in the kernel image...), init_task's address, its PID as a 32-bit
value, a masked value and a string (the task's comm). Ranges are bounded, plus one scan
of the whole kernel address space, which must find exactly crash's hits. crash prints a
hit twice when the range starts in the kernel image; kdx prints each address once.
``search -t`` (every task's kernel stack) is compared too, task headers included.
"""

from __future__ import annotations

import io

import pytest
from crash_script import crash_sections
from drgn.helpers.linux.mm import virt_to_phys
from drgn.helpers.linux.panic import panic_task

from kdx.session.session import Session

pytestmark = pytest.mark.oracle


class Scene:
    """A lab dump (opened once for all test files) and what these tests name in it."""

    def __init__(self, lab_dump) -> None:  # noqa: ANN001 (LabDump)
        self.lab = lab_dump
        self.target = lab_dump.target
        prog = self.prog = self.target.prog
        task = panic_task(prog)
        t = self.task = task.value_()
        self.pid = task.pid.value_()
        self.init = prog.symbol("init_task").address
        phys = virt_to_phys(task).value_()
        self.commands = [
            f"search -s {self.init:x} -l 0x4000 {self.init:x}",
            f"search -s {t:x} -l 0x3000 {t:x}",
            f"search -p -s {phys & ~0xFFF:x} -l 0x3000 {t:x}",
            f"search -c -s {t:x} -l 0x3000 insmod",
            f"search -w -s {t:x} -l 0x3000 {self.pid:x}",
            f"search -s {t:x} -l 0x3000 -m ffff {t & ~0xFFFF:x}",
            f"search -k {t:x}",
            f"search -t {t:x}"]


@pytest.fixture(scope="module")
def dump(null_deref_each) -> Scene:  # noqa: ANN001 (fixture)
    return Scene(null_deref_each)


@pytest.fixture(scope="module")
def both(dump, crash):  # noqa: ANN001, ANN201
    out, err = io.StringIO(), io.StringIO()
    session = Session(dump.target, out=out, err=err)
    ours = {}
    for command in dump.commands:
        start = out.tell()
        assert session.execute(command), err.getvalue()
        ours[command] = out.getvalue()[start:].strip("\n")
    assert err.getvalue() == ""  # no progress lines off a terminal
    return dump, ours, crash_sections(crash, dump.lab, dump.commands)


def _hits(text: str) -> list[str]:
    return [line.rstrip() for line in text.splitlines() if line.strip()]


def test_search_hits_equal_crash(both) -> None:  # noqa: ANN001
    dump, ours, theirs = both
    for command in dump.commands[:-1]:
        mine = _hits(ours[command])
        assert mine, command
        assert mine == sorted(set(mine), key=lambda line: int(line.split(":")[0], 16))
        assert mine == list(dict.fromkeys(_hits(theirs[command]))), command


def test_search_kernel_stacks_match_crash(both) -> None:  # noqa: ANN001
    """``search -t``: a task header above each stack with hits, blocks apart."""
    dump, ours, theirs = both
    command = f"search -t {dump.task:x}"
    assert "PID: " in theirs[command]
    assert ours[command].splitlines() == [line.rstrip() for line in
                                          theirs[command].strip("\n").splitlines()]


def test_search_finds_the_known_values(both) -> None:  # noqa: ANN001
    dump, ours, _ = both
    task = dump.task
    pointer = ours[f"search -s {task:x} -l 0x3000 {task:x}"]
    # The task is its own group_leader: its address is inside the task_struct.
    group_leader = dump.prog.type("struct task_struct").member("group_leader").offset
    assert f"{task + group_leader:x}: {task:x}" in pointer.splitlines()
    assert ": insmod" in ours[f"search -c -s {task:x} -l 0x3000 insmod"]
    assert f": {dump.pid:x}" in ours[f"search -w -s {task:x} -l 0x3000 {dump.pid:x}"]
    everywhere = _hits(ours[f"search -k {task:x}"])
    assert len(everywhere) >= 5
    assert all(line.endswith(f": {task:x}") for line in everywhere)


def test_search_errors_are_one_line(dump) -> None:  # noqa: ANN001
    out, err = io.StringIO(), io.StringIO()
    session = Session(dump.target, out=out, err=err)
    assert not session.execute("search -w 123456789")
    assert not session.execute("search -s 0 -e 1000 -l 10 5")
    assert not session.execute("search")
    lines = err.getvalue().splitlines()
    assert len(lines) == 3
    assert "value too large for -w option" in lines[0]


# -- search -x COUNT and (expression) values --------------------------------------------


def _context_commands(task: int, pid: int) -> list[str]:
    """What both tools run for -x and expressions (crash's output is cached by it)."""
    return [f"search -s {task:x} -l 0x2000 -x 2 {task:x}",
            f"search -s {task:x} -l 0x2000 -w -x 3 (0x{pid:x})",
            f"search -s {task:x} -l 0x2000 (0x{task:x})",
            f"search -s {task:x} -l 0x2000 -h -x 1 {pid:x}",
            f"search -t -x 1 {task:x}",
            f"search -s {task:x} -l 0x2000 -c -x 2 insmod"]


def test_search_context_and_expressions_match_crash(dump, crash) -> None:  # noqa: ANN001
    from crash_script import kdx_sections

    commands = _context_commands(dump.task, dump.pid)
    theirs = crash_sections(crash, dump.lab, commands)
    run = kdx_sections(dump.target, commands)
    *same, strings = commands
    for command in same:
        assert theirs[command], command
        assert run.sections[command] == theirs[command], command
    # the hit itself: the value, then the expression echoed as typed
    lines = run.sections[commands[1]].split("\n")
    assert lines[1].endswith(f":  {dump.pid:x} (0x{dump.pid:x})")
    assert run.sections[commands[2]].endswith(f"{dump.task:x} (0x{dump.task:x})")
    # -x with -c is refused, as crash refuses it
    assert theirs[strings] == "search: -x option is not allowed with -c"
    assert strings in run.failed and "-x option is not allowed with -c" in run.stderr


def test_search_context_reads_the_neighbours(dump) -> None:  # noqa: ANN001
    from crash_script import kdx_sections

    command = f"search -s {dump.task:x} -l 0x2000 -x 2 {dump.task:x}"
    block = kdx_sections(dump.target, [command]).sections[command].split("\n\n")[0]
    before, hit, after = block.split("\n")
    address = int(hit.split(":")[0], 16)
    assert int(before.split(":")[0], 16) == address - 16
    assert int(after.split(":")[0], 16) == address + 8
    words = [int(w, 16) for w in before.split()[1:3] + after.split()[1:3]]
    prog = dump.prog
    assert words == [prog.read_u64(address + d) for d in (-16, -8, 8, 16)]
