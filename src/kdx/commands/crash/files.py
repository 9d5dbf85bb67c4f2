"""``files``: the open files of a task, and ``files -d DENTRY``.

Like crash, ``files`` takes PIDs or task addresses (the current task when none is given),
prints the task header, the root and working directory, then one line per open
descriptor. ``tasks_for_argument`` is how every per-task command here turns a word into
tasks, following crash's rule: a decimal word naming a PID first, then a hexadecimal word
naming a task_struct.
"""

from __future__ import annotations

import argparse
from typing import Callable

import drgn
from drgn.helpers.linux.cpumask import for_each_possible_cpu
from drgn.helpers.linux.pid import find_task, for_each_task
from drgn.helpers.linux.sched import idle_task

from kdx.model.files import dentry_info, task_files
from kdx.render.crash.files import render_dentry, render_files
from kdx.session.command import CommandError, CrashCommand, make_parser
from kdx.session.session import Session


def _idle_tasks(prog: drgn.Program) -> list[drgn.Object]:
    tasks = []
    for cpu in for_each_possible_cpu(prog):
        try:
            task = idle_task(prog, cpu)
            if task.value_():
                tasks.append(task)
        except (drgn.FaultError, LookupError):
            continue
    return tasks


def _task_addresses(session: Session) -> set[int]:
    """Every task_struct address in the dump (idle tasks included), built once."""
    def build() -> set[int]:
        prog = session.prog
        found = {t.value_() for t in for_each_task(prog)}
        found.update(t.value_() for t in _idle_tasks(prog))
        return found
    return session.cached("crash-task-addresses", build)


def tasks_for_argument(session: Session, word: str) -> tuple[str, list[drgn.Object]]:
    """``("pid", tasks)`` or ``("task", [task])`` for one PID|TASK word.

    PID 0 names the idle task of every CPU, as in crash. Raises CommandError with crash's
    wording when the word is neither.
    """
    prog = session.prog
    if word.isdigit():
        pid = int(word)
        if pid == 0:
            return "pid", _idle_tasks(prog)
        task = find_task(prog, pid)
        if task:
            return "pid", [task]
    try:
        address = int(word, 16)
    except ValueError:
        address = None
    if address is not None and address in _task_addresses(session):
        return "task", [drgn.Object(prog, "struct task_struct *", address)]
    raise CommandError(f"invalid task or pid value: {word}")


def for_each_task_argument(session: Session, words: list[str],
                           visit: Callable[[str, drgn.Object], None]) -> None:
    """Call ``visit(form, task)`` for the tasks the words name (the current task when
    there are none). A bad word costs a warning, unless no word was usable."""
    if not words:
        visit("current", session.current_task)
        return
    errors = []
    visited = 0
    for word in words:
        try:
            form, tasks = tasks_for_argument(session, word)
        except CommandError as err:
            errors.append(str(err))
            continue
        for task in tasks:
            visit(form, task)
            visited += 1
    if errors and not visited:
        raise CommandError(errors[0])
    for message in errors:
        session.warn(message)


def task_chunk(text: str, form: str, *, first: bool, pid_blank: bool = True) -> str:
    """One task's output as crash spaces it among others: an empty line before every
    task but the first and, when ``pid_blank``, after each task named by PID."""
    chunk = ("" if first else "\n") + text + "\n"
    if form == "pid" and pid_blank:
        chunk += "\n"
    return chunk


def _parser() -> argparse.ArgumentParser:
    parser = make_parser("files", "the open files of tasks, as crash prints them")
    parser.add_argument("-d", dest="dentry", metavar="DENTRY",
                        help="show one dentry (hexadecimal address): inode, super block, "
                        "type and path")
    parser.add_argument("tasks", nargs="*", metavar="PID|TASK",
                        help="PIDs or task addresses (default: the current task)")
    return parser


def _address(word: str) -> int:
    try:
        return int(word, 16)
    except ValueError as err:
        raise CommandError(f"not a hexadecimal address: {word}") from err


def _files(session: Session, args: argparse.Namespace) -> None:
    if args.dentry is not None:
        info = dentry_info(session.prog, _address(args.dentry))
        session.emit("files-dentry", info, lambda: render_dentry(info))
        return
    records = []
    texts = []

    def visit(form: str, task: drgn.Object) -> None:
        record = task_files(task, session.warn)
        records.append(record)
        texts.append(task_chunk(render_files(record), form, first=not texts))

    for_each_task_argument(session, args.tasks, visit)
    session.emit("files", records, lambda: "".join(texts))


COMMANDS = [
    CrashCommand("files", "open files of a task: root, cwd, descriptors; -d DENTRY",
                 _parser, _files),
]
