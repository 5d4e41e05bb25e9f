"""Token structure: what is refused before any key lookup, and what a session token is.

The compact form (three canonical unpadded base64url segments of UTF-8 JSON objects without
duplicate members), the size cap, the ``kid``, numbers Python cannot hold, and the token type
(``cat``, ``typ``, ``sid``, machine-token prefixes): docs/security.md "Token verification, in
order", steps 1 to 3. The tables and terms (T_valid, K1, KX, F) are those of
_verify_helpers.py.
"""

from __future__ import annotations

import base64

import pytest
from cryptography.hazmat.primitives.asymmetric.rsa import RSAPublicKey

from clerk_asgi import Auth
from clerk_asgi._verify import MAX_TOKEN_LENGTH, TokenVerifier
from clerk_asgi.testing import FakeClock

from ._verify_helpers import (
    ALGORITHM,
    CLAIMS,
    DROP,
    HEADER_JSON,
    INVALID,
    JWKS_URL,
    KID,
    NOW,
    OK,
    OVERFLOW_INT,
    SIGNATURE,
    TYPE,
    Harness,
    Keys,
    Row,
    assert_outcome,
    check,
    claims,
    const,
    hdr,
    header,
    insert,
    k1,
    kx,
    nested,
    odd,
    odd_token,
    parser_refuses,
    payload_text,
    respell,
    row,
    rs,
    spare_bits_variant,
    static_verifier,
    std_alphabet,
    token_of_length,
    valid,
    var,
    with_member,
)

pytestmark = pytest.mark.anyio


# -- The baseline ---------------------------------------------------------------------------------


async def test_t_valid_is_signed_in_with_its_claims(jwks: Harness, keys: Keys) -> None:
    """T_valid is signed in as its sub, with its sid and claims, after exactly one fetch."""
    token = valid(keys)
    auth = await jwks.verifier().authenticate(token)
    assert_outcome(auth, OK)
    assert auth.token == token
    assert dict(auth.claims) == claims()
    assert [str(r.url) for r in jwks.transport.requests] == [JWKS_URL]


# -- The compact form: three canonical base64url segments of JSON objects -------------------------


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
async def test_anything_but_three_segments_is_malformed(
    jwks: Harness, keys: Keys, case: Row
) -> None:
    """Anything but three non-empty segments (a JWE too) is token-invalid, with F=0."""
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
async def test_header_or_payload_not_a_json_object_is_malformed(
    jwks: Harness, keys: Keys, case: Row
) -> None:
    """A header (or payload) that is not a UTF-8 JSON object is token-invalid, F=0."""
    await check(jwks, keys, case)


@pytest.mark.parametrize("depth", [1_000, 2_500])
@pytest.mark.parametrize("where", ["header", "payload"])
async def test_deeply_nested_json_is_refused_without_raising(
    jwks: Harness, keys: Keys, depth: int, where: str
) -> None:
    """Deeply nested JSON under the size cap is refused and never raises.

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


async def test_nesting_beyond_the_size_cap_is_malformed(jwks: Harness, keys: Keys) -> None:
    """100 000 levels of nesting are refused by the size cap: token-invalid, F=0."""
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
async def test_only_canonical_base64url_is_accepted(jwks: Harness, keys: Keys, case: Row) -> None:
    """Only canonical unpadded base64url is accepted; other spellings are token-invalid, F=0.

    '!', '+/', '=', whitespace and non-zero trailing bits in the signature are refused before
    any fetch; spare bits in header or payload change the signed bytes (signature refused).
    """
    await check(jwks, keys, case)


async def test_spare_bit_variants_decode_to_the_same_bytes(keys: Keys) -> None:
    """The spare-bit spellings used above really decode to the same bytes."""
    for segment in odd_token(keys).split("."):
        variant = spare_bits_variant(segment)
        assert variant != segment
        pad = "=" * (-len(segment) % 4)
        assert base64.urlsafe_b64decode(variant + pad) == base64.urlsafe_b64decode(segment + pad)


async def test_other_spellings_of_a_cached_token_are_refused(keys: Keys, clock: FakeClock) -> None:
    """Once a token is cached, its padded, '+/' and spare-bit spellings are still refused.

    The cache key (the token string) is only ever a canonical spelling.
    """
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


# -- kid: a short non-empty string, only ever a dictionary key ------------------------------------


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
async def test_kid_of_the_wrong_type_or_shape(jwks: Harness, keys: Keys, case: Row) -> None:
    """Non-string, empty or over-long kids are token-invalid (F=0); odd strings just miss.

    Odd string kids are only looked up (after the one cold fetch) and miss: jwk-kid-mismatch.
    """
    await check(jwks, keys, case)


async def test_odd_kids_on_a_warm_cache_cost_one_refetch_per_cooldown(
    jwks: Harness, keys: Keys
) -> None:
    """On a warm cache a storm of odd string kids costs one refetch per 30 s cooldown."""
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


# -- JSON that parsers disagree on: duplicate members, numbers Python cannot hold -----------------


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
async def test_duplicate_member_names_are_malformed(jwks: Harness, keys: Keys, case: Row) -> None:
    """Duplicate member names anywhere in header or payload are token-invalid, F=0.

    Even when K1 signed them: no parser disagreement about which member counts.
    """
    await check(jwks, keys, case)


def x_header(value: bytes) -> bytes:
    return with_member(HEADER_JSON, b'"x":' + value)


def exp_payload(value: bytes, name: bytes = b"exp") -> bytes:
    return with_member(payload_text(**{name.decode(): DROP}), b'"' + name + b'":' + value)


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
async def test_numbers_that_break_python_get_a_reason_code(
    jwks: Harness, keys: Keys, case: Row
) -> None:
    """Huge, infinite, NaN or non-numeric numbers get a reason code, never an error."""
    await check(jwks, keys, case)


# -- Not a session token: machine tokens, other JWTs, oversized tokens ----------------------------


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
async def test_machine_oauth_and_api_key_tokens_are_not_session_tokens(
    jwks: Harness, keys: Keys, case: Row
) -> None:
    """Machine, OAuth and API-key tokens are token-type-mismatch without any fetch.

    No call to a Clerk API either; only a JWT the instance signed costs the one cold fetch.
    """
    await check(jwks, keys, case)


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
async def test_other_jwts_presented_as_session_tokens(jwks: Harness, keys: Keys, case: Row) -> None:
    """Only a session (or absent) cat, typ JWT (or absent) and a sid make a session token.

    JWT templates, M2M, at+jwt and sid-less tokens are token-type-mismatch.
    """
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
async def test_token_longer_than_8192_characters_is_malformed(
    jwks: Harness, keys: Keys, case: Row
) -> None:
    """Tokens over 8192 characters are token-invalid (F=0), even validly signed; 8192 is fine."""
    assert MAX_TOKEN_LENGTH == 8192
    await check(jwks, keys, case)


# -- Whatever goes wrong, authenticate() answers an Auth ------------------------------------------


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
