"""Keys through ClerkMiddleware: key sources, one cache per instance, 503 when keys are gone."""

from __future__ import annotations

import base64

import anyio
import httpx
import pytest
from fastapi import Depends, FastAPI

from clerk_asgi import Auth, ClerkMiddleware, Rule, require_auth
from clerk_asgi.testing import FakeClock, JWKSTransport, KeyPair

from .helpers import bearer
from .test_jwks_support import (
    FAILURES,
    JWKS_URL,
    KID_MISMATCH,
    UNAVAILABLE,
    Responder,
    ScriptedJWKS,
    app_client,
    assert_200,
    assert_401,
    assert_503,
    protected_app,
    raising,
    serve,
    status,
    valid,
)

pytestmark = pytest.mark.anyio


# --- key sources ---------------------------------------------------------------------------


async def test_secret_key_source_fetches_the_backend_api_with_the_bearer_secret(
    key: KeyPair, clock: FakeClock
) -> None:
    """secret_key: keys come from api.clerk.com/v1/jwks with Authorization: Bearer sk_..."""
    transport = JWKSTransport(key)
    app = protected_app(
        clock,
        jwks_url=None,
        secret_key="sk_test_abc123",
        http_client=httpx.AsyncClient(transport=transport),
    )
    async with app_client(app) as client:
        r = await client.get("/api/me", headers=bearer(valid(key, clock)))
    assert_200(r, "user_test", None)
    assert len(transport.requests) == 1
    request = transport.requests[0]
    assert request.method == "GET"
    assert str(request.url) == "https://api.clerk.com/v1/jwks"
    assert request.headers["authorization"] == "Bearer sk_test_abc123"
    assert request.headers["accept-encoding"] == "identity"


async def test_publishable_key_source_fetches_the_frontend_api_jwks(
    key: KeyPair, clock: FakeClock
) -> None:
    """publishable_key: keys come from the Frontend API's JWKS, unauthenticated; iss too."""
    transport = JWKSTransport(key)
    publishable = "pk_test_" + base64.b64encode(b"clerk.example.com$").decode()
    app = protected_app(
        clock,
        jwks_url=None,
        issuer=None,
        publishable_key=publishable,
        http_client=httpx.AsyncClient(transport=transport),
    )
    async with app_client(app) as client:
        r = await client.get("/api/me", headers=bearer(valid(key, clock)))
        other = valid(key, clock, issuer="https://clerk.other.example.com")
        r_other = await client.get("/api/me", headers=bearer(other))
    assert_200(r, "user_test", None)
    assert_401(r_other, "token-invalid-issuer")
    assert len(transport.requests) == 1
    request = transport.requests[0]
    assert str(request.url) == "https://clerk.example.com/.well-known/jwks.json"
    assert "authorization" not in request.headers


async def test_two_middleware_instances_never_share_a_cache(
    key: KeyPair, second_key: KeyPair, clock: FakeClock
) -> None:
    """Two instances on one jwks_url but different endpoints each fetch and keep their own."""
    transport_a, transport_b = JWKSTransport(key), JWKSTransport(second_key)
    app_a = protected_app(clock, http_client=httpx.AsyncClient(transport=transport_a))
    app_b = protected_app(clock, http_client=httpx.AsyncClient(transport=transport_b))
    assert app_a.keys is not app_b.keys
    async with app_client(app_a) as a, app_client(app_b) as b:
        for _ in range(5):
            assert_200(await a.get("/api/me", headers=bearer(valid(key, clock))), "user_test", None)
            r = await b.get("/api/me", headers=bearer(valid(second_key, clock)))
            assert_200(r, "user_test", None)
        assert (len(transport_a.requests), len(transport_b.requests)) == (1, 1)
        cross_a = await a.get("/api/me", headers=bearer(valid(second_key, clock)))
        cross_b = await b.get("/api/me", headers=bearer(valid(key, clock)))
    assert_401(cross_a, KID_MISMATCH)
    assert_401(cross_b, KID_MISMATCH)
    assert (len(transport_a.requests), len(transport_b.requests)) == (2, 2)


# --- a fetch in flight ---------------------------------------------------------------------


async def test_middleware_serves_cached_and_public_routes_during_a_held_fetch(
    key: KeyPair, second_key: KeyPair, clock: FakeClock
) -> None:
    """A refetch held open delays only the k2 request needing it; k1 and /public complete."""
    script = ScriptedJWKS(serve(key))
    app = protected_app(clock, http_client=script.client())
    async with app_client(app) as client:
        r = await client.get("/api/me", headers=bearer(valid(key, clock)))
        assert_200(r, "user_test", None)
        script.respond = serve(key, second_key)
        script.gate = anyio.Event()
        script.started = anyio.Event()
        held: list[httpx.Response] = []

        async def k2_request() -> None:
            held.append(await client.get("/api/me", headers=bearer(valid(second_key, clock))))

        async with anyio.create_task_group() as tg:
            tg.start_soon(k2_request)
            await script.started.wait()
            for _ in range(20):
                r = await client.get("/api/me", headers=bearer(valid(key, clock)))
                assert_200(r, "user_test", None)
                r = await client.get("/public/whoami")
                assert_200(r, None, "session-token-missing")
            assert held == []
            script.gate.set()
    assert len(held) == 1
    assert_200(held[0], "user_test", None)
    assert len(script.requests) == 2


# --- keys that cannot be loaded: 503 -------------------------------------------------------


@pytest.mark.parametrize("respond", FAILURES)
async def test_middleware_answers_503_when_no_keys_can_be_loaded(
    respond: Responder, key: KeyPair, clock: FakeClock
) -> None:
    """JWKS failing, nothing cached: an API route answers 503, Retry-After counting down."""
    script = ScriptedJWKS(respond)
    app = protected_app(clock, http_client=script.client())
    async with app_client(app) as client:
        r = await client.get("/api/me", headers=bearer(valid(key, clock)))
        assert_503(r, "30")
        clock.advance(12)
        r = await client.get("/api/me", headers=bearer(valid(key, clock)))
        assert_503(r, "18")
    assert len(script.requests) == 1


async def test_protected_page_answers_503_not_a_sign_in_redirect_when_keys_cannot_load(
    key: KeyPair, clock: FakeClock
) -> None:
    """A page navigation with a token during an outage gets 503: the user is not signed out."""
    script = ScriptedJWKS(raising(lambda r: httpx.ConnectError("refused", request=r)))
    app = protected_app(clock, http_client=script.client())
    navigation = {"accept": "text/html", "sec-fetch-dest": "document"}
    cookie = {"cookie": f"__session={valid(key, clock)}"}
    async with app_client(app) as client:
        r = await client.get("/dashboard", headers=navigation | cookie)
    assert_503(r, "30")
    assert len(script.requests) == 1


async def test_public_route_runs_signed_out_with_the_unavailable_reason(
    key: KeyPair, clock: FakeClock
) -> None:
    """A public route runs signed out with reason jwk-remote-failed-to-load; no token, no fetch."""
    script = ScriptedJWKS(status(500))
    app = protected_app(clock, http_client=script.client())
    async with app_client(app) as client:
        r = await client.get("/public/whoami")
        assert_200(r, None, "session-token-missing")
        assert len(script.requests) == 0
        r = await client.get("/public/whoami", headers=bearer(valid(key, clock)))
    assert_200(r, None, UNAVAILABLE)
    assert len(script.requests) == 1


async def test_require_auth_answers_503_when_the_keys_cannot_load(
    key: KeyPair, clock: FakeClock
) -> None:
    """require_auth() on a public route answers 503 too: unloadable keys are not signed out."""
    app = FastAPI()

    @app.get("/public/me")
    async def me(auth: Auth = Depends(require_auth())) -> dict[str, str | None]:
        return {"user_id": auth.user_id}  # pragma: no cover - never reached

    script = ScriptedJWKS(status(500))
    app.add_middleware(
        ClerkMiddleware,
        jwks_url=JWKS_URL,
        http_client=script.client(),
        clock=clock,
        rules=[Rule.public("/public(.*)")],
    )
    async with app_client(app) as client:
        r = await client.get("/public/me", headers=bearer(valid(key, clock)))
    assert_503(r, "30")
    assert len(script.requests) == 1
