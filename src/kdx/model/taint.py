"""The kernel's taint flags: one decoder for the kernel's mask and for each module's.

A taint explains why a report may not be trusted as is (a proprietary or out-of-tree
module, an earlier oops, a forced load), so ``sys``, ``mod`` and the diagnosis all name
them; they name them from this one table, in the kernel's bit order
(include/linux/panic.h, ``TAINT_*``).
"""

from __future__ import annotations

from dataclasses import dataclass

import drgn
from drgn.helpers.linux.panic import tainted

__all__ = ["TAINT_FLAGS", "KernelTaint", "TaintFlag", "describe_taints", "kernel_taint",
           "taint_letters"]


@dataclass(frozen=True)
class TaintFlag:
    """One taint bit: the letter the kernel prints for it, and what it means."""

    bit: int
    letter: str
    meaning: str


#: Every taint bit Linux 6.12 defines, in bit order.
TAINT_FLAGS: tuple[TaintFlag, ...] = tuple(
    TaintFlag(bit, letter, meaning) for bit, (letter, meaning) in enumerate((
        ("P", "proprietary module"), ("F", "module force-loaded"),
        ("S", "out-of-spec system"), ("R", "module force-unloaded"),
        ("M", "machine check"), ("B", "bad page"), ("U", "user request"),
        ("D", "kernel died before"), ("A", "ACPI table overridden"),
        ("W", "warning issued"), ("C", "staging driver"), ("I", "firmware workaround"),
        ("O", "out-of-tree module"), ("E", "unsigned module"),
        ("L", "soft lockup occurred"), ("K", "live-patched"), ("X", "auxiliary taint"),
        ("T", "randstruct build"), ("N", "in-kernel test"),
    )))


def taint_letters(mask: int) -> str:
    """The letters of the set bits, in bit order (``"OE"``); unknown bits are skipped."""
    return "".join(flag.letter for flag in TAINT_FLAGS if mask >> flag.bit & 1)


def describe_taints(mask: int) -> list[str]:
    """Each set bit as ``"O: out-of-tree module"``, in bit order: what a report shows
    next to a kernel or a module so the reader need not know the letters."""
    return [f"{flag.letter}: {flag.meaning}" for flag in TAINT_FLAGS if mask >> flag.bit & 1]


@dataclass(frozen=True)
class KernelTaint:
    """The kernel's taint state at the crash."""

    mask: int  # tainted_mask
    flags: str  # the kernel's own rendering, one column per flag ("G           O     ")

    @property
    def letters(self) -> str:
        """The flags with the kernel's padding collapsed, as crash's TAINTED shows them
        (``"G O"``)."""
        return " ".join(self.flags.split())

    def describe(self) -> list[str]:
        return describe_taints(self.mask)


def kernel_taint(prog: drgn.Program) -> KernelTaint:
    """Read the kernel's taint mask and render it with the kernel's own flag table (its
    ``taint_flags`` array, so letters added after Linux 6.12 still show)."""
    return KernelTaint(prog["tainted_mask"].value_(), tainted(prog))
