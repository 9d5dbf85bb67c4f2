"""More options of crash's system-table commands on real lab dumps (6.1 and 6.12),
against crash 8.0.6: ``net -S -R -N -x -d``, ``irq -d`` and ``irq -s -c``, ``ipcs``
options and IDs, ``mount -f -i``.

The lab guest has a TCP pair between two ``nc`` processes (so ``net -S`` has sockets to
dump and ``-R`` something to find) and no System V IPC objects (so ``ipcs`` compares
empty tables and option handling). crash runs once per dump on the commands below, each
preceded by an ``eval`` marker; kdx runs the same commands in one session.
"""

from __future__ import annotations

import re

import pytest
from crash_script import crash_sections, gdb_bytes, kdx_sections
from drgn import Object
from drgn.helpers.linux.pid import find_task, for_each_task

from kdx.model.files import task_files
from kdx.model.net import task_sockets

pytestmark = pytest.mark.oracle


class Scene:
    """A lab dump (opened once for all test files) and the PIDs and sockets the
    commands name."""

    def __init__(self, lab_dump) -> None:  # noqa: ANN001 (LabDump)
        self.lab = lab_dump
        self.target = lab_dump.target
        prog = self.target.prog
        by_comm: dict[str, list[int]] = {}
        for task in for_each_task(prog):
            by_comm.setdefault(task.comm.string_().decode(), []).append(task.pid.value_())
        self.nc = min(by_comm["nc"])
        self.nc_client = max(by_comm["nc"])
        self.fileholder = by_comm["fileholder"][0]
        server = task_sockets(find_task(prog, self.nc)).sockets
        client = task_sockets(find_task(prog, self.nc_client)).sockets
        self.server_socket = server[-1]
        self.client_socket = client[-1]

    def commands(self) -> list[str]:
        """What both tools run, in this order (crash's output is cached by this list)."""
        nc, client, fh = self.nc, self.nc_client, self.fileholder
        sock, socket, fd = (self.server_socket.sock, self.client_socket.socket,
                            self.server_socket.fd)
        return [f"net -S {nc}", f"net -S -x {client}", f"net -S -d {client}",
                f"net -s -R {sock:x} {nc}", f"net -s -R {socket:x} {client}",
                f"net -s -R {fd} {nc}", f"net -s -R {sock:x} {fh}",
                f"net -S -R {fd} {nc}", "net -N 16777343", "net -N 0x100007f",
                "net -x -d", f"net -s -x {nc}", f"net -s -R {sock:x} {nc} {client}",
                "irq -d", "irq -s -c 1", "irq -s -c 0,1", "irq -c 1",
                "ipcs -s", "ipcs -m", "ipcs -M", "ipcs -q", "ipcs -n 1", "ipcs -s -q",
                "ipcs 0", "ipcs -m 5 7", "ipcs -M ffff888000000000", "ipcs -Q",
                "mount -f", "mount -i", "mount -f /tmp"]


def _lines(texts: dict[str, str]) -> dict[str, list[str]]:
    return {command: text.split("\n") if text else [] for command, text in texts.items()}


@pytest.fixture(scope="module", params=["6.1", "6.12"])
def both(request, lab, crash):  # noqa: ANN001, ANN201 (fixtures)
    """(dump, crash's sections, kdx's run) for one kernel."""
    lab_dump = lab("null-deref-module", kernel=None if request.param == "6.1" else "6.12")
    dump = Scene(lab_dump)
    theirs = _lines({command: gdb_bytes(text) for command, text
                     in crash_sections(crash, lab_dump, dump.commands()).items()})
    run = kdx_sections(dump.target, dump.commands())
    return dump, theirs, _lines(run.sections), run


# -- net --------------------------------------------------------------------------------


def test_net_full_sockets_match_crash(both) -> None:  # noqa: ANN001
    dump, theirs, ours, _run = both
    for command in dump.commands()[:3]:
        assert ours[command] == theirs[command], command
    full = ours[f"net -S {dump.nc}"]
    assert full[0].startswith(f"PID: {dump.nc} ")
    assert full[1].split() == ["FD", "SOCKET", "SOCK"]
    sock = dump.server_socket
    assert full[2].split() == [str(sock.fd), f"{sock.socket:x}", f"{sock.sock:x}"]
    assert "struct socket {" in full and "struct inet_sock {" in full
    assert "  state = SS_CONNECTED," in full
    hexa, deci = ours[f"net -S -x {dump.nc_client}"], ours[f"net -S -d {dump.nc_client}"]
    assert "      skc_family = 0x2," in hexa and "      skc_family = 2," in deci


def test_net_reference_matches_crash(both) -> None:  # noqa: ANN001
    dump, theirs, ours, _run = both
    for command in dump.commands()[3:8] + dump.commands()[11:13]:
        assert ours[command] == theirs[command], command
    server, client = dump.server_socket, dump.client_socket
    by_sock = ours[f"net -s -R {server.sock:x} {dump.nc}"]
    assert len(by_sock) == 3 and by_sock[2].split()[:3] == [
        str(server.fd), f"{server.socket:x}", f"{server.sock:x}"]
    assert ours[f"net -s -R {client.socket:x} {dump.nc_client}"][2].split()[1] == \
        f"{client.socket:x}"
    assert ours[f"net -s -R {server.fd} {dump.nc}"] == by_sock  # a decimal fd
    assert ours[f"net -s -R {server.sock:x} {dump.fileholder}"] == []  # no header either
    both_tasks = ours[f"net -s -R {server.sock:x} {dump.nc} {dump.nc_client}"]
    assert both_tasks == by_sock  # the task without the socket prints nothing


def test_net_address_conversion_matches_crash(both) -> None:  # noqa: ANN001
    _dump, theirs, ours, run = both
    for command in ("net -N 16777343", "net -N 0x100007f"):
        assert ours[command] == theirs[command] == ["127.0.0.1"], command
    # crash prints its errors on its output, kdx as one error line
    assert theirs["net -x -d"] == ["net: -d and -x are mutually exclusive"]
    assert ours["net -x -d"] == [] and "net: error: -d and -x are mutually exclusive" \
        in run.stderr


# -- irq --------------------------------------------------------------------------------


def test_irq_descriptor_table_matches_crash(both) -> None:  # noqa: ANN001
    _dump, theirs, ours, _run = both
    assert ours["irq -d"] == theirs["irq -d"]
    idt = {int(re.match(r"\s*\[(\d+)\]", line).group(1)): line.split()[1]
           for line in ours["irq -d"]}
    assert sorted(idt) == list(range(256))
    assert idt[14] == "asm_exc_page_fault" and idt[0] == "asm_exc_divide_error"
    assert idt[236] == "asm_sysvec_apic_timer_interrupt"


def test_irq_stats_cpu_selection_matches_crash(both) -> None:  # noqa: ANN001
    _dump, theirs, ours, _run = both
    for command in ("irq -s -c 1", "irq -s -c 0,1", "irq -c 1"):
        assert ours[command] == theirs[command], command
    assert ours["irq -s -c 1"][0].split() == ["CPU1"]
    assert ours["irq -s -c 0,1"][0].split() == ["CPU0", "CPU1"]
    one = {line.split(":")[0].strip(): line.split()[1] for line in ours["irq -s -c 1"][1:]}
    two = {line.split(":")[0].strip(): line.split()[2] for line in ours["irq -s -c 0,1"][1:]}
    assert one == two and one["4"] != "0"  # ttyS0 interrupted CPU 1
    assert ours["irq -c 1"][0].split()[0] == "IRQ"  # -c without -s: the plain list


# -- ipcs -------------------------------------------------------------------------------


def test_ipcs_options_match_crash(both) -> None:  # noqa: ANN001
    dump, theirs, ours, run = both
    commands = [c for c in dump.commands() if c.startswith("ipcs") and c != "ipcs -Q"]
    for command in commands:
        assert ours[command] == theirs[command], command
    assert ours["ipcs -s"] == ["SEM_ARRAY        KEY      SEMID      UID   PERMS NSEMS",
                               "(none allocated)"]
    assert ours["ipcs -M"][0].startswith("SHMID_KERNEL") and len(ours["ipcs -M"]) == 2
    assert [line.split()[0] for line in ours["ipcs -s -q"] if line] == [
        "SEM_ARRAY", "(none", "MSG_QUEUE", "(none"]
    assert ours["ipcs -m 5 7"] == ["invalid id or address: 5", "",
                                   "invalid id or address: 7"]
    assert theirs["ipcs -Q"][0] == "Usage:" and ours["ipcs -Q"] == []
    assert "ipcs: error:" in run.stderr and "-Q" in run.stderr


# -- mount -f / -i ----------------------------------------------------------------------


def _mount_blocks(lines: list[str]) -> list[list[str]]:
    """The per-mount blocks of ``mount -f``/``-i``: each starts with the header."""
    blocks: list[list[str]] = []
    for line in lines:
        if line.split()[:2] == ["MOUNT", "SUPERBLK"]:
            blocks.append([])
        elif line:
            blocks[-1].append(line)
    return blocks


def test_mount_open_files(both) -> None:  # noqa: ANN001
    """crash 8.0.6 refuses -f on kernels without super_block.s_files; kdx lists each
    file system's open files from the tasks' descriptor tables
    (docs/crash-differences.md)."""
    dump, theirs, ours, _run = both
    assert "s_files linked list does not exist" in theirs["mount -f"][0]
    plain = kdx_sections(dump.target, ["mount"]).sections["mount"].split("\n")[1:]
    blocks = _mount_blocks(ours["mount -f"])
    assert [b[0] for b in blocks] == plain
    for block in blocks:
        assert block[1].strip() == "OPEN FILES"
        assert block[2] == "No open files found" or block[2].split() == [
            "DENTRY", "INODE", "TYPE", "PATH"]
    prog = dump.target.prog
    held = [f for f in task_files(find_task(prog, dump.fileholder)).files
            if f.type == "REG" and f.path.startswith("/tmp/")][0]
    (tmp,) = _mount_blocks(ours["mount -f /tmp"])
    rows = {row.split()[0]: row.split() for row in tmp[3:]}
    assert rows[f"{held.dentry:x}"][1:] == [f"{held.inode:x}", "REG",
                                            held.path[len("/tmp/"):]]


def test_mount_dirty_inodes(both) -> None:  # noqa: ANN001
    """-i (refused by crash 8.0.6 since 2.6.32): each file system's inodes whose state
    is dirty, each one checked against the inode itself."""
    dump, theirs, ours, _run = both
    assert "s_dirty linked list does not exist" in theirs["mount -i"][0]
    prog = dump.target.prog
    listed = 0
    for block in _mount_blocks(ours["mount -i"]):
        superblock = int(block[0].split()[1], 16)
        assert block[1] == "DIRTY INODES"
        if block[2] == "No dirty inodes found":
            continue
        for word in block[2:]:
            inode = Object(prog, "struct inode *", int(word, 16))
            assert inode.i_sb.value_() == superblock and inode.i_state.value_() & 7
            listed += 1
    # 6.1's rootfs (ramfs) keeps written files dirty; 6.12's guest has none dirty
    if dump.lab.truth["release"].startswith("6.1."):
        assert listed > 0
    else:
        assert listed == 0 and ours["mount -i"].count("No dirty inodes found") == \
            len(_mount_blocks(ours["mount -i"]))
