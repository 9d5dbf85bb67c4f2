"""The command line as a user meets it: help, version, the lab's commands and its errors."""

from __future__ import annotations

import json

from kdx import __version__
from kdx.lab import scenarios


def test_version_and_help(kdx):
    assert kdx("--version").stdout.strip() == f"kdx {__version__}"
    out = kdx("--help").stdout
    assert "sys" in out and "lab" in out
    assert "--json" in kdx("sys", "--help").stdout


def test_lab_list_names_every_scenario(kdx):
    proc = kdx("lab", "list", "--json", check=True)
    listed = {item["name"]: item["category"] for item in json.loads(proc.stdout)}
    assert listed == {s.name: s.category for s in scenarios.SCENARIOS.values()}
    assert "null-deref-module" in kdx("lab", "list").stdout


def test_lab_run_reuses_cached_dump_and_prints_paths(kdx, null_deref):
    proc = kdx("lab", "run", "null-deref-module", check=True)
    assert f"vmcore:   {null_deref.vmcore}" in proc.stdout
    assert "BUG: kernel NULL pointer dereference" in proc.stdout
    truth = json.loads(kdx("lab", "run", "null-deref-module", "--json", check=True).stdout)
    assert truth["function"] == "hello_init"
    assert truth["module"] == "hello_crash"
    assert truth["source_file"] == "hello-crash.c"


def _one_error_line(proc) -> str:
    assert proc.returncode != 0
    assert "Traceback" not in proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("kdx: error: "), proc.stderr
    return lines[0]


def test_lab_unknown_scenario_lists_the_valid_ones(kdx):
    line = _one_error_line(kdx("lab", "run", "no-such-crash"))
    assert "null-deref-module" in line


def test_lab_refuses_a_format_the_capture_cannot_write(kdx):
    line = _one_error_line(kdx("lab", "run", "sysrq", "--capture", "qemu", "--format",
                               "kdump-zstd"))
    assert "qemu" in line and "kdump-zstd" in line


def test_lab_unknown_kernel(kdx):
    assert "unknown kernel" in _one_error_line(kdx("lab", "run", "sysrq", "--kernel", "2.6"))


def test_static_subcommand_names_match_the_parser():
    import argparse

    from kdx.cli import SUBCOMMANDS, build_parser

    actions = [a for a in build_parser()._actions if isinstance(a, argparse._SubParsersAction)]
    assert set(actions[0].choices) == set(SUBCOMMANDS)
