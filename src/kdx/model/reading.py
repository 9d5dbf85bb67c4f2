"""What every model needs to read a dump: the errors a partial dump raises, and C strings.

A makedumpfile-filtered or truncated dump lacks pages, and a structure read through a
stale pointer can hold anything; each model turns these errors into a warning or an
absent field, never into a failed command, so they share one definition of them.
"""

from __future__ import annotations

import drgn

from kdx.textsafe import decode

__all__ = ["READ_ERRORS", "c_string", "read_c_string"]

#: What reading a kernel object out of a dump may raise when the dump lacks it: a missing
#: page (FaultError), an optimised-out or absent value, a symbol or member this kernel
#: version does not have (LookupError, AttributeError), or garbage read through a stale
#: pointer (ValueError, OverflowError, and drgn's BadDataError for a kernel structure
#: drgn itself finds malformed). Every model catches this one tuple.
READ_ERRORS = (drgn.FaultError, drgn.ObjectAbsentError, drgn.BadDataError, LookupError,
               AttributeError, ValueError, OverflowError)

#: Bytes read at a time while looking for a NUL: a short string costs one read, and a
#: chunk never crosses a page, so a string ending just before a missing page is found.
_CHUNK = 256


def c_string(pointer: drgn.Object) -> str | None:
    """The NUL-terminated string ``pointer`` points at, made safe to print; None for a
    NULL pointer or a string the dump does not hold."""
    try:
        if not pointer.value_():
            return None
        return decode(pointer.string_())
    except READ_ERRORS:
        return None


def read_c_string(prog: drgn.Program, address: int, limit: int = 1500) -> bytes:
    """The raw bytes at ``address`` up to the first NUL: at most ``limit`` bytes, and
    only what the dump holds (a string running into a missing page is cut there)."""
    data = bytearray()
    while len(data) < limit:
        pos = address + len(data)
        size = min(_CHUNK - pos % _CHUNK, limit - len(data))
        try:
            piece = prog.read(pos, size)
        except drgn.FaultError:
            break
        nul = piece.find(b"\0")
        if nul >= 0:
            data += piece[:nul]
            break
        data += piece
    return bytes(data)
