"""``vtop``, ``ptov``, ``pte``, ``btop`` and ``ptob``: address translation, as crash prints it.

``vtop [-c PID|TASK] [-u|-k] ADDR...`` walks the page tables entry by entry
(kdx.model.paging) and adds the PTE's flags, the VMA of a user address and the page's
mem_map line; ``ptov PHYS|OFFSET:CPUS`` gives the direct-map (or per-CPU) address,
``pte CONTENTS`` decodes an entry, ``btop``/``ptob`` convert between bytes and pages.
"""

from __future__ import annotations

import argparse

from kdx.commands.crash.arguments import cpu_list, hex_word, physical_width, tasks_for_argument
from kdx.model.answers import PageFrame, PercpuOffset, PhysicalToVirtual
from kdx.model.expr import crash_number
from kdx.model.paging import (
    TranslateError,
    Translation,
    check_x86_64,
    decode_pte,
    page_offset,
    translate,
)
from kdx.model.tasks import crash_cpus
from kdx.render.crash.paging import (
    render_pairs,
    render_percpu,
    render_pte,
    render_ptov,
    render_translation,
)
from kdx.session.command import CommandError, crash_command, make_parser
from kdx.session.session import Session

_PAGE_SHIFT = 12
#: What a hexadecimal argument of these commands is called in the error message.
_VALUE = "hexadecimal value"


# -- vtop ---------------------------------------------------------------------------------


def _vtop_parser() -> argparse.ArgumentParser:
    parser = make_parser("vtop", "translate a virtual address, showing the page-table walk")
    parser.add_argument("-c", dest="context", metavar="PID|TASK",
                        help="use this task's page tables for user addresses")
    space = parser.add_mutually_exclusive_group()
    space.add_argument("-u", dest="user", action="store_const", const=True,
                       help="the address is a user address")
    space.add_argument("-k", dest="user", action="store_const", const=False,
                       help="the address is a kernel address")
    parser.add_argument("addresses", nargs="+", metavar="ADDR")
    return parser


def _file_line(t: Translation) -> str:
    """crash's FILE line for a page of a file mapping that is not in memory."""
    vma = t.vma
    if vma is None or not vma.file or t.physical is not None:
        return ""
    offset = vma.pgoff * (1 << _PAGE_SHIFT) + (t.virtual & ~0xFFF) - vma.start
    return f"FILE: {vma.file}  OFFSET: {offset:x}"


@crash_command("vtop", "virtual to physical, with the page-table walk", parser=_vtop_parser)
def _vtop(session: Session, args: argparse.Namespace) -> None:
    prog = session.prog
    task = session.current_task
    if args.context:
        _, tasks = tasks_for_argument(session, args.context)
        if not tasks:
            raise CommandError(f"invalid task or pid value: {args.context}")
        task = tasks[0]
    width = physical_width(prog)
    records, texts = [], []
    for word in args.addresses:
        address = crash_number(prog, word) if not all(
            c in "0123456789abcdefABCDEFxX" for c in word) else hex_word(word, _VALUE)
        try:
            t = translate(prog, address, task, user=args.user)
        except TranslateError as err:
            raise CommandError(str(err)) from err
        if t.error:
            session.warn(t.error)
        records.append(t)
        texts.append(render_translation(t, width, _file_line(t)))
    session.emit("vtop", records, lambda: "\n\n".join(texts))


# -- ptov -----------------------------------------------------------------------------------


def _ptov_parser() -> argparse.ArgumentParser:
    parser = make_parser("ptov", "physical to kernel virtual, or a per-CPU offset to "
                         "each CPU's address")
    parser.add_argument("addresses", nargs="+", metavar="PHYS|OFFSET:CPUS")
    return parser


def _ptov_cpus(session: Session, spec: str) -> list[int]:
    """ptov's CPU specifier: empty for the current task's CPU, else a crash CPU list."""
    if spec == "":
        return [session.current_task.cpu.value_()] if hasattr(session.current_task, "cpu") \
            else [0]
    return cpu_list(session, spec)


@crash_command("ptov", "physical (or per-CPU offset) to kernel virtual", parser=_ptov_parser)
def _ptov(session: Session, args: argparse.Namespace) -> None:
    prog = session.prog
    base = page_offset(prog)
    pairs: list[PercpuOffset | PhysicalToVirtual] = []
    texts: list[str] = []
    for word in args.addresses:
        if ":" in word:
            offset_word, spec = word.split(":", 1)
            offset = hex_word(offset_word, _VALUE)
            per_cpu = prog["__per_cpu_offset"]
            cpus = [(cpu, (offset + per_cpu[cpu].value_()) & ((1 << 64) - 1))
                    for cpu in _ptov_cpus(session, spec)]
            pairs.append(PercpuOffset(offset, {str(c): a for c, a in cpus}))
            texts.append(render_percpu(offset, cpus, len(crash_cpus(prog))))
            continue
        physical = hex_word(word, _VALUE)
        pairs.append(PhysicalToVirtual(physical, physical + base))
        texts.append(render_ptov([(physical, physical + base)]))
    session.emit("ptov", pairs, lambda: "\n\n".join(texts))


# -- pte, btop, ptob ---------------------------------------------------------------------------


def _pte_parser() -> argparse.ArgumentParser:
    parser = make_parser("pte", "decode the contents of a page-table entry")
    parser.add_argument("values", nargs="+", metavar="CONTENTS")
    return parser


@crash_command("pte", "decode a page-table entry", parser=_pte_parser)
def _pte(session: Session, args: argparse.Namespace) -> None:
    try:
        check_x86_64(session.prog)
    except TranslateError as err:
        raise CommandError(str(err)) from err
    ptes = [decode_pte(hex_word(word, _VALUE) & ((1 << 64) - 1)) for word in args.values]
    session.emit("pte", ptes, lambda: render_pte(ptes))


def _btop_parser() -> argparse.ArgumentParser:
    parser = make_parser("btop", "bytes to page: the page frame number of an address")
    parser.add_argument("values", nargs="+", metavar="ADDR")
    return parser


@crash_command("btop", "bytes to page frame number", parser=_btop_parser)
def _btop(session: Session, args: argparse.Namespace) -> None:
    pairs = [(v, v >> _PAGE_SHIFT) for v in (hex_word(w, _VALUE) for w in args.values)]
    session.emit("btop", [PageFrame(a, p) for a, p in pairs],
                 lambda: render_pairs(pairs))


def _ptob_parser() -> argparse.ArgumentParser:
    parser = make_parser("ptob", "page to bytes: the address of a page frame number")
    parser.add_argument("values", nargs="+", metavar="PFN",
                        help="decimal when all digits, else hexadecimal (crash's rule)")
    return parser


@crash_command("ptob", "page frame number to bytes", parser=_ptob_parser)
def _ptob(session: Session, args: argparse.Namespace) -> None:
    pairs = [(v, v << _PAGE_SHIFT) for v in (crash_number(None, w) for w in args.values)]
    session.emit("ptob", [PageFrame(a, p) for p, a in pairs],
                 lambda: render_pairs(pairs))
