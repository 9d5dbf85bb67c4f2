"""Stacks unwound through the companion program are exactly the vmlinux's stacks.

Many tasks (``foreach bt``, ``bt -a`` on a big machine) are unwound by a second program on
the same dump that has no vmlinux DWARF (``kdx.target.companion``), with each frame named
from the vmlinux once per address. These tests unwind every task of real lab dumps both
ways and require the same records: frames, inlined calls, source lines, exception
frames, ``-f`` words and warnings.
"""

from __future__ import annotations

import io

import pytest
from drgn.helpers.linux.pid import for_each_task

from kdx.model.stack import StackReader, backtrace
from kdx.session.session import Session
from kdx.target.companion import unwinding_companion

#: (scenario, kernel, capture): module crashes (a .ko with DWARF), interrupt and NMI
#: stacks, a lockup, a deadlock's sleepers, a stack overflow, QEMU's register captures.
DUMPS = [("null-deref-module", None, "kdump"), ("irq-context", None, "qemu"),
         ("soft-lockup", None, "kdump"), ("abba-deadlock", None, "qemu"),
         ("stack-overflow", None, "kdump"), ("null-deref-module", "6.12", "kdump"),
         ("use-after-free", "6.12", "kdump"), ("rcu-stall", "6.12", "kdump"),
         ("null-deref-module", "sid", "kdump")]


def _open(lab, scenario: str, kernel: str | None, capture: str):  # noqa: ANN001, ANN202
    fmt = "elf" if capture == "qemu" else "kdump-zlib"
    return lab(scenario, kernel=kernel, capture=capture, fmt=fmt).target


@pytest.mark.parametrize("scenario,kernel,capture", DUMPS,
                         ids=[f"{k or '6.1'}-{s}-{c}" for s, k, c in DUMPS])
def test_every_task_unwinds_the_same(lab, scenario, kernel, capture) -> None:  # noqa: ANN001
    target = _open(lab, scenario, kernel, capture)
    plain, quick = StackReader(target.prog), StackReader(target.prog)
    quick.companion = unwinding_companion(target)
    assert quick.companion is not None and quick.companion is not target.prog
    tasks = list(for_each_task(target.prog))
    for task in tasks:
        theirs = backtrace(plain, task, frame_data=True)
        assert backtrace(quick, task, frame_data=True) == theirs, theirs.pid
    used, declined = quick.companion_counts
    assert used + declined == len(tasks)
    # the companion must carry the load, not decline it: only tasks with a frame in a
    # module or in code the ORC tables leave out are unwound with the vmlinux
    assert used >= 0.8 * len(tasks), (used, declined)


def test_a_companion_only_beside_a_vmlinux(lab) -> None:  # noqa: ANN001
    """A dump opened without its vmlinux already unwinds the fast way: no companion. One
    opened with it gets one, opened once and kept."""
    from kdx.target.open import open_dump

    dump = lab("sysrq")
    assert unwinding_companion(open_dump(dump.vmcore, no_vmlinux=True)) is None
    target = open_dump(dump.vmcore, dump.vmlinux)
    companion = unwinding_companion(target)
    assert companion is not None and unwinding_companion(target) is companion
    assert companion.main_module().debug_file_path is None


def test_foreach_bt_takes_the_companion_and_prints_the_same(lab, monkeypatch) -> None:  # noqa: ANN001
    """A session unwinding at least the threshold's tasks opens the companion; its text
    equals a session's that unwinds every task with the vmlinux."""
    import kdx.commands.crash.bt as bt

    target = lab("null-deref-module").target
    outputs = []
    for threshold in (10**9, 1):
        out = io.StringIO()
        session = Session(target, out=out, err=io.StringIO())
        monkeypatch.setattr(bt, "_COMPANION_FROM", threshold)
        assert session.execute("foreach bt -l")
        outputs.append(out.getvalue())
        reader = bt.reader_for(session)
        assert (reader.companion is None) == (threshold > 1)
    assert outputs[0] == outputs[1] and outputs[0].count("PID: ") > 50


def _each_task(reader: StackReader, tasks: list) -> list:  # noqa: ANN001 (drgn objects)
    out = []
    for task in tasks:
        try:
            out.append(backtrace(reader, task, frame_data=True))
        except Exception as err:  # noqa: BLE001 (what the vmlinux's unwind raises, too)
            out.append(type(err).__name__)
    return out


@pytest.mark.parametrize("kind,fmt", [("exclude-tasks", "kdump-zlib"), ("task-garbage", "elf"),
                                      ("task-unmapped", "elf")])
def test_a_damaged_dump_unwinds_the_same(lab, tmp_path, kind, fmt) -> None:  # noqa: ANN001
    """Damage to the tasks (pages missing from the dump, garbage in a task) hits both
    programs alike: the companion declines a stack it cannot read, and the vmlinux's
    unwind says what is lost. (These kinds damage kernel data only, never the tables
    the companion reads, so it always opens.)"""
    from kdx.lab.damage import damage
    from kdx.model.tasks import all_tasks
    from kdx.target.open import open_dump

    base = lab("null-deref-module", capture="qemu" if fmt == "elf" else "kdump", fmt=fmt)
    copy = tmp_path / "vmcore"
    damage(base.vmcore, copy, kind, 1, base.vmlinux)
    target = open_dump(copy, base.vmlinux, [base.modules])
    tasks = all_tasks(target.prog)
    plain, quick = StackReader(target.prog), StackReader(target.prog)
    quick.companion = unwinding_companion(target)
    assert quick.companion is not None
    assert _each_task(quick, tasks) == _each_task(plain, tasks)
    assert quick.companion_counts[0] > 0

