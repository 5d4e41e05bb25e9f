"""The example's rate limit, through httpx.ASGITransport: 10 API requests per user per 10 seconds.

The API rule is ``Rule.api("/api/:path*", rate_limit="10/10s")``, the Next.js seed's
``Ratelimit.slidingWindow(10, "10 s")`` keyed by the user. Development mode counts in memory on
the test's fake clock, which stands at NOW (a whole number of 10-second windows since the
epoch) until a test moves it. Clerk mode may count in Redis (``CLERK_EXAMPLE_RATE_LIMIT_STORAGE``),
here a real redis-server. The page script's part (the quota line, the "Fire" button) runs in
tests/e2e/test_ratelimit.py.
"""

from __future__ import annotations

from types import ModuleType

import httpx
import pytest
import redis
from fastapi import FastAPI

from clerk_asgi import ConfigurationError
from clerk_asgi.testing import FakeClock, KeyPair, mint_session_token

from .test_example import (
    ISSUER,
    NAVIGATION,
    ORIGIN,
    PUBLISHABLE_KEY,
    client,
    drive_lifespan,
    sign_in,
)

pytestmark = pytest.mark.anyio

POLICY = '"10/10s";q=10;w=10'
RATE_LIMITED = {
    "error": "too_many_requests",
    "reason": "rate-limited",
    "message": "Too many requests; retry after the time in Retry-After.",
}
#: The 429 at NOW, after ten requests in the window's first millisecond: the current window
#: alone is full, so the next request passes one millisecond into the next one, in 10.001 s.
REFUSED_HEADERS = {
    "cache-control": "no-store",
    "x-clerk-auth-status": "signed-in",
    "x-clerk-auth-reason": "rate-limited",
    "retry-after": "11",
    "ratelimit-policy": POLICY,
    "ratelimit": '"10/10s";r=0;t=11',
    "content-type": "application/json",
    "content-length": "121",
}


async def use_up(c: httpx.AsyncClient, path: str = "/api/me") -> list[httpx.Response]:
    """Ten requests: the whole budget of the signed-in user."""
    return [await c.get(path) for _ in range(10)]


def fields(r: httpx.Response) -> tuple[int, str | None, str | None]:
    """A response's status and its RateLimit-Policy and RateLimit fields (None: absent)."""
    return r.status_code, r.headers.get("ratelimit-policy"), r.headers.get("ratelimit")


def passing(remaining: int, reset: int = 10) -> tuple[int, str, str]:
    """What :func:`fields` gives for an allowed request with ``remaining`` left."""
    return 200, POLICY, f'"10/10s";r={remaining};t={reset}'


async def test_ten_requests_pass_then_the_eleventh_gets_429(dev_app: FastAPI) -> None:
    """Ten /api/me calls are answered, each with what is left; the eleventh is a 429 with
    Retry-After and the IETF fields, and the app does not run for it."""
    async with client(dev_app) as c:
        await sign_in(c)
        passed = await use_up(c)
        refused = await c.get("/api/me")
    assert [(r.status_code, r.headers["x-user-id"]) for r in passed] == [
        (200, "user_demo_member")
    ] * 10
    assert [fields(r) for r in passed] == [passing(left) for left in range(9, -1, -1)]
    assert refused.status_code == 429
    assert dict(refused.headers) == REFUSED_HEADERS
    assert refused.json() == RATE_LIMITED


async def test_every_api_route_shares_the_users_budget(dev_app: FastAPI) -> None:
    """One budget per user for the whole /api rule: after ten /api/me calls, /api/sessions and
    a revocation are refused too, before they reach the Backend API."""
    async with client(dev_app) as c:
        await sign_in(c)
        await use_up(c)
        listing = await c.get("/api/sessions")
        revoke = await c.post(
            "/api/sessions/revoke-all", headers={"origin": ORIGIN, "sec-fetch-site": "same-origin"}
        )
        still_signed_in = await c.get("/dashboard", headers=NAVIGATION)
    assert (listing.status_code, listing.json()) == (429, RATE_LIMITED)
    assert (revoke.status_code, revoke.json()) == (429, RATE_LIMITED)
    assert still_signed_in.status_code == 200  # pages are not limited, and nothing was revoked
    assert '<dd id="user-id">user_demo_member</dd>' in still_signed_in.text


async def test_another_user_is_not_affected(dev_app: FastAPI) -> None:
    """Mia's budget used up, Ada (another browser) still gets her ten."""
    async with client(dev_app) as mia, client(dev_app) as ada:
        await sign_in(mia)
        await sign_in(ada, "ada@example.test")
        await use_up(mia)
        mia_refused = await mia.get("/api/me")
        ada_first = await ada.get("/api/me")
    assert mia_refused.status_code == 429
    assert fields(ada_first) == passing(9)
    assert ada_first.json()["user_id"] == "user_demo_admin"


async def test_the_window_slides_on_the_fake_clock(dev_app: FastAPI, clock: FakeClock) -> None:
    """Retry-After (11 s) later one request passes, as the previous window still weighs 90 %;
    the next is told to wait 1 s. Another 10 s on, the budget is whole again."""
    async with client(dev_app) as c:
        await sign_in(c)
        await use_up(c)
        assert (await c.get("/api/me")).headers["retry-after"] == "11"
        clock.advance(11)
        after_retry = await c.get("/api/me")
        refused_again = await c.get("/api/me")
        clock.advance(10)
        next_window = [await c.get("/api/me") for _ in range(2)]
    assert fields(after_retry) == passing(0, 9)
    assert fields(refused_again) == (429, POLICY, '"10/10s";r=0;t=1')
    assert refused_again.headers["retry-after"] == "1"
    assert [fields(r) for r in next_window] == [passing(9, 9), passing(8, 9)]


async def test_refused_sign_ins_cost_no_quota(
    dev_app: FastAPI, attacker_key: KeyPair, clock: FakeClock
) -> None:
    """Signed-out calls and forged tokens naming Mia get the rule's 401 before the limiter:
    no rate-limit fields, and Mia's own first call still has nine left."""
    forged = mint_session_token(
        attacker_key, user_id="user_demo_member", issuer=ISSUER, azp=None, issued_at=clock.now
    )
    async with client(dev_app) as c:
        signed_out = [await c.get("/api/me") for _ in range(12)]
        bad = [
            await c.get("/api/me", headers={"authorization": f"Bearer {forged}"}) for _ in range(12)
        ]
        await sign_in(c)
        first = await c.get("/api/me")
    assert {r.status_code for r in signed_out + bad} == {401}
    assert {r.json()["reason"] for r in signed_out} == {"session-token-and-uat-missing"}
    assert {r.headers["x-clerk-auth-reason"] for r in bad} == {"token-invalid-signature"}
    assert not any("ratelimit" in r.headers for r in signed_out + bad)
    assert fields(first) == passing(9)


async def test_public_api_routes_are_not_limited(dev_app: FastAPI) -> None:
    """/api/public/* and the webhook endpoint match the public rule, which has no limit."""
    async with client(dev_app) as c:
        await sign_in(c)
        pings = [await c.get("/api/public/ping") for _ in range(12)]
        me = await c.get("/api/me")
    assert [r.status_code for r in pings] == [200] * 12
    assert not any("ratelimit" in r.headers for r in pings)
    assert fields(me) == passing(9)


async def test_the_dashboard_has_the_rate_limit_card(dev_app: FastAPI) -> None:
    """The dashboard explains the limit and carries the quota line and the "Fire" button the
    page script fills in and wires; the home page's rule table names the limit; pages cost no
    quota themselves."""
    async with client(dev_app) as c:
        await sign_in(c)
        r = await c.get("/dashboard", headers=NAVIGATION)
        home = await c.get("/", headers=NAVIGATION)
        me = await c.get("/api/me")
    assert r.status_code == 200
    assert "ratelimit" not in r.headers
    assert '<div class="card" id="rate-limit"><h2>Rate limit</h2>' in r.text
    assert (
        '<p id="quota">Remaining: <strong id="quota-remaining">…</strong> of\n'
        '<span id="quota-limit">10</span> <span class="muted" id="quota-detail"></span></p>'
    ) in r.text
    assert (
        '<button class="secondary" id="fire-burst" type="button"\n'
        'data-count="12">Fire 12 requests</button>'
    ) in r.text
    assert 'per\n10 seconds (<code>rate_limit="10/10s"</code>, Upstash\'s sliding' in r.text
    assert 'const field = response.headers.get("ratelimit");' in r.text
    assert 'retryAfter = last.headers.get("retry-after");' in r.text
    assert "x-user-id header when signed in; 10/10s per user (429 past it)" in home.text
    assert fields(me) == passing(9)


# --- storage ---------------------------------------------------------------------------------


def clerk_mode(example: ModuleType, key: KeyPair, monkeypatch: pytest.MonkeyPatch) -> None:
    """Clerk mode's environment: a publishable key, and a PEM key instead of a JWKS fetch."""
    monkeypatch.setenv("CLERK_PUBLISHABLE_KEY", PUBLISHABLE_KEY)
    monkeypatch.setenv("CLERK_JWT_KEY", key.public_pem)


async def test_clerk_mode_counts_in_redis_when_told(
    example: ModuleType, key: KeyPair, monkeypatch: pytest.MonkeyPatch, redis_url: str
) -> None:
    """CLERK_EXAMPLE_RATE_LIMIT_STORAGE=redis://...: ten calls pass (without fields: Redis
    would need a second round trip), the eleventh is a 429 with them, and the counts are in
    Redis under clerk-asgi:ratelimit:."""
    clerk_mode(example, key, monkeypatch)
    monkeypatch.setenv("CLERK_EXAMPLE_RATE_LIMIT_STORAGE", redis_url)
    app: FastAPI = example.create_app()
    token = mint_session_token(key, user_id="user_real", azp=ORIGIN, expires_in=600)
    async with client(app) as c:
        c.headers["authorization"] = f"Bearer {token}"
        passed = await use_up(c)
        refused = await c.get("/api/me")
    assert await drive_lifespan(app) == [  # which closes the Redis connections
        "lifespan.startup.complete",
        "lifespan.shutdown.complete",
    ]
    assert [r.status_code for r in passed] == [200] * 10
    assert not any("ratelimit" in r.headers for r in passed)
    assert refused.status_code == 429
    assert refused.json() == RATE_LIMITED
    wait = refused.headers["retry-after"]
    assert 1 <= int(wait) <= 10
    assert refused.headers["ratelimit-policy"] == POLICY
    assert refused.headers["ratelimit"] == f'"10/10s";r=0;t={wait}'
    with redis.Redis.from_url(redis_url) as server:
        keys = server.keys("clerk-asgi:ratelimit:*")
    assert keys
    assert all(b"user:user_real" in k for k in keys)


async def test_clerk_mode_counts_in_memory_by_default(
    example: ModuleType, key: KeyPair, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Clerk mode without the variable: memory, which tells what is left on every answer."""
    clerk_mode(example, key, monkeypatch)
    app: FastAPI = example.create_app()
    token = mint_session_token(key, user_id="user_real", azp=ORIGIN)
    async with client(app) as c:
        r = await c.get("/api/me", headers={"authorization": f"Bearer {token}"})
    assert repr(app.state.rate_limiter) == "RateLimiter('memory://', on_error='allow')"
    assert r.status_code == 200
    assert r.headers["ratelimit-policy"] == POLICY
    assert r.headers["ratelimit"].startswith('"10/10s";r=9;t=')


def test_development_mode_always_counts_in_memory(
    example: ModuleType, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Development mode ignores CLERK_EXAMPLE_RATE_LIMIT_STORAGE: memory follows its clock."""
    monkeypatch.setenv("CLERK_EXAMPLE_RATE_LIMIT_STORAGE", "redis://127.0.0.1:1/0")
    app: FastAPI = example.create_app()
    assert repr(app.state.rate_limiter) == "RateLimiter('memory://', on_error='allow')"


def test_a_bad_storage_fails_at_start_up(
    example: ModuleType, key: KeyPair, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Clerk mode with a storage that is neither memory:// nor a Redis URL stops create_app()
    with the library's message."""
    clerk_mode(example, key, monkeypatch)
    monkeypatch.setenv("CLERK_EXAMPLE_RATE_LIMIT_STORAGE", "memcached://cache:11211")
    with pytest.raises(ConfigurationError, match=r"^rate_limit_storage must be 'memory://' or"):
        example.create_app()
