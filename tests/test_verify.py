"""Token verification against the hostile inputs of security-cases.md §A-§D.

Most cases are tables run through ``TokenVerifier`` backed by a ``RemoteKeySet`` that a
``JWKSTransport`` serves (K1 published as kid ``k1``). Each row pins the exact Auth (signed in
as the right user, or signed out with the exact reason code) and the exact number of JWKS
fetches ``f`` (the catalogue's ``F=n``; a cold cache costs one fetch, so ``f=0`` means "refused
before any key lookup"). A few cases also go through the real middleware to pin the HTTP
answer, and the verified-token cache is pinned at the end.

Terms, as in the catalogue: ``T_valid`` is an RS256 token signed by K1 with Clerk's claims; a
"signed variant" changes one thing and is re-signed by K1; a "forged" token is signed by KX
(the attacker's key, also kid ``k1``) or not signed at all.
"""

from __future__ import annotations

import base64
import datetime
import hashlib
import hmac
import json
import string
from collections.abc import AsyncIterator, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, NamedTuple

import httpx
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, padding
from cryptography.hazmat.primitives.asymmetric.rsa import RSAPublicKey
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature
from cryptography.x509.oid import NameOID
from fastapi import Depends, FastAPI

from clerk_asgi import Auth, ClerkMiddleware, Rule, current_auth
from clerk_asgi._keys import RemoteKeySet, StaticKeySet
from clerk_asgi._verify import MAX_TOKEN_LENGTH, TokenVerifier
from clerk_asgi.testing import JWKSTransport, KeyPair

from .conftest import NOW as FLOAT_NOW
from .conftest import FakeClock

pytestmark = pytest.mark.anyio

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


# ---------------------------------------------------------------------------------------------
# Token crafting


class Keys(NamedTuple):
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


def _changed(base: dict[str, Any], changes: Mapping[str, Any]) -> dict[str, Any]:
    for name, value in changes.items():
        if value is DROP:
            base.pop(name, None)
        else:
            base[name] = value
    return base


def header(**changes: Any) -> dict[str, Any]:
    """``T_valid``'s JOSE header with ``changes`` (DROP removes a member)."""
    return _changed({"alg": "RS256", "kid": "k1", "typ": "JWT"}, changes)


def claims(**changes: Any) -> dict[str, Any]:
    """``T_valid``'s payload with ``changes`` (DROP removes a claim)."""
    base = {"iss": ISS, "sub": USER, "sid": SID, "azp": AZP, "iat": NOW, "nbf": NOW - 1}
    return _changed({**base, "exp": NOW + 60}, changes)


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


# ---------------------------------------------------------------------------------------------
# Harness: a RemoteKeySet served by a JWKSTransport, fetches counted


@dataclass
class Harness:
    transport: JWKSTransport
    client: httpx.AsyncClient
    clock: FakeClock

    def verifier(self, **options: Any) -> TokenVerifier:
        """A verifier configured like the reference (issuer, authorized party), overridable."""
        keys = RemoteKeySet(JWKS_URL, http_client=self.client, clock=self.clock)
        options = {"issuer": ISS, "authorized_parties": frozenset({AZP}), **options}
        return TokenVerifier(keys, clock=self.clock, **options)

    @property
    def fetches(self) -> int:
        return len(self.transport.requests)


@pytest.fixture
def keys(key: KeyPair, attacker_key: KeyPair, second_key: KeyPair) -> Keys:
    return Keys(key, attacker_key, second_key)


@pytest.fixture
async def jwks(key: KeyPair, clock: FakeClock) -> AsyncIterator[Harness]:
    """K1 served as the JWKS at JWKS_URL; every request recorded."""
    transport = JWKSTransport(key)
    async with httpx.AsyncClient(transport=transport) as client:
        yield Harness(transport, client, clock)


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


# ---------------------------------------------------------------------------------------------
# The baseline


async def test_t_valid_is_signed_in_with_its_claims(jwks: Harness, keys: Keys) -> None:
    """T_valid is signed in as its sub, with its sid and claims, after exactly one fetch."""
    token = valid(keys)
    auth = await jwks.verifier().authenticate(token)
    assert_outcome(auth, OK)
    assert auth.token == token
    assert dict(auth.claims) == claims()
    assert [str(r.url) for r in jwks.transport.requests] == [JWKS_URL]


# ---------------------------------------------------------------------------------------------
# §A Token extraction and parsing

JWE = "eyJhbGciOiJSU0EtT0FFUCIsImVuYyI6IkEyNTZHQ00ifQ.ZW5jcnlwdGVkLWtleQ.aXY.Y2lwaGVy.dGFn"


@pytest.mark.parametrize(
    "case",
    [
        row("empty", const(""), INVALID, f=0),
        row("one-part", const("abc"), INVALID, f=0),
        row("two-parts", const("a.b"), INVALID, f=0),
        row("four-parts", const("a.b.c.d"), INVALID, f=0),
        row("jwe-five-parts", const(JWE), INVALID, f=0),
        row("dots-only", const(".."), INVALID, f=0),
        row("empty-middle", const("a..c"), INVALID, f=0),
        row("valid-plus-fourth-part", lambda k: valid(k) + ".x", INVALID, f=0),
        row("valid-plus-trailing-dot", lambda k: valid(k) + ".", INVALID, f=0),
        row("valid-empty-signature", lambda k: valid(k).rsplit(".", 1)[0] + ".", INVALID, f=0),
        row("valid-two-parts", lambda k: valid(k).rsplit(".", 1)[0], INVALID, f=0),
    ],
)
async def test_case_05_segment_count(jwks: Harness, keys: Keys, case: Row) -> None:
    """Case 5: anything but three non-empty segments (a JWE too) is token-invalid, with F=0."""
    await check(jwks, keys, case)


@pytest.mark.parametrize(
    "case",
    [
        row("array", k1(b'["RS256"]'), INVALID, f=0),
        row("string", k1(b'"RS256"'), INVALID, f=0),
        row("number", k1(b"1"), INVALID, f=0),
        row("null", k1(b"null"), INVALID, f=0),
        row("invalid-utf8", k1(b"\xff\xfe"), INVALID, f=0),
        row("truncated", k1(b"{"), INVALID, f=0),
        row("utf8-bom", k1(b"\xef\xbb\xbf" + HEADER_JSON), INVALID, f=0),
        row("utf16", k1(HEADER_JSON.decode().encode("utf-16")), INVALID, f=0),
        row("empty-object-has-no-alg", k1(b"{}"), ALGORITHM, f=0),
        row("trailing-garbage", k1(HEADER_JSON + b"x"), INVALID, f=0),
        row("two-objects", k1(HEADER_JSON + HEADER_JSON), INVALID, f=0),
        # the payload, too, must be a JSON object (checked before any key lookup)
        row("payload-array", k1(header(), b'["x"]'), INVALID, f=0),
        row("payload-null", k1(header(), b"null"), INVALID, f=0),
        row("payload-truncated", k1(header(), b'{"sub":'), INVALID, f=0),
        row("payload-invalid-utf8", k1(header(), b'{"sub":"\xff"}'), INVALID, f=0),
        row("payload-trailing-garbage", k1(header(), payload_text() + b"]"), INVALID, f=0),
    ],
)
async def test_case_06_header_not_a_json_object(jwks: Harness, keys: Keys, case: Row) -> None:
    """Case 6: a header (or payload) that is not a UTF-8 JSON object is token-invalid, F=0."""
    await check(jwks, keys, case)


@pytest.mark.parametrize("depth", [1_000, 2_500])
@pytest.mark.parametrize("where", ["header", "payload"])
async def test_case_07_deeply_nested_json(
    jwks: Harness, keys: Keys, depth: int, where: str
) -> None:
    """Case 7: deeply nested JSON under the size cap is refused and never raises.

    Where this interpreter's json gives up (3.11: from 1000 levels), the token is token-invalid
    before any fetch; where it copes, the KX-signed token is refused by its signature.
    """
    member = b'"x":' + nested(depth)
    head, body = HEADER_JSON, payload_text()
    if where == "header":
        head = with_member(head, member)
    else:
        body = with_member(body, member)
    token = rs(keys.kx, head, body)
    assert len(token) <= MAX_TOKEN_LENGTH
    auth = await jwks.verifier().authenticate(token)
    refused = parser_refuses(head if where == "header" else body)
    expected, fetches = (INVALID, 0) if refused else (SIGNATURE, 1)
    assert_outcome(auth, expected)
    assert jwks.fetches == fetches


async def test_case_07_nesting_beyond_the_size_cap(jwks: Harness, keys: Keys) -> None:
    """Case 7: 100 000 levels of nesting are refused by the size cap: token-invalid, F=0."""
    token = rs(keys.kx, with_member(HEADER_JSON, b'"x":' + nested(100_000)), claims())
    assert_outcome(await jwks.verifier().authenticate(token), INVALID)
    assert jwks.fetches == 0


@pytest.mark.parametrize(
    "case",
    [
        row("control-odd-token-is-valid", odd_token, OK, f=1),
        # (a) garbage appended to the signature
        row("a-bangs-appended", lambda k: odd_token(k) + "!!!!", INVALID, f=0),
        # (b) the standard alphabet
        row("b-plus-slash-alphabet", lambda k: std_alphabet(odd_token(k)), INVALID, f=0),
        # (c) padding, on each segment
        row("c-header-padded", odd(0, lambda s: s + "=" * (-len(s) % 4)), INVALID, f=0),
        row("c-payload-padded", odd(1, lambda s: s + "=" * (-len(s) % 4)), INVALID, f=0),
        row("c-signature-padded", odd(2, lambda s: s + "=="), INVALID, f=0),
        row("c-signature-one-pad", odd(2, lambda s: s + "="), INVALID, f=0),
        # (d) whitespace inside a segment, or around the token
        row("d-space-in-header", odd(0, insert(" ")), INVALID, f=0),
        row("d-newline-in-payload", odd(1, insert("\n")), INVALID, f=0),
        row("d-tab-in-signature", odd(2, insert("\t")), INVALID, f=0),
        row("d-crlf-in-signature", odd(2, insert("\r\n")), INVALID, f=0),
        row("d-leading-space", lambda k: " " + odd_token(k), INVALID, f=0),
        row("d-trailing-newline", lambda k: odd_token(k) + "\n", INVALID, f=0),
        # (e) the same bytes with non-zero unused bits: refused outright in the signature;
        # in header/payload the decoded JSON is the same but the signed bytes differ
        row("e-signature-spare-bits", odd(2, spare_bits_variant), INVALID, f=0),
        row("e-header-spare-bits", odd(0, spare_bits_variant), SIGNATURE, f=1),
        row("e-payload-spare-bits", odd(1, spare_bits_variant), SIGNATURE, f=1),
        # a segment length that no byte string has
        row("signature-length-1-mod-4", lambda k: odd_token(k) + "AAA", INVALID, f=0),
    ],
)
async def test_case_08_non_canonical_base64url(jwks: Harness, keys: Keys, case: Row) -> None:
    """Case 8: only canonical unpadded base64url is accepted: '!', '+/', '=', whitespace and
    non-zero trailing bits in the signature are token-invalid before any fetch."""
    await check(jwks, keys, case)


async def test_case_08_spare_bit_variants_decode_to_the_same_bytes(keys: Keys) -> None:
    """Case 8: the spare-bit spellings used above really decode to the same bytes."""
    for segment in odd_token(keys).split("."):
        variant = spare_bits_variant(segment)
        assert variant != segment
        pad = "=" * (-len(segment) % 4)
        assert base64.urlsafe_b64decode(variant + pad) == base64.urlsafe_b64decode(segment + pad)


async def test_case_08_other_spellings_of_a_cached_token_are_refused(
    keys: Keys, clock: FakeClock
) -> None:
    """Case 8: once a token is cached, its padded, '+/' and spare-bit spellings are still
    refused: the cache key (the token string) is only ever a canonical spelling."""
    verifier = static_verifier(keys, clock)
    token = odd_token(keys)
    assert_outcome(await verifier.authenticate(token), OK)
    for spelling in (
        respell(token, 2, lambda s: s + "=="),
        std_alphabet(token),
        respell(token, 2, spare_bits_variant),
    ):
        assert_outcome(await verifier.authenticate(spelling), INVALID)
    assert_outcome(await verifier.authenticate(token), OK)


@pytest.mark.parametrize(
    "case",
    [
        # not a usable kid at all: refused before any fetch
        row("int", hdr(kid=123), INVALID, f=0),
        row("list", hdr(kid=["k1"]), INVALID, f=0),
        row("object", hdr(kid={"a": 1}), INVALID, f=0),
        row("null", hdr(kid=None), INVALID, f=0),
        row("bool", hdr(kid=True), INVALID, f=0),
        row("empty", hdr(kid=""), INVALID, f=0),
        row("missing", hdr(kid=DROP), INVALID, f=0),
        row("257-chars", hdr(kid="k" * 257), INVALID, f=0),
        row("10000-chars-over-size-cap", hdr(kid="k" * 10_000), INVALID, f=0),
        row("nan", k1(b'{"alg":"RS256","kid":NaN}'), INVALID, f=0),
        # string kids are exact dictionary keys: unknown ones are just not found
        row("256-chars", hdr(kid="k" * 256), KID, f=1),
        row("path", hdr(kid="../../dev/null"), KID, f=1),
        row("sql", hdr(kid="k1' OR '1'='1"), KID, f=1),
        row("nul-suffix", hdr(kid="k1\u0000"), KID, f=1),
        row("upper-case", hdr(kid="K1"), KID, f=1),
        row("trailing-space", hdr(kid="k1 "), KID, f=1),
        row("url", hdr(kid="https://attacker.example/jwks.json"), KID, f=1),
    ],
)
async def test_case_09_kid_of_the_wrong_type_or_shape(jwks: Harness, keys: Keys, case: Row) -> None:
    """Case 9: non-string, empty or over-long kids are token-invalid with F=0; odd strings are
    only looked up (after the one cold fetch) and miss: jwk-kid-mismatch."""
    await check(jwks, keys, case)


async def test_case_09_odd_kids_on_a_warm_cache_cost_one_refetch_per_cooldown(
    jwks: Harness, keys: Keys
) -> None:
    """Case 9: on a warm cache a storm of odd string kids costs one refetch per 30 s cooldown."""
    verifier = jwks.verifier()
    assert_outcome(await verifier.authenticate(valid(keys)), OK)
    for kid in ("../../dev/null", "k1' OR '1'='1", "k1\u0000", "x" * 256):
        token = rs(keys.k1, header(kid=kid), claims())
        assert_outcome(await verifier.authenticate(token), KID)
    assert jwks.fetches == 2
    jwks.clock.advance(30)
    assert_outcome(await verifier.authenticate(hdr(kid="another")(keys)), KID)
    assert jwks.fetches == 3
    assert {str(r.url) for r in jwks.transport.requests} == {JWKS_URL}


SUB_TWICE = b'{"sub":"user_victim",' + payload_text()[1:]
EXP_TWICE = with_member(payload_text(), b'"exp":1')
ID_TWICE = with_member(payload_text(), b'"o":{"id":"a","id":"b"}')


@pytest.mark.parametrize(
    "case",
    [
        row("header-alg-twice", k1(b'{"alg":"HS256","alg":"RS256","kid":"k1"}'), INVALID, f=0),
        row("header-kid-twice", k1(b'{"alg":"RS256","kid":"k2","kid":"k1"}'), INVALID, f=0),
        row("payload-sub-twice", k1(header(), SUB_TWICE), INVALID, f=0),
        row("payload-exp-twice", k1(header(), EXP_TWICE), INVALID, f=0),
        row("nested-member-twice", k1(header(), ID_TWICE), INVALID, f=0),
    ],
)
async def test_case_10_duplicate_member_names(jwks: Harness, keys: Keys, case: Row) -> None:
    """Case 10: duplicate member names anywhere in header or payload are token-invalid, F=0,
    even when K1 signed them (no parser disagreement about which member counts)."""
    await check(jwks, keys, case)


def x_header(value: bytes) -> bytes:
    return with_member(HEADER_JSON, b'"x":' + value)


def exp_payload(value: bytes, name: bytes = b"exp") -> bytes:
    return with_member(payload_text(**{name.decode(): DROP}), b'"' + name + b'":' + value)


OVERFLOW_INT = 10**400  # under CPython's 4300-digit limit, but too large for a float


@pytest.mark.parametrize(
    "case",
    [
        # forged headers: refused at parsing or at the signature, never an exception
        row("header-1e99999", kx(x_header(b"1e99999")), SIGNATURE, f=1),
        row("header-nan", kx(x_header(b"NaN")), INVALID, f=0),
        row("header-infinity", kx(x_header(b"Infinity")), INVALID, f=0),
        row("header-minus-infinity", kx(x_header(b"-Infinity")), INVALID, f=0),
        row("header-5000-digits", kx(x_header(b"9" * 5000)), INVALID, f=0),
        # signed payloads: time claims must be finite JSON numbers
        row("exp-1e999", k1(header(), exp_payload(b"1e999")), CLAIMS, f=1),
        row("nbf-minus-1e999", k1(header(), exp_payload(b"-1e999", b"nbf")), CLAIMS, f=1),
        row("exp-nan", k1(header(), exp_payload(b"NaN")), INVALID, f=0),
        row("exp-5000-digits", k1(header(), exp_payload(b"9" * 5000)), INVALID, f=0),
        row("exp-list", var(exp=[1]), CLAIMS, f=1),
        row("exp-true", var(exp=True), CLAIMS, f=1),
        row(
            "exp-400-digit-int",
            var(exp=OVERFLOW_INT),
            CLAIMS,
            f=1,
        ),
        row(
            "iat-minus-400-digit-int",
            var(iat=-OVERFLOW_INT),
            CLAIMS,
            f=1,
        ),
    ],
)
async def test_case_11_numbers_that_break_python(jwks: Harness, keys: Keys, case: Row) -> None:
    """Case 11: huge, infinite, NaN or non-numeric numbers get a reason code, never an error."""
    await check(jwks, keys, case)


@pytest.mark.parametrize(
    "case",
    [
        row("machine-token", const("mt_2xKa9vB3cD4eF5gH6iJ7"), TYPE, f=0),
        row("oauth-token", const("oat_2xKa9vB3cD4eF5gH6iJ7"), TYPE, f=0),
        row("api-key", const("ak_2xKa9vB3cD4eF5gH6iJ7"), TYPE, f=0),
        row("m2m-token", const("m2m_2xKa9vB3cD4eF5gH6iJ7"), TYPE, f=0),
        row("machine-sub", var(sub="mch_2xKa9vB3cD4eF5"), TYPE, f=1),
        row("m2m-category", hdr(cat="cl_B7d4PD333AAA"), TYPE, f=0),
    ],
)
async def test_case_13_non_session_tokens(jwks: Harness, keys: Keys, case: Row) -> None:
    """Case 13: machine, OAuth and API-key tokens are token-type-mismatch without any fetch
    (or call to a Clerk API), unless they are JWTs the instance signed."""
    await check(jwks, keys, case)


@pytest.mark.parametrize(
    "case",
    [
        row("9000-chars", const("a" * 9000), INVALID, f=0),
        row("9000-chars-three-parts", const(".".join(["a" * 3000] * 3)), INVALID, f=0),
        row("signed-8192-chars", lambda k: token_of_length(k, 8192), OK, f=1),
        row("signed-8193-chars", lambda k: token_of_length(k, 8193), INVALID, f=0),
        row("machine-prefix-over-cap", const("mt_" + "a" * 9000), TYPE, f=0),
    ],
)
async def test_case_14_token_longer_than_the_cap(jwks: Harness, keys: Keys, case: Row) -> None:
    """Case 14: tokens over 8192 characters are token-invalid with F=0, even validly signed;
    exactly 8192 is still accepted."""
    assert MAX_TOKEN_LENGTH == 8192
    await check(jwks, keys, case)


# ---------------------------------------------------------------------------------------------
# §B Signature and algorithm


def alg_none(alg: str, signature: str, *, kid: bool = False) -> Build:
    head: dict[str, Any] = {"alg": alg, "kid": "k1"} if kid else {"alg": alg}
    return const(f"{seg(head)}.{seg(claims())}.{signature}")


GARBAGE = b64(b"garbage")


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
async def test_case_15_alg_none_family(jwks: Harness, keys: Keys, case: Row) -> None:
    """Case 15: alg none in any spelling is refused (token-invalid without a signature,
    token-invalid-algorithm with one), F=0; only the exact string RS256 is accepted."""
    await check(jwks, keys, case)


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
async def test_case_16_hmac_keyed_with_the_public_key(
    jwks: Harness, keys: Keys, encoding: str, alg: str
) -> None:
    """Case 16: HS256 keyed with the public key is refused: token-invalid-algorithm, F=0."""
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
async def test_case_17_other_algorithms(jwks: Harness, keys: Keys, case: Row) -> None:
    """Case 17: RS384/RS512/PS256/ES256/EdDSA are token-invalid-algorithm (F=0); their
    signatures under an RS256 label are token-invalid-signature."""
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
async def test_case_17_jwk_must_allow_rs256(
    keys: Keys, clock: FakeClock, jwk_change: dict[str, Any], with_k2: bool, expected: str
) -> None:
    """Case 17: a JWKS entry whose alg/use/key_ops/kty does not allow RS256 verification is
    ignored: the RS256 token under its kid is refused after exactly one fetch."""
    jwk = _changed(dict(keys.k1.jwk), jwk_change)
    transport = DocumentTransport({"keys": [jwk, *([keys.k2.jwk] if with_k2 else [])]})
    async with httpx.AsyncClient(transport=transport) as client:
        keyset = RemoteKeySet(JWKS_URL, http_client=client, clock=clock)
        verifier = TokenVerifier(keyset, clock=clock, issuer=ISS)
        assert_outcome(await verifier.authenticate(valid(keys)), expected)
    assert len(transport.requests) == 1


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
async def test_case_18_signature_byte_tampering(jwks: Harness, keys: Keys, case: Row) -> None:
    """Case 18: a tampered, truncated, extended or edge-value signature: token-invalid-signature."""
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
async def test_case_20_same_signature_different_signing_input(
    jwks: Harness, keys: Keys, case: Row
) -> None:
    """Case 20: K1's signature over T_valid does not cover a re-encoded header or payload."""
    await check(jwks, keys, case)


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
async def test_case_21_critical_extensions(jwks: Harness, keys: Keys, case: Row) -> None:
    """Case 21: any crit header, even K1-signed, is token-invalid before any fetch."""
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
async def test_case_22_unencoded_payload(jwks: Harness, keys: Keys, case: Row) -> None:
    """Case 22: b64 (RFC 7797) in any form, or a detached payload, is token-invalid, F=0."""
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
async def test_case_23_embedded_key_headers(
    jwks: Harness, keys: Keys, kind: str, kid: str, expected: str
) -> None:
    """Case 23: jwk/jku/x5u/x5c/x5t headers are never used: KX's token is refused and only
    JWKS_URL is ever fetched (once, cold)."""
    token = rs(keys.kx, header(kid=kid, **embedded(kind, keys.kx)), claims())
    assert_outcome(await jwks.verifier().authenticate(token), expected)
    assert [str(r.url) for r in jwks.transport.requests] == [JWKS_URL]


@pytest.mark.parametrize(
    "case",
    [
        # accepted: no category, the session category, the "ignore" category
        row("cat-absent", hdr(cat=DROP), OK, f=1),
        row("cat-null-counts-as-absent", hdr(cat=None), OK, f=1),
        row("cat-session", hdr(cat="cl_B7d4PD111AAA"), OK, f=1),
        row("cat-ignore", hdr(cat="cl_I7d4PD111III"), OK, f=1),
        row("typ-absent", hdr(typ=DROP), OK, f=1),
        # other JWTs signed by the same key
        row("cat-jwt-template", hdr(cat="cl_B7d4PD222AAA"), TYPE, f=0),
        row("cat-m2m", hdr(cat="cl_B7d4PD333AAA"), TYPE, f=0),
        row("cat-unknown", hdr(cat="cl_X"), TYPE, f=0),
        row("cat-empty", hdr(cat=""), TYPE, f=0),
        row("cat-number", hdr(cat=1), TYPE, f=0),
        row(
            "cat-list",
            hdr(cat=["cl_B7d4PD111AAA"]),
            TYPE,
            f=0,
        ),
        row(
            "cat-object-forged",
            kx(header(cat={"x": 1})),
            TYPE,
            f=0,
        ),
        row("typ-at-jwt", hdr(typ="at+jwt"), TYPE, f=0),
        row("typ-application-at-jwt", hdr(typ="application/at+jwt"), TYPE, f=0),
        row("typ-lowercase-jwt", hdr(typ="jwt"), INVALID, f=0),
        row("typ-jose", hdr(typ="JOSE"), INVALID, f=0),
        row("typ-list", hdr(typ=["JWT"]), INVALID, f=0),
        row("sid-missing", var(sid=DROP), TYPE, f=1),
        row("sid-empty", var(sid=""), TYPE, f=1),
        row("sid-number", var(sid=1), TYPE, f=1),
    ],
)
async def test_case_24_other_jwts_presented_as_session_tokens(
    jwks: Harness, keys: Keys, case: Row
) -> None:
    """Case 24: only a session (or absent) cat, typ JWT (or absent) and a sid make a session
    token; JWT templates, M2M, at+jwt and sid-less tokens are token-type-mismatch."""
    await check(jwks, keys, case)


# ---------------------------------------------------------------------------------------------
# §C Claims and time


@pytest.mark.parametrize(
    "case",
    [
        row("exp-now-minus-skew-minus-1", var(exp=NOW - SKEW - 1), EXPIRED, f=1),
        row("exp-now-minus-skew", var(exp=NOW - SKEW), EXPIRED, f=1),
        row("exp-now-minus-skew-plus-0.001", var(exp=NOW - SKEW + 0.001), OK, f=1),
        row("exp-now-minus-skew-plus-1", var(exp=NOW - SKEW + 1), OK, f=1),
        row("exp-now", var(exp=NOW), OK, f=1),
        row("skew-10-exp-now-minus-10", var(exp=NOW - 10), EXPIRED, f=1, clock_skew=10),
        row("skew-10-exp-now-minus-9", var(exp=NOW - 9), OK, f=1, clock_skew=10),
    ],
)
async def test_case_25_expiry_boundaries(jwks: Harness, keys: Keys, case: Row) -> None:
    """Case 25: exp <= now - skew is token-expired; any instant later is accepted."""
    await check(jwks, keys, case)


async def test_case_25_expired_token_costs_no_refetch(jwks: Harness, keys: Keys) -> None:
    """Case 25: on a warm cache an expired token is refused without another fetch, whether its
    kid is cached (token-expired) or unknown (no refetch for it: jwk-kid-mismatch)."""
    verifier = jwks.verifier()
    assert_outcome(await verifier.authenticate(valid(keys)), OK)
    assert_outcome(await verifier.authenticate(valid(keys, exp=NOW - SKEW - 1)), EXPIRED)
    expired_k2 = rs(keys.k2, header(kid="k2"), claims(exp=NOW - SKEW - 1))
    assert_outcome(await verifier.authenticate(expired_k2), KID)
    assert jwks.fetches == 1


@pytest.mark.parametrize(
    "case",
    [
        row("exp-now-minus-1", var(exp=NOW - 1), EXPIRED, f=1, clock_skew=0),
        row("exp-now", var(exp=NOW), EXPIRED, f=1, clock_skew=0),
        row("exp-now-plus-0.001", var(exp=NOW + 0.001), OK, f=1, clock_skew=0),
        row("nbf-now-plus-1", var(nbf=NOW + 1), NOT_ACTIVE, f=1, clock_skew=0),
        row("nbf-now", var(nbf=NOW), OK, f=1, clock_skew=0),
        row("iat-now-plus-1", var(iat=NOW + 1), IAT_FUTURE, f=1, clock_skew=0),
        row("iat-now", var(iat=NOW), OK, f=1, clock_skew=0),
        row("float-zero-exp-now", var(exp=NOW), EXPIRED, f=1, clock_skew=0.0),
    ],
)
async def test_case_26_zero_skew_is_honoured(jwks: Harness, keys: Keys, case: Row) -> None:
    """Case 26: clock_skew=0 means no tolerance at all (never the default 5 s)."""
    await check(jwks, keys, case)


@pytest.mark.parametrize(
    "case",
    [
        row("nbf-now-plus-skew-plus-1", var(nbf=NOW + SKEW + 1), NOT_ACTIVE, f=1),
        row("nbf-now-plus-skew", var(nbf=NOW + SKEW), OK, f=1),
        row("nbf-absent", var(nbf=DROP), OK, f=1),
        row("iat-now-plus-skew-plus-1", var(iat=NOW + SKEW + 1), IAT_FUTURE, f=1),
        row("iat-now-plus-skew", var(iat=NOW + SKEW), OK, f=1),
        row("iat-now-plus-skew-minus-1", var(iat=NOW + SKEW - 1), OK, f=1),
        row("iat-absent", var(iat=DROP), OK, f=1),
        # both in the future: exp, nbf, iat are checked in that order
        row("nbf-and-iat-future", var(nbf=NOW + 60, iat=NOW + 60), NOT_ACTIVE, f=1),
    ],
)
async def test_case_27_nbf_and_iat_in_the_future(jwks: Harness, keys: Keys, case: Row) -> None:
    """Case 27: nbf > now + skew is token-not-active-yet; iat > now + skew is
    token-iat-in-the-future; both at exactly now + skew are accepted."""
    await check(jwks, keys, case)


@pytest.mark.parametrize(
    "case",
    [
        row("exp-missing", var(exp=DROP), CLAIMS, f=1),
        row("exp-string", var(exp=str(NOW + 60)), CLAIMS, f=1),
        row("exp-float", var(exp=NOW + 30.5), OK, f=1),
        row("exp-null", var(exp=None), CLAIMS, f=1),
        row("exp-object", var(exp={"v": NOW + 60}), CLAIMS, f=1),
        row("nbf-string", var(nbf="x"), CLAIMS, f=1),
        row("nbf-null", var(nbf=None), CLAIMS, f=1),
        row("iat-list", var(iat=[1]), CLAIMS, f=1),
        row("iat-bool", var(iat=False), CLAIMS, f=1),
        row("iat-numeric-string", var(iat=str(NOW)), CLAIMS, f=1),
    ],
)
async def test_case_28_missing_or_mistyped_time_claims(
    jwks: Harness, keys: Keys, case: Row
) -> None:
    """Case 28: exp is required and time claims must be JSON numbers (floats are fine), else
    token-verification-failed."""
    await check(jwks, keys, case)


@pytest.mark.parametrize(
    "case",
    [
        # default: no lifetime limit (Clerk has none either)
        row("default-ten-year-exp", var(exp=NOW + 10 * YEAR), OK, f=1),
        row("default-no-iat", var(iat=DROP, exp=NOW + 10 * YEAR), OK, f=1),
        row("default-ancient-iat", var(iat=NOW - 10 * YEAR), OK, f=1),
        # max_token_age bounds the time since iat (not exp - iat)
        row("age-ten-year-exp-fresh-iat", var(exp=NOW + 10 * YEAR), OK, f=1, max_token_age=3600),
        row("age-iat-exactly-max-ago", var(iat=NOW - 3600), OK, f=1, max_token_age=3600),
        row("age-iat-one-second-older", var(iat=NOW - 3601), TOO_OLD, f=1, max_token_age=3600),
        row("age-no-iat", var(iat=DROP), TOO_OLD, f=1, max_token_age=3600),
        row("age-iat-within-skew-future", var(iat=NOW + SKEW), OK, f=1, max_token_age=60),
    ],
)
async def test_case_29_absurd_lifetimes(jwks: Harness, keys: Keys, case: Row) -> None:
    """Case 29: by default long-lived tokens are accepted; with max_token_age, tokens issued
    longer ago than it allows, or without iat, are token-too-old."""
    await check(jwks, keys, case)


async def test_case_29_max_token_age_applies_as_time_passes(keys: Keys, clock: FakeClock) -> None:
    """Case 29: a ten-year token under max_token_age=3600 works for exactly an hour after iat."""
    verifier = static_verifier(keys, clock, max_token_age=3600)
    token = valid(keys, exp=NOW + 10 * YEAR)
    assert_outcome(await verifier.authenticate(token), OK)
    clock.advance(3600)
    assert_outcome(await verifier.authenticate(token), OK)
    clock.advance(0.5)
    assert_outcome(await verifier.authenticate(token), TOO_OLD)


@pytest.mark.parametrize(
    "case",
    [
        row("sub-missing", var(sub=DROP), CLAIMS, f=1),
        row("sub-number", var(sub=123), CLAIMS, f=1),
        row("sub-empty", var(sub=""), CLAIMS, f=1),
        row("sub-list", var(sub=[USER]), CLAIMS, f=1),
        row("sub-null", var(sub=None), CLAIMS, f=1),
        row("sub-crlf-header-injection", var(sub="user_a\r\nx-admin: 1"), CLAIMS, f=1),
        row("sub-non-ascii", var(sub="user_ä"), CLAIMS, f=1),
        row("sub-space", var(sub="user a"), CLAIMS, f=1),
        row("sub-nul", var(sub="user_a\u0000"), CLAIMS, f=1),
        row("sub-del", var(sub="user_a\x7f"), CLAIMS, f=1),
        row("sub-257-chars", var(sub="u" * 257), CLAIMS, f=1),
        row("sub-256-chars", var(sub="u" * 256), IN + "u" * 256, f=1),
        row("sub-10kb-over-size-cap", var(sub="u" * 10_240), INVALID, f=0),
        row("sub-machine", var(sub="mch_123"), TYPE, f=1),
    ],
)
async def test_case_30_sub_integrity(jwks: Harness, keys: Keys, case: Row) -> None:
    """Case 30: sub must be 1-256 printable ASCII characters, else token-verification-failed."""
    await check(jwks, keys, case)


@pytest.mark.parametrize(
    ("offset", "expected"),
    [
        pytest.param(-600, NOT_ACTIVE, id="clock-10-min-behind"),
        pytest.param(+600, EXPIRED, id="clock-10-min-ahead"),
        pytest.param(0, OK, id="clock-on-time"),
    ],
)
async def test_case_31_clock_source(
    keys: Keys, clock: FakeClock, offset: int, expected: str
) -> None:
    """Case 31: the injected clock is the only time source and the skew the only tolerance."""
    verifier = static_verifier(keys, clock)
    clock.advance(offset)
    assert_outcome(await verifier.authenticate(valid(keys)), expected)


@pytest.mark.parametrize(
    "case",
    [
        row("forged", forge(), SIGNATURE, f=1),
        row("forged-expired", forge(exp=NOW - 3600), SIGNATURE, f=1),
        row("forged-not-yet-valid", forge(nbf=NOW + 3600), SIGNATURE, f=1),
        row("forged-wrong-iss", forge(iss="https://evil.com"), SIGNATURE, f=1),
        row("forged-wrong-azp", forge(azp="https://evil.com"), SIGNATURE, f=1),
        row("forged-no-sub", forge(sub=DROP), SIGNATURE, f=1),
        row("forged-no-sid", forge(sid=DROP), SIGNATURE, f=1),
        row("forged-exp-string", forge(exp="soon"), SIGNATURE, f=1),
        row("forged-pending", forge(sts="pending"), SIGNATURE, f=1),
        row("forged-azp-list", forge(azp=[AZP]), SIGNATURE, f=1),
        row("forged-exp-huge-int", forge(exp=OVERFLOW_INT), SIGNATURE, f=1),
    ],
)
async def test_case_32_claims_only_after_the_signature(
    jwks: Harness, keys: Keys, case: Row
) -> None:
    """Case 32: a forged token with bad claims gets exactly the answer of any forged token."""
    await check(jwks, keys, case)


@pytest.mark.parametrize(
    ("changes", "fetches"),
    [
        pytest.param({}, 2, id="valid-claims-refetch"),
        pytest.param({"exp": NOW - 3600}, 1, id="expired-no-refetch"),
        pytest.param({"iss": "https://evil.com"}, 1, id="wrong-iss-no-refetch"),
        pytest.param({"azp": "https://evil.com"}, 2, id="wrong-azp-refetch"),
    ],
)
async def test_case_32_unknown_kid_answer_does_not_depend_on_claims(
    jwks: Harness, keys: Keys, changes: dict[str, Any], fetches: int
) -> None:
    """Case 32: a forged unknown-kid token is jwk-kid-mismatch whatever its claims; the cheap
    pre-checks (exp, iss) only decide whether it earns a refetch, never the answer."""
    verifier = jwks.verifier()
    assert_outcome(await verifier.authenticate(valid(keys)), OK)
    token = rs(keys.kx, header(kid="kx"), claims(**changes))
    assert_outcome(await verifier.authenticate(token), KID)
    assert jwks.fetches == fetches


async def test_case_33_pending_session_is_signed_out(jwks: Harness, keys: Keys) -> None:
    """Case 33: sts "pending" is signed out (session-pending) by default and signed in with
    treat_pending_as_signed_out=False; "active" is signed in."""
    pending = valid(keys, sts="pending")
    auth = await jwks.verifier().authenticate(pending)
    assert auth == Auth.signed_out(PENDING, session_status="pending")
    assert not auth.is_signed_in
    allowed = await jwks.verifier(treat_pending_as_signed_out=False).authenticate(pending)
    assert_outcome(allowed, OK)
    assert allowed.session_status == "pending"
    active = await jwks.verifier().authenticate(valid(keys, sts="active"))
    assert_outcome(active, OK)
    assert active.session_status == "active"


V2 = {"v": 2, "fea": "o:admin"}


@pytest.mark.parametrize(
    ("changes", "is_admin"),
    [
        # v2 compact org claim
        pytest.param({**V2, "o": {"id": "org_1", "rol": "admin"}}, True, id="v2-admin"),
        pytest.param({**V2, "o": {"id": "org_1", "rol": "org:admin"}}, True, id="v2-org-admin"),
        pytest.param({**V2, "o": {"id": "org_1", "rol": "Admin"}}, False, id="v2-Admin"),
        pytest.param({**V2, "o": {"id": "org_1", "rol": "admin "}}, False, id="v2-trailing-space"),
        pytest.param({**V2, "o": {"id": "org_1", "rol": ["admin"]}}, False, id="v2-list"),
        pytest.param({**V2, "o": {"id": "org_1", "rol": {"admin": True}}}, False, id="v2-object"),
        pytest.param({**V2, "o": {"id": "org_1", "rol": ""}}, False, id="v2-empty"),
        pytest.param({**V2, "o": {"rol": "admin"}}, False, id="v2-no-org-id"),
        pytest.param({**V2, "o": "admin"}, False, id="v2-o-is-a-string"),
        pytest.param({"v": 2, "org_id": "o", "org_role": "org:admin"}, False, id="v2-ignores-v1"),
        # v1 claims
        pytest.param({"org_id": "org_1", "org_role": "org:admin"}, True, id="v1-org-admin"),
        pytest.param({"org_id": "org_1", "org_role": "org:Admin"}, False, id="v1-org-Admin"),
        pytest.param({"org_id": "org_1", "org_role": ["org:admin"]}, False, id="v1-list"),
        pytest.param({"org_role": "org:admin"}, False, id="v1-no-org-id"),
        pytest.param({"role": "admin"}, False, id="top-level-role-claim"),
        pytest.param({"metadata": {"role": "admin"}}, False, id="metadata-role"),
        # impersonation: act does not change authorisation (as Clerk's has())
        pytest.param(
            {**V2, "o": {"id": "org_1", "rol": "admin"}, "act": {"sub": "user_support"}},
            True,
            id="impersonated-admin",
        ),
    ],
)
async def test_case_34_admin_claim_shape(
    keys: Keys, clock: FakeClock, changes: dict[str, Any], is_admin: bool
) -> None:
    """Case 34: only the exact role string grants org:admin; every other shape is a signed-in
    user without it; an impersonated (act) admin session keeps the role."""
    auth = await static_verifier(keys, clock).authenticate(valid(keys, **changes))
    assert_outcome(auth, OK)
    assert auth.has(role="org:admin") is is_admin
    if "act" in changes:
        assert auth.actor == {"sub": "user_support"}


# ---------------------------------------------------------------------------------------------
# §D Issuer, authorised party, audience


@pytest.mark.parametrize(
    "case",
    [
        row("exact", var(), OK, f=1),
        row("other-tld", var(iss="https://clerk.example.co"), ISSUER, f=1),
        row("trailing-slash", var(iss=ISS + "/"), ISSUER, f=1),
        row("upper-case", var(iss=ISS.upper()), ISSUER, f=1),
        row("suffix-domain", var(iss=ISS + ".evil.com"), ISSUER, f=1),
        row("embedded", var(iss="https://evil.com/" + ISS), ISSUER, f=1),
        row("http", var(iss="http://clerk.example.com"), ISSUER, f=1),
        row("list", var(iss=[ISS]), ISSUER, f=1),
        row("number", var(iss=123), ISSUER, f=1),
        row("null", var(iss=None), ISSUER, f=1),
        row("absent", var(iss=DROP), ISSUER, f=1),
        # no issuer configured: iss is not checked (as @clerk/backend)
        row("unconfigured-any-iss", var(iss="https://evil.com"), OK, f=1, issuer=None),
        row("unconfigured-absent", var(iss=DROP), OK, f=1, issuer=None),
    ],
)
async def test_case_35_issuer_exact_match(jwks: Harness, keys: Keys, case: Row) -> None:
    """Case 35: a configured issuer must equal iss exactly, else token-invalid-issuer."""
    await check(jwks, keys, case)


@pytest.mark.parametrize(
    "iss",
    [
        pytest.param("https://attacker.example", id="attacker-url"),
        pytest.param("https://attacker.example/.well-known/jwks.json", id="attacker-jwks-url"),
        pytest.param(["https://attacker.example"], id="list"),
        pytest.param({"url": "https://attacker.example"}, id="object"),
        pytest.param(123, id="number"),
    ],
)
async def test_case_36_issuer_never_picks_a_url(jwks: Harness, keys: Keys, iss: Any) -> None:
    """Case 36: iss never selects what is fetched: forged tokens naming other issuers cause no
    fetch but JWKS_URL's, and an unknown kid with a foreign iss earns no refetch."""
    verifier = jwks.verifier()
    assert_outcome(await verifier.authenticate(rs(keys.kx, header(), claims(iss=iss))), SIGNATURE)
    unknown_kid = rs(keys.kx, header(kid="kx"), claims(iss=iss))
    assert_outcome(await verifier.authenticate(unknown_kid), KID)
    assert [str(r.url) for r in jwks.transport.requests] == [JWKS_URL]


TWO_PARTIES = frozenset({AZP, "https://admin.example.com"})


@pytest.mark.parametrize(
    "case",
    [
        row("exact", var(), OK, f=1),
        row("absent", var(azp=DROP), PARTIES, f=1),
        row("empty", var(azp=""), PARTIES, f=1),
        row("null", var(azp=None), PARTIES, f=1),
        row("trailing-slash", var(azp=AZP + "/"), PARTIES, f=1),
        row("http", var(azp="http://app.example.com"), PARTIES, f=1),
        row("port", var(azp="https://app.example.com:8443"), PARTIES, f=1),
        row("subdomain", var(azp="https://evil.app.example.com"), PARTIES, f=1),
        row("suffix-domain", var(azp=AZP + ".evil.com"), PARTIES, f=1),
        row("upper-case", var(azp=AZP.upper()), PARTIES, f=1),
        row("number", var(azp=1), PARTIES, f=1),
        row(
            "list",
            var(azp=[AZP]),
            PARTIES,
            f=1,
        ),
        row(
            "object",
            var(azp={"origin": AZP}),
            PARTIES,
            f=1,
        ),
        # several parties: any one matches
        row(
            "second-party",
            var(azp="https://admin.example.com"),
            OK,
            f=1,
            authorized_parties=TWO_PARTIES,
        ),
        # none configured: azp is not checked
        row("unconfigured-absent", var(azp=DROP), OK, f=1, authorized_parties=frozenset()),
        row(
            "unconfigured-other",
            var(azp="https://evil.com"),
            OK,
            f=1,
            authorized_parties=frozenset(),
        ),
    ],
)
async def test_case_37_azp_enforcement(jwks: Harness, keys: Keys, case: Row) -> None:
    """Case 37: with authorized parties configured, azp must equal one exactly, else
    token-invalid-authorized-parties."""
    await check(jwks, keys, case)


AUD = frozenset({"expected"})


@pytest.mark.parametrize(
    "case",
    [
        row("string-other", var(aud="other"), AUDIENCE, f=1, audience=AUD),
        row("list-other", var(aud=["other"]), AUDIENCE, f=1, audience=AUD),
        row("list-with-expected", var(aud=["other", "expected"]), OK, f=1, audience=AUD),
        row("string-expected", var(aud="expected"), OK, f=1, audience=AUD),
        row("empty-list", var(aud=[]), AUDIENCE, f=1, audience=AUD),
        row("number", var(aud=123), AUDIENCE, f=1, audience=AUD),
        row("object", var(aud={"expected": True}), AUDIENCE, f=1, audience=AUD),
        row("list-of-non-strings", var(aud=[["expected"], {"a": 1}]), AUDIENCE, f=1, audience=AUD),
        # stricter than @clerk/backend, which lets a missing aud pass: pinned
        row("absent", var(aud=DROP), AUDIENCE, f=1, audience=AUD),
        # not configured: aud is ignored whatever its shape
        row("unconfigured-other", var(aud="other"), OK, f=1),
        row("unconfigured-number", var(aud=123), OK, f=1),
        row("unconfigured-objects", var(aud=[{"a": 1}]), OK, f=1),
    ],
)
async def test_case_38_audience(jwks: Harness, keys: Keys, case: Row) -> None:
    """Case 38: a configured audience must intersect aud (a string or a list of strings), else
    token-invalid-audience; unconfigured, aud is ignored."""
    await check(jwks, keys, case)


async def test_case_39_token_from_another_instance(jwks: Harness, keys: Keys) -> None:
    """Case 39: a dev instance's token (its own kid and iss) is refused without a refetch."""
    verifier = jwks.verifier()
    assert_outcome(await verifier.authenticate(valid(keys)), OK)
    dev = rs(keys.kx, header(kid="ins_dev"), claims(iss="https://x.clerk.accounts.dev"))
    assert_outcome(await verifier.authenticate(dev), KID)
    assert jwks.fetches == 1


# ---------------------------------------------------------------------------------------------
# Through the middleware: the HTTP answer

MESSAGES = {
    INVALID: "The session token is malformed.",
    ALGORITHM: "The session token uses an algorithm other than RS256.",
    SIGNATURE: "The session token's signature is invalid.",
    CLAIMS: "The session token's claims are invalid.",
    EXPIRED: "The session token has expired; fetch a fresh one and retry.",
    ISSUER: "The session token was issued by another Clerk instance (iss).",
    PARTIES: "The session token was issued for another origin (azp).",
    TOO_OLD: "The session token is older than this route allows; refresh it.",
    TYPE: "This token is not a Clerk session token.",
    PENDING: "The session has pending tasks; finish them to continue.",
}


def api_app(**options: Any) -> FastAPI:
    """An app with GET /api/me behind ClerkMiddleware(rules=[Rule.api("/api/(.*)")])."""
    app = FastAPI()

    @app.get("/api/me")
    async def me(auth: Auth = Depends(current_auth)) -> dict[str, str | None]:
        return {"user_id": auth.user_id}

    app.add_middleware(ClerkMiddleware, rules=[Rule.api("/api/(.*)")], **options)
    return app


def static_app(k: Keys, clock: FakeClock, **options: Any) -> FastAPI:
    """``api_app`` trusting K1's PEM (networkless), with the reference issuer and party."""
    defaults = {"jwt_key": k.k1.public_pem, "issuer": ISS, "authorized_parties": [AZP]}
    return api_app(clock=clock, **{**defaults, **options})


async def get_me(app: FastAPI, token: str | None = None, **headers: str) -> httpx.Response:
    if token is not None:
        headers["authorization"] = f"Bearer {token}"
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app), base_url=AZP) as client:
        return await client.get("/api/me", headers=headers)


def assert_refused(response: httpx.Response, reason: str) -> None:
    """Exactly the middleware's 401 for a presented token refused with ``reason``."""
    assert response.status_code == 401
    assert response.json() == {
        "error": "unauthorized",
        "reason": reason,
        "message": MESSAGES[reason],
    }
    assert response.headers["www-authenticate"] == (
        f'Bearer realm="clerk", error="invalid_token", error_description="{reason}"'
    )
    assert response.headers["cache-control"] == "no-store"
    assert response.headers["x-clerk-auth-status"] == "signed-out"
    assert response.headers["x-clerk-auth-reason"] == reason
    assert response.headers["content-type"] == "application/json"
    assert "x-user-id" not in response.headers


async def test_middleware_accepts_t_valid(keys: Keys, clock: FakeClock) -> None:
    """T_valid through the middleware reaches the handler, which sees its user."""
    response = await get_me(static_app(keys, clock), valid(keys))
    assert response.status_code == 200
    assert response.json() == {"user_id": USER}
    assert response.headers["x-user-id"] == USER


@pytest.mark.parametrize(
    ("build", "reason"),
    [
        pytest.param(const("a.b"), INVALID, id="case-05-two-parts"),
        pytest.param(k1(b"null"), INVALID, id="case-06-null-header"),
        pytest.param(odd(2, lambda s: s + "=="), INVALID, id="case-08-padding"),
        pytest.param(odd(2, spare_bits_variant), INVALID, id="case-08-spare-bits"),
        pytest.param(hdr(kid=123), INVALID, id="case-09-kid-int"),
        pytest.param(const("mt_2xKa9vB3cD4eF5gH6iJ7"), TYPE, id="case-13-machine-token"),
        pytest.param(alg_none("none", GARBAGE), ALGORITHM, id="case-15-alg-none"),
        pytest.param(
            lambda k: hs256(public_encodings(k.k1)["spki-pem"], header(alg="HS256"), claims()),
            ALGORITHM,
            id="case-16-hs256-public-key",
        ),
        pytest.param(resign(lambda k, sig: bytes(256)), SIGNATURE, id="case-18-zero-signature"),
        pytest.param(hdr(crit=["exp2"], exp2=1), INVALID, id="case-21-crit"),
        pytest.param(hdr(cat="cl_B7d4PD222AAA"), TYPE, id="case-24-jwt-template"),
        pytest.param(var(exp=NOW - SKEW), EXPIRED, id="case-25-expired"),
        pytest.param(var(exp=str(NOW + 60)), CLAIMS, id="case-28-exp-string"),
        pytest.param(var(sub="user_a\r\nx-admin: 1"), CLAIMS, id="case-30-sub-crlf"),
        pytest.param(forge(), SIGNATURE, id="case-32-forged"),
        pytest.param(var(sts="pending"), PENDING, id="case-33-pending"),
        pytest.param(var(iss=ISS + "/"), ISSUER, id="case-35-iss-slash"),
        pytest.param(var(azp=DROP), PARTIES, id="case-37-azp-absent"),
    ],
)
async def test_middleware_refuses_with_the_exact_401(
    keys: Keys, clock: FakeClock, build: Build, reason: str
) -> None:
    """A refused token on an API route gets 401 JSON with the reason, WWW-Authenticate,
    no-store and Clerk's debug headers; the handler never runs."""
    assert_refused(await get_me(static_app(keys, clock), build(keys)), reason)


async def test_case_24_forged_list_category_through_the_middleware(
    keys: Keys, clock: FakeClock
) -> None:
    """Case 24: an unsigned token whose header cat is a list is a plain 401, not a server error."""
    token = f"{seg(header(cat=['cl_B7d4PD111AAA']))}.{seg(claims())}.{GARBAGE}"
    assert_refused(await get_me(static_app(keys, clock), token), TYPE)


async def test_case_14_oversized_carriers_through_the_middleware(
    keys: Keys, clock: FakeClock
) -> None:
    """Case 14: an 8 MB Authorization header and a 5000-byte __session cookie are 401
    token-invalid, never a 500."""
    app = static_app(keys, clock)
    assert_refused(await get_me(app, "a" * (8 * 1024 * 1024)), INVALID)
    assert_refused(await get_me(app, cookie="__session=" + "b" * 5000), INVALID)


async def test_case_32_forged_responses_are_identical(keys: Keys, clock: FakeClock) -> None:
    """Case 32: forged tokens with expired/wrong-iss/wrong-azp/no-sub/pending claims get
    byte-for-byte the response of a plain forged token (no oracle on which claim failed)."""
    app = static_app(keys, clock)

    def answer(response: httpx.Response) -> tuple[int, list[tuple[str, str]], bytes]:
        return response.status_code, response.headers.multi_items(), response.content

    plain = answer(await get_me(app, forged(keys)))
    assert plain[0] == 401
    for changes in (
        {"exp": NOW - 3600},
        {"iss": "https://evil.com"},
        {"azp": "https://evil.com"},
        {"sub": DROP},
        {"sts": "pending"},
    ):
        assert answer(await get_me(app, forged(keys, **changes))) == plain


async def test_case_26_zero_skew_through_the_middleware(keys: Keys, clock: FakeClock) -> None:
    """Case 26: ClerkMiddleware(clock_skew=0) refuses exp == now; the default 5 s accepts it."""
    token = valid(keys, exp=NOW)
    assert_refused(await get_me(static_app(keys, clock, clock_skew=0), token), EXPIRED)
    assert (await get_me(static_app(keys, clock), token)).status_code == 200


async def test_case_29_max_token_age_through_the_middleware(keys: Keys, clock: FakeClock) -> None:
    """Case 29: ClerkMiddleware(max_token_age=60) refuses a token issued 61 s ago
    (token-too-old) and accepts one issued 60 s ago; without it both are accepted."""
    old, edge = valid(keys, iat=NOW - 61), valid(keys, iat=NOW - 60)
    limited = static_app(keys, clock, max_token_age=60)
    assert_refused(await get_me(limited, old), TOO_OLD)
    assert (await get_me(limited, edge)).status_code == 200
    assert (await get_me(static_app(keys, clock), old)).status_code == 200


async def test_case_17_jwks_without_a_usable_key_answers_503(keys: Keys, clock: FakeClock) -> None:
    """Case 17: a JWKS whose only key says alg RS512 holds no usable key: keys unavailable,
    503 with Retry-After (never signed in), after one fetch."""
    transport = DocumentTransport({"keys": [{**keys.k1.jwk, "alg": "RS512"}]})
    async with httpx.AsyncClient(transport=transport) as client:
        app = api_app(jwks_url=JWKS_URL, http_client=client, clock=clock, issuer=ISS)
        response = await get_me(app, valid(keys))
    assert response.status_code == 503
    assert response.json() == {
        "error": "service_unavailable",
        "reason": UNAVAILABLE,
        "message": "Clerk's signing keys are unavailable; retry shortly.",
    }
    assert response.headers["retry-after"] == "30"
    assert response.headers["cache-control"] == "no-store"
    assert len(transport.requests) == 1


@pytest.mark.parametrize(
    ("role", "status"),
    [
        pytest.param("admin", 200, id="admin"),
        pytest.param("Admin", 403, id="Admin"),
        pytest.param(["admin"], 403, id="list"),
    ],
)
async def test_case_34_admin_route_through_the_middleware(
    keys: Keys, clock: FakeClock, role: Any, status: int
) -> None:
    """Case 34: an admin API route admits only the exact role; other shapes get 403, not 401."""
    app = FastAPI()

    @app.get("/api/admin/users")
    async def users() -> dict[str, bool]:
        return {"ok": True}

    app.add_middleware(
        ClerkMiddleware,
        rules=[Rule.api("/api/admin(.*)", role="org:admin"), Rule.api("/api/(.*)")],
        jwt_key=keys.k1.public_pem,
        issuer=ISS,
        authorized_parties=[AZP],
        clock=clock,
    )
    token = valid(keys, **V2, o={"id": "org_1", "rol": role})
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app), base_url=AZP) as client:
        response = await client.get(
            "/api/admin/users", headers={"authorization": f"Bearer {token}"}
        )
    assert response.status_code == status
    if status == 403:
        assert response.json()["reason"] == "authorization-failed"
        assert response.headers["x-clerk-auth-status"] == "signed-in"


async def test_case_39_colliding_kids_in_two_instances(keys: Keys, clock: FakeClock) -> None:
    """Case 39: two middlewares for two instances whose keys share kid "k1" each accept only
    their own instance's tokens: no JWKS cache is shared between them."""
    other = "https://clerk.other.example"
    transport_a, transport_b = JWKSTransport(keys.k1), JWKSTransport(keys.kx)
    async with (
        httpx.AsyncClient(transport=transport_a) as client_a,
        httpx.AsyncClient(transport=transport_b) as client_b,
    ):
        app_a = api_app(jwks_url=JWKS_URL, http_client=client_a, clock=clock, issuer=ISS)
        app_b = api_app(
            jwks_url=other + "/.well-known/jwks.json",
            http_client=client_b,
            clock=clock,
            issuer=other,
        )
        token_a, token_b = valid(keys), forged(keys, iss=other)
        assert (await get_me(app_a, token_a)).json() == {"user_id": USER}
        assert (await get_me(app_b, token_b)).json() == {"user_id": USER}
        assert_refused(await get_me(app_a, token_b), SIGNATURE)
        assert_refused(await get_me(app_b, token_a), SIGNATURE)
    assert len(transport_a.requests) == len(transport_b.requests) == 1


# ---------------------------------------------------------------------------------------------
# The verified-token cache


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
    """After a TTL refresh drops its key, a cached token is jwk-kid-mismatch; until then it is
    served from the cache without a fetch."""
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
    """A rotation seen through an unknown-kid refetch also ends the cached token of the
    removed key: jwk-kid-mismatch, without a further fetch."""
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


async def test_cache_size_bound_evicts_the_oldest(keys: Keys, clock: FakeClock) -> None:
    """TokenVerifier(cache_size=2) keeps the two most recently stored tokens (first in,
    first out)."""
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


async def test_cached_token_honours_max_token_age(keys: Keys, clock: FakeClock) -> None:
    """A cached token stops being accepted once older than max_token_age (token-too-old)."""
    verifier = static_verifier(keys, clock, max_token_age=30)
    token = valid(keys)
    first = await verifier.authenticate(token)
    clock.advance(30)
    assert await verifier.authenticate(token) is first
    clock.advance(0.001)
    assert_outcome(await verifier.authenticate(token), TOO_OLD)


async def test_refusals_are_not_cached(keys: Keys, clock: FakeClock) -> None:
    """A token refused as not yet valid is accepted once its nbf is reached (time can undo
    that refusal, so it is never remembered)."""
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
    """A forgery replayed is refused from memory; after its key leaves the JWKS it is looked
    at afresh (and refused as jwk-kid-mismatch)."""
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


class _BrokenKeySet:
    """A key source that fails in a way no code path expects."""

    def peek(self, kid: str) -> None:
        return None

    async def get(self, kid: str, *, may_refetch: bool = True) -> RSAPublicKey:
        raise RuntimeError("disk on fire")

    def retry_after(self) -> int:
        return 1


async def test_an_unexpected_error_is_a_signed_out_auth_not_an_exception(
    keys: Keys, caplog: pytest.LogCaptureFixture
) -> None:
    """An unforeseen failure while verifying is signed-out ``unexpected-error``, logged once."""
    verifier = TokenVerifier(_BrokenKeySet(), clock=lambda: NOW)
    token = valid(keys)
    auth = await verifier.authenticate(token)
    assert auth == Auth.signed_out("unexpected-error")
    assert [r.getMessage() for r in caplog.records] == [
        "Unexpected RuntimeError while verifying a session token"
    ]
    assert token not in caplog.text
