"""The crash-lab scenario registry: what each `kdx lab` crash runs and what it must produce.

A scenario is data, not code: the lab machinery boots the guest with the scenario's extra
kernel parameters, builds and ships the modules it names, runs its trigger as the guest's
last step, and then checks the captured vmcore against the ground truth recorded here
(culprit function, module, source line, panicking task, console message). Keeping the
expectations next to the trigger is what lets a lab run grade kdx's own diagnosis.

Source lines are never written down as numbers. Each scenario module marks its faulting
line with ``/* KDX-CRASH-LINE */`` and `source_line` finds it, so editing a module can't
leave the ground truth silently stale.

Two conventions hold for every module scenario:

- ``oops=panic`` is on the kernel command line. An oops in process context (insmod) only
  kills the task unless ``panic_on_oops`` is set; with it, ``oops_end()`` hands the oops to
  ``crash_kexec()`` straight away, so the capture kernel starts before any "Kernel panic"
  line is printed. (There is no ``panic_on_oops=`` boot parameter: the kernel would pass it
  on to /init as an environment variable. ``oops=panic`` is the early parameter that sets
  it, on 6.1 and 6.12 alike.)
- The crashing command runs under busybox ``taskset -c 1``, so the oops happens on CPU 1
  and the panicking task's command name is the applet's name (``insmod``).

`panic_pattern` is a regular expression for `re.search` on one console (or vmcore dmesg)
line: the line where the kernel first reports the failure, which for an oops is also the
last thing before kdump takes over. The strings were checked against Debian's 6.1.192
and 6.12.117 kernel sources; 6.11 and later prefix the die line with ``Oops:``, so the
patterns are unanchored. Most of these lines are printed at warning level or more severe,
so a ``quiet`` console may hide some of them, while the vmcore's dmesg has them all.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from kdx.errors import KdxError

#: The marker that ends the faulting source line of every scenario module.
CRASH_LINE_MARKER = "KDX-CRASH-LINE"

#: Where the scenario modules' C sources and their Kbuild live inside the package.
MODULES_DIR = Path(__file__).resolve().parent / "guest" / "modules"

#: Where the static helper programs' C sources live inside the package.
PROGRAMS_DIR = Path(__file__).resolve().parent / "guest" / "programs"

# Every module scenario needs oopses to be fatal; see the module docstring.
_OOPS_PANIC = ("oops=panic",)

_NULL_DEREF = r"BUG: kernel NULL pointer dereference, address: 0000000000000000"


@dataclass(frozen=True)
class Scenario:
    """One way to crash the lab guest, with the ground truth its vmcore must show.

    ``function``, ``module`` and ``source_file`` name the culprit: the code a correct
    diagnosis blames, which is not always where the kernel stopped (a hung task is
    reported by khungtaskd, a soft lockup from the watchdog timer). ``None`` means the
    culprit is the kernel itself, or, for ``comm``, that the panicking task is whatever
    happened to be on the CPU.
    """

    name: str
    """Stable command-line name, e.g. ``null-deref-module``."""
    summary: str
    """One line for ``kdx lab list``."""
    category: str
    """Stable id of the kind of failure, which the diagnosis must name."""
    modules: tuple[str, ...]
    """Module names the trigger loads from ``/lab/modules/NAME.ko``."""
    cmdline: tuple[str, ...]
    """Extra kernel parameters for the crashing (first) kernel."""
    trigger: str
    """busybox ``sh`` snippet run as the guest's last step; it must crash the kernel."""
    function: str | None
    """Culprit function, or ``None`` when no single function is to blame."""
    module: str | None
    """Module the culprit function lives in, or ``None`` for the core kernel."""
    source_file: str | None
    """C file of the culprit module, relative to `MODULES_DIR`."""
    panic_pattern: str
    """Regex for the console line where the kernel first reports the failure."""
    comm: str | None
    """Command name of the task that panics, or ``None`` if it is not deterministic."""
    timeout_s: int
    """Seconds the guest may take, under TCG, from the trigger to the crash."""


def _insmod_trigger(module: str, *setup: str) -> str:
    """The trigger for a module that crashes from its init: load it pinned to CPU 1.

    The ``KDX-TRIGGER`` line comes first so the host can tell a crash caused by the
    scenario from one that happened while the guest was still setting up.
    """
    lines = ["echo KDX-TRIGGER", *setup, f"taskset -c 1 insmod /lab/modules/{module}.ko"]
    return "\n".join(lines) + "\n"


_SCENARIO_LIST: tuple[Scenario, ...] = (
    Scenario(
        name="sysrq",
        summary="echo c > /proc/sysrq-trigger: the kernel's own deliberate panic",
        category="sysrq",
        modules=(),
        cmdline=(),
        # The echo is a shell builtin, so the writer is the "sh" that taskset runs.
        trigger="echo KDX-TRIGGER\ntaskset -c 1 sh -c 'echo c > /proc/sysrq-trigger'\n",
        function="sysrq_handle_crash",
        module=None,
        source_file=None,
        panic_pattern=r"Kernel panic - not syncing: sysrq triggered crash",
        comm="sh",
        timeout_s=60,
    ),
    Scenario(
        name="bpf",
        summary="bpfload leaves BPF maps and programs loaded, then the sysrq panic",
        category="sysrq",
        modules=(),
        cmdline=(),
        # bpfload forks a child that holds the maps' and programs' descriptors and returns
        # once they are loaded, so the panic comes with them alive in prog_idr and map_idr.
        trigger=(
            "echo KDX-TRIGGER\n/lab/bin/bpfload\n"
            "taskset -c 1 sh -c 'echo c > /proc/sysrq-trigger'\n"
        ),
        function="sysrq_handle_crash",
        module=None,
        source_file=None,
        panic_pattern=r"Kernel panic - not syncing: sysrq triggered crash",
        comm="sh",
        timeout_s=60,
    ),
    Scenario(
        name="null-deref-module",
        summary="the classic hello_crash module: NULL pointer store in its init function",
        category="null-pointer-dereference",
        modules=("hello_crash",),
        cmdline=_OOPS_PANIC,
        trigger=_insmod_trigger("hello_crash"),
        function="hello_init",
        module="hello_crash",
        source_file="hello-crash.c",
        panic_pattern=_NULL_DEREF,
        comm="insmod",
        timeout_s=90,
    ),
    Scenario(
        name="bug-on",
        summary="BUG_ON() fails in a helper called from module init",
        category="bug",
        modules=("crashlab_bug",),
        cmdline=_OOPS_PANIC,
        trigger=_insmod_trigger("crashlab_bug"),
        function="crashlab_check_state",
        module="crashlab_bug",
        source_file="crashlab_bug.c",
        # The path is the build directory's, so only the file name is matched.
        panic_pattern=r"kernel BUG at \S*crashlab_bug\.c:\d+!",
        comm="insmod",
        timeout_s=90,
    ),
    Scenario(
        name="gpf",
        summary="general protection fault: following list_del()'s LIST_POISON1 pointer",
        category="general-protection-fault",
        modules=("crashlab_gpf",),
        cmdline=_OOPS_PANIC,
        trigger=_insmod_trigger("crashlab_gpf"),
        function="crashlab_walk",
        module="crashlab_gpf",
        source_file="crashlab_gpf.c",
        # LIST_POISON1 (0xdead000000000100) + offsetof(struct crashlab_entry, value).
        panic_pattern=(
            r"general protection fault, probably for non-canonical address 0xdead000000000110"
        ),
        comm="insmod",
        timeout_s=90,
    ),
    Scenario(
        name="soft-lockup",
        summary="a kthread spins with preemption disabled until the watchdog panics",
        category="soft-lockup",
        modules=("crashlab_lockup",),
        # A soft lockup is reported after 2 * watchdog_thresh = 10 s, well before the
        # 21 s RCU stall warning, so the watchdog's report is the first one on screen.
        cmdline=(*_OOPS_PANIC, "softlockup_panic=1", "watchdog_thresh=5"),
        # The module binds its thread to CPU 1 itself; insmod returns at once.
        trigger=_insmod_trigger("crashlab_lockup"),
        function="crashlab_spin_forever",
        module="crashlab_lockup",
        source_file="crashlab_lockup.c",
        panic_pattern=r"watchdog: BUG: soft lockup - CPU#1 stuck for \d+s! \[crashlab_spin:\d+\]",
        # The watchdog's hrtimer panics on the locked CPU, interrupting the spinner.
        comm="crashlab_spin",
        timeout_s=180,
    ),
    Scenario(
        name="hung-task",
        summary="a kthread blocks forever on a mutex held by a sleeping kthread",
        category="hung-task",
        modules=("crashlab_hung",),
        # hung_task_panic has no boot parameter on 6.1 or 6.12 (only a Kconfig default and
        # a sysctl), so the trigger sets it, with a short timeout and a short check
        # interval so khungtaskd reports about 10 s after the waiter blocks.
        cmdline=_OOPS_PANIC,
        trigger=_insmod_trigger(
            "crashlab_hung",
            "echo 1 > /proc/sys/kernel/hung_task_panic",
            "echo 2 > /proc/sys/kernel/hung_task_check_interval_secs",
            "echo 10 > /proc/sys/kernel/hung_task_timeout_secs",
        ),
        function="crashlab_wait_fn",
        module="crashlab_hung",
        source_file="crashlab_hung.c",
        panic_pattern=r"INFO: task crashlab_wait:\d+ blocked for more than \d+ seconds\.",
        # khungtaskd detects the hang and calls panic(); the culprit is the waiter.
        comm="khungtaskd",
        timeout_s=180,
    ),
    Scenario(
        name="oom",
        summary="memhog exhausts memory with vm.panic_on_oom=1",
        category="oom",
        modules=(),
        cmdline=(),
        trigger=(
            "echo KDX-TRIGGER\necho 1 > /proc/sys/vm/panic_on_oom\ntaskset -c 1 /lab/bin/memhog\n"
        ),
        function=None,
        module=None,
        source_file=None,
        # dump_header()'s first line; the panic line "Out of memory: system-wide
        # panic_on_oom is enabled" follows the memory report.
        panic_pattern=r"invoked oom-killer: gfp_mask=0x",
        # The allocating task hits the OOM path; memhog is the only one allocating.
        comm="memhog",
        timeout_s=240,
    ),
    Scenario(
        name="warn",
        summary="WARN_ON() in a module helper, made fatal by panic_on_warn=1",
        category="warn",
        modules=("crashlab_warn",),
        cmdline=(*_OOPS_PANIC, "panic_on_warn=1"),
        trigger=_insmod_trigger("crashlab_warn"),
        function="crashlab_check_budget",
        module="crashlab_warn",
        source_file="crashlab_warn.c",
        # Before 7.0 "WARNING: CPU: 1 PID: 252 at FILE:LINE FUNC+0x..", since then
        # "WARNING: FILE:LINE at FUNC+0x.. [MODULE], CPU#1: insmod/252".
        panic_pattern=(
            r"WARNING: (?:CPU: \d+ PID: \d+ at \S*crashlab_warn\.c:\d+ "
            r"|\S*crashlab_warn\.c:\d+ at )crashlab_check_budget\+0x"
        ),
        comm="insmod",
        timeout_s=90,
    ),
    Scenario(
        name="irq-context",
        summary="NULL pointer dereference in a timer callback (softirq context)",
        category="null-pointer-dereference",
        modules=("crashlab_timer",),
        cmdline=_OOPS_PANIC,
        # insmod on CPU 1 arms a pinned timer there; it fires 200 ms later.
        trigger=_insmod_trigger("crashlab_timer"),
        function="crashlab_timer_fn",
        module="crashlab_timer",
        source_file="crashlab_timer.c",
        panic_pattern=_NULL_DEREF,
        # Whatever CPU 1 was running when the timer softirq ran: usually swapper/1.
        comm=None,
        timeout_s=90,
    ),
    Scenario(
        name="stack-overflow",
        summary="runaway recursion in a module hits the kernel stack's guard page",
        category="stack-overflow",
        modules=("crashlab_stack",),
        cmdline=_OOPS_PANIC,
        trigger=_insmod_trigger("crashlab_stack"),
        function="crashlab_recurse",
        module="crashlab_stack",
        source_file="crashlab_stack.c",
        # Reported from the double-fault handler; "TASK" is the overflowed stack's type.
        panic_pattern=r"BUG: TASK stack guard page was hit at",
        comm="insmod",
        timeout_s=90,
    ),
    Scenario(
        name="divide-error",
        summary="integer division by zero in a module helper",
        category="divide-error",
        modules=("crashlab_div",),
        cmdline=_OOPS_PANIC,
        trigger=_insmod_trigger("crashlab_div"),
        function="crashlab_divide",
        module="crashlab_div",
        source_file="crashlab_div.c",
        panic_pattern=r"divide error: 0000 \[#1\]",
        comm="insmod",
        timeout_s=90,
    ),
    Scenario(
        name="use-after-free",
        summary="reading through a pointer member of a freed, slub_debug-poisoned slab object",
        category="general-protection-fault",
        modules=("crashlab_uaf",),
        # Sanity checks, red zones, poisoning and alloc/free tracking for the module's own
        # cache only: the freed object reads 0x6b and SLUB keeps who allocated and freed it.
        cmdline=(*_OOPS_PANIC, "slub_debug=FZPU,crashlab_uaf"),
        trigger=_insmod_trigger("crashlab_uaf"),
        function="crashlab_item_peer_value",
        module="crashlab_uaf",
        source_file="crashlab_uaf.c",
        # POISON_FREE in every byte of the peer pointer, plus offsetof(value) = 8.
        panic_pattern=(
            r"general protection fault, probably for non-canonical address 0x6b6b6b6b6b6b6b73"
        ),
        comm="insmod",
        timeout_s=90,
    ),
    Scenario(
        name="double-free",
        summary="kfree() twice: the hardened freelist's BUG in mm/slub.c, blamed on the caller",
        category="bug",
        modules=("crashlab_dfree",),
        cmdline=_OOPS_PANIC,
        trigger=_insmod_trigger("crashlab_dfree"),
        function="crashlab_drop_twice",
        module="crashlab_dfree",
        source_file="crashlab_dfree.c",
        panic_pattern=r"kernel BUG at mm/slub\.c:\d+!",
        comm="insmod",
        timeout_s=90,
    ),
    Scenario(
        name="list-corruption",
        summary="list_del() twice: the list checks' BUG (DEBUG_LIST), blamed on the caller",
        category="bug",
        modules=("crashlab_list",),
        cmdline=_OOPS_PANIC,
        trigger=_insmod_trigger("crashlab_list"),
        function="crashlab_forget",
        module="crashlab_list",
        source_file="crashlab_list.c",
        # Printed by the checker just before CONFIG_BUG_ON_DATA_CORRUPTION's BUG().
        panic_pattern=r"list_del corruption, [0-9a-f]+->next is LIST_POISON1",
        comm="insmod",
        timeout_s=90,
    ),
    Scenario(
        name="refcount-underflow",
        summary="refcount_dec_and_test() from zero: refcount_warn_saturate's WARN, fatal",
        category="warn",
        modules=("crashlab_refcount",),
        cmdline=(*_OOPS_PANIC, "panic_on_warn=1"),
        trigger=_insmod_trigger("crashlab_refcount"),
        function="crashlab_session_put",
        module="crashlab_refcount",
        source_file="crashlab_refcount.c",
        panic_pattern=r"refcount_t: underflow; use-after-free\.",
        comm="insmod",
        timeout_s=90,
    ),
    Scenario(
        name="abba-deadlock",
        summary="two kthreads take two mutexes in opposite orders and deadlock",
        category="hung-task",
        modules=("crashlab_abba",),
        # As for hung-task: hung_task_panic is a sysctl only, so the trigger sets it.
        cmdline=_OOPS_PANIC,
        trigger=_insmod_trigger(
            "crashlab_abba",
            "echo 1 > /proc/sys/kernel/hung_task_panic",
            "echo 2 > /proc/sys/kernel/hung_task_check_interval_secs",
            "echo 10 > /proc/sys/kernel/hung_task_timeout_secs",
        ),
        function="crashlab_a_fn",
        module="crashlab_abba",
        source_file="crashlab_abba.c",
        # crashlab_a blocks first and is first in the task list, so it is reported first.
        panic_pattern=r"INFO: task crashlab_a:\d+ blocked for more than \d+ seconds\.",
        comm="khungtaskd",
        timeout_s=180,
    ),
    Scenario(
        name="rcu-stall",
        summary="a kthread spins inside rcu_read_lock() until panic_on_rcu_stall fires",
        category="rcu-stall",
        modules=("crashlab_rcu",),
        # A 3 s stall timeout (the least the kernel accepts) reports the stall long before
        # the soft-lockup watchdog's 2 * watchdog_thresh = 20 s. The trigger sets it (the
        # rcupdate parameter is writable at run time and read when a grace period starts)
        # rather than the command line, where under TCG a slow boot trips 3 s stalls of
        # its own; panic_on_rcu_stall is a sysctl on 6.1 and 6.12 alike.
        cmdline=_OOPS_PANIC,
        trigger=_insmod_trigger(
            "crashlab_rcu",
            "echo 3 > /sys/module/rcupdate/parameters/rcu_cpu_stall_timeout",
            "echo 1 > /proc/sys/kernel/panic_on_rcu_stall",
        ),
        function="crashlab_rcu_spin",
        module="crashlab_rcu",
        source_file="crashlab_rcu.c",
        panic_pattern=r"rcu: INFO: rcu_\w+ (?:self-)?detected stalls? on CPU",
        # The stalled CPU's own tick reports first (the others wait RCU_STALL_RAT_DELAY
        # jiffies more) and panics there, interrupting the spinner.
        comm="crashlab_rcu",
        timeout_s=150,
    ),
    Scenario(
        name="stack-protector",
        summary="a stack buffer overflow overwrites the canary; __stack_chk_fail panics",
        category="stack-protector",
        modules=("crashlab_canary",),
        cmdline=_OOPS_PANIC,
        trigger=_insmod_trigger("crashlab_canary"),
        function="crashlab_fill_name",
        module="crashlab_canary",
        source_file="crashlab_canary.c",
        panic_pattern=(
            r"stack-protector: Kernel stack is corrupted in: crashlab_fill_name\+0x"
        ),
        comm="insmod",
        timeout_s=90,
    ),
    Scenario(
        name="invalid-opcode",
        summary="a module executes ud2 outside any BUG() site",
        category="invalid-opcode",
        modules=("crashlab_ud",),
        cmdline=_OOPS_PANIC,
        trigger=_insmod_trigger("crashlab_ud"),
        function="crashlab_dispatch",
        module="crashlab_ud",
        source_file="crashlab_ud.c",
        panic_pattern=r"invalid opcode: 0000 \[#1\]",
        comm="insmod",
        timeout_s=90,
    ),
)

#: All scenarios by name, in the order ``kdx lab list`` shows them.
SCENARIOS: dict[str, Scenario] = {s.name: s for s in _SCENARIO_LIST}


def get(name: str) -> Scenario:
    """Look a scenario up by name; an unknown name is a user error that lists the valid ones."""
    try:
        return SCENARIOS[name]
    except KeyError:
        valid = ", ".join(SCENARIOS)
        raise KdxError(f"unknown lab scenario {name!r}; choose one of: {valid}") from None


def source_line(scenario: Scenario, source_dir: Path = MODULES_DIR) -> int | None:
    """Return the 1-based line of the scenario's ``KDX-CRASH-LINE`` marker, if it has one.

    The line is read from the source every time rather than stored, so the ground truth
    follows the code. A scenario whose culprit is in the core kernel has no source file and
    gets ``None``; a module source without exactly one marker is a broken lab, reported as
    a KdxError rather than guessed around.
    """
    if scenario.source_file is None:
        return None
    path = source_dir / scenario.source_file
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise KdxError(f"cannot read the source of scenario {scenario.name!r}: {exc}") from exc
    hits = [n for n, line in enumerate(text.splitlines(), start=1) if CRASH_LINE_MARKER in line]
    if len(hits) != 1:
        raise KdxError(
            f"{path} must mark exactly one line with {CRASH_LINE_MARKER}, found {len(hits)}"
        )
    return hits[0]


def kbuild_modules(source_dir: Path = MODULES_DIR) -> tuple[str, ...]:
    """Module names the Kbuild in `source_dir` builds (its ``obj-m`` entries), in order.

    The machinery and the tests use this to know which ``NAME.ko`` files one build yields,
    without keeping a second list that could drift from the Kbuild.
    """
    try:
        text = (source_dir / "Kbuild").read_text(encoding="utf-8")
    except OSError as exc:
        raise KdxError(f"cannot read the lab modules' Kbuild: {exc}") from exc
    names: list[str] = []
    for match in re.finditer(r"^\s*obj-m\s*[+:]?=\s*(.+)$", text, flags=re.MULTILINE):
        for obj in match.group(1).split():
            if obj.endswith(".o"):
                names.append(obj[: -len(".o")])
    return tuple(names)


def module_source(module: str, source_dir: Path = MODULES_DIR) -> str:
    """The C file (relative to `source_dir`) a lab module is built from.

    A module is one C file named after it, unless the Kbuild gives it a composite rule
    (``hello_crash-y := hello-crash.o``), which is read rather than repeated here.
    """
    try:
        text = (source_dir / "Kbuild").read_text(encoding="utf-8")
    except OSError as exc:
        raise KdxError(f"cannot read the lab modules' Kbuild: {exc}") from exc
    match = re.search(rf"^\s*{re.escape(module)}-(?:y|objs)\s*:?=\s*(\S+)\.o\b", text,
                      flags=re.MULTILINE)
    return f"{match.group(1)}.c" if match else f"{module}.c"
