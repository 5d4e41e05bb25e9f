"""Clerk's Frontend API proxy served by the app itself (a path-form ``proxy_url``): public, never
handed to the cookie flow; and a failed way back never travels again in ``redirect_url``."""

from __future__ import annotations

from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse
from starlette.routing import Route

from clerk_asgi import ClerkConfig, ClerkMiddleware, ConfigurationError, Rule
from clerk_asgi.testing import FakeClerk, FakeClock

pytestmark = pytest.mark.anyio

ORIGIN = "https://app.example.com"
PAGE = {"sec-fetch-dest": "document", "accept": "text/html"}


async def echo(request: Request) -> PlainTextResponse:
    return PlainTextResponse(f"proxy saw {request.url.path}")


def build(fake: FakeClerk, clock: FakeClock, **options: Any) -> ClerkMiddleware:
    app = Starlette(routes=[Route("/{path:path}", echo)])
    http = httpx.AsyncClient(transport=httpx.ASGITransport(fake))
    return ClerkMiddleware(
        app,
        publishable_key=fake.publishable_key,
        secret_key=fake.secret_key,
        api_url=fake.api_url,
        http_client=http,
        clock=clock,
        authorized_parties=[ORIGIN],
        sign_in_url="/sign-in",
        **options,
    )


async def get(app: Any, path: str, cookies: dict[str, str] | None = None) -> httpx.Response:
    transport = httpx.ASGITransport(app)
    async with httpx.AsyncClient(transport=transport, base_url=ORIGIN, cookies=cookies) as c:
        return await c.get(path, headers=PAGE)


@pytest.fixture
def fake(clock: FakeClock) -> FakeClerk:
    return FakeClerk(instance="production", clock=clock, origin=ORIGIN)


def test_a_path_proxy_is_public_first() -> None:
    """proxy_url='/__clerk' puts a public rule for it before every other rule."""
    config = ClerkConfig(
        publishable_key="pk_live_Y2xlcmsuZXhhbXBsZS5jb20k",
        secret_key="sk_live_abc",
        proxy_url="/__clerk/",
        rules=[Rule.protect("/:path*")],
        sign_in_url="https://accounts.example.com/sign-in",
    )
    assert config.proxy_url == "/__clerk"
    assert config.proxy_rule == Rule.public("/__clerk", "/__clerk/:path*")
    assert config.route_rules[0] is config.proxy_rule


def test_an_absolute_proxy_adds_no_rule() -> None:
    """An https proxy_url is another site: no rule of this app changes."""
    config = ClerkConfig(
        publishable_key="pk_live_Y2xlcmsuZXhhbXBsZS5jb20k",
        secret_key="sk_live_abc",
        proxy_url="https://app.example.com/__clerk",
    )
    assert config.proxy_rule is None


@pytest.mark.parametrize(
    "path", ["/__clerk", "/__clerk/v1/client/handshake?redirect_url=https://app.example.com/"]
)
async def test_requests_to_the_proxy_reach_it(fake: FakeClerk, clock: FakeClock, path: str) -> None:
    """A page load under the proxy path runs the proxy: no handshake, no sign-in redirect."""
    app = build(fake, clock, proxy_url="/__clerk")
    response = await get(app, path, cookies={"__client_uat": "1700000000"})
    assert (response.status_code, response.text) == (200, f"proxy saw {path.split('?')[0]}")


async def test_the_handshake_goes_to_the_proxy_on_this_origin(
    fake: FakeClerk, clock: FakeClock
) -> None:
    """With a path proxy, the handshake URL is on the site's own origin under that path."""
    app = build(fake, clock, proxy_url="/__clerk")
    response = await get(app, "/dashboard", cookies={"__client_uat": "1700000000"})
    assert response.status_code == 307
    assert response.headers["location"].startswith(f"{ORIGIN}/__clerk/v1/client/handshake?")


async def test_a_failed_nonce_is_not_sent_back_to_the_frontend_api(
    fake: FakeClerk, clock: FakeClock
) -> None:
    """A nonce that does not resolve falls back to the cookies; the next handshake's
    redirect_url no longer carries it (or any other parameter of the way back)."""
    app = build(fake, clock)
    response = await get(
        app,
        "/dashboard?tab=1&__clerk_handshake_nonce=unknown&__clerk_help=1",
        cookies={"__client_uat": "1700000000"},
    )
    assert response.status_code == 307
    query = parse_qs(urlsplit(response.headers["location"]).query)
    assert query["redirect_url"] == [f"{ORIGIN}/dashboard?tab=1"]
    assert query["__clerk_hs_reason"] == ["client-uat-but-no-session-token"]


async def test_the_refusal_hook_never_replaces_a_handshake(
    fake: FakeClerk, clock: FakeClock
) -> None:
    """on_refusal sees refusals, not the handshake's protocol redirects: those stay Clerk's."""
    seen: list[int] = []

    def every_refusal_as_a_page(conn: Any, refusal: Any) -> PlainTextResponse:
        seen.append(refusal.status)
        return PlainTextResponse("custom", status_code=refusal.status)

    app = build(fake, clock, on_refusal=every_refusal_as_a_page)
    response = await get(app, "/dashboard", cookies={"__client_uat": "1700000000"})
    assert (response.status_code, response.headers["x-clerk-auth-status"]) == (307, "handshake")
    assert response.headers["location"].startswith("https://")
    assert seen == []


@pytest.mark.parametrize(
    ("option", "value"),
    [("public_origin", "https://exämple.test"), ("proxy_url", "https://exämple.test/__clerk")],
)
def test_non_ascii_hosts_are_refused_at_start_up(option: str, value: str) -> None:
    """A host that is not ASCII would break the Location header later: refused up front."""
    with pytest.raises(ConfigurationError):
        ClerkConfig(
            publishable_key="pk_live_Y2xlcmsuZXhhbXBsZS5jb20k",
            secret_key="sk_live_abc",
            **{option: value},
        )


async def test_a_require_auth_refusal_after_the_way_back_keeps_its_cookies(
    fake: FakeClerk, clock: FakeClock
) -> None:
    """Production: the handshake's cookies also ride on a require_auth refusal of that page."""
    from fastapi import Depends, FastAPI

    from clerk_asgi import require_auth

    api = FastAPI()

    @api.get("/admin")
    async def admin(auth: Any = Depends(require_auth(role="org:admin"))) -> dict[str, str]:
        return {"ok": "admin"}  # pragma: no cover - the member is refused

    http = httpx.AsyncClient(transport=httpx.ASGITransport(fake))
    app = ClerkMiddleware(
        api,
        publishable_key=fake.publishable_key,
        secret_key=fake.secret_key,
        api_url=fake.api_url,
        http_client=http,
        clock=clock,
        authorized_parties=[ORIGIN],
        rules=[Rule.public("/admin")],
    )
    client = fake.sign_in(fake.add_user())
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(fake),
        base_url=fake.issuer,
        cookies={"__client": client.token},
    ) as fapi:
        back = await fapi.get(
            "/v1/client/handshake",
            params={"redirect_url": f"{ORIGIN}/admin", "format": "nonce"},
        )
    nonce = back.cookies["__clerk_handshake_nonce"]
    response = await get(app, "/admin", cookies={"__clerk_handshake_nonce": nonce})
    assert (response.status_code, response.json()["reason"]) == (403, "authorization-failed")
    names = [c.split("=", 1)[0] for c in response.headers.get_list("set-cookie")]
    assert names[:2] == ["__clerk_handshake", "__clerk_handshake_nonce"]
    assert "__session" in names
    assert "__client_uat" in names


async def test_a_malformed_handshake_token_is_no_directive() -> None:
    """A __clerk_handshake value that is not a compact JWT yields nothing."""
    from clerk_asgi._keys import StaticKeySet
    from clerk_asgi._verify import verify_handshake_token
    from clerk_asgi.testing import KeyPair

    keys = StaticKeySet(KeyPair.generate().private_key.public_key())
    for token in ("a.b", "a..c", "x" * 9000 + ".y.z"):
        assert await verify_handshake_token(keys, token) is None
