"""``ps``: the process status of the dump's tasks, with crash's options and selectors.

The task table is built once per session (``tasks_of``) and every form of ``ps`` is a
selection from it, in crash's order and by crash's rules (task.c cmd_ps, show_ps,
show_ps_data): selectors pick tasks in table order, ``-u``/``-k``/``-G``/``-y`` filter
them, and one of the exclusive options picks the view.
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass
from typing import Sequence

import drgn

from kdx.commands.crash.arguments import Selector, cpu_list, parse_selectors, tasks_of
from kdx.model.reading import READ_ERRORS
from kdx.model.task_answers import TaskChildren, TaskLastRun, TaskRlimits, TaskThreads
from kdx.model.tasks import (
    TaskInfo,
    kernel_stack_pointer,
    run_queue_clocks,
    task_args,
    task_rlimit_list,
    task_times,
)
from kdx.render.crash.ps import (
    kstack_column,
    render_args,
    render_children,
    render_last_run,
    render_parents,
    render_ps,
    render_rlimits,
    render_summary,
    render_threads,
    render_times,
)
from kdx.session.command import CommandError, crash_command, make_parser
from kdx.session.session import Session

#: crash's scheduling policy names for -y (ISO never reached mainline; EXT is 6.12's).
POLICIES = {"NORMAL": 0, "OTHER": 0, "FIFO": 1, "RR": 2, "BATCH": 3, "ISO": 4, "IDLE": 5,
            "DEADLINE": 6, "EXT": 7}

#: The views that exclude each other, by option letter.
_EXCLUSIVE = "atcpglmSrA"

def address_width(prog: drgn.Program) -> int:
    """crash's VADDR_PRLEN: hex digits of a kernel pointer."""
    return 16 if prog.platform.flags & drgn.PlatformFlags.IS_64_BIT else 8


# --- options --------------------------------------------------------------------------------------


def _ps_parser():
    parser = make_parser("ps", "display process status information, as crash's ps does")
    add = parser.add_argument
    add("-k", action="store_true", help="only kernel threads")
    add("-u", action="store_true", help="only user tasks")
    add("-G", action="store_true", help="only thread group leaders")
    add("-y", metavar="POLICY", help="only tasks of these scheduling policies "
        "(names or numbers, comma-separated: NORMAL, FIFO, RR, BATCH, IDLE, DEADLINE)")
    add("-s", action="store_true", help="show the kernel stack pointer instead of the task")
    add("-p", action="store_true", help="parental hierarchy")
    add("-c", action="store_true", help="children")
    add("-t", action="store_true", help="run time, start time, user and system time")
    add("-l", action="store_true", help="last-run timestamps, most recent first")
    add("-m", action="store_true", help="time since last run, most recent first")
    add("-C", metavar="CPUS", help="with -l or -m: per-CPU blocks (e.g. 0,2-3 or all)")
    add("-a", action="store_true", help="command line arguments and environment")
    add("-g", action="store_true", help="tasks by thread group")
    add("-r", action="store_true", help="resource limits")
    add("-S", action="store_true", help="number of tasks in each state")
    add("-A", action="store_true", help="only the active task of each CPU")
    add("-H", action="store_true", help="no header line")
    add("targets", nargs="*", metavar="pid|task|command",
        help="PIDs, task addresses, command names, \\name, or 'regex'")
    return parser


def _policies(text: str) -> set[int]:
    policies = set()
    for word in text.split(","):
        word = word.strip()
        if word.isdigit():
            policies.add(int(word))
        elif word.upper() in POLICIES:
            policies.add(POLICIES[word.upper()])
        else:
            raise CommandError(f"invalid scheduling policy: {word}")
    return policies


def _check(args: argparse.Namespace) -> None:
    views = [c for c in _EXCLUSIVE if getattr(args, c)]
    if len(views) > 1:
        raise CommandError("-a, -t, -c, -p, -g, -l, -m, -S, -r and -A flags are all "
                           "mutually-exclusive")
    if args.u and args.k:
        raise CommandError("-u and -k are mutually exclusive")
    if args.G and (args.l or args.m):
        raise CommandError(f"-G not supported with -{'l' if args.l else 'm'} option")
    if args.S and args.targets:
        raise CommandError("-S option takes no arguments")
    if args.S and (args.u or args.k or args.G):
        raise CommandError("-S option cannot be used with other options")
    if args.C and not (args.l or args.m):
        raise CommandError("-C option is only applicable with -l and -m")
    if args.C and args.targets:
        raise CommandError("-C option is not applicable with specified tasks")


# --- selection ------------------------------------------------------------------------------------


@dataclass
class _Selection:
    """The tasks a ps command line picks, in crash's order."""

    tasks: list[TaskInfo]
    table: list[TaskInfo]
    specified: bool  # tasks were named on the command line


def _passes(task: TaskInfo, args: argparse.Namespace, policies: set[int] | None) -> bool:
    if args.u and task.kernel_thread:
        return False
    if args.k and not task.kernel_thread:
        return False
    return policies is None or task.policy in policies


def _leader(task: TaskInfo, by_pid: dict[int, TaskInfo]) -> TaskInfo | None:
    return task if task.group_leader else by_pid.get(task.tgid)


def select(table: list[TaskInfo], args: argparse.Namespace,
           selectors: list[Selector], specified: bool | None = None) -> _Selection:
    """crash's show_ps loop: every task of the table (or each one a selector matches, once
    per matching selector), then the -u/-k/-y filters and -G's leader rule. ``specified``
    says tasks were named even if none of the names was valid (then nothing is shown)."""
    policies = _policies(args.y) if args.y else None
    specified = bool(selectors) if specified is None else specified
    if specified:
        leaders_only = args.G or args.g
        picked = [t for t in table for s in selectors if s.matches(t)
                  and not (s.kind in ("comm", "regex") and leaders_only and not t.group_leader)]
    else:
        picked = list(table)
    picked = [t for t in picked if _passes(t, args, policies)]
    if args.G:
        by_pid = {t.pid: t for t in table if t.pid}
        seen: set[int] = set()
        leaders = []
        for task in picked:
            leader = _leader(task, by_pid) if specified else (task if task.group_leader
                                                              else None)
            if leader is not None and leader.task not in seen:
                seen.add(leader.task)
                leaders.append(leader)
        picked = leaders
    return _Selection(picked, table, specified)


# --- the views ---------------------------------------------------------------------------------


@crash_command("ps", "process status: every task, or those named", parser=_ps_parser)
def _ps(session: Session, args: argparse.Namespace) -> None:
    _check(args)
    table = tasks_of(session)
    if args.l or args.m:
        table = sorted(table, key=lambda t: t.last_run or 0, reverse=True)
    selectors = parse_selectors(args.targets, table, session.warn)
    selection = select(table, args, selectors, bool(args.targets))
    for letter, view in _VIEWS:
        if getattr(args, letter):
            view(session, args, selection)
            return
    _table(session, args, selection)


def _table(session: Session, args: argparse.Namespace, selection: _Selection) -> None:
    tasks = selection.tasks
    if args.A and not selection.specified:
        tasks = [t for t in tasks if t.active]
    width = address_width(session.prog)
    pointers = None
    if args.s:
        pointers = {t.task: kstack_column(kernel_stack_pointer(session.prog, t), width)
                    for t in tasks}
    session.emit("ps", tasks, lambda: render_ps(tasks, header=not args.H, pointers=pointers,
                                                width=width))


def _summary(session: Session, args: argparse.Namespace, selection: _Selection) -> None:
    counts: dict[str, int] = {}
    for task in selection.table:
        counts[task.state] = counts.get(task.state, 0) + 1
    session.emit("ps-summary", counts, lambda: render_summary(counts))


def _by_address(table: Sequence[TaskInfo]) -> dict[int, TaskInfo]:
    return {t.task: t for t in table}


def _ancestry(session: Session, task: TaskInfo, by_address: dict[int, TaskInfo]) -> list:
    """The task's parents up to the one that is its own parent (PID 0), oldest first;
    parents missing from the table are skipped, as crash skips them."""
    chain, current = [task], task.task
    for _ in range(len(by_address) + 1):
        info = by_address.get(current)
        if info is not None:
            parent = info.parent
        else:
            try:
                parent = drgn.Object(session.prog, "struct task_struct *",
                                     current).parent.value_()
            except READ_ERRORS:
                break
        if parent == current or not parent:
            break
        current = parent
        if parent in by_address:
            chain.append(by_address[parent])
    return list(reversed(chain))


def _parents(session: Session, args: argparse.Namespace, selection: _Selection) -> None:
    by_address = _by_address(selection.table)
    chains = [_ancestry(session, t, by_address) for t in selection.tasks]
    session.emit("ps-parents", chains, lambda: render_parents(chains))


def _children(session: Session, args: argparse.Namespace, selection: _Selection) -> None:
    children: dict[int, list[TaskInfo]] = {}
    for task in selection.table:
        if task.parent != task.task:
            children.setdefault(task.parent, []).append(task)
    groups = [(t, children.get(t.task, [])) for t in selection.tasks]
    session.emit("ps-children", [TaskChildren(t, c) for t, c in groups],
                 lambda: render_children(groups))


def _threads(session: Session, args: argparse.Namespace, selection: _Selection) -> None:
    """crash's show_tgid_list: each leader (named tasks map to theirs) and its threads;
    the idle tasks, which share TGID 0, are listed once under the first."""
    table = selection.table
    by_pid = {t.pid: t for t in table if t.pid}
    members: dict[int, list[TaskInfo]] = {}
    for task in table:
        members.setdefault(task.tgid, []).append(task)
    groups, idle_shown = [], False
    for task in selection.tasks:
        leader = _leader(task, by_pid) if selection.specified else (
            task if task.group_leader else None)
        if leader is None or (leader.pid == 0 and idle_shown):
            continue
        threads = [t for t in members.get(leader.tgid, []) if t.task != leader.task]
        idle_shown = idle_shown or any(t.pid == 0 for t in threads)
        groups.append((leader, threads))
    session.emit("ps-threads", [TaskThreads(t, m) for t, m in groups],
                 lambda: render_threads(groups))


def _uptime(session: Session) -> float | None:
    from kdx.model.system import system_info

    info = session.cached("sys", lambda: system_info(session.target))
    return info.uptime_seconds


def _times(session: Session, args: argparse.Namespace, selection: _Selection) -> None:
    """crash lists all tasks by start time, oldest first; named tasks in table order."""
    uptime = _uptime(session)
    tasks = selection.tasks
    if not selection.specified:
        tasks = sorted(tasks, key=lambda t: t.start_time or 0)
    rows = [task_times(t, uptime) for t in tasks]
    by_address = _by_address(selection.table)
    session.emit("ps-times", rows, lambda: render_times(rows, by_address))


def _nanoseconds(value: int) -> str:
    """crash's translate_nanoseconds: ``D HH:MM:SS.mmm``."""
    ms = value // 1_000_000
    seconds, ms = divmod(ms, 1000)
    minutes, seconds = divmod(seconds, 60)
    hours, minutes = divmod(minutes, 60)
    days, hours = divmod(hours, 24)
    return f"{days} {hours:02d}:{minutes:02d}:{seconds:02d}.{ms:03d}"


def _last_run(session: Session, args: argparse.Namespace, selection: _Selection) -> None:
    """-l: the timestamps, right-aligned to the most recent of the whole table; -m: the
    time since, against the CPU's runqueue clock (padded per CPU only in -C blocks and for
    named tasks, as crash does)."""
    tasks = selection.tasks
    clocks = run_queue_clocks(session.prog) if args.m else {}

    def stamp(task: TaskInfo, pad: bool) -> str:
        if args.l:
            width = len(str(selection.table[0].last_run or 0)) if selection.table else 0
            return f"{task.last_run or 0:>{width}}"
        clock = clocks.get(task.cpu, 0)
        text = _nanoseconds(max(clock - (task.last_run or 0), 0))
        if pad:
            days = len(_nanoseconds(clock).split(" ")[0])
            text = " " * max(days - len(text.split(" ")[0]), 0) + text
        return text

    by_cpu = None
    if args.C:
        cpus = cpu_list(session, args.C)
        by_cpu = {cpu: [(stamp(t, True), t) for t in tasks if t.cpu == cpu] for cpu in cpus}
    rows = [(stamp(t, selection.specified), t) for t in tasks]
    record = [TaskLastRun(t, t.last_run,
                          max(clocks.get(t.cpu, 0) - (t.last_run or 0), 0) if args.m
                          else None) for t in tasks]
    session.emit("ps-last-run", record, lambda: render_last_run(rows, by_cpu))


def _arguments(session: Session, args: argparse.Namespace, selection: _Selection) -> None:
    rows = [(t, task_args(session.prog, t)) for t in selection.tasks]
    session.emit("ps-args", [a for _, a in rows],
                 lambda: "".join(render_args(t, a) for t, a in rows))


def _rlimits(session: Session, args: argparse.Namespace, selection: _Selection) -> None:
    rows = []
    for task in selection.tasks:
        try:
            rows.append((task, task_rlimit_list(session.prog, task)))
        except READ_ERRORS as err:
            session.warn(f"PID {task.pid}: cannot read the resource limits: {err}")
    session.emit("ps-rlimits", [TaskRlimits(t, r) for t, r in rows],
                 lambda: "".join(render_rlimits(t, r) for t, r in rows))


_VIEWS = (("p", _parents), ("c", _children), ("l", _last_run), ("m", _last_run),
          ("a", _arguments), ("r", _rlimits), ("g", _threads), ("t", _times),
          ("S", _summary))
