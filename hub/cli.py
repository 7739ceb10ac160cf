"""The ``cohort`` command line."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import signal
import sys
from collections.abc import Sequence

import uvloop
from aiohttp import web

from catalog.demo import seed_demo_course
from catalog.demo_community import seed_demo_community
from hub.app import create_app
from hub.clock import SystemClock
from hub.db import Database
from hub.demo import seed_demo_accounts
from hub.errors import CohortError, ValidationFailed
from hub.logs import configure_logging
from hub.migrate import upgrade
from hub.services import HUB, build_hub
from hub.settings import Settings, SettingsError, load_settings
from media import wiring as media_wiring
from payments.ledger import Ledger
from rooms.demo import seed_demo_chat

log = logging.getLogger("hub.cli")


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="cohort", description="Cohort: learn together.")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    serve = commands.add_parser("serve", help="run a hub process")
    serve.add_argument("--host", help="address to bind (default COHORT_HOST or 127.0.0.1)")
    serve.add_argument("--port", type=int, help="port to bind (default COHORT_PORT or 8080)")
    serve.add_argument("--migrate", action="store_true", help="apply migrations first")
    serve.add_argument(
        "--demo",
        action="store_true",
        help="create the demo accounts, course, community, study group and project",
    )

    commands.add_parser("migrate", help="apply database migrations")

    worker = commands.add_parser("worker", help="run transcode workers (needs COHORT_REDIS_URL)")
    worker.add_argument(
        "--concurrency", type=int, help="jobs at once (default COHORT_WORKER_CONCURRENCY)"
    )

    ledger = commands.add_parser("ledger", help="coin ledger tools")
    ledger_commands = ledger.add_subparsers(dest="ledger_command", required=True, metavar="ACTION")
    ledger_commands.add_parser(
        "verify", help="check every ledger invariant; exit 1 naming what is wrong"
    )

    admin = commands.add_parser("admin", help="administer accounts")
    admin_commands = admin.add_subparsers(dest="admin_command", required=True, metavar="ACTION")
    create = admin_commands.add_parser("create", help="create an admin (or promote an account)")
    create.add_argument("--email", required=True)
    create.add_argument("--password", required=True)
    create.add_argument("--display-name", default="Administrator")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    overrides: dict[str, object] = {}
    if getattr(args, "host", None):
        overrides["host"] = args.host
    if getattr(args, "port", None):
        overrides["port"] = args.port
    try:
        settings = load_settings(**overrides)
    except SettingsError as exc:
        print(f"cohort: {exc}", file=sys.stderr)
        return 2
    configure_logging(settings.log_level, settings.log_format)
    try:
        if args.command == "serve":
            return _serve(settings, migrate=args.migrate, demo=args.demo)
        if args.command == "migrate":
            asyncio.run(_migrate(settings))
            print(f"cohort: database at head ({_safe_url(settings)})")
            return 0
        if args.command == "worker":
            return asyncio.run(_worker(settings, args.concurrency))
        if args.command == "ledger":
            return asyncio.run(_ledger_verify(settings))
        if args.command == "admin":
            return asyncio.run(
                _admin_create(settings, args.email, args.password, args.display_name)
            )
    except CohortError as exc:
        print(f"cohort: {exc.detail}", file=sys.stderr)
        return 1
    except OSError as exc:
        print(f"cohort: {exc}", file=sys.stderr)
        return 1
    return 2


def _safe_url(settings: Settings) -> str:
    from sqlalchemy.engine import make_url

    return make_url(settings.db_url).render_as_string(hide_password=True)


async def _migrate(settings: Settings) -> None:
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    db = Database(settings.db_url)
    try:
        await upgrade(db)
    finally:
        await db.dispose()


async def _admin_create(settings: Settings, email: str, password: str, display_name: str) -> int:
    hub = build_hub(settings)
    try:
        user = await hub.identity.ensure_account(
            email, password, display_name, admin=True, teacher=False
        )
    except ValidationFailed as exc:
        print(f"cohort: {exc.detail}", file=sys.stderr)
        return 1
    finally:
        await hub.db.dispose()
    print(f"cohort: {user.email} is an admin (user id {user.id})")
    return 0


async def _worker(settings: Settings, concurrency: int | None) -> int:
    if not settings.redis_url:
        print(
            "cohort: `cohort worker` needs COHORT_REDIS_URL (a BullMQ queue shared with the hubs); "
            "without Redis, `cohort serve` transcodes in-process.",
            file=sys.stderr,
        )
        return 2
    hub = build_hub(settings)
    services = media_wiring.build_media(hub)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    await hub.broker.start()
    jobs_at_once = concurrency or settings.worker_concurrency
    listener = await media_wiring.start_worker(services, jobs_at_once)
    print(f"cohort: transcode worker running (concurrency {jobs_at_once})", flush=True)
    try:
        await stop.wait()
    finally:
        await media_wiring.stop_worker(services, listener)
        await hub.broker.close()
        if hub.redis is not None:
            await hub.redis.aclose()
        await hub.db.dispose()
    return 0


async def _ledger_verify(settings: Settings) -> int:
    db = Database(settings.db_url)
    try:
        problems = await Ledger(db, SystemClock()).verify()
    finally:
        await db.dispose()
    if problems:
        for problem in problems:
            print(f"cohort: ledger: {problem}", file=sys.stderr)
        return 1
    print(
        "cohort: ledger verified: every transfer balances, every balance matches its entries, "
        "no wallet is negative"
    )
    return 0


def _serve(settings: Settings, *, migrate: bool, demo: bool) -> int:
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    if migrate:
        # Before the app exists: its background work (resuming transcodes) reads the tables.
        asyncio.run(_migrate(settings))
    app = create_app(settings)
    if demo:

        async def seed(app: web.Application) -> None:
            accounts = await seed_demo_accounts(app[HUB].identity)
            lines = [f"  {a.role:<17} {a.email:<22} password: {a.password}" for a in accounts]
            print("Demo accounts:\n" + "\n".join(lines), flush=True)
            teacher = next(a for a in accounts if a.role == "verified teacher")
            student = next(a for a in accounts if a.role == "student")
            course_id, publishing = await seed_demo_course(app, teacher.email)
            if publishing is not None:
                background.append(publishing)
            print(
                f"Demo course: {settings.base_url}/courses/{course_id} "
                "(published as soon as its videos are transcoded)",
                flush=True,
            )
            social = await seed_demo_community(app, teacher.email, student.email)
            await seed_demo_chat(app, social.community_id, teacher.email, student.email)
            print(
                f"Demo community: {settings.base_url}/communities/{social.slug}\n"
                f"Demo study group: {settings.base_url}/groups/{social.group_id}\n"
                f"Demo project: {settings.base_url}/projects/{social.project_id}",
                flush=True,
            )

        background: list[asyncio.Task[None]] = []

        async def stop_background(app: web.Application) -> None:
            for task in background:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task

        app.on_shutdown.append(stop_background)
        app.on_startup.append(seed)

    print(f"Cohort is starting on {settings.base_url}", flush=True)
    # uvloop: the event loop and its sockets in C. Measured on bench/catalog.py (cache off,
    # 16 clients): 818 requests/s against 653 with asyncio's own loop, 0.49 ms of hub CPU
    # per request against 0.60.
    web.run_app(
        app,
        host=settings.host,
        port=settings.port,
        print=None,
        access_log=None,
        loop=uvloop.new_event_loop(),
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
