"""Durable channel messages: sequence numbers assigned in the storing transaction, frames built
once, history and replay by sequence number."""

from __future__ import annotations

import functools
from collections import Counter, defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import orjson
from sqlalchemy import JSON, Table, func, insert, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession

from hub.broker import Broker
from hub.db import Database
from hub.realtime.models import ChannelHead, ChannelMessage, RealtimeVersion

EPHEMERAL = b"-"
# Presence changes travel as ephemeral messages marked apart, so that hubs can follow who is
# online without parsing every other ephemeral message.
PRESENCE = b"p"


def message_frame(channel: str, seq: int | None, data: dict[str, Any]) -> bytes:
    """The server → client frame of a channel message; the same bytes for every recipient."""
    return orjson.dumps({"op": "message", "channel": channel, "seq": seq, "data": data})


def _frame_of(channel: str, seq: int, data_json: bytes) -> bytes:
    """``message_frame`` around ``data`` serialized already (the stored copy's bytes)."""
    return b'{"op":"message","channel":%s,"seq":%d,"data":%s}' % (
        orjson.dumps(channel),
        seq,
        data_json,
    )


def wire(seq: int | None, frame: bytes) -> bytes:
    """What travels on the broker: the sequence number (or ``-``) and the frame, so a hub can
    order and de-duplicate without parsing JSON."""
    return (str(seq).encode() if seq is not None else EPHEMERAL) + b"\n" + frame


def unwire(payload: bytes) -> tuple[int | None, bytes]:
    """Raises ValueError for a payload that is not in this format."""
    head, sep, frame = payload.partition(b"\n")
    if not sep:
        raise ValueError("not a gateway payload")
    return (None if head in (EPHEMERAL, PRESENCE) else int(head)), frame


def wire_presence(frame: bytes) -> bytes:
    """``wire`` for a presence event (ephemeral)."""
    return PRESENCE + b"\n" + frame


def pack(origin: str, messages: Sequence[tuple[str, bytes]]) -> bytes:
    """Several ``(channel, wire payload)`` as one broker message from hub ``origin``: a line
    with the origin, then for each a line with the byte lengths of channel and payload followed
    by both (no JSON to escape or parse)."""
    parts = [origin.encode(), b"\n"]
    for channel, payload in messages:
        name = channel.encode()
        parts += [b"%d %d\n" % (len(name), len(payload)), name, payload]
    return b"".join(parts)


def unpack(data: bytes) -> tuple[str, list[tuple[str, bytes]]]:
    """``pack``'s origin and messages. Raises ValueError for data not in this format."""
    end = data.index(b"\n")
    origin = data[:end].decode()
    messages = []
    at, size = end + 1, len(data)
    try:
        while at < size:
            end = data.index(b"\n", at)
            name_len, payload_len = map(int, data[at:end].split(b" "))
            at = end + 1 + name_len
            messages.append((data[end + 1 : at].decode(), data[at : at + payload_len]))
            at += payload_len
    except (IndexError, TypeError) as exc:
        raise ValueError("not a packed gateway batch") from exc
    if at != size:
        raise ValueError("a packed gateway batch ends mid-message")
    return origin, messages


def is_presence(payload: bytes) -> bool:
    return payload.startswith(PRESENCE + b"\n")


def event_data(payload: bytes) -> dict[str, Any]:
    """The ``data`` of a message as it travels on the broker (tests and tools)."""
    _, frame = unwire(payload)
    data: dict[str, Any] = orjson.loads(frame)["data"]
    return data


async def publish_event(broker: Broker, channel: str, data: dict[str, Any]) -> None:
    """Publish an ephemeral event (no sequence number, not stored) to a gateway channel, for
    code that has the broker but not the gateway (workers)."""
    await broker.publish(channel, wire(None, message_frame(channel, None, data)))


@dataclass(frozen=True, slots=True)
class Stored:
    channel: str
    seq: int
    frame: bytes


@dataclass(frozen=True, slots=True)
class Companion:
    """A row of another table written in the same transaction as a durable message (a chat
    message's current state): ``values`` without ``seq``, which the store adds."""

    table: Table
    values: dict[str, Any]


@dataclass(frozen=True, slots=True)
class Budget:
    """At most ``limit`` rows of ``table`` by a message's author in its channel within the
    ``window`` seconds up to the message's time. ``table`` has ``channel``, ``author_id`` and
    ``created_at`` columns, an index on those three, and is one of the message's companion
    tables, so that each message stored spends the budget and a message refused spends
    nothing."""

    table: Table
    limit: int
    window: float


@dataclass(frozen=True, slots=True)
class Guard:
    """What the transaction storing a message checks before it gives the message a number:
    that members' standing is still at the version the sender was admitted on
    (``realtime_versions``, moved by ``move_standing``), then each of the sender's budgets."""

    standing: int
    budgets: tuple[Budget, ...] = ()


class NotStored(Exception):
    """A guarded message its transaction refused: ``budget`` is the index of the budget that
    refused it, or None when the standing version had moved (admit it again)."""

    def __init__(self, budget: int | None) -> None:
        super().__init__("standing moved" if budget is None else f"budget {budget} spent")
        self.budget = budget


@dataclass(frozen=True, slots=True)
class Pending:
    """A durable message waiting to be stored."""

    channel: str
    data: dict[str, Any]
    author_id: int | None
    now: datetime
    companions: tuple[Companion, ...] = ()
    guard: Guard | None = None


STANDING = "standing"


async def standing_version(conn: AsyncConnection) -> int:
    """The version of members' standing (0 before it first moves)."""
    value = await conn.scalar(select(RealtimeVersion.value).where(RealtimeVersion.name == STANDING))
    return int(value or 0)


async def move_standing(conn: AsyncConnection) -> None:
    """Move the standing version (in the caller's transaction, after the change it stands
    for was committed or with it): messages admitted on the old one are admitted again."""
    insert_version = (postgresql.insert if conn.dialect.name == "postgresql" else sqlite.insert)(
        RealtimeVersion
    ).values(name=STANDING, value=1)
    await conn.execute(
        insert_version.on_conflict_do_update(
            index_elements=[RealtimeVersion.name],
            set_={"value": RealtimeVersion.value + 1},
        )
    )


# PostgreSQL: a whole batch in one statement, so one round trip and no BEGIN/COMMIT (a single
# statement is its own transaction). Guarded messages are judged first (``Guard``): a standing
# version that moved, then each budget in turn (the author's rows of its table in the channel
# within its window, plus the author's messages before this one in the batch that have that
# budget: a batch's own rows are not visible to the statement that inserts them). Each channel's
# head moves by its count of messages admitted (heads locked in channel order, so two batches
# never wait on each other crosswise) and the channel's admitted messages take the numbers below
# the new head in their order in the batch; the companion rows go in with the number of their
# message. The text depends only on which budget tables, companion tables and columns the batch
# has (prepared once per connection for each).
_BATCH_PG = """
WITH batch AS (
    SELECT * FROM unnest(
        CAST($1 AS varchar[]), CAST($2 AS bigint[]), CAST($3 AS text[]),
        CAST($4 AS timestamptz[]){guard_arrays}
    ) WITH ORDINALITY AS b(channel, author_id, data, created_at{guard_names}, ord)
), judged AS (
    SELECT b.*, {refusal} AS refused FROM batch AS b
), admitted AS (
    SELECT * FROM judged WHERE refused IS NULL
), counts AS (
    SELECT channel, count(*) AS n FROM admitted GROUP BY channel
), heads AS (
    INSERT INTO channel_heads AS h (channel, last_seq)
    SELECT channel, n FROM counts ORDER BY channel
    ON CONFLICT (channel) DO UPDATE SET last_seq = h.last_seq + excluded.last_seq
    RETURNING h.channel, h.last_seq
), numbered AS (
    SELECT b.ord, b.channel, b.author_id, b.data, b.created_at,
           heads.last_seq - counts.n
               + row_number() OVER (PARTITION BY b.channel ORDER BY b.ord) AS seq
    FROM admitted AS b JOIN counts USING (channel) JOIN heads USING (channel)
), stored AS (
    INSERT INTO channel_messages (channel, seq, author_id, data, created_at)
    SELECT channel, seq, author_id, CAST(data AS json), created_at FROM numbered
){companions}
SELECT ord, seq, NULL AS refused FROM numbered
UNION ALL
SELECT ord, NULL, refused FROM judged WHERE refused IS NOT NULL
"""

_PG = postgresql.dialect()  # type: ignore[no-untyped-call]

CompanionShape = tuple[tuple[Table, tuple[str, ...]], ...]
# None: no message of the batch is guarded; else the table of each budget position.
GuardShape = tuple[Table, ...] | None


@functools.lru_cache(maxsize=64)
def _batch_sql_pg(shape: CompanionShape, guards: GuardShape = None) -> str:
    """``_BATCH_PG`` with the guard's arrays when the batch has guarded messages (the standing
    version expected, then limit and window of each budget), and one insert per companion table
    and set of columns: each column comes as an array (JSON ones as text), then the array of
    the rows' messages' positions. Refusal codes: -1 the standing moved, k budget k spent."""
    quote = _PG.identifier_preparer.quote
    n = 4
    guard_arrays = guard_names = ""
    refusal = "CAST(NULL AS integer)"
    if guards is not None:
        n += 1
        guard_arrays = f", CAST(${n} AS bigint[])"
        guard_names = ", standing"
        cases = [
            "WHEN b.standing IS NOT NULL AND b.standing <> coalesce((SELECT value FROM "
            f"realtime_versions WHERE name = '{STANDING}'), 0) THEN -1"
        ]
        for k, table in enumerate(guards):
            guard_arrays += f", CAST(${n + 1} AS integer[]), CAST(${n + 2} AS float8[])"
            n += 2
            guard_names += f", limit_{k}, window_{k}"
            # At most ``limit`` rows are read, newest first, on the table's (channel,
            # author_id, created_at) index: what the order asks for, whatever the statistics.
            cases.append(
                f"WHEN b.limit_{k} IS NOT NULL AND (\n"
                f"        SELECT count(*) FROM (SELECT FROM {quote(table.name)} AS t\n"
                f"            WHERE t.channel = b.channel AND t.author_id = b.author_id\n"
                f"            AND t.created_at > b.created_at - make_interval(secs => b.window_{k})"
                f"\n            ORDER BY t.channel, t.author_id, t.created_at DESC"
                f" LIMIT b.limit_{k}) AS recent\n"
                f"    ) + count(b.limit_{k}) OVER (PARTITION BY b.channel, b.author_id ORDER BY"
                f" b.ord\n        ROWS BETWEEN UNBOUNDED PRECEDING AND 1 PRECEDING) >= b.limit_{k}"
                f" THEN {k}"
            )
        refusal = "CASE\n        " + "\n        ".join(cases) + "\n    END"
    parts = []
    for k, (table, keys) in enumerate(shape):
        arrays: list[str] = []
        picks: list[str] = []
        for key in keys:
            n += 1
            column = table.c[key]
            if isinstance(column.type, JSON):
                arrays.append(f"CAST(${n} AS text[])")
                picks.append(f"CAST(v.c{len(picks)} AS json)")
            else:
                arrays.append(f"CAST(${n} AS {column.type.compile(dialect=_PG)}[])")
                picks.append(f"v.c{len(picks)}")
        n += 1
        names = ", ".join(f"c{i}" for i in range(len(keys)))
        columns = ", ".join(quote(key) for key in keys)
        parts.append(
            f", companion_{k} AS (\n    INSERT INTO {quote(table.name)} ({columns}, seq)\n"
            f"    SELECT {', '.join(picks)}, numbered.seq\n"
            f"    FROM unnest({', '.join(arrays)}, CAST(${n} AS bigint[])) AS v({names}, ord)\n"
            "    JOIN numbered ON numbered.ord = v.ord\n)"
        )
    return _BATCH_PG.format(
        guard_arrays=guard_arrays,
        guard_names=guard_names,
        refusal=refusal,
        companions="".join(parts),
    )


def _guard_shape(batch: Sequence[Pending]) -> GuardShape:
    """The budget tables of a batch's guarded messages, by position.

    Raises:
        ValueError: two messages have different tables at the same position (the group commit
            then stores the batch's messages one by one)."""
    guards = [p.guard for p in batch if p.guard is not None]
    if not guards:
        return None
    tables: list[Table] = []
    for guard in guards:
        for k, budget in enumerate(guard.budgets):
            if k == len(tables):
                tables.append(budget.table)
            elif tables[k] is not budget.table:
                raise ValueError("a batch's budgets at one position are on different tables")
    return tuple(tables)


async def _refusal(
    conn: AsyncConnection, p: Pending, guard: Guard, version: int, admitted: Sequence[Pending]
) -> NotStored | None:
    """``_BATCH_PG``'s judgement of one guarded message in portable statements: its refusal, or
    None. ``admitted``: the messages before it in the batch that are being stored."""
    if guard.standing != version:
        return NotStored(None)
    for k, budget in enumerate(guard.budgets):
        table = budget.table
        spent = await conn.scalar(
            select(func.count())
            .select_from(table)
            .where(
                table.c.channel == p.channel,
                table.c.author_id == p.author_id,
                table.c.created_at > p.now - timedelta(seconds=budget.window),
            )
        )
        spent = (spent or 0) + sum(
            1
            for a in admitted
            if (a.channel, a.author_id) == (p.channel, p.author_id)
            and a.guard is not None
            and k < len(a.guard.budgets)
        )
        if spent >= budget.limit:
            return NotStored(k)
    return None


class MessageStore:
    def __init__(self, db: Database) -> None:
        self._db = db

    async def append(
        self,
        s: AsyncSession,
        channel: str,
        data: dict[str, Any],
        *,
        author_id: int | None,
        now: datetime,
    ) -> Stored:
        """Store a message inside the caller's transaction and give it the channel's next
        sequence number. Publish ``wire(stored.seq, stored.frame)`` after the commit."""
        dialect = s.get_bind().dialect.name
        insert = postgresql.insert if dialect == "postgresql" else sqlite.insert
        statement = (
            insert(ChannelHead)
            .values(channel=channel, last_seq=1)
            .on_conflict_do_update(
                index_elements=[ChannelHead.channel],
                set_={"last_seq": ChannelHead.last_seq + 1},
            )
            .returning(ChannelHead.last_seq)
        )
        seq = int((await s.execute(statement)).scalar_one())
        s.add(
            ChannelMessage(channel=channel, seq=seq, author_id=author_id, data=data, created_at=now)
        )
        await s.flush()
        return Stored(channel, seq, message_frame(channel, seq, data))

    async def store_many(self, batch: Sequence[Pending]) -> list[Stored | NotStored]:
        """Store a batch of messages with their companion rows in one transaction; each gets its
        channel's next sequence number, in batch order, unless its guard refuses it (then it
        takes no number and writes nothing). Publish the stored ones after this returns."""
        if not batch:
            return []
        if self._db.is_sqlite:
            async with self._db.writing() as conn:
                refusals = await self._judge(conn, batch)
                stored = iter(
                    await self.append_many(
                        conn, [p for p, r in zip(batch, refusals, strict=True) if r is None]
                    )
                )
                return [next(stored) if r is None else r for r in refusals]
        guards = _guard_shape(batch)
        encoded = [orjson.dumps(p.data) for p in batch]
        shapes: dict[tuple[Table, tuple[str, ...]], list[tuple[int, dict[str, Any]]]] = {}
        for ord_, p in enumerate(batch, start=1):
            for c in p.companions:
                shapes.setdefault((c.table, tuple(c.values)), []).append((ord_, c.values))
        args: list[Any] = [
            [p.channel for p in batch],
            [p.author_id for p in batch],
            [e.decode() for e in encoded],
            [p.now for p in batch],
        ]
        if guards is not None:
            args.append([None if p.guard is None else p.guard.standing for p in batch])
            for k in range(len(guards)):
                budgets = [
                    p.guard.budgets[k] if p.guard is not None and k < len(p.guard.budgets) else None
                    for p in batch
                ]
                args.append([None if b is None else b.limit for b in budgets])
                args.append([None if b is None else b.window for b in budgets])
        for (table, keys), rows in shapes.items():
            for key in keys:
                values = [v[key] for _, v in rows]
                if isinstance(table.c[key].type, JSON):
                    values = [None if v is None else orjson.dumps(v).decode() for v in values]
                args.append(values)
            args.append([ord_ for ord_, _ in rows])
        async with self._db.driver() as conn:
            numbered = await conn.fetch(_batch_sql_pg(tuple(shapes), guards), *args)
        by_ord = {int(o): (seq, refused) for o, seq, refused in numbered}
        outcomes: list[Stored | NotStored] = []
        for k, (p, e) in enumerate(zip(batch, encoded, strict=True), start=1):
            seq, refused = by_ord[k]
            if seq is None:
                outcomes.append(NotStored(None if refused < 0 else int(refused)))
            else:
                outcomes.append(Stored(p.channel, int(seq), _frame_of(p.channel, int(seq), e)))
        return outcomes

    async def _judge(
        self, conn: AsyncConnection, batch: Sequence[Pending]
    ) -> list[NotStored | None]:
        """The guards of a batch, in portable statements inside its transaction (SQLite, where
        it is the only writer): each message's refusal, or None to store it. Messages before
        it in the batch count for a budget when they are stored."""
        if all(p.guard is None for p in batch):
            return [None] * len(batch)
        version = await standing_version(conn)
        admitted: list[Pending] = []
        refusals: list[NotStored | None] = []
        for p in batch:
            refusal = None
            if p.guard is not None:
                refusal = await _refusal(conn, p, p.guard, version, admitted)
            refusals.append(refusal)
            if refusal is None:
                admitted.append(p)
        return refusals

    async def append_many(self, conn: AsyncConnection, batch: Sequence[Pending]) -> list[Stored]:
        """``store_many`` inside the caller's transaction (``Database.writing``), in portable
        statements: the heads, the messages, the companion rows."""
        if not batch:
            return []
        counts = Counter(p.channel for p in batch)
        insert_head = postgresql.insert if conn.dialect.name == "postgresql" else sqlite.insert
        upsert = insert_head(ChannelHead).values(
            [{"channel": c, "last_seq": n} for c, n in sorted(counts.items())]
        )
        numbered = upsert.on_conflict_do_update(
            index_elements=[ChannelHead.channel],
            set_={"last_seq": ChannelHead.last_seq + upsert.excluded.last_seq},
        ).returning(ChannelHead.channel, ChannelHead.last_seq)
        heads = {c: int(n) for c, n in await conn.execute(numbered)}
        taken = {c: heads[c] - n for c, n in counts.items()}
        seqs = []
        for p in batch:
            taken[p.channel] += 1
            seqs.append(taken[p.channel])
        await conn.execute(
            insert(ChannelMessage),
            [
                {
                    "channel": p.channel,
                    "seq": seq,
                    "author_id": p.author_id,
                    "data": p.data,
                    "created_at": p.now,
                }
                for p, seq in zip(batch, seqs, strict=True)
            ],
        )
        companions: defaultdict[Table, list[dict[str, Any]]] = defaultdict(list)
        for p, seq in zip(batch, seqs, strict=True):
            for c in p.companions:
                companions[c.table].append({**c.values, "seq": seq})
        for table, values in companions.items():
            await conn.execute(insert(table), values)
        return [
            Stored(p.channel, seq, message_frame(p.channel, seq, p.data))
            for p, seq in zip(batch, seqs, strict=True)
        ]

    async def head(self, channel: str) -> int:
        async with self._db.connect() as s:
            seq = await s.scalar(select(ChannelHead.last_seq).where(ChannelHead.channel == channel))
        return int(seq or 0)

    async def heads(self, channels: Sequence[str]) -> dict[str, int]:
        async with self._db.connect() as s:
            rows = (
                await s.execute(
                    select(ChannelHead.channel, ChannelHead.last_seq).where(
                        ChannelHead.channel.in_(list(channels))
                    )
                )
            ).all()
        found = {c: int(n) for c, n in rows}
        return {c: found.get(c, 0) for c in channels}

    async def after(self, channel: str, after: int, upto: int, limit: int = 500) -> list[Stored]:
        """Messages with ``after < seq <= upto``, oldest first, at most ``limit``."""
        async with self._db.connect() as s:
            rows = (
                await s.execute(
                    select(ChannelMessage.seq, ChannelMessage.data)
                    .where(
                        ChannelMessage.channel == channel,
                        ChannelMessage.seq > after,
                        ChannelMessage.seq <= upto,
                    )
                    .order_by(ChannelMessage.seq)
                    .limit(limit)
                )
            ).all()
        return [Stored(channel, seq, message_frame(channel, seq, data)) for seq, data in rows]

    async def before(
        self, channel: str, before: int | None, limit: int
    ) -> list[tuple[int, dict[str, Any], datetime]]:
        """History, newest first: messages with ``seq < before``."""
        async with self._db.sessions() as s:
            query = (
                select(ChannelMessage.seq, ChannelMessage.data, ChannelMessage.created_at)
                .where(ChannelMessage.channel == channel)
                .order_by(ChannelMessage.seq.desc())
                .limit(limit)
            )
            if before is not None:
                query = query.where(ChannelMessage.seq < before)
            rows = (await s.execute(query)).all()
        return [(seq, data, created) for seq, data, created in rows]
