"""The JSON renderer: every model record becomes a versioned, plain JSON document.

Records are dataclasses of plain values, so the same document a script reads today can be
stored by a fleet service tomorrow; ``kind`` and ``schema`` let a reader check what it got.

Schema 2 writes every field annotated ``Hex`` (addresses, raw memory words, bit masks) as
a lowercase ``"0x..."`` string: JSON readers such as ``jq`` and JavaScript keep integers
only up to 2**53, and a kernel address is far above that. The annotations are read from
the record classes' type hints once per class, so writing a record stays a plain walk.
"""

from __future__ import annotations

import dataclasses
import enum
import functools
import types
import typing
from typing import Any, Callable, Union

from kdx.model.records import HEX
from kdx.textsafe import decode

__all__ = ["SCHEMA_VERSION", "fits", "hex_text", "is_hex", "is_union", "kind_data", "plain",
           "record_hints", "to_json"]

#: The version of the JSON documents' shape; 2 writes addresses as "0x..." strings.
SCHEMA_VERSION = 2

_MASK64 = (1 << 64) - 1

Convert = Callable[[Any], Any]


def hex_text(value: int) -> str:
    """``value`` as JSON schema 2 writes a ``Hex`` field: ``0x`` and lowercase digits.

    A negative value (a signed read of a 64-bit word) is written as its 64-bit two's
    complement, the way the kernel's unsigned word holds it."""
    return f"{value & _MASK64 if value < 0 else value:#x}"


def is_hex(hint: Any) -> bool:
    """Whether ``hint`` is ``Hex``: ``Annotated[int, HEX]``."""
    return typing.get_origin(hint) is typing.Annotated and HEX in hint.__metadata__


def is_union(hint: Any) -> bool:
    """Whether ``hint`` is ``X | Y`` or ``Optional[X]`` (both spellings)."""
    origin = typing.get_origin(hint)
    return origin is Union or (hasattr(types, "UnionType") and origin is types.UnionType)


@functools.cache
def record_hints(cls: type) -> tuple[tuple[str, Any], ...]:
    """The fields of dataclass ``cls`` with their resolved type hints, ``Hex`` kept.

    Records use ``from __future__ import annotations``, so their annotations are strings
    until ``get_type_hints`` evaluates them in the defining module."""
    hints = typing.get_type_hints(cls, include_extras=True)
    return tuple((f.name, hints.get(f.name, Any)) for f in dataclasses.fields(cls))


def plain(record: Any) -> Any:
    """A JSON-ready copy of ``record`` (dataclasses, lists, dicts, enums, paths).

    Dataclass fields follow their type hints (``Hex`` fields become ``"0x..."``);
    values outside a record (a bare list of ints, a dict) are copied as they are."""
    if dataclasses.is_dataclass(record) and not isinstance(record, type):
        return _record_converter(type(record))(record)
    if isinstance(record, dict):
        return {str(k): plain(v) for k, v in record.items()}
    if isinstance(record, (list, tuple)):
        return [plain(v) for v in record]
    if isinstance(record, (str, int, float, bool)) or record is None:
        return record
    if isinstance(record, bytes):  # char arrays and strings: as text from the dump is
        return decode(record)
    if isinstance(record, enum.Enum):
        return plain(record.value)
    return str(record)


@functools.cache
def _record_converter(cls: type) -> Convert:
    """One function that copies a record of class ``cls``, built once per class."""
    fields = tuple((name, _converter(hint)) for name, hint in record_hints(cls))

    def convert(record: Any) -> dict[str, Any]:
        return {name: conv(getattr(record, name)) for name, conv in fields}

    return convert


@functools.cache
def _converter(hint: Any) -> Convert:
    """How to copy a value whose type hint is ``hint``."""
    if is_hex(hint):
        return _hex_or_plain
    if typing.is_typeddict(hint):
        return _typeddict_converter(hint)
    if dataclasses.is_dataclass(hint) and isinstance(hint, type):
        return plain
    if is_union(hint):
        return _union_converter(typing.get_args(hint))
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin in (list, tuple, set, frozenset) and args:
        if origin is tuple and not (len(args) == 2 and args[1] is Ellipsis):
            return _fixed_tuple_converter(tuple(_converter(a) for a in args))
        item = _converter(args[0])
        return lambda value: [item(v) for v in value]
    if origin is dict and len(args) == 2:
        item = _converter(args[1])
        return lambda value: {str(k): item(v) for k, v in value.items()}
    return plain


def _typeddict_converter(hint: Any) -> Convert:
    """A dict answer described by a ``TypedDict``: each key converts by its hint. A
    record with the same field names (an older answer) converts the same way."""
    keys = tuple((k, _converter(h))
                 for k, h in typing.get_type_hints(hint, include_extras=True).items())

    def convert(value: Any) -> Any:
        if dataclasses.is_dataclass(value):
            value = {f.name: getattr(value, f.name) for f in dataclasses.fields(value)}
        if not isinstance(value, dict):
            return plain(value)
        known = {k: conv(value[k]) for k, conv in keys if k in value}
        return {**{str(k): plain(v) for k, v in value.items()}, **known}

    return convert


def _hex_or_plain(value: Any) -> Any:
    return hex_text(value) if isinstance(value, int) and not isinstance(value, bool) \
        else plain(value)


def _union_converter(arms: tuple[Any, ...]) -> Convert:
    """``X | None`` converts as ``X``; a wider union converts by the arm the value fits."""
    real = [a for a in arms if a is not type(None)]
    if len(real) == 1:
        inner = _converter(real[0])
        return lambda value: None if value is None else inner(value)
    choices = [(arm, _converter(arm)) for arm in real]

    def convert(value: Any) -> Any:
        if value is None:
            return None
        for arm, conv in choices:
            if fits(arm, value):
                return conv(value)
        return plain(value)

    return convert


def fits(hint: Any, value: Any) -> bool:
    """Whether ``value`` has the shape of ``hint`` (the arm of a union it belongs to)."""
    if hint is Any:
        return True
    if is_hex(hint) or hint is int:
        return isinstance(value, int) and not isinstance(value, bool)
    if hint is float:
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    if hint is type(None):
        return value is None
    if typing.is_typeddict(hint):
        keys = set(value) if isinstance(value, dict) else set()
        return isinstance(value, dict) and hint.__required_keys__ <= keys \
            and keys <= set(hint.__annotations__)
    origin = typing.get_origin(hint)
    if origin in (list, tuple, set, frozenset):
        return isinstance(value, (list, tuple))
    if origin is dict:
        return isinstance(value, dict)
    if is_union(hint):
        return any(fits(a, value) for a in typing.get_args(hint))
    return isinstance(hint, type) and isinstance(value, hint)


def _fixed_tuple_converter(items: tuple[Convert, ...]) -> Convert:
    return lambda value: [conv(v) for conv, v in zip(items, value)]


def kind_data(kind: str, record: Any) -> Any:
    """The JSON-ready ``data`` of a ``kind`` document: converted by the kind's registered
    type (so ``Hex`` marks apply inside lists and dict answers too), else by ``plain``."""
    from kdx.render.kinds import KINDS  # the table imports every model: only when writing

    hint = KINDS.get(kind)
    return plain(record) if hint is None else _converter(hint)(record)


def to_json(kind: str, record: Any) -> str:
    """``{"kind": kind, "schema": N, "data": ...}`` as indented JSON text."""
    doc = {"kind": kind, "schema": SCHEMA_VERSION, "data": kind_data(kind, record)}
    import json  # here: a text session never needs it

    return json.dumps(doc, indent=2, ensure_ascii=False)
