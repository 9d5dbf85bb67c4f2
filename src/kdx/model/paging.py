"""Address translation as crash's ``vtop``, ``ptov``, ``pte``, ``btop`` and ``ptob`` show it.

``vtop`` is worth having only if it shows the real page-table walk: the physical address
of every entry read and its contents, so an engineer can check a corrupt or missing
mapping entry by entry. drgn translates addresses but does not expose the entries, so
the x86_64 walk is done here from the page tables in the dump (read physically, as the
MMU does), following crash 8.0.6 (x86_64.c x86_64_kvtop/x86_64_uvtop_level4). Only
x86_64 is supported; other architectures get one clear error.
"""

from __future__ import annotations

from dataclasses import dataclass

import drgn
from drgn.helpers.linux.mm import follow_phys, phys_to_page, virt_to_phys

from kdx.model.memory import PageInfo, page_flag_names, page_info
from kdx.model.records import Hex
from kdx.model.vm import Vma, task_vm

PAGE_PRESENT = 1 << 0
PAGE_PSE = 1 << 7
PAGE_PROTNONE = 1 << 8
#: The bits crash names in a PTE, in its order (x86_64_translate_pte).
PTE_FLAGS = ((1 << 0, "PRESENT"), (1 << 1, "RW"), (1 << 2, "USER"), (1 << 3, "PWT"),
             (1 << 4, "PCD"), (1 << 5, "ACCESSED"), (1 << 6, "DIRTY"), (1 << 7, "PSE"),
             (1 << 8, "PROTNONE"), (1 << 8, "GLOBAL"), (1 << 63, "NX"))
PHYSICAL_PAGE_MASK = ((1 << 52) - 1) & ~0xFFF
_SIZES = {"PUD": (30, "1GB"), "PMD": (21, "2MB")}


class TranslateError(Exception):
    """The translation cannot be done at all (wrong architecture, no page tables)."""


@dataclass(frozen=True)
class TableEntry:
    """One page-table entry read: its level, its physical address and its contents."""

    level: str
    address: Hex
    value: Hex


@dataclass(frozen=True)
class PteInfo:
    """A page-table entry decoded as crash's ``pte`` does."""

    pte: Hex
    physical: Hex
    present: bool
    flags: tuple[str, ...]


@dataclass(frozen=True)
class Translation:
    """Everything ``vtop`` prints for one address.

    ``physical`` is None when the address is not mapped; ``accessible`` is False for a
    user address outside every VMA (crash then prints nothing more). ``kernel_pgd`` and
    ``pgd_entry`` are crash's PGD DIRECTORY / PAGE DIRECTORY lines of a kernel walk;
    ``page_base`` and ``page_size`` its PAGE line (size "" for 4 KB, "2MB", "1GB").
    """

    virtual: Hex
    user: bool
    physical: Hex | None
    accessible: bool = True
    kernel_pgd: Hex | None = None
    pgd_entry: Hex | None = None
    entries: tuple[TableEntry, ...] = ()
    page_base: Hex | None = None
    page_size: str = ""
    zero_page: bool = False
    pte: PteInfo | None = None
    vma: Vma | None = None
    page: PageInfo | None = None
    error: str | None = None


def decode_pte(value: int) -> PteInfo:
    """crash's reading of a PTE: the frame address, whether it maps a page, and the
    names of its bits (PSE only when present, PROTNONE only when not)."""
    present = bool(value & (PAGE_PRESENT | PAGE_PROTNONE))
    names = []
    for bit, name in PTE_FLAGS:
        if not value & bit:
            continue
        if name == "PSE" and not value & PAGE_PRESENT:
            continue
        if name == "PROTNONE" and value & PAGE_PRESENT:
            continue
        names.append(name)
    return PteInfo(value, value & PHYSICAL_PAGE_MASK, present, tuple(names))


def check_x86_64(prog: drgn.Program) -> None:
    arch = prog.platform.arch if prog.platform else None
    if arch != drgn.Architecture.X86_64:
        name = arch.name if arch is not None else "unknown"
        raise TranslateError(f"page-table walks are implemented for x86_64 only, not "
                             f"{name}")


def five_level(prog: drgn.Program) -> bool:
    """Whether the kernel runs with 5-level page tables (LA57): VMCOREINFO's
    ``NUMBER(pgtable_l5_enabled)`` (x86_64 kernels write it; it needs no types, so a dump
    opened without its vmlinux walks the right number of levels), else the variable."""
    cached = prog.cache.get(_FIVE_LEVEL_KEY)
    if cached is None:
        cached = prog.cache[_FIVE_LEVEL_KEY] = _read_five_level(prog)
    return cached


_FIVE_LEVEL_KEY = "kdx.paging.five_level"


def _read_five_level(prog: drgn.Program) -> bool:
    from kdx.model.logring import vmcoreinfo_lines

    recorded = vmcoreinfo_lines(prog).get("NUMBER(pgtable_l5_enabled)")
    if recorded is not None and recorded.strip().isdigit():
        return recorded.strip() != "0"
    for name in ("__pgtable_l5_enabled", "pgtable_l5_enabled"):
        try:
            return bool(prog[name].value_())
        except (KeyError, LookupError, drgn.FaultError, TypeError):
            continue
    return False


def kernel_space_start(prog: drgn.Program) -> int:
    return 1 << 63


def _read_entry(prog: drgn.Program, address: int) -> int:
    return int.from_bytes(prog.read(address, 8, True), "little")


def _levels(prog: drgn.Program) -> list[tuple[str, int]]:
    if five_level(prog):
        return [("PGD", 48), ("P4D", 39), ("PUD", 30), ("PMD", 21), ("PTE", 12)]
    return [("PGD", 39), ("PUD", 30), ("PMD", 21), ("PTE", 12)]


def walk_page_tables(prog: drgn.Program, pgd: int, vaddr: int, *, user: bool) \
        -> tuple[list[TableEntry], int | None, str, int | None]:
    """Walk from the top-level table at kernel address ``pgd`` to ``vaddr``'s page.

    Returns the entries read, the physical address (None if not mapped), the size of a
    huge page ("2MB"/"1GB", else ""), and the last entry when it is a non-present,
    non-zero PTE (a swap or file entry). A user walk accepts PROTNONE entries as crash
    does (NUMA hinting faults)."""
    # The kernel's top table lives in the kernel image, not the direct map.
    table = follow_phys(prog["init_mm"].address_of_(), pgd).value_()
    entries: list[TableEntry] = []
    present_bits = PAGE_PRESENT | (PAGE_PROTNONE if user else 0)
    for level, shift in _levels(prog):
        address = table + ((vaddr >> shift) & 0x1FF) * 8
        value = _read_entry(prog, address)
        entries.append(TableEntry(level, address, value))
        needed = present_bits if level in ("PMD", "PTE") else PAGE_PRESENT
        if not value & needed:
            leftover = value if level == "PTE" and value else None
            return entries, None, "", leftover
        if level in _SIZES and value & PAGE_PSE:
            bits, label = _SIZES[level]
            base = value & PHYSICAL_PAGE_MASK & ~((1 << bits) - 1)
            return entries, base + (vaddr & ((1 << bits) - 1)), label, None
        if level == "PTE":
            return entries, (value & PHYSICAL_PAGE_MASK) + (vaddr & 0xFFF), "", None
        table = value & PHYSICAL_PAGE_MASK
    return entries, None, "", None


def _zero_page(prog: drgn.Program) -> int | None:
    try:
        return virt_to_phys(prog, prog.symbol("empty_zero_page").address).value_()
    except (LookupError, drgn.FaultError, ValueError):
        return None


def _page(prog: drgn.Program, physical: int) -> PageInfo | None:
    try:
        return page_info(prog, phys_to_page(prog, physical), page_flag_names(prog))
    except (drgn.FaultError, LookupError, ValueError):
        return None


def _vma_of(task: drgn.Object, vaddr: int) -> Vma | None:
    for vma in task_vm(task).vmas:
        if vma.start <= vaddr < vma.end:
            return vma
    return None


def translate(prog: drgn.Program, vaddr: int, task: drgn.Object | None, *,
              user: bool | None = None) -> Translation:
    """``vtop`` of ``vaddr``: a kernel address through the kernel's page tables (or
    ``task``'s with ``vtop -c``), a user address through ``task``'s."""
    check_x86_64(prog)
    if user is None:
        user = vaddr < kernel_space_start(prog)
    if user:
        if task is None or not task.mm:
            return Translation(vaddr, True, None, accessible=False,
                               error="no user address space")
        vma = _vma_of(task, vaddr)
        if vma is None:
            return Translation(vaddr, True, None, accessible=False)
        pgd = task.mm.pgd.value_()
        kernel_pgd = pgd_entry = None
    else:
        # Kernel addresses go through the kernel's tables even with -c, as in crash.
        vma = None
        pgd = prog["init_mm"].pgd.value_()
        kernel_pgd = pgd
        pgd_entry = None
    try:
        entries, physical, size, leftover = walk_page_tables(prog, pgd, vaddr, user=user)
    except drgn.FaultError as err:
        return Translation(vaddr, user, None, vma=vma, kernel_pgd=kernel_pgd,
                           error=f"page table not in the dump: {err.address:x}")
    if kernel_pgd is not None and entries:
        pgd_entry = entries[0].value
    zero = _zero_page(prog)
    base = None
    pte = None
    if physical is not None:
        mask = {"1GB": (1 << 30) - 1, "2MB": (1 << 21) - 1}.get(size, 0xFFF)
        base = physical & ~mask
        pte = decode_pte(entries[-1].value)
    elif leftover:
        pte = decode_pte(leftover)
    page = _page(prog, physical) if physical is not None else None
    return Translation(vaddr, user, physical, kernel_pgd=kernel_pgd, pgd_entry=pgd_entry,
                       entries=tuple(entries), page_base=base, page_size=size,
                       zero_page=base is not None and base == zero, pte=pte, vma=vma,
                       page=page)


def page_offset(prog: drgn.Program) -> int:
    """The base of the direct map (page_offset_base under KASLR)."""
    try:
        return prog["page_offset_base"].value_()
    except KeyError:
        return 0xFFFF888000000000
