"""crash's ``search`` output: ``ADDRESS: VALUE`` per hit (``ADDRESS: TEXT`` for strings).

A value the user gave as a symbol is echoed after the hit in parentheses, as crash does
(memory.c search_ulong, report_match).
"""

from __future__ import annotations

from kdx.model.search import SearchResult
from kdx.render.crash.layout import rstrip_lines


def render_search(result: SearchResult) -> str:
    lines = []
    for hit in result.hits:
        if hit.text is not None:
            lines.append(f"{hit.address:x}: {hit.text}")
            continue
        label = f" ({hit.label})" if hit.label else ""
        lines.append(f"{hit.address:x}: {hit.value or 0:x}{label}")
    return rstrip_lines("\n".join(lines))
