"""``kmem -s``: slab caches from drgn's slab helpers, and the slab object an address lies in
(which ``kmem ADDR`` reports), kept together because both read ``struct kmem_cache``.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass

import drgn
from drgn.helpers.linux.cpumask import for_each_online_cpu
from drgn.helpers.linux.mm import compound_head, page_to_pfn, page_to_virt, virt_to_page
from drgn.helpers.linux.mmzone import for_each_online_pgdat
from drgn.helpers.linux.percpu import per_cpu_ptr
from drgn.helpers.linux.slab import (
    for_each_slab_cache,
    get_slab_cache_aliases,
    slab_cache_order,
    slab_cache_usage,
    slab_object_info,
)

from kdx.model.memory._errors import _READ_OR_TYPE_ERRORS
from kdx.model.records import Hex
from kdx.textsafe import decode

__all__ = ["SlabCache", "SlabObject", "find_cache", "slab_cache_record", "slab_caches"]


@dataclass(frozen=True)
class SlabCache:
    """One ``kmem -s`` line. The counts are None when the cache's lists could not be
    walked (crash prints ``?`` there)."""

    address: Hex
    name: str
    object_size: int
    allocated: int | None
    total: int | None
    slabs: int | None
    slab_size: int


def _remote_free(cache: drgn.Object) -> int:
    """Objects freed by other CPUs into the slabs that CPUs are allocating from.

    SLUB puts them on the active slab's own freelist and lowers its ``inuse``; drgn
    0.3.0's slab_cache_usage counts only the per-CPU freelists, so these would count as
    allocated. crash counts them (objects - inuse of each CPU slab), and so does kdx.
    """
    try:
        cpu_slab = cache.cpu_slab.read_()
    except AttributeError:
        return 0
    member = "slab" if cpu_slab.type_.type.has_member("slab") else "page"
    extra = 0
    for cpu in for_each_online_cpu(cache.prog_):
        slab = per_cpu_ptr(cpu_slab, cpu).member_(member).read_()
        if not slab:
            continue
        slab = drgn.cast(_slab_pointer_type(cache.prog_), slab)
        if slab.slab_cache.value_() != cache.value_():
            continue
        extra += max(slab.objects.value_() - slab.inuse.value_(), 0)
    return extra


def _slab_pointer_type(prog: drgn.Program) -> drgn.Type:
    try:
        return prog.type("struct slab *")
    except LookupError:
        return prog.type("struct page *")


def slab_cache_record(cache: drgn.Object, page_size: int) -> SlabCache:
    name = decode(cache.name.string_())
    try:
        usage = slab_cache_usage(cache)
        free = usage.free_objs + _remote_free(cache)
        allocated, total, slabs = usage.num_objs - free, usage.num_objs, usage.num_slabs
    except _READ_OR_TYPE_ERRORS:
        allocated = total = slabs = None
    try:
        order = slab_cache_order(cache)
    except _READ_OR_TYPE_ERRORS:
        order = 0
    return SlabCache(cache.value_(), name, cache.object_size.value_(), allocated, total,
                     slabs, page_size << order)


def slab_caches(prog: drgn.Program) -> list[SlabCache]:
    """Every slab cache in the kernel's list order (newest first), as ``kmem -s``."""
    page_size = prog["PAGE_SIZE"].value_()
    return [slab_cache_record(c, page_size) for c in for_each_slab_cache(prog)]


def find_cache(prog: drgn.Program, word: str) -> tuple[drgn.Object | None, str | None]:
    """The cache ``word`` names (a name, an alias of a merged cache, or a kmem_cache
    address) and, for an alias, the name it stands for."""
    address = None
    with contextlib.suppress(ValueError):
        address = int(word, 16)
    for cache in for_each_slab_cache(prog):
        if cache.value_() == address or cache.name.string_() == word.encode():
            return cache, None
    try:
        target = get_slab_cache_aliases(prog).get(word)
    except _READ_OR_TYPE_ERRORS:
        target = None
    if target:
        for cache in for_each_slab_cache(prog):
            if cache.name.string_() == target.encode():
                return cache, target
    return None, None


# -- kmem ADDR: the slab object an address lies in --------------------------------------


@dataclass(frozen=True)
class SlabObject:
    """The slab object holding an address: its cache, its slab, and the object."""

    cache: SlabCache
    slab: Hex
    memory: Hex
    node: int
    objects: int
    allocated_objects: int
    object: Hex
    allocated: bool


def _page_node(prog: drgn.Program, pfn: int) -> int:
    """The NUMA node whose span holds ``pfn`` (0 when none does)."""
    for pgdat in for_each_online_pgdat(prog):
        start = pgdat.node_start_pfn.value_()
        if start <= pfn < start + pgdat.node_spanned_pages.value_():
            return pgdat.node_id.value_()
    return 0


def _slab_object(prog: drgn.Program, address: int) -> SlabObject | None:
    """The slab object holding ``address``, with its slab's object counts (each object
    asked of drgn, so the counts agree with which objects are marked free)."""
    info = slab_object_info(prog, address)
    if info is None or not info.slab_cache:
        return None
    cache = info.slab_cache
    head = compound_head(virt_to_page(prog, address))
    memory = page_to_virt(head).value_()
    objects = info.slab.objects.value_()
    size = cache.size.value_()
    pad = cache.red_left_pad.value_() if cache.type_.type.has_member("red_left_pad") else 0
    allocated = 0
    for i in range(objects):
        other = slab_object_info(prog, memory + pad + i * size)
        allocated += bool(other and other.allocated)
    return SlabObject(cache=slab_cache_record(cache, prog["PAGE_SIZE"].value_()),
                      slab=info.slab.value_(), memory=memory,
                      node=_page_node(prog, page_to_pfn(head).value_()), objects=objects,
                      allocated_objects=allocated, object=info.address,
                      allocated=bool(info.allocated))
