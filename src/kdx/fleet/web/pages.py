"""The HTML pages: problems, a problem, dumps, a dump, failed jobs, the debug-info store.

Plain HTML forms do every change (merge, split, retry, re-analyse, log in), so the pages
work without JavaScript; a dump whose analysis is still running refreshes itself with
``<meta http-equiv=refresh>``. Every value from a dump goes through Jinja2's
autoescaping; only the verdict report (escaped by ``kdx.render.report``) and the SVG
charts (escaped where they are drawn) are inserted as markup.
"""

from __future__ import annotations

from collections import Counter
from typing import Annotated, Any, Optional
from urllib.parse import urlencode

from fastapi import APIRouter, Form, HTTPException, Request
from fastapi.responses import PlainTextResponse, RedirectResponse, Response
from markupsafe import Markup

from kdx.fleet.web.api import (
    DUMP_STATES,
    JOB_STATES,
    MAX_ID,
    SORTS,
    DumpId,
    Offset,
    ProblemId,
    ProblemQuery,
    Reader,
    Where,
    Writer,
    download_response,
    fleet_of,
    who,
)
from kdx.fleet.web.auth import COOKIE
from kdx.fleet.web.report import report_body, report_document
from kdx.fleet.web.templating import templates

__all__ = ["router"]

router = APIRouter(include_in_schema=False)

FormText = Annotated[str, Form()]
FormInt = Annotated[int, Form(ge=1, le=MAX_ID)]
FormInts = Annotated[Optional[list[int]], Form()]

#: States whose page refreshes itself until the full result is in.
_PENDING = ("received", "fast")
#: Dumps on one page of the dump list.
PAGE = 200
#: The command outputs a dump page shows, in this order.
OUTPUTS = ("bt -a", "ps", "log", "mod")


def _page(request: Request, name: str, **context: Any) -> Response:
    access = request.app.state.access
    token = access.presented(request)
    context.update(signed_in=bool(token) and access.known(token), path=request.url.path)
    return templates.TemplateResponse(request, name, context)


def _back(url: str) -> RedirectResponse:
    return RedirectResponse(url, status_code=303)


def _local(url: str | None) -> str:
    """A redirect target on this site only (no ``//host`` or ``scheme:`` escapes)."""
    if not url or not url.startswith("/") or url.startswith("//") or "\\" in url:
        return "/problems"
    return url


@router.get("/")
def home() -> RedirectResponse:
    return _back("/problems")


@router.get("/problems")
def problems(request: Request, _: Reader,
             where: Where) -> Response:
    found = fleet_of(request).problems(where, limit=500)
    query = {k: v for k, v in request.query_params.items() if k not in ("sort", "desc") and v}

    def sort_link(key: str) -> str:
        desc = not (where.sort == key and where.descending)
        return "/problems?" + urlencode({**query, "sort": key, "desc": str(desc).lower()})

    return _page(request, "problems.html", problems=found, where=where, sorts=SORTS,
                 sort_link=sort_link)


@router.get("/problems/{problem_id}")
def problem(request: Request, problem_id: ProblemId, _: Reader) -> Response:
    fleet = fleet_of(request)
    found = fleet.problem(problem_id)
    if found is None:
        raise HTTPException(404, "no such problem")
    if found.merged_into is not None:
        return _back(f"/problems/{found.merged_into}")
    dumps = fleet.dumps(problem_id=problem_id, limit=1000)
    kernels = Counter(d.release or "unknown" for d in dumps)
    return _page(request, "problem.html", problem=found, dumps=dumps[:200],
                 kernel_counts=dict(kernels))


@router.post("/problems/{problem_id}/merge")
def merge(request: Request, problem_id: ProblemId, other: FormInt, reason: FormText,
          token: Writer, name: FormText = "") -> Response:
    if not reason.strip():
        raise HTTPException(400, "a reason is needed")
    merged = fleet_of(request).merge(problem_id, other, reason=reason.strip(),
                                     who=who(token, name))
    return _back(f"/problems/{merged.id}")


@router.post("/problems/{problem_id}/split")
def split(request: Request, problem_id: ProblemId, reason: FormText, token: Writer,
          dump_ids: FormInts = None, name: FormText = "") -> Response:
    if not dump_ids:
        raise HTTPException(400, "tick the dumps to move into a new problem")
    if not all(1 <= i <= MAX_ID for i in dump_ids):
        raise HTTPException(400, "dump_ids must be dump ids")
    if not reason.strip():
        raise HTTPException(400, "a reason is needed")
    made = fleet_of(request).split(problem_id, dump_ids, reason=reason.strip(),
                                   who=who(token, name))
    return _back(f"/problems/{made.id}")


@router.get("/dumps")
def dumps(request: Request, _: Reader, state: str | None = None,
          problem: ProblemQuery = None, offset: Offset = 0) -> Response:
    if state and state not in DUMP_STATES:
        raise HTTPException(400, f"state must be one of {', '.join(DUMP_STATES)}")
    found = fleet_of(request).dumps(state=state or None, problem_id=problem,
                                    limit=PAGE + 1, offset=offset)
    query = {k: v for k, v in (("state", state), ("problem", problem)) if v}
    older = ("/dumps?" + urlencode({**query, "offset": offset + PAGE})
             if len(found) > PAGE else None)
    newer = ("/dumps?" + urlencode({**query, "offset": max(0, offset - PAGE)})
             if offset else None)
    return _page(request, "dumps.html", dumps=found[:PAGE], state=state or "",
                 problem=problem, states=DUMP_STATES, older=older, newer=newer)


@router.get("/dumps/{dump_id}")
def dump(request: Request, dump_id: DumpId, _: Reader) -> Response:
    found = fleet_of(request).dump(dump_id)
    if found is None:
        raise HTTPException(404, "no such dump")
    body = report_body(found.verdict)
    outputs = [(name, found.outputs[name]) for name in OUTPUTS if found.outputs.get(name)]
    outputs += [(k, v) for k, v in sorted(found.outputs.items()) if k not in OUTPUTS and v]
    return _page(request, "dump.html", dump=found, pending=found.state in _PENDING,
                 report=Markup(body) if body else None, outputs=outputs)


@router.get("/dumps/{dump_id}/report")
def report(request: Request, dump_id: DumpId, _: Reader) -> Response:
    """The verdict as the one-file HTML ``kdx analyze --html`` writes."""
    found = fleet_of(request).dump(dump_id)
    document = report_document(found.verdict) if found is not None else None
    if document is None:
        raise HTTPException(404, "no full analysis for this dump yet")
    return Response(document, media_type="text/html; charset=utf-8",
                    headers={"Content-Security-Policy": "default-src 'none'; "
                             "style-src 'unsafe-inline'"})


@router.get("/dumps/{dump_id}/log")
def raw_log(request: Request, dump_id: DumpId, _: Reader) -> Response:
    """The kernel log as plain text (from the full analysis, else the fast pass's tail)."""
    found = fleet_of(request).dump(dump_id)
    if found is None:
        raise HTTPException(404, "no such dump")
    text = found.outputs.get("log")
    if text is None and found.fast:
        text = "\n".join(found.fast.get("log_tail") or []) + "\n"
    if text is None:
        raise HTTPException(404, "no kernel log for this dump yet")
    return PlainTextResponse(text, headers={"X-Content-Type-Options": "nosniff"})


@router.get("/dumps/{dump_id}/download")
def download(request: Request, dump_id: DumpId, _: Writer) -> Response:
    return download_response(fleet_of(request), dump_id)


@router.post("/dumps/{dump_id}/retry")
def retry(request: Request, dump_id: DumpId, _: Writer) -> Response:
    if fleet_of(request).dump(dump_id) is None:
        raise HTTPException(404, "no such dump")
    fleet_of(request).retry(dump_id)
    return _back(f"/dumps/{dump_id}")


@router.get("/jobs")
def jobs(request: Request, _: Reader, state: str = "failed") -> Response:
    if state not in JOB_STATES:
        raise HTTPException(400, f"state must be one of {', '.join(JOB_STATES)}")
    found = fleet_of(request).jobs(state=state, limit=500)
    return _page(request, "jobs.html", jobs=found, state=state)


@router.get("/debuginfo")
def debuginfo(request: Request, _: Reader, queued: int | None = None,
              build: str = "") -> Response:
    message = (f"{queued} dump(s) of build {build} queued for analysis again"
               if queued is not None else None)
    return _page(request, "debuginfo.html", builds=fleet_of(request).debug_info(),
                 message=message)


@router.post("/debuginfo/{build_id}/reanalyse")
def reanalyse(request: Request, build_id: str, _: Writer) -> Response:
    queued = fleet_of(request).reanalyse_build(build_id)
    return _back("/debuginfo?" + urlencode({"queued": queued, "build": build_id[:64]}))


@router.get("/login")
def login_form(request: Request, next: str = "/problems") -> Response:  # noqa: A002
    return _page(request, "login.html", next=_local(next), failed=False)


@router.post("/login")
def login(request: Request, token: FormText, next: FormText = "/problems") -> Response:  # noqa: A002
    access = request.app.state.access
    if not access.known(token.strip()):
        response = _page(request, "login.html", next=_local(next), failed=True)
        response.status_code = 403
        return response
    response = _back(_local(next))
    response.set_cookie(COOKIE, token.strip(), httponly=True, samesite="strict",
                        secure=request.url.scheme == "https", max_age=30 * 86400)
    return response


@router.post("/logout")
def logout() -> Response:
    response = _back("/problems")
    response.delete_cookie(COOKIE)
    return response
