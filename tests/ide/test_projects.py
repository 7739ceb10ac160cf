"""Projects: creation (with a study group or not), who sees them, members and roles."""

from __future__ import annotations

from typing import Any

from aiohttp.test_utils import TestClient

from tests.conftest import Account, sign_up
from tests.ide.conftest import create_project


async def make_group(client: TestClient[Any, Any], owner: Account, *members: Account) -> int:
    resp = await client.post("/api/groups", json={"name": "Study buddies"}, headers=owner.auth)
    assert resp.status == 201, await resp.text()
    group = await resp.json()
    for member in members:
        joined = await client.post(
            "/api/groups/join", json={"code": group["invite_code"]}, headers=member.auth
        )
        assert joined.status == 200, await joined.text()
    return int(group["id"])


async def test_create_get_and_list(client: TestClient[Any, Any]) -> None:
    ana = await sign_up(client, "Ana")
    made = await create_project(client, ana, "  Snake game ")
    assert made["name"] == "Snake game"
    assert made["doc"] == f"project-{made['id']}"
    assert made["role"] == "owner"
    assert made["owner"]["id"] == ana.id
    assert made["group_id"] is None
    assert [(m["user"]["id"], m["role"]) for m in made["members"]] == [(ana.id, "owner")]
    got = await client.get(f"/api/projects/{made['id']}", headers=ana.auth)
    assert got.status == 200
    assert (await got.json())["doc"] == made["doc"]
    second = await create_project(client, ana, "Second")
    mine = await client.get("/api/me/projects", headers=ana.auth)
    assert [p["id"] for p in (await mine.json())["items"]] == [second["id"], made["id"]]


async def test_bad_input_and_strangers(client: TestClient[Any, Any]) -> None:
    ana = await sign_up(client, "Ana")
    ben = await sign_up(client, "Ben")
    for body in ({"name": ""}, {"name": "   "}, {"name": "x" * 101}, {}, {"name": "a", "x": 1}):
        resp = await client.post("/api/projects", json=body, headers=ana.auth)
        assert resp.status == 422, body
    assert (await client.post("/api/projects", json={"name": "a"})).status == 401
    made = await create_project(client, ana)
    stranger = await client.get(f"/api/projects/{made['id']}", headers=ben.auth)
    assert stranger.status == 403
    assert stranger.content_type == "application/problem+json"
    assert (await client.get("/api/projects/999999", headers=ana.auth)).status == 404
    assert (await client.get("/api/projects/abc", headers=ana.auth)).status == 404
    assert (await (await client.get("/api/me/projects", headers=ben.auth)).json())["items"] == []


async def test_members_and_roles(client: TestClient[Any, Any]) -> None:
    ana = await sign_up(client, "Ana")
    ben = await sign_up(client, "Ben")
    cy = await sign_up(client, "Cy")
    made = await create_project(client, ana)
    url = f"/api/projects/{made['id']}/members"
    resp = await client.post(url, json={"user_id": ben.id, "role": "viewer"}, headers=ana.auth)
    assert resp.status == 200, await resp.text()
    assert (await resp.json())["role"] == "viewer"
    seen = await (await client.get(f"/api/projects/{made['id']}", headers=ben.auth)).json()
    assert seen["role"] == "viewer"
    # Only the owner invites; the owner is not invited; roles are editor or viewer.
    refused = await client.post(url, json={"user_id": cy.id, "role": "editor"}, headers=ben.auth)
    assert refused.status == 403
    own = await client.post(url, json={"user_id": ana.id, "role": "editor"}, headers=ana.auth)
    assert own.status == 409
    bad = await client.post(url, json={"user_id": cy.id, "role": "owner"}, headers=ana.auth)
    assert bad.status == 422
    nobody = await client.post(url, json={"user_id": 99999, "role": "editor"}, headers=ana.auth)
    assert nobody.status == 404
    # Changing a role.
    resp = await client.post(url, json={"user_id": ben.id, "role": "editor"}, headers=ana.auth)
    assert (await resp.json())["role"] == "editor"
    detail = await (await client.get(f"/api/projects/{made['id']}", headers=ana.auth)).json()
    assert [(m["user"]["id"], m["role"]) for m in detail["members"]] == [
        (ana.id, "owner"),
        (ben.id, "editor"),
    ]
    mine = await (await client.get("/api/me/projects", headers=ben.auth)).json()
    assert [(p["id"], p["role"]) for p in mine["items"]] == [(made["id"], "editor")]


async def test_group_members_are_editors(client: TestClient[Any, Any]) -> None:
    ana = await sign_up(client, "Ana")
    ben = await sign_up(client, "Ben")
    eve = await sign_up(client, "Eve")
    group = await make_group(client, ana, ben)
    # Only a member may attach a group.
    refused = await client.post(
        "/api/projects", json={"name": "Ours", "group_id": group}, headers=eve.auth
    )
    assert refused.status == 403
    made = await create_project(client, ben, "Ours", group_id=group)
    assert made["group_id"] == group
    seen = await (await client.get(f"/api/projects/{made['id']}", headers=ana.auth)).json()
    assert seen["role"] == "editor"
    mine = await (await client.get("/api/me/projects", headers=ana.auth)).json()
    assert [(p["id"], p["role"]) for p in mine["items"]] == [(made["id"], "editor")]
    assert (await client.get(f"/api/projects/{made['id']}", headers=eve.auth)).status == 403
    # An explicit role wins over the group's.
    url = f"/api/projects/{made['id']}/members"
    await client.post(url, json={"user_id": ana.id, "role": "viewer"}, headers=ben.auth)
    seen = await (await client.get(f"/api/projects/{made['id']}", headers=ana.auth)).json()
    assert seen["role"] == "viewer"
