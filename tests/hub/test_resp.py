"""The lean Redis connections (hub/resp.py) against a real Redis: answers in order to concurrent
callers, errors as redis-py's, scripts loaded when the server does not know them, a lost
connection failing its calls and the next call reconnecting; the subscriber hearing its
channels alone, and coming back subscribed after Redis did."""

from __future__ import annotations

import asyncio
import time
import uuid
from typing import Any

import pytest
from redis.asyncio import Redis
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import ResponseError

from hub.resp import Address, FastRedis, Subscriber, encode
from tests.hub.test_realtime import PrivateRedis, private_redis

__all__ = ["private_redis"]  # a fixture

pytestmark = [pytest.mark.redis, pytest.mark.timeout(30)]


def test_commands_are_encoded_as_arrays_of_bulk_strings() -> None:
    assert (
        encode([b"SET", "k", 12, 0.5]) == b"*4\r\n$3\r\nSET\r\n$1\r\nk\r\n$2\r\n12\r\n$3\r\n0.5\r\n"
    )
    assert encode(["é"]) == b"*1\r\n$2\r\n\xc3\xa9\r\n"


async def test_concurrent_callers_get_their_own_answers(redis: Redis) -> None:
    fast = FastRedis.like(redis)
    key = f"resp-test-{uuid.uuid4().hex}"
    try:
        answers = await asyncio.gather(*(fast.call(b"INCR", key) for _ in range(200)))
        assert sorted(answers) == list(range(1, 201))
        assert await fast.call_many([(b"GET", key), (b"DEL", key), (b"GET", key)]) == [
            b"200",
            1,
            None,
        ]
        with pytest.raises(ResponseError, match="unknown command"):
            await fast.call(b"NO-SUCH-COMMAND")
        assert await fast.call(b"PING") == b"PONG"  # the connection goes on after an error
    finally:
        await fast.close()


async def test_a_script_unknown_to_the_server_is_loaded(redis: Redis) -> None:
    fast = FastRedis.like(redis)
    script = f"-- {uuid.uuid4().hex}\nreturn {{KEYS[1], ARGV[1]}}".encode()
    try:
        assert await fast.evalsha(script, ["k"], [7]) == [b"k", b"7"]  # EVAL, then cached
        assert await fast.evalsha(script, ["k"], [8]) == [b"k", b"8"]  # EVALSHA
    finally:
        await fast.close()


async def test_a_lost_connection_fails_its_calls_and_the_next_call_reconnects(
    private_redis: PrivateRedis,
) -> None:
    fast = FastRedis("127.0.0.1", private_redis.port)
    try:
        assert await fast.call(b"SET", "k", "v") == b"OK"
        # A call still waiting when the server dies fails, like redis-py's.
        waiting: asyncio.Task[Any] = asyncio.create_task(fast.call(b"BLPOP", "nothing", 10))
        await asyncio.sleep(0)  # sent
        await private_redis.kill()
        with pytest.raises(RedisConnectionError):
            await waiting
        with pytest.raises(RedisConnectionError):
            await fast.call(b"PING")  # nobody listens: refused, not hung
        await private_redis.start()
        assert await fast.call(b"GET", "k") is None  # a new server, and a new connection
    finally:
        await fast.close()


def test_it_works_on_uvloop_as_the_hub_runs(redis_url: str) -> None:
    """The hub serves on uvloop, whose transports are not asyncio's classes."""
    import uvloop

    async def run() -> list[Any]:
        redis = Redis.from_url(redis_url)
        fast = FastRedis.like(redis)
        address = Address.like(redis)
        assert fast is not None
        assert address is not None
        heard: asyncio.Queue[bytes] = asyncio.Queue()
        subscriber = Subscriber(address, lambda _, data: heard.put_nowait(data), _nothing)
        channel = f"resp-uv-{uuid.uuid4().hex}".encode()
        try:
            await subscriber.subscribe([channel])
            answers = await fast.call_many([(b"PING",), (b"ECHO", "uv")])
            await fast.call(b"PUBLISH", channel, b"heard")
            return [*answers, await asyncio.wait_for(heard.get(), 5)]
        finally:
            await subscriber.close()
            await fast.close()
            await redis.aclose()

    assert uvloop.run(run()) == [b"PONG", b"uv", b"heard"]


async def test_tls_stays_on_redis_py_and_unix_sockets_work(tmp_path: Any) -> None:
    assert FastRedis.like(Redis.from_url("rediss://127.0.0.1:6380/0")) is None
    path = tmp_path / "redis.sock"
    server = await asyncio.create_subprocess_exec(
        *("redis-server", "--port", "0", "--unixsocket", str(path), "--save", ""),
        *("--dir", str(tmp_path)),
        stdout=asyncio.subprocess.DEVNULL,
    )
    fast = FastRedis.like(Redis.from_url(f"unix://{path}?db=1"))
    assert fast is not None
    try:
        for _ in range(200):  # until the server listens
            if path.exists():
                break
            await asyncio.sleep(0.02)
        assert await fast.call_many([(b"SET", "k", "v"), (b"GET", "k")]) == [b"OK", b"v"]
    finally:
        await fast.close()
        server.kill()
        await server.wait()


async def _nothing() -> None:
    return None


class _Heard:
    def __init__(self) -> None:
        self.messages: asyncio.Queue[tuple[bytes, bytes]] = asyncio.Queue()
        self.reconnects = 0
        self.back = asyncio.Event()

    def on_message(self, channel: bytes, data: bytes) -> None:
        self.messages.put_nowait((channel, data))

    async def on_reconnect(self) -> None:
        self.reconnects += 1
        self.back.set()

    async def next(self) -> tuple[bytes, bytes]:
        return await asyncio.wait_for(self.messages.get(), 5)


async def test_the_subscriber_hears_its_channels_and_no_others(redis: Redis) -> None:
    address = Address.like(redis)
    assert address is not None
    heard = _Heard()
    subscriber = Subscriber(address, heard.on_message, heard.on_reconnect)
    a, b, c = (f"resp-sub-{uuid.uuid4().hex}-{n}".encode() for n in "abc")
    try:
        await subscriber.subscribe([a, b, a])  # one reply per channel named, repeats too
        await redis.publish(c, "unheard")
        await redis.publish(a, "one")
        await redis.publish(b, "two")
        assert [await heard.next(), await heard.next()] == [(a, b"one"), (b, b"two")]
        await subscriber.unsubscribe([b])
        await redis.publish(b, "gone")
        await redis.publish(a, "marker")  # Redis delivers in order: "gone" would come first
        assert await heard.next() == (a, b"marker")
        assert subscriber.channels == {a}
        assert heard.reconnects == 0
    finally:
        await subscriber.close()


async def test_the_subscriber_comes_back_subscribed_and_says_so(
    private_redis: PrivateRedis,
) -> None:
    heard = _Heard()
    address = Address(port=private_redis.port)
    subscriber = Subscriber(address, heard.on_message, heard.on_reconnect)
    publisher = FastRedis(port=private_redis.port)
    try:
        await subscriber.subscribe([b"kept", b"dropped"])
        await private_redis.kill()
        # While Redis is away: leaving a channel works (it went with the connection), joining
        # one fails with nothing added.
        await subscriber.unsubscribe([b"dropped"])
        with pytest.raises(RedisConnectionError):
            await subscriber.subscribe([b"new"])
        assert subscriber.channels == {b"kept"}
        await private_redis.start()
        await asyncio.wait_for(heard.back.wait(), 10)
        assert subscriber.connected
        assert heard.reconnects == 1
        await publisher.call(b"PUBLISH", b"dropped", b"unheard")
        await publisher.call(b"PUBLISH", b"new", b"unheard")
        await publisher.call(b"PUBLISH", b"kept", b"after")
        assert await heard.next() == (b"kept", b"after")
    finally:
        await subscriber.close()
        await publisher.close()


async def test_a_subscriber_refused_at_login_does_not_keep_retrying(
    redis: Redis, caplog: pytest.LogCaptureFixture
) -> None:
    """A wrong password is the caller's error to see, not a connection to reopen forever."""
    address = Address.like(redis)
    assert address is not None
    heard = _Heard()
    wrong = Subscriber(
        Address(address.host, address.port, password="wrong"), heard.on_message, heard.on_reconnect
    )
    try:
        with pytest.raises(ResponseError):
            await wrong.subscribe([b"any"])
        await asyncio.sleep(0)  # the refused connection's loss is reported meanwhile
        assert not wrong.connected
        assert "reconnecting" not in caplog.text
    finally:
        await wrong.close()


async def test_a_silent_subscriber_connection_is_reopened(private_redis: PrivateRedis) -> None:
    """A server that stops answering without closing the connection: the subscriber's ping
    goes unanswered, it drops the connection and opens another once the server is back."""
    heard = _Heard()
    address = Address(port=private_redis.port)
    subscriber = Subscriber(
        address, heard.on_message, heard.on_reconnect, check_every=0.2, answer_within=0.5
    )
    publisher = FastRedis(port=private_redis.port)
    try:
        await subscriber.subscribe([b"kept"])
        private_redis.pause()
        async with asyncio.timeout(10):
            # Until the unanswered ping drops it (the subscriber has no event to wait on).
            while subscriber.connected:  # noqa: ASYNC110
                await asyncio.sleep(0.05)
        with pytest.raises(RedisConnectionError):  # nothing answers meanwhile
            await subscriber.subscribe([b"new"])
        private_redis.pause(False)
        await asyncio.wait_for(heard.back.wait(), 10)
        await publisher.call(b"PUBLISH", b"kept", b"after")
        assert await heard.next() == (b"kept", b"after")
    finally:
        private_redis.pause(False)
        await subscriber.close()
        await publisher.close()


async def test_a_held_up_event_loop_does_not_drop_an_answering_connection(redis: Redis) -> None:
    """The hub's event loop stops for longer than the ping may take (a long callback, a
    preempted process) while the server answers at once: when the loop comes back, the answer
    is there, and the connection (and what it carries) is kept."""
    address = Address.like(redis)
    assert address is not None
    heard = _Heard()
    subscriber = Subscriber(
        address, heard.on_message, heard.on_reconnect, check_every=0.01, answer_within=0.1
    )
    channel = f"resp-held-{uuid.uuid4().hex}".encode()
    try:
        await subscriber.subscribe([channel])
        protocol = subscriber._protocol
        assert protocol is not None
        for _ in range(3):
            async with asyncio.timeout(5):
                while not protocol._expected:  # until the check's ping is out  # noqa: ASYNC110
                    await asyncio.sleep(0)
            # Holds the loop: the answer and the timer are both due after it.
            time.sleep(0.3)  # noqa: ASYNC251
            async with asyncio.timeout(5):
                while protocol._expected:  # the ping answered or given up  # noqa: ASYNC110
                    await asyncio.sleep(0)
        assert subscriber._protocol is protocol
        assert subscriber.connected
        await redis.publish(channel, "still heard")
        assert await heard.next() == (channel, b"still heard")
        assert heard.reconnects == 0
    finally:
        await subscriber.close()
