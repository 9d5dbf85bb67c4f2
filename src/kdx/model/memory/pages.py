"""``kmem ADDR``, ``-p`` and ``-v``: what one address is (symbol, slab object, owning task,
vmap area, page), the ``struct page`` records and their flag names, and the vmalloc
areas.

The page lookups here are also what ``kmem -f`` uses to find the free block a page
belongs to, and what ``vtop`` and ``files -p`` use to describe a page.
"""

from __future__ import annotations

from dataclasses import dataclass

import drgn
from drgn.helpers.common.memory import identify_address
from drgn.helpers.linux.mm import (
    find_vmap_area,
    follow_phys,
    for_each_valid_page_range,
    in_direct_map,
    page_to_phys,
    phys_to_page,
    virt_to_page,
    vmalloc_to_page,
)
from drgn.helpers.linux.panic import panic_task
from drgn.helpers.linux.pid import for_each_task

from kdx.model.files import TaskId, task_id
from kdx.model.memory._errors import _READ_OR_TYPE_ERRORS, _safe
from kdx.model.memory.slab import SlabObject, _slab_object
from kdx.model.names import address_namer, symbol_hit
from kdx.model.records import Hex
from kdx.model.symbols import SymbolHit
from kdx.model.system import task_state_string
from kdx.textsafe import decode

__all__ = ["AddressReport", "PageInfo", "TaskContext", "VmapArea", "all_pages", "identify",
           "page_flag_names", "page_info", "page_of", "vmap_areas"]


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


# -- kmem -p, -v ------------------------------------------------------------------------


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
