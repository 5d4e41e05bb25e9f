"""``Auth``: immutability, claims decoding (v1 and v2) and Clerk's ``has()`` semantics.

Semantics: ``@clerk/shared``'s ``jwtPayloadParser.ts`` (claims, permission decoding) and
``authorization.ts`` (``has()``), as described in docs/auth.md.
The claims here are the verified payloads ``ClerkMiddleware`` hands to ``Auth.from_claims``;
the round trip through real signed tokens is in test_testing.py.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import pytest

from clerk_asgi import Auth

BASE: dict[str, Any] = {
    "sub": "user_1",
    "sid": "sess_1",
    "iss": "https://clerk.example.com",
    "iat": 1_800_000_000,
    "exp": 1_800_000_060,
}


def v1(**claims: Any) -> dict[str, Any]:
    """A v1 payload (no ``v``): org claims as ``org_id``/``org_role``/... ."""
    return {**BASE, **claims}


def v2(**claims: Any) -> dict[str, Any]:
    """A v2 payload (``v: 2``): org claims in the compact ``o`` object."""
    return {**BASE, "v": 2, **claims}


V1_ADMIN = v1(
    org_id="org_1",
    org_slug="acme",
    org_role="org:admin",
    org_permissions=["org:invoices:read", "org:invoices:manage"],
)
# The docs' worked example: fea=o:dashboard,o:teams per=manage,read fpm=3,2.
V2_WORKED = v2(
    o={"id": "org_1", "slg": "acme", "rol": "admin", "per": "manage,read", "fpm": "3,2"},
    fea="o:dashboard,o:teams",
)
NO_ORG = v1()


# --------------------------------------------------------------------------------------------
# Immutability
# --------------------------------------------------------------------------------------------


def test_fields_cannot_be_assigned() -> None:
    """Auth is a frozen dataclass: assigning any field raises FrozenInstanceError."""
    auth = Auth.from_claims(V1_ADMIN)
    with pytest.raises(dataclasses.FrozenInstanceError):
        auth.user_id = "user_admin"  # type: ignore[misc]
    with pytest.raises(dataclasses.FrozenInstanceError):
        auth.org_role = "org:admin"  # type: ignore[misc]


def test_claims_mapping_is_read_only() -> None:
    """``claims`` refuses item assignment and deletion."""
    auth = Auth.from_claims(V1_ADMIN)
    with pytest.raises(TypeError):
        auth.claims["sub"] = "user_admin"  # type: ignore[index]
    with pytest.raises(TypeError):
        del auth.claims["sub"]  # type: ignore[attr-defined]


def test_claims_are_copied_from_the_source_mapping() -> None:
    """Mutating the dict an Auth was built from afterwards does not change the Auth."""
    source = v1(org_id="org_1", org_role="org:member")
    auth = Auth.from_claims(source)
    source["org_role"] = "org:admin"
    source["sub"] = "user_admin"
    assert auth.claims["org_role"] == "org:member"
    assert auth.claims["sub"] == "user_1"


def test_org_permissions_is_a_tuple() -> None:
    """``org_permissions`` is a tuple, so it cannot be appended to."""
    assert Auth.from_claims(V1_ADMIN).org_permissions == (
        "org:invoices:read",
        "org:invoices:manage",
    )


def test_actor_is_read_only() -> None:
    """The impersonation ``act`` claim is exposed as a read-only mapping."""
    auth = Auth.from_claims(v1(act={"sub": "user_support", "iss": "https://dashboard.clerk.com"}))
    assert auth.actor == {"sub": "user_support", "iss": "https://dashboard.clerk.com"}
    with pytest.raises(TypeError):
        auth.actor["sub"] = "user_admin"  # type: ignore[index]


def test_nested_claim_values_cannot_be_mutated() -> None:
    """Nested claim values are read-only too: has() cannot be changed through ``claims``."""
    auth = Auth.from_claims(v1(fva=[600, 600]))
    with pytest.raises(TypeError):
        auth.claims["fva"][1] = 0
    assert auth.has(reverification="strict") is False


def test_repr_does_not_leak_the_token_or_claims() -> None:
    """repr(Auth) shows the identity but never the raw token or the claims."""
    auth = Auth.from_claims(v1(email="secret@example.com"), token="eyJ.secret-token.sig")
    text = repr(auth)
    assert "user_1" in text
    assert "secret-token" not in text
    assert "secret@example.com" not in text


# --------------------------------------------------------------------------------------------
# from_claims: identity, timestamps, actor
# --------------------------------------------------------------------------------------------


def test_signed_in_fields_come_from_the_claims() -> None:
    """sub, sid, sts and the token become user_id, session_id, session_status and token."""
    auth = Auth.from_claims(v1(sts="active"), token="tok")
    assert auth.is_signed_in is True
    assert auth.user_id == "user_1"
    assert auth.session_id == "sess_1"
    assert auth.session_status == "active"
    assert auth.token == "tok"
    assert auth.reason is None
    assert auth.claims["iss"] == "https://clerk.example.com"


def test_signed_out_auth_has_only_a_reason() -> None:
    """Auth.signed_out carries the reason (and pending status), every identity field None."""
    auth = Auth.signed_out("session-pending", session_status="pending")
    assert auth.is_signed_in is False
    assert auth.reason == "session-pending"
    assert auth.session_status == "pending"
    assert (auth.user_id, auth.session_id, auth.org_id, auth.org_role, auth.org_slug) == (
        None,
        None,
        None,
        None,
        None,
    )
    assert auth.org_permissions == ()
    assert auth.actor is None
    assert dict(auth.claims) == {}
    assert auth.token is None
    assert auth.expires_at is None
    assert auth.issued_at is None
    assert auth.factor_verification_age is None


def test_expires_at_and_issued_at_expose_exp_and_iat() -> None:
    """expires_at/issued_at are the token's exp/iat in Unix seconds."""
    auth = Auth.from_claims(v1())
    assert auth.expires_at == 1_800_000_060
    assert auth.issued_at == 1_800_000_000


@pytest.mark.parametrize("value", [None, "1800000060", True, [1]])
def test_timestamps_that_are_not_numbers_read_as_none(value: Any) -> None:
    """A missing or non-numeric exp/iat (booleans included) reads as None."""
    claims = v1(exp=value, iat=value)
    assert Auth.from_claims(claims).expires_at is None
    assert Auth.from_claims(claims).issued_at is None


@pytest.mark.parametrize(
    ("fva", "expected"),
    [
        ([5, -1], (5, -1)),
        ([0, 12], (0, 12)),
        ([-1, -1], (-1, -1)),
        (None, None),
        ([5], None),
        ([5, 5, 5], None),
        ([True, 0], None),
        ([1.5, 0], None),
        ("5,5", None),
        ({"0": 5, "1": 5}, None),
    ],
)
def test_factor_verification_age_exposes_fva(fva: Any, expected: tuple[int, int] | None) -> None:
    """factor_verification_age is fva as (first, second) minutes, None when missing or malformed."""
    claims = v1() if fva is None else v1(fva=fva)
    assert Auth.from_claims(claims).factor_verification_age == expected


def test_actor_from_the_act_claim() -> None:
    """An impersonation ``act`` claim is exposed as ``actor``; no act -> None."""
    act = {"sub": "user_support", "iss": "https://dashboard.clerk.com", "sid": "sess_9"}
    assert Auth.from_claims(v1(act=act)).actor == act
    assert Auth.from_claims(v1()).actor is None


@pytest.mark.parametrize("act", ["user_support", ["user_support"], 1])
def test_actor_that_is_not_an_object_is_ignored(act: Any) -> None:
    """An ``act`` claim that is not a JSON object gives ``actor=None``."""
    assert Auth.from_claims(v1(act=act)).actor is None


# --------------------------------------------------------------------------------------------
# from_claims: v1 org claims
# --------------------------------------------------------------------------------------------


def test_v1_org_claims() -> None:
    """v1 tokens carry org_id/org_slug/org_role/org_permissions as they are."""
    auth = Auth.from_claims(V1_ADMIN)
    assert auth.org_id == "org_1"
    assert auth.org_slug == "acme"
    assert auth.org_role == "org:admin"
    assert auth.org_permissions == ("org:invoices:read", "org:invoices:manage")


def test_v1_non_string_org_claims_are_dropped() -> None:
    """Non-string org_id/org_role and non-string permission entries are ignored."""
    auth = Auth.from_claims(
        v1(org_id=1, org_slug=["acme"], org_role=None, org_permissions=["org:a:read", 7, None])
    )
    assert (auth.org_id, auth.org_slug, auth.org_role) == (None, None, None)
    assert auth.org_permissions == ("org:a:read",)


def test_v1_org_permissions_that_are_not_a_list_grant_nothing() -> None:
    """A string org_permissions claim is not split into permissions."""
    auth = Auth.from_claims(v1(org_id="org_1", org_permissions="org:invoices:read"))
    assert auth.org_permissions == ()


@pytest.mark.parametrize("version", [1, 3, "2", None])
def test_only_v2_reads_the_o_claim(version: Any) -> None:
    """Any ``v`` other than 2 uses the v1 fields and ignores ``o``."""
    claims = v1(v=version, o={"id": "org_o", "rol": "admin"}, org_id="org_1", org_role="org:member")
    auth = Auth.from_claims(claims)
    assert auth.org_id == "org_1"
    assert auth.org_role == "org:member"


# --------------------------------------------------------------------------------------------
# from_claims: v2 org claims and permission decoding
# --------------------------------------------------------------------------------------------


def test_v2_org_claims() -> None:
    """v2 ``o.id``/``o.slg``/``o.rol`` become org_id/org_slug and ``"org:" + rol``."""
    auth = Auth.from_claims(V2_WORKED)
    assert auth.org_id == "org_1"
    assert auth.org_slug == "acme"
    assert auth.org_role == "org:admin"


def test_v2_ignores_the_v1_org_fields() -> None:
    """A v2 token's top-level org_id/org_role are not read."""
    auth = Auth.from_claims(v2(org_id="org_x", org_role="org:admin"))
    assert (auth.org_id, auth.org_role, auth.org_permissions) == (None, None, ())


@pytest.mark.parametrize("org", [None, "org_1", ["org_1"]])
def test_v2_without_an_org_object_has_no_org(org: Any) -> None:
    """A v2 token whose ``o`` is missing or not an object has no active org."""
    claims = v2() if org is None else v2(o=org)
    auth = Auth.from_claims(claims)
    assert (auth.org_id, auth.org_slug, auth.org_role, auth.org_permissions) == (
        None,
        None,
        None,
        (),
    )


def test_v2_worked_example_from_the_docs() -> None:
    """fea=o:dashboard,o:teams per=manage,read fpm=3,2 -> dashboard:manage/read, teams:read."""
    assert Auth.from_claims(V2_WORKED).org_permissions == (
        "org:dashboard:manage",
        "org:dashboard:read",
        "org:teams:read",
    )


@pytest.mark.parametrize(
    ("fea", "per", "fpm", "expected"),
    [
        # ---- alignment: masks pair with org-scoped features only (Clerk JS) ----
        pytest.param(
            "u:export,o:dashboard,o:teams",
            "manage,read",
            "3,2",
            ("org:dashboard:manage", "org:dashboard:read", "org:teams:read"),
            id="user-feature-first-is-skipped",
        ),
        pytest.param(
            "o:dashboard,u:export,o:teams",
            "manage,read",
            "3,2",
            ("org:dashboard:manage", "org:dashboard:read", "org:teams:read"),
            id="user-feature-between-is-skipped",
        ),
        pytest.param(
            "ou:dashboard,uo:teams",
            "manage,read",
            "3,2",
            ("org:dashboard:manage", "org:dashboard:read", "org:teams:read"),
            id="ou-and-uo-are-org-scoped",
        ),
        pytest.param(
            "o:dashboard, o:teams",
            " manage , read",
            "3, 2",
            ("org:dashboard:manage", "org:dashboard:read", "org:teams:read"),
            id="entries-are-trimmed",
        ),
        pytest.param("o:dashboard", "read", "7", ("org:dashboard:read",), id="bits-beyond-per"),
        pytest.param("o:dashboard", "read", "0", (), id="zero-mask"),
        pytest.param("o:dashboard", "read", "1,1", ("org:dashboard:read",), id="extra-masks"),
        pytest.param("o:dashboard,o:teams", "read", "1", ("org:dashboard:read",), id="few-masks"),
        pytest.param("u:export", "read", "1", (), id="no-org-features"),
        pytest.param(None, "read", "1", (), id="no-fea"),
        # ---- masks that are not plain decimal integers fail closed, for that feature ----
        pytest.param("o:dashboard,o:teams", "manage,read", "-1,2", ("org:teams:read",), id="neg"),
        pytest.param("o:dashboard,o:teams", "manage,read", "1.5,2", ("org:teams:read",), id="1.5"),
        pytest.param("o:dashboard,o:teams", "manage,read", ",2", ("org:teams:read",), id="empty"),
        pytest.param("o:dashboard,o:teams", "manage,read", "abc,2", ("org:teams:read",), id="abc"),
        pytest.param("o:dashboard,o:teams", "manage,read", "0x3,2", ("org:teams:read",), id="hex"),
        pytest.param("o:dashboard,o:teams", "manage,read", "+3,2", ("org:teams:read",), id="plus"),
        pytest.param("o:dashboard,o:teams", "manage,read", "\u00b3,2", ("org:teams:read",), id="³"),
        pytest.param(
            "o:dashboard,o:teams",
            "manage,read",
            "1" * 5000 + ",2",
            ("org:teams:read",),
            id="5000-digits",
        ),
    ],
)
def test_v2_permission_decoding(
    fea: str | None, per: str, fpm: str, expected: tuple[str, ...]
) -> None:
    """o.per + o.fpm decode against the org-scoped features of fea; bad masks grant nothing."""
    claims = v2(o={"id": "org_1", "rol": "admin", "per": per, "fpm": fpm})
    if fea is not None:
        claims["fea"] = fea
    assert Auth.from_claims(claims).org_permissions == expected


@pytest.mark.parametrize(
    "org",
    [
        {"id": "org_1", "rol": "admin", "fpm": "3,2"},
        {"id": "org_1", "rol": "admin", "per": "manage,read"},
        {"id": "org_1", "rol": "admin", "per": "", "fpm": "3,2"},
        {"id": "org_1", "rol": "admin", "per": "manage,read", "fpm": ""},
        {"id": "org_1", "rol": "admin", "per": ["manage", "read"], "fpm": "3,2"},
        {"id": "org_1", "rol": "admin", "per": "manage,read", "fpm": [3, 2]},
    ],
    ids=["no-per", "no-fpm", "empty-per", "empty-fpm", "per-list", "fpm-list"],
)
def test_v2_missing_per_or_fpm_grants_no_permissions(org: dict[str, Any]) -> None:
    """Without usable o.per and o.fpm strings the org has no permissions."""
    auth = Auth.from_claims(v2(o=org, fea="o:dashboard,o:teams"))
    assert auth.org_id == "org_1"
    assert auth.org_permissions == ()


# --------------------------------------------------------------------------------------------
# has(): one table, every dimension and its failure modes (@clerk/shared authorization.ts)
# --------------------------------------------------------------------------------------------

V2_BILLING = v2(
    o={"id": "org_1", "rol": "member"},
    fea="o:dashboard,u:export,ou:reports",
    pla="o:team",
)
V1_USER_PLAN = v1(fea="u:export", pla="u:pro")


def fva(first: int, second: int) -> dict[str, Any]:
    return v1(fva=[first, second])


HAS_CASES = [
    # ---- role ----
    pytest.param(V1_ADMIN, {"role": "org:admin"}, True, id="role-prefixed"),
    pytest.param(V1_ADMIN, {"role": "admin"}, True, id="role-without-prefix"),
    pytest.param(V1_ADMIN, {"role": "org:org:admin"}, True, id="role-org-org-normalised"),
    pytest.param(V1_ADMIN, {"role": "org:member"}, False, id="role-other"),
    pytest.param(V1_ADMIN, {"role": "org:Admin"}, False, id="role-case-sensitive"),
    pytest.param(V1_ADMIN, {"role": "org:admin "}, False, id="role-exact-match"),
    pytest.param(V1_ADMIN, {"role": ""}, False, id="role-empty"),
    pytest.param(V2_WORKED, {"role": "org:admin"}, True, id="role-v2"),
    pytest.param(V2_WORKED, {"role": "admin"}, True, id="role-v2-without-prefix"),
    pytest.param(v1(org_id="org_1", org_role="admin"), {"role": "org:admin"}, True, id="role-old"),
    pytest.param(v1(org_role="org:admin"), {"role": "org:admin"}, False, id="role-no-org-id"),
    pytest.param(v1(org_id="org_1"), {"role": "org:admin"}, False, id="role-no-org-role"),
    pytest.param(NO_ORG, {"role": "org:admin"}, False, id="role-no-org"),
    pytest.param(V1_ADMIN, {"role": 1}, False, id="role-not-a-string"),
    pytest.param(V1_ADMIN, {"role": ["org:admin"]}, False, id="role-list"),
    # ---- permission ----
    pytest.param(V1_ADMIN, {"permission": "org:invoices:read"}, True, id="perm-prefixed"),
    pytest.param(V1_ADMIN, {"permission": "invoices:read"}, True, id="perm-without-prefix"),
    pytest.param(V1_ADMIN, {"permission": "org:org:invoices:read"}, True, id="perm-org-org"),
    pytest.param(V1_ADMIN, {"permission": "org:invoices:delete"}, False, id="perm-missing"),
    pytest.param(V1_ADMIN, {"permission": "org:Invoices:read"}, False, id="perm-case"),
    pytest.param(V1_ADMIN, {"permission": "org:invoices"}, False, id="perm-partial"),
    pytest.param(V1_ADMIN, {"permission": 1}, False, id="perm-not-a-string"),
    pytest.param(
        v1(org_permissions=["org:invoices:read"]),
        {"permission": "org:invoices:read"},
        False,
        id="perm-no-org-id",
    ),
    pytest.param(NO_ORG, {"permission": "org:invoices:read"}, False, id="perm-no-org"),
    pytest.param(V2_WORKED, {"permission": "org:dashboard:manage"}, True, id="perm-v2"),
    pytest.param(V2_WORKED, {"permission": "teams:read"}, True, id="perm-v2-without-prefix"),
    pytest.param(V2_WORKED, {"permission": "org:teams:manage"}, False, id="perm-v2-not-granted"),
    # ---- feature ----
    pytest.param(V2_BILLING, {"feature": "o:dashboard"}, True, id="fea-o"),
    pytest.param(V2_BILLING, {"feature": "org:dashboard"}, True, id="fea-org"),
    pytest.param(V2_BILLING, {"feature": "organization:dashboard"}, True, id="fea-organization"),
    pytest.param(V2_BILLING, {"feature": "dashboard"}, True, id="fea-unscoped-org"),
    pytest.param(V2_BILLING, {"feature": "u:dashboard"}, False, id="fea-u-on-org-entry"),
    pytest.param(V2_BILLING, {"feature": "user:dashboard"}, False, id="fea-user-on-org-entry"),
    pytest.param(V2_BILLING, {"feature": "u:export"}, True, id="fea-u"),
    pytest.param(V2_BILLING, {"feature": "user:export"}, True, id="fea-user"),
    pytest.param(V2_BILLING, {"feature": "export"}, True, id="fea-unscoped-user"),
    pytest.param(V2_BILLING, {"feature": "o:export"}, False, id="fea-o-on-user-entry"),
    pytest.param(V2_BILLING, {"feature": "o:reports"}, True, id="fea-ou-entry-as-org"),
    pytest.param(V2_BILLING, {"feature": "u:reports"}, True, id="fea-ou-entry-as-user"),
    pytest.param(V2_BILLING, {"feature": "o:missing"}, False, id="fea-absent"),
    pytest.param(V2_BILLING, {"feature": "team:dashboard"}, False, id="fea-unknown-scope"),
    pytest.param(V2_BILLING, {"feature": ""}, False, id="fea-empty"),
    pytest.param(V2_BILLING, {"feature": "o:"}, False, id="fea-empty-name"),
    pytest.param(V2_BILLING, {"feature": 1}, False, id="fea-not-a-string"),
    pytest.param(v1(), {"feature": "export"}, False, id="fea-claim-missing"),
    pytest.param(v1(fea=""), {"feature": "export"}, False, id="fea-claim-empty"),
    pytest.param(v1(fea=["u:export"]), {"feature": "export"}, False, id="fea-claim-list"),
    pytest.param(v1(fea="export"), {"feature": "export"}, False, id="fea-entry-without-colon"),
    pytest.param(v1(fea="u:export,broken"), {"feature": "u:export"}, False, id="fea-one-bad-entry"),
    pytest.param(v1(fea="u:export, u:api"), {"feature": "u:api"}, True, id="fea-trimmed"),
    # ---- plan ----
    pytest.param(V1_USER_PLAN, {"plan": "u:pro"}, True, id="pla-u"),
    pytest.param(V1_USER_PLAN, {"plan": "user:pro"}, True, id="pla-user"),
    pytest.param(V1_USER_PLAN, {"plan": "pro"}, True, id="pla-unscoped"),
    pytest.param(V1_USER_PLAN, {"plan": "o:pro"}, False, id="pla-o-on-user-plan"),
    pytest.param(V1_USER_PLAN, {"plan": "u:free"}, False, id="pla-other"),
    pytest.param(V2_BILLING, {"plan": "org:team"}, True, id="pla-org"),
    pytest.param(V2_BILLING, {"plan": "organization:team"}, True, id="pla-organization"),
    pytest.param(V2_BILLING, {"plan": "team"}, True, id="pla-unscoped-org"),
    pytest.param(V2_BILLING, {"plan": "u:team"}, False, id="pla-u-on-org-plan"),
    pytest.param(V2_BILLING, {"plan": "plan:team"}, False, id="pla-unknown-scope"),
    pytest.param(V2_BILLING, {"plan": None, "feature": "o:team"}, False, id="pla-is-not-fea"),
    pytest.param(v1(), {"plan": "pro"}, False, id="pla-claim-missing"),
    pytest.param(v1(pla=""), {"plan": "pro"}, False, id="pla-claim-empty"),
    pytest.param(v1(pla="pro"), {"plan": "pro"}, False, id="pla-entry-without-colon"),
    pytest.param(V1_USER_PLAN, {"plan": 1}, False, id="pla-not-a-string"),
    # ---- reverification presets: fresh when after_minutes > age (strictly) ----
    pytest.param(fva(0, 9), {"reverification": "strict"}, True, id="strict-9"),
    pytest.param(fva(0, 10), {"reverification": "strict"}, False, id="strict-10-boundary"),
    pytest.param(fva(0, 11), {"reverification": "strict"}, False, id="strict-11"),
    pytest.param(fva(0, 59), {"reverification": "moderate"}, True, id="moderate-59"),
    pytest.param(fva(0, 60), {"reverification": "moderate"}, False, id="moderate-60"),
    pytest.param(fva(0, 1439), {"reverification": "lax"}, True, id="lax-1439"),
    pytest.param(fva(0, 1440), {"reverification": "lax"}, False, id="lax-1440"),
    pytest.param(fva(9, 9), {"reverification": "strict_mfa"}, True, id="strict_mfa-both"),
    pytest.param(fva(10, 5), {"reverification": "strict_mfa"}, False, id="strict_mfa-stale-1"),
    pytest.param(fva(5, 10), {"reverification": "strict_mfa"}, False, id="strict_mfa-stale-2"),
    # ---- second_factor falls back to whichever factor is enrolled ----
    pytest.param(fva(5, -1), {"reverification": "strict"}, True, id="second-fallback-to-1"),
    pytest.param(fva(15, -1), {"reverification": "strict"}, False, id="second-fallback-stale"),
    pytest.param(fva(-1, 5), {"reverification": "strict"}, True, id="second-only-2-enrolled"),
    pytest.param(fva(500, 5), {"reverification": "strict"}, True, id="second-ignores-1"),
    # ---- multi_factor: factor 2 -1 falls back to factor 1; factor 1 -1 fails ----
    pytest.param(fva(5, -1), {"reverification": "strict_mfa"}, True, id="multi-fallback-to-1"),
    pytest.param(fva(10, -1), {"reverification": "strict_mfa"}, False, id="multi-fallback-stale"),
    pytest.param(fva(-1, 5), {"reverification": "strict_mfa"}, False, id="multi-no-factor-1"),
    # ---- explicit {level, after_minutes} / {level, afterMinutes} ----
    pytest.param(
        fva(5, 500),
        {"reverification": {"level": "first_factor", "after_minutes": 10}},
        True,
        id="first-factor",
    ),
    pytest.param(
        fva(10, 0),
        {"reverification": {"level": "first_factor", "after_minutes": 10}},
        False,
        id="first-factor-boundary",
    ),
    pytest.param(
        fva(-1, 0),
        {"reverification": {"level": "first_factor", "after_minutes": 10}},
        False,
        id="first-factor-never",
    ),
    pytest.param(
        fva(0, 5),
        {"reverification": {"level": "second_factor", "afterMinutes": 10}},
        True,
        id="camel-case-after-minutes",
    ),
    pytest.param(
        fva(20, 25),
        {"reverification": {"level": "multi_factor", "after_minutes": 30}},
        True,
        id="multi-factor-dict",
    ),
    pytest.param(
        fva(20, 30),
        {"reverification": {"level": "multi_factor", "after_minutes": 30}},
        False,
        id="multi-factor-dict-boundary",
    ),
    pytest.param(
        fva(10, 10),
        {"reverification": {"level": "first_factor", "after_minutes": 10.5}},
        True,
        id="fractional-minutes",
    ),
    # ---- invalid reverification configuration fails closed ----
    pytest.param(fva(0, 0), {"reverification": "very_strict"}, False, id="unknown-preset"),
    pytest.param(fva(0, 0), {"reverification": "STRICT"}, False, id="preset-case"),
    pytest.param(fva(0, 0), {"reverification": ""}, False, id="empty-preset"),
    pytest.param(
        fva(0, 0),
        {"reverification": {"level": "third_factor", "after_minutes": 10}},
        False,
        id="unknown-level",
    ),
    pytest.param(fva(0, 0), {"reverification": {"level": "first_factor"}}, False, id="no-minutes"),
    pytest.param(fva(0, 0), {"reverification": {"after_minutes": 10}}, False, id="no-level"),
    pytest.param(
        fva(0, 0),
        {"reverification": {"level": "first_factor", "after_minutes": 0}},
        False,
        id="zero-minutes",
    ),
    pytest.param(
        fva(0, 0),
        {"reverification": {"level": "first_factor", "after_minutes": -5}},
        False,
        id="negative-minutes",
    ),
    pytest.param(
        fva(0, 0),
        {"reverification": {"level": "first_factor", "after_minutes": "10"}},
        False,
        id="string-minutes",
    ),
    pytest.param(
        fva(0, 0),
        {"reverification": {"level": "first_factor", "after_minutes": True}},
        False,
        id="bool-minutes",
    ),
    pytest.param(fva(0, 0), {"reverification": 10}, False, id="int-config"),
    pytest.param(fva(0, 0), {"reverification": ["strict"]}, False, id="list-config"),
    # ---- fva missing or malformed fails closed ----
    pytest.param(v1(), {"reverification": "lax"}, False, id="fva-missing"),
    pytest.param(fva(-1, -1), {"reverification": "lax"}, False, id="fva-never-verified"),
    pytest.param(
        fva(-1, -1),
        {"reverification": {"level": "first_factor", "after_minutes": 10}},
        False,
        id="fva-never-verified-first",
    ),
    pytest.param(v1(fva=[0]), {"reverification": "lax"}, False, id="fva-short"),
    pytest.param(v1(fva=[0, 0, 0]), {"reverification": "lax"}, False, id="fva-long"),
    pytest.param(v1(fva="0,0"), {"reverification": "lax"}, False, id="fva-string"),
    pytest.param(v1(fva=[0.5, 0]), {"reverification": "lax"}, False, id="fva-float"),
    pytest.param(v1(fva=[False, False]), {"reverification": "lax"}, False, id="fva-bool"),
    pytest.param(v1(fva=None), {"reverification": "lax"}, False, id="fva-null"),
    # ---- AND semantics: at least one pass and no fail ----
    pytest.param(
        V1_ADMIN, {"role": "org:admin", "permission": "org:x:y"}, False, id="and-role-ok-perm-no"
    ),
    pytest.param(
        V1_ADMIN,
        {"role": "org:member", "permission": "org:invoices:read"},
        False,
        id="and-role-no-perm-ok",
    ),
    pytest.param(
        V1_ADMIN,
        {"role": "org:admin", "permission": "org:invoices:read"},
        True,
        id="and-role-ok-perm-ok",
    ),
    pytest.param(V1_ADMIN, {"role": "org:admin", "reverification": "lax"}, False, id="and-no-fva"),
    pytest.param(V1_ADMIN, {"role": "org:admin", "feature": "export"}, False, id="and-no-feature"),
    pytest.param(
        v2(
            o={"id": "org_1", "rol": "admin", "per": "read", "fpm": "1"},
            fea="o:reports",
            pla="o:team",
            fva=[3, 3],
        ),
        {
            "role": "admin",
            "permission": "org:reports:read",
            "feature": "o:reports",
            "plan": "o:team",
            "reverification": "strict_mfa",
        },
        True,
        id="and-everything-passes",
    ),
    pytest.param(V1_ADMIN, {}, False, id="nothing-asked"),
    pytest.param(
        V1_ADMIN,
        {"role": None, "permission": None, "feature": None, "plan": None, "reverification": None},
        False,
        id="everything-none",
    ),
]


@pytest.mark.parametrize(("claims", "kwargs", "expected"), HAS_CASES)
def test_has(claims: dict[str, Any], kwargs: dict[str, Any], expected: bool) -> None:
    """has() follows Clerk's authorization.ts: every condition asked must pass, else False."""
    assert Auth.from_claims(claims).has(**kwargs) is expected


@pytest.mark.parametrize(
    "kwargs",
    [
        {},
        {"role": "org:admin"},
        {"permission": "org:invoices:read"},
        {"feature": "export"},
        {"plan": "pro"},
        {"reverification": "lax"},
    ],
)
def test_has_is_false_when_signed_out(kwargs: dict[str, Any]) -> None:
    """A signed-out Auth answers False to every has() question."""
    assert Auth.signed_out("session-token-missing").has(**kwargs) is False


def test_has_is_false_for_a_hand_built_auth_without_user() -> None:
    """An Auth with org data but no user_id is signed out: has() is False."""
    auth = Auth(org_id="org_1", org_role="org:admin", org_permissions=("org:a:b",))
    assert auth.has(role="org:admin") is False
    assert auth.has(permission="org:a:b") is False


def test_has_arguments_are_keyword_only() -> None:
    """has("org:admin") is a TypeError: a positional string cannot be mistaken for a role."""
    with pytest.raises(TypeError):
        Auth.from_claims(V1_ADMIN).has("org:admin")  # type: ignore[call-arg]


def test_read_only_claims_still_equal_the_json_they_came_from() -> None:
    """Frozen claims compare equal to the plain payload, arrays to lists and to tuples alike."""
    payload = {
        "sub": "user_1",
        "sid": "sess_1",
        "fva": [5, -1],
        "org_id": "org_1",
        "org_permissions": ["org:invoices:read"],
        "act": {"sub": "user_support", "roles": ["a", ["b"]]},
    }
    auth = Auth.from_claims(payload)
    assert auth.claims == payload
    assert auth.claims["fva"] == [5, -1]
    assert auth.claims["fva"] == (5, -1)
    assert auth.claims["fva"] != [5, 0]
    assert (auth.claims["fva"] != [5, -1]) is False  # __ne__ agrees with __eq__
    assert auth.claims["fva"] != "5,-1"
    assert auth.org_permissions == ["org:invoices:read"]
    assert auth.org_permissions == ("org:invoices:read",)
    assert Auth.signed_out("session-token-missing").org_permissions == []
    with pytest.raises(AttributeError):
        auth.claims["fva"].append(1)  # type: ignore[attr-defined]
    assert hash(auth.claims["fva"]) == hash((5, -1))


def test_auth_is_hashable() -> None:
    """An immutable Auth can be hashed (claims and actor do not take part)."""
    auth = Auth.from_claims(V1_ADMIN)
    assert hash(auth) == hash(Auth.from_claims(V1_ADMIN))
    assert {auth: 1}[Auth.from_claims(V1_ADMIN)] == 1
