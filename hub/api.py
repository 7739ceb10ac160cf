"""Declared REST operations: each route states its body, query, response and errors once, and both
the request handling and the OpenAPI 3.1 document are derived from that declaration."""

from __future__ import annotations

import inspect
import re
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import orjson
from aiohttp import web
from pydantic import BaseModel, ConfigDict, Field, ValidationError
from pydantic.json_schema import models_json_schema

from hub.errors import (
    FieldError,
    MalformedRequest,
    NotFound,
    PayloadTooLarge,
    Unauthenticated,
    UnsupportedMediaType,
    ValidationFailed,
)
from hub.identity.manager import Principal

Authenticator = Callable[[str], Awaitable[Principal]]
AUTHENTICATOR: web.AppKey[Authenticator] = web.AppKey("authenticator")
MAX_JSON_BYTES = web.AppKey("max_json_bytes", int)
PRINCIPAL = web.RequestKey("principal", Principal)

Handler = Callable[..., Awaitable[BaseModel | web.StreamResponse | None]]

_PATH_PARAM = re.compile(r"\{(\w+)(?::([^{}]+))?\}")


class RequestModel(BaseModel):
    """Base for request bodies and queries: unknown fields are an error, not silently ignored."""

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=False)


class Problem(BaseModel):
    """RFC 9457 problem details, as every error response carries them."""

    type: str = Field(description="URI naming the kind of problem")
    title: str
    status: int
    detail: str
    code: str = Field(description="machine-readable error code")
    instance: str | None = None
    request_id: str | None = None
    errors: list[dict[str, str]] | None = Field(
        default=None, description="per-field problems: {field, message, code}"
    )
    retry_after: int | None = Field(default=None, description="seconds, with status 429")


_STATUS_TEXT = {
    400: "Malformed request",
    401: "Not authenticated",
    403: "Not allowed",
    404: "Not found",
    409: "Conflict with the current state",
    413: "Body too large",
    415: "Body is not JSON",
    422: "Invalid input",
    429: "Too many requests",
    503: "Dependency unavailable",
}


@dataclass(frozen=True, slots=True)
class Operation:
    method: str
    path: str
    handler: Handler
    summary: str
    description: str
    tags: tuple[str, ...]
    body: type[BaseModel] | None
    query: type[BaseModel] | None
    response: type[BaseModel] | None
    status: int
    auth: bool
    errors: tuple[int, ...]
    cookie_auth: bool
    content_type: str = "application/json"
    # OpenAPI requestBody for bodies the handler reads itself (multipart, raw bytes).
    request_body: dict[str, Any] | None = None
    body_optional: bool = False
    response_headers: tuple[str, ...] = ()

    @property
    def openapi_path(self) -> str:
        return _PATH_PARAM.sub(lambda m: "{" + m.group(1) + "}", self.path)


@dataclass
class Api:
    """A registry of operations, mounted on an aiohttp app and described as OpenAPI."""

    operations: list[Operation] = field(default_factory=list)

    def route(
        self,
        method: str,
        path: str,
        *,
        summary: str,
        response: type[BaseModel] | None = None,
        status: int = 200,
        body: type[BaseModel] | None = None,
        query: type[BaseModel] | None = None,
        auth: bool = True,
        errors: Sequence[int] = (),
        tags: Sequence[str] = (),
        cookie_auth: bool = False,
        content_type: str = "application/json",
        request_body: dict[str, Any] | None = None,
        response_headers: Sequence[str] = (),
        body_optional: bool = False,
    ) -> Callable[[Handler], Handler]:
        def register(handler: Handler) -> Handler:
            self.operations.append(
                Operation(
                    method=method.upper(),
                    path=path,
                    handler=handler,
                    summary=summary,
                    description=inspect.getdoc(handler) or "",
                    tags=tuple(tags),
                    body=body,
                    query=query,
                    response=response,
                    status=status,
                    auth=auth,
                    errors=tuple(errors),
                    cookie_auth=cookie_auth,
                    content_type=content_type,
                    request_body=request_body,
                    response_headers=tuple(response_headers),
                    body_optional=body_optional,
                )
            )
            return handler

        return register

    def mount(self, app: web.Application) -> None:
        for op in self.operations:
            app.router.add_route(op.method, op.path, _endpoint(op))

    def openapi(self, *, title: str, version: str, description: str) -> dict[str, Any]:
        return _openapi(self.operations, title=title, version=version, description=description)


def _endpoint(op: Operation) -> Callable[[web.Request], Awaitable[web.StreamResponse]]:
    async def endpoint(request: web.Request) -> web.StreamResponse:
        kwargs: dict[str, Any] = {}
        if op.auth:
            kwargs["principal"] = await authenticate(request)
        if op.query is not None:
            kwargs["query"] = _validate(op.query, dict(request.query), location="query")
        if op.body is not None:
            data = {} if op.body_optional and not request.body_exists else await read_json(request)
            kwargs["body"] = _validate(op.body, data, location="body")
        result = await op.handler(request, **kwargs)
        if isinstance(result, web.StreamResponse):
            return result
        if result is None:
            return web.Response(status=op.status)
        return json_response(result, status=op.status)

    return endpoint


async def authenticate(request: web.Request) -> Principal:
    """The principal of a ``Authorization: Bearer`` request.

    Raises:
        Unauthenticated: no token, or one that does not verify.
    """
    if PRINCIPAL in request:
        return request[PRINCIPAL]
    header = request.headers.get("Authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise Unauthenticated("Sign in first: send `Authorization: Bearer <access token>`.")
    principal = await request.app[AUTHENTICATOR](token.strip())
    request[PRINCIPAL] = principal
    return principal


async def read_json(request: web.Request) -> Any:
    """The request body as JSON, bounded in size.

    Raises:
        UnsupportedMediaType, PayloadTooLarge, MalformedRequest.
    """
    limit = request.app[MAX_JSON_BYTES]
    if request.content_length is not None and request.content_length > limit:
        raise PayloadTooLarge(f"JSON bodies are limited to {limit} bytes.")
    declared = "Content-Type" in request.headers
    if declared and request.content_type != "application/json" and request.body_exists:
        raise UnsupportedMediaType("Send the body as application/json.")
    raw = await request.content.read(limit + 1)
    if len(raw) > limit:
        raise PayloadTooLarge(f"JSON bodies are limited to {limit} bytes.")
    if not raw.strip():
        raise MalformedRequest("The request needs a JSON body.")
    try:
        return orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise MalformedRequest(f"The body is not valid JSON: {exc}.") from None


def _validate(model: type[BaseModel], data: Any, *, location: str) -> BaseModel:
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        errors = []
        for err in exc.errors(include_url=False):
            where = ".".join(str(p) for p in err["loc"]) or location
            message = err["msg"]
            if message.startswith("Value error, "):
                message = message[len("Value error, ") :]
            errors.append(FieldError(where, message, err["type"]))
        raise ValidationFailed(errors) from None


def path_int(request: web.Request, name: str) -> int:
    """A numeric path parameter; anything else names no resource."""
    raw = request.match_info[name]
    if not raw.isdigit() or len(raw) > 18:
        raise NotFound(f"No resource with {name} {raw!r}.")
    return int(raw)


def json_response(model: BaseModel, *, status: int = 200) -> web.Response:
    return web.Response(
        body=model.model_dump_json().encode(), status=status, content_type="application/json"
    )


def _openapi(
    operations: list[Operation], *, title: str, version: str, description: str
) -> dict[str, Any]:
    models: list[tuple[type[BaseModel], Any]] = [(Problem, "serialization")]
    for op in operations:
        if op.body is not None:
            models.append((op.body, "validation"))
        if op.response is not None:
            models.append((op.response, "serialization"))
    unique = list(dict.fromkeys(models))
    refs, top = models_json_schema(unique, ref_template="#/components/schemas/{model}")
    paths: dict[str, dict[str, Any]] = {}
    for op in operations:
        item: dict[str, Any] = {
            "operationId": op.handler.__name__,
            "summary": op.summary,
            "tags": list(op.tags),
            "responses": {},
        }
        if op.description:
            item["description"] = op.description
        parameters = [
            {
                "name": m.group(1),
                "in": "path",
                "required": True,
                "schema": {"type": "integer"} if m.group(2) == r"\d+" else {"type": "string"},
            }
            for m in _PATH_PARAM.finditer(op.path)
        ]
        if op.query is not None:
            schema = op.query.model_json_schema()
            required = set(schema.get("required", []))
            for name, prop in schema.get("properties", {}).items():
                parameters.append(
                    {"name": name, "in": "query", "required": name in required, "schema": prop}
                )
        if parameters:
            item["parameters"] = parameters
        if op.body is not None:
            item["requestBody"] = {
                "required": not op.body_optional,
                "content": {"application/json": {"schema": refs[(op.body, "validation")]}},
            }
        elif op.request_body is not None:
            item["requestBody"] = op.request_body
        security: list[dict[str, list[str]]] = []
        if op.auth:
            security.append({"bearerAuth": []})
        if op.cookie_auth:
            security.append({"refreshCookie": []})
        if security:
            item["security"] = security
        ok: dict[str, Any] = {"description": "Success"}
        if op.response is not None:
            ok["content"] = {op.content_type: {"schema": refs[(op.response, "serialization")]}}
        elif op.content_type != "application/json":
            ok["content"] = {op.content_type: {"schema": {"type": "string"}}}
        if op.response_headers:
            ok["headers"] = {h: {"schema": {"type": "string"}} for h in op.response_headers}
        item["responses"][str(op.status)] = ok
        implied = set(op.errors)
        if op.body is not None:
            implied |= {400, 413, 415, 422}
        if op.query is not None:
            implied.add(422)
        if op.auth or op.cookie_auth:
            implied.add(401)
        problem = {"$ref": "#/components/schemas/Problem"}
        for code in sorted(implied):
            entry: dict[str, Any] = {
                "description": _STATUS_TEXT.get(code, "Error"),
                "content": {"application/problem+json": {"schema": problem}},
            }
            if code == 429:
                entry["headers"] = {
                    "Retry-After": {"schema": {"type": "integer"}, "description": "seconds"}
                }
            item["responses"][str(code)] = entry
        paths.setdefault(op.openapi_path, {})[op.method.lower()] = item
    return {
        "openapi": "3.1.0",
        "info": {"title": title, "version": version, "description": description},
        "paths": paths,
        "components": {
            "schemas": top.get("$defs", {}),
            "securitySchemes": {
                "bearerAuth": {"type": "http", "scheme": "bearer", "bearerFormat": "JWT"},
                "refreshCookie": {"type": "apiKey", "in": "cookie", "name": "cohort_refresh"},
            },
        },
    }
