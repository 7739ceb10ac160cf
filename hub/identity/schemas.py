"""The JSON shapes of the identity API."""

from __future__ import annotations

import unicodedata
from datetime import datetime
from typing import Annotated, Literal

from pydantic import AfterValidator, BaseModel, EmailStr, Field, HttpUrl, model_validator

from hub.api import RequestModel
from hub.identity.models import AuthSession, User
from hub.identity.teachers import ApplicationView


def _display_name(value: str) -> str:
    value = " ".join(value.split())
    if not value:
        raise ValueError("must not be blank")
    if any(unicodedata.category(ch).startswith("C") for ch in value):
        raise ValueError("must not contain control characters")
    return value


DisplayName = Annotated[str, Field(min_length=1, max_length=80), AfterValidator(_display_name)]
Color = Annotated[str, Field(pattern=r"^#[0-9a-fA-F]{6}$", examples=["#4f46e5"])]


class RegisterBody(RequestModel):
    email: EmailStr
    password: str = Field(max_length=1024, description="at least 10 characters, not a common one")
    display_name: DisplayName


class LoginBody(RequestModel):
    # Not validated as an address: a malformed one must fail exactly like a wrong one.
    email: str = Field(max_length=320)
    password: str = Field(max_length=1024)


class ProfilePatch(RequestModel):
    display_name: DisplayName | None = None
    bio: str | None = Field(default=None, max_length=2000)
    avatar_color: Color | None = None

    @model_validator(mode="after")
    def _something(self) -> ProfilePatch:
        if not self.model_fields_set:
            raise ValueError("send at least one of display_name, bio, avatar_color")
        for name in self.model_fields_set:
            if getattr(self, name) is None:
                raise ValueError(f"{name} cannot be null")
        return self


class TeacherApplicationBody(RequestModel):
    qualifications: str = Field(min_length=10, max_length=5000)
    experience: str = Field(min_length=10, max_length=5000)
    links: list[HttpUrl] = Field(default_factory=list, max_length=10)


class RejectBody(RequestModel):
    reason: str = Field(min_length=1, max_length=1000)


class ApplicationQuery(RequestModel):
    status: Literal["pending", "approved", "rejected"] | None = None
    limit: int = Field(default=50, ge=1, le=100)
    before: int | None = Field(default=None, ge=1, description="id cursor: older than this")


class ProfileItemOut(BaseModel):
    id: str
    name: str
    style: dict[str, str]


class AppearanceOut(BaseModel):
    theme: ProfileItemOut | None = None
    badge: ProfileItemOut | None = None
    frame: ProfileItemOut | None = None


class PublicUserOut(BaseModel):
    id: int
    display_name: str
    bio: str
    avatar_color: str
    roles: list[Literal["student", "teacher", "admin"]]
    appearance: AppearanceOut


class PublicUserEnvelope(BaseModel):
    user: PublicUserOut


class UserOut(BaseModel):
    id: int
    email: str
    display_name: str
    bio: str
    avatar_color: str
    roles: list[Literal["student", "teacher", "admin"]]
    is_teacher: bool
    is_admin: bool
    created_at: datetime
    appearance: AppearanceOut = Field(
        default_factory=AppearanceOut, description="profile shop items shown (GET /api/me)"
    )

    @classmethod
    def of(cls, user: User, appearance: AppearanceOut | None = None) -> UserOut:
        return cls(
            id=user.id,
            email=user.email,
            display_name=user.display_name,
            bio=user.bio,
            avatar_color=user.avatar_color,
            roles=user.roles,
            is_teacher=user.is_teacher,
            is_admin=user.is_admin,
            created_at=user.created_at,
            appearance=appearance or AppearanceOut(),
        )


class UserEnvelope(BaseModel):
    user: UserOut


class TokenOut(BaseModel):
    access_token: str
    token_type: Literal["Bearer"] = "Bearer"
    expires_in: int = Field(description="seconds until the access token expires")
    user: UserOut


class SessionOut(BaseModel):
    id: str
    device: str
    ip: str | None
    created_at: datetime
    last_used_at: datetime
    current: bool

    @classmethod
    def of(cls, session: AuthSession, current_id: str) -> SessionOut:
        return cls(
            id=session.id,
            device=session.device,
            ip=session.ip,
            created_at=session.created_at,
            last_used_at=session.last_used_at,
            current=session.id == current_id,
        )


class SessionList(BaseModel):
    items: list[SessionOut]


class Applicant(BaseModel):
    id: int
    display_name: str
    email: str


class ApplicationOut(BaseModel):
    id: int
    status: Literal["pending", "approved", "rejected"]
    qualifications: str
    experience: str
    links: list[str]
    reason: str | None
    created_at: datetime
    decided_at: datetime | None
    applicant: Applicant

    @classmethod
    def of(cls, view: ApplicationView) -> ApplicationOut:
        a, u = view.application, view.applicant
        return cls(
            id=a.id,
            status=a.status,
            qualifications=a.qualifications,
            experience=a.experience,
            links=list(a.links),
            reason=a.reason,
            created_at=a.created_at,
            decided_at=a.decided_at,
            applicant=Applicant(id=u.id, display_name=u.display_name, email=u.email),
        )


class ApplicationList(BaseModel):
    items: list[ApplicationOut]
