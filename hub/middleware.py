"""The request pipeline: request ids, problem+json errors, metrics and the access log."""

from __future__ import annotations

import logging
import random
import re
import time
from typing import Any

import orjson
from aiohttp import web
from aiohttp.typedefs import Handler

from hub.errors import CohortError, ErrorCode
from hub.logs import request_id_var
from hub.observability import HttpMetrics

log = logging.getLogger("hub.http")
access_log = logging.getLogger("hub.access")

HTTP_METRICS = web.AppKey("http_metrics", HttpMetrics)
REQUEST_ID_HEADER = "X-Request-Id"
_SAFE_REQUEST_ID = re.compile(r"^[A-Za-z0-9._-]{8,64}$")
PROBLEM_BASE = "https://cohort.dev/problems/"
# Request ids: 128 random bits as 32 hex digits (as uuid4().hex was), from a generator seeded
# once from the OS: a request id names a request in the logs, it guards nothing, and reading the
# OS's randomness for each request cost more than the rest of naming it.
_REQUEST_IDS = random.Random()

_HTTP_CODES = {
    400: ErrorCode.MALFORMED_REQUEST,
    401: ErrorCode.UNAUTHENTICATED,
    403: ErrorCode.FORBIDDEN,
    404: ErrorCode.NOT_FOUND,
    405: ErrorCode.METHOD_NOT_ALLOWED,
    413: ErrorCode.PAYLOAD_TOO_LARGE,
    415: ErrorCode.UNSUPPORTED_MEDIA_TYPE,
    429: ErrorCode.RATE_LIMITED,
}


def problem_response(
    status: int,
    code: str,
    title: str,
    detail: str,
    request: web.Request,
    *,
    extra: dict[str, Any] | None = None,
    headers: dict[str, str] | None = None,
) -> web.Response:
    body: dict[str, Any] = {
        "type": PROBLEM_BASE + code,
        "title": title,
        "status": status,
        "detail": detail,
        "code": code,
        "instance": request.path,
        "request_id": request_id_var.get(),
    }
    if extra:
        body.update(extra)
    return web.Response(
        body=orjson.dumps(body),
        status=status,
        content_type="application/problem+json",
        headers=headers,
    )


def problem_from(exc: CohortError, request: web.Request) -> web.Response:
    return problem_response(
        exc.status,
        str(exc.code),
        exc.title,
        exc.detail,
        request,
        extra=exc.extra(),
        headers=exc.headers(),
    )


@web.middleware
async def request_context(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Outermost: assigns the request id, times the request, logs it, counts it."""
    incoming = request.headers.get(REQUEST_ID_HEADER, "")
    request_id = (
        incoming if _SAFE_REQUEST_ID.match(incoming) else f"{_REQUEST_IDS.getrandbits(128):032x}"
    )
    token = request_id_var.set(request_id)
    started = time.perf_counter()
    status = 500
    try:
        response = await handler(request)
        status = response.status
        if not response.prepared:
            response.headers[REQUEST_ID_HEADER] = request_id
        return response
    finally:
        elapsed = time.perf_counter() - started
        route = _route_label(request)
        request.app[HTTP_METRICS].observe(request.method, route, status, elapsed)
        if access_log.isEnabledFor(logging.INFO):
            _log_access(request.method, request.path, route, status, elapsed)
        request_id_var.reset(token)


def _log_access(method: str, path: str, route: str, status: int, elapsed: float) -> None:
    """The request's access log line. Made and handed to the handlers directly: ``info()``
    would also look up the caller's source line, which nobody reads here."""
    access_log.handle(
        access_log.makeRecord(
            access_log.name,
            logging.INFO,
            __file__,
            0,
            "%s %s %s",
            (method, path, status),
            None,
            extra={
                "method": method,
                "path": path,
                "route": route,
                "status": status,
                "duration_ms": round(elapsed * 1000, 2),
            },
        )
    )


@web.middleware
async def problem_errors(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Turns every error into RFC 9457 problem+json; unknown ones into a bare 500."""
    try:
        return await handler(request)
    except CohortError as exc:
        return problem_from(exc, request)
    except web.HTTPException as exc:
        if exc.status < 400 or not _wants_problem(request):
            raise
        code = _HTTP_CODES.get(exc.status, ErrorCode.MALFORMED_REQUEST)
        detail = exc.text or exc.reason
        if exc.status == 404:
            detail = f"No endpoint at {request.path}."
        elif exc.status == 405:
            detail = f"{request.method} is not allowed on {request.path}."
        elif exc.status == 413:
            detail = "The request body is too large."
        headers = {
            k: v
            for k, v in exc.headers.items()
            if k.lower() not in ("content-type", "content-length")
        }
        return problem_response(exc.status, str(code), exc.reason, detail, request, headers=headers)
    except Exception:
        # No traceback for the client; the log line carries it, tied by the request id.
        log.exception("unhandled error", extra={"path": request.path, "method": request.method})
        return problem_response(
            500,
            str(ErrorCode.INTERNAL),
            "Internal server error",
            f"Something went wrong on our side; request id {request_id_var.get()}.",
            request,
        )


def _wants_problem(request: web.Request) -> bool:
    # The web app's own paths fall back to the single-page app; only API-like paths get JSON.
    return request.path.startswith(("/api/", "/ws", "/yjs/")) or request.method != "GET"


def _route_label(request: web.Request) -> str:
    """The route template, so metrics stay bounded however many ids are requested."""
    info = request.match_info
    resource = info.route.resource if info is not None and info.route is not None else None
    if resource is None or info.http_exception is not None:
        return "unmatched"
    return resource.canonical
