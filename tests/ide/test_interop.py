"""Stock clients: Node's ``yjs`` + ``y-websocket`` and pycrdt editing one document through the
hub at once, on one hub and across two hubs sharing Redis."""

from __future__ import annotations

import asyncio
import dataclasses
import os
import uuid
from typing import Any

import pytest
from aiohttp.test_utils import TestClient

from hub.clock import FakeClock
from ide.protocol import FrameKind
from ide.services import IDE
from tests.conftest import log_in, sign_up
from tests.ide.conftest import (
    NodeClients,
    RawSocket,
    create_project,
    doc_until,
    file_text,
    open_socket,
    py_client,
)


async def test_node_and_pycrdt_clients_converge(
    client: TestClient[Any, Any], node: NodeClients
) -> None:
    ana = await sign_up(client, "Ana")
    ben = await sign_up(client, "Ben")
    project = await create_project(client, ana, "Together")
    await client.post(
        f"/api/projects/{project['id']}/members",
        json={"user_id": ben.id, "role": "editor"},
        headers=ana.auth,
    )
    doc = project["doc"]
    await node.open("a", client, ana, doc)
    await node.open("b", client, ben, doc)
    assert (await node.call("files", name="a")) == {"main.py": ""}
    assert (await node.call("meta", name="b"))["name"] == "Together"
    async with py_client(client, ana, doc) as py:
        # Everyone types at once: two Node clients at random places, pycrdt at the start.
        typing = [
            node.call("type", name="a", path="main.py", count=60, alphabet="abc", delayMs=2),
            node.call("type", name="b", path="main.py", count=60, alphabet="XYZ", delayMs=2),
        ]

        async def py_types() -> None:
            for _ in range(30):
                py.text("main.py").insert(0, "p")
                await asyncio.sleep(0.003)

        await asyncio.gather(*typing, py_types())
        total = 150
        a = await node.call("waitLength", name="a", path="main.py", length=total)
        b = await node.call("waitLength", name="b", path="main.py", length=total)
        await doc_until(py.doc, lambda: len(file_text(py.doc, "main.py") or "") == total)
        assert a == b == file_text(py.doc, "main.py")
        assert sorted(a) == sorted("abc" * 20 + "XYZ" * 20 + "p" * 30)
        # Files added on one side appear on the others; non-ASCII text survives the trip.
        await node.call("insert", name="b", path="notes.md", index=0, text="héllo 👋")
        await doc_until(py.doc, lambda: file_text(py.doc, "notes.md") == "héllo 👋")
        await node.call("waitText", name="a", path="notes.md", text="héllo 👋")
        # Cursors: each Node client sees the other's awareness (the server adds none).
        await node.call("setCursor", name="a", anchor=3)
        await node.call("waitAwareness", name="b", count=2)
        states = await node.call("awareness", name="b")
        assert sorted(s["user"]["name"] for s in states.values()) == ["Ana", "Ben"]
        # A client that leaves disappears from the others' awareness.
        await node.call("close", name="a")
        await node.call("waitAwareness", name="b", count=1, timeout=5000)


async def test_viewer_through_a_stock_client(
    client: TestClient[Any, Any], node: NodeClients
) -> None:
    ana = await sign_up(client, "Ana")
    ben = await sign_up(client, "Ben")
    project = await create_project(client, ana)
    await client.post(
        f"/api/projects/{project['id']}/members",
        json={"user_id": ben.id, "role": "viewer"},
        headers=ana.auth,
    )
    await node.open("owner", client, ana, project["doc"])
    await node.open("viewer", client, ben, project["doc"])
    await node.call("insert", name="viewer", path="main.py", index=0, text="nope")
    await node.call("insert", name="owner", path="main.py", index=0, text="yes")
    # The viewer's copy has both (concurrent inserts order by client id).
    seen = await node.call("waitLength", name="viewer", path="main.py", length=7)
    assert sorted(seen) == sorted("yesnope")
    # The owner never sees the viewer's edit, and the viewer stays connected.
    assert await node.call("text", name="owner", path="main.py") == "yes"
    await node.call("waitAwareness", name="owner", count=2)
    assert (await node.call("status", name="viewer"))["connected"] is True


# Two hub processes --------------------------------------------------------------------------


async def two_hubs(
    aiohttp_client: Any, settings: Any, redis_url: str, clock: FakeClock, fast_hashing: Any
) -> tuple[TestClient[Any, Any], TestClient[Any, Any]]:
    """Two hub apps on one database, each with its own RedisBroker on one Redis."""
    from hub.app import create_app

    prefix = f"t{os.getpid()}-{uuid.uuid4().hex[:8]}"
    clients = []
    for _ in range(2):
        app = create_app(
            settings.model_copy(update={"redis_url": redis_url, "redis_prefix": prefix}),
            clock=clock,
            hashing=fast_hashing,
        )
        clients.append(await aiohttp_client(app))
    return clients[0], clients[1]


@pytest.mark.redis
async def test_clients_on_two_hubs_edit_one_document(
    aiohttp_client: Any,
    settings: Any,
    redis_url: str,
    clock: FakeClock,
    fast_hashing: Any,
    node: NodeClients,
) -> None:
    one, two = await two_hubs(aiohttp_client, settings, redis_url, clock, fast_hashing)
    ana = await sign_up(one, "Ana")
    ben = await sign_up(two, "Ben")
    project = await create_project(one, ana, "Across")
    await one.post(
        f"/api/projects/{project['id']}/members",
        json={"user_id": ben.id, "role": "editor"},
        headers=ana.auth,
    )
    doc = project["doc"]
    await node.open("a", one, ana, doc)
    await node.open("b", two, ben, doc)
    async with py_client(two, ben, doc) as py:
        await asyncio.gather(
            node.call("type", name="a", path="main.py", count=50, alphabet="ab", delayMs=2),
            node.call("type", name="b", path="main.py", count=50, alphabet="XY", delayMs=2),
        )
        for _ in range(20):
            py.text("main.py").insert(0, "p")
        total = 120
        a = await node.call("waitLength", name="a", path="main.py", length=total)
        b = await node.call("waitLength", name="b", path="main.py", length=total)
        await doc_until(py.doc, lambda: len(file_text(py.doc, "main.py") or "") == total)
        assert a == b == file_text(py.doc, "main.py")
        # Cursors cross hubs too.
        await node.call("waitAwareness", name="a", count=2)
        await node.call("close", name="b")
        await node.call("waitAwareness", name="a", count=1, timeout=5000)


@pytest.mark.redis
async def test_a_hub_loading_a_document_gets_what_others_have_not_saved(
    aiohttp_client: Any,
    settings: Any,
    redis_url: str,
    clock: FakeClock,
    fast_hashing: Any,
    node: NodeClients,
) -> None:
    one, two = await two_hubs(aiohttp_client, settings, redis_url, clock, fast_hashing)
    ana = await sign_up(one, "Ana")
    await log_in(two, ana)
    doc = (await create_project(one, ana))["doc"]
    # Hub one keeps its updates to itself for now (as if its database writes lagged).
    documents = one.app[IDE].documents
    documents.tuning = dataclasses.replace(documents.tuning, save_delay=3600)
    await node.open("a", one, ana, doc)
    await node.call("insert", name="a", path="main.py", index=0, text="unsaved on hub one")
    served = documents.rooms[doc].doc
    await doc_until(served, lambda: file_text(served, "main.py") == "unsaved on hub one")
    assert documents.rooms[doc].unsaved
    assert len(await documents.store.load(doc)) == 1  # only the initial content
    # Hub two loads the document from the database and asks hub one for the rest.
    async with py_client(two, ana, doc) as py:
        await doc_until(py.doc, lambda: file_text(py.doc, "main.py") == "unsaved on hub one")


@pytest.mark.redis
async def test_a_client_moving_to_another_hub_loses_nothing(
    aiohttp_client: Any,
    settings: Any,
    redis_url: str,
    clock: FakeClock,
    fast_hashing: Any,
    node: NodeClients,
) -> None:
    one, two = await two_hubs(aiohttp_client, settings, redis_url, clock, fast_hashing)
    ana = await sign_up(one, "Ana")
    ben = await sign_up(two, "Ben")
    project = await create_project(one, ana)
    await one.post(
        f"/api/projects/{project['id']}/members",
        json={"user_id": ben.id, "role": "editor"},
        headers=ana.auth,
    )
    doc = project["doc"]
    await node.open("mover", one, ana, doc)
    await node.open("stayer", two, ben, doc)
    await node.call("type", name="mover", path="main.py", count=30, alphabet="m", delayMs=1)
    # Hub one goes away mid-edit; the mover keeps typing offline, then lands on hub two.
    await node.call("disconnect", name="mover")
    await node.call("type", name="mover", path="main.py", count=20, alphabet="o")
    await one.close()
    await node.call(
        "move",
        name="mover",
        server=str(two.make_url("/yjs")).replace("http://", "ws://"),
        base=str(two.make_url("")).rstrip("/"),
    )
    await node.call("type", name="stayer", path="main.py", count=10, alphabet="s")
    final = await node.call("waitLength", name="stayer", path="main.py", length=60)
    assert await node.call("waitLength", name="mover", path="main.py", length=60) == final
    assert sorted(final) == sorted("m" * 30 + "o" * 20 + "s" * 10)
    # And it is all stored once hub two lets the document go.
    await node.call("close", name="mover")
    await node.call("close", name="stayer")
    documents = two.app[IDE].documents
    async with asyncio.timeout(5):
        await documents.rooms[doc].vacant.wait()
    clock.advance(documents.tuning.unload_after + 1)
    assert await documents.sweep() == [doc]
    async with py_client(two, ben, doc) as py:
        assert sorted(file_text(py.doc, "main.py") or "") == sorted(final)


@pytest.mark.redis
async def test_a_role_change_on_one_hub_closes_sockets_on_the_other(
    aiohttp_client: Any, settings: Any, redis_url: str, clock: FakeClock, fast_hashing: Any
) -> None:
    one, two = await two_hubs(aiohttp_client, settings, redis_url, clock, fast_hashing)
    ana = await sign_up(one, "Ana")
    ben = await sign_up(two, "Ben")
    project = await create_project(one, ana, "Roles")
    members = f"/api/projects/{project['id']}/members"
    resp = await one.post(members, json={"user_id": ben.id, "role": "editor"}, headers=ana.auth)
    assert resp.status == 200
    editing = RawSocket(await open_socket(two, ben, project["doc"]))
    await editing.recv_until(lambda f: f.kind is FrameKind.SYNC_STEP1)
    # Hub one has no client of the document: the kick reaches hub two through the broker.
    assert project["doc"] not in one.app[IDE].documents.rooms
    resp = await one.post(members, json={"user_id": ben.id, "role": "viewer"}, headers=ana.auth)
    assert resp.status == 200
    code, _ = await editing.closed()
    assert code == 1013
