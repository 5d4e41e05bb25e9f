"""The identity header: every client copy of x-user-id is removed, API routes get exactly one.

The middleware removes every client-sent header whose name is some spelling of ``x-user-id``
(any case, ``_`` for ``-``) on every route, and injects exactly one, the verified user, on api
routes, echoing it on the response (docs/responses.md "The x-user-id header"). Hand-built
scopes show the exact header list the app receives.
"""

from __future__ import annotations

import pytest

from clerk_asgi import Auth
from clerk_asgi.testing import FakeClock, MockClerk

from ._middleware_helpers import (
    LOOKALIKES,
    SPOOFS,
    Spy,
    assert_ran,
    call,
    client,
    http_scope,
    identity_headers,
    make_app,
    middleware,
    response_headers,
)

pytestmark = pytest.mark.anyio


@pytest.mark.parametrize("path", ["/public/info", "/", "/sign-in"])
async def test_spoofed_identity_is_removed_on_public_routes(
    clerk: MockClerk, clock: FakeClock, path: str
) -> None:
    """Every client spelling of x-user-id is removed on public routes; the app sees none."""
    spy = Spy()
    sent = await call(middleware(spy, clerk, clock), http_scope(path, SPOOFS))
    assert sent[0]["status"] == 200
    (scope,) = spy.scopes
    assert identity_headers(scope) == []
    assert scope["headers"] == [(b"host", b"app.example.com")]
    assert "x-user-id" not in response_headers(sent)


@pytest.mark.parametrize("path", ["/public/info", "/api/me"])
@pytest.mark.parametrize("spoof", SPOOFS, ids=[n.decode() + "=" + v.decode() for n, v in SPOOFS])
async def test_each_identity_spelling_alone_is_removed(
    clerk: MockClerk, clock: FakeClock, path: str, spoof: tuple[bytes, bytes]
) -> None:
    """Any single spelling of x-user-id (case, '_' for '-') is removed by itself."""
    spy = Spy()
    authorization = (b"authorization", f"Bearer {clerk.token(issued_at=clock.now)}".encode())
    await call(middleware(spy, clerk, clock), http_scope(path, [spoof, authorization]))
    (scope,) = spy.scopes
    injected = [(b"x-user-id", b"user_test")] if path.startswith("/api/") else []
    assert scope["headers"] == [(b"host", b"app.example.com"), authorization, *injected]


@pytest.mark.parametrize("auth_first", [True, False], ids=["auth-first", "spoof-first"])
async def test_spoofed_identity_is_replaced_by_exactly_one_on_api_routes(
    clerk: MockClerk, clock: FakeClock, auth_first: bool
) -> None:
    """All client copies are removed, then exactly one x-user-id = the verified user."""
    spy = Spy()
    authorization = (b"authorization", f"Bearer {clerk.token(issued_at=clock.now)}".encode())
    headers = [authorization, *SPOOFS] if auth_first else [*SPOOFS, authorization]
    sent = await call(middleware(spy, clerk, clock), http_scope("/api/me", headers + LOOKALIKES))
    (scope,) = spy.scopes
    assert identity_headers(scope) == [(b"x-user-id", b"user_test")]
    assert scope["headers"] == [
        (b"host", b"app.example.com"),
        authorization,
        *LOOKALIKES,
        (b"x-user-id", b"user_test"),
    ]
    assert response_headers(sent)["x-user-id"] == "user_test"


async def test_spoofed_identity_is_removed_on_protect_routes_without_injection(
    clerk: MockClerk, clock: FakeClock
) -> None:
    """On protect routes client copies are removed and nothing is injected."""
    spy = Spy()
    authorization = (b"authorization", f"Bearer {clerk.token(issued_at=clock.now)}".encode())
    sent = await call(
        middleware(spy, clerk, clock), http_scope("/dashboard", [*SPOOFS, authorization])
    )
    (scope,) = spy.scopes
    assert identity_headers(scope) == []
    assert "x-user-id" not in response_headers(sent)


async def test_spoofed_identity_through_httpx_never_reaches_the_handler(
    clerk: MockClerk, clock: FakeClock
) -> None:
    """x-user-id sent before and after Authorization, twice: the handler sees only ours."""
    token = clerk.token(issued_at=clock.now)
    headers = [
        ("x-user-id", "user_admin"),
        ("authorization", f"Bearer {token}"),
        ("x-user-id", "user_admin"),
        ("x_user_id", "user_admin"),
    ]
    async with client(make_app(clerk, clock)) as c:
        api = await c.get("/api/me", headers=headers)
        public = await c.get("/public/x", headers=headers)
        anonymous = await c.get("/public/x", headers=[("x-user-id", "user_admin")])
    assert_ran(api, "user_test", injected=True)
    assert_ran(public, "user_test")
    assert_ran(anonymous, None, "session-token-missing")


async def test_only_x_user_id_is_touched_and_auth_never_comes_from_headers(
    clerk: MockClerk, clock: FakeClock
) -> None:
    """Clerk-looking request headers neither sign anyone in nor get rewritten."""
    spy = Spy()
    spoofs = [
        (b"x-clerk-auth-status", b"signed-in"),
        (b"x-clerk-auth-token", b"x"),
        (b"x-clerk-user-id", b"user_admin"),
        (b"x-user-email", b"admin@example.com"),
        (b"x-org-id", b"org_1"),
        (b"x-forwarded-user", b"user_admin"),
        (b"remote-user", b"user_admin"),
    ]
    mw = middleware(spy, clerk, clock)
    public = await call(mw, http_scope("/public/x", spoofs))
    api = await call(mw, http_scope("/api/me", spoofs))
    assert public[0]["status"] == 200
    assert spy.scopes[0]["clerk_asgi.auth"] == Auth.signed_out("session-token-missing")
    assert spy.scopes[0]["headers"] == [(b"host", b"app.example.com"), *spoofs]
    assert api[0]["status"] == 401
