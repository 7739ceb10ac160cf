"""Resumable uploads (tus 1.0) with a real tus client, interruptions and bad requests."""

from __future__ import annotations

import asyncio
import base64
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer
from tusclient.client import TusClient

from hub.clock import FakeClock
from hub.services import HUB
from media.handlers import MEDIA
from tests.conftest import Account, log_in, sign_up
from tests.media.clips import make_clip
from tests.media.conftest import next_event

pytestmark = pytest.mark.timeout(120)
TUS = {"Tus-Resumable": "1.0.0"}


def metadata(**values: str) -> str:
    return ",".join(f"{k} {base64.b64encode(v.encode()).decode()}" for k, v in values.items())


async def test_tuspy_upload_interrupted_and_resumed(
    client: Any, app: web.Application, teacher: Account, tmp_path: Path
) -> None:
    server: TestServer = client.server
    clip = make_clip(tmp_path / "lecture.mp4", seconds=3)
    size = clip.stat().st_size
    endpoint = str(server.make_url("/api/uploads/"))
    inbox = await app[HUB].broker.subscribe(f"user:{teacher.id}")

    def first_part() -> tuple[str, int]:
        tus = TusClient(endpoint, headers=teacher.auth)
        with clip.open("rb") as stream:  # tuspy leaves files it opens itself unclosed
            uploader = tus.uploader(
                file_stream=stream,
                chunk_size=64 * 1024,
                metadata={"title": "Lecture 1", "filename": clip.name},
            )
            uploader.upload(stop_at=size // 2)  # then the connection "drops"
            return str(uploader.url), uploader.offset

    url, sent = await asyncio.to_thread(first_part)
    assert 0 < sent < size

    def resume() -> tuple[int, int]:
        tus = TusClient(endpoint, headers=teacher.auth)
        with clip.open("rb") as stream:
            uploader = tus.uploader(file_stream=stream, chunk_size=64 * 1024, url=url)
            start = uploader.get_offset()  # asks the server (HEAD) where it stands
            uploader.upload()
            return start, uploader.offset

    start, end = await asyncio.to_thread(resume)
    assert start == sent  # resumed, not restarted
    assert end == size

    upload_id = url.rsplit("/", 1)[1]
    status = await (await client.get(f"/api/uploads/{upload_id}", headers=teacher.auth)).json()
    assert status["offset"] == status["length"] == size
    video_id = status["video_id"]
    assert video_id
    ready = await next_event(inbox, "video.ready")
    assert ready["video_id"] == video_id
    video = await (await client.get(f"/api/videos/{video_id}", headers=teacher.auth)).json()
    assert video["title"] == "Lecture 1"
    # The partial file is gone once the video owns the bytes.
    assert not any(app[HUB].settings.data_dir.joinpath("uploads").iterdir())


async def test_bytes_of_a_broken_request_are_kept(
    client: Any, app: web.Application, teacher: Account, tmp_path: Path
) -> None:
    server: TestServer = client.server
    payload = make_clip(tmp_path / "v.mp4", seconds=2).read_bytes()
    created = await client.post(
        "/api/uploads/",
        headers={
            **TUS,
            **teacher.auth,
            "Upload-Length": str(len(payload)),
            "Upload-Metadata": metadata(filename="v.mp4"),
        },
    )
    assert created.status == 201
    location = created.headers["Location"]

    # A PATCH whose connection dies half-way through its body.
    half = len(payload) // 2
    _reader, writer = await asyncio.open_connection(server.host, server.port)
    head = (
        f"PATCH {location} HTTP/1.1\r\nHost: {server.host}\r\n"
        f"Authorization: {teacher.auth['Authorization']}\r\nTus-Resumable: 1.0.0\r\n"
        f"Upload-Offset: 0\r\nContent-Type: application/offset+octet-stream\r\n"
        f"Content-Length: {len(payload)}\r\n\r\n"
    )
    writer.write(head.encode() + payload[:half])
    await writer.drain()
    writer.close()
    await writer.wait_closed()

    # Resume from wherever the server says it stands. Until the broken request's handler
    # has finished, a PATCH either waits for it (one upload, one writer) or, having read a
    # stale offset, gets 409: ask again.
    async with asyncio.timeout(10):
        while True:
            head_resp = await client.head(location, headers={**TUS, **teacher.auth})
            offset = int(head_resp.headers["Upload-Offset"])
            assert 0 <= offset <= half
            rest = await client.patch(
                location,
                data=payload[offset:],
                headers={
                    **TUS,
                    **teacher.auth,
                    "Upload-Offset": str(offset),
                    "Content-Type": "application/offset+octet-stream",
                },
            )
            if rest.status != 409:
                break
    assert rest.status == 204
    assert rest.headers["Upload-Offset"] == str(len(payload))
    video_id = rest.headers["Cohort-Video-Id"]
    stored = app[HUB].settings.media_root / "raw" / video_id / "source"
    assert stored.read_bytes() == payload  # not a byte lost or doubled


async def test_protocol_errors(client: Any, app: web.Application, teacher: Account) -> None:
    options = await client.options("/api/uploads/")
    assert options.status == 204
    assert options.headers["Tus-Version"] == "1.0.0"
    assert "creation" in options.headers["Tus-Extension"]
    assert options.headers["Tus-Max-Size"] == str(5 * 1024 * 1024)

    no_version = await client.post("/api/uploads/", headers={**teacher.auth, "Upload-Length": "10"})
    assert no_version.status == 412
    assert no_version.headers["Tus-Version"] == "1.0.0"
    too_big = await client.post(
        "/api/uploads/", headers={**TUS, **teacher.auth, "Upload-Length": str(50 * 1024 * 1024)}
    )
    assert too_big.status == 413
    for bad_length in ("", "-1", "abc"):
        resp = await client.post(
            "/api/uploads/", headers={**TUS, **teacher.auth, "Upload-Length": bad_length}
        )
        assert resp.status == 400
    bad_meta = await client.post(
        "/api/uploads/",
        headers={**TUS, **teacher.auth, "Upload-Length": "10", "Upload-Metadata": "title !!!"},
    )
    assert bad_meta.status == 400
    bad_choice = await client.post(
        "/api/uploads/",
        headers={
            **TUS,
            **teacher.auth,
            "Upload-Length": "10",
            "Upload-Metadata": metadata(watermark_position="nowhere"),
        },
    )
    assert bad_choice.status == 422

    created = await client.post(
        "/api/uploads/", headers={**TUS, **teacher.auth, "Upload-Length": "10"}
    )
    location = created.headers["Location"]
    patch = {**TUS, **teacher.auth, "Content-Type": "application/offset+octet-stream"}
    wrong_offset = await client.patch(
        location, data=b"abc", headers={**patch, "Upload-Offset": "3"}
    )
    assert wrong_offset.status == 409
    wrong_type = await client.patch(
        location, data=b"abc", headers={**patch, "Upload-Offset": "0", "Content-Type": "text/plain"}
    )
    assert wrong_type.status == 415
    past_end = await client.patch(location, data=b"x" * 11, headers={**patch, "Upload-Offset": "0"})
    assert past_end.status == 413
    head = await client.head(location, headers={**TUS, **teacher.auth})
    assert head.headers["Upload-Offset"] == "10"  # what fitted was kept

    stranger = await sign_up(client, "Eve")
    assert (await client.head(location, headers={**TUS, **stranger.auth})).status == 404
    student_create = await client.post(
        "/api/uploads/", headers={**TUS, **stranger.auth, "Upload-Length": "10"}
    )
    assert student_create.status == 403

    deleted = await client.delete(location, headers={**TUS, **teacher.auth})
    assert deleted.status == 204
    assert (await client.head(location, headers={**TUS, **teacher.auth})).status == 404


async def test_unfinished_uploads_expire(
    client: Any, app: web.Application, teacher: Account, clock: FakeClock
) -> None:
    created = await client.post(
        "/api/uploads/", headers={**TUS, **teacher.auth, "Upload-Length": "100"}
    )
    location = created.headers["Location"]
    assert "Upload-Expires" in created.headers
    clock.advance(25 * 3600)
    assert await app[MEDIA].uploads.expire() == 1
    await log_in(client, teacher)  # a day later the access token has long expired
    assert (await client.head(location, headers={**TUS, **teacher.auth})).status == 404
    assert not any(app[HUB].settings.data_dir.joinpath("uploads").iterdir())
