"""Builds the catalog services and plugs them into a hub app."""

from __future__ import annotations

from aiohttp import web

from catalog.courses import CourseManager
from catalog.handlers import CATALOG, CatalogServices, register_routes
from catalog.purchases import CourseEntitlement, Purchases
from catalog.reviews import Reviews
from hub.api import Api
from hub.services import Hub
from payments.handlers import PaymentServices


def build_catalog(hub: Hub, payments: PaymentServices) -> CatalogServices:
    purchases = Purchases(hub.db, payments.ledger, hub.clock, hub.settings.teacher_share_percent)
    return CatalogServices(
        CourseManager(hub.db, hub.clock), purchases, payments.keys, Reviews(hub.db, hub.clock)
    )


def entitlement(hub: Hub) -> CourseEntitlement:
    """Who may watch which video, for the media package (which cannot import the catalog)."""
    return CourseEntitlement(hub.db)


def install(app: web.Application, hub: Hub, api: Api, services: CatalogServices) -> None:
    app[CATALOG] = services
    register_routes(api)
