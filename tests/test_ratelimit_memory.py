"""The memory rate limiter on its own: counting, keys, client addresses, the refusal it builds,
the dependency form, and what memory it keeps."""

from __future__ import annotations

import json
from typing import Any

import anyio
import pytest
from starlette.requests import HTTPConnection

from clerk_asgi import AUTH_SCOPE_KEY, Auth, Refusal
from clerk_asgi.exceptions import MiddlewareNotInstalledError
from clerk_asgi.ratelimit import (
    LIMITER_SCOPE_KEY,
    RateLimit,
    RateLimitedError,
    RateLimiter,
    RateLimitRefusal,
    RateLimitResult,
    rate_limit,
)
from clerk_asgi.testing import FakeClock

from .helpers import MESSAGES

pytestmark = pytest.mark.anyio

START = 1_800_000_000.0  # a multiple of every window used here: buckets start at it
ALICE = Auth(user_id="user_alice", session_id="sess_a")
BOB = Auth(user_id="user_bob", session_id="sess_b")
ANONYMOUS = Auth.signed_out("session-token-missing")


def scope(
    auth: Auth = ALICE,
    client: tuple[str, int] | None = ("203.0.113.7", 5555),
    headers: list[tuple[bytes, bytes]] | None = None,
    **extra: Any,
) -> dict[str, Any]:
    """An HTTP scope as the middleware hands it to the app."""
    return {
        "type": "http",
        "method": "GET",
        "path": "/api/x",
        "headers": headers or [],
        "client": client,
        AUTH_SCOPE_KEY: auth,
        **extra,
    }


async def test_a_burst_gets_exactly_the_amount_then_refusals() -> None:
    """10/10s: ten requests pass, counting down what remains; the eleventh is refused."""
    clock = FakeClock(START + 2)
    limiter = RateLimiter(clock=clock)
    limit = RateLimit(10, 10)
    results = [await limiter.hit(limit, "user:a") for _ in range(11)]
    assert results[:10] == [RateLimitResult(True, 9 - n, 8) for n in range(10)]
    # Refused until the bucket ends and 1 ms into the next (10 of 10 then weigh ~100 %).
    assert results[10] == RateLimitResult(False, 0, 9)
    assert (await limiter.hit(limit, "user:b")).allowed  # another key: its own budget


async def test_concurrent_requests_are_counted_exactly() -> None:
    """50 requests of one user at once: exactly 10 pass."""
    limiter = RateLimiter(clock=FakeClock(START))
    limit = RateLimit(10, 10)
    allowed: list[bool] = []

    async def one() -> None:
        await anyio.lowlevel.checkpoint()
        allowed.append((await limiter.hit(limit, "user:a")).allowed)

    async with anyio.create_task_group() as tasks:
        for _ in range(50):
            tasks.start_soon(one)
    assert allowed.count(True) == 10
    assert len(allowed) == 50


async def test_a_window_later_the_quota_is_back() -> None:
    """Two windows after the last request nothing of it weighs any more."""
    clock = FakeClock(START)
    limiter = RateLimiter(clock=clock)
    limit = RateLimit(2, 10)
    for _ in range(2):
        await limiter.hit(limit, "k")
    clock.advance(10)  # the full bucket is now the previous one, weighing 100 %
    assert await limiter.hit(limit, "k") == RateLimitResult(False, 0, 1)
    clock.advance(5)  # half of it: 1 counts
    assert await limiter.hit(limit, "k") == RateLimitResult(True, 0, 5)
    clock.advance(10)  # that one request, half: floor(0.5) = 0
    assert await limiter.hit(limit, "k") == RateLimitResult(True, 1, 5)
    clock.advance(20)
    assert await limiter.hit(limit, "k") == RateLimitResult(True, 1, 5)


async def test_limits_with_different_names_or_sizes_count_apart() -> None:
    """The budget is per name, amount and window: two policies never share a count."""
    limiter = RateLimiter(clock=FakeClock(START))
    for limit in (RateLimit(1, 10), RateLimit(1, 10, "other"), RateLimit(1, 20)):
        assert (await limiter.hit(limit, "k")).allowed
    assert not (await limiter.hit(RateLimit(1, 10), "k")).allowed


async def test_a_clock_that_goes_back_keeps_the_count() -> None:
    """A wall clock stepped back does not hand out a fresh budget."""
    clock = FakeClock(START + 20)
    limiter = RateLimiter(clock=clock)
    limit = RateLimit(1, 10)
    assert (await limiter.hit(limit, "k")).allowed
    clock.now = START + 5
    assert not (await limiter.hit(limit, "k")).allowed


async def test_finished_keys_are_dropped_and_memory_is_bounded() -> None:
    """Keys whose windows are over go as new ones come; past max_keys, the least recently hit."""
    clock = FakeClock(START)
    limiter = RateLimiter(clock=clock, max_keys=3)
    limit = RateLimit(1, 10)
    store = limiter._store
    for key in ("a", "b", "c"):
        await limiter.hit(limit, key)
    await limiter.hit(limit, "a")  # refused, and now the most recently hit
    await limiter.hit(limit, "d")
    assert list(store._keys) == ["1/10s/1/10/c", "1/10s/1/10/a", "1/10s/1/10/d"]  # type: ignore[attr-defined]
    clock.advance(20)  # c, a and d are over: each request drops up to two such
    await limiter.hit(limit, "e")
    assert list(store._keys) == ["1/10s/1/10/d", "1/10s/1/10/e"]  # type: ignore[attr-defined]
    await limiter.aclose()
    assert list(store._keys) == []  # type: ignore[attr-defined]


# -- keys -------------------------------------------------------------------------------------


def tenant(conn: HTTPConnection, auth: Auth) -> str | None:
    """A key function: the tenant header, None (not limited) without one."""
    return conn.headers.get("x-tenant")


ORG_MEMBER = Auth(user_id="user_alice", org_id="org_acme")


@pytest.mark.parametrize(
    ("key", "auth", "extra", "expected"),
    [
        # "user": the user; signed out (public routes only), the client address
        ("user", ALICE, {}, "user:user_alice"),
        ("user", ANONYMOUS, {}, "ip:203.0.113.7"),
        # "org": the active organization, else the user, else the address
        ("org", ORG_MEMBER, {}, "org:org_acme"),
        ("org", ALICE, {}, "user:user_alice"),
        ("org", ANONYMOUS, {}, "ip:203.0.113.7"),
        # "ip": always the address, signed in or not
        ("ip", ALICE, {}, "ip:203.0.113.7"),
        ("ip", ANONYMOUS, {"client": None}, "ip:unknown"),
        # A callable: what it returns, None for "not limited"
        (tenant, ALICE, {"headers": [(b"x-tenant", b"acme")]}, "key:acme"),
        (tenant, ANONYMOUS, {}, None),
    ],
)
def test_who_shares_a_budget(key: Any, auth: Auth, extra: dict[str, Any], expected: str) -> None:
    """Each key kind names its bucket with a prefix: a user id never collides with an address."""
    limiter = RateLimiter()
    assert limiter.key(RateLimit(1, 1, key=key), scope(auth, **extra), auth) == expected


XFF = b"x-forwarded-for"


@pytest.mark.parametrize(
    ("client", "headers", "expected"),
    [
        # Not from a trusted proxy: the socket's peer, whatever the headers say
        ("203.0.113.7", [(XFF, b"198.51.100.1")], "203.0.113.7"),
        # From a trusted proxy: the rightmost hop that is not one of ours
        ("10.0.0.2", [(XFF, b"198.51.100.1")], "198.51.100.1"),
        ("10.0.0.2", [(XFF, b"6.6.6.6, 198.51.100.1, 10.0.0.9")], "198.51.100.1"),
        ("10.0.0.2", [(XFF, b"6.6.6.6"), (XFF, b"198.51.100.1")], "198.51.100.1"),
        ("10.0.0.2", [(XFF, b" , 198.51.100.1 ,")], "198.51.100.1"),
        # Every hop trusted: the leftmost; no header at all: the proxy itself
        ("10.0.0.2", [(XFF, b"10.0.0.3, 10.0.0.4")], "10.0.0.3"),
        ("10.0.0.2", [], "10.0.0.2"),
        # A hop that is not an address is not trusted, and cannot grow the key
        ("10.0.0.2", [(XFF, b"unknown")], "unknown"),
        ("10.0.0.2", [(XFF, b"x" * 500)], "x" * 64),
        ("::1", [(XFF, b"2001:db8::5")], "2001:db8::5"),
    ],
)
def test_the_client_address_behind_trusted_proxies(
    client: str, headers: list[tuple[bytes, bytes]], expected: str
) -> None:
    """X-Forwarded-For is read only when the peer is a trusted proxy (uvicorn's rule)."""
    limiter = RateLimiter(trusted_proxies=["10.0.0.0/8", "::1"])
    limit = RateLimit(1, 1, key="ip")
    assert limiter.key(limit, scope(client=(client, 1), headers=headers), ALICE) == "ip:" + expected


def test_without_trusted_proxies_forwarded_headers_are_ignored() -> None:
    """By default the address is scope["client"] (uvicorn's --forwarded-allow-ips sets it)."""
    headers = [(XFF, b"198.51.100.1")]
    got = RateLimiter().key(RateLimit(1, 1, key="ip"), scope(headers=headers), ALICE)
    assert got == "ip:203.0.113.7"


# -- the refusal ------------------------------------------------------------------------------


async def test_check_answers_429_with_retry_after_and_the_ietf_fields() -> None:
    """Past the limit: a RateLimitRefusal, 429 JSON with Retry-After, RateLimit-Policy and
    RateLimit; before it, no refusal and the fields for the app's response."""
    limiter = RateLimiter(clock=FakeClock(START + 4))
    limit = RateLimit(2, 10, "api")
    first = await limiter.check(limit, scope(), ALICE)
    assert first == (
        None,
        ((b"ratelimit-policy", b'"api";q=2;w=10'), (b"ratelimit", b'"api";r=1;t=6')),
    )
    await limiter.check(limit, scope(), ALICE)
    refusal, headers = await limiter.check(limit, scope(), ALICE)
    assert headers == ()
    assert isinstance(refusal, RateLimitRefusal)
    assert refusal.raw_headers() == [
        (b"cache-control", b"no-store"),
        (b"x-clerk-auth-status", b"signed-in"),
        (b"x-clerk-auth-reason", b"rate-limited"),
        (b"retry-after", b"7"),
        (b"ratelimit-policy", b'"api";q=2;w=10'),
        (b"ratelimit", b'"api";r=0;t=7'),
    ]
    assert refusal.headers["ratelimit"] == '"api";r=0;t=7'  # for on_refusal hooks
    assert refusal.status == 429
    assert refusal.error == "too_many_requests"
    assert json.loads(refusal.body()) == {
        "error": "too_many_requests",
        "reason": "rate-limited",
        "message": MESSAGES["rate-limited"],
    }
    response = refusal.response()
    assert response.status_code == 429
    assert response.headers["retry-after"] == "7"
    assert response.headers["ratelimit-policy"] == '"api";q=2;w=10'


async def test_a_signed_out_refusal_says_signed_out() -> None:
    """Anonymous traffic counted by address is refused as signed-out, not signed-in."""
    limiter = RateLimiter(clock=FakeClock(START))
    limit = RateLimit(1, 60)
    await limiter.check(limit, scope(ANONYMOUS), ANONYMOUS)
    refusal, _ = await limiter.check(limit, scope(ANONYMOUS), ANONYMOUS)
    assert refusal is not None
    assert refusal.auth_status == "signed-out"
    # The next bucket's first millisecond still weighs the full one 100 %: 60.001 s, rounded up.
    assert refusal.retry_after == 61


async def test_a_request_a_key_function_declines_is_not_counted() -> None:
    """A key function returning None: no count, no refusal, no fields."""
    limiter = RateLimiter(clock=FakeClock(START))
    limit = RateLimit(1, 60, key=tenant)
    for _ in range(3):
        assert await limiter.check(limit, scope(), ALICE) == (None, ())


# -- the dependency ---------------------------------------------------------------------------


async def test_the_dependency_counts_against_the_middlewares_limiter() -> None:
    """rate_limit(...) reads the limiter the middleware put in the scope; past the limit it
    raises RateLimitedError carrying the 429 refusal."""
    limiter = RateLimiter(clock=FakeClock(START))
    dependency = rate_limit("1/minute", name="exports")
    conn = HTTPConnection(scope(**{LIMITER_SCOPE_KEY: limiter}))
    assert await dependency(conn) is None
    with pytest.raises(RateLimitedError) as caught:
        await dependency(conn)
    error = caught.value
    assert (error.status_code, error.reason, error.retry_after) == (429, "rate-limited", 61)
    assert error.message == MESSAGES["rate-limited"]
    assert isinstance(error.refusal, Refusal)
    assert error.refusal.headers["ratelimit-policy"] == '"exports";q=1;w=60'


async def test_the_dependency_may_bring_its_own_limiter() -> None:
    """limiter= counts there instead of the middleware's."""
    own = RateLimiter(clock=FakeClock(START))
    dependency = rate_limit(RateLimit(1, 1), key="ip", limiter=own)
    await dependency(HTTPConnection(scope(ANONYMOUS)))
    with pytest.raises(RateLimitedError):
        await dependency(HTTPConnection(scope(ANONYMOUS, client=("203.0.113.7", 9))))
    await dependency(HTTPConnection(scope(ANONYMOUS, client=("203.0.113.8", 9))))


async def test_the_dependency_without_the_middleware_says_so() -> None:
    """No Auth, or no limiter, in the scope: the middleware is missing."""
    dependency = rate_limit("1/s")
    with pytest.raises(MiddlewareNotInstalledError):
        await dependency(HTTPConnection({"type": "http", "headers": []}))
    with pytest.raises(MiddlewareNotInstalledError):
        await dependency(HTTPConnection(scope()))
