"""The notification outbox: rows written in their cause's transaction, delivered in a batch
with the same result as ``notify`` one row after the other."""

from __future__ import annotations

from typing import Any

from aiohttp import web
from aiohttp.test_utils import TestClient
from sqlalchemy import func, insert, select

from hub.notifications.models import PendingNotification
from hub.notifications.service import Notifications
from hub.services import HUB
from tests.conftest import sign_up
from tests.hub.test_realtime import connect

Client = TestClient[Any, Any]


async def _queue(app: web.Application, *rows: dict[str, Any]) -> None:
    async with app[HUB].db.writing() as conn:
        await conn.execute(insert(PendingNotification), list(rows))


def _sale(teacher: int, buyer: int | None, course: int, at: Any) -> dict[str, Any]:
    return Notifications.pending_values(
        teacher,
        "course.purchased",
        actor_id=buyer,
        data={"course_id": course, "course_title": f"Course {course}", "price": 10},
        group_key=f"course.purchased:{course}",
        at=at,
    )


async def _left(app: web.Application) -> int:
    async with app[HUB].db.connect() as conn:
        return int(await conn.scalar(select(func.count()).select_from(PendingNotification)) or 0)


async def test_a_batch_delivers_as_one_notify_after_the_other(
    client: Client, app: web.Application
) -> None:
    notifications = app[HUB].notifications
    tina = await sign_up(client, "Tina")
    ana, ben, cy = [await sign_up(client, n) for n in ("Ana", "Ben", "Cy")]
    now = app[HUB].clock.now()
    # One unread sale of course 1 exists already: the batch merges into it.
    await notifications.notify(
        tina.id,
        "course.purchased",
        actor=None,
        data={"course_id": 1, "course_title": "Course 1", "price": 10},
        group_key="course.purchased:1",
    )
    await _queue(
        app,
        _sale(tina.id, ana.id, 1, now),
        _sale(tina.id, ben.id, 2, now),
        _sale(tina.id, ben.id, 1, now),
        _sale(tina.id, ana.id, 1, now),  # the same buyer again: counted once
        _sale(tina.id, tina.id, 3, now),  # told of their own act: nobody is told
        _sale(987654, ana.id, 1, now),  # a recipient who is gone: dropped
        _sale(cy.id, ana.id, 4, now),
    )
    await client.put(
        "/api/notifications/preferences",
        json={"muted": {"course.purchased": True}},
        headers=cy.auth,
    )
    await notifications.deliver_pending()  # (unless the hub's own round, every 5 s, was first)
    assert await _left(app) == 0
    views, unread = await notifications.recent(tina.id, before=None, limit=10)
    assert unread == 2
    assert [v.as_json()["text"] for v in views] == [
        "Ben bought Course 2",
        "Ben and 1 other bought Course 1",
    ]
    assert [a["id"] for a in views[1].actors] == [ben.id, ana.id]
    assert (await notifications.recent(cy.id, before=None, limit=10))[0] == []  # muted


async def test_the_hub_delivers_the_outbox_by_itself(client: Client, app: web.Application) -> None:
    """Told of new rows (``wake``), the running hub delivers them within moments, live."""
    tina = await sign_up(client, "Tina")
    ana = await sign_up(client, "Ana")
    sock = await connect(client, tina)
    assert (await sock.subscribe(f"user:{tina.id}"))["op"] == "subscribed"
    await _queue(app, _sale(tina.id, ana.id, 1, app[HUB].clock.now()))
    app[HUB].notifications.wake()
    frames = await sock.recv_until(lambda f: f.get("op") == "message")
    assert frames[-1]["data"]["notification"]["text"] == "Ana bought Course 1"
    await sock.ws.close()
    assert await _left(app) == 0


def test_a_busy_outbox_waits_longer_for_rows_to_merge() -> None:
    from hub.notifications.service import (
        DELIVERY_BUSY_LINGER_SECONDS,
        DELIVERY_BUSY_ROWS,
        DELIVERY_LINGER_SECONDS,
        lingering_after,
    )

    assert DELIVERY_LINGER_SECONDS < DELIVERY_BUSY_LINGER_SECONDS <= 1.0
    assert lingering_after(0) == DELIVERY_LINGER_SECONDS
    assert lingering_after(DELIVERY_BUSY_ROWS - 1) == DELIVERY_LINGER_SECONDS
    assert lingering_after(DELIVERY_BUSY_ROWS) == DELIVERY_BUSY_LINGER_SECONDS
