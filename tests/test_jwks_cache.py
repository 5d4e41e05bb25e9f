"""The JWKS cache: cold load, TTL, the unknown-kid refetch and its cooldown, key removal,
and what the verified-token cache keeps across refetches."""

from __future__ import annotations

import secrets

import anyio
import pytest

from clerk_asgi._keys import UnknownKeyError
from clerk_asgi.testing import FakeClock, KeyPair

from .test_jwks_support import (
    JWKS_URL,
    KID_MISMATCH,
    ScriptedJWKS,
    b64_json,
    forged,
    outcome,
    remote,
    same_key,
    serve,
    status,
    valid,
    verifier_for,
)

pytestmark = pytest.mark.anyio


# --- cold load, TTL, peek ------------------------------------------------------------------


async def test_cold_load_fetches_once_and_serves_the_jwks(key: KeyPair, clock: FakeClock) -> None:
    """The first get fetches the JWKS URL once, later gets use the cache; peek never fetches."""
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
    """Keys are fresh for [fetched_at, fetched_at + 300 s) and refetched at exactly +300 s."""
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
    # An unchanged key keeps its object (the request count proves the refetch).
    assert second is first
    assert same_key(second, key)
    assert len(script.requests) == 2
    clock.now = t0 + 599.999
    assert await keys.get("k1") is second
    assert len(script.requests) == 2
    clock.now = t0 + 600
    await keys.get("k1")
    assert len(script.requests) == 3


async def test_a_ttl_shorter_than_the_cooldown_is_honoured(key: KeyPair, clock: FakeClock) -> None:
    """A 10 s TTL refetches after 10 s: the 30 s cooldown does not space TTL refreshes."""
    script = ScriptedJWKS(serve(key))
    keys = remote(script, clock, ttl=10)
    await keys.get("k1")
    clock.advance(9)
    await keys.get("k1")
    assert len(script.requests) == 1
    clock.advance(2)
    await keys.get("k1")
    assert len(script.requests) == 2


# --- unknown kid and its cooldown ----------------------------------------------------------


async def test_cold_load_and_ttl_refresh_do_not_count_against_the_cooldown(
    key: KeyPair, clock: FakeClock
) -> None:
    """An unknown kid right after the cold load or a TTL refresh still gets its refetch."""
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


async def test_unknown_kid_storm_refetches_once_per_cooldown(
    key: KeyPair, clock: FakeClock
) -> None:
    """Random-kid tokens, 10 000 over 156 s then 500 at once: one fetch per 30 s cooldown."""
    # All are jwk-kid-mismatch, and valid tokens among them are unaffected.
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


async def test_rotation_after_the_cooldown_is_picked_up_with_one_fetch(
    key: KeyPair, second_key: KeyPair, clock: FakeClock
) -> None:
    """The JWKS gains k2: a k2 token 31 s after the last fetch refetches once and is allowed."""
    script = ScriptedJWKS(serve(key))
    verifier = verifier_for(remote(script, clock), clock)
    assert await outcome(verifier, valid(key, clock)) == "user_test"
    script.respond = serve(key, second_key)
    clock.advance(31)
    assert await outcome(verifier, valid(second_key, clock)) == "user_test"
    assert len(script.requests) == 2
    assert await outcome(verifier, valid(key, clock)) == "user_test"  # k1 keeps working
    assert len(script.requests) == 2


async def test_rotation_right_after_the_cold_load_refetches_at_once(
    key: KeyPair, second_key: KeyPair, clock: FakeClock
) -> None:
    """A k2 token at the very instant of the cold load still gets its one refetch."""
    script = ScriptedJWKS(serve(key))
    verifier = verifier_for(remote(script, clock), clock)
    assert await outcome(verifier, valid(key, clock)) == "user_test"
    script.respond = serve(key, second_key)
    assert await outcome(verifier, valid(second_key, clock)) == "user_test"
    assert len(script.requests) == 2


async def test_rotation_within_the_cooldown_is_refused_until_it_ends(
    key: KeyPair, second_key: KeyPair, clock: FakeClock
) -> None:
    """Within 30 s of an unknown-kid refetch a k2 token is refused unfetched; at +30 s, allowed."""
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


# --- key removal ---------------------------------------------------------------------------


async def test_removed_key_is_refused_after_the_ttl_refresh_and_stays_gone(
    key: KeyPair, second_key: KeyPair, clock: FakeClock
) -> None:
    """A k1 dropped from the JWKS is refused after the TTL refresh, and a failure keeps it gone."""
    script = ScriptedJWKS(serve(key, second_key))
    verifier = verifier_for(remote(script, clock), clock)
    token = valid(key, clock, expires_in=3600)
    assert await outcome(verifier, token) == "user_test"
    assert verifier.cached(token) is not None
    script.respond = serve(second_key)
    clock.advance(300)
    assert await outcome(verifier, token) == KID_MISMATCH  # even though it was remembered
    assert len(script.requests) == 2
    script.respond = status(500)
    clock.advance(300)
    assert await outcome(verifier, token) == KID_MISMATCH  # the stale cache is {k2}
    assert await outcome(verifier, valid(second_key, clock)) == "user_test"
    assert len(script.requests) == 3


async def test_unknown_kid_refetch_that_drops_k1_removes_it_at_once(
    key: KeyPair, second_key: KeyPair, clock: FakeClock
) -> None:
    """A refetch (for k2) without k1 replaces the set whole: k1 tokens are refused at once."""
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
    assert verifier.cached(token) is None  # a remembered k1 token is forgotten too
    assert await outcome(verifier, token) == KID_MISMATCH
    assert len(script.requests) == 2


# --- refetch only on verifiable need -------------------------------------------------------


async def test_tokens_failing_cheap_checks_never_trigger_a_refetch(
    key: KeyPair, clock: FakeClock
) -> None:
    """Unknown-kid tokens already expired, of another iss or a non-numeric exp never refetch."""
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
async def test_structurally_invalid_tokens_never_fetch_even_when_cold(
    token: str, reason: str, key: KeyPair, clock: FakeClock
) -> None:
    """A token refused on its structure reaches no key lookup: no fetch, even on a cold cache."""
    script = ScriptedJWKS(serve(key))
    verifier = verifier_for(remote(script, clock), clock)
    assert await outcome(verifier, token) == reason
    assert len(script.requests) == 0


# --- the verified-token cache across key fetches -------------------------------------------


async def test_verified_token_cache_is_bounded_first_in_first_out(
    key: KeyPair, clock: FakeClock
) -> None:
    """With cache_size=3 only the last three verified tokens are remembered."""
    script = ScriptedJWKS(serve(key))
    verifier = verifier_for(remote(script, clock), clock, cache_size=3)
    tokens = [valid(key, clock, user_id=f"user_{i}") for i in range(10)]
    for token in tokens:
        assert (await verifier.authenticate(token)).is_signed_in
    assert [verifier.cached(t) is not None for t in tokens] == [False] * 7 + [True] * 3
    assert len(script.requests) == 1


async def test_forged_tokens_never_enter_the_verified_token_cache(
    key: KeyPair, attacker_key: KeyPair, clock: FakeClock
) -> None:
    """2 000 distinct forged tokens evict nothing from a cache of size 2, nor are remembered."""
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


async def test_refetch_with_unchanged_keys_keeps_remembered_tokens(
    key: KeyPair, clock: FakeClock
) -> None:
    """An unknown-kid refetch returning the same k1 keeps the tokens k1 verified remembered."""
    script = ScriptedJWKS(serve(key))
    verifier = verifier_for(remote(script, clock), clock)
    token = valid(key, clock)
    remembered = await verifier.authenticate(token)
    assert remembered.is_signed_in
    assert await outcome(verifier, forged("k-unknown", clock.now)) == KID_MISMATCH
    assert len(script.requests) == 2
    assert verifier.cached(token) is remembered


async def test_cache_size_zero_remembers_no_token(key: KeyPair, clock: FakeClock) -> None:
    """cache_size=0 turns the verified-token cache off."""
    script = ScriptedJWKS(serve(key))
    verifier = verifier_for(remote(script, clock), clock, cache_size=0)
    token = valid(key, clock)
    assert (await verifier.authenticate(token)).is_signed_in
    assert verifier.cached(token) is None
