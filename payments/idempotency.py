"""Idempotency keys for money-moving requests (the Stripe contract): the same key with the
same request replays the first response without doing anything again; the same key with a
different request is a 409; a key still being processed is a 409 too. Keys live 24 h at least.

Two ways to use them: ``IdempotencyKeys.run`` claims the key, runs the operation and stores its
answer (three steps, each its own transaction); or an operation records its answer itself, in
the transaction that does the work (``record``), after looking for an earlier answer in that
same transaction, and ``refuse`` stores a refusal. The second leaves no window in which the
work is done but its answer is not stored, and costs no extra round trips.
"""

from __future__ import annotations

import hashlib
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import orjson
from sqlalchemy import bindparam, delete, insert, select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection

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
_RECORD = insert(IdempotencyRecord)


@dataclass(frozen=True, slots=True)
class StoredResponse:
    status: int
    body: bytes
    content_type: str
    replayed: bool = False


# What a key's record holds while its first request runs (``IdempotencyKeys.run``).
_PROCESSING = StoredResponse(0, b"", "application/json")


@dataclass(frozen=True, slots=True)
class KeyUse:
    """An ``Idempotency-Key`` as one request sent it: whose it is, the key, and what the
    request was (its fingerprint)."""

    user_id: int
    key: str
    fingerprint: str


def fingerprint(method: str, path: str, body: bytes) -> str:
    return hashlib.sha256(f"{method} {path}\n".encode() + body).hexdigest()


def key_use(user_id: int, key: str, request_fingerprint: str) -> KeyUse:
    """Raises:
    ValidationFailed: a malformed key."""
    if not key or len(key) > MAX_KEY_LENGTH or not key.isprintable():
        raise ValidationFailed(
            [FieldError("Idempotency-Key", f"must be 1 to {MAX_KEY_LENGTH} printable characters")]
        )
    return KeyUse(user_id, key, request_fingerprint)


# A key's stored answer: (fingerprint, status, body, content_type).
Earlier = Sequence[Any]


def replay(use: KeyUse, earlier: Earlier) -> StoredResponse:
    """The answer stored for the key (``fingerprint, status, body, content_type``), given again.

    Raises:
        Conflict: the key was used for another request, or its first use is still running.
        ReplayedRefusal: the first request was refused; so is this one, the same way.
    """
    earlier_fingerprint, status, body, content_type = earlier
    if earlier_fingerprint != use.fingerprint:
        raise Conflict("This Idempotency-Key was already used for a different request.")
    if status == 0:
        raise Conflict("A request with this Idempotency-Key is still being processed.")
    if content_type == PROBLEM:
        raise ReplayedRefusal(status, orjson.loads(body))
    return StoredResponse(status, bytes(body), content_type, True)


def refusal(exc: CohortError) -> StoredResponse:
    """A refused request's answer, as it is stored for its key."""
    problem = {
        "code": str(exc.code),
        "title": exc.title,
        "detail": exc.detail,
        "extra": exc.extra(),
        "headers": exc.headers(),
    }
    return StoredResponse(exc.status, orjson.dumps(problem), PROBLEM)


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
        use = key_use(user_id, key, request_fingerprint)
        existing = await self._claim(use)
        if existing is not None:
            return replay(use, existing)
        try:
            response = await operation()
        except CohortError as exc:
            if exc.status >= 500:
                await self._forget(user_id, key)
                raise
            # A refused request (402, 409, 422, ...) is an answer too: the same key gets it
            # again, even if a retry would now succeed.
            await self._store(user_id, key, refusal(exc))
            raise
        except BaseException:
            await self._forget(user_id, key)  # nothing happened: let the client retry
            raise
        await self._store(user_id, key, response)
        return response

    async def earlier(self, conn: AsyncConnection, use: KeyUse) -> Earlier | None:
        """The answer stored for the key, if any (``fingerprint, status, body,
        content_type``; see ``replay``), read on the caller's connection."""
        params = {"record_user": use.user_id, "record_key": use.key}
        return (await conn.execute(_EARLIER, params)).first()

    async def record(self, conn: AsyncConnection, use: KeyUse, response: StoredResponse) -> None:
        """Store the answer to the key's first use in the caller's transaction, the one that
        did the work.

        Raises:
            IntegrityError: the key has an answer already (a request with the same key that
                committed first): roll back, then replay it.
        """
        await conn.execute(_RECORD, self._values(use, response))

    async def refuse(self, use: KeyUse, exc: CohortError) -> StoredResponse | None:
        """Store a refusal as the key's answer. Returns None when stored (raise ``exc``), or
        the answer a request with the same key stored first (give that instead).

        Raises:
            Conflict, ReplayedRefusal: as ``replay``.
        """
        claim = _CLAIM_SQLITE if self._db.is_sqlite else _CLAIM_POSTGRES
        async with self._db.connect(writes=True) as conn:
            if (await conn.execute(claim, self._values(use, refusal(exc)))).first() is not None:
                return None
            earlier = await self.earlier(conn, use)
        if earlier is None:  # stored and forgotten again in between: the key was busy
            raise Conflict("A request with this Idempotency-Key is still being processed.")
        return replay(use, earlier)

    def _values(self, use: KeyUse, response: StoredResponse) -> dict[str, Any]:
        return {
            "user_id": use.user_id,
            "key": use.key,
            "fingerprint": use.fingerprint,
            "status": response.status,
            "body": response.body,
            "content_type": response.content_type,
            "created_at": self._clock.now(),
        }

    async def _claim(self, use: KeyUse) -> Earlier | None:
        """Record the key as being processed; returns None when this request claimed it, else
        the earlier record (fingerprint, status, body, content_type).

        Raises:
            Conflict: the record could not be written (a race with the same key).
        """
        params = self._values(use, _PROCESSING)
        claim = _CLAIM_SQLITE if self._db.is_sqlite else _CLAIM_POSTGRES
        try:
            # Single statements outside a transaction on PostgreSQL: two round trips fewer on
            # every money-moving request.
            async with self._db.connect(writes=True) as conn:
                if (await conn.execute(claim, params)).first() is not None:
                    return None
                existing = await self.earlier(conn, use)
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
