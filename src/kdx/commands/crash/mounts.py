"""``mount``: the mounted file systems, as crash lists them.

``-n PID|TASK`` lists another task's mount namespace. Arguments select lines the way
crash does: a line is shown when any of its fields (mount or embedded vfsmount address,
super block, type, device name, directory) equals an argument. ``-f`` adds each file
system's open files and ``-i`` its dirty inodes; crash 8.0.6 refuses both on kernels
without ``super_block.s_files``/``s_dirty`` (3.13 and 2.6.32 on), kdx finds them in the
tasks' descriptor tables and the super block's inode list.
"""

from __future__ import annotations

import argparse

import drgn

from kdx.commands.crash.arguments import tasks_for_argument
from kdx.model.mounts import (
    Mount,
    MountDetail,
    dirty_inodes,
    mount_namespace,
    mounts,
    open_files_by_superblock,
)
from kdx.model.reading import READ_ERRORS
from kdx.render.crash.mounts import render_details, render_mounts
from kdx.session.command import crash_command, make_parser
from kdx.session.session import Session


def _parser() -> argparse.ArgumentParser:
    parser = make_parser("mount", "mounted file systems, as crash lists them")
    parser.add_argument("-n", dest="task", metavar="PID|TASK",
                        help="the mount namespace of this task")
    parser.add_argument("-f", action="store_true",
                        help="the open files of each file system")
    parser.add_argument("-i", action="store_true",
                        help="the dirty inodes of each file system")
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




def _details(session: Session, records: list[Mount], args: argparse.Namespace) -> None:
    prog = session.prog
    files = session.cached("mount-open-files",
                           lambda: open_files_by_superblock(prog, session.warn)) \
        if args.f else {}
    details = []
    for record in records:
        inodes = None
        if args.i:
            try:
                inodes = dirty_inodes(prog, record.superblock)
            except READ_ERRORS as err:
                session.warn(f"cannot read the inodes of super block "
                             f"{record.superblock:x}: {err}")
                inodes = ()
        details.append(MountDetail(
            record, tuple(files.get(record.superblock, ())) if args.f else None, inodes))
    session.emit("mount", details, lambda: render_details(details))


@crash_command("mount", "mounted file systems: mount, super block, type, device, directory; -n "
               "PID; -f open files; -i dirty inodes", parser=_parser)
def _mount(session: Session, args: argparse.Namespace) -> None:
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
    if args.f or args.i:
        _details(session, records, args)
        return
    session.emit("mount", records, lambda: render_mounts(records))
