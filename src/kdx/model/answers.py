"""Records that some commands answer with: model records paired with what was asked.

Most commands answer with a record of their own model module (``ps`` a list of
``TaskInfo``). A few answer with a pairing: a task and its children, a file name and its
users, a page frame number and its address. These small records give such answers a
named, typed shape, so JSON readers get the same fields every time and the schema
generator can describe them.
"""

from __future__ import annotations

from dataclasses import dataclass

from kdx.model.devices import BlockDevice, CharDevice
from kdx.model.files import InodePages, TaskFiles, TaskId
from kdx.model.fuser import FileUser
from kdx.model.log import LogDocument
from kdx.model.memory import PageInfo
from kdx.model.records import Hex
from kdx.model.search import SearchResult
from kdx.model.session_records import (
    Alias,
    CommandSummary,
    ExtensionInfo,
    HelpText,
    SessionSetting,
)
from kdx.model.task_answers import TaskChildren, TaskLastRun, TaskRlimits, TaskThreads
from kdx.model.vm import TaskVm, Vma, VmaPages

__all__ = [
    "Alias", "AsciiValues", "BugBytes", "CommandSummary", "DeviceTables",
    "EvalResult", "ExtensionInfo", "FileUsers", "HelpText", "InodePageCache", "LogDocument",
    "ModuleTaints",
    "PageFrame", "PercpuOffset", "PhysicalToVirtual", "RawDumpFile", "SessionSetting",
    "TaskChildren",
    "TaskFilesPageCache", "TaskFilesReference", "TaskLastRun", "TaskRlimits", "TaskSearch",
    "TaskThreads", "TaskVmPages", "VmFlags", "VmReference",
]


# -- session-wide ----------------------------------------------------------------------


@dataclass(frozen=True)
class DeviceTables:
    """``dev``: the character and block device tables."""

    char: list[CharDevice]
    block: list[BlockDevice]


@dataclass(frozen=True)
class ModuleTaints:
    """``mod -t``: a module's taint letters."""

    name: str
    taints: str


# -- numbers and memory ----------------------------------------------------------------

@dataclass(frozen=True)
class EvalResult:
    """``eval``: the 64-bit result, and the same bits read as a signed number."""

    value: Hex
    signed: int


@dataclass(frozen=True)
class AsciiValues:
    """``ascii``: the values whose bytes were shown, or the chart (``chart`` true)."""

    chart: bool
    values: list[Hex]


@dataclass(frozen=True)
class BugBytes:
    """``dis -b``: how many bytes follow a ``ud2`` (the BUG() annotation kdx skips)."""

    bug_bytes: int


@dataclass(frozen=True)
class RawDumpFile:
    """``rd -r FILE``: which bytes went to which file."""

    address: Hex
    count: int
    file: str


@dataclass(frozen=True)
class PageFrame:
    """``btop`` and ``ptob``: an address and its page frame number."""

    address: Hex
    pfn: int


@dataclass(frozen=True)
class PhysicalToVirtual:
    """``ptov PHYSICAL``: the kernel's direct-map address of a physical address."""

    physical: Hex
    virtual: Hex


@dataclass(frozen=True)
class PercpuOffset:
    """``ptov OFFSET:CPUS``: a per-CPU offset and its address on each CPU asked about
    (keys are CPU numbers)."""

    offset: Hex
    cpus: dict[str, Hex]


@dataclass(frozen=True)
class TaskSearch:
    """``search -t``: one task's kernel stack search."""

    pid: int
    task: Hex
    result: SearchResult


# -- tasks -----------------------------------------------------------------------------


# -- files and memory maps -------------------------------------------------------------

@dataclass(frozen=True)
class FileUsers:
    """``fuser PATH``: the tasks that use a file, and how."""

    file: str
    users: list[FileUser]


@dataclass(frozen=True)
class TaskFilesPageCache:
    """``files -c``: a task's open files and each file's page cache."""

    files: TaskFiles
    page_cache: list[InodePages]


@dataclass(frozen=True)
class TaskFilesReference:
    """``files -R REF``: a task's open files and the descriptors that reference REF."""

    files: TaskFiles
    reference: str
    matches: list[int]


@dataclass(frozen=True)
class InodePageCache:
    """``files -p INODE``: an inode's page cache and its pages' mem_map entries."""

    inode: InodePages
    pages: list[PageInfo]


@dataclass(frozen=True)
class VmFlags:
    """``vm -f FLAGS``: a vm_flags value and the names of its bits."""

    flags: Hex
    names: list[str]


@dataclass(frozen=True)
class TaskVmPages:
    """``vm -p``: a task's memory map and each area's pages."""

    vm: TaskVm
    pages: list[VmaPages]


@dataclass(frozen=True)
class VmReference:
    """``vm -R REF``: the areas and pages of a task's map that match REF; only ``mm``
    when REF is the task's mm_struct or page directory."""

    task: TaskId
    reference: str
    mm: Hex | None
    vmas: list[Vma | VmaPages]
