"""kdx analyze against the ground truth of every lab scenario, on both kernels."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest
from json_schemas import schema_problems

from kdx.diagnosis.analyze import analyze, decode_page_fault
from kdx.diagnosis.rules import CATEGORIES
from kdx.diagnosis.signature import make_signature, normalise_function, normalise_title
from kdx.lab import scenarios
from kdx.target.open import open_dump


@pytest.mark.parametrize("kernel", ["6.1", "6.12"])
@pytest.mark.parametrize("name", list(scenarios.SCENARIOS))
def test_verdict_matches_ground_truth(lab, name, kernel):
    dump = lab(name, kernel=kernel)
    truth = dump.truth
    verdict = dump.verdict
    assert verdict.category == truth["category"]
    assert verdict.category in CATEGORIES
    assert verdict.culprit.function == truth["function"]
    assert verdict.culprit.module == truth["module"]
    if truth["source_file"]:
        assert Path(verdict.culprit.file).name == truth["source_file"]
        assert verdict.culprit.line == truth["source_line"]
    assert verdict.context.pid == truth["pid"]
    assert verdict.context.comm == truth["comm"]
    assert verdict.context.cpu == truth["cpu"]
    ids = {e.id for e in verdict.evidence}
    for claim in (verdict.culprit.evidence, verdict.context.evidence):
        assert set(claim) <= ids | {"source"}, claim


def test_null_deref_reasoning(null_deref):
    verdict = analyze(null_deref.target)
    assert verdict.signature.title == (
        "BUG: kernel NULL pointer dereference in hello_init [hello_crash]")
    assert verdict.context.fault_address == 0
    assert verdict.context.error_code_decoded == ["page not present", "write", "kernel mode"]
    assert not verdict.context.interrupt_context
    assert verdict.context.user_mode is False
    faulting = [i for i in verdict.culprit.disassembly if i.faulting]
    assert len(faulting) == 1 and faulting[0].address == verdict.culprit.address
    assert "accesses memory at 0x0" in verdict.culprit.reasoning
    assert "O: out-of-tree module" in verdict.culprit.module_taints
    src = verdict.culprit.source
    assert src is not None and "*p = 1" in src.lines[src.marked_line - src.first_line]


def test_irq_context_is_recognised(lab):
    verdict = analyze(lab("irq-context").target)
    assert verdict.context.interrupt_context
    assert verdict.culprit.function == "crashlab_timer_fn"


def test_hung_task_names_the_lock_and_its_owner(lab):
    verdict = analyze(lab("hung-task").target)
    assert verdict.details["blocked_task"]["comm"] == "crashlab_wait"
    assert verdict.details["lock_owner"]["comm"] == "crashlab_hold"
    assert verdict.details["lock"]["symbol"] == "crashlab_mutex"


def test_hung_task_reasoning_says_where_the_task_sleeps(lab):
    verdict = analyze(lab("hung-task").target)
    assert verdict.culprit.reasoning.startswith("the task sleeps in crashlab_wait_fn+0x")
    assert verdict.context.user_mode is False


def test_verdict_stack_is_the_bt_stack(null_deref, kdx, tmp_path):
    # One unwinder for bt and analyze: the same functions in the same order, here
    # through a module without debug info (the dump alone, away from its modules/
    # folder), which needs the module's in-memory ORC.
    alone = tmp_path / "vmcore"
    alone.symlink_to(null_deref.vmcore)
    target = open_dump(alone, null_deref.vmlinux)
    assert "hello_crash" in target.missing_modules
    verdict = analyze(target)
    lines = next(e.lines for e in verdict.evidence if e.id == "stack-panic-task")
    analyzed = [line.split()[1].split("+")[0] for line in lines]
    proc = kdx(alone, null_deref.vmlinux, "--json", "-c", "bt")
    assert schema_problems(proc.stdout) == []
    frames = json.loads(proc.stdout)["data"][0]["frames"]
    assert analyzed == [f["function"] for f in frames][:len(analyzed)]
    assert analyzed[analyzed.index("hello_init"):][:4] == [
        "hello_init", "do_one_initcall", "do_init_module", "__do_sys_finit_module"]


def test_oom_lists_the_memory_hog(lab):
    verdict = analyze(lab("oom").target)
    assert verdict.details["top_memory_users"][0]["comm"] == "memhog"


def test_signature_is_stable_across_boots_and_formats(lab):
    # Two separate boots (different KASLR offsets), two capture formats: one bug.
    first = analyze(lab("sysrq").target)
    second = analyze(lab("sysrq", fmt="kdump-lzo").target)
    third = analyze(lab("sysrq", capture="qemu", fmt="elf").target)
    assert first.signature == second.signature == third.signature
    other = analyze(lab("gpf").target)
    assert other.signature.hash != first.signature.hash


def test_signature_normalisation():
    assert normalise_function("crashlab_average.constprop.0") == "crashlab_average"
    assert normalise_function("foo.isra.0.cold") == "foo"
    assert normalise_title("soft lockup - CPU#1 stuck for 22s! at 0xffffffff81000000") == (
        "soft lockup - CPU stuck for NUMs! at ADDR")
    a = make_signature("bug", "t", ["panic", "oops_end", "foo.isra.0", "bar+0x10"], "m")
    b = make_signature("bug", "t", ["__crash_kexec", "foo", "bar+0x10"], "m")
    assert a.hash == b.hash and a.frames[0] == "foo"


def test_page_fault_error_codes():
    assert decode_page_fault(0x2) == ["page not present", "write", "kernel mode"]
    assert decode_page_fault(0x15) == ["protection violation", "read", "user mode",
                                       "instruction fetch"]


def test_cli_outputs(kdx, null_deref, tmp_path):
    proc = kdx("analyze", null_deref.vmcore, "--json", check=True)
    assert schema_problems(proc.stdout) == []
    doc = json.loads(proc.stdout)["data"]
    for key in ("category", "culprit", "context", "evidence", "signature"):
        assert key in doc
    assert set(doc["culprit"]) >= {"function", "offset", "module", "file", "line"}
    assert doc["signature"]["title"].startswith("BUG: kernel NULL pointer dereference")
    md = kdx("analyze", null_deref.vmcore, "--markdown", check=True).stdout
    assert md.startswith("# BUG: kernel NULL pointer dereference in hello_init")
    text = kdx("analyze", null_deref.vmcore, check=True).stdout
    assert "hello-crash.c:21" in text or "hello-crash.c" in text
    assert max(len(line) for line in text.splitlines()[:20]) < 200


def test_html_report_renders_in_chromium(kdx, null_deref, tmp_path):
    browser = shutil.which("chromium") or shutil.which("chromium-browser")
    if browser is None:
        pytest.skip("chromium is not installed (scripts/setup installs it)")
    page = tmp_path / "report.html"
    page.write_text(kdx("analyze", null_deref.vmcore, "--html", check=True).stdout)
    shot = tmp_path / "shot.png"
    flags = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
             "--disable-component-update", "--disable-sync", "--no-first-run",
             f"--user-data-dir={tmp_path / 'profile'}"]
    dom = subprocess.run([browser, *flags, "--dump-dom", page.as_uri()], capture_output=True,
                         text=True, timeout=120)
    assert "hello_init" in dom.stdout and "<svg" in dom.stdout
    subprocess.run([browser, *flags, f"--screenshot={shot}", "--window-size=1000,1400",
                    page.as_uri()], capture_output=True, timeout=120)
    assert shot.exists() and shot.stat().st_size > 10_000


def test_without_module_debug_info_same_culprit_and_signature(null_deref, tmp_path):
    alone = tmp_path / "vmcore"  # no modules/ directory beside it
    alone.symlink_to(null_deref.vmcore)
    bare = analyze(open_dump(alone, null_deref.vmlinux))
    full = analyze(null_deref.target)
    assert bare.culprit.function == "hello_init" and bare.culprit.module == "hello_crash"
    assert bare.culprit.line is None
    assert bare.signature == full.signature
    assert any("hello_crash" in w for w in bare.warnings)


@pytest.mark.parametrize(("capture", "fmt"), [("qemu", "elf"), ("kdump", "elf")])
def test_verdict_is_the_same_for_other_capture_methods(lab, null_deref, capture, fmt):
    dump = lab("null-deref-module", capture=capture, fmt=fmt)
    verdict = analyze(open_dump(dump.vmcore))
    reference = analyze(open_dump(null_deref.vmcore))
    assert verdict.category == "null-pointer-dereference"
    assert (verdict.culprit.function, verdict.culprit.line) == ("hello_init",
                                                                dump.truth["source_line"])
    assert verdict.context.pid == dump.truth["pid"]
    assert verdict.signature == reference.signature


#: The bug classes of the diagnosis issue, each also taken by QEMU's dump-guest-memory.
QEMU_TAKEN = ("use-after-free", "double-free", "list-corruption", "refcount-underflow",
              "abba-deadlock", "rcu-stall", "stack-protector", "invalid-opcode")


@pytest.mark.parametrize("name", QEMU_TAKEN)
def test_qemu_capture_gives_the_kdump_verdict(lab, name):
    """No kdump path on the stack, other CPUs stopped where they were: the same verdict,
    culprit line and signature as the kdump capture of the same bug."""
    taken = lab(name, capture="qemu", fmt="elf")
    verdict, reference = taken.verdict, lab(name).verdict
    assert verdict.category == reference.category == taken.truth["category"]
    assert (verdict.culprit.function, verdict.culprit.line) == (
        taken.truth["function"], taken.truth["source_line"])
    assert verdict.signature.hash == reference.signature.hash


def test_verdict_memory_is_kmem_i(null_deref, crash):
    """The report's memory figures come from the model that ``kmem -i`` prints, so the
    two agree to the page, and with crash's ``kmem -i`` (the lab guest has 79,041 pages;
    how many are free differs a little from boot to boot)."""
    from test_files_vm_kmem import parse_kmeminfo

    from kdx.model.memory import memory_figures

    crash_rows = parse_kmeminfo(crash(null_deref, ["kmem -i"]))
    target = null_deref.target
    memory = analyze(target).details["memory"]
    figures = memory_figures(target.prog)
    kib = figures.page_size // 1024
    assert memory["total"] == figures.total_pages * kib == 79041 * 4
    assert memory["free"] == figures.free_pages * kib == crash_rows["FREE"][0] * kib
    assert memory["cached"] == figures.cached_pages * kib
    assert memory["buffers"] == figures.buffer_pages * kib
    assert memory["slab"] == figures.slab_pages * kib
    assert sum(v for k, v in memory.items() if k != "total") == memory["total"]


def test_verdict_panic_message_is_the_sys_panic_line(lab):
    """A 6.1 general protection fault taken by kdump before panic(): the verdict and
    ``sys`` name the same oops line (crash 8.0.6 would show none)."""
    from kdx.model.system import system_info

    dump = lab("gpf")
    target = dump.target
    verdict = analyze(target)
    assert verdict.context.panic_message == system_info(target).panic == \
        dump.truth["panic_message"]
    assert verdict.context.panic_message.startswith("general protection fault, probably")
    assert "O: out-of-tree module" in verdict.context.taint_flags
