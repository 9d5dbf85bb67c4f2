"""The bad-access explanation of ``kdx analyze`` against what each lab scenario did.

The facts checked are the scenario module's own C: the gpf module follows a list_del()'d
entry's next pointer (LIST_POISON1) into ``next->value``; the timer module increments
through a NULL ``ctx->counter``; hello_crash writes through a NULL ``p``.
"""

from __future__ import annotations

import pytest

from kdx.diagnosis.badvalue import classify_value
from kdx.render.report import render_html, render_markdown, render_text

#: scenario -> the explanation fields its C source makes true.
EXPECTED = {
    "gpf": {"value_kind": "list-poison1", "expression": "next->value", "member": "value",
            "struct": "struct crashlab_entry", "offset": 0x10, "access": "read",
            "loaded_from": "entry->list.next", "pointer": 0xDEAD000000000100},
    "irq-context": {"value_kind": "null", "expression": "*ctx->counter", "access": "update",
                    "loaded_from": "ctx->counter", "pointer": 0, "offset": 0},
    "null-deref-module": {"value_kind": "null", "expression": "*p", "access": "write",
                          "pointer": 0, "loaded_from": None},
}


@pytest.mark.parametrize("kernel", ["6.1", "6.12"])
@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_explanation_names_the_bad_pointer(lab, name, kernel):
    explanation = lab(name, kernel=kernel).verdict.explanation
    assert explanation is not None
    for field, value in EXPECTED[name].items():
        assert getattr(explanation, field) == value, field


@pytest.mark.parametrize("kernel", ["6.1", "6.12"])
def test_list_poison_explanation_says_where_the_entry_lives(lab, kernel):
    verdict = lab("gpf", kernel=kernel).verdict
    (holder,) = verdict.explanation.points_to
    assert holder.variable == "entry"
    # the module kmallocs a 24-byte struct crashlab_entry: a kmalloc-32 object, still
    # allocated (the module frees it only after the walk)
    assert holder.what.startswith("kmalloc-32 object ") and holder.what.endswith("allocated")
    assert "LIST_POISON1 (0xdead000000000100)" in verdict.explanation.text
    for render in (render_text, render_markdown, render_html):
        assert "next-&gt;value" in render(verdict) if render is render_html \
            else "next->value" in render(verdict)


@pytest.mark.parametrize("name", ["warn", "bug-on", "divide-error", "sysrq"])
def test_no_fault_address_or_explanation_without_a_fault(lab, name):
    """A WARN, BUG or divide error leaves CR2 from an older fault: showing it as the fault
    address would mislead."""
    verdict = lab(name).verdict
    assert verdict.context.fault_address is None
    assert verdict.explanation is None
    assert "Fault address" not in render_text(verdict)


def test_fault_address_kept_for_faults(lab):
    assert lab("gpf").verdict.context.fault_address == 0xDEAD000000000110
    assert lab("null-deref-module").verdict.context.fault_address == 0


@pytest.mark.parametrize(("value", "kind"), [
    (0, "null"), (0x28, "near-null"), (0xDEAD000000000100, "list-poison1"),
    (0xDEAD000000000122, "list-poison2"), (0xDEAD000000000400, "poison-pointer"),
    (0x6B6B6B6B6B6B6B6B, "slab-free-poison"), (0x5A5A5A5A5A5A5A5A, "slab-uninit-poison"),
    (0xCCCCCCCCCCCCCCCC, "slab-red-zone"), (0xAAAAAAAAAAAAAAAA, "page-poison"),
    (0x0000800000000000, "non-canonical"), (0x00007FFD12345678, "user-address"),
    (0xFFFF888003A1C000, None), (0x6B6B6B6B6B6B6B00, "non-canonical"),
])
def test_classify_value(value, kind):
    assert classify_value(value)[0] == kind


def test_five_level_paging_widens_canonical_addresses():
    assert classify_value(0x0080000000000000)[0] == "non-canonical"
    assert classify_value(0x00FF000000000000, five_level=True)[0] == "user-address"
    assert classify_value(0x00FF000000000000)[0] == "non-canonical"
