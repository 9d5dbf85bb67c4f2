"""``kmem -z``, ``-f`` and ``-n``: zones and their counters, the buddy allocator's free
areas and the free block a page lies in, and the memory layout (nodes, memory sections,
memory blocks).

These read the zone and node structures (``pglist_data``, ``zone``, ``mem_section``), a
subject of their own beside the per-page and per-object views.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass

import drgn
from drgn.helpers.linux.mm import in_direct_map, page_to_pfn, pfn_to_page, phys_to_page
from drgn.helpers.linux.mmzone import for_each_online_pgdat

from kdx.model.memory._errors import Warn, _no_warn, _safe
from kdx.model.memory.pages import _kernel_space_start, _page_object
from kdx.model.memory.vmstat import _enum_names
from kdx.model.records import Hex
from kdx.textsafe import decode

__all__ = ["FreeBlock", "FreeList", "MemBlock", "MemNode", "MemSection", "MemoryLayout",
           "ZoneFree", "ZoneSpan", "ZoneStats", "free_areas", "free_block", "memory_layout",
           "zone_stats"]


# -- kmem -z ----------------------------------------------------------------------------


@dataclass(frozen=True)
class ZoneStats:
    """``kmem -z``: one zone's size, watermarks and counters (empty when unpopulated)."""

    node: int
    index: int
    address: Hex
    name: str
    spanned: int
    present: int
    watermarks: tuple[int, int, int]
    vm_stat: tuple[tuple[str, int], ...]


def zone_stats(prog: drgn.Program) -> list[ZoneStats]:
    names = _enum_names(prog, "zone_stat_item", "NR_VM_ZONE_STAT_ITEMS")
    zones = []
    for pgdat in for_each_online_pgdat(prog):
        node = pgdat.node_id.value_()
        for index in range(len(pgdat.node_zones)):
            zone = pgdat.node_zones[index]
            marks_member = "_watermark" if zone.type_.has_member("_watermark") else \
                "watermark"
            marks = zone.member_(marks_member)
            counters = tuple((name, zone.vm_stat[i].counter.value_())
                             for i, name in enumerate(names))
            zones.append(ZoneStats(
                node=node, index=index, address=zone.address_ or 0,
                name=decode(zone.name.string_()), spanned=zone.spanned_pages.value_(),
                present=zone.present_pages.value_(),
                watermarks=(marks[0].value_(), marks[1].value_(), marks[2].value_()),
                vm_stat=counters))
    return zones


# -- kmem -f -----------------------------------------------------------------------------


@dataclass(frozen=True)
class FreeList:
    """One free list of a zone: its order, its list_head, blocks on it and pages."""

    order: int
    address: Hex
    blocks: int
    pages: int


@dataclass(frozen=True)
class ZoneFree:
    """``kmem -f`` for one zone: crash's zone line and, when it has free pages, every
    free list (one per order and migrate type)."""

    node: int
    index: int
    name: str
    size: int
    free: int
    mem_map: Hex
    start_paddr: Hex
    start_mapnr: int
    lists: tuple[FreeList, ...]


def _count_list(prog: drgn.Program, head: int) -> int | None:
    """Entries on the list_head ring at ``head`` (None when it is broken or loops)."""
    from kdx.model.walk import ListSpec, WalkError, walk_list

    try:
        first = prog.read_word(head)
        if first == head:
            return 0
        return sum(1 for _ in walk_list(prog, ListSpec(start=first, end=head)))
    except (WalkError, drgn.FaultError):
        return None


def free_areas(prog: drgn.Program, warn: Warn = _no_warn) -> list[ZoneFree]:
    """Every zone's free lists, counted by walking them as crash does."""
    zones = []
    for pgdat in for_each_online_pgdat(prog):
        node_start = pgdat.node_start_pfn.value_()
        for index in range(len(pgdat.node_zones)):
            zone = pgdat.node_zones[index]
            size = zone.spanned_pages.value_()
            free = zone.vm_stat[0].counter.value_()
            start_pfn = zone.zone_start_pfn.value_()
            mem_map = _safe(lambda p=start_pfn: pfn_to_page(prog, p).value_(), 0) \
                if size else 0
            lists = []
            if free:
                for order in range(len(zone.free_area)):
                    area = zone.free_area[order]
                    for kind in range(len(area.free_list)):
                        head = area.free_list[kind].address_ or 0
                        count = _count_list(prog, head)
                        if count is None:
                            warn(f"corrupted free list {kind} from free_area struct: "
                                 f"{area.address_ or 0:x}")
                            count = 0
                        lists.append(FreeList(order, head, count, count << order))
            zones.append(ZoneFree(
                node=pgdat.node_id.value_(), index=index,
                name=decode(zone.name.string_()), size=size, free=free,
                mem_map=mem_map, start_paddr=start_pfn * prog["PAGE_SIZE"].value_(),
                start_mapnr=(start_pfn - node_start) if mem_map else 0,
                lists=tuple(lists)))
    return zones


@dataclass(frozen=True)
class FreeBlock:
    """``kmem -f ADDR``: the free block that holds the page of ``address`` — its zone,
    the free list (order and list_head) it is on, its first struct page, and which of
    its pages is the one asked about. ``block`` is 0 when the page is not free."""

    address: Hex  # as given
    physical: bool  # the address was read as physical (below kernel space)
    zone: ZoneFree | None
    order: int
    free_list: Hex  # the list_head of the free list the block is on
    block: Hex  # the block's first struct page
    page_index: int  # 0 for the block's first page
    offset_in_page: int


def _zone_record(prog: drgn.Program, pgdat: drgn.Object, index: int) -> ZoneFree:
    """A zone's ``kmem -f`` line, without its free lists."""
    zone = pgdat.node_zones[index]
    size = zone.spanned_pages.value_()
    start_pfn = zone.zone_start_pfn.value_()
    mem_map = _safe(lambda: pfn_to_page(prog, start_pfn).value_(), 0) if size else 0
    return ZoneFree(node=pgdat.node_id.value_(), index=index,
                    name=decode(zone.name.string_()), size=size,
                    free=zone.vm_stat[0].counter.value_(), mem_map=mem_map,
                    start_paddr=start_pfn * prog["PAGE_SIZE"].value_(),
                    start_mapnr=(start_pfn - pgdat.node_start_pfn.value_()) if mem_map else 0,
                    lists=())


def _on_list(prog: drgn.Program, head: int, page: int) -> bool:
    """Whether the struct page at ``page`` is linked on the free list at ``head``."""
    from kdx.model.walk import ListSpec, WalkError, walk_list

    offset = prog.type("struct page").member("lru").offset
    try:
        first = prog.read_word(head)
        if first == head:
            return False
        return any(entry - offset == page
                   for entry in walk_list(prog, ListSpec(start=first, end=head)))
    except (WalkError, drgn.FaultError):
        return False


def free_block(prog: drgn.Program, address: int) -> FreeBlock | None:
    """``kmem -f ADDR``: is the page of ``address`` (a struct page pointer, a kernel
    virtual or a physical address) free, and on which free list? None when no page
    backs the address. A free block keeps its order in ``page.private``: only the
    lists of an order some candidate block claims are walked, never all of them."""
    physical = address < _kernel_space_start(prog)
    if physical:
        page = _safe(lambda: phys_to_page(prog, address), None)
    else:
        direct = bool(_safe(lambda: in_direct_map(prog, address), False))
        page = _page_object(prog, address, direct)
    if page is None:
        return None
    pfn = page_to_pfn(page).value_()
    offset_in_page = address % prog["PAGE_SIZE"].value_() if physical else 0
    for pgdat in for_each_online_pgdat(prog):
        for index in range(len(pgdat.node_zones)):
            zone = pgdat.node_zones[index]
            start = zone.zone_start_pfn.value_()
            if not start <= pfn < start + zone.spanned_pages.value_():
                continue
            found = _find_block(prog, zone, pfn)
            if found is not None:
                order, head, block = found
                return FreeBlock(address, physical, _zone_record(prog, pgdat, index), order,
                                 head, block, pfn - page_to_pfn(
                                     drgn.Object(prog, "struct page *", block)).value_(),
                                 offset_in_page)
    return FreeBlock(address, physical, None, 0, 0, 0, 0, offset_in_page)


def _find_block(prog: drgn.Program, zone: drgn.Object, pfn: int
                ) -> tuple[int, int, int] | None:
    """(order, free list head, first page) of the free block of ``zone`` holding
    ``pfn``."""
    for order in range(len(zone.free_area)):
        first = pfn & ~((1 << order) - 1)
        page = _safe(lambda f=first: pfn_to_page(prog, f), None)
        if page is None or _safe(lambda p=page: p.private.value_(), -1) != order:
            continue
        area = zone.free_area[order]
        for kind in range(len(area.free_list)):
            head = area.free_list[kind].address_ or 0
            if _on_list(prog, head, page.value_()):
                return order, head, page.value_()
    return None


# -- kmem -n -----------------------------------------------------------------------------


@dataclass(frozen=True)
class ZoneSpan:
    """One zone in ``kmem -n``'s node table."""

    index: int
    name: str
    size: int
    mem_map: Hex
    start_paddr: Hex
    start_mapnr: int


@dataclass(frozen=True)
class MemNode:
    node: int
    size: int
    pgdat: Hex
    zones: tuple[Hex, ...]  # each zone's address
    mem_map: Hex
    start_paddr: Hex
    start_mapnr: int
    zone_spans: tuple[ZoneSpan, ...]


@dataclass(frozen=True)
class MemSection:
    nr: int
    address: Hex
    coded_mem_map: Hex
    mem_map: Hex
    state: str
    pfn: int


@dataclass(frozen=True)
class MemBlock:
    """A memory block device. ``state`` is the raw word crash reads (eight bytes at
    memory_block.state), named as crash names it."""

    address: Hex
    name: str
    start: Hex
    end: Hex | None
    node: int | None
    state: str
    start_section: int


@dataclass(frozen=True)
class MemoryLayout:
    nodes: tuple[MemNode, ...]
    sections: tuple[MemSection, ...]
    blocks: tuple[MemBlock, ...]


_SECTION_LETTERS = (("SECTION_MARKED_PRESENT", "P"), ("SECTION_HAS_MEM_MAP", "M"),
                    ("SECTION_IS_ONLINE", "O"), ("SECTION_IS_EARLY", "E"),
                    ("SECTION_TAINT_ZONE_DEVICE", "D"))
_BLOCK_STATES = {1: "ONLINE", 2: "GOING_OFFLINE", 4: "OFFLINE", 8: "GOING_ONLINE",
                 16: "CANCEL_ONLINE", 32: "CANCEL_OFFLINE"}


def _nodes(prog: drgn.Program) -> list[MemNode]:
    nodes = []
    for pgdat in for_each_online_pgdat(prog):
        start_pfn = pgdat.node_start_pfn.value_()
        page_size = prog["PAGE_SIZE"].value_()
        spans = []
        for index in range(len(pgdat.node_zones)):
            zone = pgdat.node_zones[index]
            size = zone.spanned_pages.value_()
            zone_pfn = zone.zone_start_pfn.value_()
            mem_map = _safe(lambda p=zone_pfn: pfn_to_page(prog, p).value_(), 0) \
                if size else 0
            spans.append(ZoneSpan(index, decode(zone.name.string_()), size, mem_map,
                                  zone_pfn * page_size, zone_pfn if size else 0))
        nodes.append(MemNode(
            node=pgdat.node_id.value_(), size=sum(s.size for s in spans),
            pgdat=pgdat.value_(),
            zones=tuple(z.address_ or 0 for z in pgdat.node_zones),
            mem_map=_safe(lambda p=start_pfn: pfn_to_page(prog, p).value_(), 0),  # type: ignore[arg-type]
            start_paddr=start_pfn * page_size, start_mapnr=start_pfn,
            zone_spans=tuple(spans)))
    return nodes


def _sections(prog: drgn.Program) -> list[MemSection]:
    from drgn.helpers.linux.mmzone import (
        _section_flags,
        for_each_present_section,
        section_decode_mem_map,
        section_mem_map_addr,
        section_nr_to_pfn,
    )

    flags = _section_flags(prog)
    sections = []
    for nr, section in for_each_present_section(prog):
        raw = section.section_mem_map.value_()
        state = "".join(letter for name, letter in _SECTION_LETTERS
                        if name in flags and raw & flags[name])
        sections.append(MemSection(
            nr=nr, address=section.value_(),
            coded_mem_map=section_mem_map_addr(section).value_(),
            mem_map=section_decode_mem_map(section, nr).value_(), state=state,
            pfn=section_nr_to_pfn(prog, nr).value_()))
    return sections


def _blocks(prog: drgn.Program) -> list[MemBlock]:
    """The memory block devices, from the kernel's memory_blocks XArray (by block id,
    the order they are registered in, which is the order crash lists)."""
    from drgn.helpers.linux.xarray import xa_for_each

    try:
        blocks = prog["memory_blocks"]
    except KeyError:
        return []
    block_type = prog.type("struct memory_block")
    state_at = block_type.member("state").offset
    try:
        block_size = prog["memory_block_size_probed"].value_() or None
    except KeyError:
        block_size = None
    if not block_size:
        with contextlib.suppress(KeyError, LookupError, drgn.FaultError):
            sections = prog["sections_per_block"].value_()
            block_size = sections << prog["SECTION_SIZE_BITS"].value_()
    page_shift = prog["PAGE_SHIFT"].value_()
    section_pages = prog["SECTION_SIZE_BITS"].value_() - page_shift
    out = []
    for _index, entry in xa_for_each(blocks.address_of_()):
        block = drgn.cast("struct memory_block *", entry)
        start_section = block.start_section_nr.value_()
        start = (start_section << section_pages) << page_shift
        raw_state = prog.read_word(block.value_() + state_at)
        out.append(MemBlock(
            address=block.value_(), name=decode(block.dev.kobj.name.string_()),
            start=start, end=start + block_size - 1 if block_size else None,
            node=block.nid.value_() if block_type.has_member("nid") else None,
            state=_BLOCK_STATES.get(raw_state, "UNKNOWN"), start_section=start_section))
    return out


def memory_layout(prog: drgn.Program) -> MemoryLayout:
    """``kmem -n``: nodes and their zones, the memory sections, the memory blocks."""
    return MemoryLayout(tuple(_nodes(prog)), tuple(_safe(lambda: _sections(prog), [])),
                        tuple(_safe(lambda: _blocks(prog), [])))
