"""The ``/api/v1`` JSON API, tokens and ``/metrics`` of ``kdx serve``'s web app, through a
real uvicorn server on the embedded fleet holding real lab dumps."""

from __future__ import annotations

import pytest
from webfleet import RELEASE_61, RELEASE_612, TOKEN, serve, sha256, shared_site

from kdx.fleet.web import create_app


@pytest.fixture(scope="module")
def site(request, tmp_path_factory):  # noqa: ANN001, ANN201 (fixtures)
    return shared_site(request, tmp_path_factory)


def test_dump_records_carry_what_the_dump_says(site) -> None:  # noqa: ANN001
    with site.http() as http:
        null61 = http.get(f"/api/v1/dumps/{site.dumps['null61']['id']}").json()
        assert null61["sha256"] == sha256(site.files["null61"])
        assert null61["size"] == site.files["null61"].stat().st_size
        assert (null61["state"], null61["kind"], null61["release"]) == (
            "analysed", "vmcore", RELEASE_61)
        assert null61["labels"] == {"team": "storage"}
        assert null61["verdict"]["culprit"]["function"] == "hello_init"
        assert null61["verdict"]["culprit"]["address"].startswith("0xffffffff")
        assert "hello_init" in null61["outputs"]["bt -a"]
        assert set(null61["outputs"]) >= {"bt -a", "ps", "log", "mod"}
        by_hash = http.get(f"/api/v1/dumps/by-sha256/{null61['sha256']}").json()
        assert by_hash["id"] == null61["id"]
        noise = http.get(f"/api/v1/dumps/{site.dumps['noise']['id']}").json()
        assert noise["state"] == "failed" and "a crash dump kdx knows" in noise["failure"]


def test_dump_lists_filter_by_state_and_problem(site) -> None:  # noqa: ANN001
    with site.http() as http:
        failed = http.get("/api/v1/dumps", params={"state": "failed"}).json()
        assert [d["id"] for d in failed] == [site.dumps["noise"]["id"]]
        problem = site.record("warn61")["problem_id"]
        mine = http.get("/api/v1/dumps", params={"problem": problem}).json()
        assert [d["id"] for d in mine] == [site.dumps["warn61"]["id"]]
        every = http.get("/api/v1/dumps").json()
        assert {d["id"] for d in every} >= {d["id"] for d in site.dumps.values()}
        assert [d["id"] for d in every] == sorted((d["id"] for d in every), reverse=True)


def test_problem_records_and_filters(site) -> None:  # noqa: ANN001
    with site.http() as http:
        null61 = site.record("null61")
        problem = http.get(f"/api/v1/problems/{null61['problem_id']}").json()
        assert problem["title"] == "BUG: kernel NULL pointer dereference in hello_init " \
            "[hello_crash]"
        assert problem["category"] == "null-pointer-dereference"
        assert null61["id"] in problem["dump_ids"]
        assert problem["count"] == len(problem["dump_ids"])
        on_612 = http.get("/api/v1/problems", params={"kernel": RELEASE_612}).json()
        assert [RELEASE_612 in p["kernels"] for p in on_612] == [True] * len(on_612)
        assert any("hello_init" in p["title"] for p in on_612)
        assert not any("WARNING" in p["title"] for p in on_612)
        net = http.get("/api/v1/problems", params={"label": "team=net"}).json()
        assert [p["category"] for p in net] == ["warn"]
        everything = http.get("/api/v1/problems", params={"since": "2000-01-01"}).json()
        assert len(everything) == len(http.get("/api/v1/problems").json()) >= 2
        assert http.get("/api/v1/problems", params={"since": "2999-01-01"}).json() == []
        by_host = http.get("/api/v1/problems", params={"host": null61["host"]}).json()
        assert null61["problem_id"] in [p["id"] for p in by_host]
        assert http.get("/api/v1/problems", params={"host": "no-such-host"}).json() == []
        by_module = http.get("/api/v1/problems", params={"module": "crashlab_warn"}).json()
        assert [p["category"] for p in by_module] == ["warn"]
        by_count = http.get("/api/v1/problems", params={"sort": "count"}).json()
        counts = [p["count"] for p in by_count]
        assert counts == sorted(counts, reverse=True) and len(by_count) >= 2


@pytest.mark.parametrize("path, status, words", [
    ("/api/v1/dumps/999999", 404, "no such dump"),
    ("/api/v1/problems/999999", 404, "no such problem"),
    ("/api/v1/dumps?state=bogus", 400, "state must be one of"),
    ("/api/v1/problems?sort=bogus", 400, "sort must be one of"),
    ("/api/v1/problems?since=yesterday", 400, "since must be a date"),
    ("/api/v1/dumps/abc", 400, "dump_id"),
    (f"/api/v1/dumps/{1 << 70}", 400, "dump_id"),
    (f"/api/v1/dumps?problem={1 << 70}", 400, "problem"),
    ("/api/v1/dumps/by-sha256/xyz", 400, "sha256"),
    ("/api/v1/nothing", 404, "Not Found"),
])
def test_errors_are_one_json_line(site, path, status, words) -> None:  # noqa: ANN001
    with site.http() as http:
        answer = http.get(path)
    assert answer.status_code == status
    assert answer.headers["content-type"].startswith("application/json")
    assert words in answer.json()["error"]


def test_jobs_and_debuginfo(site) -> None:  # noqa: ANN001
    with site.http() as http:
        failed = http.get("/api/v1/jobs", params={"state": "failed"}).json()
        assert {j["dump_id"] for j in failed} == {site.dumps["noise"]["id"]}
        assert "a crash dump kdx knows" in failed[0]["failure"]
        builds = {b["release"]: b for b in http.get("/api/v1/debuginfo").json()}
        dumps = http.get("/api/v1/dumps", params={"limit": 1000}).json()
    build = site.record("null61")["build_id"]
    assert builds[RELEASE_61]["vmlinux"] is True and builds[RELEASE_61]["build_id"] == build
    assert builds[RELEASE_61]["dumps"] == sum(d["build_id"] == build for d in dumps) >= 2


def test_changes_and_downloads_need_a_token(site) -> None:  # noqa: ANN001
    dump_id = site.dumps["warn61"]["id"]
    with site.http() as anonymous, site.http("not-the-token") as wrong, \
            site.http(TOKEN) as allowed:
        for http, status in ((anonymous, 401), (wrong, 403)):
            for method, path in (("POST", f"/api/v1/dumps/{dump_id}/retry"),
                                 ("GET", f"/api/v1/dumps/{dump_id}/file"),
                                 ("POST", "/api/v1/debuginfo/00ff/reanalyse"),
                                 ("POST", "/api/v1/uploads")):
                body = {"json": {}} if path.endswith("/uploads") else {}  # read or none
                answer = http.request(method, path, **body)
                assert (path, answer.status_code) == (path, status)
                assert "token" in answer.json()["error"]
        assert anonymous.post(f"/api/v1/dumps/{dump_id}/retry").headers[
            "www-authenticate"] == "Bearer"
        assert anonymous.get(f"/api/v1/dumps/{dump_id}").status_code == 200  # open reading
        download = allowed.get(f"/api/v1/dumps/{dump_id}/file")
        assert download.status_code == 200
        assert download.content == site.files["warn61"].read_bytes()
        assert f"kdx-dump-{dump_id}-" in download.headers["content-disposition"]
        assert allowed.post("/api/v1/debuginfo/00ff/reanalyse").json() == {
            "build_id": "00ff", "queued": 0}


def test_closed_reading_needs_a_token_too(site) -> None:  # noqa: ANN001
    closed = serve(create_app(site.fleet, tokens=frozenset({TOKEN}), open_read=False))
    try:
        with site.http() as anonymous, site.http(TOKEN) as allowed:
            anonymous.base_url = allowed.base_url = closed.url
            for path in ("/api/v1/dumps", "/api/v1/problems", "/problems", "/metrics"):
                assert (path, anonymous.get(path).status_code) == (path, 401)
                assert (path, allowed.get(path).status_code) == (path, 200)
            page = anonymous.get("/dumps")
            assert "Log in with a token" in page.text
    finally:
        closed.stop()


def test_no_tokens_means_no_changes(site) -> None:  # noqa: ANN001
    bare = serve(create_app(site.fleet, tokens=frozenset()))
    try:
        with site.http(TOKEN) as http:
            http.base_url = bare.url
            answer = http.post(f"/api/v1/dumps/{site.dumps['warn61']['id']}/retry")
            assert answer.status_code == 403 and "--token-file" in answer.json()["error"]
            assert http.get("/api/v1/problems").status_code == 200
    finally:
        bare.stop()


def _sample(text: str, name: str, **labels: str) -> float:
    wanted = ",".join(f'{k}="{v}"' for k, v in labels.items())
    head = f"{name}{{{wanted}}}" if labels else name
    for line in text.splitlines():
        if line.startswith(head + " "):
            return float(line.split()[-1])
    raise AssertionError(f"{head} not in /metrics")


def test_metrics_are_the_fleets_numbers(site) -> None:  # noqa: ANN001
    with site.http() as http:
        text = http.get("/metrics").text
        done = len(http.get("/api/v1/jobs", params={"state": "done", "limit": 1000}).json())
        full = [j for j in http.get("/api/v1/jobs", params={"state": "done"}).json()
                if j["stage"] == "full"]
        failed = len(http.get("/api/v1/jobs", params={"state": "failed"}).json())
    assert _sample(text, "kdx_jobs", state="done") == done
    assert _sample(text, "kdx_jobs", state="failed") == failed >= 1
    assert _sample(text, "kdx_queue_length") >= 0
    assert _sample(text, "kdx_analysis_seconds_count") == len(full) >= 3
    assert _sample(text, "kdx_analysis_seconds_bucket", le="+Inf") == len(full)
    assert _sample(text, "kdx_first_result_seconds_count") >= 4
    assert "# TYPE kdx_analysis_seconds histogram" in text
