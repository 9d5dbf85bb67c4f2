"""``kdx serve``: the fleet service (web UI, JSON API and analysis workers) in one command."""

from __future__ import annotations

import argparse

__all__ = ["register"]


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add ``kdx serve`` (its options and ``func``) to the top-level parser."""
    subparsers.add_parser("serve", help="run the fleet triage service (web UI, API, workers)")
