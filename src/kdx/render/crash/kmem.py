"""crash's ``kmem`` layouts: the ``-i`` table, the ``-s`` cache list, ``kmem ADDR``.

Columns and wording follow crash 8.0.6 memory.c (dump_kmeminfo, dump_kmem_cache_info,
do_slab_slub, dump_vmap_area, dump_mem_map) and tools.c pages_to_size: page counts in
seven columns, sizes with one decimal in KB/MB/GB (``.0`` dropped), integer percentages.
"""

from __future__ import annotations

from kdx.model.memory import AddressReport, MemoryFigures, PageInfo, SlabCache, SlabObject
from kdx.render.crash.layout import VADDR_WIDTH, field, hexaddr, rstrip_lines

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
    if report.symbol:
        blocks.append([f"{report.address:x} {report.symbol}"])
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
