"""Where the debug-info search looks: the system's places, then the debug directories
its caller or ``$KDX_DEBUG_DIRS`` names. Analysis knows nothing of the lab."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from kdx.target.debuginfo import DEBUG_DIRS_ENV, debug_roots, vmlinux_candidates

RELEASE = "6.1.0-57-cloud-amd64"


def _debug_tree(root: Path) -> Path:
    """An unpacked -dbg package under ``root``; returns the vmlinux path it would hold."""
    boot = root / "usr/lib/debug/boot"
    boot.mkdir(parents=True)
    return boot / f"vmlinux-{RELEASE}"


def test_debug_roots_are_roots_or_release_dirs(tmp_path, monkeypatch) -> None:  # noqa: ANN001
    monkeypatch.delenv(DEBUG_DIRS_ENV, raising=False)
    flat = tmp_path / "flat"
    _debug_tree(flat)
    per_release = tmp_path / "kernels"
    _debug_tree(per_release / RELEASE)
    _debug_tree(per_release / "6.12.117+deb13-cloud-amd64")
    empty = tmp_path / "empty"
    empty.mkdir()
    assert debug_roots(RELEASE, [flat, per_release, empty]) == [flat, per_release / RELEASE]


def test_environment_directories_come_after_the_callers(tmp_path, monkeypatch) -> None:  # noqa: ANN001
    mine, theirs = tmp_path / "mine", tmp_path / "theirs"
    _debug_tree(mine)
    wanted = _debug_tree(theirs / RELEASE)
    monkeypatch.setenv(DEBUG_DIRS_ENV, f"{tmp_path / 'missing'}:{theirs}")
    assert debug_roots(RELEASE, [mine]) == [mine, theirs / RELEASE]
    candidates = list(vmlinux_candidates(RELEASE, None, None, [mine]))
    assert candidates.index(_vmlinux(mine)) < candidates.index(wanted)
    assert candidates[0] == Path(f"/usr/lib/debug/boot/vmlinux-{RELEASE}")


def _vmlinux(root: Path) -> Path:
    return root / "usr/lib/debug/boot" / f"vmlinux-{RELEASE}"


@pytest.mark.parametrize("module", ["kdx.target.open", "kdx.target.debuginfo", "kdx.api"])
def test_analysis_does_not_load_the_lab(module: str) -> None:
    code = f"import sys, {module}; print([m for m in sys.modules if m.startswith('kdx.lab')])"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True).stdout
    assert out.strip() == "[]"
    source = Path(__file__).resolve().parent.parent / "src/kdx/target"
    assert not [p for p in source.glob("*.py") if "kdx.lab" in p.read_text()]
