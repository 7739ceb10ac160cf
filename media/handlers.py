"""HTTP edge of media: uploads (multipart and tus), video status, deletion, playback files."""

from __future__ import annotations

import asyncio
import contextlib
import tempfile
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Literal
from urllib.parse import unquote

from aiohttp import BodyPartReader, web
from pydantic import BaseModel

from hub.api import Api
from hub.errors import (
    FieldError,
    MalformedRequest,
    PayloadTooLarge,
    UnsupportedMediaType,
    ValidationFailed,
)
from hub.identity.manager import Principal
from media.manager import VideoManager, VideoView, choices_from_fields
from media.tus import TUS_EXTENSIONS, TUS_VERSION, TusUploads, parse_metadata


@dataclass(frozen=True, slots=True)
class MediaServices:
    videos: VideoManager
    uploads: TusUploads
    temp_dir: Path
    max_upload_bytes: int


MEDIA = web.AppKey("media", MediaServices)
CHUNK = 1 << 20
MAX_WATERMARK_BYTES = 5 << 20
TEXT_FIELDS = ("title", "watermark_text", "watermark_position", "watermark_opacity")


class RenditionOut(BaseModel):
    name: str
    height: int
    bandwidth: int


class VideoOut(BaseModel):
    id: str
    title: str
    status: Literal["queued", "processing", "ready", "failed"]
    progress: float
    stage: str
    error: str | None
    duration: float | None
    width: int | None
    height: int | None
    renditions: list[RenditionOut]
    playback_url: str | None
    poster_url: str | None
    storyboard_url: str | None
    download_url: str | None
    created_at: datetime

    @classmethod
    def of(cls, view: VideoView) -> VideoOut:
        v = view.video
        return cls(
            id=v.id,
            title=v.title,
            status=v.status,
            progress=view.progress,
            stage=view.stage,
            error=v.error,
            duration=v.duration,
            width=v.width,
            height=v.height,
            renditions=[
                RenditionOut(name=r["name"], height=r["height"], bandwidth=r["bandwidth"])
                for r in v.renditions
            ],
            playback_url=view.playback_url,
            poster_url=view.poster_url,
            storyboard_url=view.storyboard_url,
            download_url=view.download_url,
            created_at=v.created_at,
        )


class VideoList(BaseModel):
    items: list[VideoOut]


class VideoAccepted(BaseModel):
    id: str
    status: Literal["queued"]


class UploadOut(BaseModel):
    id: str
    offset: int
    length: int
    video_id: str | None


_MULTIPART_BODY = {
    "required": True,
    "content": {
        "multipart/form-data": {
            "schema": {
                "type": "object",
                "required": ["file"],
                "properties": {
                    "file": {"type": "string", "format": "binary"},
                    "title": {"type": "string", "maxLength": 200},
                    "watermark_text": {"type": "string", "maxLength": 80},
                    "watermark_image": {"type": "string", "format": "binary"},
                    "watermark_position": {
                        "enum": ["top-left", "top-right", "bottom-left", "bottom-right", "center"]
                    },
                    "watermark_opacity": {"type": "number", "minimum": 0.05, "maximum": 1},
                },
            }
        }
    },
}
_TUS_HEADERS = ("Tus-Resumable", "Upload-Offset", "Upload-Length", "Upload-Expires")


def _media(request: web.Request) -> MediaServices:
    return request.app[MEDIA]


async def _stream_part(part: BodyPartReader, target: Path, limit: int, what: str) -> int:
    size = 0
    handle = await asyncio.to_thread(target.open, "wb")
    try:
        while chunk := await part.read_chunk(CHUNK):
            size += len(chunk)
            if size > limit:
                raise PayloadTooLarge(f"{what} is larger than {limit} bytes.")
            await asyncio.to_thread(handle.write, chunk)
    finally:
        await asyncio.to_thread(handle.close)
    return size


@dataclass(frozen=True, slots=True)
class _UploadForm:
    source: Path
    filename: str
    fields: dict[str, str]
    watermark: Path | None


async def _read_upload_form(request: web.Request, directory: Path, limit: int) -> _UploadForm:
    """Stream the parts of an upload form to files in ``directory``.

    Raises:
        MalformedRequest, PayloadTooLarge, ValidationFailed (no `file` part).
    """
    source = directory / "upload"
    fields: dict[str, str] = {}
    watermark: Path | None = None
    filename = None
    try:
        async for part in await request.multipart():
            if not isinstance(part, BodyPartReader):
                continue
            if part.name == "file":
                # Some clients percent-encode the name in Content-Disposition.
                filename = unquote(part.filename or "video")
                await _stream_part(part, source, limit, "The video")
            elif part.name == "watermark_image":
                watermark = directory / "watermark"
                await _stream_part(part, watermark, MAX_WATERMARK_BYTES, "The watermark")
            elif part.name in TEXT_FIELDS:
                fields[part.name] = (await part.read_chunk(4096)).decode("utf-8", "replace")
    except (ValueError, AssertionError) as exc:
        raise MalformedRequest(f"The multipart body is malformed: {exc}.") from None
    if filename is None:
        raise ValidationFailed([FieldError("file", "a `file` part is required")])
    return _UploadForm(source, filename, fields, watermark)


def register_routes(api: Api) -> None:
    tags = ("videos",)
    tus_tags = ("uploads (tus)",)

    @api.route(
        "POST",
        "/api/videos",
        summary="Upload a video",
        response=VideoAccepted,
        status=202,
        errors=[400, 403, 413, 415, 422],
        tags=tags,
        request_body=_MULTIPART_BODY,
    )
    async def upload_video(request: web.Request, principal: Principal) -> VideoAccepted:
        """Multipart upload, streamed to disk (never held in memory). Verified teachers and
        admins only. Past the size limit the answer is 413 at once and nothing is kept."""
        services = _media(request)
        services.videos.require_uploader(principal)
        limit = services.max_upload_bytes
        if request.content_length is not None and request.content_length > limit + (1 << 20):
            raise PayloadTooLarge(f"Uploads are limited to {limit} bytes.")
        if not request.content_type.startswith("multipart/"):
            raise UnsupportedMediaType("Send the video as multipart/form-data with a `file` part.")
        with tempfile.TemporaryDirectory(dir=services.temp_dir) as tmp:
            form = await _read_upload_form(request, Path(tmp), limit)
            choices = choices_from_fields(form.fields, form.filename, form.watermark)
            video = await services.videos.create(principal, form.source, choices)
        return VideoAccepted(id=video.id, status="queued")

    @api.route("GET", "/api/videos", summary="My videos", response=VideoList, tags=tags)
    async def list_videos(request: web.Request, principal: Principal) -> VideoList:
        views = await _media(request).videos.list_own(principal)
        return VideoList(items=[VideoOut.of(v) for v in views])

    @api.route(
        "GET",
        "/api/videos/{video_id}",
        summary="A video's status and playback URLs",
        response=VideoOut,
        errors=[404],
        tags=tags,
    )
    async def get_video(request: web.Request, principal: Principal) -> VideoOut:
        """Progress updates at least every second while processing; `playback_url` is set as
        soon as the first segments are published, before the job ends. URLs are signed and
        expire."""
        view = await _media(request).videos.view(principal, request.match_info["video_id"])
        return VideoOut.of(view)

    @api.route(
        "DELETE",
        "/api/videos/{video_id}",
        summary="Delete a video",
        status=204,
        errors=[404],
        tags=tags,
    )
    async def delete_video(request: web.Request, principal: Principal) -> None:
        """Removes the video and its files; a running transcode is cancelled."""
        await _media(request).videos.delete(principal, request.match_info["video_id"])

    # tus ---------------------------------------------------------------------------------

    @api.route(
        "OPTIONS",
        "/api/uploads/",
        summary="tus capabilities",
        status=204,
        auth=False,
        tags=tus_tags,
        response_headers=("Tus-Version", "Tus-Extension", "Tus-Max-Size"),
    )
    async def tus_options(request: web.Request) -> web.Response:
        return web.Response(
            status=204,
            headers={
                "Tus-Resumable": TUS_VERSION,
                "Tus-Version": TUS_VERSION,
                "Tus-Extension": TUS_EXTENSIONS,
                "Tus-Max-Size": str(_media(request).uploads.max_bytes),
            },
        )

    @api.route(
        "POST",
        "/api/uploads/",
        summary="Start a resumable upload",
        status=201,
        errors=[403, 412, 413, 422],
        tags=tus_tags,
        response_headers=("Location", *_TUS_HEADERS),
        request_body={
            "required": False,
            "content": {"application/offset+octet-stream": {"schema": {"type": "string"}}},
        },
    )
    async def tus_create(request: web.Request, principal: Principal) -> web.Response:
        """tus creation: `Upload-Length` and `Upload-Metadata` (filename, filetype, title,
        watermark_text, watermark_position, watermark_opacity). A body sent along is the
        first chunk (creation-with-upload)."""
        _require_tus(request)
        uploads = _media(request).uploads
        length = _header_int(request, "Upload-Length")
        upload = await uploads.create(
            principal, length, parse_metadata(request.headers.get("Upload-Metadata"))
        )
        if request.body_exists and request.content_type == "application/offset+octet-stream":
            upload = await uploads.append(principal, upload.id, 0, _body(request))
        headers = uploads.headers(upload)
        headers["Location"] = f"/api/uploads/{upload.id}"
        return web.Response(status=201, headers=headers)

    @api.route(
        "HEAD",
        "/api/uploads/{upload_id}",
        summary="Where a resumable upload stands",
        status=200,
        errors=[404, 412],
        tags=tus_tags,
        response_headers=_TUS_HEADERS,
    )
    async def tus_head(request: web.Request, principal: Principal) -> web.Response:
        _require_tus(request)
        uploads = _media(request).uploads
        upload = await uploads.get(principal, request.match_info["upload_id"])
        return web.Response(status=200, headers=uploads.headers(upload))

    @api.route(
        "GET",
        "/api/uploads/{upload_id}",
        summary="A resumable upload as JSON",
        response=UploadOut,
        errors=[404],
        tags=tus_tags,
    )
    async def upload_status(request: web.Request, principal: Principal) -> UploadOut:
        """Includes the video id once the last byte has arrived."""
        upload = await _media(request).uploads.get(principal, request.match_info["upload_id"])
        return UploadOut(
            id=upload.id, offset=upload.offset, length=upload.length, video_id=upload.video_id
        )

    @api.route(
        "PATCH",
        "/api/uploads/{upload_id}",
        summary="Send bytes of a resumable upload",
        status=204,
        errors=[404, 409, 412, 413, 415],
        tags=tus_tags,
        response_headers=(*_TUS_HEADERS, "Cohort-Video-Id"),
        request_body={
            "required": True,
            "content": {"application/offset+octet-stream": {"schema": {"type": "string"}}},
        },
    )
    async def tus_patch(request: web.Request, principal: Principal) -> web.Response:
        """Appends at `Upload-Offset`. The response to the last chunk carries
        `Cohort-Video-Id`, the video now queued for processing."""
        _require_tus(request)
        if request.content_type != "application/offset+octet-stream":
            raise UnsupportedMediaType("PATCH bodies must be application/offset+octet-stream.")
        uploads = _media(request).uploads
        offset = _header_int(request, "Upload-Offset")
        upload = await uploads.append(
            principal, request.match_info["upload_id"], offset, _body(request)
        )
        return web.Response(status=204, headers=uploads.headers(upload))

    @api.route(
        "DELETE",
        "/api/uploads/{upload_id}",
        summary="Abandon a resumable upload",
        status=204,
        errors=[404, 412],
        tags=tus_tags,
    )
    async def tus_terminate(request: web.Request, principal: Principal) -> web.Response:
        _require_tus(request)
        await _media(request).uploads.terminate(principal, request.match_info["upload_id"])
        return web.Response(status=204, headers={"Tus-Resumable": TUS_VERSION})


def _require_tus(request: web.Request) -> None:
    if request.headers.get("Tus-Resumable") != TUS_VERSION:
        raise web.HTTPPreconditionFailed(
            headers={"Tus-Version": TUS_VERSION, "Tus-Resumable": TUS_VERSION},
            text="This endpoint speaks tus 1.0.0: send Tus-Resumable: 1.0.0.",
        )


def _header_int(request: web.Request, name: str) -> int:
    raw = request.headers.get(name, "")
    if not raw.isdigit():
        raise MalformedRequest(f"{name} must be a non-negative integer.")
    return int(raw)


async def _body(request: web.Request) -> AsyncIterator[bytes]:
    # A client that drops mid-request ends the stream; the bytes so far are kept.
    with contextlib.suppress(ConnectionResetError, asyncio.IncompleteReadError):
        async for chunk in request.content.iter_chunked(CHUNK):
            yield chunk


async def serve_media(request: web.Request) -> web.StreamResponse:
    """Playlists, segments and extras behind a signed, expiring path token."""
    obj = await _media(request).videos.open_media(
        request.match_info["token"], request.match_info["video_id"], request.match_info["path"]
    )
    cache = "private, max-age=86400, immutable" if obj.immutable else "private, no-cache"
    if obj.redirect is not None:
        raise web.HTTPFound(obj.redirect, headers={"Cache-Control": "private, no-cache"})
    if obj.path is not None:
        response: web.StreamResponse = web.FileResponse(
            obj.path, headers={"Content-Type": obj.content_type, "Cache-Control": cache}
        )
        return response
    return web.Response(
        body=obj.data, headers={"Content-Type": obj.content_type, "Cache-Control": cache}
    )


def add_media_routes(app: web.Application) -> None:
    app.router.add_get(r"/media/{token}/{video_id:[0-9a-f]{32}}/{path:.+}", serve_media)
