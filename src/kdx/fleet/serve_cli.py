"""``kdx serve``: the fleet service (web UI, JSON API and analysis workers) in one command.

It opens the fleet in ``--data`` (queueing again what a stopped server left running),
starts the workers and, with ``--watch``, the directory watcher, then serves the web app
with uvicorn until SIGINT or SIGTERM, when it stops the workers (their jobs are queued
again for the next start) and closes the database.
"""

from __future__ import annotations

import argparse
import contextlib
import re
import secrets
import signal
import socket
import sys
from pathlib import Path
from typing import Any, Iterator

from kdx.errors import KdxError

__all__ = ["parse_size", "read_tokens", "register"]

_SIZE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([kmgt]?)(i?b)?\s*$", re.I)
_UNITS = {"": 1, "k": 1 << 10, "m": 1 << 20, "g": 1 << 30, "t": 1 << 40}


def parse_size(text: str) -> int:
    """``4G``, ``512MiB``, ``1.5g``, ``1048576`` → bytes."""
    found = _SIZE.match(text)
    if not found:
        raise argparse.ArgumentTypeError(f"not a size: {text!r} (e.g. 4G, 512M)")
    return int(float(found.group(1)) * _UNITS[found.group(2).lower()])


def _seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number of seconds: {text!r}") from None
    if value <= 0:
        raise argparse.ArgumentTypeError("the time limit must be positive")
    return value


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add ``kdx serve`` (its options and ``func``) to the top-level parser."""
    p = subparsers.add_parser(
        "serve", help="run the fleet triage service (web UI, API, workers)",
        description="Take in vmcores (uploads, or a watched directory kdump writes to), "
        "analyse each one (a fast pass in seconds, then the full kdx analyze), group them "
        "into problems by signature, and show it all in a web UI and a JSON API.")
    p.add_argument("--data", type=Path, default=Path("kdx-data"),
                   help="where the database, the dumps and the token live (default: "
                   "./kdx-data)")
    p.add_argument("--database", metavar="URL",
                   help="the records' database: postgresql+psycopg://user@host/db or "
                   "sqlite:///file (default: DATA/kdx.sqlite3, upgraded when opened)")
    p.add_argument("--migrate", action="store_true",
                   help="upgrade the database's schema to this kdx's and exit (stop every "
                   "kdx process using it first)")
    p.add_argument("--store", metavar="DIR|s3://BUCKET/PREFIX",
                   help="where the dumps are kept (default: DATA/dumps); a directory every "
                   "worker mounts, or S3-compatible object storage")
    p.add_argument("--s3-endpoint", metavar="URL",
                   help="the S3-compatible server of an s3:// store (default: "
                   "$AWS_ENDPOINT_URL, else AWS); credentials from the AWS environment")
    p.add_argument("--host", default="127.0.0.1", help="address to listen on")
    p.add_argument("--port", type=int, default=8470, help="port (0: any free port)")
    p.add_argument("--workers", type=int, default=0,
                   help="full analyses run at once (default: the number of cores); one "
                   "more process runs fast passes only")
    p.add_argument("--watch", type=Path, metavar="DIR",
                   help="ingest the dumps kdump writes into DIR (an NFS or ssh target)")
    p.add_argument("--watch-interval", type=_seconds, default=5.0, metavar="S",
                   help="seconds between looks at the watched directory (default: 5)")
    p.add_argument("--debuginfo", type=Path, metavar="DIR",
                   help="build-ID keyed debug info: DIR/<build-id>/vmlinux, "
                   "DIR/.build-id/xx/yyy.debug, or unpacked -dbg packages")
    p.add_argument("--token-file", type=Path, metavar="F",
                   help="tokens allowed to upload, download and change (one a line; "
                   "default: one generated into DATA/token)")
    read = p.add_mutually_exclusive_group()
    read.add_argument("--open-read", action="store_true",
                      help="anyone may read the pages and the API (default: a token is needed)")
    read.add_argument("--private", action="store_true",
                      help="reading needs a token too (the default)")
    p.add_argument("--broker", metavar="URL",
                   help="redis://HOST:PORT/N: run no local workers, send the jobs to "
                   "'kdx worker' processes through this Celery broker")
    p.add_argument("--job-seconds", type=_seconds, default=600.0, metavar="S",
                   help="hard time limit of one analysis (default: 600)")
    p.add_argument("--job-memory", type=parse_size, default=4 << 30, metavar="SIZE",
                   help="hard memory limit of one analysis (default: 4G)")
    p.add_argument("--max-upload", type=parse_size, default=64 << 30, metavar="SIZE",
                   help="largest dump accepted (default: 64G)")
    p.set_defaults(func=run)


def read_tokens(path: Path) -> frozenset[str]:
    """The tokens in ``path``: one a line, blank lines and ``#`` comments skipped."""
    try:
        text = path.read_text()
    except OSError as err:
        raise KdxError(f"cannot read the token file {path}: {err.strerror}") from None
    tokens = frozenset(line.strip() for line in text.splitlines()
                       if line.strip() and not line.lstrip().startswith("#"))
    if not tokens:
        raise KdxError(f"the token file {path} holds no token")
    return tokens


def _default_token(data: Path) -> Path:
    """DATA/token, made once (readable by its owner only)."""
    path = data / "token"
    if not path.exists():
        data.mkdir(parents=True, exist_ok=True)
        path.touch(mode=0o600)
        path.write_text(secrets.token_urlsafe(32) + "\n")
    return path


def _fallback_app(*_args: Any, **_kwargs: Any) -> Any:
    """A one-line page while the web app is not installed."""

    async def app(scope: dict, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return
        body = b"kdx serve is running; its web pages are not installed.\n"
        await send({"type": "http.response.start", "status": 200,
                    "headers": [(b"content-type", b"text/plain; charset=utf-8")]})
        await send({"type": "http.response.body", "body": body})

    return app


def _create_app() -> Any:
    try:
        from kdx.fleet.web import create_app
    except ImportError:
        return _fallback_app
    return create_app


def _listen(host: str, port: int) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as err:
        sock.close()
        raise KdxError(f"cannot listen on {host}:{port}: {err.strerror}") from None
    sock.listen(128)
    sock.set_inheritable(True)
    return sock


@contextlib.contextmanager
def _signals_end_quietly() -> Iterator[None]:
    """uvicorn stops on SIGINT/SIGTERM, then raises the signal again to the handlers it
    found; these let the stop finish (workers, database) instead of killing the process."""
    handled = (signal.SIGINT, signal.SIGTERM)
    saved = {sig: signal.signal(sig, lambda *_: None) for sig in handled}
    try:
        yield
    finally:
        for sig, handler in saved.items():
            signal.signal(sig, handler)


def _migrate(args: argparse.Namespace) -> int:
    """``--migrate``: upgrade the database, say from which revision to which, exit."""
    from kdx.fleet.db import migrate_database

    url = args.database or f"sqlite:///{args.data / 'kdx.sqlite3'}"
    if args.database is None:
        args.data.mkdir(parents=True, exist_ok=True)
    before, after = migrate_database(url)
    if before == after:
        print(f"kdx serve: the database is at revision {after} already", flush=True)
    else:
        print(f"kdx serve: database upgraded from revision {before or '(empty)'} to {after}",
              flush=True)
    return 0


def _hide_password(url: str) -> str:
    """A broker URL as printed: without its password."""
    return re.sub(r"//([^:/@]*):[^@/]*@", r"//\1:***@", url)


def run(args: argparse.Namespace) -> int:
    import uvicorn

    from kdx.fleet.embedded import open_fleet
    from kdx.fleet.service import FleetConfig
    from kdx.fleet.watch import Watcher

    if args.migrate:
        return _migrate(args)
    if args.workers < 0:
        raise KdxError("--workers must be 0 (one per core) or more")
    if args.watch is not None and not args.watch.is_dir():
        raise KdxError(f"--watch {args.watch}: no such directory")
    token_file = args.token_file or _default_token(args.data)
    tokens = read_tokens(token_file)
    sock = _listen(args.host, args.port)
    config = FleetConfig(data=args.data, workers=args.workers, debuginfo=args.debuginfo,
                         job_seconds=args.job_seconds, job_memory=args.job_memory,
                         max_upload=args.max_upload, database=args.database,
                         store=args.store, s3_endpoint=args.s3_endpoint,
                         broker=args.broker)
    fleet = open_fleet(config)
    watcher = (Watcher(fleet, args.watch, interval=args.watch_interval)
               if args.watch is not None else None)
    try:
        app = _create_app()(fleet, tokens=tokens, open_read=bool(args.open_read))
        host, port = sock.getsockname()[:2]
        shown = f"[{host}]" if ":" in host else host
        workers = (f"workers via {_hide_password(args.broker)}" if args.broker
                   else f"{fleet.pool.count} workers")
        print(f"kdx serve: http://{shown}:{port}/ ({workers}, data in "
              f"{args.data}, tokens in {token_file}"
              f"{', watching ' + str(args.watch) if watcher else ''})", flush=True)
        if fleet.recovered:
            print(f"kdx serve: {fleet.recovered} interrupted job(s) queued again", flush=True)
        if watcher is not None:
            watcher.start()
        server = uvicorn.Server(uvicorn.Config(app, log_level="warning", lifespan="auto"))
        with _signals_end_quietly():
            server.run(sockets=[sock])
    finally:
        if watcher is not None:
            watcher.stop()
        fleet.close()
        sock.close()
    print("kdx serve: stopped", file=sys.stderr, flush=True)
    return 0
