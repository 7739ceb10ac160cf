"""HTTP edge of identity: parse, call the managers, serialize."""

from __future__ import annotations

from aiohttp import web

from hub.api import Api, authenticate, json_response, path_int
from hub.errors import Unauthenticated
from hub.identity.manager import Grant, Principal, ProfileChange
from hub.identity.schemas import (
    AppearanceOut,
    ApplicationList,
    ApplicationOut,
    ApplicationQuery,
    LoginBody,
    ProfilePatch,
    PublicUserEnvelope,
    PublicUserOut,
    RegisterBody,
    RejectBody,
    SessionList,
    SessionOut,
    TeacherApplicationBody,
    TokenOut,
    UserEnvelope,
    UserOut,
)
from hub.identity.teachers import ApplicationStatus
from hub.middleware import problem_from
from hub.services import HUB

REFRESH_COOKIE = "cohort_refresh"
REFRESH_COOKIE_PATH = "/api/auth"


def client_address(request: web.Request) -> str | None:
    if request.app[HUB].settings.trust_forwarded_for:
        forwarded = request.headers.get("X-Forwarded-For", "")
        first = forwarded.split(",", 1)[0].strip()
        if first:
            return first[:64]
    return request.remote


def _token_response(request: web.Request, grant: Grant) -> web.Response:
    response = json_response(
        TokenOut(
            access_token=grant.access_token,
            expires_in=grant.expires_in,
            user=UserOut.of(grant.user),
        )
    )
    response.set_cookie(
        REFRESH_COOKIE,
        grant.refresh_token,
        max_age=grant.refresh_max_age,
        path=REFRESH_COOKIE_PATH,
        httponly=True,
        samesite="Strict",
        secure=bool(request.app[HUB].settings.cookie_secure),
    )
    # Tokens must never sit in a shared cache.
    response.headers["Cache-Control"] = "no-store"
    return response


def _clear_cookie(request: web.Request, response: web.StreamResponse) -> None:
    response.del_cookie(
        REFRESH_COOKIE,
        path=REFRESH_COOKIE_PATH,
        secure=bool(request.app[HUB].settings.cookie_secure),
        httponly=True,
        samesite="Strict",
    )


def register_routes(api: Api) -> None:
    auth = ("auth",)
    me = ("me",)
    teach = ("teachers",)

    @api.route(
        "POST",
        "/api/auth/register",
        summary="Create an account",
        body=RegisterBody,
        response=UserEnvelope,
        status=201,
        auth=False,
        errors=[409],
        tags=auth,
    )
    async def register(request: web.Request, body: RegisterBody) -> UserEnvelope:
        """Create a student account. A weak password is a 422 naming the rule it breaks."""
        user = await request.app[HUB].identity.register(
            body.email, body.password, body.display_name
        )
        return UserEnvelope(user=UserOut.of(user))

    @api.route(
        "POST",
        "/api/auth/login",
        summary="Sign in",
        body=LoginBody,
        response=TokenOut,
        auth=False,
        errors=[401, 429],
        tags=auth,
    )
    async def login(request: web.Request, body: LoginBody) -> web.Response:
        """Returns an access token and sets the refresh token as an httpOnly, SameSite=Strict
        cookie scoped to /api/auth. Wrong email and wrong password get the same 401; repeated
        failures per account or per address get 429 with Retry-After."""
        grant = await request.app[HUB].identity.login(
            body.email,
            body.password,
            user_agent=request.headers.get("User-Agent", ""),
            ip=client_address(request),
        )
        return _token_response(request, grant)

    @api.route(
        "POST",
        "/api/auth/refresh",
        summary="Rotate the refresh token",
        response=TokenOut,
        auth=False,
        cookie_auth=True,
        tags=auth,
    )
    async def refresh(request: web.Request) -> web.StreamResponse:
        """Exchanges the refresh cookie for a new access token and a new refresh cookie. Reusing
        a rotated token ends the whole session family, except the immediately previous token
        within a 10-second grace window (two tabs refreshing at once)."""
        try:
            grant = await request.app[HUB].identity.refresh(
                request.cookies.get(REFRESH_COOKIE), ip=client_address(request)
            )
        except Unauthenticated as exc:
            # A cookie that no longer works is useless to the browser; drop it with the 401.
            response = problem_from(exc, request)
            _clear_cookie(request, response)
            return response
        return _token_response(request, grant)

    @api.route(
        "POST",
        "/api/auth/logout",
        summary="Sign out",
        status=204,
        auth=False,
        cookie_auth=True,
        tags=auth,
    )
    async def logout(request: web.Request) -> web.StreamResponse:
        """Ends the current session (the whole refresh-token family). Always succeeds."""
        session_id = None
        if request.headers.get("Authorization"):
            try:
                session_id = (await authenticate(request)).session_id
            except Unauthenticated:
                session_id = None
        await request.app[HUB].identity.logout(
            session_id=session_id, refresh_token=request.cookies.get(REFRESH_COOKIE)
        )
        response = web.Response(status=204)
        _clear_cookie(request, response)
        return response

    @api.route(
        "GET",
        "/api/auth/sessions",
        summary="List my active sessions",
        response=SessionList,
        tags=auth,
    )
    async def list_sessions(request: web.Request, principal: Principal) -> SessionList:
        sessions = await request.app[HUB].identity.sessions(principal.user.id)
        return SessionList(items=[SessionOut.of(s, principal.session_id) for s in sessions])

    @api.route(
        "DELETE",
        "/api/auth/sessions/{session_id}",
        summary="End one of my sessions",
        status=204,
        errors=[404],
        tags=auth,
    )
    async def end_session(request: web.Request, principal: Principal) -> None:
        await request.app[HUB].identity.end_session(
            principal.user.id, request.match_info["session_id"]
        )

    @api.route("GET", "/api/me", summary="Who am I", response=UserEnvelope, tags=me)
    async def get_me(request: web.Request, principal: Principal) -> UserEnvelope:
        appearance = await appearance_of(request, principal.user.id)
        return UserEnvelope(user=UserOut.of(principal.user, appearance))

    @api.route(
        "GET",
        r"/api/users/{user_id:\d+}",
        summary="A user's public profile",
        response=PublicUserEnvelope,
        auth=False,
        errors=[404],
        tags=me,
    )
    async def get_user(request: web.Request) -> PublicUserEnvelope:
        user = await request.app[HUB].identity.get_user(path_int(request, "user_id"))
        return PublicUserEnvelope(
            user=PublicUserOut(
                id=user.id,
                display_name=user.display_name,
                bio=user.bio,
                avatar_color=user.avatar_color,
                roles=user.roles,
                appearance=await appearance_of(request, user.id),
            )
        )

    @api.route(
        "PATCH",
        "/api/me",
        summary="Edit my profile",
        body=ProfilePatch,
        response=UserEnvelope,
        tags=me,
    )
    async def patch_me(
        request: web.Request, principal: Principal, body: ProfilePatch
    ) -> UserEnvelope:
        change = ProfileChange(
            display_name=body.display_name, bio=body.bio, avatar_color=body.avatar_color
        )
        user = await request.app[HUB].identity.update_profile(principal.user.id, change)
        return UserEnvelope(user=UserOut.of(user, await appearance_of(request, user.id)))

    @api.route(
        "POST",
        "/api/teacher-applications",
        summary="Apply to teach",
        body=TeacherApplicationBody,
        response=ApplicationOut,
        status=201,
        errors=[409],
        tags=teach,
    )
    async def apply_to_teach(
        request: web.Request, principal: Principal, body: TeacherApplicationBody
    ) -> ApplicationOut:
        """One pending application at a time; teachers cannot apply again."""
        view = await request.app[HUB].teachers.apply(
            principal,
            qualifications=body.qualifications,
            experience=body.experience,
            links=[str(link) for link in body.links],
        )
        return ApplicationOut.of(view)

    @api.route(
        "GET",
        "/api/teacher-applications",
        summary="My teacher applications",
        response=ApplicationList,
        tags=teach,
    )
    async def my_applications(request: web.Request, principal: Principal) -> ApplicationList:
        views = await request.app[HUB].teachers.mine(principal)
        return ApplicationList(items=[ApplicationOut.of(v) for v in views])

    @api.route(
        "GET",
        "/api/admin/teacher-applications",
        summary="Review queue (admins)",
        query=ApplicationQuery,
        response=ApplicationList,
        errors=[403],
        tags=teach,
    )
    async def review_queue(
        request: web.Request, principal: Principal, query: ApplicationQuery
    ) -> ApplicationList:
        views = await request.app[HUB].teachers.list(
            principal,
            status=ApplicationStatus(query.status) if query.status else None,
            limit=query.limit,
            before=query.before,
        )
        return ApplicationList(items=[ApplicationOut.of(v) for v in views])

    @api.route(
        "POST",
        r"/api/admin/teacher-applications/{application_id:\d+}/approve",
        summary="Approve an application (admins)",
        response=ApplicationOut,
        errors=[403, 404, 409],
        tags=teach,
    )
    async def approve_application(request: web.Request, principal: Principal) -> ApplicationOut:
        """Makes the applicant a verified teacher."""
        view = await request.app[HUB].teachers.approve(
            principal, path_int(request, "application_id")
        )
        return ApplicationOut.of(view)

    @api.route(
        "POST",
        r"/api/admin/teacher-applications/{application_id:\d+}/reject",
        summary="Reject an application (admins)",
        body=RejectBody,
        response=ApplicationOut,
        errors=[403, 404, 409],
        tags=teach,
    )
    async def reject_application(
        request: web.Request, principal: Principal, body: RejectBody
    ) -> ApplicationOut:
        view = await request.app[HUB].teachers.reject(
            principal, path_int(request, "application_id"), body.reason
        )
        return ApplicationOut.of(view)


async def appearance_of(request: web.Request, user_id: int) -> AppearanceOut:
    """The profile items a user shows, from the package that provides them (if any)."""
    source = request.app[HUB].identity.appearance_of
    if source is None:
        return AppearanceOut()
    return AppearanceOut.model_validate(await source(user_id))
