"""crash's ``vm`` layout: the MM/PGD/RSS/TOTAL_VM block, then one line per VMA.

Columns follow crash 8.0.6 memory.c (PRINT_VM_DATA, PRINT_VMA_DATA, vm_area_page_dump):
kernel addresses in 16 columns, user addresses right-aligned in 10, flags in hex padded to
six, and for ``vm -p`` the virtual address left-aligned in 10 beside the physical one.
"""

from __future__ import annotations

from kdx.model.vm import PageMapping, TaskVm, Vma, VmaPages
from kdx.render.crash.layout import (
    UVADDR_WIDTH,
    VADDR_WIDTH,
    field,
    hexaddr,
    rstrip_lines,
    task_header,
)

VMA_HEADER = (field("VMA", VADDR_WIDTH, center=True, left=True) + " "
              + field("START", UVADDR_WIDTH, center=True, right=True) + " "
              + field("END", UVADDR_WIDTH, center=True, right=True) + "  FLAGS FILE")


def mm_lines(vm: TaskVm) -> list[str]:
    """The two lines of crash's MM/PGD/RSS/TOTAL_VM block (zeros for a kernel thread)."""
    head = (field("MM", VADDR_WIDTH, center=True, left=True) + "  "
            + field("PGD", VADDR_WIDTH, center=True, left=True) + "  "
            + field("RSS", 6, center=True, left=True) + "  "
            + field("TOTAL_VM", 8, center=True, left=True))
    values = (field(hexaddr(vm.mm), VADDR_WIDTH, center=True, left=True) + "  "
              + field(hexaddr(vm.pgd), VADDR_WIDTH, center=True, left=True) + "  "
              + field(f"{vm.rss_kb}k", 6, center=True, left=True) + "  "
              + field(f"{vm.total_vm_kb}k", 8, center=True, left=True))
    return [head, values]


def vma_line(vma: Vma) -> str:
    return (f"{field(hexaddr(vma.address), VADDR_WIDTH, center=True, left=True)} "
            f"{field(hexaddr(vma.start), UVADDR_WIDTH, right=True)} "
            f"{field(hexaddr(vma.end), UVADDR_WIDTH, right=True)} "
            f"{vma.flags:6x} {vma.file}")


def render_vm(vm: TaskVm) -> str:
    """``vm`` for one task: header, MM block, VMA table (nothing more without an mm)."""
    t = vm.task
    lines = [task_header(t.pid, t.task, t.cpu, t.command), *mm_lines(vm)]
    if vm.mm or vm.forced_mm:
        lines.append(VMA_HEADER)
        lines.extend(vma_line(v) for v in vm.vmas)
    return rstrip_lines("\n".join(lines))


def page_line(page: PageMapping, width: int, file: str) -> str:
    """One ``vm -p`` row; ``width`` is the physical-address column (at least 8)."""
    virtual = field(hexaddr(page.virtual), UVADDR_WIDTH, left=True)
    if page.kind == "mapped" and page.physical is not None:
        return f"{virtual}  {field(hexaddr(page.physical), width, right=True)}"
    if page.kind == "file":
        return f"{virtual}  FILE: {file}  OFFSET: {page.offset or 0:x}"
    if page.kind == "unreadable":
        return f"{virtual}  (page table not in dump)"
    return f"{virtual}  (not mapped)"


def page_head(physical_width: int) -> str:
    return (field("VIRTUAL", UVADDR_WIDTH, left=True) + "  "
            + field("PHYSICAL", max(physical_width, 8), left=True))


def render_vm_flags(flags: int, names: list[str]) -> str:
    """``vm -f``: the value and its bits' names."""
    return f"{flags:x}: (" + "|".join(names) + ")"


def render_single_vma(vm: TaskVm, area: VmaPages | None, physical_width: int) -> str:
    """``vm -P VMA``: the task header, the VMA and its pages, or ``(not found)``."""
    t = vm.task
    lines = [task_header(t.pid, t.task, t.cpu, t.command)]
    if area is None:
        lines.append("(not found)")
    else:
        width = max(physical_width, 8)
        lines += [VMA_HEADER, vma_line(area.vma), page_head(width),
                  *(page_line(p, width, area.vma.file) for p in area.pages)]
    return rstrip_lines("\n".join(lines))


def render_reference(vm: TaskVm, blocks: list[tuple[str, object]], physical_width: int,
                     mm_only: bool = False) -> str:
    """``vm -R``: nothing when nothing matched; else the task header and MM block, then
    ``blocks`` in order: ``("vma-header", None)``, ``("vma", Vma)`` or ``("pages",
    VmaPages)`` (a page header and the matching pages), and a blank line."""
    if not blocks and not mm_only:
        return ""
    t = vm.task
    width = max(physical_width, 8)
    lines = [task_header(t.pid, t.task, t.cpu, t.command), *mm_lines(vm)]
    for kind, item in blocks:
        if kind == "vma-header":
            lines.append(VMA_HEADER)
        elif kind == "vma":
            lines.append(vma_line(item))  # type: ignore[arg-type]
        else:
            area: VmaPages = item  # type: ignore[assignment]
            lines.append(page_head(width))
            lines.extend(page_line(p, width, area.vma.file) for p in area.pages)
    return rstrip_lines("\n".join(lines)) + "\n\n"


def render_vm_pages(vm: TaskVm, areas: list[VmaPages], physical_width: int) -> str:
    """``vm -p``: the MM block, then each VMA followed by its page translations."""
    t = vm.task
    lines = [task_header(t.pid, t.task, t.cpu, t.command), *mm_lines(vm)]
    page_head = (field("VIRTUAL", UVADDR_WIDTH, left=True) + "  "
                 + field("PHYSICAL", max(physical_width, 8), left=True))
    for area in areas:
        lines.append(VMA_HEADER)
        lines.append(vma_line(area.vma))
        lines.append(page_head)
        lines.extend(page_line(p, max(physical_width, 8), area.vma.file)
                     for p in area.pages)
    return rstrip_lines("\n".join(lines))
