"""The one exception type that reaches the user as a single line.

Every layer raises KdxError with a sentence a user can act on; the CLI prints it as
``kdx: error: ...`` and exits non-zero, so no Python traceback ever reaches a terminal.
"""

from __future__ import annotations


class KdxError(Exception):
    """A failure explained in one sentence for the user."""

    exit_code = 1


class MissingToolError(KdxError):
    """A host program kdx needs is not installed; the message says how to install it."""

    exit_code = 3
