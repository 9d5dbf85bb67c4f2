"""Without a vmlinux, kdx gives the answers it gives with one.

On every lab dump in the cache (every scenario, capture, format and kernel), the dump is
opened twice: with its vmlinux (the oracle) and with ``no_vmlinux`` (kallsyms, BTF and ORC
read from the dump). ``ps``, ``log``, ``mod``, ``sys``, the panic task's ``task_struct``,
every ``bt -a`` frame's function and the ``analyze`` verdict must be identical; only the
fields docs/no-vmlinux.md lists (the KERNEL file, source lines) may differ.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest
from conftest import lab_run

import kdx
from kdx.lab.cache import default_cache
from kdx.target.debuginfo import DEBUG_DIRS_ENV

#: Every finished lab run in the cache, all kernels.
_RUNS = sorted(p.parent for p in (default_cache() / "runs").glob("*/*/truth.json"))
#: Commands whose whole text must match.
_SAME_TEXT = ["ps", "ps -l", "log", "task", "runq", "files", "vm", "kmem -i"]
_FRAME = re.compile(r"^\s*#\d+ \[[0-9a-f]+\] (\S+) at [0-9a-f]+", re.MULTILINE)


def _sys_lines(text: str) -> list[str]:
    """sys without the lines that name where debug info came from."""
    return [line for line in text.splitlines()
            if not line.lstrip().startswith(("KERNEL:", "DEBUG INFO:"))]


def _verdict(dump: kdx.Dump) -> dict:
    data = dump.analyze().to_dict()
    culprit = data["culprit"]
    return {"category": data["category"], "summary": data["summary"],
            "function": culprit.get("function"), "offset": culprit.get("offset"),
            "module": culprit.get("module"), "signature": data["signature"],
            "pid": data["context"].get("pid"), "comm": data["context"].get("comm")}


@pytest.fixture(scope="module", params=_RUNS, ids=[f"{p.parent.name[:4]}-{p.name}"
                                                   for p in _RUNS])
def pair(request: pytest.FixtureRequest) -> tuple[kdx.Dump, kdx.Dump]:
    """(with the vmlinux, without it) for one lab dump."""
    dump = lab_run(request.param)
    return dump.opened, open_without_debug_package(dump.vmcore)


def open_without_debug_package(vmcore: Path, **options: bool) -> kdx.Dump:
    """Open ``vmcore`` with no vmlinux, as a user without the kernel's debug package does:
    the lab's debug directories (set for the whole test run) are hidden meanwhile, so no
    module DWARF from the debug package stands in for BTF."""
    saved = os.environ.pop(DEBUG_DIRS_ENV, None)
    try:
        return kdx.open_dump(vmcore, no_vmlinux=True, **options)
    finally:
        if saved is not None:
            os.environ[DEBUG_DIRS_ENV] = saved


@pytest.mark.skipif(not _RUNS, reason="no lab dumps in the cache")
def test_debug_info_came_from_the_dump(pair: tuple[kdx.Dump, kdx.Dump]) -> None:
    oracle, without = pair
    assert oracle.target.debug_source == "dwarf"
    assert without.target.debug_source == "dump"
    assert without.target.vmlinux is None
    assert without.target.prog.main_module().debug_file_path is None
    sys_text = without.run("sys").text
    assert "DEBUG INFO: kallsyms, BTF and ORC read from the dump" in sys_text
    assert _sys_lines(sys_text) == _sys_lines(oracle.run("sys").text)


@pytest.mark.skipif(not _RUNS, reason="no lab dumps in the cache")
@pytest.mark.parametrize("command", _SAME_TEXT)
def test_command_output_is_identical(pair: tuple[kdx.Dump, kdx.Dump], command: str) -> None:
    oracle, without = pair
    expected = oracle.run(command)
    got = without.run(command)
    assert got.ok == expected.ok
    assert got.text == expected.text


@pytest.mark.skipif(not _RUNS, reason="no lab dumps in the cache")
def test_mod_is_identical_but_for_the_debug_files(pair: tuple[kdx.Dump, kdx.Dump]) -> None:
    """``mod``'s OBJECT FILE column names the debug file found: the oracle has the
    kernel's debug package, the other side only the lab's own modules."""
    oracle, without = pair

    def columns(text: str) -> list[list[str]]:
        return [line.split()[:4] for line in text.splitlines()]

    expected = oracle.run("mod").text
    got = without.run("mod").text
    assert len(expected.splitlines()) > 3
    assert columns(got) == columns(expected)
    lab_modules = [line for line in expected.splitlines() if "/runs/" in line]
    assert all(line in got.splitlines() for line in lab_modules)


@pytest.mark.skipif(not _RUNS, reason="no lab dumps in the cache")
def test_every_bt_frame_has_the_same_function(pair: tuple[kdx.Dump, kdx.Dump]) -> None:
    oracle, without = pair
    expected = _FRAME.findall(oracle.run("bt -a").text)
    assert len(expected) > 5
    assert _FRAME.findall(without.run("bt -a").text) == expected


@pytest.mark.skipif(not _RUNS, reason="no lab dumps in the cache")
def test_the_verdict_and_its_signature_are_identical(pair: tuple[kdx.Dump, kdx.Dump]
                                                     ) -> None:
    oracle, without = pair
    expected = _verdict(oracle)
    assert expected["category"]
    assert _verdict(without) == expected


#: One sysrq dump per kernel, for the commands whose whole output is compared there only.
_SYSRQ = [run for run in _RUNS if run.name == "sysrq-kdump-kdump-zlib"]
#: More of the commands the issue lists (sym, sys -c and bt -l differ by source lines only).
_BROAD = ["bt -f", "bt -t", "bt -e", "ps -t", "ps -G", "kmem -s", "kmem -z", "kmem -V",
          "kmem -n", "net", "mount", "irq", "timer", "dev", "sig 1", "foreach bt",
          "p jiffies", "p (char)200", "struct task_struct.pid,comm init_task",
          "whatis struct list_head",
          "struct -o list_head", "list task_struct.tasks -h init_task",
          "vtop ffffffff81000000", "search -k deadbeef", "runq -t", "files 1", "vm 1",
          "dis schedule 5", "rd -64 jiffies 4"]


@pytest.fixture(scope="module", params=_SYSRQ, ids=[p.parent.name[:4] for p in _SYSRQ])
def sysrq_pair(request: pytest.FixtureRequest) -> tuple[kdx.Dump, kdx.Dump]:
    dump = lab_run(request.param)
    return dump.opened, open_without_debug_package(dump.vmcore)


@pytest.mark.skipif(not _SYSRQ, reason="no sysrq lab dump in the cache")
@pytest.mark.parametrize("command", _BROAD)
def test_more_commands_are_identical(sysrq_pair: tuple[kdx.Dump, kdx.Dump],
                                     command: str) -> None:
    oracle, without = sysrq_pair
    expected = oracle.run(command)
    got = without.run(command)
    assert expected.ok, expected.error
    assert got.ok == expected.ok
    assert got.text == expected.text


@pytest.mark.skipif(not _SYSRQ, reason="no sysrq lab dump in the cache")
def test_every_declared_global_fits_the_kernel(sysrq_pair: tuple[kdx.Dump, kdx.Dump]) -> None:
    """The declared types of globals (BTF has none) hold on every lab kernel: each
    variable the kernel has reads through its declaration without a VariableTypeError,
    with the vmlinux's type size."""
    from kdx.target.novmlinux.variables import DECLARATIONS

    oracle, without = sysrq_pair
    checked = 0
    for name in DECLARATIONS:
        try:
            expected = oracle.target.prog[name]
        except KeyError:
            continue  # this kernel has no such variable (an older or newer name)
        got = without.target.prog[name]
        assert got.address_ == expected.address_, name
        if drgn_size(expected) is not None:  # DWARF leaves some arrays incomplete
            assert drgn_size(got) == drgn_size(expected), name
        checked += 1
    assert checked > 80


def drgn_size(obj: object) -> int | None:
    import drgn

    try:
        return drgn.sizeof(obj.type_)  # type: ignore[attr-defined]
    except (TypeError, ValueError):
        return None  # an incomplete array
