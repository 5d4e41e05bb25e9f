"""The ``__session`` cookie, end to end: the first duplicate wins, the raw header is split on ';'.

As Clerk reads it: the first ``__session`` wins, across one or several ``Cookie`` headers; the
raw header is split on ``;`` before any decoding, so a percent-encoded ``%3B`` cannot forge a
cookie; quoted values are unquoted and malformed neighbours are skipped (docs/security.md
"Decisions"). "F=0": not a single JWKS fetch happened.
"""

from __future__ import annotations

import httpx
import pytest

from clerk_asgi.testing import FakeClock, KeyPair, MockClerk, mint_session_token

from ._middleware_helpers import (
    JWKS_URL,
    Spy,
    assert_401,
    assert_ran,
    call,
    client,
    http_scope,
    identity_headers,
    make_app,
    middleware,
)

pytestmark = pytest.mark.anyio


@pytest.mark.parametrize(
    ("cookies", "user_id"),
    [
        pytest.param(["__session={V}; __session={F}"], "user_test", id="valid-first"),
        pytest.param(["__session={F}; __session={V}"], None, id="forged-first"),
        pytest.param(["__session={V}", "__session={F}"], "user_test", id="two-headers-valid-first"),
        pytest.param(["__session={F}", "__session={V}"], None, id="two-headers-forged-first"),
    ],
)
async def test_first_duplicate_session_cookie_wins(
    clerk: MockClerk,
    clock: FakeClock,
    attacker_key: KeyPair,
    cookies: list[str],
    user_id: str | None,
) -> None:
    """The first __session wins (as Clerk), across one or two Cookie headers."""
    valid = clerk.token(issued_at=clock.now)
    forged = mint_session_token(attacker_key, issued_at=clock.now, user_id="user_evil")
    headers = [("cookie", c.format(V=valid, F=forged)) for c in cookies]
    async with client(make_app(clerk, clock)) as c:
        r = await c.get("/api/things", headers=headers)
    if user_id is None:
        assert_401(r, "token-invalid-signature", presented=True)
    else:
        assert_ran(r, user_id, injected=True)


async def test_percent_encoded_semicolon_cannot_forge_a_session_cookie(
    clerk: MockClerk, clock: FakeClock
) -> None:
    """sid=x%3B__session%3D<T> is one cookie named sid -> signed out."""
    token = clerk.token(issued_at=clock.now)
    async with client(make_app(clerk, clock)) as c:
        r = await c.get(
            "/api/things", headers={"cookie": f"sid=x%3B__session%3D{token}%3B__client_uat%3D1"}
        )
    assert_401(r, "session-token-missing", presented=False)


@pytest.mark.parametrize(
    "cookie",
    [
        '__session="{T}"',
        "__session = {T}",
        "$Version=1; __session={T}",
        'a="unterminated; __session={T}',
        "foo=%C0; __session={T}",
        "novalue; __session={T}",
    ],
    ids=["quoted", "spaces", "version", "unterminated-quote", "bad-escape", "no-equals"],
)
async def test_cookie_syntax_oddities_still_find_the_session(
    clerk: MockClerk, clock: FakeClock, cookie: str
) -> None:
    """Quoted values are unquoted; malformed neighbours do not hide __session."""
    async with client(make_app(clerk, clock)) as c:
        r = await c.get(
            "/api/things", headers={"cookie": cookie.format(T=clerk.token(issued_at=clock.now))}
        )
    assert_ran(r, "user_test", injected=True)


@pytest.mark.parametrize("cookie", ["__session=", "__session", '__session=""', "__session=;a=1"])
async def test_empty_session_cookie_is_no_token(
    clerk: MockClerk, clock: FakeClock, cookie: str
) -> None:
    """An empty or value-less __session is no token at all (F=0)."""
    transport = clerk.transport()
    async with httpx.AsyncClient(transport=transport) as http:
        app = make_app(clerk, clock, jwt_key=None, jwks_url=JWKS_URL, http_client=http)
        async with client(app) as c:
            r = await c.get("/api/things", headers={"cookie": cookie})
    assert_401(r, "session-token-missing", presented=False)
    assert transport.requests == []


async def test_non_latin1_bytes_before_the_session_cookie_are_survived(
    clerk: MockClerk, clock: FakeClock
) -> None:
    """Raw non-ASCII bytes in the Cookie header neither hide __session nor raise."""
    spy = Spy()
    token = clerk.token(issued_at=clock.now).encode()
    sent = await call(
        middleware(spy, clerk, clock),
        http_scope("/api/me", [(b"cookie", b"\xff\xfe=\xc3\xa9; __session=" + token)]),
    )
    assert sent[0]["status"] == 200
    assert identity_headers(spy.scopes[0]) == [(b"x-user-id", b"user_test")]
