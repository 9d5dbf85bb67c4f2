"""Marks for the fields of model records, read by the JSON renderer and its schemas.

A record field holding an address or another 64-bit kernel value is annotated ``Hex``:
the model keeps a plain ``int`` (arithmetic and comparisons stay ordinary), while JSON
writes it as a ``"0x..."`` string, because JSON readers such as ``jq`` and JavaScript keep
integers only up to 2**53 and would silently change a kernel address.

Example::

    @dataclass(frozen=True)
    class TaskRow:
        pid: int
        task: Hex          # JSON: "0xffff888003a1c000"
        parent: Hex | None
"""

from __future__ import annotations

from typing import Annotated

__all__ = ["HEX", "Hex"]

#: The annotation marker the JSON renderer looks for.
HEX = "kdx:hex"

#: An ``int`` that JSON writes as a ``"0x..."`` string (addresses, 64-bit kernel values).
Hex = Annotated[int, HEX]
