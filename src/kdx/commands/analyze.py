"""``kdx analyze``: why the kernel died, where, in which module, on which line."""

from __future__ import annotations

import argparse
import sys

from kdx.commands.common import add_target_arguments, open_target_from_args, warn
from kdx.diagnosis.analyze import analyze
from kdx.progress import steps
from kdx.render.json_out import to_json
from kdx.render.report import render_html, render_markdown, render_text


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "analyze", help="diagnose a dump: what happened, where, and the evidence",
        description="Tell why the kernel died: the category, the culprit function, module "
        "and source line, the context (task, CPU, interrupt, fault address), the evidence "
        "each claim rests on, a signature for bucketing, and the commands to run next.")
    add_target_arguments(parser)
    form = parser.add_mutually_exclusive_group()
    form.add_argument("--json", action="store_true", help="the verdict as versioned JSON")
    form.add_argument("--markdown", action="store_true", help="the report as Markdown")
    form.add_argument("--html", action="store_true", help="the report as one HTML file")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    target = open_target_from_args(args)
    for message in target.warnings:
        warn(message)
    if sys.stderr.isatty():
        with steps("analysing") as say:
            verdict = analyze(target, say)
    else:
        verdict = analyze(target)
    if args.json:
        text = to_json("analysis", verdict) + "\n"
    elif args.markdown:
        text = render_markdown(verdict)
    elif args.html:
        text = render_html(verdict)
    else:
        text = render_text(verdict)
    sys.stdout.write(text)
    return 0
