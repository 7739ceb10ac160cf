"""One lean Redis connection for the hot path: the gateway's publishes and the chat's budget
script, a few per chat message on every hub.

redis-py costs about 100 us of CPU per round trip here (a pool checkout and release, a retry
wrapper, a timeout context and asyncio streams on every command); a protocol on the event loop
with hiredis's parser (the C parser redis-py itself uses when it is installed) costs about 9.
Commands are written at once and answered in order (Redis answers a connection's commands in
the order they came), so concurrent callers share the connection without waiting for each
other, and what one caller publishes reaches Redis in the order it was published.

``Subscriber`` is the broker's pub/sub connection, on the same footing: every message is read
by hiredis in the protocol's callback and handed on there, where redis-py's reader is a task
calling ``get_message`` (a timeout, a retry wrapper and a parse per message).

Everything else (presence, tickets, pipelines) stays on redis-py.
"""

from __future__ import annotations

import abc
import asyncio
import contextlib
import dataclasses
import hashlib
import logging
from collections import deque
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar, cast

import hiredis
from redis.asyncio import Redis
from redis.asyncio.connection import SSLConnection
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import NoScriptError, ResponseError

log = logging.getLogger(__name__)

Arg = bytes | str | int | float
P = TypeVar("P", bound=asyncio.Protocol)


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


class _Resp(asyncio.Protocol, abc.ABC):
    """A connection speaking RESP, read with hiredis's parser."""

    def __init__(self) -> None:
        self._reader = hiredis.Reader()
        self._transport: asyncio.Transport | None = None
        self.closed = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports are not subclasses of asyncio's, only alike.
        self._transport = cast(asyncio.Transport, transport)

    def close(self) -> None:
        self.closed = True
        if self._transport is not None:
            self._transport.close()

    def abort(self) -> None:
        """Drop the connection at once, unsent data and all (``connection_lost`` follows)."""
        if self._transport is not None:
            self._transport.abort()

    def connection_lost(self, exc: Exception | None) -> None:
        self._fail(RedisConnectionError(f"Connection to Redis lost: {exc or 'closed'}"))

    def _broken(self, why: str) -> None:
        """Redis sent what cannot be read, or what was not asked for: every caller waiting
        fails, and the connection is dropped."""
        self._fail(RedisConnectionError(why))
        self.abort()

    @abc.abstractmethod
    def _fail(self, error: Exception) -> None:
        """Closed to new commands; every command still waiting gets ``error``."""


class _Protocol(_Resp):
    def __init__(self) -> None:
        super().__init__()
        self._waiting: deque[asyncio.Future[Any]] = deque()

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
            self._broken(f"Redis sent what is not RESP: {exc}")

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


@dataclass(frozen=True, slots=True)
class Address:
    """Where a Redis server listens, and how to log in to it."""

    host: str = "127.0.0.1"
    port: int = 6379
    path: str | None = None  # a Unix socket instead of TCP
    db: int = 0
    password: str | None = None
    username: str | None = None

    @classmethod
    def like(cls, redis: Redis) -> Address | None:
        """The server (and database) that ``redis`` uses; None for TLS (``rediss://``), which
        stays on redis-py."""
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

    async def connect(self, factory: Callable[[], P]) -> P:
        """A connected protocol; raises redis-py's ``ConnectionError`` when there is none."""
        loop = asyncio.get_running_loop()
        try:
            if self.path is not None:
                connecting = loop.create_unix_connection(factory, self.path)
            else:
                connecting = loop.create_connection(factory, self.host, self.port)
            _, protocol = await asyncio.wait_for(connecting, timeout=5)
        except (OSError, TimeoutError) as exc:
            where = self.path or f"{self.host}:{self.port}"
            raise RedisConnectionError(f"Cannot connect to Redis at {where}: {exc}") from exc
        return protocol

    def hello(self, *, select: bool = True) -> list[Sequence[Arg]]:
        """The commands that log a new connection in (and pick its database)."""
        hello: list[Sequence[Arg]] = []
        if self.password is not None:
            auth: list[Arg] = [b"AUTH", self.password]
            if self.username is not None:
                auth.insert(1, self.username)
            hello.append(auth)
        if self.db and select:
            hello.append([b"SELECT", self.db])
        return hello


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
        self.address = Address(host, port, path, db, password, username)
        self._protocol: _Protocol | None = None
        self._connecting: asyncio.Lock | None = None

    @classmethod
    def like(cls, redis: Redis) -> FastRedis | None:
        """A connection to the server (and database) that ``redis`` uses; None for TLS
        (``rediss://``), which stays on redis-py."""
        address = Address.like(redis)
        return None if address is None else cls(**dataclasses.asdict(address))

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
            opened = await self.address.connect(_Protocol)
            hello = self.address.hello()
            if hello:
                try:
                    await asyncio.gather(*opened.send(hello))
                except BaseException:
                    opened.close()
                    raise
            self._protocol = opened
            return opened


# Handed each message's channel and data, in the protocol's callback.
OnMessage = Callable[[bytes, bytes], None]


class _SubProtocol(_Resp):
    """A connection in pub/sub mode: messages go to ``on_message`` as they are read; the
    other replies (logging in, subscribing, unsubscribing) answer the commands in order."""

    def __init__(self, on_message: OnMessage, on_lost: Callable[[_SubProtocol], None]) -> None:
        super().__init__()
        self._on_message = on_message
        self._on_lost = on_lost
        # Per command sent: the replies it still waits for, and its future.
        self._expected: deque[list[Any]] = deque()

    def data_received(self, data: bytes) -> None:
        self._reader.feed(data)
        try:
            while (reply := self._reader.gets()) is not False:
                if type(reply) is list and reply[0] == b"message":
                    try:
                        self._on_message(reply[1], reply[2])
                    except Exception:
                        log.exception("a pub/sub message could not be handed on")
                    continue
                entry = self._expected[0]  # IndexError: a reply to no command
                if isinstance(reply, hiredis.ReplyError):
                    self._expected.popleft()
                    if not entry[1].done():
                        entry[1].set_exception(ResponseError(str(reply)))
                    continue
                entry[0] -= 1
                if entry[0] <= 0:
                    self._expected.popleft()
                    if not entry[1].done():
                        entry[1].set_result(reply)
        except (hiredis.ProtocolError, IndexError) as exc:
            self._broken(f"Redis sent what was not asked for: {exc}")

    def connection_lost(self, exc: Exception | None) -> None:
        super().connection_lost(exc)
        self._on_lost(self)

    def _fail(self, error: Exception) -> None:
        self.closed = True
        while self._expected:
            _, future = self._expected.popleft()
            if not future.done():
                future.set_exception(error)

    async def command(
        self, args: Sequence[Arg], replies: int = 1, within: float | None = None
    ) -> Any:
        """Send a command and wait for its ``replies`` replies (one per channel of a
        SUBSCRIBE or UNSUBSCRIBE); returns the last. ``within``: seconds to wait, after which
        ``ConnectionError``."""
        if self.closed or self._transport is None or self._transport.is_closing():
            raise RedisConnectionError("Connection to Redis is closed")
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self._expected.append([replies, future])
        self._transport.write(encode(args))
        if within is None:
            return await future
        # Not asyncio.timeout: when the event loop was held up for longer than ``within``,
        # the answer and the timer are both due in the same turn, and the timer would win:
        # a connection that answered would be dropped, and what it carried meanwhile lost.
        try:
            await asyncio.wait((future,), timeout=within)
        finally:
            if not future.done():
                future.cancel()  # its reply, if it comes, is skipped
        if future.cancelled():
            raise RedisConnectionError("Redis did not answer the subscriber")
        return future.result()


class Subscriber:
    """Pub/sub on a connection of its own. A lost connection is opened again (with backoff)
    and every channel subscribed again, then ``on_reconnect`` runs: what was published
    meanwhile is gone, and the caller fetches it from where it is kept.

    A connection can also go quiet without closing (a server stopped, or gone from the network
    without a reset): every ``check_every`` seconds the subscriber pings, and a connection that
    does not answer within ``answer_within`` is dropped and opened again like a lost one."""

    def __init__(
        self,
        address: Address,
        on_message: OnMessage,
        on_reconnect: Callable[[], Awaitable[None]],
        *,
        check_every: float = 15.0,
        answer_within: float = 5.0,
    ) -> None:
        self._address = address
        self._check_every = check_every
        self._answer_within = answer_within
        self._checker: asyncio.Task[None] | None = None
        self._on_message = on_message
        self._on_reconnect = on_reconnect
        self.channels: set[bytes] = set()
        self._protocol: _SubProtocol | None = None
        self._lock = asyncio.Lock()
        self._connected_before = False
        self._reconnecting: asyncio.Task[None] | None = None
        self._hooks: set[asyncio.Task[None]] = set()
        self._closed = False

    async def subscribe(self, channels: Sequence[bytes]) -> None:
        """Listening on ``channels`` when this returns; raises redis-py's ``ConnectionError``
        (nothing subscribed) while Redis cannot be reached."""
        if not channels:
            return
        async with self._lock:
            protocol = await self._connected()
            await protocol.command(
                [b"SUBSCRIBE", *channels], replies=len(channels), within=self._answer_within
            )
            self.channels.update(channels)

    async def unsubscribe(self, channels: Sequence[bytes]) -> None:
        """Never raises for a lost connection: its subscriptions went with it, and the next
        one subscribes only the channels left."""
        if not channels:
            return
        async with self._lock:
            self.channels.difference_update(channels)
            protocol = self._protocol
            if protocol is None or protocol.closed:
                return
            with contextlib.suppress(RedisConnectionError):
                await protocol.command([b"UNSUBSCRIBE", *channels], replies=len(channels))

    @property
    def connected(self) -> bool:
        return self._protocol is not None and not self._protocol.closed

    async def close(self) -> None:
        self._closed = True
        if self._checker is not None:
            self._checker.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._checker
        for hook in list(self._hooks):
            hook.cancel()
        if self._reconnecting is not None:
            self._reconnecting.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._reconnecting
        if self._protocol is not None:
            self._protocol.close()
            self._protocol = None

    async def _connected(self) -> _SubProtocol:
        """The connection, opened (logged in, every channel subscribed again) when it is not;
        called holding the lock."""
        if self._protocol is not None and not self._protocol.closed:
            return self._protocol
        if self._closed:
            raise RedisConnectionError("the subscriber is closed")
        opened = await self._address.connect(lambda: _SubProtocol(self._on_message, self._lost))
        try:
            for command in self._address.hello(select=False):  # channels span databases
                await opened.command(command, within=self._answer_within)
            if self.channels:
                channels = sorted(self.channels)
                await opened.command(
                    [b"SUBSCRIBE", *channels], replies=len(channels), within=self._answer_within
                )
        except BaseException:
            opened.close()
            raise
        self._protocol = opened
        if self._checker is None:
            self._checker = asyncio.get_running_loop().create_task(
                self._check(), name="redis-subscriber-check"
            )
        if self._connected_before:
            log.info("redis subscriber connection back")
            hook = asyncio.get_running_loop().create_task(self._run_reconnect_hook())
            self._hooks.add(hook)
            hook.add_done_callback(self._hooks.discard)
        self._connected_before = True
        return opened

    async def _check(self) -> None:
        while True:
            await asyncio.sleep(self._check_every)
            protocol = self._protocol
            if protocol is None or protocol.closed:
                continue  # being reopened
            try:
                await protocol.command([b"PING"], within=self._answer_within)
            except RedisConnectionError:
                if not protocol.closed:  # silent, not lost (a lost one is being reopened)
                    log.warning("redis subscriber connection silent; reopening it")
                    protocol.abort()  # reported lost: reopened, then the hooks run
            except ResponseError:
                pass

    def _lost(self, protocol: _SubProtocol) -> None:
        # Only the connection in use: one that failed while being opened was never in use.
        if self._closed or protocol is not self._protocol or self._reconnecting is not None:
            return
        log.warning("redis subscriber connection lost; reconnecting")
        self._reconnecting = asyncio.get_running_loop().create_task(
            self._reconnect(), name="redis-subscriber-reconnect"
        )

    async def _reconnect(self) -> None:
        backoff = 0.05
        try:
            while not self._closed:
                try:
                    async with self._lock:
                        await self._connected()
                    return
                except (RedisConnectionError, ResponseError, OSError) as exc:
                    log.warning("redis subscriber not back yet", extra={"error": str(exc)})
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, 2.0)
        finally:
            self._reconnecting = None

    async def _run_reconnect_hook(self) -> None:
        try:
            await self._on_reconnect()
        except Exception:
            log.exception("reconnect hook failed")
