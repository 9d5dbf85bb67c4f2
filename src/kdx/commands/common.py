"""What every dump-reading command shares: ``VMCORE [VMLINUX] [MODULE.ko|DIR ...]``.

Users hand over a dump and whatever debug files they have, in any order after the dump,
as they would to crash. The vmlinux is told apart from module files by its ELF type (an
executable, where modules are relocatable objects), so nobody has to remember an option.
Anything that is neither is refused up front with the reason, because a silently ignored
argument would leave the user trusting debug info that was never loaded.
"""

from __future__ import annotations

import argparse
import struct
import sys
from pathlib import Path

from kdx.errors import KdxError
from kdx.progress import steps
from kdx.target.debuginfo import index_by_name
from kdx.target.formats import ELF_MAGIC, ET_CORE, ET_DYN, ET_EXEC, ET_REL, check_readable
from kdx.target.open import Target, open_dump
from kdx.textsafe import clean

USAGE_TAIL = "VMCORE [VMLINUX] [MODULE.ko|DIR ...]"


def add_target_arguments(parser: argparse.ArgumentParser) -> None:
    """Add the dump and debug-file positionals to a command's parser."""
    parser.usage = f"%(prog)s [options] {USAGE_TAIL}"
    parser.add_argument("vmcore", type=Path, metavar="VMCORE",
                        help="the crash dump (ELF, kdump-compressed or flattened)")
    parser.add_argument("debug", type=Path, nargs="*", default=[], metavar="VMLINUX|MODULE",
                        help="the vmlinux with debug info (found automatically when "
                        "omitted), then module .ko files or directories holding them")
    parser.add_argument("--no-vmlinux", action="store_true",
                        help="do not look for a vmlinux: read symbols, types and unwind "
                        "tables from the dump itself (kallsyms, BTF, ORC), as kdx does "
                        "when none is found")
    parser.add_argument("--no-btf", action="store_true",
                        help="with --no-vmlinux (implied): ignore the dump's BTF too and "
                        "read only kallsyms and raw memory, as on a kernel built without "
                        "BTF")


def _elf_type(path: Path) -> int | None:
    """The ELF e_type of ``path``, or None when it is not an ELF file."""
    with open(path, "rb") as f:
        head = f.read(18)
    if not head.startswith(ELF_MAGIC) or len(head) < 18:
        return None
    return struct.unpack_from("<H", head, 16)[0]


def classify_debug_paths(paths: list[Path]) -> tuple[Path | None, list[Path]]:
    """Split the arguments after the dump into (vmlinux, module files and directories)."""
    vmlinux: Path | None = None
    modules: list[Path] = []
    for path in paths:
        if path.is_dir():
            modules.append(path)
            continue
        check_readable(path, "debug file")
        etype = _elf_type(path)
        if etype == ET_EXEC:
            if vmlinux is not None:
                raise KdxError(f"two vmlinux files given ({vmlinux} and {path}): name one")
            vmlinux = path
        elif etype == ET_REL:
            modules.append(path)
        else:
            raise KdxError(f"{path} is {_what(etype)}: after the dump, name the vmlinux "
                           "(an ELF executable) and kernel module .ko files or directories")
    return vmlinux, modules


def _what(etype: int | None) -> str:
    return {None: "not an ELF file", ET_DYN: "a shared library or program",
            ET_CORE: "another core dump"}.get(etype, "an ELF file of an unknown type")


def check_named_modules(target: Target, modules: list[Path]) -> None:
    """Refuse a module file the dump never loaded: it is a wrong file, not debug info."""
    loaded = sorted(mod.name for mod, _ in target.prog.loaded_modules() if mod.name != "kernel")
    named = index_by_name(p for p in modules if p.is_file())
    stray = [str(path) for name, path in named.items() if name not in loaded]
    if stray:
        raise KdxError(f"{', '.join(stray)} is not a module loaded in the dump (it has "
                       f"{', '.join(loaded) or 'no modules'})")


def warn(message: str) -> None:
    print(f"kdx: warning: {clean(message)}", file=sys.stderr)


def open_target_from_args(args: argparse.Namespace) -> Target:
    """Open ``args.vmcore`` with the debug files named after it; progress only on a tty."""
    vmlinux, modules = classify_debug_paths(args.debug)
    btf = not getattr(args, "no_btf", False)
    no_vmlinux = bool(getattr(args, "no_vmlinux", False)) or not btf
    if no_vmlinux and vmlinux is not None:
        flag = "--no-vmlinux" if btf else "--no-btf"
        raise KdxError(f"{flag} was given with a vmlinux ({vmlinux}): choose one")
    if not sys.stderr.isatty():
        target = open_dump(args.vmcore, vmlinux, modules, no_vmlinux=no_vmlinux, btf=btf)
    else:
        with steps(f"opening {args.vmcore}") as say:
            target = open_dump(args.vmcore, vmlinux, modules, progress=say,
                               no_vmlinux=no_vmlinux, btf=btf)
    check_named_modules(target, modules)
    return target
