"""A real ``kdx serve`` web stack for the web, client and browser tests.

The site is the embedded fleet (SQLite, dump store, worker processes) in a temporary
directory behind ``create_app`` on a real uvicorn server on a free loopback port. Its
dumps are real lab dumps sent through the real upload API by ``FleetClient``, plus a
file of random bytes (a failed job) and a log whose label and name hold HTML.

The populated site is built once per test run and shared by every test file that asks
for it (building it means analysing several dumps); tests that change it (merge, split,
retry) say so and leave it consistent.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import shutil
import socket
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import uvicorn

from kdx.fleet.client import FleetClient
from kdx.fleet.embedded import open_fleet
from kdx.fleet.service import FleetConfig
from kdx.fleet.web import create_app
from kdx.lab.cache import default_cache

TOKEN = "kdx-test-token-7d1f0c"
#: The uploads limit of the test site (bytes): above every lab dump it uses.
MAX_UPLOAD = 200 << 20
#: What the site's labelled log is called and labelled: HTML that must show escaped.
EVIL_NAME = "<script>alert(1)<img src=x onerror=alert(2)>.txt"
EVIL_LABEL = "<script>alert('kdx')</script>"
RELEASE_61 = "6.1.0-57-cloud-amd64"
RELEASE_612 = "6.12.117+deb13-cloud-amd64"


def lab_file(dest: Path, release: str, run: str, name: str = "vmcore") -> Path:
    """A copy in ``dest`` of a file of a cached lab run: the cache is never written, and
    a lab run rebuilding it meanwhile cannot change the bytes a test compares."""
    copy = dest / f"{release}-{run}-{name}"
    if not copy.exists():
        dest.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(default_cache() / "runs" / release / run / name, copy)
    return copy


def sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        while chunk := f.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass
class Served:
    """A uvicorn server running one app in a thread."""

    url: str
    server: uvicorn.Server
    thread: threading.Thread

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=30)


def serve(app: Any) -> Served:
    """Run ``app`` on a free loopback port until ``stop()``."""
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port,
                                           log_level="warning", lifespan="off",
                                           timeout_keep_alive=120))
    thread = threading.Thread(target=server.run, name="uvicorn", daemon=True)
    thread.start()
    deadline = time.monotonic() + 60
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            raise RuntimeError("uvicorn did not start")
        time.sleep(0.05)
    return Served(f"http://127.0.0.1:{port}", server, thread)


@dataclass
class Site:
    """The populated fleet, its server, and what was put in."""

    data: Path
    fleet: Any
    served: Served
    dumps: dict[str, dict[str, Any]] = field(default_factory=dict)  # name -> DumpRecord
    files: dict[str, Path] = field(default_factory=dict)  # name -> the file sent

    @property
    def url(self) -> str:
        return self.served.url

    def client(self, token: str | None = TOKEN) -> FleetClient:
        return FleetClient(self.url, token)

    def http(self, token: str | None = None) -> httpx.Client:
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        return httpx.Client(base_url=self.url, headers=headers, timeout=60)

    def record(self, name: str) -> dict[str, Any]:
        """The current record of one of the site's dumps."""
        with self.client() as c:
            return c.dump(self.dumps[name]["id"])

    def stop(self) -> None:
        self.served.stop()
        self.fleet.close()


FINAL = ("analysed", "failed")


def wait_analysed(client: FleetClient, ids: list[int], limit: float = 600) -> None:
    """Wait until the dumps are analysed or failed (not a timing assertion: a bound
    against a hang)."""
    deadline = time.monotonic() + limit
    while True:
        states = {i: client.dump(i)["state"] for i in ids}
        if all(s in FINAL for s in states.values()):
            return
        if time.monotonic() > deadline:
            raise AssertionError(f"dumps not analysed after {limit} s: {states}")
        time.sleep(0.5)


def open_site_fleet(data: Path, *, workers: bool = True) -> Any:
    """The embedded fleet in ``data``: two workers, the lab's kernels as debug-info store."""
    debug = data / "debuginfo"
    debug.mkdir(parents=True, exist_ok=True)
    kernels = default_cache() / "kernels" / RELEASE_61
    if not (debug / RELEASE_61).exists():
        (debug / RELEASE_61).symlink_to(kernels)
    config = FleetConfig(data=data, workers=2, debuginfo=debug, job_seconds=300,
                         max_upload=MAX_UPLOAD)
    return open_fleet(config, workers=workers)


def _populate(site: Site, tmp: Path) -> None:
    noise = tmp / "noise.bin"
    noise.write_bytes(os.urandom(64 << 10))
    log = tmp / "log.txt"
    log.write_text(lab_file(tmp, RELEASE_61, "gpf-kdump-kdump-zlib", "dmesg.txt").read_text())
    sends = {
        "null61": (lab_file(tmp, RELEASE_61, "null-deref-module-kdump-kdump-zlib"), None,
                   {"team": "storage"}),
        "null612": (lab_file(tmp, RELEASE_612, "null-deref-module-kdump-kdump-zlib"), None,
                    {"team": "storage"}),
        "warn61": (lab_file(tmp, RELEASE_61, "warn-kdump-kdump-zlib"), None, {"team": "net"}),
        "noise": (noise, None, {}),
        "evil": (log, EVIL_NAME, {"note": EVIL_LABEL}),
    }
    with site.client() as client:
        for name, (path, filename, labels) in sends.items():
            site.files[name] = path
            site.dumps[name] = client.upload(path, labels=labels, filename=filename).dump
        wait_analysed(client, [d["id"] for d in site.dumps.values()])
        for name, d in site.dumps.items():
            site.dumps[name] = client.dump(d["id"])


_SITE: dict[str, Site] = {}


def shared_site(request: Any, tmp_path_factory: Any) -> Site:
    """The populated site, built on first use and stopped when the test run ends."""
    if "site" not in _SITE:
        root = tmp_path_factory.mktemp("fleet-site")
        fleet = open_site_fleet(root / "data")
        site = Site(root / "data", fleet, serve(create_app(fleet, tokens=frozenset({TOKEN}))))
        request.config.add_cleanup(site.stop)
        _populate(site, root)
        _SITE["site"] = site
    return _SITE["site"]


class CuttingProxy:
    """A TCP relay to the server that drops the first connection sending more than
    ``cut`` bytes (a real broken link in the middle of an upload)."""

    def __init__(self, upstream: str, cut: int) -> None:
        self.upstream = ("127.0.0.1", int(upstream.rsplit(":", 1)[1]))
        self.cut = cut
        self.cuts = 0
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.url = f"http://127.0.0.1:{self.listener.getsockname()[1]}"
        self.open = True
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while self.open:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            server = socket.create_connection(self.upstream)
            threading.Thread(target=self._pipe, args=(client, server, True), daemon=True).start()
            threading.Thread(target=self._pipe, args=(server, client, False),
                             daemon=True).start()

    def _pipe(self, source: socket.socket, sink: socket.socket, upward: bool) -> None:
        sent = 0
        try:
            while data := source.recv(1 << 16):
                sink.sendall(data)
                sent += len(data)
                if upward and sent > self.cut and not self.cuts:
                    self.cuts += 1
                    break
        except OSError:
            pass
        for s in (source, sink):
            with contextlib.suppress(OSError):
                s.shutdown(socket.SHUT_RDWR)
            s.close()

    def close(self) -> None:
        self.open = False
        self.listener.close()
