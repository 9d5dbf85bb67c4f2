"""The rules that recognise how a kernel died, as data.

Each rule is a pattern over the kernel log's lines plus what to do with a match: the
category it proves, the title it gives (syzbot's style, so buckets read like syzbot's),
where the culprit comes from, and the kdx commands worth running next. Rules are tried in
order on each log line from the start; the first line any rule matches is the first sign
of death, which is the root cause more often than anything printed after it.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Iterable, Pattern

__all__ = ["CATEGORIES", "CULPRIT_BLOCKED_TASK", "CULPRIT_EXCEPTION", "CULPRIT_PANIC_CALLER",
           "CULPRIT_PROCESS", "CULPRIT_WARN_SITE", "RULES", "Match", "Rule", "first_match",
           "title"]

#: Where a rule finds its culprit.
CULPRIT_EXCEPTION = "exception"  # the function at the faulting instruction (RIP)
CULPRIT_BLOCKED_TASK = "blocked-task"  # the first meaningful frame of the hung task
CULPRIT_WARN_SITE = "warn-site"  # the function named by the WARNING line / its RIP
CULPRIT_PANIC_CALLER = "panic-caller"  # the function that called panic()
CULPRIT_PROCESS = "process"  # a process, not a function (OOM)


@dataclass(frozen=True)
class Rule:
    category: str
    pattern: Pattern[str]
    title: str  # format string; fields: function, module, message, and the pattern's groups
    culprit: str
    summary: str
    next_steps: tuple[str, ...] = ()
    extra: dict = field(default_factory=dict)


def _rule(category: str, pattern: str, title: str, culprit: str, summary: str,
          *next_steps: str) -> Rule:
    return Rule(category, re.compile(pattern), title, culprit, summary, next_steps)


_EXC_STEPS = ("bt -l", "dis -s {function}", "dis -r {pc:#x}", "mod -t", "log | tail -60")

#: The documented categories, in the order a log line is tested against them.
RULES: tuple[Rule, ...] = (
    _rule("sysrq", r"sysrq: Trigger a crash|Kernel panic - not syncing: sysrq triggered crash",
          "SysRq triggered crash", CULPRIT_PANIC_CALLER,
          "someone asked for a crash with SysRq-c (echo c > /proc/sysrq-trigger or the "
          "keyboard); the kernel itself was not at fault", "ps -p {pid}", "files {pid}",
          "log | tail -40"),
    _rule("stack-overflow", r"BUG: TASK stack guard page was hit|kernel stack overflow"
          r"|stack guard page: |traps: .* double fault",
          "kernel stack overflow in {function}", CULPRIT_EXCEPTION,
          "a task ran off the end of its kernel stack (runaway recursion or huge frames)",
          "bt -l", "bt -f", "dis -s {function}"),
    _rule("stack-protector", r"stack-protector: Kernel stack is corrupted in: (?P<func>\S+)",
          "stack-protector: stack is corrupted in {function}", CULPRIT_PANIC_CALLER,
          "a function's stack canary was overwritten: a buffer overflow on the stack",
          "bt -l", "dis -s {function}"),
    _rule("null-pointer-dereference",
          r"BUG: kernel NULL pointer dereference, address: (?P<address>[0-9a-fx]+)",
          "BUG: kernel NULL pointer dereference in {function}", CULPRIT_EXCEPTION,
          "the kernel read or wrote through a NULL (or nearly NULL) pointer", *_EXC_STEPS),
    _rule("general-protection-fault",
          r"general protection fault(?:, probably for non-canonical address "
          r"(?P<address>0x[0-9a-f]+))?", "general protection fault in {function}",
          CULPRIT_EXCEPTION, "the CPU refused an access: usually a corrupt or poisoned "
          "pointer (freed or list-deleted memory) or a non-canonical address", *_EXC_STEPS),
    _rule("bad-pointer", r"BUG: unable to handle page fault for address: (?P<address>\S+)",
          "BUG: unable to handle page fault in {function}", CULPRIT_EXCEPTION,
          "the kernel touched an address with no valid mapping (a wild or stale pointer)",
          *_EXC_STEPS),
    _rule("bug", r"kernel BUG at (?P<file>[^:\s]+):(?P<line>\d+)!",
          "kernel BUG in {function}", CULPRIT_EXCEPTION,
          "a BUG()/BUG_ON() assertion failed: the code found a state it cannot go on from",
          *_EXC_STEPS),
    _rule("warn", r"WARNING: CPU: \d+ PID: \d+ at (?P<file>\S+):(?P<line>\d+) (?P<func>\S+)",
          "WARNING in {function}", CULPRIT_WARN_SITE,
          "a WARN_ON() fired and panic_on_warn turned the warning into a panic", *_EXC_STEPS),
    # The same line as Linux 7.x prints it: "WARNING: FILE:LINE at FUNC+0x../0x.. [MODULE],
    # CPU#1: COMM/PID".
    _rule("warn", r"WARNING: (?P<file>[^\s:]+):(?P<line>\d+) at (?P<func>\S+)",
          "WARNING in {function}", CULPRIT_WARN_SITE,
          "a WARN_ON() fired and panic_on_warn turned the warning into a panic", *_EXC_STEPS),
    _rule("soft-lockup", r"watchdog: BUG: soft lockup - CPU#(?P<cpu>\d+) stuck for "
          r"(?P<seconds>\d+)s! \[(?P<comm>.*):(?P<pid>\d+)\]",
          "BUG: soft lockup in {function}", CULPRIT_EXCEPTION,
          "a CPU ran kernel code without scheduling for too long (softlockup_panic)",
          "bt -a", "dis -s {function}", "ps -A"),
    _rule("hard-lockup", r"Watchdog detected hard LOCKUP on cpu (?P<cpu>\d+)",
          "BUG: hard lockup in {function}", CULPRIT_EXCEPTION,
          "a CPU stopped taking interrupts for too long (the NMI watchdog fired)",
          "bt -a", "dis -s {function}"),
    _rule("rcu-stall", r"rcu: INFO: rcu_\w+ (?:self-)?detected stalls?",
          "INFO: rcu detected stall in {function}", CULPRIT_EXCEPTION,
          "an RCU grace period could not end: a CPU or task held it up", "bt -a", "ps -A"),
    _rule("hung-task", r"INFO: task (?P<comm>.+):(?P<pid>\d+) blocked for more than "
          r"(?P<seconds>\d+) seconds", "INFO: task hung in {function}", CULPRIT_BLOCKED_TASK,
          "a task stayed in uninterruptible sleep (D state) past hung_task_timeout_secs",
          "bt {pid}", "ps -S", "foreach UN bt"),
    _rule("oom", r"(?P<comm>\S+) invoked oom-killer|Out of memory",
          "out of memory (panic_on_oom) in {comm}",
          CULPRIT_PROCESS, "memory ran out and panic_on_oom turned that into a panic",
          "kmem -i", "ps -G", "kmem -s"),
    _rule("divide-error", r"divide error: ", "divide error in {function}", CULPRIT_EXCEPTION,
          "an integer division by zero (or overflow) in kernel code", *_EXC_STEPS),
    _rule("invalid-opcode", r"invalid opcode: ", "invalid opcode in {function}",
          CULPRIT_EXCEPTION, "the CPU met an instruction it cannot run (often a BUG() "
          "without its message, or corrupt code)", *_EXC_STEPS),
    _rule("machine-check", r"Machine check|mce: \[Hardware Error\]|MCE: ",
          "machine check", CULPRIT_PANIC_CALLER,
          "the hardware reported an uncorrectable error (memory, cache or bus)",
          "log | grep -i mce"),
    _rule("panic", r"Kernel panic - not syncing: (?P<message>.*)", "panic: {message}",
          CULPRIT_PANIC_CALLER, "panic() was called directly", "bt -l", "log | tail -60"),
)

CATEGORIES: tuple[str, ...] = tuple(dict.fromkeys(r.category for r in RULES)) + ("unknown",)


@dataclass(frozen=True)
class Match:
    rule: Rule
    index: int  # line number in the log
    line: str
    groups: dict


def first_match(lines: Iterable[str]) -> Match | None:
    """The earliest log line any rule recognises, with the first rule that does."""
    for index, line in enumerate(lines):
        for rule in RULES:
            found = rule.pattern.search(line)
            if found:
                groups = {k: v for k, v in found.groupdict().items() if v is not None}
                return Match(rule, index, line, groups)
    return None


def title(match: Match | None, function: str | None, module: str | None,
          comm: str | None = None, panic_message: str = "") -> str:
    """The verdict's title (syzbot's style) for a match and its culprit: the full analysis
    and the fast pass both name a crash through this, so their titles agree."""
    if match is None:
        return "unknown crash"
    fields = {"function": function or "unknown function", "module": module or "",
              "message": match.groups.get("message", panic_message), **match.groups}
    fields.setdefault("comm", comm or "?")
    text = match.rule.title.format(**fields)
    if module and "{function}" in match.rule.title:
        text += f" [{module}]"
    return text
