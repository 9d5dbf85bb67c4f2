"""Make text read from a dump safe to print on a terminal.

Comm names, log lines and file names come from the crashed machine's memory, so they are
untrusted: an escape sequence in them could rewrite the user's terminal. Everything printed
from a dump goes through ``clean``.

Models do not clean: they ``decode`` the bytes and keep every character, so JSON (which
escapes control characters) carries what the dump holds. The text renderers' output is
cleaned where it is written (the session's ``write``, the report renderers).
"""

from __future__ import annotations

import re

__all__ = ["clean", "clean_bytes", "decode", "one_line"]

# CSI, OSC, DCS/PM/APC/SOS sequences, lone escapes, and C0/C1 controls except tab/newline.
_ESCAPES = re.compile(
    r"\x1b\[[0-?]*[ -/]*[@-~]"  # CSI ... final byte
    r"|\x1b\][^\x07\x1b]*(?:\x07|\x1b\\)?"  # OSC ... BEL or ST
    r"|\x1b[PX^_][^\x1b]*(?:\x1b\\)?"  # DCS, SOS, PM, APC ... ST
    r"|\x1b[@-Z\\-_]?"  # two-byte escapes or a lone ESC
    r"|\x9b[0-?]*[ -/]*[@-~]"  # 8-bit CSI
    r"|[\x00-\x08\x0b-\x1f\x7f-\x9f]"
)


def clean(text: str) -> str:
    """Return ``text`` with terminal control sequences and control characters removed."""
    return _ESCAPES.sub("", text)


def decode(raw: bytes) -> str:
    """Decode bytes from a dump as UTF-8, keeping every character (control characters
    too); an undecodable byte becomes a ``\\xNN`` escape rather than being lost."""
    return raw.decode("utf-8", errors="backslashreplace")


def clean_bytes(raw: bytes) -> str:
    """Decode bytes from a dump (undecodable bytes escaped) and clean the result."""
    return clean(raw.decode("utf-8", errors="backslashreplace"))


_CONTROLS = re.compile(r"[\x00-\x1f\x7f-\x9f]")


def one_line(raw: bytes) -> str:
    """Decode a name that is one line by nature (a comm, a module or host name): every
    control character, newline included, becomes a visible ``\\xNN`` escape, so a hostile
    name can neither rewrite the terminal nor forge a line of output."""
    return _CONTROLS.sub(lambda m: f"\\x{ord(m.group()):02x}", decode(raw))
