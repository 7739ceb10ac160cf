"""Benchmark: real-time fanout through ``/ws`` (two hub processes on one Redis, every message a
persisted chat message) against Socket.IO with its Redis adapter (two Node processes), both
driven by the same load generator.

Usage: ``.venv/bin/python bench/fanout.py [--connections 10000] [--rate 1000] [--seconds 60]
[--scenarios rooms,big,frozen] [--repeats 3] [--big-room 2000] [--big-rate 10] [--warmup 5]
[--generators 2] [--profile]``

Scenarios, each run ``--repeats`` times per system, Cohort and Socket.IO alternating (ABBA):

* ``rooms``: ``--connections`` WebSockets in rooms of 10 (every room has members on both server
  processes), ``--rate`` messages/s in total for ``--seconds`` after ``--warmup`` seconds;
* ``big``: one room of ``--big-room`` members at ``--big-rate`` messages/s;
* ``frozen``: the same room with one member whose socket stops reading when the load starts:
  the others' latency over the timed window; then the same rate goes on with long texts (the
  squeeze: ~3.8 KB each) until the frozen socket's server closes it or ``--frozen-mb`` MiB went
  to every member, to see whether, when and how the server cut the frozen one off (the kernel
  holds ~3 MB for a socket that does not read before a server's own buffer starts to fill).

Cohort side: a fresh PostgreSQL database (created, migrated with ``cohort migrate``, dropped at
the end) with users, auth sessions, study groups and memberships inserted directly (the hub's
argon2 costs ~0.3 s of CPU per login here, so 10,000 logins over HTTP would take most of an
hour: one login goes through ``POST /api/auth/login`` to check the seeded password, the other
access tokens are minted with the hub's signing key for sessions inserted like a login's). Each
connection takes a ticket (``POST /api/realtime/ticket``), opens ``/ws`` and subscribes to its
group's ``chat:group:<id>``; messages are published on the socket as chat messages (stored by
the hub before fanout; the rows are counted afterwards). Socket.IO side: ``bench/fanout/
server.js`` (socket.io + @socket.io/redis-adapter, versions pinned by the committed lock,
installed with ``npm ci``) joins rooms and emits each message to its room, with no storage.

Load generator: ``--generators`` processes of this script, each with a minimal RFC 6455 client
written on asyncio (one ``bytes.find`` and a few integer conversions per delivery, no JSON
parsing on the delivery path). Each message's text carries its origin, id and send time
(CLOCK_MONOTONIC, shared by every process of the machine); receivers record publish→delivery
latency and count deliveries per message. The servers, Redis, PostgreSQL, the generators and
the rest of the machine are CPU-accounted over the timed window.

stdout gets exactly one JSON line; progress and diagnostics go to stderr.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import collections
import contextlib
import hashlib
import json
import os
import platform
import resource
import secrets
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from array import array
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import orjson

SCRIPT = Path(__file__).resolve()
ROOT = SCRIPT.parent.parent
# Run as a script, bench/ comes first on sys.path, and bench/catalog.py would shadow the catalog
# package this script seeds with.
if sys.path and Path(sys.path[0]).resolve() == ROOT / "bench":
    sys.path[0] = str(ROOT)
BIN = Path(sys.executable).parent
PEER_DIR = ROOT / "bench" / "fanout"
CACHE_DIR = ROOT / "var" / "bench"
ADMIN_DSN = os.environ.get(
    "COHORT_BENCH_ADMIN_DSN", "postgresql://postgres@127.0.0.1:5432/postgres"
)
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")
PASSWORD = "fanout-bench-password-2026"
ROOM_SIZE = 10
SCENARIOS = ("rooms", "big", "frozen")
SYSTEMS = ("cohort", "socketio")
# Every message's text: "fo:<origin generator>:<message id>:<send time ns>: <filler>".
MARKER = b'"fo:'
FILLER = b"shall we go over the chapter 3 exercises at 6? bring questions"
JOIN_ACK_BASE = 10**12  # Socket.IO ack ids of joins; publishes use their message id
SETTLED_CORES = 0.15  # servers + generators below this: the connections' setup is done
IDLE_SECONDS = 5.0  # measured with every connection held and no load
CONNECT_TIMEOUT = 600.0  # per connection: ticket, upgrade, subscribe (a slow hub is not retried)
DRAIN_LIMIT = 60.0  # seconds after the last publish
FROZEN_RCVBUF = 4096  # the frozen socket's receive buffer: kernel buffering stays small
FROZEN_INDEX = 1  # the big room's member that freezes (on server 1; it does not publish)
# After the frozen scenario's timed window, the "squeeze": the same rate with texts this long
# (chat takes up to 4,000 characters), until the frozen socket's server closes it or
# --frozen-mb MiB went to each member. The kernel takes about 3 MB for a socket that does not
# read before the hub's own buffer (COHORT_WS_SEND_BUFFER, 1 MiB) starts to fill: at 10
# messages of ~4 KB a second the bound is reached after about two minutes.
SQUEEZE_TEXT = 3800
# The frozen client still writes (an unsolicited pong this often), so only what piles up on
# its way to it can end it, not the server's heartbeat (a ping it would never read).
FROZEN_KEEPALIVE = 5.0


class BenchError(Exception):
    """A step failed; the message says which and why."""


def note(message: str) -> None:
    print(f"[bench] {message}", file=sys.stderr, flush=True)


def raise_fd_limit() -> int:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    return resource.getrlimit(resource.RLIMIT_NOFILE)[0]


def percentiles(values: list[float] | array[float]) -> dict[str, Any]:
    if not values:
        return {"samples": 0}
    ordered = sorted(values)
    n = len(ordered)

    def at(q: float) -> float:
        return round(ordered[min(n - 1, max(0, int(q * n + 0.5) - 1))], 2)

    return {
        "samples": n,
        "p50": at(0.50),
        "p90": at(0.90),
        "p99": at(0.99),
        "p999": at(0.999),
        "max": round(ordered[-1], 2),
        "mean": round(sum(ordered) / n, 2),
    }


# /proc accounting -----------------------------------------------------------------------------


def proc_cpu(pid: int) -> float | None:
    """User + system CPU seconds of a process (all its threads)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return None
    return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS


def proc_status_kb(pid: int, key: str) -> int | None:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith(key + ":"):
                return int(line.split()[1])
    except (OSError, ValueError, IndexError):
        return None
    return None


def pids_named(*names: str) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            with contextlib.suppress(OSError):
                if (entry / "comm").read_text().strip() in names:
                    found.append(int(entry.name))
    return found


def machine_cpu() -> float:
    """Busy CPU seconds of the whole machine so far."""
    values = [int(v) for v in Path("/proc/stat").read_text().splitlines()[0].split()[1:]]
    return (sum(values[:8]) - values[3] - values[4]) / CLOCK_TICKS


def self_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


@dataclass
class CpuSnapshot:
    at: float
    machine: float
    own: float
    by_pid: dict[int, float]

    @classmethod
    def take(cls, pids: list[int]) -> CpuSnapshot:
        return cls(
            time.monotonic(),
            machine_cpu(),
            self_cpu(),
            {p: c for p in pids if (c := proc_cpu(p)) is not None},
        )

    def since(self, before: CpuSnapshot, pid: int) -> float:
        """CPU of ``pid`` between the snapshots (a process gone by now counts nothing)."""
        if pid not in self.by_pid:
            return 0.0
        return max(0.0, self.by_pid[pid] - before.by_pid.get(pid, 0.0))


async def wait_for_quiet(within: float, threshold: float = 0.3) -> float:
    """Wait up to ``within`` s until the machine, apart from this process, uses under
    ``threshold`` cores for 3 s in a row; returns the last load seen (cores)."""
    deadline = time.monotonic() + within
    quiet = 0
    load = 0.0
    while True:
        busy, own = machine_cpu(), self_cpu()
        await asyncio.sleep(1.0)
        load = max(0.0, (machine_cpu() - busy) - (self_cpu() - own))
        quiet = quiet + 1 if load < threshold else 0
        if quiet >= 3 or time.monotonic() >= deadline:
            if quiet < 3:
                note(f"the machine is busy elsewhere ({load:.2f} cores); measuring anyway")
            return round(load, 2)


# The Socket.IO peer -------------------------------------------------------------------------


def npm_packages(directory: Path, packages: tuple[str, ...], what: str) -> dict[str, str]:
    """``npm ci`` in ``directory`` from its committed lock (again whenever the lock changes);
    the versions of node and of ``packages``."""
    lock = directory / "package-lock.json"
    digest = hashlib.sha256(lock.read_bytes()).hexdigest()
    stamp = directory / "node_modules" / ".lock-sha256"
    if not stamp.is_file() or stamp.read_text().strip() != digest:
        note(f"installing {what}: npm ci in {directory.name} ...")
        done = subprocess.run(
            ["npm", "ci", "--no-audit", "--no-fund", "--loglevel=error"],
            cwd=directory,
            capture_output=True,
            text=True,
            timeout=600,
            check=False,
        )
        if done.returncode != 0:
            raise BenchError(f"npm ci failed in {directory}:\n{done.stderr.strip()[-2000:]}")
        stamp.write_text(digest)
    versions = {
        "node": subprocess.run(["node", "--version"], capture_output=True, text=True).stdout.strip()
    }
    for package in packages:
        meta = json.loads((directory / "node_modules" / package / "package.json").read_text())
        versions[package] = meta["version"]
    return versions


def ensure_peer() -> dict[str, str]:
    return npm_packages(
        PEER_DIR,
        ("socket.io", "@socket.io/redis-adapter", "redis", "ws", "engine.io"),
        "the Socket.IO peer",
    )


# Database and seeding -----------------------------------------------------------------------


@contextlib.asynccontextmanager
async def bench_database() -> AsyncIterator[str]:
    """A fresh PostgreSQL database, dropped afterwards; yields its SQLAlchemy URL."""
    import asyncpg

    name = f"cohort_fanout_{os.getpid()}"
    conn = await asyncpg.connect(ADMIN_DSN)
    try:
        await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await conn.execute(f'CREATE DATABASE "{name}"')
    finally:
        await conn.close()
    host = ADMIN_DSN.split("://", 1)[1].rsplit("/", 1)[0]
    try:
        yield f"postgresql+asyncpg://{host}/{name}"
    finally:
        conn = await asyncpg.connect(ADMIN_DSN)
        try:
            await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        finally:
            await conn.close()


@dataclass
class HubConfig:
    database_url: str
    redis_url: str
    redis_prefix: str
    secret_key: str
    data_dir: Path
    code: Path | None = None  # --code: the hub's packages from this tree

    def environ(self, name: str) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("COHORT_")}
        if self.code is not None:
            env["PYTHONPATH"] = str(self.code)
        env.update(
            COHORT_DATABASE_URL=self.database_url,
            COHORT_REDIS_URL=self.redis_url,
            COHORT_REDIS_PREFIX=self.redis_prefix,
            COHORT_SECRET_KEY=self.secret_key,
            COHORT_DATA_DIR=str(self.data_dir / name),
            COHORT_ACCESS_TOKEN_TTL="3600",
        )
        return env


def migrate(config: HubConfig) -> None:
    (config.data_dir / "migrate").mkdir(parents=True, exist_ok=True)
    done = subprocess.run(
        [str(BIN / "cohort"), "migrate"],
        env=config.environ("migrate"),
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
        cwd=ROOT,
    )
    if done.returncode != 0:
        raise BenchError(f"cohort migrate failed:\n{(done.stdout + done.stderr)[-3000:]}")


@dataclass
class Accounts:
    user_ids: list[int]
    emails: list[str]
    tokens: list[str]
    small_groups: list[int]  # group g has users 10g .. 10g+9
    big_group: int  # users 0 .. big_room-1


async def seed(config: HubConfig, users: int, small_groups: int, big_room: int) -> Accounts:
    """Users with a real argon2 hash of PASSWORD, one auth session and access token each,
    study groups of 10 and one big group, inserted in bulk."""
    from argon2 import PasswordHasher
    from sqlalchemy import insert, select
    from sqlalchemy.ext.asyncio import create_async_engine

    from catalog.social_models import GroupMember, StudyGroup
    from hub.clock import SystemClock
    from hub.identity.models import AuthSession, User
    from hub.identity.tokens import AccessTokens

    started = time.monotonic()
    # The hub's own parameters (argon2-cffi defaults): logging in never needs a rehash.
    password_hash = PasswordHasher().hash(PASSWORD)
    now = datetime.now(UTC)
    tag = secrets.token_hex(3)
    emails = [f"fanout{i}-{tag}@bench.example" for i in range(users)]
    engine = create_async_engine(config.database_url)
    try:
        async with engine.begin() as conn:
            await conn.execute(
                insert(User),
                [
                    {
                        "email": email,
                        "password_hash": password_hash,
                        "display_name": f"Learner {i}",
                        "bio": "",
                        "avatar_color": "#4f46e5",
                        "is_admin": False,
                        "created_at": now,
                        "updated_at": now,
                    }
                    for i, email in enumerate(emails)
                ],
            )
            rows = (
                await conn.execute(select(User.id, User.email).where(User.email.in_(emails)))
            ).all()
            by_email = {email: uid for uid, email in rows}
            user_ids = [by_email[e] for e in emails]
            session_ids = [secrets.token_hex(16) for _ in user_ids]
            await conn.execute(
                insert(AuthSession),
                [
                    {
                        "id": sid,
                        "user_id": uid,
                        "device": "cohort bench",
                        "user_agent": "cohort-bench-fanout",
                        "ip": "127.0.0.1",
                        "created_at": now,
                        "last_used_at": now,
                        "expires_at": now + timedelta(days=1),
                    }
                    for uid, sid in zip(user_ids, session_ids, strict=True)
                ],
            )
            group_rows = [
                {
                    "name": f"Study group {g}",
                    "description": "",
                    "owner_id": user_ids[ROOM_SIZE * g],
                    "invite_code": f"fo{tag}{g}",
                    "member_count": ROOM_SIZE,
                    "created_at": now,
                }
                for g in range(small_groups)
            ]
            group_rows.append(
                {
                    "name": "The big room",
                    "description": "",
                    "owner_id": user_ids[0],
                    "invite_code": f"fo{tag}big",
                    "member_count": big_room,
                    "created_at": now,
                }
            )
            await conn.execute(insert(StudyGroup), group_rows)
            codes = [str(r["invite_code"]) for r in group_rows]
            found = dict(
                (
                    await conn.execute(
                        select(StudyGroup.invite_code, StudyGroup.id).where(
                            StudyGroup.invite_code.in_(codes)
                        )
                    )
                ).all()
            )
            group_ids = [found[c] for c in codes]
            members = [
                {
                    "group_id": group_ids[i // ROOM_SIZE],
                    "user_id": user_ids[i],
                    "role": "owner" if i % ROOM_SIZE == 0 else "member",
                    "joined_at": now,
                }
                for i in range(small_groups * ROOM_SIZE)
            ]
            members += [
                {
                    "group_id": group_ids[-1],
                    "user_id": user_ids[i],
                    "role": "owner" if i == 0 else "member",
                    "joined_at": now,
                }
                for i in range(big_room)
            ]
            for start in range(0, len(members), 5000):
                await conn.execute(insert(GroupMember), members[start : start + 5000])
    finally:
        await engine.dispose()
    access = AccessTokens(config.secret_key, 3600, SystemClock())
    tokens = [access.issue(uid, sid) for uid, sid in zip(user_ids, session_ids, strict=True)]
    note(
        f"seeded {users} users with sessions, {small_groups} groups of {ROOM_SIZE} and one of "
        f"{big_room} in {time.monotonic() - started:.1f} s"
    )
    return Accounts(user_ids, emails, tokens, group_ids[:-1], group_ids[-1])


async def database_activity(database_url: str) -> dict[str, int]:
    """Transactions and rows of the benchmark database so far (``pg_stat_database``)."""
    import asyncpg

    name = database_url.rsplit("/", 1)[1]
    conn = await asyncpg.connect(ADMIN_DSN)
    try:
        row = await conn.fetchrow(
            "SELECT xact_commit, xact_rollback, tup_inserted, tup_updated, tup_fetched "
            "FROM pg_stat_database WHERE datname = $1",
            name,
        )
    finally:
        await conn.close()
    return dict(row) if row else {}


async def redis_commands(redis_url: str) -> dict[str, int]:
    """Calls per command so far (``INFO commandstats``; the Redis may be shared)."""
    from redis.asyncio import Redis

    redis = Redis.from_url(redis_url)
    try:
        stats = await redis.info("commandstats")
    finally:
        await redis.aclose()
    return {k.removeprefix("cmdstat_"): int(v["calls"]) for k, v in stats.items()}


def per_message(before: dict[str, int], after: dict[str, int], messages: float) -> dict[str, float]:
    """What grew between two counter snapshots, per message, largest first."""
    grown = {k: v - before.get(k, 0) for k, v in after.items() if v - before.get(k, 0) > 0}
    return {
        k: round(v / messages, 2)
        for k, v in sorted(grown.items(), key=lambda kv: -kv[1])
        if v / messages >= 0.01
    }


async def count_channel_rows(database_url: str) -> dict[str, int]:
    """Rows of the durable channel log and of the chat tables (what a run persisted)."""
    import asyncpg

    dsn = database_url.replace("postgresql+asyncpg://", "postgresql://")
    conn = await asyncpg.connect(dsn)
    try:
        counts = {"channel_messages": await conn.fetchval("SELECT count(*) FROM channel_messages")}
        with contextlib.suppress(asyncpg.UndefinedTableError):
            counts["chat_messages"] = await conn.fetchval("SELECT count(*) FROM chat_messages")
    finally:
        await conn.close()
    return counts


# Server processes ----------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class ServerProcess:
    """One server process (a hub or a Node peer) with its log in a file."""

    def __init__(
        self, name: str, command: list[str], env: dict[str, str], ready_path: str, log: Path
    ) -> None:
        self.name = name
        self.port = free_port()
        self.command = [a.replace("{port}", str(self.port)) for a in command]
        self.env = {k: v.replace("{port}", str(self.port)) for k, v in env.items()}
        self.ready_url = f"http://127.0.0.1:{self.port}{ready_path}"
        self.log_path = log
        self.process: subprocess.Popen[bytes] | None = None
        self.started_wall = 0.0

    @property
    def pid(self) -> int:
        assert self.process is not None
        return self.process.pid

    def spawn(self) -> None:
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        with self.log_path.open("wb") as log:
            self.process = subprocess.Popen(
                self.command,
                env=self.env,
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                cwd=ROOT,
            )
        self.started_wall = time.time()

    async def wait_ready(self, within: float = 60) -> None:
        import aiohttp

        assert self.process is not None
        deadline = time.monotonic() + within
        async with aiohttp.ClientSession() as session:
            while time.monotonic() < deadline:
                if self.process.poll() is not None:
                    raise BenchError(f"{self.name} exited at start:\n{self.log_tail()}")
                with contextlib.suppress(aiohttp.ClientError, OSError):
                    async with session.get(self.ready_url) as resp:
                        if resp.status == 200:
                            return
                await asyncio.sleep(0.1)
        raise BenchError(f"{self.name} was not ready within {within} s:\n{self.log_tail()}")

    def stop(self) -> None:
        if self.process is None or self.process.poll() is not None:
            return
        self.process.send_signal(signal.SIGINT)
        try:
            self.process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()

    def log_tail(self, lines: int = 30) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""

    def log_records(self) -> list[dict[str, Any]]:
        records = []
        with contextlib.suppress(OSError):
            for line in self.log_path.read_text(errors="replace").splitlines():
                if line.startswith("{"):
                    with contextlib.suppress(ValueError):
                        records.append(json.loads(line))
        return records


def make_servers(system: str, ctx: Context, run_dir: Path) -> list[ServerProcess]:
    if system == "cohort":
        return [
            ServerProcess(
                f"hub{k}",
                [str(BIN / "cohort"), "serve", "--host", "127.0.0.1", "--port", "{port}"],
                ctx.hub.environ(f"hub{k}"),
                "/readyz",
                run_dir / f"hub{k}.log",
            )
            for k in range(2)
        ]
    env = dict(os.environ)
    return [
        ServerProcess(
            f"node{k}",
            ["node", str(PEER_DIR / "server.js")],
            {
                **env,
                "PORT": "{port}",
                "REDIS_URL": ctx.redis_url,
                "KEY": f"{ctx.hub.redis_prefix}-sio",
                "NAME": f"node{k}",
                "NODE_ENV": "production",
            },
            "/ready",
            run_dir / f"node{k}.log",
        )
        for k in range(2)
    ]


# Plans ---------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Scenario:
    name: str
    connections: int
    room_size: int
    rate: float
    frozen: bool


@dataclass
class Context:
    args: argparse.Namespace
    hub: HubConfig
    redis_url: str
    accounts: Accounts
    accounts_path: Path
    work_dir: Path
    chat: bool | None = None  # None: not probed yet
    probe: dict[str, Any] = field(default_factory=dict)
    profiled: set[str] = field(default_factory=set)


def plan(scenario: Scenario, generators: int) -> list[list[list[int]]]:
    """Per generator: connections as ``[index, user, room, server, frozen, sender, position]``.

    Rooms of 10: room r is users 10r..10r+9, half on each server, all in one generator. The big
    room: members alternate servers and are spread over every generator."""
    per_child: list[list[list[int]]] = [[] for _ in range(generators)]
    if scenario.room_size == ROOM_SIZE:
        for i in range(scenario.connections):
            room, pos = divmod(i, ROOM_SIZE)
            per_child[room % generators].append([i, i, room, (pos + room) % 2, 0, 1, pos])
    else:
        for i in range(scenario.connections):
            frozen = int(scenario.frozen and i == FROZEN_INDEX)
            per_child[(i // 2) % generators].append([i, i, 0, i % 2, frozen, 1 - frozen, i])
    return per_child


# One run -------------------------------------------------------------------------------------


class ChildProcess:
    """A load generator process, spoken to in JSON lines over its stdin/stdout."""

    def __init__(self, index: int, spec_path: Path) -> None:
        self.index = index
        self.spec_path = spec_path
        self.proc: asyncio.subprocess.Process | None = None

    async def start(self) -> None:
        self.proc = await asyncio.create_subprocess_exec(
            sys.executable,
            str(SCRIPT),
            "--generator-child",
            str(self.spec_path),
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            cwd=ROOT,
        )

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    async def read_event(self, within: float) -> dict[str, Any]:
        assert self.proc is not None
        assert self.proc.stdout is not None
        line = await asyncio.wait_for(self.proc.stdout.readline(), within)
        if not line:
            raise BenchError(f"load generator {self.index} exited (code {self.proc.returncode})")
        event: dict[str, Any] = json.loads(line)
        return event

    def tell(self, command: str) -> None:
        assert self.proc is not None
        assert self.proc.stdin is not None
        self.proc.stdin.write(command.encode() + b"\n")

    async def finish(self) -> None:
        if self.proc is None or self.proc.returncode is not None:
            return
        with contextlib.suppress(Exception):
            self.tell("exit")
        try:
            await asyncio.wait_for(self.proc.wait(), 30)
        except TimeoutError:
            self.proc.kill()
            await self.proc.wait()


async def run_once(ctx: Context, system: str, scenario: Scenario, repeat: int) -> dict[str, Any]:
    args = ctx.args
    run_dir = ctx.work_dir / f"{scenario.name}-{system}-{repeat}"
    run_dir.mkdir(parents=True, exist_ok=True)
    background_before = await wait_for_quiet(args.idle_wait)
    servers = make_servers(system, ctx, run_dir)
    children: list[ChildProcess] = []
    figures: dict[str, Any] = {"system": system, "repeat": repeat}
    try:
        for server in servers:
            server.spawn()
        for server in servers:
            await server.wait_ready()
        await asyncio.sleep(1.5)
        base_rss = [proc_status_kb(s.pid, "VmRSS") or 0 for s in servers]
        if system == "cohort" and ctx.chat is None:
            await probe_cohort(ctx, servers)
        cohort_mode = "chat" if ctx.chat else "user"
        if system == "cohort" and not ctx.chat and scenario.name != "rooms":
            raise BenchError("skip: without chat, only the rooms scenario holds connections")
        rows_before = await count_channel_rows(ctx.hub.database_url) if system == "cohort" else {}

        layout = plan(scenario, args.generators)
        publishing = system == "socketio" or cohort_mode == "chat"
        for index, conns in enumerate(layout):
            spec = {
                "system": system,
                "child": index,
                "servers": [["127.0.0.1", s.port] for s in servers],
                "conns": conns,
                "rooms": room_names(ctx, system, scenario, cohort_mode),
                "cohort_mode": cohort_mode,
                "rate": scenario.rate / args.generators if publishing else 0.0,
                "warmup": args.warmup,
                "seconds": args.seconds,
                "accounts": str(ctx.accounts_path),
                "results": str(run_dir / f"gen{index}.json"),
                "concurrency": args.connect_concurrency,
                "squeeze_limit": squeeze_limit(args) if scenario.frozen else 0,
            }
            path = run_dir / f"gen{index}.spec.json"
            path.write_text(json.dumps(spec))
            children.append(ChildProcess(index, path))
        connect_started = time.monotonic()
        for child in children:
            await child.start()
        connected = [await child.read_event(within=1800) for child in children]
        connect_s = time.monotonic() - connect_started
        held = sum(e["held"] for e in connected)
        held_per_server = [sum(e["held_per_server"][k] for e in connected) for k in range(2)]
        failures = collections.Counter[str]()
        for event in connected:
            failures.update(event["errors"])
        note(
            f"{scenario.name}/{system}#{repeat}: {held} of {scenario.connections} connections "
            f"held after {connect_s:.1f} s" + (f"; failures {dict(failures)}" if failures else "")
        )
        settle_s = await settle([s.pid for s in servers] + [c.pid for c in children], args)
        # Idle: connections held, nothing published (heartbeats, presence refreshes, timers).
        idle_from = CpuSnapshot.take([s.pid for s in servers])
        await asyncio.sleep(IDLE_SECONDS)
        idle_to = CpuSnapshot.take([s.pid for s in servers])
        idle_cores = sum(idle_to.since(idle_from, s.pid) for s in servers) / (
            idle_to.at - idle_from.at
        )
        idle_rss = [proc_status_kb(s.pid, "VmRSS") or 0 for s in servers]

        watched = [s.pid for s in servers] + [c.pid for c in children]
        redis_pids = pids_named("redis-server")
        t0_ns = time.monotonic_ns() + 500_000_000
        t0_wall = time.time() + 0.5
        for child in children:
            child.tell(f"start {t0_ns}")
        window_from = t0_ns / 1e9 + args.warmup
        window_to = window_from + args.seconds
        peak_rss = list(idle_rss)
        profiler = None
        await asyncio.sleep(max(0.0, window_from - time.monotonic()))
        postgres_pids = set(pids_named("postgres", "postmaster"))
        redis_before = await redis_commands(ctx.redis_url)
        db_before = await database_activity(ctx.hub.database_url)
        stored_before = await count_channel_rows(ctx.hub.database_url) if system == "cohort" else {}
        before = CpuSnapshot.take(watched + redis_pids + sorted(postgres_pids))
        if args.profile and system == "cohort" and scenario.name not in ctx.profiled:
            ctx.profiled.add(scenario.name)
            profiler = start_profiler(servers[0].pid, args.seconds, run_dir / "hub0.pyspy.txt")
        while time.monotonic() < window_to:
            await asyncio.sleep(min(1.0, max(0.0, window_to - time.monotonic())))
            for k, s in enumerate(servers):
                peak_rss[k] = max(peak_rss[k], proc_status_kb(s.pid, "VmRSS") or 0)
        postgres_pids |= set(pids_named("postgres", "postmaster"))
        after = CpuSnapshot.take(watched + redis_pids + sorted(postgres_pids))
        window = after.at - before.at
        redis_after = await redis_commands(ctx.redis_url)
        stored_after = await count_channel_rows(ctx.hub.database_url) if system == "cohort" else {}
        await asyncio.sleep(1.2)  # backends report their statistics about once a second
        db_after = await database_activity(ctx.hub.database_url)
        if scenario.frozen:
            figures["squeeze_s"] = await squeeze(system, servers, ctx, window_to)
            for child in children:
                child.tell("thaw")
        for child in children:
            await child.read_event(within=120 + args.seconds)  # {"event": "done"}
        results = [json.loads((run_dir / f"gen{c.index}.json").read_text()) for c in children]
        if profiler is not None:
            figures["profile"] = finish_profiler(profiler, run_dir / "hub0.pyspy.txt")

        server_figures = []
        for k, s in enumerate(servers):
            cpu = after.since(before, s.pid)
            grown = idle_rss[k] - base_rss[k]
            server_figures.append(
                {
                    "name": s.name,
                    "connections": held_per_server[k],
                    "rss_mb_start": round(base_rss[k] / 1024, 1),
                    "rss_mb_connected": round(idle_rss[k] / 1024, 1),
                    "rss_mb_peak": round(
                        max(peak_rss[k], proc_status_kb(s.pid, "VmHWM") or 0) / 1024, 1
                    ),
                    "kb_per_connection": round(grown / held_per_server[k], 1)
                    if held_per_server[k]
                    else None,
                    "cpu_s": round(cpu, 2),
                    "cores": round(cpu / window, 3),
                }
            )
        generator_cpu = sum(after.since(before, c.pid) for c in children)
        server_cpu = sum(after.since(before, s.pid) for s in servers)
        redis_cpu = sum(after.since(before, p) for p in redis_pids)
        postgres_cpu = sum(after.since(before, p) for p in postgres_pids)
        machine = after.machine - before.machine
        own = after.own - before.own
        accounted = server_cpu + redis_cpu + postgres_cpu + generator_cpu + own
        figures.update(
            {
                "connections_held": held,
                "connect_failures": dict(failures),
                "connect_s": round(connect_s, 1),
                "settle_s": settle_s,
                "servers": server_figures,
                "kb_per_connection": round(
                    sum(idle_rss[k] - base_rss[k] for k in range(2)) / held, 1
                )
                if held
                else None,
                "cpu_window_s": round(window, 2),
                "server_cores": round(server_cpu / window, 3),
                "server_idle_cores": round(idle_cores, 3),
                "redis_cores": round(redis_cpu / window, 3),
                "postgres_cores": round(postgres_cpu / window, 3),
                "generator_cores": round(generator_cpu / window, 3),
                "generator_processes": len(children),
                "bench_parent_cores": round(own / window, 3),
                "other_cores": round(max(0.0, machine - accounted) / window, 3),
                "machine_busy_cores": round(machine / window, 3),
                "background_cores_before": background_before,
            }
        )
        figures.update(merge_results(results, scenario, layout, connected))
        # Messages the servers handled in the timed window: Cohort's are counted in storage (a
        # backlog shows), Socket.IO's are the offered rate.
        if system == "cohort":
            messages = stored_after.get("channel_messages", 0) - stored_before.get(
                "channel_messages", 0
            )
        else:
            messages = round(window * scenario.rate)
        figures["messages_in_window"] = messages
        if messages and (scenario.rate if system == "socketio" else ctx.chat):
            # CPU per message and per delivery over the timed window, all server processes
            # together: comparable even when the machine is shared (latency is not).
            # What the load added to the idle servers' CPU.
            load_cpu = max(0.0, server_cpu - idle_cores * window)
            deliveries = messages * scenario.room_size
            figures["server_cpu_ms_per_message"] = round(1000 * load_cpu / messages, 3)
            figures["server_cpu_us_per_delivery"] = round(1e6 * load_cpu / deliveries, 1)
            # Round trips behind each message (the Redis is shared: others' commands count too).
            figures["redis_calls_per_message"] = per_message(redis_before, redis_after, messages)
            if system == "cohort":
                figures["postgres_per_message"] = per_message(db_before, db_after, messages)
        if system == "cohort":
            rows_after = await count_channel_rows(ctx.hub.database_url)
            figures["persisted"] = {
                k: rows_after.get(k, 0) - rows_before.get(k, 0) for k in rows_after
            }
        figures["published_window_s"] = args.warmup + args.seconds
        if scenario.frozen:
            figures["frozen"] = frozen_report(
                system, servers, results, ctx, t0_wall, figures.get("squeeze_s", 0.0)
            )
        figures["server_errors"] = server_error_lines(system, servers)
        summary = figures.get("latency_ms", {})
        note(
            f"{scenario.name}/{system}#{repeat}: p50 {summary.get('p50')} ms, p99 "
            f"{summary.get('p99')} ms, lost {figures.get('lost')}, servers "
            f"{figures['server_cores']} cores, generator {figures['generator_cores']} cores, "
            f"{figures['kb_per_connection']} KB/connection"
        )
        return figures
    finally:
        for child in children:
            await child.finish()
        for server in servers:
            server.stop()
        if not args.keep_logs and not figures.get("server_errors"):
            for path in run_dir.glob("gen*.json"):
                path.unlink(missing_ok=True)


async def settle(pids: list[int], args: argparse.Namespace) -> float:
    """After connecting: wait until the servers and generators are done with the work the
    connections caused (presence joins fan out to every member of a room), so that the load
    starts on idle servers. Returns the seconds waited."""
    started = time.monotonic()
    quiet = 0
    before = CpuSnapshot.take(pids)
    while time.monotonic() - started < args.settle_limit:
        await asyncio.sleep(1.0)
        now = CpuSnapshot.take(pids)
        busy = sum(now.since(before, p) for p in pids) / (now.at - before.at)
        before = now
        quiet = quiet + 1 if busy < SETTLED_CORES else 0
        if quiet >= 2:
            break
    else:
        note(f"servers still busy after {args.settle_limit:.0f} s of settling; loading anyway")
    return round(time.monotonic() - started, 1)


def room_names(ctx: Context, system: str, scenario: Scenario, cohort_mode: str) -> list[str]:
    groups = (
        ctx.accounts.small_groups[: scenario.connections // ROOM_SIZE]
        if scenario.room_size == ROOM_SIZE
        else [ctx.accounts.big_group]
    )
    if system == "socketio":
        return [f"g{g}" for g in groups]
    if cohort_mode == "chat":
        return [f"chat:group:{g}" for g in groups]
    return []  # each connection subscribes to its own user:<id>


def merge_results(
    results: list[dict[str, Any]],
    scenario: Scenario,
    layout: list[list[list[int]]],
    connected: list[dict[str, Any]],
) -> dict[str, Any]:
    """Latency over every receiver, deliveries per message against the room's live members."""
    latencies = array("f")
    acks = array("f")
    lag = array("f")
    counts: collections.Counter[int] = collections.Counter()
    refused: collections.Counter[str] = collections.Counter()
    for result in results:
        latencies.frombytes(base64.b64decode(result["latency_ms"]))
        acks.frombytes(base64.b64decode(result["ack_ms"]))
        lag.frombytes(base64.b64decode(result["send_lag_ms"]))
        for key, n in result["counts"]:
            counts[key] += n
        refused.update(result["refused"])
    # Members that can receive: connected, not frozen, not lost before the end.
    failed = {i for event in connected for i in event["failed"]}
    dropped = {i for result in results for i in result["dropped"]}
    live_per_room: collections.Counter[int] = collections.Counter()
    frozen_per_room: collections.Counter[int] = collections.Counter()
    for conns in layout:
        for index, _user, room, _server, frozen, _sender, _pos in conns:
            if frozen:
                frozen_per_room[room] += 1
            elif index not in failed:
                live_per_room[room] += 1
    expected = received = lost = duplicates = published = accepted = unacked = 0
    for result in results:
        origin = result["child"]
        status = base64.b64decode(result["status"])
        rooms = array("i")
        rooms.frombytes(base64.b64decode(result["rooms"]))
        for msgid, (state, room) in enumerate(zip(status, rooms, strict=True)):
            if state == 0 or room < 0:
                continue  # never sent (its sender was gone)
            published += 1
            if state == 2:
                continue  # refused: not delivered by design
            if state == 1:
                accepted += 1
            else:
                unacked += 1
            want = live_per_room[room]
            got = counts.pop((origin << 40) | msgid, 0)
            expected += want
            received += min(got, want)
            lost += max(0, want - got)
            duplicates += max(0, got - want)
    strays = sum(counts.values())  # deliveries of messages nobody sent (must be 0)
    return {
        "published": published,
        "accepted": accepted,
        "refused": dict(refused),
        "unacked": unacked,
        "publish_rate": round(published / (results[0]["publish_seconds"] or 1), 1)
        if results
        else 0,
        "drain_s": max((r["drain_s"] for r in results), default=None),
        "deliveries_expected": expected,
        "delivered": received,
        "lost": lost,
        "duplicates": duplicates + strays,
        "receivers_dropped": len(dropped),
        "latency_ms": percentiles(latencies),
        "ack_ms": percentiles(acks),
        "send_lag_ms": {
            k: v for k, v in percentiles(lag).items() if k in ("p99", "max", "samples")
        },
        "frozen_members": sum(frozen_per_room.values()),
    }


def squeeze_limit(args: argparse.Namespace) -> float:
    """Seconds of squeeze that send ``--frozen-mb`` MiB to each member of the big room."""
    return float(args.frozen_mb * 2**20 / (args.big_rate * (SQUEEZE_TEXT + 200)))


async def squeeze(system: str, servers: list[ServerProcess], ctx: Context, since: float) -> float:
    """The frozen scenario after its timed window: the generators go on with long texts until
    the frozen socket's server logs that it closed it, or ``--frozen-mb`` MiB went to each
    member. Returns the seconds from the end of the timed window."""
    started = time.monotonic()
    server = servers[FROZEN_INDEX % 2]
    frozen_user = ctx.accounts.user_ids[FROZEN_INDEX]
    while time.monotonic() - started < squeeze_limit(ctx.args):
        await asyncio.sleep(0.5)
        for record in server.log_records():
            closed = (
                record.get("msg") == "closing websocket" and record.get("user_id") == frozen_user
                if system == "cohort"
                else record.get("event") == "disconnect" and record.get("user") == FROZEN_INDEX
            )
            if closed:
                await asyncio.sleep(1.0)  # what was in flight lands
                return round(time.monotonic() - since, 1)
    note(f"frozen/{system}: not cut off after --frozen-mb {ctx.args.frozen_mb:g} MiB of squeeze")
    return round(time.monotonic() - since, 1)


def frozen_report(
    system: str,
    servers: list[ServerProcess],
    results: list[dict[str, Any]],
    ctx: Context,
    t0_wall: float,
    squeeze_s: float,
) -> dict[str, Any]:
    """What became of the frozen reader: the client's view (after it resumed reading at the
    end) and the server's log."""
    client = next((r["frozen"] for r in results if r.get("frozen")), None)
    frozen_user = ctx.accounts.user_ids[FROZEN_INDEX]
    server_view: dict[str, Any] | None = None
    window_end = t0_wall + ctx.args.warmup + ctx.args.seconds + squeeze_s
    for server in servers:
        records = server.log_records()
        if system == "cohort" and server is servers[FROZEN_INDEX % 2]:
            # The hub's access log has no user, but only the frozen socket's /ws request
            # should end while the load runs; with no "closing websocket" line (4008 or 4400)
            # for the user, aiohttp's heartbeat closed it (no pong within 15 s).
            ended = [
                datetime.fromisoformat(r["ts"]).timestamp()
                for r in records
                if r.get("msg") == "GET /ws 101"
                and t0_wall <= datetime.fromisoformat(r["ts"]).timestamp() <= window_end
            ]
            if ended:
                server_view = {
                    "by": server.name,
                    "reason": "heartbeat: no pong within 15 s (aiohttp closes without a frame)",
                    "after_s": round(min(ended) - t0_wall, 1),
                    "ws_ended_during_load": len(ended),
                }
        for record in records:
            if (
                system == "cohort"
                and record.get("msg") == "closing websocket"
                and (record.get("user_id") == frozen_user)
            ):
                at = datetime.fromisoformat(record["ts"]).timestamp()
                server_view = {
                    "by": server.name,
                    "code": record.get("code"),
                    "reason": record.get("reason"),
                    "unsent_bytes": record.get("unsent"),
                    "after_s": round(at - t0_wall, 1),
                }
            if (
                system == "socketio"
                and record.get("event") == "disconnect"
                and (record.get("user") == FROZEN_INDEX)
            ):
                server_view = {
                    "by": server.name,
                    "reason": record.get("reason"),
                    "buffered_bytes": record.get("buffered_bytes"),
                    "after_s": round(record["at_ms"] / 1000 - t0_wall, 1),
                }
    return {
        "server_log": server_view,
        "client": client,
        "cut_off": bool(server_view) or bool(client and client.get("closed")),
        # Cohort: closed for having more than COHORT_WS_SEND_BUFFER unsent (not by heartbeat)
        "cut_at_bound": bool(server_view and server_view.get("code") == 4008),
        "squeeze_s": squeeze_s,
    }


def server_error_lines(system: str, servers: list[ServerProcess]) -> int:
    count = 0
    for server in servers:
        for record in server.log_records():
            level = record.get("level")
            if level in ("error", "critical") or record.get("event") in ("fatal", "redis_error"):
                count += 1
        with contextlib.suppress(OSError):
            count += server.log_path.read_text(errors="replace").count("Traceback")
    return count


async def probe_cohort(ctx: Context, servers: list[ServerProcess]) -> None:
    """Once: log in over HTTP with a seeded account, take a ticket, open /ws on the first hub
    and a second socket on the other, subscribe both to a group's chat and publish one message:
    does chat exist, and what does a delivered message look like?"""
    import aiohttp

    acc = ctx.accounts
    base = [f"http://127.0.0.1:{s.port}" for s in servers]
    probe: dict[str, Any] = {}
    async with aiohttp.ClientSession() as http:
        async with http.post(
            f"{base[0]}/api/auth/login", json={"email": acc.emails[0], "password": PASSWORD}
        ) as resp:
            body = await resp.json()
            probe["login_status"] = resp.status
            if resp.status != 200:
                raise BenchError(f"login over HTTP failed: {resp.status} {body}")
        sockets = []
        channel = f"chat:group:{acc.small_groups[0]}"
        for k in (0, 1):
            headers = {"Authorization": f"Bearer {acc.tokens[k]}"}
            async with http.post(f"{base[k]}/api/realtime/ticket", headers=headers) as resp:
                ticket = (await resp.json())["ticket"]
            ws = await http.ws_connect(f"{base[k]}/ws?ticket={ticket}")
            sockets.append(ws)
            await ws.send_json({"op": "subscribe", "channel": channel, "ref": "probe"})
            answer = await ws.receive_json(timeout=10)
            probe[f"subscribe_hub{k}"] = (
                answer.get("op") if answer.get("op") != "error" else (f"error:{answer.get('code')}")
            )
        ctx.chat = probe["subscribe_hub0"] == "subscribed"
        if ctx.chat:
            text = f"fo:99:0:{time.monotonic_ns()}: {FILLER.decode()}"
            await sockets[0].send_json(
                {"op": "publish", "channel": channel, "data": {"text": text}, "ref": 1}
            )
            deadline = time.monotonic() + 10
            seen: dict[str, Any] = {}
            while time.monotonic() < deadline and not ("ack" in seen and "delivered" in seen):
                with contextlib.suppress(TimeoutError):
                    msg = await sockets[1].receive_json(timeout=1)
                    if msg.get("op") == "message" and "fo:99:0:" in json.dumps(msg):
                        seen["delivered"] = msg
                with contextlib.suppress(TimeoutError):
                    msg = await sockets[0].receive_json(timeout=0.2)
                    if msg.get("op") in ("ack", "error"):
                        seen["ack"] = msg
            probe["publish_answer"] = seen.get("ack")
            probe["delivered_frame"] = seen.get("delivered")
            if "delivered" not in seen:
                raise BenchError(f"chat exists but the probe message was not delivered: {seen}")
        for ws in sockets:
            await ws.close()
    ctx.probe = probe
    note(f"cohort probe: {probe}")


# Profiling ----------------------------------------------------------------------------------


def start_profiler(pid: int, seconds: float, out: Path) -> subprocess.Popen[bytes] | None:
    spy = BIN / "py-spy"
    if not spy.exists():
        note("--profile needs py-spy in the venv; skipped")
        return None
    return subprocess.Popen(
        [
            str(spy),
            *("record", "--pid", str(pid), "--duration", str(max(1, int(seconds)))),
            *("--rate", "200", "--format", "raw", "--nonblocking", "--output", str(out)),
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


def finish_profiler(process: subprocess.Popen[bytes], out: Path, top: int = 25) -> dict[str, Any]:
    with contextlib.suppress(subprocess.TimeoutExpired):
        process.wait(timeout=60)
    own: collections.Counter[str] = collections.Counter()
    inclusive: collections.Counter[str] = collections.Counter()
    total = 0
    with contextlib.suppress(OSError):
        for line in out.read_text().splitlines():
            stack, _, count_text = line.rpartition(" ")
            frames = [f for f in stack.split(";") if not f.startswith(("process ", "thread "))]
            if not frames or not count_text.isdigit():
                continue
            count = int(count_text)
            total += count
            own[frames[-1]] += count
            for frame in set(frames):
                inclusive[frame] += count

    def share(counter: collections.Counter[str]) -> list[list[Any]]:
        return [[f, round(100 * n / max(total, 1), 1)] for f, n in counter.most_common(top)]

    report: dict[str, Any] = {"samples": total, "file": str(out), "self_pct": share(own)}
    note(f"profile of hub0 ({total} samples, {out}):")
    for frame, pct in report["self_pct"]:
        note(f"  self {pct:5.1f}%  {frame}")
    for frame, pct in share(inclusive):
        note(f"  incl {pct:5.1f}%  {frame}")
    report["inclusive_pct"] = share(inclusive)
    return report


# Summaries ----------------------------------------------------------------------------------


def summarize(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """Medians over repeats (and every run's p99, to show the spread)."""
    ok = [r for r in runs if "error" not in r]
    if not ok:
        return {"runs": runs}

    def med(getter: Callable[[dict[str, Any]], Any]) -> float | None:
        values = [v for r in ok if (v := getter(r)) is not None]
        return round(statistics.median(values), 3) if values else None

    summary: dict[str, Any] = {
        "p50_ms": med(lambda r: r.get("latency_ms", {}).get("p50")),
        "p99_ms": med(lambda r: r.get("latency_ms", {}).get("p99")),
        "p99_ms_runs": [r.get("latency_ms", {}).get("p99") for r in ok],
        "p50_ms_runs": [r.get("latency_ms", {}).get("p50") for r in ok],
        "lost_total": sum(r.get("lost", 0) for r in ok),
        "deliveries_expected_total": sum(r.get("deliveries_expected", 0) for r in ok),
        "connections_held": med(lambda r: r.get("connections_held")),
        "connect_s": med(lambda r: r.get("connect_s")),
        "kb_per_connection": med(lambda r: r.get("kb_per_connection")),
        "server_cores": med(lambda r: r.get("server_cores")),
        "server_idle_cores": med(lambda r: r.get("server_idle_cores")),
        "redis_cores": med(lambda r: r.get("redis_cores")),
        "postgres_cores": med(lambda r: r.get("postgres_cores")),
        "generator_cores": med(lambda r: r.get("generator_cores")),
        "machine_busy_cores": med(lambda r: r.get("machine_busy_cores")),
        "ack_p99_ms": med(lambda r: r.get("ack_ms", {}).get("p99")),
        "server_cpu_ms_per_message": med(lambda r: r.get("server_cpu_ms_per_message")),
        "server_cpu_us_per_delivery": med(lambda r: r.get("server_cpu_us_per_delivery")),
    }
    if any("frozen" in r for r in ok):
        summary["frozen_cut_off"] = [r.get("frozen", {}).get("cut_off") for r in ok]
    summary["runs"] = runs
    return summary


def machine_info() -> dict[str, Any]:
    from importlib.metadata import version

    model = None
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    return {
        "cores": os.cpu_count(),
        "cpu": model,
        "mem_gib": round(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30, 1),
        "loadavg_at_start": [round(v, 2) for v in os.getloadavg()],
        "python": platform.python_version(),
        "aiohttp": version("aiohttp"),
        "redis_py": version("redis"),
        "sqlalchemy": version("sqlalchemy"),
        "asyncpg": version("asyncpg"),
    }


def cohort_revision() -> dict[str, Any]:
    def git(*args: str) -> str | None:
        try:
            return subprocess.run(
                ["git", "--no-optional-locks", *args],
                capture_output=True,
                text=True,
                timeout=30,
                check=True,
                cwd=ROOT,
            ).stdout.strip()
        except (OSError, subprocess.SubprocessError):
            return None

    status = git("status", "--porcelain", "--", "hub", "catalog", "rooms")
    return {"commit": git("rev-parse", "--short", "HEAD"), "python_modified": bool(status)}


async def server_versions(redis_url: str) -> dict[str, Any]:
    import asyncpg
    from redis.asyncio import Redis

    redis = Redis.from_url(redis_url)
    try:
        info = await redis.info("server")
        limit = await redis.config_get("client-output-buffer-limit")
    finally:
        await redis.aclose()
    conn = await asyncpg.connect(ADMIN_DSN)
    try:
        pg = await conn.fetchval("SHOW server_version")
        sync = await conn.fetchval("SHOW synchronous_commit")
    finally:
        await conn.close()
    return {
        "redis": info.get("redis_version"),
        "redis_output_buffer_limit": limit.get("client-output-buffer-limit"),
        "postgres": pg,
        "postgres_synchronous_commit": sync,
    }


async def clear_redis(redis_url: str, prefix: str) -> None:
    from redis.asyncio import Redis

    redis = Redis.from_url(redis_url)
    try:
        keys = [k async for k in redis.scan_iter(f"{prefix}:*", count=1000)]
        for start in range(0, len(keys), 1000):
            await redis.delete(*keys[start : start + 1000])
    finally:
        await redis.aclose()


def estimate_s(args: argparse.Namespace, scenarios: list[Scenario]) -> float:
    """Rough wall time of the whole run on this machine (connecting costs Cohort about 3.5 ms
    per connection and Socket.IO 0.5; each run also starts servers, settles, idles and drains;
    the frozen scenario adds its squeeze, Cohort's until the cut at about 4 MiB)."""
    total = 0.0
    for scenario in scenarios:
        per_system = 30 + args.warmup + args.seconds
        cohort = per_system + 0.0035 * scenario.connections
        socketio = per_system + 0.0005 * scenario.connections
        if scenario.frozen:
            cohort += squeeze_limit(args) * min(1.0, 4.2 / args.frozen_mb)
            socketio += squeeze_limit(args)
        total += args.repeats * (cohort + socketio)
    return 60 + total


async def bench(args: argparse.Namespace) -> dict[str, Any]:
    started = time.monotonic()
    peer = ensure_peer()
    names = [s.strip() for s in args.scenarios.split(",") if s.strip()]
    scenarios = []
    for name in names:
        if name == "rooms":
            scenarios.append(Scenario("rooms", args.connections, ROOM_SIZE, args.rate, False))
        else:
            scenarios.append(
                Scenario(name, args.big_room, args.big_room, args.big_rate, name == "frozen")
            )
    note(f"this run should take about {estimate_s(args, scenarios) / 60:.0f} minutes")
    CACHE_DIR.mkdir(parents=True, exist_ok=True)
    work_dir = Path(tempfile.mkdtemp(prefix="fanout-", dir=CACHE_DIR))
    report: dict[str, Any] = {
        "bench": "fanout",
        "machine": machine_info(),
        "cohort": cohort_revision(),
        "peer": peer,
        "config": {
            "connections": args.connections,
            "room_size": ROOM_SIZE,
            "rate": args.rate,
            "seconds": args.seconds,
            "warmup": args.warmup,
            "big_room": args.big_room,
            "big_rate": args.big_rate,
            "repeats": args.repeats,
            "generators": args.generators,
            "fd_limit": raise_fd_limit(),
        },
    }
    report["servers"] = await server_versions(args.redis_url)
    prefix = f"cohort-fanout-{os.getpid()}"
    try:
        async with bench_database() as database_url:
            hub = HubConfig(
                database_url=database_url,
                redis_url=args.redis_url,
                redis_prefix=prefix,
                secret_key=secrets.token_urlsafe(48),
                data_dir=work_dir,
                code=Path(args.code) if args.code else None,  # resolved in main()
            )
            note(f"migrating {database_url} ...")
            migrate(hub)
            small = args.connections if "rooms" in names else 2 * ROOM_SIZE
            users = max(small, args.big_room if {"big", "frozen"} & set(names) else 0)
            accounts = await seed(hub, users, small // ROOM_SIZE, min(args.big_room, users))
            accounts_path = work_dir / "accounts.json"
            accounts_path.write_text(
                json.dumps({"user_ids": accounts.user_ids, "tokens": accounts.tokens})
            )
            ctx = Context(args, hub, args.redis_url, accounts, accounts_path, work_dir)
            report["scenarios"] = {}
            for scenario in scenarios:
                runs: dict[str, list[dict[str, Any]]] = {s: [] for s in SYSTEMS}
                for repeat in range(args.repeats):
                    systems = args.systems
                    order = systems if repeat % 2 == 0 else tuple(reversed(systems))
                    for system in order:
                        try:
                            runs[system].append(await run_once(ctx, system, scenario, repeat))
                        except BenchError as exc:
                            if str(exc).startswith("skip:"):
                                continue
                            note(f"{scenario.name}/{system}#{repeat} failed: {exc}")
                            runs[system].append(
                                {"system": system, "repeat": repeat, "error": str(exc)[:2000]}
                            )
                        finally:
                            await clear_redis(args.redis_url, prefix)
                report["scenarios"][scenario.name] = {
                    "connections": scenario.connections,
                    "room_size": scenario.room_size,
                    "rate": scenario.rate,
                    "frozen_clients": int(scenario.frozen),
                    **{s: summarize(runs[s]) for s in SYSTEMS},
                }
            report["cohort_chat"] = ctx.chat
            report["cohort_probe"] = ctx.probe
    finally:
        await clear_redis(args.redis_url, prefix)
        if args.keep_logs:
            note(f"logs kept in {work_dir}")
        else:
            shutil.rmtree(work_dir, ignore_errors=True)
    report["targets"] = {
        "rooms": "cohort p99 <= socket.io p99 while persisting every message; "
        "<= 40 KB per connection; 0 lost",
        "big": "cohort p99 <= socket.io p99",
        "frozen": "others' p99 within the run-to-run spread of big; the frozen reader is cut "
        "off at its bounded queue",
    }
    report["notes"] = [
        "latency: publish (client send, CLOCK_MONOTONIC) to delivery (receiver's read), over "
        "the timed window after warm-up; lost: deliveries missing per message, against the "
        "room's members connected and not frozen",
        "kb_per_connection: (RSS once connected and subscribed - RSS at start) / connections",
        "cores: CPU over the timed window / its length; other_cores: the rest of the machine",
        "the frozen reader sets SO_RCVBUF=4096 and stops reading at t0 (it still sends an "
        "unsolicited pong every 5 s, so heartbeats do not end it); after the timed window the "
        "squeeze publishes ~3.8 KB texts at the same rate until its server closes it or "
        "--frozen-mb MiB went to each member; then it resumes reading to see what it was sent "
        "and how the socket was closed",
    ]
    report["machine"]["loadavg_at_end"] = [round(v, 2) for v in os.getloadavg()]
    report["elapsed_s"] = round(time.monotonic() - started, 1)
    return report


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--connections", type=int, default=10_000, help="rooms scenario")
    parser.add_argument("--rate", type=float, default=1000, help="messages/s, rooms scenario")
    parser.add_argument("--seconds", type=float, default=60, help="timed window of each run")
    parser.add_argument("--warmup", type=float, default=5, help="untimed seconds of load first")
    parser.add_argument("--scenarios", default=",".join(SCENARIOS), help="rooms,big,frozen")
    parser.add_argument("--repeats", type=int, default=3, help="runs per system and scenario")
    parser.add_argument("--big-room", type=int, default=2000, help="members of the big room")
    parser.add_argument("--big-rate", type=float, default=10, help="messages/s, big room")
    parser.add_argument("--generators", type=int, default=2, help="load generator processes")
    parser.add_argument("--connect-concurrency", type=int, default=64, help="per generator")
    parser.add_argument("--redis-url", default="redis://127.0.0.1:6379/0")
    parser.add_argument("--idle-wait", type=float, default=120, help="wait for a quiet machine")
    parser.add_argument(
        "--settle-limit",
        type=float,
        default=600,
        help="wait for servers to go idle after connecting",
    )
    parser.add_argument(
        "--frozen-mb",
        type=float,
        default=5,
        help="frozen scenario: squeeze (long texts) until the cut or this many MiB sent to each",
    )
    parser.add_argument("--profile", action="store_true", help="py-spy hub0 once per scenario")
    parser.add_argument("--keep-logs", action="store_true", help="keep var/bench/fanout-*")
    parser.add_argument(
        "--code", help="run the hubs from this source tree (same dependencies), e.g. a copy"
    )
    parser.add_argument(
        "--systems",
        default=",".join(SYSTEMS),
        help="cohort,socketio; one alone for a diagnostic (no comparison, not the issue's figure)",
    )
    args = parser.parse_args(argv)
    args.systems = tuple(s for s in SYSTEMS if s in args.systems.split(","))
    if not args.systems:
        parser.error(f"--systems: one or more of {', '.join(SYSTEMS)}")
    if args.code:
        args.code = str(Path(args.code).resolve())
    if args.connections % ROOM_SIZE or args.connections < 2 * ROOM_SIZE:
        parser.error(f"--connections must be a multiple of {ROOM_SIZE}, at least {2 * ROOM_SIZE}")
    if args.big_room < 2 or args.repeats < 1 or args.generators < 1:
        parser.error("--big-room >= 2, --repeats >= 1, --generators >= 1")
    unknown = set(args.scenarios.split(",")) - set(SCENARIOS)
    if unknown:
        parser.error(f"unknown scenarios {sorted(unknown)}; choose from {', '.join(SCENARIOS)}")
    if args.rate / args.connections > 0.9 or args.big_rate / args.big_room > 0.9:
        note("warning: each member would publish more than the chat's 10 messages per 10 s")
    signal.signal(signal.SIGTERM, lambda _signum, _frame: sys.exit(143))
    raise_fd_limit()
    try:
        report = asyncio.run(bench(args))
    except BenchError as exc:
        note(f"FAILED: {exc}")
        return 1
    print(json.dumps(report), flush=True)
    return 0


# The load generator (a child process) --------------------------------------------------------


class WsConn(asyncio.Protocol):
    """A minimal RFC 6455 client. Server frames are parsed in place; text payloads go to
    ``on_text(conn, payload, now_ns)`` with the time they were read."""

    def __init__(self, gen: Generator, spec: list[int], host: str, port: int, path: str) -> None:
        loop = asyncio.get_running_loop()
        self.gen = gen
        self.index, self.user, self.room, self.server, frozen, self.sender, self.pos = spec
        self.frozen = bool(frozen)
        self.on_text: Callable[[WsConn, bytes, int], None] = gen.on_text
        key = base64.b64encode(os.urandom(16)).decode()
        self._request = (
            f"GET {path} HTTP/1.1\r\nHost: {host}:{port}\r\nUpgrade: websocket\r\n"
            f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n"
            "\r\n"
        ).encode()
        self.transport: asyncio.Transport | None = None
        self.upgraded: asyncio.Future[None] = loop.create_future()
        self.ready: asyncio.Future[None] = loop.create_future()
        for future in (self.upgraded, self.ready):
            # A socket that fails early fails both; whoever waits sees it once.
            future.add_done_callback(lambda f: f.cancelled() or f.exception())
        self._rest = b""
        self._handshake = True
        self._fragments: list[bytes] | None = None
        self.close_code: int | None = None
        self.close_reason = ""
        self.lost_at: int | None = None
        self.frames_after_thaw = 0
        self.bytes_after_thaw = 0

    # asyncio.Protocol

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport
        transport.write(self._request)

    def connection_lost(self, exc: Exception | None) -> None:
        self.lost_at = time.monotonic_ns()
        for future in (self.upgraded, self.ready):
            if not future.done():
                future.set_exception(ConnectionError(f"closed ({self.close_code})"))
        self.gen.on_lost(self)

    def data_received(self, data: bytes) -> None:
        now = time.monotonic_ns()
        if self.frozen:
            self.bytes_after_thaw += len(data)
        buf = self._rest + data if self._rest else data
        if self._handshake:
            end = buf.find(b"\r\n\r\n")
            if end < 0:
                self._rest = buf
                return
            status = buf[: buf.find(b"\r\n")]
            if not status.startswith(b"HTTP/1.1 101"):
                if not self.upgraded.done():
                    self.upgraded.set_exception(ConnectionError(status.decode(errors="replace")))
                assert self.transport is not None
                self.transport.close()
                return
            self._handshake = False
            self.upgraded.set_result(None)
            buf = buf[end + 4 :]
        pos = 0
        n = len(buf)
        while n - pos >= 2:
            length = buf[pos + 1] & 0x7F
            start = pos + 2
            if length == 126:
                if n - pos < 4:
                    break
                length = (buf[pos + 2] << 8) | buf[pos + 3]
                start = pos + 4
            elif length == 127:
                if n - pos < 10:
                    break
                length = int.from_bytes(buf[pos + 2 : pos + 10], "big")
                start = pos + 10
            end = start + length
            if end > n:
                break
            head = buf[pos]
            pos = end
            if head == 0x81:  # a whole text frame: the delivery path
                self.on_text(self, buf[start:end], now)
            else:
                self._frame(head & 0x0F, head & 0x80, buf[start:end], now)
        self._rest = buf[pos:] if pos < n else b""

    def _frame(self, opcode: int, fin: int, payload: bytes, now: int) -> None:
        if opcode in (0x1, 0x2, 0x0):
            self._fragments = [*(self._fragments or []), payload]
            if fin:
                whole, self._fragments = b"".join(self._fragments), None
                if opcode != 0x2:
                    self.on_text(self, whole, now)
        elif opcode == 0x8:
            self.close_code = int.from_bytes(payload[:2], "big") if len(payload) >= 2 else 1005
            self.close_reason = payload[2:].decode(errors="replace")
            if self.transport is not None and not self.transport.is_closing():
                self.send_frame(0x8, payload[:2])
                self.transport.close()
        elif opcode == 0x9:
            self.send_frame(0xA, payload)

    # Sending

    def send_frame(self, opcode: int, payload: bytes) -> None:
        transport = self.transport
        if transport is None or transport.is_closing():
            return
        n = len(payload)
        if n < 126:
            header = bytes((0x80 | opcode, 0x80 | n))
        elif n < 65536:
            header = bytes((0x80 | opcode, 0x80 | 126)) + n.to_bytes(2, "big")
        else:
            header = bytes((0x80 | opcode, 0x80 | 127)) + n.to_bytes(8, "big")
        key = os.urandom(4)
        if n:
            mask = (key * (n // 4 + 1))[:n]
            payload = (int.from_bytes(payload, "big") ^ int.from_bytes(mask, "big")).to_bytes(
                n, "big"
            )
        transport.write(header + key + payload)

    def send_text(self, payload: bytes) -> None:
        self.send_frame(0x1, payload)

    @property
    def alive(self) -> bool:
        return self.transport is not None and not self.transport.is_closing()


class Generator:
    """One load generator process: its connections, its share of the publishing, and the
    deliveries its connections see (of every generator's messages)."""

    def __init__(self, spec: dict[str, Any]) -> None:
        self.spec = spec
        self.system: str = spec["system"]
        self.child: int = spec["child"]
        self.servers: list[tuple[str, int]] = [tuple(s) for s in spec["servers"]]
        self.rooms: list[str] = spec["rooms"]
        accounts = json.loads(Path(spec["accounts"]).read_text())
        self.user_ids: list[int] = accounts["user_ids"]
        self.tokens: list[str] = accounts["tokens"]
        self.conns: list[WsConn] = []
        self.latency = array("f")
        self.ack_latency = array("f")
        self.send_lag = array("f")
        self.counts: dict[int, int] = {}
        self.measure_from = 0
        self.measure_until = 0
        self.last_delivery = 0
        self.sent_ns = array("q")
        self.status = bytearray()  # per message: 0 not sent, 1 acked, 2 refused, 3 unanswered
        self.msg_rooms = array("i")
        self.refused: collections.Counter[str] = collections.Counter()
        self.other_frames = 0
        self.dropped: list[int] = []
        self.running = False
        self.frozen_conn: WsConn | None = None
        self.frozen_thawed = False
        self.frozen_latency_max = 0.0
        self.drain_s = 0.0
        self.on_text = self._cohort_text if self.system == "cohort" else self._sio_text
        self.thaw_now = asyncio.Event()  # the parent says the squeeze is over

    # Receiving

    def _delivery(self, conn: WsConn, payload: bytes, at: int, now: int) -> None:
        head = payload[at + 4 : at + 64].split(b":", 3)
        sent = int(head[2])
        if conn.frozen:
            conn.frames_after_thaw += 1
            self.frozen_latency_max = max(self.frozen_latency_max, (now - sent) / 1e6)
            return
        key = (int(head[0]) << 40) | int(head[1])
        counts = self.counts
        counts[key] = counts.get(key, 0) + 1
        if self.measure_from <= sent < self.measure_until:
            self.latency.append((now - sent) / 1e6)
        self.last_delivery = now

    def _cohort_text(self, conn: WsConn, payload: bytes, now: int) -> None:
        at = payload.find(MARKER)
        if at >= 0:
            self._delivery(conn, payload, at, now)
            return
        frame = orjson.loads(payload)
        op = frame.get("op")
        ref = frame.get("ref")
        if op == "ack" and isinstance(ref, int) and ref < len(self.status):
            self.status[ref] = 1
            self.ack_latency.append((now - self.sent_ns[ref]) / 1e6)
        elif op == "error" and isinstance(ref, int) and ref < len(self.status):
            self.status[ref] = 2
            self.refused[str(frame.get("code"))] += 1
        elif op == "subscribed":
            if not conn.ready.done():
                conn.ready.set_result(None)
        elif op == "error" and not conn.ready.done():
            conn.ready.set_exception(ConnectionError(f"subscribe refused: {frame.get('code')}"))
        else:
            if conn.frozen:
                conn.frames_after_thaw += 1
            self.other_frames += 1

    def _sio_text(self, conn: WsConn, payload: bytes, now: int) -> None:
        at = payload.find(MARKER)
        if at >= 0:
            self._delivery(conn, payload, at, now)
            return
        if payload == b"2":  # engine.io ping
            conn.send_text(b"3")
        elif payload.startswith(b"43"):
            ack = int(payload[2 : payload.index(b"[")])
            if ack >= JOIN_ACK_BASE:
                if not conn.ready.done():
                    conn.ready.set_result(None)
            elif ack < len(self.status):
                self.status[ack] = 1
                self.ack_latency.append((now - self.sent_ns[ack]) / 1e6)
        elif payload.startswith(b"40"):
            room = self.rooms[conn.room]
            conn.send_text(b'42%d["join","%s"]' % (JOIN_ACK_BASE + conn.index, room.encode()))
        elif payload.startswith(b"0"):
            conn.send_text(b"40")
        elif payload.startswith(b"44"):
            if not conn.ready.done():
                conn.ready.set_exception(ConnectionError(payload.decode(errors="replace")))
        else:
            if conn.frozen:
                conn.frames_after_thaw += 1
            self.other_frames += 1

    def on_lost(self, conn: WsConn) -> None:
        if self.running and not conn.frozen:
            self.dropped.append(conn.index)

    # Connecting

    async def connect_all(self) -> dict[str, Any]:
        import aiohttp

        conns: list[list[int]] = self.spec["conns"]
        gate = asyncio.Semaphore(self.spec["concurrency"])
        errors: collections.Counter[str] = collections.Counter()
        failed: list[int] = []
        held = [0, 0]
        timeout = aiohttp.ClientTimeout(total=CONNECT_TIMEOUT)
        async with aiohttp.ClientSession(
            timeout=timeout, connector=aiohttp.TCPConnector(limit=self.spec["concurrency"])
        ) as http:

            async def one(spec: list[int]) -> None:
                host, port = self.servers[spec[3]]
                last = "unknown"
                for attempt in range(3):
                    async with gate:
                        try:
                            conn = await asyncio.wait_for(
                                self._open(http, spec, host, port), CONNECT_TIMEOUT
                            )
                        except TimeoutError:
                            last = f"no answer within {CONNECT_TIMEOUT:.0f} s"
                            break
                        except (OSError, ConnectionError, aiohttp.ClientError) as e:
                            last = f"{type(e).__name__}: {str(e)[:80]}"
                            await asyncio.sleep(0.5 * (attempt + 1))
                            continue
                    self.conns.append(conn)
                    held[spec[3]] += 1
                    return
                errors[last] += 1
                failed.append(spec[0])

            await asyncio.gather(*(one(spec) for spec in conns))
        return {"held": sum(held), "held_per_server": held, "errors": errors, "failed": failed}

    async def _open(self, http: Any, spec: list[int], host: str, port: int) -> WsConn:
        loop = asyncio.get_running_loop()
        user = spec[1]
        if self.system == "cohort":
            headers = {"Authorization": f"Bearer {self.tokens[user]}"}
            async with http.post(
                f"http://{host}:{port}/api/realtime/ticket", headers=headers
            ) as resp:
                if resp.status != 200:
                    raise ConnectionError(f"ticket: HTTP {resp.status}")
                ticket = (await resp.json())["ticket"]
            path = f"/ws?ticket={ticket}"
        else:
            path = f"/socket.io/?EIO=4&transport=websocket&user={user}"
        conn = WsConn(self, spec, host, port, path)
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setblocking(False)
        try:
            if conn.frozen:
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, FROZEN_RCVBUF)
            await loop.sock_connect(sock, (host, port))
        except BaseException:
            sock.close()
            raise
        await loop.create_connection(lambda: conn, sock=sock)
        await conn.upgraded
        if self.system == "cohort":
            if self.spec["cohort_mode"] == "chat":
                channel = self.rooms[spec[2]]
            else:
                channel = f"user:{self.user_ids[user]}"
            conn.send_text(b'{"op":"subscribe","channel":"%s","ref":"s"}' % channel.encode())
        await conn.ready
        return conn

    # Publishing

    async def publish(self, t0: int) -> float:
        """Publish at the rate for warm-up + timed window; in the frozen scenario go on with
        long texts (the squeeze) until told to thaw. Returns the seconds spent publishing."""
        rate: float = self.spec["rate"]
        total_s = float(self.spec["warmup"] + self.spec["seconds"])
        timed = int(rate * total_s)
        total = timed + int(rate * self.spec.get("squeeze_limit", 0))
        self.sent_ns = array("q", bytes(8 * total))
        self.status = bytearray(total)
        self.msg_rooms = array("i", [-1]) * total
        senders = sorted(
            (c for c in self.conns if c.sender and not c.frozen), key=lambda c: (c.pos, c.room)
        )
        if total == 0 or not senders:
            await asyncio.sleep(max(0.0, (t0 - time.monotonic_ns()) / 1e9 + total_s))
            if total > timed:
                await self.thaw_now.wait()
            return (time.monotonic_ns() - t0) / 1e9
        interval = 1e9 / rate
        cohort = self.system == "cohort"
        rooms = [r.encode() for r in self.rooms]
        child = self.child
        k = 0
        lag = self.send_lag
        long_filler = (FILLER + b" ") * (SQUEEZE_TEXT // len(FILLER) + 1)
        while k < total and not (k >= timed and self.thaw_now.is_set()):
            due = t0 + int(k * interval)
            now = time.monotonic_ns()
            if now < due:
                await asyncio.sleep((due - now) / 1e9)
                continue
            while k < total and due <= now:
                conn = senders[k % len(senders)]
                if conn.alive:
                    sent = time.monotonic_ns()
                    lag.append((sent - due) / 1e6)
                    self.sent_ns[k] = sent
                    self.msg_rooms[k] = conn.room
                    self.status[k] = 3
                    head = b"fo:%d:%d:%d: " % (child, k, sent)
                    filler = FILLER if k < timed else long_filler[: SQUEEZE_TEXT - len(head)]
                    if cohort:
                        conn.send_text(
                            b'{"op":"publish","channel":"%s","data":{"text":"%s%s"},"ref":%d}'
                            % (rooms[conn.room], head, filler, k)
                        )
                    else:
                        conn.send_text(
                            b'42%d["publish",{"room":"%s","text":"%s%s"}]'
                            % (k, rooms[conn.room], head, filler)
                        )
                k += 1
                due = t0 + int(k * interval)
        return (time.monotonic_ns() - t0) / 1e9

    async def run(self, t0: int) -> None:
        self.measure_from = t0 + int(self.spec["warmup"] * 1e9)
        self.measure_until = self.measure_from + int(self.spec["seconds"] * 1e9)
        self.running = True
        frozen = [c for c in self.conns if c.frozen]
        await asyncio.sleep(max(0.0, (t0 - time.monotonic_ns()) / 1e9))
        for conn in frozen:
            assert conn.transport is not None
            conn.transport.pause_reading()
            conn.frames_after_thaw = 0
            conn.bytes_after_thaw = 0
        keepalive = asyncio.create_task(self.keep_frozen_alive(frozen))
        try:
            publish_seconds = await self.publish(t0)
        finally:
            keepalive.cancel()
        # Drain: until every publish is answered and a second passes with no delivery (what
        # has not arrived a minute after the last publish counts as lost).
        ended = time.monotonic()
        while time.monotonic() < ended + DRAIN_LIMIT:
            await asyncio.sleep(0.25)
            quiet = time.monotonic_ns() - self.last_delivery > 1e9
            if quiet and 3 not in self.status:
                break
        self.drain_s = time.monotonic() - ended
        self.running = False
        frozen_report = None
        for conn in frozen:
            frozen_report = await self.thaw(conn)
        write_json(
            Path(self.spec["results"]),
            (
                {
                    "child": self.child,
                    "latency_ms": base64.b64encode(self.latency.tobytes()).decode(),
                    "ack_ms": base64.b64encode(self.ack_latency.tobytes()).decode(),
                    "send_lag_ms": base64.b64encode(self.send_lag.tobytes()).decode(),
                    "counts": list(self.counts.items()),
                    "status": base64.b64encode(bytes(self.status)).decode(),
                    "rooms": base64.b64encode(self.msg_rooms.tobytes()).decode(),
                    "refused": self.refused,
                    "dropped": self.dropped,
                    "other_frames": self.other_frames,
                    "publish_seconds": publish_seconds,
                    "drain_s": round(self.drain_s, 2),
                    "frozen": frozen_report,
                }
            ),
        )

    async def keep_frozen_alive(self, frozen: list[WsConn]) -> None:
        """The frozen sockets still write: an unsolicited pong now and then, which both servers
        take as a sign of life, so that their heartbeats (pings the frozen client never reads)
        do not end it before what piles up for it does."""
        while frozen:
            await asyncio.sleep(FROZEN_KEEPALIVE)
            for conn in frozen:
                if self.system == "cohort":
                    conn.send_frame(0xA, b"")
                else:
                    conn.send_text(b"3")

    async def thaw(self, conn: WsConn) -> dict[str, Any]:
        """Resume reading the frozen socket: what was still on its way, and how it ended."""
        closed_before = conn.lost_at is not None
        assert conn.transport is not None
        if not closed_before:
            conn.transport.resume_reading()
        deadline = time.monotonic() + 15
        seen = -1
        while time.monotonic() < deadline and conn.lost_at is None:
            await asyncio.sleep(0.5)
            if conn.frames_after_thaw == seen:
                break  # still open and quiet: it was never cut off
            seen = conn.frames_after_thaw
        return {
            "closed": conn.lost_at is not None,
            "close_code": conn.close_code,
            "close_reason": conn.close_reason or None,
            "frames_read_after_thaw": conn.frames_after_thaw,
            "bytes_read_after_thaw": conn.bytes_after_thaw,
            "oldest_frame_age_ms": round(self.frozen_latency_max, 1),
        }


def write_json(path: Path, value: Any) -> None:
    path.write_text(json.dumps(value))


def generator_child(spec_path: str) -> int:
    raise_fd_limit()
    spec = json.loads(Path(spec_path).read_text())

    async def main_child() -> None:
        loop = asyncio.get_running_loop()
        reader = asyncio.StreamReader()
        await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
        gen = Generator(spec)
        commands: asyncio.Queue[list[str]] = asyncio.Queue()

        async def listen() -> None:
            # "thaw" may come while a run is under way; the rest waits its turn.
            while True:
                line = (await reader.readline()).decode().split()
                if line and line[0] == "thaw":
                    gen.thaw_now.set()
                    continue
                await commands.put(line)
                if not line or line[0] == "exit":
                    return

        listener = asyncio.create_task(listen())
        connected = await gen.connect_all()
        print(json.dumps({"event": "connected", **connected}), flush=True)
        while True:
            line = await commands.get()
            if not line or line[0] == "exit":
                break
            if line[0] == "start":
                await gen.run(int(line[1]))
                print(json.dumps({"event": "done"}), flush=True)
        listener.cancel()
        for conn in gen.conns:
            if conn.transport is not None:
                conn.transport.abort()

    asyncio.run(main_child())
    return 0


if __name__ == "__main__":
    if len(sys.argv) > 2 and sys.argv[1] == "--generator-child":
        sys.exit(generator_child(sys.argv[2]))
    sys.exit(main())
