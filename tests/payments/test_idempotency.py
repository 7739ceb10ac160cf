"""Idempotency keys: replay, conflict, in-flight, refusals, and retry after a crash."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from aiohttp import web

from hub.clock import FakeClock
from hub.errors import Conflict, ValidationFailed
from hub.services import HUB
from payments.idempotency import (
    IdempotencyKeys,
    ReplayedRefusal,
    StoredResponse,
    fingerprint,
)
from payments.ledger import InsufficientFunds
from tests.conftest import sign_up


@pytest.fixture
async def keys(app: web.Application, client: Any) -> IdempotencyKeys:
    return IdempotencyKeys(app[HUB].db, app[HUB].clock)


@pytest.fixture
async def user_id(client: Any) -> int:
    return (await sign_up(client, "Ida")).id


class Operation:
    def __init__(self, result: StoredResponse | BaseException) -> None:
        self.result = result
        self.calls = 0
        self.started = asyncio.Event()
        self.release = asyncio.Event()
        self.release.set()

    async def __call__(self) -> StoredResponse:
        self.calls += 1
        self.started.set()
        await self.release.wait()
        if isinstance(self.result, BaseException):
            raise self.result
        return self.result


FP = fingerprint("POST", "/api/courses/1/purchase", b"{}")


async def test_same_key_same_request_replays_without_running_again(
    keys: IdempotencyKeys, user_id: int
) -> None:
    op = Operation(StoredResponse(201, b'{"enrollment": 7}', "application/json"))
    first = await keys.run(user_id, "k-1", FP, op)
    again = await keys.run(user_id, "k-1", FP, op)
    assert op.calls == 1
    assert (first.status, first.body, first.replayed) == (201, b'{"enrollment": 7}', False)
    assert (again.status, again.body, again.replayed) == (201, b'{"enrollment": 7}', True)


async def test_same_key_other_request_is_a_conflict(keys: IdempotencyKeys, user_id: int) -> None:
    op = Operation(StoredResponse(201, b"{}", "application/json"))
    await keys.run(user_id, "k-2", FP, op)
    other = fingerprint("POST", "/api/courses/2/purchase", b"{}")
    with pytest.raises(Conflict, match="different request"):
        await keys.run(user_id, "k-2", other, op)
    assert op.calls == 1


async def test_keys_belong_to_their_user(keys: IdempotencyKeys, user_id: int, client: Any) -> None:
    other_user = (await sign_up(client, "Olaf")).id
    op = Operation(StoredResponse(201, b"{}", "application/json"))
    await keys.run(user_id, "shared", FP, op)
    await keys.run(other_user, "shared", FP, op)
    assert op.calls == 2


async def test_a_key_in_flight_is_a_conflict(keys: IdempotencyKeys, user_id: int) -> None:
    op = Operation(StoredResponse(201, b"{}", "application/json"))
    op.release.clear()
    first = asyncio.create_task(keys.run(user_id, "k-3", FP, op))
    await op.started.wait()  # the first request is inside its operation
    with pytest.raises(Conflict, match="still being processed"):
        await keys.run(user_id, "k-3", FP, op)
    op.release.set()
    assert (await first).status == 201
    assert op.calls == 1


async def test_a_refusal_is_replayed_as_the_same_refusal(
    keys: IdempotencyKeys, user_id: int
) -> None:
    op = Operation(InsufficientFunds(balance=5, needed=40))
    with pytest.raises(InsufficientFunds):
        await keys.run(user_id, "k-4", FP, op)
    with pytest.raises(ReplayedRefusal) as replay:
        await keys.run(user_id, "k-4", FP, op)
    assert op.calls == 1
    assert replay.value.status == 402
    assert str(replay.value.code) == "insufficient_funds"
    assert replay.value.extra() == {"balance": 5, "price": 40}


async def test_a_crash_frees_the_key_for_a_retry(keys: IdempotencyKeys, user_id: int) -> None:
    crash = Operation(RuntimeError("database went away"))
    with pytest.raises(RuntimeError):
        await keys.run(user_id, "k-5", FP, crash)
    ok = Operation(StoredResponse(201, b"{}", "application/json"))
    assert (await keys.run(user_id, "k-5", FP, ok)).status == 201
    assert ok.calls == 1


@pytest.mark.parametrize("key", ["", "x" * 256, "tab\there"])
async def test_malformed_keys_are_422(keys: IdempotencyKeys, user_id: int, key: str) -> None:
    op = Operation(StoredResponse(201, b"{}", "application/json"))
    with pytest.raises(ValidationFailed):
        await keys.run(user_id, key, FP, op)
    assert op.calls == 0


async def test_keys_are_kept_a_day_then_expire(
    keys: IdempotencyKeys, user_id: int, clock: FakeClock
) -> None:
    op = Operation(StoredResponse(201, b"{}", "application/json"))
    await keys.run(user_id, "k-6", FP, op)
    clock.advance(24 * 3600)
    await keys.expire()
    assert (await keys.run(user_id, "k-6", FP, op)).replayed
    clock.advance(25 * 3600)
    await keys.expire()
    assert not (await keys.run(user_id, "k-6", FP, op)).replayed
    assert op.calls == 2
