"""Signature and algorithm: only RS256, verified with the JWKS key over the exact received bytes.

Every other ``alg`` (``none`` in any spelling, HMAC keyed with the public key, RS384/RS512,
PS256, ES256, EdDSA) is refused before any key lookup; a JWK must allow RS256; a tampered
signature or a re-encoded header or payload fails; ``crit``, ``b64`` (RFC 7797) and embedded
keys (``jwk``/``jku``/``x5u``/``x5c``/``x5t``, RFC 7515 section 4.1) are never honoured. The
tables and terms (T_valid, K1, KX, F) are those of _verify_helpers.py.
"""

from __future__ import annotations

import base64
import datetime
import hashlib
import json
from typing import Any

import httpx
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, padding
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature
from cryptography.x509.oid import NameOID

from clerk_asgi._keys import RemoteKeySet
from clerk_asgi._verify import TokenVerifier
from clerk_asgi.testing import FakeClock, KeyPair

from ._verify_helpers import (
    ALGORITHM,
    DROP,
    GARBAGE,
    HEADER_JSON,
    INVALID,
    ISS,
    JWKS_URL,
    KID,
    OK,
    SIGNATURE,
    UNAVAILABLE,
    Build,
    DocumentTransport,
    Harness,
    Keys,
    Row,
    alg_none,
    as_int,
    assert_outcome,
    b64,
    changed,
    check,
    claims,
    flip,
    hdr,
    header,
    hs256,
    k1,
    keep_signature,
    modulus,
    public_encodings,
    resign,
    respell,
    row,
    rs,
    seg,
    signature_of,
    valid,
)

pytestmark = pytest.mark.anyio


# -- alg: exactly RS256 ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    "case",
    [
        row("none-empty-signature", alg_none("none", ""), INVALID, f=0),
        row("None-empty-signature", alg_none("None", ""), INVALID, f=0),
        row("NONE-empty-signature", alg_none("NONE", ""), INVALID, f=0),
        row("nOnE-empty-signature", alg_none("nOnE", ""), INVALID, f=0),
        row("none-garbage-signature", alg_none("none", GARBAGE), ALGORITHM, f=0),
        row("None-garbage-signature", alg_none("None", GARBAGE), ALGORITHM, f=0),
        row("NONE-garbage-signature", alg_none("NONE", GARBAGE), ALGORITHM, f=0),
        row("nOnE-garbage-signature", alg_none("nOnE", GARBAGE), ALGORITHM, f=0),
        row("none-with-kid", alg_none("none", GARBAGE, kid=True), ALGORITHM, f=0),
        row("alg-missing", hdr(alg=DROP), ALGORITHM, f=0),
        row("alg-null", hdr(alg=None), ALGORITHM, f=0),
        row("alg-list", hdr(alg=["RS256"]), ALGORITHM, f=0),
        row("alg-lowercase", hdr(alg="rs256"), ALGORITHM, f=0),
    ],
)
async def test_alg_none_in_any_spelling_is_refused(jwks: Harness, keys: Keys, case: Row) -> None:
    """alg none in any spelling is refused, F=0; only the exact string RS256 is accepted.

    token-invalid without a signature, token-invalid-algorithm with one.
    """
    await check(jwks, keys, case)


ENCODINGS = [
    "spki-pem",
    "pkcs1-pem",
    "spki-der",
    "pkcs1-der",
    "openssh",
    "jwk-json",
    "modulus-bytes",
    "modulus-b64url",
]


@pytest.mark.parametrize("encoding", ENCODINGS)
@pytest.mark.parametrize("alg", ["HS256", "HS384", "HS512", "hs256"])
async def test_hmac_keyed_with_the_public_key_is_refused(
    jwks: Harness, keys: Keys, encoding: str, alg: str
) -> None:
    """HS256 keyed with the public key is refused: token-invalid-algorithm, F=0."""
    secret = public_encodings(keys.k1)[encoding]
    token = hs256(secret, header(alg=alg), claims())
    assert_outcome(await jwks.verifier().authenticate(token), ALGORITHM)
    assert jwks.fetches == 0


def es256(alg: str) -> Build:
    def build(k: Keys) -> str:
        private = ec.generate_private_key(ec.SECP256R1())
        signing_input = f"{seg(header(alg=alg))}.{seg(claims())}"
        der = private.sign(signing_input.encode(), ec.ECDSA(hashes.SHA256()))
        r, s = decode_dss_signature(der)
        return f"{signing_input}.{b64(r.to_bytes(32, 'big') + s.to_bytes(32, 'big'))}"

    return build


def eddsa(alg: str) -> Build:
    def build(k: Keys) -> str:
        signing_input = f"{seg(header(alg=alg))}.{seg(claims())}"
        signature = ed25519.Ed25519PrivateKey.generate().sign(signing_input.encode())
        return f"{signing_input}.{b64(signature)}"

    return build


def k1_with(hash_: hashes.HashAlgorithm, pad: padding.AsymmetricPadding, alg: str) -> Build:
    return lambda k: rs(k.k1, header(alg=alg), claims(), hash_, pad)


PSS = padding.PSS(mgf=padding.MGF1(hashes.SHA256()), salt_length=32)


V15 = padding.PKCS1v15()


@pytest.mark.parametrize(
    "case",
    [
        # honest headers naming another algorithm, signed by K1 (or KX for EC/EdDSA)
        row("rs384", k1_with(hashes.SHA384(), V15, "RS384"), ALGORITHM, f=0),
        row("rs512", k1_with(hashes.SHA512(), V15, "RS512"), ALGORITHM, f=0),
        row("ps256", k1_with(hashes.SHA256(), PSS, "PS256"), ALGORITHM, f=0),
        row("es256", es256("ES256"), ALGORITHM, f=0),
        row("eddsa", eddsa("EdDSA"), ALGORITHM, f=0),
        # other algorithms' signatures under an RS256 label
        row("rs384-labelled-rs256", k1_with(hashes.SHA384(), V15, "RS256"), SIGNATURE, f=1),
        row("rs512-labelled-rs256", k1_with(hashes.SHA512(), V15, "RS256"), SIGNATURE, f=1),
        row("ps256-labelled-rs256", k1_with(hashes.SHA256(), PSS, "RS256"), SIGNATURE, f=1),
        row("es256-labelled-rs256", es256("RS256"), SIGNATURE, f=1),
        row("eddsa-labelled-rs256", eddsa("RS256"), SIGNATURE, f=1),
    ],
)
async def test_algorithms_other_than_rs256_are_refused(
    jwks: Harness, keys: Keys, case: Row
) -> None:
    """RS384/RS512/PS256/ES256/EdDSA are token-invalid-algorithm (F=0).

    Their signatures under an RS256 label are token-invalid-signature.
    """
    await check(jwks, keys, case)


@pytest.mark.parametrize(
    ("jwk_change", "with_k2", "expected"),
    [
        pytest.param({"alg": "RS512"}, False, UNAVAILABLE, id="alg-rs512-only-key"),
        pytest.param({"alg": "RS512"}, True, KID, id="alg-rs512-beside-k2"),
        pytest.param({"alg": "HS256"}, True, KID, id="alg-hs256"),
        pytest.param({"alg": "PS256"}, True, KID, id="alg-ps256"),
        pytest.param({"use": "enc"}, True, KID, id="use-enc"),
        pytest.param({"key_ops": ["sign"]}, True, KID, id="key-ops-without-verify"),
        pytest.param({"kty": "oct"}, True, KID, id="kty-oct"),
        pytest.param({"alg": DROP, "use": DROP}, False, OK, id="alg-and-use-absent-are-fine"),
        pytest.param({"key_ops": ["verify"]}, False, OK, id="key-ops-verify-is-fine"),
    ],
)
async def test_jwk_must_allow_rs256(
    keys: Keys, clock: FakeClock, jwk_change: dict[str, Any], with_k2: bool, expected: str
) -> None:
    """A JWKS entry whose alg/use/key_ops/kty does not allow RS256 verification is ignored.

    The RS256 token under its kid is refused after exactly one fetch.
    """
    jwk = changed(dict(keys.k1.jwk), jwk_change)
    transport = DocumentTransport({"keys": [jwk, *([keys.k2.jwk] if with_k2 else [])]})
    async with httpx.AsyncClient(transport=transport) as client:
        keyset = RemoteKeySet(JWKS_URL, http_client=client, clock=clock)
        verifier = TokenVerifier(keyset, clock=clock, issuer=ISS)
        assert_outcome(await verifier.authenticate(valid(keys)), expected)
    assert len(transport.requests) == 1


# -- The signature: RSASSA-PKCS1-v1_5 SHA-256 over the exact received bytes -----------------------


@pytest.mark.parametrize(
    "case",
    [
        row("flip-first-bit", resign(flip(0, 7)), SIGNATURE, f=1),
        row("flip-middle-bit", resign(flip(128, 3)), SIGNATURE, f=1),
        row("flip-last-bit", resign(flip(255, 0)), SIGNATURE, f=1),
        row("drop-last-byte", resign(lambda k, sig: sig[:-1]), SIGNATURE, f=1),
        row("prepend-zero-byte", resign(lambda k, sig: b"\x00" + sig), SIGNATURE, f=1),
        row("append-zero-byte", resign(lambda k, sig: sig + b"\x00"), SIGNATURE, f=1),
        row("all-zero-256-bytes", resign(lambda k, sig: bytes(256)), SIGNATURE, f=1),
        row("one-zero-byte", resign(lambda k, sig: b"\x00"), SIGNATURE, f=1),
        row("int-0", resign(as_int(lambda n: 0)), SIGNATURE, f=1),
        row("int-1", resign(as_int(lambda n: 1)), SIGNATURE, f=1),
        row("int-n-minus-1", resign(as_int(lambda n: n - 1)), SIGNATURE, f=1),
        row("int-n", resign(as_int(lambda n: n)), SIGNATURE, f=1),
        row("int-n-plus-1", resign(as_int(lambda n: n + 1)), SIGNATURE, f=1),
        row(
            "signature-plus-n",
            resign(lambda k, sig: (int.from_bytes(sig) + modulus(k)).to_bytes(257)),
            SIGNATURE,
            f=1,
        ),
        row(
            "another-tokens-signature",
            resign(lambda k, sig: signature_of(valid(k, sub="user_x"))),
            SIGNATURE,
            f=1,
        ),
    ],
)
async def test_tampered_signatures_are_refused(jwks: Harness, keys: Keys, case: Row) -> None:
    """A tampered, truncated, extended or edge-value signature: token-invalid-signature."""
    await check(jwks, keys, case)


SPACED_HEADER = b'{"alg": "RS256", "kid": "k1", "typ": "JWT"}'


REORDERED_HEADER = b'{"kid":"k1","alg":"RS256","typ":"JWT"}'


REORDERED_PAYLOAD = json.dumps(dict(reversed(claims().items())), separators=(",", ":")).encode()


def padded_header(k: Keys) -> str:
    h, p, s = valid(k).split(".")
    return f"{h}{'=' * (-len(h) % 4) or '===='}.{p}.{s}"


@pytest.mark.parametrize(
    "case",
    [
        row("control", keep_signature(), OK, f=1),
        row("header-spaces", keep_signature(head=SPACED_HEADER), SIGNATURE, f=1),
        row("header-reordered", keep_signature(head=REORDERED_HEADER), SIGNATURE, f=1),
        # whitespace outside the object is not JSON the verifier accepts at all
        row("header-trailing-newline", keep_signature(head=HEADER_JSON + b"\n"), INVALID, f=0),
        row("header-leading-space", keep_signature(head=b" " + HEADER_JSON), INVALID, f=0),
        row("payload-spaces", keep_signature(body=json.dumps(claims()).encode()), SIGNATURE, f=1),
        row("payload-reordered", keep_signature(body=REORDERED_PAYLOAD), SIGNATURE, f=1),
        row("header-padded", padded_header, INVALID, f=0),
    ],
)
async def test_signature_covers_the_exact_signing_input(
    jwks: Harness, keys: Keys, case: Row
) -> None:
    """K1's signature over T_valid does not cover a re-encoded header or payload."""
    await check(jwks, keys, case)


# -- Header members that would change what is verified: crit, b64, embedded keys ------------------


@pytest.mark.parametrize(
    "case",
    [
        row("unknown-crit", hdr(crit=["exp2"], exp2=1), INVALID, f=0),
        row("empty-crit", hdr(crit=[]), INVALID, f=0),
        row("string-crit", hdr(crit="exp2"), INVALID, f=0),
        row("crit-alg", hdr(crit=["alg"]), INVALID, f=0),
        row("crit-b64-without-b64", hdr(crit=["b64"]), INVALID, f=0),
        row("crit-null", hdr(crit=None), INVALID, f=0),
    ],
)
async def test_critical_extensions_are_malformed(jwks: Harness, keys: Keys, case: Row) -> None:
    """Any crit header, even K1-signed, is token-invalid before any fetch."""
    await check(jwks, keys, case)


@pytest.mark.parametrize(
    "case",
    [
        row("b64-false-with-crit", hdr(b64=False, crit=["b64"]), INVALID, f=0),
        row("b64-false-without-crit", hdr(b64=False), INVALID, f=0),
        row("b64-true", hdr(b64=True), INVALID, f=0),
        row("detached-empty-payload", k1(header(b64=False, crit=["b64"]), b""), INVALID, f=0),
        row("payload-segment-removed", lambda k: respell(valid(k), 1, lambda s: ""), INVALID, f=0),
    ],
)
async def test_unencoded_payload_is_malformed(jwks: Harness, keys: Keys, case: Row) -> None:
    """b64 (RFC 7797) in any form, or a detached payload, is token-invalid, F=0."""
    await check(jwks, keys, case)


def self_signed_der(kp: KeyPair) -> bytes:
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "clerk.example.com")])
    start = datetime.datetime(2026, 1, 1, tzinfo=datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(kp.private_key.public_key())
        .serial_number(1)
        .not_valid_before(start)
        .not_valid_after(start + datetime.timedelta(days=3650))
        .sign(kp.private_key, hashes.SHA256())
    )
    return cert.public_bytes(serialization.Encoding.DER)


def embedded(kind: str, kp: KeyPair) -> dict[str, Any]:
    der = self_signed_der(kp)
    members: dict[str, Any] = {
        "jwk": kp.jwk,
        "jku": "https://attacker.example/jwks.json",
        "x5u": "https://attacker.example/cert.pem",
        "x5c": [base64.b64encode(der).decode()],
        "x5t": b64(hashlib.sha1(der, usedforsecurity=False).digest()),
        "x5t#S256": b64(hashlib.sha256(der).digest()),
    }
    return members if kind == "all" else {kind: members[kind]}


@pytest.mark.parametrize(("kid", "expected"), [("k1", SIGNATURE), ("kx", KID)])
@pytest.mark.parametrize("kind", ["jwk", "jku", "x5u", "x5c", "x5t", "x5t#S256", "all"])
async def test_embedded_key_headers_are_never_used(
    jwks: Harness, keys: Keys, kind: str, kid: str, expected: str
) -> None:
    """jwk/jku/x5u/x5c/x5t headers are never used: only JWKS_URL is fetched, once.

    KX's token naming its own key in the header is refused.
    """
    token = rs(keys.kx, header(kid=kid, **embedded(kind, keys.kx)), claims())
    assert_outcome(await jwks.verifier().authenticate(token), expected)
    assert [str(r.url) for r in jwks.transport.requests] == [JWKS_URL]
