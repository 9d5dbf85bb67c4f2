"""The one taint decoder: the kernel's mask and each module's, in the kernel's bit order."""

from __future__ import annotations

from kdx.model.taint import TAINT_FLAGS, KernelTaint, describe_taints, taint_letters


def test_flags_follow_the_kernel_bit_order() -> None:
    assert "".join(f.letter for f in TAINT_FLAGS) == "PFSRMBUDAWCIOELKXTN"
    assert [f.bit for f in TAINT_FLAGS] == list(range(19))


def test_masks_decode_to_letters_and_words() -> None:
    # An out-of-tree, unsigned module that later oopsed: O (12), E (13), D (7).
    mask = 1 << 12 | 1 << 13 | 1 << 7
    assert taint_letters(mask) == "DOE"
    assert describe_taints(mask) == ["D: kernel died before", "O: out-of-tree module",
                                     "E: unsigned module"]
    assert taint_letters(0) == "" and describe_taints(0) == []
    assert describe_taints(1 << 40) == []  # a bit newer than this table is skipped


def test_kernel_taint_collapses_the_kernels_padding() -> None:
    taint = KernelTaint(1 << 12, "G           O      ")
    assert taint.letters == "G O"
    assert taint.describe() == ["O: out-of-tree module"]
