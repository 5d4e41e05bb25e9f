"""``clerk_asgi.testing``: what users need to test their own apps without Clerk.

Every helper is checked twice: the shape of what it produces (Clerk's claims and JWKS shape),
and that the real middleware accepts it and hands the right Auth to the app.
"""

from __future__ import annotations

import base64
import json
from typing import Any

import httpx
import pytest
import respx
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding
from cryptography.hazmat.primitives.asymmetric.rsa import RSAPublicKey
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from clerk_asgi import ClerkMiddleware, Rule, get_auth
from clerk_asgi.testing import (
    FakeClock,
    JWKSTransport,
    KeyPair,
    MockClerk,
    jwks,
    jwks_handler,
    mint_session_token,
)

pytestmark = pytest.mark.anyio

ORIGIN = "https://app.example.com"
ISSUER = "https://clerk.example.com"
JWKS_URL = "https://clerk.example.com/.well-known/jwks.json"
# pk_test_ for clerk.example.com: its JWKS is JWKS_URL and its issuer ISSUER.
PUBLISHABLE_KEY = "pk_test_" + base64.b64encode(b"clerk.example.com$").decode().rstrip("=")


def b64url_decode(segment: str) -> bytes:
    return base64.urlsafe_b64decode(segment + "=" * (-len(segment) % 4))


def decode(token: str) -> tuple[dict[str, Any], dict[str, Any]]:
    """The (unverified) JOSE header and payload of a compact JWS."""
    header, payload, _ = token.split(".")
    return json.loads(b64url_decode(header)), json.loads(b64url_decode(payload))


def verifies(token: str, public_key: RSAPublicKey) -> bool:
    header, payload, signature = token.split(".")
    try:
        public_key.verify(
            b64url_decode(signature),
            f"{header}.{payload}".encode(),
            padding.PKCS1v15(),
            hashes.SHA256(),
        )
    except Exception:
        return False
    return True


async def whoami(request: Request) -> JSONResponse:
    """Echo the Auth, plus ``auth.has(**query)`` for the query parameters."""
    auth = get_auth(request)
    query = dict(request.query_params)
    return JSONResponse(
        {
            "user_id": auth.user_id,
            "session_id": auth.session_id,
            "org_id": auth.org_id,
            "org_slug": auth.org_slug,
            "org_role": auth.org_role,
            "org_permissions": list(auth.org_permissions),
            "session_status": auth.session_status,
            "actor": dict(auth.actor) if auth.actor is not None else None,
            "claims": dict(auth.claims),
            "has": auth.has(**query) if query else None,
        }
    )


def inner_app() -> Starlette:
    return Starlette(routes=[Route("/api/me", whoami)])


def middleware(**options: Any) -> ClerkMiddleware:
    options.setdefault("rules", [Rule.api("/api/(.*)")])
    return ClerkMiddleware(inner_app(), **options)


async def get(
    app: Any,
    path: str = "/api/me",
    *,
    token: str | None = None,
    params: dict[str, str] | None = None,
) -> httpx.Response:
    headers = {"authorization": f"Bearer {token}"} if token is not None else {}
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app), base_url=ORIGIN) as client:
        return await client.get(path, headers=headers, params=params)


# --------------------------------------------------------------------------------------------
# KeyPair
# --------------------------------------------------------------------------------------------


async def test_key_pair_generate_defaults(key: KeyPair) -> None:
    """KeyPair.generate gives a 2048-bit RSA key with e=65537; the default kid is "ins_test"."""
    generated = KeyPair.generate()
    assert generated.kid == "ins_test"
    assert generated.private_key.key_size == 2048
    assert generated.private_key.public_key().public_numbers().e == 65537
    assert key.kid == "k1"


async def test_public_pem_is_the_public_key(key: KeyPair) -> None:
    """public_pem is a SubjectPublicKeyInfo PEM of the pair's public key."""
    pem = key.public_pem
    assert pem.startswith("-----BEGIN PUBLIC KEY-----\n")
    assert pem.rstrip().endswith("-----END PUBLIC KEY-----")
    loaded = serialization.load_pem_public_key(pem.encode())
    assert isinstance(loaded, RSAPublicKey)
    assert loaded.public_numbers() == key.private_key.public_key().public_numbers()


async def test_jwk_is_shaped_like_clerks(key: KeyPair) -> None:
    """jwk is an RS256 signature JWK with the kid and unpadded base64url n/e."""
    jwk = key.jwk
    assert set(jwk) == {"use", "kty", "kid", "alg", "n", "e"}
    assert (jwk["use"], jwk["kty"], jwk["kid"], jwk["alg"], jwk["e"]) == (
        "sig",
        "RSA",
        "k1",
        "RS256",
        "AQAB",
    )
    assert "=" not in jwk["n"]
    n = int.from_bytes(b64url_decode(jwk["n"]), "big")
    assert n == key.private_key.public_key().public_numbers().n


async def test_sign_uses_header_and_payload_exactly(key: KeyPair) -> None:
    """KeyPair.sign signs exactly the given header and payload with RS256, adding nothing."""
    token = key.sign({"alg": "RS256", "kid": "x"}, {"sub": "user_1"})
    assert decode(token) == ({"alg": "RS256", "kid": "x"}, {"sub": "user_1"})
    assert verifies(token, key.private_key.public_key())


async def test_jwks_document(key: KeyPair, second_key: KeyPair) -> None:
    """jwks(*keys) is {"keys": [jwk, ...]} in the order given."""
    assert jwks(key, second_key) == {"keys": [key.jwk, second_key.jwk]}
    assert jwks() == {"keys": []}


# --------------------------------------------------------------------------------------------
# mint_session_token: shape
# --------------------------------------------------------------------------------------------


async def test_default_token_shape(key: KeyPair) -> None:
    """The default token is a v2 session token with Clerk's header and default claims."""
    token = mint_session_token(key, issued_at=1_800_000_000.7)
    header, claims = decode(token)
    assert header == {"alg": "RS256", "kid": "k1", "typ": "JWT", "cat": "cl_B7d4PD111AAA"}
    assert claims.pop("jti").startswith("jti_")
    assert claims == {
        "sub": "user_test",
        "sid": "sess_test",
        "iss": ISSUER,
        "azp": ORIGIN,
        "iat": 1_800_000_000,
        "nbf": 1_799_999_990,
        "exp": 1_800_000_060,
        "sts": "active",
        "v": 2,
    }
    assert verifies(token, key.private_key.public_key())


async def test_v2_org_claims(key: KeyPair) -> None:
    """v2 writes the org as ``o`` with ``rol`` unprefixed and permissions as per/fpm/fea."""
    token = mint_session_token(
        key,
        org_id="org_1",
        org_slug="acme",
        org_role="org:admin",
        org_permissions=["org:invoices:read", "org:invoices:manage", "org:teams:read"],
    )
    _, claims = decode(token)
    assert claims["o"] == {
        "id": "org_1",
        "slg": "acme",
        "rol": "admin",
        "per": "read,manage",
        "fpm": "3,1",
    }
    assert claims["fea"] == "o:invoices,o:teams"
    assert "org_id" not in claims


async def test_v2_features_are_merged_after_the_permission_features(key: KeyPair) -> None:
    """Extra ``features`` follow the org features that carry the masks, without duplicates."""
    token = mint_session_token(
        key,
        org_id="org_1",
        org_permissions=["org:invoices:read"],
        features="u:export,o:invoices,o:reports",
    )
    _, claims = decode(token)
    assert claims["fea"] == "o:invoices,u:export,o:reports"
    assert claims["o"] == {"id": "org_1", "per": "read", "fpm": "1"}


async def test_v2_without_org(key: KeyPair) -> None:
    """Without org_id there is no ``o`` claim, but features and plan are still written."""
    _, claims = decode(mint_session_token(key, features="u:export", plan="u:pro"))
    assert "o" not in claims
    assert (claims["fea"], claims["pla"]) == ("u:export", "u:pro")


@pytest.mark.parametrize("permission", ["org:invoices", "invoices", "org:a:b:c"])
async def test_v2_permission_must_name_a_feature(key: KeyPair, permission: str) -> None:
    """v2 cannot encode a permission that is not org:<feature>:<permission>: ValueError."""
    with pytest.raises(ValueError, match="org:<feature>:<permission>"):
        mint_session_token(key, org_id="org_1", org_permissions=[permission])


async def test_v1_org_claims(key: KeyPair) -> None:
    """version=1 writes org_id/org_slug/org_role/org_permissions and no ``v``."""
    token = mint_session_token(
        key,
        version=1,
        org_id="org_1",
        org_slug="acme",
        org_role="org:admin",
        org_permissions=["org:anything:goes", "org:legacy"],
        features="u:export",
    )
    _, claims = decode(token)
    assert "v" not in claims
    assert "o" not in claims
    assert claims["org_id"] == "org_1"
    assert claims["org_slug"] == "acme"
    assert claims["org_role"] == "org:admin"
    assert claims["org_permissions"] == ["org:anything:goes", "org:legacy"]
    assert claims["fea"] == "u:export"


async def test_v1_without_org_has_no_org_permissions(key: KeyPair) -> None:
    """A v1 token without org_id carries no org_permissions claim."""
    _, claims = decode(mint_session_token(key, version=1))
    assert not {"org_id", "org_role", "org_slug", "org_permissions"} & set(claims)


async def test_optional_claims(key: KeyPair) -> None:
    """fva, plan, actor are written when given; issuer/azp/session_status None omit them."""
    _, claims = decode(
        mint_session_token(
            key,
            fva=(3, -1),
            plan="u:pro",
            actor={"sub": "user_support"},
            issuer=None,
            azp=None,
            session_status=None,
        )
    )
    assert claims["fva"] == [3, -1]
    assert claims["pla"] == "u:pro"
    assert claims["act"] == {"sub": "user_support"}
    assert not {"iss", "azp", "sts"} & set(claims)


async def test_custom_claims_are_merged_last_and_none_deletes(key: KeyPair) -> None:
    """``claims`` add or override payload members; a None value deletes one."""
    _, claims = decode(
        mint_session_token(
            key, claims={"email": "a@example.com", "sub": "user_custom", "nbf": None, "x": None}
        )
    )
    assert claims["email"] == "a@example.com"
    assert claims["sub"] == "user_custom"
    assert "nbf" not in claims
    assert "x" not in claims


async def test_header_overrides_and_none_deletes(key: KeyPair) -> None:
    """``headers`` override JOSE header members; a None value deletes one."""
    header, _ = decode(mint_session_token(key, headers={"kid": "other", "cat": None, "x5u": "u"}))
    assert header == {"alg": "RS256", "kid": "other", "typ": "JWT", "x5u": "u"}


async def test_expiry(key: KeyPair) -> None:
    """exp is issued_at + expires_in (whole seconds)."""
    _, claims = decode(mint_session_token(key, issued_at=1_800_000_000, expires_in=3600))
    assert claims["exp"] - claims["iat"] == 3600


# --------------------------------------------------------------------------------------------
# mint_session_token: through the real middleware
# --------------------------------------------------------------------------------------------


async def test_v2_permissions_round_trip(key: KeyPair, clock: FakeClock) -> None:
    """v2 org claims minted here come back as the same Auth org fields and has() answers."""
    permissions = ["org:invoices:read", "org:invoices:manage", "org:teams:read"]
    token = mint_session_token(
        key,
        user_id="user_1",
        org_id="org_1",
        org_slug="acme",
        org_role="org:admin",
        org_permissions=permissions,
        issued_at=clock.now,
    )
    app = middleware(jwt_key=key.public_pem, clock=clock)
    body = (await get(app, token=token)).json()
    assert (body["user_id"], body["org_id"], body["org_slug"], body["org_role"]) == (
        "user_1",
        "org_1",
        "acme",
        "org:admin",
    )
    assert sorted(body["org_permissions"]) == sorted(permissions)
    for permission in [*permissions, "teams:read"]:
        r = await get(app, token=token, params={"permission": permission})
        assert r.json()["has"] is True, permission
    for permission in ("org:teams:manage", "org:invoices:delete"):
        r = await get(app, token=token, params={"permission": permission})
        assert r.json()["has"] is False, permission
    r = await get(app, token=token, params={"role": "admin"})
    assert r.json()["has"] is True


async def test_v1_permissions_round_trip(key: KeyPair, clock: FakeClock) -> None:
    """v1 org claims come back unchanged, with has() checking them."""
    token = mint_session_token(
        key,
        version=1,
        org_id="org_1",
        org_role="org:member",
        org_permissions=["org:invoices:read"],
        issued_at=clock.now,
    )
    app = middleware(jwt_key=key.public_pem, clock=clock)
    body = (await get(app, token=token)).json()
    assert (body["org_id"], body["org_role"], body["org_permissions"]) == (
        "org_1",
        "org:member",
        ["org:invoices:read"],
    )
    r = await get(app, token=token, params={"permission": "invoices:read", "role": "member"})
    assert r.json()["has"] is True


async def test_features_plan_and_actor_round_trip(key: KeyPair, clock: FakeClock) -> None:
    """features, plan, fva and actor reach the app's Auth and has()."""
    token = mint_session_token(
        key,
        features="u:export",
        plan="u:pro",
        fva=(2, 2),
        actor={"sub": "user_support", "iss": "https://dashboard.clerk.com"},
        issued_at=clock.now,
    )
    app = middleware(jwt_key=key.public_pem, clock=clock)
    body = (await get(app, token=token)).json()
    assert body["actor"] == {"sub": "user_support", "iss": "https://dashboard.clerk.com"}
    assert body["session_status"] == "active"
    for params in ({"feature": "export"}, {"plan": "pro"}, {"reverification": "strict_mfa"}):
        assert (await get(app, token=token, params=params)).json()["has"] is True, params


async def test_custom_claims_reach_the_app(key: KeyPair, clock: FakeClock) -> None:
    """Custom claims are visible in Auth.claims."""
    token = mint_session_token(key, claims={"email": "a@example.com"}, issued_at=clock.now)
    app = middleware(jwt_key=key.public_pem, clock=clock)
    assert (await get(app, token=token)).json()["claims"]["email"] == "a@example.com"


@pytest.mark.parametrize(
    ("overrides", "reason"),
    [
        ({"expires_in": -10}, "token-expired"),
        ({"issued_at": 1_800_000_100}, "token-not-active-yet"),
        ({"session_status": "pending"}, "session-pending"),
        ({"azp": "https://evil.example.com"}, "token-invalid-authorized-parties"),
        ({"issuer": "https://clerk.evil.com"}, "token-invalid-issuer"),
        ({"claims": {"sid": None}}, "token-type-mismatch"),
        ({"headers": {"cat": "cl_B7d4PD222AAA"}}, "token-type-mismatch"),
        ({"headers": {"alg": "none"}}, "token-invalid-algorithm"),
    ],
    ids=["expired", "future", "pending", "azp", "iss", "no-sid", "template-cat", "alg"],
)
async def test_minted_variants_are_refused(
    clerk: MockClerk, clock: FakeClock, overrides: dict[str, Any], reason: str
) -> None:
    """The knobs let users mint the bad tokens their own tests need; the middleware refuses them."""
    overrides.setdefault("issued_at", clock.now)
    token = clerk.token(**overrides)
    app = middleware(**clerk.middleware_options(clock=clock))
    r = await get(app, token=token)
    assert r.status_code == 401
    assert r.headers["x-clerk-auth-reason"] == reason


async def test_a_token_signed_by_another_key_is_refused(
    clerk: MockClerk, attacker_key: KeyPair, clock: FakeClock
) -> None:
    """A token minted with a key the middleware does not trust fails its signature check."""
    token = mint_session_token(attacker_key, issued_at=clock.now)
    app = middleware(**clerk.middleware_options(clock=clock))
    r = await get(app, token=token)
    assert r.status_code == 401
    assert r.headers["x-clerk-auth-reason"] == "token-invalid-signature"


# --------------------------------------------------------------------------------------------
# Serving the JWKS: jwks_handler (respx, MockTransport) and JWKSTransport
# --------------------------------------------------------------------------------------------


async def test_jwks_handler_answers_with_the_jwks(key: KeyPair, second_key: KeyPair) -> None:
    """jwks_handler(*keys) answers any request with 200 and the JWKS document."""
    handler = jwks_handler(key, second_key)
    response = handler(httpx.Request("GET", JWKS_URL))
    assert response.status_code == 200
    assert response.json() == jwks(key, second_key)


async def test_jwks_handler_on_a_respx_route(key: KeyPair, clock: FakeClock) -> None:
    """Mounted on a respx route, jwks_handler serves the publishable key's JWKS to the app."""
    with respx.mock(assert_all_called=True) as router:
        route = router.get(JWKS_URL)
        route.mock(side_effect=jwks_handler(key))
        async with httpx.AsyncClient() as client:
            app = middleware(publishable_key=PUBLISHABLE_KEY, http_client=client, clock=clock)
            token = mint_session_token(key, user_id="user_respx", issued_at=clock.now)
            r = await get(app, token=token)
    assert r.status_code == 200
    assert r.json()["user_id"] == "user_respx"
    assert route.call_count == 1


async def test_jwks_handler_with_mock_transport(key: KeyPair, clock: FakeClock) -> None:
    """jwks_handler in an httpx.MockTransport serves an explicit jwks_url."""
    transport = httpx.MockTransport(jwks_handler(key))
    async with httpx.AsyncClient(transport=transport) as client:
        app = middleware(jwks_url=JWKS_URL, http_client=client, clock=clock)
        r = await get(app, token=mint_session_token(key, issued_at=clock.now))
    assert r.status_code == 200


async def test_jwks_transport_records_requests(key: KeyPair, clock: FakeClock) -> None:
    """JWKSTransport records each request; repeat tokens are served from the cache."""
    transport = JWKSTransport(key)
    async with httpx.AsyncClient(transport=transport) as client:
        app = middleware(jwks_url=JWKS_URL, http_client=client, clock=clock)
        for user in ("user_1", "user_2", "user_1"):
            token = mint_session_token(key, user_id=user, issued_at=clock.now)
            assert (await get(app, token=token)).status_code == 200
    assert len(transport.requests) == 1
    assert transport.requests[0].method == "GET"
    assert str(transport.requests[0].url) == JWKS_URL


async def test_jwks_transport_rotation(key: KeyPair, second_key: KeyPair, clock: FakeClock) -> None:
    """Replacing JWKSTransport.keys simulates a rotation: the new kid is fetched, the old goes."""
    transport = JWKSTransport(key)
    async with httpx.AsyncClient(transport=transport) as client:
        app = middleware(jwks_url=JWKS_URL, http_client=client, clock=clock)
        old = mint_session_token(key, issued_at=clock.now)
        assert (await get(app, token=old)).status_code == 200

        transport.keys = [second_key]
        new = mint_session_token(second_key, issued_at=clock.now)
        assert (await get(app, token=new)).status_code == 200
        assert len(transport.requests) == 2

        clock.advance(31)  # past the unknown-kid cooldown
        fresh_old = mint_session_token(key, user_id="user_again", issued_at=clock.now)
        r = await get(app, token=fresh_old)
    assert r.status_code == 401
    assert r.headers["x-clerk-auth-reason"] == "jwk-kid-mismatch"
    assert len(transport.requests) == 3


# --------------------------------------------------------------------------------------------
# MockClerk
# --------------------------------------------------------------------------------------------


async def test_mock_clerk_one_line_setup(clerk: MockClerk) -> None:
    """middleware_options + auth_headers/cookies give a working app with no other setup."""
    app = Starlette(routes=[Route("/api/me", whoami)])
    app.add_middleware(ClerkMiddleware, **clerk.middleware_options(rules=[Rule.api("/api/(.*)")]))
    transport = httpx.ASGITransport(app)
    async with httpx.AsyncClient(transport=transport, base_url=clerk.origin) as c:
        by_header = await c.get("/api/me", headers=clerk.auth_headers(user_id="user_h"))
        anonymous = await c.get("/api/me")
    cookies = clerk.cookies(user_id="user_c")
    async with httpx.AsyncClient(
        transport=transport, base_url=clerk.origin, cookies=cookies
    ) as browser:
        by_cookie = await browser.get("/api/me")
    assert (by_header.status_code, by_header.json()["user_id"]) == (200, "user_h")
    assert (by_cookie.status_code, by_cookie.json()["user_id"]) == (200, "user_c")
    assert anonymous.status_code == 401


async def test_mock_clerk_options(clerk: MockClerk) -> None:
    """middleware_options trusts the PEM key, the issuer and the origin; overrides win."""
    options = clerk.middleware_options(sign_in_url="/login", rules=[])
    assert options == {
        "jwt_key": clerk.key.public_pem,
        "issuer": "https://clerk.example.com",
        "authorized_parties": ["https://app.example.com"],
        "sign_in_url": "/login",
        "rules": [],
    }


async def test_mock_clerk_headers_and_cookies_shape(clerk: MockClerk) -> None:
    """auth_headers is a Bearer Authorization header; cookies is the __session cookie."""
    headers = clerk.auth_headers(user_id="user_1")
    assert list(headers) == ["Authorization"]
    scheme, _, token = headers["Authorization"].partition(" ")
    assert scheme == "Bearer"
    assert decode(token)[1]["sub"] == "user_1"
    cookies = clerk.cookies(user_id="user_2")
    assert list(cookies) == ["__session"]
    assert decode(cookies["__session"])[1]["sub"] == "user_2"


async def test_mock_clerk_tokens_use_its_issuer_and_origin(key: KeyPair) -> None:
    """A MockClerk with its own issuer/origin mints tokens only its own options accept."""
    acme = MockClerk(key=key, issuer="https://clerk.acme.dev", origin="https://acme.dev")
    _, claims = decode(acme.token())
    assert (claims["iss"], claims["azp"]) == ("https://clerk.acme.dev", "https://acme.dev")
    assert (await get(middleware(**acme.middleware_options()), token=acme.token())).is_success
    other = MockClerk(key=key)
    r = await get(middleware(**other.middleware_options()), token=acme.token())
    assert r.status_code == 401


async def test_mock_clerk_jwks_helpers(clerk: MockClerk, clock: FakeClock) -> None:
    """MockClerk.jwks/jwks_handler/transport serve its key on the JWKS path (jwt_key=None)."""
    assert clerk.jwks() == jwks(clerk.key)
    assert clerk.jwks_handler()(httpx.Request("GET", JWKS_URL)).json() == clerk.jwks()
    transport = clerk.transport()
    async with httpx.AsyncClient(transport=transport) as client:
        options = clerk.middleware_options(
            jwt_key=None, jwks_url=JWKS_URL, http_client=client, clock=clock
        )
        r = await get(middleware(**options), token=clerk.token(issued_at=clock.now))
    assert r.status_code == 200
    assert [str(request.url) for request in transport.requests] == [JWKS_URL]


async def test_mock_clerk_jwks_url_override_uses_the_jwks(
    clerk: MockClerk, clock: FakeClock
) -> None:
    """middleware_options(jwks_url=..., http_client=...) fetches the JWKS, as documented."""
    transport = clerk.transport()
    async with httpx.AsyncClient(transport=transport) as client:
        options = clerk.middleware_options(jwks_url=JWKS_URL, http_client=client, clock=clock)
        r = await get(middleware(**options), token=clerk.token(issued_at=clock.now))
    assert r.status_code == 200
    assert len(transport.requests) == 1
