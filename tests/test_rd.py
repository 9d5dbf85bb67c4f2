"""``rd`` and ``x`` on real lab dumps, against crash 8.0.6.

crash runs once per dump on every command below (separated by ``eval`` markers) and kdx
runs the same commands in one session; each section is compared line by line (crash's
trailing blanks aside): addresses, values, symbols, decimal widths, ASCII columns and
strings. Reads that hit memory the dump lacks must stop with crash's reason, in one line.
"""

from __future__ import annotations

import io
import json
import re

import drgn
import pytest
from crash_script import crash_sections

from kdx.model.rawmemory import read_memory
from kdx.render.crash.rd import c_string, render_rd, x_value
from kdx.session.session import Session


def _addresses(dump) -> dict:  # noqa: ANN001
    """Addresses the commands need, found with drgn: the panic task's stack pointer and
    user stack pointer, a page makedumpfile left out just after one it kept, and (with a
    module) the module's struct module."""
    from drgn.helpers.linux.mm import pfn_to_virt
    from drgn.helpers.linux.module import find_module
    from drgn.helpers.linux.panic import panic_task

    prog = dump.target.prog
    trace = prog.stack_trace(panic_task(prog))
    banner = prog.symbol("linux_banner").address
    out = {"sp": trace[0].sp, "user_sp": trace[-1].sp, "banner": banner, "end": banner + 0x20}
    kept = False
    for pfn in range(0x1000, 0x20000):
        try:
            prog.read(pfn << 12, 8, True)
            kept = True
        except drgn.FaultError as err:
            if kept and "xcluded" in str(err):
                out["excluded"] = pfn_to_virt(prog, pfn).value_()
                out["excluded_phys"] = pfn << 12
                break
            kept = False
    if dump.truth.get("module"):
        out["module"] = find_module(prog, dump.truth["module"]).value_()
    return out


def commands(dump, where: dict) -> list[str]:  # noqa: ANN001
    """What both tools run, in this order (crash's output is cached by this list)."""
    sp, bad = where["sp"], where["excluded"]
    wanted = [
        "rd jiffies", "rd -64 linux_banner 8", "rd -a linux_banner 20", f"rd -s {sp:x} 16",
        "rd -8 linux_banner 20", "rd -16 linux_banner 10", "rd -32 linux_banner 10",
        "rd -d jiffies 4", "rd -D jiffies 4", "rd -32 -d linux_banner 5",
        "rd -8 -d linux_banner 5", "rd -16 -d linux_banner 5", "rd -32 -D linux_banner 5",
        "rd -x linux_banner 4", "rd -o 8 linux_banner 2", "rd -p 1000000 4",
        "rd linux_banner 3", "rd -a -x linux_banner 5", f"rd -s -x {sp:x} 4",
        "rd -d -s jiffies", "rd -a linux_banner 300", f"rd {bad:x}", f"rd -8 {bad - 6:x} 8",
        f"rd -32 {bad - 8:x} 4", f"rd -p {where['excluded_phys']:x}", "rd 0 2",
        f"rd -u {where['user_sp']:x}", f"rd -e {where['end']:x} {where['banner']:x}",
        "x/10xb linux_banner", "x/5dw linux_banner", "x/2s linux_banner",
        "x/3i sysrq_handle_crash", f"x/4a {sp:#x}", "x/10c linux_banner",
        "x/2tw linux_banner", "x/3ow linux_banner", "x/9xh linux_banner",
        "x/3dh linux_banner", "x/2x &jiffies", "x/2fw linux_banner", "x/3ab linux_banner",
        "x/2ug &jiffies", "x/2xg &jiffies",
    ]
    if "module" in where:
        wanted.append(f"rd -s {where['module']:x} 6")
    return wanted + ["rd -a linux_banner"]  # last: crash ends it without a newline




def kdx_command(command: str) -> str:
    """gdb's ``x/FMT`` is one word; kdx's session splits it as ``x /FMT``."""
    return re.sub(r"^x/", "x /", command)


def kdx_sections(dump, wanted: list[str]) -> dict[str, tuple[str, str]]:  # noqa: ANN001
    """(stdout, stderr) of each command in one kdx session on the dump."""
    out, err = io.StringIO(), io.StringIO()
    session = Session(dump.target, out=out, err=err)
    sections = {}
    for command in wanted:
        o, e = len(out.getvalue()), len(err.getvalue())
        session.execute(kdx_command(command))
        text = out.getvalue()[o:]
        sections[command] = ("\n".join(line.rstrip() for line in text.splitlines()).strip("\n"),
                             err.getvalue()[e:])
    assert "Traceback" not in err.getvalue()
    return sections


@pytest.fixture(scope="module", params=["6.1", "6.12"])
def both(request, lab, crash):  # noqa: ANN001
    """(dump, addresses, crash's sections, kdx's sections) for each kernel's null-deref
    dump."""
    dump = lab("null-deref-module", kernel=None if request.param == "6.1" else "6.12")
    where = _addresses(dump)
    wanted = commands(dump, where)
    return dump, where, crash_sections(crash, dump, wanted), kdx_sections(dump, wanted)


GOOD = ["rd jiffies", "rd -64 linux_banner 8", "rd -a linux_banner 20", "rd -s {sp:x} 16",
        "rd -8 linux_banner 20", "rd -16 linux_banner 10", "rd -32 linux_banner 10",
        "rd -d jiffies 4", "rd -D jiffies 4", "rd -32 -d linux_banner 5",
        "rd -8 -d linux_banner 5", "rd -16 -d linux_banner 5", "rd -32 -D linux_banner 5",
        "rd -x linux_banner 4", "rd -o 8 linux_banner 2", "rd -p 1000000 4",
        "rd linux_banner 3", "rd -a -x linux_banner 5", "rd -s -x {sp:x} 4",
        "rd -d -s jiffies", "rd -a linux_banner 300", "rd -e {end:x} {banner:x}",
        "rd -a linux_banner"]

X = ["x/10xb linux_banner", "x/5dw linux_banner", "x/2s linux_banner",
     "x/3i sysrq_handle_crash", "x/4a {sp:#x}", "x/10c linux_banner", "x/2tw linux_banner",
     "x/3ow linux_banner", "x/9xh linux_banner", "x/3dh linux_banner", "x/2x &jiffies",
     "x/2fw linux_banner", "x/3ab linux_banner", "x/2ug &jiffies", "x/2xg &jiffies"]


@pytest.mark.oracle
@pytest.mark.parametrize("command", GOOD)
def test_rd_matches_crash(both, command: str) -> None:
    dump, where, theirs, ours = both
    command = command.format(**where)
    expected = theirs[command]
    assert expected and "rd:" not in expected, expected
    out, err = ours[command]
    assert out.splitlines() == expected.splitlines()
    assert not err


@pytest.mark.oracle
def test_rd_symbols_on_the_stack(both) -> None:
    """-s on the panic task's stack names return addresses (do_one_initcall+N...), not
    stack or heap pointers; module data is named from the module's symbols."""
    dump, where, theirs, ours = both
    text = ours[f"rd -s {where['sp']:x} 16"][0]
    assert re.search(r"\b[a-z_]\w*\+\d+\b", text), text
    if "module" in where:
        command = f"rd -s {where['module']:x} 6"
        assert ours[command][0].splitlines() == theirs[command].splitlines()
        assert "__this_module+8" in ours[command][0]


@pytest.mark.oracle
@pytest.mark.parametrize("command", ["rd {excluded:x}", "rd -8 {bad6:x} 8",
                                     "rd -32 {bad8:x} 4", "rd -p {excluded_phys:x}", "rd 0 2",
                                     "rd -u {user_sp:x}"])
def test_missing_memory_is_one_line_as_crash_says(both, command: str) -> None:
    """A page makedumpfile left out, an unmapped user address, a user page not dumped:
    what could be read is shown, then crash's reason in one line."""
    dump, where, theirs, ours = both
    command = command.format(bad6=where["excluded"] - 6, bad8=where["excluded"] - 8, **where)
    expected = theirs[command]
    crash_error = [line for line in expected.splitlines() if "rd: " in line]
    assert len(crash_error) == 1, expected
    out, err = ours[command]
    assert err.count("\n") == 1
    assert err.startswith("rd: error: ")
    reason = crash_error[0][crash_error[0].index("rd: ") + 4:]
    assert err[len("rd: error: "):].rstrip("\n") == reason
    crash_lines = [line[:line.index("rd: ")].rstrip() if "rd: " in line else line
                   for line in expected.splitlines()]
    assert out.splitlines() == [line for line in crash_lines if line]


@pytest.mark.oracle
@pytest.mark.parametrize("command", X)
def test_x_matches_crash(both, command: str) -> None:
    """gdb's x through crash: labels, per-line counts, formats, remembered sizes."""
    dump, where, theirs, ours = both
    command = command.format(**where)
    expected = theirs[command]
    assert expected and "gdb:" not in expected, expected
    out, err = ours[command]
    assert out.splitlines() == expected.splitlines()
    assert not err


@pytest.mark.oracle
def test_user_memory_matches_crash(lab, crash) -> None:  # noqa: ANN001
    """-u (and an address below the kernel's half) on a dump that kept user memory: the
    panic task's user stack, as crash reads it through the task's page tables."""
    from drgn import Object
    from drgn.helpers.linux.panic import panic_task

    dump = lab("sysrq", capture="qemu", fmt="elf")
    prog = dump.target.prog
    # The user RSP saved at the top of the kernel stack on entry (the unwinder's last
    # frame can be a stale word on a QEMU dump).
    task = panic_task(prog)
    top = task.stack.value_() + prog["THREAD_SIZE"].value_()
    regs = Object(prog, "struct pt_regs *", top - prog.type("struct pt_regs").size)
    assert regs.cs.value_() & 3 == 3
    sp = regs.sp.value_()
    wanted = [f"rd -u {sp:x} 4", f"rd {sp:x} 2", f"rd -a -u {sp:x} 16"]
    theirs = crash_sections(crash, dump, wanted)
    ours = kdx_sections(dump, wanted)
    for command in wanted[:2]:
        assert re.match(rf"^ *{sp:x}:  [0-9a-f]{{16}} ", theirs[command]), theirs[command]
    for command in wanted:
        assert ours[command][0].splitlines() == theirs[command].splitlines()


def test_json_parses(null_deref, kdx) -> None:  # noqa: ANN001
    proc = kdx(null_deref.vmcore, "--json", "-c", "rd -s jiffies 2", check=True)
    doc = json.loads(proc.stdout)
    assert doc["kind"] == "rd"
    data = doc["data"]
    assert data["unit"] == 8 and data["count"] == 2 and len(data["words"]) == 2
    assert int(data["words"][1]["address"], 16) == int(data["words"][0]["address"], 16) + 8
    assert data["space"] == "kernel virtual" and data["fault"] is None


def test_values_and_ascii_agree(null_deref) -> None:  # noqa: ANN001
    """The values, the hex of the bytes and the ASCII column are one reading."""
    prog = null_deref.target.prog
    banner = prog["linux_banner"].address_
    display = read_memory(prog, banner, unit=4, count=6)
    raw = display.raw
    assert raw.startswith(b"Linux ver")
    assert [w.value for w in display.words] == [
        int.from_bytes(raw[i:i + 4], "little") for i in range(0, 24, 4)]
    text = render_rd(display).splitlines()
    assert text[0].endswith("  Linux version 6.") and len(text) == 2


def test_gdb_value_formats() -> None:
    assert x_value(0x4C, "x", 1) == "0x4c" and x_value(8, "x", 4) == "0x00000008"
    assert x_value(0xFF, "d", 1) == "-1" and x_value(0xFF, "u", 1) == "255"
    assert x_value(8, "o", 4) == "010" and x_value(0, "o", 4) == "0"
    assert x_value(5, "t", 1) == "00000101"
    assert x_value(0xC8, "c", 1) == "-56 '\\310'" and x_value(39, "c", 1) == "39 '\\''"
    assert c_string(b'a"\n\x1b') == '"a\\"\\n\\033"'


# -- rd -S/-SS (slab caches), -N, -R, -f, -r FILE ---------------------------------------------


def _option_commands(target) -> list[str]:  # noqa: ANN001
    from drgn.helpers.linux.pid import for_each_task

    task = next(t for t in for_each_task(target.prog) if t.comm.string_() == b"fileholder")
    where, head = f"{task.value_():x}", f"{task.tasks.address_:x}"
    return [f"rd -S {where} 40", f"rd -SS {where} 40", f"rd -32 -N {where} 8",
            f"rd -16 -N {where} 8", f"rd -R {head} 4", f"rd -R -32 {head} 5", "rd -f 0 4",
            "rd -f -32 10 4", "rd -R -a linux_banner 10", f"rd -N {where} 2",
            f"rd -S -x {where} 4", "rd -SS -d init_task 2"]


@pytest.mark.oracle
@pytest.mark.parametrize("kernel", ["6.1", "6.12"])
def test_rd_options_match_crash(kernel, lab, crash) -> None:  # noqa: ANN001
    dump = lab("null-deref-module", kernel=None if kernel == "6.1" else kernel)
    target = dump.target
    wanted = _option_commands(target)
    theirs = crash_sections(crash, dump, wanted)
    out = io.StringIO()
    session = Session(target, out=out, err=io.StringIO())
    ours = {}
    for command in wanted:
        start = out.tell()
        assert session.execute(command), command
        ours[command] = "\n".join(line.rstrip() for line in
                                  out.getvalue()[start:].strip("\n").splitlines())
    for command in wanted:
        assert ours[command] == theirs[command], \
            f"{command}:\n--- crash\n{theirs[command]}\n--- kdx\n{ours[command]}"
    slab = ours[wanted[0]]
    # the task's mm, files, fs... point into slab caches: named as crash names them
    assert re.search(r"\[(mm_struct|files_cache|fs_cache|task_struct|kmalloc-\d+)\]", slab)
    assert re.search(r"\[[0-9a-f]{16}:[\w-]+\]", ours[wanted[1]])
    assert "KDUMP" in ours["rd -f 0 4"]
    reverse = ours[wanted[4]].splitlines()
    assert int(reverse[-1].split(":")[0], 16) == int(wanted[4].split()[2], 16) - 8


def test_rd_copies_raw_bytes_to_a_file(null_deref, tmp_path) -> None:  # noqa: ANN001
    target = null_deref.target
    out = io.StringIO()
    session = Session(target, out=out, err=io.StringIO())
    path = tmp_path / "banner.bin"
    assert session.execute(f"rd -r {path} linux_banner 32")
    address = target.prog.symbol("linux_banner").address
    assert out.getvalue().strip() == f"32 bytes copied from {address:#x} to {path}"
    assert path.read_bytes() == target.prog.read(address, 32)
    assert path.read_bytes().startswith(b"Linux version ")
    assert not session.execute(f"rd -r {path} linux_banner")  # crash wants a count
