"""The lab's third kernel: Debian sid's newest (7.x), crashed and captured with sid's tools.

No crash release reads these dumps (sid's crash 9.0.2 refuses 7.2: "invalid structure
member offset: module_num_gpl_syms"), so the oracles are the lab's ground truth (read from
the guest's console) and drgn's reading of the vmlinux DWARF. Each dump is also opened
without its vmlinux (kallsyms, BTF and ORC from the dump): same verdict, same signature.
"""

from __future__ import annotations

import json
import os
import re
from pathlib import Path

import pytest
from conftest import LabDump
from drgn import offsetof
from test_no_vmlinux import open_without_debug_package

from kdx import Dump
from kdx.errors import KdxError
from kdx.lab import filterfix
from kdx.lab.cache import default_cache
from kdx.lab.kernels import SUITE_OF_SPEC, Kernel, resolve_release, suite_of
from kdx.lab.roots import ensure_root
from kdx.target.debuginfo import DEBUG_DIRS_ENV

SCENARIOS = ["sysrq", "null-deref-module", "warn", "oom"]
#: A frame each scenario's panic-task stack must show (``bt`` or ``bt -t`` text).
FRAMES = {
    "sysrq": re.compile(r"#\d+ \[[0-9a-f]+\] sysrq_handle_crash at [0-9a-f]+\n"),
    "null-deref-module": re.compile(r"\] hello_init at [0-9a-f]+ \[hello_crash\]"),
    "warn": re.compile(r"\] crashlab_check_budget at [0-9a-f]+ \[crashlab_warn\]"),
    "oom": re.compile(r"#\d+ \[[0-9a-f]+\] out_of_memory(?:\.cold)? at [0-9a-f]+\n"),
}
#: What the guest's /init starts before the scenario (guest/init.sh, live_in).
GUEST_PROCESSES = {"spinner", "fileholder", "nc", "cat", "sleep"}

_without: dict[Path, Dump] = {}


@pytest.fixture(scope="module", params=SCENARIOS)
def sid(request: pytest.FixtureRequest, lab) -> LabDump:  # noqa: ANN001 (fixture)
    """Each scenario's sid dump (kdump capture, kdump-zlib), built once and cached."""
    return lab(request.param, kernel="sid")


def _no_vmlinux(dump: LabDump) -> Dump:
    """``dump`` opened from what it carries itself (no debug package), once per run."""
    if dump.vmcore not in _without:
        _without[dump.vmcore] = open_without_debug_package(dump.vmcore)
    return _without[dump.vmcore]


def _verdict(dump: Dump) -> dict:
    data = dump.analyze().to_dict()
    culprit, context = data["culprit"], data["context"]
    return {"category": data["category"], "function": culprit["function"],
            "offset": culprit["offset"], "module": culprit["module"],
            "signature": data["signature"], "pid": context["pid"],
            "comm": context["comm"], "cpu": context["cpu"]}


def test_the_kernel_is_sids(sid: LabDump) -> None:
    release = sid.truth["release"]
    assert suite_of(release) == "sid"
    assert int(release.split(".")[0]) >= 7
    assert release == resolve_release("sid")
    kernel = Kernel(release, default_cache() / "kernels" / release)
    # sid's linux-binary package keeps the image beside the modules, not in /boot.
    assert kernel.vmlinuz == kernel.root / "usr/lib/modules" / release / "vmlinuz"
    assert kernel.vmlinuz.stat().st_size > 1 << 20
    assert sid.vmlinux.resolve() == kernel.vmlinux.resolve()


def test_ps_names_the_panic_task(sid: LabDump) -> None:
    out = sid.opened.run("ps")
    assert out.ok, out.text
    # ">" marks the task running on each CPU; the panic task is one of them.
    active = {int(row[1]): row for row in map(str.split, out.text.splitlines())
              if row[0] == ">"}
    pid, cpu, comm = sid.truth["pid"], sid.truth["cpu"], sid.truth["comm"]
    assert [int(active[pid][3]), active[pid][-1]] == [cpu, comm]


def test_bt_names_the_panic_task_and_its_frames(sid: LabDump) -> None:
    text = sid.opened.run("bt").text + sid.opened.run("bt -t").text
    truth = sid.truth
    header = f'PID: {truth["pid"]:<7}  TASK: '
    assert text.startswith(header), text[:80]
    assert re.match(rf'.*CPU: {truth["cpu"]}\s+COMMAND: "{truth["comm"]}"\n', text)
    assert FRAMES[truth["scenario"]].search(text), text


def test_log_has_the_panic_message(sid: LabDump) -> None:
    message = sid.truth["panic_message"]
    assert message
    assert message in sid.opened.run("log").text


def test_verdict_matches_the_truth(sid: LabDump) -> None:
    verdict, truth = _verdict(sid.opened), sid.truth
    assert verdict["category"] == truth["category"]
    assert verdict["function"] == truth["function"]
    assert verdict["module"] == truth["module"]
    assert [verdict["pid"], verdict["comm"], verdict["cpu"]] == [
        truth["pid"], truth["comm"], truth["cpu"]]
    if truth["source_file"]:
        culprit = sid.opened.analyze().culprit
        assert [Path(culprit.file).name, culprit.line] == [
            truth["source_file"], truth["source_line"]]


def test_no_vmlinux_gives_the_same_verdict(sid: LabDump) -> None:
    without = _no_vmlinux(sid)
    assert without.target.vmlinux is None
    assert _verdict(without) == _verdict(sid.opened)


def test_cli_no_vmlinux_verdict_and_signature(lab, kdx) -> None:  # noqa: ANN001
    dump = lab("null-deref-module", kernel="sid")
    saved = os.environ.pop(DEBUG_DIRS_ENV, None)  # a user without the debug package
    try:
        proc = kdx("analyze", dump.vmcore, "--no-vmlinux", "--json", check=True)
    finally:
        if saved is not None:
            os.environ[DEBUG_DIRS_ENV] = saved
    data = json.loads(proc.stdout)["data"]
    expected = _verdict(dump.opened)
    assert data["category"] == expected["category"] == "null-pointer-dereference"
    assert data["culprit"]["function"] == "hello_init"
    assert data["culprit"]["module"] == "hello_crash"
    assert data["signature"] == expected["signature"]


def test_the_filtered_dump_keeps_every_task(lab) -> None:  # noqa: ANN001
    # makedumpfile 1.7.8 without the lab's compound_info fix drops the task list's pages
    # on 7.x: ps then fails ("Excluded page") and sys counts 0 tasks.
    dump = lab("sysrq", kernel="sid")
    ps = dump.opened.run("ps")
    assert ps.ok, ps.text
    rows = [line.split() for line in ps.text.splitlines()[1:]]
    assert {row[-1] for row in rows} >= GUEST_PROCESSES
    tasks = re.search(r"TASKS: (\d+)", dump.opened.run("sys").text)
    assert tasks and int(tasks.group(1)) == len(rows) > 50


def test_compound_info_offset_is_dwarfs(lab, null_deref_612) -> None:  # noqa: ANN001
    dump = lab("sysrq", kernel="sid")
    page = dump.target.prog.type("struct page")
    assert filterfix.compound_info_offset(dump.vmlinux) == offsetof(page, "compound_info")
    # Before 7.1 the member is compound_head: no fix is needed.
    assert filterfix.compound_info_offset(null_deref_612.vmlinux) is None


def test_the_fix_is_given_only_to_a_makedumpfile_that_needs_it(lab, tmp_path) -> None:  # noqa: ANN001
    dump = lab("sysrq", kernel="sid")
    release = dump.truth["release"]
    kernel = Kernel(release, default_cache() / "kernels" / release)
    sids = default_cache() / "sid-root/usr/bin/makedumpfile"
    fixed = tmp_path / "makedumpfile"
    fixed.write_bytes(sids.read_bytes() + b"OFFSET(page.compound_info)=\0")
    assert filterfix.compound_head_fix(kernel, fixed) is None
    fix = filterfix.compound_head_fix(kernel, sids)
    if fix is None:  # sid's makedumpfile learnt compound_info: nothing to fix any more
        assert filterfix.knows_compound_info(sids)
        return
    offset = filterfix.compound_info_offset(kernel.vmlinux)
    assert fix.splitlines() == [f"OSRELEASE={release}", "PAGESIZE=4096",
                                f"OFFSET(page.compound_head)={offset}"]
    console = (dump.dir / "console.log").read_text()
    assert f"makedumpfile -F -c -i {filterfix.GUEST_PATH} -d 31" in console


def test_kernel_names() -> None:
    assert suite_of("6.1.0-57-cloud-amd64") == "bookworm"
    assert suite_of("6.12.117+deb13-cloud-amd64") == "trixie"
    assert suite_of("7.2.13+deb14-cloud-amd64") == "sid"
    assert {SUITE_OF_SPEC[s] for s in ("7", "sid", "unstable")} == {"sid"}


def test_unknown_kernel_is_one_line(kdx) -> None:  # noqa: ANN001
    proc = kdx("lab", "run", "sysrq", "--kernel", "8")
    assert proc.returncode != 0
    assert proc.stderr.strip().splitlines() == [
        "kdx: error: unknown kernel '8': give 6.1, 6.12, 7, bookworm, trixie, sid or a "
        "release such as 6.1.0-56-cloud-amd64"]


def test_unknown_root_is_one_sentence(tmp_path: Path) -> None:
    with pytest.raises(KdxError) as err:
        ensure_root(tmp_path, "buster")
    assert str(err.value) == "the lab has no 'buster' root: use one of trixie, sid"
    assert not list(tmp_path.iterdir())
