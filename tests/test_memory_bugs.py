"""The memory-bug scenarios: what ``kdx analyze`` says beyond the culprit (test_analyze
checks category, culprit, module and line for every scenario).

The facts are the scenario modules' own C: crashlab_uaf allocates an item in
crashlab_item_new, frees it in crashlab_item_release and then reads ``item->peer->value``
from the poisoned object; crashlab_dfree kfree()s a buffer twice; crashlab_list
list_del()s one node twice; crashlab_refcount drops a reference it never took.
"""

from __future__ import annotations

import json
import re

import pytest
from json_schemas import schema_problems
from test_no_vmlinux import open_without_debug_package

from kdx.diagnosis.checkers import checker_of, first_outside
from kdx.render.report import render_html, render_markdown, render_text

KERNELS = ["6.1", "6.12"]

#: scenario -> (the checker function the CPU stops in, words of its finding).
CHECKED = {
    "refcount-underflow": ({"refcount_warn_saturate"},
                           "refcount_t underflow; use-after-free"),
    "list-corruption": ({"__list_del_entry_valid", "__list_del_entry_valid_or_report"},
                        "list_del corruption"),
    "double-free": ({"kfree", "__kmem_cache_free", "__slab_free", "do_slab_free"},
                    "freed twice"),
}


@pytest.mark.parametrize("kernel", KERNELS)
def test_use_after_free_names_poison_member_and_tracks(lab, kernel):
    dump = lab("use-after-free", kernel=kernel)
    explanation = dump.verdict.explanation
    assert explanation is not None
    assert (explanation.value_kind, explanation.value_name) == (
        "slab-free-poison", "slab poison POISON_FREE (0x6b bytes)")
    assert explanation.pointer == 0x6B6B6B6B6B6B6B6B
    assert (explanation.expression, explanation.member, explanation.struct) == (
        "item->peer->value", "value", "struct crashlab_peer")
    assert explanation.loaded_from == "item->peer"
    (holder,) = explanation.points_to
    assert holder.variable == "item"
    assert holder.what.startswith("crashlab_uaf object ") and holder.what.endswith(", free")
    alloc, free = holder.tracks
    assert (alloc.kind, free.kind) == ("alloc", "free")
    assert alloc.function.startswith("crashlab_item_new+0x")
    assert free.function.startswith("crashlab_item_release+0x")
    assert alloc.function.endswith("[crashlab_uaf]")
    for track in (alloc, free):
        # insmod allocated and freed it, pinned to CPU 1, moments before the oops
        assert (track.pid, track.cpu) == (dump.truth["pid"], 1)
        assert track.ago_seconds is not None and 0 <= track.ago_seconds < 5
        # the stack depot's chain (6.1 stores the free chain from the caller's caller)
        assert track.stack_note is None
        assert any(f.startswith("crashlab_uaf_init+0x") for f in track.stack)
    assert alloc.when <= free.when
    assert "freed by crashlab_item_release+0x" in explanation.text
    assert dump.verdict.checker is None  # the culprit faulted itself


@pytest.mark.parametrize("kernel", KERNELS)
@pytest.mark.parametrize("name", sorted(CHECKED))
def test_checker_fired_and_its_caller_is_blamed(lab, name, kernel):
    dump = lab(name, kernel=kernel)
    verdict = dump.verdict
    functions, finding = CHECKED[name]
    checker = verdict.checker
    assert checker is not None
    assert checker.function in functions
    assert finding in checker.finding
    assert checker.text == f"{checker.finding} detected by {checker.function}"
    assert verdict.culprit.function == dump.truth["function"]
    assert verdict.culprit.reasoning.startswith(f"{checker.function}, which checks for ")
    assert f"called from {dump.truth['function']}+0x" in verdict.culprit.reasoning
    assert "checker" in verdict.culprit.evidence
    assert verdict.signature.frames[0] == dump.truth["function"]
    assert verdict.signature.title.endswith(f" in {dump.truth['function']} "
                                            f"[{dump.truth['module']}]")
    assert verdict.explanation is None and verdict.context.fault_address is None


def test_checker_findings_in_their_own_words(lab):
    """The finding quotes the checker's report: which list entry, which poison."""
    refcount = lab("refcount-underflow").verdict.checker
    assert refcount.text == ("refcount_t underflow; use-after-free detected by "
                             "refcount_warn_saturate")
    listed = lab("list-corruption").verdict.checker
    assert "->next is LIST_POISON1 (dead000000000100)" in listed.finding
    # the entry it names: a 24-byte struct crashlab_node, kmalloc'd and never freed
    (entry,) = listed.points_to
    assert listed.finding.startswith(f"list_del corruption, {entry.address:x}->next")
    assert entry.what == f"kmalloc-32 object {entry.address:#x}, allocated"


@pytest.mark.parametrize("name", ["use-after-free", "refcount-underflow"])
def test_memory_facts_in_every_rendering(kdx, lab, name):
    dump = lab(name, kernel="6.12")
    verdict = dump.verdict
    wanted = ("freed by crashlab_item_release+0x" if name == "use-after-free"
              else "detected by refcount_warn_saturate")
    for render in (render_text, render_markdown, render_html):
        assert wanted in render(verdict).replace("\n               ", " "), render
    proc = kdx("analyze", dump.vmcore, "--json", check=True)
    assert schema_problems(proc.stdout) == []
    data = json.loads(proc.stdout)["data"]
    if name == "use-after-free":
        tracks = data["explanation"]["points_to"][0]["tracks"]
        assert [t["kind"] for t in tracks] == ["alloc", "free"]
        assert tracks[1]["function"].startswith("crashlab_item_release+0x")
        assert tracks[1]["caller"].startswith("0xffffffff")
    else:
        assert data["checker"]["function"] == "refcount_warn_saturate"
        assert data["culprit"]["function"] == "crashlab_session_put"


@pytest.mark.parametrize("name", ["use-after-free", "double-free", "list-corruption",
                                  "refcount-underflow"])
def test_without_vmlinux(lab, name):
    """kallsyms, BTF and ORC only: the same culprit, checker and slab tracks (no source
    lines, no DWARF variables, so no C expression)."""
    dump = lab(name, kernel="6.12")
    without = open_without_debug_package(dump.vmcore).analyze()
    full = dump.verdict
    assert (without.category, without.culprit.function, without.culprit.module) == (
        full.category, full.culprit.function, full.culprit.module)
    assert without.signature == full.signature
    if full.checker is not None:
        assert without.checker == full.checker
    else:
        explanation = without.explanation
        assert explanation is not None and explanation.value_kind == "slab-free-poison"
        # the module's .ko beside the dump still gives the member; BTF gives struct track
        assert explanation.member == "value"
        (holder,) = explanation.points_to
        assert [(t.kind, t.function, t.pid) for t in holder.tracks] == [
            (t.kind, t.function, t.pid) for t in full.explanation.points_to[0].tracks]


def test_first_caller_outside_a_checker():
    """The checker table decides: a checker's frames and generic reporting frames are
    passed over, a culprit that is no checker stays the culprit."""
    assert first_outside(["refcount_warn_saturate", "__warn", "crashlab_session_put",
                          "crashlab_refcount_init"]) == 2
    assert first_outside(["do_slab_free.isra.0", "kfree", "crashlab_drop_twice"]) == 2
    assert first_outside(["__list_del_entry_valid_or_report", "crashlab_forget"]) == 1
    assert first_outside(["crashlab_walk", "crashlab_gpf_init"]) is None
    assert first_outside(["kfree"]) is None  # nobody left to blame: the checker stays
    assert checker_of("crashlab_refcount_init") is None
    assert checker_of("refcount_warn_saturate").checks == "refcount_t misuse"


@pytest.mark.parametrize("name", sorted(CHECKED))
def test_checker_and_culprit_survive_a_qemu_capture(lab, name):
    """The same checker finding and blamed caller when QEMU took the dump."""
    taken, kdump = lab(name, capture="qemu", fmt="elf"), lab(name)
    assert taken.verdict.checker is not None
    def said(verdict):  # noqa: ANN001, ANN202 (the addresses differ from boot to boot)
        return verdict.checker.function, re.sub(r"\b[0-9a-f]{16}\b", "ADDR",
                                                verdict.checker.finding)

    assert said(taken.verdict) == said(kdump.verdict)
    assert taken.verdict.culprit.function == taken.truth["function"]


def test_use_after_free_facts_survive_a_qemu_capture(lab):
    explanation = lab("use-after-free", capture="qemu", fmt="elf").verdict.explanation
    assert explanation is not None and explanation.value_kind == "slab-free-poison"
    assert explanation.expression == "item->peer->value"
    alloc, free = explanation.points_to[0].tracks
    assert free.function.startswith("crashlab_item_release+0x")
