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

from kdx.model.records import Hex

_WORD = 8


@dataclass(frozen=True)
class WalkEntry:
    """One structure found: its address, crash's ``-p`` position (trees), and the text
    ``-s`` printed for it (empty without ``-s``). ``detail`` replaces the address line
    where crash prints more than the address (``tree -t maple -v``: tree and node lines,
    entries with their index range)."""

    address: Hex
    position: str | None = None
    text: str = ""
    detail: str | None = None


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


# -- maple trees ---------------------------------------------------------------------------

MAPLE_DENSE, MAPLE_LEAF_64, MAPLE_RANGE_64, MAPLE_ARANGE_64 = range(4)
_MAPLE_NODE_MASK = 0xFF
_ULONG_MAX = (1 << 64) - 1


@dataclass(frozen=True)
class MapleEvent:
    """One step of crash's maple tree walk (maple_tree.c), in its order.

    ``kind`` is ``tree`` (the maple_tree itself: ``address``, ``flags``, ``height``,
    ``root``), ``node`` (a node: ``address``, its ``node_type``, ``parent``, the range
    ``first``-``last`` it covers at ``depth``, and its raw ``slots``, ``pivots``,
    ``gaps`` and ``meta`` for ``-v``) or ``entry`` (a leaf slot: ``address`` is the
    entry, NULL ones included; ``path`` and ``slot`` give crash's ``-p`` position).
    """

    kind: str
    address: int
    first: int = 0
    last: int = 0
    depth: int = 0
    path: str = ""
    slot: int = 0
    node_type: int = 0
    parent: int = 0
    slots: tuple[int, ...] = ()
    pivots: tuple[int, ...] = ()
    gaps: tuple[int, ...] = ()
    meta: tuple[int, int] = (0, 0)
    flags: int = 0
    height: int = 0
    root: int = 0


def _is_node(entry: int) -> bool:
    return entry & 3 == 2 and entry > 4096


class _MapleWalker:
    """crash's recursive walk, with the node layout read once from the debug info."""

    def __init__(self, prog: drgn.Program) -> None:
        self.prog = prog
        node = prog.type("struct maple_node")
        self.node_size = drgn.sizeof(node)
        self.parent_at = node.member("parent").offset
        self.slot_at = node.member("slot").offset
        self.mr64_at = node.member("mr64").offset
        self.ma64_at = node.member("ma64").offset
        mr64, ma64 = prog.type("struct maple_range_64"), prog.type("struct maple_arange_64")
        self.mr64 = (mr64.member("pivot").offset, mr64.member("slot").offset)
        self.ma64 = (ma64.member("pivot").offset, ma64.member("slot").offset,
                     ma64.member("gap").offset, ma64.member("meta").offset)
        meta = prog.type("struct maple_metadata")
        self.meta = (meta.member("end").offset, meta.member("gap").offset)
        self.mt_slots = [int(v) for v in prog.read(prog["mt_slots"].address_,
                                                   len(prog["mt_slots"]))]
        self.mt_max = [self.mt_slots[MAPLE_DENSE], _ULONG_MAX, _ULONG_MAX, _ULONG_MAX]
        self.seen: set[int] = set()

    def _words(self, raw: bytes, at: int, count: int) -> tuple[int, ...]:
        return tuple(int.from_bytes(raw[at + 8 * i:at + 8 * i + 8], "little")
                     for i in range(count))

    def node(self, entry: int, first: int, last: int, depth: int, path: str) \
            -> Iterator[MapleEvent]:
        address = entry & ~_MAPLE_NODE_MASK
        kind = (entry >> 3) & 0xF
        if address in self.seen:
            raise WalkError(f"duplicate tree node: {address:x}")
        self.seen.add(address)
        try:
            raw = self.prog.read(address, self.node_size)
        except drgn.FaultError as err:
            raise WalkError(f"invalid maple tree node: {address:x}") from err
        parent = int.from_bytes(raw[self.parent_at:self.parent_at + 8], "little")
        if kind == MAPLE_DENSE:
            count = self.mt_slots[MAPLE_DENSE]
            slots = self._words(raw, self.slot_at, count)
            yield MapleEvent("node", address, first, last, depth, path, 0, kind, parent,
                             slots)
            for i, slot in enumerate(slots):
                yield MapleEvent("entry", slot, first + i, first + i, depth, path, i)
            return
        if kind in (MAPLE_LEAF_64, MAPLE_RANGE_64):
            pivot_at, slot_at = (self.mr64_at + o for o in self.mr64)
            gaps: tuple[int, ...] = ()
            meta = (0, 0)
        elif kind == MAPLE_ARANGE_64:
            pivot_at, slot_at, gap_at, meta_at = (self.ma64_at + o for o in self.ma64)
            gaps = self._words(raw, gap_at, self.mt_slots[kind])
            meta = (raw[meta_at + self.meta[0]], raw[meta_at + self.meta[1]])
        else:
            raise WalkError(f"maple tree node {address:x}: unknown type {kind}")
        count = self.mt_slots[kind]
        slots = self._words(raw, slot_at, count)
        pivots = self._words(raw, pivot_at, count - 1)
        yield MapleEvent("node", address, first, last, depth, path, 0, kind, parent, slots,
                         pivots, gaps, meta)
        yield from self._slots(entry, kind, slots, pivots, first, last, depth, path)

    def _slots(self, entry: int, kind: int, slots: tuple[int, ...],
               pivots: tuple[int, ...], first: int, last_max: int, depth: int,
               path: str) -> Iterator[MapleEvent]:
        """crash's do_mt_range64/do_mt_arange64 loop: a slot's range ends at its
        pivot (the node's end for the last slot); a zero pivot after the first slot or
        the node's end stops it."""
        leaf = kind < MAPLE_RANGE_64
        count = len(slots)
        start = first
        for i in range(count):
            last = last_max
            if i < count - 1:
                last = pivots[i]
            elif not slots[i] and (kind == MAPLE_ARANGE_64 or
                                   last_max != self.mt_max[kind]):
                break
            if last == 0 and i > 0:
                break
            if leaf:
                yield MapleEvent("entry", slots[i], start, last, depth + 1, path, i)
            elif slots[i]:
                yield from self.node(slots[i], start, last, depth + 1, f"{path}/{i}")
            if last == last_max:
                break
            if last > last_max:
                raise WalkError(f"maple tree node {entry & ~_MAPLE_NODE_MASK:x}: "
                                f"last ({last}) > max ({last_max}) at pivot {i}")
            start = last + 1


def walk_maple(prog: drgn.Program, start: int, *, is_node: bool = False) \
        -> Iterator[MapleEvent]:
    """crash's maple tree walk from a ``struct maple_tree`` at ``start`` or, with
    ``is_node`` (``-N``), from an encoded node pointer: the tree, then each node and
    each leaf slot in index order."""
    walker = _MapleWalker(prog)
    if is_node:
        kind = (start >> 3) & 0xF
        yield from walker.node(start, 0, walker.mt_max[kind] if kind < 4 else 0, 0,
                               "direct")
        return
    tree = prog.type("struct maple_tree")
    root_at, flags_at = tree.member("ma_root").offset, tree.member("ma_flags").offset
    try:
        root = prog.read_word(start + root_at)
        flags = prog.read_u32(start + flags_at)
    except drgn.FaultError as err:
        raise WalkError(f"invalid maple tree: {start:x}") from err
    yield MapleEvent("tree", start, flags=flags, height=(flags & 0x7C) >> 2, root=root)
    if not _is_node(root):
        yield MapleEvent("entry", root)
    elif root:
        yield from walker.node(root, 0, walker.mt_max[(root >> 3) & 0xF], 0, "root")
