"""The fleet's storage layers on a real SQLite file and, when scripts/services runs one, a
real PostgreSQL database: the content-addressed store, the migrated schema, the durable
queue's claims and leases, buckets (merge, split), ingest and the directory watcher. No
worker runs here; test_core_pipeline.py runs them."""

from __future__ import annotations

import datetime as dt
import hashlib
import io
import os
import threading

import pytest
from sqlalchemy import func, inspect, select

from kdx.errors import KdxError
from kdx.fleet import buckets
from kdx.fleet.buckets import BucketKey
from kdx.fleet.db import Dump, Job, open_database, utcnow
from kdx.fleet.embedded import TooLarge, kdump_dir_files, open_fleet
from kdx.fleet.pipeline import file_kind
from kdx.fleet.queue import MAX_ATTEMPTS, SqlJobQueue, describe_exit
from kdx.fleet.serve_cli import parse_size
from kdx.fleet.service import FleetConfig, ProblemFilter
from kdx.fleet.store import DirectoryStore
from kdx.fleet.watch import Watcher

LOG = "[    0.000000] Linux version 6.1.0-57-cloud-amd64\n[   12.5] sysrq: Trigger a crash\n"


@pytest.fixture
def fleet(tmp_path, database_url):
    f = open_fleet(FleetConfig(data=tmp_path / "data", max_upload=1 << 20,
                               database=database_url), workers=False)
    yield f
    f.close()


def _ingest(fleet, text: str, name: str = "vmcore-dmesg.txt", **labels: str):
    return fleet.ingest(io.BytesIO(text.encode()), name, labels=labels)


def test_store_keeps_one_copy_by_content(tmp_path):
    store = DirectoryStore(tmp_path / "dumps")
    first = store.put(io.BytesIO(b"abc" * 1000))
    again = store.put(io.BytesIO(b"abc" * 1000))
    assert first.key == again.key == hashlib.sha256(b"abc" * 1000).hexdigest()
    assert (first.new, again.new) == (True, False)
    assert store.path(first.key) == tmp_path / "dumps" / first.key[:2] / first.key
    assert store.local_path(first.key).read_bytes() == b"abc" * 1000
    assert list((tmp_path / "dumps" / "tmp").iterdir()) == []
    with pytest.raises(TooLarge):
        store.put(io.BytesIO(b"x" * 5000), limit=4096)
    assert list((tmp_path / "dumps" / "tmp").iterdir()) == []
    with pytest.raises(KdxError):
        store.path("../../etc/passwd")


def test_schema_is_migrated_once_in_wal_mode(tmp_path):
    url = f"sqlite:///{tmp_path / 'x.sqlite3'}"
    open_database(url).close()
    db = open_database(url)  # the second open finds the schema at head
    names = set(inspect(db.engine).get_table_names())
    assert {"dumps", "labels", "outputs", "jobs", "problems", "problem_events", "signatures",
            "watched", "alembic_version"} <= names
    with db.engine.connect() as c:
        assert c.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
        assert c.exec_driver_sql("SELECT version_num FROM alembic_version").scalar() == "0002"
    db.close()


def test_an_older_schema_is_upgraded_with_its_rows(database_url, kdx, tmp_path):
    from alembic import command
    from alembic.config import Config
    from sqlalchemy import create_engine, text

    from kdx.fleet.db import MIGRATIONS, migrate_database, schema_revision

    engine = create_engine(database_url)
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    with engine.begin() as connection:
        config.attributes["connection"] = connection
        command.upgrade(config, "0001")
        connection.execute(text(
            "INSERT INTO dumps (id, sha256, filename, size, kind, state, received, pinned) "
            "VALUES (1, :h, 'vmcore', 5, 'vmcore', 'received', '2026-12-01 00:00:00', :f)"),
            {"h": "0" * 64, "f": False})
        connection.execute(text(
            "INSERT INTO jobs (id, dump_id, stage, state, attempts, created, completions) "
            "VALUES (1, 1, 'fast', 'queued', 0, '2026-12-01 00:00:00', 0)"))
    engine.dispose()
    # a named database older than the code is refused, saying what to run
    with pytest.raises(KdxError, match=r"revision 0001, this kdx needs 0002: .*--migrate"):
        open_database(database_url, upgrade_old=False)
    refused = kdx("serve", "--data", tmp_path / "d", "--database", database_url, "--port", "0")
    assert refused.returncode == 1 and "Traceback" not in refused.stderr
    assert "kdx serve --database URL --migrate" in refused.stderr
    done = kdx("serve", "--database", database_url, "--migrate")
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "kdx serve: database upgraded from revision 0001 to 0002"
    assert migrate_database(database_url) == ("0002", "0002")
    db = open_database(database_url, upgrade_old=False)
    assert schema_revision(db.engine) == "0002"
    with db.session() as s:
        job = s.get(Job, 1)
        assert (job.stage, job.state, job.peak_memory) == ("fast", "queued", None)
        assert s.get(Dump, 1).sha256 == "0" * 64
    db.close()


def test_ingest_twice_stores_once_and_names_are_not_paths(fleet):
    a = _ingest(fleet, LOG, "../../../etc/passwd", team="storage")
    b = _ingest(fleet, LOG, "other-name", site="ams")
    assert a.id == b.id and a.sha256 == b.sha256
    assert a.filename == "passwd" and a.kind == "dmesg" and a.state == "received"
    assert fleet.dump(a.id).labels == {"team": "storage", "site": "ams"}
    assert fleet.dump_by_sha256(a.sha256).id == a.id
    stored = [p for p in (fleet.data / "dumps").rglob("*") if p.is_file()]
    assert [p.name for p in stored] == [a.sha256]
    assert fleet.dump_file(a.id) == stored[0]
    assert [(j.stage, j.state) for j in fleet.jobs()] == [("fast", "queued")]
    with pytest.raises(TooLarge):
        fleet.ingest(io.BytesIO(b"\0" * ((1 << 20) + 1)), "big")
    with pytest.raises(KdxError, match="stopped after 3 of 10 bytes"):
        fleet.ingest(io.BytesIO(b"abc"), "cut", size=10)
    with pytest.raises(KdxError, match="label name"):
        _ingest(fleet, LOG + "x", **{"bad key": "v"})


def test_file_kinds_and_kdump_directories(tmp_path):
    assert file_kind(b"KDUMP   \x06\0\0\0") == "vmcore"
    assert file_kind(b"makedumpfile\0\0\0") == "vmcore"
    assert file_kind(LOG.encode()) == "dmesg"
    assert file_kind(os.urandom(4096)) == "vmcore"
    d = tmp_path / "10.0.0.7-2026-12-05-06:00:01"
    d.mkdir()
    (d / "vmcore-dmesg.txt").write_text(LOG)
    (d / "vmcore-incomplete").write_bytes(b"KDUMP   ")
    with pytest.raises(KdxError, match="still being written"):
        kdump_dir_files(d)
    (d / "vmcore-incomplete").rename(d / "vmcore.flat")
    assert kdump_dir_files(d) == (d / "vmcore.flat", d / "vmcore-dmesg.txt")
    deb = tmp_path / "202612050600"
    deb.mkdir()
    (deb / "dump.202612050600").write_bytes(b"KDUMP   ")
    (deb / "dmesg.202612050600").write_text(LOG)
    assert kdump_dir_files(deb) == (deb / "dump.202612050600", deb / "dmesg.202612050600")


def test_claims_are_atomic_fast_first_and_leased(fleet):
    ids = [_ingest(fleet, LOG + str(i)).id for i in range(6)]
    queue: SqlJobQueue = fleet.queue
    with fleet.db.write() as s, s.begin():
        full = queue.enqueue(s, ids[0], "full")  # queued before some fast jobs finish
    per_thread: list[list] = [[] for _ in range(4)]

    def claimer(mine: list) -> None:
        while (c := queue.claim()) is not None:
            mine.append(c)

    threads = [threading.Thread(target=claimer, args=(mine,)) for mine in per_thread]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    claims = [c for mine in per_thread for c in mine]
    assert sorted(c.job_id for c in claims) == sorted({c.job_id for c in claims})
    assert len(claims) == 7 and [c.job_id for c in claims if c.stage == "full"] == [full]
    # fast first: once a thread got the full job no fast job was left for it (the order
    # across threads is the scheduler's, not the queue's)
    for mine in per_thread:
        stages = [c.stage for c in mine]
        if "full" in stages:
            assert "fast" not in stages[stages.index("full") + 1:]
    first = claims[0]
    assert queue.complete(first, 1.0, lambda s: None) is True
    assert queue.complete(first, 1.0, lambda s: None) is False  # never twice
    stale = claims[1]
    assert queue.recover() == 6  # a restart: the other running jobs are queued again
    assert queue.complete(stale, 1.0, lambda s: None) is False  # its old lease is void
    assert queue.fail(stale, "late") is False
    with fleet.db.session() as s:
        assert s.scalar(select(func.max(Job.completions))) == 1
        assert s.scalar(select(func.count()).select_from(Job).where(
            Job.state == "queued")) == 6


def test_a_job_interrupted_too_often_fails(fleet):
    dump = _ingest(fleet, LOG)
    for _ in range(MAX_ATTEMPTS):
        assert fleet.queue.claim() is not None
        fleet.queue.recover()
    assert fleet.jobs()[0].state == "failed"
    assert "interrupted 3 times" in fleet.jobs()[0].failure
    assert fleet.dump(dump.id).state == "failed"
    retried = fleet.retry(dump.id)
    assert retried.state == "received" and retried.failure is None
    assert [j.state for j in fleet.jobs()] == ["queued", "failed"]


def test_exit_reasons():
    assert describe_exit(-9, "", 1 << 30) == "the analysis crashed (SIGKILL)"
    assert describe_exit(1, "Traceback...\nMemoryError\n", 3 << 29) == \
        "ran out of memory (limit 1.5 GiB)"
    assert describe_exit(2, "x\nboom\n", 0) == "the analysis failed (exit status 2: boom)"
    assert parse_size("4G") == 4 << 30 and parse_size("512MiB") == 512 << 20


def _bucket(fleet, text: str, key: BucketKey, host: str, *, days_ago: float = 0,
            build: str | None = None) -> int:
    dump = _ingest(fleet, text)
    with fleet.db.write() as s, s.begin():
        row = s.get(Dump, dump.id)
        row.host, row.release, row.state = host, "6.1.0-57-cloud-amd64", "analysed"
        row.captured = utcnow() - dt.timedelta(days=days_ago)
        row.build_id = build
        return buckets.assign(s, row, key, final=True)


def test_merge_and_split_keep_reasons_and_route_later_dumps(fleet):
    oops = BucketKey("a" * 16, 1, "BUG: oops in f", "null-pointer-dereference", "f [m]", "m")
    warn = BucketKey("b" * 16, 1, "WARNING in g", "warning", "g", None)
    p1 = _bucket(fleet, LOG + "1", oops, "web-1")
    assert _bucket(fleet, LOG + "2", oops, "web-2") == p1
    p2 = _bucket(fleet, LOG + "3", warn, "db-1")
    assert p1 != p2
    first = fleet.problem(p1)
    assert (first.count, first.hosts, first.kernels, first.new) == (
        2, 2, ["6.1.0-57-cloud-amd64"], True)
    assert first.title == "BUG: oops in f" and first.per_day[0][1] == 2
    merged = fleet.merge(p1, p2, reason="same root cause", who="ana")
    assert merged.count == 3 and merged.events[0].reason == "same root cause"
    assert fleet.problem(p2).merged_into == p1
    assert [p.id for p in fleet.problems()] == [p1]
    assert _bucket(fleet, LOG + "4", warn, "db-2") == p1  # later dumps follow the merge
    with pytest.raises(KdxError, match="merged into"):
        fleet.merge(p2, p1, reason="back", who="ana")
    moved = fleet.problem(p1).dump_ids[-2:]
    with fleet.db.write() as s, s.begin():
        for dump_id in moved:  # what their fast pass said of them
            s.get(Dump, dump_id).fast = {"category": "warning", "title": "WARNING in g",
                                         "culprit": "g", "module": None}
    new = fleet.split(p1, moved, reason="different bug", who="bo")
    assert new.dump_ids == moved and new.events[0].action == "split"
    # named after its own dumps, not after the problem they left
    assert (new.title, new.category, new.culprit) == ("WARNING in g", "warning", "g")
    assert fleet.problem(p1).title == "BUG: oops in f"
    assert fleet.problem(p1).count == 2
    # a split dump stays where a person put it when analysed again
    with fleet.db.write() as s, s.begin():
        assert buckets.assign(s, s.get(Dump, moved[0]), warn, final=True) == new.id
    with pytest.raises(KdxError, match="reason"):
        fleet.split(p1, moved, reason=" ", who="bo")
    by_host = fleet.problems(ProblemFilter(host="web-2"))
    assert [p.id for p in by_host] == [p1]
    assert [p.id for p in fleet.problems(ProblemFilter(sort="count"))][0] in (p1, new.id)
    with pytest.raises(KdxError, match="cannot sort"):
        fleet.problems(ProblemFilter(sort="nope"))


def test_watch_ingests_only_finished_dumps_once(tmp_path):
    watched = tmp_path / "crash"
    watched.mkdir()
    config = FleetConfig(data=tmp_path / "data")
    fleet = open_fleet(config, workers=False)
    watcher = Watcher(fleet, watched, log_settle=3600)
    run = watched / "10.0.0.7-2026-12-05-06:00:01"
    run.mkdir()
    (run / "vmcore-dmesg.txt").write_text(LOG)
    (run / "vmcore-incomplete").write_bytes(b"KDUMP   " + b"\0" * 100)
    (watched / "loose-dmesg.txt").write_text(LOG + "loose")
    assert watcher.poll() == []  # first sight: nothing is known to be stable yet
    assert [r.filename for r in watcher.poll()] == ["loose-dmesg.txt"]
    with open(run / "vmcore-incomplete", "ab") as f:
        f.write(b"more")
    assert watcher.poll() == []
    (run / "vmcore-incomplete").rename(run / "vmcore")
    assert watcher.poll() == []  # renamed just now: wait for one stable poll
    (record,) = watcher.poll()
    assert record.filename == "vmcore"
    assert fleet.dump(record.id).outputs == {"vmcore-dmesg.txt": LOG}  # shown at once
    with fleet.db.session() as s:
        assert s.get(Dump, record.id).companion is not None  # the log came with it
    assert watcher.poll() == []
    # kdump-tools: dump.STAMP first, dmesg.STAMP after it, attached to the same report
    deb = watched / "202612050600"
    deb.mkdir()
    (deb / "dump.202612050600").write_bytes(b"KDUMP   " + b"\1" * 100)
    assert watcher.poll() == []
    (debian,) = watcher.poll()
    (deb / "dmesg.202612050600").write_text(LOG + "debian")
    assert watcher.poll() == [] and watcher.poll() == []
    assert fleet.dump(debian.id).outputs == {"vmcore-dmesg.txt": LOG + "debian"}
    fleet.close()
    again = open_fleet(config, workers=False)  # a restart remembers what it ingested
    later = Watcher(again, watched, log_settle=3600)
    assert later.poll() == [] and later.poll() == []
    assert len(again.dumps()) == 3
    again.close()


def test_new_signature_rules_queue_the_dumps_again(fleet):
    old = BucketKey("c" * 16, buckets.current_version() - 1, "old rules", "oops")
    p_old = _bucket(fleet, LOG + "old", old, "web-1")
    _bucket(fleet, LOG + "log", old, "web-2")  # a log alone: its fast pass buckets it
    current = BucketKey("d" * 16, buckets.current_version(), "new rules", "oops")
    _bucket(fleet, LOG + "current", current, "web-3")
    with fleet.db.write() as s, s.begin():
        s.get(Dump, fleet.problem(p_old).dump_ids[0]).kind = "vmcore"
        for job in s.scalars(select(Job)):
            job.state = "done"
    assert fleet._requeue_stale() == 2
    assert sorted(j.stage for j in fleet.jobs(state="queued")) == ["fast", "full"]
    assert fleet._requeue_stale() == 0  # already queued


def test_one_server_runs_the_workers_of_a_data_directory(tmp_path):
    config = FleetConfig(data=tmp_path / "data", workers=1)
    (tmp_path / "data" / "tmp" / "flat-x").mkdir(parents=True)  # left by a killed worker
    first = open_fleet(config)
    assert not (tmp_path / "data" / "tmp" / "flat-x").exists()
    with pytest.raises(KdxError, match="another kdx serve runs the workers"):
        open_fleet(config)
    reader = open_fleet(config, workers=False)  # readers (a second web process) are fine
    assert reader.dumps() == []
    reader.close()
    first.close()
    open_fleet(config).close()  # released on close


def test_new_means_first_seen_lately_or_with_a_new_kernel_build(fleet):
    def key(name: str) -> BucketKey:
        return BucketKey(name * 16, 2, f"bug {name}", "oops")

    old = _bucket(fleet, LOG + "1", key("a"), "h1", days_ago=10, build="b1" * 20)
    _bucket(fleet, LOG + "2", key("a"), "h2", days_ago=3, build="b2" * 20)
    with_build = _bucket(fleet, LOG + "3", key("c"), "h3", days_ago=3, build="b2" * 20)
    lately = _bucket(fleet, LOG + "4", key("d"), "h4", days_ago=0.5, build="b1" * 20)
    stale = _bucket(fleet, LOG + "5", key("e"), "h5", days_ago=9, build="b1" * 20)
    news = {p.id: p.new for p in fleet.problems(limit=10)}
    # "a" came 10 days ago on b1, and again on build b2: an old bug
    assert news[old] is False
    # "c" came with build b2 (3 days old, after b1): the build brought it
    assert news[with_build] is True
    # "d" came 12 hours ago; "e" 9 days ago on the old build
    assert news[lately] is True and news[stale] is False
    assert fleet.problem(old).first_seen < fleet.problem(old).last_seen


def test_processes_opening_an_empty_database_together_create_it_once(database_url, tmp_path):
    import subprocess
    import sys

    from kdx.fleet.db import schema_revision

    procs = [subprocess.Popen([sys.executable, "-m", "kdx", "serve", "--data", tmp_path / "d",
                               "--database", database_url, "--migrate"],
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
             for _ in range(3)]
    results = [(p.wait(120), *p.communicate()) for p in procs]
    assert [(rc, err) for rc, _, err in results] == [(0, "")] * 3
    db = open_database(database_url, upgrade_old=False)
    assert schema_revision(db.engine) == "0002"
    db.close()
