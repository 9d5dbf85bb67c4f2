"""Run the lab guest under QEMU, watch its serial console, and talk QMP to it.

Every run is bounded in time and the QEMU process is always killed at the end, so a guest
that hangs (as KVM guests do on some hosts, hence TCG) never outlives the lab command.
"""

from __future__ import annotations

import json
import shutil
import socket
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Sequence

from kdx.errors import KdxError, MissingToolError

QEMU = "qemu-system-x86_64"


@dataclass
class GuestConfig:
    """What to boot and with which devices."""

    kernel: Path
    initrd: Path
    cmdline: str
    console_log: Path
    disks: Sequence[Path] = ()
    memory_mb: int = 512
    cpus: int = 2
    vmcoreinfo_device: bool = False
    qmp_socket: Path | None = None
    extra: list[str] = field(default_factory=list)
    #: One host thread runs every vCPU: multi-threaded TCG sometimes lets one vCPU run
    #: code another is patching (the kernel's int3-based text_poke), and the guest dies
    #: with "Oops: int3" in early boot.
    accel: str = "tcg,thread=single"

    def argv(self) -> list[str]:
        argv = [
            QEMU, "-accel", self.accel, "-cpu", "max", "-smp", str(self.cpus),
            "-m", str(self.memory_mb), "-display", "none", "-no-reboot",
            "-monitor", "none", "-serial", f"file:{self.console_log}",
            "-kernel", str(self.kernel), "-initrd", str(self.initrd),
            "-append", self.cmdline,
        ]
        for disk in self.disks:
            argv += ["-drive", f"file={disk},format=raw,if=virtio"]
        if self.vmcoreinfo_device:
            argv += ["-device", "vmcoreinfo"]
        if self.qmp_socket:
            argv += ["-qmp", f"unix:{self.qmp_socket},server=on,wait=off"]
        return argv + self.extra


class Guest:
    """A running QEMU guest; use as a context manager so it is always killed."""

    def __init__(self, config: GuestConfig) -> None:
        if shutil.which(QEMU) is None:
            raise MissingToolError(
                f"{QEMU} is not installed: run 'apt-get install qemu-system-x86'")
        self.config = config
        config.console_log.write_bytes(b"")
        self.proc = subprocess.Popen(config.argv(), stdin=subprocess.DEVNULL,
                                     stdout=subprocess.PIPE, stderr=subprocess.STDOUT)

    def __enter__(self) -> Guest:
        return self

    def __exit__(self, *exc: object) -> None:
        self.kill()

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait()

    def console(self) -> str:
        return self.config.console_log.read_text(errors="replace")

    def wait_for(self, predicate: Callable[[str], bool], timeout: float,
                 on_line: Callable[[str], None] | None = None) -> bool:
        """Poll the console until ``predicate(console)`` holds; False if QEMU exits or the
        time runs out. ``on_line`` sees each new console line (for progress)."""
        deadline = time.monotonic() + timeout
        seen = 0
        while time.monotonic() < deadline:
            text = self.console()
            if on_line:
                lines = text.splitlines()
                for line in lines[seen:max(seen, len(lines) - 1)]:
                    on_line(line)
                seen = max(seen, len(lines) - 1)
            if predicate(text):
                return True
            if self.proc.poll() is not None:
                return predicate(self.console())
            time.sleep(0.2)
        return False

    def wait_exit(self, timeout: float) -> int | None:
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            return None

    def qemu_output(self) -> str:
        if self.proc.poll() is None or self.proc.stdout is None:
            return ""
        return self.proc.stdout.read().decode(errors="replace")


class Qmp:
    """A minimal QMP client: enough for stop and dump-guest-memory."""

    def __init__(self, path: Path, timeout: float = 10) -> None:
        deadline = time.monotonic() + timeout
        while True:
            try:
                self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
                self.sock.connect(str(path))
                break
            except OSError:
                self.sock.close()
                if time.monotonic() > deadline:
                    raise KdxError(f"QEMU's QMP socket {path} did not answer") from None
                time.sleep(0.2)
        self.file = self.sock.makefile("rwb")
        self._read()  # greeting
        self.command("qmp_capabilities")

    def _read(self) -> dict:
        while True:
            line = self.file.readline()
            if not line:
                raise KdxError("QEMU closed its QMP connection")
            msg = json.loads(line)
            if "event" not in msg:
                return msg

    def command(self, name: str, timeout: float = 600, **arguments: object) -> dict:
        """Run one QMP command and return its result; an error reply becomes KdxError."""
        self.sock.settimeout(timeout)
        self.file.write(json.dumps({"execute": name, "arguments": arguments}).encode() + b"\n")
        self.file.flush()
        reply = self._read()
        if "error" in reply:
            raise KdxError(f"QEMU refused {name}: {reply['error'].get('desc')}")
        return reply.get("return", {})

    def close(self) -> None:
        self.file.close()
        self.sock.close()
