"""Validate kdx's ``--json`` output against the JSON Schemas the package ships.

Test files call ``schema_problems(text)`` on what a command printed: every document in it
must name a kind that has a schema, and match that schema.
"""

from __future__ import annotations

import functools
import json
from importlib.resources import files

from jsonschema import Draft202012Validator

__all__ = ["documents", "schema_problems", "validator"]


@functools.cache
def validator(kind: str) -> Draft202012Validator | None:
    """The validator of one kind's shipped schema (None: the kind has no schema)."""
    path = files("kdx").joinpath("schemas", f"{kind}.json")
    if not path.is_file():
        return None
    return Draft202012Validator(json.loads(path.read_text()))


def documents(text: str) -> list[dict]:
    """The JSON documents in ``text``, one after another; raises if one is bad."""
    decoder, at, found = json.JSONDecoder(), 0, []
    while True:
        while at < len(text) and text[at].isspace():
            at += 1
        if at >= len(text):
            return found
        doc, at = decoder.raw_decode(text, at)
        found.append(doc)


def schema_problems(text: str) -> list[str]:
    """What is wrong with the documents in ``text`` by their schemas (empty: nothing)."""
    problems = []
    for doc in documents(text):
        kind = doc.get("kind") if isinstance(doc, dict) else None
        check = validator(kind) if isinstance(kind, str) else None
        if check is None:
            problems.append(f"no schema for the kind {kind!r}")
            continue
        error = next(iter(sorted(check.iter_errors(doc), key=lambda e: list(e.path))), None)
        if error is not None:
            where = "/".join(str(p) for p in error.absolute_path)
            problems.append(f"{kind}: {where or '(top)'}: {error.message[:300]}")
    return problems
