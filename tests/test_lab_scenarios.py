"""Every lab scenario really crashes the kernel the way its registry entry says.

The ground truth is read from the guest's console by the lab; these tests check it against
the scenario's expectations and against what drgn reads from the dump itself, on both the
bookworm 6.1 and the trixie 6.12 cloud kernels.
"""

from __future__ import annotations

import re

import pytest
from drgn.helpers.linux.panic import panic_task

from kdx.lab import scenarios

KERNELS = ["6.1", "6.12"]


@pytest.mark.parametrize("kernel", KERNELS)
@pytest.mark.parametrize("name", list(scenarios.SCENARIOS))
def test_scenario_crashes_as_described(lab, name, kernel):
    scenario = scenarios.get(name)
    dump = lab(name, kernel=kernel)
    truth = dump.truth
    assert truth["category"] == scenario.category
    assert re.search(scenario.panic_pattern, truth["panic_message"]), truth["panic_message"]
    if scenario.comm is not None:
        assert truth["comm"] == scenario.comm
    if scenario.source_file:
        line = (dump.modules / scenario.source_file).read_text().splitlines()[
            truth["source_line"] - 1]
        assert "KDX-CRASH-LINE" in line
    target = dump.target
    task = panic_task(target.prog)
    assert int(task.pid) == truth["pid"]
    assert task.comm.string_().decode() == truth["comm"]
    if scenario.module:
        assert scenario.module not in target.missing_modules
