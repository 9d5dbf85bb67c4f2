"""``timer``: pending timers of every CPU's timer wheel; ``-r`` the hrtimers; ``-C CPUS``
limits either to some CPUs."""

from __future__ import annotations

import argparse
from dataclasses import replace

from kdx.commands.crash.arguments import cpu_list
from kdx.model.system import kernel_hz
from kdx.model.timers import hrtimers, timer_wheel
from kdx.render.crash.timers import render_hrtimers, render_wheel
from kdx.session.command import CommandError, crash_command, make_parser
from kdx.session.session import Session


def _parser() -> argparse.ArgumentParser:
    parser = make_parser("timer", "pending timers, as crash lists them")
    parser.add_argument("-r", action="store_true", help="high-resolution timers")
    parser.add_argument("-C", dest="cpus", metavar="CPUS",
                        help="only these CPUs (e.g. 0,2-3)")
    return parser


@crash_command("timer", "pending timers per CPU (wheel); -r hrtimers; -C CPUS", parser=_parser)
def _timer(session: Session, args: argparse.Namespace) -> None:
    prog = session.prog
    chosen = set(cpu_list(session, args.cpus)) if args.cpus else None
    if args.r:
        hz = kernel_hz(prog)
        if hz is None:
            raise CommandError("the kernel's HZ cannot be found in this dump")
        cpus = session.cached("hrtimers", lambda: hrtimers(prog, hz))
        if chosen is not None:
            cpus = [c for c in cpus if c.cpu in chosen]
        session.emit("timer-hrtimers", cpus, lambda: render_hrtimers(cpus))
        return
    wheel = session.cached("timer-wheel", lambda: timer_wheel(prog))
    if chosen is not None:
        wheel = replace(wheel, bases=tuple(b for b in wheel.bases if b.cpu in chosen))
    session.emit("timer", wheel, lambda: render_wheel(wheel))
