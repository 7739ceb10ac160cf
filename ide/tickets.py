"""Who opens a document socket: the single-use ticket from ``POST /api/realtime/ticket``
(``{"doc": name}``), checked before the upgrade."""

from __future__ import annotations

from sqlalchemy import select

from hub.clock import Clock
from hub.db import Database
from hub.errors import Forbidden, Unauthenticated
from hub.identity.models import AuthSession, User
from hub.realtime.tickets import TicketStore


class DocumentTickets:
    def __init__(self, tickets: TicketStore, db: Database, clock: Clock) -> None:
        self._tickets = tickets
        self._db = db
        self._clock = clock

    async def redeem(self, token: str, doc: str) -> User:
        """The user a ticket for ``doc`` was issued to; the ticket is used up either way.

        Raises:
            Unauthenticated: no ticket, a used or expired one, one for ``/ws``, or a session
                that has ended.
            Forbidden: a ticket for another document.
        """
        ticket = await self._tickets.redeem(token) if token else None
        if ticket is None or ticket.doc is None:
            raise Unauthenticated(
                "This document ticket is missing, used or expired: get a new one from "
                'POST /api/realtime/ticket with {"doc": name}.'
            )
        if ticket.doc != doc:
            raise Forbidden("This ticket opens another document.")
        now = self._clock.now()
        async with self._db.sessions() as s:
            row = (
                await s.execute(
                    select(User, AuthSession)
                    .join(AuthSession, AuthSession.user_id == User.id)
                    .where(User.id == ticket.user_id, AuthSession.id == ticket.session_id)
                )
            ).first()
        if row is None:
            raise Unauthenticated("This session has ended; sign in again.")
        user, session = row
        if session.revoked_at is not None or session.expires_at <= now:
            raise Unauthenticated("This session has ended; sign in again.")
        return user
