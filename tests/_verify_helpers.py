"""Shared by the token-verification tests: crafting tokens, and a harness that counts fetches.

Most verification tests are tables run through ``TokenVerifier`` backed by a ``RemoteKeySet``
that a ``JWKSTransport`` serves (K1 published as kid ``k1``): the ``jwks`` fixture of
conftest.py. Each row (``row``) pins the exact Auth (signed in as the right user, or signed out
with the exact reason code) and the exact number of JWKS fetches ``f``; a cold cache costs one
fetch, so ``f=0`` (written F=0 in docstrings) means "refused before any key lookup".

Terms: ``T_valid`` is an RS256 token signed by K1 with Clerk's claims; a "signed variant"
changes one thing and is re-signed by K1; a "forged" token is signed by KX (the attacker's key,
also kid ``k1``) or not signed at all. K2 is a second key, published only when a test says so.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import string
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, NamedTuple

import httpx
import pytest
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding

from clerk_asgi import Auth
from clerk_asgi._keys import RemoteKeySet, StaticKeySet
from clerk_asgi._verify import TokenVerifier
from clerk_asgi.testing import FakeClock, JWKSTransport, KeyPair

from .helpers import NOW as FLOAT_NOW

ISS = "https://clerk.example.com"
AZP = "https://app.example.com"
JWKS_URL = "https://clerk.example.com/.well-known/jwks.json"
USER = "user_2abc"
SID = "sess_1"
NOW = int(FLOAT_NOW)
SKEW = 5
YEAR = 365 * 24 * 3600
ALPHABET = string.ascii_uppercase + string.ascii_lowercase + string.digits + "-_"

#: Expected outcome "signed in as <user>"; any other expected string is a reason code.
IN = "signed in as "
OK = IN + USER
DROP: Any = object()  # in claims()/header(): remove this member

# Reason codes, spelled out (the strings are the contract, not the library's constants).
INVALID = "token-invalid"
ALGORITHM = "token-invalid-algorithm"
SIGNATURE = "token-invalid-signature"
CLAIMS = "token-verification-failed"
EXPIRED = "token-expired"
NOT_ACTIVE = "token-not-active-yet"
IAT_FUTURE = "token-iat-in-the-future"
PARTIES = "token-invalid-authorized-parties"
ISSUER = "token-invalid-issuer"
AUDIENCE = "token-invalid-audience"
TOO_OLD = "token-too-old"
TYPE = "token-type-mismatch"
PENDING = "session-pending"
KID = "jwk-kid-mismatch"
UNAVAILABLE = "jwk-remote-failed-to-load"


# -- Crafting tokens ------------------------------------------------------------------------------


class Keys(NamedTuple):
    """The three keys of the tables (the ``keys`` fixture)."""

    k1: KeyPair  # published in the JWKS as kid "k1"
    kx: KeyPair  # the attacker's, never published, also kid "k1"
    k2: KeyPair  # a second key, kid "k2", published only when a test says so


Part = Mapping[str, Any] | bytes


Build = Callable[[Keys], str]


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def seg(part: Part) -> str:
    """A base64url segment: raw bytes as given, or compact JSON of a mapping."""
    if isinstance(part, bytes):
        return b64(part)
    return b64(json.dumps(part, separators=(",", ":")).encode())


def changed(base: dict[str, Any], changes: Mapping[str, Any]) -> dict[str, Any]:
    """``base`` with ``changes`` applied in place (a DROP value removes the member)."""
    for name, value in changes.items():
        if value is DROP:
            base.pop(name, None)
        else:
            base[name] = value
    return base


def header(**changes: Any) -> dict[str, Any]:
    """``T_valid``'s JOSE header with ``changes`` (DROP removes a member)."""
    return changed({"alg": "RS256", "kid": "k1", "typ": "JWT"}, changes)


def claims(**changes: Any) -> dict[str, Any]:
    """``T_valid``'s payload with ``changes`` (DROP removes a claim)."""
    base = {"iss": ISS, "sub": USER, "sid": SID, "azp": AZP, "iat": NOW, "nbf": NOW - 1}
    return changed({**base, "exp": NOW + 60}, changes)


def payload_text(**changes: Any) -> bytes:
    """``claims(**changes)`` as compact JSON bytes, for hand-edited payloads."""
    return json.dumps(claims(**changes), separators=(",", ":")).encode()


def with_member(document: bytes, member: bytes) -> bytes:
    """A JSON object's text with one more raw ``"name":value`` member appended."""
    return document[:-1] + b"," + member + b"}"


HEADER_JSON = json.dumps(header(), separators=(",", ":")).encode()


def rs(
    kp: KeyPair,
    head: Part,
    body: Part,
    hash_: hashes.HashAlgorithm | None = None,
    pad: padding.AsymmetricPadding | None = None,
) -> str:
    """A compact JWS of exactly these segments, signed with RSA (PKCS1 v1.5 SHA-256 default)."""
    signing_input = f"{seg(head)}.{seg(body)}"
    signature = kp.private_key.sign(
        signing_input.encode(), pad or padding.PKCS1v15(), hash_ or hashes.SHA256()
    )
    return f"{signing_input}.{b64(signature)}"


def valid(k: Keys, **changes: Any) -> str:
    """A signed variant: ``T_valid`` with claim ``changes``, signed by K1."""
    return rs(k.k1, header(), claims(**changes))


def forged(k: Keys, **changes: Any) -> str:
    """A forged variant: ``T_valid`` with claim ``changes``, signed by KX under kid k1."""
    return rs(k.kx, header(), claims(**changes))


def hs256(secret: bytes, head: Part, body: Part) -> str:
    signing_input = f"{seg(head)}.{seg(body)}"
    mac = hmac.new(secret, signing_input.encode(), hashlib.sha256).digest()
    return f"{signing_input}.{b64(mac)}"


def signature_of(token: str) -> bytes:
    sig = token.split(".")[2]
    return base64.urlsafe_b64decode(sig + "=" * (-len(sig) % 4))


def with_signature(token: str, signature: bytes) -> str:
    return token.rsplit(".", 1)[0] + "." + b64(signature)


def respell(token: str, index: int, change: Callable[[str], str]) -> str:
    parts = token.split(".")
    parts[index] = change(parts[index])
    return ".".join(parts)


def spare_bits_variant(segment: str) -> str:
    """The same bytes spelled differently: a non-zero unused low bit in the last character."""
    spare = {2: 4, 3: 2}[len(segment) % 4]
    last = ALPHABET.index(segment[-1])
    assert last % (1 << spare) == 0  # canonical to start with
    return segment[:-1] + ALPHABET[last | 1]


def std_alphabet(token: str) -> str:
    return token.translate(str.maketrans("-_", "+/"))


def odd_token(k: Keys) -> str:
    """A valid K1 token whose three segments all have unused bits (and would take ``=``
    padding), and whose signature uses ``-`` or ``_`` (so ``+/`` spells it differently)."""
    for i in range(200):
        token = rs(k.k1, {"alg": "RS256", "kid": "k1"}, claims(jti="j" * i))
        head, body, sig = token.split(".")
        if all(len(s) % 4 for s in (head, body, sig)) and ("-" in sig or "_" in sig):
            return token
    raise AssertionError("no suitable token")  # pragma: no cover


def token_of_length(k: Keys, length: int) -> str:
    """A valid K1 token exactly ``length`` characters long (a padding claim fills it)."""
    signature_length = len(b64(bytes(256)))
    for extra in range(4):
        head = header(x="x" * extra)
        for n in range(length):
            body = claims(pad="p" * n)
            size = len(seg(head)) + len(seg(body)) + 2 + signature_length
            if size == length:
                return rs(k.k1, head, body)
            if size > length:
                break
    raise AssertionError(f"no token of length {length}")  # pragma: no cover


def nested(depth: int) -> bytes:
    return b"[" * depth + b"]" * depth


def parser_refuses(document: bytes) -> bool:
    """Whether this interpreter's json module gives up (RecursionError) on ``document``."""
    try:
        json.loads(document)
    except RecursionError:
        return True
    return False


# Builders for the tables: each returns a function of the Keys that makes the token.
def var(**changes: Any) -> Build:
    """Signed variant with claim changes."""
    return lambda k: valid(k, **changes)


def forge(**changes: Any) -> Build:
    """Forged (KX) variant with claim changes."""
    return lambda k: forged(k, **changes)


def hdr(**changes: Any) -> Build:
    """K1-signed token with header changes."""
    return lambda k: rs(k.k1, header(**changes), claims())


def k1(head: Part, body: Part | None = None) -> Build:
    """K1-signed token of exactly these parts (raw bytes allowed)."""
    return lambda k: rs(k.k1, head, claims() if body is None else body)


def kx(head: Part, body: Part | None = None) -> Build:
    """KX-signed token of exactly these parts (raw bytes allowed)."""
    return lambda k: rs(k.kx, head, claims() if body is None else body)


def const(token: str) -> Build:
    return lambda k: token


def odd(index: int, change: Callable[[str], str]) -> Build:
    """``odd_token`` with segment ``index`` respelled."""
    return lambda k: respell(odd_token(k), index, change)


def insert(text: str) -> Callable[[str], str]:
    return lambda s: s[:5] + text + s[5:]


def resign(change: Callable[[Keys, bytes], bytes]) -> Build:
    """T_valid with its signature replaced by ``change(keys, original signature)``."""
    return lambda k: with_signature(valid(k), change(k, signature_of(valid(k))))


def modulus(k: Keys) -> int:
    return k.k1.private_key.public_key().public_numbers().n


def flip(index: int, bit: int) -> Callable[[Keys, bytes], bytes]:
    def change(k: Keys, sig: bytes) -> bytes:
        flipped = bytearray(sig)
        flipped[index] ^= 1 << bit
        return bytes(flipped)

    return change


def as_int(value: Callable[[int], int], size: int = 256) -> Callable[[Keys, bytes], bytes]:
    return lambda k, sig: value(modulus(k)).to_bytes(size, "big")


def keep_signature(head: bytes | None = None, body: bytes | None = None) -> Build:
    """T_valid's K1 signature on a re-encoded header and/or payload (base64url of the bytes)."""

    def build(k: Keys) -> str:
        h, p, s = valid(k).split(".")
        return f"{h if head is None else b64(head)}.{p if body is None else b64(body)}.{s}"

    return build


# -- Tokens and values several test modules use ---------------------------------------------------


OVERFLOW_INT = 10**400  # under CPython's 4300-digit limit, but too large for a float


def alg_none(alg: str, signature: str, *, kid: bool = False) -> Build:
    head: dict[str, Any] = {"alg": alg, "kid": "k1"} if kid else {"alg": alg}
    return const(f"{seg(head)}.{seg(claims())}.{signature}")


GARBAGE = b64(b"garbage")


def public_encodings(kp: KeyPair) -> dict[str, bytes]:
    """Every public encoding of ``kp`` an HMAC-confusion attacker might use as the secret."""
    public = kp.private_key.public_key()
    enc, fmt = serialization.Encoding, serialization.PublicFormat
    return {
        "spki-pem": public.public_bytes(enc.PEM, fmt.SubjectPublicKeyInfo),
        "pkcs1-pem": public.public_bytes(enc.PEM, fmt.PKCS1),
        "spki-der": public.public_bytes(enc.DER, fmt.SubjectPublicKeyInfo),
        "pkcs1-der": public.public_bytes(enc.DER, fmt.PKCS1),
        "openssh": public.public_bytes(enc.OpenSSH, fmt.OpenSSH),
        "jwk-json": json.dumps(kp.jwk).encode(),
        "modulus-bytes": public.public_numbers().n.to_bytes(256, "big"),
        "modulus-b64url": kp.jwk["n"].encode(),
    }


V2 = {"v": 2, "fea": "o:admin"}


# -- The harness: a RemoteKeySet served by a JWKSTransport, fetches counted -----------------------


@dataclass
class Harness:
    """The ``jwks`` fixture: K1's JWKS served at JWKS_URL, and the requests made for it."""

    transport: JWKSTransport
    client: httpx.AsyncClient
    clock: FakeClock

    def verifier(self, **options: Any) -> TokenVerifier:
        """A verifier on this JWKS expecting ISS and the one authorized party AZP (overridable)."""
        keys = RemoteKeySet(JWKS_URL, http_client=self.client, clock=self.clock)
        options = {"issuer": ISS, "authorized_parties": frozenset({AZP}), **options}
        return TokenVerifier(keys, clock=self.clock, **options)

    @property
    def fetches(self) -> int:
        """How many JWKS requests were made so far."""
        return len(self.transport.requests)


class DocumentTransport(httpx.MockTransport):
    """Serves one fixed JWKS document (for JWKs a KeyPair cannot describe)."""

    def __init__(self, document: Mapping[str, Any]) -> None:
        self.requests: list[httpx.Request] = []
        self.document = document
        super().__init__(self._handle)

    def _handle(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        return httpx.Response(200, json=self.document)


def static_verifier(k: Keys, clock: FakeClock, **options: Any) -> TokenVerifier:
    """A networkless verifier on K1's public key (``jwt_key``)."""
    options = {"issuer": ISS, "authorized_parties": frozenset({AZP}), **options}
    return TokenVerifier(StaticKeySet(k.k1.private_key.public_key()), clock=clock, **options)


def assert_outcome(auth: Auth, expected: str) -> None:
    """Signed in as the expected user, or signed out with exactly the expected reason."""
    if expected.startswith(IN):
        assert (auth.user_id, auth.session_id, auth.reason) == (expected[len(IN) :], SID, None)
        assert auth.is_signed_in
    else:
        assert auth == Auth.signed_out(expected)
        assert not auth.is_signed_in


@dataclass(frozen=True)
class Row:
    build: Build
    expected: str
    fetches: int
    options: Mapping[str, Any] = field(default_factory=dict)


def row(name: str, build: Build, expected: str, *, f: int, marks: Any = (), **options: Any) -> Any:
    """One table row: the token, the expected outcome, ``f`` JWKS fetches, verifier options."""
    return pytest.param(Row(build, expected, f, options), id=name, marks=marks)


async def check(jwks: Harness, keys: Keys, case: Row) -> None:
    auth = await jwks.verifier(**case.options).authenticate(case.build(keys))
    assert_outcome(auth, case.expected)
    assert jwks.fetches == case.fetches
