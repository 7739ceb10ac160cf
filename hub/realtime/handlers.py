"""HTTP edge of the gateway: tickets for WebSocket upgrades."""

from __future__ import annotations

from aiohttp import web
from pydantic import BaseModel, Field

from hub.api import Api, RequestModel
from hub.identity.manager import Principal
from hub.realtime.tickets import TICKET_TTL_SECONDS, Ticket
from hub.services import HUB


class TicketBody(RequestModel):
    doc: str | None = Field(
        default=None,
        min_length=1,
        max_length=200,
        pattern=r"^[A-Za-z0-9_.:-]+$",
        description="for /yjs/{doc}: the document the ticket opens; omit for /ws",
    )


class TicketOut(BaseModel):
    ticket: str
    expires_in: int = Field(description="seconds; the ticket works once")


def register_routes(api: Api) -> None:
    @api.route(
        "POST",
        "/api/realtime/ticket",
        summary="A single-use ticket to open a WebSocket",
        body=TicketBody,
        response=TicketOut,
        body_optional=True,
        tags=("realtime",),
    )
    async def issue_ticket(
        request: web.Request, principal: Principal, body: TicketBody
    ) -> TicketOut:
        """Open `/ws?ticket=…` (or `/yjs/{doc}?ticket=…` with `doc`) within 30 seconds; the
        ticket works once."""
        token = await request.app[HUB].gateway.tickets.issue(
            Ticket(principal.user.id, principal.session_id, body.doc)
        )
        return TicketOut(ticket=token, expires_in=TICKET_TTL_SECONDS)
