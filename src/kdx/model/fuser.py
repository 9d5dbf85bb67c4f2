"""The tasks using a file, as crash's ``fuser`` lists them: who holds this file (as
root, cwd, an open descriptor or a mapping), the question behind a filesystem that will
not unmount. Built on the task file and VMA readers of ``kdx.model.files`` and
``kdx.model.vm``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Iterable

import drgn

from kdx.model.files import TaskId, task_files
from kdx.model.reading import READ_ERRORS

__all__ = ["FileUser", "file_users"]


@dataclass(frozen=True)
class FileUser:
    """A task using the file, and how: root, cwd, fd and/or mmap."""

    task: TaskId
    uses: tuple[str, ...]


def _same_path(path: str | None, wanted: str) -> bool:
    """Paths compared without a trailing ``/``: crash names a mount's root ``/tmp/``."""
    if not path:
        return False
    return (path.rstrip("/") or "/") == (wanted.rstrip("/") or "/")


def file_users(tasks: Iterable[drgn.Object], wanted: str,
               warn: Callable[[str], None] | None = None) -> list[FileUser]:
    """The tasks whose root, cwd, open files or mappings are ``wanted`` (a path, or a
    hexadecimal inode or dentry address)."""
    from kdx.model.vm import task_vm

    try:
        address = int(wanted, 16) if not wanted.startswith("/") else None
    except ValueError:
        address = None
    found = []
    for task in tasks:
        uses = []
        try:
            files = task_files(task)
        except READ_ERRORS as err:
            if warn is not None:
                warn(f"PID {task.pid.value_()}: cannot read its files: {err}")
            continue
        if address is None:
            if _same_path(files.root, wanted):
                uses.append("root")
            if _same_path(files.cwd, wanted):
                uses.append("cwd")
            if any(_same_path(f.path, wanted) for f in files.files):
                uses.append("fd")
        elif any(address in (f.inode, f.dentry) for f in files.files):
            uses.append("fd")
        if address is None and task.mm:
            try:
                if any(_same_path(v.file, wanted) for v in task_vm(task).vmas):
                    uses.append("mmap")
            except READ_ERRORS as err:
                if warn is not None:
                    warn(f"PID {task.pid.value_()}: cannot read its mappings: {err}")
        if uses:
            found.append(FileUser(files.task, tuple(uses)))
    return found
