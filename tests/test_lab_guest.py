"""The lab guest looks like a small server when it dies, so analysis has real material."""

from __future__ import annotations

from drgn.helpers.linux.fs import for_each_file
from drgn.helpers.linux.pid import find_task, for_each_task


def test_guest_is_lived_in(null_deref):
    target = null_deref.target
    prog = target.prog
    assert prog["init_uts_ns"].name.nodename.string_() == b"kdx-lab"
    comms = [t.comm.string_().decode() for t in for_each_task(prog)]
    for expected in ("spinner", "fileholder", "nc", "cat", "insmod"):
        assert expected in comms, expected
    assert comms.count("sleep") >= 4
    loaded = {m.name for m, _ in prog.loaded_modules()}
    assert {"dummy", "loop", "qemu_fw_cfg", "hello_crash"} <= loaded
    holder = next(t for t in for_each_task(prog) if t.comm.string_() == b"fileholder")
    files = list(for_each_file(find_task(prog, int(holder.pid))))
    assert len(files) >= 5  # stdio plus the files and pipe it holds open
