"""Swap areas as crash's ``swap`` lists them: is swap full, and which device or file
holds it. A nearly full swap is a first suspect for a system that hung while reclaiming
memory. drgn's swap helpers walk ``swap_info``.
"""

from __future__ import annotations

from dataclasses import dataclass

import drgn
from drgn.helpers.linux.swap import for_each_swap_info, swap_file_path, swap_is_file

from kdx.model.reading import READ_ERRORS
from kdx.model.records import Hex
from kdx.textsafe import decode

__all__ = ["SwapDevice", "swap_devices"]


@dataclass(frozen=True)
class SwapDevice:
    """One swap area: sizes in KiB, ``partition`` False for a swap file."""

    swap_info: Hex
    partition: bool
    size_kb: int
    used_kb: int
    priority: int
    filename: str


def swap_devices(prog: drgn.Program) -> list[SwapDevice]:
    page_kb = prog["PAGE_SIZE"].value_() // 1024 if "PAGE_SIZE" in prog else 4
    found = []
    for si in for_each_swap_info(prog):
        try:
            path = decode(swap_file_path(si)) if si.swap_file else "(unknown)"
        except READ_ERRORS:
            path = "(unknown)"
        found.append(SwapDevice(si.value_(), not swap_is_file(si),
                                si.pages.value_() * page_kb,
                                si.inuse_pages.value_() * page_kb, si.prio.value_(), path))
    return found
