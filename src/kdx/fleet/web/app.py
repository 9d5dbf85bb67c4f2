"""``create_app``: the FastAPI application of ``kdx serve``.

It wires the pages, the JSON API, the uploads and ``/metrics`` to one ``Fleet``, and turns
every failure into one clear answer: JSON ``{"error": "..."}`` under ``/api`` and a short
HTML page elsewhere, with the proper status code and never a traceback.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from fastapi.staticfiles import StaticFiles
from starlette.exceptions import HTTPException as StarletteHTTPException

from kdx.errors import KdxError
from kdx.fleet.service import Fleet
from kdx.fleet.upload import UploadError, UploadStore
from kdx.fleet.web import api, pages
from kdx.fleet.web.auth import Access, Denied
from kdx.fleet.web.metrics import metrics_text
from kdx.fleet.web.templating import HERE, templates

__all__ = ["SECURITY_HEADERS", "create_app", "error_status"]

_DEFAULT_MAX_UPLOAD = 64 << 30


def _upload_settings(fleet: Fleet, uploads: Path | None, max_upload: int | None
                     ) -> tuple[Path, int]:
    """Where partial uploads go (``DATA/uploads``) and the size limit, from the fleet's
    configuration unless given."""
    config = getattr(fleet, "config", None)
    if uploads is None:
        data = getattr(config, "data", None)
        if data is None:
            raise KdxError("create_app: the fleet has no data directory; pass uploads=DIR")
        uploads = Path(data) / "uploads"
    if max_upload is None:
        max_upload = getattr(config, "max_upload", None) or _DEFAULT_MAX_UPLOAD
    return uploads, max_upload


def error_status(err: KdxError) -> int:
    """The HTTP status of a fleet failure: unknown ids 404, too large 413, else 400 (the
    fleet names its failures by class: ``NotFound``, ``TooLarge``)."""
    if isinstance(err, UploadError):
        return err.status
    return {"NotFound": 404, "TooLarge": 413}.get(type(err).__name__, 400)


#: Sent with every answer that sets none of its own: no scripts, no framing, no sniffing,
#: a second line of defence behind the escaping of dump text.
SECURITY_HEADERS = {
    "Content-Security-Policy": "default-src 'self'; script-src 'none'; object-src 'none'; "
                               "base-uri 'none'; form-action 'self'; frame-ancestors 'none'",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
}


def _wants_json(request: Request) -> bool:
    return request.url.path.startswith("/api/") or request.url.path == "/metrics"


def _error(request: Request, status: int, message: str,
           headers: dict[str, str] | None = None, extra: dict[str, Any] | None = None
           ) -> Response:
    if _wants_json(request):
        return JSONResponse({"error": message, **(extra or {})}, status_code=status,
                            headers=headers)
    context = {"status": status, "message": message, "path": request.url.path,
               "signed_in": False}
    return templates.TemplateResponse(request, "error.html", context, status_code=status,
                                      headers=headers)


def _install_errors(app: FastAPI) -> None:
    @app.exception_handler(Denied)
    async def denied(request: Request, err: Denied) -> Response:
        headers = {"WWW-Authenticate": "Bearer"} if err.status == 401 else None
        return _error(request, err.status, err.message, headers)

    @app.exception_handler(UploadError)
    async def upload_error(request: Request, err: UploadError) -> Response:
        extra = {"offset": err.offset} if err.offset is not None else None
        return _error(request, err.status, str(err), extra=extra)

    @app.exception_handler(KdxError)
    async def kdx_error(request: Request, err: KdxError) -> Response:
        return _error(request, error_status(err), str(err))

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, err: StarletteHTTPException) -> Response:
        return _error(request, err.status_code, str(err.detail), getattr(err, "headers", None))

    @app.exception_handler(RequestValidationError)
    async def invalid(request: Request, err: RequestValidationError) -> Response:
        first = err.errors()[0] if err.errors() else {}
        where = ".".join(str(p) for p in first.get("loc", ()) if p not in ("body", "query"))
        return _error(request, 400, f"{where or 'request'}: {first.get('msg', 'invalid')}")

    @app.exception_handler(Exception)
    async def unexpected(request: Request, err: Exception) -> Response:
        return _error(request, 500, f"internal error ({type(err).__name__})")


def create_app(fleet: Fleet, *, tokens: frozenset[str], open_read: bool = True,
               uploads: Path | None = None, max_upload: int | None = None) -> FastAPI:
    """The web application over ``fleet``.

    ``tokens`` allow uploads, downloads and changes (all of them, when ``open_read`` is
    False, also reading). Partial uploads go to ``uploads`` (default ``DATA/uploads`` of
    the fleet's ``config``), at most ``max_upload`` bytes each (default the config's).
    """
    folder, limit = _upload_settings(fleet, uploads, max_upload)
    app = FastAPI(title="kdx fleet", version="1", docs_url=None, redoc_url=None,
                  openapi_url="/api/v1/openapi.json")  # no docs UI: it loads scripts from a CDN
    app.state.fleet = fleet
    app.state.access = Access(frozenset(tokens), open_read)
    app.state.uploads = UploadStore(folder, limit)
    app.state.registry, render_metrics = metrics_text(fleet.metrics)
    _install_errors(app)

    @app.middleware("http")
    async def security_headers(request: Request, call_next: Any) -> Response:
        response = await call_next(request)
        for name, value in SECURITY_HEADERS.items():
            response.headers.setdefault(name, value)
        return response

    app.mount("/static", StaticFiles(directory=HERE / "static"), name="static")
    app.include_router(api.router)
    app.include_router(pages.router)

    @app.get("/metrics", include_in_schema=False)
    def metrics(request: Request) -> Response:
        request.app.state.access.check(request, write=False)
        return Response(render_metrics(), media_type="text/plain; version=0.0.4")

    @app.get("/favicon.ico", include_in_schema=False)
    def favicon() -> Response:
        return Response(status_code=204)

    return app
