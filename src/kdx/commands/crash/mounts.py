"""``mount``: the mounted file systems, as crash lists them.

``-n PID|TASK`` lists another task's mount namespace. Arguments select lines the way
crash does: a line is shown when any of its fields (mount or embedded vfsmount address,
super block, type, device name, directory) equals an argument.
"""

from __future__ import annotations

import argparse

import drgn

from kdx.commands.crash.files import tasks_for_argument
from kdx.model.mounts import Mount, mount_namespace, mounts
from kdx.render.crash.mounts import render_mounts
from kdx.session.command import CommandError, CrashCommand, make_parser
from kdx.session.session import Session


def _parser() -> argparse.ArgumentParser:
    parser = make_parser("mount", "mounted file systems, as crash lists them")
    parser.add_argument("-n", dest="task", metavar="PID|TASK",
                        help="the mount namespace of this task")
    parser.add_argument("-f", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("-i", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("select", nargs="*", metavar="ARG",
                        help="mount, vfsmount or super block address, device or "
                        "directory: show only matching mounts")
    return parser


def _matches(prog: drgn.Program, entry: Mount, word: str) -> bool:
    """crash compares every field of the printed line with the word; a hexadecimal word
    also names the vfsmount embedded in the mount."""
    if word in (entry.type, entry.devname, entry.dirname):
        return True
    text = word[2:] if word.lower().startswith("0x") else word
    try:
        value = int(text, 16)
    except ValueError:
        return False
    offset = drgn.offsetof(prog.type("struct mount"), "mnt")
    return value in (entry.mount, entry.superblock, entry.mount + offset)


def _mount(session: Session, args: argparse.Namespace) -> None:
    if args.f or args.i:
        raise CommandError("-f and -i need super_block.s_files/s_dirty, "
                           "which this kernel does not have")
    prog = session.prog
    namespace = None
    if args.task is not None:
        _form, tasks = tasks_for_argument(session, args.task)
        namespace = mount_namespace(tasks[0])
    records = session.cached(f"mounts-{namespace.value_() if namespace else 0}",
                             lambda: mounts(prog, namespace, session.warn))
    if args.select:
        records = [m for m in records if any(_matches(prog, m, w) for w in args.select)]
        if not records:
            session.emit("mount", [], lambda: "")
            return
    session.emit("mount", records, lambda: render_mounts(records))


COMMANDS = [
    CrashCommand("mount", "mounted file systems: mount, super block, type, device, "
                 "directory; -n PID", _parser, _mount),
]
