"""The two expression languages of crash's command line, parsed once for every command.

crash reads numbers two ways. Its own commands (``eval``, ``search``, ``ptov``, the
addresses of ``list`` and ``rd``) take crash's number words: a word of decimal digits is
decimal, any other number is hexadecimal with or without ``0x``, a ``k``/``m``/``g`` suffix
multiplies, and a symbol stands for its address (:func:`crash_number`, :class:`EvalParser`).
The commands crash hands to gdb (``p``, ``struct NAME.member``) take C: members (``.``,
``->``), indexing, ``&``, ``*``, casts to any type the debug info knows, ``sizeof`` and
integer arithmetic, on drgn objects (:class:`ExpressionParser`). Both live here, in the
model, so that every command reads the same word the same way and reports the same error;
nothing here formats output or knows about commands.

Example::

    >>> EvalParser(None, "(1 << 20) + 10k").parse()
    1058816
    >>> crash_number(None, "ff"), crash_number(None, "100")
    (255, 100)
"""

from __future__ import annotations

import re
from typing import Callable

import drgn

from kdx.errors import KdxError

__all__ = [
    "ExpressionError",
    "EvalParser",
    "ExpressionParser",
    "crash_number",
    "has_member",
    "is_percpu_symbol",
    "is_symbol",
    "member_object",
    "symbol_object",
    "tokenize",
]

_MASK64 = (1 << 64) - 1


class ExpressionError(KdxError):
    """An expression or number word that cannot be read; the message quotes crash's
    wording where crash has one, so that a command can pass it on unchanged."""


# -- tokens -----------------------------------------------------------------------------

_TOKEN = re.compile(r"\s*(->|<<|>>|[A-Za-z_$][A-Za-z0-9_$]*|0[xX][0-9a-fA-F]+[uUlL]*"
                    r"|[0-9]+[uUlL]*|[-+*/%&|^~!().\[\]#]|\S)")


def tokenize(text: str) -> list[str]:
    """The C tokens of ``text``: names, numbers with their suffixes, operators; reading
    stops at the first character that starts no token."""
    tokens = []
    pos = 0
    while pos < len(text):
        match = _TOKEN.match(text, pos)
        if not match or not match.group(1):
            break
        tokens.append(match.group(1))
        pos = match.end()
    return tokens


class _Tokens:
    """A cursor over a token list, shared by both parsers."""

    def __init__(self, tokens: list[str]) -> None:
        self.tokens = tokens
        self.pos = 0

    def peek(self, ahead: int = 0) -> str | None:
        i = self.pos + ahead
        return self.tokens[i] if i < len(self.tokens) else None

    def take(self) -> str:
        token = self.peek()
        if token is None:
            raise ExpressionError("the expression ends too early")
        self.pos += 1
        return token

    def expect(self, token: str) -> None:
        if self.take() != token:
            raise ExpressionError(f"expected '{token}' in the expression")


# -- C expressions on drgn objects (p) ---------------------------------------------------

_BINARY_LEVELS: list[tuple[str, ...]] = [("|",), ("^",), ("&",), ("<<", ">>"), ("+", "-"),
                                        ("*", "/", "%")]


class ExpressionParser:
    """A small C expression evaluator over drgn objects (``p``'s language); drgn does the
    arithmetic and the type rules, this only parses, so results carry C's types.

    Example::

        >>> ExpressionParser(prog, "init_task.comm").parse().type_.type_name()
        'char [16]'
    """

    def __init__(self, prog: drgn.Program, text: str) -> None:
        self.prog = prog
        self.tokens = _Tokens(tokenize(text))
        if not self.tokens.tokens:
            raise ExpressionError("empty expression")

    def parse(self) -> drgn.Object:
        value = self.binary(0)
        if self.tokens.peek() is not None:
            raise ExpressionError(f"unexpected '{self.tokens.peek()}' in the expression")
        return value

    def binary(self, level: int) -> drgn.Object:
        if level == len(_BINARY_LEVELS):
            return self.unary()
        left = self.binary(level + 1)
        while self.tokens.peek() in _BINARY_LEVELS[level]:
            op = self.tokens.take()
            right = self.binary(level + 1)
            left = _apply(op, left, right)
        return left

    def unary(self) -> drgn.Object:
        token = self.tokens.peek()
        if token == "&":
            self.tokens.take()
            return self.unary().address_of_()
        if token == "*":
            self.tokens.take()
            return self.unary()[0]
        if token == "-":
            self.tokens.take()
            return -self.unary()
        if token == "~":
            self.tokens.take()
            return ~self.unary()
        if token == "!":
            self.tokens.take()
            return drgn.Object(self.prog, "int", int(not self.unary()))
        if token == "sizeof" and self.tokens.peek(1) == "(":
            self.tokens.take()
            return drgn.Object(self.prog, "unsigned long", drgn.sizeof(self.paren_type()))
        if token == "(":
            cast = self.try_cast()
            if cast is not None:
                return drgn.cast(cast, self.unary())
        return self.postfix(self.primary())

    def paren_type(self) -> drgn.Type:
        cast = self.try_cast()
        if cast is None:
            raise ExpressionError("sizeof needs a type in parentheses")
        return cast

    def try_cast(self) -> drgn.Type | None:
        """A parenthesised type name at the cursor (consumed), or None."""
        depth, end = 0, None
        for i in range(self.tokens.pos, len(self.tokens.tokens)):
            token = self.tokens.tokens[i]
            depth += token == "("
            depth -= token == ")"
            if depth == 0:
                end = i
                break
        if end is None or end == self.tokens.pos + 1:
            return None
        words = self.tokens.tokens[self.tokens.pos + 1:end]
        if not re.match(r"[A-Za-z_]", words[0]):
            return None
        try:
            type_ = self.prog.type(" ".join(words))
        except (LookupError, SyntaxError, ValueError):
            return None
        self.tokens.pos = end + 1
        return type_

    def postfix(self, value: drgn.Object) -> drgn.Object:
        while self.tokens.peek() in (".", "->", "["):
            token = self.tokens.take()
            if token == "[":
                index = self.binary(0)
                self.tokens.expect("]")
                value = value[index.value_()]
                continue
            name = self.tokens.take()
            try:
                value = value.member_(name)
            except (LookupError, TypeError) as err:
                raise ExpressionError(f"there is no member named {name}") from err
        return value

    def primary(self) -> drgn.Object:
        token = self.tokens.take()
        if token == "(":
            value = self.binary(0)
            self.tokens.expect(")")
            return value
        if token[0].isdigit():
            return _literal(self.prog, token)
        if re.match(r"[A-Za-z_]", token):
            return symbol_object(self.prog, token)
        raise ExpressionError(f"unexpected '{token}' in the expression")


def symbol_object(prog: drgn.Program, name: str) -> drgn.Object:
    """The object a symbol names. An array declared without its size (``extern char
    linux_banner[]``, as some debug info has it) gets the length its symbol's size
    implies, as gdb finds it from the defining unit."""
    try:
        obj = prog[name]
    except KeyError as err:
        raise ExpressionError(f'no symbol "{name}" in current context') from err
    type_ = obj.type_.unaliased()
    if type_.kind != drgn.TypeKind.ARRAY or type_.length is not None \
            or obj.address_ is None:
        return obj
    try:
        size = prog.symbol(name).size
    except LookupError:
        return obj
    element = drgn.sizeof(type_.type)
    if not size or not element:
        return obj
    array = prog.array_type(type_.type, size // element, qualifiers=obj.type_.qualifiers)
    return drgn.Object(prog, array, address=obj.address_)


def _literal(prog: drgn.Program, token: str) -> drgn.Object:
    """A C integer literal with C's type: int, then long, then unsigned long (``u``
    forces unsigned)."""
    digits = token.rstrip("uUlL")
    value = int(digits, 16) if digits.lower().startswith("0x") else int(digits)
    unsigned = "u" in token.lower()[len(digits):]
    if not unsigned and value < 1 << 31:
        return drgn.Object(prog, "int", value)
    if not unsigned and value < 1 << 63:
        return drgn.Object(prog, "long", value)
    return drgn.Object(prog, "unsigned long", value & _MASK64)


_OBJECT_OPS: dict[str, Callable[[drgn.Object, drgn.Object], drgn.Object]] = {
    "+": lambda a, b: a + b, "-": lambda a, b: a - b, "*": lambda a, b: a * b,
    "/": lambda a, b: a / b, "%": lambda a, b: a % b, "<<": lambda a, b: a << b,
    ">>": lambda a, b: a >> b, "&": lambda a, b: a & b, "|": lambda a, b: a | b,
    "^": lambda a, b: a ^ b,
}


def _apply(op: str, left: drgn.Object, right: drgn.Object) -> drgn.Object:
    try:
        return _OBJECT_OPS[op](left, right)
    except (TypeError, ZeroDivisionError) as err:
        raise ExpressionError(f"cannot compute {op}: {err}") from err


def member_object(obj: drgn.Object, path: str) -> tuple[drgn.Object, drgn.Object]:
    """The member at ``path`` (``se.on_rq``) of ``obj`` and the object holding it, as
    ``struct NAME.member`` names members; crash's error when a part is no member."""
    value = parent = obj
    for part in path.split("."):
        parent = value
        try:
            value = value.member_(part)
        except (LookupError, TypeError) as err:
            raise ExpressionError(f"invalid data structure reference: "
                                  f"{obj.type_.type_name()}.{path}") from err
    return value, parent


# -- crash's own numbers (eval, search, ptov...) -----------------------------------------

_EVAL_TOKEN = re.compile(r"\s*(<<|>>|[0-9A-Za-z_]+|[-+*/%&|^~#()])")
_EVAL_LEVELS: list[tuple[str, ...]] = [("|",), ("^",), ("&",), ("<<", ">>"), ("+", "-"),
                                      ("*", "/", "%"), ("#",)]
_UNITS = {"k": 1 << 10, "m": 1 << 20, "g": 1 << 30}


def crash_number(prog: drgn.Program | None, word: str) -> int:
    """A number by crash's rules: a symbol's address (when ``prog`` is given), decimal
    when all digits, else hexadecimal (``0x`` optional), with an optional k, m or g
    multiplier.

    Example::

        >>> crash_number(None, "10"), crash_number(None, "10k"), crash_number(None, "0x10")
        (10, 10240, 16)
    """
    if prog is not None and re.match(r"[A-Za-z_]", word):
        try:
            return prog.symbol(word).address
        except LookupError:
            pass
    factor = 1
    if word[-1:].lower() in _UNITS and len(word) > 1:
        factor, word = _UNITS[word[-1].lower()], word[:-1]
    if word.isdigit():
        return int(word) * factor
    try:
        return int(word, 16) * factor
    except ValueError as err:
        raise ExpressionError(f"invalid expression: {word}") from err


class EvalParser:
    """crash's ``eval`` arithmetic on 64-bit unsigned numbers: C's operators and
    precedence over crash's number words, plus ``#`` for powers, wrapping at 2**64.

    Example::

        >>> EvalParser(None, "-1").parse() == (1 << 64) - 1
        True
    """

    def __init__(self, prog: drgn.Program | None, text: str) -> None:
        self.prog = prog
        tokens, pos = [], 0
        while pos < len(text):
            match = _EVAL_TOKEN.match(text, pos)
            if not match:
                if text[pos:].strip():
                    raise ExpressionError(f"invalid expression: {text}")
                break
            tokens.append(match.group(1))
            pos = match.end()
        self.tokens = _Tokens(tokens)
        self.text = text

    def parse(self) -> int:
        value = self.binary(0)
        if self.tokens.peek() is not None:
            raise ExpressionError(f"invalid expression: {self.text}")
        return value & _MASK64

    def binary(self, level: int) -> int:
        if level == len(_EVAL_LEVELS):
            return self.unary()
        left = self.binary(level + 1)
        while self.tokens.peek() in _EVAL_LEVELS[level]:
            op = self.tokens.take()
            right = self.binary(level + 1)
            left = _integer_op(op, left, right)
        return left

    def unary(self) -> int:
        token = self.tokens.take()
        if token == "-":
            return -self.unary() & _MASK64
        if token == "~":
            return ~self.unary() & _MASK64
        if token == "(":
            value = self.binary(0)
            self.tokens.expect(")")
            return value
        return crash_number(self.prog, token)


def _integer_op(op: str, a: int, b: int) -> int:
    if op in "/%" and b == 0:
        raise ExpressionError("division by zero")
    results = {"+": lambda: a + b, "-": lambda: a - b, "*": lambda: a * b,
               "/": lambda: a // b, "%": lambda: a % b, "<<": lambda: a << (b & 63),
               ">>": lambda: a >> b, "&": lambda: a & b, "|": lambda: a | b,
               "^": lambda: a ^ b, "#": lambda: pow(a, b, 1 << 64)}
    return results[op]() & _MASK64


# -- words naming symbols ----------------------------------------------------------------


def is_symbol(prog: drgn.Program, word: str) -> bool:
    """Whether ``word`` names a symbol of the dump's kernel or modules."""
    try:
        prog.symbol(word)
        return True
    except LookupError:
        return False


def is_percpu_symbol(prog: drgn.Program, word: str) -> bool:
    """Whether ``word`` names a per-CPU variable (a symbol in the per-CPU section, whose
    address is an offset to add to each CPU's base)."""
    try:
        address = prog.symbol(word).address
        start = prog.symbol("__per_cpu_start").address
        end = prog.symbol("__per_cpu_end").address
    except LookupError:
        return False
    return start <= address < end


def has_member(type_: drgn.Type, name: str) -> bool:
    """Whether structure type ``type_`` has a member ``name`` (so that a word such as
    ``stack`` is read as a member, not as a hexadecimal number)."""
    try:
        type_.member(name)
        return True
    except LookupError:
        return False
