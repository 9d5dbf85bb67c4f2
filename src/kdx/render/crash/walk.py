"""crash's ``list`` and ``tree`` output: one address per line, then ``-p`` and ``-s`` text.

crash prints each structure address in bare hex; ``tree -p`` adds ``  position: root/l``
(red-black trees) or ``  index: N  position: root/0/3`` (XArrays) below it, and ``-s``
the structure or members as gdb prints them. An empty ``list -H`` is ``(empty)``.
``tree -t maple -v`` replaces address lines by crash's dump of the tree, each node (its
range, type, parent and raw slots) and each slot (its index range and entry).
"""

from __future__ import annotations

from kdx.model.walk import MAPLE_ARANGE_64, MAPLE_DENSE, MapleEvent, WalkResult
from kdx.render.crash.layout import rstrip_lines


def render_walk(result: WalkResult) -> str:
    if result.empty:
        return "(empty)"
    lines: list[str] = []
    for entry in result.entries:
        lines.append(f"{entry.address:x}" if entry.detail is None else entry.detail)
        if entry.position is not None:
            lines.append(entry.position)
        if entry.text:
            lines.append(entry.text)
    return rstrip_lines("\n".join(lines))


# -- maple tree -v ---------------------------------------------------------------------------


def _pointer(value: int) -> str:
    """A pointer as glibc's ``%p`` prints it."""
    return f"{value:#x}" if value else "(nil)"


def maple_range(first: int, last: int, depth: int) -> str:
    pad = " " * min(depth * 2, 32)
    return pad + (f"{first}: " if first == last else f"{first}-{last}: ")


def maple_entry_value(entry: int) -> str:
    """A leaf slot as crash's ``-v`` names it: a value entry, the zero entry, a
    reserved one, or the pointer."""
    if entry & 1:
        value = entry >> 1
        return f"value {value} ({value:#x}) [{entry:#x}]"
    if entry == (257 << 2) | 2:
        return f"zero ({entry >> 2})"
    if entry < 4096 and entry & 3 == 2:
        return f"UNKNOWN ENTRY ({entry:#x})"
    return f"{entry:#x}"


def maple_detail(event: MapleEvent) -> str:
    """crash's ``-v`` line for a tree, node or entry event."""
    if event.kind == "tree":
        return (f"maple_tree({event.address:x}) flags {event.flags:X}, height "
                f"{event.height} root {event.root:#x}\n")
    if event.kind == "entry":
        return maple_range(event.first, event.last, event.depth) + \
            maple_entry_value(event.address)
    text = maple_range(event.first, event.last, event.depth) + \
        (f"node {event.address:#x} depth {event.depth} type {event.node_type} "
         f"parent {_pointer(event.parent)}")
    if event.node_type == MAPLE_DENSE:
        return text
    text += " contents: "
    if event.node_type == MAPLE_ARANGE_64:
        text += "".join(f"{gap} " for gap in event.gaps)
        text += f"| {event.meta[0]:02X} {event.meta[1]:02X}| "
    text += "".join(f"{_pointer(slot)} {pivot} "
                    for slot, pivot in zip(event.slots, event.pivots))
    return text + _pointer(event.slots[-1])
