"""The way back from the Frontend API: the nonce (or the legacy ``__clerk_handshake`` token)
resolved into ``Set-Cookie`` directives, sent verbatim, the last ``__session*`` one being the
session; development returns to the clean URL, production runs the app signed in.

Mirrors ``@clerk/backend`` ``handshake.test.ts`` (``getHandshakePayload``, "Query Parameter
Cleanup") and ``handshakeToken.test.ts``, end to end through FakeClerk's Frontend API and
Backend API. Deliberate difference: a resolution that fails (used nonce, Backend API error or
timeout, a token that does not verify) falls back to the cookies as they are, where Clerk signs
the browser out ``session-token-missing``.
"""

from __future__ import annotations

import logging
import time
from typing import Any

import anyio
import httpx
import pytest

from clerk_asgi.testing import FakeClerk, FakeClock, KeyPair

from ._handshake_helpers import (
    EXPIRED_DETAIL,
    FETCH,
    HANDSHAKE,
    MESSAGES,
    ORIGIN,
    answer,
    apply,
    bapi_calls,
    carried,
    fapi_handshake,
    handshake,
    handshake_params,
    make_fake,
    observed,
    ran,
    request,
    session_token,
    site,
    to_sign_in,
)

pytestmark = pytest.mark.anyio

URL = ORIGIN + "/dashboard"
EXPIRED = "session-token-expired-refresh-non-eligible-no-refresh-cookie"
NONCE = "__clerk_handshake_nonce"
TOKEN = "__clerk_handshake"


async def signed_in_client(fake: FakeClerk, fmt: str = "nonce") -> tuple[str, str, list[str]]:
    """A signed-in browser sent through the Frontend API's handshake: what it carries back
    (nonce or token), the session id, and the directives the fake stored."""
    client = fake.sign_in(fake.add_user("user_1"))
    answered = await fapi_handshake(fake, client, URL, format=fmt)
    name = NONCE if fmt == "nonce" else TOKEN
    return carried(answered, name), client.session_id, list(fake.handshakes[-1].directives)


def stale(key: KeyPair, clock: FakeClock) -> dict[str, str]:
    """A browser whose session expired (what sent it to the handshake)."""
    return {"__client_uat": str(int(clock.now) - 200), "__session": expired(key, clock)}


def expired(key: KeyPair, clock: FakeClock) -> str:
    return session_token(key, clock, issued=-120, user_id="user_1", session_id="sess_old")


def stored(fake: FakeClerk) -> list[str]:
    return list(fake.handshakes[-1].directives)


def handed_off_again(cookies: dict[str, str]) -> dict[str, Any]:
    """The answer when the cookies are evaluated as they are (an expired session): a new
    handshake."""
    found = handshake(f"{HANDSHAKE}?...", EXPIRED, detail=EXPIRED_DETAIL)
    found["params"] = handshake_params(URL, EXPIRED, session=cookies["__session"])
    return found


# -- nonce --------------------------------------------------------------------------------------


async def test_development_nonce_in_query_then_clean_url(key: KeyPair, clock: FakeClock) -> None:
    """Development: the query nonce resolved once, 307 to the clean URL, then signed in."""
    fake = make_fake(key, clock, "development")
    nonce, session_id, directives = await signed_in_client(fake)
    dev_browser = str(fake.clients[fake.sessions[session_id].client_id].dev_browser)
    cookies = {**stale(key, clock), "__clerk_db_jwt": dev_browser}
    app = site(fake, clock)
    back = await request(app, f"/dashboard?tab=1&{NONCE}={nonce}", cookies=cookies)
    assert answer(back) == {
        "status": 307,
        "cache-control": "no-store",
        "location": URL + "?tab=1",
        "set-cookie": directives,
        "body": "",
    }
    assert bapi_calls(fake) == [("GET", "/v1/clients/handshake_payload")]
    page = await request(app, "/dashboard?tab=1", cookies=apply(cookies, directives))
    assert answer(page) == ran("user_1", session_id)
    assert len(bapi_calls(fake)) == 1


async def test_production_nonce_in_cookie_runs_the_app(key: KeyPair, clock: FakeClock) -> None:
    """Production: the nonce cookie resolved once; the app runs signed in, cookies on its 200."""
    fake = make_fake(key, clock)
    nonce, session_id, directives = await signed_in_client(fake)
    cookies = {**stale(key, clock), NONCE: nonce}
    app = site(fake, clock)
    response = await request(app, cookies=cookies)
    assert answer(response) == ran("user_1", session_id, cookies=directives)
    assert bapi_calls(fake) == [("GET", "/v1/clients/handshake_payload")]
    again = await request(app, cookies=apply(cookies, directives))
    assert answer(again) == ran("user_1", session_id)
    assert len(bapi_calls(fake)) == 1


async def test_production_nonce_in_query_is_read_too(key: KeyPair, clock: FakeClock) -> None:
    """The nonce is read from the query first, then the cookie, on either instance type."""
    fake = make_fake(key, clock)
    nonce, session_id, directives = await signed_in_client(fake)
    response = await request(site(fake, clock), f"/dashboard?{NONCE}={nonce}", cookies={})
    assert answer(response) == ran("user_1", session_id, cookies=directives)


async def test_production_signed_out_payload(key: KeyPair, clock: FakeClock) -> None:
    """A signed-out client's payload clears the cookies; the page is the sign-in redirect."""
    fake = make_fake(key, clock)
    client = fake.sign_in(fake.add_user("user_1"))
    fake.sign_out(client.session_id)
    nonce = carried(await fapi_handshake(fake, client, URL), NONCE)
    directives = stored(fake)
    assert "__session=; Path=/; Max-Age=0" in directives
    app = site(fake, clock)
    cookies = {**stale(key, clock), NONCE: nonce}
    response = await request(app, cookies=cookies)
    assert answer(response) == to_sign_in("session-token-missing", URL, cookies=directives)
    nonce = carried(await fapi_handshake(fake, client, URL), NONCE)
    public = await request(app, "/public/x", cookies={**cookies, NONCE: nonce})
    assert answer(public) == ran(None, reason="session-token-missing", cookies=stored(fake))


async def test_production_refusal_carries_the_cookies(key: KeyPair, clock: FakeClock) -> None:
    """Signed in by the handshake but refused by the rule: the 403 carries every directive."""
    fake = make_fake(key, clock)
    nonce, _, directives = await signed_in_client(fake)
    response = await request(site(fake, clock), "/admin", cookies={NONCE: nonce})
    reason = "authorization-failed"
    assert answer(response) == {
        "status": 403,
        "cache-control": "no-store",
        "content-type": "application/json",
        "set-cookie": directives,
        "x-clerk-auth-reason": reason,
        "x-clerk-auth-status": "signed-in",
        "body": {"error": "forbidden", "reason": reason, "message": MESSAGES[reason]},
    }


async def test_development_signed_out_payload_returns_to_clean_url(
    key: KeyPair, clock: FakeClock
) -> None:
    """Development, signed-out client: the 307 back clears the cookies, then the sign-in page."""
    fake = make_fake(key, clock, "development")
    client = fake.sign_in(fake.add_user("user_1"))
    fake.sign_out(client.session_id)
    nonce = carried(await fapi_handshake(fake, client, URL), NONCE)
    directives = stored(fake)
    cookies = {**stale(key, clock), "__clerk_db_jwt": str(client.dev_browser)}
    app = site(fake, clock)
    back = await request(app, f"/dashboard?{NONCE}={nonce}", cookies=cookies)
    assert (back.status_code, back.headers["location"]) == (307, URL)
    assert back.headers.get_list("set-cookie") == directives
    page = await request(app, cookies=apply(cookies, directives))
    assert answer(page) == to_sign_in("session-token-and-uat-missing", URL)


async def test_nonce_is_not_resolved_on_other_requests(key: KeyPair, clock: FakeClock) -> None:
    """A fetch carrying a nonce never calls the Backend API: its cookies decide as they are."""
    fake = make_fake(key, clock)
    nonce, _, _ = await signed_in_client(fake)
    cookies = {**stale(key, clock), NONCE: nonce}
    response = await request(site(fake, clock), "/api/x", cookies=cookies, headers=FETCH)
    assert response.status_code == 401
    assert response.headers["x-clerk-auth-reason"] == EXPIRED
    assert bapi_calls(fake) == []


# -- legacy token -------------------------------------------------------------------------------


async def test_production_legacy_token_in_cookie(key: KeyPair, clock: FakeClock) -> None:
    """A verified __clerk_handshake cookie gives its directives; no Backend API call."""
    fake = make_fake(key, clock)
    token, session_id, directives = await signed_in_client(fake, "token")
    response = await request(site(fake, clock), cookies={**stale(key, clock), TOKEN: token})
    assert answer(response) == ran("user_1", session_id, cookies=directives)
    assert bapi_calls(fake) == []


async def test_development_legacy_token_in_query(key: KeyPair, clock: FakeClock) -> None:
    """Development: a verified __clerk_handshake query token, 307 to the clean URL."""
    fake = make_fake(key, clock, "development")
    token, session_id, directives = await signed_in_client(fake, "token")
    client = fake.clients[fake.sessions[session_id].client_id]
    cookies = {"__clerk_db_jwt": str(client.dev_browser)}
    response = await request(site(fake, clock), f"/dashboard?{TOKEN}={token}", cookies=cookies)
    assert (response.status_code, response.headers["location"]) == (307, URL)
    assert response.headers.get_list("set-cookie") == directives


def legacy(key: KeyPair, directives: Any, **header: Any) -> str:
    """A handshake token signed by ``key`` (``cat`` session unless ``header`` says otherwise)."""
    jose = {"alg": "RS256", "kid": key.kid, "typ": "JWT", "cat": "cl_B7d4PD111AAA", **header}
    return key.sign({k: v for k, v in jose.items() if v is not None}, {"handshake": directives})


async def test_last_session_directive_is_the_session(key: KeyPair, clock: FakeClock) -> None:
    """The last ``__session*`` directive is the session (Clerk's loop overwrites)."""
    fake = make_fake(key, clock)
    first = session_token(key, clock, user_id="user_a", session_id="sess_a")
    last = session_token(key, clock, user_id="user_b", session_id="sess_b")
    directives = [
        f"__session={first}; Path=/; Secure; SameSite=Lax",
        f"__client_uat={int(clock.now)}; Path=/",
        f"__session_{fake.cookie_suffix}={last}; Path=/; Secure; SameSite=Lax",
    ]
    cookies = {TOKEN: legacy(key, directives)}
    response = await request(site(fake, clock), cookies=cookies)
    assert answer(response) == ran("user_b", "sess_b", cookies=directives)


async def test_last_session_directive_clearing_signs_out(key: KeyPair, clock: FakeClock) -> None:
    """A clearing ``__session=`` last signs the browser out ``session-token-missing``."""
    fake = make_fake(key, clock)
    valid = session_token(key, clock)
    directives = [f"__session={valid}; Path=/", "__session=; Path=/; Max-Age=0"]
    response = await request(site(fake, clock), cookies={TOKEN: legacy(key, directives)})
    assert answer(response) == to_sign_in("session-token-missing", URL, cookies=directives)


@pytest.mark.parametrize(
    "category",
    [pytest.param(None, id="no-cat"), pytest.param("cl_I7d4PD111III", id="ignore-category")],
)
async def test_legacy_token_categories_accepted(
    key: KeyPair, clock: FakeClock, category: str | None
) -> None:
    """A handshake token without ``cat``, or with the ignore category, is accepted."""
    fake = make_fake(key, clock)
    directives = [f"__session={session_token(key, clock)}; Path=/"]
    cookies = {TOKEN: legacy(key, directives, cat=category)}
    response = await request(site(fake, clock), cookies=cookies)
    assert answer(response) == ran("user_1", "sess_1", cookies=directives)


IGNORED_TOKENS = [
    pytest.param("template", id="jwt-template-category"),
    pytest.param("m2m", id="m2m-category"),
    pytest.param("unknown", id="unknown-category"),
    pytest.param("signature", id="bad-signature"),
    pytest.param("string", id="handshake-not-a-list"),
    pytest.param("numbers", id="handshake-not-strings"),
    pytest.param("alg", id="hs256"),
    pytest.param("garbage", id="not-a-jwt"),
]


@pytest.mark.parametrize("kind", IGNORED_TOKENS)
async def test_legacy_token_that_does_not_verify_is_ignored(
    key: KeyPair, attacker_key: KeyPair, clock: FakeClock, kind: str
) -> None:
    """A handshake token that does not verify is ignored: the cookies decide as they are."""
    fake = make_fake(key, clock)
    good = [f"__session={session_token(key, clock, user_id='user_evil')}; Path=/"]
    token = {
        "template": legacy(key, good, cat="cl_B7d4PD222AAA"),
        "m2m": legacy(key, good, cat="cl_B7d4PD333AAA"),
        "unknown": legacy(key, good, cat="cl_whatever"),
        "signature": legacy(attacker_key, good),
        "string": legacy(key, good[0]),
        "numbers": legacy(key, [1, 2]),
        "alg": legacy(key, good, alg="HS256"),
        "garbage": "not.a.jwt",
    }[kind]
    cookies = stale(key, clock)
    response = await request(site(fake, clock), cookies={**cookies, TOKEN: token})
    assert observed(response) == handed_off_again(cookies)


async def test_nonce_wins_over_token(key: KeyPair, clock: FakeClock) -> None:
    """With both a nonce and a legacy token, the nonce's directives are used."""
    fake = make_fake(key, clock)
    nonce, session_id, directives = await signed_in_client(fake)
    other = [f"__session={session_token(key, clock, user_id='user_t')}; Path=/"]
    cookies = {NONCE: nonce, TOKEN: legacy(key, other)}
    response = await request(site(fake, clock), cookies=cookies)
    assert answer(response) == ran("user_1", session_id, cookies=directives)
    assert len(bapi_calls(fake)) == 1


# -- failed resolutions fall back --------------------------------------------------------------


async def test_used_nonce_falls_back(key: KeyPair, clock: FakeClock) -> None:
    """A used nonce (404) falls back to the cookies as they are (Clerk: signed out)."""
    fake = make_fake(key, clock)
    nonce, _, _ = await signed_in_client(fake)
    app = site(fake, clock)
    cookies = {**stale(key, clock), NONCE: nonce}
    first = await request(app, cookies=cookies)
    assert first.status_code == 200
    replay = await request(app, cookies=cookies)
    assert observed(replay) == handed_off_again(cookies)
    assert len(bapi_calls(fake)) == 2


async def test_used_nonce_with_valid_session_signs_in(key: KeyPair, clock: FakeClock) -> None:
    """A stale nonce beside a valid session signs in (Clerk: signed out session-token-missing)."""
    fake = make_fake(key, clock)
    cookies = {
        "__client_uat": str(int(clock.now) - 10),
        "__session": session_token(key, clock),
        NONCE: "already_used_nonce",
    }
    response = await request(site(fake, clock), cookies=cookies)
    assert answer(response) == ran("user_1", "sess_1")
    assert len(bapi_calls(fake)) == 1


@pytest.mark.parametrize("status", [400, 401, 404, 429, 500, 502, 503])
async def test_backend_api_error_falls_back(
    key: KeyPair, clock: FakeClock, status: int, caplog: pytest.LogCaptureFixture
) -> None:
    """A Backend API error falls back (Clerk: signed out), logged with Clerk's code."""
    fake = make_fake(key, clock)
    nonce, _, _ = await signed_in_client(fake)
    fake.payload_error = status
    cookies = {**stale(key, clock), NONCE: nonce}
    response = await request(site(fake, clock), cookies=cookies)
    assert observed(response) == handed_off_again(cookies)
    assert [r.getMessage() for r in caplog.records if r.name == "clerk_asgi._handshake"] == [
        "Clerk handshake payload unavailable (internal_clerk_error): Clerk Backend API: "
        f"FakeClerk.payload_error is set (status {status}, code internal_clerk_error)"
    ]


async def test_backend_api_timeout_falls_back(key: KeyPair, clock: FakeClock) -> None:
    """A Backend API that never answers is given up after api_timeout, then falls back."""
    fake = make_fake(key, clock)
    nonce, _, _ = await signed_in_client(fake)
    fake.payload_gate = anyio.Event()  # never set: the call hangs
    cookies = {**stale(key, clock), NONCE: nonce}
    started = time.monotonic()
    response = await request(site(fake, clock, api_timeout=0.05), cookies=cookies)
    assert time.monotonic() - started < 2
    assert observed(response) == handed_off_again(cookies)


async def test_backend_api_unreachable_falls_back(key: KeyPair, clock: FakeClock) -> None:
    """A Backend API that cannot be reached falls back."""

    def refuse(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("connection refused", request=request)

    fake = make_fake(key, clock)
    cookies = {**stale(key, clock), NONCE: "some_nonce"}
    response = await request(site(fake, clock, bapi=httpx.MockTransport(refuse)), cookies=cookies)
    assert observed(response) == handed_off_again(cookies)


async def test_session_that_does_not_verify_falls_back(
    key: KeyPair, attacker_key: KeyPair, clock: FakeClock, caplog: pytest.LogCaptureFixture
) -> None:
    """Production: a payload session that does not verify falls back, with a hint on the keys."""
    fake = make_fake(key, clock)
    forged = session_token(attacker_key, clock)
    token = legacy(key, [f"__session={forged}; Path=/"])
    cookies = stale(key, clock)
    response = await request(site(fake, clock), cookies={**cookies, TOKEN: token})
    assert observed(response) == handed_off_again(cookies)
    assert [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING] == [
        "The session token of a Clerk handshake does not verify (token-invalid-signature): are "
        "the Clerk keys of this server those of the instance?"
    ]


async def test_empty_payload_signs_out(key: KeyPair, clock: FakeClock) -> None:
    """An empty payload resolves to signed out ``session-token-missing`` (Clerk's outcome)."""

    def empty(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, json={"directives": []})

    fake = make_fake(key, clock)
    cookies = {**stale(key, clock), NONCE: "nonce_1"}
    response = await request(site(fake, clock, bapi=httpx.MockTransport(empty)), cookies=cookies)
    assert answer(response) == to_sign_in("session-token-missing", URL)


async def test_backend_api_request_carries_secret_and_version(
    key: KeyPair, clock: FakeClock
) -> None:
    """The payload is fetched with the secret key, Clerk's API version and the nonce only."""
    seen: list[httpx.Request] = []

    def record(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(200, json={"directives": []})

    fake = make_fake(key, clock)
    await request(site(fake, clock, bapi=httpx.MockTransport(record)), cookies={NONCE: "n0nce-._~"})
    [sent] = seen
    assert str(sent.url) == (
        "https://clerk.example.test/v1/clients/handshake_payload?nonce=n0nce-._~"
    )
    assert sent.headers["authorization"] == f"Bearer {fake.secret_key}"
    assert sent.headers["clerk-api-version"] == "2026-05-12"
    assert sent.method == "GET"
