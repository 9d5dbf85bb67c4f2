"""``fuser``: the tasks using a file named by path or inode/dentry address, as crash
prints them (kdx.model.fuser)."""

from __future__ import annotations

import argparse
import re

from kdx.model.answers import FileUsers
from kdx.model.fuser import file_users
from kdx.model.tasks import all_tasks
from kdx.render.crash.fuser import render_fuser
from kdx.session.command import CommandError, crash_command, make_parser
from kdx.session.session import Session

__all__: list[str] = []  # the commands register themselves through @crash_command


def _fuser_parser() -> argparse.ArgumentParser:
    parser = make_parser("fuser", "tasks using a file, as crash lists them")
    parser.add_argument("paths", nargs="+", metavar="PATH|INODE")
    return parser


@crash_command("fuser", "tasks using a file: root, cwd, fd, mmap", parser=_fuser_parser)
def _fuser(session: Session, args: argparse.Namespace) -> None:
    tasks = all_tasks(session.prog)
    records = []
    texts = []
    for wanted in args.paths:
        if not wanted.startswith("/") and not re.fullmatch(r"(0[xX])?[0-9a-fA-F]+", wanted):
            raise CommandError(f"invalid argument: {wanted}")
        users = file_users(tasks, wanted, session.warn)
        records.append(FileUsers(wanted, users))
        texts.append(render_fuser(users, wanted) + "\n")
    session.emit("fuser", records, lambda: "".join(texts))
