"""``gdb COMMAND``: the gdb commands people type under crash, answered from kdx's model.

kdx has no gdb. ``p``, ``print``, ``ptype``, ``whatis``, ``info symbol``, ``info address``,
``info line``, ``list``, ``bt`` and ``disassemble`` are answered in gdb's own wording
(kdx.model.gdbview, kdx.model.gdbstack and the value printer ``p`` uses); ``x/FMT`` runs
kdx's ``x``; any other gdb command fails in one line naming the kdx command that does it.
"""

from __future__ import annotations

import argparse

from kdx.model.expr import ExpressionParser
from kdx.model.gdbstack import gdb_backtrace, gdb_disassembly, parse_range
from kdx.model.gdbview import (
    info_address,
    info_line,
    info_symbol,
    list_lines,
    type_text,
)
from kdx.model.rawmemory import symbol_or_hex
from kdx.model.stack import StackReader, backtrace
from kdx.model.values import PrintedValue, session_reader
from kdx.render.crash.data import print_text
from kdx.render.crash.gdb import render_gdb_backtrace, render_gdb_disassembly
from kdx.session.command import CommandError, Reported, crash_command, make_words_parser
from kdx.session.session import Session

__all__: list[str] = []

#: gdb commands kdx does not answer, and the kdx command that does the job.
_ELSEWHERE = {"info registers": "bt -e or bt -f (the registers of a frame)",
              "info frame": "bt -f", "frame": "bt -f", "info threads": "ps",
              "thread": "set PID", "info proc": "ps", "set": "kdx set (variables: set -v)",
              "info types": "whatis", "info functions": "sym -l",
              "info variables": "sym -l", "info sharedlibrary": "mod",
              "info breakpoints": "nothing: a dump has no breakpoints",
              "break": "nothing: a dump cannot run", "run": "nothing: a dump cannot run",
              "continue": "nothing: a dump cannot run"}

_BACKTRACE = ("bt", "backtrace", "where")
_DISASSEMBLE = ("disassemble", "disas")


def _gdb_parser():
    return make_words_parser("gdb", "a gdb command answered from kdx's model: p, ptype, "
                             "whatis, info symbol|address|line, list, x/FMT, disassemble, "
                             "bt", "COMMAND [ARGS ...]")


@crash_command("gdb", "gdb's p, ptype, whatis, info symbol|address|line, list, x, bt",
               parser=_gdb_parser)
def _gdb(session: Session, args: argparse.Namespace) -> None:
    words: list[str] = args.words
    if not words:
        raise CommandError("gdb: a gdb command is required (gdb p jiffies)")
    verb, rest = words[0], words[1:]
    text = " ".join(rest)
    prog = session.prog
    if verb.split("/")[0] in ("p", "print", "output", "call"):
        _print(session, verb, text)
    elif verb in ("ptype", "whatis"):
        answer = type_text(prog, text, expand=verb == "ptype")
        session.emit("gdb", answer, answer)
    elif verb == "info" and rest[:1] in (["symbol"], ["address"], ["line"]):
        _info(session, rest[0], " ".join(rest[1:]))
    elif verb in ("list", "l"):
        answer = list_lines(prog, text)
        session.emit("gdb", answer, answer)
    elif verb.startswith("x/") or verb == "x":
        _run(session, [verb, *rest])
    elif verb in _BACKTRACE:
        _backtrace(session, rest)
    elif verb in _DISASSEMBLE:
        _disassemble(session, rest)
    else:
        _elsewhere(" ".join(words))


def _print(session: Session, verb: str, text: str) -> None:
    fmt = verb.split("/", 1)[1] if "/" in verb else ""
    if fmt not in ("", "x", "d", "u"):
        raise CommandError(f"gdb: format /{fmt} is not supported (/x, /d and /u are)")
    if not text:
        raise CommandError("gdb: an expression is required")
    prog = session.prog
    value = ExpressionParser(prog, text).parse()
    counter = session.cached("gdb-value-history", lambda: [0])  # shared with p
    counter[0] += 1
    record = PrintedValue(text, counter[0], None,
                          session_reader(prog, session.cached).read(value))
    radix = 16 if fmt == "x" else 10 if fmt in ("d", "u") else session.settings.radix
    session.emit("p", record, lambda: print_text(record, radix))


def _info(session: Session, what: str, text: str) -> None:
    prog = session.prog
    if not text:
        raise CommandError(f"gdb: info {what}: an argument is required")
    if what == "symbol":
        answer = info_symbol(prog, symbol_or_hex(prog, text))
    elif what == "address":
        answer = info_address(prog, text)
    else:
        answer = info_line(prog, text)
    session.emit("gdb", answer, answer)


def _backtrace(session: Session, words: list[str]) -> None:
    """``bt [N] [full]`` of the current task, from the exception it stopped at."""
    full = "full" in words or "-full" in words
    counts = [w for w in words if w.lstrip("-").isdigit()]
    limit = int(counts[0]) if counts else None
    task = session.current_task
    reader = session.cached("stack-reader", lambda: StackReader(session.prog))
    trace = backtrace(reader, task)
    kernel_regs = [e.address for e in trace.exception_frames
                   if not e.user_mode and e.address is not None]
    start = kernel_regs[0] if kernel_regs else None
    frames = gdb_backtrace(session.prog, task, start, full, (limit + 1) if limit else None)
    more = limit is not None and len(frames) > limit
    frames = frames[:limit] if limit else frames
    session.emit("gdb", frames, lambda: render_gdb_backtrace(frames, more, full))


def _disassemble(session: Session, words: list[str]) -> None:
    """``disassemble [/r] FUNC|ADDR|START,END|START,+LENGTH``."""
    raw = "/r" in words
    spec = " ".join(w for w in words if not w.startswith("/"))
    if not spec:
        raise CommandError("gdb: No frame selected. (name a function or an address: "
                           "gdb disassemble schedule)")
    start, end = parse_range(session.prog, spec)
    listing = gdb_disassembly(session.prog, start, end, raw)
    session.emit("gdb", listing, lambda: render_gdb_disassembly(listing))


def _run(session: Session, words: list[str]) -> None:
    if not session.run(words):
        raise Reported()


def _elsewhere(line: str) -> None:
    for prefix, instead in _ELSEWHERE.items():
        if line == prefix or line.startswith(prefix + " "):
            raise CommandError(f"kdx has no gdb: for '{prefix}' use {instead}")
    raise CommandError(f"kdx has no gdb: '{line}' is not answered (gdb p, ptype, whatis, "
                       "info symbol|address|line, list, x, disassemble and bt are; "
                       "see help)")
