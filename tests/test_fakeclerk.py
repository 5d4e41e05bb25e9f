"""FakeClerk, the instance itself: identity and keys, users and sessions, the tokens it signs
(checked by PyJWT and by ClerkMiddleware against its JWKS), the fake clock, and serving it."""

from __future__ import annotations

import re
import socket
from typing import Any

import anyio
import httpx
import jwt
import pytest
import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from clerk_asgi import ClerkMiddleware, ConfigurationError, Rule, get_auth
from clerk_asgi._config import parse_publishable_key
from clerk_asgi.testing import FakeClerk, FakeClock, KeyPair

from ._fakeclerk_helpers import FAPI, ORIGIN, bapi, browser, decode, verified
from .conftest import NOW

pytestmark = pytest.mark.anyio

CLERK_ID = re.compile(r"[A-Za-z0-9]{27}")


@pytest.fixture
def fake(key: KeyPair, clock: FakeClock) -> FakeClerk:
    return FakeClerk(key=key, clock=clock, origin=ORIGIN)


# --------------------------------------------------------------------------------------------
# Identity
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("instance", "prefix", "secret_prefix", "production"),
    [("development", "pk_test_", "sk_test_", False), ("production", "pk_live_", "sk_live_", True)],
)
async def test_identity_of_each_instance_type(
    key: KeyPair, instance: Any, prefix: str, secret_prefix: str, production: bool
) -> None:
    """The keys and URLs of an instance: a parseable publishable key, its secret, issuer, JWKS."""
    fake = FakeClerk(frontend_api="clerk.shop.test", instance=instance, key=key)
    parsed = parse_publishable_key(fake.publishable_key)
    assert fake.publishable_key.startswith(prefix)
    assert (parsed.frontend_api, parsed.is_production) == ("clerk.shop.test", production)
    assert re.fullmatch(secret_prefix + r"fakeclerk[0-9a-f]{32}", fake.secret_key)
    assert fake.issuer == "https://clerk.shop.test"
    assert fake.jwks_url == "https://clerk.shop.test/.well-known/jwks.json"
    assert fake.api_url == "https://clerk.shop.test"
    assert fake.frontend_api_url == "https://clerk.shop.test"
    assert fake.key is key


@pytest.mark.parametrize(
    ("instance", "publishable_key", "suffix"),
    [
        ("development", "pk_test_Y2xlcmsuY2xlcmsuZGV2JA", "QvfNY2dr"),
        ("production", "pk_live_Y2xlcmsuY2xlcmsuZGV2JA", "1Z8AzTQD"),
    ],
)
async def test_cookie_suffix_vectors(
    key: KeyPair, instance: Any, publishable_key: str, suffix: str
) -> None:
    """The cookie suffix is Clerk's: the first 8 url-safe base64 characters of sha1(pk)."""
    fake = FakeClerk(frontend_api="clerk.clerk.dev", instance=instance, key=key)
    assert fake.publishable_key == publishable_key
    assert fake.cookie_suffix == suffix


async def test_a_given_secret_key_is_kept(key: KeyPair) -> None:
    """secret_key= replaces the random one."""
    assert FakeClerk(key=key, secret_key="sk_test_mine").secret_key == "sk_test_mine"


async def test_the_default_key_is_a_fresh_rsa_key() -> None:
    """Without key=, a 2048-bit key is generated with the kid ins_fakeclerk."""
    fake = FakeClerk()
    assert fake.key.kid == "ins_fakeclerk"
    assert fake.key.private_key.key_size == 2048


async def test_proxy_frontend_api_url(key: KeyPair) -> None:
    """With proxy_path, browsers reach the Frontend API at <origin><proxy_path>."""
    assert FakeClerk(key=key, proxy_path="/__clerk/", origin=ORIGIN).frontend_api_url == (
        "https://app.example.test/__clerk"
    )
    assert FakeClerk(key=key, proxy_path="/__clerk").frontend_api_url == "/__clerk"


@pytest.mark.parametrize(
    ("options", "error"),
    [
        ({"instance": "staging"}, ValueError),
        ({"proxy_path": "__clerk"}, ValueError),
        ({"proxy_path": "/"}, ValueError),
        ({"frontend_api": "no-dot"}, ConfigurationError),
    ],
)
async def test_bad_constructor_arguments_are_refused(
    key: KeyPair, options: dict[str, Any], error: type[Exception]
) -> None:
    """An unknown instance type, a relative or root proxy path, a host without a dot raise."""
    with pytest.raises(error):
        FakeClerk(key=key, **options)


# --------------------------------------------------------------------------------------------
# Users, clients, sessions
# --------------------------------------------------------------------------------------------


async def test_add_user(fake: FakeClerk) -> None:
    """add_user returns a Clerk-looking id (or the given one) and finds users by id or email."""
    generated = fake.add_user()
    assert generated.startswith("user_")
    assert CLERK_ID.fullmatch(generated[5:])
    assert fake.add_user("user_ada", email="Ada@Example.test") == "user_ada"
    assert fake.find_user("ada@example.TEST") == fake.users["user_ada"]
    assert fake.find_user("user_ada") == fake.users["user_ada"]
    assert fake.find_user("nobody@example.test") is None
    assert fake.users["user_ada"].email == "Ada@Example.test"


@pytest.mark.parametrize(
    "options",
    [
        {"user_id": "user_ada"},
        {"email": "ADA@example.test"},
        {"org_id": "org_1", "org_permissions": ["org:read"]},
    ],
)
async def test_add_user_refuses(fake: FakeClerk, options: dict[str, Any]) -> None:
    """A taken id, a taken email (any case), a permission not org:<feature>:<perm> raise."""
    fake.add_user("user_ada", email="ada@example.test")
    with pytest.raises(ValueError, match=r"exists|belongs|permission"):
        fake.add_user(**options)


async def test_sign_in_creates_a_client_and_an_active_session(
    fake: FakeClerk, clock: FakeClock
) -> None:
    """sign_in makes a browser's client with one active session, visible in the views."""
    user_id = fake.add_user(org_id="org_1")
    client = fake.sign_in(user_id)
    session_id = client.session_id
    assert session_id.startswith("sess_")
    assert client.last_active_session_id == session_id
    assert client.session_ids == (session_id,)
    assert client.id.startswith("client_")
    assert fake.clients[client.id] == client
    assert (client.created_at, client.updated_at) == (NOW, NOW)
    assert client.dev_browser is not None
    assert client.dev_browser.startswith("dvb_")
    assert client.cookies == {"__client": client.token, "__clerk_db_jwt": client.dev_browser}
    session = fake.sessions[session_id]
    assert (session.client_id, session.user_id, session.status) == (client.id, user_id, "active")
    assert (session.created_at, session.last_active_at) == (NOW, NOW)
    assert (session.expire_at, session.abandon_at) == (NOW + 7 * 86_400, NOW + 30 * 86_400)
    assert session.last_active_organization_id == "org_1"


async def test_a_client_without_sessions_has_no_session_id(fake: FakeClerk) -> None:
    """session_id raises LookupError for a client that never had a session (a dev browser)."""
    async with browser(fake) as b:
        await b.post("/v1/dev_browser")
    [client] = fake.clients.values()
    with pytest.raises(LookupError, match="no session"):
        _ = client.session_id


async def test_production_browsers_have_no_dev_browser(key: KeyPair) -> None:
    """On a production instance a client is identified by its __client cookie only."""
    fake = FakeClerk(key=key, instance="production")
    client = fake.sign_in(fake.add_user())
    assert client.dev_browser is None
    assert client.cookies == {"__client": client.token}


async def test_sign_in_an_unknown_user_raises(fake: FakeClerk) -> None:
    """sign_in needs a user added first."""
    with pytest.raises(KeyError, match="add_user"):
        fake.sign_in("user_nobody")


async def test_views_are_read_only(fake: FakeClerk) -> None:
    """sessions, clients and users cannot be changed through the views."""
    client = fake.sign_in(fake.add_user())
    with pytest.raises(TypeError):
        fake.sessions[client.session_id] = fake.sessions[  # type: ignore[index]
            client.session_id
        ]
    with pytest.raises(TypeError):
        del fake.clients[client.id]  # type: ignore[attr-defined]


@pytest.mark.parametrize(("end", "status"), [("sign_out", "ended"), ("revoke", "revoked")])
async def test_sign_out_and_revoke(
    fake: FakeClerk, clock: FakeClock, end: str, status: str
) -> None:
    """sign_out ends a session, revoke revokes it; the client's updated_at moves, once."""
    client = fake.sign_in(fake.add_user())
    session_id = client.session_id
    clock.advance(30)
    getattr(fake, end)(session_id)
    assert (fake.sessions[session_id].status, fake.sessions[session_id].updated_at) == (
        status,
        NOW + 30,
    )
    assert fake.clients[client.id].updated_at == NOW + 30
    clock.advance(30)
    fake.revoke(session_id)  # no longer active: left as it is
    assert fake.sessions[session_id].status == status
    assert fake.clients[client.id].updated_at == NOW + 30


async def test_unknown_sessions_raise(fake: FakeClerk) -> None:
    """sign_out, revoke and session_token raise KeyError for an unknown session."""
    for call in (fake.sign_out, fake.revoke, fake.session_token):
        with pytest.raises(KeyError, match="sess_nope"):
            call("sess_nope")


async def test_a_session_expires_after_its_lifetime(key: KeyPair, clock: FakeClock) -> None:
    """An active session becomes expired once the clock reaches its expire_at."""
    fake = FakeClerk(key=key, clock=clock, session_lifetime=3600)
    session_id = fake.sign_in(fake.add_user()).session_id
    clock.advance(3599)
    assert fake.sessions[session_id].status == "active"
    clock.advance(1)
    assert fake.sessions[session_id].status == "expired"


# --------------------------------------------------------------------------------------------
# Tokens
# --------------------------------------------------------------------------------------------


async def test_session_token_is_clerk_shaped(fake: FakeClerk, key: KeyPair) -> None:
    """session_token: v2 claims with iss, sid, sub, azp, iat/nbf/exp, sts and the org."""
    user_id = fake.add_user(
        org_id="org_1", org_role="org:admin", org_permissions=["org:invoices:read"]
    )
    session_id = fake.sign_in(user_id).session_id
    token = fake.session_token(session_id)
    header, claims = decode(token)
    assert header == {"alg": "RS256", "kid": "k1", "typ": "JWT", "cat": "cl_B7d4PD111AAA"}
    assert re.fullmatch(r"[A-Za-z0-9]{20}", claims.pop("jti"))
    assert claims == {
        "sub": user_id,
        "sid": session_id,
        "iat": int(NOW),
        "nbf": int(NOW) - 10,
        "exp": int(NOW) + 60,
        "iss": "https://clerk.example.test",
        "azp": ORIGIN,
        "sts": "active",
        "v": 2,
        "o": {"id": "org_1", "rol": "admin", "per": "read", "fpm": "1"},
        "fea": "o:invoices",
    }
    assert verified(fake, token)["sid"] == session_id
    assert fake.session_token(session_id) != token  # a new jti each time


async def test_session_token_follows_the_fake_clock(key: KeyPair, clock: FakeClock) -> None:
    """iat/exp come from the fake clock; token_lifetime and expires_in set the lifetime."""
    fake = FakeClerk(key=key, clock=clock, token_lifetime=120)
    session_id = fake.sign_in(fake.add_user()).session_id
    clock.advance(1000)
    _, claims = decode(fake.session_token(session_id))
    assert (claims["iat"], claims["exp"]) == (int(NOW) + 1000, int(NOW) + 1120)
    assert "azp" not in claims
    _, claims = decode(fake.session_token(session_id, expires_in=30))
    assert claims["exp"] == int(NOW) + 1030
    assert fake.sessions[session_id].last_active_at == NOW + 1000


async def test_a_token_can_be_minted_for_an_ended_session(fake: FakeClerk) -> None:
    """session_token still signs for an ended session (a token issued before it ended)."""
    session_id = fake.sign_in(fake.add_user()).session_id
    fake.sign_out(session_id)
    assert decode(fake.session_token(session_id))[1]["sid"] == session_id


async def test_template_token(fake: FakeClerk) -> None:
    """A JWT template's token: its claims with shortcodes filled, no sid, its own lifetime."""
    user_id = fake.add_user(email="ada@example.test", org_id="org_1", org_role="org:admin")
    session_id = fake.sign_in(user_id).session_id
    fake.add_template(
        "hasura",
        {
            "email": "{{user.primary_email_address}}",
            "nested": {"ids": ["{{ user.id }}", "{{session.id}}", 7], "org": "{{org.id}}"},
            "role": "{{org.role}}",
            "unknown": "{{user.shoe_size}}",
            "literal": "x {{user.id}}",
            "sub": "overridden",
        },
        lifetime=300,
    )
    token = fake.session_token(session_id, template="hasura")
    header, claims = decode(token)
    assert header == {"alg": "RS256", "kid": "k1", "typ": "JWT", "cat": "cl_B7d4PD222AAA"}
    assert claims.pop("jti")
    assert claims == {
        "email": "ada@example.test",
        "nested": {"ids": [user_id, session_id, 7], "org": "org_1"},
        "role": "org:admin",
        "unknown": None,
        "literal": "x {{user.id}}",
        "sub": user_id,
        "iss": "https://clerk.example.test",
        "iat": int(NOW),
        "nbf": int(NOW) - 10,
        "exp": int(NOW) + 300,
        "azp": ORIGIN,
    }
    assert (
        decode(fake.session_token(session_id, template="hasura", expires_in=45))[1]["exp"]
        == int(NOW) + 45
    )
    with pytest.raises(KeyError, match="add_template"):
        fake.session_token(session_id, template="nope")


async def test_fapi_jwks_verifies_its_tokens_with_pyjwt(fake: FakeClerk) -> None:
    """The public JWKS (no authentication) verifies a session token with PyJWT."""
    session_id = fake.sign_in(fake.add_user()).session_id
    token = fake.session_token(session_id)
    async with browser(fake) as client:
        r = await client.get("/.well-known/jwks.json")
    assert r.status_code == 200
    assert r.json() == {"keys": [fake.key.jwk]}
    signing_key = jwt.PyJWKSet.from_dict(r.json())["k1"]
    claims = jwt.decode(
        token,
        signing_key.key,
        algorithms=["RS256"],
        issuer=fake.issuer,
        options={"verify_exp": False, "verify_iat": False, "verify_nbf": False},
    )
    assert claims["sid"] == session_id


async def whoami(request: Request) -> JSONResponse:
    auth = get_auth(request)
    return JSONResponse({"user_id": auth.user_id, "org_role": auth.org_role})


@pytest.mark.parametrize("source", ["secret_key", "jwks_url"])
async def test_middleware_verifies_its_tokens_against_its_jwks(
    key: KeyPair, clock: FakeClock, source: str
) -> None:
    """ClerkMiddleware trusts the fake's tokens, fetching its BAPI or FAPI JWKS; until exp."""
    fake = FakeClerk(key=key, clock=clock, origin=ORIGIN)
    user_id = fake.add_user(org_id="org_1", org_role="org:admin")
    session_id = fake.sign_in(user_id).session_id
    keys: dict[str, Any] = (
        {"secret_key": fake.secret_key, "api_url": fake.api_url}
        if source == "secret_key"
        else {"jwks_url": fake.jwks_url}
    )
    async with httpx.AsyncClient(transport=httpx.ASGITransport(fake)) as http_client:
        app = ClerkMiddleware(
            Starlette(routes=[Route("/api/me", whoami)]),
            rules=[Rule.api("/api/(.*)")],
            publishable_key=fake.publishable_key,
            authorized_parties=[ORIGIN],
            http_client=http_client,
            clock=clock,
            **keys,
        )
        headers = {"Authorization": f"Bearer {fake.session_token(session_id)}"}
        async with browser(app, base_url=ORIGIN) as client:
            ok = await client.get("/api/me", headers=headers)
            clock.advance(61 + 5)
            expired = await client.get("/api/me", headers=headers)
    assert (ok.status_code, ok.json()) == (200, {"user_id": user_id, "org_role": "org:admin"})
    assert expired.status_code == 401
    path = "/v1/jwks" if source == "secret_key" else "/.well-known/jwks.json"
    assert fake.requests == [("GET", path)]


async def test_bapi_jwks_needs_the_secret_key(fake: FakeClerk) -> None:
    """GET /v1/jwks answers the JWKS with the secret key, 401 without."""
    async with browser(fake) as client:
        ok = await client.get("/v1/jwks", headers=bapi(fake))
        refused = await client.get("/v1/jwks")
    assert (ok.status_code, ok.json()) == (200, {"keys": [fake.key.jwk]})
    assert refused.status_code == 401


# --------------------------------------------------------------------------------------------
# Serving
# --------------------------------------------------------------------------------------------


async def test_uvicorn_serves_it(fake: FakeClerk) -> None:
    """uvicorn serves FakeClerk (lifespan included) on a loopback port."""
    server = uvicorn.Server(uvicorn.Config(fake, lifespan="on", log_level="warning"))
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()  # connections wait in the backlog until uvicorn accepts them
        port = sock.getsockname()[1]
        async with anyio.create_task_group() as tasks:
            tasks.start_soon(server.serve, [sock])
            async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}") as client:
                r = await client.get("/.well-known/jwks.json")
            server.should_exit = True
    assert (r.status_code, r.json()) == (200, {"keys": [fake.key.jwk]})


async def test_fapi_base_url_is_the_default_frontend_api(fake: FakeClerk) -> None:
    """The tests' FAPI base URL is the fake's default Frontend API URL."""
    assert fake.frontend_api_url == FAPI
