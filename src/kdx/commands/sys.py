"""``kdx sys``: the system summary of a dump, as crash prints it when it starts.

This is the first thing anyone reads about a crash (which kernel, when, how long it had
been up, what panicked), so it is printed in crash's exact layout for people and tools
used to crash, or as JSON for scripts.
"""

from __future__ import annotations

import argparse

from kdx.commands.common import add_target_arguments, open_target_from_args, warn
from kdx.model.system import system_info
from kdx.render.crash.sys import render_sys
from kdx.render.json_out import to_json
from kdx.textsafe import clean


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "sys", help="summarise a dump: kernel, date, uptime, panic (crash's sys)",
        description="Print the system summary of a crash dump, field for field as crash "
        "prints it at start-up: the kernel, the dump file, CPUs, date, uptime, load, "
        "tasks, release, memory, the panic message and the task that panicked.")
    add_target_arguments(parser)
    parser.add_argument("--json", action="store_true", help="print the summary as JSON")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    target = open_target_from_args(args)
    info = system_info(target)
    for message in target.warnings + info.warnings:
        warn(message)
    print(to_json("sys", info) if args.json else clean(render_sys(info)),
          end="\n" if args.json else "")
    return 0
