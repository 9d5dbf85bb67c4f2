"""Run one lab scenario end to end: kernel, builds, initramfs, QEMU, capture, ground truth.

The result is a directory like the one a production server leaves behind — a vmcore, the
debug vmlinux, the modules' ``.ko`` files, the console and the dmesg — plus ``truth.json``,
which records what really happened so tests can check analysis against it.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import tarfile
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Optional

from kdx import __version__
from kdx.errors import KdxError
from kdx.lab import build, filterfix, initramfs, scenarios
from kdx.lab.cache import locked
from kdx.lab.kernels import Kernel, fetch_kernel
from kdx.lab.qemu import Guest, GuestConfig, Qmp
from kdx.target import flattened

Progress = Optional[Callable[[str], None]]

#: makedumpfile flag for each dump format kdump can write (all through ``-F``). Snappy
#: (-p) is missing because neither bookworm's nor trixie's makedumpfile is built with it.
KDUMP_FORMATS = {
    "kdump-zlib": "-c", "kdump-lzo": "-l", "kdump-zstd": "-z",
    "kdump-raw": "", "elf": "-E", "flattened": "-c",
}
#: QMP dump-guest-memory format for each format a QEMU capture can write.
QEMU_FORMATS = {"elf": "elf", "kdump-zlib": "kdump-zlib", "kdump-lzo": "kdump-lzo",
                "kdump-snappy": "kdump-snappy"}
CAPTURES = ("kdump", "qemu")
CRASHKERNEL = "160M"
BOOT_TIMEOUT = 240
CAPTURE_TIMEOUT = 600
_PANIC_DONE = re.compile(r"end Kernel panic|Rebooting in|KDX-LAB: capture kernel up")
_TASK_LINE = re.compile(r"CPU: (\d+) (?:UID: \d+ )?PID: (\d+) Comm: (\S+)")


@dataclass(frozen=True)
class RunRequest:
    scenario: str
    kernel: str | None = None
    capture: str = "kdump"
    format: str = "kdump-zlib"
    dump_level: int = 31
    vmcoreinfo: bool = True
    out: Path | None = None
    force: bool = False
    tasks: int = 0  # extra sleeping processes, to measure how analysis cost grows
    memory_mb: int = 512

    def check(self) -> None:
        """Refuse combinations the lab cannot make, before any download."""
        scenarios.get(self.scenario)
        if self.capture not in CAPTURES:
            raise KdxError(f"unknown capture {self.capture!r}: use kdump or qemu")
        table = KDUMP_FORMATS if self.capture == "kdump" else QEMU_FORMATS
        if self.format not in table:
            raise KdxError(f"{self.capture} capture cannot write {self.format!r}: "
                           f"use one of {', '.join(table)}")
        if self.capture == "kdump" and not self.vmcoreinfo:
            raise KdxError("--no-vmcoreinfo applies to qemu captures only")

    def label(self) -> str:
        parts = [self.scenario, self.capture, self.format]
        if self.capture == "kdump" and self.dump_level != 31:
            parts.append(f"d{self.dump_level}")
        if not self.vmcoreinfo:
            parts.append("novmcoreinfo")
        if self.tasks:
            parts.append(f"t{self.tasks}")
        if self.memory_mb != 512:
            parts.append(f"m{self.memory_mb}")
        return "-".join(parts)

    def recipe_extra(self) -> str:
        """What this request adds to the scenario's recipe (nothing for plain runs, so
        their cached dumps stay valid)."""
        return f"tasks={self.tasks},memory={self.memory_mb}" if (
            self.tasks or self.memory_mb != 512) else ""


def dump_name(req: RunRequest) -> str:
    return "vmcore.flat" if req.format == "flattened" else "vmcore"


def run(cache: Path, req: RunRequest, progress: Progress = None) -> Path:
    """Make the dump ``req`` describes (or reuse a finished one); return its directory."""
    say = progress or (lambda _m: None)
    req.check()
    scenario = scenarios.get(req.scenario)
    kernel = fetch_kernel(cache, req.kernel, say)
    out = req.out or cache / "runs" / kernel.release / req.label()
    # One maker per dump directory: a second process asking for the same dump (parallel
    # tests, a user in another terminal) waits, then reuses what the first one made.
    with locked(out.parent / f".{out.name}.lock"):
        return _make(cache, req, scenario, kernel, out, say)


def _make(cache: Path, req: RunRequest, scenario: scenarios.Scenario, kernel: Kernel,
          out: Path, say: Callable[[str], None]) -> Path:
    fix = _filter_fix(cache, kernel, req, say)
    recipe = lab_recipe(scenario, req.recipe_extra() + (fix or ""))
    if not req.force and _recipe_of(out) == recipe:
        say(f"reusing the dump in {out}")
        return out
    say(f"building the lab modules for {kernel.release}")
    modules = build.build_modules(cache, kernel, say)
    programs = build.build_programs(cache)
    with tempfile.TemporaryDirectory(prefix="kdx-lab-", dir=_work_dir(cache)) as tmp:
        work = Path(tmp)
        initrd = _first_initrd(cache, kernel, scenario, modules, programs, req, work, fix)
        started = time.time()
        cmdline = _cmdline(req, scenario, fix is not None)
        console, dmesg = _boot_and_capture(kernel, initrd, scenario, req, work, say, cmdline)
        _finish(out, work, kernel, scenario, modules, req, console, dmesg, started, recipe)
    say(f"dump ready in {out}")
    return out


#: Boots allowed per dump: TCG occasionally oopses a guest during start-up (seen with
#: 6.12 in code patching), before the scenario ran; such a dump is useless, so boot again.
ATTEMPTS = 2


def _boot_and_capture(kernel: Kernel, initrd: Path, scenario: scenarios.Scenario,
                      req: RunRequest, work: Path, say: Callable[[str], None], cmdline: str
                      ) -> tuple[str, str]:
    capture = _run_kdump if req.capture == "kdump" else _run_qemu_capture
    for attempt in range(1, ATTEMPTS + 1):
        try:
            console, dmesg = capture(kernel, initrd, scenario, req, work, say, cmdline)
        except KdxError:
            log = work / "console.log"
            if attempt == ATTEMPTS or "KDX-TRIGGER" in log.read_text(errors="replace"):
                raise
            say("the guest failed before the scenario started; booting again")
            continue
        if "KDX-TRIGGER" in console:
            return console, dmesg
        if attempt == ATTEMPTS:
            raise KdxError("the guest crashed before the scenario started, twice; see "
                           "the console: " + _last_lines(console))
        say("the guest crashed before the scenario started; booting again")
    raise AssertionError("unreachable")


#: Bump when the way dumps are made changes in a way the guest files do not show.
LAB_VERSION = 3


def lab_recipe(scenario: scenarios.Scenario, extra: str = "") -> str:
    """A fingerprint of everything that shapes this scenario's dump: the guest's init, the
    sources of the modules and programs this scenario runs, the fields of the scenario that
    reach the guest, and LAB_VERSION. A cached dump is reused only when its recipe matches,
    so changing what a scenario runs never leaves a stale dump behind, while adding a new
    scenario (its module, its program, a new truth field) leaves every other dump valid."""
    files = [build.GUEST_DIR / "init.sh", *scenario_sources(scenario)]
    shape = repr((scenario.name, scenario.modules, scenario.cmdline, scenario.trigger))
    return build.digest(files, shape, str(LAB_VERSION), extra)


def scenario_sources(scenario: scenarios.Scenario) -> list[Path]:
    """The guest sources a scenario runs: its modules' C files (with their local headers)
    and every helper program that init.sh or its trigger starts from ``/lab/bin``."""
    files = [scenarios.MODULES_DIR / scenarios.module_source(m) for m in scenario.modules]
    files += [h for f in list(files) for h in _local_headers(f)]
    started = (build.GUEST_DIR / "init.sh").read_text() + scenario.trigger
    files += [p for p in sorted(scenarios.PROGRAMS_DIR.glob("*.c"))
              if f"/lab/bin/{p.stem}" in started]
    return sorted(set(files))


def _local_headers(source: Path) -> list[Path]:
    """Headers a module source includes with quotes, from the modules directory."""
    names = re.findall(r'^\s*#\s*include\s+"([^"]+)"', source.read_text(), re.MULTILINE)
    return [source.parent / n for n in names if (source.parent / n).is_file()]


def _recipe_of(out: Path) -> str | None:
    try:
        return json.loads((out / "truth.json").read_text()).get("recipe")
    except (OSError, ValueError):
        return None


def _work_dir(cache: Path) -> Path:
    path = cache / "tmp"
    path.mkdir(parents=True, exist_ok=True)
    return path


def _tools_root(cache: Path, kernel: Kernel, fmt: str, progress: Progress = None) -> Path:
    """Where the capture kernel's makedumpfile comes from: the host's for bookworm's 6.1,
    trixie's (1.7.6) for 6.12, which bookworm's 1.7.2 filters wrongly, and for zstd,
    which 1.7.2 lacks; sid's (1.7.8) for sid's 7.x, which 1.7.6 filters wrongly."""
    if kernel.suite == "bookworm" and fmt != "kdump-zstd":
        return Path("/")
    from kdx.lab.roots import ensure_root

    return ensure_root(cache, kernel.tools_suite, progress)


def _filter_fix(cache: Path, kernel: Kernel, req: RunRequest, progress: Progress = None
                ) -> str | None:
    """The VMCOREINFO file the capture's makedumpfile needs to filter ``kernel`` right
    (see :mod:`kdx.lab.filterfix`), or None. The kernel is asked first, so kernels that
    need no fix never touch a root."""
    if req.capture != "kdump" or filterfix.compound_info_offset(kernel.vmlinux) is None:
        return None
    root = _tools_root(cache, kernel, req.format, progress)
    return filterfix.compound_head_fix(kernel, root / "usr/bin/makedumpfile")


def _libs_in(root: Path) -> initramfs.LibResolver:
    if root == Path("/"):
        return initramfs.host_libraries

    def resolve(binary: Path) -> list[Path]:
        from kdx.lab.roots import run_in_root

        out = run_in_root(root, ["ldd", str(binary)]).stdout.decode()
        return [Path(p) for p in dict.fromkeys(re.findall(r"(/\S+\.so[\w.\-]*)", out))]

    return resolve


def _capture_initrd(cache: Path, kernel: Kernel, fmt: str, work: Path,
                    fix: str | None) -> Path:
    root = _tools_root(cache, kernel, fmt)
    stage = work / "capture-stage"
    initramfs.stage_base(stage, kernel, initramfs.CAPTURE_MODULES,
                         [Path("/usr/bin/makedumpfile")], _libs_in(root), root)
    if fix:
        (stage / filterfix.GUEST_PATH.lstrip("/")).write_text(fix)
    out = work / "capture.img"
    initramfs.write_cpio(stage, out)
    return out


def _first_initrd(cache: Path, kernel: Kernel, scenario: scenarios.Scenario, modules: Path,
                  programs: Path, req: RunRequest, work: Path, fix: str | None) -> Path:
    stage = work / "stage"
    binaries = [Path("/usr/sbin/kexec")] if req.capture == "kdump" else []
    initramfs.stage_base(stage, kernel, initramfs.LIVED_IN_MODULES, binaries,
                         initramfs.host_libraries, Path("/"))
    lab = stage / "lab"
    for sub in ("modules", "bin", "capture"):
        (lab / sub).mkdir(parents=True, exist_ok=True)
    for ko in modules.glob("*.ko"):
        shutil.copy(ko, lab / "modules" / ko.name)
    for prog in programs.iterdir():
        if prog.is_file() and os.access(prog, os.X_OK):
            shutil.copy(prog, lab / "bin" / prog.name)
    (lab / "trigger.sh").write_text(_spawn_sleepers(req.tasks) + scenario.trigger + "\n")
    if req.capture == "kdump":
        shutil.copy(kernel.vmlinuz, lab / "capture" / "vmlinuz")
        capture_img = _capture_initrd(cache, kernel, req.format, work, fix)
        shutil.copy(capture_img, lab / "capture" / "initrd.img")
    out = work / "initrd.img"
    initramfs.write_cpio(stage, out)
    return out


def _spawn_sleepers(count: int) -> str:
    """Shell lines that start ``count`` sleeping processes before the scenario runs."""
    if count <= 0:
        return ""
    return (f"i=0; while [ $i -lt {count} ]; do sleep 100000 & i=$((i+1)); done\n"
            f"echo 'KDX-LAB: started {count} sleepers'\n")


def _cmdline(req: RunRequest, scenario: scenarios.Scenario, fix: bool = False) -> str:
    """The first kernel's command line; ``fix`` adds ``-i`` with the capture initramfs's
    VMCOREINFO fix to makedumpfile's flags (the guest turns commas into spaces)."""
    parts = ["console=ttyS0", f"kdx.capture={req.capture}", f"kdx.scenario={req.scenario}"]
    if req.capture == "kdump":
        words = [KDUMP_FORMATS[req.format]] if KDUMP_FORMATS[req.format] else []
        if fix:
            words += ["-i", filterfix.GUEST_PATH]
        flags = ",".join(words)
        parts += [f"crashkernel={CRASHKERNEL}", f"kdx.dumpflags={flags}",
                  f"kdx.dumplevel={req.dump_level}"]
    return " ".join(parts + list(scenario.cmdline))


def _echo_markers(say: Callable[[str], None]) -> Callable[[str], None]:
    def on_line(line: str) -> None:
        if "KDX-LAB:" in line:
            say("guest: " + line.split("KDX-LAB:", 1)[1].strip())
    return on_line


def _run_kdump(kernel: Kernel, initrd: Path, scenario: scenarios.Scenario, req: RunRequest,
               work: Path, say: Callable[[str], None], cmdline: str) -> tuple[str, str]:
    dump_disk = _blank_disk(work / "dump.img", (req.memory_mb + 512) << 20)
    dmesg_disk = _blank_disk(work / "dmesg.img", 8 << 20)
    config = GuestConfig(kernel.vmlinuz, initrd, cmdline, work / "console.log",
                         disks=[_blank_disk(work / STATE_DISK, 8 << 20), dump_disk, dmesg_disk],
                         memory_mb=req.memory_mb)
    say(f"booting {kernel.release} under QEMU (TCG) for {req.scenario}, capture by kdump")
    limit = BOOT_TIMEOUT + scenario.timeout_s + CAPTURE_TIMEOUT
    with Guest(config) as guest:
        # "end Kernel panic" means panic() ran to its end: kexec into the capture kernel
        # did not happen (the guest died before kexec -p), so stop waiting at once.
        guest.wait_for(lambda t: "KDX-LAB: capture done" in t or "end Kernel panic" in t,
                       limit, _echo_markers(say))
        guest.wait_exit(30)
        console = guest.console()
    if "KDX-LAB: capture done" not in console:
        raise KdxError(_guest_failure(console, "the kdump capture did not finish", limit))
    if "makedumpfile exit 0" not in console:
        raise KdxError("makedumpfile failed in the capture kernel; see the console log: "
                       + _last_lines(console))
    out = work / "vmcore.out"
    if req.format == "flattened":
        length = flattened.stream_length(dump_disk)
        with open(dump_disk, "rb") as src, open(out, "wb") as dst:
            shutil.copyfileobj(_Limited(src, length), dst)
    else:
        say("reassembling the flattened stream")
        flattened.reassemble(dump_disk, out)
    dmesg = dmesg_disk.read_bytes().rstrip(b"\0").decode(errors="replace")
    return console, dmesg


#: The guest's first disk: a tar of the kdump-related files it saved (``guest-state/``).
STATE_DISK = "state.img"


def _blank_disk(path: Path, size: int) -> Path:
    with open(path, "wb") as f:
        f.truncate(size)
    return path


def _save_guest_state(disk: Path, out: Path) -> None:
    """Unpack the tar the guest wrote: /proc and /sys files before and after kexec -p."""
    dest = out / "guest-state"
    shutil.rmtree(dest, ignore_errors=True)
    dest.mkdir()
    try:
        with tarfile.open(disk) as tar:
            for member in tar.getmembers():
                if member.isfile() or member.isdir():
                    tar.extract(member, dest, set_attrs=False)
    except tarfile.TarError:
        pass  # the guest died before writing it; the dump is still good


class _Limited:
    """A reader that stops after ``n`` bytes (for copyfileobj)."""

    def __init__(self, f, n: int) -> None:  # noqa: ANN001
        self.f, self.left = f, n

    def read(self, size: int = -1) -> bytes:
        size = self.left if size < 0 else min(size, self.left)
        data = self.f.read(size)
        self.left -= len(data)
        return data


def _run_qemu_capture(kernel: Kernel, initrd: Path, scenario: scenarios.Scenario,
                      req: RunRequest, work: Path, say: Callable[[str], None], cmdline: str
                      ) -> tuple[str, str]:
    qmp_path = work / "qmp.sock"
    config = GuestConfig(kernel.vmlinuz, initrd, cmdline, work / "console.log",
                         disks=[_blank_disk(work / STATE_DISK, 8 << 20)],
                         vmcoreinfo_device=req.vmcoreinfo, qmp_socket=qmp_path,
                         memory_mb=req.memory_mb)
    say(f"booting {kernel.release} under QEMU (TCG) for {req.scenario}, capture by QEMU")
    limit = BOOT_TIMEOUT + scenario.timeout_s
    with Guest(config) as guest:
        qmp = Qmp(qmp_path)
        if not guest.wait_for(lambda t: bool(_PANIC_DONE.search(t)), limit, _echo_markers(say)):
            raise KdxError(_guest_failure(guest.console(), "the guest did not panic", limit))
        time.sleep(2)  # let the panic path finish stopping the other CPUs
        qmp.command("stop")
        say(f"dumping guest memory as {req.format}")
        qmp.command("dump-guest-memory", paging=False, protocol=f"file:{work / 'vmcore.out'}",
                    format=QEMU_FORMATS[req.format])
        qmp.close()
        console = guest.console()
    return console, ""


def _last_lines(console: str, n: int = 3) -> str:
    return " | ".join(line.strip() for line in console.strip().splitlines()[-n:])


def _guest_failure(console: str, what: str, limit: float) -> str:
    return f"{what} within {int(limit)} s; last console lines: {_last_lines(console)}"


def _ground_truth(console: str, dmesg: str, kernel: Kernel, scenario: scenarios.Scenario,
                  req: RunRequest) -> dict:
    """What really happened, read from the guest's console and the scenario's sources.

    Some deaths (a double fault on stack overflow) kexec before the console prints the
    oops; then the kernel log that the capture kernel saved (``dmesg``) has it.
    """
    after = console.split("KDX-TRIGGER", 1)[-1]
    panic = re.search(scenario.panic_pattern, after)
    if panic is None and dmesg:
        after = dmesg
        panic = re.search(scenario.panic_pattern, after)
    task = _TASK_LINE.search(after[panic.start():] if panic else after)
    line = scenarios.source_line(scenario, build.GUEST_DIR / "modules")
    panic_line = ""
    if panic:
        start = after.rfind("\n", 0, panic.start()) + 1
        end = after.find("\n", panic.end())
        panic_line = re.sub(r"^\[\s*[\d.]+\]\s*", "", after[start:end if end > 0 else None])
    return {
        "schema": 1,
        "scenario": scenario.name,
        "category": scenario.category,
        "panic_message": panic_line.strip(),
        "function": scenario.function,
        "module": scenario.module,
        "source_file": scenario.source_file,
        "source_line": line,
        "pid": int(task.group(2)) if task else None,
        "comm": task.group(3) if task else scenario.comm,
        "cpu": int(task.group(1)) if task else None,
        "release": kernel.release,
        "capture": req.capture,
        "format": req.format,
        "dump_level": req.dump_level if req.capture == "kdump" else None,
        "vmcoreinfo_note": req.vmcoreinfo,
        "kdx_version": __version__,
    }


def _finish(out: Path, work: Path, kernel: Kernel, scenario: scenarios.Scenario,
            modules: Path, req: RunRequest, console: str, dmesg: str, started: float,
            recipe: str) -> None:
    """Move the dump and its companions into ``out`` and write ``truth.json`` last, so a
    directory with a truth file is always complete."""
    out.mkdir(parents=True, exist_ok=True)
    # Drop everything a previous dump left here, including outputs cached beside it
    # (crash-*.out), which would otherwise describe the old dump.
    for stale in ["truth.json", "vmcore", "vmcore.flat", "dmesg.txt", *out.glob("crash-*.out")]:
        (out / stale).unlink(missing_ok=True)
    (work / "vmcore.out").replace(out / dump_name(req))
    (out / "console.log").write_text(console)
    _save_guest_state(work / STATE_DISK, out)
    if dmesg:
        (out / "dmesg.txt").write_text(dmesg)
    mod_out = out / "modules"
    shutil.rmtree(mod_out, ignore_errors=True)
    mod_out.mkdir()
    for ko in modules.glob("*.ko"):
        shutil.copy(ko, mod_out / ko.name)
    for src in (build.GUEST_DIR / "modules").glob("*.c"):
        shutil.copy(src, mod_out / src.name)
    link = out / "vmlinux"
    link.unlink(missing_ok=True)
    link.symlink_to(kernel.vmlinux)
    truth = _ground_truth(console, dmesg, kernel, scenario, req)
    truth.update(recipe=recipe, vmcore=str(out / dump_name(req)),
                 vmlinux=str(kernel.vmlinux), modules_dir=str(mod_out),
                 seconds=round(time.time() - started, 1))
    (out / "truth.json").write_text(json.dumps(truth, indent=2) + "\n")
