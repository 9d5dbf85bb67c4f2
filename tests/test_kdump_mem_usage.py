"""``kdx kdump mem-usage`` against what the real makedumpfile did to the same memory.

The lab's 6.1 dump was written by makedumpfile -d 31 in the capture kernel, from the
same struct pages kdx reads in the dump. Its first bitmap is the set of pages on the
system, its second the pages it kept (zero pages stay in, pointing at one shared zero
block), so kdx's classes must reproduce both bitmaps and the zero-block references
exactly.
"""

from __future__ import annotations

import json
import struct
from collections import Counter

import pytest

from kdx.capture.memusage import classify, mem_usage, render_mem_usage
from kdx.target.open import open_dump


def _bitmaps(vmcore):
    """(pfns on the system, pfns dumped, zero pages) from a kdump-compressed file."""
    with open(vmcore, "rb") as f:
        head = f.read(464)
        block, sub_blocks, bitmap_blocks = struct.unpack_from("<iii", head, 428)
        f.seek((1 + sub_blocks) * block)
        raw = f.read(bitmap_blocks * block)
        half = len(raw) // 2

        def pfns(bits: bytes) -> set[int]:
            return {i * 8 + b for i, byte in enumerate(bits) if byte
                    for b in range(8) if byte >> b & 1}

        first, second = pfns(raw[:half]), pfns(raw[half:])
        f.seek((1 + sub_blocks + bitmap_blocks) * block)
        descs = f.read(24 * len(second))
    offsets = Counter(struct.unpack_from("<q", descs, i * 24)[0] for i in range(len(second)))
    zero_refs = offsets[min(offsets)]  # makedumpfile writes the shared zero page first
    return first, second, zero_refs


@pytest.fixture(scope="module")
def target61(null_deref):
    return open_dump(null_deref.vmcore, null_deref.vmlinux)


def test_classes_match_makedumpfile_page_for_page(null_deref, target61):
    first, second, zero_refs = _bitmaps(null_deref.vmcore)
    counts, kept, total = classify(target61)
    assert total == len(first) == 89973
    pfns = {first_pfn + k for first_pfn, count in kept for k in range(count)}
    assert pfns == second                         # the very pages makedumpfile kept
    assert sum(counts.values()) == len(first) - len(second)
    usage = mem_usage(target61, str(null_deref.vmcore))
    assert usage.zero == zero_refs == 3014
    assert (usage.free, usage.non_pri_cache, usage.pri_cache, usage.user) == \
        (65473, 6370, 0, 193)
    assert usage.kern_data == len(second) - zero_refs
    assert usage.unreadable == 0


def test_cli_table_and_json(kdx, null_deref):
    out = kdx("kdump", "mem-usage", null_deref.vmcore, null_deref.vmlinux, check=True).stdout
    lines = out.splitlines()
    assert "TYPE\t\tPAGES\t\t\tEXCLUDABLE\tDESCRIPTION" in lines
    assert any(line.startswith("FREE\t\t65473 ") for line in lines)
    assert any(line.startswith("KERN_DATA\t14923 ") for line in lines)
    assert "Total pages on system:\t89973           " in lines
    data = json.loads(kdx("kdump", "mem-usage", null_deref.vmcore, "--json",
                          check=True).stdout)["data"]
    assert data["total_pages"] == 89973 and data["zero"] == 3014


def test_6_12_totals(lab):
    """On 6.12 the lab's makedumpfile 1.7.2 could not filter ("kernel version is not
    supported"), so only the page total is comparable; the classes still add up."""
    dump = lab("null-deref-module", kernel="6.12")
    first, _, _ = _bitmaps(dump.vmcore)
    usage = mem_usage(open_dump(dump.vmcore, dump.vmlinux), str(dump.vmcore))
    assert usage.total_pages == len(first)
    assert usage.free > usage.total_pages // 2     # a freshly booted 512 MB guest
    assert usage.kern_data + usage.excluded == usage.total_pages
    assert "Total pages on system:" in render_mem_usage(usage)
