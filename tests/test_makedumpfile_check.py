"""``kdx kdump status`` warns when the installed makedumpfile is older than the kernel:
such a makedumpfile may exclude live kernel data (the 7.x dumps that lost task_structs).
Run on the /proc and /sys the lab's 6.12 and 7.2 guests saved, with a kdump-tools
configuration and a dpkg status naming the makedumpfile installed."""

from __future__ import annotations

import shutil

import pytest
from conftest import lab_run

from kdx.capture.makedumpfile import newest_supported, parse_version
from kdx.capture.status import run_checks
from kdx.capture.system import System
from kdx.lab.cache import default_cache

RUNS = default_cache() / "runs"


def _root(tmp_path, release_dir: str, makedumpfile: str):  # noqa: ANN001, ANN202
    state = lab_run(RUNS / release_dir / "sysrq-kdump-kdump-zlib").dir / "guest-state"
    root = tmp_path / "root"
    shutil.copytree(state / "after-kexec", root)
    (root / "etc/default").mkdir(parents=True)
    (root / "etc/default/kdump-tools").write_text('MAKEDUMP_ARGS="-c -d 31"\n')
    (root / "var/lib/dpkg").mkdir(parents=True)
    (root / "var/lib/dpkg/status").write_text(
        "Package: kdump-tools\nStatus: install ok installed\nVersion: 1:1.10.7\n\n"
        f"Package: makedumpfile\nStatus: install ok installed\nVersion: {makedumpfile}\n")
    return root


def _check(root):  # noqa: ANN001, ANN202
    return next(c for c in run_checks(System(root)).checks if c.name == "makedumpfile")


@pytest.mark.skipif(not (RUNS / "7.2.13+deb14-cloud-amd64").exists(),
                    reason="no cached 7.2 lab run")
def test_old_makedumpfile_on_a_newer_kernel_warns(tmp_path):
    check = _check(_root(tmp_path, "7.2.13+deb14-cloud-amd64", "1:1.7.6-1"))
    assert check.state == "warn"
    assert check.details == {"version": "1.7.6", "kernel": "7.2.13+deb14-cloud-amd64",
                             "supports_up_to": "6.11"}
    assert "up to 6.11" in check.summary and "7.2.13" in check.summary
    assert check.fix == ("install the newest makedumpfile (check its supported kernels)",)


def test_makedumpfile_that_knows_the_kernel_passes(tmp_path):
    check = _check(_root(tmp_path, "6.12.117+deb13-cloud-amd64", "1:1.7.7-1"))
    assert check.state == "pass"
    assert check.details["supports_up_to"] == "6.14"
    old = _check(_root(tmp_path / "old", "6.12.117+deb13-cloud-amd64", "1:1.7.5-2"))
    assert old.state == "warn" and old.fix == ("install makedumpfile 1.7.7 or newer",)


def test_version_table():
    assert parse_version("1:1.7.6-1+b1") == (1, 7, 6)
    assert newest_supported((1, 7, 6)) == (6, 11)
    assert newest_supported((1, 7, 9)) == (7, 0)
    assert newest_supported((1, 8, 0)) is None  # newer than kdx knows: no warning
    assert newest_supported((1, 6, 7)) == (5, 15)
