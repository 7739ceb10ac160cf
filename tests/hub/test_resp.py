"""The lean Redis connection (hub/resp.py) against a real Redis: answers in order to concurrent
callers, errors as redis-py's, scripts loaded when the server does not know them, a lost
connection failing its calls and the next call reconnecting."""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

import pytest
from redis.asyncio import Redis
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import ResponseError

from hub.resp import FastRedis, encode
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
        fast = FastRedis.like(Redis.from_url(redis_url))
        try:
            return await fast.call_many([(b"PING",), (b"ECHO", "uv")])
        finally:
            await fast.close()

    assert uvloop.run(run()) == [b"PONG", b"uv"]


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
