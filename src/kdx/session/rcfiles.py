"""Start-up files: ``~/.kdxrc`` and ``./.kdxrc``, and the aliases of crash's ``.crashrc``.

A crash user keeps aliases and settings in ``~/.crashrc``; kdx takes the ``alias`` lines of
``~/.crashrc`` and ``./.crashrc`` (their other lines are crash commands that may not mean
the same in kdx), then runs every line of ``~/.kdxrc`` and ``./.kdxrc``, one command a
line, ``#`` comments skipped, as crash reads its rc files. The current directory's file
is skipped when it is the home one; ``kdx --no-rc`` skips them all. An alias made by a file
is listed with the file as its origin, as crash lists them.
"""

from __future__ import annotations

import shlex
from pathlib import Path

from kdx.session.session import Session

__all__ = ["rc_files", "run_rc_files"]


def rc_files(home: Path, cwd: Path) -> list[tuple[Path, str, bool]]:
    """Existing start-up files in the order they run: (path, origin, aliases only)."""
    found: list[tuple[Path, str, bool]] = []
    for name, aliases_only in ((".crashrc", True), (".kdxrc", False)):
        home_file, local_file = home / name, cwd / name
        if home_file.is_file():
            found.append((home_file, f"$HOME/{name}", aliases_only))
        if local_file.is_file() and not (home_file.is_file()
                                         and local_file.samefile(home_file)):
            found.append((local_file, name, aliases_only))
    return found


def run_rc_files(session: Session, home: Path, cwd: Path) -> bool:
    """Run the start-up files on ``session``; False when one of their lines failed."""
    ok = True
    for path, origin, aliases_only in rc_files(home, cwd):
        try:
            lines = path.read_text(errors="replace").splitlines()
        except OSError as err:
            session.warn(f"cannot read {path}: {err.strerror}")
            continue
        session.alias_origin = origin
        try:
            for line in lines:
                line = line.strip()
                if not line or line.startswith("#") or (aliases_only
                                                        and not _is_alias(line)):
                    continue
                ok = session.execute(line) and ok
        finally:
            session.alias_origin = "runtime"
    return ok


def _is_alias(line: str) -> bool:
    try:
        words = shlex.split(line)
    except ValueError:
        return False
    return len(words) > 2 and words[0] == "alias"
