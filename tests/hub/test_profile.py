"""The signed-in user's profile."""

from __future__ import annotations

from typing import Any

import pytest
from aiohttp.test_utils import TestClient

from tests.conftest import sign_up

Client = TestClient[Any, Any]


async def test_get_and_patch_me(client: Client) -> None:
    ana = await sign_up(client, "Ana")
    resp = await client.patch(
        "/api/me",
        json={"display_name": "Ana Lima", "bio": "Learning Rust.", "avatar_color": "#0EA5E9"},
        headers=ana.auth,
    )
    assert resp.status == 200
    user = (await resp.json())["user"]
    assert (user["display_name"], user["bio"], user["avatar_color"]) == (
        "Ana Lima",
        "Learning Rust.",
        "#0ea5e9",
    )
    again = await (await client.get("/api/me", headers=ana.auth)).json()
    assert again["user"] == user
    partial = await client.patch("/api/me", json={"bio": ""}, headers=ana.auth)
    assert (await partial.json())["user"]["display_name"] == "Ana Lima"


@pytest.mark.parametrize(
    "body",
    [
        {},
        {"avatar_color": "blue"},
        {"avatar_color": "#12345"},
        {"display_name": ""},
        {"display_name": "x" * 81},
        {"display_name": "bad\u0007name"},
        {"display_name": None},
        {"bio": "b" * 2001},
        {"email": "new@example.com"},
    ],
)
async def test_bad_profile_changes_are_422_and_change_nothing(client: Client, body: Any) -> None:
    ana = await sign_up(client, "Ana")
    before = await (await client.get("/api/me", headers=ana.auth)).json()
    resp = await client.patch("/api/me", json=body, headers=ana.auth)
    assert resp.status == 422
    assert (await resp.json())["errors"]
    after = await (await client.get("/api/me", headers=ana.auth)).json()
    assert after == before


async def test_me_needs_a_token(client: Client) -> None:
    assert (await client.get("/api/me")).status == 401
    assert (await client.patch("/api/me", json={"bio": "x"})).status == 401
