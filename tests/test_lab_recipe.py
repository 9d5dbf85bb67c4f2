"""A cached lab dump is keyed by its scenario's recipe: what reaches the guest, nothing else.

Adding a scenario (a module, a program, a truth field) must leave every other cached dump
valid, or a cold lab rebuild of half an hour follows every new scenario.
"""

from __future__ import annotations

import dataclasses

from kdx.lab import run, scenarios


def _names(scenario: str) -> list[str]:
    return sorted(p.name for p in run.scenario_sources(scenarios.get(scenario)))


def test_a_scenario_uses_its_module_and_the_programs_it_starts() -> None:
    assert _names("null-deref-module") == ["fileholder.c", "hello-crash.c", "spinner.c"]
    assert _names("oom") == ["fileholder.c", "memhog.c", "spinner.c"]
    assert _names("sysrq") == ["fileholder.c", "spinner.c"]


def test_composite_module_rule_is_read_from_kbuild() -> None:
    assert scenarios.module_source("hello_crash") == "hello-crash.c"
    assert scenarios.module_source("crashlab_gpf") == "crashlab_gpf.c"


def test_truth_fields_do_not_change_the_recipe() -> None:
    gpf = scenarios.get("gpf")
    truth_edit = dataclasses.replace(gpf, function="other", summary="s", timeout_s=1)
    assert run.lab_recipe(truth_edit) == run.lab_recipe(gpf)


def test_what_reaches_the_guest_changes_the_recipe() -> None:
    gpf = scenarios.get("gpf")
    assert run.lab_recipe(dataclasses.replace(gpf, cmdline=("quiet",))) != run.lab_recipe(gpf)
    assert run.lab_recipe(dataclasses.replace(gpf, trigger="echo")) != run.lab_recipe(gpf)
    assert run.lab_recipe(gpf, "tasks=5000") != run.lab_recipe(gpf)
    assert run.lab_recipe(scenarios.get("bug-on")) != run.lab_recipe(gpf)
