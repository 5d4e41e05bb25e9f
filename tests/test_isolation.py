"""Isolation: concurrent requests never see each other's user, and the caller's scope is intact.

The middleware keeps no per-request state on itself: each request gets a new scope holding
its own Auth, the caller's scope (dict and header list) is never mutated, and the credentials
are forwarded to the app exactly as received.
"""

from __future__ import annotations

import anyio
import anyio.lowlevel
import httpx
import pytest

from clerk_asgi.testing import FakeClock, MockClerk

from ._middleware_helpers import (
    SPOOFS,
    Spy,
    call,
    client,
    http_scope,
    make_app,
    middleware,
)
from .helpers import bearer

pytestmark = pytest.mark.anyio


async def test_interleaved_requests_each_see_their_own_user(
    clerk: MockClerk, clock: FakeClock
) -> None:
    """1000 interleaved requests from two users each see only their own x-user-id."""
    tokens = {
        "user_a": clerk.token(issued_at=clock.now, user_id="user_a"),
        "user_b": clerk.token(issued_at=clock.now, user_id="user_b"),
    }
    results: list[tuple[str, httpx.Response]] = []

    async def one(c: httpx.AsyncClient, i: int) -> None:
        user = "user_a" if i % 2 else "user_b"
        # A scrambled number of awaits inside the handler interleaves the requests.
        r = await c.get(f"/api/me?checkpoints={(i * 7919) % 11}", headers=bearer(tokens[user]))
        results.append((user, r))

    async with client(make_app(clerk, clock)) as c, anyio.create_task_group() as tg:
        for i in range(1000):
            tg.start_soon(one, c, i)
    assert len(results) == 1000
    for user, r in results:
        assert r.status_code == 200
        assert r.json() == {"user_id": user, "reason": None, "x-user-id": [user]}
        assert r.headers.get_list("x-user-id") == [user]


async def test_the_callers_scope_is_never_mutated(clerk: MockClerk, clock: FakeClock) -> None:
    """The middleware hands the app a new scope; the caller's dict and list are intact."""
    spy = Spy()
    token = clerk.token(issued_at=clock.now)
    scope = http_scope("/api/me", [(b"authorization", f"Bearer {token}".encode()), *SPOOFS])
    before = {**scope, "headers": list(scope["headers"])}
    headers_list = scope["headers"]
    await call(middleware(spy, clerk, clock), scope)
    assert scope == before
    assert scope["headers"] is headers_list
    assert spy.scopes[0] is not scope
    assert spy.scopes[0]["headers"] is not headers_list


async def test_authorization_header_and_cookie_are_forwarded_unchanged(
    clerk: MockClerk, clock: FakeClock
) -> None:
    """The verified token is forwarded as received (not stripped); Auth.token is it."""
    spy = Spy()
    token = clerk.token(issued_at=clock.now)
    other = clerk.token(issued_at=clock.now, user_id="user_other")
    headers = [
        (b"authorization", f"Bearer {token}".encode()),
        (b"cookie", f"a=1; __session={other}".encode()),
    ]
    await call(middleware(spy, clerk, clock), http_scope("/api/me", headers))
    (scope,) = spy.scopes
    assert scope["headers"] == [
        (b"host", b"app.example.com"),
        *headers,
        (b"x-user-id", b"user_test"),
    ]
    auth = scope["clerk_asgi.auth"]
    assert auth.token == token
    assert auth.user_id == "user_test"
