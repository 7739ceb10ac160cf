"""IDE test helpers: projects, document tickets, a pycrdt client over the hub's y-websocket
endpoint, raw protocol sockets, and stock Node clients (yjs + y-websocket) driven over a pipe."""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import itertools
import json
import os
import shutil
import subprocess
import tempfile
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest
from aiohttp import WSMsgType
from aiohttp.test_utils import TestClient
from pycrdt import Doc, Map, Provider, Text

from ide.protocol import Frame, parse_frame
from tests.conftest import Account

NODE_DIR = Path(__file__).resolve().parent / "node"


async def create_project(
    client: TestClient[Any, Any], account: Account, name: str = "Demo", **body: Any
) -> dict[str, Any]:
    resp = await client.post("/api/projects", json={"name": name, **body}, headers=account.auth)
    assert resp.status == 201, await resp.text()
    return await resp.json()  # type: ignore[no-any-return]


async def doc_ticket(client: TestClient[Any, Any], account: Account, doc: str) -> str:
    resp = await client.post("/api/realtime/ticket", json={"doc": doc}, headers=account.auth)
    assert resp.status == 200, await resp.text()
    return (await resp.json())["ticket"]  # type: ignore[no-any-return]


async def open_socket(client: TestClient[Any, Any], account: Account, doc: str) -> Any:
    return await client.ws_connect(
        f"/yjs/{doc}?ticket={await doc_ticket(client, account, doc)}", max_msg_size=64 << 20
    )


def http_base(client: TestClient[Any, Any]) -> str:
    return str(client.make_url("")).rstrip("/")


def yjs_url(base: str) -> str:
    """The y-websocket server URL of the hub at ``base`` (``http://host:port``)."""
    return base.replace("http://", "ws://", 1) + "/yjs"


async def doc_until(doc: Doc[Any], predicate: Callable[[], bool], within: float = 10.0) -> None:
    """Wait, with a deadline, until ``predicate`` holds, checking on every change of ``doc``."""
    changed = asyncio.Event()
    sub = doc.observe(lambda _event: changed.set())
    try:
        async with asyncio.timeout(within):
            while not predicate():
                await changed.wait()
                changed.clear()
    finally:
        doc.unobserve(sub)


def file_text(doc: Doc[Any], path: str) -> str | None:
    files = doc.get("files", type=Map)
    return str(files[path]) if path in files else None


class SocketChannel:
    """A pycrdt ``Channel`` over an aiohttp client WebSocket."""

    def __init__(self, ws: Any, path: str) -> None:
        self.ws = ws
        self._path = path

    @property
    def path(self) -> str:
        return self._path

    def __aiter__(self) -> SocketChannel:
        return self

    async def __anext__(self) -> bytes:
        while True:
            msg = await self.ws.receive()
            if msg.type == WSMsgType.BINARY:
                return bytes(msg.data)
            if msg.type in (WSMsgType.CLOSE, WSMsgType.CLOSED, WSMsgType.CLOSING, WSMsgType.ERROR):
                raise StopAsyncIteration

    async def recv(self) -> bytes:
        return await self.__anext__()

    async def send(self, message: bytes) -> None:
        with contextlib.suppress(ConnectionError, RuntimeError):
            await self.ws.send_bytes(message)


class PyClient:
    """A pycrdt document synced through the hub with pycrdt's own ``Provider``. (pycrdt 0.14
    indexes Text by UTF-8 bytes, so tests type ASCII through it.)"""

    def __init__(self, doc: Doc[Any], ws: Any, provider: Provider) -> None:
        self.doc = doc
        self.ws = ws
        self.provider = provider

    @property
    def files(self) -> Map[Any]:
        return self.doc.get("files", type=Map)

    def text(self, path: str) -> Text:
        return self.files[path]  # type: ignore[no-any-return]


@contextlib.asynccontextmanager
async def py_client(
    client: TestClient[Any, Any], account: Account, doc_name: str
) -> AsyncIterator[PyClient]:
    ws = await open_socket(client, account, doc_name)
    doc: Doc[Any] = Doc()
    provider = Provider(doc, SocketChannel(ws, doc_name))
    async with provider:
        async with asyncio.timeout(10):
            await provider.synced.wait()
        try:
            yield PyClient(doc, ws, provider)
        finally:
            await ws.close()


class RawSocket:
    """The y-websocket protocol by hand, for what stock clients never send."""

    def __init__(self, ws: Any) -> None:
        self.ws = ws

    async def send(self, data: bytes) -> None:
        await self.ws.send_bytes(data)

    async def recv(self, wait: float = 5.0) -> Frame:
        msg = await self.ws.receive(timeout=wait)
        assert msg.type == WSMsgType.BINARY, (msg.type, msg.data, msg.extra)
        return parse_frame(msg.data)

    async def recv_until(self, predicate: Callable[[Frame], bool], wait: float = 5.0) -> Frame:
        async with asyncio.timeout(wait):
            while True:
                frame = await self.recv(wait)
                if predicate(frame):
                    return frame

    async def closed(self, wait: float = 5.0) -> tuple[int | None, str]:
        async with asyncio.timeout(wait):
            while True:
                msg = await self.ws.receive()
                if msg.type in (WSMsgType.CLOSE, WSMsgType.CLOSED, WSMsgType.CLOSING):
                    return self.ws.close_code, str(msg.extra or "")


# Node clients -----------------------------------------------------------------------------


def ensure_node_modules() -> None:
    """``npm ci`` the harness once (under a lock: xdist workers share the tree)."""
    if shutil.which("node") is None or shutil.which("npm") is None:
        pytest.fail("Node and npm are needed for the Yjs interop tests", pytrace=False)
    stamp = NODE_DIR / "node_modules" / ".package-lock.json"

    def fresh() -> bool:
        lock = NODE_DIR / "package-lock.json"
        return stamp.exists() and stamp.stat().st_mtime >= lock.stat().st_mtime

    if fresh():
        return
    with open(Path(tempfile.gettempdir()) / "cohort-ide-npm.lock", "w") as guard:
        fcntl.flock(guard, fcntl.LOCK_EX)
        if not fresh():
            subprocess.run(
                ["npm", "ci", "--no-audit", "--no-fund", "--loglevel=error"],
                cwd=NODE_DIR,
                check=True,
                timeout=300,
            )


class NodeClients:
    """One Node process hosting any number of y-websocket clients."""

    def __init__(self, proc: asyncio.subprocess.Process, log: Path) -> None:
        self._proc = proc
        self.log = log
        self._ids = itertools.count(1)
        self._waiting: dict[int, asyncio.Future[Any]] = {}
        self._reader = asyncio.create_task(self._read())

    @classmethod
    async def start(cls, log: Path) -> NodeClients:
        env = {**os.environ, "NODE_NO_WARNINGS": "1"}
        with log.open("wb") as stderr:
            proc = await asyncio.create_subprocess_exec(
                "node",
                "client.mjs",
                cwd=NODE_DIR,
                stdin=asyncio.subprocess.PIPE,
                stdout=asyncio.subprocess.PIPE,
                stderr=stderr,
                env=env,
            )
        return cls(proc, log)

    async def _read(self) -> None:
        assert self._proc.stdout is not None
        while line := await self._proc.stdout.readline():
            answer = json.loads(line)
            future = self._waiting.pop(answer["id"], None)
            if future is None or future.done():
                continue
            if answer["ok"]:
                future.set_result(answer.get("result"))
            else:
                future.set_exception(AssertionError(f"node client: {answer['error']}"))
        for future in self._waiting.values():
            if not future.done():
                future.set_exception(AssertionError(f"node exited: {self.log.read_text()}"))

    async def call(self, cmd: str, within: float = 20.0, **args: Any) -> Any:
        assert self._proc.stdin is not None
        ident = next(self._ids)
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self._waiting[ident] = future
        self._proc.stdin.write(json.dumps({"id": ident, "cmd": cmd, **args}).encode() + b"\n")
        await self._proc.stdin.drain()
        async with asyncio.timeout(within):
            return await future

    async def open(
        self, name: str, client: TestClient[Any, Any], account: Account, doc: str
    ) -> dict[str, Any]:
        return await self.open_at(name, http_base(client), account, doc)

    async def open_at(self, name: str, base: str, account: Account, doc: str) -> dict[str, Any]:
        """Open client ``name`` on the hub at ``base`` (``http://host:port``)."""
        result: dict[str, Any] = await self.call(
            "open",
            name=name,
            server=yjs_url(base),
            base=base,
            token=account.token,
            doc=doc,
            user=account.display_name,
        )
        return result

    async def move(self, name: str, base: str) -> None:
        """Reconnect client ``name`` to the hub at ``base``, keeping its local document."""
        await self.call("move", name=name, server=yjs_url(base), base=base)

    async def close(self) -> None:
        if self._proc.stdin is not None:
            self._proc.stdin.close()
        try:
            async with asyncio.timeout(5):
                await self._proc.wait()
        except TimeoutError:
            self._proc.kill()
            await self._proc.wait()
        self._reader.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._reader


@pytest.fixture
async def node(tmp_path: Path) -> AsyncIterator[NodeClients]:
    await asyncio.to_thread(ensure_node_modules)
    clients = await NodeClients.start(tmp_path / "node-clients.log")
    try:
        yield clients
    finally:
        await clients.close()
