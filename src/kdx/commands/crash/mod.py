"""``mod``: the loaded modules, their taints, and loading their debug info.

kdx loads every module's debug info it can find when it opens a dump, so ``mod -s`` and
``mod -S`` are for files kept elsewhere. drgn cannot unload debug info, so ``mod -d``
only explains that.
"""

from __future__ import annotations

import argparse
import contextlib
import struct
from pathlib import Path

import drgn

from kdx.commands.crash.arguments import symbols
from kdx.model.answers import ModuleTaints
from kdx.model.modules import ModuleInfo, find_module, module_list
from kdx.model.symbols import SymbolEntry, module_sections
from kdx.render.crash.mod import render_modules, render_taints
from kdx.session.command import CommandError, crash_command, make_parser
from kdx.session.session import Session
from kdx.target.debuginfo import index_by_name, module_debug_files, module_search_dirs


def _parser():
    parser = make_parser("mod", "the loaded kernel modules, and their debug info")
    what = parser.add_mutually_exclusive_group()
    what.add_argument("-s", dest="load", metavar="MODULE",
                      help="load the debug info of MODULE (name or address), from FILE "
                           "or the usual places")
    what.add_argument("-S", dest="load_all", action="store_true",
                      help="load the debug info of every module, from DIR or the usual places")
    what.add_argument("-t", dest="taints", action="store_true",
                      help="the modules that tainted the kernel, with their taint letters")
    what.add_argument("-d", dest="drop", metavar="MODULE",
                      help="forget MODULE's debug info (not possible with drgn)")
    what.add_argument("-D", dest="drop_all", action="store_true",
                      help="forget every module's debug info (not possible with drgn)")
    what.add_argument("-R", dest="reinit", action="store_true",
                      help="forget the section symbols of -g and list the modules again "
                      "(drgn keeps the debug info it loaded)")
    what.add_argument("-o", dest="old", action="store_true",
                      help="crash's old add-symbol-file mechanism: accepted, nothing to do")
    parser.add_argument("-g", dest="sections", action="store_true",
                        help="with -s or -S: add each module section's start and end to "
                        "the module's symbols (sym -m shows them)")
    parser.add_argument("-r", dest="readnow", action="store_true",
                        help="gdb's -readnow: accepted, drgn indexes debug info anyway")
    parser.add_argument("path", nargs="?", metavar="FILE|DIR",
                        help="the .ko file for -s, or a directory of them for -S")
    return parser


#: The session's section symbols from ``mod -g``, by module name.
SECTION_SYMBOLS = "module-section-symbols"


def section_symbols(session: Session) -> dict[str, list[SymbolEntry]]:
    """What ``mod -s/-S -g`` added: crash's ``[SECTION]: section start|end`` entries."""
    return session.cached(SECTION_SYMBOLS, dict)


def _modules(session: Session) -> list[ModuleInfo]:
    """Built afresh each time: cheap, and ``mod -s`` changes the OBJECT FILE column."""
    warnings: list[str] = []
    modules = module_list(session.prog, warnings)
    if not modules and warnings:  # "no modules installed" would be a lie
        raise CommandError(f"no module could be read: {warnings[-1]}")
    for warning in warnings:
        session.warn(warning)
    return modules


@crash_command("mod", "loaded modules (-t taints, -s/-S load debug info, -g sections)",
               parser=_parser)
def _mod(session: Session, args: argparse.Namespace) -> None:
    if args.path and not (args.load or args.load_all):
        raise CommandError("a FILE or DIR goes with -s or -S")
    if args.drop or args.drop_all:
        raise CommandError("drgn cannot unload debug info once loaded; to work without a "
                           "module's, start kdx again without its .ko")
    if args.old:
        return
    modules = _modules(session)
    if args.reinit:
        section_symbols(session).clear()
        session.emit("mod", modules, lambda: render_modules(modules))
        return
    if args.taints:
        session.emit("mod-taints", [ModuleTaints(m.name, m.taints) for m in modules if m.taints],
                     lambda: render_taints(modules))
    elif args.load:
        _load_one(session, modules, args.load, args.path, args.sections)
    elif args.load_all:
        _load_all(session, modules, args.path, args.sections)
    else:
        session.emit("mod", modules, lambda: render_modules(modules))


def _drgn_module(session: Session, info: ModuleInfo) -> drgn.Module:
    struct = drgn.Object(session.prog, "struct module *", info.address)
    return session.prog.linux_kernel_loadable_module(struct)


def _beside_dump(session: Session) -> dict[str, Path]:
    near = session.target.path.parent if session.target.path else None
    return index_by_name(module_debug_files(module_search_dirs(near)))


def _load_one(session: Session, modules: list[ModuleInfo], ref: str,
              path: str | None, sections: bool = False) -> None:
    info = find_module(modules, ref)
    if info is None:
        raise CommandError(f"{ref}: no such module loaded")
    module = _drgn_module(session, info)
    if path is not None:
        _try_named_file(module, info, Path(path))
    elif module.wants_debug_file():
        beside = _beside_dump(session).get(info.name)
        if beside is not None:
            module.try_file(str(beside))
        if module.wants_debug_file():
            with contextlib.suppress(drgn.MissingDebugInfoError):
                session.prog.load_module_debug_info(module)
        if module.wants_debug_file():
            raise CommandError(f"cannot find or load object file for {info.name} module")
    if sections:
        _add_sections(session, [info.name])
    _show_loaded(session, [info.name])


def _try_named_file(module: drgn.Module, info: ModuleInfo, path: Path) -> None:
    if not path.is_file():
        raise CommandError(f"{info.name}: cannot find or load object file: {path}")
    if not module.wants_debug_file():
        if Path(module.debug_file_path or "").resolve() != path.resolve():
            raise CommandError(f"{info.name} already has its debug info from "
                               f"{module.debug_file_path}; drgn cannot replace it")
        return
    module.try_file(str(path))
    if module.wants_debug_file():
        raise CommandError(f"{path} is not {info.name}'s debug info (build IDs differ, "
                           "or it has no DWARF)")


def _load_all(session: Session, modules: list[ModuleInfo], directory: str | None,
              sections: bool = False) -> None:
    named: dict[str, Path] = {}
    if directory is not None:
        root = Path(directory)
        if not root.is_dir():
            raise CommandError(f"{directory} is not a directory")
        named = index_by_name(module_debug_files([root]))
    named = {**_beside_dump(session), **named}
    wanting = []
    for info in modules:
        module = _drgn_module(session, info)
        if module.wants_debug_file() and info.name in named:
            module.try_file(str(named[info.name]))
        if module.wants_debug_file():
            wanting.append(module)
    if wanting:
        with contextlib.suppress(drgn.MissingDebugInfoError):
            session.prog.load_module_debug_info(*wanting)
    for module in wanting:
        if module.wants_debug_file():
            session.warn(f"cannot find or load object file for {module.name} module")
    if sections:
        _add_sections(session, [m.name for m in modules])
    _show_loaded(session, [m.name for m in modules])


def _add_sections(session: Session, names: list[str]) -> None:
    """``-g``: the sections of each named module that has its .ko, as crash finds
    them: each section holding one of the module's symbols starts where that symbol is
    minus its value in the .ko, and ends its size later."""
    table = symbols(session)
    store = section_symbols(session)
    for info in _modules(session):
        if info.name not in names or not info.debug_file:
            continue
        mod = next((m for m in table.modules if m.info.name == info.name), None)
        if mod is None:
            continue
        try:
            found = module_sections(Path(info.debug_file),
                                    [e for e in mod.entries if not e.marker])
        except (OSError, ValueError, struct.error) as err:
            session.warn(f"{info.name}: cannot read the sections of {info.debug_file}: "
                         f"{err}")
            continue
        store[info.name] = [entry for name, start, size in found
                            for entry in (SymbolEntry(start, "S", "section start",
                                                      info.name, f"[{name}]"),
                                          SymbolEntry(start + size, "S", "section end",
                                                      info.name, f"[{name}]"))]


def _show_loaded(session: Session, names: list[str]) -> None:
    """The header and the lines of ``names`` that now have debug info, as crash
    prints them after loading."""
    modules = _modules(session)
    shown = [m for m in modules if m.name in names and m.debug_file]
    session.emit("mod", shown, lambda: render_modules(modules, shown))
