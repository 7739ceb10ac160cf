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
from sqlalchemy import delete, select
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
        now = self._clock.now()
        try:
            async with self._db.transaction() as s:
                existing = await s.scalar(
                    select(IdempotencyRecord).where(
                        IdempotencyRecord.user_id == user_id, IdempotencyRecord.key == key
                    )
                )
                if existing is None:
                    s.add(
                        IdempotencyRecord(
                            user_id=user_id,
                            key=key,
                            fingerprint=request_fingerprint,
                            status=0,
                            body=b"",
                            created_at=now,
                        )
                    )
        except IntegrityError:
            raise Conflict(
                "A request with this Idempotency-Key is still being processed."
            ) from None
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

    async def _store(self, user_id: int, key: str, response: StoredResponse) -> None:
        async with self._db.transaction() as s:
            record = await s.scalar(
                select(IdempotencyRecord).where(
                    IdempotencyRecord.user_id == user_id, IdempotencyRecord.key == key
                )
            )
            if record is not None:
                record.status = response.status
                record.body = response.body
                record.content_type = response.content_type

    async def _forget(self, user_id: int, key: str) -> None:
        async with self._db.transaction() as s:
            await s.execute(
                delete(IdempotencyRecord).where(
                    IdempotencyRecord.user_id == user_id, IdempotencyRecord.key == key
                )
            )

    async def expire(self) -> None:
        async with self._db.transaction() as s:
            await s.execute(
                delete(IdempotencyRecord).where(
                    IdempotencyRecord.created_at < self._clock.now() - KEEP_FOR
                )
            )
