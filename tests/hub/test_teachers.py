"""Teacher verification: apply, review, approve, reject, and who may do what."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient

from hub.realtime.store import event_data
from hub.services import HUB
from tests.conftest import Account, sign_up

Client = TestClient[Any, Any]
APPLICATION = {
    "qualifications": "MSc in Computer Science; 6 years teaching Python.",
    "experience": "Ran a weekly evening course for 40 adult learners.",
    "links": ["https://example.com/portfolio"],
}


async def apply(client: Client, account: Account, **changes: Any) -> Any:
    return await client.post(
        "/api/teacher-applications", json={**APPLICATION, **changes}, headers=account.auth
    )


async def test_apply_then_admin_approves(
    client: Client, admin: Account, app: web.Application
) -> None:
    student = await sign_up(client, "Lea")
    resp = await apply(client, student)
    assert resp.status == 201
    application = await resp.json()
    assert application["status"] == "pending"
    assert application["links"] == ["https://example.com/portfolio"]
    assert application["applicant"]["email"] == student.email

    queue = await client.get("/api/admin/teacher-applications?status=pending", headers=admin.auth)
    assert queue.status == 200
    assert [a["id"] for a in (await queue.json())["items"]] == [application["id"]]

    inbox = await app[HUB].broker.subscribe(f"user:{student.id}")
    approved = await client.post(
        f"/api/admin/teacher-applications/{application['id']}/approve", headers=admin.auth
    )
    assert approved.status == 200
    body = await approved.json()
    assert body["status"] == "approved"
    assert body["decided_at"] is not None

    me = await (await client.get("/api/me", headers=student.auth)).json()
    assert me["user"]["is_teacher"] is True
    assert me["user"]["roles"] == ["student", "teacher"]

    event = event_data((await asyncio.wait_for(inbox.get(), 5)).data)
    assert event["type"] == "notification"
    notification = event["notification"]
    assert notification["type"] == "teacher_application.decided"
    assert notification["data"] == {
        "application_id": application["id"],
        "status": "approved",
        "reason": None,
    }
    listed = await (await client.get("/api/notifications", headers=student.auth)).json()
    assert listed["unread"] == 1
    assert listed["items"][0]["text"] == "Your teacher application was approved"
    await inbox.close()

    empty = await client.get("/api/admin/teacher-applications?status=pending", headers=admin.auth)
    assert (await empty.json())["items"] == []
    again = await client.post(
        f"/api/admin/teacher-applications/{application['id']}/approve", headers=admin.auth
    )
    assert again.status == 409
    assert (await again.json())["code"] == "already_decided"
    teacher_again = await apply(client, student)
    assert teacher_again.status == 409
    assert (await teacher_again.json())["code"] == "already_teacher"


async def test_reject_with_reason_then_reapply(client: Client, admin: Account) -> None:
    student = await sign_up(client, "Max")
    application = await (await apply(client, student)).json()
    no_reason = await client.post(
        f"/api/admin/teacher-applications/{application['id']}/reject", json={}, headers=admin.auth
    )
    assert no_reason.status == 422
    rejected = await client.post(
        f"/api/admin/teacher-applications/{application['id']}/reject",
        json={"reason": "Please link to a sample lesson."},
        headers=admin.auth,
    )
    assert rejected.status == 200
    assert (await rejected.json())["reason"] == "Please link to a sample lesson."
    me = await (await client.get("/api/me", headers=student.auth)).json()
    assert me["user"]["is_teacher"] is False

    mine = await (await client.get("/api/teacher-applications", headers=student.auth)).json()
    assert [a["status"] for a in mine["items"]] == ["rejected"]
    second = await apply(client, student)
    assert second.status == 201
    mine = await (await client.get("/api/teacher-applications", headers=student.auth)).json()
    assert [a["status"] for a in mine["items"]] == ["pending", "rejected"]


async def test_one_pending_application_at_a_time(client: Client) -> None:
    student = await sign_up(client, "Ivo")
    assert (await apply(client, student)).status == 201
    resp = await apply(client, student)
    assert resp.status == 409
    assert (await resp.json())["code"] == "application_pending"


async def test_concurrent_applications_create_one(client: Client) -> None:
    student = await sign_up(client, "Uma")
    statuses = sorted(
        r.status for r in await asyncio.gather(*(apply(client, student) for _ in range(5)))
    )
    assert statuses == [201, 409, 409, 409, 409]


async def test_students_cannot_review(client: Client, admin: Account) -> None:
    applicant = await sign_up(client, "Ola")
    other = await sign_up(client, "Pim")
    application = await (await apply(client, applicant)).json()
    for method, path, body in (
        ("GET", "/api/admin/teacher-applications", None),
        ("POST", f"/api/admin/teacher-applications/{application['id']}/approve", None),
        ("POST", f"/api/admin/teacher-applications/{application['id']}/reject", {"reason": "no"}),
    ):
        for who in (applicant, other):
            resp = await client.request(method, path, json=body, headers=who.auth)
            assert resp.status == 403, (method, path)
            assert (await resp.json())["code"] == "forbidden"
        anonymous = await client.request(method, path, json=body)
        assert anonymous.status == 401
    queue = await client.get("/api/admin/teacher-applications", headers=admin.auth)
    assert [a["status"] for a in (await queue.json())["items"]] == ["pending"]


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"qualifications": "short"}, "qualifications"),
        ({"experience": ""}, "experience"),
        ({"links": ["not a url"]}, "links.0"),
        ({"links": ["ftp://example.com/x"]}, "links.0"),
        ({"links": [f"https://example.com/{i}" for i in range(11)]}, "links"),
        ({"extra": 1}, "extra"),
    ],
)
async def test_bad_applications_are_422(
    client: Client, changes: dict[str, Any], field: str
) -> None:
    student = await sign_up(client, "Quin")
    resp = await apply(client, student, **changes)
    assert resp.status == 422
    assert field in {e["field"] for e in (await resp.json())["errors"]}
    mine = await (await client.get("/api/teacher-applications", headers=student.auth)).json()
    assert mine["items"] == []


async def test_review_of_unknown_or_malformed_ids(client: Client, admin: Account) -> None:
    missing = await client.post("/api/admin/teacher-applications/999/approve", headers=admin.auth)
    assert missing.status == 404
    assert (await missing.json())["code"] == "not_found"
    garbage = await client.post("/api/admin/teacher-applications/abc/approve", headers=admin.auth)
    assert garbage.status == 404
    assert garbage.content_type == "application/problem+json"
    bad_filter = await client.get(
        "/api/admin/teacher-applications?status=maybe", headers=admin.auth
    )
    assert bad_filter.status == 422
    bad_limit = await client.get("/api/admin/teacher-applications?limit=0", headers=admin.auth)
    assert bad_limit.status == 422


async def test_queue_pages_by_id_cursor(client: Client, admin: Account) -> None:
    ids = []
    for name in ("Ray", "Sol", "Tea"):
        student = await sign_up(client, name)
        ids.append((await (await apply(client, student)).json())["id"])
    first = await (
        await client.get("/api/admin/teacher-applications?limit=2", headers=admin.auth)
    ).json()
    assert [a["id"] for a in first["items"]] == ids[::-1][:2]
    rest = await (
        await client.get(
            f"/api/admin/teacher-applications?limit=2&before={first['items'][-1]['id']}",
            headers=admin.auth,
        )
    ).json()
    assert [a["id"] for a in rest["items"]] == [ids[0]]
