"""SLUB's allocation and free tracks: who allocated a slab object and who freed it.

With ``slub_debug=U`` (SLAB_STORE_USER) SLUB keeps two ``struct track`` records after
each object: the caller that allocated it and the one that freed it, with the PID, the
CPU, the time in jiffies and (since 5.17, CONFIG_STACKDEPOT) a stack depot handle for the
whole call chain. This is what ``slabinfo`` and the kernel's own "Object already free"
reports print, and what tells a use-after-free's story: the code that freed the object
is usually the bug's other half.

Layout, as in mm/slub.c (6.1 through 7.x): the tracks start at ``object +
get_info_end(s)``, which is ``s->inuse``, plus one pointer when the free pointer lives
outside the object (``s->offset >= s->inuse``, which poisoning and red zones force);
``TRACK_ALLOC`` (0) comes first, then ``TRACK_FREE`` (1). The addresses are the object
start as users see it (after any left red zone).
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass, field

import drgn

from kdx.model.memory._errors import _READ_OR_TYPE_ERRORS
from kdx.model.names import address_namer
from kdx.model.records import Hex

__all__ = ["SLAB_STORE_USER", "SlabTrack", "slab_tracks"]

#: SLAB_STORE_USER in include/linux/slab.h (6.1 and 6.12: ``0x00010000``).
SLAB_STORE_USER = 0x00010000
#: The kernel's name for the flag, if the dump's types carry the enum (7.x).
_STORE_USER_ENUM = "_SLAB_STORE_USER"
#: Stack frames kept from a track's stack depot record.
MAX_TRACK_FRAMES = 16


@dataclass(frozen=True)
class SlabTrack:
    """One of SLUB's tracks of an object: who allocated (``kind`` "alloc") or freed
    (``kind`` "free") it, as ``slabinfo``/``slub_debug`` reports print it."""

    kind: str  # "alloc" or "free"
    caller: Hex  # the return address SLUB recorded (the allocating or freeing call)
    function: str | None  # "crashlab_item_release+0x13 [crashlab_uaf]"
    pid: int
    cpu: int
    when: int  # jiffies at the allocation or free
    ago_seconds: float | None  # seconds before the dump (None: HZ not known)
    stack: list[str] = field(default_factory=list)  # the depot's call chain, innermost first
    stack_note: str | None = None  # why there is no stack ("stack not available: ...")

    @property
    def text(self) -> str:
        """``freed by crashlab_item_release+0x13 [crashlab_uaf] (PID 252, CPU 1, 0.01 s
        before the crash)``."""
        verb = "allocated" if self.kind == "alloc" else "freed"
        who = self.function or f"{self.caller:#x}"
        when = (f", {self.ago_seconds:.2f} s before the crash" if self.ago_seconds is not None
                else f", jiffies {self.when}")
        return f"{verb} by {who} (PID {self.pid}, CPU {self.cpu}{when})"


def _stores_user(prog: drgn.Program, cache: drgn.Object) -> bool:
    flag = SLAB_STORE_USER
    with contextlib.suppress(LookupError):
        flag = 1 << prog[_STORE_USER_ENUM].value_()
    return bool(cache.flags.value_() & flag)


def _track_type(prog: drgn.Program) -> drgn.Type | None:
    """SLUB's ``struct track`` (mm/slub.c's, when DWARF tells files apart)."""
    for args in (("struct track", "mm/slub.c"), ("struct track",)):
        try:
            found = prog.type(*args)
        except (LookupError, ValueError):
            continue
        if found.has_member("addr") and found.has_member("pid"):
            return found
    return None


def _info_end(cache: drgn.Object) -> int:
    """get_info_end(): where the metadata after an object starts."""
    inuse = cache.inuse.value_()
    outside = cache.offset.value_() >= inuse
    return inuse + (8 if outside else 0)


def slab_tracks(prog: drgn.Program, cache: drgn.Object, obj: int,
                now_jiffies: int | None = None, hz: int | None = None) -> list[SlabTrack]:
    """The allocation and free tracks of the object at ``obj`` in ``cache`` (empty when
    the cache keeps none, i.e. was not booted with ``slub_debug=U``). ``now_jiffies`` and
    ``hz`` turn the tracks' times into seconds before the crash."""
    if not _stores_user(prog, cache):
        return []
    track_type = _track_type(prog)
    if track_type is None:
        return []
    base = obj + _info_end(cache)
    out = []
    for i, kind in enumerate(("alloc", "free")):
        track = drgn.Object(prog, track_type, address=base + i * track_type.size)
        try:
            out.append(_record(prog, track, kind, now_jiffies, hz))
        except _READ_OR_TYPE_ERRORS:
            continue
    return [t for t in out if t.caller]


def _record(prog: drgn.Program, track: drgn.Object, kind: str, now: int | None,
            hz: int | None) -> SlabTrack:
    caller = track.addr.value_()
    when = track.when.value_()
    ago = (now - when) / hz if now is not None and hz else None
    stack, note = _depot_stack(prog, track)
    return SlabTrack(kind=kind, caller=caller, function=_name(prog, caller),
                     pid=track.pid.value_(), cpu=track.cpu.value_(), when=when,
                     ago_seconds=ago, stack=stack, stack_note=note)


def _name(prog: drgn.Program, address: int) -> str | None:
    found = address_namer(prog).locate(address)
    if found is None:
        return None
    return found.text(16) + (f" [{found.module}]" if found.module else "")


def _depot_stack(prog: drgn.Program, track: drgn.Object) -> tuple[list[str], str | None]:
    """The track's call chain from the stack depot, or why it is not there."""
    if not track.type_.has_member("handle"):
        return [], "stack not available: this kernel keeps no stack depot handle"
    handle = track.handle
    if not handle.value_():
        return [], "stack not available: no stack depot handle was recorded"
    try:
        from drgn.helpers.linux.stackdepot import stack_depot_fetch
    except ImportError:
        return [], "stack not available: this drgn has no stack depot helper"
    try:
        trace = stack_depot_fetch(handle)
    except (*_READ_OR_TYPE_ERRORS, KeyError) as err:
        return [], f"stack not available: the stack depot cannot be read ({err})"
    if trace is None:
        return [], "stack not available: the stack depot record is missing from the dump"
    frames = []
    for frame in list(trace)[:MAX_TRACK_FRAMES]:
        frames.append(_name(prog, frame.pc) or f"{frame.pc:#x}")
    return frames, None
