"""Claims, checked only once the signature holds: time, sub, session status, roles, iss, azp, aud.

Time claims are JSON numbers compared with the injected clock and the configured skew (RFC 7519
section 4.1); ``sub`` is printable ASCII; ``sts`` "pending" is signed out; roles come from
Clerk's v1 and v2 org claims, exact strings only; ``iss``, ``azp`` and ``aud`` must match what
is configured exactly (docs/security.md "Token verification, in order", step 6). The tables
and terms (T_valid, K1, KX, F) are those of _verify_helpers.py.
"""

from __future__ import annotations

from typing import Any

import pytest

from clerk_asgi import Auth
from clerk_asgi.testing import FakeClock

from ._verify_helpers import (
    AUDIENCE,
    AZP,
    CLAIMS,
    DROP,
    EXPIRED,
    IAT_FUTURE,
    IN,
    INVALID,
    ISS,
    ISSUER,
    JWKS_URL,
    KID,
    NOT_ACTIVE,
    NOW,
    OK,
    OVERFLOW_INT,
    PARTIES,
    PENDING,
    SIGNATURE,
    SKEW,
    TOO_OLD,
    TYPE,
    USER,
    V2,
    YEAR,
    Harness,
    Keys,
    Row,
    assert_outcome,
    check,
    claims,
    forge,
    header,
    row,
    rs,
    static_verifier,
    valid,
    var,
)

pytestmark = pytest.mark.anyio


# -- exp, nbf and iat: JSON numbers, the injected clock, the configured skew ----------------------


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
async def test_expiry_boundaries(jwks: Harness, keys: Keys, case: Row) -> None:
    """exp <= now - skew is token-expired; any instant later is accepted."""
    await check(jwks, keys, case)


async def test_expired_token_costs_no_refetch(jwks: Harness, keys: Keys) -> None:
    """On a warm cache an expired token is refused without another fetch, whatever its kid.

    A cached kid gives token-expired; an unknown one earns no refetch: jwk-kid-mismatch.
    """
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
async def test_zero_skew_is_honoured(jwks: Harness, keys: Keys, case: Row) -> None:
    """clock_skew=0 means no tolerance at all (never the default 5 s)."""
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
async def test_nbf_and_iat_in_the_future(jwks: Harness, keys: Keys, case: Row) -> None:
    """nbf or iat later than now + skew is refused; exactly now + skew is accepted.

    nbf: token-not-active-yet; iat: token-iat-in-the-future.
    """
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
async def test_missing_or_mistyped_time_claims(jwks: Harness, keys: Keys, case: Row) -> None:
    """exp is required and time claims must be JSON numbers (floats are fine).

    Anything else is token-verification-failed.
    """
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
async def test_long_lifetimes_and_max_token_age(jwks: Harness, keys: Keys, case: Row) -> None:
    """Long-lived tokens are accepted by default; max_token_age bounds the time since iat.

    With max_token_age, tokens issued longer ago than it allows, or without iat, are
    token-too-old.
    """
    await check(jwks, keys, case)


async def test_max_token_age_applies_as_time_passes(keys: Keys, clock: FakeClock) -> None:
    """A ten-year token under max_token_age=3600 works for exactly an hour after iat."""
    verifier = static_verifier(keys, clock, max_token_age=3600)
    token = valid(keys, exp=NOW + 10 * YEAR)
    assert_outcome(await verifier.authenticate(token), OK)
    clock.advance(3600)
    assert_outcome(await verifier.authenticate(token), OK)
    clock.advance(0.5)
    assert_outcome(await verifier.authenticate(token), TOO_OLD)


@pytest.mark.parametrize(
    ("offset", "expected"),
    [
        pytest.param(-600, NOT_ACTIVE, id="clock-10-min-behind"),
        pytest.param(+600, EXPIRED, id="clock-10-min-ahead"),
        pytest.param(0, OK, id="clock-on-time"),
    ],
)
async def test_the_injected_clock_is_the_only_time_source(
    keys: Keys, clock: FakeClock, offset: int, expected: str
) -> None:
    """The injected clock is the only time source and the skew the only tolerance."""
    verifier = static_verifier(keys, clock)
    clock.advance(offset)
    assert_outcome(await verifier.authenticate(valid(keys)), expected)


# -- sub, and claims only after the signature -----------------------------------------------------


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
async def test_sub_must_be_printable_ascii(jwks: Harness, keys: Keys, case: Row) -> None:
    """sub must be 1-256 printable ASCII characters, else token-verification-failed."""
    await check(jwks, keys, case)


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
async def test_claims_are_checked_only_after_the_signature(
    jwks: Harness, keys: Keys, case: Row
) -> None:
    """A forged token with bad claims gets exactly the answer of any forged token."""
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
async def test_unknown_kid_answer_does_not_depend_on_claims(
    jwks: Harness, keys: Keys, changes: dict[str, Any], fetches: int
) -> None:
    """A forged unknown-kid token is jwk-kid-mismatch whatever its claims.

    The cheap pre-checks (exp, iss) only decide whether it earns a refetch, never the answer.
    """
    verifier = jwks.verifier()
    assert_outcome(await verifier.authenticate(valid(keys)), OK)
    token = rs(keys.kx, header(kid="kx"), claims(**changes))
    assert_outcome(await verifier.authenticate(token), KID)
    assert jwks.fetches == fetches


# -- Session status and roles ---------------------------------------------------------------------


async def test_pending_session_is_signed_out(jwks: Harness, keys: Keys) -> None:
    """sts "pending" is signed out (session-pending) by default; "active" is signed in.

    With treat_pending_as_signed_out=False a pending session is signed in.
    """
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
async def test_only_the_exact_role_string_grants_the_role(
    keys: Keys, clock: FakeClock, changes: dict[str, Any], is_admin: bool
) -> None:
    """Only the exact role string grants org:admin; other shapes are signed in without it.

    An impersonated (act) admin session keeps the role, as with Clerk's has().
    """
    auth = await static_verifier(keys, clock).authenticate(valid(keys, **changes))
    assert_outcome(auth, OK)
    assert auth.has(role="org:admin") is is_admin
    if "act" in changes:
        assert auth.actor == {"sub": "user_support"}


# -- iss, azp and aud -----------------------------------------------------------------------------


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
async def test_issuer_must_match_exactly(jwks: Harness, keys: Keys, case: Row) -> None:
    """A configured issuer must equal iss exactly, else token-invalid-issuer."""
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
async def test_issuer_never_picks_what_is_fetched(jwks: Harness, keys: Keys, iss: Any) -> None:
    """iss never selects what is fetched: only JWKS_URL is, whatever issuer a token names.

    An unknown kid with a foreign iss earns no refetch either.
    """
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
async def test_azp_must_be_an_authorized_party(jwks: Harness, keys: Keys, case: Row) -> None:
    """With authorized parties configured, azp must equal one exactly.

    Anything else is token-invalid-authorized-parties; unconfigured, azp is not checked.
    """
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
async def test_audience_must_intersect_aud(jwks: Harness, keys: Keys, case: Row) -> None:
    """A configured audience must intersect aud (a string or a list of strings).

    Anything else is token-invalid-audience; unconfigured, aud is ignored.
    """
    await check(jwks, keys, case)


async def test_token_from_another_instance_costs_no_refetch(jwks: Harness, keys: Keys) -> None:
    """A dev instance's token (its own kid and iss) is refused without a refetch."""
    verifier = jwks.verifier()
    assert_outcome(await verifier.authenticate(valid(keys)), OK)
    dev = rs(keys.kx, header(kid="ins_dev"), claims(iss="https://x.clerk.accounts.dev"))
    assert_outcome(await verifier.authenticate(dev), KID)
    assert jwks.fetches == 1
