"""``vm``: a task's address space, ``vm -p`` (page translations) and ``vm -m``.

Like crash, ``vm`` takes PIDs or task addresses (the current task by default) and prints
the task header, the MM/PGD/RSS/TOTAL_VM block and the VMAs. ``-p`` walks each VMA page
by page through the page tables; on dumps filtered at level 31 the user pages' contents
are absent but the page tables are not, so the translations are all there. ``-m`` prints
the mm_struct the way crash's gdb prints it.
"""

from __future__ import annotations

import argparse

import drgn

from kdx.commands.crash.arguments import (
    for_each_task_argument,
    hex_word,
    physical_width,
    task_chunk,
)
from kdx.model.answers import TaskVmPages, VmFlags, VmReference
from kdx.model.files import task_id
from kdx.model.rawmemory import USER_SPACE_END
from kdx.model.values import TaskValues, session_reader
from kdx.model.vm import (
    TaskVm,
    VmaPages,
    mm_struct_problem,
    task_vm,
    vm_flag_names,
    vma_pages,
)
from kdx.render.crash.data import task_values_block
from kdx.render.crash.vm import (
    render_reference,
    render_single_vma,
    render_vm,
    render_vm_flags,
    render_vm_pages,
)
from kdx.session.command import CommandError, crash_command, make_parser
from kdx.session.session import Session


def _parser() -> argparse.ArgumentParser:
    parser = make_parser("vm", "the virtual memory of tasks, as crash prints it")
    mode = parser.add_mutually_exclusive_group()
    mode.add_argument("-p", action="store_true", dest="physical",
                      help="translate every page of every VMA to its physical address")
    mode.add_argument("-m", action="store_true", dest="mm_struct",
                      help="print the task's mm_struct")
    mode.add_argument("-v", action="store_true", dest="vma_structs",
                      help="print each of the task's vm_area_structs")
    mode.add_argument("-P", dest="single_vma", metavar="VMA",
                      help="translate the pages of one VMA (hexadecimal address)")
    mode.add_argument("-R", dest="reference", metavar="REF",
                      help="only what references REF: the mm_struct or page directory, "
                      "a VMA address, its flags, part of its file name, or a page's "
                      "virtual or physical address")
    mode.add_argument("-f", dest="flags", metavar="FLAGS",
                      help="name the bits of a vm_flags value (hexadecimal)")
    parser.add_argument("-M", dest="mm", metavar="MM",
                        help="for a task whose mm pointer is gone: use this mm_struct")
    radix = parser.add_mutually_exclusive_group()
    radix.add_argument("-x", action="store_const", const=16, dest="radix",
                       help="with -m: integers in hexadecimal")
    radix.add_argument("-d", action="store_const", const=10, dest="radix",
                       help="with -m: integers in decimal")
    parser.add_argument("tasks", nargs="*", metavar="PID|TASK",
                        help="PIDs or task addresses (default: the current task)")
    return parser


@crash_command("vm", "virtual memory of a task: VMAs (-p/-P pages, -m/-v structs, -R, -f, -M)",
               parser=_parser)
def _vm(session: Session, args: argparse.Namespace) -> None:
    prog = session.prog
    if args.flags is not None:
        flags = hex_word(args.flags, "vm_flags value")
        names = vm_flag_names(prog, flags)
        session.emit("vm-flags", VmFlags(flags, names),
                     render_vm_flags(flags, names))
        return
    forced = 0
    if args.mm is not None:
        forced = hex_word(args.mm, "mm_struct address")
        if forced < USER_SPACE_END:
            raise CommandError(f"invalid mm_struct address: {args.mm}")
    records: list[object] = []
    texts: list[str] = []
    missing = [0]

    def visit(form: str, task: drgn.Object) -> None:
        if forced and not task.mm:
            problem = mm_struct_problem(prog, forced)
            if problem is not None:
                raise CommandError(problem)
        vm = task_vm(task, forced)
        if args.reference is not None:
            record, text = _reference(prog, task, vm, args.reference)
            if record is not None:
                records.append(record)
            texts.append(text)
            return
        if args.vma_structs or args.single_vma is not None:
            record, text = _vma_view(session, task, vm, args)
            records.append(record)
            texts.append(task_chunk(text, form, first=not texts, pid_blank=False))
            return
        if args.mm_struct:
            record = _mm_struct(session, task, vm.mm)
            records.append(record)
            text = task_values_block(record, args.radix or 10)
        elif args.physical:
            areas = [vma_pages(task, v, vm.page_size, vm.forced_mm) for v in vm.vmas]
            missing[0] += sum(p.kind == "unreadable" for a in areas for p in a.pages)
            records.append(TaskVmPages(vm, areas))
            text = render_vm_pages(vm, areas, physical_width(prog))
        else:
            records.append(vm)
            text = render_vm(vm)
        texts.append(task_chunk(text, form, first=not texts, pid_blank=False))

    for_each_task_argument(session, args.tasks, visit)
    if args.physical:
        _note_excluded_user_pages(session)
    if missing[0]:
        session.warn(f"{missing[0]} pages could not be translated: their page tables are "
                     "not in the dump")
    session.emit("vm", records, lambda: "".join(texts))


def _vma_view(session: Session, task: drgn.Object, vm: TaskVm,
              args: argparse.Namespace) -> tuple[object, str]:
    """``vm -v`` (every vm_area_struct as gdb prints it) and ``vm -P VMA``."""
    prog = session.prog
    t = vm.task
    if args.vma_structs:
        reader = session_reader(prog, session.cached)
        vmas = tuple(reader.read(drgn.Object(prog, "struct vm_area_struct", address=v.address))
                     for v in vm.vmas)
        record = TaskValues(t.pid, t.task, t.cpu, t.command, values=vmas)
        return record, task_values_block(record, args.radix or 10)
    wanted = hex_word(args.single_vma, "VMA address")
    vma = next((v for v in vm.vmas if v.address == wanted), None)
    area = vma_pages(task, vma, vm.page_size, vm.forced_mm) if vma is not None else None
    text = render_single_vma(vm, area, physical_width(prog))
    return {"task": vm.task, "vma": area}, text


def _reference(prog: drgn.Program, task: drgn.Object, vm: TaskVm,
               ref: str) -> tuple[VmReference | None, str]:
    """``vm -R REF`` for one task, by crash's rules: a number equal to the mm_struct or
    page directory shows only the MM block; otherwise each VMA whose address, flags or
    file name matches, and each page whose virtual or physical address matches, under
    its VMA; then a blank line. Nothing at all when nothing matches."""
    digits = ref[2:] if ref.lower().startswith("0x") else ref
    number = int(digits, 16) if digits and all(
        c in "0123456789abcdefABCDEF" for c in digits) else None
    width = physical_width(prog)
    if number is not None and vm.mm and number in (vm.mm, vm.pgd):
        return (VmReference(vm.task, ref, vm.mm, []),
                render_reference(vm, [], width, mm_only=True))
    blocks: list[tuple[str, object]] = []
    state = {"vma": False, "page": False, "last": None}
    for vma in vm.vmas:
        if (number is not None and number in (vma.address, vma.flags)) or (
                vma.file and _path_component(vma.file, ref)):
            if not state["vma"] or state["page"]:
                blocks.append(("vma-header", None))
                state.update(vma=True, page=False, last=vma.address)
            blocks.append(("vma", vma))
        if number is None:
            continue
        area = vma_pages(task, vma, vm.page_size, vm.forced_mm)
        hits = tuple(p for p in area.pages if number in (p.virtual, p.physical))
        if not hits:
            continue
        state["page"] = True
        if not state["vma"] or state["last"] != vma.address:
            blocks += [("vma-header", None), ("vma", vma)]
            state.update(vma=True, last=vma.address)
        blocks.append(("pages", VmaPages(vma, hits)))
    text = render_reference(vm, blocks, width)
    record = VmReference(vm.task, ref, None, [b[1] for b in blocks if b[0] != "vma-header"]) \
        if blocks else None
    return record, text


def _path_component(path: str, ref: str) -> bool:
    """crash's FILENAME_COMPONENT: ``/`` matches only ``/``, anything else any part."""
    return (path == "/" and ref == "/") or (ref != "/" and ref in path)


#: makedumpfile's dump-level bit for "exclude user data pages".
_USER_DATA_EXCLUDED = 8


def _note_excluded_user_pages(session: Session) -> None:
    """Say once that the pages ``vm -p`` lists are not themselves in the dump, so that
    nobody reads their absence from a later ``rd`` as corruption."""
    dump = session.target.dump
    level = getattr(dump, "dump_level", None) if dump is not None else None
    if level is not None and level & _USER_DATA_EXCLUDED:
        session.warn(f"user pages are excluded from this dump (dump level {level}): the "
                     "translations come from the page tables, which the dump keeps; the "
                     "pages' contents are not in it")


def _mm_struct(session: Session, task: drgn.Object, mm: int) -> TaskValues:
    """``vm -m``: the task and its mm_struct (none for a kernel thread)."""
    t = task_id(task)
    values = ()
    if mm:
        obj = drgn.Object(session.prog, "struct mm_struct", address=mm)
        values = (session_reader(session.prog, session.cached).read(obj),)
    return TaskValues(t.pid, t.task, t.cpu, t.command, values=values)

