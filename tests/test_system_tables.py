"""crash's system-table commands (``mount``, ``net``, ``irq``, ``timer``, ``dev``,
``sig``, ``mach``, ``swap``, ``ipcs``, ``waitq``, ``fuser``) on real lab dumps (6.1 and
6.12), against crash 8.0.6.

The lab guest is lived in: a tmpfs on /tmp and another on /mnt/scratch, dummy0 and the
kdx0 link, a TCP pair between two ``nc`` processes, virtio disks, a loop driver. crash
runs once per dump on every command below, each preceded by an ``eval`` marker so its
output can be cut out; kdx runs the same commands in one session. Sections are compared
field by field; trailing blanks are ignored (kdx never prints them).
"""

from __future__ import annotations

import re

import pytest
from crash_script import crash_sections, kdx_sections
from drgn import offsetof
from drgn.helpers.linux.fs import for_each_file
from drgn.helpers.linux.pid import find_task, for_each_task

from kdx.model.files import task_files

pytestmark = pytest.mark.oracle


class Scene:
    """A lab dump (opened once for all test files) and the PIDs the commands name."""

    def __init__(self, lab_dump) -> None:  # noqa: ANN001 (LabDump)
        self.lab = lab_dump
        self.target = lab_dump.target
        by_comm: dict[str, list[int]] = {}
        for task in for_each_task(self.target.prog):
            by_comm.setdefault(task.comm.string_().decode(), []).append(task.pid.value_())
        self.nc = min(by_comm["nc"])
        self.nc_client = max(by_comm["nc"])
        self.fileholder = by_comm["fileholder"][0]
        self.panic_pid = lab_dump.truth["pid"]
        prog = self.target.prog
        cat = find_task(prog, by_comm["cat"][0])
        # cat sleeps reading a pipe: its read wait queue holds it
        self.cat = by_comm["cat"][0]
        self.cat_pipe = dict(for_each_file(cat))[0].private_data.value_()
        self.cat_rd_wait = self.cat_pipe + offsetof(prog.type("struct pipe_inode_info"),
                                                    "rd_wait")
        held = task_files(find_task(prog, self.fileholder))
        self.held_file = next(f.path for f in held.files if f.type == "REG"
                              and f.path.startswith("/tmp/"))

    def commands(self) -> list[str]:
        """What both tools run, in this order (crash's output is cached by this list)."""
        panic, nc, fh = self.panic_pid, self.nc, self.fileholder
        return ["mount", "mount -n 1", "net", "net -a", f"net -s {nc}", f"net -s {fh}",
                "irq", "irq -s", "irq -a", "irq -b", "timer", "timer -r", "dev", "dev -d",
                "dev -p", f"sig {panic}", f"sig {nc}", "sig 1", "mach", "mach -c",
                "mach -m", "swap", "ipcs", "fuser /tmp", "fuser /", "fuser /dev/null",
                "waitq log_wait"]

    def more_commands(self) -> list[str]:
        """A second crash run: argument forms and non-empty answers."""
        return [f"waitq pipe_inode_info.rd_wait {self.cat_pipe:x}",
                f"waitq {self.cat_rd_wait:x}", f"net -s {self.nc_client}",
                f"net -s {self.nc} {self.nc_client}", "mount tmpfs", "mount /mnt/scratch",
                "irq 0 24", "irq -u", "timer -C 1", f"fuser {self.held_file}",
                f"sig {self.cat}"]


def _lines(texts: dict[str, str]) -> dict[str, list[str]]:
    return {command: text.split("\n") if text else [] for command, text in texts.items()}


@pytest.fixture(scope="module", params=["6.1", "6.12"])
def both(request, lab, crash):  # noqa: ANN001, ANN201 (fixtures)
    """(dump, crash's sections, kdx's sections) for one kernel."""
    lab_dump = lab("null-deref-module", kernel=None if request.param == "6.1" else "6.12")
    dump = Scene(lab_dump)
    wanted = dump.commands() + dump.more_commands()
    theirs = _lines(crash_sections(crash, lab_dump, dump.commands()))
    theirs.update(_lines(crash_sections(crash, lab_dump, dump.more_commands())))
    return dump, theirs, _lines(kdx_sections(dump.target, wanted).sections)


# -- mount ------------------------------------------------------------------------------


def test_mount_matches_crash(both) -> None:  # noqa: ANN001
    _dump, theirs, ours = both
    for command in ("mount", "mount -n 1"):
        assert ours[command] == theirs[command], command
    rows = [line.split() for line in ours["mount"][1:]]
    by_dir = {row[4]: row for row in rows}
    assert by_dir["/tmp"][2:4] == ["tmpfs", "tmpfs"]
    assert by_dir["/mnt/scratch"][2:4] == ["tmpfs", "scratch"]
    assert rows[0][2:] == ["rootfs", "rootfs", "/"]


# -- net --------------------------------------------------------------------------------


def test_net_devices_and_arp_match_crash(both) -> None:  # noqa: ANN001
    _dump, theirs, ours = both
    for command in ("net", "net -a"):
        assert ours[command] == theirs[command], command
    names = {line.split()[1]: line.split()[2:] for line in ours["net"][1:]}
    assert set(names) == {"lo", "dummy0", "kdx0"}
    assert names["lo"] == ["127.0.0.1,", "::1"]
    assert names["kdx0"][0].startswith("fe80::")
    assert ours["net -a"][1].split()[1:3] == ["0.0.0.0", "UNKNOWN"]


def test_net_sockets_match_crash(both) -> None:  # noqa: ANN001
    dump, theirs, ours = both
    for command in (f"net -s {dump.nc}", f"net -s {dump.fileholder}"):
        assert ours[command] == theirs[command], command
    fields = ours[f"net -s {dump.nc}"][2].split()
    assert fields[3] == "INET6:STREAM"
    assert fields[4].endswith("-7070")
    assert ours[f"net -s {dump.fileholder}"][1] == "No open sockets."


# -- irq --------------------------------------------------------------------------------


def test_irq_matches_crash(both) -> None:  # noqa: ANN001
    _dump, theirs, ours = both
    for command in ("irq", "irq -s", "irq -a", "irq -b"):
        assert ours[command] == theirs[command], command
    by_irq = {int(line.split()[0]): line.split() for line in ours["irq"][1:]}
    assert by_irq[0][1:] != ["(unused)", "(unused)"] and by_irq[0][-1] == '"timer"'
    assert by_irq[4][-1] == '"ttyS0"'
    stats = {line.split(":")[0].strip(): line.split() for line in ours["irq -s"][1:]}
    assert stats["0"][-1] == "timer" and int(stats["0"][1]) + int(stats["0"][2]) > 0
    softirqs = [line.split()[-1] for line in ours["irq -b"][1:]]
    assert "<run_timer_softirq>" in softirqs and "<net_rx_action>" in softirqs


# -- timer ------------------------------------------------------------------------------

_BASE_LINE = re.compile(r"^TIMER_BASES\[(\d+)\]\[(\w+)\]: ([0-9a-f]+)$")


def _timer_blocks(lines: list[str]) -> dict[str, list[str]]:
    """Timer lines by timer_base address (the base name left out)."""
    blocks: dict[str, list[str]] = {}
    current = None
    for line in lines:
        found = _BASE_LINE.match(line)
        if found:
            current = found.group(3)
            blocks[current] = []
        elif current is not None and line.strip():
            blocks[current].append(line)
    return blocks


def _hrtimer_rows(lines: list[str]) -> list[list[str]]:
    """Every hrtimer line without its time-to-expire, and every clock base line."""
    rows = []
    for line in lines:
        fields = line.split()
        if len(fields) == 6 and fields[-1].startswith("<"):
            rows.append(fields[:2] + fields[3:])
        elif line.startswith(("CPU:", "  CLOCK:", "  (empty)")):
            rows.append(fields)
    return rows


def test_timer_wheel_matches_crash(both) -> None:  # noqa: ANN001
    dump, theirs, ours = both
    assert ours["timer"][:2] == theirs["timer"][:2]  # JIFFIES
    crash_blocks, kdx_blocks = _timer_blocks(theirs["timer"]), _timer_blocks(ours["timer"])
    for address, lines in crash_blocks.items():
        assert kdx_blocks[address] == lines, address
    names = {m.group(2) for m in map(_BASE_LINE.match, ours["timer"]) if m}
    if dump.lab.truth["release"].startswith("6.1."):
        assert ours["timer"] == theirs["timer"]
        assert names == {"BASE_STD", "BASE_DEF"}
    else:
        # crash 8.0.6 shows two of the three bases of 6.9+ (docs/crash-differences.md)
        assert names == {"BASE_LOCAL", "BASE_GLOBAL", "BASE_DEF"}
        assert len(kdx_blocks) == len(crash_blocks) + 2
    functions = {line.split()[-1] for lines in kdx_blocks.values() for line in lines}
    assert "<delayed_work_timer_fn>" in functions


def test_hrtimers_match_crash(both) -> None:  # noqa: ANN001
    dump, theirs, ours = both
    if dump.lab.truth["release"].startswith("6.1."):
        assert ours["timer -r"] == theirs["timer -r"]
    # crash turns jiffies into "now" with HZ=1000 on Debian's 6.12 (HZ=250), which moves
    # CURRENT and every TTE; every timer, expiry and function still agree.
    assert _hrtimer_rows(ours["timer -r"]) == _hrtimer_rows(theirs["timer -r"])
    functions = {row[-1] for row in _hrtimer_rows(ours["timer -r"])}
    assert "<hrtimer_wakeup>" in functions


# -- dev --------------------------------------------------------------------------------


def test_dev_matches_crash(both) -> None:  # noqa: ANN001
    _dump, theirs, ours = both
    for command in ("dev", "dev -d", "dev -p"):
        assert ours[command] == theirs[command], command
    chars = {line.split()[1]: line.split() for line in ours["dev"][1:]
             if line.strip() and not line.startswith(("BLKDEV", "CHRDEV"))}
    assert chars["mem"][0] == "1" and chars["mem"][-1] == "memory_fops"
    assert chars["loop"][0] == "7" and chars["loop"][-1] == "lo_fops"
    disks = [line.split()[2] for line in ours["dev -d"][1:]]
    assert disks == ["vda", "vdb", "vdc"]
    pci_ids = {line.split()[1]: line.split()[3] for line in ours["dev -p"]
               if line.startswith("  ") and ":" in line and "PCI" not in line}
    assert pci_ids["0000:00:00.0"] == "8086:1237"


# -- sig --------------------------------------------------------------------------------


def test_sig_matches_crash(both) -> None:  # noqa: ANN001
    dump, theirs, ours = both
    for command in (f"sig {dump.panic_pid}", f"sig {dump.nc}", "sig 1"):
        assert ours[command] == theirs[command], command
    init = {line.split()[0]: line.split()[2:] for line in ours["sig 1"][3:67]}
    assert len(init) == 64
    assert init["[3]"][0] == "SIG_IGN" and init["[1]"][0] == "SIG_DFL"
    assert init["[2]"][-1] == "(SA_RESTORER)"
    assert ours["sig 1"][-1] == "  SIGQUEUE: (empty)"


# -- mach -------------------------------------------------------------------------------


def _without_unavailable_unknown(lines: list[str]) -> list[str]:
    """Drop the [unavailable] mark of the stacks of an unnamed IST slot, the one place
    where crash's page check and drgn's disagree (docs/crash-differences.md)."""
    out, unknown = [], False
    for line in lines:
        if line.strip().endswith("STACKS:"):
            unknown = line.strip().startswith("(unknown)")
        elif unknown:
            line = line.replace(" [unavailable]", "")
        out.append(line)
    return out


def test_mach_matches_crash(both) -> None:  # noqa: ANN001
    dump, theirs, ours = both
    assert ours["mach -c"] == theirs["mach -c"]
    assert ours["mach -m"] == theirs["mach -m"]
    mine, crash = _without_unavailable_unknown(ours["mach"]), \
        _without_unavailable_unknown(theirs["mach"])
    hz_line = [i for i, line in enumerate(crash) if line.strip().startswith("HZ:")][0]
    if dump.lab.truth["release"].startswith("6.1."):
        assert mine == crash
    else:
        # crash guesses HZ=1000 for Debian's 6.12, built with HZ=250 (as for sys)
        assert crash[hz_line].split() == ["HZ:", "1000"]
        assert mine[hz_line].split() == ["HZ:", "250"]
        assert mine[:hz_line] + mine[hz_line + 1:] == crash[:hz_line] + crash[hz_line + 1:]
    facts = dict(line.strip().split(": ", 1) for line in ours["mach"] if ": " in line
                 and not line.strip().startswith("CPU "))
    assert facts["MACHINE TYPE"] == "x86_64" and facts["CPUS"] == "2"
    assert "DOUBLEFAULT STACK SIZE" in facts and "NMI STACK SIZE" in facts
    assert ours["mach -m"][1].endswith("E820_RESERVED") or "E820_RAM" in ours["mach -m"][2]
    assert ours["mach -c"][0] == "CPU 0:" and ours["mach -c"][1] == "struct cpuinfo_x86 {"


# -- swap, ipcs, waitq, fuser -----------------------------------------------------------


def test_swap_and_ipcs_match_crash(both) -> None:  # noqa: ANN001
    _dump, theirs, ours = both
    assert ours["swap"] == theirs["swap"]
    assert ours["swap"] == ["SWAP_INFO_STRUCT    TYPE       SIZE       USED     PCT  PRI  "
                            "FILENAME"]  # the lab guest has no swap
    assert ours["ipcs"] == theirs["ipcs"]
    assert ours["ipcs"].count("(none allocated)") == 3


def test_waitq_matches_crash(both) -> None:  # noqa: ANN001
    dump, theirs, ours = both
    assert ours["waitq log_wait"] == theirs["waitq log_wait"]
    assert ours["waitq log_wait"][0].startswith('wait queue "log_wait" (')
    for command in dump.more_commands()[:2]:
        assert ours[command] == theirs[command], command
        assert ours[command][0].startswith(f"PID: {dump.cat} ")


def test_fuser_matches_crash(both) -> None:  # noqa: ANN001
    dump, theirs, ours = both
    for command in ("fuser /", "fuser /dev/null", f"fuser {dump.held_file}"):
        assert ours[command] == theirs[command], command
    users = {int(line.split()[0]): line.split()[3:] for line in ours["fuser /dev/null"][1:]}
    assert users[dump.fileholder] == ["fd"]
    assert ours[f"fuser {dump.held_file}"][1].split()[0] == str(dump.fileholder)
    # crash names fileholder's cwd "/tmp/" and so misses it (docs/crash-differences.md)
    assert theirs["fuser /tmp"] == ["No users of /tmp found"]
    assert ours["fuser /tmp"][1].split()[0] == str(dump.fileholder)
    assert ours["fuser /tmp"][1].split()[-1] == "cwd"


# -- argument forms ---------------------------------------------------------------------


def test_argument_forms_match_crash(both) -> None:  # noqa: ANN001
    dump, theirs, ours = both
    for command in (f"net -s {dump.nc_client}", f"net -s {dump.nc} {dump.nc_client}",
                    "irq 0 24", "irq -u", f"sig {dump.cat}"):
        assert ours[command] == theirs[command], command
    inet = ours[f"net -s {dump.nc_client}"][2].split()
    assert inet[3] == "INET:STREAM" and inet[-1] == "127.0.0.1-7070"
    assert all(not line.startswith(" 16 ") for line in ours["irq -u"])
    # crash 8.0.6 cannot select mounts on kernels without super_block.s_files
    # (docs/crash-differences.md); kdx shows the lines of the plain list that match
    assert "s_files" in theirs["mount tmpfs"][0]
    listed = {line.split()[4]: line for line in theirs["mount"][1:]}
    assert ours["mount tmpfs"][1:] == [listed["/tmp"], listed["/mnt/scratch"]]
    assert ours["mount /mnt/scratch"] == [theirs["mount"][0], listed["/mnt/scratch"]]


def test_timer_cpu_selection_matches_crash(both) -> None:  # noqa: ANN001
    dump, theirs, ours = both
    crash_blocks = _timer_blocks(theirs["timer -C 1"])
    kdx_blocks = _timer_blocks(ours["timer -C 1"])
    assert crash_blocks and all(kdx_blocks[a] == lines for a, lines in crash_blocks.items())
    assert all(m.group(1) == "1" for m in map(_BASE_LINE.match, ours["timer -C 1"]) if m)


# -- sig -l, -s, -g -------------------------------------------------------------------------


def _sig_commands(pid: int) -> list[str]:
    """The sig options' crash run (its own list: the lists above key cached output)."""
    return ["sig -l", "sig -s 0", "sig -s 1", "sig -s fffffffe7ffbfeff",
            "sig -s 8000000000000000", f"sig -g {pid}", "sig -g 2", "sig -g", "sig -s xyz"]


def test_sig_names_sigsets_and_thread_groups_match_crash(null_deref_each, crash) -> None:  # noqa: ANN001, E501
    lab_dump = null_deref_each
    target = lab_dump.target
    pid = lab_dump.truth["pid"]
    commands = _sig_commands(pid)
    theirs = _lines(crash_sections(crash, lab_dump, commands))
    run = kdx_sections(target, commands)
    ours = _lines(run.sections)
    for command in commands[:-1]:
        assert theirs[command], command
        assert ours[command] == theirs[command], command
    names = dict(line.split() for line in ours["sig -l"])
    assert len(names) == 64 and names["[9]"] == "SIGKILL" and names["[17]"] == "SIGCHLD/SIGCLD"
    assert names["[48]"] == "SIGRTMIN+16" and names["[49]"] == "SIGRTMAX-15"
    # every signal but SIGKILL, SIGSTOP and 32, 33: wrapped at 80 columns
    decoded = ours["sig -s fffffffe7ffbfeff"]
    words = " ".join(decoded).split()
    assert len(words) == 60 and "SIGKILL" not in words and "SIGSTOP" not in words
    assert max(len(line) for line in decoded) <= 80
    group = ours[f"sig -g {pid}"]
    assert group[0].startswith(f"PID: {pid} ") and group[-6].startswith(f"  PID: {pid} ")
    assert group[-5:] == ["  SIGPENDING: no", "     BLOCKED: 0000000000000000",
                          "  PRIVATE_PENDING", "      SIGNAL: 0000000000000000",
                          "    SIGQUEUE: (empty)"]
    assert ours["sig -g"] == group  # the current context is the panic task
    assert "sig -s xyz" in run.failed and "invalid input: xyz" in run.stderr
    assert theirs["sig -s xyz"] == ['sig: invalid input: "xyz"']
