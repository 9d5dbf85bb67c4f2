"""``kdx submit``, ``kdx dumps``, ``kdx problems`` and the resumable upload API, against a
real ``kdx serve`` web app (uvicorn, embedded fleet, worker processes) and real lab
dumps."""

from __future__ import annotations

import os
import shutil
import time
from collections.abc import Iterator

import httpx
import pytest
from webfleet import (
    MAX_UPLOAD,
    RELEASE_61,
    RELEASE_612,
    TOKEN,
    CuttingProxy,
    free_port,
    lab_file,
    sha256,
    shared_site,
    wait_analysed,
)

from kdx.fleet.client import ClientError, FleetClient
from kdx.fleet.upload import STALE_SECONDS, UploadError, UploadStore


@pytest.fixture(scope="module")
def site(request, tmp_path_factory):  # noqa: ANN001, ANN201 (fixtures)
    return shared_site(request, tmp_path_factory)


def _cut_short(path, size: int) -> Iterator[bytes]:  # noqa: ANN001
    """The first ``size`` bytes of a file, then the sender fails (a dropped link)."""
    with path.open("rb") as f:
        sent = 0
        while sent < size:
            chunk = f.read(min(1 << 20, size - sent))
            sent += len(chunk)
            yield chunk
    raise ConnectionAbortedError("the link dropped")


def test_an_interrupted_upload_resumes_and_is_stored_once(site, kdx, tmp_path) -> None:  # noqa: ANN001, E501
    path = lab_file(tmp_path, RELEASE_61, "sysrq-kdump-kdump-zlib")
    size, digest = path.stat().st_size, sha256(path)
    with site.http(TOKEN) as http:
        started = http.post("/api/v1/uploads", json={"filename": "vmcore", "size": size,
                                                     "sha256": digest, "labels": {}})
        assert started.status_code == 201 and started.json()["offset"] == 0
        upload_id = started.json()["id"]
        with pytest.raises((httpx.HTTPError, ConnectionAbortedError)):
            http.put(f"/api/v1/uploads/{upload_id}", content=_cut_short(path, size // 2),
                     headers={"Upload-Offset": "0", "Content-Length": str(size)})
        held = http.get(f"/api/v1/uploads/{upload_id}").json()["offset"]
        assert 0 < held <= size // 2
        again = http.post("/api/v1/uploads", json={"filename": "vmcore", "size": size,
                                                   "sha256": digest})
        assert again.json()["id"] == upload_id  # the same upload, found by its sha256
    done = kdx("submit", "--server", site.url, "--token", TOKEN, "--label", "team=core", path,
               check=True)
    resumed_at = int(done.stdout.split("resumed at byte ")[1].split(")")[0])
    assert held <= resumed_at < size
    with site.client() as client:
        stored = client.dump_by_sha256(digest)
        assert stored is not None and stored["size"] == size
        assert stored["labels"] == {"team": "core"}
        assert [d["sha256"] for d in client.dumps(limit=1000)].count(digest) == 1
        wait_analysed(client, [stored["id"]])
        assert client.dump(stored["id"])["verdict"]["category"] == "sysrq"
    twice = kdx("submit", "--server", site.url, "--token", TOKEN, path, check=True)
    assert f"already stored: dump {stored['id']} " in twice.stdout


def test_a_dropped_connection_is_resumed_by_the_client(site, tmp_path) -> None:  # noqa: ANN001
    path = lab_file(tmp_path, RELEASE_61, "bug-on-kdump-kdump-zlib")
    size = path.stat().st_size
    proxy = CuttingProxy(site.url, cut=size // 2)
    try:
        with FleetClient(proxy.url, TOKEN) as client:
            sent = client.upload(path)
    finally:
        proxy.close()
    assert proxy.cuts == 1 and sent.interruptions == 1 and not sent.skipped
    assert sent.dump["sha256"] == sha256(path) and sent.dump["size"] == size
    with site.client() as client:
        assert [d["sha256"] for d in client.dumps(limit=1000)].count(sha256(path)) == 1
        wait_analysed(client, [sent.dump["id"]])
        assert client.dump(sent.dump["id"])["verdict"]["category"] == "bug"


def test_kdump_directories(site, tmp_path) -> None:  # noqa: ANN001
    crash = tmp_path / "crash"
    flat = crash / "127.0.0.1-2026-12-04-17:54:36"
    flat.mkdir(parents=True)
    lab = tmp_path / "lab"
    shutil.move(lab_file(lab, RELEASE_61, "sysrq-kdump-flattened", "vmcore.flat"),
                flat / "vmcore.flat")
    shutil.move(lab_file(lab, RELEASE_61, "sysrq-kdump-flattened", "dmesg.txt"),
                flat / "vmcore-dmesg.txt")
    only_log = crash / "web2-2026-12-04"
    only_log.mkdir()
    shutil.move(lab_file(lab, RELEASE_61, "divide-error-kdump-kdump-zlib", "dmesg.txt"),
                only_log / "vmcore-dmesg.txt")
    busy = tmp_path / "busy-2026-12-05"
    busy.mkdir()
    (busy / "vmcore-incomplete").write_bytes(b"KDUMP   ")
    with site.client() as client:
        with pytest.raises(ClientError, match="still being written"):
            client.submit(busy)
        sent = client.submit(crash, labels={"dc": "lab"})  # all of /var/crash at once
        assert [s.dump["filename"] for s in sent] == ["vmcore.flat", "vmcore-dmesg.txt"]
        assert [s.dump["kind"] for s in sent] == ["vmcore", "dmesg"]
        wait_analysed(client, [s.dump["id"] for s in sent])
        flat_dump = client.dump(sent[0].dump["id"])
    assert flat_dump["state"] == "analysed" and flat_dump["release"] == RELEASE_61
    assert flat_dump["sha256"] == sha256(flat / "vmcore.flat")
    assert flat_dump["verdict"]["category"] == "sysrq"


def test_dumps_and_problems_commands(site, kdx) -> None:  # noqa: ANN001
    import json

    env_server = dict(os.environ, KDX_SERVER=site.url)
    again = kdx("submit", "--server", site.url, "--token", TOKEN, "--json", site.files["warn61"],
                check=True)
    assert [d["id"] for d in json.loads(again.stdout)] == [site.dumps["warn61"]["id"]]
    listed = json.loads(kdx("dumps", "--server", site.url, "--json", check=True).stdout)
    assert site.dumps["null61"]["id"] in [d["id"] for d in listed]
    failed = kdx("dumps", "--server", site.url, "--state", "failed", check=True).stdout
    lines = failed.splitlines()
    assert lines[0].split() == ["ID", "STATE", "PROBLEM", "KERNEL", "HOST", "SHA256", "TITLE"]
    assert [line.split()[0] for line in lines[1:]] == [str(site.dumps["noise"]["id"])]
    assert "failed: " in lines[1] and "a crash dump kdx knows" in lines[1]
    on_612 = kdx("problems", "--server", site.url, "--kernel", RELEASE_612, check=True).stdout
    assert "hello_init" in on_612 and "WARNING" not in on_612
    assert on_612.splitlines()[0].split()[:3] == ["ID", "DUMPS", "HOSTS"]
    import subprocess
    import sys

    by_env = subprocess.run([sys.executable, "-m", "kdx", "problems", "--json"],
                            capture_output=True, text=True, env=env_server, timeout=120)
    assert by_env.returncode == 0
    titles = {p["title"] for p in json.loads(by_env.stdout)}
    assert "BUG: kernel NULL pointer dereference in hello_init [hello_crash]" in titles


def test_client_failures_are_one_line(site, kdx, tmp_path) -> None:  # noqa: ANN001
    path = tmp_path / "log.txt"
    path.write_text("<0>[ 1.0] Kernel panic - not syncing: test\n")
    wrong = kdx("submit", "--server", site.url, "--token", "wrong", path)
    assert wrong.returncode == 1
    assert wrong.stderr.strip().splitlines() == [
        f"kdx: error: {site.url}: the token is not valid on this server (HTTP 403)"]
    nobody = f"http://127.0.0.1:{free_port()}"
    down = kdx("dumps", "--server", nobody)
    assert down.returncode == 1 and len(down.stderr.strip().splitlines()) == 1
    assert "cannot reach the server" in down.stderr
    several = kdx("submit", "--server", site.url, "--token", TOKEN, tmp_path / "missing", path)
    assert several.returncode == 1 and ": uploaded: dump " in several.stdout
    assert several.stderr.strip().splitlines() == [
        f"kdx: error: {tmp_path / 'missing'}: no such file or directory"]
    label = kdx("submit", "--server", site.url, "--label", "nolabel", path)
    assert "expected KEY=VALUE" in label.stderr and label.returncode == 1
    assert "Traceback" not in wrong.stderr + down.stderr + label.stderr


def test_upload_checks(site, tmp_path) -> None:  # noqa: ANN001
    data = f"<0>[    1.000000] Kernel panic - not syncing: upload test {os.urandom(8).hex()}\n"
    data = (data * (3000 // len(data) + 1)).encode()[:3000]  # a kernel log: analysed
    path = tmp_path / "blob"
    path.write_bytes(data)
    digest = sha256(path)
    with site.http(TOKEN) as http:
        big = http.post("/api/v1/uploads", json={"filename": "x", "size": MAX_UPLOAD + 1,
                                                 "sha256": digest})
        assert big.status_code == 413 and "at most" in big.json()["error"]
        bad = http.post("/api/v1/uploads", json={"filename": "x", "size": 10, "sha256": "1"})
        assert bad.status_code == 400 and "sha256" in bad.json()["error"]
        label = http.post("/api/v1/uploads", json={"filename": "x", "size": 10, "sha256": digest,
                                                   "labels": {"bad key": "v"}})
        assert label.status_code == 400 and "label name 'bad key'" in label.json()["error"]
        one = http.post("/api/v1/uploads", json={"filename": "../../etc/passwd", "size": 3000,
                                                 "sha256": "0" * 64}).json()["id"]
        assert "/" not in one and ".." not in one
        url = f"/api/v1/uploads/{one}"
        assert http.put(url, content=data).status_code == 400  # no Upload-Offset
        skew = http.put(url, content=data[:10], headers={"Upload-Offset": "5"})
        assert skew.status_code == 409 and skew.json()["offset"] == 0
        over = http.put(url, content=data + b"x", headers={"Upload-Offset": "0"})
        assert over.status_code == 413 and http.get(url).json()["offset"] == 0
        wrong = http.put(url, content=data, headers={"Upload-Offset": "0"})
        assert wrong.status_code == 422 and digest in wrong.json()["error"]
        assert http.get(url).status_code == 404  # dropped
        for name in ("..%2F..%2Fetc%2Fpasswd", "short", "a" * 100):
            assert http.get(f"/api/v1/uploads/{name}").status_code == 404
        known = site.dumps["warn61"]
        same = http.post("/api/v1/uploads", json={"filename": "again", "size": known["size"],
                                                  "sha256": known["sha256"]})
        assert same.status_code == 200
        assert same.json()["id"] is None and same.json()["dump"]["id"] == known["id"]
    with FleetClient(site.url, TOKEN) as client:
        sent = client.upload(path, filename="blob.txt")
        assert not sent.skipped and sent.dump["sha256"] == digest
        assert client.upload(path).skipped



def test_stale_uploads_are_dropped(tmp_path) -> None:  # noqa: ANN001
    store = UploadStore(tmp_path, 1000)
    old = store.create("old", 10, "0" * 64)
    fresh = store.create("fresh", 10, "1" * 64)
    week_ago = time.time() - STALE_SECONDS - 60
    os.utime(store.part_path(old.id), (week_ago, week_ago))
    store.create("new", 10, "2" * 64)
    with pytest.raises(UploadError, match="no such upload"):
        store.get(old.id)
    assert store.get(fresh.id).offset == 0
    assert sorted(p.suffix for p in tmp_path.iterdir()) == [".json"] * 2 + [".part"] * 2


def test_submit_shows_progress_on_a_terminal(site, tmp_path) -> None:  # noqa: ANN001
    import pty
    import subprocess
    import sys

    path = tmp_path / "vmcore-dmesg.txt"
    path.write_text(f"<0>[ 2.0] Kernel panic - not syncing: progress {os.urandom(8).hex()}\n")
    parent, child = pty.openpty()
    try:
        proc = subprocess.run([sys.executable, "-m", "kdx", "submit", "--server", site.url,
                               "--token", TOKEN, str(path)], stderr=child,
                              stdout=subprocess.PIPE, text=True, timeout=120)
        os.close(child)
        shown = b""
        while True:
            try:
                data = os.read(parent, 4096)
            except OSError:  # the terminal's other end is closed: all read
                break
            if not data:
                break
            shown += data
    finally:
        os.close(parent)
    assert proc.returncode == 0 and ": uploaded: dump " in proc.stdout
    assert b"sending 100% of 0.0 MiB" in shown and b"hashing 100%" in shown
