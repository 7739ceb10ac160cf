"""Migrations and models agree, on both backends, and types behave the same on both."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import asyncpg
import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import select
from sqlalchemy.engine import Connection, make_url

from hub.db import Base, Database
from hub.identity.models import User
from hub.migrate import hand_written, load_models


async def test_migrations_match_the_models(database_url: str) -> None:
    load_models()
    db = Database(database_url)

    def diff(connection: Connection) -> list[Any]:
        context = MigrationContext.configure(
            connection, opts={"compare_type": True, "include_object": hand_written}
        )
        return compare_metadata(context, Base.metadata)

    try:
        async with db.engine.connect() as conn:
            assert await conn.run_sync(diff) == []
    finally:
        await db.dispose()


async def test_datetimes_come_back_aware_and_utc(database_url: str) -> None:
    db = Database(database_url)
    moment = datetime(2026, 3, 1, 12, 30, tzinfo=timezone(timedelta(hours=2)))
    try:
        async with db.transaction() as s:
            s.add(
                User(
                    email="t@example.com",
                    password_hash="x",
                    display_name="T",
                    bio="",
                    avatar_color="#000000",
                    is_admin=False,
                    created_at=moment,
                    updated_at=moment,
                )
            )
        async with db.sessions() as s:
            stored = await s.scalar(select(User.created_at))
    finally:
        await db.dispose()
    assert stored == moment
    assert stored is not None
    assert stored.tzinfo == UTC


async def test_reads_do_not_wait_for_each_other(database_url: str) -> None:
    """Read sessions take no write lock (on SQLite they begin deferred): one opened inside
    another, or beside a writing transaction, answers at once."""
    db = Database(database_url)
    try:
        async with asyncio.timeout(3):
            async with db.sessions() as outer:
                await outer.execute(select(User.id))
                async with db.sessions() as inner:
                    await inner.execute(select(User.id))
                async with db.transaction() as writer:
                    await writer.execute(select(User.id))
    finally:
        await db.dispose()


@pytest.mark.postgres
async def test_driver_connections_are_kept_and_a_dead_one_replaced(postgres_url: str) -> None:
    """``driver()`` hands the same connection out again (no pool checkout each time); one the
    server ended while it was kept is left for the pool to replace, and the next use works."""
    db = Database(postgres_url)
    try:
        async with db.driver() as first:
            pid = await first.fetchval("SELECT pg_backend_pid()")
        assert db.engine.pool.checkedout() == 1  # kept, not given back to the pool
        async with db.driver() as again:
            assert again is first
        admin = await asyncpg.connect(
            make_url(postgres_url).set(drivername="postgresql").render_as_string(False)
        )
        try:
            assert await admin.fetchval("SELECT pg_terminate_backend($1)", pid)
        finally:
            await admin.close()
        for _ in range(100):  # the kept one learns of its end when the server's message arrives
            if first.is_closed():
                break
            await asyncio.sleep(0.01)
        async with db.driver() as fresh:
            assert await fresh.fetchval("SELECT 1") == 1
            assert await fresh.fetchval("SELECT pg_backend_pid()") != pid
    finally:
        await db.dispose()
