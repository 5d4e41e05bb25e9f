"""Which keys of a JWKS document are kept: only RS256 RSA signature keys within policy.

Keys outside policy are ignored, never an error; a JWKS left with no usable key is a failed
fetch; a ``kid`` listed twice is refused; at most 50 keys are kept.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from collections.abc import Callable
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric import ec

from clerk_asgi._keys import KeysUnavailableError, UnknownKeyError, parse_jwks, rsa_key_from_jwk
from clerk_asgi.testing import FakeClock, KeyPair

from .test_jwks_support import (
    APP,
    ISS,
    JWK,
    KID_MISMATCH,
    ScriptedJWKS,
    b64,
    b64_json,
    b64_uint,
    forged,
    outcome,
    random_modulus,
    raw,
    remote,
    same_key,
    serve,
    valid,
    verifier_for,
)

pytestmark = pytest.mark.anyio

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
    # Sizes and exponents outside policy, malformed numbers.
    pytest.param(_with(n=b64_uint(MODULUS_16384)), id="n-16384-bit"),
    pytest.param(_with(n=b64_uint(MODULUS_4097)), id="n-4097-bit"),
    pytest.param(_with(n=b64_uint(MODULUS_2047)), id="n-2047-bit"),
    pytest.param(_with(e=b64_uint(3)), id="e-3"),
    pytest.param(_with(e=b64_uint(EXPONENT_4096)), id="e-4096-bit"),
    pytest.param(lambda jwk: {**jwk, "n": "+" + jwk["n"][1:]}, id="n-plus-sign"),
    pytest.param(lambda jwk: {**jwk, "n": jwk["n"][:-1] + "/"}, id="n-slash"),
    pytest.param(lambda jwk: {**jwk, "n": jwk["n"] + "=="}, id="n-padded"),
    pytest.param(lambda jwk: {**jwk, "n": jwk["n"][:8] + " " + jwk["n"][8:]}, id="n-space"),
    pytest.param(lambda jwk: {**jwk, "n": jwk["n"] + "AAA"}, id="n-impossible-length"),
    pytest.param(_with(n=12345), id="n-number"),
    pytest.param(_with(n=""), id="n-empty"),
    # Not an RSA signature key for RS256.
    pytest.param(lambda jwk: {"kty": "oct", "kid": "k1", "k": "c2VjcmV0"}, id="oct"),
    pytest.param(lambda jwk: _ec_jwk(), id="ec"),
    pytest.param(_with(use="enc"), id="use-enc"),
    pytest.param(_with(key_ops=["encrypt"]), id="key-ops-encrypt"),
    pytest.param(_with(key_ops=[]), id="key-ops-empty"),
    pytest.param(_with(key_ops="verify"), id="key-ops-not-a-list"),
    pytest.param(_with(alg="RSA-OAEP"), id="alg-rsa-oaep"),
    pytest.param(_with(alg="RS512"), id="alg-rs512"),
    pytest.param(_with(alg="HS256"), id="alg-hs256"),
    pytest.param(_with(kty="rsa"), id="kty-lowercase"),
    pytest.param(_without("e"), id="missing-e"),
    pytest.param(_without("n"), id="missing-n"),
    pytest.param(_without("kty"), id="missing-kty"),
    pytest.param(lambda jwk: [jwk], id="not-an-object"),
]

ACCEPTED_JWKS = [
    pytest.param(lambda jwk: jwk, id="as-clerk-publishes-it"),
    pytest.param(_without("use", "alg"), id="no-use-no-alg"),
    pytest.param(_with(key_ops=["verify"]), id="key-ops-verify"),
    pytest.param(_with(n=b64_uint(MODULUS_4096)), id="n-4096-bit"),
]


@pytest.mark.parametrize("change", IGNORED_JWKS)
def test_jwk_outside_policy_is_ignored(change: Callable[[JWK], Any], key: KeyPair) -> None:
    """A JWK that is not RS256 RSA, 2048-4096 bits, e = 65537, is ignored (None), no error."""
    assert rsa_key_from_jwk(change(key.jwk)) is None


@pytest.mark.parametrize("change", ACCEPTED_JWKS)
def test_jwk_within_policy_is_accepted(change: Callable[[JWK], Any], key: KeyPair) -> None:
    """An RS256 RSA JWK of 2048-4096 bits with e = 65537 gives the key of its modulus."""
    jwk = change(key.jwk)
    found = rsa_key_from_jwk(jwk)
    assert found is not None
    assert found.public_numbers().n == int.from_bytes(
        base64.urlsafe_b64decode(jwk["n"] + "=" * (-len(jwk["n"]) % 4)), "big"
    )


@pytest.mark.parametrize("change", IGNORED_JWKS)
async def test_jwks_of_only_ignored_keys_is_a_failed_fetch(
    change: Callable[[JWK], Any], key: KeyPair, clock: FakeClock
) -> None:
    """A JWKS whose only key is ignored holds no usable key: unavailable after one fetch."""
    script = ScriptedJWKS(serve(change(key.jwk)))
    keys = remote(script, clock)
    with pytest.raises(KeysUnavailableError):
        await keys.get("k1")
    assert len(script.requests) == 1


async def test_ten_thousand_keys_keep_at_most_fifty(key: KeyPair, clock: FakeClock) -> None:
    """Of 10 000 RSA entries (9 500 junk, then 500 usable) only the first 50 usable are kept."""
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


async def test_huge_modulus_key_is_never_used_for_verification(
    key: KeyPair, clock: FakeClock
) -> None:
    """A 16384-bit key is dropped at load: its tokens are jwk-kid-mismatch, k1 still works."""
    big = {**key.jwk, "kid": "kbig", "n": b64_uint(MODULUS_16384)}
    script = ScriptedJWKS(serve(key, big))
    keys = remote(script, clock)
    verifier = verifier_for(keys, clock)
    assert await outcome(verifier, valid(key, clock)) == "user_test"
    token = forged("kbig", clock.now, signature_bytes=2048)
    assert await outcome(verifier, token) == KID_MISMATCH
    assert keys.peek("kbig") is None
    assert len(script.requests) == 2


async def test_only_the_rs256_signature_key_is_usable(
    key: KeyPair, second_key: KeyPair, clock: FakeClock
) -> None:
    """Beside k1, oct/EC/enc/encrypt/RSA-OAEP/kid-less/e-less keys are ignored for tokens."""
    # Tokens naming the ignored keys are refused, whether HS256 with the oct secret or the
    # public PEM, or RS256 signed by the ignored key's owner.
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


async def test_duplicate_kid_is_refused_not_tried_twice(
    key: KeyPair, attacker_key: KeyPair, second_key: KeyPair, clock: FakeClock
) -> None:
    """A kid listed twice (different moduli) is dropped; the set's other keys still work."""
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


async def test_set_of_only_a_duplicated_kid_holds_no_usable_key(
    key: KeyPair, attacker_key: KeyPair, clock: FakeClock
) -> None:
    """A JWKS whose only kid is listed twice has no usable key: a failed fetch."""
    script = ScriptedJWKS(serve(key, attacker_key))
    keys = remote(script, clock)
    with pytest.raises(KeysUnavailableError):
        await keys.get("k1")
    assert len(script.requests) == 1
