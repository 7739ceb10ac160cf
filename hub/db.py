"""Database engine, the one metadata every package's models share, and column types that behave the
same on SQLite and PostgreSQL."""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from typing import Any, cast

from sqlalchemy import BigInteger, DateTime, Integer, MetaData, event, text
from sqlalchemy.dialects.postgresql.asyncpg import PGDialect_asyncpg
from sqlalchemy.engine import Dialect
from sqlalchemy.exc import DisconnectionError
from sqlalchemy.ext.asyncio import (
    AsyncConnection,
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)
from sqlalchemy.orm import DeclarativeBase
from sqlalchemy.sql import ClauseElement
from sqlalchemy.sql.compiler import SQLCompiler
from sqlalchemy.types import TypeDecorator

# Stable constraint names, so Alembic migrations can name what they alter on both backends.
NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


# Execution option marking a connection whose transaction will write (see _sqlite_on_begin).
WRITES = "cohort_writes"
# Connections Database.driver keeps between uses.
DRIVERS_KEPT = 8
_PG_DRIVER = PGDialect_asyncpg()  # type: ignore[no-untyped-call]


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)


# SQLite only auto-increments INTEGER PRIMARY KEY, so ids are BIGINT on PostgreSQL only.
BigId = BigInteger().with_variant(Integer(), "sqlite")


class UTCDateTime(TypeDecorator[datetime]):
    """Timezone-aware UTC datetimes in and out; SQLite would hand back naive ones."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to a UTC column")
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


class Prepared:
    """A Core statement with named bind parameters, compiled once for PostgreSQL's driver, to
    run on ``Database.driver()``'s connection with no SQLAlchemy work per execution. Rows come
    as the driver gives them: for plain columns (no type of SQLAlchemy's own to process)."""

    def __init__(self, statement: ClauseElement) -> None:
        compiled = cast(SQLCompiler, statement.compile(dialect=_PG_DRIVER))
        self.sql = str(compiled)
        self._names = list(compiled.positiontup or ())
        self._defaults = compiled.params  # values bound in the statement itself (a LIMIT)

    async def first(self, conn: Any, **params: Any) -> Any:
        """The first row (a ``Record``: by position or by name), or None."""
        return await conn.fetchrow(self.sql, *self._args(params))

    async def all(self, conn: Any, **params: Any) -> list[Any]:
        """Every row (``Record``s)."""
        return await conn.fetch(self.sql, *self._args(params))  # type: ignore[no-any-return]

    async def many(self, conn: Any, params: Sequence[dict[str, Any]]) -> list[Any]:
        """The rows of every execution, one execution per item of ``params``, in one round
        trip (the driver pipelines them), concatenated in order."""
        return await conn.fetchmany(  # type: ignore[no-any-return]
            self.sql, [self._args(p) for p in params]
        )

    async def scalar(self, conn: Any, **params: Any) -> Any:
        """The first column of the first row, or None."""
        return await conn.fetchval(self.sql, *self._args(params))

    def _args(self, params: dict[str, Any]) -> list[Any]:
        return [params[n] if n in params else self._defaults[n] for n in self._names]


class Database:
    """The engine and session factory of one hub process."""

    def __init__(self, url: str, *, echo: bool = False) -> None:
        self.url = url
        self.is_sqlite = url.startswith("sqlite")
        kwargs: dict[str, Any] = {"echo": echo}
        if not self.is_sqlite:
            # As many kept as may be open at once: a connection above pool_size is closed as
            # soon as it is returned, and a hub that ran above it (32 requests at once) opened
            # and closed connections all the time, each a new PostgreSQL backend whose
            # statements were prepared again: half of the machine's CPU (bench/purchases.py).
            kwargs.update(pool_size=30, max_overflow=0)
        self.engine: AsyncEngine = create_async_engine(url, **kwargs)
        if not self.is_sqlite:
            event.listen(self.engine.sync_engine.pool, "checkout", _drop_closed)
        if self.is_sqlite:
            event.listen(self.engine.sync_engine, "connect", _sqlite_on_connect)
            event.listen(self.engine.sync_engine, "begin", _sqlite_on_begin)
        self.sessions = async_sessionmaker(self.engine, expire_on_commit=False)
        # Statements that stand alone skip BEGIN and COMMIT/ROLLBACK on PostgreSQL: see connect.
        self._standalone: AsyncEngine = (
            self.engine
            if self.is_sqlite
            else self.engine.execution_options(isolation_level="AUTOCOMMIT")
        )
        # ORM sessions for reads only, on the same terms as connect(): on PostgreSQL without
        # BEGIN and ROLLBACK, so never write through one (each flush would commit at once).
        self.read_sessions = async_sessionmaker(self._standalone, expire_on_commit=False)
        # driver()'s connections kept between uses, each with its pool checkout.
        self._drivers: list[tuple[AsyncConnection, Any]] = []

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[AsyncSession]:
        """A session inside one writing transaction: committed on success, rolled back on any
        error. On SQLite it holds the write lock from its first statement."""
        async with self.sessions() as session, session.begin():
            if self.is_sqlite:
                await session.connection(execution_options={WRITES: True})
            yield session

    @asynccontextmanager
    async def writing(self) -> AsyncIterator[AsyncConnection]:
        """A Core connection inside one writing transaction, committed on success and rolled
        back on any error: ``transaction`` without the ORM, for hot paths. On SQLite it holds
        the write lock from its first statement."""
        async with self.engine.connect() as conn:
            if self.is_sqlite:
                await conn.execution_options(**{WRITES: True})
            async with conn.begin():
                yield conn

    @asynccontextmanager
    async def driver(self) -> AsyncIterator[Any]:
        """PostgreSQL only: the pool's asyncpg connection itself, outside any transaction
        (each statement commits by itself), for the few hot statements where SQLAlchemy's own
        work per statement (about 0.2 ms of CPU) is most of their cost."""
        if self.is_sqlite:
            raise RuntimeError("driver() is for PostgreSQL")
        conn, driver = await self._take_driver()
        try:
            yield driver
        except BaseException:
            await conn.close()
            raise
        if len(self._drivers) < DRIVERS_KEPT and not (
            driver.is_closed() or driver.is_in_transaction()
        ):
            self._drivers.append((conn, driver))
        else:
            await conn.close()

    async def _take_driver(self) -> tuple[AsyncConnection, Any]:
        # A few are kept checked out between uses (they still count against the pool's size):
        # a checkout from SQLAlchemy's pool and back costs about 48 us of CPU, a kept one 1.5,
        # and every purchase takes two (its session and its sale).
        while self._drivers:
            conn, driver = self._drivers.pop()
            if not driver.is_closed():
                return conn, driver
            await conn.close()  # the server ended it while it waited: the pool replaces it
        conn = await self.engine.connect().start()
        return conn, (await conn.get_raw_connection()).driver_connection

    @asynccontextmanager
    async def connect(self, *, writes: bool = False) -> AsyncIterator[AsyncConnection]:
        """A Core connection for statements that each stand alone: hot paths that need no
        transaction around them (a lookup, a single insert or update) and no ORM.

        On PostgreSQL each statement commits by itself (autocommit), which saves the BEGIN and
        COMMIT/ROLLBACK round trips; reads lose nothing by it, since at READ COMMITTED every
        statement takes its own snapshot anyway. On SQLite the statements share one
        transaction, committed at the end; with ``writes`` it holds the write lock from its
        first statement, as ``transaction`` does.
        """
        async with self._standalone.connect() as conn:
            if not self.is_sqlite:
                yield conn
                return
            if writes:
                await conn.execution_options(**{WRITES: True})
            async with conn.begin():
                yield conn

    async def ping(self) -> None:
        async with self.engine.connect() as conn:
            await conn.execute(text("SELECT 1"))

    async def dispose(self) -> None:
        kept, self._drivers = self._drivers, []
        for conn, _ in kept:
            await conn.close()
        await self.engine.dispose()


def _drop_closed(dbapi_connection: Any, _record: Any, _proxy: Any) -> None:
    # In place of pool_pre_ping, which asyncpg runs as three round trips on every checkout
    # (BEGIN, an empty query, ROLLBACK), a quarter of all the round trips of a purchase: a
    # connection whose socket the server closed (a restart, an idle timeout) is known to asyncpg
    # locally, and is replaced here before any statement runs on it.
    if dbapi_connection.driver_connection.is_closed():
        raise DisconnectionError("the database closed this connection")


def _sqlite_on_connect(dbapi_connection: Any, _record: Any) -> None:
    # Let SQLAlchemy issue BEGIN itself (see _sqlite_on_begin) instead of pysqlite's lazy BEGIN,
    # and make writers queue for the lock instead of failing at once.
    dbapi_connection.isolation_level = None
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA busy_timeout=10000")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.close()


def _sqlite_on_begin(conn: Any) -> None:
    # Writing transactions take the write lock up front (BEGIN IMMEDIATE): SQLite has no
    # SELECT … FOR UPDATE, and a deferred transaction that later upgrades to a writer can fail
    # with SQLITE_BUSY mid-way. Reads begin deferred: in WAL mode they need no lock at all.
    writes = conn.get_execution_options().get(WRITES, False)
    conn.exec_driver_sql("BEGIN IMMEDIATE" if writes else "BEGIN DEFERRED")
