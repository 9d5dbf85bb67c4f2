"""Who may do what: tokens for uploads, downloads and changes, optionally for reading.

A vmcore holds the memory of every process on a host, keys included, so fetching one or
changing what the fleet believes needs a token. Scripts send ``Authorization: Bearer T``;
people log in once on ``/login``, which sets an HttpOnly, SameSite=Strict cookie (so a
form on another site cannot post with it). Tokens are compared in constant time.
"""

from __future__ import annotations

import hashlib
import hmac
from dataclasses import dataclass

from fastapi import Request

__all__ = ["COOKIE", "Access", "Denied", "fingerprint"]

#: The cookie the login page sets.
COOKIE = "kdx_token"


class Denied(Exception):
    """A request without (401) or with a wrong (403) token."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


def fingerprint(token: str) -> str:
    """A short, non-secret name of a token for the audit trail."""
    return "token " + hashlib.sha256(token.encode()).hexdigest()[:8]


def _bearer(request: Request) -> str | None:
    header = request.headers.get("authorization", "")
    scheme, _, value = header.partition(" ")
    if scheme.lower() == "bearer" and value.strip():
        return value.strip()
    return None


@dataclass(frozen=True)
class Access:
    """The server's tokens and whether reading is open to all."""

    tokens: frozenset[str]
    open_read: bool = True

    def known(self, candidate: str) -> bool:
        """Whether ``candidate`` is one of the tokens, comparing every one in constant
        time so the answer's timing tells nothing."""
        given = candidate.encode()
        found = False
        for token in self.tokens:
            found |= hmac.compare_digest(token.encode(), given)
        return found

    def presented(self, request: Request) -> str | None:
        """The token a request carries (header, then cookie), if any."""
        return _bearer(request) or request.cookies.get(COOKIE) or None

    def check(self, request: Request, *, write: bool) -> str | None:
        """The valid token of the request, None for an open read; ``Denied`` otherwise."""
        token = self.presented(request)
        if not write and self.open_read:  # a stale cookie must not lock anyone out
            return token if token is not None and self.known(token) else None
        if not self.tokens:
            raise Denied(403, "this server has no tokens (start kdx serve with "
                         "--token-file), so nothing that needs one is allowed")
        if token is None:
            raise Denied(401, "a token is needed (Authorization: Bearer TOKEN, or log in)")
        if not self.known(token):
            raise Denied(403, "the token is not valid on this server")
        return token
