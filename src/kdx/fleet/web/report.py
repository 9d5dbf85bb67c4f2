"""The dump page's report: the same HTML ``kdx analyze --html`` writes, from the stored
record.

The fleet stores a verdict as the JSON ``Verdict.to_dict`` gives (addresses as "0x..."
strings); here it is read back into the ``Verdict`` record and handed to
``kdx.render.report.render_html``, which escapes every text from the dump. A record of a
shape this kdx cannot read (an older schema) gives None, and the page shows its JSON.
"""

from __future__ import annotations

import dataclasses
import re
import typing
from typing import Any

from kdx.diagnosis.verdict import Verdict
from kdx.render.json_out import is_hex, is_union, record_hints
from kdx.render.report import render_html

__all__ = ["report_body", "report_document", "revive"]


def _value(hint: Any, value: Any) -> Any:
    """``value`` (plain JSON) as the type ``hint`` describes."""
    if value is None:
        return None
    if is_hex(hint):
        return int(value, 16) if isinstance(value, str) else value
    if is_union(hint):
        real = [a for a in typing.get_args(hint) if a is not type(None)]
        return _value(real[0], value) if len(real) == 1 else value
    if dataclasses.is_dataclass(hint) and isinstance(hint, type):
        return revive(hint, value)
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin is list and args:
        return [_value(args[0], v) for v in value]
    if origin is dict and len(args) == 2:
        return {k: _value(args[1], v) for k, v in value.items()}
    return value


def revive(cls: type, data: dict[str, Any]) -> Any:
    """The record of class ``cls`` whose plain JSON form is ``data``."""
    if not isinstance(data, dict):
        raise TypeError(f"{cls.__name__}: expected an object")
    values = {name: _value(hint, data[name]) for name, hint in record_hints(cls)
              if name in data}
    return cls(**values)


def report_document(verdict: dict[str, Any] | None) -> str | None:
    """The full one-file HTML report of a stored verdict, or None."""
    if not verdict:
        return None
    try:
        return render_html(revive(Verdict, verdict))
    except (TypeError, ValueError, KeyError, AttributeError):
        return None


_BODY = re.compile(r"<body>(.*)</body>", re.S)


def report_body(verdict: dict[str, Any] | None) -> str | None:
    """The report's body, to embed in the dump page (already escaped by render_html)."""
    document = report_document(verdict)
    if document is None:
        return None
    found = _BODY.search(document)
    return found.group(1) if found else None
