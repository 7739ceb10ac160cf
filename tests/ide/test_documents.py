"""``/yjs/{doc}``: authorization before the upgrade, syncing, read-only viewers, awareness,
simultaneous opens and malformed frames."""

from __future__ import annotations

import asyncio
import dataclasses
import random
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient
from pycrdt import Doc, Map, Text

from hub.clock import FakeClock
from ide.protocol import (
    AwarenessEntry,
    FrameKind,
    awareness_message,
    encode_awareness,
    parse_awareness,
    sync_step1,
    sync_update,
)
from ide.services import IDE
from tests.conftest import sign_up
from tests.ide.conftest import (
    RawSocket,
    create_project,
    doc_ticket,
    doc_until,
    file_text,
    open_socket,
    py_client,
)
from tests.ide.test_updates import editing_session


async def test_pycrdt_clients_edit_one_document(client: TestClient[Any, Any]) -> None:
    ana = await sign_up(client, "Ana")
    project = await create_project(client, ana, "Snake")
    doc = project["doc"]
    async with py_client(client, ana, doc) as one, py_client(client, ana, doc) as two:
        # The project's document starts with its metadata and main.py.
        meta = one.doc.get("meta", type=Map)
        assert meta["name"] == "Snake"
        assert meta["project_id"] == project["id"]
        assert file_text(one.doc, "main.py") == ""
        one.text("main.py").insert(0, "print('hi')\n")
        await doc_until(two.doc, lambda: file_text(two.doc, "main.py") == "print('hi')\n")
        two.files["util.py"] = Text("x = 1\n")
        await doc_until(one.doc, lambda: file_text(one.doc, "util.py") == "x = 1\n")
        # Concurrent edits at the same place converge.
        one.text("main.py").insert(0, "A")
        two.text("main.py").insert(0, "B")
        await doc_until(one.doc, lambda: len(file_text(one.doc, "main.py") or "") == 14)
        await doc_until(two.doc, lambda: len(file_text(two.doc, "main.py") or "") == 14)
        assert file_text(one.doc, "main.py") == file_text(two.doc, "main.py")


async def test_refused_before_the_upgrade(client: TestClient[Any, Any], clock: FakeClock) -> None:
    ana = await sign_up(client, "Ana")
    eve = await sign_up(client, "Eve")
    doc = (await create_project(client, ana))["doc"]
    other = (await create_project(client, ana, "Other"))["doc"]

    async def status(url: str) -> int:
        with pytest.raises(aiohttp.WSServerHandshakeError) as refused:
            await client.ws_connect(url)
        plain = await client.get(url)
        assert plain.content_type == "application/problem+json"
        assert plain.status in (401, 403, 404)
        return refused.value.status

    assert await status(f"/yjs/{doc}") == 401
    assert await status(f"/yjs/{doc}?ticket=made-up") == 401
    used = await doc_ticket(client, ana, doc)
    ws = await client.ws_connect(f"/yjs/{doc}?ticket={used}")
    await ws.close()
    assert await status(f"/yjs/{doc}?ticket={used}") == 401
    late = await doc_ticket(client, ana, doc)
    clock.advance(31)
    assert await status(f"/yjs/{doc}?ticket={late}") == 401
    # A /ws ticket, a ticket for another document, a user without access, no such document.
    gateway = await client.post("/api/realtime/ticket", headers=ana.auth)
    assert await status(f"/yjs/{doc}?ticket={(await gateway.json())['ticket']}") == 401
    assert await status(f"/yjs/{doc}?ticket={await doc_ticket(client, ana, other)}") == 403
    assert await status(f"/yjs/{doc}?ticket={await doc_ticket(client, eve, doc)}") == 403
    missing = "project-999999"
    assert await status(f"/yjs/{missing}?ticket={await doc_ticket(client, ana, missing)}") == 404
    assert await status(f"/yjs/notes?ticket={await doc_ticket(client, ana, 'notes')}") == 404
    # Each of those refusals used its ticket: none of them opened anything.
    assert client.app[IDE].documents.rooms.keys() <= {doc}


async def test_viewer_reads_but_cannot_write(client: TestClient[Any, Any]) -> None:
    ana = await sign_up(client, "Ana")
    ben = await sign_up(client, "Ben")
    project = await create_project(client, ana)
    await client.post(
        f"/api/projects/{project['id']}/members",
        json={"user_id": ben.id, "role": "viewer"},
        headers=ana.auth,
    )
    doc = project["doc"]
    async with py_client(client, ana, doc) as owner:
        viewer = RawSocket(await open_socket(client, ben, doc))
        await viewer.recv_until(lambda f: f.kind is FrameKind.SYNC_STEP1)
        # The viewer's edit, made on a copy of the document, is dropped with a notice.
        copy: Doc[Any] = Doc()
        copy.apply_update(owner.doc.get_update())
        before = copy.get_state()
        copy.get("files", type=Map)["main.py"].insert(0, "hacked ")
        await viewer.send(sync_update(copy.get_update(before)))
        denied = await viewer.recv_until(lambda f: f.kind is FrameKind.AUTH)
        assert denied.kind is FrameKind.AUTH
        # Their awareness still reaches the others.
        watcher = RawSocket(await open_socket(client, ana, doc))
        state = AwarenessEntry(4242, 1, '{"user":{"name":"Ben"}}')
        await viewer.send(awareness_message(encode_awareness([state])))
        seen = await watcher.recv_until(
            lambda f: (
                f.kind is FrameKind.AWARENESS
                and any(e.client_id == 4242 for e in parse_awareness(f.payload))
            )
        )
        assert parse_awareness(seen.payload)[0].state_json == state.state_json
        # The owner's edits reach the viewer; the viewer's never reached anyone.
        owner.text("main.py").insert(0, "ok")
        await viewer.recv_until(lambda f: f.kind is FrameKind.SYNC_UPDATE)
        assert file_text(owner.doc, "main.py") == "ok"
        await viewer.send(sync_step1(b"\x00"))
        full = await viewer.recv_until(lambda f: f.kind is FrameKind.SYNC_STEP2)
        fresh: Doc[Any] = Doc()
        fresh.apply_update(full.payload)
        assert file_text(fresh, "main.py") == "ok"


async def test_a_role_change_applies_to_open_sockets_at_once(
    client: TestClient[Any, Any],
) -> None:
    ana = await sign_up(client, "Ana")
    ben = await sign_up(client, "Ben")
    project = await create_project(client, ana)
    members = f"/api/projects/{project['id']}/members"
    resp = await client.post(members, json={"user_id": ben.id, "role": "editor"}, headers=ana.auth)
    assert resp.status == 200
    doc = project["doc"]
    async with py_client(client, ana, doc) as owner:
        editing = RawSocket(await open_socket(client, ben, doc))
        await editing.recv_until(lambda f: f.kind is FrameKind.SYNC_STEP1)
        # Ana makes Ben a viewer: his open socket is closed to reconnect under the new role...
        resp = await client.post(
            members, json={"user_id": ben.id, "role": "viewer"}, headers=ana.auth
        )
        assert resp.status == 200
        code, _ = await editing.closed()
        assert code == 1013
        # ... where what he sends is dropped.
        viewer = RawSocket(await open_socket(client, ben, doc))
        await viewer.recv_until(lambda f: f.kind is FrameKind.SYNC_STEP1)
        copy: Doc[Any] = Doc()
        copy.apply_update(owner.doc.get_update())
        before = copy.get_state()
        copy.get("files", type=Map)["main.py"].insert(0, "too late ")
        await viewer.send(sync_update(copy.get_update(before)))
        await viewer.recv_until(lambda f: f.kind is FrameKind.AUTH)
        assert file_text(owner.doc, "main.py") == ""
        await viewer.ws.close()


async def test_awareness_on_join_and_removed_when_a_client_drops(
    client: TestClient[Any, Any],
) -> None:
    ana = await sign_up(client, "Ana")
    doc = (await create_project(client, ana))["doc"]
    first = RawSocket(await open_socket(client, ana, doc))
    cursor = AwarenessEntry(777, 3, '{"user":{"name":"Ana"},"cursor":{"anchor":5}}')
    await first.send(awareness_message(encode_awareness([cursor])))
    second = RawSocket(await open_socket(client, ana, doc))
    # The newcomer learns who is here without waiting for their 15 s renewal.
    known = await second.recv_until(lambda f: f.kind is FrameKind.AWARENESS)
    assert parse_awareness(known.payload) == [cursor]
    # A query for awareness is answered too.
    await second.send(b"\x03")
    again = await second.recv_until(lambda f: f.kind is FrameKind.AWARENESS)
    assert parse_awareness(again.payload) == [cursor]
    # The first client vanishes without saying goodbye: its cursor goes at once.
    await first.ws.close()
    gone = await second.recv_until(lambda f: f.kind is FrameKind.AWARENESS, wait=3)
    entries = parse_awareness(gone.payload)
    assert [(e.client_id, e.removed) for e in entries] == [(777, True)]
    third = RawSocket(await open_socket(client, ana, doc))
    first_frame = await third.recv()
    assert first_frame.kind is FrameKind.SYNC_STEP1  # no stale awareness for the newcomer


async def test_simultaneous_opens_never_hang(client: TestClient[Any, Any]) -> None:
    ana = await sign_up(client, "Ana")
    doc = (await create_project(client, ana))["doc"]
    urls = [f"/yjs/{doc}?ticket={await doc_ticket(client, ana, doc)}" for _ in range(8)]

    async def join(url: str) -> RawSocket:
        sock = RawSocket(await client.ws_connect(url))
        await sock.send(sync_step1(b"\x00"))
        await sock.recv_until(lambda f: f.kind is FrameKind.SYNC_STEP2)
        return sock

    async with asyncio.timeout(10):
        socks = await asyncio.gather(*(join(u) for u in urls))
    assert len(client.app[IDE].documents.rooms) == 1
    for sock in socks:
        await sock.ws.close()


async def test_malformed_frames_hurt_no_one(client: TestClient[Any, Any]) -> None:
    ana = await sign_up(client, "Ana")
    doc = (await create_project(client, ana))["doc"]
    async with py_client(client, ana, doc) as good:
        bad = RawSocket(await open_socket(client, ana, doc))
        garbage = [
            b"",
            b"\xff\xff\xff",
            b"\x00",
            b"\x00\x07\x00",
            b"\x00\x02\x05\x01\x02",
            sync_update(b"\x01\x02\x03\x04"),
            sync_step1(b"\xff\xff"),
            awareness_message(b"\x01\x01\x01\x03abc"),
            b"\x09",
        ]
        for frame in garbage:
            await bad.send(frame)
        await bad.ws.send_str("not binary")
        code, _ = await bad.closed()
        assert code == 4400
        # The room and the other client carry on.
        good.text("main.py").insert(0, "still fine")
        async with py_client(client, ana, doc) as late:
            await doc_until(late.doc, lambda: file_text(late.doc, "main.py") == "still fine")


async def test_large_first_sync(client: TestClient[Any, Any], app: web.Application) -> None:
    ana = await sign_up(client, "Ana")
    doc = (await create_project(client, ana))["doc"]
    big = "x = 1\n" * 1_000_000  # 6 MB: more than aiohttp's default 4 MiB message limit
    async with py_client(client, ana, doc) as one:
        one.files["big.py"] = Text(big)
        async with py_client(client, ana, doc) as two:
            await doc_until(two.doc, lambda: file_text(two.doc, "big.py") == big, within=30)


async def test_shuffled_and_repeated_frames_converge_through_the_hub(
    client: TestClient[Any, Any],
) -> None:
    ana = await sign_up(client, "Ana")
    for seed in range(5):
        doc = (await create_project(client, ana, f"P{seed}"))["doc"]
        updates, expected = editing_session(seed, edits=40)
        rnd = random.Random(seed)
        frames = updates + rnd.choices(updates, k=len(updates) // 2)
        rnd.shuffle(frames)
        sender = RawSocket(await open_socket(client, ana, doc))
        for update in frames:
            await sender.send(sync_update(update))
        async with py_client(client, ana, doc) as reader:
            text = reader.doc.get("t", type=Text)
            await doc_until(reader.doc, lambda t=text, e=expected: str(t) == e)
        await sender.ws.close()


async def test_a_reader_that_falls_behind_is_cut_off_and_the_room_goes_on(
    client: TestClient[Any, Any], app: web.Application
) -> None:
    documents = app[IDE].documents
    documents.tuning = dataclasses.replace(documents.tuning, send_buffer=64 * 1024)
    ana = await sign_up(client, "Ana")
    doc = (await create_project(client, ana))["doc"]
    stalled = RawSocket(await open_socket(client, ana, doc))
    await stalled.recv()  # sync step 1: it is in the room; never read from again
    (slow,) = documents.rooms[doc].connections
    try:
        async with py_client(client, ana, doc) as writer:
            room = documents.rooms[doc]
            chunk = "x" * 64 * 1024
            written = 0
            # Kernel buffers take a few MiB first; then the hub's own buffer passes 64 KiB.
            while not slow.closing:
                assert written < 40 * 1024 * 1024, "the stalled reader was never cut off"
                writer.text("main.py").insert(0, chunk)
                written += len(chunk)
                await doc_until(
                    room.doc, lambda n=written: len(file_text(room.doc, "main.py") or "") == n
                )
            # The writer goes on; a newcomer gets everything.
            writer.text("main.py").insert(0, "after")
            async with py_client(client, ana, doc) as late:
                await doc_until(
                    late.doc,
                    lambda: (file_text(late.doc, "main.py") or "").startswith("after"),
                    within=30,
                )
                assert len(file_text(late.doc, "main.py") or "") == written + len("after")
    finally:
        await stalled.ws.close()
