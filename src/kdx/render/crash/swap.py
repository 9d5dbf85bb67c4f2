"""crash's ``swap`` layout (memory.c dump_swap_info): one line per swap area, its size
and use in KiB."""

from __future__ import annotations

from kdx.model.swap import SwapDevice
from kdx.render.crash.layout import VADDR_WIDTH, field, rstrip_lines

__all__ = ["SWAP_HEADER", "render_swap"]

SWAP_HEADER = "SWAP_INFO_STRUCT    TYPE       SIZE       USED     PCT  PRI  FILENAME"


def render_swap(devices: list[SwapDevice]) -> str:
    lines = [SWAP_HEADER]
    for d in devices:
        pct = d.used_kb * 100 // d.size_kb if d.size_kb else 0
        lines.append(
            f"{field(f'{d.swap_info:x}', VADDR_WIDTH, center=True)}  "
            f"{'PARTITION' if d.partition else '  FILE   '} "
            f"{field(f'{d.size_kb}k', 10, center=True, right=True)} "
            f"{field(f'{d.used_kb}k', 10, center=True, right=True)} "
            f"{field(f'{pct:2d}%', 4, center=True, right=True)} {d.priority:>4}  {d.filename}")
    return rstrip_lines("\n".join(lines))
