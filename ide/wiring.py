"""Builds the IDE services and plugs them into a hub app."""

from __future__ import annotations

import sys
from collections.abc import AsyncIterator

from aiohttp import web

from hub.api import Api
from hub.services import Hub
from hub.settings import Settings
from ide.channel import ProjectChannelPolicy
from ide.documents import DocumentServer, DocumentTuning
from ide.handlers import open_document, register_routes
from ide.jupyter import KernelHost, LocalJupyterServer, LocalServerConfig, RemoteJupyter
from ide.kernel_handlers import register_kernel_routes
from ide.kernels import Kernels, KernelTuning
from ide.projects import GroupDirectory, Projects
from ide.sandbox import SandboxLimits
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
    projects = Projects(hub.db, hub.clock, groups)
    return IdeServices(
        projects=projects,
        documents=documents,
        tickets=DocumentTickets(hub.gateway.tickets, hub.db, hub.clock),
        kernels=Kernels(
            db=hub.db,
            clock=hub.clock,
            projects=projects,
            documents=documents,
            publisher=hub.gateway,
            host=kernel_host(hub.settings),
            # As for documents: with the in-memory broker this hub is the only one.
            broker=hub.broker if hub.redis is not None else None,
            tuning=KernelTuning(
                cpu_seconds=hub.settings.kernel_cpu_seconds,
                output_bytes=hub.settings.kernel_output_bytes,
                run_seconds=hub.settings.kernel_run_seconds,
                idle_seconds=hub.settings.kernel_idle_seconds,
                cull_every=min(30.0, hub.settings.kernel_idle_seconds / 4),
            ),
        ),
    )


def kernel_host(settings: Settings) -> KernelHost:
    """A remote Jupyter server / Enterprise Gateway when configured, else a local one."""
    if settings.kernel_gateway_url:
        return RemoteJupyter(
            settings.kernel_gateway_url,
            settings.kernel_gateway_token,
            settings.kernel_name or "python3",
        )
    return LocalJupyterServer(
        LocalServerConfig(
            kernels_dir=settings.kernels_root,
            python=settings.kernel_python or sys.executable,
            limits=SandboxLimits(
                cpu_seconds=settings.kernel_cpu_seconds,
                cpu_total_seconds=max(
                    settings.kernel_cpu_total_seconds, settings.kernel_cpu_seconds
                ),
                memory_bytes=settings.kernel_memory_bytes,
                processes=settings.kernel_processes,
                file_bytes=settings.kernel_file_bytes,
            ),
            uid_base=settings.kernel_uid_base,
        )
    )


def install(app: web.Application, hub: Hub, api: Api, services: IdeServices) -> None:
    app[IDE] = services
    register_routes(api)
    register_kernel_routes(api)
    hub.gateway.register("project", ProjectChannelPolicy(services.projects, services.kernels))
    app.router.add_get("/yjs/{doc}", open_document)

    async def documents(app: web.Application) -> AsyncIterator[None]:
        async with services.documents:
            yield

    app.cleanup_ctx.append(documents)

    async def kernels(app: web.Application) -> AsyncIterator[None]:
        # After the documents: runs read files from them until the kernels stop.
        async with services.kernels:
            yield

    app.cleanup_ctx.append(kernels)

    async def disconnect(app: web.Application) -> None:
        await services.documents.disconnect_all()

    app.on_shutdown.append(disconnect)
