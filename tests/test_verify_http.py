"""Token verification through the middleware: the exact HTTP answer to each kind of refusal.

A refused token on an api route gets 401 JSON with its reason, a ``WWW-Authenticate`` challenge
naming it, ``Cache-Control: no-store`` and Clerk's debug headers (docs/responses.md), and the
handler never runs; a JWKS without a usable key is a 503 with ``Retry-After``. The tokens are
crafted with _verify_helpers.py.
"""

from __future__ import annotations

from typing import Any

import httpx
import pytest
from fastapi import Depends, FastAPI

from clerk_asgi import Auth, ClerkMiddleware, Rule, current_auth
from clerk_asgi.testing import FakeClock, JWKSTransport

from ._middleware_helpers import assert_401
from ._verify_helpers import (
    ALGORITHM,
    AZP,
    CLAIMS,
    DROP,
    EXPIRED,
    GARBAGE,
    INVALID,
    ISS,
    ISSUER,
    JWKS_URL,
    NOW,
    PARTIES,
    PENDING,
    SIGNATURE,
    SKEW,
    TOO_OLD,
    TYPE,
    UNAVAILABLE,
    USER,
    V2,
    Build,
    DocumentTransport,
    Keys,
    alg_none,
    claims,
    const,
    forge,
    forged,
    hdr,
    header,
    hs256,
    k1,
    odd,
    public_encodings,
    resign,
    seg,
    spare_bits_variant,
    valid,
    var,
)

pytestmark = pytest.mark.anyio


def api_app(**options: Any) -> FastAPI:
    """An app with GET /api/me behind ClerkMiddleware(rules=[Rule.api("/api/(.*)")])."""
    app = FastAPI()

    @app.get("/api/me")
    async def me(auth: Auth = Depends(current_auth)) -> dict[str, str | None]:
        return {"user_id": auth.user_id}

    app.add_middleware(ClerkMiddleware, rules=[Rule.api("/api/(.*)")], **options)
    return app


def static_app(k: Keys, clock: FakeClock, **options: Any) -> FastAPI:
    """``api_app`` trusting K1's PEM (networkless), expecting ISS and the authorized party AZP."""
    defaults = {"jwt_key": k.k1.public_pem, "issuer": ISS, "authorized_parties": [AZP]}
    return api_app(clock=clock, **{**defaults, **options})


async def get_me(app: FastAPI, token: str | None = None, **headers: str) -> httpx.Response:
    if token is not None:
        headers["authorization"] = f"Bearer {token}"
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app), base_url=AZP) as client:
        return await client.get("/api/me", headers=headers)


async def test_middleware_accepts_t_valid(keys: Keys, clock: FakeClock) -> None:
    """T_valid through the middleware reaches the handler, which sees its user."""
    response = await get_me(static_app(keys, clock), valid(keys))
    assert response.status_code == 200
    assert response.json() == {"user_id": USER}
    assert response.headers["x-user-id"] == USER


@pytest.mark.parametrize(
    ("build", "reason"),
    [
        pytest.param(const("a.b"), INVALID, id="two-parts"),
        pytest.param(k1(b"null"), INVALID, id="null-header"),
        pytest.param(odd(2, lambda s: s + "=="), INVALID, id="padding"),
        pytest.param(odd(2, spare_bits_variant), INVALID, id="spare-bits"),
        pytest.param(hdr(kid=123), INVALID, id="kid-int"),
        pytest.param(const("mt_2xKa9vB3cD4eF5gH6iJ7"), TYPE, id="machine-token"),
        pytest.param(alg_none("none", GARBAGE), ALGORITHM, id="alg-none"),
        pytest.param(
            lambda k: hs256(public_encodings(k.k1)["spki-pem"], header(alg="HS256"), claims()),
            ALGORITHM,
            id="hs256-public-key",
        ),
        pytest.param(resign(lambda k, sig: bytes(256)), SIGNATURE, id="zero-signature"),
        pytest.param(hdr(crit=["exp2"], exp2=1), INVALID, id="crit"),
        pytest.param(hdr(cat="cl_B7d4PD222AAA"), TYPE, id="jwt-template"),
        pytest.param(var(exp=NOW - SKEW), EXPIRED, id="expired"),
        pytest.param(var(exp=str(NOW + 60)), CLAIMS, id="exp-string"),
        pytest.param(var(sub="user_a\r\nx-admin: 1"), CLAIMS, id="sub-crlf"),
        pytest.param(forge(), SIGNATURE, id="forged"),
        pytest.param(var(sts="pending"), PENDING, id="pending"),
        pytest.param(var(iss=ISS + "/"), ISSUER, id="iss-slash"),
        pytest.param(var(azp=DROP), PARTIES, id="azp-absent"),
    ],
)
async def test_middleware_refuses_with_the_exact_401(
    keys: Keys, clock: FakeClock, build: Build, reason: str
) -> None:
    """A refused token on an API route gets exactly the middleware's 401 for its reason.

    401 JSON with the reason, WWW-Authenticate, no-store and Clerk's debug headers; the handler
    never runs.
    """
    assert_401(await get_me(static_app(keys, clock), build(keys)), reason, presented=True)


async def test_unsigned_token_with_a_list_category_is_a_plain_401(
    keys: Keys, clock: FakeClock
) -> None:
    """An unsigned token whose header cat is a list is a plain 401, not a server error."""
    token = f"{seg(header(cat=['cl_B7d4PD111AAA']))}.{seg(claims())}.{GARBAGE}"
    assert_401(await get_me(static_app(keys, clock), token), TYPE, presented=True)


async def test_oversized_header_and_cookie_are_a_plain_401(keys: Keys, clock: FakeClock) -> None:
    """An 8 MB Authorization header and a 5000-byte __session cookie: 401 token-invalid."""
    app = static_app(keys, clock)
    assert_401(await get_me(app, "a" * (8 * 1024 * 1024)), INVALID, presented=True)
    assert_401(await get_me(app, cookie="__session=" + "b" * 5000), INVALID, presented=True)


async def test_forged_tokens_all_get_the_same_response(keys: Keys, clock: FakeClock) -> None:
    """Forged tokens with bad claims get byte-for-byte the response of a plain forged token.

    Expired, wrong-iss, wrong-azp, no-sub or pending: no oracle on which claim failed.
    """
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


async def test_zero_skew_through_the_middleware(keys: Keys, clock: FakeClock) -> None:
    """ClerkMiddleware(clock_skew=0) refuses exp == now; the default 5 s accepts it."""
    token = valid(keys, exp=NOW)
    assert_401(await get_me(static_app(keys, clock, clock_skew=0), token), EXPIRED, presented=True)
    assert (await get_me(static_app(keys, clock), token)).status_code == 200


async def test_max_token_age_through_the_middleware(keys: Keys, clock: FakeClock) -> None:
    """max_token_age=60 refuses a token issued 61 s ago and accepts one issued 60 s ago.

    token-too-old; without max_token_age both are accepted.
    """
    old, edge = valid(keys, iat=NOW - 61), valid(keys, iat=NOW - 60)
    limited = static_app(keys, clock, max_token_age=60)
    assert_401(await get_me(limited, old), TOO_OLD, presented=True)
    assert (await get_me(limited, edge)).status_code == 200
    assert (await get_me(static_app(keys, clock), old)).status_code == 200


async def test_jwks_without_a_usable_key_answers_503(keys: Keys, clock: FakeClock) -> None:
    """A JWKS whose only key says alg RS512 holds no usable key: 503 with Retry-After.

    Keys unavailable, never signed in, after exactly one fetch.
    """
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
async def test_admin_route_admits_only_the_exact_role(
    keys: Keys, clock: FakeClock, role: Any, status: int
) -> None:
    """An admin API route admits only the exact role; other shapes get 403, not 401."""
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


async def test_colliding_kids_of_two_instances_stay_apart(keys: Keys, clock: FakeClock) -> None:
    """Two instances whose keys share kid "k1": each middleware accepts only its own tokens.

    No JWKS cache is shared between two middlewares.
    """
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
        assert_401(await get_me(app_a, token_b), SIGNATURE, presented=True)
        assert_401(await get_me(app_b, token_a), SIGNATURE, presented=True)
    assert len(transport_a.requests) == len(transport_b.requests) == 1
