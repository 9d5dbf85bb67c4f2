"""The ``kdx`` command line: one sub-command per module, errors as one line.

Each sub-command module exposes ``register(subparsers)``, which adds its parser and sets
``func`` to a callable taking the parsed arguments and returning an exit code. Keeping the
dispatcher this thin lets each command own its options, as crash's commands do.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import sys
from typing import Callable, Sequence

from kdx import __version__
from kdx.errors import KdxError

#: Modules that contribute sub-commands, in the order ``kdx --help`` lists them.
COMMAND_MODULES = (
    "kdx.commands.sys",
    "kdx.commands.analyze",
    "kdx.lab.cli",
    "kdx.capture.cli",
    "kdx.fleet.serve_cli",
    "kdx.fleet.worker_cli",
    "kdx.fleet.client_cli",
)


def build_parser() -> argparse.ArgumentParser:
    """Build the top-level parser with every sub-command registered."""
    import importlib

    parser = argparse.ArgumentParser(
        prog="kdx",
        description="Linux kernel crash toolkit: analyse vmcores, diagnose panics, "
        "set up kdump and make real crash dumps in a lab. 'kdx VMCORE' opens a "
        "crash-style session on a dump.",
        epilog="session: kdx VMCORE [VMLINUX] [MODULE.ko|DIR ...] [-c CMD] [-i FILE] [--json]",
    )
    parser.add_argument("--version", action="version", version=f"kdx {__version__}")
    parser.add_argument("--json-schema", nargs="?", const="", metavar="KIND",
                        help="print the JSON Schema of one kind of --json document; "
                        "without KIND, list the kinds")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in COMMAND_MODULES:
        importlib.import_module(name).register(subparsers)
    return parser


#: The sub-command names, known without importing them, so that ``kdx VMCORE`` (a
#: session) starts without loading every sub-command's code.
SUBCOMMANDS = ("sys", "analyze", "lab", "kdump", "serve", "worker", "submit", "dumps",
               "problems")


def _is_session(argv: list[str]) -> bool:
    """``kdx VMCORE ...`` (a first word that is no sub-command) opens a session."""
    return bool(argv) and not argv[0].startswith("-") and argv[0] not in SUBCOMMANDS


def main(argv: Sequence[str] | None = None) -> int:
    """Run kdx; every failure becomes one ``kdx: error:`` line and a non-zero exit."""
    words = list(sys.argv[1:] if argv is None else argv)
    if argv is None:  # the kdx process itself, not a caller's
        from kdx import dataclass_cache

        dataclass_cache.install()
    if _is_session(words):
        from kdx.session import shell

        code = _guarded(lambda: shell.main(words))
        if argv is None:
            _exit_now(code)
        return code
    parser = build_parser()
    args = parser.parse_args(words)
    if args.json_schema is not None:
        return _guarded(lambda: _print_schema(args.json_schema))
    func: Callable[[argparse.Namespace], int] | None = getattr(args, "func", None)
    if func is None:
        parser.print_help()
        return 2
    return _guarded(lambda: func(args))


def _exit_now(code: int) -> None:
    """End the process without tearing down what the session built.

    A session leaves a drgn program with its DWARF index and the dump's caches behind;
    freeing them and every module one object at a time takes longer than a short
    session's commands (~45 ms of a 0.4 s ``kdx VMCORE -c bt``), and nothing of it
    reaches the user. So once the output is flushed and the ``atexit`` work is done
    (history, logging), the process exits at once, unless another thread still runs,
    when Python's own ending waits for it as usual.
    """
    import atexit
    import threading

    if threading.active_count() > 1:
        return
    atexit._run_exitfuncs()
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(OSError, ValueError):  # a closed pipe: nothing to say
            stream.flush()
    os._exit(code)


def _print_schema(kind: str) -> int:
    """``kdx --json-schema [KIND]``: the shipped schema file, or the list of kinds."""
    from importlib.resources import files

    folder = files("kdx").joinpath("schemas")
    kinds = sorted(p.name[:-len(".json")] for p in folder.iterdir()
                   if p.name.endswith(".json"))
    if not kind:
        print("\n".join(kinds))
        return 0
    if kind not in kinds:
        raise KdxError(f"{kind}: no such JSON kind ('kdx --json-schema' lists them)")
    print(folder.joinpath(f"{kind}.json").read_text(), end="")
    return 0


def _guarded(call: Callable[[], int]) -> int:
    try:
        return call()
    except KdxError as err:
        print(f"kdx: error: {err}", file=sys.stderr)
        return err.exit_code
    except KeyboardInterrupt:
        print("kdx: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        return 0
    except Exception as err:  # the last line of defence: never a traceback for users
        if os.environ.get("KDX_DEBUG"):
            raise
        print(f"kdx: error: unexpected {type(err).__name__}: {err} "
              "(set KDX_DEBUG=1 to see where)", file=sys.stderr)
        return 70
