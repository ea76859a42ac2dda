"""RFC 9457 problem details for every error the server returns."""

from __future__ import annotations

from typing import Any

import structlog
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from rapport_protocol.errors import ProtocolError
from sqlalchemy.exc import DBAPIError, IntegrityError
from starlette.exceptions import HTTPException as StarletteHTTPException

from .domain import DomainError
from .protocol_errors import to_problem
from .writes import StoreUnavailable

log = structlog.get_logger(__name__)

PROBLEM_TYPE_BASE = "https://rapport.dev/problems/"
_STATUS_CODES = {
    400: "bad_request",
    401: "unauthenticated",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    406: "not_acceptable",
    409: "conflict",
    413: "payload_too_large",
    415: "unsupported_media_type",
    422: "validation_error",
    429: "too_many_requests",
    503: "service_unavailable",
}


def problem_response(
    request: Request,
    *,
    status: int,
    code: str,
    title: str,
    detail: str | None = None,
    headers: dict[str, str] | None = None,
    **extra: Any,
) -> JSONResponse:
    body = problem_body(status=status, code=code, title=title, detail=detail)
    request_id = getattr(request.state, "request_id", None)
    if request_id:
        body["request_id"] = request_id
    body.update(extra)
    return JSONResponse(
        body, status_code=status, headers=headers, media_type="application/problem+json"
    )


def problem_body(*, status: int, code: str, title: str, detail: str | None) -> dict[str, Any]:
    """The members every problem has (``detail`` when it says more than nothing)."""
    body: dict[str, Any] = {
        "type": PROBLEM_TYPE_BASE + code,
        "title": title,
        "status": status,
        "code": code,
    }
    if detail:
        body["detail"] = detail
    return body


def domain_problem(exc: DomainError) -> dict[str, Any]:
    """``exc`` as a problem object (for one item of a batch's answer)."""
    body = problem_body(status=exc.status, code=exc.code, title=exc.title, detail=exc.detail)
    body.update(exc.extra)
    return body


def store_unavailable() -> DomainError:
    """The 503 of a write that could not be committed, or a read that met a broken store."""
    return DomainError(
        "nothing was changed; retry",
        status=503,
        code="store_unavailable",
        title="Storage temporarily unavailable",
        headers={"Retry-After": "1"},
        retry_after=1,
    )


PROBLEM_MEDIA_TYPE = "application/problem+json"
PROBLEM_SCHEMA: dict[str, Any] = {
    "title": "Problem",
    "type": "object",
    "description": "RFC 9457 problem details; `code` is stable (rapport_protocol.errors).",
    "required": ["type", "title", "status", "code"],
    "properties": {
        "type": {"type": "string"},
        "title": {"type": "string"},
        "status": {"type": "integer"},
        "code": {"type": "string"},
        "detail": {"type": "string"},
        "request_id": {"type": "string"},
        "retry_after": {"type": "integer"},
        "muted_until": {"type": "integer"},
        "errors": {"type": "array", "items": {"type": "object"}},
    },
}
# Statuses any operation can answer, whatever it declares: malformed input or cursor (400),
# the body deadline and limit (408, 413, checked before routing), validation (422), the
# store down (503).
_ANY_OPERATION = {
    "400": "bad request (json_*, invalid_cursor, invalid_idempotency_key)",
    "408": "request_timeout: the request body did not arrive in time",
    "413": "payload_too_large",
    "422": "validation_error or an invalid object",
    "503": "store_unavailable, with Retry-After",
}


def describe_problems(app: FastAPI) -> None:
    """Make the OpenAPI say what the server does: every error is problem+json (not the
    default ``HTTPValidationError``) and the statuses any operation may return are listed
    (401 wherever the ``bearer`` scheme is required)."""
    build = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is not None:
            return app.openapi_schema
        spec = build()
        components = spec.setdefault("components", {})
        schemas = components.setdefault("schemas", {})
        schemas["Problem"] = PROBLEM_SCHEMA
        for name in ("HTTPValidationError", "ValidationError"):
            schemas.pop(name, None)
        problem = {PROBLEM_MEDIA_TYPE: {"schema": {"$ref": "#/components/schemas/Problem"}}}
        for operations in spec.get("paths", {}).values():
            for operation in operations.values():
                responses = operation.setdefault("responses", {})
                for status, description in _ANY_OPERATION.items():
                    responses.setdefault(status, {"description": description})
                if operation.get("security"):
                    responses.setdefault("401", {"description": "unauthenticated"})
                for status, response in responses.items():
                    if status[0] in "45":
                        if status == "422":
                            response["description"] = _ANY_OPERATION["422"]
                        response["content"] = problem
        app.openapi_schema = spec
        return spec

    app.openapi = openapi  # type: ignore[method-assign]


def install(app: FastAPI) -> None:
    """Register the handlers that turn every exception into problem+json."""
    describe_problems(app)

    @app.exception_handler(DomainError)
    async def _domain(request: Request, exc: DomainError) -> JSONResponse:
        return problem_response(
            request,
            status=exc.status,
            code=exc.code,
            title=exc.title,
            detail=exc.detail,
            headers=exc.headers,
            **exc.extra,
        )

    @app.exception_handler(ProtocolError)
    async def _protocol(request: Request, exc: ProtocolError) -> JSONResponse:
        return await _domain(request, to_problem(exc))

    # A read (or a token check) that meets a broken, reset or timed-out database connection
    # is the same condition as a write the batcher could not commit: 503, retry. Integrity
    # errors (a DBAPIError subclass) keep their own handler below.
    @app.exception_handler(StoreUnavailable)
    @app.exception_handler(DBAPIError)
    @app.exception_handler(OSError)
    @app.exception_handler(TimeoutError)
    async def _store(request: Request, exc: Exception) -> JSONResponse:
        if not isinstance(exc, StoreUnavailable):
            log.warning("store_error", error=type(exc).__name__, path=request.url.path)
        return await _domain(request, store_unavailable())

    @app.exception_handler(IntegrityError)
    async def _integrity(request: Request, exc: IntegrityError) -> JSONResponse:
        # A uniqueness race lost to a concurrent request (the unit was rolled back).
        return problem_response(
            request,
            status=409,
            code="conflict",
            title="Conflicting concurrent change",
            detail="another request changed the same thing first; nothing was applied",
        )

    @app.exception_handler(RequestValidationError)
    async def _validation(request: Request, exc: RequestValidationError) -> JSONResponse:
        details = [
            {
                "loc": list(e.get("loc", ())),
                "msg": str(e.get("msg", "")),
                "type": str(e.get("type", "")),
            }
            for e in exc.errors()[:20]
        ]
        return problem_response(
            request,
            status=422,
            code="validation_error",
            title="Request is not valid",
            errors=details,
        )

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        code = _STATUS_CODES.get(exc.status_code, "http_error")
        detail = exc.detail if isinstance(exc.detail, str) else None
        return problem_response(
            request,
            status=exc.status_code,
            code=code,
            title=code.replace("_", " ").capitalize(),
            detail=detail,
            headers=dict(exc.headers or {}),
        )

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
        log.error("unhandled_error", error=type(exc).__name__, path=request.url.path)
        return problem_response(
            request,
            status=500,
            code="internal_error",
            title="Internal error",
        )
