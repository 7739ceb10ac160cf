"""Domain errors: a machine-readable code and an HTTP status each, free of any web framework.

One middleware (``hub.middleware``) turns them into RFC 9457 problem documents.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import Any


class ErrorCode(StrEnum):
    MALFORMED_REQUEST = "malformed_request"
    VALIDATION_FAILED = "validation_failed"
    UNAUTHENTICATED = "unauthenticated"
    INVALID_CREDENTIALS = "invalid_credentials"
    TOKEN_INVALID = "token_invalid"
    SESSION_REVOKED = "session_revoked"
    FORBIDDEN = "forbidden"
    NOT_FOUND = "not_found"
    METHOD_NOT_ALLOWED = "method_not_allowed"
    CONFLICT = "conflict"
    EMAIL_TAKEN = "email_taken"
    APPLICATION_PENDING = "application_pending"
    ALREADY_TEACHER = "already_teacher"
    ALREADY_DECIDED = "already_decided"
    PAYLOAD_TOO_LARGE = "payload_too_large"
    UNSUPPORTED_MEDIA_TYPE = "unsupported_media_type"
    RATE_LIMITED = "rate_limited"
    INSUFFICIENT_FUNDS = "insufficient_funds"
    ALREADY_SUBSCRIBED = "already_subscribed"
    NOT_SUBSCRIBED = "not_subscribed"
    TOO_MANY_CHANNELS = "too_many_channels"
    STALE = "stale"
    INTERNAL = "internal_error"
    UNAVAILABLE = "unavailable"


@dataclass(frozen=True, slots=True)
class FieldError:
    """One invalid input field: a dotted path, a human message and a short code."""

    field: str
    message: str
    code: str = "invalid"

    def as_dict(self) -> dict[str, str]:
        return {"field": self.field, "message": self.message, "code": self.code}


class CohortError(Exception):
    """Base of every error a manager raises on purpose."""

    status: int = 500
    code: ErrorCode = ErrorCode.INTERNAL
    title: str = "Internal server error"

    def __init__(self, detail: str | None = None, *, code: ErrorCode | None = None) -> None:
        super().__init__(detail or self.title)
        self.detail = detail or self.title
        if code is not None:
            self.code = code

    def extra(self) -> dict[str, Any]:
        """Members added to the problem document beyond the standard ones."""
        return {}

    def headers(self) -> dict[str, str]:
        return {}


class MalformedRequest(CohortError):
    status, code, title = 400, ErrorCode.MALFORMED_REQUEST, "Malformed request"


class ValidationFailed(CohortError):
    status, code, title = 422, ErrorCode.VALIDATION_FAILED, "Invalid input"

    def __init__(self, errors: list[FieldError], detail: str | None = None) -> None:
        super().__init__(detail or "; ".join(f"{e.field}: {e.message}" for e in errors))
        self.errors = errors

    def extra(self) -> dict[str, Any]:
        return {"errors": [e.as_dict() for e in self.errors]}


class Unauthenticated(CohortError):
    status, code, title = 401, ErrorCode.UNAUTHENTICATED, "Authentication required"

    def headers(self) -> dict[str, str]:
        return {"WWW-Authenticate": 'Bearer realm="cohort"'}


class Forbidden(CohortError):
    status, code, title = 403, ErrorCode.FORBIDDEN, "Forbidden"


class NotFound(CohortError):
    status, code, title = 404, ErrorCode.NOT_FOUND, "Not found"


class Conflict(CohortError):
    status, code, title = 409, ErrorCode.CONFLICT, "Conflict"


class PayloadTooLarge(CohortError):
    status, code, title = 413, ErrorCode.PAYLOAD_TOO_LARGE, "Payload too large"


class UnsupportedMediaType(CohortError):
    status, code, title = 415, ErrorCode.UNSUPPORTED_MEDIA_TYPE, "Unsupported media type"


class RateLimited(CohortError):
    status, code, title = 429, ErrorCode.RATE_LIMITED, "Too many requests"

    def __init__(self, retry_after: float, detail: str | None = None) -> None:
        super().__init__(detail or "Too many attempts; try again later.")
        # Whole seconds, rounded up: Retry-After takes an integer and 0 would invite a retry storm.
        self.retry_after = max(1, int(-(-retry_after // 1)))

    def extra(self) -> dict[str, Any]:
        return {"retry_after": self.retry_after}

    def headers(self) -> dict[str, str]:
        return {"Retry-After": str(self.retry_after)}


class Unavailable(CohortError):
    status, code, title = 503, ErrorCode.UNAVAILABLE, "Service unavailable"
