"""``kdx VMCORE [VMLINUX] [MODULE ...]``: the crash-style session, interactive or scripted.

Interactive use prints the ``sys`` banner and a ``kdx>`` prompt with history, as crash
does; ``-c CMD`` and ``-i FILE`` run commands and exit, and piped standard input is read
as a script, so the same session serves people and shell scripts.
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
from pathlib import Path

from kdx.commands.common import add_target_arguments, open_target_from_args, warn
from kdx.errors import KdxError
from kdx.session.session import Session

PROMPT = "kdx> "
QUIT = {"q", "quit", "exit"}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="kdx", description="Open a crash dump in a crash-style session: type crash "
        "commands (sys, bt, ps, log, ...) at the prompt, or give them with -c/-i.")
    add_target_arguments(parser)
    parser.add_argument("-c", "--command", action="append", default=[], metavar="CMD",
                        help="run CMD and exit (repeatable, in order)")
    parser.add_argument("-i", "--input", type=Path, metavar="FILE",
                        help="run the commands in FILE, one per line, and exit")
    parser.add_argument("--json", action="store_true", help="commands print JSON")
    parser.add_argument("--no-rc", action="store_true", help="skip the start-up files "
                        "(~/.kdxrc, ./.kdxrc and the aliases of ~/.crashrc, ./.crashrc)")
    return parser


def main(argv: list[str]) -> int:
    args = build_parser().parse_args(argv)
    script = _script_lines(args)
    target = open_target_from_args(args)
    for message in target.warnings:
        warn(message)
    session = Session(target, json=args.json)
    if not args.no_rc:
        from kdx.session.rcfiles import run_rc_files

        run_rc_files(session, Path.home(), Path.cwd())
    if script is not None:
        return _run_script(session, script)
    if not sys.stdin.isatty():
        return _run_script(session, sys.stdin.read().splitlines())
    return _interactive(session)


def _script_lines(args: argparse.Namespace) -> list[str] | None:
    lines = list(args.command)
    if args.input is not None:
        try:
            lines += args.input.read_text().splitlines()
        except OSError as err:
            raise KdxError(f"cannot read {args.input}: {err.strerror}") from err
    return lines if lines or args.input is not None else None


def _run_script(session: Session, lines: list[str]) -> int:
    ok = True
    for line in lines:
        if line.strip() in QUIT:
            break
        ok = session.execute(line) and ok
    return 0 if ok else 1


def _history_file() -> Path:
    base = os.environ.get("XDG_STATE_HOME") or str(Path.home() / ".local" / "state")
    return Path(base) / "kdx" / "history"


def _interactive(session: Session) -> int:
    # Ctrl-C stops the running command, as in crash, however kdx was started: a shell
    # script or a job runner that starts programs in the background has them inherit
    # SIGINT ignored, and Python then never raises KeyboardInterrupt.
    signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        import readline
    except ImportError:  # pragma: no cover - readline is missing on some builds
        readline = None  # type: ignore[assignment]
    history = _history_file()
    if readline is not None:
        from kdx.session.completion import install

        install(session)
        history.parent.mkdir(parents=True, exist_ok=True)
        if history.exists():
            readline.read_history_file(str(history))
    session.execute("sys")
    print()
    try:
        while True:
            try:
                line = input("" if session.settings.silent else PROMPT)
            except KeyboardInterrupt:
                print()
                continue
            except EOFError:
                print()
                break
            if line.strip() in QUIT:
                break
            session.execute(line)
    finally:
        if readline is not None:
            readline.set_history_length(2000)
            readline.write_history_file(str(history))
    return 0
