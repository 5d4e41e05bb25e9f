"""The JWKS key cache (RemoteKeySet), JWK parsing and the key sources of ClerkMiddleware.

Cases are numbered as in reference/security-cases.md (§E 40-53, §J 92-93, §K 95-99). Every
JWKS request goes through an injected httpx transport that records it, and every instant
through the FakeClock, so ``F`` (the number of JWKS requests) is asserted exactly. The only
real waiting is the 50 ms fetch timeout of case 46.
"""

from __future__ import annotations

import base64
import gc
import hashlib
import hmac
import json
import logging
import secrets
import socket
from collections.abc import AsyncIterator, Callable
from typing import Any

import anyio
import anyio.lowlevel
import httpx
import pytest
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.rsa import RSAPublicKey
from fastapi import Depends, FastAPI

from clerk_asgi import Auth, ClerkMiddleware, Rule, current_auth, require_auth
from clerk_asgi._keys import (
    KeysUnavailableError,
    RemoteKeySet,
    StaticKeySet,
    UnknownKeyError,
    parse_jwks,
    rsa_key_from_jwk,
)
from clerk_asgi._verify import TokenVerifier
from clerk_asgi.testing import JWKSTransport, KeyPair, mint_session_token

from .conftest import FakeClock

pytestmark = pytest.mark.anyio

ISS = "https://clerk.example.com"
APP = "https://app.example.com"
JWKS_URL = "https://clerk.example.com/.well-known/jwks.json"
KID_MISMATCH = "jwk-kid-mismatch"
UNAVAILABLE = "jwk-remote-failed-to-load"

SAFETY_NET_SECONDS = 10

Responder = Callable[[httpx.Request], httpx.Response]
JWK = dict[str, Any]


# --- helpers -------------------------------------------------------------------------------


class ScriptedJWKS:
    """A JWKS endpoint double: records every request, answers with ``respond``.

    Each answer passes one checkpoint (like a network round trip), and waits for ``gate``
    when one is set, so tests decide exactly when an in-flight fetch completes.
    """

    def __init__(self, respond: Responder) -> None:
        self.respond = respond
        self.requests: list[httpx.Request] = []
        self.started = anyio.Event()
        self.gate: anyio.Event | None = None

    async def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        self.started.set()
        await anyio.lowlevel.checkpoint()
        if self.gate is not None:
            await hold(self.gate)
        return self.respond(request)

    def client(self, **options: Any) -> httpx.AsyncClient:
        return httpx.AsyncClient(transport=httpx.MockTransport(self), **options)


async def hold(gate: anyio.Event) -> None:
    """Wait for ``gate``; a safety net fails the test instead of hanging it forever when the
    code under test lacks a timeout (the fetch is shielded, so no outer timeout could help)."""
    with anyio.move_on_after(SAFETY_NET_SECONDS):
        await gate.wait()
        return
    pytest.fail(f"a JWKS request was held for {SAFETY_NET_SECONDS} s: no fetch timeout?")


def serve(*keys: KeyPair | JWK) -> Responder:
    """Answer 200 with a JWKS of ``keys`` (KeyPairs or raw JWK dicts)."""
    body = {"keys": [k.jwk if isinstance(k, KeyPair) else k for k in keys]}
    return lambda request: httpx.Response(200, json=body)


def status(code: int, **headers: str) -> Responder:
    return lambda request: httpx.Response(code, headers=headers, json={"errors": []})


def raw(body: str | bytes, content_type: str = "application/json") -> Responder:
    return lambda request: httpx.Response(200, content=body, headers={"content-type": content_type})


def raising(make: Callable[[httpx.Request], Exception]) -> Responder:
    def respond(request: httpx.Request) -> httpx.Response:
        raise make(request)

    return respond


def remote(script: ScriptedJWKS, clock: FakeClock, **options: Any) -> RemoteKeySet:
    return RemoteKeySet(JWKS_URL, http_client=script.client(), clock=clock, **options)


def verifier_for(keys: RemoteKeySet, clock: FakeClock, **options: Any) -> TokenVerifier:
    return TokenVerifier(
        keys, clock=clock, issuer=ISS, authorized_parties=frozenset({APP}), **options
    )


def same_key(found: RSAPublicKey, pair: KeyPair) -> bool:
    return found.public_numbers() == pair.private_key.public_key().public_numbers()


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def b64_json(value: object) -> str:
    return b64(json.dumps(value, separators=(",", ":")).encode())


def b64_uint(value: int) -> str:
    return b64(value.to_bytes((value.bit_length() + 7) // 8, "big"))


def random_modulus(bits: int) -> int:
    """Random odd ``bits``-bit integer: the shape of an RSA modulus, without generating a key."""
    return secrets.randbits(bits) | (1 << (bits - 1)) | 1


def forged(
    kid: str,
    now: float,
    *,
    iss: str = ISS,
    exp: float | None = None,
    alg: str = "RS256",
    signature_bytes: int = 256,
) -> str:
    """A Clerk-shaped token naming ``kid`` with a random (never valid) signature."""
    header = {"alg": alg, "kid": kid, "typ": "JWT"}
    payload = {
        "iss": iss,
        "sub": "user_2abc",
        "sid": "sess_1",
        "azp": APP,
        "iat": int(now),
        "nbf": int(now) - 1,
        "exp": int(now) + 60 if exp is None else exp,
    }
    return f"{b64_json(header)}.{b64_json(payload)}.{b64(secrets.token_bytes(signature_bytes))}"


def valid(pair: KeyPair, clock: FakeClock, **claims: Any) -> str:
    return mint_session_token(pair, issued_at=clock.now, **claims)


async def outcome(verifier: TokenVerifier, token: str) -> str:
    """The user id of a signed-in Auth, else its reason."""
    auth = await verifier.authenticate(token)
    return auth.user_id or auth.reason or "?"


async def get_into(keys: RemoteKeySet, kid: str, results: list[RSAPublicKey | Exception]) -> None:
    try:
        results.append(await keys.get(kid))
    except (KeysUnavailableError, UnknownKeyError) as error:
        results.append(error)


def hosts(script: ScriptedJWKS) -> list[str]:
    return [request.url.host for request in script.requests]


# --- cold load, TTL, peek ------------------------------------------------------------------


async def test_cold_load_fetches_once_and_serves_the_jwks(key: KeyPair, clock: FakeClock) -> None:
    """§3 key cache, cold load: the first get fetches the JWKS URL once; peek never fetches."""
    script = ScriptedJWKS(serve(key))
    keys = remote(script, clock)
    assert keys.peek("k1") is None
    assert len(script.requests) == 0  # peek never does I/O
    found = await keys.get("k1")
    assert same_key(found, key)
    assert keys.peek("k1") is found
    assert await keys.get("k1") is found
    assert len(script.requests) == 1
    assert script.requests[0].method == "GET"
    assert str(script.requests[0].url) == JWKS_URL


async def test_ttl_keys_fresh_until_exactly_fetched_at_plus_300(
    key: KeyPair, clock: FakeClock
) -> None:
    """§3 key cache, TTL 300 s: fresh for [fetched_at, fetched_at + 300), refetched at +300."""
    script = ScriptedJWKS(serve(key))
    keys = remote(script, clock)
    t0 = clock.now
    first = await keys.get("k1")
    clock.now = t0 + 299.999
    assert keys.peek("k1") is first
    assert await keys.get("k1") is first
    assert len(script.requests) == 1
    clock.now = t0 + 300
    assert keys.peek("k1") is None
    second = await keys.get("k1")
    assert (
        second is first
    )  # an unchanged key keeps its object (the request count proves the refetch)
    assert same_key(second, key)
    assert len(script.requests) == 2
    clock.now = t0 + 599.999
    assert await keys.get("k1") is second
    assert len(script.requests) == 2
    clock.now = t0 + 600
    await keys.get("k1")
    assert len(script.requests) == 3


async def test_static_key_set_answers_every_kid_without_io(key: KeyPair) -> None:
    """§1 key sources, StaticKeySet (jwt_key): the one PEM key for any kid, no I/O."""
    public = key.private_key.public_key()
    keys = StaticKeySet(public)
    assert keys.peek("k1") is public
    assert keys.peek("anything") is public
    assert await keys.get("other", may_refetch=False) is public


# --- single flight (40, 52) ----------------------------------------------------------------


async def test_case_40_cold_start_200_concurrent_gets_share_one_fetch(
    key: KeyPair, clock: FakeClock
) -> None:
    """Case 40: 200 concurrent cold gets wait on one in-flight fetch: F=1, all get k1."""
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


async def test_case_52_ttl_expiry_stampede_500_gets_one_refresh(
    key: KeyPair, clock: FakeClock
) -> None:
    """Case 52: warm cache, clock past TTL, 500 concurrent gets: one refresh (F=2), all k1."""
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


async def test_case_52_stampede_through_token_verifier(key: KeyPair, clock: FakeClock) -> None:
    """Case 52: 500 concurrent valid tokens right after TTL expiry: all signed in, F=2."""
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


# --- unknown kid and its cooldown (41, 42) -------------------------------------------------


async def test_case_41_cold_load_and_ttl_refresh_do_not_count_against_the_cooldown(
    key: KeyPair, clock: FakeClock
) -> None:
    """Case 41: an unknown kid right after the cold load or a TTL refresh still refetches."""
    script = ScriptedJWKS(serve(key))
    keys = remote(script, clock)
    t0 = clock.now
    await keys.get("k1")  # cold load
    assert len(script.requests) == 1
    with pytest.raises(UnknownKeyError):
        await keys.get("k9")  # unknown kid at the same instant: refetch allowed
    assert len(script.requests) == 2
    clock.now = t0 + 29.999
    with pytest.raises(UnknownKeyError):
        await keys.get("k8")  # within the cooldown of that refetch: no fetch
    assert len(script.requests) == 2
    clock.now = t0 + 300
    await keys.get("k1")  # TTL refresh
    assert len(script.requests) == 3
    with pytest.raises(UnknownKeyError):
        await keys.get("k7")  # right after the TTL refresh: refetch allowed
    assert len(script.requests) == 4
    with pytest.raises(UnknownKeyError):
        await keys.get("k6")
    assert len(script.requests) == 4


async def test_case_41_unknown_kid_storm_sequential_and_concurrent(
    key: KeyPair, clock: FakeClock
) -> None:
    """Case 41: 10 000 forged tokens with random kids over 156 s, then 500 at once: one fetch
    per 30 s cooldown, all jwk-kid-mismatch, valid tokens unaffected."""
    script = ScriptedJWKS(serve(key))
    keys = remote(script, clock)
    verifier = verifier_for(keys, clock)
    t0 = clock.now
    assert await outcome(verifier, valid(key, clock)) == "user_test"
    assert len(script.requests) == 1
    reasons: set[str] = set()
    for i in range(10_000):
        clock.now = t0 + i / 64  # exact binary fractions: 30 s boundaries land on whole steps
        reasons.add(await outcome(verifier, forged(secrets.token_hex(8), clock.now)))
    assert reasons == {KID_MISMATCH}
    # Unknown-kid refetches at +0, +30, +60, +90, +120 and +150 s, plus the cold load.
    assert len(script.requests) == 7

    clock.now = t0 + 200
    good = valid(key, clock)
    results: list[str] = []

    async def one(token: str) -> None:
        results.append(await outcome(verifier, token))

    async with anyio.create_task_group() as tg:
        for i in range(500):
            tg.start_soon(one, forged(secrets.token_hex(8), clock.now))
            if i % 10 == 0:
                tg.start_soon(one, good)
    assert sorted(set(results)) == [KID_MISMATCH, "user_test"]
    assert results.count("user_test") == 50
    assert results.count(KID_MISMATCH) == 500
    assert len(script.requests) == 8


async def test_case_42a_rotation_after_the_cooldown_is_picked_up_with_one_fetch(
    key: KeyPair, second_key: KeyPair, clock: FakeClock
) -> None:
    """Case 42a: JWKS gains k2; a k2 token more than 30 s after the last fetch: F=1, allowed."""
    script = ScriptedJWKS(serve(key))
    verifier = verifier_for(remote(script, clock), clock)
    assert await outcome(verifier, valid(key, clock)) == "user_test"
    script.respond = serve(key, second_key)
    clock.advance(31)
    assert await outcome(verifier, valid(second_key, clock)) == "user_test"
    assert len(script.requests) == 2
    assert await outcome(verifier, valid(key, clock)) == "user_test"  # k1 keeps working
    assert len(script.requests) == 2


async def test_case_42_rotation_right_after_the_cold_load_refetches_at_once(
    key: KeyPair, second_key: KeyPair, clock: FakeClock
) -> None:
    """Case 42: a k2 token at the very instant of the cold load still gets its one refetch."""
    script = ScriptedJWKS(serve(key))
    verifier = verifier_for(remote(script, clock), clock)
    assert await outcome(verifier, valid(key, clock)) == "user_test"
    script.respond = serve(key, second_key)
    assert await outcome(verifier, valid(second_key, clock)) == "user_test"
    assert len(script.requests) == 2


async def test_case_42b_rotation_within_the_cooldown_is_refused_until_it_ends(
    key: KeyPair, second_key: KeyPair, clock: FakeClock
) -> None:
    """Case 42b: within 30 s of an unknown-kid refetch, a k2 token is jwk-kid-mismatch
    without a fetch; at exactly +30 s one refetch, then allowed."""
    script = ScriptedJWKS(serve(key))
    verifier = verifier_for(remote(script, clock), clock)
    t0 = clock.now
    assert await outcome(verifier, valid(key, clock)) == "user_test"
    clock.now = t0 + 1
    assert await outcome(verifier, forged("k-unknown", clock.now)) == KID_MISMATCH
    assert len(script.requests) == 2
    script.respond = serve(key, second_key)
    clock.now = t0 + 10
    assert await outcome(verifier, valid(second_key, clock)) == KID_MISMATCH
    clock.now = t0 + 30.999
    assert await outcome(verifier, valid(second_key, clock)) == KID_MISMATCH
    assert len(script.requests) == 2
    clock.now = t0 + 31
    assert await outcome(verifier, valid(second_key, clock)) == "user_test"
    assert len(script.requests) == 3
    assert await outcome(verifier, valid(key, clock)) == "user_test"


async def test_case_42_concurrent_new_kid_tokens_wait_for_the_in_flight_refetch(
    key: KeyPair, second_key: KeyPair, clock: FakeClock
) -> None:
    """Case 42: 50 concurrent k2 tokens during one unknown-kid refetch all wait for it: F=2,
    all allowed (not refused for being within the cooldown)."""
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
    assert results == ["user_test"] * 50
    assert len(script.requests) == 2


# --- key removal (43) ----------------------------------------------------------------------


async def test_case_43_removed_key_is_refused_after_the_ttl_refresh_and_stays_gone(
    key: KeyPair, second_key: KeyPair, clock: FakeClock
) -> None:
    """Case 43: the JWKS drops k1; after the TTL refresh a (remembered) k1 token is refused,
    and a later failed fetch does not bring k1 back from the stale cache."""
    script = ScriptedJWKS(serve(key, second_key))
    verifier = verifier_for(remote(script, clock), clock)
    token = valid(key, clock, expires_in=3600)
    assert await outcome(verifier, token) == "user_test"
    assert verifier.cached(token) is not None
    script.respond = serve(second_key)
    clock.advance(300)
    assert await outcome(verifier, token) == KID_MISMATCH
    assert len(script.requests) == 2
    script.respond = status(500)
    clock.advance(300)
    assert await outcome(verifier, token) == KID_MISMATCH
    assert await outcome(verifier, valid(second_key, clock)) == "user_test"  # stale {k2}
    assert len(script.requests) == 3


async def test_case_43_unknown_kid_refetch_that_drops_k1_removes_it_at_once(
    key: KeyPair, second_key: KeyPair, clock: FakeClock
) -> None:
    """Case 43: a successful refetch (triggered by k2) without k1 replaces the set whole:
    k1 tokens, even remembered ones, are refused at once, with no further fetch."""
    script = ScriptedJWKS(serve(key))
    keys = remote(script, clock)
    verifier = verifier_for(keys, clock)
    token = valid(key, clock, expires_in=3600)
    assert await outcome(verifier, token) == "user_test"
    script.respond = serve(second_key)
    clock.advance(1)
    assert await outcome(verifier, valid(second_key, clock)) == "user_test"
    assert len(script.requests) == 2
    assert keys.peek("k1") is None
    assert verifier.cached(token) is None
    assert await outcome(verifier, token) == KID_MISMATCH
    assert len(script.requests) == 2


# --- fetch failures (44) -------------------------------------------------------------------


def _redirect(code: int) -> Responder:
    def respond(request: httpx.Request) -> httpx.Response:
        if request.url.host == "clerk.example.com":
            return httpx.Response(code, headers={"location": "https://evil.example/jwks.json"})
        return httpx.Response(200, json={"keys": []})  # never reached

    return respond


FAILURES = [
    pytest.param(status(500), id="500"),
    pytest.param(status(404), id="404"),
    pytest.param(status(401), id="401-bad-secret"),
    pytest.param(status(503, **{"retry-after": "5"}), id="503"),
    pytest.param(raw("<!doctype html><title>Login</title>", "text/html"), id="200-text-html"),
    pytest.param(raw("{"), id="200-truncated-json"),
    pytest.param(raw("null"), id="200-null"),
    pytest.param(raw("{}"), id="200-empty-object"),
    pytest.param(raw('{"keys":null}'), id="200-keys-null"),
    pytest.param(raw('{"keys":[null]}'), id="200-keys-[null]"),
    pytest.param(raw('{"keys":[]}'), id="200-zero-keys"),
    pytest.param(raw('{"keys":{}}'), id="200-keys-object"),
    pytest.param(raw(b"\xff\xfe\x00"), id="200-not-utf8"),
    pytest.param(raw("[" * 100_000), id="200-deep-nesting"),
    pytest.param(
        raising(lambda r: httpx.ConnectError("[Errno 111] Connection refused", request=r)),
        id="connection-refused",
    ),
    pytest.param(
        raising(lambda r: httpx.ConnectError("[Errno -2] Name or service not known", request=r)),
        id="dns-failure",
    ),
    pytest.param(
        raising(lambda r: httpx.ConnectError("[SSL: CERTIFICATE_VERIFY_FAILED]", request=r)),
        id="tls-error",
    ),
    pytest.param(raising(lambda r: httpx.ReadTimeout("timed out", request=r)), id="read-timeout"),
    pytest.param(raising(lambda r: RuntimeError("transport bug")), id="arbitrary-exception"),
    pytest.param(_redirect(301), id="301-to-other-host"),
    pytest.param(_redirect(302), id="302-to-other-host"),
]


@pytest.mark.parametrize("respond", FAILURES)
async def test_case_44_cold_failure_is_unavailable_and_retried_only_after_the_cooldown(
    respond: Responder, key: KeyPair, clock: FakeClock, caplog: pytest.LogCaptureFixture
) -> None:
    """Case 44: with nothing cached, a failed fetch -> KeysUnavailableError(retry_after=30),
    logged once; no new attempt until the 30 s cooldown ends; redirects are never followed."""
    caplog.set_level(logging.WARNING, logger="clerk_asgi")
    script = ScriptedJWKS(respond)
    keys = remote(script, clock)
    with pytest.raises(KeysUnavailableError) as first:
        await keys.get("k1")
    assert first.value.retry_after == 30
    assert keys.retry_after() == 30
    for _ in range(20):
        with pytest.raises(KeysUnavailableError):
            await keys.get("k1")
    clock.advance(29.5)
    with pytest.raises(KeysUnavailableError) as later:
        await keys.get("k1")
    assert later.value.retry_after == 1
    assert len(script.requests) == 1
    assert len([r for r in caplog.records if r.name == "clerk_asgi"]) == 1
    clock.advance(0.5)
    script.respond = serve(key)
    assert same_key(await keys.get("k1"), key)
    assert len(script.requests) == 2
    assert hosts(script) == ["clerk.example.com", "clerk.example.com"]


@pytest.mark.parametrize("respond", FAILURES)
async def test_case_44_failure_leaves_the_previous_good_cache_untouched(
    respond: Responder, key: KeyPair, clock: FakeClock
) -> None:
    """Case 44: with k1 cached, a failed unknown-kid refetch keeps the fresh set (and starts
    the cooldown); a failed TTL refresh keeps serving the very same k1 key."""
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


async def test_case_44_redirect_not_followed_even_by_a_following_client(
    key: KeyPair, clock: FakeClock
) -> None:
    """Case 44: a user-supplied client with follow_redirects=True still never follows a 302."""
    script = ScriptedJWKS(_redirect(302))
    keys = RemoteKeySet(JWKS_URL, http_client=script.client(follow_redirects=True), clock=clock)
    with pytest.raises(KeysUnavailableError):
        await keys.get("k1")
    assert hosts(script) == ["clerk.example.com"]


# --- stale window (45) ---------------------------------------------------------------------


async def test_case_45_outage_serves_last_good_keys_for_an_hour_with_rate_limited_attempts(
    key: KeyPair, clock: FakeClock
) -> None:
    """Case 45: JWKS 503 after TTL: k1 served for 3600 s past the TTL, one attempt per 30 s;
    from fetched_at + 3900 s KeysUnavailableError; the next success restores service."""
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
    with pytest.raises(KeysUnavailableError) as expired:
        await keys.get("k1")
    assert expired.value.retry_after == 29
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


# --- slow and hanging endpoints (46, 95) ---------------------------------------------------


async def test_case_46_hanging_endpoint_times_out_for_every_waiter_and_releases_the_lock(
    key: KeyPair, clock: FakeClock
) -> None:
    """Case 46: a JWKS that never answers: 10 waiters get KeysUnavailableError after the
    timeout (F=1); after the cooldown the next fetch runs and succeeds."""
    script = ScriptedJWKS(serve(key))
    script.gate = anyio.Event()  # never set
    keys = remote(script, clock, timeout=0.05)
    results: list[RSAPublicKey | Exception] = []
    async with anyio.create_task_group() as tg:
        for _ in range(10):
            tg.start_soon(get_into, keys, "k1", results)
    assert len(results) == 10
    assert all(isinstance(r, KeysUnavailableError) and r.retry_after == 30 for r in results)
    assert len(script.requests) == 1
    clock.advance(30)
    script.gate = None
    assert same_key(await keys.get("k1"), key)
    assert len(script.requests) == 2


async def test_case_46_trickling_body_is_bounded_by_an_overall_timeout(
    key: KeyPair, clock: FakeClock
) -> None:
    """Case 46: headers arrive, then the body stalls mid-way: the overall timeout ends it."""

    async def trickle() -> AsyncIterator[bytes]:
        yield b'{"keys":'
        await hold(anyio.Event())
        yield b"[]}"  # pragma: no cover - never reached

    script = ScriptedJWKS(lambda request: httpx.Response(200, content=trickle()))
    keys = remote(script, clock, timeout=0.05)
    with pytest.raises(KeysUnavailableError):
        await keys.get("k1")
    assert len(script.requests) == 1


async def test_case_46_hanging_ttl_refresh_falls_back_to_the_stale_keys(
    key: KeyPair, clock: FakeClock
) -> None:
    """Case 46: a TTL refresh that hangs ends at the timeout and the cached k1 is served."""
    script = ScriptedJWKS(serve(key))
    keys = remote(script, clock, timeout=0.05)
    good = await keys.get("k1")
    clock.advance(300)
    script.gate = anyio.Event()  # never set
    assert await keys.get("k1") is good
    assert len(script.requests) == 2


async def test_case_95_cached_kid_is_served_while_a_refetch_is_in_flight(
    key: KeyPair, clock: FakeClock
) -> None:
    """Case 95: while an unknown-kid refetch hangs, gets and peeks for the cached kid return
    at once (nothing waits on the fetch but the kid that needs it)."""
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


async def test_case_95_middleware_serves_cached_and_public_routes_during_a_held_fetch(
    key: KeyPair, second_key: KeyPair, clock: FakeClock
) -> None:
    """Case 95: with a JWKS refetch held open, /public and k1 requests on /api complete;
    the k2 request that needs the fetch completes when it does (F=2)."""
    script = ScriptedJWKS(serve(key))
    app = protected_app(clock, http_client=script.client())
    async with app_client(app) as client:
        assert (await client.get("/api/me", headers=bearer(valid(key, clock)))).status_code == 200
        script.respond = serve(key, second_key)
        script.gate = anyio.Event()
        script.started = anyio.Event()
        held: list[httpx.Response] = []

        async def k2_request() -> None:
            held.append(await client.get("/api/me", headers=bearer(valid(second_key, clock))))

        async with anyio.create_task_group() as tg:
            tg.start_soon(k2_request)
            await script.started.wait()
            for _ in range(20):
                r = await client.get("/api/me", headers=bearer(valid(key, clock)))
                assert r.status_code == 200
                assert (await client.get("/public/whoami")).status_code == 200
            assert held == []
            script.gate.set()
    assert [r.status_code for r in held] == [200]
    assert len(script.requests) == 2


# --- hostile JWKS bodies and keys (47, 48, 49, 92) -----------------------------------------

MODULUS_16384 = random_modulus(16384)
MODULUS_4097 = random_modulus(4097)
MODULUS_4096 = random_modulus(4096)
MODULUS_2047 = random_modulus(2047)
EXPONENT_4096 = random_modulus(4096)


def _without(*names: str) -> Callable[[JWK], JWK]:
    return lambda jwk: {k: v for k, v in jwk.items() if k not in names}


def _with(**changes: Any) -> Callable[[JWK], JWK]:
    return lambda jwk: {**jwk, **changes}


def _ec_jwk() -> JWK:
    numbers = ec.generate_private_key(ec.SECP256R1()).public_key().public_numbers()
    return {
        "kty": "EC",
        "crv": "P-256",
        "use": "sig",
        "alg": "ES256",
        "kid": "k1",
        "x": b64(numbers.x.to_bytes(32, "big")),
        "y": b64(numbers.y.to_bytes(32, "big")),
    }


IGNORED_JWKS = [
    # Case 47: sizes and exponents outside policy, malformed numbers.
    pytest.param(_with(n=b64_uint(MODULUS_16384)), id="47-n-16384-bit"),
    pytest.param(_with(n=b64_uint(MODULUS_4097)), id="47-n-4097-bit"),
    pytest.param(_with(n=b64_uint(MODULUS_2047)), id="47-n-2047-bit"),
    pytest.param(_with(e=b64_uint(3)), id="47-e-3"),
    pytest.param(_with(e=b64_uint(EXPONENT_4096)), id="47-e-4096-bit"),
    pytest.param(lambda jwk: {**jwk, "n": "+" + jwk["n"][1:]}, id="47-n-plus-sign"),
    pytest.param(lambda jwk: {**jwk, "n": jwk["n"][:-1] + "/"}, id="47-n-slash"),
    pytest.param(lambda jwk: {**jwk, "n": jwk["n"] + "=="}, id="47-n-padded"),
    pytest.param(lambda jwk: {**jwk, "n": jwk["n"][:8] + " " + jwk["n"][8:]}, id="47-n-space"),
    pytest.param(lambda jwk: {**jwk, "n": jwk["n"] + "AAA"}, id="47-n-impossible-length"),
    pytest.param(_with(n=12345), id="47-n-number"),
    pytest.param(_with(n=""), id="47-n-empty"),
    # Case 48: not an RSA signature key for RS256.
    pytest.param(lambda jwk: {"kty": "oct", "kid": "k1", "k": "c2VjcmV0"}, id="48-oct"),
    pytest.param(lambda jwk: _ec_jwk(), id="48-ec"),
    pytest.param(_with(use="enc"), id="48-use-enc"),
    pytest.param(_with(key_ops=["encrypt"]), id="48-key-ops-encrypt"),
    pytest.param(_with(key_ops=[]), id="48-key-ops-empty"),
    pytest.param(_with(key_ops="verify"), id="48-key-ops-not-a-list"),
    pytest.param(_with(alg="RSA-OAEP"), id="48-alg-rsa-oaep"),
    pytest.param(_with(alg="RS512"), id="48-alg-rs512"),
    pytest.param(_with(alg="HS256"), id="48-alg-hs256"),
    pytest.param(_with(kty="rsa"), id="48-kty-lowercase"),
    pytest.param(_without("e"), id="48-missing-e"),
    pytest.param(_without("n"), id="48-missing-n"),
    pytest.param(_without("kty"), id="48-missing-kty"),
    pytest.param(lambda jwk: [jwk], id="48-not-an-object"),
]

ACCEPTED_JWKS = [
    pytest.param(lambda jwk: jwk, id="as-clerk-publishes-it"),
    pytest.param(_without("use", "alg"), id="no-use-no-alg"),
    pytest.param(_with(key_ops=["verify"]), id="key-ops-verify"),
    pytest.param(_with(n=b64_uint(MODULUS_4096)), id="n-4096-bit"),
]


@pytest.mark.parametrize("change", IGNORED_JWKS)
def test_cases_47_48_jwk_outside_policy_is_ignored(
    change: Callable[[JWK], Any], key: KeyPair
) -> None:
    """Cases 47-48: a JWK that is not an RS256 RSA signature key of 2048-4096 bits with
    e = 65537 is ignored (None), never an error."""
    assert rsa_key_from_jwk(change(key.jwk)) is None


@pytest.mark.parametrize("change", ACCEPTED_JWKS)
def test_jwk_within_policy_is_accepted(change: Callable[[JWK], Any], key: KeyPair) -> None:
    """Cases 47-48 (control): an RS256 JWK of 2048-4096 bits, e = 65537, is usable."""
    jwk = change(key.jwk)
    found = rsa_key_from_jwk(jwk)
    assert found is not None
    assert found.public_numbers().n == int.from_bytes(
        base64.urlsafe_b64decode(jwk["n"] + "=" * (-len(jwk["n"]) % 4)), "big"
    )


@pytest.mark.parametrize("change", IGNORED_JWKS)
async def test_cases_47_48_jwks_of_only_ignored_keys_is_a_failed_fetch(
    change: Callable[[JWK], Any], key: KeyPair, clock: FakeClock
) -> None:
    """Cases 47-48: a JWKS whose only key is ignored holds no usable key: unavailable, F=1."""
    script = ScriptedJWKS(serve(change(key.jwk)))
    keys = remote(script, clock)
    with pytest.raises(KeysUnavailableError):
        await keys.get("k1")
    assert len(script.requests) == 1


async def test_case_47_body_over_512_kib_is_refused(key: KeyPair, clock: FakeClock) -> None:
    """Case 47: a JWKS body of 512 KiB + 1 byte is a failed fetch; exactly 512 KiB is read."""
    document = json.dumps({"keys": [key.jwk]}).encode()
    script = ScriptedJWKS(raw(document + b" " * (512 * 1024 + 1 - len(document))))
    keys = remote(script, clock)
    with pytest.raises(KeysUnavailableError):
        await keys.get("k1")
    clock.advance(30)
    script.respond = raw(document + b" " * (512 * 1024 - len(document)))
    assert same_key(await keys.get("k1"), key)
    assert len(script.requests) == 2


async def test_case_47_endless_body_is_cut_at_the_cap(key: KeyPair, clock: FakeClock) -> None:
    """Case 47: a 200 whose body never ends (50 MB and more) is read only up to the cap."""
    sent = 0

    async def endless() -> AsyncIterator[bytes]:
        nonlocal sent
        yield b'{"keys":['
        while True:
            sent += 1
            yield b" " * 65536

    script = ScriptedJWKS(lambda request: httpx.Response(200, content=endless()))
    keys = remote(script, clock)
    with pytest.raises(KeysUnavailableError):
        await keys.get("k1")
    assert 8 <= sent <= 9  # 512 KiB is eight chunks of 64 KiB; the ninth crosses the cap
    assert len(script.requests) == 1


async def test_case_47_ten_thousand_keys_keep_at_most_fifty(key: KeyPair, clock: FakeClock) -> None:
    """Case 47: a JWKS of 10 000 RSA entries (500 usable, after 9 500 junk ones) keeps only
    the first 50 usable keys."""
    junk: list[JWK] = [{"kty": "RSA", "kid": f"j{i}"} for i in range(9_500)]
    usable: list[JWK] = [{**key.jwk, "kid": f"u{i}"} for i in range(500)]
    body = json.dumps({"keys": junk + usable}, separators=(",", ":")).encode()
    assert len(body) <= 512 * 1024  # under the body cap, so only the key cap applies
    parsed = parse_jwks(body)
    assert parsed is not None
    assert sorted(parsed) == sorted(f"u{i}" for i in range(50))

    script = ScriptedJWKS(raw(body))
    keys = remote(script, clock)
    assert same_key(await keys.get("u0"), key)
    assert keys.peek("u49") is not None
    assert keys.peek("u50") is None
    with pytest.raises(UnknownKeyError):
        await keys.get("u50")
    assert len(script.requests) == 2


async def test_case_92_huge_modulus_key_is_never_used_for_verification(
    key: KeyPair, clock: FakeClock
) -> None:
    """Case 92: a 16384-bit key in the JWKS is dropped at load: a token naming it is
    jwk-kid-mismatch with no 16384-bit verification, and k1 keeps working."""
    big = {**key.jwk, "kid": "kbig", "n": b64_uint(MODULUS_16384)}
    script = ScriptedJWKS(serve(key, big))
    keys = remote(script, clock)
    verifier = verifier_for(keys, clock)
    assert await outcome(verifier, valid(key, clock)) == "user_test"
    token = forged("kbig", clock.now, signature_bytes=2048)
    assert await outcome(verifier, token) == KID_MISMATCH
    assert keys.peek("kbig") is None
    assert len(script.requests) == 2


async def test_case_48_only_the_rs256_signature_key_is_usable(
    key: KeyPair, second_key: KeyPair, clock: FakeClock
) -> None:
    """Case 48: beside k1, oct/EC/enc/encrypt/RSA-OAEP/kid-less/e-less keys are ignored;
    tokens naming them (HS256 with the oct secret, or RS256 by the key's owner) are refused."""
    k2 = second_key.jwk
    jwks_keys: list[JWK] = [
        key.jwk,
        {"kty": "oct", "kid": "k1h", "k": "c2VjcmV0"},
        {**_ec_jwk(), "kid": "k1e"},
        {**k2, "kid": "kenc", "use": "enc"},
        {**k2, "kid": "kops", "key_ops": ["encrypt"]},
        {**k2, "kid": "koaep", "alg": "RSA-OAEP"},
        {k: v for k, v in k2.items() if k != "kid"},
        {k: v for k, v in {**k2, "kid": "knoe"}.items() if k != "e"},
    ]
    body = json.dumps({"keys": jwks_keys}).encode()
    parsed = parse_jwks(body)
    assert parsed is not None
    assert list(parsed) == ["k1"]

    script = ScriptedJWKS(raw(body))
    verifier = verifier_for(remote(script, clock), clock)
    assert await outcome(verifier, valid(key, clock)) == "user_test"

    def hs256(secret: bytes) -> str:
        header = {"alg": "HS256", "kid": "k1h", "typ": "JWT"}
        now = int(clock.now)
        claims = {"iss": ISS, "sub": "user_evil", "sid": "sess_1", "azp": APP, "exp": now + 60}
        signing_input = f"{b64_json(header)}.{b64_json(claims)}"
        mac = hmac.new(secret, signing_input.encode(), hashlib.sha256).digest()
        return f"{signing_input}.{b64(mac)}"

    assert await outcome(verifier, hs256(b"secret")) == "token-invalid-algorithm"
    assert await outcome(verifier, hs256(key.public_pem.encode())) == "token-invalid-algorithm"
    for kid in ("k1h", "k1e", "kenc", "kops", "koaep", "knoe", "k2"):
        token = valid(second_key, clock, headers={"kid": kid})
        assert await outcome(verifier, token) == KID_MISMATCH, kid
    no_kid = valid(second_key, clock, headers={"kid": None})
    assert await outcome(verifier, no_kid) == "token-invalid"
    assert len(script.requests) == 2  # cold load + one unknown-kid refetch


async def test_case_49_duplicate_kid_is_refused_not_tried_twice(
    key: KeyPair, attacker_key: KeyPair, second_key: KeyPair, clock: FakeClock
) -> None:
    """Case 49: a kid listed twice (k1 and a different modulus) is dropped: tokens signed by
    either key are jwk-kid-mismatch; the other keys of the set still work."""
    body = json.dumps({"keys": [key.jwk, attacker_key.jwk, second_key.jwk]}).encode()
    parsed = parse_jwks(body)
    assert parsed is not None
    assert list(parsed) == ["k2"]
    thrice = json.dumps({"keys": [key.jwk, attacker_key.jwk, key.jwk, second_key.jwk]})
    assert list(parse_jwks(thrice.encode()) or {}) == ["k2"]

    script = ScriptedJWKS(raw(body))
    verifier = verifier_for(remote(script, clock), clock)
    assert await outcome(verifier, valid(second_key, clock)) == "user_test"
    assert await outcome(verifier, valid(key, clock)) == KID_MISMATCH
    assert await outcome(verifier, valid(attacker_key, clock)) == KID_MISMATCH
    assert len(script.requests) == 2


async def test_case_49_set_of_only_a_duplicated_kid_holds_no_usable_key(
    key: KeyPair, attacker_key: KeyPair, clock: FakeClock
) -> None:
    """Case 49: a JWKS whose only kid is duplicated has no usable key: a failed fetch."""
    script = ScriptedJWKS(serve(key, attacker_key))
    keys = remote(script, clock)
    with pytest.raises(KeysUnavailableError):
        await keys.get("k1")
    assert len(script.requests) == 1


# --- refetch only on verifiable need (53) --------------------------------------------------


async def test_case_53_tokens_failing_cheap_checks_never_trigger_a_refetch(
    key: KeyPair, clock: FakeClock
) -> None:
    """Case 53: with issuer set, unknown-kid tokens that expired long ago, carry a wrong or
    no iss, or a non-numeric exp are refused without any fetch beyond the cold load."""
    script = ScriptedJWKS(serve(key))
    verifier = verifier_for(remote(script, clock), clock)
    assert await outcome(verifier, valid(key, clock)) == "user_test"
    now = clock.now
    cheap_failures = [
        forged("k-new-1", now, exp=now - 86_400),
        forged("k-new-2", now, exp=now - 6),  # just past the 5 s skew
        forged("k-new-3", now, iss="https://evil.example.com"),
        forged("k-new-4", now, iss="https://clerk.example.com/"),
        forged("k-new-5", now, exp="tomorrow"),  # type: ignore[arg-type]
    ]
    for token in cheap_failures:
        assert await outcome(verifier, token) == KID_MISMATCH
    assert len(script.requests) == 1
    # Control: the same shape with valid exp and iss does refetch.
    assert await outcome(verifier, forged("k-new-6", now)) == KID_MISMATCH
    assert len(script.requests) == 2


STRUCTURAL_FAILURES = [
    pytest.param("not-a-jwt", "token-invalid", id="not-compact"),
    pytest.param(
        f"{b64_json({'alg': 'none', 'kid': 'kz'})}.{b64_json({'sub': 'u'})}.",
        "token-invalid",
        id="alg-none-empty-signature",
    ),
    pytest.param(
        f"{b64_json({'alg': 'none', 'kid': 'kz'})}.{b64_json({'sub': 'u'})}.AAAA",
        "token-invalid-algorithm",
        id="alg-none",
    ),
    pytest.param(
        f"{b64_json({'alg': 'RS256'})}.{b64_json({'sub': 'u'})}.AAAA",
        "token-invalid",
        id="no-kid",
    ),
    pytest.param(
        f"{b64_json({'alg': 'RS256', 'kid': 'kz'})}.bm90IGpzb24.AAAA",
        "token-invalid",
        id="payload-not-json",
    ),
    pytest.param(
        f"{b64_json({'alg': 'RS256', 'kid': 'kz', 'typ': 'at+jwt'})}.{b64_json({})}.AAAA",
        "token-type-mismatch",
        id="typ-at+jwt",
    ),
]


@pytest.mark.parametrize(("token", "reason"), STRUCTURAL_FAILURES)
async def test_case_53_structurally_invalid_tokens_never_fetch_even_when_cold(
    token: str, reason: str, key: KeyPair, clock: FakeClock
) -> None:
    """Case 53: a token refused on its structure reaches no key lookup: F=0 on a cold cache."""
    script = ScriptedJWKS(serve(key))
    verifier = verifier_for(remote(script, clock), clock)
    assert await outcome(verifier, token) == reason
    assert len(script.requests) == 0


# --- bounded memory (93) -------------------------------------------------------------------


async def test_case_93_verified_token_cache_is_bounded_first_in_first_out(
    key: KeyPair, clock: FakeClock
) -> None:
    """Case 93: with cache_size=3 only the last three verified tokens are remembered."""
    script = ScriptedJWKS(serve(key))
    verifier = verifier_for(remote(script, clock), clock, cache_size=3)
    tokens = [valid(key, clock, user_id=f"user_{i}") for i in range(10)]
    for token in tokens:
        assert (await verifier.authenticate(token)).is_signed_in
    assert [verifier.cached(t) is not None for t in tokens] == [False] * 7 + [True] * 3
    assert len(script.requests) == 1


async def test_case_93_forged_tokens_never_enter_the_cache(
    key: KeyPair, attacker_key: KeyPair, clock: FakeClock
) -> None:
    """Case 93: 2 000 distinct forged tokens (bad signatures, distinct kids) evict nothing
    from a cache of size 2 and are never remembered."""
    script = ScriptedJWKS(serve(key))
    verifier = verifier_for(remote(script, clock), clock, cache_size=2)
    # Cold load, then this cooldown's one unknown-kid refetch, before anything is remembered.
    for kid in ("k-first", "k-second"):
        assert await outcome(verifier, forged(kid, clock.now)) == KID_MISMATCH
    assert len(script.requests) == 2
    good = [valid(key, clock, user_id="user_a"), valid(key, clock, user_id="user_b")]
    remembered = [await verifier.authenticate(t) for t in good]
    bad = [valid(attacker_key, clock, user_id=f"user_{i}") for i in range(20)]
    bad += [forged(secrets.token_hex(8), clock.now) for _ in range(1_980)]
    for token in bad:
        assert not (await verifier.authenticate(token)).is_signed_in
    assert all(verifier.cached(t) is a for t, a in zip(good, remembered, strict=True))
    assert all(verifier.cached(t) is None for t in bad)
    assert len(script.requests) == 2


async def test_case_93_refetch_with_unchanged_keys_keeps_remembered_tokens(
    key: KeyPair, clock: FakeClock
) -> None:
    """Case 93: an unknown-kid refetch that returns the same k1 does not make the verifier
    forget the tokens it verified with k1."""
    script = ScriptedJWKS(serve(key))
    verifier = verifier_for(remote(script, clock), clock)
    token = valid(key, clock)
    remembered = await verifier.authenticate(token)
    assert remembered.is_signed_in
    assert await outcome(verifier, forged("k-unknown", clock.now)) == KID_MISMATCH
    assert len(script.requests) == 2
    assert verifier.cached(token) is remembered


async def test_case_93_cache_size_zero_remembers_nothing(key: KeyPair, clock: FakeClock) -> None:
    """Case 93: cache_size=0 turns the verified-token cache off."""
    script = ScriptedJWKS(serve(key))
    verifier = verifier_for(remote(script, clock), clock, cache_size=0)
    token = valid(key, clock)
    assert (await verifier.authenticate(token)).is_signed_in
    assert verifier.cached(token) is None


# --- concurrency (96, 97, 98) --------------------------------------------------------------


async def test_case_96_cancelling_the_first_waiter_does_not_abort_the_shared_fetch(
    key: KeyPair, clock: FakeClock, caplog: pytest.LogCaptureFixture
) -> None:
    """Case 96: 50 gets wait on one fetch; the task that started it is cancelled: the fetch
    completes (F=1), the 49 others get k1, nothing is logged, and the lock is released."""
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
    assert len(results) == 49
    assert all(isinstance(r, RSAPublicKey) and same_key(r, key) for r in results)
    assert len(script.requests) == 1
    gc.collect()
    assert [r for r in caplog.records if r.levelno >= logging.WARNING] == []
    clock.advance(300)
    script.gate = None
    assert same_key(await keys.get("k1"), key)  # a later fetch runs: nothing left locked
    assert len(script.requests) == 2


async def test_case_96_cancelling_every_waiter_still_fills_the_cache(
    key: KeyPair, clock: FakeClock
) -> None:
    """Case 96: all 50 waiters cancelled (clients gone): the shielded fetch still completes
    and later requests use its keys without fetching again."""
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
    assert sum(scope.cancelled_caught for scope in scopes) == 49  # all but the fetching one
    found = keys.peek("k1")
    assert found is not None
    assert same_key(found, key)
    assert await keys.get("k1") is found
    assert len(script.requests) == 1


async def test_case_97_atomic_swap_while_the_jwks_rotates_between_k1_and_k2(
    key: KeyPair, second_key: KeyPair, attacker_key: KeyPair, clock: FakeClock
) -> None:
    """Case 97: the JWKS alternates {k1}/{k2} on every fetch while 600 tokens a round verify:
    each sees one complete set (allowed or jwk-kid-mismatch); forged and absent kids never
    pass; two fetches a round (TTL refresh + one unknown-kid refetch)."""
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


async def test_case_98_failure_during_single_flight_is_shared_not_retried(
    key: KeyPair, clock: FakeClock
) -> None:
    """Case 98: 100 waiters on one fetch that answers 500: F=1, all get KeysUnavailableError
    (retry_after 30); the next attempt happens only once the cooldown has passed."""
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
    assert all(isinstance(r, KeysUnavailableError) and r.retry_after == 30 for r in results)
    assert len(script.requests) == 1
    clock.advance(29.999)
    with pytest.raises(KeysUnavailableError) as early:
        await keys.get("k1")
    assert early.value.retry_after == 1
    assert len(script.requests) == 1
    clock.advance(0.001)
    script.gate = None
    script.respond = serve(key)
    assert same_key(await keys.get("k1"), key)
    assert len(script.requests) == 2


# --- through the middleware: 503, key sources, instances (44, 99) ---------------------------


def protected_app(clock: FakeClock, **options: Any) -> ClerkMiddleware:
    """A FastAPI app wrapped in ClerkMiddleware; ``/public/...`` public, ``/api/...`` API,
    everything else protected (default). Every route echoes the Auth it saw."""
    app = FastAPI()

    @app.get("/api/me")
    @app.get("/public/whoami")
    @app.get("/dashboard")
    async def whoami(auth: Auth = Depends(current_auth)) -> dict[str, str | None]:
        return {"user_id": auth.user_id, "reason": auth.reason}

    settings: dict[str, Any] = {
        "jwks_url": JWKS_URL,
        "issuer": ISS,
        "authorized_parties": [APP],
        "sign_in_url": "/sign-in",
        "clock": clock,
    }
    settings.update(options)
    return ClerkMiddleware(
        app, rules=[Rule.public("/public(.*)"), Rule.api("/api/(.*)")], **settings
    )


def app_client(app: ClerkMiddleware) -> httpx.AsyncClient:
    return httpx.AsyncClient(transport=httpx.ASGITransport(app), base_url=APP)


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


UNAVAILABLE_BODY = {
    "error": "service_unavailable",
    "reason": "jwk-remote-failed-to-load",
    "message": "Clerk's signing keys are unavailable; retry shortly.",
}


def assert_503(response: httpx.Response, retry_after: str) -> None:
    body = json.dumps(UNAVAILABLE_BODY, separators=(",", ":"))
    assert response.status_code == 503
    assert dict(response.headers) == {
        "cache-control": "no-store",
        "x-clerk-auth-status": "signed-out",
        "x-clerk-auth-reason": "jwk-remote-failed-to-load",
        "retry-after": retry_after,
        "content-type": "application/json",
        "content-length": str(len(body)),
    }
    assert response.json() == UNAVAILABLE_BODY


@pytest.mark.parametrize("respond", FAILURES)
async def test_case_44_middleware_answers_503_when_no_keys_can_be_loaded(
    respond: Responder, key: KeyPair, clock: FakeClock
) -> None:
    """Case 44: JWKS failing and nothing cached: an API route answers exactly 503 with
    Retry-After (30, then counting down), no-store and the reason; F=1 for both requests."""
    script = ScriptedJWKS(respond)
    app = protected_app(clock, http_client=script.client())
    async with app_client(app) as client:
        r = await client.get("/api/me", headers=bearer(valid(key, clock)))
        assert_503(r, "30")
        clock.advance(12)
        r = await client.get("/api/me", headers=bearer(valid(key, clock)))
        assert_503(r, "18")
    assert len(script.requests) == 1


async def test_case_44_middleware_503_on_protected_page_instead_of_a_sign_in_redirect(
    key: KeyPair, clock: FakeClock
) -> None:
    """Case 44: a browser navigation to a protected page with a token during the outage gets
    503, not a redirect to sign-in (the user is not signed out)."""
    script = ScriptedJWKS(raising(lambda r: httpx.ConnectError("refused", request=r)))
    app = protected_app(clock, http_client=script.client())
    navigation = {"accept": "text/html", "sec-fetch-dest": "document"}
    cookie = {"cookie": f"__session={valid(key, clock)}"}
    async with app_client(app) as client:
        r = await client.get("/dashboard", headers=navigation | cookie)
    assert_503(r, "30")
    assert len(script.requests) == 1


async def test_case_44_public_route_runs_signed_out_with_the_unavailable_reason(
    key: KeyPair, clock: FakeClock
) -> None:
    """Case 44: on a public route the app runs and sees a signed-out Auth whose reason is
    jwk-remote-failed-to-load; a request without a token fetches nothing."""
    script = ScriptedJWKS(status(500))
    app = protected_app(clock, http_client=script.client())
    async with app_client(app) as client:
        r = await client.get("/public/whoami")
        assert r.status_code == 200
        assert r.json() == {"user_id": None, "reason": "session-token-missing"}
        assert len(script.requests) == 0
        r = await client.get("/public/whoami", headers=bearer(valid(key, clock)))
    assert r.status_code == 200
    assert r.json() == {"user_id": None, "reason": UNAVAILABLE}
    assert len(script.requests) == 1


async def test_secret_key_source_fetches_the_backend_api_with_the_bearer_secret(
    key: KeyPair, clock: FakeClock
) -> None:
    """§1 key sources, secret_key: keys come from https://api.clerk.com/v1/jwks with
    ``Authorization: Bearer sk_...``; the token then verifies."""
    transport = JWKSTransport(key)
    app = protected_app(
        clock,
        jwks_url=None,
        secret_key="sk_test_abc123",
        http_client=httpx.AsyncClient(transport=transport),
    )
    async with app_client(app) as client:
        r = await client.get("/api/me", headers=bearer(valid(key, clock)))
    assert r.status_code == 200
    assert r.json() == {"user_id": "user_test", "reason": None}
    assert len(transport.requests) == 1
    request = transport.requests[0]
    assert request.method == "GET"
    assert str(request.url) == "https://api.clerk.com/v1/jwks"
    assert request.headers["authorization"] == "Bearer sk_test_abc123"


async def test_publishable_key_source_fetches_the_frontend_api_jwks(
    key: KeyPair, clock: FakeClock
) -> None:
    """§1 key sources, publishable_key: keys come from the Frontend API's
    /.well-known/jwks.json with no Authorization header; the issuer comes from the key too."""
    transport = JWKSTransport(key)
    publishable = "pk_test_" + base64.b64encode(b"clerk.example.com$").decode()
    app = protected_app(
        clock,
        jwks_url=None,
        issuer=None,
        publishable_key=publishable,
        http_client=httpx.AsyncClient(transport=transport),
    )
    async with app_client(app) as client:
        r = await client.get("/api/me", headers=bearer(valid(key, clock)))
        other = valid(key, clock, issuer="https://clerk.other.example.com")
        r_other = await client.get("/api/me", headers=bearer(other))
    assert r.status_code == 200
    assert r_other.status_code == 401
    assert r_other.headers["x-clerk-auth-reason"] == "token-invalid-issuer"
    assert len(transport.requests) == 1
    request = transport.requests[0]
    assert str(request.url) == "https://clerk.example.com/.well-known/jwks.json"
    assert "authorization" not in request.headers


async def test_jwt_key_source_makes_no_http_request_at_all(
    key: KeyPair, second_key: KeyPair, clock: FakeClock
) -> None:
    """§1 key sources, jwt_key (PEM): networkless; even with jwks_url and secret_key also given, the
    injected client is never called, for valid, foreign-key and unknown-kid tokens."""
    script = ScriptedJWKS(status(500))
    app = protected_app(
        clock,
        jwt_key=key.public_pem,
        secret_key="sk_test_abc123",
        http_client=script.client(),
    )
    async with app_client(app) as client:
        ok = await client.get("/api/me", headers=bearer(valid(key, clock)))
        foreign = await client.get("/api/me", headers=bearer(valid(second_key, clock)))
        odd_kid = valid(key, clock, headers={"kid": "ins_other"})
        renamed = await client.get("/api/me", headers=bearer(odd_kid))
    assert ok.status_code == 200
    assert foreign.status_code == 401
    assert foreign.headers["x-clerk-auth-reason"] == "token-invalid-signature"
    assert renamed.status_code == 200  # like Clerk's jwtKey, the kid is not compared
    assert len(script.requests) == 0


async def test_case_99_two_middleware_instances_never_share_a_cache(
    key: KeyPair, second_key: KeyPair, clock: FakeClock
) -> None:
    """Case 99: two instances with the same jwks_url but different endpoints (k1 / k2) each
    fetch once for their own tokens and never accept the other instance's key."""
    transport_a, transport_b = JWKSTransport(key), JWKSTransport(second_key)
    app_a = protected_app(clock, http_client=httpx.AsyncClient(transport=transport_a))
    app_b = protected_app(clock, http_client=httpx.AsyncClient(transport=transport_b))
    assert app_a.keys is not app_b.keys
    async with app_client(app_a) as a, app_client(app_b) as b:
        for _ in range(5):
            assert (await a.get("/api/me", headers=bearer(valid(key, clock)))).status_code == 200
            r = await b.get("/api/me", headers=bearer(valid(second_key, clock)))
            assert r.status_code == 200
        assert (len(transport_a.requests), len(transport_b.requests)) == (1, 1)
        cross_a = await a.get("/api/me", headers=bearer(valid(second_key, clock)))
        cross_b = await b.get("/api/me", headers=bearer(valid(key, clock)))
    assert cross_a.status_code == cross_b.status_code == 401
    assert cross_a.headers["x-clerk-auth-reason"] == KID_MISMATCH
    assert cross_b.headers["x-clerk-auth-reason"] == KID_MISMATCH
    assert (len(transport_a.requests), len(transport_b.requests)) == (2, 2)


async def test_default_client_is_used_when_none_is_injected(clock: FakeClock) -> None:
    """Without http_client the key set makes its own client; a refused connection is a failed
    fetch (503 material), never an exception."""
    with socket.socket() as probe:  # a loopback port that nothing listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    keys = RemoteKeySet(f"http://127.0.0.1:{port}/jwks.json", clock=clock, timeout=2)
    with pytest.raises(KeysUnavailableError) as excinfo:
        await keys.get("k1")
    assert excinfo.value.retry_after == 30


async def test_a_ttl_shorter_than_the_cooldown_is_honoured(key: KeyPair, clock: FakeClock) -> None:
    """jwks_cache_ttl=10 refetches after 10 s even with the 30 s cooldown: the cooldown only
    spaces unknown-kid refetches and attempts after a failure."""
    script = ScriptedJWKS(serve(key))
    keys = remote(script, clock, ttl=10)
    await keys.get("k1")
    clock.advance(9)
    await keys.get("k1")
    assert len(script.requests) == 1
    clock.advance(2)
    await keys.get("k1")
    assert len(script.requests) == 2


async def test_require_auth_answers_503_when_the_keys_cannot_load(
    key: KeyPair, clock: FakeClock
) -> None:
    """DESIGN §2: keys that cannot be loaded are not "signed out", in require_auth() too: 503
    with Retry-After on a public route guarded by the dependency."""
    app = FastAPI()

    @app.get("/public/me")
    async def me(auth: Auth = Depends(require_auth())) -> dict[str, str | None]:
        return {"user_id": auth.user_id}  # pragma: no cover - never reached

    script = ScriptedJWKS(status(500))
    app.add_middleware(
        ClerkMiddleware,
        jwks_url=JWKS_URL,
        http_client=script.client(),
        clock=clock,
        rules=[Rule.public("/public(.*)")],
    )
    token = mint_session_token(key, issued_at=clock.now)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app), base_url=APP) as c:
        r = await c.get("/public/me", headers={"authorization": f"Bearer {token}"})
    assert r.status_code == 503
    assert r.headers["retry-after"] == "30"
    assert r.headers["x-clerk-auth-reason"] == "jwk-remote-failed-to-load"
    assert r.headers["cache-control"] == "no-store"
    assert r.json() == {
        "error": "service_unavailable",
        "reason": "jwk-remote-failed-to-load",
        "message": "Clerk's signing keys are unavailable; retry shortly.",
    }
