"""parse_sys on hand-written text laid out as crash 8.0.6 lays out ``sys`` and its banner.

The samples follow display_sys_stats() and show_context() in crash's kernel.c and task.c:
labels right-aligned on a colon in column 12, the panic task indented to match in the
banner, and ``sys`` run through ``crash -s`` followed directly by the next command.
"""

from __future__ import annotations

from kdx.lab.oracle import parse_sys

BANNER = """\
WARNING: kernel relocated [324MB]: patching 103327 gdb minimal_symbol values

      KERNEL: /root/.cache/kdx/lab/kernels/6.1.0-56-cloud-amd64/usr/lib/debug/vmlinux-6.1.0-56-cloud-amd64  [TAINTED]
    DUMPFILE: /root/.cache/kdx/lab/runs/null-deref/vmcore  [PARTIAL DUMP]
        CPUS: 2
        DATE: Thu Nov 26 09:58:32 UTC 2026
      UPTIME: 00:00:11
LOAD AVERAGE: 0.00, 0.00, 0.00
       TASKS: 81
    NODENAME: (none)
     RELEASE: 6.1.0-56-cloud-amd64
     VERSION: #1 SMP PREEMPT_DYNAMIC Debian 6.1.192-2 (2025-11-08)
     MACHINE: x86_64  (2399 Mhz)
      MEMORY: 511.5 MB
       PANIC: "Oops: 0002 [#1] PREEMPT SMP NOPTI" (check log for details)
         PID: 123
     COMMAND: "insmod"
        TASK: ffff8880045b8000  [THREAD_INFO: ffff8880045b8000]
         CPU: 1
       STATE: TASK_RUNNING (PANIC)

"""  # noqa: E501

# sys, then bt, as `crash -s` prints them: no prompt, no blank line in between.
SYS_THEN_BT = """\
      KERNEL: /boot/vmlinux
   DUMPFILES: /dumps/vmcore-1
              /dumps/vmcore-2 [INCOMPLETE]
        CPUS: 4 [OFFLINE: 2]
        DATE: Mon Jan  5 10:00:00 UTC 2026
      UPTIME: 1 days, 02:03:04
LOAD AVERAGE: 1.25, 0.50, 0.10
       TASKS: 120
    NODENAME:
     RELEASE: 6.12.57+deb13-cloud-amd64
     VERSION: #1 SMP PREEMPT_DYNAMIC Debian 6.12.57-1 (2025-11-05)
     MACHINE: x86_64  (unknown Mhz)
      MEMORY: 2 GB
       PANIC: "sysrq: Trigger a crash"
PID: 1         TASK: ffff888003a10000  CPU: 0    COMMAND: "sh"
 #0 [ffffc90000013d38] machine_kexec at ffffffff8106b2c0
"""


def test_banner_fields_as_crash_prints_them() -> None:
    sys = parse_sys(BANNER)
    assert list(sys) == [
        "KERNEL", "DUMPFILE", "CPUS", "DATE", "UPTIME", "LOAD AVERAGE", "TASKS",
        "NODENAME", "RELEASE", "VERSION", "MACHINE", "MEMORY", "PANIC",
        "PID", "COMMAND", "TASK", "CPU", "STATE",
    ]  # fmt: skip
    assert sys["KERNEL"] == (
        "/root/.cache/kdx/lab/kernels/6.1.0-56-cloud-amd64/usr/lib/debug/"
        "vmlinux-6.1.0-56-cloud-amd64  [TAINTED]"
    )
    assert sys["DUMPFILE"] == "/root/.cache/kdx/lab/runs/null-deref/vmcore  [PARTIAL DUMP]"
    assert sys["CPUS"] == "2"
    assert sys["DATE"] == "Thu Nov 26 09:58:32 UTC 2026"
    assert sys["UPTIME"] == "00:00:11"
    assert sys["LOAD AVERAGE"] == "0.00, 0.00, 0.00"
    assert sys["TASKS"] == "81"
    assert sys["NODENAME"] == "(none)"
    assert sys["RELEASE"] == "6.1.0-56-cloud-amd64"
    assert sys["VERSION"] == "#1 SMP PREEMPT_DYNAMIC Debian 6.1.192-2 (2025-11-08)"
    assert sys["MACHINE"] == "x86_64  (2399 Mhz)"
    assert sys["MEMORY"] == "511.5 MB"
    assert sys["PANIC"] == '"Oops: 0002 [#1] PREEMPT SMP NOPTI" (check log for details)'
    assert sys["PID"] == "123"
    assert sys["COMMAND"] == '"insmod"'
    assert sys["TASK"] == "ffff8880045b8000  [THREAD_INFO: ffff8880045b8000]"
    assert sys["CPU"] == "1"
    assert sys["STATE"] == "TASK_RUNNING (PANIC)"


def test_sys_block_stops_where_the_next_command_starts() -> None:
    sys = parse_sys(SYS_THEN_BT)
    assert sys["DUMPFILES"] == "/dumps/vmcore-1\n/dumps/vmcore-2 [INCOMPLETE]"
    assert sys["CPUS"] == "4 [OFFLINE: 2]"
    assert sys["UPTIME"] == "1 days, 02:03:04"
    assert sys["NODENAME"] == ""
    assert sys["MACHINE"] == "x86_64  (unknown Mhz)"
    assert sys["PANIC"] == '"sysrq: Trigger a crash"'
    # bt's header is not a sys field, and nothing after it leaks in.
    assert "PID" not in sys
    assert list(sys)[-1] == "PANIC"


def test_text_without_sys_output_gives_nothing() -> None:
    assert parse_sys("") == {}
    assert parse_sys("crash: vmlinux and vmcore do not match!\n") == {}
