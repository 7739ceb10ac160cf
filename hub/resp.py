"""One lean Redis connection for the hot path: the gateway's publishes and the chat's budget
script, a few per chat message on every hub.

redis-py costs about 100 us of CPU per round trip here (a pool checkout and release, a retry
wrapper, a timeout context and asyncio streams on every command); a protocol on the event loop
with hiredis's parser (the C parser redis-py itself uses when it is installed) costs about 9.
Commands are written at once and answered in order (Redis answers a connection's commands in
the order they came), so concurrent callers share the connection without waiting for each
other, and what one caller publishes reaches Redis in the order it was published.

Everything else (pub/sub, presence, tickets, pipelines) stays on redis-py.
"""

from __future__ import annotations

import asyncio
import hashlib
from collections import deque
from collections.abc import Sequence
from typing import Any, cast

import hiredis
from redis.asyncio import Redis
from redis.asyncio.connection import SSLConnection
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import NoScriptError, ResponseError

Arg = bytes | str | int | float


def encode(args: Sequence[Arg]) -> bytes:
    """A command in RESP: an array of bulk strings."""
    parts = [b"*%d\r\n" % len(args)]
    for arg in args:
        if isinstance(arg, bytes):
            data = arg
        elif isinstance(arg, str):
            data = arg.encode()
        elif isinstance(arg, int):
            data = b"%d" % arg
        else:
            data = repr(arg).encode()
        parts += [b"$%d\r\n" % len(data), data, b"\r\n"]
    return b"".join(parts)


class _Protocol(asyncio.Protocol):
    def __init__(self) -> None:
        self._reader = hiredis.Reader()
        self._waiting: deque[asyncio.Future[Any]] = deque()
        self._transport: asyncio.Transport | None = None
        self.closed = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports are not subclasses of asyncio's, only alike.
        self._transport = cast(asyncio.Transport, transport)

    def data_received(self, data: bytes) -> None:
        self._reader.feed(data)
        try:
            while (reply := self._reader.gets()) is not False:
                future = self._waiting.popleft()
                if future.done():  # its caller went away; the answer is dropped
                    continue
                if isinstance(reply, hiredis.ReplyError):
                    message = str(reply)
                    error = NoScriptError if message.startswith("NOSCRIPT") else ResponseError
                    future.set_exception(error(message))
                else:
                    future.set_result(reply)
        except (hiredis.ProtocolError, IndexError) as exc:
            self._fail(RedisConnectionError(f"Redis sent what is not RESP: {exc}"))
            assert self._transport is not None
            self._transport.abort()

    def connection_lost(self, exc: Exception | None) -> None:
        self._fail(RedisConnectionError(f"Connection to Redis lost: {exc or 'closed'}"))

    def _fail(self, error: Exception) -> None:
        self.closed = True
        while self._waiting:
            future = self._waiting.popleft()
            if not future.done():
                future.set_exception(error)

    def send(self, commands: Sequence[Sequence[Arg]]) -> list[asyncio.Future[Any]]:
        """Write the commands at once, in one write; each answer arrives in its future."""
        if self.closed or self._transport is None or self._transport.is_closing():
            raise RedisConnectionError("Connection to Redis is closed")
        loop = asyncio.get_running_loop()
        futures = [loop.create_future() for _ in commands]
        self._transport.write(b"".join(encode(c) for c in commands))
        self._waiting.extend(futures)
        return futures

    def close(self) -> None:
        self.closed = True
        if self._transport is not None:
            self._transport.close()


class FastRedis:
    """A single pipelined connection, opened on first use and again after it is lost (a call
    on a lost connection fails with redis-py's ``ConnectionError``, as redis-py's would)."""

    def __init__(
        self,
        host: str = "127.0.0.1",
        port: int = 6379,
        *,
        path: str | None = None,
        db: int = 0,
        password: str | None = None,
        username: str | None = None,
    ) -> None:
        """TCP to ``host``:``port``, or the Unix socket at ``path``."""
        self._host = host
        self._port = port
        self._path = path
        self._db = db
        self._password = password
        self._username = username
        self._protocol: _Protocol | None = None
        self._connecting: asyncio.Lock | None = None

    @classmethod
    def like(cls, redis: Redis) -> FastRedis | None:
        """A connection to the server (and database) that ``redis`` uses; None for TLS
        (``rediss://``), which stays on redis-py."""
        pool = redis.connection_pool
        if issubclass(pool.connection_class, SSLConnection):
            return None
        kwargs = pool.connection_kwargs
        return cls(
            kwargs.get("host", "127.0.0.1"),
            int(kwargs.get("port", 6379)),
            path=kwargs.get("path"),
            db=int(kwargs.get("db", 0) or 0),
            password=kwargs.get("password"),
            username=kwargs.get("username"),
        )

    async def call(self, *args: Arg) -> Any:
        (future,) = (await self._open()).send([args])
        return await future

    async def call_many(self, commands: Sequence[Sequence[Arg]]) -> list[Any]:
        """Several commands in one write, answered in order (not a transaction)."""
        futures = (await self._open()).send(commands)
        return list(await asyncio.gather(*futures))

    async def send_many(self, commands: Sequence[Sequence[Arg]]) -> list[asyncio.Future[Any]]:
        """Write the commands (in one write, after those sent before) and return without
        waiting for their answers: one future per command, answered in order."""
        return (await self._open()).send(commands)

    async def evalsha(self, script: bytes, keys: Sequence[Arg], args: Sequence[Arg]) -> Any:
        """Run a Lua script by its digest, loading it when the server does not know it (a new
        or restarted Redis)."""
        sha = hashlib.sha1(script).hexdigest()
        try:
            return await self.call(b"EVALSHA", sha, len(keys), *keys, *args)
        except NoScriptError:
            return await self.call(b"EVAL", script, len(keys), *keys, *args)

    async def close(self) -> None:
        if self._protocol is not None:
            self._protocol.close()
            self._protocol = None

    async def _open(self) -> _Protocol:
        protocol = self._protocol
        if protocol is not None and not protocol.closed:
            return protocol
        if self._connecting is None:
            self._connecting = asyncio.Lock()
        async with self._connecting:
            if self._protocol is not None and not self._protocol.closed:
                return self._protocol
            loop = asyncio.get_running_loop()
            try:
                if self._path is not None:
                    connecting = loop.create_unix_connection(_Protocol, self._path)
                else:
                    connecting = loop.create_connection(_Protocol, self._host, self._port)
                _, opened = await asyncio.wait_for(connecting, timeout=5)
            except (OSError, TimeoutError) as exc:
                where = self._path or f"{self._host}:{self._port}"
                raise RedisConnectionError(f"Cannot connect to Redis at {where}: {exc}") from exc
            hello: list[Sequence[Arg]] = []
            if self._password is not None:
                auth: list[Arg] = [b"AUTH", self._password]
                if self._username is not None:
                    auth.insert(1, self._username)
                hello.append(auth)
            if self._db:
                hello.append([b"SELECT", self._db])
            if hello:
                try:
                    await asyncio.gather(*opened.send(hello))
                except BaseException:
                    opened.close()
                    raise
            self._protocol = opened
            return opened
