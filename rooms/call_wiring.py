"""Plugs watch-party calls into a hub app: the ``call`` channel family, the SFU, leave hooks."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator

from aiohttp import web

from hub.errors import Forbidden
from hub.identity.models import User
from hub.services import Hub
from rooms.call import CallRoster, Calls, MemoryRoster, RedisRoster, Sfu, parse_call_channel
from rooms.call_policy import CallPolicy
from rooms.janus import Janus
from rooms.watch import WatchParties, watch_channel

CALLS = web.AppKey("calls", Calls)
CALL_LEAVING = web.AppKey("call_leaving", set[asyncio.Task[None]])


def install_calls(app: web.Application, hub: Hub, parties: WatchParties) -> Calls:
    settings = hub.settings

    async def may_join(user: User, party_id: int) -> None:
        # The party's own rule: members entitled to its lesson, while it is live.
        if not await parties.may_subscribe(user, watch_channel(party_id)):
            raise Forbidden("Only the party's members may be in its call.")

    roster: CallRoster = (
        RedisRoster(hub.redis, settings.redis_prefix) if hub.redis is not None else MemoryRoster()
    )
    sfu: Sfu | None = None
    if settings.janus_url:
        sfu = Janus(
            settings.janus_url,
            public_url=settings.janus_public_url,
            admin_key=settings.janus_admin_secret,
            api_secret=settings.janus_api_secret,
        )
    calls = Calls(hub.gateway, roster, may_join, hub.clock, sfu, mesh_max=settings.call_mesh_max)
    app[CALLS] = calls
    hub.gateway.register("call", CallPolicy(calls))

    leaving: set[asyncio.Task[None]] = set()

    async def on_leave(user: User, channel: str) -> None:
        parsed = parse_call_channel(channel)
        if parsed is None or parsed[1] is None:
            return
        # The peer's inbox is gone (tab closed, socket dropped): it left the call. The handler
        # may be cancelled with its socket, so the roster is settled in a task of its own.
        task = asyncio.create_task(calls.leave(parsed[0], parsed[1]), name="call-leave")
        leaving.add(task)
        task.add_done_callback(leaving.discard)

    async def on_end(party_id: int) -> None:
        await calls.end(party_id, "The watch party has ended.")

    app[CALL_LEAVING] = leaving
    hub.gateway.hooks_on_leave.append(on_leave)
    # An ended party ends its call; each sweep drops peers a dead hub left in the roster.
    parties.hooks_on_end.append(on_end)
    parties.hooks_on_sweep.append(calls.prune)
    app.cleanup_ctx.append(_settle_leaving)
    return calls


async def _settle_leaving(app: web.Application) -> AsyncIterator[None]:
    yield
    leaving: set[asyncio.Task[None]] = app[CALL_LEAVING]
    for task in list(leaving):
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
