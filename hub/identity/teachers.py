"""Teacher verification: students apply, admins approve or reject."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from enum import StrEnum

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import aliased

from hub.clock import Clock
from hub.db import Database
from hub.errors import Conflict, ErrorCode, Forbidden, NotFound
from hub.identity.manager import Principal
from hub.identity.models import TeacherApplication, User
from hub.notifications.service import Notifications

log = logging.getLogger(__name__)


class ApplicationStatus(StrEnum):
    PENDING = "pending"
    APPROVED = "approved"
    REJECTED = "rejected"


@dataclass(frozen=True, slots=True)
class ApplicationView:
    application: TeacherApplication
    applicant: User


class TeacherVerification:
    def __init__(self, db: Database, notifications: Notifications, clock: Clock) -> None:
        self._db = db
        self._notifications = notifications
        self._clock = clock

    async def apply(
        self, principal: Principal, *, qualifications: str, experience: str, links: list[str]
    ) -> ApplicationView:
        """File an application.

        Raises:
            Conflict: the user already teaches, or already has a pending application.
        """
        if principal.user.is_teacher:
            raise Conflict("You are already a verified teacher.", code=ErrorCode.ALREADY_TEACHER)
        application = TeacherApplication(
            user_id=principal.user.id,
            qualifications=qualifications.strip(),
            experience=experience.strip(),
            links=links,
            status=ApplicationStatus.PENDING,
            created_at=self._clock.now(),
        )
        pending = Conflict(
            "You already have an application under review.", code=ErrorCode.APPLICATION_PENDING
        )
        try:
            async with self._db.transaction() as s:
                exists = await s.scalar(
                    select(TeacherApplication.id).where(
                        TeacherApplication.user_id == principal.user.id,
                        TeacherApplication.status == ApplicationStatus.PENDING,
                    )
                )
                if exists is not None:
                    raise pending
                s.add(application)
        except IntegrityError:
            raise pending from None
        return ApplicationView(application, principal.user)

    async def mine(self, principal: Principal) -> list[ApplicationView]:
        async with self._db.sessions() as s:
            rows = await s.scalars(
                select(TeacherApplication)
                .where(TeacherApplication.user_id == principal.user.id)
                .order_by(TeacherApplication.id.desc())
            )
            return [ApplicationView(a, principal.user) for a in rows]

    async def list(
        self,
        principal: Principal,
        *,
        status: ApplicationStatus | None,
        limit: int,
        before: int | None,
    ) -> list[ApplicationView]:
        """Applications for review, newest first. Admins only."""
        self._require_admin(principal)
        applicant = aliased(User)
        query = (
            select(TeacherApplication, applicant)
            .join(applicant, applicant.id == TeacherApplication.user_id)
            .order_by(TeacherApplication.id.desc())
            .limit(limit)
        )
        if status is not None:
            query = query.where(TeacherApplication.status == status)
        if before is not None:
            query = query.where(TeacherApplication.id < before)
        async with self._db.sessions() as s:
            return [ApplicationView(a, u) for a, u in await s.execute(query)]

    async def approve(self, principal: Principal, application_id: int) -> ApplicationView:
        return await self._decide(principal, application_id, ApplicationStatus.APPROVED, None)

    async def reject(
        self, principal: Principal, application_id: int, reason: str
    ) -> ApplicationView:
        return await self._decide(principal, application_id, ApplicationStatus.REJECTED, reason)

    async def _decide(
        self,
        principal: Principal,
        application_id: int,
        status: ApplicationStatus,
        reason: str | None,
    ) -> ApplicationView:
        """Raises: Forbidden (not an admin), NotFound, Conflict (already decided)."""
        self._require_admin(principal)
        now = self._clock.now()
        async with self._db.transaction() as s:
            application = await s.get(TeacherApplication, application_id)
            if application is None:
                raise NotFound("No teacher application with this id.")
            if application.status != ApplicationStatus.PENDING:
                raise Conflict(
                    f"This application was already {application.status}.",
                    code=ErrorCode.ALREADY_DECIDED,
                )
            applicant = await s.get(User, application.user_id)
            assert applicant is not None  # foreign key
            application.status = status
            application.reason = reason
            application.decided_at = now
            application.decided_by = principal.user.id
            if status is ApplicationStatus.APPROVED and applicant.teacher_verified_at is None:
                applicant.teacher_verified_at = now
                applicant.updated_at = now
        log.info(
            "teacher application decided",
            extra={
                "application_id": application.id,
                "status": str(status),
                "admin": principal.user.id,
            },
        )
        # The user's own channel; the notifications feature turns this into a stored notification.
        await self._notifications.notify(
            applicant.id,
            "teacher_application.decided",
            actor=principal.user,
            data={"application_id": application.id, "status": str(status), "reason": reason},
        )
        return ApplicationView(application, applicant)

    @staticmethod
    def _require_admin(principal: Principal) -> None:
        if not principal.user.is_admin:
            raise Forbidden("Only admins can review teacher applications.")
