"""``kdx kdump mem-usage``: how big a filtered dump will be, page class by page class.

makedumpfile's ``--mem-usage /proc/kcore`` answers "how much would ``-d 31`` keep?" but
needs a crashkernel reservation and a makedumpfile that knows the running kernel. This
module applies makedumpfile's page rules (``__exclude_unnecessary_pages``: free buddy
blocks, page cache with and without a private flag, user pages, hwpoison and offline
pages, then zero-filled pages among the rest) to any target drgn opens: a vmcore, or the
live kernel through ``/proc/kcore``.

The struct pages are read a memory range at a time (one read of up to 2 MiB of mem_map,
unpacked with one ``struct.iter_unpack``) rather than one drgn object per page, so a
machine's whole mem_map is classified in seconds. The set of pages is the "System RAM"
of the kernel's resource tree, whole pages only, minus the crashkernel areas: the pages
``/proc/vmcore`` exports and the real dump's first bitmap marks. Each is counted once;
makedumpfile's own report counts the kernel image twice (``/proc/vmcore`` maps it in two
segments), so its totals exceed the pages it writes (docs/crash-differences.md).
"""

from __future__ import annotations

import struct
from dataclasses import dataclass, field
from typing import Iterator

import drgn

from kdx.errors import KdxError
from kdx.target.open import Target

#: The page classes, in makedumpfile's order of precedence.
CLASSES = ("free", "non_pri_cache", "pri_cache", "user", "hwpoison", "offline")
CHUNK_PAGES = 32768
ZERO_RUN = 256


@dataclass(frozen=True)
class MemUsage:
    """Page counts per class, as makedumpfile --mem-usage reports them."""

    source: str
    release: str
    page_size: int
    total_pages: int
    zero: int
    non_pri_cache: int
    pri_cache: int
    user: int
    free: int
    hwpoison: int
    offline: int
    kern_data: int
    unreadable: int
    notes: tuple[str, ...] = field(default_factory=tuple)

    @property
    def excluded(self) -> int:
        return (self.zero + self.non_pri_cache + self.pri_cache + self.user + self.free
                + self.hwpoison + self.offline)


@dataclass(frozen=True)
class _Rules:
    """The vmcoreinfo numbers and struct page layout makedumpfile's rules need."""

    page_size: int
    page_struct: int
    fields: struct.Struct
    pg_lru: int
    pg_private: int
    pg_swapcache: int
    pg_swapbacked: int | None
    pg_slab: int | None
    pg_hwpoison: int | None
    pg_head_mask: int
    buddy: int | None
    offline: int | None
    slab_mapcount: int | None
    hugetlb_mapcount: int | None
    unaccepted: int | None
    pg_hugetlb: int | None
    hugetlb_dtor: int | None
    order_offset: int | None
    dtor_offset: int | None
    max_order: int | None


def _number(info: dict[str, str], name: str) -> int | None:
    value = info.get(f"NUMBER({name})")
    try:
        return int(value, 0) if value is not None else None
    except ValueError:
        return None


def _offset(info: dict[str, str], prog: drgn.Program, member: str) -> int | None:
    value = info.get(f"OFFSET(page.{member})")
    if value is not None:
        return int(value)
    try:
        return drgn.offsetof(prog.type("struct page"), member)
    except (LookupError, ValueError):
        return None


def rules(target: Target) -> _Rules:
    """Read the page-flag numbers and struct page offsets from VMCOREINFO (what
    makedumpfile reads in a capture kernel), falling back to the debug info."""
    info, prog = target.vmcoreinfo, target.prog
    need = ("PG_lru", "PG_private", "PG_swapcache", "PG_head_mask")
    missing = [n for n in need if _number(info, n) is None]
    if _number(info, "PG_slab") is None and _number(info, "PAGE_SLAB_MAPCOUNT_VALUE") is None:
        missing.append("PG_slab")  # Linux 6.10+ marks slabs with a page type instead
    if missing:
        raise KdxError(f"the dump's VMCOREINFO lacks {', '.join(missing)}: cannot classify "
                       "its pages")
    offsets = {m: _offset(info, prog, m) for m in
               ("flags", "compound_head", "mapping", "private", "_mapcount")}
    if any(v is None for v in offsets.values()):
        raise KdxError("cannot find struct page's flags, mapping, private and _mapcount")
    size = int(info.get("SIZE(page)") or prog.type("struct page").size)
    fmt = _layout(offsets, size)
    length = info.get("LENGTH(zone.free_area)")
    return _Rules(
        page_size=int(info.get("PAGESIZE", "4096")), page_struct=size, fields=fmt,
        pg_lru=_number(info, "PG_lru"), pg_private=_number(info, "PG_private"),
        pg_swapcache=_number(info, "PG_swapcache"),
        pg_swapbacked=_number(info, "PG_swapbacked"), pg_slab=_number(info, "PG_slab"),
        pg_hwpoison=_number(info, "PG_hwpoison"),
        pg_head_mask=_number(info, "PG_head_mask"),
        buddy=_number(info, "PAGE_BUDDY_MAPCOUNT_VALUE"),
        offline=_number(info, "PAGE_OFFLINE_MAPCOUNT_VALUE"),
        slab_mapcount=_number(info, "PAGE_SLAB_MAPCOUNT_VALUE"),
        hugetlb_mapcount=_number(info, "PAGE_HUGETLB_MAPCOUNT_VALUE"),
        unaccepted=_number(info, "PAGE_UNACCEPTED_MAPCOUNT_VALUE"),
        pg_hugetlb=_number(info, "PG_hugetlb"),
        hugetlb_dtor=_number(info, "HUGETLB_PAGE_DTOR"),
        order_offset=_offset(info, prog, "compound_order"),
        dtor_offset=_offset(info, prog, "compound_dtor"),
        max_order=int(length) if length else None)


def _layout(offsets: dict[str, int], size: int) -> struct.Struct:
    """One ``struct`` format pulling flags, compound_head, mapping, private and
    _mapcount out of a struct page, in that order, whatever their offsets."""
    kinds = {"flags": "Q", "compound_head": "Q", "mapping": "Q", "private": "Q",
             "_mapcount": "i"}
    order = sorted(offsets, key=lambda m: offsets[m])
    fmt, pos = "<", 0
    for member in order:
        fmt += f"{offsets[member] - pos}x" if offsets[member] > pos else ""
        fmt += kinds[member]
        pos = offsets[member] + struct.calcsize("<" + kinds[member])
    fmt += f"{size - pos}x"
    perm = [order.index(m) for m in ("flags", "compound_head", "mapping", "private",
                                     "_mapcount")]
    return _Reordered(fmt, perm)


class _Reordered(struct.Struct):
    """A Struct whose tuples come back in a fixed member order."""

    def __init__(self, fmt: str, perm: list[int]) -> None:
        super().__init__(fmt)
        self.perm = perm

    def pages(self, data: bytes) -> Iterator[tuple[int, ...]]:
        p = self.perm
        for t in self.iter_unpack(data):
            yield (t[p[0]], t[p[1]], t[p[2]], t[p[3]], t[p[4]])


def ram_ranges(target: Target) -> list[tuple[int, int]]:
    """[start_pfn, end_pfn) of the dumpable RAM: top-level "System RAM" resources cut to
    whole pages, minus the crashkernel areas (they are not in /proc/vmcore)."""
    prog = target.prog
    page = int(target.vmcoreinfo.get("PAGESIZE", "4096"))
    ranges = []
    res = prog["iomem_resource"].child
    while res:
        if res.name.string_() == b"System RAM":
            lo = -(-res.start.value_() // page)
            hi = (res.end.value_() + 1) // page
            if hi > lo:
                ranges.append((lo, hi))
        res = res.sibling
    for name in ("crashk_res", "crashk_low_res"):
        try:
            r = prog[name]
        except KeyError:
            continue
        start, end = r.start.value_(), r.end.value_()
        if end > start:
            ranges = _subtract(ranges, start // page, (end + 1) // page)
    return ranges


def _subtract(ranges: list[tuple[int, int]], lo: int, hi: int) -> list[tuple[int, int]]:
    out = []
    for a, b in ranges:
        if b <= lo or a >= hi:
            out.append((a, b))
            continue
        if a < lo:
            out.append((a, lo))
        if b > hi:
            out.append((hi, b))
    return out


def _mem_map_base(prog: drgn.Program) -> int:
    from drgn.helpers.linux.mm import pfn_to_page

    try:
        return pfn_to_page(prog, 0).value_()
    except (LookupError, drgn.FaultError) as err:
        raise KdxError(f"cannot locate the kernel's mem_map (vmemmap): {err}") from err


def classify(target: Target) -> tuple[dict[str, int], list[list[int]], int]:
    """Count the excludable pages per class; returns the counts, the kept pages as
    [first_pfn, count] runs (to be checked for zero content) and the number of pages
    considered. Runs keep the memory small on machines with hundreds of millions of
    pages."""
    r = rules(target)
    prog = target.prog
    base = _mem_map_base(prog)
    counts = dict.fromkeys(CLASSES, 0)
    kept: list[list[int]] = []
    total = 0
    skip_until, skip_class = 0, ""
    for lo, hi in ram_ranges(target):
        total += hi - lo
        for start in range(lo, hi, CHUNK_PAGES):
            end = min(start + CHUNK_PAGES, hi)
            data = _read_mem_map(prog, base, r.page_struct, start, end)
            skip_until, skip_class = _classify_chunk(
                r, data, start, end, counts, kept, skip_until, skip_class)
    return counts, kept, total


def _read_mem_map(prog: drgn.Program, base: int, size: int, start: int, end: int) -> bytes:
    """The struct pages of [start, end) plus the next one when it is mapped (a compound
    head's order lives in the following struct page)."""
    for extra in (1, 0):
        try:
            return prog.read(base + start * size, (end - start + extra) * size)
        except drgn.FaultError as err:
            if extra == 0:
                raise KdxError(f"the struct pages of pfn {start:#x}-{end - 1:#x} cannot "
                               f"be read: {err}") from err
    raise AssertionError("unreachable")


def _keep(kept: list[list[int]], pfn: int) -> None:
    if kept and kept[-1][0] + kept[-1][1] == pfn:
        kept[-1][1] += 1
    else:
        kept.append([pfn, 1])


def _classify_chunk(r: _Rules, data: bytes, start: int, end: int, counts: dict[str, int],
                    kept: list[list[int]], skip_until: int,
                    skip_class: str) -> tuple[int, str]:
    """makedumpfile's per-page decision, for the pages [start, end) of one chunk."""
    pages = list(r.fields.pages(data))
    size = r.page_struct
    lru, private_bit = 1 << r.pg_lru, 1 << r.pg_private
    swapcache = 1 << r.pg_swapcache
    swapbacked = None if r.pg_swapbacked is None else 1 << r.pg_swapbacked
    hwpoison = None if r.pg_hwpoison is None else 1 << r.pg_hwpoison
    i = 0
    n = end - start
    while i < n:
        pfn = start + i
        if pfn < skip_until:  # inside a free block or compound page already excluded
            stop = min(skip_until, end)
            counts[skip_class] += stop - pfn
            i += stop - pfn
            continue
        flags, head, mapping, private, mapcount = pages[i]
        slab = (r.slab_mapcount is not None and mapcount == r.slab_mapcount) or (
            r.pg_slab is not None and bool(flags & (1 << r.pg_slab)))
        order, hugetlb = 0, False
        if flags & r.pg_head_mask:
            order, hugetlb = _compound(r, data, i, size, mapcount, pages)
            if order >= 64 or pfn & ((1 << order) - 1):
                order = 0
        nr = 1 << order
        anon = bool(mapping & 1) and not slab
        cache = bool(flags & lru) or (bool(flags & swapcache)
                                      and (swapbacked is None or bool(flags & swapbacked)))
        cls = None
        if head & 1:
            _keep(kept, pfn)
            i += 1
            continue
        if r.buddy is not None and not slab and mapcount == r.buddy:
            if r.max_order is not None and private >= r.max_order:
                _keep(kept, pfn)
                i += 1
                continue
            nr, cls = 1 << private, "free"
        elif r.unaccepted is not None and mapcount == r.unaccepted:
            nr, cls = 1 << ((r.max_order or 11) - 1), "free"
        elif cache and not anon:
            cls = "pri_cache" if flags & private_bit else "non_pri_cache"
        elif anon or hugetlb:
            cls = "user"
        elif hwpoison is not None and flags & hwpoison:
            cls = "hwpoison"
        elif r.offline is not None and not slab and mapcount == r.offline:
            cls = "offline"
        if cls is None:
            _keep(kept, pfn)
            i += 1
            continue
        skip_until, skip_class = pfn + nr, cls
    return skip_until, skip_class


def _compound(r: _Rules, data: bytes, i: int, size: int, mapcount: int,
              pages: list[tuple[int, ...]]) -> tuple[int, bool]:
    """A compound head's order and whether it is a hugetlb page, read from the next
    struct page as each kernel generation stores them."""
    if i + 1 >= len(pages):
        return 0, False
    flags1 = pages[i + 1][0]
    if r.hugetlb_mapcount is not None:  # Linux 6.9+
        return flags1 & 0xFF, mapcount == r.hugetlb_mapcount
    if r.pg_hugetlb is not None:  # Linux 6.6-6.8
        return flags1 & 0xFF, bool(flags1 & (1 << r.pg_hugetlb))
    nxt = (i + 1) * size
    order = data[nxt + r.order_offset] if r.order_offset is not None else 0
    dtor = data[nxt + r.dtor_offset] if r.dtor_offset is not None else None
    return order, dtor is not None and dtor == r.hugetlb_dtor


def zero_pages(target: Target, runs: list[list[int]], page_size: int) -> tuple[int, int]:
    """How many pages of the ``[first_pfn, count]`` runs are filled with zeros; pages
    whose content the dump lacks are counted apart."""
    prog = target.prog
    zero_page = bytes(page_size)
    zeros = unreadable = 0
    for first, count in runs:
        for pfn in range(first, first + count, ZERO_RUN):
            n = min(ZERO_RUN, first + count - pfn)
            try:
                data = prog.read(pfn * page_size, n * page_size, True)
            except drgn.FaultError:
                z, u = _zero_one_by_one(prog, pfn, n, page_size, zero_page)
                zeros, unreadable = zeros + z, unreadable + u
                continue
            mv = memoryview(data)
            zeros += sum(1 for k in range(n)
                         if mv[k * page_size:(k + 1) * page_size] == zero_page)
    return zeros, unreadable


def _zero_one_by_one(prog: drgn.Program, pfn: int, n: int, page_size: int,
                     zero_page: bytes) -> tuple[int, int]:
    zeros = unreadable = 0
    for p in range(pfn, pfn + n):
        try:
            zeros += prog.read(p * page_size, page_size, True) == zero_page
        except drgn.FaultError:
            unreadable += 1
    return zeros, unreadable


def mem_usage(target: Target, source: str) -> MemUsage:
    """makedumpfile --mem-usage's table for ``target``."""
    r = rules(target)
    counts, kept, total = classify(target)
    zeros, unreadable = zero_pages(target, kept, r.page_size)
    notes = []
    if unreadable:
        notes.append(f"{unreadable} kept pages are not in the dump, so they were not "
                     "checked for zeros (counted as kernel data)")
    excluded = sum(counts.values()) + zeros
    release = target.vmcoreinfo.get("OSRELEASE", "")
    return MemUsage(source=source, release=release, page_size=r.page_size,
                    total_pages=total, zero=zeros, non_pri_cache=counts["non_pri_cache"],
                    pri_cache=counts["pri_cache"], user=counts["user"], free=counts["free"],
                    hwpoison=counts["hwpoison"], offline=counts["offline"],
                    kern_data=total - excluded, unreadable=unreadable, notes=tuple(notes))


def render_mem_usage(u: MemUsage) -> str:
    """The table in makedumpfile --mem-usage's layout."""
    rows = [("ZERO", u.zero, "yes", "Pages filled with zero"),
            ("NON_PRI_CACHE", u.non_pri_cache, "yes", "Cache pages without private flag"),
            ("PRI_CACHE", u.pri_cache, "yes", "Cache pages with private flag"),
            ("USER", u.user, "yes", "User process pages"),
            ("FREE", u.free, "yes", "Free pages"),
            ("KERN_DATA", u.kern_data, "no", "Dumpable kernel data ")]
    lines = ["", "TYPE\t\tPAGES\t\t\tEXCLUDABLE\tDESCRIPTION", "-" * 70]
    for name, count, excl, desc in rows:
        tab = "\t" if len(name) >= 8 else "\t\t"
        lines.append(f"{name}{tab}{count:<16}\t{excl}\t\t{desc}")
    lines += ["", f"page size:\t\t{u.page_size:<16}",
              f"Total pages on system:\t{u.total_pages:<16}",
              f"Total size on system:\t{u.total_pages * u.page_size:<16} Byte"]
    if u.hwpoison or u.offline:
        lines.append(f"(also excluded: {u.hwpoison} hwpoison, {u.offline} offline pages)")
    lines += [f"note: {n}" for n in u.notes]
    return "\n".join(lines)
