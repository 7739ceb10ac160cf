"""Benchmark: buying courses with coins (``POST /api/courses/{id}/purchase``) on one hub process.

Usage: ``.venv/bin/python bench/purchases.py [--seconds 30] [--clients 32] [--warmup 5]
[--students 256] [--teachers 8] [--courses 600] [--peer-seconds 20] [--idle-wait 60]
[--code DIR] [--profile]``

A fresh PostgreSQL database is created (and dropped at the end), migrated with ``cohort
migrate``, and served by a real ``cohort serve`` process on a free port (in-process broker,
default log level: the shipped configuration). Seeding:

* students and teachers through the package services, in this process (``IdentityManager.
  register`` / ``ensure_account`` / ``login``, which also runs the wallet's signup-grant hook):
  the hub's argon2 parameters cost about 0.5 s of CPU per hash here, so hundreds of logins over
  HTTP would take minutes. This process uses cheap argon2 parameters for those accounts only;
  the access tokens it gets are ordinary ones, signed with the key the hub uses;
* every wallet gets its coins as the signup grant (``COHORT_SIGNUP_GRANT_COINS``, set so that
  no student runs short: every answer should be 201);
* courses through the real HTTP API, by their teachers: create, a section, a text lesson,
  publish.

Then ``--clients`` concurrent clients in this process (aiohttp, one keep-alive connection
each) buy courses, every purchase a fresh (student, course) pair with its own
``Idempotency-Key``: ``--warmup`` seconds untimed, then ``--seconds`` timed. Afterwards a few
keys are replayed (same answer, no money moves), ``cohort ledger verify`` runs against the
database and the number of enrollments is checked against the 201s.

Then, with the hub stopped, the peer: the same statements the hub sends for a purchase, from
asyncpg in this process (no HTTP, no ORM; the session reads and the sales batched as the hub
batches them, by the hub's own code), on further fresh pairs for ``--peer-seconds``: what
PostgreSQL and the ledger's row locks allow on this machine. ``cohort ledger verify`` runs
last.

The machine's cores are shared by the hub, PostgreSQL and this client: the JSON reports the
CPU seconds of each over the timed window, and how busy the rest of the machine was.
``--code DIR`` runs the hub from another source tree (same dependencies), for before/after
comparisons under the same conditions; ``--profile`` samples the hub with py-spy.

stdout gets exactly one JSON line; progress and diagnostics go to stderr.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import json
import os
import random
import signal
import sys
import time
import uuid
from dataclasses import dataclass
from typing import Any

import aiohttp
import asyncpg
import hubbench
from argon2 import PasswordHasher
from hubbench import BenchError, HubEnv, note

MAX_PRICE = 60
TEACHER_SHARE_PERCENT = 70  # the hub's default (COHORT_TEACHER_SHARE_PERCENT)
PASSWORD = "bench-password-2026"
TOPICS = (
    "Python",
    "Statistics",
    "Linear Algebra",
    "Watercolor",
    "Guitar",
    "Spanish",
    "Web Design",
    "SQL",
    "Photography",
    "Calculus",
    "Rust",
    "Public Speaking",
)


@dataclass(frozen=True, slots=True)
class Account:
    user_id: int
    token: str


async def seed_accounts(env: HubEnv, teachers: int, students: int) -> tuple[list[Account], ...]:
    """Teachers (verified) and students (with their signup grant), logged in, through the
    package services."""
    from hub.app import create_app
    from hub.identity.passwords import PasswordHashing
    from hub.services import HUB
    from hub.settings import load_settings

    cheap = PasswordHashing(PasswordHasher(time_cost=1, memory_cost=1024, parallelism=1))
    app = create_app(load_settings(**env.settings_overrides()), hashing=cheap)
    identity = app[HUB].identity
    gate = asyncio.Semaphore(8)

    async def make(index: int, teacher: bool) -> Account:
        role = "teacher" if teacher else "student"
        email = f"{role}{index}@bench.example"
        async with gate:
            if teacher:
                user = await identity.ensure_account(
                    email, PASSWORD, f"Teacher {index}", admin=False, teacher=True
                )
            else:
                user = await identity.register(email, PASSWORD, f"Student {index}")
            grant = await identity.login(email, PASSWORD, user_agent="cohort-bench", ip="127.0.0.1")
        return Account(user.id, grant.access_token)

    try:
        teacher_accounts = [await make(i, True) for i in range(teachers)]
        student_accounts = await asyncio.gather(*(make(i, False) for i in range(students)))
    finally:
        await app[HUB].db.dispose()
    return teacher_accounts, list(student_accounts)


async def seed_courses(
    session: aiohttp.ClientSession, base: str, teachers: list[Account], count: int
) -> list[int]:
    """Published courses, created through the HTTP API by their teachers."""
    rng = random.Random(7)
    gate = asyncio.Semaphore(8)

    async def call(method: str, path: str, token: str, body: dict[str, Any] | None) -> Any:
        async with session.request(
            method, base + path, json=body, headers={"Authorization": f"Bearer {token}"}
        ) as resp:
            data = await resp.json()
            if resp.status >= 300:
                raise BenchError(f"{method} {path}: {resp.status} {data}")
            return data

    async def course(index: int) -> int:
        teacher = teachers[index % len(teachers)]
        topic = TOPICS[index % len(TOPICS)]
        async with gate:
            created = await call(
                "POST",
                "/api/courses",
                teacher.token,
                {
                    "title": f"{topic} in practice, part {index}",
                    "subtitle": f"Hands-on {topic.lower()} for busy people",
                    "description": f"Lessons and exercises on {topic}. " * 5,
                    "tags": [topic.lower(), "bench"],
                    "level": rng.choice(["beginner", "intermediate", "advanced"]),
                    "price": rng.randint(1, MAX_PRICE),
                },
            )
            course_id = int(created["id"])
            section = await call(
                "POST", f"/api/courses/{course_id}/sections", teacher.token, {"title": "Start"}
            )
            await call(
                "POST",
                f"/api/sections/{section['id']}/lessons",
                teacher.token,
                {"title": "Welcome", "kind": "text", "body": f"# {topic}\n\nWelcome."},
            )
            await call("POST", f"/api/courses/{course_id}/publish", teacher.token, None)
        return course_id

    return list(await asyncio.gather(*(course(i) for i in range(count))))


class PurchasePlan:
    """Hands each client its next fresh (student, course) pair. Client ``k`` owns students
    ``k, k + clients, …`` and walks every course for each of them, students interleaved, each
    starting at a different course so that courses are bought evenly."""

    def __init__(self, students: list[Account], courses: list[int], clients: int) -> None:
        self.students = students
        self.courses = courses
        self.owned = [students[k::clients] for k in range(clients)]
        self.step = [0] * clients
        self.keys: list[tuple[Account, int, str, bytes]] = []

    def next_pair(self, client: int) -> tuple[Account, int] | None:
        mine = self.owned[client]
        if not mine:
            return None
        n = self.step[client]
        student_index, round_ = n % len(mine), n // len(mine)
        if round_ >= len(self.courses):
            return None
        self.step[client] = n + 1
        student = mine[student_index]
        return student, self.courses[(student.user_id * 7919 + round_) % len(self.courses)]

    def next_call(self, client: int) -> hubbench.Call | None:
        pair = self.next_pair(client)
        if pair is None:
            return None
        student, course = pair
        key = uuid.uuid4().hex
        headers = {"Authorization": f"Bearer {student.token}", "Idempotency-Key": key}
        url = f"/api/courses/{course}/purchase"

        async def call(session: aiohttp.ClientSession) -> int:
            async with session.post(url, headers=headers) as resp:
                body = await resp.read()
            if resp.status == 201 and len(self.keys) < 16:
                self.keys.append((student, course, key, body))
            return resp.status

        return call


# The peer: the hub's own SQL for one purchase, sent by asyncpg straight from this process (no
# HTTP, no SQLAlchemy): what the database and the ledger's locking allow on this machine. The
# session read and the sale go through the hub's own batches (hub.identity.principals: the
# reads asked for while others run go together in one statement; catalog.purchases: likewise
# the sales), imported from this tree.


def session_of(token: str) -> str:
    """The session id (``sid``) an access token names."""
    payload = token.split(".")[1]
    return str(json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))["sid"])


async def peer(
    url: str, plan: PurchasePlan, clients: int, seconds: float, share_percent: int
) -> dict[str, Any]:
    """The same purchases as SQL from asyncpg, ``clients`` workers, for ``seconds``."""
    samples = hubbench.Samples()
    # This process in the hub's place: `hub_s` and `client_s` are both this client.
    meter = hubbench.CpuMeter(os.getpid())
    meter.start()
    started = time.perf_counter()
    end = started + seconds

    from datetime import UTC, datetime

    from catalog.purchases import _Order, _SaleBatches
    from hub.db import Database
    from hub.identity.principals import PrincipalReads
    from payments.idempotency import KeyUse

    # The hub's own batches of session reads and of sales, on a Database of this process.
    db = Database(url)
    principals = PrincipalReads(db)
    sales = _SaleBatches(db, share_percent)

    async def buy(student: Account, course_id: int) -> str:
        row = await principals.read(student.user_id, session_of(student.token))
        if row is None or row["session_revoked_at"] is not None:
            return "401"
        key = KeyUse(student.user_id, uuid.uuid4().hex, "peer")
        sale = await sales.sell(_Order(student.user_id, course_id, key, datetime.now(UTC)))
        if sale["body"] is None:
            raise BenchError(f"the peer's sale wrote nothing: {dict(sale)}")
        return "201"

    async def worker(index: int) -> None:
        while time.perf_counter() < end:
            pair = plan.next_pair(index)
            if pair is None:
                samples.exhausted += 1
                return
            t0 = time.perf_counter()
            status = await buy(*pair)
            samples.add(time.perf_counter() - t0, status)

    try:
        await asyncio.gather(*(worker(i) for i in range(clients)))
        cpu = meter.stop()
    finally:
        await db.dispose()
    window = time.perf_counter() - started
    result = hubbench.summarize(samples, window)
    result["client_cpu_s"] = cpu["client_s"]
    result["postgres_cpu_s"] = cpu["postgres_s"]
    result["postgres_cpu_per_request_ms"] = per_request_ms(cpu["postgres_s"], samples)
    result["machine_busy_pct"] = cpu["machine_busy_pct"]
    return result


def per_request_ms(seconds: float, samples: hubbench.Samples) -> float:
    return round(1000 * seconds / max(len(samples.latencies), 1), 3)


async def replay_keys(
    session: aiohttp.ClientSession, keys: list[tuple[Account, int, str, bytes]]
) -> dict[str, Any]:
    """The same key again: the first answer, byte for byte, and no money moves."""
    same = 0
    for student, course, key, body in keys:
        headers = {"Authorization": f"Bearer {student.token}", "Idempotency-Key": key}
        async with session.post(f"/api/courses/{course}/purchase", headers=headers) as resp:
            if resp.status == 201 and await resp.read() == body:
                same += 1
    return {"replayed": len(keys), "same_answer": same}


async def database_counts(url: str) -> dict[str, int]:
    dsn = "postgresql://" + url.split("://", 1)[1]
    conn = await asyncpg.connect(dsn)
    try:
        return {
            "enrollments": int(await conn.fetchval("SELECT count(*) FROM enrollments")),
            "purchase_transfers": int(
                await conn.fetchval("SELECT count(*) FROM ledger_transfers WHERE kind='purchase'")
            ),
            "idempotency_records": int(
                await conn.fetchval("SELECT count(*) FROM idempotency_records")
            ),
            # Updates that had to write index entries too (not HOT) are far dearer.
            "updates_hot_of_all": {
                row["relname"]: [row["n_tup_hot_upd"], row["n_tup_upd"]]
                for row in await conn.fetch(
                    "SELECT relname, n_tup_hot_upd, n_tup_upd FROM pg_stat_user_tables "
                    "WHERE relname IN ('ledger_accounts', 'courses')"
                )
            },
        }
    finally:
        await conn.close()


async def run(args: argparse.Namespace) -> dict[str, Any]:
    report: dict[str, Any] = {
        "bench": "purchases",
        "machine": hubbench.machine(),
        "postgres": await hubbench.postgres_info(),
        "cohort": hubbench.cohort_revision(),
        "config": {
            "seconds": args.seconds,
            "warmup_s": args.warmup,
            "clients": args.clients,
            "students": args.students,
            "teachers": args.teachers,
            "courses": args.courses,
            "hub_processes": 1,
            "broker": "in-process",
            "hub_log_level": args.hub_log_level,
            "hub_code": args.code or "this working tree",
        },
    }
    async with hubbench.bench_database() as url:
        with hubbench.data_dir() as data:
            env = HubEnv(
                url,
                data,
                extra={
                    "COHORT_SIGNUP_GRANT_COINS": str(args.courses * MAX_PRICE),
                    "COHORT_ACCESS_TOKEN_TTL": "3600",
                    "COHORT_TEACHER_SHARE_PERCENT": str(TEACHER_SHARE_PERCENT),
                    "COHORT_LOG_LEVEL": args.hub_log_level,
                },
            )
            done = hubbench.cohort(env, "migrate", code=hubbench.hub_code(args.code))
            if done.returncode != 0:
                raise BenchError(f"cohort migrate failed:\n{done.stderr[-2000:]}")
            started = time.monotonic()
            note(f"seeding {args.teachers} teachers and {args.students} students (services) ...")
            teachers, students = await seed_accounts(env, args.teachers, args.students)
            accounts_s = time.monotonic() - started
            async with hubbench.running_hub(env, hubbench.hub_code(args.code)) as hub:
                connector = hubbench.connector(max(args.clients, 8))
                async with aiohttp.ClientSession(
                    base_url=hub.base_url, connector=connector
                ) as session:
                    note(f"seeding {args.courses} published courses (HTTP API) ...")
                    started = time.monotonic()
                    courses = await seed_courses(session, "", teachers, args.courses)
                    courses_s = time.monotonic() - started
                    report["seed"] = {
                        "accounts": "package services in the bench process "
                        "(IdentityManager.ensure_account/register/login; signup grant hook)",
                        "accounts_s": round(accounts_s, 1),
                        "courses": "HTTP API (create, section, text lesson, publish)",
                        "courses_s": round(courses_s, 1),
                        "coins_per_student": args.courses * MAX_PRICE,
                    }
                    plan = PurchasePlan(students, courses, args.clients)
                    note(f"warm-up {args.warmup} s ...")
                    warm, _ = await hubbench.closed_loop(
                        session, args.clients, args.warmup, plan.next_call
                    )
                    background = await hubbench.wait_for_quiet(args.idle_wait, [hub.pid])
                    loadavg_before = [round(v, 2) for v in os.getloadavg()]
                    meter = hubbench.CpuMeter(hub.pid)
                    profiler = None
                    if args.profile:
                        profiler = hubbench.Profiler(
                            hub.pid, args.seconds, hubbench.CACHE_DIR / "purchases.pyspy.txt"
                        )
                        profiler.start()
                    note(f"timed {args.seconds} s with {args.clients} clients ...")
                    meter.start()
                    samples, window = await hubbench.closed_loop(
                        session, args.clients, args.seconds, plan.next_call
                    )
                    cpu = meter.stop()
                    if profiler is not None:
                        profiler.finish()
                    replays = await replay_keys(session, plan.keys)
                hub_errors = hub.error_lines()
            counts = await database_counts(url)
            peer_result = None
            if args.peer_seconds > 0:
                peer_background = await hubbench.wait_for_quiet(args.idle_wait, [])
                note(f"peer: the same SQL from asyncpg, {args.peer_seconds} s ...")
                peer_result = await peer(
                    url, plan, args.clients, args.peer_seconds, TEACHER_SHARE_PERCENT
                )
                peer_result["background_cores_before"] = peer_background
            verify = hubbench.cohort(env, "ledger", "verify", code=hubbench.hub_code(args.code))
    created = warm.statuses.get("201", 0) + samples.statuses.get("201", 0)
    report["results"] = {
        "purchases": hubbench.summarize(samples, window),
        "warmup_statuses": dict(warm.statuses),
        "cpu": cpu,
        "background_cores_before": background,
        "loadavg_before": loadavg_before,
        "client_cpu_per_request_ms": per_request_ms(cpu["client_s"], samples),
        "hub_cpu_per_request_ms": per_request_ms(cpu["hub_s"], samples),
        "postgres_cpu_per_request_ms": per_request_ms(cpu["postgres_s"], samples),
        "idempotency_replays": replays,
        "database": {**counts, "created_201_total": created, "counted": "before the peer"},
        "enrollments_match_201s": counts["enrollments"] == created,
        "hub_error_log_lines": hub_errors,
    }
    if peer_result is not None:
        report["peer_asyncpg_same_sql"] = peer_result
    report["ledger_verify"] = {
        "exit_code": verify.returncode,
        "clean": verify.returncode == 0,
        "output": (verify.stdout + verify.stderr).strip()[-500:],
    }
    report["profiled"] = bool(args.profile)
    report["target"] = {"purchases_per_second": 1000}
    report["notes"] = [
        "one machine: the hub, PostgreSQL and this client process share its cores "
        "(results.cpu: CPU seconds of each over the timed window)",
        "latency: from sending the request to reading the whole answer, in the client",
        "every purchase is a fresh (student, course) pair with its own Idempotency-Key; "
        "coins suffice, so every answer should be 201",
        "peer_asyncpg_same_sql: the statements the hub sends for a purchase (the session read "
        "and the sale, each in the hub's batches: one statement per batch of session reads, "
        "one per batch of sales that also keeps the keys' answers and queues the teachers' "
        "notifications), from asyncpg in this process with no HTTP "
        "and no ORM, after the hub "
        "has stopped; the hub's other work per sale (delivering the teacher's notification "
        "from the outbox) is not in it. It bounds what the database and the ledger's row "
        "locks allow here; ledger_verify runs after both",
    ]
    if args.profile:
        report["notes"].append("profiled run: py-spy sampling slows the hub; not a figure")
    report["machine"]["loadavg_at_end"] = [round(v, 2) for v in os.getloadavg()]
    return report


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--seconds", type=float, default=30, help="timed phase (default 30)")
    parser.add_argument("--warmup", type=float, default=5, help="untimed warm-up (default 5)")
    parser.add_argument("--clients", type=int, default=32, help="concurrent clients (32)")
    parser.add_argument("--students", type=int, default=256, help="students (default 256)")
    parser.add_argument("--teachers", type=int, default=8, help="teachers (default 8)")
    parser.add_argument("--courses", type=int, default=600, help="courses (default 600)")
    parser.add_argument(
        "--peer-seconds",
        type=float,
        default=20,
        help="run the asyncpg peer this long after the hub (0: skip; default 20)",
    )
    parser.add_argument(
        "--idle-wait",
        type=float,
        default=60,
        help="before the timed phase, wait up to N s for other load to stop (default 60)",
    )
    parser.add_argument(
        "--code",
        help="run the hub from this source tree (same dependencies), e.g. a copy of an older "
        "revision, for before/after comparisons",
    )
    parser.add_argument(
        "--hub-log-level", default="INFO", choices=["DEBUG", "INFO", "WARNING", "ERROR"]
    )
    parser.add_argument(
        "--profile", action="store_true", help="sample the hub with py-spy during the timed run"
    )
    args = parser.parse_args(argv)
    if args.clients < 1 or args.students < args.clients or args.seconds <= 0:
        parser.error("need --clients >= 1, --students >= --clients and --seconds > 0")
    signal.signal(signal.SIGTERM, lambda _signum, _frame: sys.exit(143))
    try:
        report = asyncio.run(run(args))
    except BenchError as exc:
        note(f"FAILED: {exc}")
        return 1
    print(json.dumps(report), flush=True)
    return 0 if report["ledger_verify"]["clean"] else 1


if __name__ == "__main__":
    sys.exit(main())
