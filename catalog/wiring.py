"""Builds the catalog services and plugs them into a hub app."""

from __future__ import annotations

from aiohttp import web

from catalog.courses import CourseManager
from catalog.handlers import CATALOG, CatalogServices, register_routes
from hub.api import Api
from hub.services import Hub


def build_catalog(hub: Hub) -> CatalogServices:
    return CatalogServices(CourseManager(hub.db, hub.clock))


def install(app: web.Application, hub: Hub, api: Api, services: CatalogServices) -> None:
    app[CATALOG] = services
    register_routes(api)
