"""A client of a ``kdx serve`` server: submit dumps, list dumps and problems.

``kdx submit`` must be safe to run from every host's kdump hook: it hashes a dump first
and skips one the server already holds, streams the bytes in chunks (a vmcore is never
held in memory), and after a dropped connection asks the server how far it got and
continues from there. Running it again after it was killed resumes the same upload,
because the server finds the upload under way by the dump's sha256.

Example::

    >>> client = FleetClient("http://crashes.example:8470", token="...")
    >>> [r.dump["state"] for r in client.submit(Path("/var/crash/web1-2026-12-05"))]
    ['received']
"""

from __future__ import annotations

import hashlib
import os
import re
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO

import httpx

from kdx.errors import KdxError

__all__ = ["DEFAULT_SERVER", "ClientError", "FleetClient", "Progress", "Submitted",
           "kdump_files", "server_url", "token_value"]

DEFAULT_SERVER = "http://127.0.0.1:8470"
CHUNK = 1 << 20
#: How many times an interrupted upload is resumed before giving up.
RETRIES = 5

#: ``progress(done, total)`` while hashing and sending a file.
Progress = Callable[[str, int, int], None]

_DUMP_NAMES = re.compile(r"^(vmcore|vmcore\.flat|dump\.\d+)$")
_DMESG_NAMES = re.compile(r"^(vmcore-dmesg\.txt|dmesg\.\d+)$")
_INCOMPLETE = re.compile(r"(^|[-._])incomplete($|[-._])")


class ClientError(KdxError):
    """A request the server refused, or a server that cannot be reached."""


@dataclass(frozen=True)
class Submitted:
    """What became of one submitted file."""

    path: Path
    dump: dict[str, Any]
    skipped: bool  # the server already had these bytes
    resumed_at: int = 0  # bytes the server already held when this upload (re)started
    interruptions: int = 0  # dropped connections this upload resumed after


def server_url(given: str | None) -> str:
    """The server: ``--server``, else ``$KDX_SERVER``, else the local default."""
    url = (given or os.environ.get("KDX_SERVER") or DEFAULT_SERVER).rstrip("/")
    if not url.startswith(("http://", "https://")):
        raise ClientError(f"{url}: the server must be an http:// or https:// URL")
    return url


def token_value(given: str | None) -> str | None:
    """The token: ``--token``, else ``$KDX_TOKEN``."""
    return given or os.environ.get("KDX_TOKEN") or None


def kdump_files(folder: Path) -> list[Path]:
    """What to send from a kdump output directory: the dump (``vmcore``, ``vmcore.flat``
    or kdump-tools' ``dump.STAMP``), which holds its own log, else the
    ``vmcore-dmesg.txt`` (``dmesg.STAMP``) alone. A folder of such directories (all of
    ``/var/crash``) gives one file from each."""
    names = sorted(p.name for p in folder.iterdir() if p.is_file())
    busy = [n for n in names if _INCOMPLETE.search(n)]
    if busy:
        raise ClientError(f"{folder} is still being written ({busy[0]}); try again later")
    dump = next((n for n in names if _DUMP_NAMES.match(n)), None)
    dmesg = next((n for n in names if _DMESG_NAMES.match(n)), None)
    if dump or dmesg:
        return [folder / (dump or dmesg)]  # type: ignore[operator]
    out = []
    for sub in sorted(p for p in folder.iterdir() if p.is_dir()):
        try:
            out += kdump_files(sub) if any(sub.iterdir()) else []
        except ClientError:
            continue  # one directory still being written does not stop the others
    if not out:
        raise ClientError(f"{folder} holds no vmcore, vmcore.flat or vmcore-dmesg.txt")
    return out


def _sha256(path: Path, progress: Progress | None) -> tuple[str, int]:
    digest, done = hashlib.sha256(), 0
    size = path.stat().st_size
    with path.open("rb") as f:
        while chunk := f.read(CHUNK):
            digest.update(chunk)
            done += len(chunk)
            if progress:
                progress("hashing", done, size)
    return digest.hexdigest(), size


def _chunks(f: BinaryIO, start: int, size: int, progress: Progress | None) -> Iterator[bytes]:
    f.seek(start)
    done = start
    while chunk := f.read(CHUNK):
        done += len(chunk)
        if progress:
            progress("sending", done, size)
        yield chunk


def _message(response: httpx.Response) -> str:
    try:
        return str(response.json().get("error") or response.text[:200])
    except (ValueError, AttributeError):
        return response.text[:200].strip() or response.reason_phrase


class FleetClient:
    """The JSON API of one server, with an optional token."""

    def __init__(self, server: str | None = None, token: str | None = None, *,
                 timeout: float = 60.0, retries: int = RETRIES) -> None:
        self.server = server_url(server)
        self.token = token_value(token)
        headers = {"Authorization": f"Bearer {self.token}"} if self.token else {}
        self.http = httpx.Client(base_url=self.server + "/api/v1", headers=headers,
                                 timeout=httpx.Timeout(timeout, connect=10.0))
        self.retries = retries

    def close(self) -> None:
        self.http.close()

    def __enter__(self) -> FleetClient:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

    # -- plumbing -------------------------------------------------------------------

    def _send(self, method: str, path: str, *, ok: tuple[int, ...] = (200, 201),
              **kwargs: Any) -> httpx.Response:
        try:
            response = self.http.request(method, path, **kwargs)
        except httpx.TransportError as err:
            raise ClientError(f"{self.server}: cannot reach the server ({err})") from None
        if response.status_code not in ok:
            raise ClientError(f"{self.server}: {_message(response)} "
                              f"(HTTP {response.status_code})")
        return response

    def _get(self, path: str, **params: Any) -> Any:
        clean = {k: v for k, v in params.items() if v is not None and v != ""}
        return self._send("GET", path, params=clean).json()

    # -- reading --------------------------------------------------------------------

    def dumps(self, *, state: str | None = None, problem: int | None = None,
              limit: int = 100) -> list[dict[str, Any]]:
        return self._get("/dumps", state=state, problem=problem, limit=limit)

    def dump(self, dump_id: int) -> dict[str, Any]:
        return self._get(f"/dumps/{dump_id}")

    def dump_by_sha256(self, sha256: str) -> dict[str, Any] | None:
        response = self._send("GET", f"/dumps/by-sha256/{sha256}", ok=(200, 404))
        return response.json() if response.status_code == 200 else None

    def problems(self, *, limit: int = 100, **filters: Any) -> list[dict[str, Any]]:
        """Problems; ``filters``: kernel, host, module, category, label, since, sort,
        desc."""
        if "desc" in filters and isinstance(filters["desc"], bool):
            filters["desc"] = str(filters["desc"]).lower()
        return self._get("/problems", limit=limit, **filters)

    def problem(self, problem_id: int) -> dict[str, Any]:
        return self._get(f"/problems/{problem_id}")

    def jobs(self, *, state: str | None = None, limit: int = 100) -> list[dict[str, Any]]:
        return self._get("/jobs", state=state, limit=limit)

    # -- submitting -----------------------------------------------------------------

    def submit(self, path: Path, *, labels: dict[str, str] | None = None,
               progress: Progress | None = None) -> list[Submitted]:
        """Send a dump file, or the dump of a kdump output directory (or of each one in
        a folder of them)."""
        path = Path(path)
        if path.is_dir():
            files = kdump_files(path)
            return [self.upload(f, labels=labels, progress=progress,
                                filename=f"{f.parent.name}/{f.name}") for f in files]
        if not path.is_file():
            raise ClientError(f"{path}: no such file or directory")
        return [self.upload(path, labels=labels, progress=progress)]

    def upload(self, path: Path, *, labels: dict[str, str] | None = None,
               progress: Progress | None = None, filename: str | None = None) -> Submitted:
        """Upload one file unless the server has it, resuming after interruptions."""
        sha256, size = _sha256(path, progress)
        known = self.dump_by_sha256(sha256)
        if known is not None:
            return Submitted(path, known, skipped=True)
        answer = self._send("POST", "/uploads", json={
            "filename": filename or path.name, "size": size, "sha256": sha256,
            "labels": labels or {}}).json()
        if answer.get("dump") is not None and answer.get("id") is None:
            return Submitted(path, answer["dump"], skipped=True)
        resumed_at = int(answer["offset"])
        if answer.get("dump") is not None:
            return Submitted(path, answer["dump"], skipped=False, resumed_at=resumed_at)
        dump, interruptions = self._send_bytes(path, answer["id"], resumed_at, size, progress)
        return Submitted(path, dump, False, resumed_at, interruptions)

    def _offset(self, upload_id: str) -> int:
        return int(self._send("GET", f"/uploads/{upload_id}").json()["offset"])

    def _send_bytes(self, path: Path, upload_id: str, offset: int, size: int,
                    progress: Progress | None) -> tuple[dict[str, Any], int]:
        """Send the file from ``offset``; the stored dump and how many dropped
        connections it took."""
        failures = dropped = 0
        while True:
            try:
                with path.open("rb") as f:
                    response = self.http.put(
                        f"/uploads/{upload_id}", content=_chunks(f, offset, size, progress),
                        headers={"Upload-Offset": str(offset),
                                 "Content-Length": str(size - offset),
                                 "Content-Type": "application/octet-stream"})
            except httpx.TransportError as err:
                failures += 1
                dropped += 1
                if failures > self.retries:
                    raise ClientError(f"{path}: the upload failed {failures} times, last: "
                                      f"{err}; run kdx submit again to resume") from None
                time.sleep(min(2.0 ** failures, 30.0))
                offset = self._offset(upload_id)
                continue
            if response.status_code == 409:  # another offset, or the last body still ending
                failures += 1
                if failures > self.retries:
                    raise ClientError(f"{path}: {_message(response)}")
                if "offset" not in _json(response):
                    time.sleep(min(2.0 ** failures, 30.0))
                offset = self._offset(upload_id)  # the server knows better
                continue
            if response.status_code not in (200, 201):
                raise ClientError(f"{self.server}: {_message(response)} "
                                  f"(HTTP {response.status_code})")
            body = response.json()
            if body.get("dump") is not None:
                return body["dump"], dropped
            if int(body["offset"]) <= offset:  # no progress at all: do not spin
                failures += 1
                if failures > self.retries:
                    raise ClientError(f"{path}: the server takes no more bytes at {offset}")
            offset = int(body["offset"])  # the body ended early: send the rest


def _json(response: httpx.Response) -> dict[str, Any]:
    try:
        body = response.json()
    except ValueError:
        return {}
    return body if isinstance(body, dict) else {}
