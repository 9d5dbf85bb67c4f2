"""``kdx worker``: analysis workers for a ``kdx serve --broker`` on any number of machines.

A worker takes "run job N" messages from the Celery broker, claims the job in the fleet
database and runs it in its own child process with the same limits as the embedded
workers; the dumps are read from the store every worker reaches (a shared directory, or
S3-compatible object storage whose dumps are downloaded into a worker-local cache for the
job and removed after it).
"""

from __future__ import annotations

import argparse
from pathlib import Path

from kdx.errors import KdxError
from kdx.fleet.serve_cli import _seconds, parse_size

__all__ = ["register"]


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add ``kdx worker`` to the top-level parser."""
    p = subparsers.add_parser(
        "worker", help="run fleet analysis workers for 'kdx serve --broker'",
        description="Analyse the dumps a 'kdx serve --broker URL' takes in: jobs come "
        "through the Celery broker, records live in the fleet database, dumps in the "
        "shared store.")
    p.add_argument("--database", required=True, metavar="URL",
                   help="the fleet database (sqlite:///PATH or postgresql://...)")
    p.add_argument("--broker", required=True, metavar="URL", help="redis://HOST:PORT/N")
    p.add_argument("--store", required=True, metavar="DIR|s3://BUCKET/PREFIX",
                   help="the dump store the server writes (its DATA/dumps directory, or "
                   "the same s3:// URL as kdx serve --store)")
    p.add_argument("--s3-endpoint", metavar="URL",
                   help="the S3-compatible server of an s3:// store (default: "
                   "$AWS_ENDPOINT_URL, else AWS); credentials from the AWS environment")
    p.add_argument("--cache", type=Path, metavar="DIR",
                   help="where an s3:// store's dumps are downloaded for their job "
                   "(default: WORK/cache)")
    p.add_argument("--debuginfo", type=Path, metavar="DIR",
                   help="build-ID keyed debug info (as for kdx serve)")
    p.add_argument("--work", type=Path, metavar="DIR",
                   help="scratch space for reassembled dumps (default: a new temporary "
                   "directory)")
    p.add_argument("--concurrency", type=int, default=1, metavar="N",
                   help="jobs run at once (default: 1)")
    p.add_argument("--job-seconds", type=_seconds, default=600.0, metavar="S",
                   help="hard time limit of one analysis; use the server's (default: 600)")
    p.add_argument("--job-memory", type=parse_size, default=4 << 30, metavar="SIZE",
                   help="hard memory limit of one analysis (default: 4G)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from kdx.fleet.celeryq import default_work_dir, run_worker
    from kdx.fleet.embedded import stage_limits
    from kdx.fleet.queue import WorkerSettings
    from kdx.fleet.s3store import parse_s3_url

    if args.concurrency < 1:
        raise KdxError("--concurrency must be 1 or more")
    if not args.broker.startswith(("redis://", "rediss://")):
        raise KdxError(f"--broker must be a redis:// URL ({args.broker} given)")
    if args.store.startswith("s3://"):
        parse_s3_url(args.store)
    elif "://" in args.store:
        raise KdxError(f"--store {args.store}: give a directory or s3://bucket/prefix")
    elif not Path(args.store).is_dir():
        raise KdxError(f"--store {args.store}: no such directory")
    work = args.work or default_work_dir()
    seconds, memory = stage_limits(args.job_seconds, args.job_memory)
    settings = WorkerSettings(
        database=args.database, store=args.store, data=str(work),
        cache=str(args.cache or work / "cache"), s3_endpoint=args.s3_endpoint,
        debuginfo=str(args.debuginfo) if args.debuginfo else None,
        seconds=seconds, memory=memory)
    print(f"kdx worker: {args.concurrency} job(s) at once, store {args.store}", flush=True)
    return run_worker(args.broker, settings, args.concurrency)
