"""Documents in the database: updates appended, compacted with no loss, idle rooms unloaded
and reloaded with nothing duplicated, content surviving a hub restart."""

from __future__ import annotations

import asyncio
import dataclasses
import random
from typing import Any

from aiohttp.test_utils import TestClient
from pycrdt import Doc, Map, Text

from hub.clock import FakeClock
from hub.services import HUB
from ide.services import IDE
from ide.store import SqlDocumentStore
from ide.updates import load
from tests.conftest import log_in, sign_up
from tests.ide.conftest import create_project, doc_until, file_text, py_client


def text_of_rows(rows: list[bytes], path: str = "main.py") -> str | None:
    state, skipped = load(rows)
    assert skipped == 0
    return file_text(state.doc, path)


async def test_idle_room_unloads_and_reloads_without_duplicates(
    client: TestClient[Any, Any], clock: FakeClock
) -> None:
    ana = await sign_up(client, "Ana")
    doc = (await create_project(client, ana))["doc"]
    documents = client.app[IDE].documents
    async with py_client(client, ana, doc) as one:
        for word in ("alpha ", "beta ", "gamma"):
            one.text("main.py").insert(len(one.text("main.py")), word)
        one.files["notes.md"] = Text("todo")
        served = documents.rooms[doc].doc
        await doc_until(served, lambda: file_text(served, "notes.md") == "todo")
        await documents.flush()
    # Still within the delay: the room stays.
    clock.advance(documents.tuning.unload_after - 1)
    assert await documents.sweep() == []
    clock.advance(2)
    assert await documents.sweep() == [doc]
    assert doc not in documents.rooms
    rows = await documents.store.load(doc)
    assert len(rows) == 1  # compacted on the way out
    assert text_of_rows(rows) == "alpha beta gamma"
    # Reloaded from storage: same content, once.
    async with py_client(client, ana, doc) as again:
        assert file_text(again.doc, "main.py") == "alpha beta gamma"
        assert file_text(again.doc, "notes.md") == "todo"
        assert again.doc.get("meta", type=Map)["name"] == "Demo"
        again.text("main.py").insert(0, ">")
    clock.advance(documents.tuning.unload_after + 1)
    assert await documents.sweep() == [doc]
    async with py_client(client, ana, doc) as third:
        assert file_text(third.doc, "main.py") == ">alpha beta gamma"


async def test_a_client_about_to_join_keeps_the_room(
    client: TestClient[Any, Any], clock: FakeClock
) -> None:
    ana = await sign_up(client, "Ana")
    doc = (await create_project(client, ana))["doc"]
    documents = client.app[IDE].documents
    room = await documents.admit(doc)  # admitted, not yet upgraded
    clock.advance(documents.tuning.unload_after * 10)
    assert await documents.sweep() == []
    documents.release(room)
    clock.advance(documents.tuning.unload_after + 1)
    assert await documents.sweep() == [doc]


async def test_content_survives_a_hub_restart(
    aiohttp_client: Any, settings: Any, clock: FakeClock, fast_hashing: Any
) -> None:
    from hub.app import create_app

    first = await aiohttp_client(create_app(settings, clock=clock, hashing=fast_hashing))
    ana = await sign_up(first, "Ana")
    doc = (await create_project(first, ana))["doc"]
    async with py_client(first, ana, doc) as one:
        one.text("main.py").insert(0, "print(42)\n")
    # Shutting down saves whatever is still queued.
    await first.close()
    second = await aiohttp_client(create_app(settings, clock=clock, hashing=fast_hashing))
    await log_in(second, ana)
    async with py_client(second, ana, doc) as again:
        assert file_text(again.doc, "main.py") == "print(42)\n"


async def test_compaction_round_trips_and_races_with_appends(
    client: TestClient[Any, Any],
) -> None:
    hub = client.app[HUB]
    store = SqlDocumentStore(hub.db, hub.clock)
    source: Doc[Any] = Doc()
    updates: list[bytes] = []
    source.observe(lambda event: updates.append(event.update))
    files = source.get("files", type=Map)
    files["a.py"] = Text()
    text = files["a.py"]
    rnd = random.Random(3)
    for _ in range(300):
        if rnd.random() < 0.3 and len(text) > 4:
            start = rnd.randrange(len(text) - 2)
            del text[start : start + 2]
        else:
            text.insert(rnd.randrange(len(text) + 1), rnd.choice("abcdef"))
    expected = str(text)
    # The first half stored; the second half appended while compactions run.
    for update in updates[:150]:
        await store.append({"doc-x": update})

    async def appender() -> None:
        for update in updates[150:]:
            await store.append({"doc-x": update})
            await asyncio.sleep(0)

    async def compactor() -> None:
        for _ in range(5):
            await store.compact("doc-x")
            await asyncio.sleep(0)

    await asyncio.gather(appender(), compactor(), compactor())
    assert text_of_rows(await store.load("doc-x"), "a.py") == expected
    assert await store.compact("doc-x") == 1
    rows = await store.load("doc-x")
    assert text_of_rows(rows, "a.py") == expected
    assert len(rows[0]) < sum(map(len, updates))
    # Compacting a single row changes nothing.
    assert await store.compact("doc-x") == 1
    assert await store.load("doc-x") == rows


async def test_a_busy_document_is_compacted_while_loaded(client: TestClient[Any, Any]) -> None:
    ana = await sign_up(client, "Ana")
    doc = (await create_project(client, ana))["doc"]
    documents = client.app[IDE].documents
    documents.tuning = dataclasses.replace(documents.tuning, compact_after_rows=5, save_delay=0)
    async with py_client(client, ana, doc) as one, py_client(client, ana, doc) as two:
        for i in range(40):
            one.text("main.py").insert(0, "x")
            await doc_until(two.doc, lambda n=i: len(file_text(two.doc, "main.py") or "") == n + 1)
        await documents.flush()
    rows = await documents.store.load(doc)
    assert len(rows) <= 10  # 41 without compaction
    assert text_of_rows(rows) == "x" * 40
