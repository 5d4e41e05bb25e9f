"""The middleware and the revocation list: a listed session's tokens are refused at once.

``session-revoked`` is a signed-out reason like the others: 401 on API calls, the sign-in
redirect on page loads of protected pages, a signed-out Auth on public routes, and with the
handshake on, a page load handed to Clerk's Frontend API (which knows the session ended).
Tokens served from the verified-token cache are checked too. With the Redis list unreachable
the request goes through by default, or gets 503 with ``on_error="refuse"``.
"""

from __future__ import annotations

from typing import Any

import pytest
from fastapi import Depends, FastAPI

from clerk_asgi import Auth, ClerkConfig, ClerkMiddleware, current_auth
from clerk_asgi._revocation import RedisRevocationList, RevocationList
from clerk_asgi.exceptions import ConfigurationError
from clerk_asgi.testing import FakeClock, KeyPair, MockClerk

from ._handshake_helpers import (
    HANDSHAKE,
    NAV,
    answer,
    handshake,
    handshake_params,
    make_fake,
    observed,
    ran,
    request,
    session_token,
    site,
    unauthorized,
)
from ._handshake_helpers import (
    ORIGIN as SITE,
)
from ._middleware_helpers import (
    BROWSER,
    assert_401,
    assert_ran,
    assert_redirect,
    client,
    make_app,
    sign_in_location,
)
from ._redis_helpers import RedisServer
from .helpers import MESSAGES, ORIGIN, bearer

pytestmark = pytest.mark.anyio


async def test_a_revoked_sessions_bearer_token_is_refused_at_once(
    clerk: MockClerk, clock: FakeClock
) -> None:
    listed = RevocationList(clock=clock)
    app = make_app(clerk, clock, revocation_list=listed)
    token = clerk.token(issued_at=clock.now, session_id="sess_1")
    other = clerk.token(issued_at=clock.now, user_id="user_test", session_id="sess_2")
    async with client(app) as c:
        assert_ran(await c.get("/api/me", headers=bearer(token)), "user_test", injected=True)
        await listed.revoke("sess_1")
        # The token is in the verified-token cache: it is checked all the same.
        assert_401(await c.get("/api/me", headers=bearer(token)), "session-revoked", presented=True)
        # The user's other session (another device) is not affected.
        assert_ran(await c.get("/api/me", headers=bearer(other)), "user_test", injected=True)


async def test_a_revoked_session_on_a_protected_page_is_sent_to_sign_in(
    clerk: MockClerk, clock: FakeClock
) -> None:
    listed = RevocationList(clock=clock)
    await listed.revoke("sess_1")
    app = make_app(clerk, clock, revocation_list=listed, sign_in_url="/sign-in")
    token = clerk.token(issued_at=clock.now, session_id="sess_1")
    async with client(app) as c:
        r = await c.get("/dashboard", headers={**BROWSER, "cookie": f"__session={token}"})
    assert_redirect(r, sign_in_location(ORIGIN + "/dashboard"), "session-revoked")


async def test_a_public_route_sees_a_revoked_session_as_signed_out(
    clerk: MockClerk, clock: FakeClock
) -> None:
    listed = RevocationList(clock=clock)
    await listed.revoke("sess_1")
    app = make_app(clerk, clock, revocation_list=listed)
    async with client(app) as c:
        r = await c.get("/public", headers=bearer(clerk.token(issued_at=clock.now)))
    # mint_session_token's default session id is sess_test: not listed.
    assert_ran(r, "user_test")
    async with client(app) as c:
        token = clerk.token(issued_at=clock.now, session_id="sess_1")
        r = await c.get("/public", headers=bearer(token))
    assert_ran(r, None, "session-revoked")


async def test_entries_lapse_after_the_lifetime(clerk: MockClerk, clock: FakeClock) -> None:
    listed = RevocationList(clock=clock, lifetime=30)
    app = make_app(clerk, clock, revocation_list=listed)
    await listed.revoke("sess_1")
    clock.advance(30)
    # A token of that session minted now (Clerk would not, once revoked) is no longer refused:
    # the list only has to outlive the tokens that existed when the session was revoked.
    token = clerk.token(issued_at=clock.now, session_id="sess_1")
    async with client(app) as c:
        assert_ran(await c.get("/api/me", headers=bearer(token)), "user_test", injected=True)


async def test_without_a_list_nothing_is_checked(clerk: MockClerk, clock: FakeClock) -> None:
    app = make_app(clerk, clock)
    async with client(app) as c:
        r = await c.get("/api/me", headers=bearer(clerk.token(issued_at=clock.now)))
    assert_ran(r, "user_test", injected=True)


def test_the_config_holds_the_list_and_refuses_what_is_not_one() -> None:
    listed = RevocationList()
    config = ClerkConfig(jwt_key=KeyPair.generate("k").public_pem, revocation_list=listed)
    assert config.revocation_list is listed
    with pytest.raises(ConfigurationError, match="revocation_list must be a RevocationList"):
        ClerkConfig(jwt_key=KeyPair.generate("k").public_pem, revocation_list={"sess_1"})  # type: ignore[arg-type]


# -- Redis: several workers, and an outage ------------------------------------------------------


async def test_a_revocation_in_one_worker_is_seen_by_another(
    clerk: MockClerk, clock: FakeClock, redis_url: str
) -> None:
    first, second = RedisRevocationList(redis_url), RedisRevocationList(redis_url)
    worker_a = make_app(clerk, clock, revocation_list=first)
    worker_b = make_app(clerk, clock, revocation_list=second)
    token = clerk.token(issued_at=clock.now, session_id="sess_1")
    try:
        async with client(worker_b) as c:
            assert_ran(await c.get("/api/me", headers=bearer(token)), "user_test", injected=True)
        await first.revoke("sess_1")
        async with client(worker_b) as c:
            r = await c.get("/api/me", headers=bearer(token))
        assert_401(r, "session-revoked", presented=True)
        async with client(worker_a) as c:
            r = await c.get("/api/me", headers=bearer(token))
        assert_401(r, "session-revoked", presented=True)
    finally:
        await first.aclose()
        await second.aclose()


async def test_redis_down_lets_requests_through_by_default(
    clerk: MockClerk, clock: FakeClock, redis_server: RedisServer
) -> None:
    listed = RedisRevocationList(redis_server.url, timeout=0.2)
    app = make_app(clerk, clock, revocation_list=listed)
    await listed.revoke("sess_1")
    redis_server.stop()
    token = clerk.token(issued_at=clock.now, session_id="sess_1")
    try:
        async with client(app) as c:
            r = await c.get("/api/me", headers=bearer(token))
        assert_ran(r, "user_test", injected=True)
    finally:
        await listed.aclose()


async def test_redis_down_with_refuse_answers_503(
    clerk: MockClerk, clock: FakeClock, redis_server: RedisServer
) -> None:
    listed = RedisRevocationList(redis_server.url, timeout=0.2, on_error="refuse")
    app = make_app(clerk, clock, revocation_list=listed)
    redis_server.stop()
    try:
        async with client(app) as c:
            r = await c.get("/api/me", headers=bearer(clerk.token(issued_at=clock.now)))
            public = await c.get("/public", headers=bearer(clerk.token(issued_at=clock.now)))
    finally:
        await listed.aclose()
    assert r.status_code == 503
    assert r.headers["retry-after"] == "5"
    assert r.headers["cache-control"] == "no-store"
    assert r.headers["x-clerk-auth-reason"] == "revocation-list-unavailable"
    assert r.json() == {
        "error": "service_unavailable",
        "reason": "revocation-list-unavailable",
        "message": MESSAGES["revocation-list-unavailable"],
    }
    # A public route runs, with the session not vouched for.
    assert_ran(public, None, "revocation-list-unavailable")


async def test_a_handler_that_cannot_write_the_list_gets_a_503_to_retry(
    clerk: MockClerk, redis_server: RedisServer
) -> None:
    # A webhook handler feeding a list that is down: 503, so the sender retries later.
    listed = RedisRevocationList(redis_server.url, timeout=0.2)
    redis_server.stop()
    api = FastAPI()

    @api.post("/api/webhooks/clerk")
    async def hook(auth: Auth = Depends(current_auth)) -> dict[str, Any]:
        await listed.revoke("sess_1")
        return {}

    app = ClerkMiddleware(api, **clerk.middleware_options(rules=[], default="public"))
    try:
        async with client(app) as c:
            r = await c.post("/api/webhooks/clerk")
    finally:
        await listed.aclose()
    assert (r.status_code, r.headers["retry-after"]) == (503, "5")
    assert r.json() == {
        "error": "service_unavailable",
        "reason": "revocation-list-unavailable",
        "message": MESSAGES["revocation-list-unavailable"],
    }


# -- the handshake on ------------------------------------------------------------------------


async def test_with_the_handshake_a_revoked_page_load_is_handed_to_clerk(
    key: KeyPair, clock: FakeClock
) -> None:
    fake = make_fake(key, clock)
    listed = RevocationList(clock=clock)
    app = site(fake, clock, revocation_list=listed)
    token = session_token(key, clock, session_id="sess_1")
    cookies = {"__client_uat": str(int(clock.now) - 10), "__session": token}
    assert answer(await request(app, cookies=cookies)) == ran("user_1", "sess_1")
    await listed.revoke("sess_1")
    assert observed(await request(app, cookies=cookies)) == {
        **handshake(f"{HANDSHAKE}?...", "session-revoked"),
        "params": handshake_params(SITE + "/dashboard", "session-revoked", session=token),
    }
    # Not a page load: signed out, at once.
    fetch = {"sec-fetch-dest": "empty", "accept": "*/*"}
    r = await request(app, "/api/me", cookies=cookies, headers=fetch)
    assert answer(r) == unauthorized("session-revoked", token_presented=True)
    assert NAV["sec-fetch-dest"] == "document"


async def test_with_the_handshake_and_redis_refusing_a_page_load_gets_503(
    key: KeyPair, clock: FakeClock, redis_server: RedisServer
) -> None:
    fake = make_fake(key, clock)
    listed = RedisRevocationList(redis_server.url, timeout=0.2, on_error="refuse")
    redis_server.stop()
    app = site(fake, clock, revocation_list=listed)
    cookies = {"__client_uat": str(int(clock.now) - 10), "__session": session_token(key, clock)}
    try:
        r = await request(app, cookies=cookies)
    finally:
        await listed.aclose()
    assert (r.status_code, r.headers["x-clerk-auth-reason"]) == (503, "revocation-list-unavailable")
