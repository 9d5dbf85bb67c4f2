"""``kmem``: memory figures (``-i``), slab caches (``-s [CACHE]``) and ``kmem ADDR``.

``kmem -i`` is the meminfo-like table crash prints, computed by crash's rules from the
kernel's counters and page array; ``kmem -s`` lists every slab cache with its object
size, allocated and total objects, slabs and slab size; ``kmem ADDR`` says what an
address is: a symbol, part of a task, a vmalloc area, a slab object, and the page it is
in. Records come from kdx.model.memory; layouts from kdx.render.crash.kmem.
"""

from __future__ import annotations

import argparse

from kdx.commands.crash.vm import physical_width
from kdx.model.memory import find_cache, identify, memory_figures, slab_cache_record, slab_caches
from kdx.render.crash.kmem import render_address, render_caches, render_kmeminfo
from kdx.session.command import CommandError, CrashCommand, make_parser
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
    parser.add_argument("args", nargs="*", metavar="CACHE|ADDR",
                        help="with -s: a cache name or kmem_cache address; alone: "
                        "addresses to identify")
    return parser


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


COMMANDS = [
    CrashCommand("kmem", "memory figures (-i), slab caches (-s), or what an address is",
                 _parser, _kmem),
]
