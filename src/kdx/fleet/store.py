"""Dump bytes, kept by content: the same vmcore sent twice is stored once.

A dump can be tens of gigabytes, so it is never held in memory: ``put`` streams it into a
temporary file inside the store while hashing it, then renames it to its content address
(``ab/abcdef...``). The submitted filename is never part of a path. ``DumpStore`` is the
interface the object store (``kdx.fleet.s3store``) implements as well; ``local_path`` is
how a worker gets a file it can open (an object store downloads it first, and ``release``
removes that download).
"""

from __future__ import annotations

import hashlib
import os
import re
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO, Protocol

from kdx.errors import KdxError

__all__ = ["DirectoryStore", "DumpStore", "Stored", "TooLarge"]

_CHUNK = 1 << 20
_KEY = re.compile(r"^[0-9a-f]{64}$")


class TooLarge(KdxError):
    """The upload is bigger than the configured limit."""


@dataclass(frozen=True)
class Stored:
    """What ``put`` stored: the content key (the sha256) and the size in bytes."""

    key: str
    size: int
    new: bool  # False when these bytes were already in the store


class DumpStore(Protocol):
    """Where dump bytes live, keyed by their sha256."""

    def put(self, stream: BinaryIO, *, limit: int | None = None) -> Stored:
        """Store everything ``stream`` yields; TooLarge beyond ``limit`` bytes."""

    def open(self, key: str) -> BinaryIO:
        """The stored bytes, for reading."""

    def local_path(self, key: str) -> Path:
        """A local file holding the bytes (downloaded first by a remote store)."""

    def release(self, key: str) -> None:
        """The analysis is done with ``local_path``'s file (a remote store removes its
        download; the directory store keeps the file, it is the dump)."""

    def delete(self, key: str) -> None: ...

    def exists(self, key: str) -> bool: ...


def check_key(key: str) -> str:
    """Refuse anything but a sha256 hex digest: keys become paths."""
    if not _KEY.match(key):
        raise KdxError(f"not a dump key (a sha256 in hex): {key[:80]!r}")
    return key


class DirectoryStore:
    """The embedded store: ``ROOT/ab/abcdef...`` per dump, temporary files in ``ROOT/tmp``."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.tmp = root / "tmp"
        self.tmp.mkdir(parents=True, exist_ok=True)

    def path(self, key: str) -> Path:
        check_key(key)
        return self.root / key[:2] / key

    def put(self, stream: BinaryIO, *, limit: int | None = None) -> Stored:
        digest = hashlib.sha256()
        size = 0
        fd, name = tempfile.mkstemp(dir=self.tmp, prefix="upload-")
        tmp = Path(name)
        try:
            with os.fdopen(fd, "wb") as out:
                while chunk := stream.read(_CHUNK):
                    size += len(chunk)
                    if limit is not None and size > limit:
                        raise TooLarge(f"the upload is larger than the limit of {limit:,} bytes")
                    digest.update(chunk)
                    out.write(chunk)
            key = digest.hexdigest()
            final = self.path(key)
            if final.exists():
                tmp.unlink()
                return Stored(key, size, False)
            final.parent.mkdir(exist_ok=True)
            os.chmod(tmp, 0o640)
            tmp.replace(final)
            return Stored(key, size, True)
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise

    def open(self, key: str) -> BinaryIO:
        return open(self.path(key), "rb")

    def local_path(self, key: str) -> Path:
        path = self.path(key)
        if not path.is_file():
            raise KdxError(f"dump {key[:12]}… is missing from the store")
        return path

    def release(self, key: str) -> None:
        check_key(key)

    def delete(self, key: str) -> None:
        self.path(key).unlink(missing_ok=True)

    def exists(self, key: str) -> bool:
        return self.path(key).is_file()
