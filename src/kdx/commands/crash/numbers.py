"""Numbers: ``eval`` and ``ascii``.

``eval`` follows crash's own number rules (not C's): a word that is all decimal digits is
decimal, any other number is hexadecimal, a ``k``/``m``/``g`` suffix multiplies, and a
symbol stands for its address (kdx.model.expr reads them). ``ascii`` shows a number's
bytes as characters, or the ASCII chart.
"""

from __future__ import annotations

import argparse

from kdx.model.answers import AsciiValues, EvalResult
from kdx.model.expr import EvalParser
from kdx.render.crash.data import ascii_chart, ascii_text, eval_text
from kdx.session.command import CommandError, crash_command, make_parser
from kdx.session.session import Session

_MASK64 = (1 << 64) - 1


def _eval_parser() -> argparse.ArgumentParser:
    parser = make_parser("eval", "evaluate an expression; show it in hex, decimal, octal "
                         "and binary")
    parser.add_argument("-b", action="store_true", dest="bits",
                        help="also list the bits that are set")
    parser.add_argument("expression", nargs=argparse.REMAINDER)
    return parser


@crash_command("eval", "evaluate an expression in hex, decimal, octal and binary",
               parser=_eval_parser,
               needs_types=False)
def _eval(session: Session, args: argparse.Namespace) -> None:
    words = list(args.expression)
    bits = args.bits
    if words and words[0] == "-b":
        bits, words = True, words[1:]
    if not words:
        raise CommandError("eval: an expression is required")
    value = EvalParser(session.prog, " ".join(words)).parse()
    signed = value - (1 << 64) if value >> 63 else value
    session.emit("eval", EvalResult(value, signed), eval_text(value, bits))


def _ascii_parser() -> argparse.ArgumentParser:
    parser = make_parser("ascii", "show a number's bytes as ASCII, or the ASCII chart")
    parser.add_argument("numbers", nargs="*", metavar="NUMBER",
                        help="hexadecimal values (0x optional)")
    return parser


@crash_command("ascii", "show a number's bytes as ASCII characters", parser=_ascii_parser,
               needs_types=False)
def _ascii(session: Session, args: argparse.Namespace) -> None:
    if not args.numbers:
        session.emit("ascii", AsciiValues(True, []), ascii_chart())
        return
    values = []
    for word in args.numbers:
        digits = word[2:] if word.lower().startswith("0x") else word
        try:
            values.append(int(digits, 16) & _MASK64)
        except ValueError as err:
            raise CommandError(f"not a hexadecimal number: {word}") from err
    session.emit("ascii", AsciiValues(False, values), "\n".join(ascii_text(v) for v in values))
