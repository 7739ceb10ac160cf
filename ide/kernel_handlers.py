"""HTTP edge of project kernels: runs, and the kernel's state, interrupt and restart."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from aiohttp import web
from pydantic import BaseModel, Field

from hub.api import Api, RequestModel, path_int
from hub.identity.manager import Principal
from ide.handlers import PersonOut
from ide.kernels import RunView, run_data
from ide.services import IDE

MAX_CODE = 256 * 1024


class RunBody(RequestModel):
    path: str | None = Field(
        default=None, min_length=1, max_length=500, description="a file of the project"
    )
    code: str | None = Field(
        default=None, min_length=1, max_length=MAX_CODE, description="code to run (a selection)"
    )


class RunsQuery(RequestModel):
    limit: int = Field(default=20, ge=1, le=100)


class RunOut(BaseModel):
    id: int
    project_id: int
    status: Literal["queued", "running", "ok", "error", "interrupted", "limit"]
    path: str | None
    code: str | None
    by: PersonOut | None = Field(description="who started it")
    outputs: list[dict[str, Any]] = Field(
        description="stream, execute_result, display_data and error outputs (nbformat's shape)"
    )
    truncated: bool = Field(description="the output cap was reached: later outputs were dropped")
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime | None


class RunsOut(BaseModel):
    items: list[RunOut]


class KernelOut(BaseModel):
    state: Literal["none", "starting", "idle", "busy", "dead"]
    run: int | None = Field(description="the run in progress")
    queued: int = Field(description="runs waiting")


def run_out(view: RunView) -> RunOut:
    return RunOut.model_validate(run_data(view))


def register_kernel_routes(api: Api) -> None:
    tags = ("kernels",)
    base = r"/api/projects/{project_id:\d+}"

    @api.route(
        "POST",
        base + "/runs",
        summary="Run a file or code in the project's kernel",
        body=RunBody,
        response=RunOut,
        status=202,
        errors=[403, 404, 409, 422, 503],
        tags=tags,
    )
    async def start_run(request: web.Request, principal: Principal, body: RunBody) -> RunOut:
        """Exactly one of `path` (a file of the project's document) and `code`. The run is
        queued behind the project's other runs; its status and outputs stream on the gateway
        channel `project:<id>`. Viewers may not run code."""
        view = await request.app[IDE].kernels.submit(
            principal.user, path_int(request, "project_id"), path=body.path, code=body.code
        )
        return run_out(view)

    @api.route(
        "GET",
        base + "/runs",
        summary="The project's recent runs",
        query=RunsQuery,
        response=RunsOut,
        errors=[403, 404],
        tags=tags,
    )
    async def list_runs(request: web.Request, principal: Principal, query: RunsQuery) -> RunsOut:
        """Newest first, with their outputs."""
        views = await request.app[IDE].kernels.recent_runs(
            principal.user, path_int(request, "project_id"), query.limit
        )
        return RunsOut(items=[run_out(v) for v in views])

    @api.route(
        "GET",
        base + r"/runs/{run_id:\d+}",
        summary="A run, with its outputs",
        response=RunOut,
        errors=[403, 404],
        tags=tags,
    )
    async def get_run(request: web.Request, principal: Principal) -> RunOut:
        view = await request.app[IDE].kernels.get_run(
            principal.user, path_int(request, "project_id"), path_int(request, "run_id")
        )
        return run_out(view)

    @api.route(
        "GET",
        base + "/kernel",
        summary="The project's kernel",
        response=KernelOut,
        errors=[403, 404],
        tags=tags,
    )
    async def get_kernel(request: web.Request, principal: Principal) -> KernelOut:
        state = await request.app[IDE].kernels.state(
            principal.user, path_int(request, "project_id")
        )
        return KernelOut.model_validate(state)

    @api.route(
        "POST",
        base + "/kernel/interrupt",
        summary="Interrupt the run in progress",
        response=KernelOut,
        errors=[403, 404],
        tags=tags,
    )
    async def interrupt_kernel(request: web.Request, principal: Principal) -> KernelOut:
        """The run in progress ends `interrupted`; nothing happens when the kernel is idle."""
        state = await request.app[IDE].kernels.interrupt(
            principal.user, path_int(request, "project_id")
        )
        return KernelOut.model_validate(state)

    @api.route(
        "POST",
        base + "/kernel/restart",
        summary="Restart the project's kernel",
        response=KernelOut,
        errors=[403, 404],
        tags=tags,
    )
    async def restart_kernel(request: web.Request, principal: Principal) -> KernelOut:
        """Variables are lost; a run in progress ends `interrupted`; queued runs follow."""
        state = await request.app[IDE].kernels.restart(
            principal.user, path_int(request, "project_id")
        )
        return KernelOut.model_validate(state)
