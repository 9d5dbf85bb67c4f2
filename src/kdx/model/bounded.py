"""Kernel list walks that end: a list corrupted by the panic (or by a flipped bit) may loop
forever or run into memory the dump lacks, and a tool that follows it blindly hangs.

``list_for_each_entry`` takes drgn's arguments but stops with ``ListLoopError`` (a
ValueError, so every model's ``READ_ERRORS`` catches it) when an entry comes round again
or the list grows past a sane length; a link into missing memory raises drgn's
FaultError as before. The error says where the list looped, for the warning line.
"""

from __future__ import annotations

from typing import Iterator

import drgn

__all__ = ["LIST_LIMIT", "ListLoopError", "list_for_each_entry", "list_nodes", "modules"]

#: more entries than any kernel list kdx walks can hold (PID max is 4M)
LIST_LIMIT = 1 << 22


class ListLoopError(ValueError):
    """A kernel list loops (or is impossibly long); ``str(err)`` says where."""


def list_nodes(prog: drgn.Program, head: int, *, limit: int = LIST_LIMIT,
               what: str = "list") -> Iterator[int]:
    """The addresses of the ``list_head`` nodes after ``head``, each once."""
    seen: set[int] = set()
    node = prog.read_word(head)
    while node != head:
        if node in seen:
            raise ListLoopError(f"the {what} at {head:#x} loops: entry {node:#x} comes back "
                                f"after {len(seen)} entries")
        if len(seen) >= limit:
            raise ListLoopError(f"the {what} at {head:#x} has more than {limit} entries")
        seen.add(node)
        yield node
        node = prog.read_word(node)


def list_for_each_entry(type: str | drgn.Type, head: drgn.Object, member: str, *,
                        limit: int = LIST_LIMIT, what: str = "list") -> Iterator[drgn.Object]:
    """drgn's ``list_for_each_entry``, bounded and cycle-checked."""
    prog = head.prog_
    type_ = prog.type(type) if isinstance(type, str) else type
    offset = drgn.offsetof(type_, member)
    pointer = prog.pointer_type(type_)
    for node in list_nodes(prog, head.value_(), limit=limit, what=what):
        yield drgn.Object(prog, pointer, node - offset)


def modules(prog: drgn.Program) -> Iterator[drgn.Object]:
    """Every ``struct module *`` on the kernel's module list, bounded."""
    return list_for_each_entry("struct module", prog["modules"].address_of_(), "list",
                               limit=1 << 16, what="module list")
