"""One bug, one signature: across capture methods, dump formats, kernels and debug info,
for the full analysis and the fast pass alike; different bugs, different signatures.

The fast pass is cheap, so it runs on every lab dump in the cache; the full analysis runs
on the dumps each comparison needs (verdicts shared with test_analyze through
``LabDump.verdict``).
"""

from __future__ import annotations

import json
from collections import defaultdict
from pathlib import Path

import pytest
from conftest import LabDump, lab_run
from test_no_vmlinux import open_without_debug_package

from kdx.diagnosis.fastpass import FastReport, fast_report
from kdx.diagnosis.signature import SIGNATURE_VERSION, make_signature
from kdx.lab import scenarios
from kdx.lab.cache import default_cache

#: Every finished lab run in the cache of a scenario this registry has, all kernels,
#: captures and formats (a run of a scenario made by another checkout is not judged here).
_RUNS = sorted(p.parent for p in (default_cache() / "runs").glob("*/*/truth.json")
               if json.loads(p.read_text()).get("scenario") in scenarios.SCENARIOS)
#: The same bug taken in other ways than kdump-compressed zlib by kdump.
_CAPTURES = {
    "sysrq": [("kdump", "kdump-lzo"), ("kdump", "flattened"), ("qemu", "elf"),
              ("qemu", "kdump-zlib")],
    "null-deref-module": [("qemu", "elf"), ("kdump", "elf")],
    "oom": [("qemu", "elf")],  # kdump: kexec frames; QEMU: pvpanic and the notifiers
    "irq-context": [("qemu", "elf")],  # a timer callback run from the softirq
}

#: Scenarios that are another scenario's bug with more state left in the guest: the
#: ``bpf`` guest loads BPF objects, then panics exactly as ``sysrq`` does.
_SAME_BUG = {"bpf": "sysrq"}


def _bug(scenario: str) -> str:
    return _SAME_BUG.get(scenario, scenario)


@pytest.fixture(scope="module")
def fast() -> dict[Path, FastReport]:
    """The fast report of every cached lab dump, by run directory."""
    return {run: fast_report(lab_run(run).vmcore) for run in _RUNS}


def _same_as_fast(dump: LabDump, report: FastReport) -> None:
    """The fast pass's verdict is the full one's, signature included."""
    verdict = dump.verdict
    assert (report.signature, report.frames, report.title, report.category) == (
        verdict.signature.hash, verdict.signature.frames, verdict.signature.title,
        verdict.category), dump.dir
    assert (report.culprit, report.module) == (verdict.culprit.function,
                                               verdict.culprit.module), dump.dir


def _runs_of(scenario: str, kernel_prefix: str) -> list[Path]:
    return [run for run in _RUNS if run.parent.name.startswith(kernel_prefix)
            and run.name == f"{scenario}-kdump-kdump-zlib"]


@pytest.mark.skipif(not _RUNS, reason="no lab dumps in the cache")
def test_fast_pass_gives_one_signature_per_scenario(fast):
    """Every cached dump, whatever its kernel, capture and format: the scenario decides
    the signature and nothing else does."""
    by_scenario: dict[str, set[str]] = defaultdict(set)
    for run, report in fast.items():
        assert report.signature_version == SIGNATURE_VERSION
        by_scenario[_bug(lab_run(run).truth["scenario"])].add(report.signature)
    assert all(len(signatures) == 1 for signatures in by_scenario.values()), by_scenario
    distinct = {next(iter(s)) for s in by_scenario.values()}
    assert len(distinct) == len(by_scenario) >= len({_bug(s) for s in scenarios.SCENARIOS})


@pytest.mark.parametrize("name", list(scenarios.SCENARIOS))
def test_one_signature_across_kernels(lab, fast, name):
    """6.1, 6.12 and any cached 7.x run of one scenario: one signature (the culprit is
    the same function), and the fast pass's is the full analysis's on each."""
    dumps = [lab(name), lab(name, kernel="6.12")]
    dumps += [lab_run(run) for run in _runs_of(name, "7.")]
    signatures = {d.verdict.signature.hash for d in dumps}
    assert len(signatures) == 1, [(d.dir, d.verdict.signature) for d in dumps]
    for dump in dumps:
        assert dump.verdict.signature.version == SIGNATURE_VERSION
        _same_as_fast(dump, fast[dump.dir] if dump.dir in fast else fast_report(dump.vmcore))


@pytest.mark.parametrize("name", list(_CAPTURES))
def test_one_signature_across_captures_and_formats(lab, fast, name):
    reference = lab(name)
    for capture, fmt in _CAPTURES[name]:
        dump = lab(name, capture=capture, fmt=fmt)
        assert dump.verdict.signature == reference.verdict.signature, (capture, fmt)
        _same_as_fast(dump, fast.get(dump.dir) or fast_report(dump.vmcore))


def test_every_scenario_has_its_own_signature(lab):
    verdicts = {name: lab(name).verdict for name in scenarios.SCENARIOS}
    hashes = {name: v.signature.hash for name, v in verdicts.items()}
    for name, same in _SAME_BUG.items():
        assert hashes.pop(name) == hashes[same], name
    assert len(set(hashes.values())) == len(hashes), hashes


def test_no_vmlinux_gives_the_same_signature(lab):
    """A timer callback crash on 6.12 read with kallsyms, BTF and ORC only (the
    no-vmlinux tests compare every other dump)."""
    dump = lab("irq-context", kernel="6.12")
    without = open_without_debug_package(dump.vmcore).analyze()
    assert without.signature == dump.verdict.signature
    assert without.signature.frames == ["crashlab_timer_fn"]


def test_capture_and_interrupt_paths_do_not_change_the_signature():
    """The frames the issue quotes: kdump's and pvpanic's ends of one OOM panic, and one
    timer callback run through two timer paths."""
    kdump = ["crash_setup_regs", "__crash_kexec", "panic", "check_panic_on_oom",
             "out_of_memory", "__alloc_pages_slowpath.constprop.0", "__alloc_pages",
             "__folio_alloc", "vma_alloc_folio", "__handle_mm_fault", "handle_mm_fault",
             "do_user_addr_fault", "exc_page_fault", "asm_exc_page_fault"]
    qemu = ["pvpanic_send_event", "pvpanic_panic_notify", "notifier_call_chain",
            "atomic_notifier_call_chain", *kdump[2:]]
    title = "out of memory (panic_on_oom) in memhog"
    a, b = (make_signature("oom", title, frames, None) for frames in (kdump, qemu))
    assert a == b and a.frames == []
    assert make_signature("oom", "out of memory (panic_on_oom) in java", kdump,
                          None).hash != a.hash
    softirq = ["crashlab_timer_fn", "call_timer_fn", "__run_timers", "run_timer_softirq",
               "handle_softirqs", "__irq_exit_rcu", "sysvec_apic_timer_interrupt",
               "asm_sysvec_apic_timer_interrupt", "native_safe_halt", "default_idle"]
    remote = ["crashlab_timer_fn", "call_timer_fn", "__run_timers", "timer_expire_remote",
              "tmigr_handle_remote_cpu", "tmigr_handle_remote", "handle_softirqs",
              "__irq_exit_rcu", "sysvec_apic_timer_interrupt",
              "asm_sysvec_apic_timer_interrupt", "pv_native_safe_halt", "do_idle"]
    one, two = (make_signature("null-pointer-dereference", "t", frames, "crashlab_timer")
                for frames in (softirq, remote))
    assert one == two and one.frames == ["crashlab_timer_fn"]


def test_a_library_helper_is_hashed_with_its_caller():
    """A crash in strlen is its caller's bug: strlen from two callers, two signatures."""
    a = make_signature("general-protection-fault", "t", ["strlen", "foo_parse", "x"], None)
    b = make_signature("general-protection-fault", "t", ["strlen", "bar_parse", "x"], None)
    assert a.frames == ["strlen", "foo_parse"] and a.hash != b.hash
    c = make_signature("general-protection-fault", "t", ["foo_parse", "bar", "x"], None)
    d = make_signature("general-protection-fault", "t", ["foo_parse", "baz", "x"], None)
    assert c.frames == ["foo_parse"] and c.hash == d.hash
