"""A teacher uploads a clip in the studio (tus), watches it transcode live, and plays it in
the HLS player: quality switches and the picture advances."""

from __future__ import annotations

from pathlib import Path

import pytest
from aiohttp.test_utils import TestServer
from playwright.async_api import Browser, expect

from hub.services import HUB
from tests.media.clips import make_clip
from tests.web.conftest import ServerFactory, log_in_page, new_page, save_screenshots

pytestmark = [pytest.mark.browser, pytest.mark.timeout(180)]


@pytest.fixture
async def server(make_server: ServerFactory) -> TestServer:
    return await make_server(transcode_preset="ultrafast")


async def test_upload_transcode_play_and_switch_quality(
    server: TestServer, browser: Browser, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    base = str(server.make_url("/")).rstrip("/")
    await server.app[HUB].identity.ensure_account(
        "tess@example.com", "lights camera 2026", "Tess Teacher", admin=False, teacher=True
    )
    clip = make_clip(tmp_path / "Photosynthesis.mp4", width=854, height=480, seconds=14)
    page = await new_page(browser)
    try:
        await log_in_page(page, base, "tess@example.com", "lights camera 2026")
        await page.get_by_test_id("studio-link").click()
        await page.get_by_test_id("upload-input").set_input_files(str(clip))
        await expect(page.get_by_test_id("upload-title")).to_have_value("Photosynthesis")
        await page.get_by_test_id("upload-start").click()

        # Upload, then the live transcode, then the player.
        await expect(page.get_by_test_id("upload-percent")).to_have_text("100%")
        await expect(page.get_by_test_id("video-status")).to_have_text("ready", timeout=90_000)
        video = page.get_by_test_id("player-video")
        await expect(video).to_be_attached()

        quality = page.get_by_test_id("quality-menu")
        await expect(quality.locator("option")).to_have_count(3)  # Auto, 480p, 360p
        await page.get_by_test_id("play").click()
        await page.wait_for_function(
            "v => v.currentTime > 1", arg=await video.element_handle(), timeout=30_000
        )
        await quality.select_option("360p")
        await expect(page.get_by_test_id("current-quality")).to_have_text("360p", timeout=30_000)
        before = await video.evaluate("v => v.currentTime")
        await page.wait_for_function(
            "([v, t]) => v.currentTime > t + 1",
            arg=[await video.element_handle(), before],
            timeout=30_000,
        )
        await quality.select_option("480p")
        await expect(page.get_by_test_id("current-quality")).to_have_text("480p", timeout=30_000)
        # The studio list shows the video as ready.
        row = page.get_by_test_id("video-row")
        await expect(row.get_by_test_id("row-status")).to_have_text("ready")
    except Exception:
        await save_screenshots(request.node.name, {"teacher": page})
        raise
