"""``kdx submit``, ``kdx dumps``, ``kdx problems``: clients of a ``kdx serve`` server."""

from __future__ import annotations

import argparse

__all__ = ["register"]


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the fleet client commands to the top-level parser."""
    subparsers.add_parser("submit", help="upload dumps to a kdx serve server")
    subparsers.add_parser("dumps", help="list the dumps a kdx serve server holds")
    subparsers.add_parser("problems", help="list the problems a kdx serve server found")
