"""Reproducible damaged copies of a vmcore, for testing that kdx survives real-world damage.

Real dumps arrive truncated, with flipped bits, with pages makedumpfile excluded, or with
kernel lists the panic itself corrupted. Each *kind* here makes one such copy from a sound
dump, the same bytes for the same ``seed``, so that a failure found once can be replayed
and kept as a regression test. The original file is only read.

File-level kinds work on any format; kinds that corrupt kernel data in place need an
uncompressed ELF dump and its vmlinux: the object is located with drgn, its virtual
address translated to a physical one, and the bytes patched at the ELF offset holding it.
"""

from __future__ import annotations

import random
import shutil
import struct
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from kdx.errors import KdxError
from kdx.target.formats import identify

__all__ = ["KINDS", "Kind", "damage"]

_PAGE = 4096
_DESC = 24  # struct page_desc: offset, size, flags, page_flags


@dataclass(frozen=True)
class Kind:
    """One way of damaging a dump: which formats it applies to and what it does."""

    name: str
    formats: tuple[str, ...]  # "elf", "kdump", "flattened"
    summary: str
    apply: Callable[[_Job], str]
    needs_vmlinux: bool = False


@dataclass
class _Job:
    src: Path
    out: Path
    kind: str  # the dump's format
    rng: random.Random
    vmlinux: Path | None
    at: float | None

    def patch(self, offset: int, data: bytes) -> None:
        with open(self.out, "r+b") as f:
            f.seek(offset)
            f.write(data)

    def read(self, offset: int, size: int) -> bytes:
        with open(self.out, "rb") as f:
            f.seek(offset)
            return f.read(size)

    def flip(self, start: int, end: int, count: int) -> list[int]:
        """Flip ``count`` random bits between file offsets ``start`` and ``end``."""
        spots = sorted(self.rng.randrange(start, max(end, start + 1)) for _ in range(count))
        for at in spots:
            byte = self.read(at, 1)
            if byte:
                self.patch(at, bytes([byte[0] ^ (1 << self.rng.randrange(8))]))
        return spots


def _kdump_layout(job: _Job) -> tuple[int, int, int]:
    """(block size, bitmap offset, length of both bitmaps) of a kdump file."""
    head = job.read(0, _PAGE)
    off = (12 + 6 * 65 + 7) & ~7
    block, sub_blocks, bitmap_blocks = struct.unpack_from("<iiI", head, off + 20)
    return block, (1 + sub_blocks) * block, bitmap_blocks * block


def _descs(job: _Job) -> tuple[int, int]:
    """(offset, count) of a kdump file's page descriptors."""
    _block, bitmap_off, bitmap_len = _kdump_layout(job)
    second = job.read(bitmap_off + bitmap_len // 2, bitmap_len // 2)
    return bitmap_off + bitmap_len, int.from_bytes(second, "little").bit_count()


def _elf_loads(path: Path) -> list[tuple[int, int, int]]:
    """(file offset, physical address, file size) of each PT_LOAD of an ELF core."""
    with open(path, "rb") as f:
        head = f.read(64)
        phoff = struct.unpack_from("<Q", head, 0x20)[0]
        phentsize, phnum = struct.unpack_from("<HH", head, 0x36)
        f.seek(phoff)
        table = f.read(phentsize * phnum)
    out = []
    for i in range(phnum):
        p_type, _fl, offset, _va, paddr, filesz = struct.unpack_from("<IIQQQQ", table,
                                                                     i * phentsize)
        if p_type == 1:
            out.append((offset, paddr, filesz))
    return out


# -- file-level kinds -------------------------------------------------------------------


def _truncate(job: _Job) -> str:
    size = job.out.stat().st_size
    fraction = job.at if job.at is not None else job.rng.uniform(0.02, 0.98)
    cut = max(1, int(size * fraction)) if fraction <= 1 else int(fraction)
    with open(job.out, "r+b") as f:
        f.truncate(cut)
    return f"truncated at byte {cut:,} of {size:,}"


def _header_flip(job: _Job) -> str:
    if job.kind == "elf":
        head = job.read(0, 64)
        phoff = struct.unpack_from("<Q", head, 0x20)[0]
        phentsize, phnum = struct.unpack_from("<HH", head, 0x36)
        end = min(phoff + phentsize * phnum, job.out.stat().st_size)
        spots = job.flip(16, end, 4)
    elif job.kind == "kdump":
        block = _kdump_layout(job)[0]
        spots = job.flip(8, 2 * block, 4)
    else:
        spots = job.flip(16, _PAGE + 64, 4)
    return "flipped header bits at " + ", ".join(f"{s:#x}" for s in spots)


def _bitmap_flip(job: _Job) -> str:
    _block, off, length = _kdump_layout(job)
    spots = job.flip(off, off + length, 16)
    return f"flipped 16 bitmap bits between {off:#x} and {off + length:#x} (first {spots[0]:#x})"


def _desc_flip(job: _Job) -> str:
    off, count = _descs(job)
    spots = job.flip(off, off + count * _DESC, 16)
    return f"flipped 16 bits in {count} page descriptors (first {spots[0]:#x})"


def _note_span(job: _Job) -> tuple[int, int]:
    with open(job.out, "rb") as f:
        data = f.read(1 << 20)
    start = data.find(b"OSRELEASE=")
    if start < 0:
        raise KdxError(f"{job.src} has no VMCOREINFO note in its first MiB")
    return start, data.find(b"\0", start)


def _vmcoreinfo_corrupt(job: _Job) -> str:
    start, end = _note_span(job)
    text = job.read(start, end - start)
    at = text.find(b"BUILD-ID=")
    if at >= 0 and job.rng.random() < 0.5:
        spot = start + at + 9 + job.rng.randrange(8)
        job.patch(spot, b"z")
        return f"BUILD-ID made non-hex at {spot:#x}"
    spots = job.flip(start, end, 3)
    return "flipped VMCOREINFO bits at " + ", ".join(f"{s:#x}" for s in spots)


def _vmcoreinfo_missing(job: _Job) -> str:
    start, end = _note_span(job)
    job.patch(start, b"\0" * (end - start))
    return f"VMCOREINFO text zeroed ({end - start} bytes at {start:#x})"


def _zero_pages(job: _Job) -> str:
    if job.kind == "kdump":
        off, count = _descs(job)
        picks = sorted(job.rng.sample(range(count), min(64, count)))
        for i in picks:
            offset, size = struct.unpack("<qi", job.read(off + i * _DESC, 12))
            if 0 < size <= 2 * _PAGE:
                job.patch(offset, b"\0" * size)
        return f"zeroed the data of {len(picks)} of {count} saved pages"
    loads = [seg for seg in _elf_loads(job.out) if seg[2] >= _PAGE]
    total = 0
    for _ in range(64):
        offset, _pa, filesz = job.rng.choice(loads)
        page = job.rng.randrange(filesz // _PAGE)
        job.patch(offset + page * _PAGE, b"\0" * _PAGE)
        total += 1
    return f"zeroed {total} random pages of memory"


def _exclude_pages(job: _Job) -> str:
    """Remove 5% of the saved pages (at most 2000) as makedumpfile excludes them."""
    saved = _saved_pfns(job)
    drop = job.rng.sample(saved, min(len(saved) // 20, 2000))
    return f"excluded {_exclude(job, set(drop))} of {len(saved)} saved pages"


def _exclude_tasks(job: _Job) -> str:
    """Exclude the pages of a third of the task_structs, as a makedumpfile that does not
    know the kernel's page flags does with live kernel data."""
    from kdx.target.open import open_dump

    target = open_dump(job.src, job.vmlinux)
    prog = target.prog
    from drgn.helpers.linux.list import list_for_each_entry

    tasks = list(list_for_each_entry("struct task_struct",
                                     prog["init_task"].tasks.address_of_(), "tasks"))
    tasks = [t for t in tasks if t.pid.value_() > 1]
    picks = job.rng.sample(tasks, max(1, len(tasks) // 3))
    direct = prog["page_offset_base"].value_()
    pfns = {(t.value_() - direct + off) // _PAGE for t in picks
            for off in (0, prog.type("struct task_struct").size - 1)}
    count = _exclude(job, pfns)
    return f"excluded {count} pages holding {len(picks)} of {len(tasks)} task_structs"


def _exclude_bpf(job: _Job) -> str:
    """Exclude the pages holding the second BPF program's and the second map's
    structures (a bpf_prog is vmalloc'ed, a bpf_map comes from the slab), so ``bpf`` has
    an unreadable entry of each kind. A dump without them is left as it is."""
    from drgn.helpers.linux.idr import idr_for_each
    from drgn.helpers.linux.mm import follow_phys

    from kdx.target.open import open_dump

    prog = open_dump(job.src, job.vmlinux).prog
    mm = prog["init_mm"].address_of_()
    picked = {}
    for symbol in ("prog_idr", "map_idr"):
        entries = sorted(idr_for_each(prog[symbol]), key=lambda e: e[0])
        if len(entries) > 1:
            picked[symbol] = entries[1]
    pfns = {follow_phys(mm, entry.value_()).value_() // _PAGE
            for _id, entry in picked.values()}
    if not pfns:
        return "no second BPF program or map: nothing excluded"
    count = _exclude(job, pfns)
    named = ", ".join(f"{s.split('_')[0]} {i} at {e.value_():#x}"
                      for s, (i, e) in picked.items())
    return f"excluded {count} pages holding {named}"


def _exclude_log(job: _Job) -> str:
    """Exclude the pages of the printk ring's text (what makedumpfile would lose of a log
    it does not know), so a diagnosis must go on from the registers and the tasks."""
    from drgn.helpers.linux.mm import follow_phys

    from kdx.target.open import open_dump

    prog = open_dump(job.src, job.vmlinux).prog
    mm = prog["init_mm"].address_of_()
    ring = prog["prb"].text_data_ring
    start, size = ring.data.value_(), 1 << ring.size_bits.value_()
    pfns = {follow_phys(mm, address).value_() // _PAGE
            for address in range(start, start + size, _PAGE)}
    count = _exclude(job, pfns)
    return f"excluded {count} pages of the log's text ring ({size} bytes at {start:#x})"


def _saved_pfns(job: _Job) -> list[int]:
    _block, bitmap_off, length = _kdump_layout(job)
    second = job.read(bitmap_off + length // 2, length // 2)
    return [i for i in range(len(second) * 8) if second[i >> 3] >> (i & 7) & 1]


def _exclude(job: _Job, pfns: set[int]) -> int:
    """Clear ``pfns`` in the second bitmap and drop their page descriptors (later ones
    move up a place, as descriptors are found by rank); returns how many were saved."""
    _block, bitmap_off, length = _kdump_layout(job)
    second_off = bitmap_off + length // 2
    second = bytearray(job.read(second_off, length // 2))
    off, count = _descs(job)
    descs = job.read(off, count * _DESC)
    saved = _saved_pfns(job)
    drop = {rank for rank, pfn in enumerate(saved) if pfn in pfns}
    for rank in drop:
        pfn = saved[rank]
        second[pfn >> 3] &= ~(1 << (pfn & 7))
    kept = b"".join(descs[i * _DESC:(i + 1) * _DESC] for i in range(count) if i not in drop)
    job.patch(second_off, bytes(second))
    job.patch(off, kept + b"\0" * (len(descs) - len(kept)))
    return len(drop)


# -- kernel data corrupted in place (ELF dumps with a vmlinux) --------------------------


class _Kernel:
    """The original dump opened with drgn, to find objects and their file offsets."""

    def __init__(self, job: _Job) -> None:
        from kdx.target.open import open_dump

        self.job = job
        self.target = open_dump(job.src, job.vmlinux)
        self.prog = self.target.prog
        self.loads = _elf_loads(job.src)

    def phys(self, address: int) -> int:
        from drgn.helpers.linux.mm import follow_phys

        return follow_phys(self.prog["init_mm"].address_of_(), address).value_()

    def offset(self, address: int) -> int:
        pa = self.phys(address)
        for offset, start, size in self.loads:
            if start <= pa < start + size:
                return offset + pa - start
        raise KdxError(f"{address:#x} (physical {pa:#x}) is not saved in {self.job.src}")

    def write_word(self, address: int, value: int) -> None:
        self.job.patch(self.offset(address), struct.pack("<Q", value))

    def tasks(self) -> list:
        from drgn.helpers.linux.list import list_for_each_entry

        head = self.prog["init_task"].tasks.address_of_()
        return list(list_for_each_entry("struct task_struct", head, "tasks"))


def _pick_task(kernel: _Kernel):  # noqa: ANN202 (a drgn Object)
    tasks = [t for t in kernel.tasks() if t.pid.value_() > 1]
    return tasks[kernel.job.rng.randrange(len(tasks))]


def _task_loop(job: _Job) -> str:
    kernel = _Kernel(job)
    tasks = kernel.tasks()
    later = job.rng.randrange(len(tasks) // 2, len(tasks))
    earlier = job.rng.randrange(1, later)
    kernel.write_word(tasks[later].tasks.next.address_of_().value_(),
                      tasks[earlier].tasks.address_of_().value_())
    return (f"task list loops: pid {tasks[later].pid.value_()}'s tasks.next points back to "
            f"pid {tasks[earlier].pid.value_()}")


def _task_unmapped(job: _Job) -> str:
    kernel = _Kernel(job)
    task = _pick_task(kernel)
    kernel.write_word(task.tasks.next.address_of_().value_(), 0xdead000000000100)
    return f"task list: pid {task.pid.value_()}'s tasks.next points into unmapped memory"


def _pid_table(job: _Job) -> str:
    """Point the initial PID namespace's ID tree at unmapped memory (as a tree node), so
    tasks can only be found by the other routes: the task list, the runqueues, the panic."""
    kernel = _Kernel(job)
    head = kernel.prog["init_pid_ns"].idr.idr_rt.xa_head
    kernel.write_word(head.address_of_().value_(), 0xDEAD000000000102)
    return "PID table: the initial namespace's ID tree points into unmapped memory"


def _task_garbage(job: _Job) -> str:
    kernel = _Kernel(job)
    task = _pick_task(kernel)
    comm = bytes([0x1B, ord("["), ord("2"), ord("J"), 0x07, 0x0A, 0xFF, ord("<"), ord("b"),
                  ord(">"), 0x0D, ord("x"), 0x08, ord('"'), ord("&"), 0])
    job.patch(kernel.offset(task.comm.address_of_().value_()), comm)
    job.patch(kernel.offset(task.pid.address_of_().value_()),
              struct.pack("<i", -job.rng.randrange(2, 1 << 30)))
    return f"task at {task.value_():#x}: comm of control characters and markup, negative pid"


def _module_loop(job: _Job) -> str:
    from drgn.helpers.linux.module import for_each_module

    kernel = _Kernel(job)
    mods = list(for_each_module(kernel.prog))
    if len(mods) < 2:
        raise KdxError(f"{job.src} has fewer than two modules")
    last = mods[-1]
    kernel.write_word(last.list.next.address_of_().value_(), mods[0].list.address_of_().value_())
    return f"module list loops: {last.name.string_().decode()}'s next is the first module"


def _log_broken(job: _Job) -> str:
    kernel = _Kernel(job)
    prb = kernel.prog["prb"]
    ring = prb.desc_ring
    count = 1 << ring.count_bits.value_()
    head, tail = ring.head_id.counter.value_(), ring.tail_id.counter.value_()
    used = sorted({i % count for i in range(tail, head + 1)}) or list(range(count))
    picks = sorted(job.rng.sample(used, min(16, len(used))))
    for i in picks:
        desc = ring.descs[i]
        lpos = desc.text_blk_lpos
        kernel.write_word(lpos.begin.address_of_().value_(), job.rng.getrandbits(64))
        kernel.write_word(lpos.next.address_of_().value_(), job.rng.getrandbits(64))
    return f"log ring: {len(picks)} of {len(used)} used descriptors with random text positions"


def _pagetable_zero(job: _Job) -> str:
    """Zero page-table pages, by seed: those mapping a few task stacks (vmalloc'ed), or a
    page of the direct map's upper tables (most of memory then reads as unmapped)."""
    kernel = _Kernel(job)
    zeroed: set[int] = set()
    if job.rng.random() < 0.3:
        direct = kernel.prog["page_offset_base"].value_()
        table = _pmd_table(kernel.prog, direct + job.rng.randrange(0, 256 << 20), levels=1)
        if table is not None:
            job.patch(kernel.offset(table), b"\0" * _PAGE)
        return "zeroed the direct map's page-directory page"
    tasks = kernel.tasks()
    for task in job.rng.sample(tasks, min(8, len(tasks))):
        table = _pmd_table(kernel.prog, task.stack.value_())
        if table is not None and table not in zeroed:
            job.patch(kernel.offset(table), b"\0" * _PAGE)
            zeroed.add(table)
    return f"zeroed {len(zeroed)} page-table pages (those mapping task stacks)"


def _pmd_table(prog, address: int,  # noqa: ANN001 (a drgn Program)
               levels: int = 0) -> int | None:
    """The direct-map address of the page table whose entries map ``address``'s 2 MiB
    (or, with ``levels``, of the table that many levels under the top)."""
    direct = prog["page_offset_base"].value_()
    shifts = (48, 39, 30) if direct < 0xFFFF800000000000 else (39, 30)  # 5 or 4 levels
    shifts = shifts[:levels] if levels else shifts
    table = prog["init_mm"].pgd.value_()
    for shift in shifts:
        entry = prog.read_u64(table + 8 * ((address >> shift) & 0x1FF))
        if not entry & 1 or (shift == 30 and entry & 0x80):
            return None
        table = (entry & 0x000FFFFFFFFFF000) + direct
    return table


KINDS: dict[str, Kind] = {k.name: k for k in (
    Kind("truncate", ("elf", "kdump", "flattened"), "cut the file short (--at)", _truncate),
    Kind("header-flip", ("elf", "kdump", "flattened"), "flip bits in the file headers",
         _header_flip),
    Kind("bitmap-flip", ("kdump",), "flip bits in the page bitmaps", _bitmap_flip),
    Kind("desc-flip", ("kdump",), "flip bits in the page descriptors", _desc_flip),
    Kind("vmcoreinfo-corrupt", ("elf", "kdump"), "damage the VMCOREINFO note",
         _vmcoreinfo_corrupt),
    Kind("vmcoreinfo-missing", ("elf", "kdump"), "blank the VMCOREINFO note's text",
         _vmcoreinfo_missing),
    Kind("zero-pages", ("elf", "kdump"), "zero 64 saved pages", _zero_pages),
    Kind("exclude-pages", ("kdump",), "exclude 5% of the saved pages", _exclude_pages),
    Kind("exclude-tasks", ("kdump",), "exclude the pages of a third of the task_structs",
         _exclude_tasks, True),
    Kind("exclude-log", ("kdump",), "exclude the pages of the log's text ring",
         _exclude_log, True),
    Kind("exclude-bpf", ("kdump",), "exclude the pages of the second BPF program and map",
         _exclude_bpf, True),
    Kind("task-loop", ("elf",), "make the task list loop", _task_loop, True),
    Kind("task-unmapped", ("elf",), "point a task list link into unmapped memory",
         _task_unmapped, True),
    Kind("pid-table", ("elf",), "point the PID table into unmapped memory", _pid_table,
         True),
    Kind("task-garbage", ("elf",), "give a task a garbage comm and pid", _task_garbage, True),
    Kind("module-loop", ("elf",), "make the module list loop", _module_loop, True),
    Kind("log-broken", ("elf",), "break log ring descriptors", _log_broken, True),
    Kind("pagetable-zero", ("elf",), "zero page-table pages", _pagetable_zero, True),
)}


def damage(src: Path, out: Path, kind: str, seed: int = 0, vmlinux: Path | None = None,
           at: float | None = None) -> str:
    """Write a damaged copy of ``src`` to ``out``; returns what was done, in one line."""
    if kind not in KINDS:
        raise KdxError(f"{kind}: no such damage kind ('--kind list' lists them)")
    spec = KINDS[kind]
    fmt = identify(src).kind
    if fmt not in spec.formats:
        raise KdxError(f"damage kind {kind} applies to {', '.join(spec.formats)} dumps, "
                       f"not to {src} ({fmt})")
    if spec.needs_vmlinux and vmlinux is None:
        near = src.parent / "vmlinux"
        vmlinux = near if near.exists() else None
    if out.resolve() == src.resolve():
        raise KdxError("the damaged copy must not replace the original dump")
    shutil.copyfile(src, out)
    try:
        return spec.apply(_Job(src, out, fmt, random.Random(f"{kind}:{seed}"), vmlinux, at))
    except (struct.error, ValueError, IndexError) as err:
        out.unlink(missing_ok=True)
        raise KdxError(f"cannot apply {kind} to {src}: {err}") from None
