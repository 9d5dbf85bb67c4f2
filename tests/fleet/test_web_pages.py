"""The HTML pages of ``kdx serve``: what they show of real lab dumps, escaping of text from
dumps, the login cookie, and the forms that change things (merge, split, retry), through
a real uvicorn server on the embedded fleet."""

from __future__ import annotations

import html
import re
import time
from collections.abc import Iterator
from contextlib import contextmanager

import httpx
import pytest
from markupsafe import escape
from webfleet import (
    EVIL_LABEL,
    EVIL_NAME,
    RELEASE_61,
    RELEASE_612,
    TOKEN,
    lab_file,
    open_site_fleet,
    serve,
    shared_site,
    wait_analysed,
)

from kdx.fleet.client import FleetClient
from kdx.fleet.web import create_app
from kdx.fleet.web.report import report_document


@pytest.fixture(scope="module")
def site(request, tmp_path_factory):  # noqa: ANN001, ANN201 (fixtures)
    return shared_site(request, tmp_path_factory)


@contextmanager
def _login(site) -> Iterator[httpx.Client]:  # noqa: ANN001
    """A client that logged in on the login page (it holds the cookie)."""
    with site.http() as http:
        answer = http.post("/login", data={"token": TOKEN, "next": "/jobs"})
        assert answer.status_code == 303 and answer.headers["location"] == "/jobs"
        yield http


def test_problems_page_filters_and_sorts(site) -> None:  # noqa: ANN001
    with site.http() as http:
        page = http.get("/problems").text
        assert "BUG: kernel NULL pointer dereference in hello_init [hello_crash]" in page
        assert "WARNING in crashlab_check_budget [crashlab_warn]" in page
        assert '<link rel="stylesheet" href="/static/kdx.css">' in page
        assert "<script" not in page  # no JavaScript, from a CDN or anywhere
        on_612 = http.get("/problems", params={"kernel": RELEASE_612}).text
        assert "hello_init" in on_612 and "crashlab_check_budget" not in on_612
        by_title = http.get("/problems", params={"sort": "title", "desc": "false"}).text
        titles = re.findall(r'<a href="/problems/\d+">([^<]+)</a>', by_title)
        assert titles == sorted(titles) and len(titles) >= 2
        assert 'href="/problems?sort=title&amp;desc=true"' in by_title  # click again: reverse
        headers = http.get("/problems").headers
        assert "script-src 'none'" in headers["content-security-policy"]
        assert headers["x-content-type-options"] == "nosniff"
        css = http.get("/static/kdx.css")
        assert css.status_code == 200 and "table.list" in css.text


def test_problem_page_has_charts_dumps_and_forms(site) -> None:  # noqa: ANN001
    null61 = site.record("null61")
    with site.http() as http:
        problem = http.get(f"/api/v1/problems/{null61['problem_id']}").json()
        page = http.get(f"/problems/{problem['id']}").text
    assert html.escape(problem["title"]) in page
    per_day = re.search(r'aria-label="occurrences per day".*?</svg>', page, re.S).group(0)
    for day, count in problem["per_day"]:
        assert f"<title>{day}: {count}</title>" in per_day
    assert per_day.count("<rect") >= 14  # two weeks at least, empty days as zero bars
    kernels = re.search(r'aria-label="dumps per kernel".*?</svg>', page, re.S).group(0)
    for release in problem["kernels"]:
        assert html.escape(release) in kernels
    assert f'href="/dumps/{null61["id"]}"' in page
    assert f'action="/problems/{problem["id"]}/split"' in page
    assert f'action="/problems/{problem["id"]}/merge"' in page


def test_dump_page_embeds_the_report_and_outputs(site) -> None:  # noqa: ANN001
    null61 = site.record("null61")
    with site.http() as http:
        page = http.get(f"/dumps/{null61['id']}").text
        report = http.get(f"/dumps/{null61['id']}/report")
        log = http.get(f"/dumps/{null61['id']}/log")
    assert 'http-equiv="refresh"' not in page  # final: no more refreshing
    assert '<span class="state analysed" id="state">analysed</span>' in page
    assert "<h2>Culprit</h2>" in page and "hello_init+0x11 [hello_crash]" in page
    assert '<details id="fast">' in page  # folded once the full report is there
    for name in ("bt -a", "ps", "log", "mod"):
        assert f"<h2><code>{name}</code></h2>" in page
    assert html.escape(null61["outputs"]["mod"]).strip() in page
    assert null61["build_id"] in page and RELEASE_61 in page
    assert report.text == report_document(null61["verdict"])
    assert report.headers["content-security-policy"].startswith("default-src 'none'")
    assert log.headers["content-type"].startswith("text/plain")
    assert log.text == null61["outputs"]["log"]
    assert "Log in</a> to download" in page and "/download" not in page


def test_text_from_dumps_shows_escaped(site) -> None:  # noqa: ANN001
    evil = site.record("evil")
    assert evil["labels"] == {"note": EVIL_LABEL} and evil["filename"] == EVIL_NAME
    with site.http() as http:
        for path in (f"/dumps/{evil['id']}", "/dumps"):
            page = http.get(path).text
            assert str(escape(EVIL_NAME)) in page, path
            assert EVIL_NAME not in page and "<script" not in page, path
        assert str(escape(EVIL_LABEL)) in http.get(f"/dumps/{evil['id']}").text


def test_the_fast_result_shows_while_the_full_one_waits(tmp_path) -> None:  # noqa: ANN001
    fleet = open_site_fleet(tmp_path / "data", workers=False)
    fleet.pool.count = 0  # only the fast lane runs: the full analysis stays queued
    fleet.pool.start()
    served = serve(create_app(fleet, tokens=frozenset({TOKEN})))
    try:
        with lab_file(tmp_path, RELEASE_61, "null-deref-module-kdump-kdump-zlib").open("rb") as f:
            dump = fleet.ingest(f, "vmcore")
        with FleetClient(served.url, TOKEN) as client:
            deadline = time.monotonic() + 120  # a bound against a hang, not a timing check
            while client.dump(dump.id)["state"] == "received" and time.monotonic() < deadline:
                time.sleep(0.2)
            record = client.dump(dump.id)
        assert record["state"] == "fast" and record["verdict"] is None
        page = httpx.get(f"{served.url}/dumps/{dump.id}").text
        assert '<meta http-equiv="refresh" content="3">' in page
        assert "the full analysis is running" in page
        fast = re.search(r'<details id="fast" open>.*?</details>', page, re.S).group(0)
        assert str(escape(record["fast"]["title"])) in fast and "hello_init" in fast
        assert '<section id="report"' not in page
    finally:
        served.stop()
        fleet.close()


def test_login_sets_a_strict_httponly_cookie(site) -> None:  # noqa: ANN001
    with site.http() as http:
        assert 'name="token"' in http.get("/login").text
        wrong = http.post("/login", data={"token": "nope"})
        assert wrong.status_code == 403 and "not valid" in wrong.text
        right = http.post("/login", data={"token": TOKEN, "next": "//evil.example/"})
        assert right.headers["location"] == "/problems"  # never off this site
        cookie = right.headers["set-cookie"].lower()
        assert "httponly" in cookie and "samesite=strict" in cookie
        assert "Log out" in http.get("/problems").text
        dump_page = http.get(f"/dumps/{site.dumps['warn61']['id']}").text
        assert f'href="/dumps/{site.dumps["warn61"]["id"]}/download"' in dump_page
        assert http.post("/logout").status_code == 303
        http.cookies.clear()
        assert http.get(f"/dumps/{site.dumps['warn61']['id']}/download").status_code == 401


def test_failed_job_retried_from_its_page(site) -> None:  # noqa: ANN001
    noise = site.dumps["noise"]["id"]
    with site.http() as anonymous:
        page = anonymous.get("/jobs").text
        assert f'href="/dumps/{noise}"' in page and "a crash dump kdx knows" in page
        assert "log in to retry" in page
        assert anonymous.post(f"/dumps/{noise}/retry").status_code == 401
    with _login(site) as http:
        assert f'action="/dumps/{noise}/retry"' in http.get("/jobs").text
        before = len(http.get("/api/v1/jobs", params={"state": "failed"}).json())
        answer = http.post(f"/dumps/{noise}/retry")
        assert answer.status_code == 303 and answer.headers["location"] == f"/dumps/{noise}"
        with site.client() as client:
            wait_analysed(client, [noise])
        failed = http.get("/api/v1/jobs", params={"state": "failed"}).json()
        assert len(failed) == before + 1 and {j["dump_id"] for j in failed} == {noise}


def test_debuginfo_page(site) -> None:  # noqa: ANN001
    null61 = site.record("null61")
    with site.http() as http:
        page = http.get("/debuginfo").text
    row = re.search(rf"<tr>\s*<td><code>{null61['build_id']}</code></td>.*?</tr>", page, re.S)
    assert row and RELEASE_61 in row.group(0) and "present" in row.group(0)
    with _login(site) as http:
        answer = http.post(f"/debuginfo/{null61['build_id']}/reanalyse")
        assert answer.status_code == 303
        shown = http.get(answer.headers["location"]).text
        assert http.get("/jobs", params={"state": "bogus"}).status_code == 400
    assert f"0 dump(s) of build {null61['build_id']} queued for analysis again" in shown


def test_merge_and_split_keep_their_reasons(site) -> None:  # noqa: ANN001
    """On the two hello_init dumps (6.1, 6.12), so the site's buckets mean the same after:
    merged then split apart again, or (when bucketed together) split then merged back."""
    null61, null612 = site.record("null61"), site.record("null612")
    target, other = null61["problem_id"], null612["problem_id"]
    with _login(site) as http:
        no_reason = http.post(f"/problems/{target}/merge", data={"other": other, "reason": " "})
        assert no_reason.status_code == 400 and "reason" in no_reason.text
        no_dumps = http.post(f"/problems/{target}/split", data={"reason": "why"})
        assert no_dumps.status_code == 400 and "tick the dumps" in no_dumps.text
        if target == other:  # one problem already: split the 6.12 dump off, merge it back
            split = http.post(f"/problems/{target}/split",
                              data={"dump_ids": [str(null612["id"])], "reason": "first reason",
                                    "name": "ana"})
            assert split.status_code == 303
            new_id = int(split.headers["location"].rsplit("/", 1)[1])
            assert site.record("null612")["problem_id"] == new_id != target
            merged = http.post(f"/api/v1/problems/{target}/merge",
                               json={"other": new_id, "reason": "second reason", "who": "bo"})
            assert merged.status_code == 200 and null612["id"] in merged.json()["dump_ids"]
            assert site.record("null612")["problem_id"] == target
        else:  # two problems: merge them, then split the 6.12 dump off again
            merged = http.post(f"/api/v1/problems/{target}/merge",
                               json={"other": other, "reason": "first reason", "who": "ana"})
            assert merged.status_code == 200 and null612["id"] in merged.json()["dump_ids"]
            gone = http.get(f"/problems/{other}")
            assert gone.headers["location"] == f"/problems/{target}"
            split = http.post(f"/problems/{target}/split",
                              data={"dump_ids": [str(null612["id"])],
                                    "reason": "second reason", "name": "bo"})
            assert split.status_code == 303
            new_id = int(split.headers["location"].rsplit("/", 1)[1])
            assert site.record("null612")["problem_id"] == new_id
            moved = http.get(f"/api/v1/problems/{new_id}").json()
            assert moved["dump_ids"] == [null612["id"]] and moved["kernels"] == [RELEASE_612]
        page = http.get(f"/problems/{target}").text
    events = re.search(r'<table class="list" id="events">.*?</table>', page, re.S).group(0)
    assert "first reason" in events and "second reason" in events
    assert "ana (token " in events and "bo (token " in events and TOKEN not in page


def test_dump_list_pages(site) -> None:  # noqa: ANN001
    with site.http() as http:
        ids = [d["id"] for d in http.get("/api/v1/dumps", params={"limit": 1000}).json()]
        analysed = [d["id"] for d in http.get("/api/v1/dumps", params={"state": "analysed"}).json()]
        first = http.get("/dumps").text
        second = http.get("/dumps", params={"offset": 1, "state": "analysed"}).text
    listed = [int(i) for i in re.findall(r'<td><a href="/dumps/(\d+)">#', first)]
    assert listed == ids and "Newer</a>" not in first and "Older</a>" not in first
    assert 'href="/dumps?state=analysed&amp;offset=0">Newer</a>' in second
    assert [int(i) for i in re.findall(r'<td><a href="/dumps/(\d+)">#', second)] == analysed[1:]
