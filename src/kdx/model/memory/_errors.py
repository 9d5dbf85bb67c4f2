"""The read failures every ``kmem`` view tolerates, and the warning callback they report
through: shared by the figures, slab, page, counter and zone modules, so kept apart from
all of them.
"""

from __future__ import annotations

from typing import Callable

from kdx.model.reading import READ_ERRORS

__all__ = ["Warn"]

#: READ_ERRORS, and the TypeError drgn's mm and slab helpers raise when a pointer read
#: from a damaged dump has a type they do not take: kmem reads through such pointers.
_READ_OR_TYPE_ERRORS = (*READ_ERRORS, TypeError)
Warn = Callable[[str], None]


def _no_warn(message: str) -> None:
    return None


def _safe(read: Callable[[], object], default: object) -> object:
    try:
        return read()
    except _READ_OR_TYPE_ERRORS:
        return default
