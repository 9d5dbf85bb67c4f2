"""Renderers on records built by hand: crash's text layout, with no dump and no drgn.

A renderer takes model records and returns crash-style text, so its layout can be
checked on exactly the values that matter (an active task, a kernel thread, a module
without debug info, a level prefix) in milliseconds. The expected lines are crash 8.0.6's
for the same values on the lab's 6.1 null-deref dump, where the comparison tests check
the whole outputs against crash itself.
"""

from __future__ import annotations

from kdx.model.log import KernelLog, LogRecord
from kdx.model.modules import ModuleInfo, ModuleRegion
from kdx.model.stack import Backtrace, Frame
from kdx.model.tasks import TaskInfo
from kdx.render.crash.bt import BtOptions, render_backtrace
from kdx.render.crash.log import LogOptions, render_log
from kdx.render.crash.mod import render_modules
from kdx.render.crash.ps import render_ps


def task(pid: int, ppid: int, cpu: int, address: int, state: str, comm: str, *,
         kernel_thread: bool, active: bool = False, mem_percent: float = 0.0,
         vsz_kib: int = 0, rss_kib: int = 0) -> TaskInfo:
    """A ps row; the fields ps does not print get neutral values."""
    return TaskInfo(pid=pid, ppid=ppid, cpu=cpu, task=address, state=state, state_value=0,
                    mem_percent=mem_percent, vsz_kib=vsz_kib, rss_kib=rss_kib, comm=comm,
                    kernel_thread=kernel_thread, active=active, tgid=pid, group_leader=True,
                    parent=0, mm=0 if kernel_thread else 0xFF34E929824A0000, policy=0,
                    prio=120, start_time=0, last_run=0, utime=0, stime=0)


def test_ps_marks_the_active_task_and_brackets_kernel_threads() -> None:
    rows = [task(0, 0, 0, 0xFFFFFFFFABE1AA40, "RU", "swapper/0", kernel_thread=True),
            task(2, 0, 1, 0xFF34E929811DA0C0, "IN", "kthreadd", kernel_thread=True),
            task(235, 234, 1, 0xFF34E9298246A0C0, "RU", "insmod", kernel_thread=False,
                 active=True, mem_percent=0.2632964718272775, vsz_kib=2260, rss_kib=1380)]
    assert render_ps(rows).splitlines() == [
        "      PID    PPID  CPU       TASK        ST  %MEM      VSZ      RSS  COMM",
        "        0       0   0  ffffffffabe1aa40  RU   0.0        0        0  [swapper/0]",
        "        2       0   1  ff34e929811da0c0  IN   0.0        0        0  [kthreadd]",
        ">     235     234   1  ff34e9298246a0c0  RU   0.3     2260     1380  insmod",
    ]
    assert render_ps(rows[2:], header=False) == (
        ">     235     234   1  ff34e9298246a0c0  RU   0.3     2260     1380  insmod\n")


def test_mod_names_the_object_file_or_why_there_is_none() -> None:
    hello = ModuleInfo(
        name="hello_crash", address=0xFFFFFFFFC028F000, base=0xFFFFFFFFC028E000, size=12288,
        text_base=0xFFFFFFFFC028E000, text_size=0, init_base=0xFFFFFFFFC0298000,
        init_size=12288, state="coming", taints="OE", debug_file="/lab/hello_crash.ko",
        memory_layout="layout",
        regions=[ModuleRegion("CORE", 0xFFFFFFFFC028E000, 12288),
                 ModuleRegion("INIT", 0xFFFFFFFFC0298000, 12288)])
    loop = ModuleInfo(
        name="loop", address=0xFFFFFFFFC02A22C0, base=0xFFFFFFFFC029C000, size=32768,
        text_base=0xFFFFFFFFC029C000, text_size=16384, init_base=0, init_size=0,
        state="live", taints="", debug_file=None, memory_layout="layout",
        regions=[ModuleRegion("CORE", 0xFFFFFFFFC029C000, 32768), ModuleRegion("INIT", 0, 0)])
    assert render_modules([hello, loop]).splitlines() == [
        "     MODULE       NAME               BASE         SIZE  OBJECT FILE",
        "ffffffffc028f000  hello_crash  ffffffffc028e000  12288  /lab/hello_crash.ko",
        "ffffffffc02a22c0  loop         ffffffffc029c000  32768  (not loaded)  "
        "[CONFIG_KALLSYMS]",
    ]


def _record(seq: int, text: str, level: int = 4) -> LogRecord:
    return LogRecord(seq=seq, timestamp_ns=8_768_889_808, level=level, facility=0,
                     caller_tid=235, caller_cpu=None, continuation=False, lines=[text])


def test_log_prefixes_seconds_or_levels() -> None:
    log = KernelLog(records=[_record(424, " </TASK>"), _record(426, "CR2: 0000000000000000"),
                             _record(427, "Kernel panic", level=0)],
                    caller_width=6, lockless=True)
    assert render_log(log, LogOptions()).splitlines() == [
        "[    8.768889]  </TASK>",
        "[    8.768889] CR2: 0000000000000000",
        "[    8.768889] Kernel panic",
    ]
    assert render_log(log, LogOptions(timestamps="none", level=True)).splitlines() == [
        "<4> </TASK>", "<4>CR2: 0000000000000000", "<0>Kernel panic"]


def _frame(level: int, sp: int, pc: int, function: str, offset: int) -> Frame:
    return Frame(level=level, sp=sp, pc=pc, function=function, offset=offset, module=None,
                 source_file=None, source_line=None, inline=False, is_exception_frame=False,
                 stack="task")


def test_bt_header_and_frames() -> None:
    trace = Backtrace(
        pid=235, task=0xFF34E9298246A0C0, cpu=1, comm="insmod", active=True, panic=True,
        start="kdump", exception_frames=[],
        frames=[_frame(0, 0xFF7FBDD5C046BAF8, 0xFFFFFFFFAA46C62F, "machine_kexec", 447),
                _frame(1, 0xFF7FBDD5C046BB50, 0xFFFFFFFFAA5646B7, "__crash_kexec", 119)])
    assert render_backtrace(trace).splitlines() == [
        'PID: 235      TASK: ff34e9298246a0c0  CPU: 1    COMMAND: "insmod"',
        " #0 [ff7fbdd5c046baf8] machine_kexec at ffffffffaa46c62f",
        " #1 [ff7fbdd5c046bb50] __crash_kexec at ffffffffaa5646b7",
    ]
    with_offsets = render_backtrace(trace, BtOptions(symbol_offsets=True, hex_offsets=True))
    assert with_offsets.splitlines()[1:] == [
        " #0 [ff7fbdd5c046baf8] machine_kexec+0x1bf at ffffffffaa46c62f",
        " #1 [ff7fbdd5c046bb50] __crash_kexec+0x77 at ffffffffaa5646b7",
    ]
    decimal = render_backtrace(trace, BtOptions(symbol_offsets=True))
    assert " #0 [ff7fbdd5c046baf8] machine_kexec+447 at ffffffffaa46c62f" in decimal
