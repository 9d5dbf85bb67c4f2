"""``kdx kdump status``: will this machine produce a crash dump? A checklist with fixes.

kdump has many independent ways to fail silently, and each is only discovered after the
crash that mattered: no ``crashkernel=``, a reservation the kernel refused, a capture
kernel never loaded, a dump directory on a full disk, a dump level that keeps user data,
an oops that does not panic, no debug info to read the dump with. Each check here looks
at one of them from the files the kernel and the kdump services expose, and every
failure names the command that fixes it.
"""

from __future__ import annotations

import os
import re
import shlex
from dataclasses import dataclass, field
from pathlib import Path

from kdx.capture import crashkernel as ck
from kdx.capture.system import System, human, iomem_hidden, machine_arch, system_ram

PASS, WARN, FAIL, INFO, SKIP = "pass", "warn", "fail", "info", "skip"


@dataclass(frozen=True)
class Check:
    """One line of the checklist: a state, what was found, and how to fix it."""

    name: str
    state: str
    summary: str
    details: dict = field(default_factory=dict)
    fix: tuple[str, ...] = ()


@dataclass(frozen=True)
class StatusReport:
    root: str
    live: bool
    release: str | None
    family: str
    checks: tuple[Check, ...]
    counts: dict[str, int]


@dataclass(frozen=True)
class DumpConfig:
    """The kdump service's settings that decide where the dump goes and how big it is."""

    service: str                # "kdump-utils", "kdump-tools" or "none"
    files: tuple[str, ...]
    enabled: bool | None        # systemd enablement, when it can be seen
    path: str                   # the dump directory
    target: str                 # "local", "nfs", "ssh", "raw", "ftp" or "<fstype> <dev>"
    collector: str              # the makedumpfile (or cp) command line
    dump_level: int | None
    compression: str | None     # zlib/lzo/snappy/zstd, or an external compressor
    file_format: str            # kdump-compressed, ELF or flattened


# ------------------------------------------------------------------ configuration


def _shell_vars(text: str) -> dict[str, str]:
    """KEY=value lines of a shell-sourced config (comments ignored, quotes removed)."""
    out: dict[str, str] = {}
    for line in text.splitlines():
        m = re.match(r"\s*(?:export\s+)?([A-Za-z_]\w*)=(.*)$", line)
        if not m:
            continue
        try:
            words = shlex.split(m.group(2), comments=True)
        except ValueError:
            words = [m.group(2).strip().strip("\"'")]
        out[m.group(1)] = " ".join(words)
    return out


def _kdump_conf(text: str) -> dict[str, str]:
    """``/etc/kdump.conf``: one ``directive value`` per line, ``#`` comments."""
    out: dict[str, str] = {}
    for line in text.splitlines():
        line = line.split("#", 1)[0].strip()
        if line:
            key, _, value = line.partition(" ")
            out[key] = value.strip()
    return out


_FS_TARGETS = ("ext2", "ext3", "ext4", "xfs", "btrfs", "minix", "virtiofs")
_COMPRESSORS = {"-c": "zlib", "-l": "lzo", "-p": "snappy", "-z": "zstd"}


def parse_collector(cmd: str) -> tuple[int | None, str | None, str]:
    """Dump level, compression and file format of a makedumpfile command line."""
    words = shlex.split(cmd)
    if not words or not words[0].endswith("makedumpfile"):
        return 0, None, "ELF (unfiltered copy)"
    level, comp, fmt = 0, None, "kdump-compressed"
    i = 1
    while i < len(words):
        w = words[i]
        if w in ("-d", "--dump-level") and i + 1 < len(words):
            level = _first_level(words[i + 1])
            i += 1
        elif re.fullmatch(r"-d\d[\d,]*", w):
            level = _first_level(w[2:])
        elif w in _COMPRESSORS:
            comp = _COMPRESSORS[w]
        elif w == "-E":
            fmt = "ELF"
        elif w in ("-F", "--flatten"):
            fmt = "flattened"
        elif re.fullmatch(r"-[a-zA-Z]{2,}", w):  # bundled short options such as -cF
            for ch in w[1:]:
                comp = _COMPRESSORS.get("-" + ch, comp)
                fmt = {"E": "ELF", "F": "flattened"}.get(ch, fmt)
        i += 1
    if fmt == "ELF":
        comp = None
    return level, comp, fmt


def _first_level(text: str) -> int | None:
    """``-d 31`` or ``-d 11,31`` (makedumpfile retries with the next on overflow)."""
    try:
        return int(text.split(",")[0])
    except ValueError:
        return None


def _enabled(system: System, unit: str) -> bool | None:
    wants = system.path("/etc/systemd/system/multi-user.target.wants")
    if not wants.is_dir():
        return None
    return (wants / unit).exists() or (wants / unit).is_symlink()


def read_config(system: System) -> DumpConfig:
    """kdump-utils (``/etc/kdump.conf``, ``/etc/sysconfig/kdump``) or kdump-tools
    (``/etc/default/kdump-tools``), with each service's documented defaults."""
    conf = system.read("/etc/kdump.conf")
    if conf is not None:
        return _kdump_utils_config(system, _kdump_conf(conf))
    tools = system.read("/etc/default/kdump-tools")
    if tools is not None:
        return _kdump_tools_config(system, _shell_vars(tools))
    return DumpConfig("none", (), None, "/var/crash", "local", "", None, None, "")


def _kdump_utils_config(system: System, conf: dict[str, str]) -> DumpConfig:
    files = ["/etc/kdump.conf"]
    if system.exists("/etc/sysconfig/kdump"):
        files.append("/etc/sysconfig/kdump")
    target = "local"
    for key in ("raw", "nfs", "ssh", *_FS_TARGETS):
        if key in conf:
            target = key if key in ("raw", "nfs", "ssh") else f"{key} {conf[key]}"
    collector = conf.get("core_collector", "makedumpfile -l --message-level 7 -d 31")
    if target in ("raw", "ssh") and "makedumpfile" in collector and "-F" not in collector:
        collector += " -F"  # kdump-utils flattens for raw and ssh targets
    level, comp, fmt = parse_collector(collector)
    return DumpConfig("kdump-utils", tuple(files), _enabled(system, "kdump.service"),
                      conf.get("path", "/var/crash"), target, collector, level, comp, fmt)


def _kdump_tools_config(system: System, env: dict[str, str]) -> DumpConfig:
    args = env.get("MAKEDUMP_ARGS") or "-F -c -d 31"
    if "-F" not in args.split():
        args += " -F"  # kdump-config always adds -F
    level, comp, fmt = parse_collector("makedumpfile " + args)
    external = env.get("KDUMP_COMPRESSION")
    target = next((k.lower() for k in ("SSH", "NFS", "FTP") if env.get(k)), "local")
    enabled = _enabled(system, "kdump-tools.service")
    if env.get("USE_KDUMP", "1") == "0":
        enabled = False
    return DumpConfig("kdump-tools", ("/etc/default/kdump-tools",), enabled,
                      env.get("KDUMP_COREDIR", "/var/crash"), target, "makedumpfile " + args,
                      level, f"{comp or 'none'} + {external}" if external else comp, fmt)


# --------------------------------------------------------------------- the checks


def family(system: System, config: DumpConfig) -> str:
    """Which fix commands to show: kdump-utils (RHEL, Fedora), kdump-tools (Debian,
    Ubuntu), or both when the system does not say."""
    if config.service != "none":
        return config.service
    info = system.os_release()
    ids = {info.get("ID", "")} | set(info.get("ID_LIKE", "").split())
    if ids & {"rhel", "fedora", "centos"}:
        return "kdump-utils"
    if ids & {"debian", "ubuntu"}:
        return "kdump-tools"
    return "unknown"


def _pick(fam: str, utils: list[str], tools: list[str]) -> tuple[str, ...]:
    if fam == "kdump-utils":
        return tuple(utils)
    if fam == "kdump-tools":
        return tuple(tools)
    return tuple([f"{c}    # RHEL/Fedora" for c in utils] + [f"{c}    # Debian/Ubuntu"
                                                               for c in tools])


def check_crashkernel(system: System, fam: str, ram: int) -> tuple[Check, ck.Evaluation | None]:
    cmdline = system.cmdline()
    if cmdline is None:
        return Check("crashkernel", SKIP, "no /proc/cmdline to read"), None
    ev = ck.evaluate(cmdline, ram, machine_arch() if system.live else "x86_64")
    details = {"value": ev.value, "ram": ram, "ram_rounded": ev.ram_rounded,
               "size": ev.size, "low_size": ev.low_size, "cma_size": ev.cma_size,
               "expected": ev.reserved, "error": ev.error}
    rhel = ck.apply_commands("rhel", ck.KDUMP_UTILS["x86_64"], ck.KDUMP_UTILS["x86_64"])
    fix = _pick(fam, rhel, ck.apply_commands("debian", ck.DEBIAN))
    if ev.error:
        summary = f"{ev.value}: {ev.error}" if ev.value else ev.error
        return Check("crashkernel", FAIL, summary,
                     details, ("kdx kdump crashkernel --recommend",) + fix), ev
    return Check("crashkernel", PASS, f"{ev.value} → {human(ev.reserved)} for "
                 f"{human(ram)} of RAM", details), ev


def check_reservation(system: System, ev: ck.Evaluation | None) -> Check:
    size = system.int_file("/sys/kernel/kexec_crash_size")
    entries = system.iomem()
    ranges = [e for e in entries if e.name == "Crash kernel"]
    hidden = iomem_hidden(entries)
    iomem_total = sum(e.size for e in ranges)
    details = {"kexec_crash_size": size,
               "iomem": [f"{e.start:x}-{e.end:x}" for e in ranges],
               "iomem_bytes": None if hidden else iomem_total,
               "expected": ev.reserved if ev else None}
    if size is None and not ranges:
        return Check("reservation", SKIP, "neither /sys/kernel/kexec_crash_size nor "
                     "/proc/iomem can be read", details)
    fix = ("reboot  # the reservation is made at boot from crashkernel=",
           "dmesg | grep -i crashkernel  # the kernel's reason when it reserved nothing")
    if not size and not (ranges and iomem_total):
        return Check("reservation", FAIL, "no memory is reserved for the capture kernel",
                     details, fix)
    shown = size if size else iomem_total
    parts = [f"{human(shown)} reserved"]
    if size is not None:
        parts.append(f"kexec_crash_size {size}")
    if ranges and not hidden:
        parts.append("/proc/iomem Crash kernel " + ", ".join(details["iomem"]))
    summary = "; ".join(parts)
    if size and ranges and not hidden and iomem_total != size:
        return Check("reservation", WARN, summary + f" (the two disagree: iomem has "
                     f"{human(iomem_total)})", details)
    if ev and ev.reserved and ev.cma_size == 0 and shown != ev.reserved:
        return Check("reservation", WARN, summary + f", but crashkernel= asks for "
                     f"{human(ev.reserved)} (shrunk through kexec_crash_size, or the "
                     "boot was with another value)", details, fix)
    return Check("reservation", PASS, summary, details)


def check_loaded(system: System, fam: str) -> Check:
    loaded = system.int_file("/sys/kernel/kexec_crash_loaded")
    if loaded is None:
        return Check("capture kernel", SKIP, "/sys/kernel/kexec_crash_loaded is missing "
                     "(kernel without kexec?)")
    details = {"kexec_crash_loaded": loaded}
    if loaded == 1:
        return Check("capture kernel", PASS, "loaded (kexec_crash_loaded = 1)", details)
    fix = _pick(fam, ["systemctl enable --now kdump", "kdumpctl status"],
                ["systemctl enable --now kdump-tools", "kdump-config load",
                 "kdump-config show"])
    return Check("capture kernel", FAIL, "not loaded (kexec_crash_loaded = 0): a panic "
                 "now would reboot or hang without a dump", details, fix)


def check_service(system: System, config: DumpConfig, fam: str) -> Check:
    details = {"service": config.service, "files": list(config.files),
               "enabled": config.enabled, "target": config.target, "path": config.path,
               "collector": config.collector}
    if config.service == "none":
        fix = _pick(fam, ["dnf install kdump-utils", "systemctl enable --now kdump"],
                    ["apt install kdump-tools", "systemctl enable --now kdump-tools"])
        state = SKIP if not system.live else WARN
        return Check("kdump service", state, "no kdump-utils or kdump-tools configuration "
                     "(/etc/kdump.conf, /etc/default/kdump-tools): nothing reloads the "
                     "capture kernel at boot", details, fix)
    if config.enabled is False:
        unit = "kdump" if config.service == "kdump-utils" else "kdump-tools"
        fix = [f"systemctl enable --now {unit}"]
        if config.service == "kdump-tools":
            fix.insert(0, "sed -i 's/^USE_KDUMP=.*/USE_KDUMP=1/' /etc/default/kdump-tools")
        return Check("kdump service", FAIL, f"{config.service} is configured but not "
                     "enabled", details, tuple(fix))
    return Check("kdump service", PASS, f"{config.service}: dump to {config.target} "
                 f"{config.path}", details)


def estimate_dump(system: System, level: int | None, crash_size: int) -> int | None:
    """Bytes makedumpfile will write before compression, from ``/proc/meminfo``.

    Memory outside MemTotal (kernel image, struct pages, early reservations) is kernel
    data and always dumped, except the crashkernel area. Inside MemTotal, level bit 16
    drops free pages, bits 2/4 the page cache (shmem included), bit 8 user pages. On the
    lab's 6.1 guest this predicts 68 MiB where the real -d 31 dump holds 70 MiB.
    """
    info = system.meminfo()
    ram = system_ram(system).bytes
    if "MemTotal" not in info or not ram:
        return None
    level = level or 0
    total = info["MemTotal"]
    est = max(ram - total - crash_size, 0) + total
    if level & 16:
        est -= info.get("MemFree", 0)
    if level & 6:
        est -= info.get("Cached", 0) + info.get("Buffers", 0) + info.get("SwapCached", 0)
    if level & 8:
        est -= info.get("AnonPages", 0) + info.get("Hugetlb", 0)
    return max(est, 0)


def check_target(system: System, config: DumpConfig, crash_size: int) -> Check:
    level = config.dump_level if config.service != "none" else 31
    est = estimate_dump(system, level, crash_size)
    details = {"path": config.path, "target": config.target, "estimate": est,
               "estimate_level": level}
    shown = f"{human(est)} at -d {level}" if est is not None else "unknown"
    if config.target in ("nfs", "ssh", "ftp", "raw"):
        return Check("dump target", INFO, f"remote or raw target ({config.target}): "
                     f"free space is not checked here; estimated dump {shown}", details)
    if config.target != "local":
        details["note"] = "the path is relative to the target file system's mount point"
    where = system.path(config.path)
    if not where.is_dir():
        if not system.live:
            return Check("dump target", SKIP, f"{config.path} is not in the saved copy; "
                         f"estimated dump {shown}", details)
        state = WARN if config.service == "none" else FAIL
        return Check("dump target", state, f"{config.path} does not exist", details,
                     (f"mkdir -p {config.path}",))
    if not system.live:
        return Check("dump target", INFO, f"{config.path} exists; free space is not "
                     f"checked in a saved copy; estimated dump {shown}", details)
    st = os.statvfs(where)
    free = st.f_bavail * st.f_frsize
    details["free"] = free
    summary = f"{config.path}: {human(free)} free, estimated dump {shown} before compression"
    if est is None or free >= est:
        return Check("dump target", PASS, summary, details)
    if config.compression and free * 3 >= est:
        return Check("dump target", WARN, summary + " (fits only if compression does "
                     "better than 3:1)", details)
    return Check("dump target", FAIL, summary, details,
                 (f"free space under {config.path}, or point the dump elsewhere "
                  "('path' in /etc/kdump.conf, KDUMP_COREDIR in /etc/default/kdump-tools)",))


def check_level(config: DumpConfig) -> Check:
    details = {"collector": config.collector, "dump_level": config.dump_level,
               "compression": config.compression, "format": config.file_format}
    if config.service == "none":
        return Check("dump level", SKIP, "no kdump service configuration", details)
    level = config.dump_level
    what = (f"-d {level}, {config.compression or 'no'} compression, "
            f"{config.file_format}")
    fix_file = ("core_collector in /etc/kdump.conf" if config.service == "kdump-utils"
                else "MAKEDUMP_ARGS in /etc/default/kdump-tools")
    if level is None or level == 0:
        return Check("dump level", WARN, f"{what}: every page is written (as large as "
                     "RAM, with user data)", details, (f"set '-d 31' in {fix_file}",))
    if level & 31 != 31:
        kept = [name for bit, name in ((1, "zero"), (2, "cache"), (4, "private cache"),
                                       (8, "user"), (16, "free")) if not level & bit]
        return Check("dump level", WARN, f"{what}: keeps {', '.join(kept)} pages",
                     details, (f"set '-d 31' in {fix_file}",))
    if not config.compression:
        return Check("dump level", WARN, f"{what}: uncompressed", details,
                     (f"add -z (zstd), -l (lzo) or -c (zlib) to {fix_file}",))
    return Check("dump level", PASS, what, details)


def check_makedumpfile(system: System, config: DumpConfig) -> Check:
    """Warn when the installed makedumpfile is older than the kernel it will filter: it
    may then drop pages of live kernel data (tasks missing from the dump)."""
    from kdx.capture import makedumpfile as mdf

    if "makedumpfile" not in config.collector:
        return Check("makedumpfile", SKIP, "the dump is not written by makedumpfile")
    version = mdf.installed_version(system)
    release = system.release()
    kernel = mdf.parse_version(release or "")
    if version is None or kernel is None:
        return Check("makedumpfile", INFO, "installed version not known", {"kernel": release})
    shown = ".".join(map(str, version))
    ceiling = mdf.newest_supported(version)
    details = {"version": shown, "kernel": release,
               "supports_up_to": ".".join(map(str, ceiling)) if ceiling else None}
    if ceiling is None or kernel[:2] <= ceiling:
        return Check("makedumpfile", PASS, f"{shown} knows Linux {kernel[0]}.{kernel[1]}",
                     details)
    newer = [v for v, top in mdf.SUPPORTED_UP_TO.items() if top >= kernel[:2]]
    want = (f"makedumpfile {'.'.join(map(str, min(newer)))} or newer" if newer
            else "the newest makedumpfile (check its supported kernels)")
    return Check("makedumpfile", WARN, f"{shown} supports Linux up to "
                 f"{ceiling[0]}.{ceiling[1]}, older than this kernel ({release}): it may "
                 "exclude pages of live kernel data (tasks missing from the dump)", details,
                 (f"install {want}",))


def _sysctl_fix(name: str, value: int) -> tuple[str, ...]:
    return (f"sysctl -w {name}={value}",
            f"echo '{name} = {value}' >> /etc/sysctl.d/90-kdump.conf")


def check_sysctls(system: System, loaded: bool) -> list[Check]:
    checks = []
    sysrq = system.sysctl("kernel.sysrq")
    if sysrq is None:
        checks.append(Check("kernel.sysrq", SKIP, "not readable"))
    elif sysrq == 1 or sysrq & 8:
        checks.append(Check("kernel.sysrq", PASS, f"{sysrq}: SysRq-c from a keyboard or "
                            "serial console can force a dump of a hung machine"))
    else:
        checks.append(Check("kernel.sysrq", WARN, f"{sysrq}: the crash key (mask 8) is off, "
                            "so a hung machine cannot be dumped from the console; "
                            "'echo c > /proc/sysrq-trigger' works regardless",
                            {"value": sysrq}, _sysctl_fix("kernel.sysrq", 1)))
    oops = system.sysctl("kernel.panic_on_oops")
    if oops is None:
        checks.append(Check("kernel.panic_on_oops", SKIP, "not readable"))
    elif oops:
        checks.append(Check("kernel.panic_on_oops", PASS, "1: an oops panics and is dumped"))
    else:
        checks.append(Check("kernel.panic_on_oops", WARN, "0: an oops kills only the task "
                            "and leaves no dump", {"value": 0},
                            _sysctl_fix("kernel.panic_on_oops", 1)))
    panic = system.sysctl("kernel.panic")
    if panic is not None:
        if panic == 0 and not loaded:
            checks.append(Check("kernel.panic", WARN, "0: without a capture kernel a panic "
                                "hangs the machine for good", {"value": 0},
                                _sysctl_fix("kernel.panic", 10)))
        else:
            checks.append(Check("kernel.panic", INFO, f"{panic}: "
                                + ("the machine hangs after a panic that kdump did not "
                                   "catch" if panic == 0 else
                                   "reboot timeout after a panic kdump did not catch"),
                                {"value": panic}))
    checks.append(_panic_triggers(system, bool(oops)))
    return checks


#: The other events that can be made to panic (and so be dumped).
PANIC_TRIGGERS = (("kernel.panic_on_warn", "WARN()"),
                  ("kernel.softlockup_panic", "soft lockup"),
                  ("kernel.hardlockup_panic", "hard lockup"),
                  ("kernel.hung_task_panic", "hung task"),
                  ("kernel.panic_on_rcu_stall", "RCU stall"),
                  ("kernel.unknown_nmi_panic", "unknown NMI"),
                  ("kernel.panic_on_unrecovered_nmi", "unrecovered NMI"),
                  ("kernel.panic_on_io_nmi", "I/O NMI"),
                  ("vm.panic_on_oom", "out of memory"))


def _panic_triggers(system: System, oops: bool) -> Check:
    on, off, values = (["oops"], [], {}) if oops else ([], ["oops"], {})
    for name, what in PANIC_TRIGGERS:
        value = system.sysctl(name)
        if value is None:
            continue
        values[name] = value
        (on if value else off).append(what)
    if not values:
        return Check("panic triggers", SKIP, "no panic_on_* sysctls readable")
    summary = (f"panic and dump on: {', '.join(on) or 'explicit panics only'}; "
               f"not on: {', '.join(off) or 'nothing'}")
    return Check("panic triggers", INFO, summary, values,
                 tuple(f"sysctl -w {n}=1  # to dump on {w}" for n, w in PANIC_TRIGGERS
                       if values.get(n) == 0))


def check_debuginfo(system: System) -> Check:
    """A vmlinux with DWARF for the running kernel: without it the dump cannot be read."""
    from kdx.errors import KdxError
    from kdx.target.debuginfo import check_vmlinux, vmlinux_candidates

    release = system.release()
    if not release:
        return Check("debuginfo", SKIP, "the running kernel's release is unknown")
    build_id = _build_id(system)
    standard = [c for c in vmlinux_candidates(release, build_id, None)
                if not str(c).startswith(str(Path.home()))]
    for cand in standard:
        path = system.path(str(cand))
        if path.is_file():
            try:
                check_vmlinux(path, release, build_id)
            except KdxError:
                continue
            return Check("debuginfo", PASS, f"{cand} has debug info for {release}",
                         {"release": release, "vmlinux": str(path)})
    fix = (f"apt install linux-image-{release}-dbg    # Debian "
           "(Ubuntu: linux-image-unsigned-…-dbgsym from ddebs.ubuntu.com)",
           f"dnf debuginfo-install kernel-{release}    # RHEL/Fedora")
    if not system.live:
        for cand in vmlinux_candidates(release, build_id, None):
            if cand.is_file():
                return Check("debuginfo", WARN, f"no vmlinux for {release} on the system, "
                             f"but this host has {cand}", {"release": release,
                                                          "host_vmlinux": str(cand)}, fix)
    return Check("debuginfo", FAIL, f"no vmlinux with debug info for {release}: its dumps "
                 "cannot be analysed", {"release": release}, fix)


def _build_id(system: System) -> str | None:
    """The running kernel's GNU build ID, from ``/sys/kernel/notes``."""
    try:
        data = system.path("/sys/kernel/notes").read_bytes()
    except OSError:
        return None
    pos = 0
    while pos + 12 <= len(data):
        namesz, descsz, ntype = (int.from_bytes(data[pos + i:pos + i + 4], "little")
                                 for i in (0, 4, 8))
        name_end = pos + 12 + ((namesz + 3) & ~3)
        if ntype == 3 and data[pos + 12:pos + 12 + namesz].rstrip(b"\0") == b"GNU":
            return data[name_end:name_end + descsz].hex()
        pos = name_end + ((descsz + 3) & ~3)
    return None


def run_checks(system: System) -> StatusReport:
    config = read_config(system)
    fam = family(system, config)
    ram = system_ram(system).bytes
    ck_check, ev = check_crashkernel(system, fam, ram)
    checks = [ck_check, check_reservation(system, ev)]
    loaded = check_loaded(system, fam)
    checks += [loaded, check_service(system, config, fam)]
    crash_size = system.int_file("/sys/kernel/kexec_crash_size") or (ev.reserved if ev else 0)
    checks += [check_target(system, config, crash_size), check_level(config),
               check_makedumpfile(system, config)]
    checks += check_sysctls(system, loaded.state == PASS)
    checks.append(check_debuginfo(system))
    counts: dict[str, int] = {}
    for c in checks:
        counts[c.state] = counts.get(c.state, 0) + 1
    return StatusReport(str(system.root), system.live, system.release(), fam, tuple(checks),
                        counts)


def render_status(report: StatusReport) -> str:
    where = "this system" if report.live else f"saved system {report.root}"
    lines = [f"kdump status of {where} (Linux {report.release or 'unknown'})", ""]
    for c in report.checks:
        lines.append(f"  {c.state.upper():<5} {c.name:<21} {c.summary}")
        lines.extend(f"        fix: {f}" for f in c.fix if c.state in (FAIL, WARN))
    counts = report.counts
    lines.append("")
    lines.append(", ".join(f"{counts[s]} {s}" for s in (PASS, WARN, FAIL, INFO, SKIP)
                           if s in counts))
    return "\n".join(lines)
