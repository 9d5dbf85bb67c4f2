"""The diagnosis engine: from an opened target to a Verdict.

The log says what kind of death it was (rules.py); the stacks and registers in the dump say
where; the debug info says which source line; the module list says whose code it was.
Each step degrades gracefully: missing debug info or excluded pages reduce detail and
add a warning, they never stop the report.
"""

from __future__ import annotations

import dataclasses
import re
from pathlib import Path
from typing import Callable, Optional, TypeVar

import drgn
from drgn.helpers.linux.panic import panic_task
from drgn.helpers.linux.pid import find_task
from drgn.helpers.linux.sched import cpu_curr

from kdx.diagnosis import rules
from kdx.diagnosis.badvalue import explain_access
from kdx.diagnosis.badvalue import points_to as badvalue_points_to
from kdx.diagnosis.checkers import blame_past_checker
from kdx.diagnosis.code import disassemble_around, effective_addresses, read_source
from kdx.diagnosis.evidence import (
    LogText,
    TaskStack,
    frame_label,
    log_text,
    oops_block,
    ran_in_interrupt,
    task_frames,
)
from kdx.diagnosis.signature import is_generic, make_signature
from kdx.diagnosis.verdict import (
    SCHEMA,
    CheckerFinding,
    Context,
    Culprit,
    Evidence,
    Explanation,
    SpinLoop,
    StackSummary,
    Stall,
    StalledTask,
    Verdict,
)
from kdx.errors import KdxError
from kdx.model.locks import LockGraph, lock_graph
from kdx.model.log import KernelLog, kernel_log
from kdx.model.memory import memory_breakdown
from kdx.model.names import address_namer
from kdx.model.stack import Frame, StackReader
from kdx.model.system import SystemInfo, system_info
from kdx.model.taint import KernelTaint, describe_taints, kernel_taint
from kdx.target.open import Target
from kdx.textsafe import decode

Progress = Optional[Callable[[str], None]]
T = TypeVar("T")
MAX_FRAMES = 48

#: The categories whose report names an address the CPU failed to access: only these
#: show a fault address (after a WARN or BUG, CR2 holds an older, unrelated fault) and
#: get the bad access explained.
FAULT_CATEGORIES = frozenset({"null-pointer-dereference", "general-protection-fault",
                              "bad-pointer", "stack-overflow"})

def analyze(target: Target, progress: Progress = None) -> Verdict:
    if target.debug_source == "symbols":
        raise KdxError("analyze needs the kernel's types: this kernel has no BTF and no "
                       "vmlinux was given (the panic report is in 'kdx VMCORE --no-vmlinux "
                       "-c log')")
    say = progress or (lambda _m: None)
    prog = target.prog
    warnings: list[str] = list(target.warnings)
    say("reading the kernel log")
    kernel = kernel_log(prog)
    warnings += kernel.warnings
    log = log_text(kernel)
    match = rules.first_match(log.bare)
    evidence: list[Evidence] = []
    if match:
        evidence.append(Evidence("log-oops", "The report in the kernel log",
                                 oops_block(log, match.index)))
    say("unwinding the panic task's stack")
    task = _panic_task(prog, warnings)
    reader = StackReader(prog)
    stack = _frames(reader, task, warnings) if task is not None else TaskStack([])
    if stack.frames:
        evidence.append(Evidence("stack-panic-task", "Stack of the panicking task",
                                 _stack_lines(stack.frames)))
    strategy = match.rule.culprit if match else rules.CULPRIT_PANIC_CALLER
    say("finding the culprit")
    culprit_stack, stopped, details = _culprit_frames(reader, strategy, match, stack,
                                                      warnings, evidence)
    stalled = _stalled_cpus(log, match)
    if match and match.rule.category == "rcu-stall":
        culprit_stack, stopped = _stalled_cpu_stack(reader, task, stalled, culprit_stack,
                                                    stopped, warnings, evidence)
    index, checker = _past_checker(strategy, match, log, culprit_stack, stopped)
    culprit = _culprit(prog, target, log, match, culprit_stack, index, evidence, warnings,
                       checker)
    if checker is not None:
        checker = _checker_addresses(prog, checker, warnings)
        evidence.append(Evidence("checker", f"The checker that fired: {checker.function}",
                                 [checker.text, f"it checks for {checker.checks}"]
                                 + [f"{p.address:#x} is {p.what}" for p in checker.points_to]))
        culprit.evidence.append("checker")
    context = _context(prog, target, log, match, task, culprit_stack, index, evidence,
                       _system(target, kernel))
    category = match.rule.category if match else "unknown"
    explanation = _explanation(prog, category, task, culprit_stack, stopped, warnings)
    title = _title(match, culprit, context)
    # Physical frames only: inline frames exist only where DWARF describes them, and the
    # same bug must land in one bucket with and without the vmlinux.
    frames = culprit_stack.frames[index:] if index is not None else stack.frames
    callers = [f.function or "" for f in frames if not f.inline]
    signature = make_signature(category, title, callers, culprit.module)
    say("following the blocked tasks' locks")
    blocked = details.get("blocked_task", {}).get("pid")
    locks = _readable(lambda: _lock_graph(reader, blocked), None, warnings,
                      "the blocked tasks' locks")
    if locks is not None:
        _add_lock_evidence(reader, locks, blocked, details, evidence)
    stall = _readable(lambda: _stall(prog, reader, category, stalled, log, match, culprit),
                      None, warnings, "the stalled CPUs")
    if stall is not None:
        evidence.append(Evidence("stall", "Who holds the CPU or grace period up",
                                 [stall.text]))
    say("reading the other CPUs' stacks")
    stacks = _readable(lambda: _cpu_stacks(reader, task, stack.frames), [], warnings,
                       "the other CPUs' stacks")
    details = {**details, "memory": _readable(lambda: memory_breakdown(prog), None, warnings,
                                              "the memory breakdown")}
    evidence += [Evidence(f"stack-cpu{s.cpu}", f"CPU {s.cpu}: {s.comm} (PID {s.pid})", s.frames)
                 for s in stacks if s.pid != context.pid]
    return Verdict(
        schema=SCHEMA, category=category,
        summary=match.rule.summary if match else "no known crash report found in the log",
        culprit=culprit, context=context,
        signature=signature,
        evidence=evidence, stacks=stacks, details=details,
        next_steps=_next_steps(match, culprit, context),
        warnings=warnings, dump=str(target.path or "live"), explanation=explanation,
        checker=checker, locks=locks, stall=stall)


#: Where the CPU stops is the culprit except in a checker: these rules' traps can fire in
#: one (a BUG, a WARN, a fault on the data a checker was handed).
_CHECKED = frozenset({rules.CULPRIT_EXCEPTION, rules.CULPRIT_WARN_SITE})


def _past_checker(strategy: str, match: rules.Match | None, log: LogText, stack: TaskStack,
                  index: int | None) -> tuple[int | None, CheckerFinding | None]:
    """The culprit's frame index: the first caller outside the checker the CPU stopped
    in (see kdx.diagnosis.checkers), or ``index`` itself; and what the checker found."""
    if index is None or strategy not in _CHECKED or match is None:
        return index, None
    around = log.bare[max(0, match.index - 8):match.index + 60]
    found = blame_past_checker(stack.frames, index, around)
    return found if found is not None else (index, None)


def _explanation(prog: drgn.Program, category: str, task: drgn.Object | None,
                 stack: TaskStack, index: int | None, warnings: list[str]
                 ) -> Explanation | None:
    """Why the faulting access was bad, for the categories that fault on an access."""
    if category not in FAULT_CATEGORIES or category == "stack-overflow" or index is None:
        return None
    frame = stack.frames[index]
    if not frame.is_exception_frame:
        return None
    from kdx.model.paging import five_level

    try:
        start = frame.pc - frame.offset if frame.offset is not None else None
        return explain_access(prog, task, frame.pc, stack.registers_at(index),
                              bool(five_level(prog)), start)
    except (drgn.FaultError, LookupError, ValueError) as err:
        warnings.append(f"could not explain the faulting access: {err}")
        return None


_DAMAGE = (LookupError, ValueError, OverflowError, AttributeError, drgn.FaultError,
           drgn.ObjectAbsentError, drgn.BadDataError)


def _readable(build: Callable[[], T], default: T, warnings: list[str], what: str) -> T:
    """``build()``, or ``default`` and a warning when the dump lacks or garbles what it
    reads: evidence beyond the log and the panic stack must not cost the verdict."""
    try:
        return build()
    except _DAMAGE as err:
        warnings.append(f"{what} cannot be read: {err}")
        return default


def _panic_task(prog: drgn.Program, warnings: list[str]) -> drgn.Object | None:
    try:
        task = panic_task(prog)
        return task if task else None
    except (LookupError, ValueError, drgn.FaultError) as err:
        warnings.append(f"could not find the panic task: {err}")
        return None


def _frames(reader: StackReader, task: drgn.Object, warnings: list[str]) -> TaskStack:
    """The task's frames as ``bt`` shows them; what the unwinder could not read becomes
    a warning naming the task."""
    try:
        stack, problems = task_frames(reader, task)
    except _DAMAGE as err:
        stack, problems = TaskStack([]), [str(err)]
    try:
        pid: int | str = int(task.pid)
    except _DAMAGE:
        pid = f"? (task {task.value_():#x})"
    warnings += [f"stack of PID {pid}: {p}" for p in problems]
    if not stack.frames:
        warnings.append(f"could not unwind the stack of PID {pid}")
    return stack.head(MAX_FRAMES)


def _stack_lines(frames: list[Frame]) -> list[str]:
    """Frame labels, with runs of one recursing frame folded into one line."""
    labels = [frame_label(f) for f in frames]
    out: list[str] = []
    i = 0
    while i < len(frames):
        j = i
        while j + 1 < len(frames) and labels[j + 1] == labels[i]:
            j += 1
        line = f"#{i:<2} {labels[i]}"
        out.append(line if j == i else f"{line}   (x{j - i + 1}, recursion)")
        i = j + 1
    return out


def _exception_index(frames: list[Frame]) -> int | None:
    """The frame the exception interrupted: interrupted, real (not inline), not generic."""
    for i, f in enumerate(frames):
        if (f.is_exception_frame and not f.inline and f.function
                and not is_generic(f.function)):
            return i
    for i, f in enumerate(frames):  # no debug info for it: any interrupted non-generic pc
        if f.is_exception_frame and not (f.function and is_generic(f.function)):
            return i
    return None


def _panic_caller_index(frames: list[Frame]) -> int | None:
    seen_panic = False
    for i, f in enumerate(frames):
        if f.function in ("panic", "vpanic", "nmi_panic"):
            seen_panic = True
        elif seen_panic and not f.inline and f.function and not is_generic(f.function):
            return i
    return None


def _culprit_frames(reader: StackReader, strategy: str, match: rules.Match | None,
                    stack: TaskStack, warnings: list[str], evidence: list[Evidence]
                    ) -> tuple[TaskStack, int | None, dict]:
    """(the stack the culprit is in, the culprit's frame index, category details)."""
    if strategy == rules.CULPRIT_BLOCKED_TASK and match and "pid" in match.groups:
        return _blocked_task(reader, int(match.groups["pid"]), warnings, evidence)
    if strategy == rules.CULPRIT_PROCESS:
        return stack, None, _oom_details(reader.prog, evidence)
    if strategy == rules.CULPRIT_PANIC_CALLER:
        return stack, _panic_caller_index(stack.frames), {}
    index = _exception_index(stack.frames)
    if index is None:
        warnings.append("no exception frame on the panic task's stack; the culprit comes "
                        "from the log")
    return stack, index, {}


def _blocked_task(reader: StackReader, pid: int, warnings: list[str],
                  evidence: list[Evidence]) -> tuple[TaskStack, int | None, dict]:
    task = find_task(reader.prog, pid)
    if not task:
        warnings.append(f"the blocked task {pid} is no longer in the dump")
        return TaskStack([]), None, {}
    stack = _frames(reader, task, warnings)
    comm = task.comm.string_().decode(errors="replace")
    evidence.append(Evidence("stack-blocked-task", f"Stack of the blocked task {comm} "
                             f"(PID {pid})", _stack_lines(stack.frames)))
    index = next((i for i, f in enumerate(stack.frames)
                  if f.function and not f.inline and not is_generic(f.function)), None)
    details = {"blocked_task": {"pid": pid, "comm": comm}}
    details.update(_lock_owner(reader, task))
    if "lock_owner" in details:
        owner = details["lock_owner"]
        evidence.append(Evidence("lock-owner", f"Owner of the lock: {owner['comm']} (PID "
                                 f"{owner['pid']})", owner["stack"]))
    return stack, index, details


def _lock_owner(reader: StackReader, task: drgn.Object) -> dict:
    """The mutex a task sleeps on and its owner, read from the waiting frame's locals
    (drgn's own frames: only they carry the locals)."""
    from drgn.helpers.linux.locking import mutex_owner

    prog = reader.prog
    try:
        for frame in prog.stack_trace(task):
            if frame.name and "mutex_lock" in frame.name:
                try:
                    lock = frame["lock"]
                except (KeyError, LookupError, drgn.ObjectAbsentError):
                    continue
                owner = mutex_owner(lock)
                out = {"lock": {"address": int(lock.value_()), "symbol": _sym(prog, lock)}}
                if owner:
                    owner_stack = _frames(reader, owner, [])
                    out["lock_owner"] = {"pid": int(owner.pid),
                                         "comm": owner.comm.string_().decode(errors="replace"),
                                         "stack": _stack_lines(owner_stack.frames)}
                return out
    except (LookupError, ValueError, drgn.FaultError):
        pass
    return {}


#: Blocked tasks whose locks the analysis follows; a dump with more names the first.
MAX_BLOCKED = 256


def _lock_graph(reader: StackReader, first_pid: int | None) -> LockGraph | None:
    """The wait-for graph of every task in uninterruptible sleep (the reported blocked
    task first, then by PID), or None when none of them waits for a sleeping lock."""
    from drgn.helpers.linux.sched import task_state_to_char

    from kdx.model.tasks import all_tasks

    prog = reader.prog
    blocked = []
    for task in all_tasks(prog):
        try:
            if task_state_to_char(task) == "D":
                blocked.append(task)
        except _DAMAGE:
            continue
        if len(blocked) >= MAX_BLOCKED:
            break
    blocked.sort(key=lambda t: (int(t.pid) != first_pid, int(t.pid)))
    pairs = [(t, [f.function or "" for f in _frames(reader, t, []).frames[:24]])
             for t in blocked]
    graph = lock_graph(prog, pairs)
    return graph if graph.waits else None


def _add_lock_evidence(reader: StackReader, graph: LockGraph, blocked_pid: int | None,
                       details: dict, evidence: list[Evidence]) -> None:
    """The waits as evidence lines; and the blocked task's lock and owner in ``details``
    when the waiting frame's locals (DWARF) did not name them."""
    lines = [f"{w.comm} (PID {w.pid}) waits for {w.kind} {w.lock_name}"
             + (f", held by {w.owner_comm} (PID {w.owner_pid})" if w.owner_pid is not None
                else ", owner not recorded") for w in graph.waits]
    if graph.cycle:
        lines.append(f"deadlock: {graph.text}")
    evidence.append(Evidence("lock-graph", "Blocked tasks and the locks they wait for",
                             lines))
    wait = next((w for w in graph.waits if w.pid == blocked_pid), None)
    if wait is None or "lock" in details:
        return
    details["lock"] = {"address": wait.lock, "symbol": wait.symbol}
    if wait.owner_task is not None:
        owner = drgn.Object(reader.prog, "struct task_struct *", wait.owner_task)
        stack = _frames(reader, owner, [])
        details["lock_owner"] = {"pid": wait.owner_pid, "comm": wait.owner_comm,
                                 "stack": _stack_lines(stack.frames)}
        evidence.append(Evidence("lock-owner", f"Owner of the lock: {wait.owner_comm} (PID "
                                 f"{wait.owner_pid})", details["lock_owner"]["stack"]))


_RCU_CPU = re.compile(r"^rcu:\s+(?P<cpu>\d+)-\S*: \(")
_RCU_BLOCKED = re.compile(r"Tasks blocked on level-\d+ rcu_node \(CPUs [\d-]+\):"
                          r"(?P<pids>(?: P\d+)+)")
_REPORT_LINES = 40


def _stalled_cpus(log: LogText, match: rules.Match | None) -> list[int]:
    """The CPUs the stall report names: the soft lockup's CPU, or the CPUs an RCU stall
    report lists as holding the grace period up."""
    if match is None:
        return []
    if match.rule.category == "soft-lockup" and "cpu" in match.groups:
        return [int(match.groups["cpu"])]
    if match.rule.category != "rcu-stall":
        return []
    cpus: list[int] = []
    for line in log.bare[match.index + 1:match.index + _REPORT_LINES]:
        found = _RCU_CPU.match(line)
        if found and int(found["cpu"]) not in cpus:
            cpus.append(int(found["cpu"]))
    return cpus


def _rcu_blocked_pids(log: LogText, match: rules.Match | None) -> list[int]:
    if match is None:
        return []
    for line in log.bare[match.index + 1:match.index + _REPORT_LINES]:
        found = _RCU_BLOCKED.search(line)
        if found:
            return [int(p) for p in re.findall(r"P(\d+)", found["pids"])]
    return []


def _stalled_cpu_stack(reader: StackReader, task: drgn.Object | None, cpus: list[int],
                       stack: TaskStack, index: int | None, warnings: list[str],
                       evidence: list[Evidence]) -> tuple[TaskStack, int | None]:
    """The stalled CPU's stack, when another CPU reported the stall and panicked: the
    culprit is what the stalled CPU runs, not the reporter."""
    if not cpus or _task_cpu(task) in cpus:
        return stack, index
    try:
        other = cpu_curr(reader.prog, cpus[0])
    except (LookupError, drgn.FaultError):
        return stack, index
    other_stack = _frames(reader, other, warnings)
    evidence.append(Evidence("stack-stalled-cpu", f"Stack of CPU {cpus[0]}, which holds "
                             "the grace period up", _stack_lines(other_stack.frames)))
    return other_stack, _exception_index(other_stack.frames)


def _stall(prog: drgn.Program, reader: StackReader, category: str, cpus: list[int],
           log: LogText, match: rules.Match | None, culprit: Culprit) -> Stall | None:
    """Who holds up the stuck CPU or the grace period, and the loop it spins in."""
    if category not in ("rcu-stall", "soft-lockup"):
        return None
    from kdx.model.rcu import grace_period_wait

    waiting = grace_period_wait(prog) if category == "rcu-stall" else None
    blocked = _rcu_blocked_pids(log, match)
    if waiting is not None:
        blocked = blocked or waiting.blocked_pids
    tasks = []
    for cpu in cpus:
        try:
            task = cpu_curr(prog, cpu)
            frames = _frames(reader, task, []).frames
        except (LookupError, drgn.FaultError):
            continue
        at = _exception_index(frames)
        tasks.append(StalledTask(cpu, int(task.pid), decode(task.comm.string_()),
                                 frames[at].function if at is not None else None))
    loop = None
    if culprit.address is not None and culprit.function and culprit.offset is not None:
        loop = _spin_loop(prog, culprit.function, culprit.address - culprit.offset,
                          culprit.address)
    return Stall(category, cpus, waiting.cpus if waiting is not None else None, blocked,
                 tasks, loop, _stall_text(category, tasks, waiting, blocked, loop))


def _spin_loop(prog: drgn.Program, function: str, start: int, pc: int) -> SpinLoop | None:
    """The innermost backward jump in ``function`` whose range holds ``pc``."""
    from kdx.diagnosis.code import backward_jumps

    best = None
    for source, target in backward_jumps(prog, start, pc + 256):
        if target <= pc <= source and (best is None or source - target < best[0] - best[1]):
            best = (source, target)
    if best is None:
        return None
    return SpinLoop(function, best[1], best[0],
                    f"{function}+{best[1] - start:#x} to +{best[0] - start:#x}")


def _stall_text(category: str, tasks: list[StalledTask], waiting: object,
                blocked: list[int], loop: SpinLoop | None) -> str:
    who = "; ".join(f"CPU {t.cpu} runs {t.comm} (PID {t.pid})"
                    + (f" in {t.function}" if t.function else "") for t in tasks)
    text = (f"{who or 'no CPU named'}: "
            + ("it never reports a quiescent state, so the RCU grace period cannot end"
               if category == "rcu-stall" else "it never schedules"))
    cpus = getattr(waiting, "cpus", None)
    if cpus is not None:
        text += (f"; the grace period still waits for CPU{'s' if len(cpus) != 1 else ''} "
                 + ", ".join(map(str, cpus)) if cpus else
                 "; the grace period waits for no CPU any more")
    if blocked:
        text += "; tasks preempted inside a read-side section block it: " + ", ".join(
            f"PID {p}" for p in blocked)
    if loop is not None:
        text += f"; it spins in the loop {loop.text}"
    return text


def _sym(prog: drgn.Program, pointer: drgn.Object) -> str | None:
    found = address_namer(prog).locate(int(pointer.value_()))
    return found.name if found is not None else None


def _oom_details(prog: drgn.Program, evidence: list[Evidence]) -> dict:
    """The biggest memory users and the memory left, from the same task records ``ps``
    prints (so the OOM table and ``ps`` agree on RSS)."""
    from drgn.helpers.linux.mm import totalram_pages

    from kdx.model.tasks import task_list

    page_kib = prog["PAGE_SIZE"].value_() // 1024 if _has(prog, "PAGE_SIZE") else 4
    leaders = {t.pid: t for t in task_list(prog) if t.rss_kib and t.pid == t.tgid}
    users = sorted(leaders.values(), key=lambda t: t.rss_kib, reverse=True)[:5]
    top = [{"pid": t.pid, "comm": t.comm, "rss_kib": t.rss_kib} for t in users]
    total = int(totalram_pages(prog)) * page_kib
    evidence.append(Evidence("oom-top", "Largest memory users",
                             [f"{u['comm']} (PID {u['pid']}): {u['rss_kib']} KiB" for u in top]))
    return {"top_memory_users": top, "total_ram_kib": total}


def _has(prog: drgn.Program, name: str) -> bool:
    try:
        prog[name]
        return True
    except LookupError:
        return False


_RIP_LINE = re.compile(r"RIP: [0-9a-f]{4}:(?P<func>[\w.]+)\+(?P<off>0x[0-9a-f]+)/0x[0-9a-f]+"
                       r"(?: \[(?P<module>[\w-]+)\])?")


def _culprit(prog: drgn.Program, target: Target, log: LogText, match: rules.Match | None,
             stack: TaskStack, index: int | None, evidence: list[Evidence],
             warnings: list[str], checker: CheckerFinding | None = None) -> Culprit:
    if match and match.rule.culprit == rules.CULPRIT_PROCESS:
        return Culprit(None, None, None, None, None, None, [], None, [], {},
                       f"the process {match.groups.get('comm', '?')} asked for memory when "
                       "none was left", ["log-oops", "oom-top"])
    if index is None:
        return _culprit_from_log(log, match, warnings)
    frame = stack.frames[index]
    ids = ["stack-panic-task"]
    regs: dict[str, int] = {}
    addresses: list[int] = []
    instructions = []
    if frame.is_exception_frame:
        saved = stack.registers_at(index)
        ids.append("registers")
        evidence.append(Evidence("registers", f"Registers at {frame_label(frame)}",
                                 _register_lines(saved)))
        instructions = disassemble_around(prog, frame.pc, frame.offset)
        regs, addresses = effective_addresses(prog, frame.pc, saved)
    source = read_source(frame.source_file, frame.source_line, _source_dirs(target))
    if source:
        ids.append("source")
    reasoning = (_checker_reasoning(frame, checker) if checker is not None
                 else _reasoning(frame, instructions, regs, addresses, match))
    return Culprit(frame.function, frame.offset, frame.module, frame.source_file,
                   frame.source_line, frame.pc, _module_taints(prog, frame.module), source,
                   instructions, regs, reasoning, ids + (["log-oops"] if match else []))


def _culprit_from_log(log: LogText, match: rules.Match | None, warnings: list[str]) -> Culprit:
    """The kernel's own RIP line, when the stack could not show the culprit."""
    start = match.index if match else 0
    for line in log.bare[start:start + 60]:
        found = _RIP_LINE.search(line)
        if found:
            return Culprit(found["func"], int(found["off"], 16), found["module"], None, None,
                           None, [], None, [], {}, "named by the RIP line of the kernel's "
                           "report", ["log-oops"])
    warnings.append("the culprit function could not be found")
    return Culprit(None, None, None, None, None, None, [], None, [], {}, "", [])


def _register_lines(regs: dict[str, int]) -> list[str]:
    names = [n for n in ("rip", "rsp", "rflags", "rax", "rbx", "rcx", "rdx", "rsi", "rdi",
                         "rbp", "r8", "r9", "r10", "r11", "r12", "r13", "r14", "r15", "cs",
                         "ss") if n in regs]
    return [f"{n.upper():>6}: {regs[n]:016x}" for n in names]


def _source_dirs(target: Target) -> list[Path]:
    dirs = [p if p.is_dir() else p.parent for p in getattr(target, "module_paths", [])]
    if target.path is not None:
        dirs.append(target.path.parent / "modules")
    return dirs


def _module_taints(prog: drgn.Program, module: str | None) -> list[str]:
    if not module:
        return []
    try:
        mask = int(prog.module(module).object.taints)
    except (LookupError, AttributeError, drgn.FaultError, ValueError):
        return []
    return describe_taints(mask)


def _reasoning(frame: Frame, instructions: list, regs: dict[str, int],
               addresses: list[int], match: rules.Match | None) -> str:
    faulting = next((i for i in instructions if i.faulting), None)
    where = f"{frame.function}+{frame.offset:#x}" if frame.offset is not None else (
        frame.function or f"{frame.pc:#x}")
    blocked = bool(match and match.rule.culprit == rules.CULPRIT_BLOCKED_TASK)
    text = f"the task sleeps in {where}" if blocked else f"the CPU stopped at {where}"
    if match and match.rule.category == "stack-protector":
        text = f"the stack canary of {frame.function} was overwritten, found at {where}"
    if frame.source_file:
        text += f" ({Path(frame.source_file).name}:{frame.source_line})"
    if match and match.rule.category == "stack-protector":
        return text + (": a write ran past the end of one of its local arrays, over the "
                       "canary that guards the return address")
    if faulting:
        text += f", on the instruction `{faulting.text.split(': ', 1)[-1]}`"
        if addresses:
            text += f", which accesses memory at {addresses[0]:#x}"
        if regs:
            text += " (" + ", ".join(f"{k.upper()} = {v:#x}" for k, v in regs.items()) + ")"
    if match and "address" in match.groups:
        try:
            address = int(match.groups['address'], 16)
            text += f"; the kernel reports the faulting address {address:#x}"
        except ValueError:
            pass
    return text


_KERNEL_ADDRESS = re.compile(r"\b(?:0x)?(ff[0-9a-f]{14})\b")


def _checker_addresses(prog: drgn.Program, checker: CheckerFinding, warnings: list[str]
                       ) -> CheckerFinding:
    """The finding with what the kernel addresses it quotes are (the list entry a list
    check was handed: which slab object, allocated or free, and its tracks)."""
    points = []
    for found in dict.fromkeys(_KERNEL_ADDRESS.findall(checker.finding)):
        point = _readable(lambda a=int(found, 16): badvalue_points_to(
            prog, a, "an address the checker reported"), None, warnings,
            f"what {found} is")
        if point is not None:
            points.append(point)
    return dataclasses.replace(checker, points_to=points) if points else checker


def _checker_reasoning(frame: Frame, checker: CheckerFinding) -> str:
    """Why a caller is blamed rather than the checker the CPU stopped in."""
    where = f"{frame.function}+{frame.offset:#x}" if frame.offset is not None else (
        frame.function or f"{frame.pc:#x}")
    text = (f"{checker.function}, which checks for {checker.checks}, fired; it was called "
            f"from {where}")
    if frame.source_file:
        text += f" ({Path(frame.source_file).name}:{frame.source_line})"
    return text + ", the first caller outside the checker, which handed it the bad state"


_CR2 = re.compile(r"CR2: ([0-9a-f]+)")
_PF_CODE = re.compile(r"#PF: error_code\((0x[0-9a-f]+)\)")
_PF_BITS = ((1, "protection violation", "page not present"), (2, "write", "read"),
            (4, "user mode", "kernel mode"), (8, "reserved bit set", None),
            (16, "instruction fetch", None), (32, "protection key", None))


def decode_page_fault(code: int) -> list[str]:
    """The x86 page-fault error code bits in words (arch/x86/include/asm/trap_pf.h)."""
    out = []
    for bit, on, off in _PF_BITS:
        if code & bit:
            out.append(on)
        elif off:
            out.append(off)
    return out


def _system(target: Target, log: KernelLog) -> SystemInfo | None:
    """The model's system summary, for the panic line, uptime and taint; a dump too
    damaged to summarise still gets a verdict."""
    try:
        return system_info(target, log)
    except Exception:  # noqa: BLE001 (the summary is context, not the verdict)
        return None


def _context(prog: drgn.Program, target: Target, log: LogText, match: rules.Match | None,
             task: drgn.Object | None, stack: TaskStack, index: int | None,
             evidence: list[Evidence], info: SystemInfo | None) -> Context:
    block = next((e.lines for e in evidence if e.id == "log-oops"), [])
    text = "\n".join(block)
    cr2 = _CR2.search(text)
    code = _PF_CODE.search(text)
    error_code = int(code.group(1), 16) if code else None
    frame = stack.frames[index] if index is not None and stack.frames else None
    saved = stack.registers_at(index) if frame and frame.is_exception_frame else {}
    user_mode = bool(saved["cs"] & 3) if "cs" in saved else (
        False if frame else None)  # a kernel frame that was not interrupted runs the kernel
    taint = _taint(prog)
    return Context(
        pid=int(task.pid) if task is not None else None,
        comm=task.comm.string_().decode(errors="replace") if task is not None else None,
        cpu=_task_cpu(task),
        interrupt_context=bool(index is not None and ran_in_interrupt(stack.frames, index))
        or "Fatal exception in interrupt" in "\n".join(log.bare[-200:]),
        user_mode=user_mode,
        fault_address=_fault_address(match, cr2),
        error_code=error_code,
        error_code_decoded=decode_page_fault(error_code) if error_code is not None else [],
        taint=taint.flags,
        taint_flags=taint.describe(),
        uptime_seconds=info.uptime_seconds if info else None,
        release=target.release,
        panic_message=info.panic or "" if info else "",
        evidence=["log-oops"] if block else [])


def _taint(prog: drgn.Program) -> KernelTaint:
    try:
        return kernel_taint(prog)
    except (LookupError, drgn.FaultError, ValueError):
        return KernelTaint(0, "")


def _fault_address(match: rules.Match | None, cr2: re.Match | None) -> int | None:
    """The address the report names; CR2 only when it names none, because printing the
    report's "Code:" bytes can fault again and overwrite CR2 before the register dump.
    None for reports that are not faults (a WARN or BUG leaves an old CR2 behind)."""
    if match is None or match.rule.category not in FAULT_CATEGORIES:
        return None
    if "address" in match.groups:
        try:
            return int(match.groups["address"], 16)
        except ValueError:
            pass
    return int(cr2.group(1), 16) if cr2 else None


def _task_cpu(task: drgn.Object | None) -> int | None:
    if task is None:
        return None
    from drgn.helpers.linux.sched import task_cpu

    try:
        return int(task_cpu(task))
    except (AttributeError, LookupError, drgn.FaultError):
        return None


def _cpu_stacks(reader: StackReader, panic: drgn.Object | None, panic_frames: list[Frame]
                ) -> list[StackSummary]:
    from drgn.helpers.linux.cpumask import for_each_online_cpu

    prog = reader.prog
    out = []
    for cpu in for_each_online_cpu(prog):
        try:
            task = cpu_curr(prog, cpu)
        except (LookupError, drgn.FaultError):
            continue
        is_panic = panic is not None and task.value_() == panic.value_()
        frames = panic_frames if is_panic else _frames(reader, task, []).frames
        try:
            out.append(StackSummary(int(task.pid), decode(task.comm.string_()), cpu,
                                    _stack_lines(frames)))
        except _DAMAGE:
            continue
    return out


def _title(match: rules.Match | None, culprit: Culprit, context: Context) -> str:
    return rules.title(match, culprit.function, culprit.module, context.comm,
                       context.panic_message)


def _next_steps(match: rules.Match | None, culprit: Culprit, context: Context) -> list[str]:
    if match is None:
        return ["log | tail -80", "bt -a", "ps -A"]
    fields = {"function": culprit.function or "", "pc": culprit.address or 0,
              "pid": context.pid or 0, **match.groups}
    steps = []
    for step in match.rule.next_steps:
        try:
            steps.append("kdx> " + step.format(**fields))
        except (KeyError, ValueError):
            continue
    return steps
