"""Where the session token comes from: the Authorization header or the __session cookie only.

End to end through the middleware (the extraction functions themselves are tabled in
test_tokens.py). As in ``@clerk/backend``'s ``authenticateRequest``: ``Bearer`` is exact-case,
a bare token counts, and a header that yields a token wins over the cookie even when it is
invalid (docs/security.md "Decisions"). "F=0" in a docstring means that not a single JWKS
fetch happened: the request was refused before any key lookup.
"""

from __future__ import annotations

import logging

import httpx
import pytest

from clerk_asgi.testing import FakeClock, KeyPair, MockClerk, mint_session_token

from ._middleware_helpers import (
    BROWSER,
    FETCH,
    JWKS_URL,
    assert_401,
    assert_ran,
    assert_redirect,
    client,
    library_records,
    make_app,
    session,
    sign_in_location,
)
from .helpers import IGNORED_SCHEME, bearer

MISSING = "session-token-missing"

pytestmark = pytest.mark.anyio


# -- No credentials: no key lookup at all ---------------------------------------------------------


async def test_no_credentials_never_fetches_keys(clerk: MockClerk, clock: FakeClock) -> None:
    """No token at all -> redirect / 401 and not a single JWKS fetch (F=0)."""
    transport = clerk.transport()
    async with httpx.AsyncClient(transport=transport) as http:
        app = make_app(clerk, clock, jwt_key=None, jwks_url=JWKS_URL, http_client=http)
        async with client(app) as c:
            page = await c.get("/dashboard", headers=BROWSER)
            api = await c.get("/api/things", headers=FETCH)
    assert_redirect(
        page, sign_in_location("https://app.example.com/dashboard"), "session-token-missing"
    )
    assert_401(api, "session-token-missing", presented=False)
    assert transport.requests == []


# -- The Authorization header: exact-case Bearer, a bare token, exactly one header ----------------


@pytest.mark.parametrize(
    ("value", "reason", "presented", "message"),
    [
        pytest.param("Basic dXNlcjpwYXNz", MISSING, False, IGNORED_SCHEME, id="basic"),
        pytest.param("Token {T}", MISSING, False, IGNORED_SCHEME, id="token-scheme"),
        pytest.param("bearer {T}", MISSING, False, IGNORED_SCHEME, id="lowercase-bearer"),
        pytest.param("BEARER {T}", MISSING, False, IGNORED_SCHEME, id="uppercase-bearer"),
        pytest.param("Bearer", "token-invalid", True, None, id="bearer-alone"),
        pytest.param("Bearer-invalid", "token-invalid", True, None, id="bearer-dash"),
        pytest.param("Bearer  {T}", "token-invalid", True, None, id="two-spaces"),
        pytest.param("Bearer {T} extra", "token-invalid", True, None, id="trailing-garbage"),
        pytest.param("Bearer {T},Bearer {T}", "token-invalid", True, None, id="comma-list"),
    ],
)
async def test_odd_authorization_schemes_never_authenticate(
    clerk: MockClerk,
    clock: FakeClock,
    value: str,
    reason: str,
    presented: bool,
    message: str | None,
) -> None:
    """Odd schemes and shapes are refused; Bearer is exact-case (as Clerk), no key fetch; an
    ignored scheme is named in the message."""
    token = clerk.token(issued_at=clock.now)
    transport = clerk.transport()
    async with httpx.AsyncClient(transport=transport) as http:
        app = make_app(clerk, clock, jwt_key=None, jwks_url=JWKS_URL, http_client=http)
        async with client(app) as c:
            r = await c.get("/api/things", headers={"authorization": value.format(T=token)})
    assert_401(r, reason, presented=presented, message=message)
    assert transport.requests == []


async def test_bare_token_in_authorization_is_accepted(clerk: MockClerk, clock: FakeClock) -> None:
    """A bare token (no scheme) in Authorization is a token, as in Clerk."""
    async with client(make_app(clerk, clock)) as c:
        r = await c.get("/api/things", headers={"authorization": clerk.token(issued_at=clock.now)})
    assert_ran(r, "user_test", injected=True)


@pytest.mark.parametrize("valid_first", [True, False], ids=["valid-first", "forged-first"])
async def test_two_authorization_headers_are_refused_in_either_order(
    clerk: MockClerk, clock: FakeClock, attacker_key: KeyPair, valid_first: bool
) -> None:
    """Two Authorization headers -> 401 token-invalid, whatever their order."""
    valid = ("authorization", f"Bearer {clerk.token(issued_at=clock.now)}")
    forged = ("authorization", f"Bearer {mint_session_token(attacker_key, issued_at=clock.now)}")
    headers = [valid, forged] if valid_first else [forged, valid]
    async with client(make_app(clerk, clock)) as c:
        r = await c.get("/api/things", headers=headers)
        twice = await c.get("/api/things", headers=[valid, valid])
        thrice = await c.get("/api/things", headers=[valid, forged, valid])
    assert_401(r, "token-invalid", presented=True)
    assert_401(twice, "token-invalid", presented=True)
    assert_401(thrice, "token-invalid", presented=True)


async def test_one_authorization_among_repeated_headers_is_used(
    clerk: MockClerk, clock: FakeClock
) -> None:
    """Repeated Accept and Cookie headers change nothing: the one Authorization header wins."""
    headers = [
        ("accept", "application/json"),
        ("cookie", "theme=dark"),
        ("authorization", f"Bearer {clerk.token(issued_at=clock.now)}"),
        ("accept", "text/plain"),
        ("cookie", "__session=not-a-token"),
    ]
    async with client(make_app(clerk, clock)) as c:
        r = await c.get("/api/things", headers=headers)
    assert_ran(r, "user_test", injected=True)


# -- Header versus cookie: a header that yields a token wins, even when invalid -------------------


async def test_header_token_wins_over_cookie_even_when_invalid(
    clerk: MockClerk, clock: FakeClock, attacker_key: KeyPair
) -> None:
    """A forged header token is refused; the valid cookie next to it is not tried."""
    forged = mint_session_token(attacker_key, issued_at=clock.now)
    headers = {**bearer(forged), **session(clerk.token(issued_at=clock.now))}
    async with client(make_app(clerk, clock)) as c:
        r = await c.get("/api/things", headers=headers)
    assert_401(r, "token-invalid-signature", presented=True)


async def test_valid_header_token_wins_over_a_forged_cookie(
    clerk: MockClerk, clock: FakeClock, attacker_key: KeyPair
) -> None:
    """A valid header token authenticates; a forged cookie next to it is never looked at."""
    forged = mint_session_token(attacker_key, issued_at=clock.now, user_id="user_evil")
    headers = {**bearer(clerk.token(issued_at=clock.now)), **session(forged)}
    async with client(make_app(clerk, clock)) as c:
        r = await c.get("/api/things", headers=headers)
    assert_ran(r, "user_test", injected=True)


@pytest.mark.parametrize(
    "authorization",
    ["Basic dXNlcjpwYXNz", "bearer {T}", "Token {T}", ""],
    ids=["basic", "lowercase-bearer", "token-scheme", "empty"],
)
async def test_non_bearer_authorization_falls_back_to_the_cookie(
    clerk: MockClerk, clock: FakeClock, attacker_key: KeyPair, authorization: str
) -> None:
    """An Authorization header that yields no token is ignored; the cookie is used."""
    forged = mint_session_token(attacker_key, issued_at=clock.now)
    headers = {
        "authorization": authorization.format(T=forged),
        **session(clerk.token(issued_at=clock.now, user_id="user_cookie")),
    }
    async with client(make_app(clerk, clock)) as c:
        r = await c.get("/api/things", headers=headers)
    assert_ran(r, "user_cookie", injected=True)


# -- Nowhere else: query strings, other headers, other cookie names -------------------------------


@pytest.mark.parametrize(
    ("url", "headers"),
    [
        pytest.param("/api/things?token={T}", {}, id="query-token"),
        pytest.param("/api/things?__session={T}", {}, id="query-session"),
        pytest.param("/api/things?__clerk_handshake={T}", {}, id="query-handshake"),
        pytest.param("/api/things?__clerk_db_jwt={T}", {}, id="query-db-jwt"),
        pytest.param("/api/things", {"x-auth-token": "{T}"}, id="x-auth-token"),
        pytest.param("/api/things", {"x-clerk-auth-token": "{T}"}, id="x-clerk-auth-token"),
        pytest.param("/api/things", {"cookie": "session={T}"}, id="cookie-session"),
        pytest.param("/api/things", {"cookie": "__Session={T}"}, id="cookie-other-case"),
        pytest.param("/api/things", {"cookie": "__session_abc={T}"}, id="cookie-suffixed"),
        pytest.param("/api/things", {"cookie": "__sessionX={T}"}, id="cookie-longer-name"),
    ],
)
async def test_tokens_in_other_places_are_not_read(
    clerk: MockClerk,
    clock: FakeClock,
    caplog: pytest.LogCaptureFixture,
    url: str,
    headers: dict[str, str],
) -> None:
    """Only Authorization and the exact __session cookie carry tokens; no token logged, F=0."""
    token = clerk.token(issued_at=clock.now)
    transport = clerk.transport()
    caplog.set_level(logging.DEBUG, logger="clerk_asgi")
    async with httpx.AsyncClient(transport=transport) as http:
        app = make_app(clerk, clock, jwt_key=None, jwks_url=JWKS_URL, http_client=http)
        async with client(app) as c:
            r = await c.get(
                url.format(T=token), headers={k: v.format(T=token) for k, v in headers.items()}
            )
    assert_401(r, "session-token-missing", presented=False)
    assert transport.requests == []
    assert all(token not in r.getMessage() for r in library_records(caplog))
