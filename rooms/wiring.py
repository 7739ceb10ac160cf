"""Builds the chat services and plugs them into a hub app and its gateway."""

from __future__ import annotations

from collections.abc import AsyncIterator

from aiohttp import web

from hub.api import Api
from hub.services import Hub
from rooms.access import ChannelAccess
from rooms.call_wiring import install_calls
from rooms.chat import Chat
from rooms.handlers import register_routes
from rooms.history import ChatHistory
from rooms.policy import ChatPolicy
from rooms.services import ROOMS, RoomsServices
from rooms.watch_wiring import install_watch_parties

CHANNEL_PREFIXES = ("chat", "dm")


def build_rooms(hub: Hub) -> RoomsServices:
    access = ChannelAccess()
    return RoomsServices(
        chat=Chat(hub.db, hub.gateway, hub.notifications, hub.limiter, hub.clock, access),
        history=ChatHistory(hub.db, hub.clock, access),
    )


def install(app: web.Application, hub: Hub, api: Api, services: RoomsServices) -> None:
    app[ROOMS] = services
    app.cleanup_ctx.append(_lifecycle)
    policy = ChatPolicy(services.chat)
    for prefix in CHANNEL_PREFIXES:
        hub.gateway.register(prefix, policy)
    register_routes(api)
    parties = install_watch_parties(app, hub, api)
    install_calls(app, hub, parties)


async def _lifecycle(app: web.Application) -> AsyncIterator[None]:
    # Cleaned up before the hub's own services (cleanup runs in reverse), which chat still uses.
    yield
    await app[ROOMS].chat.close()
