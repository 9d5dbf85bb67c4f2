"""Open a target — a vmcore or the running kernel — as a ready drgn Program.

This is the one place that turns user input into a working program: it recognises the
file, repairs what drgn cannot read (flattened streams, QEMU dumps without VMCOREINFO),
finds and checks the debug info, and explains every failure in one sentence. Debug info
comes from a ``SymbolProvider`` so that a provider that needs no vmlinux (BTF and kallsyms
read from the dump) can be added later without touching the callers.
"""

from __future__ import annotations

import logging
import os
import struct
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Optional, Protocol, Sequence

import drgn

from kdx.errors import KdxError
from kdx.target import flattened, partial, vmcoreinfo
from kdx.target.debuginfo import VmlinuxNotFound, check_vmlinux, find_vmlinux
from kdx.target.formats import DumpFile, identify
from kdx.target.moduleinfo import load_module_debug_info

Progress = Optional[Callable[[str], None]]


@dataclass
class Target:
    """An opened target and what kdx learned while opening it."""

    prog: drgn.Program
    path: Path | None  # the dump as the user named it; None for the live kernel
    dump: DumpFile | None  # what the file is; None for the live kernel
    read_path: Path | None  # the file drgn reads (a reassembled copy for flattened dumps)
    vmcoreinfo: dict[str, str]
    vmlinux: Path | None
    warnings: list[str] = field(default_factory=list)
    missing_modules: list[str] = field(default_factory=list)
    #: where symbols and types come from: "dwarf" (a vmlinux), "dump" (BTF, kallsyms and
    #: ORC read from the dump), "symbols" (kallsyms only: a kernel built without BTF)
    debug_source: str = "dwarf"
    #: what the file lost (cut short, damaged page descriptors), in one line; "" if sound
    damage: str = ""
    #: the module files and debug directories the debug info was loaded with (a second
    #: program on the same dump, ``kdx.target.companion``, loads the same ones)
    module_paths: tuple[Path, ...] = ()
    debug_dirs: tuple[Path, ...] = ()

    @property
    def has_source_lines(self) -> bool:
        """Whether kernel addresses map to source lines (only a vmlinux's DWARF does)."""
        return self.debug_source == "dwarf"

    @property
    def live(self) -> bool:
        return self.path is None

    @property
    def release(self) -> str:
        return self.vmcoreinfo.get("OSRELEASE", "")


class SymbolProvider(Protocol):
    """Loads symbols and types into a program whose memory is already set up."""

    def load(self, target: Target) -> None: ...


@dataclass
class DwarfProvider:
    """Debug info from DWARF: the vmlinux and the modules' .ko files. ``debug_dirs`` are
    searched besides the system's places (see ``kdx.target.debuginfo``)."""

    vmlinux: Path | None = None
    module_paths: Sequence[Path] = ()
    progress: Progress = None
    debug_dirs: Sequence[Path] = ()

    def load(self, target: Target) -> None:
        near = target.path.parent if target.path else None
        build_id = target.vmcoreinfo.get("BUILD-ID")
        if self.vmlinux is not None:
            check_vmlinux(self.vmlinux, target.release, build_id)
            vmlinux = self.vmlinux
        else:
            vmlinux = find_vmlinux(target.release, build_id, near, self.debug_dirs)
        target.vmlinux = vmlinux
        if self.progress:
            self.progress(f"loading debug info from {vmlinux}")
        main = target.prog.main_module("kernel", create=True)
        main.try_file(str(vmlinux), force=build_id is None)
        if main.wants_debug_file():
            raise KdxError(f"drgn could not use {vmlinux} as the dump's debug info")
        target.debug_source = "dwarf"
        target.missing_modules, warnings = load_module_debug_info(
            target.prog, target.release, self.module_paths, self.debug_dirs, near)
        target.warnings.extend(warnings)
        if target.missing_modules:
            target.warnings.append(
                "no debug info for module(s) " + ", ".join(target.missing_modules)
                + ": their functions show as symbol+offset without types or source lines; "
                "name their .ko files or directories after the dump")



def reassembled_cache() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "kdx" / "reassembled"


def _reassemble(dump: DumpFile,
                progress: Progress) -> tuple[Path, list[tuple[int, int]] | None]:
    """Rewrite a flattened stream as an ordinary dump once, keyed by path, size and mtime:
    in the user's cache, or (an unwritable cache) in a temporary directory, never next to
    the dump. Also returns, for a stream cut short, the byte ranges the dump holds."""
    import hashlib

    st = dump.path.stat()
    key = hashlib.sha256(f"{dump.path.resolve()}:{st.st_size}:{st.st_mtime_ns}".encode())
    name = f"{key.hexdigest()[:20]}.vmcore"
    for folder in (reassembled_cache(), Path(tempfile.gettempdir()) / f"kdx-{os.getuid()}"):
        out = folder / name
        if out.exists():
            return out, flattened.covered_ranges(out)
        try:
            out.parent.mkdir(parents=True, exist_ok=True)
        except OSError:
            continue  # an unwritable (or impossible) cache: the next place
        if progress:
            progress(f"reassembling the flattened dump {dump.path} into {out}")
        try:
            covered = flattened.reassemble(dump.path, out)
        except PermissionError:
            continue
        except OSError as err:
            raise KdxError(f"cannot reassemble {dump.path} into {out}: {err.strerror}") from err
        return out, covered
    raise KdxError(f"cannot reassemble {dump.path}: no writable cache or temporary directory")


_PLATFORMS = {
    "x86_64": drgn.Platform(drgn.Architecture.X86_64,
                            drgn.PlatformFlags.IS_64_BIT | drgn.PlatformFlags.IS_LITTLE_ENDIAN),
}


def _skip_drgn_plugins() -> None:
    """drgn scans every installed package's entry points for plugins when a dump is
    opened (a quarter of a second here); kdx finds debug info itself, so it skips that
    unless the user asked for plugins (DRGN_PLUGINS or DRGN_DISABLE_PLUGINS set)."""
    if "DRGN_PLUGINS" not in os.environ:
        os.environ.setdefault("DRGN_DISABLE_PLUGINS", "*")


def _try_core(path: Path, platform: drgn.Platform | None = None,
              vmcoreinfo_data: bytes | None = None) -> tuple[drgn.Program | None, str]:
    _skip_drgn_plugins()
    try:  # a damaged VMCOREINFO given here fails already in the constructor
        prog = drgn.Program(platform, vmcoreinfo=vmcoreinfo_data)
        prog.set_core_dump(str(path))
        return prog, ""
    except Exception as err:  # drgn reports libkdumpfile failures as plain Exception
        return None, str(err)


def _set_core(path: Path, dump: DumpFile,
              progress: Progress) -> tuple[drgn.Program, bytes | None, list[str]]:
    """A program reading ``path``, working around what drgn cannot do alone: QEMU's kdump
    files name no architecture (libkdumpfile then refuses them), QEMU dumps of guests
    without the vmcoreinfo device lack VMCOREINFO (recovered from guest memory), and a
    note with damaged fields is read without them (or replaced by a sound copy from
    memory). Also returns the VMCOREINFO text given to drgn (None: the file's own) and
    warnings saying what was repaired."""
    if dump.kind == "kdump":  # libkdumpfile reads the note itself and crashes on some keys
        vmcoreinfo.check_note(path, dump)
    given, warnings = _repaired_note(path, dump)
    platform = None
    prog, message = _try_core(path, None, given)
    if prog is None and "ARCH_NAME" in message and dump.machine in _PLATFORMS:
        platform = _PLATFORMS[dump.machine]
        prog, message = _try_core(path, platform, given)
    if prog is not None:
        return prog, given, warnings
    lowered = message.lower()
    if "vmcoreinfo" not in lowered and "qemu" not in lowered:
        raise KdxError(f"cannot read {path} as a {dump.description} dump: {message}")
    if progress:
        progress("the dump has no usable VMCOREINFO note; searching guest memory for it")
    platform = platform or _PLATFORMS.get(dump.machine or "")
    found, _bad = vmcoreinfo.sanitize(vmcoreinfo.recover(path, dump))
    prog, message = _try_core(path, platform, found)
    if prog is None:
        raise KdxError(f"cannot read {path} even with recovered VMCOREINFO: {message}")
    return prog, found, warnings


def _repaired_note(path: Path, dump: DumpFile) -> tuple[bytes | None, list[str]]:
    """A sound VMCOREINFO text to give drgn instead of the file's damaged note (None when
    the note is sound or absent), and a warning naming the damaged fields."""
    note = vmcoreinfo.note_text(path, dump)
    if not note:
        return None, []
    clean, bad = vmcoreinfo.sanitize(note)
    if not bad:
        return None, []
    shown = ", ".join(bad[:5]) + (f" and {len(bad) - 5} more" if len(bad) > 5 else "")
    if vmcoreinfo.complete(clean):
        return clean, [f"the dump's VMCOREINFO note has damaged field(s) {shown}: ignored"]
    if dump.kind == "elf":
        for copy in vmcoreinfo.copies_in_memory(path):
            text, still_bad = vmcoreinfo.sanitize(copy)
            if not still_bad and vmcoreinfo.complete(text):
                return text, [f"the dump's VMCOREINFO note is damaged ({shown}): the "
                              "kernel's own copy found in its memory is used instead"]
    raise KdxError(f"{dump.path} has a damaged VMCOREINFO note ({shown}) and no sound copy "
                   "of it was found; the dump is corrupt")


def _elf_data_end(f) -> int:  # noqa: ANN001 (a binary file)
    """Where the last segment of an ELF core ends, by its program headers."""
    head = f.read(64)
    if len(head) < 64:
        return 64
    phoff, shoff = struct.unpack_from("<QQ", head, 0x20)
    phentsize, phnum = struct.unpack_from("<HH", head, 0x36)
    if phnum == 0xFFFF:  # PN_XNUM: the real count is in section header 0's sh_info
        f.seek(shoff + 44)
        phnum = struct.unpack("<I", f.read(4).ljust(4, b"\0"))[0]
    f.seek(phoff)
    table = f.read(phentsize * phnum)
    if len(table) < phentsize * phnum:
        return phoff + phentsize * phnum
    ends = (offset + filesz for offset, filesz in (
        struct.unpack_from("<8xQ16xQ", table, i * phentsize) for i in range(phnum)))
    return max(ends, default=phoff + phentsize * phnum)


def _kdump_damage(dump: DumpFile, path: Path,
                  covered: partial.Covered | None) -> tuple[partial.KdumpPages | None, str]:
    """For a kdump file cut short or with damaged page descriptors: a reader of what it
    holds and the one warning saying what was lost; (None, "") for a sound file. A dump
    the capture itself marked incomplete (out of disk space) goes to libkdumpfile as is,
    as crash opens it."""
    if dump.incomplete and covered is None:
        return None, ""
    try:
        found = partial.survey_kdump(path, covered, dump.path)
    except (struct.error, OverflowError, ValueError):
        raise KdxError(f"{dump.path} has damaged {dump.description} headers") from None
    if found.sound:
        return None, ""
    if covered is not None:
        text = (f"{dump.path} is truncated at byte {dump.path.stat().st_size:,} of its "
                f"flattened stream (its end marker is missing): {found.lost:,} of "
                f"{found.pages:,} saved pages are missing")
        if found.bad:
            text += f" and {found.bad:,} more have damaged page descriptors"
    elif found.truncated:
        of = f"{found.expected:,}" if found.exact else f"at least {found.expected:,}"
        text = (f"{dump.path} is truncated at byte {found.size:,} of {of}: "
                f"{found.lost:,} of {found.pages:,} saved pages are missing")
        if found.bad:
            text += f" and {found.bad:,} more have damaged page descriptors"
    else:
        text = (f"{dump.path} has {found.bad + found.lost:,} damaged page descriptors of "
                f"{found.pages:,} (the first is number {found.first_bad or 0:,}): those "
                "pages are missing")
    return partial.KdumpPages(path, covered), text


def _elf_truncation(dump: DumpFile, path: Path) -> str:
    """The warning for an ELF core cut short ("" when it is whole); drgn reads one with
    pread, so a page past the end is a FaultError like any page missing from the dump."""
    if dump.incomplete:
        return ""
    size = path.stat().st_size
    with open(path, "rb") as f:
        try:
            expected = _elf_data_end(f)
            loads = _elf_segments(f)
        except (struct.error, OverflowError, ValueError):
            raise KdxError(f"{dump.path} has damaged {dump.description} headers") from None
    if expected <= size:
        return ""
    if not loads or min(offset for offset, _size in loads) > size:
        raise KdxError(f"{dump.path} is truncated: it has {size:,} bytes but its headers "
                       f"describe {expected:,} (cut before its first page)")
    lost = partial.elf_lost_pages(loads, size)
    return (f"{dump.path} is truncated at byte {size:,} of {expected:,}: {lost:,} pages "
            "of memory are missing")


def _elf_segments(f) -> list[tuple[int, int]]:  # noqa: ANN001 (a binary file)
    """(file offset, file size) of each PT_LOAD of an ELF core."""
    f.seek(0)
    head = f.read(64)
    phoff = struct.unpack_from("<Q", head, 0x20)[0]
    phentsize, phnum = struct.unpack_from("<HH", head, 0x36)
    f.seek(phoff)
    table = f.read(phentsize * min(phnum, 0xFFFF))
    out = []
    for i in range(len(table) // phentsize if phentsize >= 56 else 0):
        p_type, _flags, offset = struct.unpack_from("<IIQ", table, i * phentsize)
        filesz = struct.unpack_from("<Q", table, i * phentsize + 32)[0]
        if p_type == 1 and filesz:
            out.append((offset, filesz))
    return out


def open_dump(core: Path, vmlinux: Path | None = None, module_paths: Sequence[Path] = (),
              *, progress: Progress = None, provider: SymbolProvider | None = None,
              debug_dirs: Sequence[Path] = (), no_vmlinux: bool = False,
              btf: bool = True) -> Target:
    """Open the vmcore ``core`` with its debug info; KdxError explains any failure.

    ``debug_dirs`` are searched for debug info besides the system's places. When no
    vmlinux is found (or ``no_vmlinux`` is set), symbols, types and unwind tables come
    from the dump itself (kallsyms, BTF, ORC) and a warning says what is lost.
    ``btf=False`` ignores the dump's BTF, as if the kernel had been built without it.
    """
    target = open_core(core, progress=progress)
    try:
        load_debug_info(target, provider, vmlinux, module_paths, progress=progress,
                        debug_dirs=debug_dirs, no_vmlinux=no_vmlinux, btf=btf)
    except KdxError as err:
        if target.damage:  # what the dump lost is likely why: say it first
            raise KdxError(f"{target.damage}; {err}") from None
        raise
    return target


def open_core(core: Path, *, progress: Progress = None) -> Target:
    """The dump ``core`` opened without any debug info: its memory and VMCOREINFO only,
    which is all a reader needing no types (the fast pass, the untyped log) uses.

    A flattened stream is reassembled (once, cached). A dump cut short, or a kdump file
    with damaged page descriptors, opens with one warning saying what was lost (its
    first): the pages it still holds read as usual, the others as missing. A dump cut
    inside its headers raises KdxError.
    """
    logging.getLogger("drgn").setLevel(logging.ERROR)
    dump = identify(core)
    read_path, covered = core, None
    if dump.kind == "flattened":
        read_path, covered = _reassemble(dump, progress)
        inner = identify(read_path)
        dump = DumpFile(core, inner.kind, inner.compression, inner.dump_level,
                        inner.incomplete, inner.machine)
    pages, lost = None, ""
    if dump.kind == "kdump":
        pages, lost = _kdump_damage(dump, read_path, covered)
    elif dump.kind == "elf":
        lost = _elf_truncation(dump, read_path)
    warnings = [lost] if lost else []
    try:
        if pages is not None:
            prog, given, repaired = _set_partial(read_path, dump, pages)
        else:
            prog, given, repaired = _set_core(read_path, dump, progress)
    except KdxError as err:
        if warnings:  # the truncation is why: say it first
            raise KdxError(f"{warnings[0]}; {err}") from None
        raise
    warnings.extend(repaired)
    text = (given.decode(errors="replace") if given is not None
            else _vmcoreinfo_text(prog, core, read_path, dump))
    info = vmcoreinfo.parse(text)
    return Target(prog, core, dump, read_path, info, None, warnings, damage=lost)


def _set_partial(path: Path, dump: DumpFile,
                 pages: partial.KdumpPages) -> tuple[drgn.Program, bytes, list[str]]:
    """A program reading a damaged kdump file through kdx's own page reader (see
    ``kdx.target.partial``), with its VMCOREINFO note (repaired as ``_set_core`` does)."""
    given, warnings = _repaired_note(path, dump)
    note = given
    if note is None:
        text = vmcoreinfo.note_text(path, dump)
        note = vmcoreinfo.sanitize(text)[0] if text else None
    if not note:
        raise KdxError("its VMCOREINFO note cannot be read")
    platform = _PLATFORMS.get(dump.machine or "")
    if platform is None:
        raise KdxError(f"kdx reads damaged kdump files only for {', '.join(_PLATFORMS)}, "
                       f"not {dump.machine}")
    _skip_drgn_plugins()
    try:
        return partial.partial_program(pages, platform, note), note, warnings
    except Exception as err:  # drgn reports a VMCOREINFO it cannot parse as plain Exception
        raise KdxError(f"its VMCOREINFO note cannot be used: {err}") from None


def load_debug_info(target: Target, provider: SymbolProvider | None, vmlinux: Path | None,
                    module_paths: Sequence[Path], *, progress: Progress = None,
                    debug_dirs: Sequence[Path] = (), no_vmlinux: bool = False,
                    btf: bool = True) -> None:
    """Load the debug info: the provider given, else a vmlinux's DWARF, else (none found,
    or ``no_vmlinux``) what the dump itself carries (its BTF unless ``btf`` is False)."""
    from kdx.target.novmlinux.provider import DumpInfoProvider

    target.module_paths, target.debug_dirs = tuple(module_paths), tuple(debug_dirs)
    if provider is not None:
        provider.load(target)
        return
    from_dump = DumpInfoProvider(module_paths, progress, debug_dirs, use_btf=btf)
    if no_vmlinux or not btf:
        from_dump.load(target)
        return
    try:
        DwarfProvider(vmlinux, module_paths, progress, debug_dirs).load(target)
    except VmlinuxNotFound as err:
        try:
            from_dump.load(target)
        except KdxError as inner:
            raise KdxError(f"{err}; and the dump's own debug info cannot stand in: "
                           f"{inner}") from inner
        target.warnings.insert(0, f"{str(err).split(':')[0]}: {from_dump.summary(target)}")


def _vmcoreinfo_text(prog: drgn.Program, core: Path, read_path: Path | None = None,
                     dump: DumpFile | None = None) -> str:
    """VMCOREINFO's text: from the file's note when it has one, else through drgn (which
    also knows a note recovered from memory). Reading the file first keeps drgn from
    fixing its ``char`` type before a type finder (BTF) can say whether it is signed."""
    if read_path is not None and dump is not None:
        note = vmcoreinfo.note_text(read_path, dump)
        if note:
            return vmcoreinfo.sanitize(note)[0].decode(errors="replace")
    try:
        return prog["VMCOREINFO"].string_().decode(errors="replace")
    except (KeyError, LookupError, drgn.FaultError) as err:
        raise KdxError(f"{core} has no readable VMCOREINFO: {err}") from err


def open_live(vmlinux: Path | None = None, module_paths: Sequence[Path] = (),
              *, progress: Progress = None) -> Target:
    """Open the running kernel through /proc/kcore (needs root)."""
    logging.getLogger("drgn").setLevel(logging.ERROR)
    prog = drgn.Program()
    try:
        prog.set_kernel()
    except PermissionError as err:
        raise KdxError("reading the running kernel needs root (/proc/kcore)") from err
    except OSError as err:
        raise KdxError(f"cannot open the running kernel: {err}") from err
    info = vmcoreinfo.parse(_vmcoreinfo_text(prog, Path("/proc/kcore")))
    target = Target(prog, None, None, None, info, None)
    load_debug_info(target, None, vmlinux, module_paths, progress=progress)
    return target
