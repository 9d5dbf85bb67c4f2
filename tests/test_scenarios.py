"""Unit tests of the crash-lab scenario registry and its guest sources (no QEMU needed).

They guard the links a lab run relies on but never checks itself: every scenario's
module source exists, is built by the Kbuild, and marks its faulting line exactly once,
so the ground truth computed from the markers is never silently wrong.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from kdx.errors import KdxError
from kdx.lab import scenarios
from kdx.lab.scenarios import MODULES_DIR, PROGRAMS_DIR, SCENARIOS, Scenario

MODULE_SCENARIOS = [s for s in SCENARIOS.values() if s.source_file is not None]

CATEGORIES = {
    "sysrq",
    "null-pointer-dereference",
    "bug",
    "general-protection-fault",
    "soft-lockup",
    "hung-task",
    "oom",
    "warn",
    "stack-overflow",
    "divide-error",
    "rcu-stall",
    "stack-protector",
    "invalid-opcode",
}


def test_registry_is_keyed_by_name_and_covers_every_category() -> None:
    assert all(name == s.name for name, s in SCENARIOS.items())
    assert {s.category for s in SCENARIOS.values()} == CATEGORIES
    assert SCENARIOS["irq-context"].category == "null-pointer-dereference"


@pytest.mark.parametrize("scenario", MODULE_SCENARIOS, ids=lambda s: s.name)
def test_module_source_exists_and_has_exactly_one_marker(scenario: Scenario) -> None:
    assert scenario.source_file is not None
    source = MODULES_DIR / scenario.source_file
    assert source.is_file()
    text = source.read_text(encoding="utf-8")
    assert text.count(scenarios.CRASH_LINE_MARKER) == 1
    assert 'MODULE_LICENSE("GPL")' in text
    # The culprit function is defined in the file that holds the marker.
    assert re.search(rf"\b{re.escape(scenario.function or '')}\s*\(", text)
    line = scenarios.source_line(scenario)
    assert line is not None
    assert "KDX-CRASH-LINE" in text.splitlines()[line - 1]


def test_source_line_of_hello_crash_is_the_null_store() -> None:
    scenario = scenarios.get("null-deref-module")
    line = scenarios.source_line(scenario, MODULES_DIR)
    assert line is not None
    text = (MODULES_DIR / "hello-crash.c").read_text(encoding="utf-8")
    assert "*p = 1" in text.splitlines()[line - 1]


def test_source_line_is_none_for_kernel_culprits() -> None:
    assert scenarios.source_line(scenarios.get("sysrq")) is None
    assert scenarios.source_line(scenarios.get("oom")) is None


def test_source_line_rejects_a_file_without_exactly_one_marker(tmp_path: Path) -> None:
    scenario = scenarios.get("divide-error")
    assert scenario.source_file is not None
    (tmp_path / scenario.source_file).write_text(
        "int x; /* KDX-CRASH-LINE */\n/* KDX-CRASH-LINE */\n"
    )
    with pytest.raises(KdxError, match="exactly one"):
        scenarios.source_line(scenario, tmp_path)
    (tmp_path / scenario.source_file).write_text("int x;\n")
    with pytest.raises(KdxError, match="found 0"):
        scenarios.source_line(scenario, tmp_path)


def test_get_unknown_name_lists_valid_names() -> None:
    with pytest.raises(KdxError) as info:
        scenarios.get("no-such-scenario")
    message = str(info.value)
    assert "no-such-scenario" in message
    for name in SCENARIOS:
        assert name in message


def test_kbuild_lists_every_module_named_by_a_scenario() -> None:
    built = set(scenarios.kbuild_modules())
    wanted = {m for s in SCENARIOS.values() for m in s.modules}
    wanted |= {s.module for s in SCENARIOS.values() if s.module is not None}
    assert wanted <= built
    # Every C file in the directory is built, under the name the scenarios use.
    kbuild = (MODULES_DIR / "Kbuild").read_text(encoding="utf-8")
    for source in MODULES_DIR.glob("*.c"):
        assert f"{source.stem}.o" in kbuild
    assert "hello_crash-y := hello-crash.o" in kbuild


def test_culprit_module_is_loaded_by_the_trigger() -> None:
    for s in SCENARIOS.values():
        assert s.trigger.splitlines()[0] == "echo KDX-TRIGGER", s.name
        for module in s.modules:
            assert f"/lab/modules/{module}.ko" in s.trigger, s.name
        if s.module is not None:
            assert s.module in s.modules, s.name
        else:
            assert s.source_file is None, s.name


def test_module_scenarios_make_oopses_fatal() -> None:
    for s in SCENARIOS.values():
        if s.name in ("sysrq", "bpf", "oom"):
            assert "oops=panic" not in s.cmdline
        else:
            assert "oops=panic" in s.cmdline, s.name
        assert not any(p.startswith("panic_on_oops") for p in s.cmdline), s.name


def test_panic_patterns_match_real_console_lines() -> None:
    # Lines in the format the 6.1 and 6.12 kernels print them (6.12 adds "Oops: ").
    samples = {
        "sysrq": "[   42.1] Kernel panic - not syncing: sysrq triggered crash",
        "bpf": "[   42.1] Kernel panic - not syncing: sysrq triggered crash",
        "null-deref-module": "[   9.9] BUG: kernel NULL pointer dereference, address: "
        "0000000000000000",
        "bug-on": "[ 9.9] kernel BUG at /tmp/kdx-build/crashlab_bug.c:30!",
        "gpf": "[ 9.9] Oops: general protection fault, probably for non-canonical address "
        "0xdead000000000110: 0000 [#1] PREEMPT SMP NOPTI",
        "soft-lockup": "[ 31.0] watchdog: BUG: soft lockup - CPU#1 stuck for 11s! "
        "[crashlab_spin:231]",
        "hung-task": "[ 40.0] INFO: task crashlab_wait:240 blocked for more than 10 seconds.",
        "oom": "[ 50.0] memhog invoked oom-killer: gfp_mask=0x140dca(GFP_HIGHUSER_MOVABLE|"
        "__GFP_COMP|__GFP_ZERO), order=0, oom_score_adj=0",
        "warn": "[ 9.9] WARNING: CPU: 1 PID: 230 at /tmp/b/crashlab_warn.c:27 "
        "crashlab_check_budget+0xf/0x20 [crashlab_warn]",
        "irq-context": "[ 9.9] BUG: kernel NULL pointer dereference, address: 0000000000000000",
        "stack-overflow": "[ 9.9] BUG: TASK stack guard page was hit at 00000000a1b2c3d4 "
        "(stack is 0000000011111111..0000000022222222)",
        "divide-error": "[ 9.9] Oops: divide error: 0000 [#1] PREEMPT SMP NOPTI",
        "use-after-free": "[ 9.9] Oops: general protection fault, probably for non-canonical "
        "address 0x6b6b6b6b6b6b6b73: 0000 [#1] PREEMPT SMP NOPTI",
        "double-free": "[ 9.9] kernel BUG at mm/slub.c:550!",
        "list-corruption": "[ 9.9] list_del corruption, ff2ca6565f0eb980->next is "
        "LIST_POISON1 (dead000000000100)",
        "refcount-underflow": "[ 9.9] refcount_t: underflow; use-after-free.",
        "abba-deadlock": "[ 40.0] INFO: task crashlab_a:260 blocked for more than 10 seconds.",
        "rcu-stall": "[ 20.0] rcu: INFO: rcu_preempt self-detected stall on CPU",
        "stack-protector": "[ 9.9] Kernel panic - not syncing: stack-protector: Kernel stack "
        "is corrupted in: crashlab_fill_name+0x54/0xff0 [crashlab_canary]",
        "invalid-opcode": "[ 9.9] Oops: invalid opcode: 0000 [#1] PREEMPT SMP NOPTI",
    }
    assert set(samples) == set(SCENARIOS)
    for name, line in samples.items():
        assert re.search(SCENARIOS[name].panic_pattern, line), name
    # Linux 7.x words a WARNING differently.
    assert re.search(SCENARIOS["warn"].panic_pattern,
                     "[ 12.4] WARNING: crashlab_warn.c:27 at crashlab_check_budget+0x13/0xff0 "
                     "[crashlab_warn], CPU#1: insmod/252")


def test_helper_programs_exist_and_are_used_by_name() -> None:
    for program in ("memhog", "spinner", "fileholder"):
        source = PROGRAMS_DIR / f"{program}.c"
        assert source.is_file()
        assert "int main(" in source.read_text(encoding="utf-8")
    assert "/lab/bin/memhog" in SCENARIOS["oom"].trigger
