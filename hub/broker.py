"""The broker moves messages between hub processes. It is a transport, never the record: anything
that must survive lives in the database and is replayed from there.

``MemoryBroker`` serves one process; ``RedisBroker`` carries the same calls over Redis pub/sub,
with one Redis connection per process however many local subscribers there are.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import defaultdict
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import dataclass
from types import TracebackType
from typing import Any, Protocol

from redis.asyncio import Redis
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

from hub.resp import Address, FastRedis, Subscriber

log = logging.getLogger(__name__)

DEFAULT_QUEUE_SIZE = 10_000


@dataclass(frozen=True, slots=True)
class BrokerMessage:
    channel: str
    data: bytes


class Subscription:
    """Messages of the channels it is subscribed to, in arrival order, from a bounded queue.

    A subscriber that falls ``queue_size`` messages behind loses the overflow (counted in
    ``dropped``): the room is never slowed by one reader, and readers repair gaps from storage.
    """

    def __init__(self, fanout: _Fanout, queue_size: int) -> None:
        self._fanout = fanout
        self._queue: asyncio.Queue[BrokerMessage | None] = asyncio.Queue(queue_size)
        self.channels: set[str] = set()
        self.dropped = 0
        self._closed = False

    async def add(self, *channels: str) -> None:
        """Raises the transport's error (Redis down) with nothing added."""
        new = [c for c in channels if c not in self.channels]
        self.channels.update(new)
        try:
            await self._fanout.attach(self, new)
        except BaseException:
            self.channels.difference_update(new)
            raise

    async def remove(self, *channels: str) -> None:
        gone = [c for c in channels if c in self.channels]
        self.channels.difference_update(gone)
        await self._fanout.detach(self, gone)

    def deliver(self, message: BrokerMessage) -> None:
        try:
            self._queue.put_nowait(message)
        except asyncio.QueueFull:
            self.dropped += 1

    def drain(self) -> list[BrokerMessage]:
        """Messages already delivered and not yet read, without waiting."""
        messages = []
        while not self._queue.empty():
            item = self._queue.get_nowait()
            if item is None:
                break
            messages.append(item)
        return messages

    async def get(self) -> BrokerMessage:
        """The next message; raises ``StopAsyncIteration`` once closed."""
        if self._closed and self._queue.empty():
            raise StopAsyncIteration
        item = await self._queue.get()
        if item is None:
            raise StopAsyncIteration
        return item

    def __aiter__(self) -> AsyncIterator[BrokerMessage]:
        return self

    async def __anext__(self) -> BrokerMessage:
        return await self.get()

    async def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        await self._fanout.detach(self, list(self.channels))
        self.channels.clear()
        with contextlib.suppress(asyncio.QueueFull):
            self._queue.put_nowait(None)

    async def __aenter__(self) -> Subscription:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()


class _Fanout:
    """Local delivery: channel → this process's subscriptions. Hooks tell a transport when a
    channel gains its first or loses its last local subscriber."""

    def __init__(self) -> None:
        self.by_channel: dict[str, set[Subscription]] = defaultdict(set)

    async def attach(self, sub: Subscription, channels: list[str]) -> None:
        first = [c for c in channels if not self.by_channel.get(c)]
        for channel in channels:
            self.by_channel[channel].add(sub)
        if first:
            try:
                await self.on_first(first)
            except BaseException:
                for channel in channels:
                    subs = self.by_channel.get(channel)
                    if subs is not None:
                        subs.discard(sub)
                        if not subs:
                            del self.by_channel[channel]
                raise

    async def detach(self, sub: Subscription, channels: list[str]) -> None:
        last = []
        for channel in channels:
            subs = self.by_channel.get(channel)
            if subs is None:
                continue
            subs.discard(sub)
            if not subs:
                del self.by_channel[channel]
                last.append(channel)
        if last:
            await self.on_last(last)

    def deliver(self, channel: str, data: bytes) -> None:
        subs = self.by_channel.get(channel)
        if subs:
            message = BrokerMessage(channel, data)
            for sub in tuple(subs):
                sub.deliver(message)

    async def on_first(self, channels: list[str]) -> None:
        return None

    async def on_last(self, channels: list[str]) -> None:
        return None


class Broker(Protocol):
    async def publish(self, channel: str, data: bytes) -> None:
        """Send ``data`` to every subscriber of ``channel`` in every hub process."""
        ...

    async def publish_many(self, messages: Sequence[tuple[str, bytes]]) -> None:
        """``publish`` each ``(channel, data)`` in order, in one round trip where it can."""
        ...

    async def post_many(self, messages: Sequence[tuple[str, bytes]]) -> None:
        """``publish_many`` without waiting for the transport's answer where it can: handed
        over in order after every publish made before, and a failure found later is logged
        (what did not arrive, subscribers of durable channels read from storage). Raises when
        the transport refuses at once (Redis down)."""
        ...

    async def subscribe(self, *channels: str, queue_size: int = DEFAULT_QUEUE_SIZE) -> Subscription:
        """A new subscription, already listening on ``channels`` when this returns."""
        ...

    # Called after the transport lost its connection and got it back: messages published
    # meanwhile are gone from the broker, and durable channels catch up from storage.
    on_reconnect: list[Callable[[], Awaitable[None]]]

    async def ping(self) -> None:
        """Raise if the broker cannot carry messages right now."""
        ...

    async def start(self) -> None: ...

    async def close(self) -> None: ...


class MemoryBroker:
    on_reconnect: list[Callable[[], Awaitable[None]]]
    """In-process broker for the embedded default and tests."""

    def __init__(self) -> None:
        self.on_reconnect = []
        self._fanout = _Fanout()

    async def start(self) -> None:
        return None

    async def publish(self, channel: str, data: bytes) -> None:
        self._fanout.deliver(channel, data)

    async def publish_many(self, messages: Sequence[tuple[str, bytes]]) -> None:
        for channel, data in messages:
            self._fanout.deliver(channel, data)

    async def post_many(self, messages: Sequence[tuple[str, bytes]]) -> None:
        await self.publish_many(messages)

    async def subscribe(self, *channels: str, queue_size: int = DEFAULT_QUEUE_SIZE) -> Subscription:
        sub = Subscription(self._fanout, queue_size)
        await sub.add(*channels)
        return sub

    async def ping(self) -> None:
        return None

    async def close(self) -> None:
        for subs in list(self._fanout.by_channel.values()):
            for sub in list(subs):
                await sub.close()


class _RedisFanout(_Fanout):
    def __init__(self, broker: RedisBroker) -> None:
        super().__init__()
        self._broker = broker

    async def on_first(self, channels: list[str]) -> None:
        await self._broker._redis_subscribe(channels)

    async def on_last(self, channels: list[str]) -> None:
        await self._broker._redis_unsubscribe(channels)


class RedisBroker:
    """Redis pub/sub between hub processes; channel names are namespaced by ``prefix``.

    Pub/sub is at-most-once: what a disconnected process misses is gone, which is why durable
    channels replay from the database by sequence number.
    """

    def __init__(
        self, redis: Redis, prefix: str, fast: FastRedis | None = None, *, lean: bool = True
    ) -> None:
        """``fast``: the hub's lean connection for publishing (one of the broker's own when
        not given). Subscriptions get a lean connection of their own (hub/resp.py). Where
        there can be none (TLS), or with ``lean`` false, both go through redis-py."""
        self._redis = redis
        address = Address.like(redis) if lean else None
        # Publishes go down one connection, in order: a channel's messages reach the other
        # hubs as published.
        self._fast = None if address is None else fast or FastRedis.like(redis)
        self._owns_fast = self._fast is not None and fast is None
        self._prefix = f"{prefix}:ch:"
        self._fanout = _RedisFanout(self)
        self._subscriber = (
            None if address is None else Subscriber(address, self._heard, self._run_reconnect_hooks)
        )
        self._pubsub = redis.pubsub()  # without the lean subscriber
        self._reader: asyncio.Task[None] | None = None
        self._started = False
        self._subscribed = asyncio.Event()
        self._lock = asyncio.Lock()
        self._watched: object | None = None
        self._hooks_running: set[asyncio.Task[None]] = set()
        self.on_reconnect: list[Callable[[], Awaitable[None]]] = []

    async def start(self) -> None:
        if self._started:
            raise RuntimeError("broker already started")
        self._started = True
        if self._subscriber is None:
            self._reader = asyncio.create_task(self._read(), name="redis-broker-reader")

    async def close(self) -> None:
        if self._reader is not None:
            self._reader.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._reader
            self._reader = None
        if self._subscriber is not None:
            await self._subscriber.close()
        await self._pubsub.aclose()  # type: ignore[no-untyped-call]
        if self._owns_fast and self._fast is not None:
            await self._fast.close()

    async def publish(self, channel: str, data: bytes) -> None:
        if self._fast is None:
            await self._redis.publish(self._prefix + channel, data)
            return
        await self._fast.call(b"PUBLISH", self._prefix + channel, data)

    async def publish_many(self, messages: Sequence[tuple[str, bytes]]) -> None:
        if self._fast is not None:
            await self._fast.call_many([(b"PUBLISH", self._prefix + c, d) for c, d in messages])
            return
        # One connection, in order: a channel's messages reach the other hubs as published.
        async with self._redis.pipeline(transaction=False) as pipe:
            for channel, data in messages:
                pipe.publish(self._prefix + channel, data)
            await pipe.execute()

    async def post_many(self, messages: Sequence[tuple[str, bytes]]) -> None:
        if self._fast is None:
            await self.publish_many(messages)
            return
        answers = await self._fast.send_many(
            [(b"PUBLISH", self._prefix + c, d) for c, d in messages]
        )
        for answer in answers:
            answer.add_done_callback(_posted)

    async def subscribe(self, *channels: str, queue_size: int = DEFAULT_QUEUE_SIZE) -> Subscription:
        sub = Subscription(self._fanout, queue_size)
        await sub.add(*channels)
        return sub

    async def ping(self) -> None:
        await self._redis.ping()

    async def _redis_subscribe(self, channels: list[str]) -> None:
        if self._subscriber is not None:
            await self._subscriber.subscribe([(self._prefix + c).encode() for c in channels])
            return
        async with self._lock:
            await self._pubsub.subscribe(*(self._prefix + c for c in channels))
            connection: Any = self._pubsub.connection
            if connection is not None and connection is not self._watched:
                # Called on every later connect of the pub/sub connection, after redis-py's
                # own callback has subscribed its channels again.
                connection.register_connect_callback(self._reconnected)
                self._watched = connection
            self._subscribed.set()

    async def _redis_unsubscribe(self, channels: list[str]) -> None:
        if self._subscriber is not None:
            await self._subscriber.unsubscribe([(self._prefix + c).encode() for c in channels])
            return
        async with self._lock:
            await self._pubsub.unsubscribe(*(self._prefix + c for c in channels))

    async def _reconnected(self, connection: object) -> None:
        """The pub/sub connection is back: what was published meanwhile is gone from it, so
        the hooks fetch it (from storage). redis-py reconnects by itself, retrying, and when
        the server is back within its retries the reader never hears of the loss: this is the
        one place that sees every reconnect."""
        log.info("redis broker connection back")
        task = asyncio.get_running_loop().create_task(self._run_reconnect_hooks())
        self._hooks_running.add(task)
        task.add_done_callback(self._hooks_running.discard)

    def _heard(self, channel: bytes, data: bytes) -> None:
        """A message from the lean subscriber, in its connection's callback."""
        self._fanout.deliver(channel.decode()[len(self._prefix) :], data)

    async def _run_reconnect_hooks(self) -> None:
        for hook in self.on_reconnect:
            try:
                await hook()
            except Exception:
                log.exception("reconnect hook failed")

    async def _read(self) -> None:
        backoff = 0.1
        cut = len(self._prefix)
        while True:
            await self._subscribed.wait()
            try:
                message = await self._pubsub.get_message(
                    ignore_subscribe_messages=True, timeout=1.0
                )
                backoff = 0.1
            except (RedisConnectionError, RedisTimeoutError, OSError) as exc:
                # redis-py re-subscribes every channel when the connection comes back.
                log.warning("redis broker connection lost; retrying", extra={"error": str(exc)})
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, 5.0)
                continue
            if message is None:
                if not self._pubsub.subscribed:
                    self._subscribed.clear()
                continue
            if message["type"] == "message":
                channel = message["channel"]
                name = channel.decode() if isinstance(channel, bytes) else channel
                self._fanout.deliver(name[cut:], message["data"])


def _posted(answer: asyncio.Future[Any]) -> None:
    """An answer to a ``post_many``: a failure (the connection lost before it came) is logged."""
    if answer.cancelled():
        return
    if (exc := answer.exception()) is not None:
        log.warning(
            "broker publish failed; subscribers repair from storage", extra={"error": str(exc)}
        )
