"""Shared fixtures: real databases (SQLite and PostgreSQL), real Redis, hub apps and clients.

PostgreSQL and Redis come from COHORT_TEST_DATABASE_URL / COHORT_TEST_REDIS_URL (default: the
local services). When one is unreachable its tests are skipped and the run ends with a loud
summary line, except under CI=true, where that is a failure.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import asyncpg
import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient
from argon2 import PasswordHasher
from redis.asyncio import Redis
from sqlalchemy.engine import make_url

from hub.app import create_app
from hub.clock import FakeClock
from hub.db import Base, Database
from hub.identity.passwords import PasswordHashing
from hub.migrate import load_models, upgrade
from hub.settings import REPO_ROOT, Settings, load_settings

PG_URL = os.environ.get(
    "COHORT_TEST_DATABASE_URL", "postgresql+asyncpg://postgres@127.0.0.1:5432/test"
)
REDIS_URL = os.environ.get("COHORT_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")
IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")
SECRET = "test-secret-key-that-is-long-enough-0123456789"


@dataclass
class ServiceStatus:
    postgres: str | None = None  # None: reachable; else why not
    redis: str | None = None


_status: ServiceStatus | None = None


def service_status() -> ServiceStatus:
    global _status
    if _status is None:
        _status = run_in_thread(_probe())
    return _status


async def _probe() -> ServiceStatus:
    status = ServiceStatus()
    try:
        conn = await asyncpg.connect(_asyncpg_dsn(PG_URL), timeout=5)
        await conn.close()
    except Exception as exc:
        status.postgres = f"{type(exc).__name__}: {exc}"
    try:
        redis = Redis.from_url(REDIS_URL, socket_connect_timeout=3)
        try:
            await redis.ping()
        finally:
            await redis.aclose()
    except Exception as exc:
        status.redis = f"{type(exc).__name__}: {exc}"
    return status


def run_in_thread(coro: Any) -> Any:
    """Run a coroutine to completion on a fresh loop in another thread: session fixtures may be
    set up from inside a test's running loop, where ``asyncio.run`` is not allowed."""
    with ThreadPoolExecutor(1) as pool:
        return pool.submit(asyncio.run, coro).result()


def _asyncpg_dsn(url: str) -> str:
    return make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)


def pytest_runtest_setup(item: pytest.Item) -> None:
    status = service_status()
    for name, why in (("postgres", status.postgres), ("redis", status.redis)):
        if item.get_closest_marker(name):
            _require(name, why)


def pytest_terminal_summary(terminalreporter: Any) -> None:
    status = service_status()
    for name, why, var, url in (
        ("PostgreSQL", status.postgres, "COHORT_TEST_DATABASE_URL", PG_URL),
        ("Redis", status.redis, "COHORT_TEST_REDIS_URL", REDIS_URL),
    ):
        if why is not None:
            terminalreporter.write_sep(
                "!",
                f"{name} UNREACHABLE at {url} ({var}): its tests were "
                f"{'FAILED (CI=true)' if IN_CI else 'SKIPPED'} — {why}",
                red=True,
                bold=True,
            )


def _require(name: str, why: str | None) -> None:
    if why is not None:
        if IN_CI:
            pytest.fail(f"CI=true and {name} is unreachable: {why}", pytrace=False)
        pytest.skip(f"{name} unreachable: {why}")


# Databases -------------------------------------------------------------------------------


def _all_tables() -> list[str]:
    load_models()
    return [t.name for t in Base.metadata.sorted_tables]


@pytest.fixture(scope="session")
def sqlite_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A migrated SQLite file, copied for each test (cheaper than migrating each time)."""
    path = tmp_path_factory.mktemp("sqlite-template") / "template.db"

    async def migrate() -> None:
        db = Database(f"sqlite+aiosqlite:///{path}")
        try:
            await upgrade(db)
        finally:
            await db.dispose()

    run_in_thread(migrate())
    return path


async def create_database(name: str) -> str:
    """An empty PostgreSQL database ``name`` (dropped first if it exists); returns its URL."""
    conn = await asyncpg.connect(_asyncpg_dsn(PG_URL))
    try:
        await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await conn.execute(f'CREATE DATABASE "{name}"')
    finally:
        await conn.close()
    return make_url(PG_URL).set(database=name).render_as_string(hide_password=False)


async def drop_database(name: str) -> None:
    """Drop ``name``, cutting off whoever is still connected to it."""
    conn = await asyncpg.connect(_asyncpg_dsn(PG_URL))
    try:
        await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        await conn.close()


@pytest.fixture(scope="session")
def postgres_url() -> Iterator[str]:
    """A database of this test worker's own, migrated once, dropped at the end."""
    _require("postgres", service_status().postgres)
    worker = os.environ.get("PYTEST_XDIST_WORKER", "main")
    name = f"cohort_test_{worker}_{os.getpid()}"

    async def create() -> str:
        url = await create_database(name)
        db = Database(url)
        try:
            await upgrade(db)
        finally:
            await db.dispose()
        return url

    url: str = run_in_thread(create())
    yield url
    run_in_thread(drop_database(name))


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
async def database_url(
    backend: str, request: pytest.FixtureRequest, tmp_path: Path, sqlite_template: Path
) -> str:
    """An empty, migrated database on the test's backend."""
    if backend == "sqlite":
        path = tmp_path / "cohort.db"
        shutil.copy(sqlite_template, path)
        return f"sqlite+aiosqlite:///{path}"
    url: str = request.getfixturevalue("postgres_url")
    conn = await asyncpg.connect(_asyncpg_dsn(url))
    try:
        tables = ", ".join(f'"{t}"' for t in _all_tables())
        await conn.execute(f"TRUNCATE {tables} RESTART IDENTITY CASCADE")
    finally:
        await conn.close()
    return url


@pytest.fixture
async def redis_url() -> str:
    _require("redis", service_status().redis)
    return REDIS_URL


# Hub apps --------------------------------------------------------------------------------


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock(datetime.now(UTC).replace(microsecond=0))


@pytest.fixture
def fast_hashing() -> PasswordHashing:
    """Real argon2id at its lowest cost: the suite hashes hundreds of passwords."""
    return PasswordHashing(PasswordHasher(time_cost=1, memory_cost=1024, parallelism=1))


def make_settings(tmp_path: Path, database_url: str, **overrides: Any) -> Settings:
    values: dict[str, Any] = {
        "data_dir": tmp_path,
        "database_url": database_url,
        "secret_key": SECRET,
        "log_format": "text",
        "web_dist": REPO_ROOT / "web" / "dist",
    }
    values.update(overrides)
    return load_settings(**values)


@pytest.fixture
def settings(tmp_path: Path, database_url: str) -> Settings:
    return make_settings(tmp_path, database_url)


@pytest.fixture
def app(settings: Settings, clock: FakeClock, fast_hashing: PasswordHashing) -> web.Application:
    return create_app(settings, clock=clock, hashing=fast_hashing)


@pytest.fixture
async def client(aiohttp_client: Any, app: web.Application) -> TestClient[Any, Any]:
    return await aiohttp_client(app)  # type: ignore[no-any-return]


# Account helpers -------------------------------------------------------------------------


@dataclass
class Account:
    email: str
    password: str
    display_name: str
    id: int = 0
    token: str = ""

    @property
    def auth(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"}


async def sign_up(
    client: TestClient[Any, Any], name: str = "Ana", *, login: bool = True
) -> Account:
    account = Account(
        email=f"{name.lower()}-{uuid.uuid4().hex[:8]}@example.com",
        password="correct horse battery",
        display_name=name,
    )
    resp = await client.post(
        "/api/auth/register",
        json={
            "email": account.email,
            "password": account.password,
            "display_name": account.display_name,
        },
    )
    assert resp.status == 201, await resp.text()
    account.id = (await resp.json())["user"]["id"]
    if login:
        await log_in(client, account)
    return account


async def log_in(client: TestClient[Any, Any], account: Account) -> dict[str, Any]:
    resp = await client.post(
        "/api/auth/login", json={"email": account.email, "password": account.password}
    )
    assert resp.status == 200, await resp.text()
    body: dict[str, Any] = await resp.json()
    account.token = body["access_token"]
    return body


@pytest.fixture
async def admin(client: TestClient[Any, Any], app: web.Application) -> Account:
    from hub.services import HUB

    account = Account("root@example.com", "admin password 1", "Root")
    user = await app[HUB].identity.ensure_account(
        account.email, account.password, account.display_name, admin=True, teacher=False
    )
    account.id = user.id
    await log_in(client, account)
    return account
