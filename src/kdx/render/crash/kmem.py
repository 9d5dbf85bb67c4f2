"""crash's ``kmem`` layouts: the ``-i`` table, the ``-s`` cache list, ``kmem ADDR``.

Columns and wording follow crash 8.0.6 memory.c (dump_kmeminfo, dump_kmem_cache_info,
do_slab_slub, dump_vmap_area, dump_mem_map) and tools.c pages_to_size: page counts in
seven columns, sizes with one decimal in KB/MB/GB (``.0`` dropped), integer percentages.
"""

from __future__ import annotations

from kdx.model.memory import (
    AddressReport,
    FreeBlock,
    MemNode,
    MemoryFigures,
    MemoryLayout,
    PageInfo,
    SlabCache,
    SlabObject,
    VmapArea,
    VmStats,
    ZoneFree,
    ZoneStats,
)
from kdx.render.crash.layout import VADDR_WIDTH, field, hexaddr, rstrip_lines
from kdx.render.crash.sym import hit_line

KMEMINFO_HEADER = "                 PAGES        TOTAL      PERCENTAGE"
CACHE_HEADER = "CACHE" + " " * 12 + " OBJSIZE  ALLOCATED     TOTAL  SLABS  SSIZE  NAME"
SLAB_HEADER = "SLAB" + " " * 14 + "MEMORY" + " " * 12 + "NODE  TOTAL  ALLOCATED  FREE"


def page_header(physical_width: int = 8) -> str:
    return (field("PAGE", VADDR_WIDTH, center=True) + " "
            + "PHYSICAL".rjust(max(physical_width, 8)) + " "
            + field("MAPPING", VADDR_WIDTH, center=True, right=True) + " "
            + field("INDEX", 8, center=True, right=True) + "CNT FLAGS")


VMAP_HEADER = (field("VMAP_AREA", VADDR_WIDTH, center=True, left=True) + "  "
               + field("VM_STRUCT", VADDR_WIDTH, center=True, left=True) + "  "
               + field("ADDRESS RANGE", VADDR_WIDTH * 2 + 3, center=True, left=True)
               + "     SIZE")


def pages_to_size(pages: int, page_size: int) -> str:
    """crash's size column: ``0``, ``N KB``, ``N.N MB`` or ``N.N GB`` (``.0`` dropped)."""
    if pages == 0:
        return "0"
    total = pages * page_size
    if total >= 1 << 30:
        text = f"{total / (1 << 30):.1f} GB"
    elif total >= 1 << 20:
        text = f"{total / (1 << 20):.1f} MB"
    else:
        text = f"{int(total / 1024)} KB"
    return text.replace(".0 ", " ")


def _row(label: str, pages: int | None, page_size: int, of: tuple[str, int] | None) -> str:
    if pages is None:
        return f"{label:>13}  {'?':>7}  {'?':>11}"
    size = pages_to_size(pages, page_size)
    if of is None:
        return f"{label:>13}  {pages:7d}  {size:>11}         ----"
    name, whole = of
    percent = pages * 100 // whole if whole else 0
    return f"{label:>13}  {pages:7d}  {size:>11}  {percent:3d}% of {name}"


def render_kmeminfo(m: MemoryFigures) -> str:
    """``kmem -i``. COMMITTED shows the kernel's own figure (see crash-differences)."""
    ps = m.page_size
    total = ("TOTAL MEM", m.total_pages)
    lines = [KMEMINFO_HEADER,
             _row("TOTAL MEM", m.total_pages, ps, None),
             _row("FREE", m.free_pages, ps, total),
             _row("USED", m.used_pages, ps, total),
             _row("SHARED", m.shared_pages, ps, total),
             _row("BUFFERS", m.buffer_pages, ps, total),
             _row("CACHED", m.cached_pages, ps, total),
             _row("SLAB", m.slab_pages, ps, total),
             "",
             _row("TOTAL HUGE", m.huge_total_pages, ps, None),
             _row("HUGE FREE", m.huge_free_pages, ps, ("TOTAL HUGE", m.huge_total_pages or 0)),
             "",
             _row("TOTAL SWAP", m.swap_total_pages, ps, None),
             _row("SWAP USED", m.swap_used_pages, ps, ("TOTAL SWAP", m.swap_total_pages or 0)),
             _row("SWAP FREE", m.swap_free_pages, ps, ("TOTAL SWAP", m.swap_total_pages or 0)),
             "",
             _row("COMMIT LIMIT", m.commit_limit_pages, ps, None)]
    if m.commit_limit_pages:
        lines.append(_row("COMMITTED", m.committed_pages, ps,
                          ("TOTAL LIMIT", m.commit_limit_pages)))
    else:
        lines.append(_row("COMMITTED", m.committed_pages, ps, None))
    return rstrip_lines("\n".join(lines))


def cache_line(cache: SlabCache) -> str:
    """One ``kmem -s`` line; ``?`` where the cache's lists could not be walked."""
    address = field(hexaddr(cache.address), VADDR_WIDTH, left=True)
    if cache.allocated is None:
        counts = f"{'?':>9}  {'?':>8}  {'?':>5}"
    else:
        counts = f"{cache.allocated:9d}  {cache.total:8d}  {cache.slabs:5d}"
    return f"{address} {cache.object_size:8d}  {counts}  {cache.slab_size // 1024:4d}k  " \
        f"{cache.name}"


def render_caches(caches: list[SlabCache]) -> str:
    return rstrip_lines("\n".join([CACHE_HEADER, *(cache_line(c) for c in caches)]))


def page_line(page: PageInfo, physical_width: int = 8) -> str:
    """One line of crash's page table: page, physical, mapping, index, count, flags."""
    flags = f"{page.flags:x}"
    if page.flag_names:
        flags += " " + ",".join(page.flag_names)
    return (f"{field(hexaddr(page.page), VADDR_WIDTH, left=True)} "
            f"{page.physical:>{max(physical_width, 8)}x} {page.mapping:>16x} {page.index:>8x} "
            f"{page.count:2d} {flags}")


def _slab_lines(slab: SlabObject) -> list[str]:
    free = slab.objects - slab.allocated_objects
    obj = f"[{slab.object:x}]" if slab.allocated else f" {slab.object:x}  "
    return [CACHE_HEADER, cache_line(slab.cache),
            "  " + SLAB_HEADER,
            f"  {field(hexaddr(slab.slab), VADDR_WIDTH, left=True)}  "
            f"{field(hexaddr(slab.memory), VADDR_WIDTH, left=True)}  {slab.node:4d}  "
            f"{slab.objects:5d}  {slab.allocated_objects:9d}  {free:4d}",
            "  FREE / [ALLOCATED]",
            f"  {obj}"]


def _context_lines(report: AddressReport) -> list[str]:
    """crash's show_context block for the task owning the address."""
    c = report.context
    assert c is not None
    t = c.task
    return [f"    PID: {t.pid}", f'COMMAND: "{t.command}"',
            f"   TASK: {t.task:x}  [THREAD_INFO: {c.thread_info:x}]",
            f"    CPU: {t.cpu if t.cpu is not None else '-'}",
            f"  STATE: {c.state}"]


def render_address(report: AddressReport, physical_width: int = 8) -> str:
    """``kmem ADDR``: the sections crash prints for what the address turned out to be,
    each followed by an empty line, the page last."""
    blocks: list[list[str]] = []
    if report.symbol is not None:
        blocks.append([hit_line(report.symbol)])
    context = _context_lines(report) if report.context is not None else None
    if report.vmap is not None:
        if context:
            blocks.append(context)
        v = report.vmap
        blocks.append([VMAP_HEADER,
                       f"{field(hexaddr(v.vmap_area), VADDR_WIDTH, center=True, left=True)}  "
                       f"{field(hexaddr(v.vm_struct), VADDR_WIDTH, center=True, left=True)}  "
                       f"{v.start:>16x} - {v.end:<16x}  {v.size:7d}"])
    else:
        if report.slab is not None:
            blocks.append(_slab_lines(report.slab))
        if context:
            blocks.append(context)
    if report.page is not None:
        blocks.append([page_header(physical_width), page_line(report.page, physical_width)])
    elif not blocks:
        kind = "physical" if report.physical else "kernel virtual"
        blocks.append([f"{report.address:x}: {kind} address not found in mem map"])
    text = "\n\n".join("\n".join(block) for block in blocks)
    return rstrip_lines(text)


# -- kmem -p, -v, -V, -z -----------------------------------------------------------------


def render_pages(pages: list[PageInfo], physical_width: int = 8) -> str:
    """``kmem -p``: crash's page table header, then one line per page."""
    lines = [page_header(physical_width), *(page_line(p, physical_width) for p in pages)]
    return rstrip_lines("\n".join(lines))


def vmap_line(v: VmapArea) -> str:
    return (f"{field(hexaddr(v.vmap_area), VADDR_WIDTH, center=True, left=True)}  "
            f"{field(hexaddr(v.vm_struct), VADDR_WIDTH, center=True, left=True)}  "
            f"{v.start:>16x} - {v.end:<16x}  {v.size:7d}")


def render_vmap_areas(areas: list[VmapArea]) -> str:
    """``kmem -v``: every vmalloc area with its vm_struct, range and size."""
    return rstrip_lines("\n".join([VMAP_HEADER, *(vmap_line(a) for a in areas)]))


def _counter_lines(items: tuple[tuple[str, int], ...], width: int) -> list[str]:
    return [f"{name:>{width}}: {value}" for name, value in items]


def render_vm_stats(stats: VmStats) -> str:
    """``kmem -V``: the zone and node counters aligned together, then the events."""
    blocks = [*stats.zone, *stats.node, *stats.numa]
    width = max((len(name) for name, _ in blocks), default=0)
    lines = ["  VM_ZONE_STAT:", *_counter_lines(stats.zone, width)]
    if stats.node:
        lines += ["", "  VM_NODE_STAT:", *_counter_lines(stats.node, width)]
    if stats.numa:
        lines += ["", "  VM_NUMA_STAT:", *_counter_lines(stats.numa, width)]
    if stats.events:
        events_width = max(len(name) for name, _ in stats.events)
        lines += ["", "  VM_EVENT_STATES:", *_counter_lines(stats.events, events_width)]
    return rstrip_lines("\n".join(lines))


def render_zones(zones: list[ZoneStats]) -> str:
    """``kmem -z``: per zone, its header, size and watermarks, then its counters."""
    lines: list[str] = []
    for z in zones:
        lines.append(f'NODE: {z.node}  ZONE: {z.index}  ADDR: {z.address:x}  '
                     f'NAME: "{z.name}"')
        if not z.spanned:
            lines += ["  [unpopulated]", ""]
            continue
        size = f"  SIZE: {z.spanned}"
        if z.present < z.spanned:
            size += f"  PRESENT: {z.present}"
        low, mid, high = z.watermarks
        lines.append(f"{size}  MIN/LOW/HIGH: {low}/{mid}/{high}")
        width = max((len(name) for name, _ in z.vm_stat), default=0)
        lines += ["  VM_STAT:", *_counter_lines(z.vm_stat, width), "", ""]
    return rstrip_lines("\n".join(lines).rstrip("\n"))


def render_free_areas(zones: list[ZoneFree], page_size: int) -> str:
    """``kmem -f``: per zone its line, then (when it has free pages) each free list
    with its blocks and pages; last the total, ``(verified)`` when the lists add up."""
    lines: list[str] = []
    total = found = 0
    for i, z in enumerate(zones):
        if i:
            lines.append("")
        lines.append("ZONE  NAME        SIZE    FREE  "
                     + field("MEM_MAP", VADDR_WIDTH, center=True) + "  START_PADDR  START_MAPNR")
        lines.append(f"{z.index:3d}   {z.name:<9} {z.size:6d}  {z.free:6d}  "
                     + field(hexaddr(z.mem_map), VADDR_WIDTH, center=True) + "  "
                     + field(hexaddr(z.start_paddr), 11, center=True, right=True) + "  "
                     + field(str(z.start_mapnr), 11, center=True, right=True))
        total += z.free
        if not z.free:
            continue
        lines.append("AREA    SIZE  FREE_AREA_STRUCT  BLOCKS  PAGES")
        for f in z.lists:
            size = f"{(page_size << f.order) // 1024}k"
            lines.append(f"{f.order:3d}  {size:>7}  "
                         + field(hexaddr(f.address), VADDR_WIDTH, center=True)
                         + f"  {f.blocks:6d} {f.pages:6d}")
            found += f.pages
    verdict = "(verified)" if found == total else f"(found {found})"
    lines += ["", f"nr_free_pages: {total}  {verdict}"]
    return rstrip_lines("\n".join(lines))


def _ordinal(n: int) -> str:
    """1st, 2nd, 3rd, 4th ... 11th, 12th, 13th, 21st."""
    suffix = "th" if n % 100 in (11, 12, 13) else {1: "st", 2: "nd", 3: "rd"}.get(n % 10, "th")
    return f"{n}{suffix}"


def render_free_block(found: FreeBlock, page_size: int) -> str:
    """``kmem -f ADDR``: the zone line, the free list and the block holding the page,
    with which of the block's pages it is; nothing when the page is not free."""
    z = found.zone
    if z is None:
        return ""
    size = f"{(page_size << found.order) // 1024}k"
    block = f"{found.block:x}"
    if found.order:
        given = f"{found.address:x} is "
        if found.physical and found.offset_in_page:
            given += "in "
        block += (f"  ({given}{_ordinal(found.page_index + 1)} of {1 << found.order} "
                  "pages)")
    lines = ["ZONE  NAME        SIZE    FREE  " + field("MEM_MAP", VADDR_WIDTH, center=True)
             + "  START_PADDR  START_MAPNR",
             f"{z.index:3d}   {z.name:<9} {z.size:6d}  {z.free:6d}  "
             + field(hexaddr(z.mem_map), VADDR_WIDTH, center=True) + "  "
             + field(hexaddr(z.start_paddr), 11, center=True, right=True) + "  "
             + field(str(z.start_mapnr), 11, center=True, right=True),
             "AREA    SIZE  FREE_AREA_STRUCT",
             f"{found.order:3d}  {size:>7}  "
             + field(hexaddr(found.free_list), VADDR_WIDTH, center=True),
             block]
    return rstrip_lines("\n".join(lines))


def _node_lines(n: MemNode) -> list[str]:
    lines = ["NODE  " + field("SIZE", 8, center=True) + "  "
             + "  ".join(field(h, VADDR_WIDTH, center=True)
                         for h in ("PGLIST_DATA", "BOOTMEM_DATA", "NODE_ZONES")),
             f" {n.node:2d}   " + field(str(n.size), 8, center=True) + "  "
             + field(hexaddr(n.pgdat), VADDR_WIDTH, center=True) + "  "
             + field("----", VADDR_WIDTH, center=True) + "  "
             + field(hexaddr(n.zones[0] if n.zones else 0), VADDR_WIDTH, center=True)]
    lines += [" " * 52 + hexaddr(z) for z in n.zones[1:]]
    lines += [field("MEM_MAP", VADDR_WIDTH, center=True) + "     START_PADDR    START_MAPNR",
              field(hexaddr(n.mem_map), VADDR_WIDTH, center=True) + "  "
              + field(hexaddr(n.start_paddr), 16, center=True, right=True) + "  "
              + field(str(n.start_mapnr), 11, center=True, right=True), "",
              "ZONE  NAME         SIZE  " + field("MEM_MAP", VADDR_WIDTH, center=True, right=True)
              + "  START_PADDR  START_MAPNR"]
    for z in n.zone_spans:
        lines.append(f" {z.index:2d}   {z.name:<9} {z.size:7d}  "
                     + field(hexaddr(z.mem_map), VADDR_WIDTH, right=True) + "  "
                     + field(hexaddr(z.start_paddr), 11, right=True) + "  "
                     + field(str(z.start_mapnr), 11, right=True))
    return lines


def render_memory_layout(layout: MemoryLayout, physical_width: int = 8) -> str:
    """``kmem -n``: each node with its zones, then the memory sections (state letters
    P present, M mem_map, O online, E early, D zone device), then the memory blocks."""
    lines: list[str] = []
    for i, node in enumerate(layout.nodes):
        if i:
            lines += ["", "-" * 67, ""]
        lines += _node_lines(node)
    lines += ["", "-" * 67, "",
              "NR  " + "  ".join(field(h, VADDR_WIDTH, center=True)
                                 for h in ("SECTION", "CODED_MEM_MAP", "MEM_MAP"))
              + "  STATE PFN"]
    for s in layout.sections:
        lines.append(f"{s.nr:2d}  " + field(hexaddr(s.address), VADDR_WIDTH, center=True)
                     + "  " + field(hexaddr(s.coded_mem_map), VADDR_WIDTH, center=True,
                                    right=True)
                     + "  " + field(hexaddr(s.mem_map), VADDR_WIDTH, center=True, right=True)
                     + "  " + field(s.state, 5, center=True) + f" {s.pfn}")
    if layout.blocks:
        width = physical_width
        lines += ["", field("MEM_BLOCK", VADDR_WIDTH, center=True) + " "
                  + field("NAME", 10, center=True) + "   "
                  + field("PHYSICAL RANGE", width * 2 + 2, center=True) + "   NODE  "
                  + "STATE   START_SECTION_NO"]
        for b in layout.blocks:
            if b.end is None:
                span = field(hexaddr(b.start), width * 2 + 3, center=True)
            else:
                span = f"{b.start:>{width}x} - {b.end:>{width}x}"
            node = field(str(b.node if b.node is not None else 0), 4, center=True)
            lines.append(f" {hexaddr(b.address):<16} {field(b.name, 12, center=True)} "
                         f"{span} {node}  {b.state:<7} {b.start_section}")
    return rstrip_lines("\n".join(lines))
