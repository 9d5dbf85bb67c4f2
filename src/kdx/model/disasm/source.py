"""Source lines for disassembly: where an address comes from (drgn's innermost inlined
location, as gdb's line table gives it), finding and reading source files, ``dis -s``
listings, and the file names ``dis -l`` prints.

A line's text comes from the source file when it can be found: at the path the debug info
names, else by its name in the directories of the module ``.ko`` files and beside the
dump. Kept apart from decoding because it reads files on this machine, not the dump.
"""

from __future__ import annotations

import os
import struct
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Iterable

import drgn

from kdx.model.names import AddressNamer, address_namer
from kdx.model.records import Hex
from kdx.target.dwarfinfo import first_comp_dir

if TYPE_CHECKING:  # decode imports this module; the annotations alone need the record
    from kdx.model.disasm.decode import Instruction

__all__ = ["CONTEXT_BEFORE", "SourceListing", "SourceText", "display_path", "find_source",
           "kernel_compile_dir", "line_prefixes", "load_sources", "module_of", "read_source",
           "source_dirs", "source_listing"]


@dataclass(frozen=True)
class SourceText:
    """Lines of one source file, as far as a disassembly or listing needs them."""

    file: str  # as the debug info names it
    path: str | None  # where kdx found it on this machine; None when not found
    first_line: int  # number of lines[0]
    lines: list[str] = field(default_factory=list)

    def line(self, number: int) -> str | None:
        i = number - self.first_line
        return self.lines[i] if 0 <= i < len(self.lines) else None


@dataclass(frozen=True)
class SourceListing:
    """``dis -s``: the source around an address, crash's ``*`` on its line."""

    address: Hex
    symbol: str | None
    file: str | None  # as the debug info names it; None when unknown
    line: int | None
    path: str | None  # the file kdx read; None when not found
    lines: list[tuple[int, str]] = field(default_factory=list)  # (number, text)
    warnings: list[str] = field(default_factory=list)


def _source_of(prog: drgn.Program, address: int) -> tuple[str | None, int | None, str | None]:
    """The innermost source location of ``address``, as gdb's line table gives it."""
    try:
        loc = prog.source_location(address)[0]
    except (LookupError, ValueError, OverflowError):
        return None, None, None
    return (loc.filename or None, loc.line or None, loc.name())


def module_of(prog: drgn.Program, address: int) -> str | None:
    """The name of the loaded module ``address`` is in, None for the kernel."""
    try:
        mod = prog.module(address)
    except (LookupError, ValueError, OverflowError):
        return None
    return None if mod.name == "kernel" or isinstance(mod, drgn.MainModule) else mod.name


# -- source files -------------------------------------------------------------------------

def source_dirs(prog: drgn.Program, near: Path | None,
                extra: Iterable[Path] = ()) -> list[Path]:
    """Where module sources may be besides their debug-info path: the directories of the
    ``.ko`` files drgn loaded (the ones the user named or kdx found beside the dump) and
    ``modules/`` beside the dump, as the lab and support bundles lay them out."""
    dirs: list[Path] = []
    for path in extra:
        path = Path(path)
        dirs.append(path if path.is_dir() else path.parent)
    for mod in _modules(prog):
        file = getattr(mod, "debug_file_path", None)
        if file and not isinstance(mod, drgn.MainModule):
            dirs.append(Path(file).parent)
    if near is not None:
        dirs += [near / "modules", near]
    out: list[Path] = []
    for d in dirs:
        if d.is_dir() and d not in out:
            out.append(d)
    return out


def _modules(prog: drgn.Program) -> list:
    try:
        return list(prog.modules())
    except (AttributeError, TypeError, LookupError):
        return []


def find_source(file: str, dirs: Iterable[Path], *, by_name: bool = True) -> Path | None:
    """The source file the debug info calls ``file``: at that path if it exists, else
    that (relative) path under one of ``dirs``, else, with ``by_name`` (module code: its
    sources sit beside the ``.ko``), a file of the same name in one of ``dirs``."""
    candidate = Path(file)
    if candidate.is_absolute() and candidate.is_file():
        return candidate
    for d in dirs:
        guesses = [] if candidate.is_absolute() else [d / file]
        if by_name:
            guesses.append(d / candidate.name)
        for guess in guesses:
            if guess.is_file():
                return guess
    return None


_file_cache: dict[Path, list[str]] = {}


def read_source(path: Path) -> list[str]:
    """A source file's lines (tabs kept, line ends dropped), read once per run."""
    if path not in _file_cache:
        text = path.read_bytes().decode("utf-8", errors="replace")
        _file_cache[path] = text.splitlines()
    return _file_cache[path]


def load_sources(prog: drgn.Program, instructions: list[Instruction],
                 dirs: Iterable[Path]) -> list[SourceText]:
    """The lines of each source file the instructions came from, from the first to the
    last line they refer to (plus the few before, which objdump -S style output shows).
    Files are looked up by name only for module code: a kernel file's name (``main.c``)
    is too common to guess."""
    dirs = list(dirs)
    in_module = bool(instructions) and module_of(prog, instructions[0].address) is not None
    wanted: dict[str, list[int]] = {}
    for insn in instructions:
        if insn.source_file and insn.source_line:
            wanted.setdefault(insn.source_file, []).append(insn.source_line)
    out: list[SourceText] = []
    for file, lines in wanted.items():
        path = find_source(file, dirs, by_name=in_module)
        if path is None:
            out.append(SourceText(file, None, min(lines), []))
            continue
        try:
            text = read_source(path)
        except OSError:
            out.append(SourceText(file, None, min(lines), []))
            continue
        first = max(1, min(lines) - CONTEXT_BEFORE)
        out.append(SourceText(file, str(path), first, text[first - 1:max(lines)]))
    return out


#: Lines of source shown before the first line of a disassembled group (objdump -S).
CONTEXT_BEFORE = 10


def source_listing(prog: drgn.Program, address: int, *, count: int | None = None,
                   dirs: Iterable[Path] = (),
                   symbols: AddressNamer | None = None) -> SourceListing:
    """``dis -s``: the lines around ``address``'s source line, by crash's rules: from five
    lines before it to the end of the function (the first line after it that is a bare
    ``}``), or ``count`` lines past it."""
    name = (symbols or address_namer(prog)).name(address)
    file, line, _ = _source_of(prog, address)
    if file is None or line is None:
        return SourceListing(address, name, None, None, None)
    path = find_source(file, dirs, by_name=module_of(prog, address) is not None)
    if path is None:
        return SourceListing(address, name, file, line, None)
    try:
        text = read_source(path)
    except OSError as err:
        return SourceListing(address, name, file, line, None, [], [f"{path}: {err.strerror}"])
    first = max(line - 5, 1)
    shown: list[tuple[int, str]] = []
    number = first
    while number <= len(text):
        content = text[number - 1]
        if count is not None and number > line + count:
            break
        shown.append((number, content))
        if count is None and number > line and content == "}":
            break
        number += 1
    return SourceListing(address, name, file, line, str(path), shown)


# -- crash's file names for dis -l ----------------------------------------------------------

def line_prefixes(prog: drgn.Program, instructions: list[Instruction]) -> dict[str, str]:
    """crash prints a relative source name after the compilation directory it is
    relative to (``debian/build/.../drivers/tty/sysrq.c: 151``): that directory for each
    relative file of a kernel address. Module files are left as the debug info names
    them (out-of-tree modules name theirs absolutely)."""
    out: dict[str, str] = {}
    comp_dir: str | None | bool = False
    for insn in instructions:
        file = insn.source_file
        if not file or file.startswith("/") or file in out:
            continue
        if module_of(prog, insn.address) is not None:
            continue
        if comp_dir is False:
            comp_dir = kernel_compile_dir(prog)
        if comp_dir:
            out[file] = comp_dir
    return out


_comp_dirs: dict[str, str | None] = {}


def kernel_compile_dir(prog: drgn.Program) -> str | None:
    """The kernel's DW_AT_comp_dir (one build directory for all of vmlinux)."""
    try:
        path = prog.main_module().debug_file_path
    except (LookupError, AttributeError, ValueError):
        return None
    if not path:
        return None
    if path not in _comp_dirs:
        try:
            _comp_dirs[path] = first_comp_dir(path)
        except (OSError, ValueError, struct.error, IndexError, KeyError):
            _comp_dirs[path] = None
    return _comp_dirs[path]


def display_path(file: str, prefixes: dict[str, str]) -> str:
    """The file name ``dis -l`` prints, as crash builds it (directory + relative name)."""
    prefix = prefixes.get(file)
    if not prefix:
        return file
    return os.path.join(prefix, file) if not prefix.endswith("/") else prefix + file
