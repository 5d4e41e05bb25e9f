"""The verified-token cache: accepted tokens and final refusals are answered from memory.

Keyed by the exact token string, bounded (first in, first out), and never trusted past exp +
skew, ``max_token_age`` or the departure of the token's key from the JWKS; refusals that time
can undo (not yet valid) are never remembered (docs/security.md "Token verification, in
order").
"""

from __future__ import annotations

from typing import Any

import pytest

from clerk_asgi import Auth
from clerk_asgi.testing import FakeClock

from ._verify_helpers import (
    EXPIRED,
    IN,
    KID,
    NOT_ACTIVE,
    NOW,
    OK,
    SKEW,
    TOO_OLD,
    Harness,
    Keys,
    assert_outcome,
    claims,
    forged,
    header,
    rs,
    static_verifier,
    valid,
)

pytestmark = pytest.mark.anyio


# -- Accepted tokens: served from memory until exp + skew, max_token_age or a key change ----------


async def test_cached_token_expires_exactly_at_exp_plus_skew(keys: Keys, clock: FakeClock) -> None:
    """A cached token is served from the cache until now reaches exp + skew, then token-expired."""
    verifier = static_verifier(keys, clock)
    token = valid(keys)  # exp = NOW + 60
    first = await verifier.authenticate(token)
    assert_outcome(first, OK)
    clock.now = NOW + 60 + SKEW - 0.001
    assert await verifier.authenticate(token) is first
    clock.now = NOW + 60 + SKEW
    assert_outcome(await verifier.authenticate(token), EXPIRED)


async def test_cached_token_honours_zero_skew(keys: Keys, clock: FakeClock) -> None:
    """With clock_skew=0 a cached token stops being accepted exactly at exp."""
    verifier = static_verifier(keys, clock, clock_skew=0)
    token = valid(keys)
    first = await verifier.authenticate(token)
    clock.now = NOW + 59.999
    assert await verifier.authenticate(token) is first
    clock.now = NOW + 60
    assert_outcome(await verifier.authenticate(token), EXPIRED)


async def test_cached_token_is_refused_once_its_key_leaves_the_jwks(
    jwks: Harness, keys: Keys
) -> None:
    """After a TTL refresh drops its key, a cached token is jwk-kid-mismatch.

    Until then it is served from the cache without a fetch.
    """
    verifier = jwks.verifier()
    token = valid(keys, exp=NOW + 3600)
    first = await verifier.authenticate(token)
    assert_outcome(first, OK)
    jwks.transport.keys = [keys.k2]
    jwks.clock.advance(299)
    assert await verifier.authenticate(token) is first
    assert jwks.fetches == 1
    jwks.clock.advance(1)  # the JWKS TTL (300 s) is over: refreshed, and k1 is gone
    assert_outcome(await verifier.authenticate(token), KID)
    assert jwks.fetches == 2


async def test_cached_token_is_refused_after_an_unknown_kid_refresh(
    jwks: Harness, keys: Keys
) -> None:
    """A rotation seen through an unknown-kid refetch also ends the removed key's cached token.

    jwk-kid-mismatch, without a further fetch.
    """
    verifier = jwks.verifier()
    old = valid(keys)
    assert_outcome(await verifier.authenticate(old), OK)
    jwks.transport.keys = [keys.k2]
    new = rs(keys.k2, header(kid="k2"), claims(sub="user_new"))
    assert_outcome(await verifier.authenticate(new), IN + "user_new")
    assert jwks.fetches == 2
    assert_outcome(await verifier.authenticate(old), KID)
    assert jwks.fetches == 2


async def test_cached_token_survives_a_refresh_that_keeps_its_key(
    jwks: Harness, keys: Keys
) -> None:
    """A TTL refresh that still lists the key keeps accepting the token (verified again)."""
    verifier = jwks.verifier()
    token = valid(keys, exp=NOW + 3600)
    first = await verifier.authenticate(token)
    jwks.clock.advance(300)
    again = await verifier.authenticate(token)
    assert_outcome(again, OK)
    assert again is not first
    assert jwks.fetches == 2


async def test_cached_token_honours_max_token_age(keys: Keys, clock: FakeClock) -> None:
    """A cached token stops being accepted once older than max_token_age (token-too-old)."""
    verifier = static_verifier(keys, clock, max_token_age=30)
    token = valid(keys)
    first = await verifier.authenticate(token)
    clock.advance(30)
    assert await verifier.authenticate(token) is first
    clock.advance(0.001)
    assert_outcome(await verifier.authenticate(token), TOO_OLD)


# -- Bounded: first in, first out -----------------------------------------------------------------


async def test_cache_size_bound_evicts_the_oldest(keys: Keys, clock: FakeClock) -> None:
    """TokenVerifier(cache_size=2) keeps the two most recently stored tokens (FIFO)."""
    verifier = static_verifier(keys, clock, cache_size=2)
    tokens = [valid(keys, sub=f"user_{i}") for i in range(3)]
    auths = [await verifier.authenticate(token) for token in tokens]
    assert [a.user_id for a in auths] == ["user_0", "user_1", "user_2"]
    assert await verifier.authenticate(tokens[1]) is auths[1]
    assert await verifier.authenticate(tokens[2]) is auths[2]
    again = await verifier.authenticate(tokens[0])  # evicted: verified afresh
    assert again is not auths[0]
    assert again == auths[0]
    assert await verifier.authenticate(tokens[1]) is not auths[1]  # now the oldest, evicted


async def test_cache_size_zero_disables_the_cache(keys: Keys, clock: FakeClock) -> None:
    """TokenVerifier(cache_size=0) verifies every presentation afresh."""
    verifier = static_verifier(keys, clock, cache_size=0)
    token = valid(keys)
    first = await verifier.authenticate(token)
    second = await verifier.authenticate(token)
    assert first == second
    assert first is not second


# -- Refusals: remembered only when time cannot undo them -----------------------------------------


async def test_refusals_are_not_cached(keys: Keys, clock: FakeClock) -> None:
    """A token refused as not yet valid is accepted once its nbf is reached.

    Time can undo that refusal, so it is never remembered.
    """
    verifier = static_verifier(keys, clock)
    token = valid(keys, nbf=NOW + 30)
    assert_outcome(await verifier.authenticate(token), NOT_ACTIVE)
    clock.advance(25)
    assert_outcome(await verifier.authenticate(token), OK)


@pytest.mark.parametrize(
    ("changes", "reason"),
    [
        ({"exp": NOW - 60}, "token-expired"),
        ({"azp": "https://evil.example"}, "token-invalid-authorized-parties"),
        ({"iss": "https://clerk.evil.example"}, "token-invalid-issuer"),
        ({"sub": 123}, "token-verification-failed"),
    ],
)
async def test_final_refusals_after_the_signature_are_remembered(
    keys: Keys, clock: FakeClock, changes: dict[str, Any], reason: str
) -> None:
    """A signed token refused for good is answered from memory the next time (same Auth)."""
    verifier = static_verifier(keys, clock)
    token = valid(keys, **changes)
    first = await verifier.authenticate(token)
    assert first == Auth.signed_out(reason)
    assert await verifier.authenticate(token) is first


async def test_a_bad_signature_is_remembered_while_its_key_is_current(
    jwks: Harness, keys: Keys
) -> None:
    """A forgery replayed is refused from memory while its kid's key is current.

    After that key leaves the JWKS it is looked at afresh (and refused as jwk-kid-mismatch).
    """
    verifier = jwks.verifier()
    token = forged(keys)
    first = await verifier.authenticate(token)
    assert first == Auth.signed_out("token-invalid-signature")
    assert await verifier.authenticate(token) is first
    assert jwks.fetches == 1
    jwks.transport.keys = [keys.k2]
    jwks.clock.advance(300)
    assert await verifier.authenticate(token) == Auth.signed_out("jwk-kid-mismatch")
    assert jwks.fetches == 2


async def test_remembered_refusals_are_bounded_and_never_evict_valid_tokens(
    keys: Keys, clock: FakeClock
) -> None:
    """Refusals get a quarter of cache_size, first in first out, apart from valid tokens."""
    verifier = static_verifier(keys, clock, cache_size=8)
    good = valid(keys)
    accepted = await verifier.authenticate(good)
    expired = [valid(keys, exp=NOW - 60, sub=f"user_{i}") for i in range(3)]
    refusals = [await verifier.authenticate(token) for token in expired]
    assert await verifier.authenticate(expired[2]) is refusals[2]
    assert await verifier.authenticate(expired[1]) is refusals[1]
    assert await verifier.authenticate(expired[0]) is not refusals[0]  # evicted, checked again
    assert await verifier.authenticate(good) is accepted
