"""The IDE's services, as the HTTP edge finds them on the app."""

from __future__ import annotations

from dataclasses import dataclass

from aiohttp import web

from ide.documents import DocumentServer
from ide.kernels import Kernels
from ide.projects import Projects
from ide.tickets import DocumentTickets


@dataclass(frozen=True, slots=True)
class IdeServices:
    projects: Projects
    documents: DocumentServer
    tickets: DocumentTickets
    kernels: Kernels


IDE = web.AppKey("ide", IdeServices)
