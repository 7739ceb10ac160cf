"""Operational endpoints (health, readiness, metrics, the API description) and the web app."""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path
from typing import Literal

import orjson
from aiohttp import web
from aiohttp.typedefs import Handler
from pydantic import BaseModel

from hub.api import Api
from hub.errors import NotFound
from hub.observability import CONTENT_TYPE_LATEST
from hub.services import HUB

log = logging.getLogger(__name__)
OPENAPI = web.AppKey("openapi", bytes)
READY_TIMEOUT = 2.0


class Health(BaseModel):
    status: Literal["ok"]


class Check(BaseModel):
    ok: bool
    error: str | None = None


class Readiness(BaseModel):
    status: Literal["ready", "unavailable"]
    checks: dict[str, Check]


def register_routes(api: Api) -> None:
    ops = ("operations",)

    @api.route("GET", "/healthz", summary="Liveness", response=Health, auth=False, tags=ops)
    async def healthz(request: web.Request) -> Health:
        """200 as long as the process serves requests."""
        return Health(status="ok")

    @api.route(
        "GET",
        "/readyz",
        summary="Readiness",
        response=Readiness,
        auth=False,
        errors=[503],
        tags=ops,
    )
    async def readyz(request: web.Request) -> web.Response:
        """200 when the database and the broker answer, 503 (same body shape) when not."""
        hub = request.app[HUB]
        checks = {
            "database": await _check(hub.db.ping()),
            "broker": await _check(hub.broker.ping()),
        }
        ready = all(c.ok for c in checks.values())
        body = Readiness(status="ready" if ready else "unavailable", checks=checks)
        return web.Response(
            body=body.model_dump_json(),
            status=200 if ready else 503,
            content_type="application/json",
        )

    @api.route(
        "GET",
        "/metrics",
        summary="Prometheus metrics",
        auth=False,
        tags=ops,
        content_type="text/plain",
    )
    async def metrics(request: web.Request) -> web.Response:
        """Request counts and latencies in the Prometheus text format."""
        response = web.Response(body=request.app[HUB].metrics.render())
        response.headers["Content-Type"] = CONTENT_TYPE_LATEST
        return response


async def _check(probe: object) -> Check:
    try:
        await asyncio.wait_for(probe, READY_TIMEOUT)  # type: ignore[arg-type]
    except Exception as exc:  # any failure means not ready; say which
        return Check(ok=False, error=f"{type(exc).__name__}: {exc}"[:200])
    return Check(ok=True)


async def openapi_json(request: web.Request) -> web.Response:
    return web.Response(body=request.app[OPENAPI], content_type="application/json")


def add_web_routes(app: web.Application, dist: Path) -> None:
    """The built front end: assets, the API docs page and the single-page app for every other
    GET. Without a build the API still works and pages say how to build."""
    app.router.add_get("/api/openapi.json", openapi_json)
    app.router.add_get("/api/docs", _page(dist / "api-docs.html"))
    if (dist / "assets").is_dir():
        app.router.add_static("/assets/", dist / "assets", append_version=False)
    # The embeddable editor (`/embed/projects/{id}`): its own small page, for iframes.
    app.router.add_get("/embed/{tail:.*}", _page(dist / "embed.html"))
    app.router.add_get("/{tail:(?!api/).*}", _page(dist / "index.html"))


def _page(path: Path) -> Handler:
    built = path.is_file()  # checked once: the build happens before the hub starts

    async def page(request: web.Request) -> web.StreamResponse:
        if not built:
            if request.path.startswith("/api/"):
                raise NotFound("The web front end is not built; run `make web`.")
            return web.Response(
                status=503,
                text="The web front end is not built yet: run `make web` (or `make run`).",
            )
        response = web.FileResponse(path)
        response.headers["Cache-Control"] = "no-cache"
        # Our own pages (a lesson embedding `/embed/…`) may frame these pages; other sites may
        # not, so nobody can overlay the app on a page of theirs (clickjacking).
        response.headers["Content-Security-Policy"] = "frame-ancestors 'self'"
        return response

    return page


def openapi_bytes(api: Api, version: str) -> bytes:
    document = api.openapi(
        title="Cohort API",
        version=version,
        description=(
            "REST API of the Cohort hub. Errors are RFC 9457 problem documents "
            "(application/problem+json) with a machine-readable `code`."
        ),
    )
    return orjson.dumps(document)
