"""JWKS outages: failed fetches, the cooldown between attempts, the stale window, timeouts.

A failed fetch never clears the cache and never raises anything but KeysUnavailableError.
The only real waiting here is the 50 ms fetch timeout of the hanging-endpoint tests.
"""

from __future__ import annotations

import logging
import socket
from collections.abc import AsyncIterator

import anyio
import httpx
import pytest
from cryptography.hazmat.primitives.asymmetric.rsa import RSAPublicKey

from clerk_asgi._keys import KeysUnavailableError, RemoteKeySet, UnknownKeyError
from clerk_asgi.testing import FakeClock, KeyPair

from .test_jwks_support import (
    FAILURES,
    JWKS_URL,
    UNAVAILABLE,
    Responder,
    ScriptedJWKS,
    get_into,
    hold,
    hosts,
    outcome,
    redirect,
    remote,
    same_key,
    serve,
    status,
    valid,
    verifier_for,
)

pytestmark = pytest.mark.anyio


# --- failed fetches ------------------------------------------------------------------------


@pytest.mark.parametrize("respond", FAILURES)
async def test_cold_failure_is_unavailable_and_retried_only_after_the_cooldown(
    respond: Responder, key: KeyPair, clock: FakeClock, caplog: pytest.LogCaptureFixture
) -> None:
    """Nothing cached, a failed fetch: unavailable (retry_after 30), logged once, no early retry."""
    # Redirects are never followed: every request goes to the JWKS host.
    caplog.set_level(logging.WARNING, logger="clerk_asgi")
    script = ScriptedJWKS(respond)
    keys = remote(script, clock)
    with pytest.raises(KeysUnavailableError):
        await keys.get("k1")
    assert keys.retry_after() == 30
    for _ in range(20):
        with pytest.raises(KeysUnavailableError):
            await keys.get("k1")
    clock.advance(29.5)
    with pytest.raises(KeysUnavailableError):
        await keys.get("k1")
    assert keys.retry_after() == 1
    assert len(script.requests) == 1
    assert len([r for r in caplog.records if r.name == "clerk_asgi._keys"]) == 1
    clock.advance(0.5)
    script.respond = serve(key)
    assert same_key(await keys.get("k1"), key)
    assert len(script.requests) == 2
    assert hosts(script) == ["clerk.example.com", "clerk.example.com"]


@pytest.mark.parametrize("respond", FAILURES)
async def test_failure_leaves_the_previous_good_cache_untouched(
    respond: Responder, key: KeyPair, clock: FakeClock
) -> None:
    """A failed refetch keeps the fresh set and starts the cooldown; a failed refresh keeps k1."""
    script = ScriptedJWKS(serve(key))
    keys = remote(script, clock)
    t0 = clock.now
    good = await keys.get("k1")
    script.respond = respond
    clock.now = t0 + 1
    with pytest.raises(UnknownKeyError):
        await keys.get("k2")
    assert len(script.requests) == 2
    assert keys.peek("k1") is good
    clock.now = t0 + 30.999
    with pytest.raises(UnknownKeyError):
        await keys.get("k3")  # a failed or zero-key refetch still starts the cooldown
    assert len(script.requests) == 2
    clock.now = t0 + 300
    assert keys.peek("k1") is None
    assert await keys.get("k1") is good  # TTL refresh failed: last good keys served
    assert len(script.requests) == 3
    assert hosts(script) == ["clerk.example.com"] * 3


async def test_redirect_not_followed_even_by_a_following_client(
    key: KeyPair, clock: FakeClock
) -> None:
    """A user-supplied client with follow_redirects=True still never follows a 302."""
    script = ScriptedJWKS(redirect(302))
    keys = RemoteKeySet(JWKS_URL, http_client=script.client(follow_redirects=True), clock=clock)
    with pytest.raises(KeysUnavailableError):
        await keys.get("k1")
    assert hosts(script) == ["clerk.example.com"]


async def test_default_client_is_used_when_none_is_injected(clock: FakeClock) -> None:
    """Without http_client the key set makes its own; a refused connection is a failed fetch."""
    with socket.socket() as probe:  # a loopback port that nothing listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    keys = RemoteKeySet(f"http://127.0.0.1:{port}/jwks.json", clock=clock, timeout=2)
    with pytest.raises(KeysUnavailableError):
        await keys.get("k1")
    assert keys.retry_after() == 30


# --- the stale window ----------------------------------------------------------------------


async def test_outage_serves_last_good_keys_for_an_hour_with_rate_limited_attempts(
    key: KeyPair, clock: FakeClock
) -> None:
    """JWKS down past the TTL: k1 served 3600 s more, one attempt per 30 s, then unavailable."""
    # From fetched_at + 3900 s KeysUnavailableError; the next success restores service.
    script = ScriptedJWKS(serve(key))
    keys = remote(script, clock)
    verifier = verifier_for(keys, clock)
    t0 = clock.now
    good = await keys.get("k1")
    script.respond = status(503)
    for second in range(600):  # ten minutes of traffic, one request a second
        clock.now = t0 + 300 + second
        assert await keys.get("k1") is good
    assert len(script.requests) == 1 + 20  # attempts at +0, +30, ..., +570 s
    clock.now = t0 + 3899
    assert await keys.get("k1") is good
    assert await outcome(verifier, valid(key, clock)) == "user_test"
    assert len(script.requests) == 22
    clock.now = t0 + 3900
    with pytest.raises(KeysUnavailableError):
        await keys.get("k1")
    assert keys.retry_after() == 29
    assert await outcome(verifier, valid(key, clock)) == UNAVAILABLE
    assert len(script.requests) == 22
    clock.now = t0 + 3929
    with pytest.raises(KeysUnavailableError):
        await keys.get("k1")
    assert len(script.requests) == 23
    script.respond = serve(key)
    clock.now = t0 + 3959
    assert same_key(await keys.get("k1"), key)
    assert len(script.requests) == 24


# --- slow and hanging endpoints ------------------------------------------------------------


async def test_hanging_endpoint_times_out_for_every_waiter_and_releases_the_lock(
    key: KeyPair, clock: FakeClock
) -> None:
    """A JWKS that never answers: 10 waiters are unavailable at the timeout, after one fetch."""
    # After the cooldown the next fetch runs and succeeds: nothing is left locked.
    script = ScriptedJWKS(serve(key))
    script.gate = anyio.Event()  # never set
    keys = remote(script, clock, timeout=0.05)
    results: list[RSAPublicKey | Exception] = []
    async with anyio.create_task_group() as tg:
        for _ in range(10):
            tg.start_soon(get_into, keys, "k1", results)
    assert len(results) == 10
    assert all(isinstance(r, KeysUnavailableError) for r in results)
    assert keys.retry_after() == 30
    assert len(script.requests) == 1
    clock.advance(30)
    script.gate = None
    assert same_key(await keys.get("k1"), key)
    assert len(script.requests) == 2


async def test_trickling_body_is_bounded_by_an_overall_timeout(
    key: KeyPair, clock: FakeClock
) -> None:
    """Headers arrive, then the body stalls mid-way: the overall timeout ends the fetch."""

    async def trickle() -> AsyncIterator[bytes]:
        yield b'{"keys":'
        await hold(anyio.Event())
        yield b"[]}"  # pragma: no cover - never reached

    script = ScriptedJWKS(lambda request: httpx.Response(200, content=trickle()))
    keys = remote(script, clock, timeout=0.05)
    with pytest.raises(KeysUnavailableError):
        await keys.get("k1")
    assert len(script.requests) == 1


async def test_hanging_ttl_refresh_falls_back_to_the_stale_keys(
    key: KeyPair, clock: FakeClock
) -> None:
    """A TTL refresh that hangs ends at the timeout, and the cached k1 is served."""
    script = ScriptedJWKS(serve(key))
    keys = remote(script, clock, timeout=0.05)
    good = await keys.get("k1")
    clock.advance(300)
    script.gate = anyio.Event()  # never set
    assert await keys.get("k1") is good
    assert len(script.requests) == 2
