"""``kmem``: memory figures (``-i``), slab caches (``-s [CACHE]``) and ``kmem ADDR``.

``kmem -i`` is the meminfo-like table crash prints, computed by crash's rules from the
kernel's counters and page array; ``kmem -s`` lists every slab cache with its object
size, allocated and total objects, slabs and slab size; ``kmem ADDR`` says what an
address is: a symbol, part of a task, a vmalloc area, a slab object, and the page it is
in. ``-p`` prints the mem_map lines of pages, ``-v`` the vmalloc areas, ``-V`` the
kernel's zone, node and event counters, ``-z`` each zone's, ``-f`` the free lists and
``-n`` the nodes, memory sections and memory blocks. Records come from kdx.model.memory;
layouts from kdx.render.crash.kmem.
"""

from __future__ import annotations

import argparse

from kdx.commands.crash.arguments import physical_width
from kdx.model.memory import (
    all_pages,
    find_cache,
    free_areas,
    free_block,
    identify,
    memory_figures,
    memory_layout,
    page_of,
    slab_cache_record,
    slab_caches,
    vm_stats,
    vmap_areas,
    zone_stats,
)
from kdx.render.crash.kmem import (
    render_address,
    render_caches,
    render_free_areas,
    render_free_block,
    render_kmeminfo,
    render_memory_layout,
    render_pages,
    render_vm_stats,
    render_vmap_areas,
    render_zones,
)
from kdx.session.command import CommandError, crash_command, make_parser
from kdx.session.session import Session


def _parser() -> argparse.ArgumentParser:
    parser = make_parser("kmem", "kernel memory: figures (-i), slab caches (-s), or what "
                         "an address is")
    mode = parser.add_mutually_exclusive_group()
    mode.add_argument("-i", action="store_true", dest="info",
                      help="memory figures: total, free, used, cached, slab, huge pages, "
                      "swap, commit")
    mode.add_argument("-s", action="store_true", dest="slabs",
                      help="slab caches (all, or the one named or at the given address)")
    mode.add_argument("-p", action="store_true", dest="pages",
                      help="page structures: all of them, or those of the given addresses "
                      "(page pointer, physical or kernel virtual)")
    mode.add_argument("-v", action="store_true", dest="vmalloc",
                      help="the vmalloc areas")
    mode.add_argument("-V", action="store_true", dest="vmstat",
                      help="the kernel's vm_zone_stat, vm_node_stat and vm event counters")
    mode.add_argument("-z", action="store_true", dest="zones",
                      help="per-zone size, watermarks and counters")
    mode.add_argument("-n", action="store_true", dest="nodes",
                      help="memory nodes and zones, memory sections and memory blocks")
    mode.add_argument("-f", action="store_true", dest="free",
                      help="the free lists of every zone, counted, with the total checked; "
                      "with addresses: the free block holding each one's page, if any")
    parser.add_argument("args", nargs="*", metavar="CACHE|ADDR",
                        help="with -s: a cache name or kmem_cache address; alone: "
                        "addresses to identify")
    return parser


@crash_command("kmem", "memory figures (-i), slab caches (-s), pages (-p), vmalloc (-v), counters "
               "(-V, -z), free lists (-f), nodes (-n), or what an address is", parser=_parser)
def _kmem(session: Session, args: argparse.Namespace) -> None:
    if args.info:
        if args.args:
            raise CommandError("no address arguments allowed with -i")
        figures = session.cached("kmem-i", lambda: memory_figures(session.prog,
                                                                   session.warn))
        session.emit("kmem-i", figures, lambda: render_kmeminfo(figures))
        return
    if args.slabs:
        _slabs(session, args.args)
        return
    if args.pages:
        _pages(session, args.args)
        return
    if args.free and args.args:
        _free_blocks(session, args.args)
        return
    if args.vmalloc or args.vmstat or args.zones or args.free or args.nodes:
        if args.args:
            raise CommandError("no address arguments allowed with -n, -v, -V or -z")
        _tables(session, args)
        return
    if not args.args:
        raise CommandError("kmem: give -i, -s, or an address")
    _addresses(session, args.args)


def _slabs(session: Session, words: list[str]) -> None:
    prog = session.prog
    if not words:
        caches = session.cached("kmem-s", lambda: slab_caches(prog))
        session.emit("kmem-s", caches, lambda: render_caches(caches))
        return
    if len(words) > 1:
        raise CommandError("only one kmem_cache reference is allowed")
    cache, alias_of = find_cache(prog, words[0])
    if cache is None:
        raise CommandError(f"invalid slab cache name or address: {words[0]}")
    if alias_of:
        session.warn(f"{words[0]} is merged into the cache {alias_of}")
    record = slab_cache_record(cache, prog["PAGE_SIZE"].value_())
    session.emit("kmem-s", [record], lambda: render_caches([record]))


def _addresses(session: Session, words: list[str]) -> None:
    prog = session.prog
    width = physical_width(prog)
    reports = []
    for word in words:
        try:
            address = int(word, 16)
        except ValueError as err:
            raise CommandError(f"not a hexadecimal address: {word}") from err
        reports.append(identify(prog, address))
    session.emit("kmem-address", reports,
                 lambda: "\n\n".join(render_address(r, width) for r in reports))


def _pages(session: Session, words: list[str]) -> None:
    """``kmem -p [ADDR...]``: the mem_map lines of the pages named, or of every page."""
    prog = session.prog
    width = physical_width(prog)
    if not words:
        pages = session.cached("kmem-p", lambda: all_pages(prog))
        session.emit("kmem-p", pages, lambda: render_pages(pages, width))
        return
    found = []
    for address in _hex_addresses(words):
        page = page_of(prog, address)
        if page is None:
            session.warn(f"{address:x}: no page structure for this address")
            continue
        found.append(page)
    if found:
        session.emit("kmem-p", found, lambda: render_pages(found, width))


def _hex_addresses(words: list[str]) -> list[int]:
    """Every word as a hexadecimal address, all checked before any is used."""
    out = []
    for word in words:
        try:
            out.append(int(word, 16))
        except ValueError as err:
            raise CommandError(f"not a hexadecimal address: {word}") from err
    return out


def _free_blocks(session: Session, words: list[str]) -> None:
    """``kmem -f ADDR...``: for each address, the free block holding its page (a struct
    page pointer, kernel virtual or physical address); nothing for a page in use."""
    prog = session.prog
    page_size = prog["PAGE_SIZE"].value_()
    found = []
    for address in _hex_addresses(words):
        block = free_block(prog, address)
        if block is None:
            session.warn(f"cannot determine page for {address:x}")
            continue
        found.append(block)
    session.emit("kmem-f-address", found, lambda: "\n\n".join(
        render_free_block(b, page_size) for b in found))


def _tables(session: Session, args: argparse.Namespace) -> None:
    prog = session.prog
    if args.vmalloc:
        areas = vmap_areas(prog)
        session.emit("kmem-v", areas, lambda: render_vmap_areas(areas))
    elif args.vmstat:
        stats = vm_stats(prog)
        session.emit("kmem-vmstat", stats, lambda: render_vm_stats(stats))
    elif args.nodes:
        layout = memory_layout(prog)
        width = physical_width(prog)
        session.emit("kmem-n", layout, lambda: render_memory_layout(layout, width))
    elif args.free:
        areas = free_areas(prog, session.warn)
        page_size = prog["PAGE_SIZE"].value_()
        session.emit("kmem-f", areas, lambda: render_free_areas(areas, page_size))
    else:
        zones = zone_stats(prog)
        session.emit("kmem-z", zones, lambda: render_zones(zones))
