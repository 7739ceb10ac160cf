"""Builds the catalog services and plugs them into a hub app."""

from __future__ import annotations

from collections.abc import AsyncIterator

from aiohttp import web

from catalog.communities import Communities
from catalog.courses import CourseManager
from catalog.covers import CourseCovers
from catalog.friends import Friends
from catalog.groups import StudyGroups
from catalog.handlers import register_routes
from catalog.learning import Learning
from catalog.purchases import CourseEntitlement, Purchases
from catalog.reviews import Reviews
from catalog.search import CourseSearch
from catalog.services import CATALOG, CatalogServices
from catalog.social_handlers import register_social_routes
from catalog.stats import CourseStatsReader
from hub.api import Api
from hub.services import Hub
from media.handlers import MediaServices
from payments.handlers import PaymentServices


def build_catalog(hub: Hub, payments: PaymentServices, media: MediaServices) -> CatalogServices:
    search = CourseSearch(hub.db)
    purchases = Purchases(
        hub.db,
        payments.ledger,
        payments.keys,
        hub.notifications,
        hub.clock,
        hub.settings.teacher_share_percent,
    )
    return CatalogServices(
        courses=CourseManager(hub.db, hub.clock),
        purchases=purchases,
        keys=payments.keys,
        reviews=Reviews(hub.db, hub.clock),
        search=search,
        learning=Learning(hub.db, hub.clock),
        stats=CourseStatsReader(hub.db),
        covers=CourseCovers(hub.db, media.videos),
        ledger=payments.ledger,
        communities=Communities(
            hub.db,
            hub.clock,
            payments.ledger,
            hub.notifications,
            hub.gateway,
            hub.settings.community_join_reward,
        ),
        groups=StudyGroups(hub.db, hub.clock, hub.notifications, hub.gateway),
        friends=Friends(hub.db, hub.clock, hub.notifications, hub.gateway),
    )


def entitlement(hub: Hub) -> CourseEntitlement:
    """Who may watch which video, for the media package (which cannot import the catalog)."""
    return CourseEntitlement(hub.db)


def install(app: web.Application, hub: Hub, api: Api, services: CatalogServices) -> None:
    app[CATALOG] = services
    app.on_shutdown.append(_stop_listing_refreshes)

    async def listings_everywhere(_app: web.Application) -> AsyncIterator[None]:
        # Writes of listing tables through any hub empty every hub's listing cache.
        async with services.search.cache.broadcast(hub.broker):
            yield

    app.cleanup_ctx.append(listings_everywhere)
    register_routes(api)
    register_social_routes(api)


async def _stop_listing_refreshes(app: web.Application) -> None:
    await app[CATALOG].search.cache.close()
