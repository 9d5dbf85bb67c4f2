"""crash's ``vtop``, ``pte``, ``ptov``, ``btop`` and ``ptob`` layouts.

Columns follow crash 8.0.6 memory.c (do_vtop, cmd_ptov, cmd_btop, cmd_ptob) and x86_64.c
(x86_64_translate_pte, the page-table lines of x86_64_kvtop/x86_64_uvtop_level4): a kernel
walk opens with the PGD DIRECTORY and PAGE DIRECTORY lines, a user walk with the PGD
entry's physical address; every entry is ``LEVEL: physical address => contents``.
"""

from __future__ import annotations

from kdx.model.paging import PteInfo, Translation
from kdx.render.crash.kmem import page_header, page_line
from kdx.render.crash.layout import UVADDR_WIDTH, VADDR_WIDTH, field, rstrip_lines
from kdx.render.crash.vm import VMA_HEADER, vma_line


def pte_lines(pte: PteInfo) -> list[str]:
    """crash's two-line PTE block: the entry, the frame address and the flag names."""
    pte_text = f"{pte.pte:x}"
    phys_text = f"{pte.physical:x}"
    width1 = max(len(pte_text), 3)
    width2 = max(len(phys_text), 8)
    flags = "|".join(pte.flags) if pte.pte else "no mapping"
    return [f"{field('PTE', width1, center=True)}  {field('PHYSICAL', width2, center=True)}"
            "  FLAGS",
            f"{field(pte_text, width1, center=True, right=True)}  "
            f"{field(phys_text, width2, center=True, right=True)}  ({flags})"]


def render_pte(ptes: list[PteInfo]) -> str:
    return rstrip_lines("\n".join("\n".join(pte_lines(p)) for p in ptes))


def _walk_lines(t: Translation) -> list[str]:
    lines = []
    entries = list(t.entries)
    if not t.user:
        lines.append(f"PGD DIRECTORY: {t.kernel_pgd or 0:x}")
        if t.pgd_entry is not None:
            lines.append(f"PAGE DIRECTORY: {t.pgd_entry:x}")
        entries = entries[1:]
    lines.extend(f"   {e.level}: {e.address:x} => {e.value:x}" for e in entries)
    if t.page_base is not None:
        if t.page_size:
            zero = ", ZERO PAGE" if t.zero_page and t.user else ""
            lines.append(f"  PAGE: {t.page_base:x}  ({t.page_size}{zero})")
        else:
            zero = "  (ZERO PAGE)" if t.zero_page and t.user else ""
            lines.append(f"  PAGE: {t.page_base:x}{zero}")
    return lines


def render_translation(t: Translation, physical_width: int = 8, file_line: str = "") -> str:
    """One ``vtop`` answer; ``file_line`` is crash's FILE line for an unmapped page of a
    file mapping."""
    width = UVADDR_WIDTH if t.user else VADDR_WIDTH
    lines = [f"{field('VIRTUAL', width, left=True)}  PHYSICAL"]
    virtual = field(f"{t.virtual:x}", width, left=True)
    if not t.accessible:
        lines.append(f"{virtual}  (not accessible)")
        return rstrip_lines("\n".join(lines))
    state = f"{t.physical:x}" if t.physical is not None else "(not mapped)"
    lines += [f"{virtual}  {state}", ""]
    lines += _walk_lines(t)
    if t.pte is not None:
        lines += ["", *pte_lines(t.pte)]
    lines.append("")
    if t.vma is not None:
        lines += [VMA_HEADER, vma_line(t.vma), ""]
    if file_line and t.physical is None:
        lines.append(file_line)
    if t.page is not None:
        lines += [page_header(physical_width), page_line(t.page, physical_width)]
    return rstrip_lines("\n".join(lines).rstrip("\n"))


def render_ptov(pairs: list[tuple[int, int]]) -> str:
    """``ptov PHYS``: a VIRTUAL/PHYSICAL pair per address, blocks apart."""
    blocks = [f"{field('VIRTUAL', VADDR_WIDTH, left=True)}  PHYSICAL\n"
              f"{field(f'{virtual:x}', VADDR_WIDTH, left=True)}  {physical:x}"
              for physical, virtual in pairs]
    return rstrip_lines("\n\n".join(blocks))


def render_percpu(offset: int, cpus: list[tuple[int, int]], ncpus: int) -> str:
    """``ptov OFFSET:CPUS``: the per-CPU offset, then each CPU's virtual address."""
    width = len(f"[{ncpus - 1}]") + 2
    lines = [f"PER-CPU OFFSET: {offset:x}",
             f"  {field('CPU', width, left=True)}  VIRTUAL"]
    lines += [f"  {field(f'[{cpu}]', width, left=True)}{address:x}" for cpu, address in cpus]
    return rstrip_lines("\n".join(lines))


def render_pairs(pairs: list[tuple[int, int]]) -> str:
    """``btop``/``ptob``: ``value: result`` per argument."""
    return "\n".join(f"{a:x}: {b:x}" for a, b in pairs)
