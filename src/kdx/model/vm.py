"""A task's address space — what crash's ``vm`` shows — as plain records.

``task_vm`` gives the mm_struct, page directory, resident and virtual sizes and every VMA
with its flags and file, read with drgn's helpers (``for_each_vma``, ``task_rss``).
``vma_pages`` translates a VMA page by page for ``vm -p``: the translation reads only page
tables, which makedumpfile keeps, so it works on dumps whose user pages were filtered out
(dump level 31); only the contents of those pages are missing.

Sizes follow crash 8.0.6 (memory.c get_task_mem_usage): RSS counts file, anonymous and
shared-memory pages, each counter taken as 0 when it is negative.
"""

from __future__ import annotations

from dataclasses import dataclass

import drgn
from drgn.helpers.linux.mm import follow_phys, for_each_vma, task_rss, vma_name

from kdx.model.files import TaskId, crash_path, task_id
from kdx.model.reading import READ_ERRORS
from kdx.model.records import Hex
from kdx.textsafe import decode


@dataclass(frozen=True)
class Vma:
    """One virtual memory area. ``file`` is the mapped file's path as crash prints it
    (empty for anonymous memory); ``name`` is the /proc/PID/maps label ([heap], [stack],
    [vdso]...), a kdx addition for JSON readers."""

    address: Hex
    start: Hex
    end: Hex
    flags: Hex
    file: str
    name: str
    pgoff: int


@dataclass(frozen=True)
class TaskVm:
    """The ``vm`` record of one task. A kernel thread has no mm: ``mm`` and ``pgd`` are
    0 and ``vmas`` is empty, as crash shows it."""

    task: TaskId
    mm: Hex
    pgd: Hex
    rss_pages: int
    total_vm_pages: int
    page_size: int
    vmas: tuple[Vma, ...]
    forced_mm: Hex = 0  # vm -M: the mm_struct given for a task that has none

    @property
    def rss_kb(self) -> int:
        return self.rss_pages * self.page_size // 1024

    @property
    def total_vm_kb(self) -> int:
        return self.total_vm_pages * self.page_size // 1024


@dataclass(frozen=True)
class PageMapping:
    """Where one user page is: ``kind`` is ``mapped`` (``physical`` holds the physical
    address), ``file`` (not resident; ``offset`` into the VMA's file), ``unmapped``, or
    ``unreadable`` when the page tables needed are missing from the dump."""

    virtual: Hex
    kind: str
    physical: Hex | None = None
    offset: int | None = None


@dataclass(frozen=True)
class VmaPages:
    """``vm -p`` for one VMA: the VMA and each of its pages."""

    vma: Vma
    pages: tuple[PageMapping, ...]


def _rss_pages(task: drgn.Object) -> int:
    try:
        rss = task_rss(task.prog_, task)
    except READ_ERRORS:
        return 0
    return max(rss.file, 0) + max(rss.anon, 0) + max(rss.shmem, 0)


def _vma(vma: drgn.Object) -> Vma:
    path = ""
    vm_file = vma.vm_file.read_()
    if vm_file and vm_file.f_path.dentry:
        mnt = vm_file.f_path.mnt.read_()
        mount = drgn.container_of(mnt, "struct mount", "mnt") if mnt else None
        path = crash_path(vm_file.f_path.dentry, mount)
    try:
        name = decode(vma_name(vma))
    except READ_ERRORS:
        name = path
    return Vma(address=vma.value_(), start=vma.vm_start.value_(), end=vma.vm_end.value_(),
               flags=vma.vm_flags.value_(), file=path, name=name,
               pgoff=vma.vm_pgoff.value_())


def task_vm(task: drgn.Object, forced_mm: int = 0) -> TaskVm:
    """The ``vm`` record of ``task``: its mm_struct, sizes and VMAs in address order.
    ``forced_mm`` (``vm -M``) gives the VMAs of that mm_struct to a task without one
    (an exiting task whose mm pointer is already cleared); its MM line stays zeros."""
    prog = task.prog_
    page_size = prog["PAGE_SIZE"].value_()
    mm = task.mm.read_()
    if not mm and forced_mm:
        forced = drgn.Object(prog, "struct mm_struct *", forced_mm)
        vmas = tuple(_vma(vma) for vma in for_each_vma(forced))
        return TaskVm(task_id(task), 0, 0, 0, 0, page_size, vmas, forced_mm)
    if not mm:
        return TaskVm(task_id(task), 0, 0, 0, 0, page_size, ())
    vmas = tuple(_vma(vma) for vma in for_each_vma(mm))
    return TaskVm(task=task_id(task), mm=mm.value_(), pgd=mm.pgd.value_(),
                  rss_pages=_rss_pages(task), total_vm_pages=mm.total_vm.value_(),
                  page_size=page_size, vmas=vmas)


def vma_pages(task: drgn.Object, vma: Vma, page_size: int, mm_address: int = 0) -> VmaPages:
    """Translate every page of ``vma`` through ``task``'s page tables (or those of the
    mm_struct at ``mm_address``, for ``vm -M``)."""
    mm = task.mm.read_()
    if not mm and mm_address:
        mm = drgn.Object(task.prog_, "struct mm_struct *", mm_address)
    pages = []
    for virtual in range(vma.start, vma.end, page_size):
        try:
            physical = follow_phys(mm, virtual).value_()
        except drgn.FaultError as err:
            if "not mapped" not in str(err):
                pages.append(PageMapping(virtual, "unreadable"))
            elif vma.file:
                offset = vma.pgoff * page_size + (virtual - vma.start)
                pages.append(PageMapping(virtual, "file", offset=offset))
            else:
                pages.append(PageMapping(virtual, "unmapped"))
            continue
        pages.append(PageMapping(virtual, "mapped", physical=physical))
    return VmaPages(vma, tuple(pages))


def mm_struct_problem(prog: drgn.Program, address: int) -> str | None:
    """Why ``address`` cannot be used as a task's mm_struct (``vm -M``), in crash's
    words, or None: it must be an object of the mm_struct slab cache still in use."""
    from drgn.helpers.linux.slab import find_containing_slab_cache

    try:
        cache = find_containing_slab_cache(prog, address)
        name = cache.name.string_().decode() if cache else ""
    except READ_ERRORS + (drgn.FaultError,):
        name = ""
    if not name.startswith("mm_struct"):
        return "invalid mm_struct address"
    try:
        count = drgn.Object(prog, "struct mm_struct", address=address).mm_count.counter
        if count.value_() == 0:
            return "stale mm_struct address"
    except READ_ERRORS:
        return "invalid mm_struct address"
    return None


#: crash's names of vm_flags bits, in its order (memory.c do_vm_flags). Some bits have
#: two meanings; crash picks one by kernel (GROWSUP needs expand_upwards, HUGEPAGE needs
#: mm_struct.pmd_huge_pte, else MAPPED_COPY).
VM_FLAG_NAMES: tuple[tuple[int, str], ...] = (
    (0x1, "READ"), (0x2, "WRITE"), (0x4, "EXEC"), (0x8, "SHARED"), (0x10, "MAYREAD"),
    (0x20, "MAYWRITE"), (0x40, "MAYEXEC"), (0x80, "MAYSHARE"), (0x100, "GROWSDOWN"),
    (0x200, "GROWSUP|NOHUGEPAGE"), (0x400, "PFNMAP"), (0x800, "DENYWRITE"),
    (0x1000, "EXECUTABLE"), (0x2000, "LOCKED"), (0x4000, "IO"), (0x8000, "SEQ_READ"),
    (0x10000, "RAND_READ"), (0x20000, "DONTCOPY"), (0x40000, "DONTEXPAND"),
    (0x80000, "RESERVED"), (0x400000, "HUGETLB"), (0x100000, "ACCOUNT"),
    (0x800000, "NONLINEAR"), (0x1000000, "HUGEPAGE|MAPPED_COPY"), (0x2000000, "INSERTPAGE"),
    (0x4000000, "ALWAYSDUMP"), (0x8000000, "CAN_NONLINEAR"), (0x10000000, "MIXEDMAP"),
    (0x20000000, "SAO"), (0x40000000, "PFN_AT_MMAP"), (0x80000000, "MERGEABLE"),
)


def vm_flag_names(prog: drgn.Program, flags: int) -> list[str]:
    """``vm -f``: the names crash gives the bits set in ``flags``."""
    try:
        prog.symbol("expand_upwards")
        grows_up = True
    except LookupError:
        grows_up = False
    try:
        huge = prog.type("struct mm_struct").has_member("pmd_huge_pte")
    except LookupError:
        huge = False
    names = []
    for bit, name in VM_FLAG_NAMES:
        if not flags & bit:
            continue
        if name == "GROWSUP|NOHUGEPAGE":
            name = "GROWSUP" if grows_up else "NOHUGEPAGE"
        elif name == "HUGEPAGE|MAPPED_COPY":
            name = "HUGEPAGE" if huge else "MAPPED_COPY"
        names.append(name)
    return names
