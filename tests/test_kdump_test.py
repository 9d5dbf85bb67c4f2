"""``kdx kdump test`` crashes only a ready machine, and only when told to."""

from __future__ import annotations

import shutil


def _saved_system(dump, state: str, tmp_path):
    root = tmp_path / state
    shutil.copytree(dump.dir / "guest-state" / state, root)
    (root / "proc" / "sysrq-trigger").write_text("")
    return root


def test_refuses_without_confirmation(kdx, null_deref, tmp_path):
    root = _saved_system(null_deref, "after-kexec", tmp_path)
    proc = kdx("kdump", "test", "--root", root)
    assert proc.returncode == 1 and "--yes-really-crash" in proc.stderr
    assert (root / "proc" / "sysrq-trigger").read_text() == ""


def test_refuses_when_the_capture_kernel_is_not_loaded(kdx, null_deref, tmp_path):
    root = _saved_system(null_deref, "before-kexec", tmp_path)
    proc = kdx("kdump", "test", "--root", root, "--yes-really-crash")
    assert proc.returncode == 1 and "capture kernel" in proc.stderr
    assert (root / "proc" / "sysrq-trigger").read_text() == ""


def test_crashes_a_ready_system(kdx, null_deref, tmp_path):
    root = _saved_system(null_deref, "after-kexec", tmp_path)
    proc = kdx("kdump", "test", "--root", root, "--yes-really-crash", check=True)
    assert (root / "proc" / "sysrq-trigger").read_text() == "c"
    assert "sysrq-trigger" in proc.stdout
