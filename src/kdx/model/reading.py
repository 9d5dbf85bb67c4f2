"""What every model needs to read a dump: the errors a partial dump raises, and C strings.

A makedumpfile-filtered or truncated dump lacks pages, and a structure read through a
stale pointer can hold anything; each model turns these errors into a warning or an
absent field, never into a failed command, so they share one definition of them.
"""

from __future__ import annotations

import drgn

from kdx.textsafe import decode

#: What reading a kernel object out of a dump may raise when the dump lacks it.
READ_ERRORS = (drgn.FaultError, drgn.ObjectAbsentError, LookupError, ValueError)


def c_string(pointer: drgn.Object) -> str | None:
    """The NUL-terminated string ``pointer`` points at, made safe to print; None for a
    NULL pointer or a string the dump does not hold."""
    try:
        if not pointer.value_():
            return None
        return decode(pointer.string_())
    except READ_ERRORS:
        return None
