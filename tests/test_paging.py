"""``vtop``, ``ptov``, ``btop``, ``ptob`` and ``pte`` on real lab dumps (6.1 and 6.12),
against crash 8.0.6.

The panic task gives the addresses: its task_struct (direct map), its kernel stack
(vmalloc), ``jiffies`` (kernel image, a 2 MB page), the top of its user stack and the
start of its text (busybox, a file page). Every page-table entry (address and contents),
the PTE flags, the VMA line and the page's mem_map line must be equal to crash's.
"""

from __future__ import annotations

import io
import re

import pytest
from crash_script import crash_sections, kdx_outputs
from drgn.helpers.linux.mm import follow_phys, virt_to_phys
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
        self.task = task.value_()
        self.pid = task.pid.value_()
        self.stack = task.stack.value_()
        self.ustack = task.mm.start_stack.value_()
        self.jiffies = prog.symbol("jiffies").address
        self.phys = virt_to_phys(task).value_()
        self.user_phys = follow_phys(task.mm, self.ustack).value_()
        self.commands = [
            f"vtop {self.task:x}", f"vtop {self.jiffies:x}", f"vtop {self.stack:x}",
            f"vtop -c {self.pid} {self.ustack:x}", f"vtop -c {self.pid} 401000",
            f"ptov {self.phys:x}", f"btop {self.phys:x}", f"ptob {self.phys >> 12:x}",
            "pte 8000000012345067", "pte 1a2b3c025", "pte 0",
            f"vtop -c {self.pid} 420000", f"vtop -c {self.pid} 5e6000",
            f"vtop -c {self.pid} 10000", f"vtop {self.stack + 0x4000:x}", "ptov b0c0:a"]


@pytest.fixture(scope="module")
def dump(null_deref_each) -> Scene:  # noqa: ANN001 (fixture)
    return Scene(null_deref_each)


def ours(dump: Scene, commands: list[str]) -> dict[str, str]:
    return kdx_outputs(dump.target, commands)


@pytest.fixture(scope="module")
def both(dump, crash):  # noqa: ANN001, ANN201
    return dump, ours(dump, dump.commands), crash_sections(crash, dump.lab,
                                                                   dump.commands)


_ENTRY = re.compile(r"^\s+(PGD|P4D|PUD|PMD|PTE): ([0-9a-f]+) => ([0-9a-f]+)$")


def _entries(text: str) -> list[tuple[str, ...]]:
    return [m.groups() for m in map(_ENTRY.match, text.splitlines()) if m]


def test_vtop_walks_match_crash_entry_by_entry(both) -> None:  # noqa: ANN001
    dump, ours, theirs = both
    for command in dump.commands[:5]:
        assert _entries(theirs[command]), command
        assert _entries(ours[command]) == _entries(theirs[command]), command
        assert ours[command].splitlines() == \
            [line.rstrip() for line in theirs[command].splitlines()], command


def test_vtop_values_are_the_real_translations(both) -> None:  # noqa: ANN001
    dump, ours, _ = both
    first = ours[f"vtop {dump.task:x}"].splitlines()[1].split()
    assert first == [f"{dump.task:x}", f"{dump.phys:x}"]
    user = ours[f"vtop -c {dump.pid} {dump.ustack:x}"]
    assert user.splitlines()[1].split() == [f"{dump.ustack:x}", f"{dump.user_phys:x}"]
    assert "(PRESENT|RW|USER|ACCESSED|DIRTY|NX)" in user
    assert "/bin/busybox" in ours[f"vtop -c {dump.pid} 401000"]
    assert "(2MB)" in ours[f"vtop {dump.jiffies:x}"]


def test_vtop_unmapped_addresses_match_crash(both) -> None:  # noqa: ANN001
    """Not-present pages: a busybox text page never faulted in (crash adds its FILE
    line), an anonymous page, an address outside every VMA, and the guard page after a
    kernel stack."""
    dump, ours, theirs = both
    for command in dump.commands[11:15]:
        assert ours[command].splitlines() == \
            [line.rstrip() for line in theirs[command].splitlines()], command
    assert "(not mapped)" in ours[dump.commands[11]]
    assert "FILE: /bin/busybox" in ours[dump.commands[11]]


def test_ptov_btop_ptob_pte_match_crash(both) -> None:  # noqa: ANN001
    dump, ours, theirs = both
    for command in dump.commands[5:11] + dump.commands[15:]:
        assert ours[command].splitlines() == \
            [line.rstrip() for line in theirs[command].splitlines()], command
    assert ours[f"ptov {dump.phys:x}"].splitlines()[1].split()[0] == f"{dump.task:x}"


def test_vtop_outside_every_vma_and_other_errors(dump) -> None:  # noqa: ANN001
    out, err = io.StringIO(), io.StringIO()
    session = Session(dump.target, out=out, err=err)
    assert session.execute("vtop 10000")
    assert out.getvalue().splitlines()[1].split() == ["10000", "(not", "accessible)"]
    assert not session.execute("vtop -c 999999 10000")
    assert not session.execute("pte zz")
    assert err.getvalue().count("\n") == 2
