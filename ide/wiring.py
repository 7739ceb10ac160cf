"""Builds the IDE services and plugs them into a hub app."""

from __future__ import annotations

from collections.abc import AsyncIterator

from aiohttp import web

from hub.api import Api
from hub.services import Hub
from ide.documents import DocumentServer, DocumentTuning
from ide.handlers import open_document, register_routes
from ide.projects import GroupDirectory, Projects
from ide.services import IDE, IdeServices
from ide.store import SqlDocumentStore
from ide.tickets import DocumentTickets


def build_ide(
    hub: Hub, *, groups: GroupDirectory, tuning: DocumentTuning | None = None
) -> IdeServices:
    """``groups``: the catalog's study groups (a project's group members edit it)."""
    documents = DocumentServer(
        store=SqlDocumentStore(hub.db, hub.clock),
        # Only Redis crosses processes; with the in-memory broker there is no one to tell.
        broker=hub.broker if hub.redis is not None else None,
        clock=hub.clock,
        tuning=tuning,
    )
    return IdeServices(
        projects=Projects(hub.db, hub.clock, groups),
        documents=documents,
        tickets=DocumentTickets(hub.gateway.tickets, hub.db, hub.clock),
    )


def install(app: web.Application, hub: Hub, api: Api, services: IdeServices) -> None:
    app[IDE] = services
    register_routes(api)
    app.router.add_get("/yjs/{doc}", open_document)

    async def documents(app: web.Application) -> AsyncIterator[None]:
        async with services.documents:
            yield

    app.cleanup_ctx.append(documents)

    async def disconnect(app: web.Application) -> None:
        await services.documents.disconnect_all()

    app.on_shutdown.append(disconnect)
