"""The public API for kdx extensions: declare session commands in a Python file.

An extension file (loaded with ``extend FILE.py`` in a session, or shipped in a package
under the ``kdx.extensions`` entry-point group) declares each command with
:func:`command` on the function that runs it, with an option parser from
:func:`make_parser`; the function receives the session and the parsed options and answers
with ``session.emit(kind, record, text)`` (text, or JSON with ``--json``). A failure is a
:class:`CommandError`, printed in one line. docs/extensions.md describes the whole API.
"""

from __future__ import annotations

from kdx.session.command import CommandError, CommandParser, make_parser
from kdx.session.command import crash_command as command
from kdx.session.session import Session

__all__ = ["CommandError", "CommandParser", "Session", "command", "make_parser"]
