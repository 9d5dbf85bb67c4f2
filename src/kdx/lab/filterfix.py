"""Let a makedumpfile older than the kernel filter the kernel's dump correctly.

Linux 7.1 renamed ``struct page``'s ``compound_head`` to ``compound_info`` (bit 0 still
marks a tail page) and its VMCOREINFO line with it. makedumpfile reads that offset to skip
the tail pages of compound pages; every release up to 1.7.9 (sid's is 1.7.8) looks for the
old name only, so on 7.1 and later it judges tail pages by their ``_mapcount`` word, which
there holds folio data, and drops pages of live kernel data as free (the task list among
them). Upstream makedumpfile fixed it after 1.7.9 by reading compound_info as compound_head.

The lab applies that fix without patching makedumpfile: with ``-i FILE`` makedumpfile
reads VMCOREINFO entries from the file first, and the dump's own VMCOREINFO fills only what
the file lacks. A file with ``OSRELEASE`` and ``PAGESIZE`` (makedumpfile requires both) and
``OFFSET(page.compound_head)`` set to compound_info's offset is enough. The offset comes
from the BTF of the kernel's debug vmlinux, so the fix is given exactly when the kernel
has compound_info and the makedumpfile does not know it.
"""

from __future__ import annotations

import functools
from pathlib import Path

from kdx.lab.kernels import Kernel
from kdx.target.elfinfo import ElfError, section_table
from kdx.target.novmlinux.btf import Btf, BtfError, Kind, parse_btf

__all__ = ["GUEST_PATH", "compound_head_fix", "compound_info_offset", "knows_compound_info"]

#: Where the capture initramfs holds the file given to ``makedumpfile -i``.
GUEST_PATH = "/lab/vmcoreinfo-fix"
_PAGE_SIZE = 4096


def compound_head_fix(kernel: Kernel, makedumpfile: Path) -> str | None:
    """The VMCOREINFO text to give ``makedumpfile`` with ``-i`` when it captures a dump
    of ``kernel``, or None when it needs none (the kernel has compound_head, or this
    makedumpfile already reads compound_info)."""
    offset = compound_info_offset(kernel.vmlinux)
    if offset is None or knows_compound_info(makedumpfile):
        return None
    return (f"OSRELEASE={kernel.release}\nPAGESIZE={_PAGE_SIZE}\n"
            f"OFFSET(page.compound_head)={offset}\n")


def knows_compound_info(makedumpfile: Path) -> bool:
    """Whether this makedumpfile binary reads ``OFFSET(page.compound_info)`` (the fixed
    releases name the VMCOREINFO key in their code, the older ones never do)."""
    return b"page.compound_info" in makedumpfile.read_bytes()


@functools.cache
def compound_info_offset(vmlinux: Path) -> int | None:
    """Byte offset of ``compound_info`` in ``struct page`` by the vmlinux's BTF, or None
    when the kernel has no such member (before 7.1) or the vmlinux has no BTF."""
    btf = _vmlinux_btf(vmlinux)
    if btf is None:
        return None
    for type_id in btf.find("page", [Kind.STRUCT]):
        found = _member_offset(btf, type_id, "compound_info")
        if found is not None:
            return found // 8
    return None


def _vmlinux_btf(vmlinux: Path) -> Btf | None:
    """The ``.BTF`` section of ``vmlinux`` parsed, or None if it has none or is unreadable."""
    try:
        with open(vmlinux, "rb") as f:
            section = next((s for s in section_table(f) if s.name == ".BTF"), None)
            if section is None:
                return None
            f.seek(section.offset)
            return parse_btf(f.read(section.size))
    except (OSError, ElfError, BtfError):
        return None


def _member_offset(btf: Btf, type_id: int, name: str) -> int | None:
    """Bit offset of member ``name`` in the struct or union ``type_id``, looking inside
    its anonymous struct and union members (where ``struct page`` keeps its fields)."""
    for member in btf.type(type_id).members:
        if member.name == name:
            return member.bit_offset
        if not member.name:
            inner = _strip(btf, member.type_id)
            if btf.type(inner).kind in (Kind.STRUCT, Kind.UNION):
                found = _member_offset(btf, inner, name)
                if found is not None:
                    return member.bit_offset + found
    return None


def _strip(btf: Btf, type_id: int) -> int:
    """``type_id`` without typedefs and qualifiers."""
    qualifiers = (Kind.TYPEDEF, Kind.CONST, Kind.VOLATILE, Kind.RESTRICT, Kind.TYPE_TAG)
    for _ in range(32):  # a damaged blob could loop
        kind = btf.type(type_id).kind
        if kind not in qualifiers:
            break
        type_id = btf.type(type_id).ref
    return type_id
