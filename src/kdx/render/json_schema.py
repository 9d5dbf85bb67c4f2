"""JSON Schemas (draft 2020-12) of kdx's JSON documents, derived from the record types.

Each kind in ``kdx.render.kinds.KINDS`` gets one schema: the envelope
``{"kind", "schema", "data"}`` with ``data`` described from the record's type hints, the
same hints the JSON renderer follows (``Hex`` -> a ``"0x..."`` string). The schemas are
generated, not written by hand, so they cannot drift from the records; the package ships
them under ``kdx/schemas/`` (``kdx --json-schema KIND`` prints one) and a test checks
that the shipped files equal what this module makes.

Regenerate after changing a record or adding a kind::

    python -m kdx.render.json_schema          # rewrite src/kdx/schemas/*.json
    python -m kdx.render.json_schema --check  # exit 1 if they are out of date
"""

from __future__ import annotations

import argparse
import dataclasses
import enum
import json
import sys
import typing
from pathlib import Path
from typing import Any

from kdx.render.json_out import SCHEMA_VERSION, is_hex, is_union, record_hints

__all__ = ["HEX_PATTERN", "SCHEMA_DIR", "generate", "kind_schema", "main", "schema_text"]

#: What a ``Hex`` field looks like in JSON.
HEX_PATTERN = "^0x[0-9a-f]+$"

#: Where the package keeps the generated files.
SCHEMA_DIR = Path(__file__).resolve().parent.parent / "schemas"

_DIALECT = "https://json-schema.org/draft/2020-12/schema"


class _Builder:
    """Builds one kind's schema; nested records go to ``$defs`` once each."""

    def __init__(self) -> None:
        self.defs: dict[str, dict[str, Any]] = {}
        self._names: dict[Any, str] = {}

    def schema(self, hint: Any) -> dict[str, Any]:
        """The schema of a value whose type hint is ``hint``."""
        if is_hex(hint):
            return {"type": "string", "pattern": HEX_PATTERN}
        if hint is Any or hint is object:
            return {}
        if hint is type(None):
            return {"type": "null"}
        simple = {bool: "boolean", int: "integer", float: "number", str: "string",
                  bytes: "string"}  # bytes: decoded as text from the dump is
        if hint in simple:
            return {"type": simple[hint]}
        if isinstance(hint, type) and issubclass(hint, Path):
            return {"type": "string"}
        if isinstance(hint, type) and issubclass(hint, enum.Enum):
            return {"enum": [m.value for m in hint]}
        if is_union(hint):
            return self._union(typing.get_args(hint))
        if typing.get_origin(hint) is typing.Literal:
            return {"enum": list(typing.get_args(hint))}
        if (dataclasses.is_dataclass(hint) and isinstance(hint, type)) \
                or typing.is_typeddict(hint):
            return {"$ref": f"#/$defs/{self._define(hint)}"}
        return self._container(hint)

    def _union(self, arms: tuple[Any, ...]) -> dict[str, Any]:
        schemas = [self.schema(a) for a in arms]
        return schemas[0] if len(schemas) == 1 else {"anyOf": schemas}

    def _container(self, hint: Any) -> dict[str, Any]:
        origin, args = typing.get_origin(hint), typing.get_args(hint)
        if origin is tuple and args and not (len(args) == 2 and args[1] is Ellipsis):
            return {"type": "array", "prefixItems": [self.schema(a) for a in args],
                    "items": False, "minItems": len(args)}
        if origin in (list, tuple, set, frozenset):
            return {"type": "array", "items": self.schema(args[0])} if args \
                else {"type": "array"}
        if origin is dict:
            return {"type": "object", "additionalProperties": self.schema(args[1])} \
                if len(args) == 2 else {"type": "object"}
        if hint in (list, tuple):
            return {"type": "array"}
        if hint is dict:
            return {"type": "object"}
        raise TypeError(f"no JSON schema for the type {hint!r}")

    def _define(self, cls: type) -> str:
        """The ``$defs`` name of a record class, describing it on first use."""
        if cls in self._names:
            return self._names[cls]
        name = cls.__name__
        if name in self.defs:  # two records of one name in different modules
            name = f"{cls.__module__.rsplit('.', 1)[-1]}.{name}"
        self._names[cls] = name
        self.defs[name] = {}  # reserve the name: records may nest themselves
        if typing.is_typeddict(cls):
            hints = typing.get_type_hints(cls, include_extras=True)
            required = sorted(cls.__required_keys__)
        else:
            hints = dict(record_hints(cls))
            required = list(hints)
        body: dict[str, Any] = {"type": "object"}
        doc = _summary(cls)
        if doc:
            body["description"] = doc
        body["properties"] = {k: self.schema(h) for k, h in hints.items()}
        body["required"] = required
        body["additionalProperties"] = False
        self.defs[name] = body
        return name


def _summary(cls: type) -> str:
    """The first paragraph of a record's docstring, on one line."""
    doc = (cls.__doc__ or "").strip()
    if not doc or doc.startswith(f"{cls.__name__}("):  # dataclass's generated signature
        return ""
    return " ".join(doc.split("\n\n")[0].split())


def kind_schema(kind: str) -> dict[str, Any]:
    """The JSON Schema of one kind's documents."""
    from kdx.render.kinds import KINDS

    builder = _Builder()
    data = builder.schema(KINDS[kind])
    schema: dict[str, Any] = {
        "$schema": _DIALECT,
        "$id": f"urn:kdx:schema:{SCHEMA_VERSION}:{kind}",
        "title": f"kdx {kind}",
        "type": "object",
        "properties": {
            "kind": {"const": kind},
            "schema": {"const": SCHEMA_VERSION},
            "data": data,
        },
        "required": ["kind", "schema", "data"],
        "additionalProperties": False,
    }
    if builder.defs:
        schema["$defs"] = dict(sorted(builder.defs.items()))
    return schema


def schema_text(kind: str) -> str:
    """A kind's schema as the shipped file holds it."""
    return json.dumps(kind_schema(kind), indent=2) + "\n"


def generate() -> dict[str, str]:
    """Every shipped file's name and text: one schema per kind."""
    from kdx.render.kinds import kind_names

    return {f"{kind}.json": schema_text(kind) for kind in kind_names()}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m kdx.render.json_schema",
        description="write the JSON Schema of every kind into the package")
    parser.add_argument("--check", action="store_true",
                        help="only compare: exit 1 if a shipped schema is out of date")
    parser.add_argument("--dir", type=Path, default=SCHEMA_DIR)
    args = parser.parse_args(argv)
    files = generate()
    stale = sorted(set(p.name for p in args.dir.glob("*.json")) - set(files))
    changed = [n for n, text in files.items()
               if not (args.dir / n).exists() or (args.dir / n).read_text() != text]
    if args.check:
        for name in changed + stale:
            print(f"out of date: {name}", file=sys.stderr)
        return 1 if changed or stale else 0
    args.dir.mkdir(parents=True, exist_ok=True)
    for name in stale:
        (args.dir / name).unlink()
    for name in changed:
        (args.dir / name).write_text(files[name])
    print(f"{len(files)} schemas in {args.dir} ({len(changed)} written, "
          f"{len(stale)} removed)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
