"""Resumable, streamed uploads of dumps: a vmcore is gigabytes and links drop.

A client announces a dump (name, size, sha256, labels) and gets an upload id; it then
streams the bytes with ``Upload-Offset`` headers, and after an interruption asks for the
offset the server holds and continues from there. Bytes go straight to a partial file in
``DATA/uploads`` (never the whole body in memory); when the last byte arrives the
sha256 is checked and the file is handed to ``Fleet.ingest``.

Upload ids are random tokens checked against a strict pattern, never paths; the submitted
file name is kept only as display text. An announced dump whose sha256 is already stored,
or already being uploaded, is answered without a new upload, so a re-run of
``kdx submit`` resumes where the last one stopped.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import secrets
import threading
import time
from collections.abc import AsyncIterator
from dataclasses import asdict, dataclass, field
from pathlib import Path

import anyio.to_thread

from kdx.errors import KdxError

__all__ = ["Upload", "UploadError", "UploadStore", "sha256_file", "valid_sha256"]

_ID = re.compile(r"^[A-Za-z0-9_-]{22,64}$")
_SHA256 = re.compile(r"^[0-9a-f]{64}$")
_LABEL_KEY = re.compile(r"^[A-Za-z0-9_.-]{1,64}$")
_CHUNK = 1 << 20
#: An upload nobody continued for this long is dropped (its bytes are disk space).
STALE_SECONDS = 7 * 86400


class UploadError(KdxError):
    """An upload request that cannot be honoured; ``status`` is its HTTP status."""

    def __init__(self, message: str, status: int = 400, offset: int | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.offset = offset


@dataclass(frozen=True)
class Upload:
    """One announced upload and how far it got."""

    id: str
    filename: str
    size: int
    sha256: str
    labels: dict[str, str] = field(default_factory=dict)
    offset: int = 0


def valid_sha256(text: str) -> bool:
    """Whether ``text`` is a lowercase hex sha256."""
    return bool(_SHA256.match(text))


def sha256_file(path: Path) -> str:
    """The sha256 of a file, read in chunks."""
    digest = hashlib.sha256()
    with path.open("rb") as f:
        while chunk := f.read(_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def _clean_labels(labels: object) -> dict[str, str]:
    """Labels checked when the upload is announced, by the rules the fleet stores them
    with, so a bad one fails before gigabytes are sent rather than after."""
    if labels is None:
        return {}
    if not isinstance(labels, dict) or not all(
            isinstance(k, str) and isinstance(v, str) for k, v in labels.items()):
        raise UploadError("labels must be an object of strings")
    if len(labels) > 32:
        raise UploadError("at most 32 labels")
    for key, value in labels.items():
        if not _LABEL_KEY.match(key):
            raise UploadError(f"label name {key[:70]!r} must be 1-64 letters, digits, "
                              "'_', '.', '-'")
        if len(value) > 255 or not value.isprintable():
            raise UploadError(f"label {key}'s value must be printable and at most 255 "
                              "characters")
    return dict(labels)


class UploadStore:
    """Partial uploads under one directory: ``ID.part`` (bytes) and ``ID.json`` (what
    was announced). The offset is the partial file's size, so it survives restarts."""

    def __init__(self, folder: Path, max_size: int) -> None:
        self.folder = folder
        self.max_size = max_size
        folder.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        self._busy: set[str] = set()

    def _paths(self, upload_id: str) -> tuple[Path, Path]:
        if not _ID.match(upload_id):
            raise UploadError("no such upload", 404)
        return self.folder / f"{upload_id}.part", self.folder / f"{upload_id}.json"

    def create(self, filename: object, size: object, sha256: object,
               labels: object = None) -> Upload:
        """Announce an upload, or find the one already under way for these contents."""
        if not isinstance(filename, str) or not filename or len(filename) > 1024:
            raise UploadError("filename must be a non-empty string (at most 1024 characters)")
        if not isinstance(size, int) or isinstance(size, bool) or size < 1:
            raise UploadError("size must be a positive integer")
        if size > self.max_size:
            raise UploadError(f"the dump is {size} bytes; this server takes at most "
                              f"{self.max_size}", 413)
        if not isinstance(sha256, str) or not valid_sha256(sha256.lower()):
            raise UploadError("sha256 must be 64 hexadecimal digits")
        sha256 = sha256.lower()
        clean = _clean_labels(labels)
        with self._lock:
            self._prune()
            for known in self._all():
                if known.sha256 == sha256 and known.size == size:
                    return self._relabel(known, clean) if clean else known
            upload = Upload(secrets.token_urlsafe(24), filename, size, sha256, clean)
            self._paths(upload.id)[0].touch()
            self._write_meta(upload)
        return upload

    def _relabel(self, upload: Upload, labels: dict[str, str]) -> Upload:
        """The labels of a resuming submission join those of the first one."""
        merged = Upload(upload.id, upload.filename, upload.size, upload.sha256,
                        {**upload.labels, **labels}, upload.offset)
        self._write_meta(merged)
        return merged

    def _write_meta(self, upload: Upload) -> None:
        """What was announced, replaced atomically (a crash leaves the old or the new)."""
        meta = self._paths(upload.id)[1]
        tmp = meta.with_suffix(".tmp")
        tmp.write_text(json.dumps({k: v for k, v in asdict(upload).items() if k != "offset"}))
        os.replace(tmp, meta)

    def _prune(self) -> None:
        """Drop uploads not continued for ``STALE_SECONDS``."""
        limit = time.time() - STALE_SECONDS
        for part in self.folder.glob("*.part"):
            try:
                stale = part.stat().st_mtime < limit and part.stem not in self._busy
            except OSError:
                continue
            if stale and _ID.match(part.stem):
                self.remove(part.stem)

    def _all(self) -> list[Upload]:
        out = []
        for meta in self.folder.glob("*.json"):
            upload = self.get(meta.stem, missing_ok=True)
            if upload is not None:
                out.append(upload)
        return out

    def get(self, upload_id: str, *, missing_ok: bool = False) -> Upload | None:
        """The upload and its current offset; an unknown id is a 404 ``UploadError``."""
        part, meta = self._paths(upload_id)
        try:
            data = json.loads(meta.read_text())
            offset = part.stat().st_size
        except (OSError, ValueError):
            if missing_ok:
                return None
            raise UploadError("no such upload", 404) from None
        return Upload(upload_id, data["filename"], data["size"], data["sha256"],
                      data.get("labels") or {}, offset)

    async def append(self, upload_id: str, offset: int, chunks: AsyncIterator[bytes]) -> Upload:
        """Write ``chunks`` at ``offset`` (which must be the current one). An interrupted
        body keeps what arrived; more bytes than announced is a 413 and is dropped."""
        with self._lock:
            if upload_id in self._busy:
                raise UploadError("this upload is already receiving data", 409)
            upload = self.get(upload_id)
            assert upload is not None
            if offset != upload.offset:
                raise UploadError(f"Upload-Offset is {offset}, the server has {upload.offset} "
                                  "bytes", 409, upload.offset)
            self._busy.add(upload_id)
        part, _ = self._paths(upload_id)
        try:
            with part.open("r+b") as f:
                f.seek(offset)
                written = offset
                async for chunk in chunks:
                    if written + len(chunk) > upload.size:
                        f.truncate(offset)
                        raise UploadError(f"more bytes than the {upload.size} announced", 413)
                    f.write(chunk)
                    written += len(chunk)
                f.flush()
                await anyio.to_thread.run_sync(os.fsync, f.fileno())  # off the event loop
        finally:
            with self._lock:
                self._busy.discard(upload_id)
        return self.get(upload_id)  # type: ignore[return-value]

    def part_path(self, upload_id: str) -> Path:
        """Where the bytes of a complete upload are, for ingesting."""
        return self._paths(upload_id)[0]

    def verify(self, upload: Upload) -> None:
        """Check a complete upload's sha256; a mismatch drops it (422)."""
        actual = sha256_file(self.part_path(upload.id))
        if actual != upload.sha256:
            self.remove(upload.id)
            raise UploadError(f"the received bytes have sha256 {actual}, not the announced "
                              f"{upload.sha256}; the upload was dropped", 422)

    def remove(self, upload_id: str) -> None:
        """Forget an upload and its bytes."""
        for path in self._paths(upload_id):
            path.unlink(missing_ok=True)
