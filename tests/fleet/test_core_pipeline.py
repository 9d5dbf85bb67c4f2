"""Real lab dumps through the real worker processes: the fast pass, then the full
analysis, with and without the vmlinux, kdump directories as one report, a log alone,
damaged files, and buckets across the lab's scenarios and kernels.

The fleet is shared by the module (its analyses are the expensive part); the dumps are
symlinked into tmp directories laid out as kdump writes them.
"""

from __future__ import annotations

import os
import time

import pytest

from kdx.fleet.embedded import open_fleet
from kdx.fleet.service import FleetConfig
from kdx.target.debuginfo import DEBUG_DIRS_ENV

#: Scenarios on both kernels: the same bug is one problem on 6.1 and 6.12, though the
#: module loader's and the page allocator's callers were renamed in between.
SCENARIOS = ("warn", "bug-on", "null-deref-module", "oom")
KERNELS = (None, "6.12")


def wait_idle(fleet, limit: float = 300) -> None:
    """Until no job is queued or running (a guard against a hang, not a timing)."""
    deadline = time.monotonic() + limit
    while not fleet.idle():
        if time.monotonic() > deadline:
            raise AssertionError(f"jobs still pending: {fleet.jobs()}")
        time.sleep(0.2)


@pytest.fixture(scope="module")
def world(lab, tmp_path_factory):
    """The fleet (2 workers, an empty debug-info store, no other debug directories),
    with every dump of this module ingested and analysed."""
    tmp = tmp_path_factory.mktemp("fleet")
    debuginfo = tmp / "debuginfo"
    debuginfo.mkdir()
    with pytest.MonkeyPatch.context() as mp:
        mp.delenv(DEBUG_DIRS_ENV, raising=False)  # the workers find no vmlinux by themselves
        mp.delenv("DEBUGINFOD_URLS", raising=False)
        fleet = open_fleet(FleetConfig(data=tmp / "data", workers=2, debuginfo=debuginfo))
        ids: dict[str, int] = {}
        for scenario in SCENARIOS:
            for kernel in KERNELS:
                dump = lab(scenario, kernel=kernel)
                ids[f"{scenario}/{kernel or '6.1'}"] = fleet.ingest_path(dump.vmcore)[0].id
        nd = lab("null-deref-module")
        kdump_dir = tmp / "crash" / "10.0.0.7-2026-12-05-06:00:01"
        kdump_dir.mkdir(parents=True)
        (kdump_dir / "vmcore").symlink_to(nd.vmcore)
        (kdump_dir / "vmcore-dmesg.txt").symlink_to(nd.dir / "dmesg.txt")
        (ids["kdump-dir"],) = [r.id for r in fleet.ingest_path(kdump_dir)]
        # one bug taken by kdump and by QEMU, in several formats
        for capture, fmt in (("kdump", "kdump-zlib"), ("kdump", "kdump-lzo"),
                             ("qemu", "kdump-zlib")):
            dump = lab("sysrq", capture=capture, fmt=fmt)
            ids[f"sysrq/6.1/{capture}-{fmt}"] = fleet.ingest_path(dump.vmcore)[0].id
        flat = lab("sysrq", fmt="flattened")
        flat_dir = tmp / "crash" / "10.0.0.8-2026-12-05-07:00:00"
        flat_dir.mkdir()
        (flat_dir / "vmcore.flat").symlink_to(flat.vmcore)
        (flat_dir / "vmcore-dmesg.txt").symlink_to(flat.dir / "dmesg.txt")
        (ids["flat-dir"],) = [r.id for r in fleet.ingest_path(flat_dir)]
        only_log = tmp / "vmcore-dmesg.txt"
        only_log.write_bytes((nd.dir / "dmesg.txt").read_bytes() + b"\n")
        ids["log"] = fleet.ingest_path(only_log)[0].id
        cut = tmp / "truncated-vmcore"
        data = lab("sysrq").vmcore.read_bytes()
        cut.write_bytes(data[:len(data) // 2])
        ids["truncated"] = fleet.ingest_path(cut)[0].id
        prose = tmp / "notes.txt"
        prose.write_text("Dear admin,\nthe server rebooted again last night.\n")
        ids["prose"] = fleet.ingest_path(prose)[0].id
        noise = tmp / "noise"
        noise.write_bytes(os.urandom(1 << 16))
        ids["noise"] = fleet.ingest_path(noise)[0].id
        wait_idle(fleet)
        before = {k: fleet.dump(v) for k, v in ids.items()}
        # the vmlinux of the 6.1 build arrives: the store now has it by build ID
        build = before["warn/6.1"].build_id
        debug_before = {r.build_id: r for r in fleet.debug_info()}
        (debuginfo / build).mkdir()
        (debuginfo / build / "vmlinux").symlink_to(nd.vmlinux)
        (debuginfo / build / "modules").symlink_to(nd.modules)
        requeued = fleet.reanalyse_build(build)
        wait_idle(fleet)
        yield {"fleet": fleet, "ids": ids, "before": before, "build": build,
               "debug_before": debug_before, "requeued": requeued}
        fleet.close()


def test_vmcores_analysed_without_their_vmlinux(world):
    for key in ("warn/6.1", "warn/6.12", "oom/6.12", "null-deref-module/6.12"):
        dump = world["before"][key]
        assert dump.state == "analysed", (key, dump.failure)
        assert dump.debug_source == "dump" and dump.kind == "vmcore"
        assert dump.host == "kdx-lab" and dump.release.startswith(key.split("/")[1])
        assert dump.build_id and dump.captured and dump.problem_id
        assert dump.verdict["category"] in ("warn", "oom", "null-pointer-dereference")
        assert dump.fast is not None and dump.fast["kind"] == "vmcore"
        # the fast pass put it in the bucket the full analysis confirmed
        assert dump.fast["signature"] == dump.verdict["signature"]["hash"]
        assert dump.fast["host"] == dump.host and dump.fast["release"] == dump.release
    full = world["fleet"].dump(world["ids"]["null-deref-module/6.12"])
    assert full.verdict["culprit"]["function"] == "hello_init"
    assert "insmod" in full.outputs["ps"] and "hello_crash" in full.outputs["mod"]
    assert "hello_init" in full.outputs["bt -a"]
    assert "NULL pointer dereference" in full.outputs["log"]


def test_the_vmlinux_arriving_reanalyses_its_build(world):
    fleet, build = world["fleet"], world["build"]
    assert world["debug_before"][build].vmlinux is False
    # 4 scenario dumps (the kdump dir holds one of them), 3 sysrq captures and the
    # flattened one; the truncated copy (its header names the build) failed and is queued
    # again as well
    assert world["debug_before"][build].without == 8
    assert world["debug_before"][build].dumps == 9
    assert world["requeued"] == 9
    after = {r.build_id: r for r in fleet.debug_info()}[build]
    assert after.vmlinux is True and after.without == 0
    for key in ("warn/6.1", "null-deref-module/6.1", "kdump-dir"):
        dump = fleet.dump(world["ids"][key])
        assert dump.state == "analysed" and dump.debug_source == "dwarf", key
        # with and without the vmlinux: the same problem
        assert dump.problem_id == world["before"][key].problem_id
    nd = fleet.dump(world["ids"]["kdump-dir"])
    assert nd.verdict["culprit"]["file"].endswith("hello-crash.c")
    assert nd.verdict["culprit"]["line"] == 21


def test_kdump_directories_are_one_report(world):
    fleet, ids = world["fleet"], world["ids"]
    nd = fleet.dump(ids["kdump-dir"])
    assert nd.filename == "vmcore" and nd.state == "analysed"
    assert "NULL pointer dereference" in nd.outputs["vmcore-dmesg.txt"]
    flat = fleet.dump(ids["flat-dir"])
    assert flat.filename == "vmcore.flat" and flat.state == "analysed", flat.failure
    assert flat.verdict["category"] == "sysrq"
    # the kdump dir holds the same vmcore as the null-deref scenario: stored once
    assert ids["kdump-dir"] == ids["null-deref-module/6.1"]
    assert len(fleet.dumps(limit=1000)) == len(set(ids.values()))


def test_a_log_alone_gets_a_verdict(world):
    dump = world["fleet"].dump(world["ids"]["log"])
    assert dump.kind == "dmesg" and dump.state == "analysed" and dump.debug_source == "log"
    assert dump.verdict is None and dump.fast["kind"] == "dmesg"
    assert "NULL pointer dereference" in dump.outputs["log"]


def test_damaged_files_fail_with_their_reason(world):
    fleet, ids = world["fleet"], world["ids"]
    # a dump cut in half has lost the kernel image the dump's own debug info is read
    # from: it fails, saying first that it is truncated; with its vmlinux it is read as
    # far as it goes, and the truncation stays in the verdict's warnings
    first = world["before"]["truncated"]
    assert first.state == "failed", first.failure
    assert first.failure.startswith("truncated-vmcore is truncated at byte "), first.failure
    cut = fleet.dump(ids["truncated"])
    assert cut.state == "analysed", cut.failure
    assert any(" is truncated at byte " in w for w in cut.verdict["warnings"])
    noise = fleet.dump(ids["noise"])
    assert noise.state == "failed"
    assert noise.failure.startswith("noise is neither a crash dump"), noise.failure
    prose = fleet.dump(ids["prose"])
    assert prose.kind == "dmesg" and prose.state == "failed"
    assert prose.failure == "notes.txt is not a kernel log: no line of it is a kernel message"
    failed = {j.dump_id: j for j in fleet.jobs(state="failed")}
    assert failed[ids["noise"]].stage == "fast"
    assert "\n" not in noise.failure and "Traceback" not in noise.failure


def test_one_problem_per_scenario(world):
    fleet, ids = world["fleet"], world["ids"]
    problems = {}
    for key, dump_id in ids.items():
        if "/" in key:
            problems.setdefault(key.split("/")[0], set()).add(fleet.dump(dump_id).problem_id)
    problems["sysrq"].add(fleet.dump(ids["flat-dir"]).problem_id)
    assert sorted(problems) == sorted([*SCENARIOS, "sysrq"])
    for scenario in problems:
        assert len(problems[scenario]) == 1, scenario
    sysrq = fleet.problem(next(iter(problems["sysrq"])))
    assert sysrq.count == 4 and sysrq.category == "sysrq"  # kdump and QEMU, 4 formats
    every = [p for ps in problems.values() for p in ps]
    assert len(every) == len(set(every))  # no problem holds two scenarios
    warn = fleet.problem(next(iter(problems["warn"])))
    assert warn.count == 2 and warn.kernels == sorted(
        [world["before"]["warn/6.1"].release, world["before"]["warn/6.12"].release])
    assert warn.title == "WARNING in crashlab_check_budget [crashlab_warn]"
    assert warn.culprit == "crashlab_check_budget [crashlab_warn]"
    assert warn.module == "crashlab_warn" and warn.hosts == 1
    listed = fleet.problems(limit=1000)
    assert {p.id for p in listed} >= set(every)
    metrics = fleet.metrics()
    assert metrics["queue_length"] == 0 and metrics["jobs"]["failed"] >= 2
    assert metrics["worker_peak_bytes"] > 50 << 20  # a full analysis loads debug info
    # every dump but the random bytes and the prose (their fast pass failed) had a first
    # result
    assert len(metrics["first_result_seconds"]) == len(set(ids.values())) - 2


def test_a_kernel_without_btf_keeps_its_log_verdict(null_deref) -> None:
    """No vmlinux and no BTF: the full stage keeps the log and the fast verdict's bucket
    instead of failing on the missing types."""
    from kdx.api import Dump
    from kdx.fleet import pipeline
    from kdx.target.open import open_dump

    target = open_dump(null_deref.vmcore, no_vmlinux=True, btf=False)
    result = pipeline._symbols_only(Dump(target), target)
    assert (result.verdict, result.key, result.debug_source) == (None, None, "symbols")
    assert result.release == null_deref.truth["release"]
    assert "BUG: kernel NULL pointer dereference, address: 0000000000000000" in \
        result.outputs["log"]


def test_the_workers_analyse_with_postgresql(lab, tmp_path, postgres_database):
    """The worker processes write their results into PostgreSQL: a vmcore gets its fast
    pass, its full verdict and its problem, a damaged file its reason, each job once."""
    from sqlalchemy import func, select

    from kdx.fleet.db import Job

    dump = lab("sysrq")
    noise = tmp_path / "noise"
    noise.write_bytes(b"\x7fELF" + bytes(range(256)) * 64)
    fleet = open_fleet(FleetConfig(data=tmp_path / "data", workers=1,
                                   database=postgres_database))
    try:
        assert fleet.db.engine.dialect.name == "postgresql"
        vmcore = fleet.ingest_path(dump.vmcore)[0]
        bad = fleet.ingest_path(noise)[0]
        wait_idle(fleet)
        done = fleet.dump(vmcore.id)
        assert done.state == "analysed", done.failure
        assert (done.release, done.fast["category"]) == ("6.1.0-57-cloud-amd64", "sysrq")
        assert done.verdict["category"] == "sysrq"
        assert fleet.problem(done.problem_id).category == "sysrq"
        failed = fleet.dump(bad.id)
        assert failed.state == "failed" and failed.failure.startswith("noise is ")
        with fleet.db.session() as s:
            rows = s.execute(select(Job.stage, Job.state, func.sum(Job.completions))
                             .where(Job.dump_id == vmcore.id)
                             .group_by(Job.stage, Job.state)).all()
        assert sorted(rows) == [("fast", "done", 1), ("full", "done", 1)]
    finally:
        fleet.close()
