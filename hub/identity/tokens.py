"""Access tokens (JWT, HS256 pinned, ``exp`` required) and refresh-token secrets."""

from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass

from joserfc import jwt
from joserfc.errors import JoseError
from joserfc.jwk import OctKey
from joserfc.jwt import JWTClaimsRegistry

from hub.clock import Clock
from hub.errors import ErrorCode, Unauthenticated

ISSUER = "cohort"
ALGORITHM = "HS256"
# Verified access tokens remembered at most (about 0.5 KB each); then they start over.
VERIFIED_TOKENS_KEPT = 10_000


@dataclass(frozen=True, slots=True)
class AccessClaims:
    user_id: int
    session_id: str
    expires_at: int


class AccessTokens:
    """Issues and verifies short-lived access tokens."""

    def __init__(self, signing_key: str, ttl_seconds: int, clock: Clock) -> None:
        # A derived key: the refresh-token MAC and the JWT signature never share key material.
        self._key = OctKey.import_key(_derive(signing_key, b"access-token"))
        self.ttl = ttl_seconds
        self._clock = clock
        # Tokens that verified, with their claims: a client sends the same token with every
        # request for its lifetime, and checking its signature and claims costs more CPU than
        # the rest of authenticating it. Only expiry changes with time; it is checked each time.
        self._verified: dict[str, AccessClaims] = {}

    def issue(self, user_id: int, session_id: str) -> str:
        now = int(self._clock.now().timestamp())
        claims = {
            "iss": ISSUER,
            "sub": str(user_id),
            "sid": session_id,
            "iat": now,
            "exp": now + self.ttl,
        }
        return jwt.encode({"alg": ALGORITHM, "typ": "JWT"}, claims, self._key)

    def verify(self, token: str) -> AccessClaims:
        """Check signature, algorithm, issuer and expiry.

        Raises:
            Unauthenticated: for any token that is not a valid, unexpired one of ours.
        """
        known = self._verified.get(token)
        if known is not None:
            if known.expires_at < int(self._clock.now().timestamp()):  # as the registry checks
                raise Unauthenticated("Access token expired.", code=ErrorCode.TOKEN_INVALID)
            return known
        try:
            # Pinning the algorithm list is what defeats `alg: none` and HS/RS confusion.
            decoded = jwt.decode(token, self._key, algorithms=[ALGORITHM])
            registry = JWTClaimsRegistry(
                now=lambda: int(self._clock.now().timestamp()),
                iss={"essential": True, "value": ISSUER},
                sub={"essential": True},
                exp={"essential": True},
                sid={"essential": True},
            )
            registry.validate(decoded.claims)
            user_id = int(decoded.claims["sub"])
            session_id = str(decoded.claims["sid"])
            expires_at = int(decoded.claims["exp"])
        except (JoseError, ValueError, TypeError, KeyError) as exc:
            expired = "expired" in str(exc).lower()
            raise Unauthenticated(
                "Access token expired." if expired else "Access token is invalid.",
                code=ErrorCode.TOKEN_INVALID,
            ) from None
        claims = AccessClaims(user_id=user_id, session_id=session_id, expires_at=expires_at)
        if len(self._verified) >= VERIFIED_TOKENS_KEPT:
            self._verified.clear()
        self._verified[token] = claims
        return claims


class RefreshSecrets:
    """Refresh tokens are ``<id>.<mac>``, the MAC over id and nonce under a derived key."""

    def __init__(self, signing_key: str) -> None:
        self._key = _derive(signing_key, b"refresh-token")

    @staticmethod
    def new_id() -> str:
        return secrets.token_hex(16)

    @staticmethod
    def new_nonce() -> str:
        return secrets.token_urlsafe(24)

    def token(self, token_id: str, nonce: str) -> str:
        return f"{token_id}.{self._mac(token_id, nonce)}"

    def split(self, token: str) -> tuple[str, str] | None:
        token_id, sep, mac = token.partition(".")
        if not sep or len(token_id) != 32 or not mac:
            return None
        return token_id, mac

    def matches(self, token_id: str, nonce: str, mac: str) -> bool:
        return hmac.compare_digest(self._mac(token_id, nonce), mac)

    def _mac(self, token_id: str, nonce: str) -> str:
        return hmac.new(self._key, f"{token_id}:{nonce}".encode(), hashlib.sha256).hexdigest()


def _derive(secret: str, purpose: bytes) -> bytes:
    return hmac.new(secret.encode(), b"cohort:" + purpose, hashlib.sha256).digest()
