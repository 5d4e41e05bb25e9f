"""Project Wycheproof's RSASSA-PKCS1-v1_5 SHA-256 vectors against our own signature check.

The vectors' messages are arbitrary bytes, not JWT signing inputs, so they go straight to
``verify_signature`` (the one call every token's signature goes through), with each group's
``keyJwk`` loaded by ``rsa_key_from_jwk`` (the middleware's own JWK path, which also refuses
keys it must not use). The file, its licence and its origin live in ``tests/data/wycheproof``.
"""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric.rsa import RSAPublicKey
from cryptography.hazmat.primitives.serialization import load_pem_public_key

from clerk_asgi._keys import rsa_key_from_jwk
from clerk_asgi._verify import verify_signature

DATA = Path(__file__).parent / "data" / "wycheproof"
VECTORS = json.loads((DATA / "rsa_signature_2048_sha256_test.json").read_text("utf-8"))

#: Groups whose public exponent is 3 (flag SmallPublicKey): rsa_key_from_jwk refuses them by
#: policy (only e = 65537, as Clerk's keys), so their vectors never reach the primitive.
SMALL_EXPONENT = "Aw"
#: The one "acceptable" vector (tc8, MissingNull: DigestInfo without the NULL parameters).
#: Accepting it would be legacy leniency, not a vulnerability; OpenSSL (through cryptography)
#: rejects it, and so do we: pinned so that a change of backend behaviour is noticed.
ACCEPTABLE_OUTCOME = {8: False}


def _cases() -> list[Any]:
    cases = []
    for group in VECTORS["testGroups"]:
        for test in group["tests"]:
            cases.append(pytest.param(group, test, id=f"tc{test['tcId']}"))
    return cases


CASES = _cases()


def _pem_key(group: dict[str, Any]) -> RSAPublicKey:
    key = load_pem_public_key(group["publicKeyPem"].encode("ascii"))
    assert isinstance(key, RSAPublicKey)
    return key


def test_the_vector_file_is_the_expected_one() -> None:
    """The copied file holds all 259 vectors of the RSASSA-PKCS1 v1.5 SHA-256 2048-bit set."""
    assert VECTORS["algorithm"] == "RSASSA-PKCS1-v1_5"
    assert VECTORS["schema"] == "rsassa_pkcs1_verify_schema_v1.json"
    assert VECTORS["numberOfTests"] == len(CASES) == 259
    assert Counter(t["result"] for g in VECTORS["testGroups"] for t in g["tests"]) == {
        "valid": 9,
        "invalid": 249,
        "acceptable": 1,
    }
    assert {g["keySize"] for g in VECTORS["testGroups"]} == {2048}
    assert {g["sha"] for g in VECTORS["testGroups"]} == {"SHA-256"}
    assert (DATA / "LICENSE").read_text("utf-8").lstrip().startswith("Apache License")
    assert (DATA / "SOURCE").read_text("utf-8").startswith("C2SP/wycheproof")


def test_exactly_the_small_exponent_groups_are_refused() -> None:
    """rsa_key_from_jwk refuses the two e=3 keys (tc258, tc259) and no other group's key."""
    refused = [
        test["tcId"]
        for group in VECTORS["testGroups"]
        for test in group["tests"]
        if rsa_key_from_jwk(group["keyJwk"]) is None
    ]
    assert refused == [258, 259]
    for group in VECTORS["testGroups"]:
        assert (group["keyJwk"]["e"] == SMALL_EXPONENT) == (
            rsa_key_from_jwk(group["keyJwk"]) is None
        )


@pytest.mark.parametrize(("group", "test"), CASES)
def test_vector(group: dict[str, Any], test: dict[str, Any]) -> None:
    """Every invalid vector is rejected, every valid one accepted, tc8 (MissingNull) pinned."""
    message, signature = bytes.fromhex(test["msg"]), bytes.fromhex(test["sig"])
    key = rsa_key_from_jwk(group["keyJwk"])
    if group["keyJwk"]["e"] == SMALL_EXPONENT:
        # Refused by policy (SmallPublicKey), deliberately: no token can ever be checked with
        # this key. The signature itself is sound, which the primitive confirms on the PEM key.
        assert key is None
        assert "SmallPublicKey" in test["flags"]
        assert verify_signature(_pem_key(group), message, signature) is (test["result"] == "valid")
        return
    assert key is not None
    assert key.public_numbers() == _pem_key(group).public_numbers()
    accepted = verify_signature(key, message, signature)
    if test["result"] == "acceptable":
        assert accepted is ACCEPTABLE_OUTCOME[test["tcId"]]
    else:
        assert accepted is (test["result"] == "valid")
