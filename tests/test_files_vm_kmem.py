"""``files``, ``vm`` and ``kmem`` on real lab dumps (6.1 and 6.12), against crash 8.0.6.

The lab guest runs ``fileholder`` (a tmpfs file, /proc/version, /dev/null, both ends of
a pipe, a file on a second tmpfs mount, cwd /tmp) and two ``nc`` processes joined by a
TCP connection. crash runs once per dump on every command below, each preceded by a
marker (crash_script) so its output can be cut out; kdx runs the same commands in one session.
Sections are compared field by field (every fd, address, type and path; every VMA and
page translation; every page count; every slab cache). Trailing blanks are ignored:
kdx never prints them (docs/crash-differences.md).
"""

from __future__ import annotations

import io
import json
import re

import pytest
from crash_script import crash_parts, crash_sections, kdx_sections
from drgn.helpers.linux.mm import vm_memory_committed
from drgn.helpers.linux.pid import for_each_task

from kdx.model.memory import memory_figures
from kdx.render.crash.kmem import pages_to_size
from kdx.render.crash.layout import field
from kdx.session.session import Session

pytestmark = pytest.mark.oracle


# -- plumbing ---------------------------------------------------------------------------


class Scene:
    """A lab dump (opened once for all test files) and the PIDs these tests look at."""

    def __init__(self, lab_dump) -> None:  # noqa: ANN001 (LabDump)
        self.lab = lab_dump
        self.target = lab_dump.target
        by_comm: dict[str, list[int]] = {}
        for task in for_each_task(self.target.prog):
            comm = task.comm.string_().decode()
            by_comm.setdefault(comm, []).append(task.pid.value_())
        self.fileholder = by_comm["fileholder"][0]
        self.nc = sorted(by_comm["nc"])
        self.panic_pid = lab_dump.truth["pid"]

    def commands(self) -> list[str]:
        """What both tools run, in this order (crash's output is cached by this list)."""
        fh = self.fileholder
        return ["files", f"files {fh}", *(f"files {pid}" for pid in self.nc), "files 2",
                f"vm {fh}", f"vm -p {fh}", "vm 2", f"vm {self.nc[0]}", "kmem -i", "kmem -s",
                "kmem -s dentry", "kmem -s task_struct", f"vm -m {fh}"]


def kdx_outputs(dump: Scene) -> dict[str, str]:
    run = kdx_sections(dump.target, dump.commands())
    assert not run.failed, run.stderr
    return run.sections


@pytest.fixture(scope="module", params=["6.1", "6.12"])
def dump(request, null_deref, lab) -> Scene:  # noqa: ANN001 (fixtures)
    lab_dump = null_deref if request.param == "6.1" else lab("null-deref-module",
                                                             kernel="6.12")
    return Scene(lab_dump)


@pytest.fixture(scope="module")
def both(dump, crash) -> tuple[Scene, dict[str, str], dict[str, str]]:  # noqa: ANN001
    return dump, kdx_outputs(dump), crash_sections(crash, dump.lab, dump.commands())


# -- files ------------------------------------------------------------------------------

_FD_LINE = re.compile(r"^\s*(\d+) ([0-9a-f]+) +([0-9a-f?]+) +([0-9a-f?]+) (\S+)(?: +(.*))?$")


def parse_files(text: str) -> dict:
    """crash's files output as header fields and (fd, file, dentry, inode, type, path)."""
    lines = text.splitlines()
    parsed = {"header": lines[0], "root": None, "fds": []}
    for line in lines[1:]:
        if line.startswith("ROOT:"):
            parsed["root"] = line
        found = _FD_LINE.match(line)
        if found and not line.startswith(" FD"):
            parsed["fds"].append(found.groups(default=""))
    return parsed


def test_files_of_every_task_match_crash(both) -> None:  # noqa: ANN001
    dump, ours, theirs = both
    for command in ["files", f"files {dump.fileholder}", *(f"files {p}" for p in dump.nc),
                    "files 2"]:
        assert parse_files(ours[command]) == parse_files(theirs[command]), command
        assert ours[command] == theirs[command], command


def test_fileholder_files_are_the_real_ones(both) -> None:  # noqa: ANN001
    """What fileholder.c opens, in order: the test can fail on kdx alone."""
    dump, ours, _ = both
    parsed = parse_files(ours[f"files {dump.fileholder}"])
    assert parsed["root"] == "ROOT: /    CWD: /tmp/"
    by_fd = {int(fd): (kind, path) for fd, _, _, _, kind, path in parsed["fds"]}
    assert by_fd[3] == ("REG", "/proc/version")
    assert by_fd[4] == ("REG", "/tmp/kdx-fileholder.txt")
    assert by_fd[5] == ("CHR", "/dev/null")
    assert by_fd[6][0] == by_fd[7][0] == "FIFO"
    assert by_fd[8] == ("REG", "/mnt/scratch/notes.txt")
    pipe = [row for row in parsed["fds"] if row[4] == "FIFO" and int(row[0]) in (6, 7)]
    assert pipe[0][2:4] == pipe[1][2:4]  # both ends: one dentry, one inode


def test_nc_holds_a_tcp_socket(both) -> None:  # noqa: ANN001
    dump, ours, _ = both
    sockets = [row for pid in dump.nc for row in parse_files(ours[f"files {pid}"])["fds"]
               if row[4] == "SOCK"]
    assert sockets and all(row[5].startswith("TCP") for row in sockets)


def test_files_dentry_matches_crash(dump, crash) -> None:  # noqa: ANN001
    """``files -d`` for a regular file, a pipe and a socket of the lab's tasks."""
    out = io.StringIO()
    session = Session(dump.target, out=out, json=True)
    assert session.execute(f"files {dump.fileholder} {dump.nc[0]} {dump.nc[1]}")
    records = json.loads(out.getvalue())["data"]
    dentries = []
    for record in records:
        for entry in record["files"]:
            if entry["type"] in ("REG", "FIFO", "SOCK") and int(entry["dentry"], 16):
                dentries.append(entry["dentry"][2:])
    dentries = sorted(set(dentries))
    commands = [f"files -d {d}" for d in dentries]
    theirs = crash_parts(crash, dump.lab, commands)
    run = kdx_sections(dump.target, commands)
    assert not run.failed, run.stderr
    assert run.parts == theirs
    text = "\n".join(run.parts)
    assert "SOCK TCP" in text and " FIFO" in text


# -- vm ---------------------------------------------------------------------------------

_VMA_LINE = re.compile(r"^([0-9a-f]{16}) +([0-9a-f]+) +([0-9a-f]+) +([0-9a-f]+) ?(.*)$")


def parse_vmas(text: str) -> list[tuple[str, ...]]:
    return [m.groups() for m in map(_VMA_LINE.match, text.splitlines()) if m]


def test_vm_matches_crash(both) -> None:  # noqa: ANN001
    dump, ours, theirs = both
    for command in [f"vm {dump.fileholder}", f"vm {dump.nc[0]}", "vm 2"]:
        assert ours[command] == theirs[command], command
    vmas = parse_vmas(ours[f"vm {dump.fileholder}"])
    assert vmas == parse_vmas(theirs[f"vm {dump.fileholder}"])
    files = {v[4] for v in vmas}
    assert "/lab/bin/fileholder" in files and "" in files  # its binary, and anonymous memory
    starts = [int(v[1], 16) for v in vmas]
    assert starts == sorted(starts)


def test_vm_of_a_kernel_thread_is_crash_zeros(both) -> None:  # noqa: ANN001
    _, ours, _ = both
    lines = ours["vm 2"].splitlines()
    assert lines[1].split() == ["MM", "PGD", "RSS", "TOTAL_VM"]
    assert lines[2].split() == ["0", "0", "0k", "0k"]
    assert len(lines) == 3


def test_vm_physical_pages_match_crash(both) -> None:  # noqa: ANN001
    """Every page translation, file offset and hole of fileholder's address space."""
    dump, ours, theirs = both
    command = f"vm -p {dump.fileholder}"
    assert ours[command] == theirs[command]
    assert re.search(r"^[0-9a-f]+ +[0-9a-f]+$", ours[command], re.M)  # resident pages
    assert "(not mapped)" in ours[command]
    err = io.StringIO()
    session = Session(dump.target, out=io.StringIO(), err=err)
    assert session.execute(command)
    assert dump.target.dump.dump_level == 31
    assert err.getvalue().count("\n") == 1
    assert "user pages are excluded from this dump (dump level 31)" in err.getvalue()


def test_vm_mm_struct_matches_crash(both) -> None:  # noqa: ANN001
    """``vm -m``: the whole mm_struct in gdb's layout, several hundred lines."""
    dump, ours, theirs = both
    command = f"vm -m {dump.fileholder}"
    assert ours[command].count("\n") > 100
    assert ours[command] == theirs[command]


# -- kmem -i ----------------------------------------------------------------------------

_KMEMINFO_ROW = re.compile(r"^ *([A-Z][A-Z ]+?) +(\d+) +(\S+(?: [KMG]B)?) ")


def parse_kmeminfo(text: str) -> dict[str, tuple[int, str]]:
    rows = {}
    for line in text.splitlines():
        found = _KMEMINFO_ROW.match(line + " ")
        if found:
            rows[found.group(1)] = (int(found.group(2)), found.group(3))
    return rows


def test_kmem_i_pages_match_crash(both) -> None:  # noqa: ANN001
    dump, ours, theirs = both
    mine, crash_rows = parse_kmeminfo(ours["kmem -i"]), parse_kmeminfo(theirs["kmem -i"])
    expected = {"TOTAL MEM", "FREE", "USED", "SHARED", "BUFFERS", "CACHED", "SLAB",
                "TOTAL HUGE", "HUGE FREE", "TOTAL SWAP", "SWAP USED", "SWAP FREE",
                "COMMIT LIMIT", "COMMITTED"}
    assert set(mine) == set(crash_rows) == expected
    for row in expected - {"COMMITTED"}:
        assert mine[row] == crash_rows[row], row
    by_label = {m.group(1): line for line in ours["kmem -i"].splitlines()
                if (m := _KMEMINFO_ROW.match(line + " "))}
    crash_by_label = {m.group(1): line for line in theirs["kmem -i"].splitlines()
                      if (m := _KMEMINFO_ROW.match(line + " "))}
    for row in ("TOTAL MEM", "FREE", "USED", "SHARED", "CACHED", "SLAB", "COMMIT LIMIT"):
        assert by_label[row] == crash_by_label[row], row  # sizes, percentages, layout


def test_kmem_i_committed_is_the_kernels_figure(both) -> None:  # noqa: ANN001
    """crash shows vm_committed_as's global count, which leaves out what each CPU has
    not yet folded in; kdx shows the sum the kernel itself reports (Committed_AS)."""
    dump, ours, theirs = both
    prog = dump.target.prog
    counter = prog["vm_committed_as"].count.value_()
    assert parse_kmeminfo(theirs["kmem -i"])["COMMITTED"][0] == max(counter, 0)
    assert parse_kmeminfo(ours["kmem -i"])["COMMITTED"][0] == vm_memory_committed(prog)


def test_memory_figures_are_consistent(dump) -> None:  # noqa: ANN001
    figures = memory_figures(dump.target.prog)
    assert 0 < figures.free_pages < figures.total_pages
    assert figures.used_pages == figures.total_pages - figures.free_pages
    assert figures.slab_pages and figures.cached_pages and figures.shared_pages
    assert figures.page_size == 4096
    # 512 MB guest minus the 160 MB crash kernel reservation and firmware
    assert 250 << 20 < figures.total_pages * figures.page_size < 512 << 20


def test_pages_to_size_rules() -> None:
    assert pages_to_size(0, 4096) == "0"
    assert pages_to_size(79041, 4096) == "308.8 MB"
    assert pages_to_size(13568, 4096) == "53 MB"  # ".0" dropped
    assert pages_to_size(192, 4096) == "768 KB"
    assert pages_to_size(1 << 18, 4096) == "1 GB"


# -- kmem -s ----------------------------------------------------------------------------


def test_kmem_s_matches_crash(both) -> None:  # noqa: ANN001
    """Every slab cache: address, object size, allocated, total, slabs, slab size."""
    _, ours, theirs = both
    assert ours["kmem -s"].splitlines() == theirs["kmem -s"].splitlines()
    names = [line.split()[-1] for line in ours["kmem -s"].splitlines()[1:]]
    assert {"task_struct", "dentry", "kmalloc-64", "mm_struct"} <= set(names)
    for command in ("kmem -s dentry", "kmem -s task_struct"):
        assert ours[command] == theirs[command]
        rows = ours[command].splitlines()
        assert len(rows) == 2 and rows[1].endswith(command.split()[-1])


def test_kmem_s_counts_remote_frees_as_free(dump) -> None:  # noqa: ANN001
    """ALLOCATED agrees with the objects drgn finds allocated one by one (which is what
    crash counts), not with drgn 0.3.0's slab_cache_usage (see model.memory)."""
    from drgn.helpers.linux.slab import (
        find_slab_cache,
        slab_cache_for_each_allocated_object,
    )

    from kdx.model.memory import slab_cache_record

    prog = dump.target.prog
    for name in ("task_struct", "filp"):
        cache = find_slab_cache(prog, name)
        record = slab_cache_record(cache, 4096)
        assert record.allocated == sum(
            1 for _ in slab_cache_for_each_allocated_object(cache, "void"))


# -- kmem ADDR --------------------------------------------------------------------------


def test_kmem_address_of_a_task_matches_crash(dump, crash) -> None:  # noqa: ANN001
    """A task_struct is a slab object: cache, slab, object, task, page, as crash."""
    prog = dump.target.prog
    task = next(t for t in for_each_task(prog) if t.pid.value_() == dump.fileholder)
    mm = task.mm.value_()
    commands = [f"kmem {task.value_():x}", f"kmem {mm:x}"]
    theirs = crash_parts(crash, dump.lab, commands)
    ours = kdx_sections(dump.target, commands)
    assert not ours.failed, ours.stderr
    assert ours.parts == theirs
    assert f"[{task.value_():x}]" in ours.parts[0]
    assert 'COMMAND: "fileholder"' in ours.parts[0]


def test_kmem_address_outside_memory_is_one_line(dump) -> None:  # noqa: ANN001
    out = io.StringIO()
    session = Session(dump.target, out=out)
    assert session.execute("kmem ffffffffffff0000")
    assert out.getvalue().strip().endswith("address not found in mem map")


# -- JSON -------------------------------------------------------------------------------


def test_json_documents_parse(null_deref, kdx) -> None:  # noqa: ANN001
    proc = kdx(null_deref.vmcore, null_deref.vmlinux, "--json", "-c", "files", "-c", "vm",
               "-c", "kmem -i", "-c", "kmem -s task_struct", check=True)
    decoder = json.JSONDecoder()
    text, docs, pos = proc.stdout, [], 0
    while pos < len(text):
        while pos < len(text) and text[pos].isspace():
            pos += 1
        if pos == len(text):
            break
        doc, pos = decoder.raw_decode(text, pos)
        docs.append(doc)
    assert [d["kind"] for d in docs] == ["files", "vm", "kmem-i", "kmem-s"]
    files, vm, info, slabs = (d["data"] for d in docs)
    assert files[0]["task"]["pid"] == null_deref.truth["pid"]
    assert any(f["path"].endswith("hello_crash.ko") for f in files[0]["files"])
    assert vm[0]["vmas"] and int(vm[0]["mm"], 16) > 0
    assert info["total_pages"] > info["free_pages"] > 0
    assert slabs[0]["name"] == "task_struct" and slabs[0]["allocated"] > 0


def test_bad_task_argument_is_one_line(dump) -> None:  # noqa: ANN001
    out, err = io.StringIO(), io.StringIO()
    session = Session(dump.target, out=out, err=err)
    assert not session.execute("files 99999")
    assert not session.execute("vm nosuchtask")
    assert err.getvalue().count("\n") == 2
    assert "invalid task or pid value: 99999" in err.getvalue()


def test_field_justification_follows_crash() -> None:
    assert field("FILE", 16, center=True, left=True) == "      FILE      "
    assert field("MAPPING", 16, center=True, right=True) == "     MAPPING    "
    assert field("0", 16, center=True, left=True) == "       0        "
    assert field("ff143b93deec20c0", 16, center=True) == "ff143b93deec20c0"


# -- files -c, -R, -p ---------------------------------------------------------------------


def _compare(dump: Scene, crash, wanted: list[str]) -> dict[str, str]:  # noqa: ANN001
    """Run ``wanted`` in both tools; each command's output, compared line by line
    (blank lines included, trailing blanks aside). Returns kdx's."""
    theirs = crash_parts(crash, dump.lab, wanted)
    ours = kdx_sections(dump.target, wanted).sections
    for command, oracle in zip(wanted, theirs):
        assert ours[command] == oracle, f"{command}:\n--- crash\n{oracle}\n--- kdx\n" \
            f"{ours[command]}"
    return ours


def _fileholder_file(dump: Scene, fd: int):  # noqa: ANN202
    from drgn.helpers.linux.pid import find_task

    return find_task(dump.target.prog, dump.fileholder).files.fdt.fd[fd]


def test_files_options_match_crash(dump, crash) -> None:  # noqa: ANN001
    fh = dump.fileholder
    file = _fileholder_file(dump, 4)
    inode = file.f_inode.value_()
    wanted = [f"files -c {fh}", "files -c", f"files -R REG {fh}", f"files -R 4 {fh}",
              f"files -R {file.value_():x} {fh}", f"files -R {inode:x} {fh}",
              f"files -R / {fh}", f"files -R null {fh}", f"files -R tmp {fh}",
              f"files -R 10 {fh}", f"files -c -R REG {fh}", f"files -R nosuch {fh}",
              f"files -R CHR 1 {fh}", f"files -p {inode:x}"]
    ours = _compare(dump, crash, wanted)
    cached = ours[f"files -c {fh}"].splitlines()
    assert cached[2].split() == ["FD", "INODE", "I_MAPPING", "NRPAGES", "TYPE", "PATH"]
    holder = next(line for line in cached if "kdx-fileholder.txt" in line)
    assert int(holder.split()[3]) >= 1  # the file's page is in the page cache
    assert [line.split()[0] for line in ours[f"files -R REG {fh}"].splitlines()[3:]] \
        == [line.split()[0] for line in cached[3:] if " REG " in line]
    pages = ours[f"files -p {inode:x}"].splitlines()
    assert pages[1].split() == [f"{inode:x}", holder.split()[3]]
    assert len(pages) == 4 + int(holder.split()[3])
    assert ours[f"files -R nosuch {fh}"] == ""


# -- vm -f, -v, -P, -M, -R -----------------------------------------------------------------


def test_vm_options_match_crash(dump, crash) -> None:  # noqa: ANN001
    from drgn.helpers.linux.pid import find_task

    from kdx.model.vm import task_vm

    fh = dump.fileholder
    vm = task_vm(find_task(dump.target.prog, fh))
    first, code, anon = vm.vmas[0], vm.vmas[1], next(v for v in vm.vmas if not v.file)
    page = f"{code.start + 0x1000:x}"
    wanted = ["vm -f 8100073", "vm -f 0", "vm -f c044411", "vm -f ffffffff", f"vm -v {fh}",
              f"vm -x -v {fh}", f"vm -P {first.address:x} {fh}", f"vm -P {anon.address:x} {fh}",
              f"vm -P 1234 {fh}", f"vm -M {vm.mm:x} 2", f"vm -M {vm.mm:x} {fh}",
              f"vm -R {first.start:x} {fh}", f"vm -R fileholder {fh}", f"vm -R {vm.mm:x} {fh}",
              f"vm -R {code.address:x} {fh}", f"vm -R {anon.flags:x} {fh}",
              f"vm -R nosuch {fh}", f"vm -R {page} 1 {fh}"]
    ours = _compare(dump, crash, wanted)
    assert ours["vm -f 8100073"].startswith("8100073: (READ|WRITE|MAYREAD|MAYWRITE|")
    structs = ours[f"vm -v {fh}"]
    assert structs.count("struct vm_area_struct {") == len(vm.vmas)
    assert f"vm_start = {first.start}," in structs
    assert f"vm_start = {first.start:#x}," in ours[f"vm -x -v {fh}"]
    single = ours[f"vm -P {first.address:x} {fh}"].splitlines()
    assert single[2].split()[:3] == [f"{first.address:x}", f"{first.start:x}",
                                     f"{first.end:x}"]
    assert ours[f"vm -P 1234 {fh}"].endswith("(not found)")
    # a kernel thread given the fileholder's mm_struct lists the fileholder's VMAs
    forced = ours[f"vm -M {vm.mm:x} 2"].splitlines()
    assert [line.split()[0] for line in forced[4:]] == [f"{v.address:x}" for v in vm.vmas]
    hit = ours[f"vm -R {page} 1 {fh}"]
    assert hit.count("VIRTUAL") == 2 and hit.count(f"\n{page} ") == 2
    assert ours[f"vm -R nosuch {fh}"] == ""


def test_struct_records_in_json(dump) -> None:  # noqa: ANN001
    """``vm -m``, ``vm -v``, ``foreach task -R`` and ``mach -c`` answer JSON with value
    trees that hold the dump's own values, not text."""
    from drgn.helpers.linux.pid import find_task

    from kdx.model.vm import task_vm

    prog = dump.target.prog
    task = find_task(prog, dump.fileholder)
    out = io.StringIO()
    session = Session(dump.target, out=out, json=True)
    for command in (f"vm -m {dump.fileholder}", f"vm -v {dump.fileholder}",
                    f"foreach {dump.fileholder} task -R pid,comm,nothing", "mach -c"):
        assert session.execute(command), command
    decoder = json.JSONDecoder()
    text, docs, pos = out.getvalue(), [], 0
    while text[pos:].strip():
        doc, end = decoder.raw_decode(text[pos:].lstrip())
        pos += len(text[pos:]) - len(text[pos:].lstrip()) + end
        docs.append(doc["data"])
    mm, vmas, tasks, cpus = docs
    assert mm[0]["pid"] == dump.fileholder and mm[0]["task"] == hex(task.value_())
    tree = mm[0]["values"][0]
    assert tree["type"] == "struct mm_struct" and tree["address"] == hex(task.mm.value_())
    assert "text" not in mm[0]
    expected = [hex(v.address) for v in task_vm(task).vmas]
    assert len(expected) > 3
    assert [v["address"] for v in vmas[0]["values"]] == expected
    assert {v["type"] for v in vmas[0]["values"]} == {"struct vm_area_struct"}
    members = {m["path"]: m for m in tasks[0]["members"]}
    assert members["pid"]["value"]["value"] == dump.fileholder
    assert members["comm"]["value"]["data"].rstrip("\0") == "fileholder"
    assert members["nothing"]["value"] is None and members["nothing"]["error"]
    assert [c["cpu"] for c in cpus] == list(range(len(cpus)))
    assert all(c["value"]["type"] == "struct cpuinfo_x86" for c in cpus if c["value"])
