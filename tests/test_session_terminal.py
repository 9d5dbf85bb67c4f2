"""The interactive session on a real terminal (a pseudo-terminal): banner, prompt, Ctrl-C.

Ctrl-C must stop the running command and give the prompt back, as in crash, and the
session must keep working afterwards; only a terminal shows that, so these tests drive
``kdx VMCORE`` through a pty exactly as a user's keyboard would.
"""

from __future__ import annotations

import os
import pty
import select
import signal
import sys
import time

import pytest

PROMPT = b"kdx> "


class Terminal:
    """A child process on a pseudo-terminal, with everything it printed kept."""

    def __init__(self, argv: list[str]) -> None:
        env = dict(os.environ, TERM="dumb", XDG_STATE_HOME=os.environ.get("TMPDIR", "/tmp"))
        self.pid, self.fd = pty.fork()
        if self.pid == 0:  # the child: become kdx
            # as a script or job runner starting programs in the background leaves it:
            # kdx must make Ctrl-C work at its prompt all the same
            signal.signal(signal.SIGINT, signal.SIG_IGN)
            os.execvpe(argv[0], argv, env)
        self.seen = b""

    def read_until(self, marker: bytes, timeout: float, start: int = 0) -> int:
        """Read until ``marker`` appears after offset ``start``; its offset in ``seen``."""
        deadline = time.monotonic() + timeout
        while (at := self.seen.find(marker, start)) < 0:
            left = deadline - time.monotonic()
            if left <= 0:
                raise AssertionError(f"no {marker!r} in {timeout}s; saw {self.seen[-800:]!r}")
            if select.select([self.fd], [], [], min(left, 0.5))[0]:
                try:
                    self.seen += os.read(self.fd, 65536)
                except OSError:  # the child closed the terminal
                    continue
        return at

    def drain(self, seconds: float) -> None:
        """Keep reading for ``seconds`` so a chatty command never blocks on a full pty."""
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            if select.select([self.fd], [], [], 0.1)[0]:
                try:
                    self.seen += os.read(self.fd, 65536)
                except OSError:  # the child has gone and closed the terminal
                    return

    def type(self, text: str) -> None:
        os.write(self.fd, text.encode())

    def wait(self, timeout: float) -> int:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            pid, status = os.waitpid(self.pid, os.WNOHANG)
            if pid:
                return os.waitstatus_to_exitcode(status)
            self.drain(0.2)
        os.kill(self.pid, signal.SIGKILL)
        raise AssertionError("kdx did not exit")


@pytest.fixture
def terminal(null_deref):
    term = Terminal([sys.executable, "-m", "kdx", str(null_deref.vmcore),
                     str(null_deref.vmlinux), str(null_deref.modules)])
    yield term
    try:
        os.kill(term.pid, signal.SIGKILL)
        os.waitpid(term.pid, 0)
    except (ProcessLookupError, ChildProcessError):
        pass
    os.close(term.fd)


def test_banner_prompt_and_quit(terminal):
    at = terminal.read_until(PROMPT, timeout=120)
    banner = terminal.seen[:at]
    assert b"PANIC:" in banner and b"NODENAME: kdx-lab" in banner
    terminal.type("q\n")
    assert terminal.wait(30) == 0


def test_ctrl_c_stops_the_command_not_the_session(terminal):
    start = terminal.read_until(PROMPT, timeout=120) + len(PROMPT)
    # Two million words take kdx many seconds to print: long enough to interrupt.
    terminal.type("rd -64 init_task 2000000\n")
    terminal.read_until(b"init_task", timeout=30, start=start)
    terminal.drain(1.0)
    terminal.type("\x03")  # the terminal turns this into SIGINT for kdx
    stopped = terminal.read_until(b"rd: interrupted", timeout=30, start=start)
    prompt = terminal.read_until(PROMPT, timeout=30, start=stopped)
    rows = terminal.seen[start:stopped].count(b"\n")
    assert rows < 1_000_000, "the command ran to its end instead of stopping"
    terminal.type("sys | grep -c RELEASE\n")
    answer = terminal.read_until(b"\n1\r\n", timeout=60, start=prompt)
    terminal.read_until(PROMPT, timeout=30, start=answer)
    terminal.type("q\n")
    assert terminal.wait(30) == 0


def test_ctrl_c_at_the_prompt_gives_a_new_prompt(terminal):
    first = terminal.read_until(PROMPT, timeout=120) + len(PROMPT)
    # CPython's readline prints the prompt and only then waits in select(): a SIGINT in
    # between sets Python's flag but wakes nobody until the next key. A person cannot
    # type that fast; a test on a loaded machine can, so it lets the prompt settle.
    terminal.drain(0.5)
    terminal.type("\x03")
    terminal.read_until(PROMPT, timeout=30, start=first)
    terminal.type("exit\n")
    assert terminal.wait(30) == 0


def test_python_prompt_and_back(terminal):
    start = terminal.read_until(PROMPT, timeout=120) + len(PROMPT)
    terminal.type("py\n")
    at = terminal.read_until(b">>> ", timeout=60, start=start)
    terminal.type("prog['init_task'].comm.string_(), find_task(prog, 1).pid.value_()\n")
    at = terminal.read_until(b"(b'swapper/0', 1)", timeout=30, start=at)
    terminal.read_until(b">>> ", timeout=30, start=at)
    terminal.type("exit()\n")  # back to kdx, not out of it
    at = terminal.read_until(PROMPT, timeout=30, start=at)
    terminal.type("sys | grep -c RELEASE\n")
    terminal.read_until(b"\n1\r\n", timeout=60, start=at)
    terminal.type("q\n")
    assert terminal.wait(30) == 0


def test_ctrl_d_leaves_the_python_prompt_not_kdx(terminal):
    start = terminal.read_until(PROMPT, timeout=120) + len(PROMPT)
    terminal.type("py\n")
    at = terminal.read_until(b">>> ", timeout=60, start=start)
    terminal.drain(0.5)  # let the prompt settle (see the Ctrl-C test)
    terminal.type("\x04")  # end of input at the Python prompt: back to kdx
    at = terminal.read_until(PROMPT, timeout=30, start=at)
    terminal.type("sys | grep -c RELEASE\n")
    terminal.read_until(b"\n1\r\n", timeout=60, start=at)
    terminal.type("q\n")
    assert terminal.wait(30) == 0


def test_tab_completes_command_words_and_members(terminal):
    start = terminal.read_until(PROMPT, timeout=120) + len(PROMPT)
    terminal.drain(0.5)
    terminal.type("stru\t")  # one command starts so: readline completes it
    at = terminal.read_until(b"struct ", timeout=30, start=start)
    terminal.type("task_struct.pdeath_si\t")  # a member after the type and a dot
    at = terminal.read_until(b"task_struct.pdeath_signal", timeout=60, start=at)
    terminal.type("\n")
    terminal.read_until(b"pdeath_signal;", timeout=60, start=at)
    terminal.type("q\n")
    assert terminal.wait(30) == 0
