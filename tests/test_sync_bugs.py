"""Concurrency and trap bugs: what the verdict says beyond category and culprit.

test_analyze checks every scenario's category, culprit, line and panic task against its
truth; these tests check the facts that explain each of the four: the ABBA deadlock's
cycle (its two tasks and two locks), the RCU stall's CPU, task and spin loop, the
function whose stack canary died, and the stray ud2. Each runs on 6.1 and 6.12 dumps,
and the deadlock and the RCU stall once more without the vmlinux (kallsyms, BTF and ORC
from the dump), where the waiter records and rcu_node are read through BTF alone.
"""

from __future__ import annotations

import json

import pytest
from json_schemas import schema_problems
from test_no_vmlinux import open_without_debug_package

from kdx.diagnosis.verdict import Verdict
from kdx.render.report import render_html, render_markdown, render_text

KERNELS = ["6.1", "6.12"]


def _deadlock_facts(verdict: Verdict) -> None:
    """The cycle: crashlab_a waits for lock_b held by crashlab_b, which waits for lock_a
    held by crashlab_a; the reported task comes first."""
    graph = verdict.locks
    assert graph is not None
    assert [(w.comm, w.kind, w.symbol, w.owner_comm) for w in graph.cycle] == [
        ("crashlab_a", "mutex", "crashlab_lock_b", "crashlab_b"),
        ("crashlab_b", "mutex", "crashlab_lock_a", "crashlab_a")]
    a, b = graph.cycle
    assert (a.owner_pid, b.owner_pid) == (b.pid, a.pid)
    assert a.pid == verdict.details["blocked_task"]["pid"]
    assert graph.text == (
        f"crashlab_a (PID {a.pid}) holds crashlab_lock_a and waits for crashlab_lock_b, "
        f"held by crashlab_b (PID {b.pid}), which waits for crashlab_lock_a")
    assert verdict.details["lock"]["symbol"] == "crashlab_lock_b"
    assert verdict.details["lock_owner"]["comm"] == "crashlab_b"


@pytest.mark.parametrize("kernel", KERNELS)
def test_abba_deadlock_names_the_cycle(lab, kernel):
    dump = lab("abba-deadlock", kernel=kernel)
    verdict = dump.verdict
    assert verdict.category == "hung-task"
    _deadlock_facts(verdict)
    assert verdict.stall is None
    text = render_text(verdict)
    assert f"Deadlock:      {verdict.locks.text[:40]}" in text
    assert verdict.locks.text.split(",")[0] in render_markdown(verdict)
    assert "crashlab_lock_b, held by crashlab_b" in render_html(verdict)


def test_abba_deadlock_without_vmlinux(lab):
    dump = lab("abba-deadlock", kernel="6.12")
    without = open_without_debug_package(dump.vmcore)
    verdict = without.analyze()
    _deadlock_facts(verdict)
    assert verdict.signature == dump.verdict.signature


def test_hung_task_graph_has_no_cycle(lab):
    # One waiter behind a sleeping owner: a wait, no deadlock, and no "Deadlock" row.
    verdict = lab("hung-task", kernel="6.12").verdict
    graph = verdict.locks
    assert graph is not None and graph.cycle == [] and graph.text == ""
    [wait] = graph.waits
    assert (wait.comm, wait.symbol, wait.owner_comm, wait.waiters) == (
        "crashlab_wait", "crashlab_mutex", "crashlab_hold", 1)
    assert "Deadlock:" not in render_text(verdict)


def _stall_facts(verdict: Verdict, truth: dict) -> None:
    """CPU 1 holds the grace period up, running crashlab_rcu in crashlab_rcu_spin, in
    the one-line loop of the marked line."""
    stall = verdict.stall
    assert stall is not None and stall.kind == "rcu-stall"
    assert stall.cpus == [1]
    assert stall.waiting_cpus == [1]
    assert stall.blocked_pids == []
    [task] = stall.tasks
    assert (task.cpu, task.comm, task.function) == (1, "crashlab_rcu", "crashlab_rcu_spin")
    assert task.pid == truth["pid"]
    loop = stall.loop
    assert loop is not None and loop.function == "crashlab_rcu_spin"
    assert loop.start <= verdict.culprit.address <= loop.end
    assert 0 < loop.end - loop.start < 32
    assert stall.text.startswith(
        f"CPU 1 runs crashlab_rcu (PID {task.pid}) in crashlab_rcu_spin: it never reports "
        "a quiescent state")


@pytest.mark.parametrize("kernel", KERNELS)
def test_rcu_stall_names_cpu_task_and_loop(lab, kernel):
    dump = lab("rcu-stall", kernel=kernel)
    verdict = dump.verdict
    assert verdict.category == "rcu-stall"
    _stall_facts(verdict, dump.truth)
    assert verdict.locks is None
    assert f"Held up by:    {verdict.stall.text[:30]}" in render_text(verdict)


def test_rcu_stall_without_vmlinux(lab):
    dump = lab("rcu-stall", kernel="6.12")
    verdict = open_without_debug_package(dump.vmcore).analyze()
    _stall_facts(verdict, dump.truth)
    assert verdict.signature == dump.verdict.signature


def test_soft_lockup_names_the_spin_loop(lab):
    verdict = lab("soft-lockup", kernel="6.12").verdict
    stall = verdict.stall
    assert stall is not None and stall.kind == "soft-lockup" and stall.cpus == [1]
    assert stall.waiting_cpus is None
    assert [(t.cpu, t.comm, t.function) for t in stall.tasks] == [
        (1, "crashlab_spin", "crashlab_spin_forever")]
    assert stall.loop is not None
    assert stall.loop.start <= verdict.culprit.address <= stall.loop.end


@pytest.mark.parametrize("kernel", KERNELS)
def test_stack_protector_names_the_function(lab, kernel):
    dump = lab("stack-protector", kernel=kernel)
    verdict = dump.verdict
    assert verdict.category == "stack-protector"
    assert verdict.signature.title == (
        "stack-protector: stack is corrupted in crashlab_fill_name [crashlab_canary]")
    assert verdict.signature.frames[0] == "crashlab_fill_name"
    assert "crashlab_fill_name+0x" in dump.truth["panic_message"]
    # The culprit frame is the canary check's call, in the function that overflowed.
    assert verdict.culprit.reasoning.startswith(
        "the stack canary of crashlab_fill_name was overwritten, found at "
        "crashlab_fill_name+0x")


def test_stack_protector_without_vmlinux(lab):
    dump = lab("stack-protector", kernel="6.12")
    verdict = open_without_debug_package(dump.vmcore).analyze()
    assert (verdict.category, verdict.culprit.function, verdict.culprit.module) == (
        "stack-protector", "crashlab_fill_name", "crashlab_canary")
    assert verdict.signature == dump.verdict.signature


@pytest.mark.parametrize("kernel", KERNELS)
def test_invalid_opcode_is_the_ud2(lab, kernel):
    verdict = lab("invalid-opcode", kernel=kernel).verdict
    assert verdict.signature.title == "invalid opcode in crashlab_dispatch [crashlab_ud]"
    faulting = [i for i in verdict.culprit.disassembly if i.faulting]
    assert len(faulting) == 1 and faulting[0].text.endswith("ud2")
    assert verdict.context.fault_address is None  # a trap, not a fault: no stale CR2
    assert verdict.stall is None and verdict.locks is None


def test_analysis_json_has_the_lock_graph(kdx, lab):
    dump = lab("abba-deadlock", kernel="6.12")
    proc = kdx("analyze", dump.vmcore, "--json", check=True)
    assert schema_problems(proc.stdout) == []
    data = json.loads(proc.stdout)["data"]
    cycle = data["locks"]["cycle"]
    assert [w["symbol"] for w in cycle] == ["crashlab_lock_b", "crashlab_lock_a"]
    assert all(w["lock"].startswith("0x") for w in cycle)
    assert data["stall"] is None


def test_analysis_json_has_the_stall(kdx, lab):
    dump = lab("rcu-stall", kernel="6.12")
    proc = kdx("analyze", dump.vmcore, "--json", check=True)
    assert schema_problems(proc.stdout) == []
    stall = json.loads(proc.stdout)["data"]["stall"]
    assert stall["cpus"] == [1] and stall["tasks"][0]["comm"] == "crashlab_rcu"
    assert stall["loop"]["start"].startswith("0x")


def test_facts_survive_a_qemu_capture(lab):
    """QEMU's dump-guest-memory stops the CPUs where they are, with no kdump path on the
    panic stack: the cycle and the stall are read the same."""
    _deadlock_facts(lab("abba-deadlock", capture="qemu", fmt="elf").verdict)
    stalled = lab("rcu-stall", capture="qemu", fmt="elf")
    _stall_facts(stalled.verdict, stalled.truth)
