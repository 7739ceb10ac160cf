"""Plugs watch parties into a hub app: routes, the ``watch`` channel family, the idle sweep."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator

from aiohttp import web

from hub.api import Api
from hub.identity.models import User
from hub.services import Hub
from rooms.watch import WatchParties
from rooms.watch_handlers import WATCH, register_watch_routes
from rooms.watch_policy import WatchPolicy

log = logging.getLogger(__name__)

# The sweep settles parties whose members vanished with a hub and ends idle ones.
MAX_SWEEP_EVERY = 15.0
LEAVING = web.AppKey("watch_party_leaving", set[asyncio.Task[None]])


def install_watch_parties(app: web.Application, hub: Hub, api: Api) -> WatchParties:
    parties = WatchParties(
        hub.db,
        hub.gateway,
        hub.limiter,
        hub.clock,
        hub.notifications,
        idle_end=hub.settings.watch_party_idle_end,
    )
    app[WATCH] = parties
    hub.gateway.register("watch", WatchPolicy(parties))

    leaving: set[asyncio.Task[None]] = set()

    async def on_leave(user: User, channel: str) -> None:
        # A socket that drops takes its handler down with it (cancelled): settle the room in
        # a task of its own, held until done.
        if channel.startswith("watch:"):
            task = asyncio.create_task(parties.left(user, channel), name="watch-party-leave")
            leaving.add(task)
            task.add_done_callback(leaving.discard)

    app[LEAVING] = leaving

    hub.gateway.hooks_on_leave.append(on_leave)
    register_watch_routes(api)
    app.cleanup_ctx.append(_sweeping)
    return parties


async def _sweeping(app: web.Application) -> AsyncIterator[None]:
    parties = app[WATCH]
    every = min(MAX_SWEEP_EVERY, parties.idle_end / 4)

    async def loop() -> None:
        while True:
            await asyncio.sleep(every)
            try:
                await parties.sweep()
            except Exception:
                log.exception("watch party sweep failed")

    task = asyncio.create_task(loop(), name="watch-party-sweep")
    try:
        yield
    finally:
        tasks = [task, *app[LEAVING]]
        for pending in tasks:
            pending.cancel()
        for pending in tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await pending
