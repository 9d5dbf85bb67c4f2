"""Scanning memory for a value or a string, as crash's ``search`` does.

crash searches the kernel's address ranges (x86_64.c x86_64_get_kvaddr_ranges): the
direct map up to high_memory, the kernel image mapping from __START_KERNEL_map to _end
(translated linearly, so it also reaches physical memory outside the image), the vmalloc
areas (modules included) and the virtual mem_map. kdx scans the same ranges, reading a
megabyte at a time and falling back to single pages where a read faults: dumps filtered
by makedumpfile lack most pages, and a missing page must cost only itself. Values are
found with ``bytes.find`` rather than a Python loop over words, so a full kernel scan
takes seconds.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Iterator

import drgn
from drgn.helpers.linux.mm import access_remote_vm, follow_phys, for_each_vmap_area

from kdx.model.records import Hex

CHUNK = 1 << 20
PAGE = 4096
#: How much text crash shows from a string hit (memory.c CHARS_CTX).
CHARS_CONTEXT = 56
START_KERNEL_MAP = 0xFFFFFFFF80000000
_MASK64 = (1 << 64) - 1

Reader = Callable[[int, int], bytes]


@dataclass(frozen=True)
class SearchHit:
    """One match: where, the value found there (words) or the text from there (strings),
    and the symbol or expression the user gave for the value, which crash repeats."""

    address: Hex
    value: Hex | None = None
    text: str | None = None
    label: str | None = None
    before: str | None = None  # search -x: the bytes just before the hit (hex), as read
    after: str | None = None  # ... and just after it


@dataclass(frozen=True)
class Segment:
    """A stretch of one address space, and how to read it."""

    start: int
    end: int
    read: Reader
    kind: str = "vmalloc"


@dataclass(frozen=True)
class SearchRequest:
    """What to look for: values of ``size`` bytes (8, 4 or 2) with ``mask`` bits
    ignored, or strings; ``labels`` are the words crash echoes after a value."""

    size: int = 8
    values: tuple[int, ...] = ()
    labels: tuple[str | None, ...] = ()
    mask: int = 0
    strings: tuple[bytes, ...] = ()


@dataclass(frozen=True)
class SearchResult:
    space: str
    start: Hex
    end: Hex
    hits: tuple[SearchHit, ...]
    pages_missing: int
    unit: int = 8  # the size of the values searched (1 for strings)
    context: int = 0  # search -x: how many values around each hit


def _read_around(segments: list[Segment], address: int, size: int) -> str:
    """What the segment holding ``address`` has of ``[address, address + size)``, hex;
    empty where the dump lacks it (crash shows nothing there either)."""
    for segment in segments:
        if segment.start <= address < segment.end:
            try:
                return segment.read(address, size).hex()
            except (drgn.FaultError, ValueError):
                return ""
    return ""


def with_context(result: SearchResult, segments: list[Segment], count: int,
                 unit: int) -> SearchResult:
    """``search -x COUNT``: add the ``count`` values of ``unit`` bytes before and after
    each hit, so a hit can be judged by its neighbours (a list_head, a refcount beside
    a pointer) without a second ``rd``."""
    from dataclasses import replace

    span = count * unit
    hits = tuple(replace(hit, before=_read_around(segments, hit.address - span, span),
                         after=_read_around(segments, hit.address + unit, span))
                 for hit in result.hits)
    return replace(result, hits=hits, unit=unit, context=count)


# -- address ranges ----------------------------------------------------------------------


def _virtual(prog: drgn.Program) -> Reader:
    return lambda address, size: prog.read(address, size)


def _linear(prog: drgn.Program, base: int) -> Reader:
    """Read kernel virtual ``address`` at physical ``address - base``."""
    return lambda address, size: prog.read((address - base) & _MASK64, size, True)


def kernel_segments(prog: drgn.Program) -> list[Segment]:
    """crash's kernel ranges, each with the way crash translates it."""
    page_offset = prog["page_offset_base"].value_()
    segments = [Segment(page_offset, prog["high_memory"].value_(), _linear(prog, page_offset),
                        "unity")]
    # The image mapping translated linearly, by the offset between the image's virtual
    # and physical addresses (KASLR included): below its base nothing is mapped.
    text = prog.symbol("_text").address
    base = (text - follow_phys(prog["init_mm"].address_of_(), text).value_()) & _MASK64
    end = prog.symbol("_end").address
    segments.append(Segment(max(START_KERNEL_MAP, base), end, _linear(prog, base), "image"))
    virtual = _virtual(prog)
    for area in for_each_vmap_area(prog):
        start, stop = area.va_start.value_(), area.va_end.value_()
        if stop > start:
            segments.append(Segment(start, stop, virtual))
    try:
        vmemmap = prog["vmemmap_base"].value_()
        pages = prog["max_pfn"].value_()
        size = prog.type("struct page").size
        segments.append(Segment(vmemmap, vmemmap + pages * size, virtual, "vmemmap"))
    except (KeyError, LookupError):
        pass
    return sorted(segments, key=lambda s: s.start)


def physical_segments(prog: drgn.Program) -> list[Segment]:
    """Physical memory from the first page frame the kernel knows (crash's node start)
    to max_pfn."""
    from drgn.helpers.linux.mm import for_each_valid_page_range

    try:
        first = min(start for start, _end, _map in for_each_valid_page_range(prog))
    except (ValueError, LookupError, drgn.FaultError):
        first = 0
    top = prog["max_pfn"].value_() * PAGE
    return [Segment(first * PAGE, top, lambda address, size: prog.read(address, size, True),
                    "physical")]


def user_segments(task: drgn.Object) -> list[Segment]:
    """The task's VMAs, read through its page tables."""
    from kdx.model.vm import task_vm

    mm = task.mm
    if not mm:
        return []

    def read(address: int, size: int) -> bytes:
        return access_remote_vm(mm, address, size)

    return [Segment(v.start, v.end, read, "user") for v in task_vm(task).vmas]


# -- scanning ------------------------------------------------------------------------------


def _blocks(segment: Segment, start: int, end: int, missing: list[int]) \
        -> Iterator[tuple[int, bytes]]:
    """(address, bytes) of every readable piece of ``[start, end)`` in ``segment``:
    a megabyte at a time, page by page where a megabyte cannot be read whole."""
    low, high = max(start, segment.start), min(end, segment.end)
    address = low
    while address < high:
        stop = min((address // CHUNK + 1) * CHUNK, high)
        try:
            yield address, segment.read(address, stop - address)
        except (drgn.FaultError, ValueError):
            page = address
            while page < stop:
                page_end = min((page // PAGE + 1) * PAGE, stop)
                try:
                    yield page, segment.read(page, page_end - page)
                except (drgn.FaultError, ValueError):
                    missing[0] += 1
                page = page_end
        address = stop


def _find_all(data: bytes, pattern: bytes) -> Iterator[int]:
    position = data.find(pattern)
    while position >= 0:
        yield position
        position = data.find(pattern, position + 1)


def _value_hits(request: SearchRequest, address: int, data: bytes) -> Iterator[SearchHit]:
    size, mask = request.size, request.mask
    full = (1 << (8 * size)) - 1
    keep = ~mask & full
    # Search for the widest run of bytes the mask leaves whole, then check the word.
    kept_bytes = [i for i in range(size) if (keep >> (8 * i)) & 0xFF == 0xFF]
    for value, label in zip(request.values, request.labels):
        wanted = value & keep
        if kept_bytes:
            first, last = _longest_run(kept_bytes)
            pattern = wanted.to_bytes(size, "little")[first:last + 1]
            candidates = (p - first for p in _find_all(data, pattern))
        else:
            candidates = iter(range(0, len(data) - size + 1, size))
        for offset in candidates:
            if offset < 0 or (address + offset) % size or offset + size > len(data):
                continue
            word = int.from_bytes(data[offset:offset + size], "little")
            if word & keep == wanted:
                yield SearchHit(address + offset, word, None, label)


def _longest_run(indexes: list[int]) -> tuple[int, int]:
    best = (indexes[0], indexes[0])
    start = prev = indexes[0]
    for i in indexes[1:]:
        if i != prev + 1:
            start = i
        prev = i
        if prev - start > best[1] - best[0]:
            best = (start, prev)
    return best


def _printable(data: bytes) -> str:
    return "".join(chr(b) if 0x20 <= b < 0x7F else "." for b in data)


def _string_hits(request: SearchRequest, address: int, data: bytes) -> Iterator[SearchHit]:
    """String matches; the text shown runs to CHARS_CONTEXT bytes but, as in crash, not
    past the end of the match's page unless the match itself crosses it."""
    for string in request.strings:
        for offset in _find_all(data, string):
            hit = address + offset
            page_end = (hit // PAGE + 1) * PAGE
            stop = offset + CHARS_CONTEXT
            if hit + len(string) <= page_end:
                stop = min(stop, offset + page_end - hit)
            yield SearchHit(hit, None, _printable(data[offset:stop]))


def search(segments: list[Segment], start: int, end: int, request: SearchRequest, *,
           space: str = "kernel", progress: Callable[[str], None] | None = None) \
        -> SearchResult:
    """Every match in ``[start, end)`` over ``segments``, in address order, each address
    once. Pieces overlap by a few bytes so a string or value across a megabyte boundary
    is not lost."""
    hits: dict[int, SearchHit] = {}
    missing = [0]
    overlap = max([request.size, *(len(s) for s in request.strings)]) - 1
    for segment in segments:
        if segment.end <= start or segment.start >= end:
            continue
        if progress is not None:
            progress(f"{max(start, segment.start):x}-{min(end, segment.end):x}")
        tail_address, tail = 0, b""
        for address, data in _blocks(segment, start, end, missing):
            if tail and tail_address + len(tail) == address:
                joined_address, joined = tail_address, tail + data
            else:
                joined_address, joined = address, data
            finder = _string_hits if request.strings else _value_hits
            for hit in finder(request, joined_address, joined):
                hits.setdefault(hit.address, hit)
            tail = joined[-overlap:] if overlap > 0 else b""
            tail_address = joined_address + len(joined) - len(tail)
    ordered = tuple(hits[a] for a in sorted(hits))
    return SearchResult(space, start, end, ordered, missing[0])
