"""Uploading, processing, status, playback authorization and deletion through the API."""

from __future__ import annotations

import asyncio
import io
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient

from hub.clock import FakeClock
from hub.realtime.store import event_data
from hub.services import HUB
from media.handlers import MEDIA
from tests.conftest import Account, sign_up
from tests.media.clips import count_frames, make_clip
from tests.media.conftest import next_event

pytestmark = pytest.mark.timeout(120)
Client = TestClient[Any, Any]


def form(path: Path, **fields: str) -> aiohttp.FormData:
    data = aiohttp.FormData()
    for name, value in fields.items():
        data.add_field(name, value)
    data.add_field("file", path.open("rb"), filename=path.name, content_type="video/mp4")
    return data


async def upload(client: Client, account: Account, path: Path, **fields: str) -> Any:
    return await client.post("/api/videos", data=form(path, **fields), headers=account.auth)


async def test_upload_transcode_and_play(
    client: Client, app: web.Application, teacher: Account, tmp_path: Path
) -> None:
    clip = make_clip(tmp_path / "Lesson one.mp4", width=640, height=360, seconds=4)
    inbox = await app[HUB].broker.subscribe(f"user:{teacher.id}")
    resp = await upload(client, teacher, clip, watermark_text="Cohort")
    assert resp.status == 202
    accepted = await resp.json()
    assert accepted["status"] == "queued"
    video_id = accepted["id"]

    kinds, progress = [], []
    async with asyncio.timeout(60):
        while not kinds or kinds[-1] != "video.ready":
            event = event_data((await inbox.get()).data)
            assert event["video_id"] == video_id
            kinds.append(event["type"])
            if event["type"] == "video.progress":
                progress.append(event["progress"])
    await inbox.close()
    assert kinds[0] == "video.queued"
    assert "video.playable" in kinds
    assert progress
    assert progress == sorted(progress)

    video = await (await client.get(f"/api/videos/{video_id}", headers=teacher.auth)).json()
    assert video["status"] == "ready"
    assert video["progress"] == 100
    assert video["title"] == "Lesson one"
    assert (video["width"], video["height"]) == (640, 360)
    assert video["duration"] == pytest.approx(4, abs=0.1)
    assert [(r["name"], r["height"]) for r in video["renditions"]] == [("360p", 360)]
    assert video["renditions"][0]["bandwidth"] > 0

    master = await client.get(video["playback_url"])
    assert master.status == 200
    assert master.content_type == "application/vnd.apple.mpegurl"
    text = await master.text()
    assert "360p/index.m3u8" in text
    # Relative URIs resolve under the same signed path.
    base = video["playback_url"].rsplit("/", 1)[0]
    media_playlist = await (await client.get(f"{base}/360p/index.m3u8")).text()
    assert "#EXT-X-ENDLIST" in media_playlist
    segment = await client.get(f"{base}/360p/seg_00000.m4s")
    assert segment.status == 200
    assert len(await segment.read()) > 1000
    assert "immutable" in segment.headers["Cache-Control"]
    for url in (video["poster_url"], video["storyboard_url"], video["download_url"]):
        assert (await client.get(url)).status == 200
    listed = await (await client.get("/api/videos", headers=teacher.auth)).json()
    assert [v["id"] for v in listed["items"]] == [video_id]


async def test_playback_urls_are_signed_expiring_and_per_video(
    client: Client, app: web.Application, teacher: Account, tmp_path: Path, clock: FakeClock
) -> None:
    inbox = await app[HUB].broker.subscribe(f"user:{teacher.id}")
    ids = []
    for n in range(2):
        clip = make_clip(tmp_path / f"v{n}.mp4", seconds=2, audio=False)
        ids.append((await (await upload(client, teacher, clip)).json())["id"])
    for _ in ids:
        await next_event(inbox, "video.ready")
    first = await (await client.get(f"/api/videos/{ids[0]}", headers=teacher.auth)).json()
    token = first["playback_url"].split("/")[2]

    assert (await client.get(first["playback_url"])).status == 200
    # Unsigned, forged, and another video's token.
    assert (await client.get(f"/media/x/{ids[0]}/master.m3u8")).status == 403
    forged = token[:-4] + ("0000" if not token.endswith("0000") else "1111")
    assert (await client.get(f"/media/{forged}/{ids[0]}/master.m3u8")).status == 403
    foreign = await client.get(f"/media/{token}/{ids[1]}/master.m3u8")
    assert foreign.status == 403
    assert (await foreign.json())["code"] == "forbidden"
    # Path tricks name nothing.
    assert (await client.get(f"/media/{token}/{ids[0]}/..%2F..%2Fsecret")).status in (403, 404)
    assert (await client.get(f"/media/{token}/{ids[0]}/nope.m3u8")).status == 404
    # Expired.
    clock.advance(4 * 3600 + 1)
    assert (await client.get(first["playback_url"])).status == 403


async def test_only_teachers_and_admins_upload(client: Client, tmp_path: Path) -> None:
    student = await sign_up(client, "Stu")
    clip = make_clip(tmp_path / "v.mp4", seconds=1, audio=False)
    resp = await upload(client, student, clip)
    assert resp.status == 403
    assert (await client.post("/api/videos", data=form(clip))).status == 401


async def test_others_cannot_see_a_video(
    client: Client, app: web.Application, teacher: Account, tmp_path: Path
) -> None:
    clip = make_clip(tmp_path / "v.mp4", seconds=1, audio=False)
    video_id = (await (await upload(client, teacher, clip)).json())["id"]
    student = await sign_up(client, "Sly")
    assert (await client.get(f"/api/videos/{video_id}", headers=student.auth)).status == 404
    assert (await client.delete(f"/api/videos/{video_id}", headers=student.auth)).status == 404
    assert (await client.get(f"/api/videos/{video_id}", headers=teacher.auth)).status == 200


@pytest.mark.parametrize("bad", ["empty", "no-file", "bad-position", "bad-opacity", "long-title"])
async def test_bad_uploads_are_422_and_store_nothing(
    client: Client, app: web.Application, teacher: Account, tmp_path: Path, bad: str
) -> None:
    clip = make_clip(tmp_path / "v.mp4", seconds=1, audio=False)
    data = aiohttp.FormData(default_to_multipart=True)
    if bad == "empty":
        data.add_field("file", io.BytesIO(b""), filename="empty.mp4")
    elif bad == "no-file":
        data.add_field("title", "Just a title")
    else:
        fields = {
            "bad-position": ("watermark_position", "middle-ish"),
            "bad-opacity": ("watermark_opacity", "lots"),
            "long-title": ("title", "t" * 201),
        }
        data.add_field(*fields[bad])
        data.add_field("file", clip.open("rb"), filename="v.mp4")
    resp = await client.post("/api/videos", data=data, headers=teacher.auth)
    assert resp.status == 422
    assert (await resp.json())["errors"]
    listed = await (await client.get("/api/videos", headers=teacher.auth)).json()
    assert listed["items"] == []
    media_root = app[HUB].settings.media_root
    assert not any(media_root.rglob("*")) or not any((media_root / "raw").rglob("*"))


async def test_oversized_upload_is_413_and_leaves_nothing(
    client: Client, app: web.Application, teacher: Account, tmp_path: Path
) -> None:
    big = tmp_path / "big.mp4"
    big.write_bytes(b"\0" * (6 * 1024 * 1024))  # limit is 5 MiB in these tests
    data = aiohttp.FormData()
    # No Content-Length up front (chunked): the limit must hold while streaming.
    data.add_field("file", big.open("rb"), filename="big.mp4")
    resp = await client.post("/api/videos", data=data, headers=teacher.auth, chunked=True)
    assert resp.status == 413
    assert (await resp.json())["code"] == "payload_too_large"
    temp_dir = app[MEDIA].temp_dir
    assert list(temp_dir.iterdir()) == []
    assert not (app[HUB].settings.media_root / "raw").exists()


async def test_non_multipart_is_415(client: Client, teacher: Account) -> None:
    resp = await client.post("/api/videos", json={"file": "x"}, headers=teacher.auth)
    assert resp.status == 415


async def test_bad_input_fails_the_job_with_a_reason(
    client: Client, app: web.Application, teacher: Account, tmp_path: Path
) -> None:
    inbox = await app[HUB].broker.subscribe(f"user:{teacher.id}")
    audio_only = make_clip(tmp_path / "song.mp4", video=False, seconds=2)
    garbage = tmp_path / "garbage.mp4"
    garbage.write_bytes(b"not a video at all" * 1000)
    ids = [
        (await (await upload(client, teacher, path)).json())["id"] for path in (audio_only, garbage)
    ]
    failures = {}
    for _ in ids:
        event = await next_event(inbox, "video.failed")
        failures[event["video_id"]] = event["error"]
    assert "no video stream" in failures[ids[0]]
    assert "Not a readable video file" in failures[ids[1]]
    for video_id in ids:
        video = await (await client.get(f"/api/videos/{video_id}", headers=teacher.auth)).json()
        assert video["status"] == "failed"
        assert video["error"] == failures[video_id]
        assert video["playback_url"] is None


async def test_delete_removes_video_and_files(
    client: Client, app: web.Application, teacher: Account, tmp_path: Path
) -> None:
    inbox = await app[HUB].broker.subscribe(f"user:{teacher.id}")
    clip = make_clip(tmp_path / "v.mp4", seconds=2, audio=False)
    video_id = (await (await upload(client, teacher, clip)).json())["id"]
    await next_event(inbox, "video.ready")
    root = app[HUB].settings.media_root
    assert (root / "processed" / video_id / "master.m3u8").exists()
    resp = await client.delete(f"/api/videos/{video_id}", headers=teacher.auth)
    assert resp.status == 204
    assert not (root / "processed" / video_id).exists()
    assert not (root / "raw" / video_id).exists()
    assert (await client.get(f"/api/videos/{video_id}", headers=teacher.auth)).status == 404


async def test_delete_cancels_a_running_job(
    client: Client, app: web.Application, teacher: Account, tmp_path: Path
) -> None:
    inbox = await app[HUB].broker.subscribe(f"user:{teacher.id}")
    # Small on disk (a still colour) but a minute of 720p: seconds of work to interrupt.
    clip = make_clip(
        tmp_path / "long.mp4", width=1280, height=720, seconds=60, audio=False, pattern="color"
    )
    video_id = (await (await upload(client, teacher, clip)).json())["id"]
    await next_event(inbox, "video.progress")
    resp = await client.delete(f"/api/videos/{video_id}", headers=teacher.auth)
    assert resp.status == 204
    # The worker stops, cleans up and says so; it never got to the end.
    await next_event(inbox, "video.cancelled")
    root = app[HUB].settings.media_root
    assert not (root / "processed" / video_id).exists()
    assert not (root / "raw" / video_id).exists()
    kinds = [event_data(m.data)["type"] for m in inbox.drain()]
    assert "video.ready" not in kinds


async def test_a_long_video_is_encoded_in_parts_and_stitched(
    aiohttp_client: Any, tmp_path: Path, database_url: str, clock: FakeClock, fast_hashing: Any
) -> None:
    from hub.app import create_app
    from tests.conftest import log_in, make_settings

    settings = make_settings(
        tmp_path,
        database_url,
        transcode_preset="ultrafast",
        transcode_part_seconds=12,
        job_backoff_seconds=0,
    )
    client = await aiohttp_client(create_app(settings, clock=clock, hashing=fast_hashing))
    hub = client.app[HUB]
    teacher = Account("pat@example.com", "teaching all day", "Pat")
    user = await hub.identity.ensure_account(
        teacher.email, teacher.password, "Pat", admin=False, teacher=True
    )
    await log_in(client, teacher)
    inbox = await hub.broker.subscribe(f"user:{user.id}")
    clip = make_clip(tmp_path / "long.mp4", seconds=30)
    video_id = (await (await upload(client, teacher, clip)).json())["id"]
    stages = []
    async with asyncio.timeout(90):
        while True:
            event = event_data((await inbox.get()).data)
            if event["type"] == "video.progress":
                stages.append(event["stage"])
            if event["type"] in ("video.ready", "video.failed"):
                break
    assert event["type"] == "video.ready", event
    assert any(stage.startswith("encoding part") for stage in stages)
    assert "stitching" in stages
    video = await (await client.get(f"/api/videos/{video_id}", headers=teacher.auth)).json()
    assert video["status"] == "ready"
    root = settings.media_root
    # Every frame made it through, and the pieces are cleaned up.
    assert count_frames(root / "processed" / video_id / "download.mp4") == 30 * 30
    assert not (root / "parts" / video_id).exists()
    base = video["playback_url"].rsplit("/", 1)[0]
    playlist = await (await client.get(f"{base}/240p/index.m3u8")).text()
    assert playlist.count("#EXTINF") == 6  # 2 s, then 6 s segments: 2+6+6 | 6+6+4
    assert "#EXT-X-ENDLIST" in playlist
