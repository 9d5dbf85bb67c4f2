"""``foreach``: run a per-task command on every task, or on the tasks named.

As in crash: ``foreach [PID|TASK|NAME|kernel|user|active ...] VERB [options]``. Tasks come
in crash's task table order (idle tasks by CPU, then by PID); a selector that names no
task is an error, as in crash. Each verb is a function in ``VERBS`` taking the session,
the tasks and the verb's own words, so other command families add theirs by adding an
entry (``foreach bt`` is here; crash also has ``files``, ``vm``, ``task``, ``sig``...).
"""

from __future__ import annotations

import argparse
from typing import Callable

import drgn
from drgn.helpers.linux.sched import cpu_curr, task_cpu

from kdx.commands.crash.bt import add_display_options, all_tasks, run_bt, task_from_word
from kdx.model.stack import READ_ERRORS
from kdx.session.command import CommandError, CrashCommand, make_parser
from kdx.session.session import Session
from kdx.textsafe import clean_bytes

Verb = Callable[[Session, "list[drgn.Object]", "list[str]"], None]


def _foreach_bt(session: Session, tasks: list[drgn.Object], words: list[str]) -> None:
    parser = make_parser("foreach bt", "backtrace of each selected task")
    add_display_options(parser)
    args = parser.parse_args(words)
    run_bt(session, tasks, args)


#: The commands foreach can run, by name.
VERBS: dict[str, Verb] = {"bt": _foreach_bt}


def _parser() -> argparse.ArgumentParser:
    parser = make_parser("foreach", "run a command on every task, or on the tasks named")
    parser.add_argument("words", nargs=argparse.REMAINDER,
                        metavar="[PID|TASK|NAME|kernel|user|active ...] COMMAND [OPTIONS]",
                        help=f"commands: {', '.join(sorted(VERBS))}")
    return parser


def _is_kernel_thread(task: drgn.Object) -> bool:
    try:
        return not task.mm
    except READ_ERRORS:
        return False


def _is_active(prog: drgn.Program, task: drgn.Object) -> bool:
    try:
        return cpu_curr(prog, task_cpu(task)).value_() == task.value_()
    except READ_ERRORS:
        return False


def _select(prog: drgn.Program, selectors: list[str]) -> list[drgn.Object]:
    """The tasks the selectors name, in task table order, each once."""
    tasks = all_tasks(prog)
    if not selectors:
        return tasks
    chosen: set[int] = set()
    for word in selectors:
        if word == "kernel":
            matched = [t for t in tasks if _is_kernel_thread(t)]
        elif word == "user":
            matched = [t for t in tasks if not _is_kernel_thread(t)]
        elif word == "active":
            matched = [t for t in tasks if _is_active(prog, t)]
        else:
            matched = _named(prog, tasks, word)
        chosen.update(t.value_() for t in matched)
    return [t for t in tasks if t.value_() in chosen]


def _named(prog: drgn.Program, tasks: list[drgn.Object], word: str) -> list[drgn.Object]:
    """A PID, a task address, or a command name (``\\`` before a name that looks like a
    number, as in crash)."""
    if word.startswith("\\"):
        name = word[1:]
    else:
        try:
            return task_from_word(prog, word)
        except CommandError:
            name = word
    matched = [t for t in tasks if clean_bytes(t.comm.string_()) == name]
    if not matched:
        raise CommandError(f"no task, PID or command named {word}")
    return matched


def _foreach(session: Session, args: argparse.Namespace) -> None:
    words = args.words
    verb_at = next((i for i, w in enumerate(words) if w in VERBS), None)
    if verb_at is None:
        raise CommandError(f"no command given (known: {', '.join(sorted(VERBS))})")
    tasks = _select(session.prog, words[:verb_at])
    VERBS[words[verb_at]](session, tasks, words[verb_at + 1:])


COMMANDS = [
    CrashCommand("foreach", "run a per-task command (bt) on every task or those named",
                 _parser, _foreach),
]
