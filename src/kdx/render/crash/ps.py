"""crash-style text for the task commands: ``ps`` in all its forms, ``set`` and ``task``.

The layouts are crash 8.0.6's to the space (task.c show_ps, show_ps_data,
print_task_header, show_context, show_task_times, show_task_rlimit, show_task_args;
tools.c mkstring), because people scan ``ps`` output by column and scripts cut it by
position. Every name read from the dump goes through ``clean`` here, even though the
model already cleans it, so a record built any other way cannot reach the terminal with
escape sequences in it.
"""

from __future__ import annotations

from typing import Iterable, Sequence

from kdx.model.tasks import TaskArgs, TaskContext, TaskInfo, TaskRlimit, TaskTimes
from kdx.render.crash.layout import task_header
from kdx.render.crash.sys import duration, task_value
from kdx.textsafe import clean

#: Hex digits of a kernel address on 64-bit machines (crash's VADDR_PRLEN).
ADDRESS_WIDTH = 16


def center(text: str, width: int, rjust: bool = False) -> str:
    """crash's mkstring(CENTER): an odd leftover space goes right, or left with RJUST."""
    extra = width - len(text)
    if extra <= 0:
        return text
    left = extra // 2 + (extra % 2 if rjust else 0)
    return " " * left + text + " " * (extra - left)


def comm(task: TaskInfo) -> str:
    return clean(task.comm)


# --- the ps table ----------------------------------------------------------------------------


def ps_header(kstack: bool = False, width: int = ADDRESS_WIDTH) -> str:
    column = center("KSTACKP", width, rjust=True) if kstack else center("TASK", width)
    return f"      PID    PPID  CPU {column}  ST  %MEM      VSZ      RSS  COMM"


def percent(value: float) -> str:
    """%MEM as crash prints it: one decimal, three-character values centred in four."""
    text = f"{value:.1f}"
    return center(text, 4, rjust=True) if len(text) == 3 else text


def ps_line(task: TaskInfo, pointer: str | None = None, width: int = ADDRESS_WIDTH) -> str:
    """One row: ``>`` for a task on a CPU, kernel threads' names in brackets.
    ``pointer`` replaces the task address (the -s kernel stack pointer column)."""
    marker = "> " if task.active else "  "
    column = pointer if pointer is not None else center(f"{task.task:x}", width, rjust=True)
    gap = " " if len(task.state) > 3 else "  "
    name = f"[{comm(task)}]" if task.kernel_thread else comm(task)
    return (f"{marker}{task.pid:7d} {task.ppid:7d} {task.cpu:>3}  {column} {task.state:>3}"
            f"{gap}{percent(task.mem_percent)} {task.vsz_kib:8d} {task.rss_kib:8d}  {name}")


def kstack_column(sp: int | None, width: int = ADDRESS_WIDTH) -> str:
    """The KSTACKP cell: the saved stack pointer, or ``--`` for a task on a CPU."""
    return center(f"{sp:x}" if sp else "--", width, rjust=True)


def render_ps(tasks: Iterable[TaskInfo], *, header: bool = True,
              pointers: dict[int, str] | None = None, width: int = ADDRESS_WIDTH) -> str:
    lines = [ps_header(pointers is not None, width)] if header else []
    lines += [ps_line(t, pointers.get(t.task) if pointers is not None else None, width)
              for t in tasks]
    return "\n".join(lines) + "\n"


def render_summary(counts: dict[str, int]) -> str:
    """``ps -S``: one line per state, in the order the states first appear."""
    return "".join(f"  {state}: {count}\n" for state, count in counts.items())


# --- task headers and the lists built from them ---------------------------------------------


def info_header(task: TaskInfo) -> str:
    """crash's one-line task header (print_task_header) of a task table row, used by -p,
    -c, -g, -t, task and foreach."""
    return task_header(task.pid, task.task, task.cpu, comm(task))


def render_parents(chains: Sequence[Sequence[TaskInfo]]) -> str:
    """``ps -p``: each task's ancestry from PID 0 down, one more space per generation."""
    out = []
    for chain in chains:
        out += [" " * depth + info_header(task) for depth, task in enumerate(chain)]
        out.append("")
    return "\n".join(out) + "\n" if out else ""


def _grouped(groups: Sequence[tuple[TaskInfo, Sequence[TaskInfo]]], none: str) -> str:
    out = []
    for head, members in groups:
        out.append(info_header(head))
        out += ["  " + info_header(m) for m in members] or [f"  ({none})"]
        out.append("")
    return "\n".join(out) + "\n" if out else ""


def render_children(groups: Sequence[tuple[TaskInfo, Sequence[TaskInfo]]]) -> str:
    """``ps -c``: each task and its children."""
    return _grouped(groups, "no children")


def render_threads(groups: Sequence[tuple[TaskInfo, Sequence[TaskInfo]]]) -> str:
    """``ps -g``: each thread group leader and the other threads of its group."""
    return _grouped(groups, "no threads")


def render_times(rows: Sequence[TaskTimes], tasks: dict[int, TaskInfo]) -> str:
    """``ps -t``: run time, start time and CPU times (the kernel's nanoseconds)."""
    out = []
    for row in rows:
        out += [info_header(tasks[row.task]),
                f"    RUN TIME: {duration(row.run_seconds)}",
                f"  START TIME: {row.start_time}",
                f"       UTIME: {row.utime}",
                f"       STIME: {row.stime}", ""]
    return "\n".join(out) + "\n" if out else ""


def render_last_run(rows: Sequence[tuple[str, TaskInfo]],
                    by_cpu: dict[int, Sequence[tuple[str, TaskInfo]]] | None = None) -> str:
    """``ps -l`` / ``ps -m``: ``[stamp] [ST]  header`` per task; the stamps arrive padded.
    With ``by_cpu``, one block per CPU headed ``CPU: N``, blocks separated by a blank
    line."""
    def lines(group: Sequence[tuple[str, TaskInfo]]) -> str:
        return "".join(f"[{stamp}] [{t.state}]  {info_header(t)}\n" for stamp, t in group)

    if by_cpu is None:
        return lines(rows)
    return "\n".join(f"CPU: {cpu}\n" + lines(group) for cpu, group in by_cpu.items())


def render_rlimits(task: TaskInfo, limits: Sequence[TaskRlimit]) -> str:
    """``ps -r``: names right-aligned, values centred in the width of "(unlimited)"."""
    name_width = max((len(r.name) for r in limits), default=6)
    value_width = len("(unlimited)")

    def value(v: int | None) -> str:
        return "(unlimited)" if v is None else center(str(v), value_width)

    out = [info_header(task),
           f"  {'RLIMIT':>{name_width}}   {center('CURRENT', value_width, True)}   "
           f"{center('MAXIMUM', value_width, True)}"]
    out += [f"  {r.name:>{name_width}}   {value(r.current)}   {value(r.maximum)}"
            for r in limits]
    return "".join(line.rstrip() + "\n" for line in out) + "\n"


def render_args(task: TaskInfo, args: TaskArgs) -> str:
    """``ps -a``: ARG on one line, ENV one string per line, or why they are missing."""
    out = [info_header(task)]
    if args.error:
        return "\n".join(out + [f"ps: {clean(args.error)}"]) + "\n\n"
    out.append("ARG: " + " ".join(clean(a) for a in args.arguments or []))
    env = [clean(e) for e in args.environment or []]
    out.append("ENV: " + "\n     ".join(env))
    # crash adds a blank line only when the environment is empty
    return "\n".join(out) + ("\n" if env else "\n\n")


# --- set and task -------------------------------------------------------------------------------


def render_context(context: TaskContext) -> str:
    """``set``: the current context as crash's show_context prints it at run time."""
    rows = [("PID", str(context.pid)), ("COMMAND", f'"{clean(context.command)}"'),
            ("TASK", task_value(context)), ("CPU", str(context.cpu)),
            ("STATE", context.state)]
    return "".join(f"{label:>7}: {value}".rstrip() + "\n" for label, value in rows)


def render_task(task: TaskInfo, body: str) -> str:
    """``task``: the header, then the dump of the structure or of the chosen members."""
    return f"{info_header(task)}\n{body}\n\n"
