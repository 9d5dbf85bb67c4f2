"""The S3 dump store against a local S3-compatible server (moto's ``moto_server``, which
stands in for a real object store): multipart upload while hashing, dedup by content,
the size limit, downloads for analysis and their cleanup, errors as one line."""

from __future__ import annotations

import hashlib
import io
import multiprocessing
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from kdx.errors import KdxError
from kdx.fleet.pipeline import run_fast
from kdx.fleet.store import DirectoryStore, TooLarge

boto3 = pytest.importorskip("boto3", reason="boto3 is not installed (pip install kdx[fleet])")
from kdx.fleet.s3store import S3Store, open_store, parse_s3_url  # noqa: E402

MIB = 1 << 20


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def s3_endpoint(tmp_path_factory):
    """A moto S3 server on loopback for this module."""
    server = shutil.which("moto_server") or str(Path(sys.executable).parent / "moto_server")
    if not os.path.exists(server):
        pytest.skip("moto_server is not installed (pip install 'moto[server]')")
    port = _free_port()
    log = (tmp_path_factory.mktemp("moto") / "log").open("w")
    proc = subprocess.Popen([server, "-H", "127.0.0.1", "-p", str(port)], stdout=log,
                            stderr=subprocess.STDOUT)
    try:
        for _ in range(300):  # up to 30 s to start
            if proc.poll() is not None:
                pytest.fail(f"moto_server exited with {proc.returncode}")
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.1).close()
                break
            except OSError:
                time.sleep(0.1)
        yield f"http://127.0.0.1:{port}"
    finally:
        proc.terminate()
        proc.wait(10)
        log.close()


@pytest.fixture
def aws_env(monkeypatch, s3_endpoint):
    for name, value in {"AWS_ACCESS_KEY_ID": "kdx-test", "AWS_SECRET_ACCESS_KEY": "kdx-test",
                        "AWS_DEFAULT_REGION": "us-east-1",
                        "AWS_ENDPOINT_URL": s3_endpoint}.items():
        monkeypatch.setenv(name, value)
    return s3_endpoint


@pytest.fixture
def bucket(aws_env, request):
    name = "kdx-" + hashlib.sha1(request.node.name.encode()).hexdigest()[:12]
    client = boto3.client("s3")
    client.create_bucket(Bucket=name)
    return name


def _keys(bucket: str) -> list[str]:
    listed = boto3.client("s3").list_objects_v2(Bucket=bucket)
    return sorted(o["Key"] for o in listed.get("Contents", []))


def _hold(store: S3Store, key: str, ready, go, answer) -> None:  # noqa: ANN001
    path = store.local_path(key)
    ready.set()
    go.wait(60)
    answer.put(hashlib.sha256(path.read_bytes()).hexdigest())
    store.release(key)


def _held_by_another_process(store: S3Store, key: str) -> str:
    """Another worker process takes the dump too; this one releases it first; what the
    other then reads."""
    ctx = multiprocessing.get_context("fork")
    ready, go, answer = ctx.Event(), ctx.Event(), ctx.Queue()
    child = ctx.Process(target=_hold, args=(store, key, ready, go, answer))
    child.start()
    assert ready.wait(60)
    store.release(key)
    go.set()
    got = answer.get(timeout=60)
    child.join(60)
    return got


def test_multipart_upload_is_stored_once_under_its_sha256(bucket, tmp_path):
    store = open_store(f"s3://{bucket}/dumps/", cache=tmp_path / "cache")
    assert isinstance(store, S3Store) and store.prefix == "dumps"
    store.part_size = 5 * MIB
    data = os.urandom(MIB) * 12 + b"tail"  # three parts, the last one short
    key = hashlib.sha256(data).hexdigest()
    first = store.put(io.BytesIO(data))
    assert (first.key, first.size, first.new) == (key, len(data), True)
    again = store.put(io.BytesIO(data))
    assert (again.key, again.new) == (key, False)
    assert _keys(bucket) == [f"dumps/{key[:2]}/{key}"]  # no temporary object is left
    assert store.exists(key) and not store.exists("0" * 64)
    with store.open(key) as f:
        assert hashlib.sha256(f.read()).hexdigest() == key
    path = store.local_path(key)
    assert path.parent.parent == tmp_path / "cache" and path.read_bytes() == data
    assert _held_by_another_process(store, key) == key  # read after this process released
    store.release(key)
    assert not path.exists() and store.exists(key)
    assert list((tmp_path / "cache").iterdir()) == []
    small = store.put(io.BytesIO(b"x"))  # one part: a plain put
    empty = store.put(io.BytesIO(b""))
    assert (small.size, empty.key) == (1, hashlib.sha256(b"").hexdigest())
    store.delete(key)
    assert not store.exists(key) and len(_keys(bucket)) == 2


def test_too_large_and_bad_keys_leave_nothing_behind(bucket, tmp_path):
    store = S3Store(bucket, "p", cache=tmp_path / "cache", part_size=5 * MIB)
    with pytest.raises(TooLarge):
        store.put(io.BytesIO(b"\0" * (11 * MIB)), limit=10 * MIB)
    client = boto3.client("s3")
    assert _keys(bucket) == []
    assert client.list_multipart_uploads(Bucket=bucket).get("Uploads", []) == []
    with pytest.raises(KdxError, match="not a dump key"):
        store.local_path("../../etc/passwd")
    with pytest.raises(KdxError, match=r"^S3 store: downloading dump 000000000000… failed"):
        store.local_path("0" * 64)
    assert list((tmp_path / "cache").iterdir()) == []


def test_a_missing_bucket_or_server_is_one_line(aws_env, tmp_path, monkeypatch):
    store = S3Store("no-such-bucket", cache=tmp_path / "c")
    with pytest.raises(KdxError, match=r"^S3 store: storing a dump failed: NoSuchBucket"):
        store.put(io.BytesIO(b"abc"))
    monkeypatch.setenv("AWS_ENDPOINT_URL", f"http://127.0.0.1:{_free_port()}")
    monkeypatch.setenv("AWS_MAX_ATTEMPTS", "1")
    down = S3Store("b", cache=tmp_path / "c")
    with pytest.raises(KdxError, match=r"^S3 store: looking for dump .* failed: Could not "):
        down.exists("1" * 64)
    with pytest.raises(KdxError, match="s3://bucket/prefix"):
        parse_s3_url("s3:///x")
    with pytest.raises(KdxError, match="unknown store"):
        open_store("ftp://x/y", cache=tmp_path)
    assert isinstance(open_store(str(tmp_path / "d"), cache=tmp_path), DirectoryStore)


def test_a_lab_dump_from_s3_gets_its_fast_pass(bucket, tmp_path, sysrq):
    """A real vmcore goes in, comes out as a file drgn opens, with the same result."""
    store = S3Store(bucket, "fleet", cache=tmp_path / "cache")
    with sysrq.vmcore.open("rb") as f:
        stored = store.put(f)
    with sysrq.vmcore.open("rb") as f:
        assert stored.key == hashlib.file_digest(f, "sha256").hexdigest()
    path = store.local_path(stored.key)
    (tmp_path / "tmp").mkdir()
    report = run_fast(path, "vmcore", None, tmp_path / "tmp")
    assert (report["release"], report["category"], report["culprit"]) == (
        "6.1.0-57-cloud-amd64", "sysrq", "sysrq_handle_crash")
    assert report == run_fast(sysrq.vmcore, "vmcore", None, tmp_path / "tmp")
    store.release(stored.key)
    assert list((tmp_path / "cache").iterdir()) == []


# -- the fleet on an S3 store: kdx serve and kdx worker ------------------------------------

def _served(tmp: Path, bucket: str, endpoint: str, broker: str | None) -> subprocess.Popen:
    from test_scaleout import _env
    from webfleet import TOKEN, free_port

    (tmp / "tokens").write_text(TOKEN + "\n")
    port = free_port()
    extra = ["--broker", broker] if broker else ["--workers", "1"]
    api = subprocess.Popen(
        [sys.executable, "-m", "kdx", "serve", "--data", str(tmp / "data"), "--port",
         str(port), "--store", f"s3://{bucket}/fleet", "--s3-endpoint", endpoint,
         "--token-file", str(tmp / "tokens"), "--job-seconds", "60", *extra],
        env=_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    banner = api.stdout.readline()
    assert banner.startswith("kdx serve: http://"), (banner, api.stderr.read())
    api.url = f"http://127.0.0.1:{port}"  # type: ignore[attr-defined]
    return api


def _analyse_three_dumps(url: str, tmp: Path) -> dict[str, dict]:
    """Submit a lab vmcore and two kernel logs, wait for both stages; records by name."""
    from test_scaleout import _until
    from webfleet import RELEASE_61, TOKEN, lab_file

    from kdx.fleet.client import FleetClient

    files = [lab_file(tmp / "lab", RELEASE_61, "sysrq-kdump-kdump-zlib")]
    for run in ("sysrq-kdump-kdump-zlib", "null-deref-module-kdump-kdump-zlib"):
        log = tmp / "logs" / run / "vmcore-dmesg.txt"
        log.parent.mkdir(parents=True)
        log.write_bytes(lab_file(tmp / "lab", RELEASE_61, run, "dmesg.txt").read_bytes())
        files.append(log)
    with FleetClient(url, TOKEN) as client:
        for path in files:
            (sent,) = client.submit(path)
            assert not sent.skipped

        def finished() -> bool:
            dumps = client.dumps(limit=10)
            return len(dumps) == 3 and all(d["state"] in ("analysed", "failed")
                                           for d in dumps)

        _until(finished, "the three dumps to be analysed", 180)
        return {(d["kind"], d["release"], d["fast"]["category"]): d
                for d in client.dumps(limit=10)}


def _files_under(folder: Path) -> list[Path]:
    return [p for p in folder.rglob("*") if p.is_file()] if folder.exists() else []


def _check_analysed(found: dict, bucket: str) -> None:
    assert {d["state"] for d in found.values()} == {"analysed"}, found
    assert set(found) == {("vmcore", "6.1.0-57-cloud-amd64", "sysrq"),
                          ("dmesg", "6.1.0-57-cloud-amd64", "sysrq"),
                          ("dmesg", "6.1.0-57-cloud-amd64", "null-pointer-dereference")}, set(found)
    vmcore = found[("vmcore", "6.1.0-57-cloud-amd64", "sysrq")]
    assert vmcore["verdict"]["culprit"]["function"] == "sysrq_handle_crash", vmcore["verdict"]
    assert len(_keys(bucket)) == 3  # the dumps live in the bucket, nowhere else


def test_kdx_worker_analyses_dumps_from_an_s3_store(bucket, tmp_path):
    from test_scaleout import REDIS, Redis, _env
    from webfleet import free_port

    if REDIS is None:
        pytest.skip("redis-server is not installed (Debian package redis-server)")
    endpoint = os.environ["AWS_ENDPOINT_URL"]
    redis_server = Redis(free_port(), tmp_path)
    redis_server.start()
    api = worker = None
    try:
        api = _served(tmp_path, bucket, endpoint, redis_server.url)
        cache = tmp_path / "worker-cache"
        log = (tmp_path / "worker-stderr").open("w")
        worker = subprocess.Popen(
            [sys.executable, "-m", "kdx", "worker", "--database",
             f"sqlite:///{tmp_path / 'data' / 'kdx.sqlite3'}", "--broker", redis_server.url,
             "--store", f"s3://{bucket}/fleet", "--s3-endpoint", endpoint, "--cache",
             str(cache), "--work", str(tmp_path / "work"), "--job-seconds", "60"],
            env=_env(), stdout=subprocess.DEVNULL, stderr=log)
        found = _analyse_three_dumps(api.url, tmp_path)
        _check_analysed(found, bucket)
        assert cache.is_dir() and _files_under(cache) == []  # every download released
        assert not (tmp_path / "data" / "dumps").exists()
    finally:
        for proc in (worker, api):
            if proc is not None and proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
                try:
                    proc.wait(60)
                except subprocess.TimeoutExpired:
                    proc.kill()
        redis_server.stop()


def test_kdx_serve_local_workers_analyse_dumps_from_an_s3_store(bucket, tmp_path):
    api = _served(tmp_path, bucket, os.environ["AWS_ENDPOINT_URL"], None)
    try:
        found = _analyse_three_dumps(api.url, tmp_path)
        _check_analysed(found, bucket)
        cache = tmp_path / "data" / "cache"
        assert cache.is_dir() and _files_under(cache) == []
        assert not (tmp_path / "data" / "dumps").exists()
        # a download through the API comes from the bucket, and leaves no copy behind
        import httpx
        from webfleet import TOKEN

        vmcore = found[("vmcore", "6.1.0-57-cloud-amd64", "sysrq")]
        got = httpx.get(f"{api.url}/api/v1/dumps/{vmcore['id']}/file", timeout=60,
                        headers={"Authorization": f"Bearer {TOKEN}"})
        assert got.status_code == 200
        assert hashlib.sha256(got.content).hexdigest() == vmcore["sha256"]
        from test_scaleout import _until  # the copy goes once the response is sent

        _until(lambda: _files_under(cache) == [], "the download's copy to be removed", 30)
    finally:
        api.send_signal(signal.SIGTERM)
        api.wait(60)
