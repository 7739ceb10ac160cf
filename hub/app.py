"""The composition root: ``create_app(settings)`` builds every service once and mounts every
package's routes."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from importlib.metadata import PackageNotFoundError, version

from aiohttp import web

from catalog import wiring as catalog_wiring
from hub import system
from hub.api import AUTHENTICATOR, MAX_JSON_BYTES, Api
from hub.clock import Clock
from hub.identity import handlers as identity_handlers
from hub.identity.passwords import PasswordHashing
from hub.middleware import HTTP_METRICS, problem_errors, request_context
from hub.notifications import handlers as notification_handlers
from hub.realtime import handlers as realtime_handlers
from hub.services import HUB, Hub, build_hub
from hub.settings import Settings
from ide import wiring as ide_wiring
from media import wiring as media_wiring
from payments import wiring as payments_wiring
from rooms import wiring as rooms_wiring

log = logging.getLogger(__name__)


def cohort_version() -> str:
    try:
        return version("cohort")
    except PackageNotFoundError:
        return "0.0.0"


def build_api() -> Api:
    """The hub's own REST operations; feature packages add theirs in ``create_app``."""
    api = Api()
    system.register_routes(api)
    identity_handlers.register_routes(api)
    realtime_handlers.register_routes(api)
    notification_handlers.register_routes(api)
    return api


def create_app(
    settings: Settings, *, clock: Clock | None = None, hashing: PasswordHashing | None = None
) -> web.Application:
    hub = build_hub(settings, clock=clock, hashing=hashing)
    app = web.Application(
        middlewares=[request_context, problem_errors], client_max_size=settings.max_json_bytes
    )
    app[HUB] = hub
    app[HTTP_METRICS] = hub.metrics
    app[AUTHENTICATOR] = hub.identity.authenticate
    app[MAX_JSON_BYTES] = settings.max_json_bytes
    # First in, last out: the broker and database outlive every feature's background work.
    app.cleanup_ctx.append(_lifecycle)
    api = build_api()
    # The composition root is the one place that reaches up into the feature packages.
    payments = payments_wiring.build_payments(hub)
    payments_wiring.install(app, hub, api, payments)
    media = media_wiring.build_media(hub, entitlement=catalog_wiring.entitlement(hub))
    media_wiring.install(app, hub, api, media)
    catalog = catalog_wiring.build_catalog(hub, payments, media)
    catalog_wiring.install(app, hub, api, catalog)
    ide_wiring.install(app, hub, api, ide_wiring.build_ide(hub, groups=catalog.groups))
    rooms_wiring.install(app, hub, api, rooms_wiring.build_rooms(hub))
    api.mount(app)
    app.router.add_get("/ws", hub.gateway.open)
    app.on_shutdown.append(_close_sockets)
    app[system.OPENAPI] = system.openapi_bytes(api, cohort_version())
    system.add_web_routes(app, settings.web_dist)
    return app


async def _close_sockets(app: web.Application) -> None:
    # aiohttp waits for open handlers before cleanup; WebSockets must be told to leave first.
    await app[HUB].gateway.shutdown()


async def _lifecycle(app: web.Application) -> AsyncIterator[None]:
    hub: Hub = app[HUB]
    await hub.broker.start()
    await hub.gateway.start()
    log.info(
        "hub started",
        extra={
            "database": hub.db.engine.url.render_as_string(hide_password=True),
            "broker": type(hub.broker).__name__,
        },
    )
    try:
        async with hub.notifications.delivering():
            yield
    finally:
        await hub.gateway.close()
        await hub.broker.close()
        if hub.fast_redis is not None:
            await hub.fast_redis.close()
        if hub.redis is not None:
            await hub.redis.aclose()
        await hub.db.dispose()
