"""``sym``: translate between addresses and symbols, list and search symbols."""

from __future__ import annotations

import argparse
import itertools
from collections.abc import Iterable, Iterator

from kdx.commands.crash.arguments import symbols
from kdx.model.names import address_namer, symbol_answer
from kdx.model.symbols import SymbolAnswer, SymbolEntry, SymbolTable, hit
from kdx.render.crash.sym import answer_lines, entry_lines
from kdx.session.command import CommandError, crash_command, make_parser
from kdx.session.session import Session

#: Lines per write when listing: ``sym -l`` prints some 120,000 and must start at once.
_CHUNK = 5000


def _parser():
    parser = make_parser("sym", "translate addresses to symbols and back; list symbols")
    parser.add_argument("-l", dest="all", action="store_true",
                        help="every symbol: the kernel's, then each module's")
    parser.add_argument("-M", dest="all_modules", action="store_true",
                        help="every module symbol")
    parser.add_argument("-m", dest="module", metavar="MODULE", help="one module's symbols")
    parser.add_argument("-q", dest="search", metavar="STRING",
                        help="the symbols whose names contain STRING")
    parser.add_argument("-n", dest="next", action="store_true",
                        help="also show the symbol after each one found")
    parser.add_argument("-p", dest="prev", action="store_true",
                        help="also show the symbol before each one found")
    parser.add_argument("args", nargs="*", metavar="ADDRESS|NAME")
    return parser


@crash_command("sym", "address to symbol and back (-l all, -m MODULE, -q search)", parser=_parser,
               needs_types=False)
def _sym(session: Session, args: argparse.Namespace) -> None:
    if not (args.args or args.all or args.all_modules or args.module or args.search):
        raise CommandError("give an address or a name, or -l, -M, -m MODULE, -q STRING")
    table = symbols(session)
    for warning in table.warnings:
        session.warn(warning)
    if args.all:
        _list(session, "sym-list", itertools.chain(table.kernel,
                                                   _module_rows(session, table)))
    if args.all_modules:
        _list(session, "sym-list", _module_rows(session, table))
    if args.module:
        if not any(m.info.name == args.module for m in table.modules):
            raise CommandError(f"{args.module}: no such module loaded")
        _list(session, "sym-list", _module_rows(session, table, args.module))
    if args.search:
        found = list(table.search(args.search))
        session.emit("sym-search", found,
                     lambda: "\n".join(entry_lines(found, with_module=True))
                     or "(none found)")
    if args.args:
        namer = address_namer(session.prog)
        answers = [_with_neighbours(session, table, symbol_answer(namer, a), args)
                   for a in args.args]
        session.emit("sym", answers, lambda: "\n".join(_answers_text(answers)))


def _module_rows(session: Session, table: SymbolTable,
                 name: str | None = None) -> Iterator[SymbolEntry]:
    """The module listing, with the section starts and ends ``mod -g`` added, in
    address order as crash sorts them: at one address, a section's end before the next
    one's start, and both before the symbols there; a region's start marker first."""
    sections = session.cached("module-section-symbols", dict)
    pending: list[SymbolEntry] = []
    current = None
    for row in table.module_rows(name):
        if row.module != current:
            yield from pending
            current = row.module
            pending = sorted(sections.get(row.module or "", []),
                             key=lambda e: (e.address, e.name != "section end"))
        opening = bool(row.marker) and row.marker.endswith("START")
        while pending and (pending[0].address < row.address or
                           (not opening and pending[0].address == row.address)):
            yield pending.pop(0)
        yield row
    yield from pending


def _with_neighbours(session: Session, table: SymbolTable, found: SymbolAnswer,
                     args: argparse.Namespace) -> SymbolAnswer:
    """Add the symbol before (-p) and after (-n) each hit, as crash prints them."""
    if not (args.prev or args.next) or not found.hits:
        return found
    hits = []
    for one in found.hits:
        entry = SymbolEntry(one.address - one.offset, one.type, one.name, one.module)
        before = table.neighbour(entry, -1) if args.prev else None
        after = table.neighbour(entry, +1) if args.next else None
        hits += [*([hit(session.prog, before, 0)] if before else []), one,
                 *([hit(session.prog, after, 0)] if after else [])]
    return SymbolAnswer(found.query, hits, found.alternatives, found.error)


def _answers_text(answers: list[SymbolAnswer]) -> Iterator[str]:
    for found in answers:
        yield from answer_lines(found)


def _list(session: Session, kind: str, entries: Iterable[SymbolEntry]) -> None:
    """Stream a listing as text; JSON mode needs the whole list in one document."""
    if session.json:
        items = list(entries)
        session.emit(kind, items, "")
        return
    lines = entry_lines(entries)
    while True:
        chunk = list(itertools.islice(lines, _CHUNK))
        if not chunk:
            break
        session.write("\n".join(chunk) + "\n")
