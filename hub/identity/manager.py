"""The rules of identity: registration, login, token rotation with reuse detection, sessions and
profiles. Framework-free: the HTTP edge lives in ``hub.identity.handlers``."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import bindparam, inspect, select, update
from sqlalchemy.exc import IntegrityError

from hub.clock import Clock
from hub.db import Database
from hub.errors import (
    Conflict,
    ErrorCode,
    FieldError,
    NotFound,
    RateLimited,
    Unauthenticated,
    ValidationFailed,
)
from hub.identity.devices import describe_device
from hub.identity.models import AuthSession, RefreshToken, User
from hub.identity.passwords import (
    PasswordHashing,
    PasswordPolicyError,
    check_password_policy,
    normalize_email,
)
from hub.identity.principals import PrincipalReads
from hub.identity.tokens import AccessTokens, RefreshSecrets
from hub.ratelimit import RateLimiter

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class AuthPolicy:
    refresh_ttl: int
    refresh_grace: float
    max_failures_per_account: int
    account_window: float
    max_failures_per_address: int
    address_window: float


@dataclass(frozen=True, slots=True)
class Principal:
    """Who is making a request: the user as of this request, and the session they act in."""

    user: User
    session_id: str


@dataclass(frozen=True, slots=True)
class Grant:
    """What a login or refresh hands out."""

    access_token: str
    expires_in: int
    refresh_token: str
    refresh_max_age: int
    user: User


@dataclass(frozen=True, slots=True)
class ProfileChange:
    display_name: str | None = None
    bio: str | None = None
    avatar_color: str | None = None


_INVALID_CREDENTIALS = "Email or password is incorrect."

_USERS = User.__table__
_SESSIONS = AuthSession.__table__
# The user, as of this request, with the revocation mark of the session the token names.
_PRINCIPAL_QUERY = (
    select(*_USERS.c, _SESSIONS.c.revoked_at.label("session_revoked_at"))
    .select_from(_USERS.join(_SESSIONS, _SESSIONS.c.user_id == _USERS.c.id))
    .where(_USERS.c.id == bindparam("user_id"), _SESSIONS.c.id == bindparam("session_id"))
)


_USER_CLASS = inspect(User).class_manager


def _user_as_read(values: dict[str, Any]) -> User:
    """A ``User`` (not in any session) with the columns' values as read, set as SQLAlchemy sets
    those of a row it loads: ``User(**values)`` records each as a change, which cost about ten
    times as much, on every authenticated request."""
    user: User = _USER_CLASS.new_instance()
    user.__dict__.update(values)
    return user


def _check_password(password: str, *, email: str, display_name: str) -> None:
    try:
        check_password_policy(password, email=email, display_name=display_name)
    except PasswordPolicyError as exc:
        raise ValidationFailed(
            [FieldError("password", f"Password {exc}", "weak_password")]
        ) from None


class IdentityManager:
    def __init__(
        self,
        db: Database,
        hashing: PasswordHashing,
        access: AccessTokens,
        refresh_secrets: RefreshSecrets,
        limiter: RateLimiter,
        clock: Clock,
        policy: AuthPolicy,
    ) -> None:
        self._db = db
        self._hashing = hashing
        self._access = access
        self._secrets = refresh_secrets
        self._limiter = limiter
        self._clock = clock
        self._policy = policy
        self._principals = PrincipalReads(db)
        # Called after an account is created (the wallet's signup grant, …); a failing hook is
        # logged, never undoes the registration: each hook must be safe to run again later.
        self.on_registered: list[Callable[[User], Awaitable[None]]] = []
        # What a profile shows besides its own fields (the profile shop's theme, badge and
        # frame), provided by a feature package: user id -> {"theme": {...} | None, …}.
        self.appearance_of: Callable[[int], Awaitable[dict[str, Any]]] | None = None

    # Accounts -----------------------------------------------------------------------------

    async def register(self, email: str, password: str, display_name: str) -> User:
        """Create a student account.

        Raises:
            ValidationFailed: the password breaks the policy.
            Conflict: the email is taken.
        """
        email = normalize_email(email)
        _check_password(password, email=email, display_name=display_name)
        password_hash = await asyncio.to_thread(self._hashing.hash, password)
        now = self._clock.now()
        user = User(
            email=email,
            password_hash=password_hash,
            display_name=display_name.strip(),
            bio="",
            avatar_color="#4f46e5",
            is_admin=False,
            created_at=now,
            updated_at=now,
        )
        try:
            async with self._db.transaction() as s:
                taken = await s.scalar(select(User.id).where(User.email == email))
                if taken is not None:
                    raise Conflict(
                        "An account with this email already exists.", code=ErrorCode.EMAIL_TAKEN
                    )
                s.add(user)
        except IntegrityError:
            # Two registrations of one email raced; the unique index decided.
            raise Conflict(
                "An account with this email already exists.", code=ErrorCode.EMAIL_TAKEN
            ) from None
        log.info("user registered", extra={"user_id": user.id})
        for hook in self.on_registered:
            try:
                await hook(user)
            except Exception:
                log.exception("registration hook failed", extra={"user_id": user.id})
        return user

    async def ensure_account(
        self, email: str, password: str, display_name: str, *, admin: bool, teacher: bool
    ) -> User:
        """Create an account with these roles, or set the password and grant the roles to an
        existing one (``cohort admin create`` and the demo accounts). Never removes a role."""
        email = normalize_email(email)
        _check_password(password, email=email, display_name=display_name)
        password_hash = await asyncio.to_thread(self._hashing.hash, password)
        now = self._clock.now()
        async with self._db.transaction() as s:
            user = await s.scalar(select(User).where(User.email == email))
            if user is None:
                user = User(
                    email=email,
                    display_name=display_name,
                    bio="",
                    avatar_color="#4f46e5",
                    is_admin=False,
                    created_at=now,
                    password_hash=password_hash,
                )
                s.add(user)
            user.password_hash = password_hash
            user.is_admin = user.is_admin or admin
            if teacher and user.teacher_verified_at is None:
                user.teacher_verified_at = now
            user.updated_at = now
        return user

    async def get_user(self, user_id: int) -> User:
        async with self._db.sessions() as s:
            user = await s.get(User, user_id)
        if user is None:
            raise NotFound("No such user.")
        return user

    async def update_profile(self, user_id: int, change: ProfileChange) -> User:
        async with self._db.transaction() as s:
            user = await s.get(User, user_id)
            if user is None:
                raise NotFound("No such user.")
            if change.display_name is not None:
                user.display_name = change.display_name.strip()
            if change.bio is not None:
                user.bio = change.bio
            if change.avatar_color is not None:
                user.avatar_color = change.avatar_color.lower()
            user.updated_at = self._clock.now()
        return user

    # Login and tokens ---------------------------------------------------------------------

    async def login(self, email: str, password: str, *, user_agent: str, ip: str | None) -> Grant:
        """Check credentials and open a new session (a new refresh-token family).

        Raises:
            RateLimited: too many failures for this account or from this address. Said before
                the password is checked, and the same whether or not the account exists.
            Unauthenticated: wrong email or password (one message for both).
        """
        email = normalize_email(email)
        account_key = f"login:account:{email}"
        address_key = f"login:address:{ip or 'unknown'}"
        policy = self._policy
        wait = max(
            await self._limiter.retry_after(
                account_key, policy.max_failures_per_account, policy.account_window
            ),
            await self._limiter.retry_after(
                address_key, policy.max_failures_per_address, policy.address_window
            ),
        )
        if wait > 0:
            raise RateLimited(wait, "Too many failed sign-in attempts. Try again later.")

        async with self._db.sessions() as s:
            user = await s.scalar(select(User).where(User.email == email))
        # argon2 takes tens of milliseconds of CPU by design: off the event loop, so one login
        # never stalls every other connection of the hub.
        verified = await asyncio.to_thread(
            self._hashing.verify, user.password_hash if user else None, password
        )
        if not verified or user is None:
            await self._limiter.hit(account_key, policy.account_window)
            await self._limiter.hit(address_key, policy.address_window)
            raise Unauthenticated(_INVALID_CREDENTIALS, code=ErrorCode.INVALID_CREDENTIALS)
        await self._limiter.reset(account_key)

        now = self._clock.now()
        session = AuthSession(
            id=RefreshSecrets.new_id(),
            user_id=user.id,
            device=describe_device(user_agent),
            user_agent=user_agent[:512],
            ip=ip,
            created_at=now,
            last_used_at=now,
            expires_at=now + timedelta(seconds=policy.refresh_ttl),
        )
        token = RefreshToken(
            id=RefreshSecrets.new_id(),
            session_id=session.id,
            nonce=RefreshSecrets.new_nonce(),
            issued_at=now,
        )
        rehashed = None
        if self._hashing.needs_rehash(user.password_hash):
            rehashed = await asyncio.to_thread(self._hashing.hash, password)
        async with self._db.transaction() as s:
            if rehashed is not None:
                stored = await s.get(User, user.id)
                if stored is not None:
                    stored.password_hash = rehashed
            s.add(session)
            await s.flush()
            s.add(token)
        log.info("login", extra={"user_id": user.id, "session_id": session.id})
        return self._grant(user, session.id, token)

    async def refresh(self, refresh_token: str | None, *, ip: str | None) -> Grant:
        """Rotate a refresh token.

        The current token is exchanged for a new one. The token it replaced is accepted again
        only within the grace window and only while its successor is still current, and then
        gets that same successor, so two tabs refreshing at once end up holding one token. Any
        other reuse means the token leaked: the whole family is revoked.

        Raises:
            Unauthenticated: no, unknown, forged, expired, revoked or reused token.
        """
        parts = self._secrets.split(refresh_token) if refresh_token else None
        if parts is None:
            raise Unauthenticated("No valid refresh token.", code=ErrorCode.TOKEN_INVALID)
        token_id, mac = parts
        now = self._clock.now()
        reused = False
        async with self._db.transaction() as s:
            row = await s.get(RefreshToken, token_id)
            if row is None or not self._secrets.matches(row.id, row.nonce, mac):
                raise Unauthenticated("No valid refresh token.", code=ErrorCode.TOKEN_INVALID)
            session = await s.get(AuthSession, row.session_id)
            if session is None or session.revoked_at is not None or session.expires_at <= now:
                raise Unauthenticated("This session has ended.", code=ErrorCode.SESSION_REVOKED)

            successor: RefreshToken | None = None
            if row.replaced_by is None:
                fresh = RefreshToken(
                    id=RefreshSecrets.new_id(),
                    session_id=session.id,
                    nonce=RefreshSecrets.new_nonce(),
                    issued_at=now,
                )
                # Conditional update: of two concurrent refreshes with one token, one wins.
                claimed = await s.execute(
                    update(RefreshToken)
                    .where(RefreshToken.id == row.id, RefreshToken.replaced_by.is_(None))
                    .values(replaced_by=fresh.id, rotated_at=now)
                    .execution_options(synchronize_session=False)
                )
                if claimed.rowcount == 1:  # type: ignore[attr-defined]
                    s.add(fresh)
                    successor = fresh
                else:
                    await s.refresh(row)
            if successor is None:
                successor = await s.get(RefreshToken, row.replaced_by) if row.replaced_by else None
                if not self._within_grace(row, successor, now):
                    reused = True
                    session.revoked_at = now
                    session.revoked_reason = "refresh_token_reuse"
            if not reused:
                session.last_used_at = now
                session.expires_at = now + timedelta(seconds=self._policy.refresh_ttl)
                session.ip = ip or session.ip
                user = await s.get(User, session.user_id)
        if reused:
            log.warning(
                "refresh token reused; session revoked",
                extra={"session_id": session.id, "user_id": session.user_id},
            )
            raise Unauthenticated(
                "This refresh token was already used; the session has been ended for safety.",
                code=ErrorCode.SESSION_REVOKED,
            )
        assert successor is not None
        assert user is not None
        return self._grant(user, session.id, successor)

    def _within_grace(
        self, row: RefreshToken, successor: RefreshToken | None, now: datetime
    ) -> bool:
        if successor is None or successor.replaced_by is not None or row.rotated_at is None:
            return False
        return (now - row.rotated_at).total_seconds() <= self._policy.refresh_grace

    def _grant(self, user: User, session_id: str, token: RefreshToken) -> Grant:
        return Grant(
            access_token=self._access.issue(user.id, session_id),
            expires_in=self._access.ttl,
            refresh_token=self._secrets.token(token.id, token.nonce),
            refresh_max_age=self._policy.refresh_ttl,
            user=user,
        )

    async def authenticate(self, access_token: str) -> Principal:
        """Resolve a bearer token to the user and session it speaks for.

        Every request asks the database, so a session ended anywhere (logout, a reused refresh
        token, another hub) stops its access tokens at once.

        Raises:
            Unauthenticated: bad or expired token, or its session was ended.
        """
        claims = self._access.verify(access_token)
        # One statement outside a transaction: this runs on every authenticated request (on
        # PostgreSQL one statement for the requests that wait at the same time, on the
        # driver's connection, without SQLAlchemy's work per statement).
        values: dict[str, Any] | None
        if self._db.is_sqlite:
            async with self._db.connect() as conn:
                found = (
                    await conn.execute(
                        _PRINCIPAL_QUERY,
                        {"user_id": claims.user_id, "session_id": claims.session_id},
                    )
                ).first()
            values = None if found is None else found._asdict()
        else:
            values = await self._principals.read(claims.user_id, claims.session_id)
        if values is None or values.pop("session_revoked_at") is not None:
            raise Unauthenticated("This session has ended.", code=ErrorCode.SESSION_REVOKED)
        return Principal(user=_user_as_read(values), session_id=claims.session_id)

    async def logout(self, *, session_id: str | None, refresh_token: str | None) -> None:
        """End the session named by the access token, or else by the refresh cookie."""
        if session_id is None and refresh_token:
            parts = self._secrets.split(refresh_token)
            if parts is not None:
                async with self._db.sessions() as s:
                    row = await s.get(RefreshToken, parts[0])
                if row is not None and self._secrets.matches(row.id, row.nonce, parts[1]):
                    session_id = row.session_id
        if session_id is not None:
            await self._revoke(session_id, reason="logout")

    async def _revoke(self, session_id: str, *, reason: str, user_id: int | None = None) -> bool:
        async with self._db.transaction() as s:
            query = update(AuthSession).where(
                AuthSession.id == session_id, AuthSession.revoked_at.is_(None)
            )
            if user_id is not None:
                query = query.where(AuthSession.user_id == user_id)
            result = await s.execute(
                query.values(revoked_at=self._clock.now(), revoked_reason=reason).execution_options(
                    synchronize_session=False
                )
            )
        return bool(result.rowcount)  # type: ignore[attr-defined]

    async def sessions(self, user_id: int) -> list[AuthSession]:
        now = self._clock.now()
        async with self._db.sessions() as s:
            rows = await s.scalars(
                select(AuthSession)
                .where(
                    AuthSession.user_id == user_id,
                    AuthSession.revoked_at.is_(None),
                    AuthSession.expires_at > now,
                )
                .order_by(AuthSession.last_used_at.desc())
            )
            return list(rows)

    async def end_session(self, user_id: int, session_id: str) -> None:
        """End one of the user's own sessions.

        Raises:
            NotFound: no active session of this user has that id.
        """
        if not await self._revoke(session_id, reason="ended_by_user", user_id=user_id):
            raise NotFound("No active session with this id.")
