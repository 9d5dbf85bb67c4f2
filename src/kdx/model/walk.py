"""Walking kernel linked lists and trees as crash's ``list`` and ``tree`` do.

crash prints the addresses of the structures along a chain of next pointers, a
``list_head`` ring, a red-black tree or an XArray, and stops where it stops (a NULL, the
head again, a loop); an engineer compares those addresses with other output, so kdx must
find the very same ones in the same order. The walkers here yield addresses only; what
is printed for each one (``-s``) is the command's business. A fault or a loop ends the
walk with a ``WalkError`` carrying the one line crash would print, after the addresses
read so far.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Iterator

import drgn

_WORD = 8


@dataclass(frozen=True)
class WalkEntry:
    """One structure found: its address, crash's ``-p`` position (trees), and the text
    ``-s`` printed for it (empty without ``-s``)."""

    address: int
    position: str | None = None
    text: str = ""


@dataclass(frozen=True)
class WalkResult:
    """What ``list`` or ``tree`` found: the entries in crash's order, whether the list
    was empty (crash prints ``(empty)``), and the line that ended the walk early."""

    kind: str
    entries: tuple[WalkEntry, ...]
    empty: bool = False
    error: str | None = None


class WalkError(Exception):
    """The walk cannot go on; ``str(err)`` is crash's message."""


def read_pointer(prog: drgn.Program, address: int, offset: int = 0) -> int:
    """The unsigned long at ``address + offset``; a fault becomes crash's message, which
    names the link (``address``), not the word."""
    try:
        return prog.read_word(address + offset)
    except drgn.FaultError as err:
        raise WalkError(f"invalid list entry: {address:x}") from err


# -- list --------------------------------------------------------------------------------


@dataclass(frozen=True)
class ListSpec:
    """A list as crash's ``list`` options describe it once resolved.

    ``start`` is the first link address, ``next_offset`` where the next pointer sits in
    a link (8 with ``-r``: list_head.prev), ``head_offset`` what is subtracted to get
    the structure's address (the list_head's offset with ``-h``/``-H``), ``end`` an
    address that stops the walk, ``head_format`` whether a NULL link is an error.
    """

    start: int
    next_offset: int = 0
    head_offset: int = 0
    end: int = 0
    head_format: bool = False


def walk_list(prog: drgn.Program, spec: ListSpec, limit: int = 10_000_000) -> Iterator[int]:
    """Structure addresses along the list, by crash's rules (tools.c do_list): stop at
    NULL, at ``end``, back at the start, at a self-link, or back at the first link after
    one step; a structure seen twice is a loop (WalkError after yielding it)."""
    first = read_pointer(prog, spec.start, spec.next_offset)
    seen: set[int] = set()
    current = spec.start
    count = 0
    while count < limit:
        address = current - spec.head_offset
        yield address
        if current and address in seen:
            raise WalkError(f"duplicate list entry: {current:x}")
        seen.add(address)
        count += 1
        last = current
        current = read_pointer(prog, current, spec.next_offset)
        if current == 0:
            if spec.head_format:
                raise WalkError("invalid list entry: 0")
            return
        if current in (spec.end, spec.start, last) or (current == first and count != 1):
            return


# -- red-black trees ---------------------------------------------------------------------


def walk_rbtree(prog: drgn.Program, node: int, node_offset: int = 0, *,
                linear: bool = False) -> Iterator[tuple[int, str]]:
    """``(structure address, position)`` for every node below ``node``: crash's
    pre-order (node, left subtree, right subtree) or, ``linear``, in order. Positions are
    crash's ``root/l/r`` paths. A child that cannot be read is skipped, as crash does."""
    rb = prog.type("struct rb_node")
    left_at = rb.member("rb_left").offset
    right_at = rb.member("rb_right").offset
    seen: set[int] = set()

    def child(address: int, at: int) -> int:
        try:
            pointer = prog.read_word(address + at)
            if pointer:
                prog.read_word(pointer + left_at)
            return pointer
        except drgn.FaultError:
            return 0

    # An explicit stack: (node, position, expanded?) keeps deep trees off Python's stack.
    stack: list[tuple[int, str, bool]] = [(node, "root", False)] if node else []
    while stack:
        current, position, expanded = stack.pop()
        if linear and expanded:
            yield current - node_offset, position
            continue
        if current in seen:
            raise WalkError(f"duplicate tree entry: {current:x}")
        seen.add(current)
        left, right = child(current, left_at), child(current, right_at)
        if right:
            stack.append((right, position + "/r", False))
        if linear:
            stack.append((current, position, True))
        if left:
            stack.append((left, position + "/l", False))
        if not linear:
            yield current - node_offset, position


def rb_root_node(prog: drgn.Program, root: int) -> int:
    """The first node of the rb_root at ``root``."""
    offset = prog.type("struct rb_root").member("rb_node").offset
    return read_pointer(prog, root + offset)


# -- XArrays (and radix trees, which are XArrays on kernels since 4.20) -------------------


def _xa_layout(prog: drgn.Program) -> tuple[int, int, int]:
    """Offsets of xa_node.shift and .slots, and the number of slots per node."""
    node = prog.type("struct xa_node")
    slots = node.member("slots")
    count = slots.type.length or 64
    return node.member("shift").offset, slots.offset, count


def walk_xarray(prog: drgn.Program, start: int, *, is_node: bool = False) \
        -> Iterator[tuple[int, int, str]]:
    """``(entry, index, path)`` for every non-NULL slot, by crash's rules (tools.c
    do_xarray_traverse): internal pointers are nodes whose height comes from their
    shift; a head that is not a node is the only entry, at ``direct``."""
    shift_at, slots_at, count = _xa_layout(prog)
    chunk_shift = count.bit_length() - 1
    if is_node:
        head = start & ~3
        internal = True
    else:
        try:
            xa_head = prog.type("struct xarray").member("xa_head").offset
        except LookupError as err:
            raise WalkError("xarray facility does not exist or has changed its format") \
                from err
        raw = read_pointer(prog, start + xa_head)
        internal = raw & 3 == 2
        head = raw & ~3
    height = 0
    if internal:
        height = prog.read_u8(head + shift_at) // chunk_shift + 1
    if height == 0:
        yield head, 0, "direct"
        return
    seen: set[int] = set()
    yield from _xa_node(prog, head, height, "root", 0, (slots_at, count, chunk_shift), seen)


def _xa_node(prog: drgn.Program, node: int, height: int, path: str, index: int,
             layout: tuple[int, int, int], seen: set[int]) -> Iterator[tuple[int, int, str]]:
    slots_at, count, chunk_shift = layout
    if node in seen:
        raise WalkError(f"duplicate tree node: {node:x}")
    seen.add(node)
    try:
        raw = prog.read(node + slots_at, count * _WORD)
    except drgn.FaultError as err:
        raise WalkError(f"invalid tree node: {node:x}") from err
    shift = (height - 1) * chunk_shift
    for offset in range(count):
        slot = int.from_bytes(raw[offset * _WORD:(offset + 1) * _WORD], "little")
        if not slot:
            continue
        if slot & 3 == 2:
            slot &= ~2
        if height == 1:
            yield slot, index | offset, path
        else:
            yield from _xa_node(prog, slot, height - 1, f"{path}/{offset}",
                                index | (offset << shift), layout, seen)


# -- naming offsets ------------------------------------------------------------------------


def member_offset(prog: drgn.Program, spec: str) -> int | None:
    """The byte offset ``struct.member[.member...]`` names (crash's arg_to_datatype), or
    None when ``spec`` is not such a name."""
    name, dot, members = spec.partition(".")
    if not dot or not members:
        return None
    for spelling in (f"struct {name}", f"union {name}", name):
        try:
            type_ = prog.type(spelling)
        except (LookupError, SyntaxError, ValueError):
            continue
        try:
            return drgn.offsetof(type_, members)
        except (LookupError, TypeError, ValueError, SyntaxError):
            return None
    return None


def compound_type(prog: drgn.Program, name: str) -> drgn.Type | None:
    """The struct (or union, or typedef of one) called ``name``."""
    for spelling in (f"struct {name}", f"union {name}", name):
        try:
            type_ = prog.type(spelling)
        except (LookupError, SyntaxError, ValueError):
            continue
        if type_.unaliased_kind() in (drgn.TypeKind.STRUCT, drgn.TypeKind.UNION):
            return type_
    return None
