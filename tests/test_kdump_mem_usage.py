"""``kdx kdump mem-usage`` against what the real makedumpfile did to the same memory.

The lab's 6.1 dump was written by makedumpfile -d 31 in the capture kernel, from the
same struct pages kdx reads in the dump. Its first bitmap is the set of pages on the
system, its second the pages it kept (zero pages stay in, pointing at one shared zero
block), so kdx's classes must reproduce both bitmaps and the zero-block references
exactly.
"""

from __future__ import annotations

import json
import re
import shutil
import struct
import subprocess
from collections import Counter
from pathlib import Path

import pytest

from kdx.capture.memusage import classify, mem_usage, render_mem_usage


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
    return null_deref.target


def test_classes_match_makedumpfile_page_for_page(null_deref, target61):
    first, second, zero_refs = _bitmaps(null_deref.vmcore)
    counts, kept, total = classify(target61)
    assert total == len(first) == 89973
    pfns = {first_pfn + k for first_pfn, count in kept for k in range(count)}
    assert pfns == second                         # the very pages makedumpfile kept
    assert sum(counts.values()) == len(first) - len(second)
    usage = mem_usage(target61, str(null_deref.vmcore))
    assert usage.zero == zero_refs > 1000
    assert usage.free > 60000 and usage.non_pri_cache > 1000  # a freshly booted guest
    assert usage.kern_data == len(second) - zero_refs
    assert usage.unreadable == 0


def test_cli_table_and_json(kdx, null_deref, target61):
    usage = mem_usage(target61, str(null_deref.vmcore))  # checked against makedumpfile
    out = kdx("kdump", "mem-usage", null_deref.vmcore, null_deref.vmlinux, check=True).stdout
    lines = out.splitlines()
    assert "TYPE\t\tPAGES\t\t\tEXCLUDABLE\tDESCRIPTION" in lines
    assert any(line.startswith(f"FREE\t\t{usage.free} ") for line in lines)
    assert any(line.startswith(f"KERN_DATA\t{usage.kern_data} ") for line in lines)
    assert "Total pages on system:\t89973           " in lines
    data = json.loads(kdx("kdump", "mem-usage", null_deref.vmcore, "--json",
                          check=True).stdout)["data"]
    assert data["total_pages"] == 89973 and data["zero"] == usage.zero


def test_6_12_totals(lab):
    """On 6.12 the lab's makedumpfile 1.7.2 could not filter ("kernel version is not
    supported"), so only the page total is comparable; the classes still add up."""
    dump = lab("null-deref-module", kernel="6.12")
    first, _, _ = _bitmaps(dump.vmcore)
    usage = mem_usage(dump.target, str(dump.vmcore))
    assert usage.total_pages == len(first)
    assert usage.free > usage.total_pages // 2     # a freshly booted 512 MB guest
    assert usage.kern_data + usage.excluded == usage.total_pages
    assert "Total pages on system:" in render_mem_usage(usage)


def _segments(vmcore: Path) -> list[tuple[int, int]]:
    """[first_pfn, end_pfn) of each PT_LOAD of an ELF core; a partial last page is left
    out, as makedumpfile's cyclic hole count leaves it (below 640 KiB on x86)."""
    with open(vmcore, "rb") as f:
        head = f.read(64)
        phoff, = struct.unpack_from("<Q", head, 0x20)
        phentsize, phnum = struct.unpack_from("<HH", head, 0x36)
        f.seek(phoff)
        table = f.read(phentsize * phnum)
    out = []
    for i in range(phnum):
        kind, _flags, _off, _vaddr, paddr, _filesz, memsz = struct.unpack_from(
            "<IIQQQQQ", table, i * phentsize)
        if kind == 1:  # PT_LOAD
            out.append((paddr >> 12, (paddr + memsz) >> 12))
    return out


def _makedumpfile_report(dump, out: Path) -> dict[str, int]:  # noqa: ANN001
    """makedumpfile -d 31's page report on ``dump``, which it also writes to ``out``."""
    proc = subprocess.run(["makedumpfile", "-d", "31", "-x", str(dump.vmlinux),
                           "--message-level", "31", str(dump.vmcore), str(out)],
                          capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return {name.strip(): int(value, 16) for name, value in re.findall(
        r"^\s*([A-Z][\w -]+?)\s*: (0x[0-9a-f]+)$", proc.stdout + proc.stderr, re.M)}


@pytest.mark.skipif(shutil.which("makedumpfile") is None, reason="needs makedumpfile")
def test_unfiltered_kdump_elf_against_makedumpfile(lab, tmp_path: Path) -> None:
    """An unfiltered kdump ELF (makedumpfile -E -d 0 in the capture kernel), filtered
    again by the host's makedumpfile. Its classes are kdx's; its page totals are not,
    and its own output file shows kdx's are the pages it keeps: /proc/vmcore maps the
    kernel image twice (its text mapping and the RAM segment holding it) and
    makedumpfile counts those pages once per segment (docs/crash-differences.md)."""
    dump = lab("sysrq", fmt="elf", dump_level=0)
    report = _makedumpfile_report(dump, tmp_path / "out")
    usage = mem_usage(dump.target, str(dump.vmcore))
    assert (usage.zero, usage.non_pri_cache, usage.pri_cache, usage.user, usage.free) == (
        report["Pages filled with zero"], report["Non-private cache pages"],
        report["Private cache pages"], report["User process data pages"],
        report["Free pages"])
    segments = _segments(dump.vmcore)
    union = {pfn for lo, hi in segments for pfn in range(lo, hi)}
    twice = sum(hi - lo for lo, hi in segments) - len(union)
    assert twice > 8192  # the kernel image: 40 MiB on the lab's 6.1 guest
    assert report["Original pages"] == usage.total_pages + twice
    assert report["Remaining pages"] == usage.kern_data + twice
    first, second, zero_refs = _bitmaps(tmp_path / "out")
    assert len(first) == usage.total_pages == len(union)
    assert len(second) - zero_refs == usage.kern_data and zero_refs == usage.zero
    assert report["Total pages"] == max(union) + 1  # the highest pfn, holes included
