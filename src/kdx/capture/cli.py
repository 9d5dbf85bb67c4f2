"""``kdx kdump``: the capture side (``crashkernel``, ``status``).

These commands look at the machine that will crash, not at a dump: whether memory is
reserved for the capture kernel, whether it is loaded, and whether the dump will have
somewhere to go. They read the live system, or with ``--root DIR`` a saved copy of its
files, so a support engineer can check a machine from the files a user sends.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from kdx.capture import crashkernel as ck
from kdx.capture.system import System, human, machine_arch, system_ram
from kdx.errors import KdxError
from kdx.render.json_out import to_json


def register(subparsers: argparse._SubParsersAction) -> None:
    kdump = subparsers.add_parser(
        "kdump", help="check and set up kdump on this machine (crashkernel=, status)",
        description="The capture side of kdump: what crashkernel= reserves, and whether "
        "this machine (or a saved copy of its files) will really produce a dump.")
    sub = kdump.add_subparsers(dest="kdump_command", metavar="ACTION", required=True)

    c = sub.add_parser(
        "crashkernel", help="evaluate a crashkernel= value exactly as the kernel does",
        description="Evaluate crashkernel= as the kernel's parser does: the size, offset, "
        "low and CMA parts it reserves on a machine with the given RAM (rounded up to "
        "128 MiB for the range form), or the kernel's reason for reserving nothing. "
        "Without VALUE or --cmdline STRING it reads this machine's /proc/cmdline.")
    c.add_argument("value", nargs="*", metavar="VALUE",
                   help="a crashkernel= value such as 512M-2G:64M,2G-:128M (several for "
                   "X,high Y,low)")
    c.add_argument("--ram", help="system RAM such as 16G (default: this machine's, from "
                   "/proc/iomem)")
    c.add_argument("--cmdline", nargs="?", const="", metavar="STRING",
                   help="evaluate a whole kernel command line (default: /proc/cmdline)")
    c.add_argument("--arch", choices=ck.ARCHES, help="architecture (default: this machine's)")
    c.add_argument("--root", type=Path, default=Path("/"),
                   help="read /proc files from a saved copy of a system")
    c.add_argument("--recommend", action="store_true",
                   help="recommend a reservation and print the commands that apply it")
    c.add_argument("--cpus", type=int, default=1,
                   help="with --recommend: CPUs the capture kernel boots (nr_cpus=, "
                   "default 1)")
    c.add_argument("--distro", choices=ck.DISTROS,
                   help="with --recommend: the distribution's defaults (default: detected)")
    c.add_argument("--json", action="store_true", help="print JSON")
    c.set_defaults(func=_crashkernel)

    s = sub.add_parser(
        "status", help="check that this machine will produce a crash dump",
        description="A kdump checklist: crashkernel= on the command line, memory really "
        "reserved, capture kernel loaded, the kdump service's configuration, the dump "
        "target and its free space, dump level and compression, the panic sysctls, and "
        "debug info for the running kernel. Every failure comes with the command that "
        "fixes it. Exit status 1 when a check fails.")
    s.add_argument("--root", type=Path, default=Path("/"),
                   help="check a saved copy of a system's files (paths under DIR mirror "
                   "the live system)")
    s.add_argument("--json", action="store_true", help="print JSON")
    s.set_defaults(func=_status)

    t = sub.add_parser(
        "test", help="crash this machine with SysRq-c to prove kdump works",
        description="Run the status checks and, only when none fails, crash the machine "
        "with 'echo c > /proc/sysrq-trigger' so kdump captures a real dump.")
    t.add_argument("--yes-really-crash", action="store_true",
                   help="required: this takes the machine down")
    t.add_argument("--root", type=Path, default=Path("/"),
                   help="act on a saved copy of a system's files (for testing)")
    t.set_defaults(func=_test)

    m = sub.add_parser(
        "mem-usage", help="page classes a filtered dump would drop (makedumpfile "
        "--mem-usage)",
        description="Count the pages makedumpfile -d 31 would exclude (zero, page cache, "
        "user, free) and the kernel data it keeps, from a vmcore or, without VMCORE, from "
        "the running kernel (/proc/kcore, root). Unlike makedumpfile --mem-usage it needs "
        "no crashkernel reservation.")
    m.add_argument("vmcore", type=Path, nargs="?", metavar="VMCORE",
                   help="the dump (default: the running kernel)")
    m.add_argument("vmlinux", type=Path, nargs="?", metavar="VMLINUX",
                   help="the vmlinux with debug info (found automatically when omitted)")
    m.add_argument("--json", action="store_true", help="print JSON")
    m.set_defaults(func=_mem_usage)


def _test(args: argparse.Namespace) -> int:
    from kdx.capture.trigger import crash_now

    print(crash_now(System(args.root), args.yes_really_crash))
    return 0


def _ram(args: argparse.Namespace, system: System) -> int:
    if args.ram:
        return ck.parse_size(args.ram)
    figure = system_ram(system)
    if not figure.bytes:
        raise KdxError(f"cannot tell the system RAM from {system.root}: give it with --ram")
    return figure.bytes


def _command_line(args: argparse.Namespace, system: System) -> tuple[str, str]:
    """The text to evaluate and where it came from."""
    if args.value:
        words = [v if v.startswith(ck.NAME) else ck.NAME + v for v in args.value]
        return " ".join(words), "given"
    if args.cmdline:
        return args.cmdline, "given command line"
    text = system.cmdline()
    if text is None:
        raise KdxError(f"cannot read {system.path('/proc/cmdline')}: give a VALUE or "
                       "--cmdline STRING")
    return text, str(system.path("/proc/cmdline"))


def _crashkernel(args: argparse.Namespace) -> int:
    system = System(args.root)
    arch = args.arch or machine_arch()
    ram = _ram(args, system)
    if args.recommend:
        distro = args.distro or detect_distro(system)
        rec = ck.recommend(ram, distro, arch, args.cpus)
        print(to_json("kdump.crashkernel.recommend", rec) if args.json
              else render_recommendation(rec))
        return 0
    text, source = _command_line(args, system)
    ev = ck.evaluate(text, ram, arch)
    print(to_json("kdump.crashkernel", ev) if args.json else render_evaluation(ev, source))
    return 1 if ev.error else 0


def detect_distro(system: System) -> str:
    """rhel/fedora/debian/ubuntu from os-release, for the defaults and the commands."""
    info = system.os_release()
    ids = [info.get("ID", "")] + info.get("ID_LIKE", "").split()
    for ident in ids:
        if ident in ("fedora",):
            return "fedora"
        if ident in ("rhel", "centos", "rocky", "almalinux", "ol"):
            return "rhel"
        if ident == "ubuntu":
            return "ubuntu"
        if ident == "debian":
            return "debian"
    raise KdxError("cannot tell the distribution from /etc/os-release: give --distro "
                   + "|".join(ck.DISTROS))


def _bytes(n: int) -> str:
    return f"{human(n)} ({n} bytes)" if n else "0"


def render_evaluation(ev: ck.Evaluation, source: str) -> str:
    lines = [f"{'value':<12}{ev.value or '(none)'}   [{source}]",
             f"{'RAM':<12}{_bytes(ev.ram)}, rounded up to 128 MiB: {human(ev.ram_rounded)}",
             f"{'form':<12}{_form(ev)}"]
    if not ev.error:
        lines.append(f"{'reserved':<12}{_bytes(ev.reserved)}")
        lines.append(f"{'size':<12}{_bytes(ev.size)}")
        lines.append(f"{'offset':<12}{hex(ev.offset) if ev.offset else 'any (kernel chooses)'}")
        if ev.high or ev.low_size:
            lines.append(f"{'low':<12}{_bytes(ev.low_size)}")
        if ev.cma_size:
            lines.append(f"{'cma':<12}{_bytes(ev.cma_size)}")
        lines.extend(f"{'':<12}{note}" for note in ev.notes)
    else:
        lines.append(f"{'reserved':<12}nothing")
        lines.append(f"{'error':<12}{ev.error}")
        if ev.form == "none":
            lines.append(f"{'':<12}'kdx kdump crashkernel --recommend' suggests a value")
    return "\n".join(lines)


def _form(ev: ck.Evaluation) -> str:
    if ev.form == "range":
        if ev.matched:
            return f"RAM ranges; first match {ev.matched}"
        return "RAM ranges; none matches"
    return {"simple": "size[@offset]", "high": "size,high (+ size,low)",
            "none": "none"}.get(ev.form, ev.form)


def render_recommendation(rec: ck.Recommendation) -> str:
    lines = [f"recommended   crashkernel={rec.value}   ({human(rec.size)} on this machine)",
             f"for           {rec.distro} {rec.arch}, RAM {human(rec.ram)}, "
             f"capture-kernel CPUs {rec.cpus}",
             "", "why:"]
    lines.extend(f"  - {r}" for r in rec.reasons)
    if rec.warnings:
        lines.append("")
        lines.extend(f"warning: {w}" for w in rec.warnings)
    lines.extend(["", "apply it:"])
    lines.extend(f"  {c}" for c in rec.commands)
    return "\n".join(lines)


def _mem_usage(args: argparse.Namespace) -> int:
    from kdx.capture.memusage import mem_usage, render_mem_usage
    from kdx.target.open import open_dump, open_live

    if args.vmcore is None:
        target, source = open_live(args.vmlinux), "/proc/kcore"
    else:
        target, source = open_dump(args.vmcore, args.vmlinux), str(args.vmcore)
    usage = mem_usage(target, source)
    print(to_json("kdump.mem_usage", usage) if args.json else render_mem_usage(usage))
    return 0


def _status(args: argparse.Namespace) -> int:
    from kdx.capture.status import render_status, run_checks

    report = run_checks(System(args.root))
    print(to_json("kdump.status", report) if args.json else render_status(report))
    return 1 if any(c.state == "fail" for c in report.checks) else 0
