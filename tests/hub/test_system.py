"""Health, readiness, metrics, the OpenAPI document, and problem+json for every failure."""

from __future__ import annotations

import io
import logging
from datetime import UTC, datetime, timedelta
from typing import Any

import jsonschema
import orjson
import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient
from openapi_spec_validator import validate

from hub.app import create_app
from hub.clock import FakeClock
from tests.conftest import Account, make_settings, sign_up

Client = TestClient[Any, Any]


async def test_healthz(client: Client) -> None:
    resp = await client.get("/healthz")
    assert resp.status == 200
    assert await resp.json() == {"status": "ok"}


async def test_readyz_when_everything_answers(client: Client) -> None:
    resp = await client.get("/readyz")
    assert resp.status == 200
    body = await resp.json()
    assert body["status"] == "ready"
    assert body["checks"]["database"]["ok"] is True
    assert body["checks"]["broker"]["ok"] is True


async def test_readyz_is_503_when_the_database_is_down(
    aiohttp_client: Any, tmp_path: Any, clock: FakeClock
) -> None:
    settings = make_settings(
        tmp_path, "postgresql+asyncpg://nobody@127.0.0.1:1/none", redis_url="redis://127.0.0.1:1/0"
    )
    client = await aiohttp_client(create_app(settings, clock=clock))
    resp = await client.get("/readyz")
    assert resp.status == 503
    body = await resp.json()
    assert body["status"] == "unavailable"
    assert body["checks"]["database"]["ok"] is False
    assert body["checks"]["broker"]["ok"] is False
    assert body["checks"]["database"]["error"]
    # Liveness does not depend on dependencies.
    assert (await client.get("/healthz")).status == 200


async def test_metrics_count_requests_by_route_template(client: Client) -> None:
    await client.get("/healthz")
    await client.get("/api/admin/teacher-applications/12/approve")
    await client.get("/api/admin/teacher-applications/13/approve")
    text = await (await client.get("/metrics")).text()
    assert 'cohort_http_requests_total{method="GET",route="/healthz",status="200"} 1.0' in text
    assert "cohort_http_request_duration_seconds_bucket" in text
    # Ids do not explode the label space: both requests share the unmatched route (GET on a
    # POST-only path) label.
    assert "/12/" not in text


async def test_unknown_api_path_and_method_are_problems(client: Client) -> None:
    resp = await client.get("/api/nothing-here")
    assert resp.status == 404
    assert resp.content_type == "application/problem+json"
    body = await resp.json()
    assert body["code"] == "not_found"
    assert body["request_id"] == resp.headers["X-Request-Id"]
    resp = await client.put("/api/auth/login", json={})
    assert resp.status == 405
    assert (await resp.json())["code"] == "method_not_allowed"
    assert "POST" in resp.headers["Allow"]


async def test_unexpected_error_is_500_without_traceback(
    aiohttp_client: Any, app: web.Application, caplog: pytest.LogCaptureFixture
) -> None:
    async def explode(request: web.Request) -> web.Response:
        raise RuntimeError("secret internals: password=hunter2")

    app.router.add_get("/api/explode", explode)
    client = await aiohttp_client(app)
    with caplog.at_level(logging.ERROR, logger="hub.http"):
        resp = await client.get("/api/explode", headers={"X-Request-Id": "req-test-12345"})
    assert resp.status == 500
    text = await resp.text()
    assert "hunter2" not in text
    assert "Traceback" not in text
    body = await resp.json()
    assert body["code"] == "internal_error"
    assert body["request_id"] == "req-test-12345"
    [record] = [r for r in caplog.records if r.name == "hub.http"]
    assert record.exc_info is not None
    from hub.logs import JsonFormatter

    # The log line carries the request id (set while the request ran).
    assert "req-test-12345" in body["detail"]
    assert "hunter2" in JsonFormatter().format(record)


async def test_request_id_is_generated_when_missing_or_unsafe(client: Client) -> None:
    resp = await client.get("/healthz", headers={"X-Request-Id": "bad id; with spaces"})
    assert resp.headers["X-Request-Id"] != "bad id; with spaces"
    assert len(resp.headers["X-Request-Id"]) == 32


async def test_each_request_logs_one_access_line_with_its_id_route_status_and_duration(
    client: Client,
) -> None:
    from hub.logs import JsonFormatter

    lines = io.StringIO()
    handler = logging.StreamHandler(lines)
    handler.setFormatter(JsonFormatter())
    access = logging.getLogger("hub.access")
    access.addHandler(handler)
    level = access.level
    access.setLevel(logging.INFO)
    try:
        resp = await client.get("/api/users/123456789", headers={"X-Request-Id": "req-access-0001"})
        assert resp.status == 404
        access.setLevel(logging.WARNING)  # a disabled level writes nothing
        await client.get("/healthz")
    finally:
        access.removeHandler(handler)
        access.setLevel(level)
    [line] = [orjson.loads(text) for text in lines.getvalue().splitlines()]
    ts = line.pop("ts")
    duration = line.pop("duration_ms")
    assert line == {
        "level": "info",
        "logger": "hub.access",
        "msg": "GET /api/users/123456789 404",
        "request_id": "req-access-0001",
        "method": "GET",
        "path": "/api/users/123456789",
        "route": "/api/users/{user_id}",
        "status": 404,
    }
    assert isinstance(duration, float)
    assert duration >= 0
    logged = datetime.fromisoformat(ts)
    assert logged.utcoffset() == timedelta(0)
    assert abs(datetime.now(UTC) - logged) < timedelta(minutes=1)


@pytest.mark.parametrize("created", [1_764_243_000.0, 1_764_243_000.0421, 1_764_243_059.9994])
def test_json_log_timestamps_are_utc_iso_to_the_millisecond(created: float) -> None:
    from hub.logs import JsonFormatter

    formatter = JsonFormatter()
    for at in (created, created + 1.5, created):  # a second rendered before, then a new one
        record = logging.makeLogRecord({"msg": "x", "created": at, "msecs": (at % 1) * 1000})
        expected = datetime.fromtimestamp(at, UTC).isoformat(timespec="milliseconds")
        assert orjson.loads(formatter.format(record))["ts"] == expected


async def test_openapi_document_is_valid_and_complete(client: Client, app: web.Application) -> None:
    resp = await client.get("/api/openapi.json")
    assert resp.status == 200
    spec = await resp.json()
    validate(spec)  # OpenAPI 3.1 schema validation
    assert spec["openapi"] == "3.1.0"
    documented = {(method.upper(), path) for path, item in spec["paths"].items() for method in item}
    served = set()
    for route in app.router.routes():
        info = route.resource.get_info() if route.resource else {}
        path = info.get("path") or info.get("formatter")
        if route.method in ("HEAD", "*") or not path:
            continue
        if path.startswith("/api/") and path not in ("/api/openapi.json", "/api/docs"):
            served.add((route.method, path))
    assert served <= documented, served - documented
    register = spec["paths"]["/api/auth/register"]["post"]
    assert set(register["responses"]) >= {"201", "400", "409", "413", "415", "422"}
    login = spec["paths"]["/api/auth/login"]["post"]
    assert "Retry-After" in login["responses"]["429"]["headers"]
    approve = spec["paths"]["/api/admin/teacher-applications/{application_id}/approve"]["post"]
    assert approve["parameters"][0]["schema"] == {"type": "integer"}
    assert approve["security"] == [{"bearerAuth": []}]


async def test_real_responses_match_the_documented_schemas(client: Client, admin: Account) -> None:
    spec = await (await client.get("/api/openapi.json")).json()

    async def check(method: str, path: str, template: str, **kwargs: Any) -> Any:
        resp = await client.request(method, path, **kwargs)
        body = await resp.json() if resp.status != 204 else None
        documented = spec["paths"][template][method.lower()]["responses"][str(resp.status)]
        if body is not None:
            [(media, content)] = documented["content"].items()
            assert resp.content_type == media
            jsonschema.validate(body, {**content["schema"], "components": spec["components"]})
        return body

    student = await sign_up(client, "Val", login=False)
    reg = {"email": student.email, "password": student.password, "display_name": "V"}
    await check("POST", "/api/auth/register", "/api/auth/register", json=reg)  # 409
    await check("POST", "/api/auth/register", "/api/auth/register", json={})  # 422
    login = await check(
        "POST",
        "/api/auth/login",
        "/api/auth/login",
        json={"email": student.email, "password": student.password},
    )
    auth = {"Authorization": f"Bearer {login['access_token']}"}
    await check("GET", "/api/me", "/api/me", headers=auth)
    await check("PATCH", "/api/me", "/api/me", headers=auth, json={"bio": "hi"})
    await check("GET", "/api/auth/sessions", "/api/auth/sessions", headers=auth)
    application = await check(
        "POST",
        "/api/teacher-applications",
        "/api/teacher-applications",
        headers=auth,
        json={"qualifications": "Ten years of it.", "experience": "Plenty, truly.", "links": []},
    )
    await check("GET", "/api/teacher-applications", "/api/teacher-applications", headers=auth)
    template = "/api/admin/teacher-applications"
    await check("GET", template, template, headers=admin.auth)
    await check("GET", template, template, headers=auth)  # 403
    await check(
        "POST",
        f"{template}/{application['id']}/approve",
        template + "/{application_id}/approve",
        headers=admin.auth,
    )
    await check("POST", "/api/auth/refresh", "/api/auth/refresh")
    await check("GET", "/readyz", "/readyz")
    await check("GET", "/healthz", "/healthz")


async def test_api_docs_page_is_served_locally(client: Client) -> None:
    resp = await client.get("/api/docs")
    assert resp.status == 200
    html = await resp.text()
    assert "<html" in html.lower()
    assert "cdn" not in html.lower()
    assert "http://" not in html
    assert "https://" not in html
