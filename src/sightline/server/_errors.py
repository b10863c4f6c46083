"""One shape for every error: {"error": {"code", "message"}}; 5xx details are logged only."""

from __future__ import annotations

import duckdb
import structlog
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from sightline.errors import Overloaded, SightlineError, TooManyRequests

__all__ = ["describe_validation_error", "error_response", "install_error_handlers"]

log = structlog.get_logger("sightline.server")


def error_response(
    status: int, code: str, message: str, headers: dict[str, str] | None = None
) -> JSONResponse:
    """The JSON error body every route returns."""
    return JSONResponse(
        {"error": {"code": code, "message": message}}, status_code=status, headers=headers
    )


def describe_validation_error(exc: RequestValidationError) -> str:
    """One line naming each field FastAPI could not validate and why (``limit: ...; name: ...``)."""
    parts = []
    for e in exc.errors():
        loc = ".".join(str(x) for x in e.get("loc", ()) if x not in ("query", "body", "path"))
        parts.append(f"{loc}: {e.get('msg')}" if loc else str(e.get("msg")))
    return "; ".join(parts) or "invalid request"


def _not_json(request: Request, exc: RequestValidationError) -> str | None:
    """The 415 message when a JSON body was sent without a JSON content type, else None.

    FastAPI parses a body as JSON only under ``application/json`` (or ``+json``); any other
    content type (``curl -d`` sends ``application/x-www-form-urlencoded``), or none, hands the
    route's body field the raw bytes, which fail validation as "Input should be a valid
    dictionary". Form fields are parsed into strings, so raw bytes in a body error mean this.
    """
    for e in exc.errors():
        loc = e.get("loc", ())
        if loc and loc[0] == "body" and isinstance(e.get("input"), bytes | bytearray):
            got = request.headers.get("content-type") or "no Content-Type"
            return f"expected a JSON body (Content-Type: application/json), got {got[:200]}"
    return None


def _json_syntax(exc: RequestValidationError) -> str | None:
    """``invalid JSON body at line L, column C: <what>`` for a body that is not JSON, else None.

    FastAPI reports it as ``{"type": "json_invalid", "loc": ("body", pos)}`` with json's own
    message in ``ctx`` and the text in ``exc.body``; line and column are counted from those.
    """
    for e in exc.errors():
        loc = e.get("loc", ())
        if e.get("type") != "json_invalid" or len(loc) != 2 or not isinstance(loc[1], int):
            continue
        pos, doc = loc[1], exc.body
        what = str((e.get("ctx") or {}).get("error") or "not valid JSON")
        if isinstance(doc, str) and 0 <= pos <= len(doc):
            line = doc.count("\n", 0, pos) + 1
            column = pos - doc.rfind("\n", 0, pos)
            return f"invalid JSON body at line {line}, column {column}: {what}"
        return f"invalid JSON body at character {pos + 1}: {what}"
    return None


def install_error_handlers(app: FastAPI) -> None:
    """Render Sightline, HTTP, validation and unexpected errors the same way."""

    @app.exception_handler(SightlineError)
    async def _sightline(request: Request, exc: SightlineError) -> JSONResponse:
        headers = {}
        if isinstance(exc, Overloaded | TooManyRequests):
            headers["Retry-After"] = str(exc.retry_after_s)
        if exc.status >= 500 and not isinstance(exc, Overloaded):
            log.error("request_failed", path=request.url.path, error=str(exc))
            return error_response(exc.status, exc.code, "internal error", headers)
        return error_response(exc.status, exc.code, str(exc), headers)

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        if isinstance(exc.__cause__, SightlineError):
            # FastAPI turns any failure to read a route's body into 400 "error parsing the
            # body"; a body that stopped arriving (408) or could not be held (503) says so.
            return await _sightline(request, exc.__cause__)
        code = {404: "not_found", 405: "method_not_allowed"}.get(exc.status_code, "http_error")
        return error_response(exc.status_code, code, str(exc.detail))

    @app.exception_handler(RequestValidationError)
    async def _validation(request: Request, exc: RequestValidationError) -> JSONResponse:
        not_json = _not_json(request, exc)
        if not_json is not None:
            return error_response(415, "unsupported_media_type", not_json)
        if any(e.get("loc") == ("body",) and e.get("type") == "missing" for e in exc.errors()):
            return error_response(400, "invalid_request", "a JSON body is required")
        message = _json_syntax(exc) or describe_validation_error(exc)
        return error_response(400, "invalid_request", message)

    @app.exception_handler(duckdb.OutOfMemoryException)
    async def _store_memory(request: Request, exc: duckdb.OutOfMemoryException) -> JSONResponse:
        # A read that met DuckDB's memory limit (a checkpoint can take what the limit leaves
        # for a moment): the store is fine and a retry usually succeeds, so 503, not 500.
        log.warning("store_out_of_memory", path=request.url.path, error=str(exc).split("\n")[0])
        return error_response(
            503,
            "store_out_of_memory",
            "the store reached its memory limit; retry, or raise SIGHTLINE_DUCKDB_MEMORY_LIMIT",
            {"Retry-After": "1"},
        )

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
        log.exception("unhandled_error", path=request.url.path)
        # This answer is sent by the outermost middleware, past SecurityMiddleware.
        from sightline.server._security import SECURITY_HEADERS

        return error_response(500, "internal_error", "internal error", dict(SECURITY_HEADERS))
