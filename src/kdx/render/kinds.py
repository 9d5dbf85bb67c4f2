"""Every JSON kind kdx writes, and the record type its ``data`` holds.

One table, so a reader (and the schema generator) finds a kind's shape in one place:
``KINDS["ps"]`` is ``list[TaskInfo]``. A command that emits a new kind adds its line here;
``python -m kdx.render.json_schema`` then writes the kind's schema file, and the tests
validate the command's JSON against it and fail on a kind missing from this table.

A few answers are still plain dicts (``vm -P``); their shapes are written down here as
``TypedDict``s until they become records, so they are described and validated like every
other kind.
"""

from __future__ import annotations

from typing import Any, Optional, TypedDict, Union

from kdx.capture.crashkernel import Evaluation, Recommendation
from kdx.capture.memusage import MemUsage
from kdx.capture.status import StatusReport
from kdx.diagnosis.verdict import Verdict
from kdx.model.answers import (
    Alias,
    AsciiValues,
    BugBytes,
    CommandSummary,
    DeviceTables,
    EvalResult,
    ExtensionInfo,
    FileUsers,
    HelpText,
    InodePageCache,
    LogDocument,
    ModuleTaints,
    PageFrame,
    PercpuOffset,
    PhysicalToVirtual,
    RawDumpFile,
    SessionSetting,
    TaskChildren,
    TaskFilesPageCache,
    TaskFilesReference,
    TaskLastRun,
    TaskRlimits,
    TaskSearch,
    TaskThreads,
    TaskVmPages,
    VmFlags,
    VmReference,
)
from kdx.model.bpf import BpfListing
from kdx.model.devices import DiskIo, PciBus
from kdx.model.disasm import Disassembly, SourceListing
from kdx.model.files import DentryInfo, TaskFiles, TaskId
from kdx.model.ipc import IpcObjects
from kdx.model.irq import IdtEntry, Irq, Softirq
from kdx.model.log import AuditRecord
from kdx.model.machine import MachineInfo, MemoryRange
from kdx.model.memory import (
    AddressReport,
    FreeBlock,
    MemoryFigures,
    MemoryLayout,
    PageInfo,
    SlabCache,
    VmapArea,
    VmStats,
    ZoneFree,
    ZoneStats,
)
from kdx.model.modules import ModuleInfo
from kdx.model.mounts import Mount, MountDetail
from kdx.model.net import Neighbour, NetDevice, TaskSockets
from kdx.model.paging import PteInfo, Translation
from kdx.model.rawmemory import CString, MemoryDisplay
from kdx.model.runqueue import CpuRunqueue
from kdx.model.search import SearchResult
from kdx.model.signals import DecodedSigset, SignalName, TaskSignals, ThreadGroupSignals
from kdx.model.stack import Backtrace, RawStack, StackOverflow, StackSearch, StackText
from kdx.model.swap import SwapDevice
from kdx.model.symbols import SymbolAnswer, SymbolEntry
from kdx.model.syscalls import SyscallEntry
from kdx.model.system import SystemInfo
from kdx.model.tasks import TaskArgs, TaskContext, TaskInfo, TaskTimes
from kdx.model.timers import CpuHrtimers, TimerWheel
from kdx.model.values import (
    CpuInfoValue,
    Declaration,
    PercpuSymbol,
    PrintedValue,
    StructView,
    TaskValues,
)
from kdx.model.vm import TaskVm, VmaPages
from kdx.model.waitq import WaitQueue
from kdx.model.walk import WalkResult

__all__ = ["KINDS", "kind_names"]


# -- answers that are still dicts ---------------------------------------------------------

class SingleVma(TypedDict):
    """``vm -P VMA``: one area of a task's map and its pages (None: no such area)."""

    task: TaskId
    vma: VmaPages | None




#: kind -> the type of the document's ``data``.
KINDS: dict[str, Any] = {
    # sessions and the system
    "help": HelpText,
    "alias": list[Alias],
    "gdb": str,
    "extend": list[ExtensionInfo],
    "py": str,
    "set-variables": list[SessionSetting],
    "help-index": list[CommandSummary],
    "sys": SystemInfo,
    "sys-config": dict[str, str],
    "syscalls": list[SyscallEntry],
    "mach": MachineInfo,
    "mach-cpus": list[CpuInfoValue],
    "mach-memmap": list[MemoryRange],
    "log": LogDocument,
    "log-audit": Optional[list[AuditRecord]],
    "mod": list[ModuleInfo],
    "mod-taints": list[ModuleTaints],
    # tasks
    "ps": list[TaskInfo],
    "ps-summary": dict[str, int],
    "ps-parents": list[list[TaskInfo]],
    "ps-children": list[TaskChildren],
    "ps-threads": list[TaskThreads],
    "ps-times": list[TaskTimes],
    "ps-last-run": list[TaskLastRun],
    "ps-args": list[TaskArgs],
    "ps-rlimits": list[TaskRlimits],
    "set": TaskContext,
    "task": list[TaskValues],
    "foreach-task": list[TaskValues],
    "foreach-set": list[TaskContext],
    "foreach-files": list[TaskFiles],
    "foreach-vm": list[Union[TaskVm, TaskVmPages, TaskValues]],
    "runq": list[CpuRunqueue],
    "sig": list[TaskSignals],
    "sig-group": list[ThreadGroupSignals],
    "sig-list": list[SignalName],
    "sig-sigset": DecodedSigset,
    # stacks and code
    "bt": list[Backtrace],
    "bt-raw": list[RawStack],
    "bt-eframes": list[StackSearch],
    "bt-text": list[StackText],
    "bt-overflow": list[StackOverflow],
    "dis": Disassembly,
    "dis-source": SourceListing,
    "dis-bug-bytes": BugBytes,
    "x-i": Disassembly,
    "sym": list[SymbolAnswer],
    "sym-list": list[SymbolEntry],
    "sym-search": list[SymbolEntry],
    # memory
    "rd": MemoryDisplay,
    "rd-file": RawDumpFile,
    "x": MemoryDisplay,
    "x-s": list[CString],
    "search": Union[SearchResult, list[TaskSearch]],
    "kmem-i": MemoryFigures,
    "kmem-s": list[SlabCache],
    "kmem-address": list[AddressReport],
    "kmem-p": list[PageInfo],
    "kmem-f": list[ZoneFree],
    "kmem-f-address": list[FreeBlock],
    "kmem-v": list[VmapArea],
    "kmem-vmstat": VmStats,
    "kmem-n": MemoryLayout,
    "kmem-z": list[ZoneStats],
    "vm": list[Union[TaskVm, TaskVmPages, VmReference, TaskValues, SingleVma]],
    "vm-flags": VmFlags,
    "vtop": list[Translation],
    "ptov": list[Union[PhysicalToVirtual, PercpuOffset]],
    "pte": list[PteInfo],
    "btop": list[PageFrame],
    "ptob": list[PageFrame],
    # data
    "p": PrintedValue,
    "p-percpu": PercpuSymbol,
    "struct": StructView,
    "union": StructView,
    "whatis": Declaration,
    "eval": EvalResult,
    "ascii": AsciiValues,
    "list": WalkResult,
    "tree": WalkResult,
    # files, devices, networking, swap, IPC, wait queues
    "files": list[Union[TaskFiles, TaskFilesPageCache, TaskFilesReference]],
    "files-dentry": DentryInfo,
    "files-pages": InodePageCache,
    "fuser": list[FileUsers],
    "mount": list[Union[Mount, MountDetail]],
    "dev": DeviceTables,
    "dev-disks": list[DiskIo],
    "dev-pci": list[PciBus],
    "irq": list[Irq],
    "irq-affinity": list[Irq],
    "irq-stats": list[Irq],
    "irq-idt": list[IdtEntry],
    "irq-softirqs": list[Softirq],
    "net-devices": list[NetDevice],
    "net-arp": list[Neighbour],
    "net-sockets": list[TaskSockets],
    "net-address": str,
    "swap": list[SwapDevice],
    "ipcs": IpcObjects,
    "bpf": BpfListing,
    "waitq": WaitQueue,
    "timer": TimerWheel,
    "timer-hrtimers": list[CpuHrtimers],
    # the command line's own documents
    "analysis": Verdict,
    "kdump.crashkernel": Evaluation,
    "kdump.crashkernel.recommend": Recommendation,
    "kdump.mem_usage": MemUsage,
    "kdump.status": StatusReport,
}


def kind_names() -> list[str]:
    """Every kind, sorted."""
    return sorted(KINDS)
