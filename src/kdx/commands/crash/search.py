"""``search``: find a value or a string in kernel, user or physical memory.

``search [-s START] [-e END | -l LENGTH] [-k|-K|-V|-u|-p] [-m MASK] [-c|-w|-h] VALUE...``
as in crash 8.0.6 (memory.c cmd_search): kernel virtual memory by default, longs unless
``-w`` (ints) or ``-h`` (shorts), strings with ``-c``; ``-t``/``-T`` search the
kernel stacks of all (or the active) tasks. The scan (kdx.model.search) skips
the pages a dump lacks and counts them; on a terminal a long scan shows its progress.
"""

from __future__ import annotations

import argparse
import sys
from contextlib import nullcontext

import drgn

from kdx.commands.crash.arguments import address_word
from kdx.model.answers import TaskSearch
from kdx.model.expr import EvalParser
from kdx.model.search import (
    PAGE,
    SearchRequest,
    Segment,
    kernel_segments,
    physical_segments,
    search,
    user_segments,
    with_context,
)
from kdx.model.tasks import task_list
from kdx.render.crash.layout import task_header
from kdx.render.crash.search import render_search
from kdx.session.command import CommandError, CommandParser, crash_command

#: Scans longer than this show progress on a terminal.
_LONG_SCAN = 256 << 20


class _Parser(CommandParser):
    """Options may follow the values, as crash's getopt allows."""

    def parse_args(self, args=None, namespace=None):  # noqa: ANN001, ANN201
        return self.parse_intermixed_args(args, namespace)


def _parser() -> CommandParser:
    parser = _Parser(prog="search", add_help=False,
                     description="search memory for values or strings")
    parser.add_argument("-s", dest="start", help="start address (hex or symbol)")
    parser.add_argument("-e", dest="end", help="end address (hex or symbol)")
    parser.add_argument("-l", dest="length", help="length in bytes")
    space = parser.add_mutually_exclusive_group()
    for flag, name in (("-k", "kernel"), ("-K", "kernel-K"), ("-V", "kernel-V"),
                       ("-u", "user"), ("-p", "physical")):
        space.add_argument(flag, dest="space", action="store_const", const=name)
    stacks = parser.add_mutually_exclusive_group()
    stacks.add_argument("-t", dest="stacks", action="store_const", const="all",
                        help="search the kernel stack of every task")
    stacks.add_argument("-T", dest="stacks", action="store_const", const="active",
                        help="search the kernel stacks of the active tasks")
    parser.add_argument("-m", dest="mask", help="bits to ignore (hex)")
    parser.add_argument("-x", dest="context", metavar="COUNT",
                        help="show COUNT values of the same size before and after each "
                             "hit")
    size = parser.add_mutually_exclusive_group()
    size.add_argument("-c", dest="kind", action="store_const", const="chars",
                      help="search for strings")
    size.add_argument("-w", dest="kind", action="store_const", const=4,
                      help="search for 32-bit values")
    size.add_argument("-h", dest="kind", action="store_const", const=2,
                      help="search for 16-bit values")
    parser.add_argument("--help", action="help", help="show this help")
    parser.add_argument("values", nargs="*", metavar="VALUE")
    return parser


#: The operators whose presence makes crash evaluate a word (tools.c can_eval).
_OPERATORS = "><+-&|*/%^"


def can_eval(word: str) -> bool:
    """crash's test for an expression: one pair of parentheses around something, or an
    operator with something on both sides of its first occurrence."""
    if (word.startswith("(") and word.endswith(")") and len(word) > 2
            and word.count("(") == 1 and word.count(")") == 1):
        return True
    at = next((i for i, c in enumerate(word) if c in _OPERATORS), None)
    return at is not None and 0 < at < len(word) - 1


def _evaluate(prog: drgn.Program, word: str) -> int:
    # the eval command's evaluator, so that search and eval read an expression alike
    return EvalParser(prog, word).parse()


def _value(prog: drgn.Program, word: str) -> tuple[int, str | None]:
    """A search value and the text crash echoes after its hits: an expression (crash
    checks for one first), a symbol, or a hexadecimal number (echoed as nothing)."""
    if can_eval(word):
        return _evaluate(prog, word), word
    try:
        return prog.symbol(word).address, word
    except LookupError:
        pass
    try:
        return int(word, 16), None
    except ValueError as err:
        raise CommandError(f"invalid value: {word}") from err


def _context(args: argparse.Namespace) -> int:
    """``-x COUNT``, checked as crash checks it: not with strings, at most a page."""
    if args.context is None:
        return 0
    try:
        count = int(args.context)
    except ValueError:
        raise CommandError(f"invalid count: {args.context}") from None
    if count and args.kind == "chars":
        raise CommandError("-x option is not allowed with -c")
    most = PAGE // (args.kind or 8)
    if count > most:
        raise CommandError(f"context value {count} is too large: maximum is {most}")
    return max(count, 0)


def _request(prog: drgn.Program, args: argparse.Namespace) -> SearchRequest:
    if not args.values:
        raise CommandError("a value to search for is required")
    if args.kind == "chars":
        if args.mask:
            raise CommandError("mask ignored on string search")
        strings = tuple(w.encode() for w in args.values if w)
        return SearchRequest(size=1, strings=strings)
    size = args.kind or 8
    values, labels = [], []
    for word in args.values:
        value, label = _value(prog, word)
        if value >> (8 * size):
            option = "-w" if size == 4 else "-h"
            raise CommandError(f"value too large for {option} option: {value:x}")
        values.append(value)
        labels.append(None if args.mask else label)
    mask = int(args.mask, 16) if args.mask else 0
    return SearchRequest(size=size, values=tuple(values), labels=tuple(labels), mask=mask)


def _range(session, args: argparse.Namespace, segments) -> tuple[int, int]:  # noqa: ANN001
    prog = session.prog
    if args.end and args.length:
        raise CommandError("-e and -l are mutually exclusive")
    start = address_word(prog, args.start) if args.start else min(s.start for s in segments)
    if args.length:
        end = start + int(args.length, 0) if args.length.startswith("0x") \
            else start + (int(args.length) if args.length.isdigit() else int(args.length, 16))
    elif args.end:
        end = address_word(prog, args.end)
    else:
        end = max(s.end for s in segments)
    if end < start:
        raise CommandError(f"ending address {end:x} is below starting address {start:x}")
    kernel = not args.space or args.space.startswith("kernel")
    if kernel and start < 1 << 63:
        raise CommandError(f"invalid kernel virtual address: {start:x}")
    if args.space == "user" and start >= 1 << 63:
        raise CommandError(f"invalid user virtual address: {start:x}")
    return start & ~7, end


def _segments(session, space: str):  # noqa: ANN001, ANN202
    prog = session.prog
    if space == "physical":
        return physical_segments(prog)
    if space == "user":
        task = session.current_task
        segments = user_segments(task)
        if not segments:
            raise CommandError("current context has no user address space")
        return segments
    segments = kernel_segments(prog)
    if space == "kernel-K":  # no vmalloc, modules or mem_map
        segments = [s for s in segments if s.kind in ("unity", "image")]
    elif space == "kernel-V":  # no direct map, no kernel image mapping
        segments = [s for s in segments if s.kind not in ("unity", "image")]
    return segments


def _stacks(session, args: argparse.Namespace, request: SearchRequest,  # noqa: ANN001
            context: int) -> None:
    """``search -t``/``-T``: each task's kernel stack, with crash's task header above
    the hits of every task that has some."""
    prog = session.prog
    if args.space or args.start or args.end or args.length:
        flag = "t" if args.stacks == "all" else "T"
        raise CommandError(f"-{flag} option cannot be used with other memory-selection "
                           "options")
    read = prog.read
    size = prog["THREAD_SIZE"].value_() if _has_object(prog, "THREAD_SIZE") else 4 * PAGE
    records, blocks = [], []
    for info in task_list(prog):
        if args.stacks == "active" and not info.active:
            continue
        task = drgn.Object(prog, "struct task_struct *", info.task)
        try:
            stack = task.stack.value_()
        except drgn.FaultError:
            continue
        segments = [Segment(stack, stack + size, read)]
        result = search(segments, stack, stack + size, request)
        if not result.hits:
            continue
        if context:
            result = with_context(result, segments, context, request.size)
        header = task_header(info.pid, info.task, info.cpu, info.comm)
        records.append(TaskSearch(info.pid, info.task, result))
        blocks.append(header + "\n" + render_search(result))
    # with -x every hit ends with an empty line, and crash adds one before each task
    gap = "\n\n\n" if context else "\n\n"
    session.emit("search", records, lambda: gap.join(blocks))


def _has_object(prog: drgn.Program, name: str) -> bool:
    try:
        prog[name]
        return True
    except KeyError:
        return False


@crash_command("search", "search memory for a value or a string", parser=_parser)
def _search(session, args: argparse.Namespace) -> None:  # noqa: ANN001
    prog = session.prog
    around = _context(args)
    request = _request(prog, args)
    if args.stacks:
        _stacks(session, args, request, around)
        return
    space = args.space or "kernel"
    segments = _segments(session, space)
    start, end = _range(session, args, segments)
    scanned = sum(max(0, min(end, s.end) - max(start, s.start)) for s in segments)
    long_scan = scanned > _LONG_SCAN and sys.stderr.isatty() and not session.json
    if long_scan:
        from kdx.progress import steps

        context = steps("search")
    else:
        context = nullcontext(None)
    with context as progress:
        result = search(segments, start, end, request, space=space.split("-")[0],
                        progress=progress)
    if around:
        result = with_context(result, segments, around, request.size)
    session.emit("search", result, lambda: render_search(result))
