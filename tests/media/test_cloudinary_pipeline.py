"""The whole pipeline on the Cloudinary backend, against the local stand-in of its APIs."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import web

from hub.app import create_app
from hub.clock import FakeClock
from hub.services import HUB
from media.transcode import playlist_segments
from tests.conftest import Account, make_settings
from tests.media.clips import make_clip
from tests.media.conftest import next_event
from tests.media.fake_cloudinary import FakeCloudinary

pytestmark = pytest.mark.timeout(120)


@pytest.fixture
async def fake() -> AsyncIterator[FakeCloudinary]:
    async with FakeCloudinary() as server:
        yield server


@pytest.fixture
def app(
    tmp_path: Path, database_url: str, clock: FakeClock, fast_hashing: Any, fake: FakeCloudinary
) -> web.Application:
    settings = make_settings(
        tmp_path,
        database_url,
        storage="cloudinary",
        cloudinary_url=fake.cloudinary_url(),
        transcode_preset="ultrafast",
    )
    return create_app(settings, clock=clock, hashing=fast_hashing)


async def test_segments_are_served_from_cloudinary(
    client: Any, app: web.Application, teacher: Account, tmp_path: Path, fake: FakeCloudinary
) -> None:
    inbox = await app[HUB].broker.subscribe(f"user:{teacher.id}")
    clip = make_clip(tmp_path / "v.mp4", width=640, height=360, seconds=8)
    with clip.open("rb") as fh:
        resp = await client.post("/api/videos", data={"file": fh}, headers=teacher.auth)
    video_id = (await resp.json())["id"]
    await next_event(inbox, "video.ready")
    video = await (await client.get(f"/api/videos/{video_id}", headers=teacher.auth)).json()

    # Nothing of the video stays on the hub's disk: raw and processed files live in Cloudinary.
    assert not (app[HUB].settings.media_root / "processed").exists()
    stored = fake.public_ids()
    assert any(p.endswith(f"raw/{video_id}/source") for p in stored)
    assert any(p.endswith(f"processed/{video_id}/360p/seg_00000.m4s") for p in stored)

    master = await (await client.get(video["playback_url"])).text()
    assert "360p/index.m3u8" in master
    base = video["playback_url"].rsplit("/", 1)[0]
    rung = await (await client.get(f"{base}/360p/index.m3u8")).text()
    segments = playlist_segments(rung)
    assert len(segments) == 2
    # The playlist points straight at signed CDN URLs for the init section and segments.
    assert f'URI="{fake.base_url}' in rung
    async with aiohttp.ClientSession() as cdn:
        for _duration, uri in segments:
            assert uri.startswith(fake.base_url)
            async with cdn.get(uri) as segment:
                assert segment.status == 200
                assert len(await segment.read()) > 1000
    # Extras redirect to the CDN.
    poster = await client.get(video["poster_url"], allow_redirects=False)
    assert poster.status == 302
    assert poster.headers["Location"].startswith(fake.base_url)
    # Deleting removes the objects from Cloudinary too.
    assert (await client.delete(f"/api/videos/{video_id}", headers=teacher.auth)).status == 204
    assert not [p for p in fake.public_ids() if video_id in p]
