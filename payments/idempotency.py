"""Idempotency keys for money-moving requests (the Stripe contract): the same key with the
same request replays the first response without doing anything again; the same key with a
different request is a 409; a key still being processed is a 409 too. Keys live 24 h at least."""

from __future__ import annotations

import hashlib
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import orjson
from sqlalchemy import Row, bindparam, delete, select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.exc import IntegrityError

from hub.clock import Clock
from hub.db import Database
from hub.errors import CohortError, Conflict, ErrorCode, FieldError, ValidationFailed
from payments.models import IdempotencyRecord

KEEP_FOR = timedelta(hours=48)
PROBLEM = "application/problem+json"


class ReplayedRefusal(CohortError):
    """The stored refusal of the first request with this key, raised again."""

    def __init__(self, status: int, problem: dict[str, Any]) -> None:
        super().__init__(problem["detail"])
        self.status = status
        self.code = ErrorCode(problem["code"])
        self.title = problem["title"]
        self._extra = dict(problem.get("extra") or {})
        self._headers = dict(problem.get("headers") or {})

    def extra(self) -> dict[str, Any]:
        return self._extra

    def headers(self) -> dict[str, str]:
        return self._headers


MAX_KEY_LENGTH = 255


def _claim(insert: Any) -> Any:
    # The same key racing in from another request: one inserts, the other reads.
    return (
        insert(IdempotencyRecord)
        .on_conflict_do_nothing(index_elements=["user_id", "key"])
        .returning(IdempotencyRecord.id)
    )


# Statements of every money-moving request, built once (building and keying a statement costs
# about as much CPU as running it).
_CLAIM_POSTGRES = _claim(pg_insert)
_CLAIM_SQLITE = _claim(sqlite_insert)
_THIS_KEY = (
    IdempotencyRecord.user_id == bindparam("record_user"),
    IdempotencyRecord.key == bindparam("record_key"),
)
_EARLIER = select(
    IdempotencyRecord.fingerprint,
    IdempotencyRecord.status,
    IdempotencyRecord.body,
    IdempotencyRecord.content_type,
).where(*_THIS_KEY)
# Sets the columns its parameters name (status, body, content_type).
_STORE = update(IdempotencyRecord).where(*_THIS_KEY)


@dataclass(frozen=True, slots=True)
class StoredResponse:
    status: int
    body: bytes
    content_type: str
    replayed: bool = False


def fingerprint(method: str, path: str, body: bytes) -> str:
    return hashlib.sha256(f"{method} {path}\n".encode() + body).hexdigest()


class IdempotencyKeys:
    def __init__(self, db: Database, clock: Clock) -> None:
        self._db = db
        self._clock = clock

    async def run(
        self,
        user_id: int,
        key: str,
        request_fingerprint: str,
        operation: Callable[[], Awaitable[StoredResponse]],
    ) -> StoredResponse:
        """Run ``operation`` once per (user, key); later calls get its stored response.

        Raises:
            ValidationFailed: a malformed key.
            Conflict: the key was used for another request, or its first use is still running.
        """
        if not key or len(key) > MAX_KEY_LENGTH or not key.isprintable():
            raise ValidationFailed(
                [
                    FieldError(
                        "Idempotency-Key", f"must be 1 to {MAX_KEY_LENGTH} printable characters"
                    )
                ]
            )
        existing = await self._claim(user_id, key, request_fingerprint)
        if existing is not None:
            if existing.fingerprint != request_fingerprint:
                raise Conflict("This Idempotency-Key was already used for a different request.")
            if existing.status == 0:
                raise Conflict("A request with this Idempotency-Key is still being processed.")
            if existing.content_type == PROBLEM:
                raise ReplayedRefusal(existing.status, orjson.loads(existing.body))
            return StoredResponse(existing.status, existing.body, existing.content_type, True)
        try:
            response = await operation()
        except CohortError as exc:
            if exc.status >= 500:
                await self._forget(user_id, key)
                raise
            # A refused request (402, 409, 422, ...) is an answer too: the same key gets it
            # again, even if a retry would now succeed.
            problem = {
                "code": str(exc.code),
                "title": exc.title,
                "detail": exc.detail,
                "extra": exc.extra(),
                "headers": exc.headers(),
            }
            await self._store(
                user_id, key, StoredResponse(exc.status, orjson.dumps(problem), PROBLEM)
            )
            raise
        except BaseException:
            await self._forget(user_id, key)  # nothing happened: let the client retry
            raise
        await self._store(user_id, key, response)
        return response

    async def _claim(
        self, user_id: int, key: str, request_fingerprint: str
    ) -> Row[str, int, bytes, str] | None:
        """Record the key as being processed; returns None when this request claimed it, else
        the earlier record (fingerprint, status, body, content_type).

        Raises:
            Conflict: the record could not be written (a race with the same key).
        """
        params = {
            "user_id": user_id,
            "key": key,
            "fingerprint": request_fingerprint,
            "status": 0,
            "body": b"",
            "content_type": "application/json",
            "created_at": self._clock.now(),
        }
        claim = _CLAIM_SQLITE if self._db.is_sqlite else _CLAIM_POSTGRES
        try:
            # Single statements outside a transaction on PostgreSQL: two round trips fewer on
            # every money-moving request.
            async with self._db.connect(writes=True) as conn:
                if (await conn.execute(claim, params)).first() is not None:
                    return None
                existing = (
                    await conn.execute(_EARLIER, {"record_user": user_id, "record_key": key})
                ).first()
        except IntegrityError:
            existing = None
        if existing is None:
            # Claimed by another request and forgotten again in between, or refused by the
            # database: either way the key was busy a moment ago.
            raise Conflict("A request with this Idempotency-Key is still being processed.")
        return existing

    async def _store(self, user_id: int, key: str, response: StoredResponse) -> None:
        async with self._db.connect(writes=True) as conn:
            await conn.execute(
                _STORE,
                {
                    "record_user": user_id,
                    "record_key": key,
                    "status": response.status,
                    "body": response.body,
                    "content_type": response.content_type,
                },
            )

    async def _forget(self, user_id: int, key: str) -> None:
        record = IdempotencyRecord
        async with self._db.connect(writes=True) as conn:
            await conn.execute(delete(record).where(record.user_id == user_id, record.key == key))

    async def expire(self) -> None:
        async with self._db.transaction() as s:
            await s.execute(
                delete(IdempotencyRecord).where(
                    IdempotencyRecord.created_at < self._clock.now() - KEEP_FOR
                )
            )
