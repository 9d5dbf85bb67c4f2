"""The library front door: open a dump once, then ask it questions in Python.

Everything the command line shows is reachable here as records (the model's frozen
dataclasses), so a script never parses crash-style text. ``Dump.run`` keeps the crash
command language available for what has no method yet, and hands back both the text and
the record the command emitted.

>>> import kdx
>>> dump = kdx.open_dump("vmcore")                  # doctest: +SKIP
>>> dump.sys().panic                                # doctest: +SKIP
'BUG: kernel NULL pointer dereference, address: 0000000000000000'
>>> dump.analyze().culprit.module                   # doctest: +SKIP
'hello_crash'
"""

from __future__ import annotations

import functools
import io
from dataclasses import dataclass, field
from os import PathLike
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Sequence, Union

# Record fields must resolve at run time (the JSON renderer reads their type hints);
# this module is imported only when a kdx.* name is first used, so ``import kdx`` stays
# cheap all the same.
from kdx.model.records import Hex
from kdx.model.stack import Backtrace

if TYPE_CHECKING:
    import drgn

    from kdx.diagnosis.verdict import Verdict
    from kdx.model.log import KernelLog
    from kdx.model.modules import ModuleInfo
    from kdx.model.stack import Frame, StackReader
    from kdx.model.system import SystemInfo
    from kdx.model.tasks import TaskInfo
    from kdx.session.session import Session
    from kdx.target.open import Target

__all__ = ["CommandResult", "Dump", "Stack", "StackFrame", "open_dump", "to_dict"]

StrPath = Union[str, "PathLike[str]"]


def to_dict(record: Any) -> Any:
    """The JSON-ready form of any kdx record, exactly as ``--json`` writes its ``data``.

    >>> kdx.to_dict(dump.task(1))["comm"]             # doctest: +SKIP
    'systemd'
    """
    from kdx.render.json_out import plain

    return plain(record)


@dataclass(frozen=True)
class StackFrame:
    """One frame of a backtrace, innermost first, named as crash's ``bt`` names it.

    ``level`` is crash's ``#N`` (None for a frame shown only as an exception frame);
    functions inlined into a frame come just before it with ``inline`` set.
    """

    level: int | None
    function: str | None
    offset: int | None
    module: str | None  # None for the kernel itself
    address: Hex  # the return address, or the interrupted instruction
    file: str | None
    line: int | None
    inline: bool = False

    def to_dict(self) -> dict[str, Any]:
        """The frame as a JSON-ready dict."""
        return to_dict(self)


@dataclass(frozen=True)
class Stack:
    """A task's backtrace: who it is and its frames. ``record`` is the model's full
    ``Backtrace`` (exception frames, stack pointers), the record ``bt --json`` writes."""

    pid: int
    comm: str
    cpu: int
    task: Hex  # the task_struct address
    panic: bool  # the task that panicked
    frames: list[StackFrame]
    record: Backtrace = field(repr=False)

    @property
    def functions(self) -> list[str]:
        """The frames' function names, innermost first (unnamed frames as ``?``)."""
        return [f.function or "?" for f in self.frames]

    def to_dict(self) -> Any:
        """The model record as ``bt --json`` writes it (its frames' full detail)."""
        return to_dict(self.record)


@dataclass(frozen=True)
class CommandResult:
    """What one crash command line did: its text as crash shows it, the record(s) it
    emitted (what ``--json`` would write), and whether it succeeded.

    A command that emits once (most do) has that ``kind`` and ``record``; ``emitted``
    holds every ``(kind, record)`` pair for the few that emit more than once.
    """

    command: str
    text: str
    ok: bool
    error: str  # the command's error and warning lines; "" when it had none
    emitted: list[tuple[str, Any]] = field(default_factory=list)

    @property
    def kind(self) -> str | None:
        """The JSON kind of the last record emitted (``"ps"``, ``"bt"``...)."""
        return self.emitted[-1][0] if self.emitted else None

    @property
    def record(self) -> Any:
        """The last record emitted, or None for a command that emitted none."""
        return self.emitted[-1][1] if self.emitted else None

    def to_dict(self) -> Any:
        """The record as ``--json`` writes its ``data``."""
        return to_dict(self.record)


class Dump:
    """An opened vmcore with its debug info. Records are built on first use and kept,
    so asking twice costs nothing; ``run`` shares them with the crash commands.

    >>> dump = kdx.open_dump("vmcore")                # doctest: +SKIP
    >>> [t.comm for t in dump.tasks() if t.active]    # doctest: +SKIP
    ['insmod', 'swapper/1']
    """

    def __init__(self, target: Target) -> None:
        self.target = target
        self._session: Session | None = None
        self._warnings: list[str] = []
        self._out = io.StringIO()
        self._err = io.StringIO()

    def __repr__(self) -> str:
        return f"<kdx.Dump {self.target.path} ({self.target.release})>"

    @property
    def prog(self) -> drgn.Program:
        """The drgn Program, for anything kdx has no record of.

        >>> dump.prog["init_task"].comm.string_()     # doctest: +SKIP
        b'swapper/0'
        """
        return self.target.prog

    @property
    def path(self) -> Path | None:
        """The dump as it was named when opened."""
        return self.target.path

    @property
    def warnings(self) -> list[str]:
        """What opening the dump could not do (modules left without debug info...) and
        what the records could not read (a damaged task...), in order."""
        return [*self.target.warnings, *self._warnings]

    @property
    def session(self) -> Session:
        """The crash-style session ``run`` uses; its caches are shared with the methods."""
        if self._session is None:
            self._session = _recording_session_class()(self.target, out=self._out,
                                                       err=self._err)
        return self._session

    def _cached(self, key: str, build: Callable[[], Any]) -> Any:
        return self.session.cached(key, build)

    def _warned(self) -> _Warnings:
        """A list a model function appends its warnings to, kept once each."""
        return _Warnings(self._warnings)

    def sys(self) -> SystemInfo:
        """The machine when it crashed, as crash's ``sys`` shows it.

        >>> dump.sys().release                        # doctest: +SKIP
        '6.1.0-57-cloud-amd64'
        """
        from kdx.model.system import system_info

        return self._cached("sys", lambda: system_info(self.target))

    def tasks(self) -> list[TaskInfo]:
        """Every task as crash's ``ps`` lists it, in crash's order.

        >>> sum(1 for t in dump.tasks() if t.state == "UN")   # doctest: +SKIP
        0
        """
        from kdx.model.tasks import task_list

        return self._cached("tasks", lambda: task_list(self.prog, self._warned()))

    def task(self, pid: int) -> TaskInfo:
        """The task with PID ``pid`` (for PID 0, the boot CPU's idle task); LookupError
        when there is none.

        >>> dump.task(1).comm                         # doctest: +SKIP
        'systemd'
        """
        for info in self.tasks():
            if info.pid == pid:
                return info
        raise LookupError(f"no task with PID {pid} in the dump")

    def backtrace(self, pid: int | None = None) -> Stack:
        """The stack of task ``pid``, by default the task that panicked.

        >>> dump.backtrace().frames[0].function       # doctest: +SKIP
        'machine_kexec'
        """
        from kdx.model.stack import backtrace

        record = backtrace(self._stack_reader(), self._task_object(pid))
        frames = [_stack_frame(f) for f in record.frames]
        return Stack(record.pid, record.comm, record.cpu, record.task, record.panic, frames,
                     record)

    def log(self) -> KernelLog:
        """The kernel log buffer, oldest record first.

        >>> dump.log().records[-1].lines              # doctest: +SKIP
        ['Kernel Offset: disabled']
        """
        from kdx.model.log import kernel_log

        return self._cached("log", lambda: kernel_log(self.prog))

    def modules(self) -> list[ModuleInfo]:
        """The loaded modules in crash's ``mod`` order.

        >>> [m.name for m in dump.modules() if m.state == "coming"]   # doctest: +SKIP
        ['hello_crash']
        """
        from kdx.model.modules import module_list

        # read afresh, as ``mod`` does: ``run("mod -s ...")`` changes the debug files
        return module_list(self.prog, self._warned())

    def analyze(self) -> Verdict:
        """Why the kernel died: category, culprit, context and evidence (``kdx analyze``).

        >>> dump.analyze().to_dict()["category"]      # doctest: +SKIP
        'null-pointer-dereference'
        """
        from kdx.diagnosis.analyze import analyze

        return self._cached("api-analysis", lambda: analyze(self.target))

    def run(self, command: str) -> CommandResult:
        """Run one crash command line and return its text and record.

        >>> r = dump.run("ps -G")                     # doctest: +SKIP
        >>> r.kind, r.record[0].pid, r.ok             # doctest: +SKIP
        ('ps', 0, True)
        """
        session = self.session
        self._out.seek(0)
        self._out.truncate()
        self._err.seek(0)
        self._err.truncate()
        emitted: list[tuple[str, Any]] = []
        session.emitted = emitted  # type: ignore[attr-defined]
        ok = session.execute(command)
        return CommandResult(command, self._out.getvalue(), ok, self._err.getvalue(),
                             emitted)

    def _stack_reader(self) -> StackReader:
        from kdx.model.stack import StackReader

        return self._cached("stack-reader", lambda: StackReader(self.prog))

    def _task_object(self, pid: int | None) -> drgn.Object:
        """The ``struct task_struct *`` of ``pid``, or of the panic task."""
        from drgn.helpers.linux.panic import panic_task
        from drgn.helpers.linux.pid import find_task

        if pid is None:
            task = panic_task(self.prog)
            if not task:
                raise LookupError("no panic task in this dump")
            return task
        if pid == 0:
            return self.prog["init_task"].address_of_()
        task = find_task(self.prog, pid)
        if not task:
            raise LookupError(f"no task with PID {pid} in the dump")
        return task


class _Warnings(list):
    """Appends to ``into`` what it does not hold yet: records read again (``modules``)
    repeat their warnings."""

    def __init__(self, into: list[str]) -> None:
        super().__init__()
        self._into = into

    def append(self, message: str) -> None:
        if message not in self._into:
            self._into.append(message)


def _stack_frame(frame: Frame) -> StackFrame:
    return StackFrame(frame.level, frame.function, frame.offset, frame.module, frame.pc,
                      frame.source_file, frame.source_line, frame.inline)


@functools.cache
def _recording_session_class() -> type[Session]:
    """A Session that also keeps the records its commands emit. It is made on first use
    because importing the session pulls in drgn and every renderer, and ``import kdx``
    must stay cheap."""
    from kdx.session.session import Session

    class RecordingSession(Session):
        emitted: list[tuple[str, Any]] = []

        def emit(self, kind: str, record: Any, text: str | Callable[[], str]) -> None:
            self.emitted.append((kind, record))
            super().emit(kind, record, text)

    return RecordingSession


def open_dump(path: StrPath, vmlinux: StrPath | None = None, modules: Sequence[StrPath] = (),
              *, debug_dirs: Sequence[StrPath] = (), no_vmlinux: bool = False,
              btf: bool = True) -> Dump:
    """Open the vmcore at ``path`` with its debug info.

    ``vmlinux`` is found when omitted (beside the dump, the distro's debug paths, the
    directories in ``debug_dirs`` and ``$KDX_DEBUG_DIRS``, debuginfod); ``modules`` are
    ``.ko`` files or directories holding them. When no vmlinux is found, or with
    ``no_vmlinux``, symbols, types and unwind tables come from the dump itself (kallsyms,
    BTF, ORC; ``dump.warnings`` says so); ``btf=False`` also ignores the dump's BTF, as on
    a kernel built without it (symbols and raw memory only). A failure raises
    ``kdx.errors.KdxError`` with a one-sentence reason.

    >>> dump = kdx.open_dump("/var/crash/vmcore", modules=["/lib/modules"])  # doctest: +SKIP
    >>> dump.sys().panic                          # doctest: +SKIP
    'Kernel panic - not syncing: sysrq triggered crash'
    """
    from kdx.target.open import open_dump as open_target

    target = open_target(Path(path), Path(vmlinux) if vmlinux is not None else None,
                         [Path(m) for m in modules],
                         debug_dirs=[Path(d) for d in debug_dirs], no_vmlinux=no_vmlinux,
                         btf=btf)
    return Dump(target)
