"""``irq``: interrupts as crash lists them; ``-s`` per-CPU counts (``-c CPUS`` chooses
the CPUs), ``-a`` affinity, ``-b`` the softirq vector, ``-d`` the interrupt descriptor
table, ``-u`` only IRQs in use; IRQ numbers select lines."""

from __future__ import annotations

import argparse

import drgn
from drgn.helpers.linux.cpumask import for_each_online_cpu

from kdx.commands.crash.arguments import cpu_list
from kdx.model.irq import Irq, idt_entries, irqs, softirqs
from kdx.render.crash.irq import (
    render_affinity,
    render_idt,
    render_irqs,
    render_softirqs,
    render_stats,
)
from kdx.session.command import CommandError, crash_command, make_parser
from kdx.session.session import Session


def _parser() -> argparse.ArgumentParser:
    parser = make_parser("irq", "interrupts, as crash lists them")
    parser.add_argument("-s", action="store_true", help="counts per CPU, as /proc/interrupts")
    parser.add_argument("-a", action="store_true", help="CPU affinity of each IRQ in use")
    parser.add_argument("-b", action="store_true", help="the softirq vector")
    parser.add_argument("-u", action="store_true", help="only IRQs with a descriptor")
    parser.add_argument("-d", action="store_true",
                        help="the interrupt descriptor table (x86_64)")
    parser.add_argument("-c", dest="cpus", metavar="CPUS",
                        help="with -s: only these CPUs (1,3,5-7, a or all)")
    parser.add_argument("irqs", nargs="*", metavar="IRQ", help="IRQ numbers to show")
    return parser


def _all(session: Session) -> list[Irq]:
    return session.cached("irqs", lambda: irqs(session.prog, session.warn))


def _select(entries: list[Irq], words: list[str]) -> list[Irq]:
    chosen = []
    for word in words:
        try:
            number = int(word, 10)
        except ValueError as err:
            raise CommandError(f"not an IRQ number: {word}") from err
        if not 0 <= number < len(entries):
            raise CommandError(f"invalid IRQ value: {number}  ({len(entries) - 1} max)")
        chosen.append(entries[number])
    return chosen


def _idt(session: Session) -> None:
    try:
        entries = idt_entries(session.prog)
    except (KeyError, drgn.FaultError) as err:
        raise CommandError(f"cannot read the interrupt descriptor table: {err}") from err
    session.emit("irq-idt", entries, lambda: render_idt(entries))


@crash_command("irq", "interrupts: descriptors and actions; -s [-c CPUS] counts per CPU; -a "
               "affinity; -b softirqs; -d IDT", parser=_parser)
def _irq(session: Session, args: argparse.Namespace) -> None:
    prog = session.prog
    if args.d:
        _idt(session)
        return
    if args.b:
        vector = softirqs(prog)
        session.emit("irq-softirqs", vector, lambda: render_softirqs(vector))
        return
    entries = _all(session)
    if args.a:
        count = max(for_each_online_cpu(prog), default=0) + 1
        session.emit("irq-affinity", entries, lambda: render_affinity(entries, count))
        return
    if args.s:
        cpus = tuple(for_each_online_cpu(prog))
        if args.cpus is not None:
            chosen = set(cpu_list(session, args.cpus))
            cpus = tuple(c for c in cpus if c in chosen)
        used = [e for e in entries if e.desc and e.actions]
        session.emit("irq-stats", used, lambda: render_stats(used, cpus))
        return
    if args.irqs:
        entries = _select(entries, args.irqs)
    elif args.u:
        # crash 8.0.6 keeps every allocated descriptor, with or without an action
        entries = [e for e in entries if e.desc]
    session.emit("irq", entries, lambda: render_irqs(entries))
