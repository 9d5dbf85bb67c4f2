"""crash's ``list`` and ``tree`` output: one address per line, then ``-p`` and ``-s`` text.

crash prints each structure address in bare hex; ``tree -p`` adds ``  position: root/l``
(red-black trees) or ``  index: N  position: root/0/3`` (XArrays) below it, and ``-s``
the structure or members as gdb prints them. An empty ``list -H`` is ``(empty)``.
"""

from __future__ import annotations

from kdx.model.walk import WalkResult
from kdx.render.crash.layout import rstrip_lines


def render_walk(result: WalkResult) -> str:
    if result.empty:
        return "(empty)"
    lines: list[str] = []
    for entry in result.entries:
        lines.append(f"{entry.address:x}")
        if entry.position is not None:
            lines.append(entry.position)
        if entry.text:
            lines.append(entry.text)
    return rstrip_lines("\n".join(lines))
