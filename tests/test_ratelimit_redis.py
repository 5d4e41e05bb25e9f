"""Redis rate limits on a real redis-server: exact counts, one script per request, bounded
failures (stopped, frozen or missing server) answered by the ``on_error`` policy."""

from __future__ import annotations

import logging
import os
import signal
import sys
from collections.abc import AsyncIterator

import anyio
import pytest
from redis.asyncio import Redis
from starlette.requests import HTTPConnection

from clerk_asgi import AUTH_SCOPE_KEY, Auth, Refusal
from clerk_asgi.exceptions import ConfigurationError
from clerk_asgi.ratelimit import (
    RateLimit,
    RateLimiter,
    RateLimitRefusal,
    RateLimitResult,
    RateLimitUnavailableError,
    rate_limit,
)

from ._redis_helpers import RedisServer

pytestmark = pytest.mark.anyio

ALICE = Auth(user_id="user_alice")
SCOPE = {"type": "http", "headers": [], "client": ("203.0.113.7", 1)}
#: limits' key layout under our prefix: one hash slot ({...}) for the window and the one before.
CURRENT = "clerk-asgi:ratelimit:{clerk-asgi/10/10s/user:a/10/10/second}"


@pytest.fixture
async def redis(redis_url: str) -> AsyncIterator[Redis]:
    client = Redis.from_url(redis_url)
    yield client
    await client.aclose()


@pytest.fixture
async def limiter(redis_url: str) -> AsyncIterator[RateLimiter]:
    limiter = RateLimiter(redis_url, timeout=5)  # counting here, not timeouts: a loaded CI
    yield limiter
    await limiter.aclose()


async def evalsha_calls(redis: Redis) -> int:
    stats = await redis.info("commandstats")
    return int(stats.get("cmdstat_evalsha", {}).get("calls", 0))


async def test_exactly_the_amount_passes_then_429_with_the_wait(
    limiter: RateLimiter, redis: Redis
) -> None:
    """10/10s in Redis: 10 pass, the rest are refused with a wait within the window; another
    user has their own budget. Each allowed request is one script call."""
    limit = RateLimit(10, 10)
    await limiter.hit(limit, "user:warm-up")  # loads the script (EVALSHA, NOSCRIPT, EVAL)
    before = await evalsha_calls(redis)
    results = [await limiter.hit(limit, "user:a") for _ in range(10)]
    assert results == [RateLimitResult(True)] * 10  # Redis does not say what remains
    assert await evalsha_calls(redis) - before == 10  # one round trip each
    refused = [await limiter.hit(limit, "user:a") for _ in range(5)]
    for result in refused:
        assert result.allowed is False
        assert result.remaining == 0
        assert result.reset is not None
        assert 1 <= result.reset <= 10
    assert await redis.get(CURRENT) == b"10"
    assert 10_000 < await redis.pttl(CURRENT) <= 20_000  # limits keeps it for two windows
    assert (await limiter.hit(limit, "user:b")).allowed


async def test_concurrent_requests_are_counted_exactly(limiter: RateLimiter) -> None:
    """50 requests of one user at once through one connection pool: exactly 10 pass."""
    limit = RateLimit(10, 10)
    allowed: list[bool] = []

    async def one() -> None:
        allowed.append((await limiter.hit(limit, "user:a")).allowed)

    async with anyio.create_task_group() as tasks:
        for _ in range(50):
            tasks.start_soon(one)
    assert allowed.count(True) == 10
    assert len(allowed) == 50


async def test_a_window_later_the_quota_is_back(limiter: RateLimiter, redis: Redis) -> None:
    """When the window has passed (Redis time: the key's TTL, shortened here instead of
    waiting), the old count moves to the previous window and fades: requests pass again."""
    limit = RateLimit(10, 10)
    for _ in range(11):
        await limiter.hit(limit, "user:a")
    assert not (await limiter.hit(limit, "user:a")).allowed
    await redis.pexpire(CURRENT, 5)  # the window is over and the previous one nearly gone
    assert (await limiter.hit(limit, "user:a")).allowed


async def test_the_refusal_carries_the_ietf_fields(limiter: RateLimiter) -> None:
    """On Redis too a 429 carries Retry-After, RateLimit-Policy and RateLimit (r=0); an
    allowed request carries none (their remaining count would cost a second round trip)."""
    limit = RateLimit(1, 10, "api")
    assert await limiter.check(limit, SCOPE, ALICE) == (None, ())
    refusal, headers = await limiter.check(limit, SCOPE, ALICE)
    assert isinstance(refusal, RateLimitRefusal)
    assert headers == ()
    wait = refusal.retry_after
    assert wait is not None
    assert 1 <= wait <= 10
    assert refusal.headers == {
        "cache-control": "no-store",
        "x-clerk-auth-status": "signed-in",
        "x-clerk-auth-reason": "rate-limited",
        "retry-after": str(wait),
        "ratelimit-policy": '"api";q=1;w=10',
        "ratelimit": f'"api";r=0;t={wait}',
    }


def records(caplog: pytest.LogCaptureFixture) -> list[logging.LogRecord]:
    return [r for r in caplog.records if r.name == "clerk_asgi.ratelimit"]


async def test_a_stopped_server_lets_requests_through_by_default(
    redis_server: RedisServer, caplog: pytest.LogCaptureFixture
) -> None:
    """on_error="allow": with Redis gone, requests pass, with one WARNING (no user id) for
    many failures; once Redis is back, counting resumes."""
    limiter = RateLimiter(redis_server.url)
    limit = RateLimit(1, 10)
    assert (await limiter.hit(limit, "user:a")).allowed
    redis_server.stop()
    with caplog.at_level(logging.WARNING, "clerk_asgi.ratelimit"):
        for _ in range(3):
            assert await limiter.check(limit, SCOPE, ALICE) == (None, ())
        assert await limiter.hit(limit, "user:a") == RateLimitResult(True)
    assert [(r.levelname, r.getMessage()) for r in records(caplog)] == [
        ("WARNING", "Rate-limit storage unreachable (StorageError); policy on_error='allow'.")
    ]
    assert "user_alice" not in caplog.text
    redis_server.start()  # empty: nothing persisted
    assert (await limiter.hit(limit, "user:a")).allowed
    assert not (await limiter.hit(limit, "user:a")).allowed
    await limiter.aclose()


async def test_a_stopped_server_refuses_with_503_when_asked(redis_server: RedisServer) -> None:
    """on_error="refuse": 503 rate-limit-unavailable with Retry-After, never a 500."""
    limiter = RateLimiter(redis_server.url, on_error="refuse")
    redis_server.stop()
    refusal, headers = await limiter.check(RateLimit(1, 10), SCOPE, ALICE)
    assert headers == ()
    assert refusal == Refusal(503, "rate-limit-unavailable", "signed-in", retry_after=5)
    with pytest.raises(RateLimitUnavailableError) as caught:
        await limiter.hit(RateLimit(1, 10), "user:a")
    assert (caught.value.status_code, caught.value.retry_after) == (503, 5)
    dependency = rate_limit("1/10s", limiter=limiter)
    with pytest.raises(RateLimitUnavailableError) as caught:
        await dependency(HTTPConnection({**SCOPE, AUTH_SCOPE_KEY: ALICE}))
    assert (caught.value.reason, caught.value.message) == (
        "rate-limit-unavailable",
        "Rate limits cannot be checked right now; retry shortly.",
    )
    await limiter.aclose()


async def test_a_frozen_server_is_given_up_on_after_the_timeout(
    redis_server: RedisServer,
) -> None:
    """A server that accepts but never answers (SIGSTOP) does not hang the request: the
    command times out and the policy applies."""
    limiter = RateLimiter(redis_server.url, timeout=0.2, on_error="refuse")
    assert (await limiter.hit(RateLimit(5, 10), "user:a")).allowed  # connected
    process = redis_server._process
    assert process is not None
    os.kill(process.pid, signal.SIGSTOP)
    try:
        refusal, _ = await limiter.check(RateLimit(5, 10), SCOPE, ALICE)
    finally:
        os.kill(process.pid, signal.SIGCONT)
    assert refusal is not None
    assert refusal.status == 503
    await limiter.aclose()


async def test_a_refusal_whose_wait_cannot_be_read_waits_a_window(
    redis_server: RedisServer,
) -> None:
    """If Redis goes away between the refused hit and the read of the wait, the 429 stands
    and Retry-After is the whole window."""
    limiter = RateLimiter(redis_server.url)
    limit = RateLimit(1, 30)
    await limiter.hit(limit, "user:a")
    store = limiter._store
    stats = store._limiter.get_window_stats  # type: ignore[attr-defined]

    async def gone(*args: object) -> object:
        redis_server.stop()
        return await stats(*args)

    store._limiter.get_window_stats = gone  # type: ignore[attr-defined]
    assert await limiter.hit(limit, "user:a") == RateLimitResult(False, 0, 30)
    await limiter.aclose()


def test_redis_storage_without_the_extras_names_the_install(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Without limits (or redis-py) installed, a Redis URL is a ConfigurationError that says
    what to install; memory storage needs neither."""
    monkeypatch.setitem(sys.modules, "limits.aio.strategies", None)
    with pytest.raises(ConfigurationError) as caught:
        RateLimiter("redis://127.0.0.1:6379/0")
    assert str(caught.value) == (
        "Redis rate limits need the limits and redis packages: pip install "
        "'clerk-asgi[ratelimit,redis]'. Or use rate_limit_storage='memory://' (one process)."
    )
    assert repr(RateLimiter()) == "RateLimiter('memory://', on_error='allow')"


async def test_the_limiter_repr_hides_the_url(redis_url: str) -> None:
    """A Redis URL may hold a password: the repr says only "redis"."""
    limiter = RateLimiter(redis_url.replace("redis://", "redis://:secret@"))
    assert repr(limiter) == "RateLimiter('redis', on_error='allow')"
    await limiter.aclose()
