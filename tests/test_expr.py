"""crash's number words, ``eval`` arithmetic and ``p``'s C expressions, on no dump.

The C expressions run on a small program built in memory (tests/synthetic.py), so each
result is a value the test wrote itself.
"""

from __future__ import annotations

import drgn
import pytest
import synthetic

from kdx.model.expr import (
    EvalParser,
    ExpressionError,
    ExpressionParser,
    crash_number,
    has_member,
    is_symbol,
    member_object,
    tokenize,
)


@pytest.fixture(scope="module")
def prog() -> drgn.Program:
    return synthetic.program()


@pytest.mark.parametrize(("word", "value"), [
    ("10", 10), ("010", 10), ("ff", 0xFF), ("0x10", 0x10), ("10k", 10 << 10),
    ("2m", 2 << 20), ("1g", 1 << 30), ("ffK", 0xFF << 10), ("1a", 0x1A),
])
def test_crash_number_words(word: str, value: int) -> None:
    assert crash_number(None, word) == value


def test_crash_number_symbol_and_errors(prog: drgn.Program) -> None:
    assert crash_number(prog, "item0") == synthetic.ITEM
    # without a program a word that looks like a name is read as hexadecimal
    assert crash_number(None, "abc") == 0xABC
    with pytest.raises(ExpressionError, match="invalid expression: zz"):
        crash_number(prog, "zz")


@pytest.mark.parametrize(("text", "value"), [
    ("1+2*3", 7), ("(1+2)*3", 9), ("(1 << 20)", 1 << 20), ("100 / 7", 14),
    ("100 % 7", 2), ("-1", (1 << 64) - 1), ("~0", (1 << 64) - 1), ("2 # 10", 1024),
    ("0xf0 | 0x0f ^ 0xff", 0xF0 | (0x0F ^ 0xFF)), ("10k - 1", 10239), ("1 << 64", 1),
])
def test_eval_arithmetic(text: str, value: int) -> None:
    assert EvalParser(None, text).parse() == value


def test_eval_symbols_and_errors(prog: drgn.Program) -> None:
    assert EvalParser(prog, "item0 + 8").parse() == synthetic.ITEM + 8
    with pytest.raises(ExpressionError, match="division by zero"):
        EvalParser(None, "1 / 0").parse()
    with pytest.raises(ExpressionError, match="ends too early"):
        EvalParser(None, "1 +").parse()
    with pytest.raises(ExpressionError, match="invalid expression"):
        EvalParser(None, "1 ? 2").parse()


def test_tokens() -> None:
    assert tokenize("a->b[3] << 0x10UL") == ["a", "->", "b", "[", "3", "]", "<<", "0x10UL"]
    assert tokenize("  ") == []


def test_c_expressions(prog: drgn.Program) -> None:
    def value(text: str) -> object:
        return ExpressionParser(prog, text).parse().value_()

    assert value("item0.pid") == -5
    assert value("&item0") == synthetic.ITEM
    assert value("(&item0)->state") == 2
    assert value("item0.buf[1]") == ord("b")
    assert value("*item0.name") == ord("h")
    assert value("sizeof(struct item)") == 56
    assert value("item0.pid * 2 + 1") == -9
    assert value("(unsigned int)item0.pid") == (1 << 32) - 5
    assert value("0xffffffffffffffff") == (1 << 64) - 1
    assert ExpressionParser(prog, "3000000000").parse().type_.type_name() == "long"
    assert ExpressionParser(prog, "item0.buf").parse().type_.type_name() == "char [8]"


def test_c_expression_errors(prog: drgn.Program) -> None:
    with pytest.raises(ExpressionError, match='no symbol "nothing" in current context'):
        ExpressionParser(prog, "nothing").parse()
    with pytest.raises(ExpressionError, match="there is no member named nope"):
        ExpressionParser(prog, "item0.nope").parse()
    with pytest.raises(ExpressionError, match=r"unexpected '\)'"):
        ExpressionParser(prog, "item0.pid)").parse()
    with pytest.raises(ExpressionError, match="empty expression"):
        ExpressionParser(prog, "")


def test_member_paths(prog: drgn.Program) -> None:
    item = prog["item0"]
    value, parent = member_object(item, "flags")
    assert value.value_() == 13 and parent.address_ == synthetic.ITEM
    with pytest.raises(ExpressionError, match="invalid data structure reference: "
                       "struct item.flags.x"):
        member_object(item, "flags.x")
    assert is_symbol(prog, "handler") and not is_symbol(prog, "nothing")
    assert has_member(item.type_, "flags") and not has_member(item.type_, "ff")
