"""``sys -c``: the system call table, compared with crash 8.0.6."""

from __future__ import annotations

import json


def _rows(text: str) -> list[str]:
    return [line.rstrip() for line in text.splitlines() if line[:3].strip().isdigit()]


def test_sys_c_matches_crash(kdx, crash, null_deref):
    ours = _rows(kdx(null_deref.vmcore, "-c", "sys -c", check=True).stdout)
    theirs = _rows(crash(null_deref, ["sys -c"]))
    assert len(ours) == len(theirs) > 300
    for mine, other in zip(ours, theirs):
        # crash (gdb) puts sys_ni_syscall's first instruction on the line before drgn's.
        if "ni_syscall" in mine:
            assert mine.split()[:3] == other.split()[:3]
        else:
            assert mine == other
    assert ours[0].split()[:2] == ["0", "__x64_sys_read"]


def test_sys_c_json(kdx, null_deref):
    doc = json.loads(kdx(null_deref.vmcore, "--json", "-c", "sys -c", check=True).stdout)
    assert doc["kind"] == "syscalls"
    first = doc["data"][0]
    assert first["number"] == 0 and first["handler"] == "__x64_sys_read"
    assert first["file"].endswith("fs/read_write.c") and first["line"] > 0
