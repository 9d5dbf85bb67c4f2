"""A kernel without BTF, opened without its vmlinux: symbols and raw memory still answer.

Kernels built without ``CONFIG_DEBUG_INFO_BTF`` carry kallsyms and ORC but no types.
``btf=False`` (``--no-btf``) opens a lab dump as such a kernel would be: ``sym``, ``rd``,
``dis``, ``eval`` and ``log`` must give the vmlinux's answers; commands that need types
(``ps``, ``sys``, ``analyze``) must say so in one line, never with a traceback.
"""

from __future__ import annotations

import json

import pytest
from conftest import LabDump, run_kdx
from test_no_vmlinux import open_without_debug_package

import kdx
from kdx.errors import KdxError

#: Commands that need no types, compared whole with the vmlinux's output.
_NO_TYPES = ["sym jiffies", "rd -64 jiffies", "dis -r panic 6", "eval 0x10+3",
             "log"]


@pytest.fixture(scope="module")
def no_btf(null_deref: LabDump) -> kdx.Dump:
    return open_without_debug_package(null_deref.vmcore, btf=False)


def test_the_dump_says_it_has_symbols_only(no_btf: kdx.Dump) -> None:
    assert no_btf.target.debug_source == "symbols"
    assert no_btf.target.vmlinux is None
    assert any("has no BTF" in w for w in no_btf.warnings)


@pytest.mark.parametrize("command", _NO_TYPES)
def test_commands_without_types_match_the_vmlinux(null_deref: LabDump, no_btf: kdx.Dump,
                                                   command: str) -> None:
    expected = null_deref.opened.run(command)
    got = no_btf.run(command)
    assert expected.ok and got.ok
    assert got.text == expected.text


def test_sym_names_a_function_without_its_source_line(null_deref: LabDump,
                                                     no_btf: kdx.Dump) -> None:
    expected = null_deref.opened.run("sym panic").text
    assert expected.endswith("panic kernel/panic.c: 276\n")
    assert no_btf.run("sym panic").text == expected.split(" kernel/")[0] + "\n"


@pytest.mark.parametrize("command", ["ps", "sys", "bt", "struct task_struct.pid init_task"])
def test_commands_that_need_types_say_so_in_one_line(no_btf: kdx.Dump, command: str) -> None:
    result = no_btf.run(command)
    assert not result.ok
    assert result.text == ""
    word = command.split()[0]
    assert result.error == (f"{word}: error: needs the kernel's types: this kernel has no BTF "
                            "and no vmlinux was given (log, sym, rd, dis, eval work)\n")


def test_analyze_refuses_in_one_sentence(no_btf: kdx.Dump) -> None:
    with pytest.raises(KdxError, match=r"^analyze needs the kernel's types: this kernel has "
                       r"no BTF and no vmlinux was given"):
        no_btf.analyze()


def test_the_cli_exits_1_with_one_error_line(null_deref: LabDump) -> None:
    result = run_kdx("analyze", null_deref.vmcore, "--no-btf")
    assert result.returncode == 1
    errors = [line for line in result.stderr.splitlines() if line.startswith("kdx: error:")]
    assert len(errors) == 1
    assert "Traceback" not in result.stderr
    both = run_kdx("analyze", null_deref.vmcore, null_deref.vmlinux, "--no-btf")
    assert both.returncode != 0
    assert "--no-btf was given with a vmlinux" in both.stderr


def test_a_module_with_dwarf_gives_source_lines_without_the_vmlinux(null_deref: LabDump
                                                                    ) -> None:
    """The classic case: the vendor kernel's vmlinux is gone, the module's .ko is at hand."""
    ko = null_deref.modules / "hello_crash.ko"
    result = run_kdx("analyze", null_deref.vmcore, ko, "--no-vmlinux", "--json")
    assert result.returncode == 0, result.stderr
    culprit = json.loads(result.stdout)["data"]["culprit"]
    assert (culprit["function"], culprit["offset"], culprit["module"]) == ("hello_init", 17,
                                                                           "hello_crash")
    assert culprit["file"].endswith("hello-crash.c")
    assert culprit["line"] == null_deref.truth["source_line"]


def test_source_lines_asked_without_the_vmlinux_get_one_warning(null_deref: LabDump) -> None:
    dump = open_without_debug_package(null_deref.vmcore)
    for command in ("bt -l", "dis -l panic 2"):
        result = dump.run(command)
        assert result.ok
        assert "kernel source lines need the vmlinux's DWARF" in result.error
        assert "panic.c" not in result.text
