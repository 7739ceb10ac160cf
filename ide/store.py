"""Where Yjs documents live: an append-only log of updates per document in the project database,
compacted into one row now and then."""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from typing import Protocol

from sqlalchemy import delete, func, insert, select

from hub.clock import Clock
from hub.db import Database
from ide.models import DocumentUpdate
from ide.updates import BadUpdate, DocumentState, compact, has_structs, load, readable

log = logging.getLogger(__name__)

# Rows merged by one compaction: any subset of a log can be merged on its own (updates
# commute), so a long log is compacted in slices that keep each transaction short.
COMPACT_SLICE = 2000


class DocumentStore(Protocol):
    async def load(self, doc: str) -> list[bytes]:
        """Every stored update of ``doc`` (none for a new document)."""
        ...

    async def append(self, updates: Mapping[str, bytes]) -> None:
        """Store one update per document, in one transaction."""
        ...

    async def compact(self, doc: str, *, live: DocumentState | None = None) -> int:
        """Replace ``doc``'s rows with their merge (plus what ``live`` holds beyond them);
        returns the rows left."""
        ...


class SqlDocumentStore:
    def __init__(self, db: Database, clock: Clock) -> None:
        self._db = db
        self._clock = clock

    async def load(self, doc: str) -> list[bytes]:
        async with self._db.connect() as conn:
            rows = await conn.execute(
                select(DocumentUpdate.data)
                .where(DocumentUpdate.doc == doc)
                .order_by(DocumentUpdate.id)
            )
            return [bytes(r[0]) for r in rows]

    async def append(self, updates: Mapping[str, bytes]) -> None:
        if not updates:
            return
        now = self._clock.now()
        async with self._db.connect(writes=True) as conn:
            await conn.execute(
                insert(DocumentUpdate),
                [{"doc": doc, "data": data, "created_at": now} for doc, data in updates.items()],
            )

    async def count(self, doc: str) -> int:
        async with self._db.connect() as conn:
            value = await conn.scalar(
                select(func.count()).select_from(DocumentUpdate).where(DocumentUpdate.doc == doc)
            )
            return int(value or 0)

    async def compact(self, doc: str, *, live: DocumentState | None = None) -> int:
        """Lossless under concurrency: only the rows read are deleted (by id), so an update
        appended meanwhile, by this hub or another, survives; two hubs compacting at once
        leave two equivalent rows, never fewer updates."""
        async with self._db.transaction() as s:
            rows = (
                await s.execute(
                    select(DocumentUpdate.id, DocumentUpdate.data)
                    .where(DocumentUpdate.doc == doc)
                    .order_by(DocumentUpdate.id)
                    .limit(COMPACT_SLICE + 1)
                )
            ).all()
            whole = len(rows) <= COMPACT_SLICE
            rows = rows[:COMPACT_SLICE]
            ids = [r[0] for r in rows]
            data = [bytes(r[1]) for r in rows]
            if len(rows) <= 1 and (live is None or not _adds_to(live, data)):
                return len(rows)
            try:
                merged = compact(data, live=live if whole else None)
            except BadUpdate:
                keep = [i for i, d in enumerate(data) if readable(d)]
                log.error(
                    "unreadable document updates left out of compaction",
                    extra={"doc": doc, "rows": [ids[i] for i in range(len(ids)) if i not in keep]},
                )
                ids = [ids[i] for i in keep]
                merged = compact([data[i] for i in keep], live=live if whole else None)
            if len(ids) == 1 and merged == data[0]:
                return 1
            s.add(DocumentUpdate(doc=doc, data=merged, created_at=self._clock.now()))
            if ids:
                await s.execute(delete(DocumentUpdate).where(DocumentUpdate.id.in_(ids)))
        return await self.count(doc)


def _adds_to(live: DocumentState, rows: Sequence[bytes]) -> bool:
    """Whether ``live`` holds content the stored rows lack."""
    stored, _ = load(rows)
    return has_structs(live.missing_for(stored.state_vector))
