"""Yjs documents across real hub processes: ``cohort serve`` twice (and a third time) on one fresh
PostgreSQL database and one Redis, with stock Node clients (``yjs`` + ``y-websocket``) on each.

test_interop.py checks the same relay with two hub apps sharing one Python process and event
loop; here each hub is an OS process of its own, started the way a deployment starts it, and one
is killed with SIGKILL mid-edit."""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import json
import os
import signal
import socket
import subprocess
import sys
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import aiohttp
import pytest
from redis.asyncio import Redis
from sqlalchemy import text

from hub.clock import SystemClock
from hub.db import Database
from hub.settings import REPO_ROOT
from ide.store import SqlDocumentStore
from ide.updates import load
from tests.conftest import (
    REDIS_URL,
    SECRET,
    Account,
    create_database,
    drop_database,
    log_in,
    run_in_thread,
    sign_up,
)
from tests.ide.conftest import NodeClients, create_project, file_text

pytestmark = [
    pytest.mark.postgres,
    pytest.mark.redis,
    # Three hub processes and a Node process on a small machine: one such test at a time.
    pytest.mark.xdist_group("hub-processes"),
]

COHORT = Path(sys.executable).with_name("cohort")


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _die_with_test() -> None:
    """Run in the child before exec: SIGKILL it if the test process dies without tearing down."""
    ctypes.CDLL(None).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG


def hub_environ(database_url: str, data_dir: Path, **settings: str) -> dict[str, str]:
    """The environment of a ``cohort`` command: this one's, minus any COHORT_* of the caller."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("COHORT_")}
    env.update(
        COHORT_DATABASE_URL=database_url,
        COHORT_DATA_DIR=str(data_dir),
        COHORT_SECRET_KEY=SECRET,  # every hub verifies the tokens the others issue
        **{f"COHORT_{key.upper()}": value for key, value in settings.items()},
    )
    return env


@dataclass
class HubProcess:
    """One ``cohort serve`` process; what it prints goes to ``log``."""

    base: str
    log: Path
    proc: asyncio.subprocess.Process

    @classmethod
    async def spawn(cls, env: dict[str, str], log: Path) -> HubProcess:
        port = _free_port()
        with log.open("wb") as out:
            proc = await asyncio.create_subprocess_exec(
                str(COHORT),
                "serve",
                "--host",
                "127.0.0.1",
                "--port",
                str(port),
                env=env,
                cwd=REPO_ROOT,
                stdin=asyncio.subprocess.DEVNULL,
                stdout=out,
                stderr=asyncio.subprocess.STDOUT,
                preexec_fn=_die_with_test,
            )
        return cls(f"http://127.0.0.1:{port}", log, proc)

    async def ready(self, within: float = 30.0) -> None:
        """Poll ``/readyz`` until it answers 200: the server listens (so the document relay is
        subscribed, it starts before the socket is bound) and its database and Redis answer."""
        try:
            async with aiohttp.ClientSession(self.base) as http, asyncio.timeout(within):
                while True:
                    if self.proc.returncode is not None:
                        raise AssertionError(f"the hub exited at start:\n{self.log_tail()}")
                    with contextlib.suppress(aiohttp.ClientConnectionError):
                        async with http.get("/readyz") as resp:
                            if resp.status == 200:
                                return
                    await asyncio.sleep(0.05)
        except TimeoutError:
            raise AssertionError(
                f"the hub was not ready within {within} s:\n{self.log_tail()}"
            ) from None

    async def kill(self) -> None:
        """SIGKILL: no shutdown hook runs, nothing unsaved is written."""
        with contextlib.suppress(ProcessLookupError):
            self.proc.send_signal(signal.SIGKILL)
        await self.proc.wait()

    async def stop(self) -> None:
        if self.proc.returncode is not None:
            return
        with contextlib.suppress(ProcessLookupError):
            self.proc.terminate()
        try:
            async with asyncio.timeout(10):
                await self.proc.wait()
        except TimeoutError:
            await self.kill()

    def log_tail(self, lines: int = 40) -> str:
        return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])

    def errors(self) -> list[str]:
        """Log lines at level error or worse (the hub logs JSON lines), and tracebacks."""
        found = []
        for line in self.log.read_text(errors="replace").splitlines():
            try:
                level = json.loads(line).get("level")
            except (ValueError, AttributeError):
                level = "error" if "Traceback" in line else None
            if level in ("error", "critical"):
                found.append(line)
        return found


StartHubs = Callable[[int], Awaitable[list[HubProcess]]]


@pytest.fixture(scope="module")
def hub_database(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A fresh PostgreSQL database, migrated by ``cohort migrate`` as a deployment does it."""
    worker = os.environ.get("PYTEST_XDIST_WORKER", "main")
    name = f"cohort_test_hubs_{worker}_{os.getpid()}"
    url: str = run_in_thread(create_database(name))
    try:
        done = subprocess.run(
            [str(COHORT), "migrate"],
            env=hub_environ(url, tmp_path_factory.mktemp("migrate")),
            cwd=REPO_ROOT,
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
        assert done.returncode == 0, done.stdout + done.stderr
        yield url
    finally:
        run_in_thread(drop_database(name))


@pytest.fixture
async def hubs(hub_database: str, redis_url: str, tmp_path: Path) -> AsyncIterator[StartHubs]:
    """Starts hub processes sharing the database and a Redis namespace of this test's own;
    every one started is stopped afterwards, whatever happened."""
    prefix = f"cohort-test-hubs-{uuid.uuid4().hex[:12]}"
    env = hub_environ(hub_database, tmp_path / "data", redis_url=redis_url, redis_prefix=prefix)
    started: list[HubProcess] = []

    async def start(count: int) -> list[HubProcess]:
        new = []
        for _ in range(count):
            hub = await HubProcess.spawn(env, tmp_path / f"hub-{len(started) + 1}.log")
            started.append(hub)
            new.append(hub)
        await asyncio.gather(*(hub.ready() for hub in new))
        return new

    try:
        yield start
    finally:
        await asyncio.gather(*(hub.stop() for hub in started))
        redis = Redis.from_url(REDIS_URL)
        try:
            keys = [k async for k in redis.scan_iter(f"{prefix}:*")]
            if keys:
                await redis.delete(*keys)
        finally:
            await redis.aclose()


@contextlib.asynccontextmanager
async def http(*processes: HubProcess) -> AsyncIterator[list[aiohttp.ClientSession]]:
    """One HTTP session per hub, speaking to it at its base URL."""
    async with contextlib.AsyncExitStack() as stack:
        yield [
            await stack.enter_async_context(aiohttp.ClientSession(hub.base)) for hub in processes
        ]


async def test_node_clients_on_two_hub_processes_edit_one_document(
    hubs: StartHubs, node: NodeClients
) -> None:
    one, two = await hubs(2)
    async with http(one, two) as (at_one, at_two):
        ana = await sign_up(at_one, "Ana")
        ben = await sign_up(at_two, "Ben")
        project = await create_project(at_one, ana, "Across")
        invite = await at_one.post(
            f"/api/projects/{project['id']}/members",
            json={"user_id": ben.id, "role": "editor"},
            headers=ana.auth,
        )
        assert invite.status == 200, await invite.text()
        # Hub two sees what hub one wrote: one database.
        seen = await at_two.get(f"/api/projects/{project['id']}", headers=ben.auth)
        assert (await seen.json())["role"] == "editor"
    doc = project["doc"]
    await node.open_at("a", one.base, ana, doc)
    await node.open_at("b", two.base, ben, doc)

    # Both type at once at random places, each through its own hub process.
    await asyncio.gather(
        node.call("type", name="a", path="main.py", count=60, alphabet="ab", delayMs=2),
        node.call("type", name="b", path="main.py", count=60, alphabet="XY", delayMs=2),
    )
    a = await node.call("waitLength", name="a", path="main.py", length=120)
    b = await node.call("waitLength", name="b", path="main.py", length=120)
    assert a == b
    assert sorted(a) == sorted("ab" * 30 + "XY" * 30)
    # Cursors cross processes too.
    await node.call("waitAwareness", name="a", count=2)
    await node.call("waitAwareness", name="b", count=2)

    # The client on hub one moves to hub two while it types: what it sent hub one, what it typed
    # while between hubs and what it types on hub two all arrive, once.
    typing = asyncio.create_task(
        node.call("type", name="a", path="main.py", count=100, alphabet="m", delayMs=10)
    )
    try:
        await node.move("a", two.base)
        assert not typing.done(), "the move should land mid-edit: type slower"
    finally:
        await typing
    final = await node.call("waitLength", name="b", path="main.py", length=220)
    assert await node.call("waitLength", name="a", path="main.py", length=220) == final
    assert sorted(final) == sorted(a + "m" * 100)
    assert one.errors() == []
    assert two.errors() == []


@dataclass
class Killed:
    """What ``kill_mid_edit`` leaves: the surviving hub, the editor, the document, the text."""

    survivor: HubProcess
    account: Account
    doc: str
    typed: str


async def kill_mid_edit(hubs: StartHubs, database_url: str, node: NodeClients) -> Killed:
    """Two hubs, a client on each; the one on hub one types, hub two relays it to its client,
    and hub one is killed (SIGKILL) before its database write of that typing is committed; its
    client is closed too, so nothing can come from it again."""
    one, two = await hubs(2)
    async with http(one, two) as (at_one, at_two):
        ana = await sign_up(at_one, "Ana")
        doc = (await create_project(at_one, ana))["doc"]
        await log_in(at_two, ana)
    await node.open_at("on-one", one.base, ana, doc)
    await node.open_at("on-two", two.base, ana, doc)
    db = Database(database_url)
    try:
        async with db.transaction() as held:
            # Writes to the document log wait behind this lock (reads go on): hub one's next
            # save cannot land before it dies, as if the database were slow at that moment.
            await held.execute(text("LOCK TABLE ydoc_updates IN SHARE MODE"))
            await node.call(
                "type", name="on-one", path="main.py", count=40, alphabet="abc", delayMs=1
            )
            typed = await node.call(
                "insert", name="on-one", path="main.py", index=0, text="# typed on hub one\n"
            )
            # Hub two has it all (its client shows it); then hub one dies.
            await node.call("waitText", name="on-two", path="main.py", text=typed)
            await one.kill()
            assert one.proc.returncode == -signal.SIGKILL
            # The insert it may have left waiting for the lock dies with it, uncommitted.
            async with db.connect() as conn:
                await conn.execute(
                    text(
                        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
                        " WHERE datname = current_database() AND wait_event_type = 'Lock'"
                    )
                )
        assert await stored_text(db, doc) == "", "hub one's typing is in no database"
    finally:
        await db.dispose()
    await node.call("close", name="on-one")
    return Killed(two, ana, doc, typed)


async def stored_text(db: Database, doc: str, path: str = "main.py") -> str | None:
    stored, _ = load(await SqlDocumentStore(db, SystemClock()).load(doc))
    return file_text(stored.doc, path)


async def test_a_hub_killed_mid_edit_loses_nothing_another_hub_received(
    hubs: StartHubs, hub_database: str, node: NodeClients
) -> None:
    killed = await kill_mid_edit(hubs, hub_database, node)
    two, ana, doc, typed = killed.survivor, killed.account, killed.doc, killed.typed

    # A fresh client of the surviving hub gets everything in its first sync.
    await node.open_at("fresh", two.base, ana, doc)
    assert await node.call("text", name="fresh", path="main.py") == typed

    # A hub process started now loads the document from the database, which lacks the typing,
    # and asks hub two over Redis for the rest.
    (three,) = await hubs(1)
    await node.open_at("late", three.base, ana, doc)
    assert await node.call("waitText", name="late", path="main.py", text=typed) == typed
    # And the two live hubs keep relaying to each other.
    await node.call("insert", name="late", path="notes.md", index=0, text="from hub three")
    await node.call("waitText", name="fresh", path="notes.md", text="from hub three")
    assert two.errors() == []
    assert three.errors() == []


async def test_a_hub_stopping_saves_what_it_relayed_from_a_killed_hub(
    hubs: StartHubs, hub_database: str, node: NodeClients
) -> None:
    killed = await kill_mid_edit(hubs, hub_database, node)
    # Everyone leaves, then the survivor is restarted (a deploy) before the room idles out.
    await node.call("close", name="on-two")
    await killed.survivor.stop()
    assert killed.survivor.proc.returncode == 0
    assert killed.survivor.errors() == []
    db = Database(hub_database)
    try:
        assert await stored_text(db, killed.doc) == killed.typed
    finally:
        await db.dispose()
