"""A local stand-in for the parts of Cloudinary that ``CloudinaryStorage`` uses.

It speaks the wire protocol the ``cloudinary`` SDK (1.46) speaks, checked against the SDK's
source:

- Upload API: ``POST /v1_1/<cloud>/<resource_type>/upload``, multipart form fields plus a
  ``file`` part. Signed requests carry ``api_key``, ``timestamp`` and ``signature`` = SHA-1 hex
  of the sorted ``k=v`` pairs joined by ``&`` (``&`` inside a pair escaped as ``%26``, signature
  version 2) followed by the API secret; ``file``, ``api_key``, ``resource_type`` and
  ``cloud_name`` are not signed. Chunked uploads (``upload_large``) send the same request once
  per chunk with ``X-Unique-Upload-Id`` and ``Content-Range: bytes <first>-<last>/<total>``
  headers; every chunk but the last must be at least 5 MB; the final chunk's response is the
  whole upload's.
- Admin API, HTTP Basic auth with ``api_key:api_secret``:
  ``GET /v1_1/<cloud>/resources/<resource_type>/<type>/<public_id>`` and
  ``DELETE /v1_1/<cloud>/resources/<resource_type>/<type>`` with a JSON body
  (``{"prefix": …, "next_cursor": …}`` or ``{"public_ids": […]}``), which deletes at most
  ``delete_page_size`` objects per call and then answers ``"partial": true`` and a
  ``next_cursor``.
- Delivery: ``GET /<cloud>/<resource_type>/<type>/[s--<sig>--/][v<version>/]<public_id>``, the
  shared-CDN URL shape the SDK builds with ``cname=<host:port>`` and ``secure=false``. For
  ``authenticated`` resources the ``s--<sig>--`` part must be the first 8 characters of the
  URL-safe base64 SHA-1 of ``<public_id> + api_secret``. The version is not used for lookup
  (as on the real CDN, it only busts caches).

Errors have the service's shape: ``{"error": {"message": …}}`` with 400/401/404; the CDN answers
errors with an ``X-Cld-Error`` header. Every request is recorded in ``requests`` and every chunk
in ``chunks``, so tests can assert on what the SDK sent.
"""

from __future__ import annotations

import base64
import hashlib
import json
import mimetypes
import re
import secrets
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Self
from urllib.parse import unquote

from aiohttp import BasicAuth, BodyPartReader, web

MIN_CHUNK = 5 * 1024 * 1024
STALE_AFTER = 3600  # seconds; the real API refuses older timestamps
_UNSIGNED = frozenset({"file", "api_key", "signature", "resource_type", "cloud_name"})
_RANGE = re.compile(r"^bytes (\d+)-(\d+)/(\d+)$")
_DELIVERY = re.compile(r"^(?:s--(?P<sig>[A-Za-z0-9_-]+)--/)?(?:v(?P<version>\d+)/)?(?P<id>.+)$")


@dataclass
class FakeAsset:
    public_id: str
    resource_type: str
    type: str
    data: bytes
    version: int
    asset_id: str
    version_id: str
    created_at: str
    original_filename: str


@dataclass
class RecordedRequest:
    method: str
    path: str
    headers: dict[str, str]
    query: dict[str, str]
    params: dict[str, Any] = field(default_factory=dict)  # form fields or JSON body
    file_name: str | None = None
    file_size: int | None = None
    status: int = 0


RECORD = web.RequestKey("record", RecordedRequest)


@dataclass
class Chunk:
    upload_id: str
    first: int
    last: int
    total: int

    @property
    def size(self) -> int:
        return self.last - self.first + 1


@dataclass
class _PendingUpload:
    params: dict[str, Any]
    parts: dict[int, bytes] = field(default_factory=dict)
    total: int = 0


class ApiError(Exception):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


def smart_escape(text: str) -> str:
    """The SDK's escaping of public IDs in delivery URLs (what it signs)."""
    return re.sub(
        rb"[^a-zA-Z0-9_.\-/:]+",
        lambda m: "".join(f"%{b:02X}" for b in m.group(0)).encode(),
        text.encode(),
    ).decode()


class FakeCloudinary:
    """``async with FakeCloudinary() as fake:`` serves on 127.0.0.1, on a free port."""

    def __init__(
        self,
        cloud_name: str = "demo",
        api_key: str = "614335564976464",
        api_secret: str = "fake-api-secret-0123456789",
        *,
        delete_page_size: int = 1000,
    ) -> None:
        self.cloud_name = cloud_name
        self.api_key = api_key
        self.api_secret = api_secret
        self.delete_page_size = delete_page_size
        self.assets: dict[tuple[str, str, str], FakeAsset] = {}
        self.requests: list[RecordedRequest] = []
        self.chunks: dict[str, list[Chunk]] = {}
        self._pending: dict[str, _PendingUpload] = {}
        self._cursors: set[str] = set()
        self._last_version = 0
        self._runner: web.AppRunner | None = None
        self.port = 0

    # Lifecycle ------------------------------------------------------------------------------

    async def __aenter__(self) -> Self:
        app = web.Application(client_max_size=256 * 1024 * 1024, middlewares=[self._record])
        api = f"/v1_1/{self.cloud_name}"
        app.router.add_post(api + "/{resource_type}/upload", self._upload)
        app.router.add_get(
            api + "/resources/{resource_type}/{type}/{public_id:.+}", self._get_resource
        )
        app.router.add_delete(api + "/resources/{resource_type}/{type}", self._delete_resources)
        app.router.add_get(f"/{self.cloud_name}/{{resource_type}}/{{type}}/{{rest:.+}}", self._cdn)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        self.port = int(self._runner.addresses[0][1])
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    @property
    def host(self) -> str:
        return f"127.0.0.1:{self.port}"

    @property
    def base_url(self) -> str:
        return f"http://{self.host}"

    def cloudinary_url(self, *, api_key: str | None = None, api_secret: str | None = None) -> str:
        """A ``cloudinary://`` URL pointing the SDK's API calls and delivery URLs here."""
        return (
            f"cloudinary://{api_key or self.api_key}:{api_secret or self.api_secret}"
            f"@{self.cloud_name}?upload_prefix={self.base_url}&cname={self.host}&secure=false"
        )

    # Inspection -----------------------------------------------------------------------------

    def asset(
        self, public_id: str, resource_type: str = "raw", type: str = "authenticated"
    ) -> FakeAsset | None:
        return self.assets.get((resource_type, type, public_id))

    def public_ids(self, resource_type: str = "raw", type: str = "authenticated") -> list[str]:
        return sorted(p for (r, t, p) in self.assets if (r, t) == (resource_type, type))

    def uploads(self) -> list[RecordedRequest]:
        return [r for r in self.requests if r.method == "POST" and r.path.endswith("/upload")]

    # Helpers --------------------------------------------------------------------------------

    def delivery_signature(self, public_id: str) -> str:
        digest = hashlib.sha1((smart_escape(public_id) + self.api_secret).encode()).digest()
        return base64.urlsafe_b64encode(digest)[:8].decode()

    def delivery_url(self, asset: FakeAsset, *, secure: bool = False) -> str:
        scheme = "https" if secure else "http"
        sig = f"s--{self.delivery_signature(asset.public_id)}--/" if asset.type != "upload" else ""
        return (
            f"{scheme}://{self.host}/{self.cloud_name}/{asset.resource_type}/{asset.type}/"
            f"{sig}v{asset.version}/{smart_escape(asset.public_id)}"
        )

    def _describe(self, asset: FakeAsset) -> dict[str, Any]:
        return {
            "asset_id": asset.asset_id,
            "public_id": asset.public_id,
            "version": asset.version,
            "version_id": asset.version_id,
            "resource_type": asset.resource_type,
            "type": asset.type,
            "created_at": asset.created_at,
            "bytes": len(asset.data),
            "url": self.delivery_url(asset),
            "secure_url": self.delivery_url(asset, secure=True),
            "asset_folder": "",
            "display_name": asset.public_id.rsplit("/", 1)[-1],
        }

    def _next_version(self) -> int:
        self._last_version = max(int(time.time()), self._last_version + 1)
        return self._last_version

    @staticmethod
    def _error(status: int, message: str) -> web.Response:
        return web.json_response({"error": {"message": message}}, status=status)

    @web.middleware
    async def _record(
        self, request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
    ) -> web.StreamResponse:
        record = RecordedRequest(
            method=request.method,
            path=request.path,
            headers=dict(request.headers),
            query=dict(request.query),
        )
        self.requests.append(record)
        request[RECORD] = record
        try:
            response = await handler(request)
        except ApiError as exc:
            response = self._error(exc.status, exc.message)
        except web.HTTPException as exc:
            record.status = exc.status
            raise
        record.status = response.status
        return response

    # Upload API -----------------------------------------------------------------------------

    async def _read_form(self, request: web.Request) -> tuple[dict[str, Any], tuple[str, bytes]]:
        """Form fields (``k[]`` fields as lists under ``k``) and the ``file`` part."""
        fields: dict[str, Any] = {}
        upload: tuple[str, bytes] | None = None
        reader = await request.multipart()
        async for part in reader:
            if not isinstance(part, BodyPartReader) or part.name is None:
                raise ApiError(400, "Invalid multipart request")
            if part.name == "file":
                data = bytes(await part.read())
                if part.filename is None:
                    raise ApiError(400, "Remote file URLs are not supported by the fake")
                upload = (part.filename, data)
            elif part.name.endswith("[]"):
                fields.setdefault(part.name[:-2], []).append(await part.text())
            else:
                fields[part.name] = await part.text()
        if upload is None:
            raise ApiError(400, "Missing required parameter - file")
        return fields, upload

    def _check_signature(self, fields: dict[str, Any]) -> None:
        for name in ("api_key", "timestamp", "signature"):
            if not fields.get(name):
                raise ApiError(400, f"Missing required parameter - {name}")
        if fields["api_key"] != self.api_key:
            raise ApiError(401, f"Unknown API key {fields['api_key']}")
        pairs = []
        for name, value in fields.items():
            if name in _UNSIGNED or not value:
                continue
            text = ",".join(value) if isinstance(value, list) else str(value)
            pairs.append(f"{name}={text}".replace("&", "%26"))
        to_sign = "&".join(sorted(pairs))
        expected = hashlib.sha1((to_sign + self.api_secret).encode()).hexdigest()
        if not secrets.compare_digest(expected, str(fields["signature"])):
            raise ApiError(
                401, f"Invalid Signature {fields['signature']}. String to sign - '{to_sign}'."
            )
        timestamp = int(fields["timestamp"])
        if time.time() - timestamp > STALE_AFTER:
            raise ApiError(
                400,
                f"Stale request - reported time is {timestamp} which is more than 1 hour ago",
            )

    async def _upload(self, request: web.Request) -> web.Response:
        record = request[RECORD]
        fields, (filename, data) = await self._read_form(request)
        record.params = fields
        record.file_name, record.file_size = filename, len(data)
        self._check_signature(fields)
        if fields.get("upload_preset"):
            raise ApiError(400, "Upload presets are not supported by the fake")
        resource_type = request.match_info["resource_type"]
        if resource_type not in ("image", "video", "raw", "auto"):
            raise ApiError(400, f"Invalid resource type {resource_type}")

        upload_id = request.headers.get("X-Unique-Upload-Id")
        if upload_id is None:
            return self._store(resource_type, fields, filename, data)

        match = _RANGE.match(request.headers.get("Content-Range", ""))
        if not match:
            raise ApiError(400, "Invalid Content-Range header")
        first, last, total = (int(g) for g in match.groups())
        if last - first + 1 != len(data) or last >= total:
            raise ApiError(400, "Content-Range does not match the chunk")
        if last + 1 < total and len(data) < MIN_CHUNK:
            raise ApiError(400, "Chunk size must be at least 5MB, except for the last chunk")
        self.chunks.setdefault(upload_id, []).append(Chunk(upload_id, first, last, total))
        pending = self._pending.setdefault(upload_id, _PendingUpload(params=fields, total=total))
        if total != pending.total or first in pending.parts:
            raise ApiError(400, "Chunk does not belong to this upload")
        pending.parts[first] = data
        received = sum(len(p) for p in pending.parts.values())
        if received < total:
            return web.json_response(
                {
                    "done": False,
                    "bytes": received,
                    "public_id": fields.get("public_id") or pending.params.get("public_id"),
                    "upload_id": upload_id,
                }
            )
        del self._pending[upload_id]
        assembled = b"".join(pending.parts[k] for k in sorted(pending.parts))
        offsets = sorted(pending.parts)
        contiguous = all(
            offsets[i] + len(pending.parts[offsets[i]]) == offsets[i + 1]
            for i in range(len(offsets) - 1)
        )
        if not contiguous or len(assembled) != total:
            raise ApiError(400, "Chunks do not cover the file")
        params = {**pending.params, **{k: v for k, v in fields.items() if v}}
        return self._store(resource_type, params, filename, assembled)

    def _store(
        self, resource_type: str, params: dict[str, Any], filename: str, data: bytes
    ) -> web.Response:
        if not data:
            raise ApiError(400, "Empty file")
        if resource_type == "auto":
            resource_type = "raw"
        delivery_type = str(params.get("type") or "upload")
        public_id = str(params.get("public_id") or secrets.token_hex(10))
        key = (resource_type, delivery_type, public_id)
        existing = self.assets.get(key)
        if existing is not None and params.get("overwrite") in ("0", "false"):
            return web.json_response({**self._describe(existing), "existing": True})
        version = self._next_version()
        asset = FakeAsset(
            public_id=public_id,
            resource_type=resource_type,
            type=delivery_type,
            data=data,
            version=version,
            asset_id=existing.asset_id if existing else secrets.token_hex(16),
            version_id=secrets.token_hex(16),
            created_at=datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
            original_filename=filename.rsplit("/", 1)[-1].rsplit(".", 1)[0],
        )
        self.assets[key] = asset
        signature = hashlib.sha1(
            f"public_id={public_id}&version={version}{self.api_secret}".encode()
        ).hexdigest()
        body = {
            **self._describe(asset),
            "signature": signature,
            "tags": [],
            "etag": hashlib.md5(data).hexdigest(),
            "placeholder": False,
            "original_filename": asset.original_filename,
            "api_key": self.api_key,
        }
        return web.json_response(body)

    # Admin API ------------------------------------------------------------------------------

    def _check_basic_auth(self, request: web.Request) -> None:
        header = request.headers.get("Authorization", "")
        try:
            auth = BasicAuth.decode(header)
        except ValueError:
            raise ApiError(401, "Must supply api_key") from None
        if auth.login != self.api_key:
            raise ApiError(401, f"Unknown API key {auth.login}")
        if not secrets.compare_digest(auth.password, self.api_secret):
            raise ApiError(401, "api_secret mismatch")

    async def _get_resource(self, request: web.Request) -> web.Response:
        self._check_basic_auth(request)
        info = request.match_info
        asset = self.asset(info["public_id"], info["resource_type"], info["type"])
        if asset is None:
            raise ApiError(404, f"Resource not found - {info['public_id']}")
        return web.json_response({**self._describe(asset), "derived": []})

    async def _delete_resources(self, request: web.Request) -> web.Response:
        record = request[RECORD]
        self._check_basic_auth(request)
        params: dict[str, Any] = dict(request.query)
        if request.can_read_body:
            sent = json.loads(await request.read() or b"{}")
            params.update({k: v for k, v in sent.items() if v is not None})
        record.params = params
        resource_type = request.match_info["resource_type"]
        delivery_type = request.match_info["type"]
        in_scope = self.public_ids(resource_type, delivery_type)

        if "public_ids" in params:
            wanted = params["public_ids"]
            targets = [p for p in wanted if p in in_scope][: self.delete_page_size]
            missing = [p for p in wanted if p not in in_scope]
        elif "prefix" in params:
            prefix = str(params["prefix"])
            if not prefix:
                raise ApiError(400, "Missing required parameter - prefix")
            cursor = params.get("next_cursor")
            if cursor is not None:
                if cursor not in self._cursors:
                    raise ApiError(400, "Invalid next_cursor")
                self._cursors.discard(cursor)
            targets = [p for p in in_scope if p.startswith(prefix)][: self.delete_page_size]
            missing = []
        else:
            raise ApiError(400, "Must specify public_ids, prefix or all")

        for public_id in targets:
            del self.assets[(resource_type, delivery_type, public_id)]
        deleted = {p: "deleted" for p in targets} | {p: "not_found" for p in missing}
        counts = {p: {"original": 1, "derived": 0} for p in targets}
        body: dict[str, Any] = {"deleted": deleted, "deleted_counts": counts, "partial": False}
        left = self.public_ids(resource_type, delivery_type)
        if "prefix" in params and any(p.startswith(str(params["prefix"])) for p in left):
            cursor = secrets.token_hex(16)
            self._cursors.add(cursor)
            body.update(partial=True, next_cursor=cursor)
        return web.json_response(body)

    # Delivery (CDN) -------------------------------------------------------------------------

    async def _cdn(self, request: web.Request) -> web.Response:
        info = request.match_info
        raw_rest = request.raw_path.split("?", 1)[0].split("/", 4)[4]
        match = _DELIVERY.match(raw_rest)
        if match is None:
            return web.Response(status=400, headers={"X-Cld-Error": "Invalid URL"})
        public_id = unquote(match["id"])
        if info["type"] in ("authenticated", "private"):
            sig = match["sig"]
            if sig is None or not secrets.compare_digest(sig, self.delivery_signature(public_id)):
                return web.Response(status=401, headers={"X-Cld-Error": "Invalid signature"})
        asset = self.asset(public_id, info["resource_type"], info["type"])
        if asset is None:
            return web.Response(status=404, headers={"X-Cld-Error": "Resource not found"})
        content_type = mimetypes.guess_type(public_id)[0] or "application/octet-stream"
        return web.Response(
            body=asset.data,
            content_type=content_type,
            headers={"ETag": f'"{hashlib.md5(asset.data).hexdigest()}"'},
        )
