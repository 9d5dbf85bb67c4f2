"""The records of a diagnosis: plain, versioned, storable.

A fleet service will keep millions of these and query them, so every field is a plain
value (no drgn objects), names are stable, and ``schema`` says which shape a record has.
Claims point at evidence by id, so a reader can check each one.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from kdx.model.locks import LockGraph
from kdx.model.memory.slabtrack import SlabTrack
from kdx.model.records import Hex

SCHEMA = "kdx.analysis/2"


@dataclass(frozen=True)
class Evidence:
    id: str  # e.g. "log-oops", "stack-panic-task", "registers"
    title: str
    lines: list[str]


@dataclass(frozen=True)
class SourceExcerpt:
    file: str
    first_line: int
    lines: list[str]
    marked_line: int


@dataclass(frozen=True)
class Instruction:
    address: Hex
    text: str  # "hello_init+0x11: movb $0x1, 0x0"
    faulting: bool


@dataclass(frozen=True)
class Culprit:
    function: str | None
    offset: int | None
    module: str | None
    file: str | None
    line: int | None
    address: Hex | None
    module_taints: list[str]
    source: SourceExcerpt | None
    disassembly: list[Instruction]
    registers_used: dict[str, Hex]
    reasoning: str
    evidence: list[str]


@dataclass(frozen=True)
class Context:
    pid: int | None
    comm: str | None
    cpu: int | None
    interrupt_context: bool
    user_mode: bool | None
    fault_address: Hex | None
    error_code: int | None
    error_code_decoded: list[str]
    taint: str
    taint_flags: list[str]
    uptime_seconds: float | None
    release: str
    panic_message: str
    evidence: list[str]


@dataclass(frozen=True)
class Signature:
    title: str
    hash: str
    frames: list[str]  # the frames hashed, culprit first
    version: int  # the signature rules' version (kdx.diagnosis.signature.SIGNATURE_VERSION)


@dataclass(frozen=True)
class PointsTo:
    """Where an address involved in the bad access points, as ``kmem ADDR`` finds it."""

    address: Hex
    role: str  # "the object the pointer was read from", "the address accessed"
    variable: str | None  # the C variable holding the address, when DWARF names one
    what: str  # "kmalloc-32 object 0xff.., allocated", "no page: ..."
    tracks: list[SlabTrack] = field(default_factory=list)  # slub_debug=U: who allocated
    # and who freed the slab object (alloc first), empty when SLUB kept no tracks


@dataclass(frozen=True)
class Explanation:
    """Why the faulting access was bad: the pointer's value and what it means, the C
    expression it was used in (from DWARF), and where the addresses involved point."""

    access: str  # "read", "write" or "access"
    address: Hex  # the address the instruction accessed
    register: str | None  # the base register (None: an absolute address)
    pointer: Hex  # the base register's value
    offset: int  # from the pointer to the address accessed
    value_kind: str | None  # "null", "list-poison1", "slab-free-poison", ... (None: plain)
    value_name: str  # "LIST_POISON1"
    value_meaning: str  # what that value says happened
    expression: str | None  # "next->value"
    member: str | None  # "value"
    struct: str | None  # "struct crashlab_entry"
    loaded_from: str | None  # "entry->list.next"
    points_to: list[PointsTo]
    text: str  # the whole explanation in one sentence


@dataclass(frozen=True)
class CheckerFinding:
    """A generic checker that caught a misuse (refcount_t, list, slab free): the trap is
    in the checker, the culprit is its first caller outside it."""

    function: str  # the checker function the CPU stopped in: "refcount_warn_saturate"
    checks: str  # what it checks: "refcount_t misuse"
    finding: str  # what it found, in the kernel's words when it printed some
    text: str  # "refcount_t underflow; use-after-free detected by refcount_warn_saturate"
    points_to: list[PointsTo] = field(default_factory=list)  # what the addresses in the
    # finding are ("list_del corruption, ADDR->next ...": the entry's slab object)


@dataclass(frozen=True)
class SpinLoop:
    """The loop a stuck CPU spins in: the backward jump around the interrupted
    instruction in the culprit's code, as offsets into the function."""

    function: str
    start: Hex  # the jump's target: the loop's first instruction
    end: Hex  # the backward jump itself
    text: str  # "crashlab_spin_forever+0x10 to +0x12"


@dataclass(frozen=True)
class StalledTask:
    """The task a stalled CPU was running, and the function it was interrupted in."""

    cpu: int
    pid: int
    comm: str
    function: str | None


@dataclass(frozen=True)
class Stall:
    """Who holds a CPU (soft lockup) or an RCU grace period (RCU stall) up: the CPUs the
    kernel's report names, for RCU the CPUs the grace period still waits for in the dump
    (``rcu_node.qsmask``) and the tasks preempted inside a read-side section, the task
    on each CPU, and the loop it spins in."""

    kind: str  # "rcu-stall" or "soft-lockup"
    cpus: list[int]  # named by the kernel's report
    waiting_cpus: list[int] | None  # RCU: qsmask of the leaf rcu_nodes (None: unreadable)
    blocked_pids: list[int]  # RCU: tasks that block the grace period
    tasks: list[StalledTask]
    loop: SpinLoop | None
    text: str


@dataclass(frozen=True)
class StackSummary:
    pid: int | None
    comm: str | None
    cpu: int | None
    frames: list[str]  # "#0 hello_init+0x11 [hello_crash] hello-crash.c:21"


@dataclass(frozen=True)
class Verdict:
    schema: str
    category: str
    summary: str
    culprit: Culprit
    context: Context
    signature: Signature
    evidence: list[Evidence]
    stacks: list[StackSummary]
    details: dict = field(default_factory=dict)  # category-specific (locks, OOM tables)
    next_steps: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    dump: str = ""
    explanation: Explanation | None = None  # the bad access, for faults through memory
    checker: CheckerFinding | None = None  # the checker that fired, when one did
    locks: LockGraph | None = None  # the blocked tasks' lock waits and a deadlock cycle
    stall: Stall | None = None  # who holds up a stuck CPU or an RCU grace period

    def to_dict(self) -> dict:
        """The verdict as JSON-ready values, exactly the ``data`` of ``kdx analyze --json``.

        >>> kdx.open_dump("vmcore").analyze().to_dict()["culprit"]["line"]  # doctest: +SKIP
        21
        """
        from kdx.render.json_out import plain  # the renderer --json uses, imported late:
        # render/ builds on the records, not the other way round

        return plain(self)
