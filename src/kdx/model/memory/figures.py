"""``kmem -i``: the memory figures, computed by crash 8.0.6's rules (memory.c
dump_kmeminfo) so both tools show the same page counts, with one exception where crash
misleads (COMMITTED, see docs/crash-differences.md).

:class:`MemoryFigures` is also what the HTML report's memory chart reads, so it holds page
counts and the page size, nothing pre-formatted; :func:`memory_breakdown` gives the same
counters by name for the analysis.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from typing import Callable

import drgn
from drgn.helpers.linux.hugetlb import for_each_hstate
from drgn.helpers.linux.mm import (
    for_each_valid_page_range,
    totalram_pages,
    vm_commit_limit,
    vm_memory_committed,
)
from drgn.helpers.linux.mmzone import for_each_online_pgdat
from drgn.helpers.linux.swap import for_each_swap_info, swap_usage_in_pages, total_swapcache_pages
from drgn.helpers.linux.vmstat import global_node_page_state, global_zone_page_state

from kdx.model.bounded import list_for_each_entry
from kdx.model.memory._errors import _READ_OR_TYPE_ERRORS, Warn, _no_warn

__all__ = ["MemoryFigures", "memory_breakdown", "memory_figures"]


@dataclass(frozen=True)
class MemoryFigures:
    """The ``kmem -i`` table in pages (multiply by ``page_size`` for bytes).

    ``committed_pages`` is the kernel's own figure (/proc/meminfo's Committed_AS, the
    per-CPU counter summed); ``committed_counter_pages`` is the global part alone, which
    is what crash 8.0.6 prints. Figures kdx could not read are None.
    """

    page_size: int
    total_pages: int
    free_pages: int | None
    shared_pages: int | None
    buffer_pages: int | None
    cached_pages: int | None
    slab_pages: int | None
    huge_total_pages: int | None
    huge_free_pages: int | None
    swap_total_pages: int | None
    swap_used_pages: int | None
    commit_limit_pages: int | None
    committed_pages: int | None
    committed_counter_pages: int | None

    @property
    def used_pages(self) -> int | None:
        return None if self.free_pages is None else self.total_pages - self.free_pages

    @property
    def swap_free_pages(self) -> int | None:
        if self.swap_total_pages is None or self.swap_used_pages is None:
            return None
        return self.swap_total_pages - self.swap_used_pages


def _vm_stat(prog: drgn.Program, name: str) -> int | None:
    """A vmstat counter by enumerator name, from the node or zone array it belongs to;
    None when this kernel has no such counter."""
    try:
        item = prog.constant(name)
    except (KeyError, LookupError):
        return None
    tag = item.type_.unaliased().tag
    if tag == "node_stat_item":
        return global_node_page_state(prog, item)
    if tag == "zone_stat_item":
        return global_zone_page_state(prog, item)
    try:
        return max(prog["vm_stat"][item].counter.value_(), 0)
    except _READ_OR_TYPE_ERRORS:
        return None


def _free_pages(prog: drgn.Program) -> int:
    """crash's FREE: every zone's NR_FREE_PAGES counter, summed over online nodes."""
    item = prog.constant("NR_FREE_PAGES")
    total = 0
    for pgdat in for_each_online_pgdat(prog):
        for zone in pgdat.node_zones:
            total += zone.vm_stat[item].counter.value_()
    return total


def _slab_pages(prog: drgn.Program) -> int | None:
    """crash's SLAB: the slab vmstat counters, whichever generation the kernel has."""
    for single in ("NR_SLAB",):
        value = _vm_stat(prog, single)
        if value is not None:
            return value
    for reclaimable, unreclaimable in (("NR_SLAB_RECLAIMABLE", "NR_SLAB_UNRECLAIMABLE"),
                                       ("NR_SLAB_RECLAIMABLE_B", "NR_SLAB_UNRECLAIMABLE_B")):
        value = _vm_stat(prog, reclaimable)
        if value is not None:
            return value + (_vm_stat(prog, unreclaimable) or 0)
    return None


def _blockdev_pages(prog: drgn.Program) -> int:
    """crash's BUFFERS (and the kernel's nr_blockdev_pages): the page cache of every
    block device inode."""
    superblock = prog["blockdev_superblock"].read_()
    total = 0
    for inode in list_for_each_entry("struct inode", superblock.s_inodes.address_of_(),
                                     "i_sb_list"):
        total += inode.i_mapping.nrpages.value_()
    return total


def _shared_pages(prog: drgn.Program) -> int:
    """crash's SHARED: pages not reserved whose reference count is above one, found by
    reading the whole page array, one valid range at a time."""
    page_type = prog.type("struct page")
    size = page_type.size
    flags_at = page_type.member("flags").offset
    count_member = "_refcount" if page_type.has_member("_refcount") else "_count"
    count_at = page_type.member(count_member).offset
    reserved = 1 << prog.constant("PG_reserved").value_()
    layout = struct.Struct(f"<{flags_at}xQ{count_at - flags_at - 8}xi"
                           f"{size - count_at - 4}x")
    shared = 0
    chunk_pages = 4096
    for start_pfn, end_pfn, mem_map in for_each_valid_page_range(prog):
        base = mem_map.value_()
        for pfn in range(start_pfn, end_pfn, chunk_pages):
            count = min(chunk_pages, end_pfn - pfn)
            try:
                data = prog.read(base + pfn * size, count * size)
            except drgn.FaultError:
                continue
            for flags, refs in layout.iter_unpack(data):
                if not flags & reserved and refs > 1:
                    shared += 1
    return shared


def _hugepages(prog: drgn.Program) -> tuple[int, int]:
    total = free = 0
    for hstate in for_each_hstate(prog):
        order = hstate.order.value_()
        if not order:
            continue
        total += hstate.nr_huge_pages.value_() << order
        free += hstate.free_huge_pages.value_() << order
    return total, free


def _swap(prog: drgn.Program) -> tuple[int, int]:
    """crash's swap totals: the size and use of every swap area in use."""
    used_flag = prog["SWP_USED"].value_()
    total = used = 0
    for si in for_each_swap_info(prog):
        if not si.flags.value_() & used_flag:
            continue
        total += si.pages.value_()
        used += swap_usage_in_pages(si)
    return total, used


def _read(what: str, read: Callable[[], int], warn: Warn) -> int | None:
    try:
        return read()
    except _READ_OR_TYPE_ERRORS as err:
        warn(f"kmem -i: cannot read {what}: {err}")
        return None


def memory_figures(prog: drgn.Program, warn: Warn = _no_warn) -> MemoryFigures:
    """The ``kmem -i`` figures; each one that cannot be read costs a warning."""
    page_size = prog["PAGE_SIZE"].value_()
    buffers = _read("the block device page cache", lambda: _blockdev_pages(prog), warn)
    cached = _read("the page cache", lambda: _cached(prog, buffers or 0), warn)
    huge = _read("the huge page pools", lambda: _hugepages(prog), warn)  # type: ignore
    swap = _read("the swap areas", lambda: _swap(prog), warn)  # type: ignore
    counter = _read("the committed memory counter",
                    lambda: max(prog["vm_committed_as"].count.value_(), 0), warn)
    return MemoryFigures(
        page_size=page_size,
        total_pages=totalram_pages(prog),
        free_pages=_read("the free page counters", lambda: _free_pages(prog), warn),
        shared_pages=_read("the page array", lambda: _shared_pages(prog), warn),
        buffer_pages=buffers,
        cached_pages=cached,
        slab_pages=_read("the slab counters", lambda: _slab_pages(prog), warn),
        huge_total_pages=huge[0] if huge else None,
        huge_free_pages=huge[1] if huge else None,
        swap_total_pages=swap[0] if swap else None,
        swap_used_pages=swap[1] if swap else None,
        commit_limit_pages=_read("the commit limit", lambda: vm_commit_limit(prog), warn),
        committed_pages=_read("the committed memory", lambda: vm_memory_committed(prog),
                              warn),
        committed_counter_pages=counter,
    )


def _cached(prog: drgn.Program, buffers: int) -> int:
    """crash's CACHED: file pages less the swap cache and the block device pages."""
    file_pages = _vm_stat(prog, "NR_FILE_PAGES")
    if file_pages is None:
        raise LookupError("no NR_FILE_PAGES counter")
    return max(file_pages - total_swapcache_pages(prog) - buffers, 0)


#: The breakdown's vmstat figures beyond ``kmem -i``'s: (key, counter, unit in KiB or
#: None for pages).
_BREAKDOWN_COUNTERS = (("anonymous", "NR_ANON_MAPPED", None),
                       ("page_tables", "NR_PAGETABLE", None),
                       ("kernel_stacks", "NR_KERNEL_STACK_KB", 1))


def memory_breakdown(prog: drgn.Program, warn: Warn = _no_warn) -> dict[str, int]:
    """Where the memory was at the crash, in KiB, for a report's chart: ``kmem -i``'s
    TOTAL, FREE, BUFFERS, CACHED and SLAB, read by the very functions ``kmem -i`` uses
    (so a verdict and ``kmem -i`` never disagree), then the anonymous, page table and
    kernel stack counters, and ``other`` for the rest. SHARED is left out: it needs a
    walk of the whole page array, too slow for a summary."""
    kib = prog["PAGE_SIZE"].value_() // 1024
    out = {"total": totalram_pages(prog) * kib}
    buffers = _read("the block device page cache", lambda: _blockdev_pages(prog), warn)
    pages = {"free": _read("the free page counters", lambda: _free_pages(prog), warn),
             "buffers": buffers,
             "cached": _read("the page cache", lambda: _cached(prog, buffers or 0), warn),
             "slab": _read("the slab counters", lambda: _slab_pages(prog), warn)}
    out.update({key: value * kib for key, value in pages.items() if value is not None})
    for key, counter, unit in _BREAKDOWN_COUNTERS:
        value = _vm_stat(prog, counter)
        if value is not None:
            out[key] = max(value, 0) * (unit or kib)
    out["other"] = max(0, out["total"] - sum(v for k, v in out.items() if k != "total"))
    return out
