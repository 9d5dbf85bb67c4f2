"""``kdx lab``: make real vmcores on demand (``list``, ``run``) and damaged copies
of them (``damage``)."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from kdx.lab import scenarios
from kdx.lab.cache import default_cache
from kdx.lab.run import CAPTURES, KDUMP_FORMATS, QEMU_FORMATS, RunRequest, dump_name, run
from kdx.progress import steps


def register(subparsers: argparse._SubParsersAction) -> None:
    lab = subparsers.add_parser(
        "lab", help="make real crash dumps of Debian kernels under QEMU",
        description="Boot a real Debian cloud kernel under QEMU, crash it in a chosen way "
        "and capture a real vmcore, with its vmlinux, modules and ground truth.")
    sub = lab.add_subparsers(dest="lab_command", metavar="ACTION", required=True)

    lst = sub.add_parser("list", help="list the crash scenarios")
    lst.add_argument("--json", action="store_true", help="print JSON")
    lst.set_defaults(func=_list)

    r = sub.add_parser("run", help="crash a guest in one scenario and capture its vmcore")
    r.add_argument("scenario", help="scenario name (see 'kdx lab list')")
    r.add_argument("--kernel", help="6.1 (default), 6.12, 7, bookworm, trixie, sid (Debian's "
                   "newest) or a release such as 6.1.0-56-cloud-amd64")
    r.add_argument("--capture", choices=CAPTURES, default="kdump",
                   help="kdump inside the guest (default) or QEMU's dump-guest-memory")
    r.add_argument("--format", default="kdump-zlib",
                   help="dump format: for kdump " + ", ".join(KDUMP_FORMATS)
                   + "; for qemu " + ", ".join(QEMU_FORMATS) + " (default kdump-zlib)")
    r.add_argument("--dump-level", type=int, default=31, help="makedumpfile -d (default 31)")
    r.add_argument("--no-vmcoreinfo", action="store_true",
                   help="qemu capture without the VMCOREINFO note (as on hosts without "
                   "the vmcoreinfo device)")
    r.add_argument("--tasks", type=int, default=0, metavar="N",
                   help="start N extra sleeping processes first (for benchmarks)")
    r.add_argument("--memory", type=int, default=512, metavar="MB",
                   help="guest memory in MB (default 512; give more with --tasks)")
    r.add_argument("--out", type=Path, help="directory for the results "
                   "(default: under the cache's runs/)")
    r.add_argument("--cache", type=Path, help="lab cache (default $KDX_LAB_CACHE or "
                   "~/.cache/kdx/lab)")
    r.add_argument("--force", action="store_true", help="make a new dump even if one is cached")
    r.add_argument("--json", action="store_true", help="print the ground truth as JSON")
    r.set_defaults(func=_run)

    d = sub.add_parser("damage", help="make a reproducibly damaged copy of a vmcore",
                       description="Copy VMCORE to OUT with one kind of damage (truncation, "
                       "flipped bits, lost pages, kernel lists corrupted in place), the same "
                       "bytes for the same --seed. '--kind list' lists the kinds.")
    d.add_argument("vmcore", type=Path, nargs="?", help="the sound dump (only read)")
    d.add_argument("-o", "--out", type=Path, help="the damaged copy to write")
    d.add_argument("--kind", required=True, help="what damage to make, or 'list'")
    d.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    d.add_argument("--at", type=float, help="truncate: a fraction (0-1) or a byte offset")
    d.add_argument("--vmlinux", type=Path, help="for kinds corrupting kernel data (default: "
                   "the vmlinux next to the dump)")
    d.set_defaults(func=_damage)


def _list(args: argparse.Namespace) -> int:
    items = list(scenarios.SCENARIOS.values())
    if args.json:
        print(json.dumps([{"name": s.name, "category": s.category, "summary": s.summary}
                          for s in items], indent=2))
        return 0
    width = max(len(s.name) for s in items)
    for s in items:
        print(f"{s.name:<{width}}  {s.summary}")
    return 0


def _damage(args: argparse.Namespace) -> int:
    from kdx.errors import KdxError
    from kdx.lab.damage import KINDS, damage

    if args.kind == "list":
        for kind in KINDS.values():
            print(f"{kind.name:<20} {'/'.join(kind.formats):<20} {kind.summary}")
        return 0
    if args.vmcore is None or args.out is None:
        raise KdxError("kdx lab damage needs VMCORE and -o OUT")
    print(damage(args.vmcore, args.out, args.kind, args.seed, args.vmlinux, args.at))
    return 0


def _run(args: argparse.Namespace) -> int:
    req = RunRequest(scenario=args.scenario, kernel=args.kernel, capture=args.capture,
                     format=args.format, dump_level=args.dump_level,
                     vmcoreinfo=not args.no_vmcoreinfo, out=args.out, force=args.force,
                     tasks=args.tasks, memory_mb=args.memory)
    req.check()
    with steps(f"kdx lab run {args.scenario}") as say:
        out = run(args.cache or default_cache(), req, say)
    truth = json.loads((out / "truth.json").read_text())
    if args.json:
        print(json.dumps(truth, indent=2))
        return 0
    print(f"vmcore:   {out / dump_name(req)}")
    print(f"vmlinux:  {truth['vmlinux']}")
    print(f"modules:  {truth['modules_dir']}")
    print(f"console:  {out / 'console.log'}")
    print(f"truth:    {out / 'truth.json'}")
    print(f"panic:    {truth['panic_message']}")
    return 0
