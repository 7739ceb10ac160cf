"""Who a request speaks for, read from PostgreSQL for many requests at once.

Every authenticated request reads its user and its session's revocation mark from the database,
so a session ended on any hub stops its next request at once. On PostgreSQL the reads of the
requests that arrive while others are being read go together into the next read: one statement
for all of them (``PRINCIPALS``). A request's read never starts before the request arrived, so
it sees every session ended before that, as a read of its own would; what each request learns
is only its own row.
"""

from __future__ import annotations

from typing import Any

from hub.batching import Coalescer
from hub.db import Database
from hub.identity.models import AuthSession, User

# Reads in PostgreSQL at once from one hub, and requests in one read at most. Two: one is read
# while the requests arriving meanwhile gather for the next.
READS_AT_ONCE = 2
MAX_READ = 256

_USER_COLUMNS = tuple(c.name for c in User.__table__.c)
_USERS = User.__tablename__
_SESSIONS = AuthSession.__tablename__
# $1 user ids, $2 session ids, one element per request. One row per request whose session
# exists and belongs to that user: its position (`n`), the user's columns and the session's
# revocation mark. The subquery with LIMIT looks each one up by primary key, whatever the
# planner guesses of the arrays' length.
PRINCIPALS = f"""
SELECT i.n, p.*
FROM unnest($1::bigint[], $2::varchar[]) WITH ORDINALITY AS i (user_id, session_id, n),
    LATERAL (
        SELECT {", ".join(f"u.{name}" for name in _USER_COLUMNS)},
            s.revoked_at AS session_revoked_at
        FROM {_SESSIONS} s JOIN {_USERS} u ON u.id = s.user_id
        WHERE s.id = i.session_id AND s.user_id = i.user_id
        LIMIT 1
    ) AS p
"""


class PrincipalReads:
    """The session reads of a hub on PostgreSQL, gathered: the first of a quiet moment is read
    at once; under load the requests that wait share one statement."""

    def __init__(self, db: Database) -> None:
        self._db = db
        self._reads: Coalescer[tuple[int, str], Any] = Coalescer(
            self._read, max_batch=MAX_READ, name="principal-reads", workers=READS_AT_ONCE
        )

    async def read(self, user_id: int, session_id: str) -> dict[str, Any] | None:
        """The user's columns and ``session_revoked_at``; None when no such session of this
        user exists. Read by a statement that started after this call."""
        # A request that goes away takes neither its read nor the others' with it.
        record = await self._reads.submit((user_id, session_id))
        if record is None:
            return None
        values = dict(record)
        del values["n"]
        return values

    async def _read(self, batch: list[tuple[int, str]]) -> list[Any]:
        async with self._db.driver() as driver:
            rows = await driver.fetch(
                PRINCIPALS, [user for user, _ in batch], [sid for _, sid in batch]
            )
        found = {row["n"]: row for row in rows}
        return [found.get(n) for n in range(1, len(batch) + 1)]
