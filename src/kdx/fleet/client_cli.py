"""``kdx submit``, ``kdx dumps``, ``kdx problems``: clients of a ``kdx serve`` server.

Each takes ``--server URL`` (else ``$KDX_SERVER``, else http://127.0.0.1:8470) and
``--token T`` (else ``$KDX_TOKEN``); ``--json`` prints the API's records as they are,
otherwise a table. Text from dumps (titles, host names) is cleaned before it reaches the
terminal.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from kdx.errors import KdxError
from kdx.textsafe import clean

__all__ = ["register"]


def _common(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--server", metavar="URL",
                        help="the kdx serve server (default $KDX_SERVER or "
                        "http://127.0.0.1:8470)")
    parser.add_argument("--token", metavar="T", help="an access token (default $KDX_TOKEN)")
    parser.add_argument("--json", action="store_true", help="print the records as JSON")


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the fleet client commands to the top-level parser."""
    submit = subparsers.add_parser(
        "submit", help="upload dumps to a kdx serve server",
        description="Upload vmcores, vmcore-dmesg.txt files or kdump output directories "
        "(/var/crash/<host>-<date>/) to a kdx serve server. A dump the server holds is "
        "skipped; an interrupted upload resumes where it stopped.")
    submit.add_argument("paths", nargs="+", metavar="PATH", type=Path)
    submit.add_argument("--label", action="append", default=[], metavar="KEY=VALUE",
                        help="a label for the dumps (repeatable), e.g. team=storage")
    _common(submit)
    submit.set_defaults(func=run_submit)

    dumps = subparsers.add_parser("dumps", help="list the dumps a kdx serve server holds")
    dumps.add_argument("--state", choices=("received", "fast", "analysed", "failed"))
    dumps.add_argument("--problem", type=int, metavar="ID", help="the dumps of one problem")
    dumps.add_argument("--limit", type=int, default=100, metavar="N")
    _common(dumps)
    dumps.set_defaults(func=run_dumps)

    problems = subparsers.add_parser("problems",
                                     help="list the problems a kdx serve server found")
    for name in ("kernel", "host", "module", "category"):
        problems.add_argument(f"--{name}")
    problems.add_argument("--label", metavar="KEY=VALUE")
    problems.add_argument("--since", metavar="YYYY-MM-DD")
    problems.add_argument("--sort", choices=("last_seen", "count", "hosts", "first_seen",
                                             "title"), default="last_seen")
    problems.add_argument("--ascending", action="store_true")
    problems.add_argument("--limit", type=int, default=100, metavar="N")
    _common(problems)
    problems.set_defaults(func=run_problems)


def _labels(pairs: list[str]) -> dict[str, str]:
    out = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise KdxError(f"--label {pair}: expected KEY=VALUE")
        out[key] = value
    return out


def _client(args: argparse.Namespace):  # noqa: ANN202 (FleetClient, imported late)
    from kdx.fleet.client import FleetClient

    return FleetClient(args.server, args.token)


def _table(rows: list[list[str]], header: list[str]) -> str:
    cells = [header] + [[clean(str(c)) for c in row] for row in rows]
    widths = [max(len(r[i]) for r in cells) for i in range(len(header))]
    lines = ["  ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip() for r in cells]
    return "\n".join(lines)


class _Bar:
    """A progress line on a terminal (nothing in pipes)."""

    def __init__(self, name: str) -> None:
        self.name = clean(name)
        self.on = sys.stderr.isatty()
        self.last: tuple[str, int] | None = None

    def __call__(self, what: str, done: int, total: int) -> None:
        if not self.on or not total:
            return
        percent = done * 100 // total
        if (what, percent) == self.last:
            return
        self.last = (what, percent)
        print(f"\r{self.name}: {what} {percent:3d}% of {total / (1 << 20):.1f} MiB",
              end="", file=sys.stderr, flush=True)

    def done(self) -> None:
        if self.on and self.last is not None:
            print("\r\x1b[K", end="", file=sys.stderr, flush=True)


def _said(r: Any, server: str) -> str:
    """One line for one submitted file."""
    how = "already stored" if r.skipped else "uploaded"
    if r.resumed_at:
        how += f" (resumed at byte {r.resumed_at})"
    if r.interruptions:
        how += f" (the connection dropped {r.interruptions} time(s))"
    return clean(f"{r.path}: {how}: dump {r.dump['id']} ({r.dump['state']}) "
                 f"{server}/dumps/{r.dump['id']}")


def run_submit(args: argparse.Namespace) -> int:
    """Send each path; one that fails is one error line and the others still go (a
    kdump hook sending all of /var/crash should not stop at one bad directory)."""
    from kdx.fleet.client import ClientError

    labels = _labels(args.label)
    records, failed = [], 0
    with _client(args) as client:
        for path in args.paths:
            bar = _Bar(str(path))
            try:
                results = client.submit(path, labels=labels, progress=bar)
            except ClientError as err:
                if len(args.paths) == 1:
                    raise
                bar.done()
                print(f"kdx: error: {clean(str(err))}", file=sys.stderr)
                failed += 1
                continue
            bar.done()
            records += [r.dump for r in results]
            if not args.json:
                for r in results:
                    print(_said(r, client.server))
    if args.json:
        print(json.dumps(records, indent=2))
    return 1 if failed else 0


def _title(d: dict[str, Any]) -> str:
    verdict = d.get("verdict") or {}
    title = (verdict.get("signature") or {}).get("title") or (d.get("fast") or {}).get("title")
    return title or (f"failed: {d['failure']}" if d.get("failure") else "-")


def run_dumps(args: argparse.Namespace) -> int:
    with _client(args) as client:
        found = client.dumps(state=args.state, problem=args.problem, limit=args.limit)
    if args.json:
        print(json.dumps(found, indent=2))
        return 0
    rows = [[d["id"], d["state"], d.get("problem_id") or "-", d.get("release") or "-",
             d.get("host") or "-", d["sha256"][:12], _title(d)] for d in found]
    print(_table(rows, ["ID", "STATE", "PROBLEM", "KERNEL", "HOST", "SHA256", "TITLE"]))
    return 0


def run_problems(args: argparse.Namespace) -> int:
    filters = {k: getattr(args, k) for k in ("kernel", "host", "module", "category",
                                             "label", "since", "sort")}
    with _client(args) as client:
        found = client.problems(limit=args.limit, desc=not args.ascending, **filters)
    if args.json:
        print(json.dumps(found, indent=2))
        return 0
    rows = [[p["id"], p["count"], p["hosts"], (p.get("last_seen") or "-")[:10],
             ",".join(p.get("kernels") or []) or "-",
             p["title"] + (" [new]" if p.get("new") else "")] for p in found]
    print(_table(rows, ["ID", "DUMPS", "HOSTS", "LAST SEEN", "KERNELS", "TITLE"]))
    return 0
