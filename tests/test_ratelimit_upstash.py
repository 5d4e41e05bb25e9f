"""Memory rate limits decide as Upstash's ``Ratelimit.slidingWindow`` does.

``Upstash`` below transcribes ``@upstash/ratelimit``: ``slidingWindow`` of ``src/single.ts``
(the bucket keys and ``reset``) and ``slidingWindowLimitScript`` of
``src/lua-scripts/single.ts`` (the atomic decision), over a dict standing in for Redis.
Seeded random request sequences are replayed through it and through our memory storage on a
FakeClock. Upstash's ``now`` is ``Date.now()``, whole milliseconds truncated; ours rounds the
clock to the nearest millisecond. Given the same millisecond, every decision agrees; the one
difference is the rounding of an instant less than half a millisecond before a bucket
boundary, pinned on its own.
"""

from __future__ import annotations

import copy
import math
import random
from dataclasses import dataclass, field

import pytest

from clerk_asgi.ratelimit import RateLimit, RateLimiter, RateLimitResult
from clerk_asgi.testing import FakeClock

from .helpers import NOW

pytestmark = pytest.mark.anyio


@dataclass
class Upstash:
    """``Ratelimit.slidingWindow(tokens, window)`` on an in-memory "Redis" of (value, expiry)."""

    tokens: int
    window: int  # milliseconds
    prefix: str = "@upstash/ratelimit"
    redis: dict[str, tuple[int, int | None]] = field(default_factory=dict)

    def _get(self, key: str, now: int) -> int:
        value, expires = self.redis.get(key, (0, None))
        if expires is not None and expires <= now:
            del self.redis[key]
            return 0
        return value

    def limit(self, identifier: str, now: int) -> tuple[bool, int, int]:
        """(success, remaining, reset in ms since the epoch) for a request at ``now`` ms."""
        window = self.window
        current_window = math.floor(now / window)
        current_key = f"{self.prefix}:{identifier}:{current_window}"
        previous_key = f"{self.prefix}:{identifier}:{current_window - 1}"
        # slidingWindowLimitScript, KEYS = [currentKey, previousKey], ARGV = [tokens, now, window]
        requests_in_current = self._get(current_key, now)
        requests_in_previous = self._get(previous_key, now)
        percentage_in_current = (now % window) / window
        requests_in_previous = math.floor((1 - percentage_in_current) * requests_in_previous)
        if requests_in_previous + requests_in_current >= self.tokens:
            remaining = -1
        else:
            new_value = requests_in_current + 1  # INCRBY currentKey 1
            expires = self.redis.get(current_key, (0, None))[1]
            if new_value == 1:  # PEXPIRE currentKey window * 2 + 1000
                expires = now + window * 2 + 1000
            self.redis[current_key] = (new_value, expires)
            remaining = self.tokens - (new_value + requests_in_previous)
        reset = (current_window + 1) * window
        return remaining >= 0, max(0, remaining), reset


def sequence(seed: int) -> tuple[RateLimit, list[tuple[int, str]]]:
    """A random limit and requests: (milliseconds since the last request, identifier)."""
    rng = random.Random(seed)  # noqa: S311 - reproducible test data, not secrets
    limit = RateLimit(rng.choice([1, 2, 3, 5, 10, 25]), rng.choice([1, 2, 5, 10, 60]))
    users = [f"user_{n}" for n in range(rng.choice([1, 2, 3]))]
    mean_gap = limit.window * 1000 / limit.amount / rng.choice([0.5, 1, 2, 4])
    requests = []
    for _ in range(rng.randrange(20, 120)):
        burst = rng.random() < 0.2
        gap = 0 if burst else int(rng.expovariate(1 / mean_gap))
        requests.append((gap, rng.choice(users)))
    return limit, requests


async def replay(seed: int) -> tuple[int, int]:
    """Replay one sequence through both: every decision, remaining count and reset agree.
    Returns (requests, refusals)."""
    limit, requests = sequence(seed)
    clock = FakeClock(NOW)
    limiter = RateLimiter(clock=clock)
    upstash = Upstash(limit.amount, limit.window * 1000)
    now = round(NOW * 1000)
    refused = 0
    for gap, user in requests:
        now += gap
        clock.now = now / 1000
        probe = copy.deepcopy(upstash)  # the state before this request, to probe the wait
        success, remaining, reset = upstash.limit(user, now)
        ours = await limiter.hit(limit, user)
        wait = -(-(reset - now) // 1000)  # Upstash's reset, as whole seconds from now
        if success:
            assert ours == RateLimitResult(True, remaining, wait), (seed, now)
            continue
        refused += 1
        # Refused alike; we tell the time the next request will pass, which is never after
        # Upstash's reset (the end of the bucket) unless this bucket alone is full.
        assert (ours.allowed, ours.remaining, remaining) == (False, 0, 0), (seed, now)
        assert ours.reset is not None
        later = now + ours.reset * 1000
        assert probe.limit(user, later)[0] is True, (seed, now)
        assert copy.deepcopy(probe).limit(user, later - 1000)[0] is False or ours.reset == 1
        counted = upstash._get(f"{upstash.prefix}:{user}:{now // upstash.window}", now)
        if counted < limit.amount:
            assert ours.reset <= wait, (seed, now)
    return len(requests), refused


async def test_random_sequences_agree_with_upstash_decision_for_decision() -> None:
    """200 seeded sequences (13,294 requests, 4,115 of them refused): the same decisions, the
    same remaining counts, the same reset for allowed requests."""
    totals = [await replay(seed) for seed in range(200)]
    assert sum(n for n, _ in totals) > 10_000
    assert sum(r for _, r in totals) > 1_000  # refusals are exercised, not only passes


async def test_the_previous_bucket_weighs_what_still_overlaps_the_window() -> None:
    """10/10s: 10 requests at the end of one bucket; 3 s into the next, 70 % of them still
    count (floor 7), so 3 more pass; at 9.9 s, 1 % counts (floor 0): 10 pass in all."""
    limit = RateLimit(10, 10)
    clock = FakeClock(1_800_000_009.0)  # 9 s into a 10 s bucket (1_800_000_000 is aligned)
    limiter = RateLimiter(clock=clock)
    for _ in range(10):
        assert (await limiter.hit(limit, "u")).allowed
    assert await limiter.hit(limit, "u") == RateLimitResult(False, 0, 2)  # 1 ms into the next
    clock.now = 1_800_000_013.0
    results = [await limiter.hit(limit, "u") for _ in range(4)]
    assert results == [
        RateLimitResult(True, 2, 7),
        RateLimitResult(True, 1, 7),
        RateLimitResult(True, 0, 7),
        RateLimitResult(False, 0, 1),  # another 10 % of the weight fades within a second
    ]


async def test_the_instant_half_a_millisecond_before_a_boundary_is_rounded_up() -> None:
    """The documented difference: Upstash truncates ``Date.now()``, ours rounds the clock to
    the nearest millisecond. 0.4 ms before a boundary Upstash is still in the old bucket (full:
    refused), ours in the new one, where the full bucket weighs 100 %: refused too."""
    limit = RateLimit(2, 10)
    start = 1_800_000_000.0
    clock = FakeClock(start)
    limiter = RateLimiter(clock=clock)
    upstash = Upstash(2, 10_000)
    for _ in range(2):
        assert (await limiter.hit(limit, "u")).allowed
        assert upstash.limit("u", round(start * 1000))[0]
    instant = start + 10 - 0.0004
    clock.now = instant
    assert math.floor(instant * 1000) == round(start * 1000) + 9_999  # Upstash: old bucket
    assert round(instant * 1000) == round(start * 1000) + 10_000  # ours: the new one
    assert upstash.limit("u", math.floor(instant * 1000)) == (
        False,
        0,
        round(start * 1000) + 10_000,
    )
    ours = await limiter.hit(limit, "u")
    assert ours == RateLimitResult(False, 0, 1)
    # Half a millisecond later both are in the new bucket: the same answer again.
    assert upstash.limit("u", round(start * 1000) + 10_000)[0] is False
