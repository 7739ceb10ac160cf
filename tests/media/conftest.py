"""Fixtures for media tests: a hub with fast transcoding settings and a verified teacher."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient

from hub.app import create_app
from hub.broker import Subscription
from hub.clock import FakeClock
from hub.realtime.store import event_data
from hub.services import HUB
from hub.settings import Settings
from tests.conftest import Account, log_in, make_settings


@pytest.fixture
def settings(tmp_path: Path, database_url: str) -> Settings:
    return make_settings(
        tmp_path,
        database_url,
        transcode_preset="ultrafast",
        job_backoff_seconds=0,
        max_upload_bytes=5 * 1024 * 1024,
    )


@pytest.fixture
def app(settings: Settings, clock: FakeClock, fast_hashing: Any) -> web.Application:
    return create_app(settings, clock=clock, hashing=fast_hashing)


@pytest.fixture
async def teacher(client: TestClient[Any, Any], app: web.Application) -> Account:
    account = Account("tara@example.com", "teaching all day", "Tara")
    user = await app[HUB].identity.ensure_account(
        account.email, account.password, account.display_name, admin=False, teacher=True
    )
    account.id = user.id
    await log_in(client, account)
    return account


async def next_event(inbox: Subscription, kind: str, within: float = 60) -> dict[str, Any]:
    """The next event of ``kind`` on a user channel, skipping others."""
    async with asyncio.timeout(within):
        while True:
            event: dict[str, Any] = event_data((await inbox.get()).data)
            if event["type"] == kind:
                return event
