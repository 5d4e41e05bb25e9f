"""Single flight: concurrent requests share one JWKS fetch, which no cancellation aborts.

The fetch runs as a task of its own: cancelling the request that started it, by anyio or by
asyncio's ``Task.cancel()`` (a timeout middleware, a server), leaves it to the others.
"""

from __future__ import annotations

import asyncio
import gc
import logging

import anyio
import httpx
import pytest
from cryptography.hazmat.primitives.asymmetric.rsa import RSAPublicKey

from clerk_asgi._keys import KeysUnavailableError, RemoteKeySet, UnknownKeyError
from clerk_asgi.testing import FakeClock, KeyPair

from .test_jwks_support import (
    JWKS_URL,
    KID_MISMATCH,
    Responder,
    ScriptedJWKS,
    get_into,
    outcome,
    remote,
    same_key,
    serve,
    status,
    valid,
    verifier_for,
)

pytestmark = pytest.mark.anyio


class HeldJWKS:
    """A JWKS endpoint whose every answer waits for ``release``, a plain asyncio.Event."""

    def __init__(self, respond: Responder) -> None:
        self.respond = respond
        self.requests: list[httpx.Request] = []
        self.started = asyncio.Event()
        self.release = asyncio.Event()

    async def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        self.started.set()
        await self.release.wait()
        return self.respond(request)

    def keys(self, clock: FakeClock) -> RemoteKeySet:
        client = httpx.AsyncClient(transport=httpx.MockTransport(self))
        return RemoteKeySet(JWKS_URL, http_client=client, clock=clock)


async def waiting_request(keys: RemoteKeySet) -> asyncio.Task[RSAPublicKey]:
    """A request for k1, started and left waiting on the fetch in flight."""
    task = asyncio.create_task(keys.get("k1"))
    await anyio.wait_all_tasks_blocked()
    return task


def assert_nothing_logged(caplog: pytest.LogCaptureFixture) -> None:
    """No warning or error anywhere, asyncio's "Task exception was never retrieved" included."""
    gc.collect()
    assert [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING] == []


# --- one fetch for many --------------------------------------------------------------------


async def test_200_concurrent_cold_gets_share_one_fetch(key: KeyPair, clock: FakeClock) -> None:
    """200 concurrent gets on a cold cache wait on one fetch and all get the same k1."""
    script = ScriptedJWKS(serve(key))
    script.gate = anyio.Event()
    keys = remote(script, clock)
    results: list[RSAPublicKey | Exception] = []
    async with anyio.create_task_group() as tg:
        for _ in range(200):
            tg.start_soon(get_into, keys, "k1", results)
        await script.started.wait()
        await anyio.wait_all_tasks_blocked()
        assert results == []
        script.gate.set()
    assert len(script.requests) == 1
    assert len(results) == 200
    assert all(found is results[0] for found in results)
    assert isinstance(results[0], RSAPublicKey)
    assert same_key(results[0], key)


async def test_ttl_expiry_stampede_of_500_gets_makes_one_refresh(
    key: KeyPair, clock: FakeClock
) -> None:
    """500 concurrent gets just past the TTL share one refresh and all get the same k1."""
    script = ScriptedJWKS(serve(key))
    keys = remote(script, clock)
    old = await keys.get("k1")
    clock.advance(300)
    script.gate = anyio.Event()
    script.started = anyio.Event()
    results: list[RSAPublicKey | Exception] = []
    async with anyio.create_task_group() as tg:
        for _ in range(500):
            tg.start_soon(get_into, keys, "k1", results)
        await script.started.wait()
        await anyio.wait_all_tasks_blocked()
        script.gate.set()
    assert len(script.requests) == 2
    assert len(results) == 500
    assert all(found is results[0] for found in results)
    assert results[0] is old  # unchanged key: same object, verified tokens stay remembered
    assert isinstance(results[0], RSAPublicKey)
    assert same_key(results[0], key)


async def test_ttl_expiry_stampede_through_the_token_verifier_makes_one_refresh(
    key: KeyPair, clock: FakeClock
) -> None:
    """500 concurrent valid tokens right after the TTL expires are all signed in: one refresh."""
    script = ScriptedJWKS(serve(key))
    keys = remote(script, clock)
    verifier = verifier_for(keys, clock)
    assert await outcome(verifier, valid(key, clock)) == "user_test"
    clock.advance(300)
    token = valid(key, clock)
    results: list[str] = []

    async def one() -> None:
        results.append(await outcome(verifier, token))

    async with anyio.create_task_group() as tg:
        for _ in range(500):
            tg.start_soon(one)
    assert results == ["user_test"] * 500
    assert len(script.requests) == 2


async def test_concurrent_new_kid_tokens_wait_for_the_in_flight_refetch(
    key: KeyPair, second_key: KeyPair, clock: FakeClock
) -> None:
    """50 concurrent k2 tokens during one unknown-kid refetch wait for it and are all allowed."""
    script = ScriptedJWKS(serve(key))
    verifier = verifier_for(remote(script, clock), clock)
    assert await outcome(verifier, valid(key, clock)) == "user_test"
    script.respond = serve(key, second_key)
    script.gate = anyio.Event()
    script.started = anyio.Event()
    token = valid(second_key, clock)
    results: list[str] = []

    async def one() -> None:
        results.append(await outcome(verifier, token))

    async with anyio.create_task_group() as tg:
        for _ in range(50):
            tg.start_soon(one)
        await script.started.wait()
        await anyio.wait_all_tasks_blocked()
        assert results == []
        script.gate.set()
    assert results == ["user_test"] * 50  # not refused for being within the cooldown
    assert len(script.requests) == 2


async def test_cached_kid_is_served_while_a_refetch_is_in_flight(
    key: KeyPair, clock: FakeClock
) -> None:
    """While an unknown-kid refetch hangs, gets and peeks of the cached kid return at once."""
    script = ScriptedJWKS(serve(key))
    keys = remote(script, clock)
    good = await keys.get("k1")
    script.gate = anyio.Event()
    script.started = anyio.Event()
    results: list[RSAPublicKey | Exception] = []
    async with anyio.create_task_group() as tg:
        tg.start_soon(get_into, keys, "k2", results)
        await script.started.wait()
        for _ in range(100):
            assert await keys.get("k1") is good
            assert keys.peek("k1") is good
        assert results == []
        script.gate.set()
    assert len(results) == 1
    assert isinstance(results[0], UnknownKeyError)
    assert len(script.requests) == 2


async def test_failure_during_single_flight_is_shared_not_retried(
    key: KeyPair, clock: FakeClock
) -> None:
    """100 waiters on one fetch answering 500 all get KeysUnavailableError; no retry till +30 s."""
    script = ScriptedJWKS(status(500))
    script.gate = anyio.Event()
    keys = remote(script, clock)
    results: list[RSAPublicKey | Exception] = []
    async with anyio.create_task_group() as tg:
        for _ in range(100):
            tg.start_soon(get_into, keys, "k1", results)
        await script.started.wait()
        await anyio.wait_all_tasks_blocked()
        script.gate.set()
    assert len(results) == 100
    assert all(isinstance(r, KeysUnavailableError) for r in results)
    assert keys.retry_after() == 30
    assert len(script.requests) == 1
    clock.advance(29.999)
    with pytest.raises(KeysUnavailableError):
        await keys.get("k1")
    assert keys.retry_after() == 1
    assert len(script.requests) == 1
    clock.advance(0.001)
    script.gate = None
    script.respond = serve(key)
    assert same_key(await keys.get("k1"), key)
    assert len(script.requests) == 2


async def test_each_verification_sees_one_whole_key_set_while_the_jwks_rotates(
    key: KeyPair, second_key: KeyPair, attacker_key: KeyPair, clock: FakeClock
) -> None:
    """A JWKS alternating {k1}/{k2} per fetch under load: each token sees one whole set."""
    # Each token is allowed or jwk-kid-mismatch; forged and absent kids never pass; two
    # fetches a round (the TTL refresh and one unknown-kid refetch).
    served = 0

    def alternate(request: httpx.Request) -> httpx.Response:
        nonlocal served
        current = (key, second_key)[served % 2]
        served += 1
        return httpx.Response(200, json={"keys": [current.jwk]})

    script = ScriptedJWKS(alternate)
    verifier = verifier_for(remote(script, clock), clock)
    absent = KeyPair(attacker_key.private_key, "kx")
    seen: dict[str, set[str]] = {"k1": set(), "k2": set(), "forged-k1": set(), "kx": set()}

    async def one(name: str, token: str) -> None:
        seen[name].add(await outcome(verifier, token))

    rounds = 6
    for _ in range(rounds):
        clock.advance(300)
        tokens = {
            "k1": valid(key, clock),
            "k2": valid(second_key, clock),
            "forged-k1": valid(attacker_key, clock),
            "kx": valid(absent, clock),
        }
        names = list(tokens) * 25
        for phase in (names * 3, names * 3, names):  # during refresh, during refetch, after
            async with anyio.create_task_group() as tg:
                for name in phase:
                    tg.start_soon(one, name, tokens[name])
    assert seen["k1"] == {"user_test", KID_MISMATCH}
    assert seen["k2"] == {"user_test", KID_MISMATCH}
    assert seen["forged-k1"] <= {"token-invalid-signature", KID_MISMATCH}
    assert seen["kx"] == {KID_MISMATCH}
    assert len(script.requests) == 2 * rounds


# --- cancellation by anyio -----------------------------------------------------------------


async def test_anyio_cancelling_the_first_waiter_does_not_abort_the_shared_fetch(
    key: KeyPair, clock: FakeClock, caplog: pytest.LogCaptureFixture
) -> None:
    """The anyio-cancelled starter of a fetch leaves it to the 49 others, who all get k1."""
    script = ScriptedJWKS(serve(key))
    script.gate = anyio.Event()
    keys = remote(script, clock)
    first = anyio.CancelScope()
    results: list[RSAPublicKey | Exception] = []

    async def first_waiter() -> None:
        with first:
            await keys.get("k1")

    async with anyio.create_task_group() as tg:
        tg.start_soon(first_waiter)
        await script.started.wait()
        for _ in range(49):
            tg.start_soon(get_into, keys, "k1", results)
        await anyio.wait_all_tasks_blocked()
        first.cancel()
        await anyio.wait_all_tasks_blocked()
        assert results == []
        script.gate.set()
    assert first.cancelled_caught
    assert len(results) == 49
    assert all(isinstance(r, RSAPublicKey) and same_key(r, key) for r in results)
    assert len(script.requests) == 1
    assert_nothing_logged(caplog)
    clock.advance(300)
    script.gate = None
    assert same_key(await keys.get("k1"), key)  # a later fetch runs: nothing left locked
    assert len(script.requests) == 2


async def test_anyio_cancelling_every_waiter_still_fills_the_cache(
    key: KeyPair, clock: FakeClock
) -> None:
    """All 50 waiters cancelled (clients gone): the fetch completes and fills the cache."""
    script = ScriptedJWKS(serve(key))
    script.gate = anyio.Event()
    keys = remote(script, clock)
    scopes = [anyio.CancelScope() for _ in range(50)]

    async def waiter(scope: anyio.CancelScope) -> None:
        with scope:
            await keys.get("k1")

    async with anyio.create_task_group() as tg:
        for scope in scopes:
            tg.start_soon(waiter, scope)
        await script.started.wait()
        await anyio.wait_all_tasks_blocked()
        for scope in scopes:
            scope.cancel()
        await anyio.wait_all_tasks_blocked()
        script.gate.set()
    assert sum(scope.cancelled_caught for scope in scopes) == 50  # the starter's included
    await anyio.wait_all_tasks_blocked()  # the fetch, awaited by no one, completes
    found = keys.peek("k1")
    assert found is not None
    assert same_key(found, key)
    assert await keys.get("k1") is found
    assert len(script.requests) == 1


# --- cancellation by asyncio (Task.cancel, wait_for, asyncio.timeout) ----------------------


async def test_task_cancel_of_the_request_that_started_the_fetch_leaves_it_to_the_others(
    key: KeyPair, clock: FakeClock, caplog: pytest.LogCaptureFixture
) -> None:
    """Task.cancel() of a cold fetch's starter: it gets CancelledError, a waiter still gets k1."""
    held = HeldJWKS(serve(key))
    keys = held.keys(clock)
    first = asyncio.create_task(keys.get("k1"))
    await held.started.wait()
    second = await waiting_request(keys)
    first.cancel()
    with pytest.raises(asyncio.CancelledError):
        await first
    held.release.set()
    found = await second
    assert same_key(found, key)
    assert keys.peek("k1") is found
    assert len(held.requests) == 1
    assert_nothing_logged(caplog)
    clock.advance(300)
    assert same_key(await keys.get("k1"), key)  # a later fetch runs: nothing left locked
    assert len(held.requests) == 2


async def test_wait_for_timeout_on_the_request_that_started_the_fetch_leaves_it_to_the_others(
    key: KeyPair, clock: FakeClock, caplog: pytest.LogCaptureFixture
) -> None:
    """asyncio.wait_for giving up on a cold fetch's starter: a waiter still gets k1, one fetch."""
    held = HeldJWKS(serve(key))
    keys = held.keys(clock)
    first = asyncio.create_task(keys.get("k1"))
    await held.started.wait()
    second = await waiting_request(keys)
    with pytest.raises(TimeoutError):
        await asyncio.wait_for(first, timeout=0)  # times out at once: first is cancelled
    assert first.cancelled()
    held.release.set()
    assert same_key(await second, key)
    assert len(held.requests) == 1
    assert_nothing_logged(caplog)


async def test_asyncio_timeout_on_the_request_that_started_the_fetch_leaves_it_to_the_others(
    key: KeyPair, clock: FakeClock, caplog: pytest.LogCaptureFixture
) -> None:
    """An asyncio.timeout (a timeout middleware) expiring on the starter: a waiter gets k1."""
    held = HeldJWKS(serve(key))
    keys = held.keys(clock)
    deadline = asyncio.timeout(None)

    async def request_with_a_deadline() -> RSAPublicKey:
        async with deadline:
            return await keys.get("k1")

    first = asyncio.create_task(request_with_a_deadline())
    await held.started.wait()
    second = await waiting_request(keys)
    deadline.reschedule(asyncio.get_running_loop().time())  # the deadline passes now
    with pytest.raises(TimeoutError):
        await first
    held.release.set()
    assert same_key(await second, key)
    assert len(held.requests) == 1
    assert_nothing_logged(caplog)


async def test_task_cancel_of_the_starter_still_reports_a_failed_fetch_to_the_others(
    key: KeyPair, clock: FakeClock, caplog: pytest.LogCaptureFixture
) -> None:
    """The starter cancelled, the fetch then answers 500: the waiter gets retry_after 30."""
    caplog.set_level(logging.WARNING, logger="clerk_asgi")
    held = HeldJWKS(status(500))
    keys = held.keys(clock)
    first = asyncio.create_task(keys.get("k1"))
    await held.started.wait()
    second = await waiting_request(keys)
    first.cancel()
    with pytest.raises(asyncio.CancelledError):
        await first
    held.release.set()
    with pytest.raises(KeysUnavailableError):
        await second
    assert keys.retry_after() == 30
    assert len(held.requests) == 1
    gc.collect()
    assert [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING] == [
        f"JWKS fetch from {JWKS_URL} failed: HTTP 500"
    ]


async def test_task_cancel_of_every_waiter_still_fills_the_cache(
    key: KeyPair, clock: FakeClock, caplog: pytest.LogCaptureFixture
) -> None:
    """Every waiter Task.cancel()ed: each gets CancelledError, and the fetch fills the cache."""
    held = HeldJWKS(serve(key))
    keys = held.keys(clock)
    waiters = [asyncio.create_task(keys.get("k1")) for _ in range(10)]
    await held.started.wait()
    await anyio.wait_all_tasks_blocked()
    for waiter in waiters:
        waiter.cancel()
    results = await asyncio.gather(*waiters, return_exceptions=True)
    assert all(isinstance(r, asyncio.CancelledError) for r in results)
    assert keys.peek("k1") is None
    held.release.set()
    await anyio.wait_all_tasks_blocked()  # the fetch, awaited by no one, completes
    found = keys.peek("k1")
    assert found is not None
    assert same_key(found, key)
    assert await keys.get("k1") is found
    assert len(held.requests) == 1
    assert_nothing_logged(caplog)
