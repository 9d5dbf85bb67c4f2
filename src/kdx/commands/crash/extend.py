"""``extend``: load Python extensions that add session commands; ``-u`` unloads, ``-s``
lists them.

crash's ``extend`` loads C shared objects; kdx's loads Python files declaring commands
through kdx.extension (and lists the installed packages' ones, from the
``kdx.extensions`` entry-point group). The loading itself is kdx.session.extensions.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from kdx.model.session_records import ExtensionInfo
from kdx.session.command import crash_command, make_parser
from kdx.session.extensions import Extension
from kdx.session.session import Session

__all__: list[str] = []


def _extend_parser():
    parser = make_parser("extend", "load Python extension files that add commands; "
                         "without a file, list the loaded extensions")
    parser.add_argument("-u", action="store_true",
                        help="unload the named extensions (every one when none is named)")
    parser.add_argument("-s", action="store_true",
                        help="list the loaded extensions and their commands")
    parser.add_argument("files", nargs="*", metavar="FILE.py")
    return parser


@crash_command("extend", "load (-u unload, -s list) Python extensions adding commands",
               parser=_extend_parser, needs_types=False)
def _extend(session: Session, args: argparse.Namespace) -> None:
    extensions, table = session.extensions, session.commands
    if args.u:
        names = args.files or [None]
        gone = [_info(e) for name in names for e in extensions.unload(table, name)]
        session.emit("extend", gone, "".join(f"{e.name}: unloaded\n" for e in gone))
        return
    if args.files and not args.s:
        added = [_info(extensions.load_file(table, Path(name))) for name in args.files]
        session.emit("extend", added, "".join(
            f"{e.name}: commands: {' '.join(e.commands)}\n" for e in added))
        return
    extensions.load_entry_points(table)
    rows = [_info(e) for e in extensions.loaded]
    session.emit("extend", rows, lambda: _table(rows))


def _info(extension: Extension) -> ExtensionInfo:
    return ExtensionInfo(extension.name, [c.name for c in extension.commands])


def _table(rows: list[ExtensionInfo]) -> str:
    if not rows:
        return "no extensions loaded"
    width = max(len("EXTENSION"), *(len(r.name) for r in rows))
    lines = [f"{'EXTENSION':<{width}}  COMMANDS"]
    lines += [f"{r.name:<{width}}  {' '.join(r.commands)}" for r in rows]
    return "\n".join(lines)
