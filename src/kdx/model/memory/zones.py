"""Memory figures, slab caches and what an address is — crash's ``kmem`` as records.

``memory_figures`` computes the ``kmem -i`` table by crash 8.0.6's rules (memory.c
dump_kmeminfo) so both tools show the same page counts, with one exception where crash
misleads (COMMITTED, see docs/crash-differences.md). ``MemoryFigures`` is also what the
HTML report's memory chart reads, so it holds page counts and the page size, nothing
pre-formatted. ``slab_caches`` gives ``kmem -s`` from drgn's slab helpers, and
``identify`` gathers what ``kmem ADDR`` says about one address.
"""

from __future__ import annotations

import contextlib
import struct
from dataclasses import dataclass
from typing import Callable

import drgn
from drgn.helpers.common.memory import identify_address
from drgn.helpers.linux.cpumask import for_each_online_cpu
from drgn.helpers.linux.hugetlb import for_each_hstate
from drgn.helpers.linux.list import list_for_each_entry
from drgn.helpers.linux.mm import (
    compound_head,
    find_vmap_area,
    follow_phys,
    for_each_valid_page_range,
    in_direct_map,
    page_to_pfn,
    page_to_phys,
    page_to_virt,
    pfn_to_page,
    phys_to_page,
    totalram_pages,
    virt_to_page,
    vm_commit_limit,
    vm_memory_committed,
    vmalloc_to_page,
)
from drgn.helpers.linux.mmzone import for_each_online_pgdat
from drgn.helpers.linux.panic import panic_task
from drgn.helpers.linux.percpu import per_cpu_ptr
from drgn.helpers.linux.pid import for_each_task
from drgn.helpers.linux.slab import (
    for_each_slab_cache,
    get_slab_cache_aliases,
    slab_cache_order,
    slab_cache_usage,
    slab_object_info,
)
from drgn.helpers.linux.swap import for_each_swap_info, swap_usage_in_pages, total_swapcache_pages
from drgn.helpers.linux.vmstat import global_node_page_state, global_zone_page_state

from kdx.model.files import TaskId, task_id
from kdx.model.names import address_namer, symbol_hit
from kdx.model.reading import READ_ERRORS
from kdx.model.records import Hex
from kdx.model.symbols import SymbolHit
from kdx.model.system import task_state_string
from kdx.textsafe import decode

#: READ_ERRORS, and the TypeError drgn's mm and slab helpers raise when a pointer read
#: from a damaged dump has a type they do not take: kmem reads through such pointers.
_READ_OR_TYPE_ERRORS = (*READ_ERRORS, TypeError)
Warn = Callable[[str], None]


def _no_warn(message: str) -> None:
    return None


# -- kmem -i ----------------------------------------------------------------------------


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


# -- kmem -s ----------------------------------------------------------------------------


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


# -- kmem ADDR --------------------------------------------------------------------------


@dataclass(frozen=True)
class PageInfo:
    """One struct page as crash's page table lines show it."""

    page: Hex
    physical: Hex
    mapping: Hex
    index: int
    count: int
    flags: Hex
    flag_names: tuple[str, ...]


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


@dataclass(frozen=True)
class VmapArea:
    vmap_area: Hex
    vm_struct: Hex
    start: Hex
    end: Hex
    size: int


@dataclass(frozen=True)
class TaskContext:
    """The task an address belongs to (its task_struct or stack), as crash's
    show_context prints it."""

    task: TaskId
    thread_info: Hex
    state: str


@dataclass(frozen=True)
class AddressReport:
    """What ``kmem ADDR`` found. ``description`` is drgn's one-line identification
    (``slab object: dentry+0x10``...), a kdx addition."""

    address: Hex
    symbol: SymbolHit | None  # as ``sym ADDR`` names it
    context: TaskContext | None
    vmap: VmapArea | None
    slab: SlabObject | None
    page: PageInfo | None
    description: str | None
    physical: bool = False


def page_flag_names(prog: drgn.Program) -> list[tuple[int, str]]:
    """The kernel's own page flag names (pageflag_names), as crash decodes flags."""
    names = []
    try:
        for entry in prog["pageflag_names"]:
            mask = entry.mask.value_()
            if not entry.name.value_():
                break
            names.append((mask, decode(entry.name.string_())))
    except _READ_OR_TYPE_ERRORS:
        return []
    return names


def page_info(prog: drgn.Program, page: drgn.Object,
              names: list[tuple[int, str]]) -> PageInfo:
    flags = page.flags.value_()
    count_member = "_refcount" if page.type_.type.has_member("_refcount") else "_count"
    return PageInfo(page=page.value_(), physical=page_to_phys(page).value_(),
                    mapping=page.mapping.value_(), index=page.index.value_(),
                    count=page.member_(count_member).counter.value_(), flags=flags,
                    flag_names=tuple(n for mask, n in names if flags & mask))


def _symbol(prog: drgn.Program, address: int) -> SymbolHit | None:
    """The symbol line crash's ``kmem ADDR`` starts with, for an address in the kernel
    image or a module: the same as ``sym ADDR``."""
    namer = address_namer(prog)
    try:
        if not namer.in_range(address):
            return None
        return symbol_hit(namer, address)
    except _READ_OR_TYPE_ERRORS:
        return None


def _task_context(prog: drgn.Program, task: drgn.Object) -> TaskContext:
    state = task_state_string(prog, task)
    try:
        if task.value_() == panic_task(prog).value_():
            state += " (PANIC)"
        elif task.on_cpu.value_():
            state += " (ACTIVE)"
    except _READ_OR_TYPE_ERRORS:
        pass
    return TaskContext(task_id(task), task.value_(), state)


def _owner_task(prog: drgn.Program, address: int) -> drgn.Object | None:
    """The task whose task_struct or kernel stack holds ``address``."""
    task_size = _task_struct_size(prog)
    try:
        stack_size = prog["THREAD_SIZE"].value_()
    except KeyError:
        stack_size = 4 * prog["PAGE_SIZE"].value_()
    for task in for_each_task(prog):
        start = task.value_()
        if start <= address < start + task_size:
            return task
        stack = task.stack.value_()
        if stack <= address < stack + stack_size:
            return task
    return None


def _task_struct_size(prog: drgn.Program) -> int:
    """The real size of a task_struct: on x86 the FPU state at its end is sized at boot
    (arch_task_struct_size), so the type's size overstates it."""
    try:
        return prog["arch_task_struct_size"].value_()
    except (KeyError, drgn.FaultError):
        return prog.type("struct task_struct").size


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


def _vmap(prog: drgn.Program, address: int) -> VmapArea | None:
    try:
        area = find_vmap_area(prog, address)
    except _READ_OR_TYPE_ERRORS:
        return None
    if not area:
        return None
    vm = area.vm.read_()
    start, end = area.va_start.value_(), area.va_end.value_()
    return VmapArea(area.value_(), vm.value_(), start, end, end - start)


def _page_object(prog: drgn.Program, address: int, direct: bool) -> drgn.Object | None:
    """The struct page ``address`` is (when it points into the page array) or lies in."""
    page_size = prog.type("struct page").size
    try:
        for start_pfn, end_pfn, mem_map in for_each_valid_page_range(prog):
            base = mem_map.value_()
            if base + start_pfn * page_size <= address < base + end_pfn * page_size:
                index = (address - base) // page_size
                return drgn.Object(prog, "struct page *", base + index * page_size)
        if direct:
            return virt_to_page(prog, address)
        # Any other kernel address (the kernel image, say): walk the kernel page tables.
        return phys_to_page(prog, follow_phys(prog["init_mm"].address_of_(), address))
    except _READ_OR_TYPE_ERRORS:
        return None


def identify(prog: drgn.Program, address: int) -> AddressReport:
    """Everything ``kmem ADDR`` reports about ``address`` as crash orders it: the
    symbol; for a vmalloc address the owning task and the vmap area; otherwise the slab
    object and the owning task; then the page the address is in (or is)."""
    names = page_flag_names(prog)
    if address < _kernel_space_start(prog):
        # Not a kernel virtual address: crash takes it as a physical one.
        page_obj = _safe(lambda: phys_to_page(prog, address), None)
        page = _safe(lambda: page_info(prog, page_obj, names), None) if page_obj else None
        return AddressReport(address, None, None, None, None, page, None, physical=True)
    vmap = _vmap(prog, address)
    direct = bool(_safe(lambda: in_direct_map(prog, address), False))
    slab = None
    context = None
    if vmap is not None:
        page_obj = _safe(lambda: vmalloc_to_page(prog, address), None)
    else:
        page_obj = _page_object(prog, address, direct)
        if direct:
            slab = _safe(lambda: _slab_object(prog, address), None)
    if vmap is not None or direct:
        owner = _safe(lambda: _owner_task(prog, address), None)
        if owner is not None:
            context = _safe(lambda: _task_context(prog, owner), None)
    page = _safe(lambda: page_info(prog, page_obj, names), None) if page_obj is not None \
        else None
    return AddressReport(address=address, symbol=_symbol(prog, address),
                         context=context, vmap=vmap, slab=slab, page=page,
                         description=_safe(lambda: identify_address(prog, address), None))


def _kernel_space_start(prog: drgn.Program) -> int:
    """Where kernel virtual addresses begin: the top half of the address space."""
    bits = 64 if prog.platform is None or prog.platform.flags & drgn.PlatformFlags.IS_64_BIT \
        else 32
    return 1 << (bits - 1)


def _safe(read: Callable[[], object], default: object) -> object:
    try:
        return read()
    except _READ_OR_TYPE_ERRORS:
        return default


# -- kmem -p, -v, -V, -z -----------------------------------------------------------------


def page_of(prog: drgn.Program, address: int) -> PageInfo | None:
    """``kmem -p ADDR``: the page ``address`` is (a struct page pointer), or holds (a
    kernel virtual or, below kernel space, a physical address)."""
    names = page_flag_names(prog)
    if address < _kernel_space_start(prog):
        page = _safe(lambda: phys_to_page(prog, address), None)
    else:
        direct = bool(_safe(lambda: in_direct_map(prog, address), False))
        page = _page_object(prog, address, direct)
    if page is None:
        return None
    return _safe(lambda: page_info(prog, page, names), None)  # type: ignore[return-value]


def all_pages(prog: drgn.Program) -> list[PageInfo]:
    """``kmem -p``: every struct page of the memory map, in PFN order."""
    names = page_flag_names(prog)
    pages = []
    for start_pfn, end_pfn, mem_map in for_each_valid_page_range(prog):
        for pfn in range(start_pfn, end_pfn):
            info = _safe(lambda m=mem_map, p=pfn: page_info(prog, m + p, names), None)
            if info is not None:
                pages.append(info)
    return pages


def vmap_areas(prog: drgn.Program) -> list[VmapArea]:
    """``kmem -v``: the vmalloc areas that have a vm_struct, by address."""
    from drgn.helpers.linux.mm import for_each_vmap_area

    areas = []
    for area in for_each_vmap_area(prog):
        vm = area.vm.read_()
        if not vm:
            continue
        start, end = area.va_start.value_(), area.va_end.value_()
        areas.append(VmapArea(area.value_(), vm.value_(), start, end, end - start))
    return sorted(areas, key=lambda a: a.start)


@dataclass(frozen=True)
class VmStats:
    """``kmem -V``: the kernel's global counters by their enum names (zone, node and,
    on kernels that have it, NUMA items), and the vm events summed over CPUs."""

    zone: tuple[tuple[str, int], ...]
    node: tuple[tuple[str, int], ...]
    numa: tuple[tuple[str, int], ...]
    events: tuple[tuple[str, int], ...]


def _enum_names(prog: drgn.Program, type_name: str, count_name: str) -> list[str]:
    """Enumerator names of ``type_name`` below its ``NR_...`` count, by value."""
    try:
        enum = prog.type(f"enum {type_name}")
    except LookupError:
        return []
    limit = dict(enum.enumerators or ()).get(count_name)
    names: dict[int, str] = {}
    for name, value in enum.enumerators or ():
        if limit is not None and value >= limit:
            continue
        names[value] = name  # crash keeps the last name of an aliased value
    return [names[v] for v in sorted(names)]


def _counters(prog: drgn.Program, symbol: str, names: list[str]) -> tuple[tuple[str, int], ...]:
    try:
        array = prog[symbol]
    except KeyError:
        return ()
    return tuple((name, array[i].counter.value_()) for i, name in enumerate(names))


def _vm_events(prog: drgn.Program) -> tuple[tuple[str, int], ...]:
    names = _enum_names(prog, "vm_event_item", "NR_VM_EVENT_ITEMS")
    try:
        states = prog["vm_event_states"]
    except KeyError:
        return ()
    totals = [0] * len(names)
    for cpu in for_each_online_cpu(prog):
        events = per_cpu_ptr(states.address_of_(), cpu).event
        raw = prog.read(events.address_, 8 * len(names))
        for i in range(len(names)):
            totals[i] += struct.unpack_from("<Q", raw, 8 * i)[0]
    return tuple(zip(names, (t & ((1 << 64) - 1) for t in totals)))


def vm_stats(prog: drgn.Program) -> VmStats:
    zone = _counters(prog, "vm_zone_stat",
                     _enum_names(prog, "zone_stat_item", "NR_VM_ZONE_STAT_ITEMS"))
    node = _counters(prog, "vm_node_stat",
                     _enum_names(prog, "node_stat_item", "NR_VM_NODE_STAT_ITEMS"))
    numa = ()
    with contextlib.suppress(KeyError, LookupError):
        if len(prog["vm_numa_stat"]):
            numa = _counters(prog, "vm_numa_stat",
                             _enum_names(prog, "numa_stat_item", "NR_VM_NUMA_STAT_ITEMS"))
    return VmStats(zone, node, numa, _safe(lambda: _vm_events(prog), ()))  # type: ignore[arg-type]


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
