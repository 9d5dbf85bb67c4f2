"""``foreach``: run a per-task command on every task, or on the tasks selected.

As in crash: ``foreach [PID|TASK|NAME|'REGEX'|kernel|user|gleader|active|STATE ...] VERB
[options]``. The selectors combine as crash combines them (task.c foreach): ``kernel``,
``user``, ``gleader``, ``active`` and one state (RU IN UN ST ZO TR DE SW WA PA ID NE)
filter every task, and the PIDs, task addresses, names and patterns, if any, pick among
what passes (any of them). Tasks come in crash's task table order, each under crash's
task header. A name that matches no task is reported as crash reports it and selects
nothing.

The verbs are crash's: ``bt``, ``vm``, ``task``, ``files`` and ``set`` run here; ``sig``,
``net``, ``ps`` and ``vtop`` hand the selected tasks to the session's own commands. Each
verb is a (parser, runner) pair in ``VERBS``; its options are parsed before any task is
selected, so a bad option costs one error line and nothing else.
"""

from __future__ import annotations

import argparse
import io
import shlex
from dataclasses import dataclass
from typing import Callable

import drgn

from kdx.commands.crash.arguments import (
    STATES,
    add_display_options,
    parse_task_filter,
    physical_width,
    tasks_of,
)
from kdx.model.tasks import TaskInfo
from kdx.render.crash.ps import info_header
from kdx.session.command import CommandError, CommandParser, crash_command, make_parser
from kdx.session.session import Session

#: Every verb crash's foreach knows (its "keywords"); those not in VERBS are refused.
CRASH_VERBS = ("bt", "vm", "task", "files", "net", "set", "sig", "vtop", "ps")
#: foreach options that take a value (crash reads them wherever they stand).
_VALUED_OPTIONS = ("-R",)


@dataclass(frozen=True)
class Verb:
    parser: Callable[[], argparse.ArgumentParser | _Passthrough]
    run: Callable[[Session, list[TaskInfo], argparse.Namespace], None]


def _task_object(session: Session, info: TaskInfo) -> drgn.Object:
    return drgn.Object(session.prog, "struct task_struct *", info.task)


# --- bt -------------------------------------------------------------------------------------


def _bt_parser() -> argparse.ArgumentParser:
    parser = make_parser("foreach bt", "backtrace of each selected task")
    add_display_options(parser)
    parser.add_argument("-g", dest="group", action="store_true", help=argparse.SUPPRESS)
    return parser


def _bt(session: Session, tasks: list[TaskInfo], args: argparse.Namespace) -> None:
    if args.group:
        raise CommandError("bt -g option is not supported when issued from foreach")
    bt = session.commands["bt"]
    assert bt.for_tasks is not None
    bt.for_tasks(session, [_task_object(session, t) for t in tasks], args)


# --- task -----------------------------------------------------------------------------------


def _task_parser() -> argparse.ArgumentParser:
    parser = make_parser("foreach task", "the task_struct of each selected task")
    parser.add_argument("-R", action="append", default=[], metavar="MEMBER[,MEMBER...]",
                        help="only these members (no foreach header: task prints its own)")
    base = parser.add_mutually_exclusive_group()
    base.add_argument("-x", action="store_true", help="integers in hexadecimal")
    base.add_argument("-d", action="store_true", help="integers in decimal")
    return parser


def _task(session: Session, tasks: list[TaskInfo], args: argparse.Namespace) -> None:
    """crash's ``task`` per task, formatted as its gdb prints structures; with ``-R``
    task prints its own header and foreach none."""
    from kdx.model.values import session_reader, task_values
    from kdx.render.crash.data import task_values_text

    reader = session_reader(session.prog, session.cached)
    radix = 16 if args.x else 10 if args.d else session.settings.radix
    members = [m for spec in args.R for m in spec.split(",") if m]
    records = [task_values(reader, info, members, thread_info=True) for info in tasks]

    def text() -> str:
        texts = []
        for info, record in zip(tasks, records):
            body = task_values_text(record, radix)
            if record.members:
                texts.append(f"{info_header(info)}\n{body}\n\n")
                continue
            # crash's foreach header comes after a blank line, and task ends with one
            texts.append(f"{chr(10) if texts else ''}{info_header(info)}\n{body}\n\n")
        return "".join(texts)

    session.emit("foreach-task", records, text)


# --- files, vm, set -------------------------------------------------------------------------


def _files_parser() -> argparse.ArgumentParser:
    parser = make_parser("foreach files", "the open files of each selected task")
    parser.add_argument("-c", dest="nrpages", action="store_true",
                        help="each file's inode, address_space and cached page count")
    parser.add_argument("-R", dest="reference", metavar="REF",
                        help="only the files that reference REF (as files -R)")
    parser.add_argument("-p", dest="inode", action="store_true", help=argparse.SUPPRESS)
    return parser


def _files(session: Session, tasks: list[TaskInfo], args: argparse.Namespace) -> None:
    from kdx.model.files import task_files
    from kdx.render.crash.files import render_files

    if args.inode:
        raise CommandError("files command does not support -p option")
    if args.nrpages or args.reference is not None:
        # files itself prints -c and -R per task just as foreach shows them: each
        # task's header with its own block, nothing for a task that references nothing
        words = ["-c"] * args.nrpages
        if args.reference is not None:
            words += ["-R", args.reference]
        if tasks:
            _run_command(session, ["files", *words, *_addresses(tasks)])
        return
    records = [task_files(_task_object(session, t), session.warn) for t in tasks]
    session.emit("foreach-files", records, lambda: "\n\n".join(
        f"{info_header(t)}\n{render_files(r, header=False)}"
        for t, r in zip(tasks, records)))


def _vm_parser() -> argparse.ArgumentParser:
    parser = make_parser("foreach vm", "the virtual memory of each selected task")
    mode = parser.add_mutually_exclusive_group()
    mode.add_argument("-p", action="store_true", dest="physical",
                      help="translate every page of every VMA")
    mode.add_argument("-m", action="store_true", dest="mm_struct",
                      help="print each task's mm_struct")
    mode.add_argument("-v", action="store_true", dest="vma_structs",
                      help="print each task's vm_area_structs")
    parser.add_argument("-R", dest="reference", metavar="REF",
                        help="only what references REF (as vm -R)")
    radix = parser.add_mutually_exclusive_group()
    radix.add_argument("-x", action="store_const", const=16, dest="radix")
    radix.add_argument("-d", action="store_const", const=10, dest="radix")
    return parser


def _vm_delegated(session: Session, tasks: list[TaskInfo], args: argparse.Namespace
                  ) -> bool:
    """``-v`` and ``-R`` are the vm command's own, and vm prints them per task exactly
    as foreach shows them; True when they were run that way."""
    if args.reference is not None:
        for flag, wanted in (("m", args.mm_struct), ("v", args.vma_structs)):
            if wanted:
                raise CommandError(f"vm: -{flag} is not applicable to the -R option")
        if args.physical:
            raise CommandError("kdx's vm does not combine -p with -R")
        words = ["-R", args.reference]
    elif args.vma_structs:
        words = ["-v"] + ([f"-{'x' if args.radix == 16 else 'd'}"] if args.radix else [])
    else:
        return False
    if tasks:
        _run_command(session, ["vm", *words, *_addresses(tasks)])
    return True


def _vm(session: Session, tasks: list[TaskInfo], args: argparse.Namespace) -> None:
    if _vm_delegated(session, tasks, args):
        return
    from kdx.model.answers import TaskVmPages
    from kdx.model.values import TaskValues, session_reader
    from kdx.model.vm import task_vm, vma_pages
    from kdx.render.crash.data import task_values_text
    from kdx.render.crash.vm import render_vm, render_vm_pages

    prog = session.prog
    reader = session_reader(prog, session.cached)
    records: list[object] = []
    texts: list[str] = []
    for info in tasks:
        task = _task_object(session, info)
        vm = task_vm(task)
        if args.mm_struct:
            mm = (reader.read(drgn.Object(prog, "struct mm_struct", address=vm.mm)),) \
                if vm.mm else ()
            record = TaskValues(info.pid, info.task, info.cpu, info.comm, values=mm)
            text = info_header(info)
            if mm:
                text += "\n" + task_values_text(record, args.radix or 10)
            records.append(record)
        elif args.physical:
            areas = [vma_pages(task, v, vm.page_size) for v in vm.vmas] if vm.mm else []
            text = render_vm_pages(vm, areas, physical_width(prog))
            records.append(TaskVmPages(vm, areas))
        else:
            text = render_vm(vm)
            records.append(vm)
        texts.append(text)
    session.emit("foreach-vm", records, lambda: "\n\n".join(texts))


def _set_parser() -> argparse.ArgumentParser:
    return make_parser("foreach set", "the context block of each selected task")


def _set(session: Session, tasks: list[TaskInfo], args: argparse.Namespace) -> None:
    from kdx.model.system import system_info
    from kdx.model.tasks import panic_task_address, task_context
    from kdx.render.crash.ps import render_context

    table = tasks_of(session)
    panic = panic_task_address(session.prog)
    panic_state = None
    if any(t.task == panic for t in tasks):
        panic_state = session.cached("sys", lambda: system_info(session.target)).state
    contexts = [task_context(session.prog, t, table, panic_state) for t in tasks]
    session.emit("foreach-set", contexts, lambda: "\n".join(
        f"{info_header(t)}\n{render_context(c)}" for t, c in zip(tasks, contexts)))


# --- sig, net, ps, vtop: the session's own commands, given the selected tasks ---------------


class _Passthrough:
    """A verb parser that keeps every word: these verbs' options are the command's own,
    and its parser checks them when it runs."""

    def parse_args(self, words: list[str]) -> argparse.Namespace:
        return argparse.Namespace(words=list(words))


def _passthrough_parser(_verb: str) -> Callable[[], _Passthrough]:
    return _Passthrough


def _run_command(session: Session, words: list[str]) -> None:
    """Check the command's options first, so a bad one is foreach's one error line; what
    goes wrong later the command reports itself."""
    command = session.commands.get(words[0])
    assert command is not None, words[0]
    command.parser().parse_args(words[1:])
    session.execute(shlex.join(words))


def _addresses(tasks: list[TaskInfo]) -> list[str]:
    return [f"{t.task:x}" for t in tasks]


def _sig(session: Session, tasks: list[TaskInfo], args: argparse.Namespace) -> None:
    flags = "".join(w[1:] for w in args.words if w.startswith("-") and w[1:].isalpha())
    if "l" in flags or "s" in flags:
        raise CommandError("sig: -l and -s options are not applicable")
    if "g" in flags:  # crash's foreach shows each group once, from its leader
        tasks = [t for t in tasks if t.pid == t.tgid]
    if not tasks:
        return
    if session.json:
        _run_command(session, ["sig", *args.words, *_addresses(tasks)])
        return
    # sig prints each task's header and a blank line after each; foreach has none last
    saved, session.out = session.out, io.StringIO()
    try:
        _run_command(session, ["sig", *args.words, *_addresses(tasks)])
    finally:
        text, session.out = session.out.getvalue(), saved
    session.write(text.rstrip("\n") + "\n")


def _ps(session: Session, tasks: list[TaskInfo], args: argparse.Namespace) -> None:
    if tasks:  # one table, as crash prints it
        _run_command(session, ["ps", *args.words, *_addresses(tasks)])


def _net(session: Session, tasks: list[TaskInfo], args: argparse.Namespace) -> None:
    words = list(args.words)
    if not any(w.startswith("-") and ("s" in w or "S" in w) for w in words):
        session.warn("net command requires -s or -S option")  # and crash goes on with -s
        words.insert(0, "-s")
    if tasks:
        _run_command(session, ["net", *words, *_addresses(tasks)])


def _vtop(session: Session, tasks: list[TaskInfo], args: argparse.Namespace) -> None:
    if not any(not w.startswith("-") for w in args.words):
        raise CommandError("foreach vtop needs an address")
    for i, task in enumerate(tasks):
        session.write(("\n" if i else "") + info_header(task) + "\n")
        _run_command(session, ["vtop", "-c", f"{task.task:x}", *args.words])


#: The verbs kdx runs, by name.
VERBS: dict[str, Verb] = {
    "bt": Verb(_bt_parser, _bt),
    "files": Verb(_files_parser, _files),
    "net": Verb(_passthrough_parser("net"), _net),
    "ps": Verb(_passthrough_parser("ps"), _ps),
    "set": Verb(_set_parser, _set),
    "sig": Verb(_passthrough_parser("sig"), _sig),
    "task": Verb(_task_parser, _task),
    "vm": Verb(_vm_parser, _vm),
    "vtop": Verb(_passthrough_parser("vtop"), _vtop),
}


# --- the command ------------------------------------------------------------------------------


class _WordsParser(CommandParser):
    """foreach's words go to foreach unparsed, options before the verb included (crash
    reads ``foreach -R pid 1 task`` as ``foreach 1 task -R pid``); only a lone ``-h``
    asks for help."""

    def parse_args(self, args=None, namespace=None):  # noqa: ANN001, ANN201
        words = list(args or [])
        if words in (["-h"], ["--help"]):
            return super().parse_args(words, namespace)
        return argparse.Namespace(words=words)


def _parser() -> argparse.ArgumentParser:
    parser = _WordsParser(prog="foreach", add_help=True,
                          description="run a command on every task, or on the tasks "
                                      "selected")
    parser.add_argument(
        "words", nargs=argparse.REMAINDER,
        metavar="[PID|TASK|NAME|'REGEX'|kernel|user|gleader|active|STATE ...] COMMAND "
                "[OPTIONS]",
        help=f"commands: {', '.join(sorted(VERBS))}; states: {' '.join(STATES)}")
    return parser


def split_words(words: list[str]) -> tuple[list[str], str, list[str]]:
    """(selectors, verb, the verb's options): options given before the verb go to the
    verb, as crash's getopt reads them anywhere."""
    verb_at = next((i for i, w in enumerate(words) if w in CRASH_VERBS), None)
    if verb_at is None:
        raise CommandError(f"no command given (kdx's foreach runs: {', '.join(sorted(VERBS))})")
    selectors: list[str] = []
    options: list[str] = []
    before = words[:verb_at]
    i = 0
    while i < len(before):
        word = before[i]
        if word.startswith("-") and len(word) > 1:
            options.append(word)
            if word in _VALUED_OPTIONS and i + 1 < len(before):
                options.append(before[i + 1])
                i += 1
        else:
            selectors.append(word)
        i += 1
    return selectors, words[verb_at], options + words[verb_at + 1:]


@crash_command("foreach", "run bt, task, files, vm, set, sig, net, ps or vtop on every task or "
               "those selected", parser=_parser)
def _foreach(session: Session, args: argparse.Namespace) -> None:
    selectors, verb_name, verb_words = split_words(args.words)
    verb = VERBS.get(verb_name)
    if verb is None:
        raise CommandError(f"foreach {verb_name} is not supported yet (kdx's foreach runs: "
                           f"{', '.join(sorted(VERBS))})")
    verb_args = verb.parser().parse_args(verb_words)
    table = tasks_of(session)
    tasks = parse_task_filter(selectors, table, session.warn).select(table)
    verb.run(session, tasks, verb_args)
