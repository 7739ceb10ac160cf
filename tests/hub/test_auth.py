"""Registration, login, refresh rotation, reuse detection, sessions and access tokens, on both
database backends."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import io
import json
from http.cookies import SimpleCookie
from typing import Any

import pytest
from aiohttp.test_utils import TestClient
from joserfc import jwt
from joserfc.jwk import OctKey, RSAKey

from hub.clock import FakeClock
from hub.identity.tokens import _derive
from tests.conftest import SECRET, Account, log_in, sign_up

Client = TestClient[Any, Any]


def refresh_cookie(resp: Any) -> str:
    """The refresh token a response sets, with its attributes checked."""
    header = resp.headers.getall("Set-Cookie")
    jar: SimpleCookie = SimpleCookie()
    for h in header:
        jar.load(h)
    morsel = jar["cohort_refresh"]
    assert morsel["httponly"] is True
    assert morsel["samesite"] == "Strict"
    assert morsel["path"] == "/api/auth"
    return morsel.value


async def refresh_with(client: Client, token: str) -> Any:
    # Sent explicitly, not from the jar, to replay exactly the token the test chooses.
    client.session.cookie_jar.clear()
    return await client.post("/api/auth/refresh", headers={"Cookie": f"cohort_refresh={token}"})


# Registration ----------------------------------------------------------------------------


async def test_register_returns_user(client: Client) -> None:
    resp = await client.post(
        "/api/auth/register",
        json={"email": "Ana@Example.com", "password": "a long passphrase", "display_name": " Ana "},
    )
    assert resp.status == 201
    user = (await resp.json())["user"]
    assert user["email"] == "ana@example.com"
    assert user["display_name"] == "Ana"
    assert user["roles"] == ["student"]
    assert user["is_teacher"] is False
    assert "password" not in json.dumps(user)


async def test_register_duplicate_email_is_409_case_blind(client: Client) -> None:
    body = {"email": "bo@example.com", "password": "a long passphrase", "display_name": "Bo"}
    assert (await client.post("/api/auth/register", json=body)).status == 201
    body["email"] = "BO@example.com"
    resp = await client.post("/api/auth/register", json=body)
    assert resp.status == 409
    problem = await resp.json()
    assert resp.content_type == "application/problem+json"
    assert problem["code"] == "email_taken"


@pytest.mark.parametrize(
    ("password", "rule"),
    [
        ("short1!", "at least 10 characters"),
        ("password123", "commonly used"),
        ("aaaaaaaaaaaaaa", "4 different characters"),
        ("my-carla-password", "email"),
        ("x" * 300, "at most 256"),
    ],
)
async def test_weak_password_is_422_naming_the_rule(
    client: Client, password: str, rule: str
) -> None:
    resp = await client.post(
        "/api/auth/register",
        json={"email": "carla@example.com", "password": password, "display_name": "C"},
    )
    assert resp.status == 422
    problem = await resp.json()
    assert problem["code"] == "validation_failed"
    [error] = problem["errors"]
    assert error["field"] == "password"
    assert rule in error["message"]
    # Nothing was created: the same email registers fine afterwards.
    ok = await client.post(
        "/api/auth/register",
        json={"email": "carla@example.com", "password": "fine passphrase", "display_name": "C"},
    )
    assert ok.status == 201


@pytest.mark.parametrize(
    ("body", "fields"),
    [
        ({}, {"email", "password", "display_name"}),
        ({"email": "nope", "password": "a long passphrase", "display_name": "N"}, {"email"}),
        (
            {"email": "n@example.com", "password": "a long passphrase", "display_name": "  "},
            {"display_name"},
        ),
        (
            {
                "email": "n@example.com",
                "password": "a long passphrase",
                "display_name": "N",
                "admin": True,
            },
            {"admin"},
        ),
        ({"email": 5, "password": ["x"], "display_name": "N"}, {"email", "password"}),
        ([1, 2], {"body"}),
    ],
)
async def test_register_invalid_fields_list_each_field(
    client: Client, body: Any, fields: set[str]
) -> None:
    resp = await client.post("/api/auth/register", json=body)
    assert resp.status == 422
    problem = await resp.json()
    assert {e["field"] for e in problem["errors"]} == fields


async def test_malformed_json_is_400(client: Client) -> None:
    resp = await client.post(
        "/api/auth/register", data=b'{"email": ', headers={"Content-Type": "application/json"}
    )
    assert resp.status == 400
    assert (await resp.json())["code"] == "malformed_request"


async def test_non_json_body_is_415(client: Client) -> None:
    resp = await client.post("/api/auth/register", data={"email": "x@example.com"})
    assert resp.status == 415


async def test_oversized_body_is_413(client: Client) -> None:
    big = json.dumps({"email": "x@example.com", "password": "p" * (2 << 20), "display_name": "X"})
    resp = await client.post(
        "/api/auth/register",
        data=io.BytesIO(big.encode()),
        headers={"Content-Type": "application/json"},
    )
    assert resp.status == 413
    assert (await resp.json())["code"] == "payload_too_large"


# Login -----------------------------------------------------------------------------------


async def test_login_sets_refresh_cookie_and_returns_token(client: Client) -> None:
    account = await sign_up(client, login=False)
    resp = await client.post(
        "/api/auth/login", json={"email": account.email.upper(), "password": account.password}
    )
    assert resp.status == 200
    body = await resp.json()
    assert body["token_type"] == "Bearer"
    assert body["expires_in"] == 900
    assert body["user"]["email"] == account.email
    assert refresh_cookie(resp)
    assert resp.headers["Cache-Control"] == "no-store"
    me = await client.get("/api/me", headers={"Authorization": f"Bearer {body['access_token']}"})
    assert (await me.json())["user"]["id"] == account.id


async def test_wrong_email_and_wrong_password_look_the_same(client: Client) -> None:
    account = await sign_up(client, login=False)
    wrong_password = await client.post(
        "/api/auth/login", json={"email": account.email, "password": "not the password"}
    )
    no_account = await client.post(
        "/api/auth/login", json={"email": "ghost@example.com", "password": "not the password"}
    )
    assert wrong_password.status == no_account.status == 401
    a, b = await wrong_password.json(), await no_account.json()
    for volatile in ("request_id",):
        a.pop(volatile)
        b.pop(volatile)
    assert a == b
    assert "Set-Cookie" not in wrong_password.headers


async def test_secure_cookie_when_configured(
    aiohttp_client: Any, settings: Any, clock: FakeClock, fast_hashing: Any
) -> None:
    from hub.app import create_app

    secure = settings.model_copy(update={"cookie_secure": True})
    client = await aiohttp_client(create_app(secure, clock=clock, hashing=fast_hashing))
    account = await sign_up(client, login=False)
    resp = await client.post(
        "/api/auth/login", json={"email": account.email, "password": account.password}
    )
    assert "Secure" in resp.headers["Set-Cookie"]


# Refresh rotation ------------------------------------------------------------------------


async def test_refresh_rotates_the_token(client: Client) -> None:
    account = await sign_up(client, login=False)
    login = await client.post(
        "/api/auth/login", json={"email": account.email, "password": account.password}
    )
    first = refresh_cookie(login)
    resp = await refresh_with(client, first)
    assert resp.status == 200
    second = refresh_cookie(resp)
    assert second != first
    body = await resp.json()
    me = await client.get("/api/me", headers={"Authorization": f"Bearer {body['access_token']}"})
    assert me.status == 200
    third = refresh_cookie(await refresh_with(client, second))
    assert third not in (first, second)


async def test_reuse_after_grace_revokes_the_family(client: Client, clock: FakeClock) -> None:
    account = await sign_up(client, login=False)
    login = await client.post(
        "/api/auth/login", json={"email": account.email, "password": account.password}
    )
    access = (await login.json())["access_token"]
    first = refresh_cookie(login)
    second = refresh_cookie(await refresh_with(client, first))
    clock.advance(11)  # past the 10 s grace window

    stolen = await refresh_with(client, first)
    assert stolen.status == 401
    assert (await stolen.json())["code"] == "session_revoked"
    # The cookie is cleared with the 401.
    assert 'cohort_refresh=""' in stolen.headers["Set-Cookie"]

    # Every token of the family is dead now, including the legitimate newest one...
    assert (await refresh_with(client, second)).status == 401
    # ...and so is every access token issued in that session.
    me = await client.get("/api/me", headers={"Authorization": f"Bearer {access}"})
    assert me.status == 401
    assert (await me.json())["code"] == "session_revoked"


async def test_previous_token_within_grace_gets_the_same_successor(
    client: Client, clock: FakeClock
) -> None:
    account = await sign_up(client, login=False)
    login = await client.post(
        "/api/auth/login", json={"email": account.email, "password": account.password}
    )
    first = refresh_cookie(login)
    second = refresh_cookie(await refresh_with(client, first))
    clock.advance(5)
    again = await refresh_with(client, first)  # the second tab, a moment late
    assert again.status == 200
    assert refresh_cookie(again) == second
    # The family is intact and rotates on.
    assert (await refresh_with(client, second)).status == 200


async def test_grace_does_not_cover_older_tokens(client: Client) -> None:
    account = await sign_up(client, login=False)
    login = await client.post(
        "/api/auth/login", json={"email": account.email, "password": account.password}
    )
    first = refresh_cookie(login)
    second = refresh_cookie(await refresh_with(client, first))
    third = refresh_cookie(await refresh_with(client, second))
    # `first` is two generations old: reuse, even inside the time window.
    assert (await refresh_with(client, first)).status == 401
    assert (await refresh_with(client, third)).status == 401


async def test_concurrent_refreshes_of_one_token_both_succeed(client: Client) -> None:
    account = await sign_up(client, login=False)
    login = await client.post(
        "/api/auth/login", json={"email": account.email, "password": account.password}
    )
    token = refresh_cookie(login)
    headers = {"Cookie": f"cohort_refresh={token}"}
    client.session.cookie_jar.clear()
    responses = await asyncio.gather(
        *(client.post("/api/auth/refresh", headers=headers) for _ in range(4))
    )
    assert [r.status for r in responses] == [200] * 4
    assert len({refresh_cookie(r) for r in responses}) == 1


@pytest.mark.parametrize(
    "cookie",
    [None, "", "garbage", "0" * 32 + ".abc", "not-hex-but-32-characters-long!!.x"],
)
async def test_refresh_without_a_valid_cookie_is_401(client: Client, cookie: str | None) -> None:
    headers = {} if cookie is None else {"Cookie": f"cohort_refresh={cookie}"}
    resp = await client.post("/api/auth/refresh", headers=headers)
    assert resp.status == 401
    assert (await resp.json())["code"] == "token_invalid"


async def test_forged_mac_is_rejected_without_revoking(client: Client) -> None:
    account = await sign_up(client, login=False)
    login = await client.post(
        "/api/auth/login", json={"email": account.email, "password": account.password}
    )
    token = refresh_cookie(login)
    token_id, _, mac = token.partition(".")
    forged = f"{token_id}.{'0' * len(mac)}"
    assert (await refresh_with(client, forged)).status == 401
    # A forgery is not a reuse: the real token still works.
    assert (await refresh_with(client, token)).status == 200


# Logout and sessions ---------------------------------------------------------------------


async def test_logout_ends_the_session(client: Client) -> None:
    account = await sign_up(client, login=False)
    login = await client.post(
        "/api/auth/login", json={"email": account.email, "password": account.password}
    )
    token = refresh_cookie(login)
    access = (await login.json())["access_token"]
    resp = await client.post("/api/auth/logout", headers={"Authorization": f"Bearer {access}"})
    assert resp.status == 204
    assert (await refresh_with(client, token)).status == 401
    me = await client.get("/api/me", headers={"Authorization": f"Bearer {access}"})
    assert me.status == 401


async def test_logout_with_only_the_cookie(client: Client) -> None:
    account = await sign_up(client, login=False)
    login = await client.post(
        "/api/auth/login", json={"email": account.email, "password": account.password}
    )
    token = refresh_cookie(login)
    resp = await client.post("/api/auth/logout", headers={"Cookie": f"cohort_refresh={token}"})
    assert resp.status == 204
    assert (await refresh_with(client, token)).status == 401


async def test_sessions_list_and_end_one(client: Client) -> None:
    account = await sign_up(client, login=False)
    other = await client.post(
        "/api/auth/login",
        json={"email": account.email, "password": account.password},
        headers={"User-Agent": "Mozilla/5.0 (X11; Linux x86_64) Firefox/140.0"},
    )
    other_refresh = refresh_cookie(other)
    other_access = (await other.json())["access_token"]
    await log_in(client, account)

    listed = await (await client.get("/api/auth/sessions", headers=account.auth)).json()
    assert len(listed["items"]) == 2
    current = [s for s in listed["items"] if s["current"]]
    assert len(current) == 1
    firefox = next(s for s in listed["items"] if not s["current"])
    assert firefox["device"] == "Firefox on Linux"
    assert firefox["ip"] == "127.0.0.1"

    resp = await client.delete(f"/api/auth/sessions/{firefox['id']}", headers=account.auth)
    assert resp.status == 204
    assert (await refresh_with(client, other_refresh)).status == 401
    me = await client.get("/api/me", headers={"Authorization": f"Bearer {other_access}"})
    assert me.status == 401
    listed = await (await client.get("/api/auth/sessions", headers=account.auth)).json()
    assert [s["current"] for s in listed["items"]] == [True]


async def test_requests_sent_together_each_get_their_own_sessions_answer(
    client: Client, aiohttp_client: Any, settings: Any, clock: FakeClock, fast_hashing: Any
) -> None:
    # On PostgreSQL the session reads of requests waiting at the same time share a statement:
    # each request must still be answered for its own user and session, ended on another hub.
    from hub.app import create_app

    other_hub = await aiohttp_client(create_app(settings, clock=clock, hashing=fast_hashing))
    accounts = [await sign_up(client, f"User{i}") for i in range(9)]
    ended = accounts[::3]
    for account in ended:
        resp = await other_hub.post("/api/auth/logout", headers=account.auth)
        assert resp.status == 204
    sent = accounts * 4
    answers = await asyncio.gather(*(client.get("/api/me", headers=a.auth) for a in sent))
    for account, resp in zip(sent, answers, strict=True):
        body = await resp.json()
        if account in ended:
            assert (resp.status, body["code"]) == (401, "session_revoked")
        else:
            assert (resp.status, body["user"]["id"]) == (200, account.id)


async def test_a_session_ended_on_another_hub_stops_the_next_request_under_load(
    client: Client, aiohttp_client: Any, settings: Any, clock: FakeClock, fast_hashing: Any
) -> None:
    # Other requests keep this hub's session reads busy, so the next request's read may be
    # asked for while another is in PostgreSQL: it must not be answered from that one.
    from hub.app import create_app

    other_hub = await aiohttp_client(create_app(settings, clock=clock, hashing=fast_hashing))
    busy = await sign_up(client, "Busy")
    stop = asyncio.Event()

    async def keep_busy() -> int:
        answered = 0
        while not stop.is_set():
            replies = await asyncio.gather(
                *(client.get("/api/me", headers=busy.auth) for _ in range(8))
            )
            assert [r.status for r in replies] == [200] * 8
            answered += len(replies)
        return answered

    load = asyncio.gather(keep_busy(), keep_busy())
    try:
        for i in range(6):
            account = await sign_up(client, f"Ended{i}")
            assert (await client.get("/api/me", headers=account.auth)).status == 200
            resp = await other_hub.post("/api/auth/logout", headers=account.auth)
            assert resp.status == 204
            after = await client.get("/api/me", headers=account.auth)
            assert after.status == 401
            assert (await after.json())["code"] == "session_revoked"
    finally:
        stop.set()
    assert all(await load)


async def test_cannot_end_someone_elses_session(client: Client) -> None:
    ana = await sign_up(client, "Ana")
    bo = await sign_up(client, "Bo")
    bo_sessions = await (await client.get("/api/auth/sessions", headers=bo.auth)).json()
    bo_session = bo_sessions["items"][0]["id"]
    resp = await client.delete(f"/api/auth/sessions/{bo_session}", headers=ana.auth)
    assert resp.status == 404
    assert (await client.get("/api/me", headers=bo.auth)).status == 200
    resp = await client.delete("/api/auth/sessions/does-not-exist", headers=ana.auth)
    assert resp.status == 404


# Access tokens ---------------------------------------------------------------------------


def _b64(data: dict[str, Any]) -> str:
    return base64.urlsafe_b64encode(json.dumps(data).encode()).rstrip(b"=").decode()


async def _claims_of(account: Account) -> dict[str, Any]:
    payload = account.token.split(".")[1]
    return json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))


async def test_expired_access_token_is_401(client: Client, clock: FakeClock) -> None:
    account = await sign_up(client)
    assert (await client.get("/api/me", headers=account.auth)).status == 200
    clock.advance(901)
    resp = await client.get("/api/me", headers=account.auth)
    assert resp.status == 401
    problem = await resp.json()
    assert problem["code"] == "token_invalid"
    assert "expired" in problem["detail"]
    assert resp.headers["WWW-Authenticate"].startswith("Bearer")


async def test_tampered_access_token_is_401(client: Client) -> None:
    account = await sign_up(client)
    header, _payload, signature = account.token.split(".")
    claims = await _claims_of(account)
    claims["sub"] = "1"  # someone else
    tampered = f"{header}.{_b64(claims)}.{signature}"
    resp = await client.get("/api/me", headers={"Authorization": f"Bearer {tampered}"})
    assert resp.status == 401


async def test_alg_none_is_rejected(client: Client) -> None:
    account = await sign_up(client)
    claims = await _claims_of(account)
    unsigned = f"{_b64({'alg': 'none', 'typ': 'JWT'})}.{_b64(claims)}."
    resp = await client.get("/api/me", headers={"Authorization": f"Bearer {unsigned}"})
    assert resp.status == 401


async def test_rs256_token_is_rejected(client: Client) -> None:
    account = await sign_up(client)
    claims = await _claims_of(account)
    rsa = RSAKey.generate_key(2048)
    token = jwt.encode({"alg": "RS256"}, claims, rsa)
    resp = await client.get("/api/me", headers={"Authorization": f"Bearer {token}"})
    assert resp.status == 401


async def test_hs_signed_with_a_public_key_is_rejected(client: Client) -> None:
    # The classic HS/RS confusion: an HMAC keyed with an RSA public key's bytes.
    account = await sign_up(client)
    claims = await _claims_of(account)
    public_pem = RSAKey.generate_key(2048).as_pem(private=False)
    # joserfc refuses to build this token, so it is built by hand.
    signing_input = f"{_b64({'alg': 'HS256', 'typ': 'JWT'})}.{_b64(claims)}"
    mac = hmac.new(public_pem, signing_input.encode(), hashlib.sha256).digest()
    token = f"{signing_input}.{base64.urlsafe_b64encode(mac).rstrip(b'=').decode()}"
    resp = await client.get("/api/me", headers={"Authorization": f"Bearer {token}"})
    assert resp.status == 401


async def test_other_hmac_algorithm_is_rejected(client: Client) -> None:
    account = await sign_up(client)
    claims = await _claims_of(account)
    key = OctKey.import_key(_derive(SECRET, b"access-token"))
    token = jwt.encode({"alg": "HS512"}, claims, key, algorithms=["HS512"])
    resp = await client.get("/api/me", headers={"Authorization": f"Bearer {token}"})
    assert resp.status == 401


async def test_token_without_exp_is_rejected(client: Client) -> None:
    account = await sign_up(client)
    claims = await _claims_of(account)
    del claims["exp"]
    key = OctKey.import_key(_derive(SECRET, b"access-token"))
    token = jwt.encode({"alg": "HS256"}, claims, key)
    resp = await client.get("/api/me", headers={"Authorization": f"Bearer {token}"})
    assert resp.status == 401
    # The same claims with exp, signed with the same key, do pass: the key was right.
    claims["exp"] = claims["iat"] + 60
    good = jwt.encode({"alg": "HS256"}, claims, key)
    assert (await client.get("/api/me", headers={"Authorization": f"Bearer {good}"})).status == 200


@pytest.mark.parametrize(
    "header", ["", "Bearer", "Bearer ", "Basic dXNlcjpwYXNz", "Bearer not.a.jwt", "Token abc"]
)
async def test_malformed_authorization_is_401(client: Client, header: str) -> None:
    resp = await client.get("/api/me", headers={"Authorization": header} if header else {})
    assert resp.status == 401
    assert resp.content_type == "application/problem+json"


async def test_password_is_rehashed_when_parameters_change(
    aiohttp_client: Any, settings: Any, clock: FakeClock, client: Client
) -> None:
    from argon2 import PasswordHasher
    from sqlalchemy import select

    from hub.app import create_app
    from hub.identity.models import User
    from hub.identity.passwords import PasswordHashing
    from hub.services import HUB

    account = await sign_up(client, login=False)  # hashed at the suite's low cost
    stronger = PasswordHashing(PasswordHasher(time_cost=2, memory_cost=2048, parallelism=1))
    upgraded = await aiohttp_client(create_app(settings, clock=clock, hashing=stronger))
    db = upgraded.app[HUB].db

    async def stored_hash() -> str:
        async with db.sessions() as s:
            return str(await s.scalar(select(User.password_hash).where(User.id == account.id)))

    before = await stored_hash()
    assert "m=1024,t=1" in before
    resp = await upgraded.post(
        "/api/auth/login", json={"email": account.email, "password": account.password}
    )
    assert resp.status == 200
    after = await stored_hash()
    assert after.startswith("$argon2id$")
    assert "m=2048,t=2" in after
    # And the new hash still verifies.
    again = await upgraded.post(
        "/api/auth/login", json={"email": account.email, "password": account.password}
    )
    assert again.status == 200


@pytest.mark.parametrize(
    ("body", "fields"),
    [
        ({}, {"email", "password"}),
        ({"email": "a@example.com"}, {"password"}),
        ({"email": 7, "password": "x" * 12}, {"email"}),
        ({"email": "a@example.com", "password": "x" * 12, "remember": True}, {"remember"}),
        ({"email": "a@example.com", "password": "x" * 2000}, {"password"}),
    ],
)
async def test_login_bad_input_is_422(client: Client, body: Any, fields: set[str]) -> None:
    resp = await client.post("/api/auth/login", json=body)
    assert resp.status == 422
    assert {e["field"] for e in (await resp.json())["errors"]} == fields
