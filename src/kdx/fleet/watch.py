"""``kdx serve --watch DIR``: take in what kdump's NFS or ssh target writes there.

kdump writes a dump under a temporary name and renames it when done (kdump-utils:
``vmcore-incomplete`` -> ``vmcore``, ``vmcore.flat`` over ssh; Debian's kdump-tools:
``dump-incomplete`` -> ``dump.STAMP``), and a copy by hand or rsync grows a file for a
while. So a file or a kdump directory is ingested only once it is complete: no name in it
says ``incomplete``, a dump file is there, and every size and mtime is the same across two
polls. A directory holding only the log waits a while longer (kdump-utils writes
``vmcore-dmesg.txt`` before it starts the dump). Polling needs no inotify, works on NFS,
and catches up after a restart; what was ingested is remembered in the database (path,
size, mtime), so a restart does not ingest it again.
"""

from __future__ import annotations

import logging
import threading
import time
from pathlib import Path
from typing import TYPE_CHECKING

from sqlalchemy import select

from kdx.errors import KdxError
from kdx.fleet.db import Watched, utcnow
from kdx.fleet.records import DumpRecord

if TYPE_CHECKING:
    from kdx.fleet.embedded import EmbeddedFleet

__all__ = ["Watcher"]

log = logging.getLogger("kdx.fleet.watch")
_SKIP_SUFFIXES = (".part", ".tmp", ".partial", ".swp")
Fingerprint = tuple[tuple[str, int, int], ...]


def _skipped(name: str) -> bool:
    from kdx.fleet.embedded import INCOMPLETE

    return name.startswith(".") or name.endswith(_SKIP_SUFFIXES) or bool(INCOMPLETE.search(name))


def _fingerprint(path: Path) -> Fingerprint:
    """Names, sizes and mtimes of a file, or of the files of a directory."""
    files = [path] if path.is_file() else sorted(p for p in path.iterdir() if p.is_file())
    out = []
    for f in files:
        st = f.stat()
        out.append((f.name, st.st_size, st.st_mtime_ns))
    return tuple(out)


class Watcher:
    """Polls ``root`` every ``interval`` seconds and ingests finished dumps into ``fleet``."""

    def __init__(self, fleet: EmbeddedFleet, root: Path, *, interval: float = 5.0,
                 log_settle: float = 120.0, labels: dict[str, str] | None = None) -> None:
        self.fleet = fleet
        self.root = Path(root)
        self.interval = interval
        self.log_settle = log_settle
        self.labels = labels or {}
        self._seen: dict[Path, Fingerprint] = {}
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def candidates(self) -> list[Path]:
        """Files directly in the root, and kdump directories one or two levels down
        (``DIR/<host>-<date>/`` or ``DIR/<host>/<date>/``)."""
        out: list[Path] = []
        for entry in sorted(self.root.iterdir()):
            if _skipped(entry.name):
                continue
            if entry.is_file():
                out.append(entry)
            elif entry.is_dir():
                subdirs = [d for d in sorted(entry.iterdir())
                           if d.is_dir() and not _skipped(d.name)]
                has_files = any(p.is_file() for p in entry.iterdir())
                out.extend([entry] if has_files or not subdirs else subdirs)
        return out

    def _main_file(self, path: Path) -> Path | None:
        """The file whose size and mtime identify what was ingested; None while a kdump
        directory is still being written or holds nothing to ingest."""
        from kdx.fleet.embedded import kdump_dir_files

        if path.is_file():
            return path
        try:
            vmcore, dmesg = kdump_dir_files(path)
        except (KdxError, OSError):
            return None
        if vmcore is not None:
            return vmcore
        if dmesg is not None and time.time() - dmesg.stat().st_mtime >= self.log_settle:
            return dmesg
        return None

    def _row(self, path: Path) -> Watched | None:
        with self.fleet.db.session() as s:
            return s.scalar(select(Watched).where(Watched.path == str(path)))

    def _already(self, path: Path, main: Path) -> bool:
        st = main.stat()
        row = self._row(path)
        return row is not None and (row.size, row.mtime_ns) == (st.st_size, st.st_mtime_ns)

    def _late_log(self, path: Path) -> None:
        """kdump-tools writes ``dmesg.STAMP`` after the dump: attach it to the dump
        ingested from this directory, once."""
        from kdx.fleet.embedded import kdump_dir_files

        try:
            vmcore, dmesg = kdump_dir_files(path)
        except (KdxError, OSError):
            return
        row = self._row(path)
        if vmcore is None or dmesg is None or row is None or row.dump_id is None:
            return
        if self._already(dmesg, dmesg):
            return
        try:
            self.fleet.attach_log(row.dump_id, dmesg)
        except (KdxError, OSError) as err:
            log.warning("cannot attach %s: %s", dmesg, err)
            return
        self._remember(dmesg, dmesg, row.dump_id)

    def _remember(self, path: Path, main: Path, dump_id: int | None) -> None:
        st = main.stat()
        with self.fleet.db.write() as s, s.begin():
            row = s.get(Watched, str(path))
            if row is None:
                s.add(Watched(path=str(path), size=st.st_size, mtime_ns=st.st_mtime_ns,
                              dump_id=dump_id, at=utcnow()))
            else:
                row.size, row.mtime_ns, row.dump_id, row.at = (st.st_size, st.st_mtime_ns,
                                                               dump_id, utcnow())

    def poll(self) -> list[DumpRecord]:
        """One look at the directory: ingest what became complete since the last one."""
        ingested: list[DumpRecord] = []
        current: dict[Path, Fingerprint] = {}
        for path in self.candidates():
            try:
                current[path] = _fingerprint(path)
            except OSError:
                continue  # removed or renamed under us
            if self._seen.get(path) != current[path]:
                continue  # new or still changing: look again next time
            main = self._main_file(path)
            if main is None:
                continue
            if self._already(path, main):
                if path.is_dir():
                    self._late_log(path)
                continue
            try:
                records = self.fleet.ingest_path(main if path.is_file() else path,
                                                 labels=self.labels)
            except (KdxError, OSError) as err:
                log.warning("cannot ingest %s: %s", path, err)
                continue
            self._remember(path, main, records[0].id if records else None)
            ingested.extend(records)
        self._seen = current
        return ingested

    def start(self) -> None:
        self._thread = threading.Thread(target=self._loop, name="kdx-watch", daemon=True)
        self._thread.start()

    def _loop(self) -> None:
        while not self._stop.is_set():
            try:
                self.poll()
            except OSError as err:
                log.warning("cannot read %s: %s", self.root, err)
            self._stop.wait(self.interval)

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=30)
