"""The JSON renderer: every model record becomes a versioned, plain JSON document.

Records are dataclasses of plain values, so the same document a script reads today can be
stored by a fleet service tomorrow; ``kind`` and ``schema`` let a reader check what it got.
"""

from __future__ import annotations

import dataclasses
import json
from typing import Any

SCHEMA_VERSION = 1


def plain(record: Any) -> Any:
    """A JSON-ready copy of ``record`` (dataclasses, lists, dicts, enums, paths)."""
    if dataclasses.is_dataclass(record) and not isinstance(record, type):
        return {f.name: plain(getattr(record, f.name)) for f in dataclasses.fields(record)}
    if isinstance(record, dict):
        return {str(k): plain(v) for k, v in record.items()}
    if isinstance(record, (list, tuple)):
        return [plain(v) for v in record]
    if isinstance(record, (str, int, float, bool)) or record is None:
        return record
    if hasattr(record, "value"):  # enums
        return plain(record.value)
    return str(record)


def to_json(kind: str, record: Any) -> str:
    """``{"kind": kind, "schema": N, "data": ...}`` as indented JSON text."""
    doc = {"kind": kind, "schema": SCHEMA_VERSION, "data": plain(record)}
    return json.dumps(doc, indent=2, ensure_ascii=False)
