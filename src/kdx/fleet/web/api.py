"""``/api/v1``: everything the pages show, as JSON, plus the changes and the uploads.

Records go out as ``dataclasses.asdict`` of ``kdx.fleet.records`` (the fleet's records
hold no 64-bit kernel values; a verdict's addresses are already "0x..." strings).
Reading is open or token-only as the server is set up; changes, uploads and downloads
always need a token.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import asdict
from typing import Annotated, Any, Optional

from fastapi import APIRouter, Body, Depends, HTTPException, Path, Query, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import FileResponse, JSONResponse, Response
from starlette.background import BackgroundTask
from starlette.requests import ClientDisconnect

from kdx.fleet.records import DUMP_STATES
from kdx.fleet.service import Fleet, ProblemFilter
from kdx.fleet.upload import UploadError, UploadStore, valid_sha256
from kdx.fleet.web.auth import fingerprint

__all__ = ["DUMP_STATES", "JOB_STATES", "MAX_ID", "SORTS", "DumpId", "Offset", "ProblemId",
           "ProblemQuery", "Reader", "Where", "Writer", "download_response", "fleet_of",
           "problem_filter", "router", "who"]

router = APIRouter(prefix="/api/v1")

#: The largest id a database keeps (a signed 64-bit integer).
MAX_ID = (1 << 63) - 1
DumpId = Annotated[int, Path(ge=1, le=MAX_ID)]
ProblemId = Annotated[int, Path(ge=1, le=MAX_ID)]
ProblemQuery = Annotated[Optional[int], Query(ge=1, le=MAX_ID)]

#: The problem list's sort keys.
SORTS = ("last_seen", "count", "hosts", "first_seen", "title")
#: Job states the filter accepts (dump states: ``kdx.fleet.records.DUMP_STATES``).
JOB_STATES = ("queued", "running", "done", "failed")


def fleet_of(request: Request) -> Fleet:
    return request.app.state.fleet


def reader(request: Request) -> str | None:
    """Dependency: the request may read (open, or a valid token)."""
    return request.app.state.access.check(request, write=False)


def writer(request: Request) -> str:
    """Dependency: the request carries a valid token."""
    return request.app.state.access.check(request, write=True)


Reader = Annotated[Optional[str], Depends(reader)]
Writer = Annotated[str, Depends(writer)]
JsonBody = Annotated[dict[str, Any], Body()]
Limit = Annotated[int, Query(ge=1, le=1000)]
Offset = Annotated[int, Query(ge=0, le=MAX_ID)]


def who(token: str, name: object = None) -> str:
    """Who made a change, for the problem's history: a name if given, and the token's
    fingerprint (never the token)."""
    clean = name.strip()[:64] if isinstance(name, str) else ""
    return f"{clean} ({fingerprint(token)})" if clean else fingerprint(token)


def _json(record: Any, status: int = 200) -> JSONResponse:
    return JSONResponse(asdict(record), status_code=status)


def _missing(what: str) -> HTTPException:
    return HTTPException(404, f"no such {what}")


def _bad(message: str) -> HTTPException:
    return HTTPException(400, message)


def _choice(value: str | None, allowed: tuple[str, ...], what: str) -> str | None:
    if value and value not in allowed:
        raise _bad(f"{what} must be one of {', '.join(allowed)}")
    return value or None


def problem_filter(kernel: str | None = None, host: str | None = None,
                   module: str | None = None, category: str | None = None,
                   label: str | None = None, since: str | None = None,
                   sort: str | None = None, desc: bool = True) -> ProblemFilter:
    """The problem filter of a query string (empty fields are no filter)."""
    if label and "=" not in label:
        raise _bad("label must be key=value")
    if since:
        try:
            dt.date.fromisoformat(since[:10])
        except ValueError:
            raise _bad("since must be a date, YYYY-MM-DD") from None
    return ProblemFilter(kernel=kernel or None, host=host or None, module=module or None,
                         category=category or None, label=label or None,
                         since=since or None,
                         sort=_choice(sort, SORTS, "sort") or "last_seen", descending=desc)


Where = Annotated[ProblemFilter, Depends(problem_filter)]


@router.get("/dumps")
def dumps(request: Request, _: Reader, state: str | None = None,
          problem: ProblemQuery = None, limit: Limit = 100,
          offset: Offset = 0) -> JSONResponse:
    state = _choice(state, DUMP_STATES, "state")
    found = fleet_of(request).dumps(state=state, problem_id=problem, limit=limit,
                                    offset=offset)
    return JSONResponse([asdict(d) for d in found])


@router.get("/dumps/by-sha256/{sha256}")
def dump_by_sha256(request: Request, sha256: str, _: Reader) -> JSONResponse:
    if not valid_sha256(sha256.lower()):
        raise _bad("sha256 must be 64 hexadecimal digits")
    found = fleet_of(request).dump_by_sha256(sha256.lower())
    if found is None:
        raise _missing("dump")
    return _json(found)


@router.get("/dumps/{dump_id}")
def dump(request: Request, dump_id: DumpId, _: Reader) -> JSONResponse:
    found = fleet_of(request).dump(dump_id)
    if found is None:
        raise _missing("dump")
    return _json(found)


def download_response(fleet: Fleet, dump_id: int) -> FileResponse:
    """The dump's bytes, under a name made of its id and hash (never the submitted name)."""
    found = fleet.dump(dump_id)
    path = fleet.dump_file(dump_id) if found is not None else None
    if found is None or path is None:
        raise _missing("dump")
    suffix = ".txt" if found.kind == "dmesg" else ""
    release = getattr(fleet, "release_dump_file", None)  # an object store's download
    return FileResponse(path, media_type="application/octet-stream",
                        filename=f"kdx-dump-{found.id}-{found.sha256[:12]}{suffix}",
                        background=BackgroundTask(release, found.id) if release else None)


@router.get("/dumps/{dump_id}/file")
def dump_file(request: Request, dump_id: DumpId, _: Writer) -> FileResponse:
    return download_response(fleet_of(request), dump_id)


@router.post("/dumps/{dump_id}/retry")
def retry(request: Request, dump_id: DumpId, _: Writer) -> JSONResponse:
    if fleet_of(request).dump(dump_id) is None:
        raise _missing("dump")
    return _json(fleet_of(request).retry(dump_id))


@router.get("/problems")
def problems(request: Request, _: Reader,
             where: Where,
             limit: Limit = 100,
             offset: Offset = 0) -> JSONResponse:
    found = fleet_of(request).problems(where, limit=limit, offset=offset)
    return JSONResponse([asdict(p) for p in found])


@router.get("/problems/{problem_id}")
def problem(request: Request, problem_id: ProblemId, _: Reader) -> JSONResponse:
    found = fleet_of(request).problem(problem_id)
    if found is None:
        raise _missing("problem")
    return _json(found)


def _is_id(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and 1 <= value <= MAX_ID


def _reason(body: dict[str, Any]) -> str:
    reason = body.get("reason")
    if not isinstance(reason, str) or not reason.strip():
        raise _bad("a reason is needed")
    return reason.strip()[:2000]


@router.post("/problems/{problem_id}/merge")
def merge(request: Request, problem_id: ProblemId, body: JsonBody,
          token: Writer) -> JSONResponse:
    other = body.get("other")
    if not _is_id(other):
        raise _bad("other must be the id of the problem to merge in")
    merged = fleet_of(request).merge(problem_id, other, reason=_reason(body),
                                     who=who(token, body.get("who")))
    return _json(merged)


@router.post("/problems/{problem_id}/split")
def split(request: Request, problem_id: ProblemId, body: JsonBody,
          token: Writer) -> JSONResponse:
    ids = body.get("dump_ids")
    if not isinstance(ids, list) or not ids or not all(_is_id(i) for i in ids):
        raise _bad("dump_ids must be a non-empty list of dump ids")
    made = fleet_of(request).split(problem_id, ids, reason=_reason(body),
                                   who=who(token, body.get("who")))
    return _json(made, 201)


@router.get("/jobs")
def jobs(request: Request, _: Reader, state: str | None = None,
         limit: Limit = 100) -> JSONResponse:
    state = _choice(state, JOB_STATES, "state")
    return JSONResponse([asdict(j) for j in fleet_of(request).jobs(state=state, limit=limit)])


@router.get("/debuginfo")
def debuginfo(request: Request, _: Reader) -> JSONResponse:
    return JSONResponse([asdict(d) for d in fleet_of(request).debug_info()])


@router.post("/debuginfo/{build_id}/reanalyse")
def reanalyse(request: Request, build_id: str, _: Writer) -> JSONResponse:
    return JSONResponse({"build_id": build_id,
                         "queued": fleet_of(request).reanalyse_build(build_id)})


# -- uploads -------------------------------------------------------------------------------

def uploads_of(request: Request) -> UploadStore:
    return request.app.state.uploads


def _finish(fleet: Fleet, store: UploadStore, upload_id: str) -> dict[str, Any]:
    """Check a complete upload's sha256 and ingest it (runs in a worker thread)."""
    upload = store.get(upload_id)
    assert upload is not None
    store.verify(upload)
    with store.part_path(upload_id).open("rb") as f:
        record = fleet.ingest(f, upload.filename, labels=upload.labels, size=upload.size)
    store.remove(upload_id)
    return {"id": upload_id, "offset": upload.size, "size": upload.size,
            "dump": asdict(record)}


@router.post("/uploads")
async def create_upload(request: Request, body: JsonBody,
                        _: Writer) -> JSONResponse:
    fleet, store = fleet_of(request), uploads_of(request)
    sha256 = body.get("sha256")
    if isinstance(sha256, str) and valid_sha256(sha256.lower()):
        known = await run_in_threadpool(fleet.dump_by_sha256, sha256.lower())
        if known is not None:
            return JSONResponse({"id": None, "offset": known.size, "size": known.size,
                                 "dump": asdict(known)})
    upload = await run_in_threadpool(store.create, body.get("filename"), body.get("size"),
                                     sha256, body.get("labels"))
    if upload.offset == upload.size:  # complete before a restart, never ingested
        return JSONResponse(await run_in_threadpool(_finish, fleet, store, upload.id), 201)
    return JSONResponse({"id": upload.id, "offset": upload.offset, "size": upload.size},
                        status_code=201)


@router.get("/uploads/{upload_id}")
def upload_state(request: Request, upload_id: str, _: Writer) -> JSONResponse:
    upload = uploads_of(request).get(upload_id)
    assert upload is not None
    return JSONResponse({"id": upload.id, "offset": upload.offset, "size": upload.size})


@router.delete("/uploads/{upload_id}")
def drop_upload(request: Request, upload_id: str, _: Writer) -> Response:
    uploads_of(request).get(upload_id)
    uploads_of(request).remove(upload_id)
    return Response(status_code=204)


def _offset(request: Request) -> int:
    text = request.headers.get("upload-offset", "")
    if not text.isdigit():
        raise UploadError("the Upload-Offset header must give the byte offset of the body")
    return int(text)


@router.put("/uploads/{upload_id}")
async def upload_bytes(request: Request, upload_id: str,
                       _: Writer) -> Response:
    store = uploads_of(request)
    offset = _offset(request)
    upload = store.get(upload_id)
    assert upload is not None
    length = request.headers.get("content-length")
    if length and length.isdigit() and offset + int(length) > upload.size:
        raise UploadError(f"more bytes than the {upload.size} announced", 413)
    try:
        upload = await store.append(upload_id, offset, request.stream())
    except ClientDisconnect:
        return Response(status_code=499)  # nobody reads it; the bytes so far are kept
    if upload.offset < upload.size:
        return JSONResponse({"id": upload.id, "offset": upload.offset, "size": upload.size})
    return JSONResponse(await run_in_threadpool(_finish, fleet_of(request), store, upload_id),
                        status_code=201)
