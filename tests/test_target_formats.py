"""Opening every kind of dump the lab makes, and checking it against the ground truth.

Each dump is a real sysrq crash of a Debian kernel, captured by kdump (every makedumpfile
format) or by QEMU (ELF and kdump-zlib, with and without the VMCOREINFO note). Opening
must find the vmlinux by itself and read the right kernel and panic task.
"""

from __future__ import annotations

import io
import json

import pytest
from drgn.helpers.linux.panic import panic_task

from kdx.session.session import Session
from kdx.target.formats import identify
from kdx.target.open import open_dump

CASES = [
    ("kdump", "kdump-zlib", True, "kdump", "zlib"),
    ("kdump", "kdump-lzo", True, "kdump", "lzo"),
    ("kdump", "kdump-zstd", True, "kdump", "zstd"),
    ("kdump", "kdump-raw", True, "kdump", "none"),
    ("kdump", "elf", True, "elf", None),
    ("kdump", "flattened", True, "flattened", None),
    ("qemu", "elf", True, "elf", None),
    ("qemu", "elf", False, "elf", None),
    ("qemu", "kdump-zlib", True, "flattened", None),
    ("qemu", "kdump-zlib", False, "flattened", None),
]


@pytest.mark.parametrize(("capture", "fmt", "note", "kind", "compression"), CASES,
                         ids=[f"{c[0]}-{c[1]}{'' if c[2] else '-no-vmcoreinfo'}" for c in CASES])
def test_open_every_format(lab, capture, fmt, note, kind, compression):
    dump = lab("sysrq", capture=capture, fmt=fmt, vmcoreinfo=note)
    info = identify(dump.vmcore)
    assert info.kind == kind
    if compression:
        assert info.compression == compression
    target = open_dump(dump.vmcore)
    assert target.release == dump.truth["release"]
    assert target.vmlinux is not None and target.vmlinux.resolve() == dump.vmlinux.resolve()
    task = panic_task(target.prog)
    assert int(task.pid) == dump.truth["pid"]
    assert task.comm.string_().decode() == dump.truth["comm"]
    assert target.missing_modules == []


def test_filtered_kdump_records_dump_level(sysrq):
    info = identify(sysrq.vmcore)
    assert info.dump_level == 31
    assert not info.incomplete


def test_explicit_module_dir_gives_module_debug_info(null_deref):
    target = null_deref.target
    assert "hello_crash" not in target.missing_modules
    mod = target.prog.module("hello_crash")
    assert mod.debug_file_path is not None
    assert mod.debug_file_path.endswith("hello_crash.ko")


def test_module_without_debug_info_is_named(null_deref, tmp_path):
    # Copy the dump alone, so no modules/ directory sits beside it.
    alone = tmp_path / "vmcore"
    alone.symlink_to(null_deref.vmcore)
    target = open_dump(alone, null_deref.vmlinux)
    assert target.missing_modules == ["hello_crash"]
    assert any("hello_crash" in w and ".ko" in w for w in target.warnings)


def test_kernel_612_opens(lab):
    dump = lab("sysrq", kernel="6.12")
    target = open_dump(dump.vmcore)
    assert target.release.startswith("6.12.")
    assert int(panic_task(target.prog).pid) == dump.truth["pid"]


#: Commands a first look at any dump runs; each must succeed on every format.
_FIRST_LOOK = ["sys", "bt", "ps", "log", "mod", "kmem -i", "files", "vm",
               "dis -l sysrq_handle_crash"]


@pytest.mark.parametrize(("capture", "fmt", "note", "kind", "compression"), CASES,
                         ids=[f"{c[0]}-{c[1]}{'' if c[2] else '-no-vmcoreinfo'}" for c in CASES])
def test_commands_work_on_every_format(lab, capture, fmt, note, kind, compression):
    dump = lab("sysrq", capture=capture, fmt=fmt, vmcoreinfo=note)
    out, err = io.StringIO(), io.StringIO()
    session = Session(dump.target, json=True, out=out, err=err)
    docs = {}
    for command in _FIRST_LOOK:
        out.seek(0)
        out.truncate()
        assert session.execute(command), f"{command}: {err.getvalue()}"
        docs[command.split()[0]] = json.loads(out.getvalue())["data"]
    assert err.getvalue() == ""
    assert docs["sys"]["pid"] == dump.truth["pid"] and docs["sys"]["tasks"] > 50
    frames = [f["function"] for f in docs["bt"][0]["frames"]]
    assert docs["bt"][0]["pid"] == dump.truth["pid"] and "sysrq_handle_crash" in frames
    assert frames.index("sysrq_handle_crash") < frames.index("write_sysrq_trigger")
    ps = {t["pid"]: t["comm"] for t in docs["ps"]}
    assert ps[dump.truth["pid"]] == dump.truth["comm"] and ps[1] == "init"
    assert any("sysrq: Trigger a crash" in line for r in docs["log"]["records"]
               for line in r["lines"])
    assert docs["kmem"]["total_pages"] > docs["kmem"]["free_pages"] > 0
    assert {m["name"] for m in docs["mod"]} >= {"virtio_blk", "dummy"}
