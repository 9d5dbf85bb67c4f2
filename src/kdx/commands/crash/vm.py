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

from kdx.commands.crash.files import for_each_task_argument, task_chunk
from kdx.model.files import task_id
from kdx.model.vm import task_vm, vma_pages
from kdx.render.crash.data import Formatter, struct_text
from kdx.render.crash.layout import task_header
from kdx.render.crash.vm import render_vm, render_vm_pages
from kdx.session.command import CrashCommand, make_parser
from kdx.session.session import Session


def _parser() -> argparse.ArgumentParser:
    parser = make_parser("vm", "the virtual memory of tasks, as crash prints it")
    mode = parser.add_mutually_exclusive_group()
    mode.add_argument("-p", action="store_true", dest="physical",
                      help="translate every page of every VMA to its physical address")
    mode.add_argument("-m", action="store_true", dest="mm_struct",
                      help="print the task's mm_struct")
    radix = parser.add_mutually_exclusive_group()
    radix.add_argument("-x", action="store_const", const=16, dest="radix",
                       help="with -m: integers in hexadecimal")
    radix.add_argument("-d", action="store_const", const=10, dest="radix",
                       help="with -m: integers in decimal")
    parser.add_argument("tasks", nargs="*", metavar="PID|TASK",
                        help="PIDs or task addresses (default: the current task)")
    return parser


def physical_width(prog: drgn.Program) -> int:
    """crash's physical-address column: as wide as the highest physical address in hex,
    and at least eight."""
    try:
        top = prog["max_pfn"].value_() * prog["PAGE_SIZE"].value_()
    except (KeyError, LookupError, drgn.FaultError):
        return 8
    return max(len(f"{top:x}"), 8)


def _vm(session: Session, args: argparse.Namespace) -> None:
    prog = session.prog
    records: list[object] = []
    texts: list[str] = []
    missing = [0]

    def visit(form: str, task: drgn.Object) -> None:
        vm = task_vm(task)
        if args.mm_struct:
            text = _mm_text(prog, task, vm.mm, args.radix or 10)
            records.append({"task": vm.task, "mm": vm.mm, "text": text})
        elif args.physical:
            areas = [vma_pages(task, v, vm.page_size) for v in vm.vmas] if vm.mm else []
            missing[0] += sum(p.kind == "unreadable" for a in areas for p in a.pages)
            records.append({"vm": vm, "pages": areas})
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


def _mm_text(prog: drgn.Program, task: drgn.Object, mm: int, radix: int) -> str:
    """``vm -m``: the task header, then the mm_struct (nothing for a kernel thread)."""
    t = task_id(task)
    header = task_header(t.pid, t.task, t.cpu, t.command)
    if not mm:
        return header
    obj = drgn.Object(prog, "struct mm_struct", address=mm)
    return header + "\n" + struct_text(obj, Formatter(prog, radix))


COMMANDS = [
    CrashCommand("vm", "virtual memory of a task: VMAs; -p pages, -m mm_struct",
                 _parser, _vm),
]
