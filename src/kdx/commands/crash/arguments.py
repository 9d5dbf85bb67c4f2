"""The words crash commands take, read one way for every command.

crash reads a CPU list, a task word or an address the same way whichever command is
given it (tools.c make_cpumask, task.c str_to_context), and users rely on that: ``bt -c``,
``runq -c``, ``irq -c``, ``ps -C`` and ``ptov OFFSET:CPUS`` take the same CPU lists,
and ``bt``, ``files``, ``vm``, ``net``, ``ps`` and ``foreach`` the same task words. So
each kind of argument has one parser here, with one meaning and one error message, and
command modules import this module instead of each other. Crash's task order and CPU
set come from :mod:`kdx.model.tasks`; this module only turns words into them.

This is not a command module: it declares no command.
"""

from __future__ import annotations

import argparse
import re
from dataclasses import dataclass, field
from typing import Callable, Container, Sequence

import drgn
from drgn.helpers.linux.pid import find_task

from kdx.model.names import address_namer
from kdx.model.rawmemory import parse_address, symbol_or_hex
from kdx.model.symbols import SymbolTable
from kdx.model.tasks import TaskInfo, crash_cpus, idle_tasks, task_addresses, task_list
from kdx.session.command import CommandError
from kdx.session.session import Session

__all__ = [
    "STATES",
    "Selector",
    "TaskFilter",
    "add_display_options",
    "address_word",
    "cpu_list",
    "expression_address",
    "for_each_task_argument",
    "hex_word",
    "parse_cpu_spec",
    "parse_selectors",
    "parse_task_filter",
    "physical_width",
    "symbols",
    "task_chunk",
    "task_word",
    "tasks_for_argument",
    "tasks_of",
]

#: crash's task state selectors (foreach).
STATES = ("RU", "IN", "UN", "ST", "TR", "ZO", "DE", "SW", "WA", "PA", "ID", "NE")

#: Characters that make an unquoted command name a regular expression (the session's
#: shell-like parsing removes the quotes crash uses to mark one).
_REGEX_CHARS = re.compile(r"[*?\[\]^$+(){}|\\]")


# --- CPU lists ----------------------------------------------------------------------------------


def parse_cpu_spec(text: str, cpus: Sequence[int]) -> list[int]:
    """The CPUs of a crash CPU list (``1``, ``1,3-5``, ``a`` or ``all``, parts joined by
    commas), sorted and each once; ``cpus`` are the CPUs crash knows. Anything else, or
    a CPU outside ``cpus``, is crash's one error for every command."""
    known = set(cpus)
    chosen: set[int] = set()
    for part in text.split(","):
        if part in ("a", "all"):
            chosen.update(known)
            continue
        low, dash, high = part.partition("-")
        if not low.isdigit() or (dash and not high.isdigit()):
            raise CommandError(f"invalid cpu specification: {text}")
        span = range(int(low), int(high if dash else low) + 1)
        if not span or any(cpu not in known for cpu in span):
            raise CommandError(f"invalid cpu specification: {text}")
        chosen.update(span)
    return sorted(chosen)


def cpu_list(session: Session, text: str) -> list[int]:
    """``text`` read against the dump's CPUs (crash's CPU set, see ``crash_cpus``)."""
    return parse_cpu_spec(text, session.cached("crash-cpus",
                                               lambda: crash_cpus(session.prog)))


# --- the session's task table -------------------------------------------------------------------


def tasks_of(session: Session) -> list[TaskInfo]:
    """The session's task table in crash's order, built on first use; unreadable tasks
    are warned about once."""
    def build() -> list[TaskInfo]:
        warnings: list[str] = []
        tasks = task_list(session.prog, warnings)
        for warning in warnings:
            session.warn(warning)
        return tasks

    return session.cached("tasks", build)


def _task_address_set(session: Session) -> set[int]:
    """Every task_struct address of crash's table (idle tasks included), built once."""
    return session.cached("crash-task-addresses",
                          lambda: set(task_addresses(session.prog)))


class _LivePids:
    """The PIDs of a program, looked up one at a time (no table is built)."""

    def __init__(self, prog: drgn.Program) -> None:
        self.prog = prog

    def __contains__(self, pid: object) -> bool:
        return isinstance(pid, int) and (pid == 0 or bool(find_task(self.prog, pid)))


# --- task words ---------------------------------------------------------------------------------


def _hex_digits(word: str) -> str | None:
    digits = word[2:] if word[:2] in ("0x", "0X") else word
    if digits and all(c in "0123456789abcdefABCDEF" for c in digits):
        return digits
    return None


def task_word(word: str, pids: Container[int], tasks: Container[int]) -> tuple[str, int] | None:
    """crash's reading of a number that names a task (task.c str_to_context):
    ``("pid", n)`` or ``("task", address)``, or None when it names nothing.

    A decimal word is a PID; a hexadecimal one a task address, else a PID written in hex.
    When both readings name a task, only two PIDs are resolved (the decimal one wins);
    a PID and a task address together are ambiguous, as in crash.
    """
    readings: list[tuple[str, int]] = []
    decimal = int(word) if word.isdigit() else None
    digits = _hex_digits(word)
    hexadecimal = int(digits, 16) if digits is not None else None
    if decimal is not None:
        if decimal in pids:
            readings.append(("pid", decimal))
        if decimal in tasks:
            readings.append(("task", decimal))
    if hexadecimal is not None and hexadecimal != decimal:
        if hexadecimal in pids:
            readings.append(("pid", hexadecimal))
        if hexadecimal in tasks:
            readings.append(("task", hexadecimal))
    if len(readings) == 1:
        return readings[0]
    if len(readings) == 2 and all(kind == "pid" for kind, _ in readings):
        return readings[0]
    return None


def tasks_for_argument(session: Session, word: str) -> tuple[str, list[drgn.Object]]:
    """``("pid", tasks)`` or ``("task", [task])`` for one PID|TASK word.

    PID 0 names the idle task of every CPU, as in crash. Raises CommandError with crash's
    wording when the word is neither.
    """
    prog = session.prog
    found = task_word(word, _LivePids(prog), _task_address_set(session))
    if found is None:
        raise CommandError(f"invalid task or pid value: {word}")
    kind, value = found
    if kind == "task":
        return "task", [drgn.Object(prog, "struct task_struct *", value)]
    if value == 0:
        return "pid", idle_tasks(prog)
    return "pid", [find_task(prog, value)]


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


# --- task selectors (ps, set, foreach) ----------------------------------------------------------


@dataclass
class Selector:
    """One ps/set/foreach argument: a PID, a task address, a command name or a pattern."""

    kind: str  # "pid", "task", "comm", "regex"
    text: str
    value: int = 0
    pattern: re.Pattern | None = field(default=None, repr=False)

    def matches(self, task: TaskInfo) -> bool:
        if self.kind == "pid":
            return task.pid == self.value
        if self.kind == "task":
            return task.task == self.value
        if self.kind == "comm":
            return task.comm == self.text
        return bool(self.pattern and self.pattern.search(task.comm))


def parse_selectors(words: Sequence[str], tasks: Sequence[TaskInfo],
                    warn: Callable[[str], None]) -> list[Selector]:
    """Turn arguments into selectors the way crash reads them: numbers are PIDs or task
    addresses (``task_word``), ``\\name`` is a literal command name, ``'re'`` (or a name
    with regular expression characters) a POSIX-style pattern searched in command names."""
    pids = {t.pid for t in tasks}
    addresses = {t.task for t in tasks}
    selectors: list[Selector] = []
    for word in words:
        if _hex_digits(word) is not None:
            found = task_word(word, pids, addresses)
            if found is None:
                warn(f"invalid task or pid value: {word}")
            else:
                selectors.append(Selector(found[0], word, found[1]))
        elif word.startswith("\\"):
            selectors.append(Selector("comm", word[1:]))
        elif (len(word) > 1 and word[0] == word[-1] == "'") or _REGEX_CHARS.search(word):
            source = word[1:-1] if word[0] == word[-1] == "'" and len(word) > 1 else word
            try:
                selectors.append(Selector("regex", source, pattern=re.compile(source)))
            except re.error as err:
                raise CommandError(f"invalid regular expression: {source}: {err}") from err
        else:
            selectors.append(Selector("comm", word))
    return selectors


@dataclass
class TaskFilter:
    """What foreach's selectors ask for: filters every task must pass (``kernel``,
    ``user``, ``gleader``, ``active``, one state), then, if any were named, the tasks
    named."""

    kernel: bool = False
    user: bool = False
    gleader: bool = False
    active: bool = False
    state: str | None = None
    named: list[Selector] | None = None  # None: nothing named, every task that passes

    def passes(self, task: TaskInfo) -> bool:
        if self.active and not task.active:
            return False
        if self.user and task.kernel_thread:
            return False
        if self.gleader and task.pid != task.tgid:
            return False
        if self.kernel and not task.kernel_thread:
            return False
        if self.state is not None and not task.state.startswith(self.state):
            return False
        if self.named is not None:
            return any(s.matches(task) for s in self.named)
        return True

    def select(self, table: Sequence[TaskInfo]) -> list[TaskInfo]:
        """The tasks of ``table`` that pass, in table order."""
        return [t for t in table if self.passes(t)]


def parse_task_filter(words: list[str], table: list[TaskInfo],
                      warn: Callable[[str], None]) -> TaskFilter:
    """crash's reading of foreach's words before the verb."""
    sel = TaskFilter()
    for word in words:
        if word == "kernel":
            if sel.user:
                raise CommandError("user and kernel are mutually exclusive!")
            sel.kernel = True
        elif word in ("user", "gleader"):
            if sel.kernel:
                raise CommandError(f"{word} and kernel are mutually exclusive!")
            sel.user = True
            sel.gleader = sel.gleader or word == "gleader"
        elif word == "active":
            sel.active = True
        elif word in STATES or word == "\\DE":
            if sel.state is not None:
                raise CommandError("only one task state allowed")
            sel.state = word.lstrip("\\")
        else:
            sel.named = (sel.named or []) + _named(word, table, warn)
    return sel


def _named(word: str, table: list[TaskInfo], warn: Callable[[str], None]) -> list[Selector]:
    """A PID, task address, command name or pattern; a plain name no task has is
    crash's "unknown argument" (it still counts as a selector, so nothing else runs)."""
    found = parse_selectors([word], table, lambda _message: None)
    if found and found[0].kind == "comm":
        name = found[0].text[:15]  # crash compares TASK_COMM_LEN - 1 characters
        found = [Selector("comm", name)]
        if not any(t.comm == name for t in table):
            found = []
    if not found:
        warn(f'unknown argument: "{word}"')
    return found


# --- addresses ----------------------------------------------------------------------------------


def hex_word(text: str, what: str = "address") -> int:
    """A hexadecimal argument (``0x`` optional), as crash's htol reads it; ``what`` names
    it in the one error message."""
    digits = _hex_digits(text)
    if digits is None:
        raise CommandError(f"invalid {what}: {text}")
    return int(digits, 16)


def address_word(prog: drgn.Program, text: str) -> int:
    """A symbol's address, else a hexadecimal address (crash's reading of an address
    argument)."""
    address = symbol_or_hex(prog, text)
    if address is None:
        raise CommandError(f"invalid address: {text}")
    return address


def symbols(session: Session) -> SymbolTable:
    """crash's symbol table, what symbol words are looked up in: the address namer's
    index (kdx.model.names), built once per program."""
    return address_namer(session.prog, session.target.vmlinux).table


def expression_address(prog: drgn.Program, text: str) -> int:
    """An address written as crash's ``rd``/``dis`` take one: a symbol, a hexadecimal
    address, or symbols and numbers joined by ``+``/``-`` (the model's parse_address)."""
    try:
        return parse_address(prog, text)
    except LookupError as err:
        raise CommandError(str(err)) from err
    except ValueError as err:
        raise CommandError(f"invalid address: {text}") from err


def physical_width(prog: drgn.Program) -> int:
    """crash's physical-address column: as wide as the highest physical address in hex,
    and at least eight."""
    try:
        top = prog["max_pfn"].value_() * prog["PAGE_SIZE"].value_()
    except (KeyError, LookupError, drgn.FaultError):
        return 8
    return max(len(f"{top:x}"), 8)


# --- bt's display options, which foreach bt takes too -------------------------------------------


def add_display_options(parser: argparse.ArgumentParser) -> None:
    """The options that change how each task's trace is shown (bt and foreach bt)."""
    parser.add_argument("-f", dest="full", action="store_true",
                        help="show the stack words of each frame")
    parser.add_argument("-F", dest="symbolic", action="count", default=0,
                        help="like -f, words shown as symbols or [slab cache] (-FF: "
                             "[address:slab cache])")
    parser.add_argument("-R", dest="ref", metavar="SYMBOL|ADDR",
                        help="only traces that reference this symbol or text address")
    parser.add_argument("-o", dest="old", action="store_true",
                        help="crash's old x86_64 unwinder: kdx uses its one unwinder")
    parser.add_argument("-l", dest="lines", action="store_true",
                        help="show the source file and line of each frame")
    parser.add_argument("-s", dest="offsets", action="store_true",
                        help="show symbol offsets (function+offset)")
    radix = parser.add_mutually_exclusive_group()
    radix.add_argument("-x", dest="hex", action="store_true",
                       help="offsets in hexadecimal (with -s)")
    radix.add_argument("-d", dest="decimal", action="store_true",
                       help="offsets in decimal (with -s)")
    text = parser.add_mutually_exclusive_group()
    text.add_argument("-t", dest="text", action="store_true",
                      help="list the text symbols on the stack from the trace's start")
    text.add_argument("-T", dest="text_all", action="store_true",
                      help="list the text symbols on the whole task stack")
    text.add_argument("-e", dest="eframes", action="store_true",
                      help="search the task stack for exception frames")
    text.add_argument("-r", dest="raw", action="store_true",
                      help="dump the whole kernel stack, words named as rd -s names them")
