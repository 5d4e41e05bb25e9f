"""The example app (examples/app.py), page by page, through httpx.ASGITransport.

Each test builds its own app with ``create_app()`` under its own environment: development mode
(no Clerk keys: FakeClerk at /__clerk, signing with the session's test key, on the test's fake
clock) or Clerk mode (a well-formed fake publishable key for clerk.example.com, plus a PEM key
so nothing ever reaches the network). The browser's part (the page script, fetchWithAuth's
retry) runs in tests/e2e; here the requests it makes are made by hand, as it makes them.
"""

from __future__ import annotations

import html
import re
from collections.abc import Iterator
from types import ModuleType
from typing import Any
from urllib.parse import quote

import httpx
import jwt
import pytest
from fastapi import FastAPI
from starlette.types import Message

from clerk_asgi import ClerkConfig, ClerkMiddleware, ConfigurationError
from clerk_asgi.testing import FakeClerk, FakeClock, KeyPair, mint_session_token

from .helpers import NOW

pytestmark = pytest.mark.anyio

ORIGIN = "http://127.0.0.1:8000"
#: A browser page load, as Chromium sends it.
NAVIGATION = {"accept": "text/html,application/xhtml+xml", "sec-fetch-dest": "document"}
#: A fetch() from one of the example's own pages.
SAME_ORIGIN = {"origin": ORIGIN, "sec-fetch-site": "same-origin"}
BANNER = "FakeClerk, not Clerk: anyone who can reach this server can sign in as a demo user"
ISSUER = "https://clerk.example.test"
EXPIRED = "session-token-expired-refresh-non-eligible-no-refresh-cookie"
TEN_YEARS = 315_360_000
#: pk_test_ + base64("clerk.example.com$"): well-formed, for an instance that does not exist.
PUBLISHABLE_KEY = "pk_test_Y2xlcmsuZXhhbXBsZS5jb20k"
LIVE_KEY = "pk_live_Y2xlcmsuZXhhbXBsZS5jb20k"
SECRET_KEY = "sk_test_abcdefghijklmnopqrstuvwxyz0123456789"
CLERK_JS = "https://clerk.example.com/npm/@clerk/clerk-js@5/dist/clerk.browser.js"
SIGN_IN_DASHBOARD = "/sign-in?redirect_url=http%3A%2F%2F127.0.0.1%3A8000%2Fdashboard"


@pytest.fixture
def clerk_app(example: ModuleType, key: KeyPair, monkeypatch: pytest.MonkeyPatch) -> FastAPI:
    """The app in Clerk mode: a publishable key, and a PEM key instead of a JWKS fetch."""
    monkeypatch.setenv("CLERK_PUBLISHABLE_KEY", PUBLISHABLE_KEY)
    monkeypatch.setenv("CLERK_JWT_KEY", key.public_pem)
    app: FastAPI = example.create_app()
    return app


def client(app: FastAPI) -> httpx.AsyncClient:
    return httpx.AsyncClient(transport=httpx.ASGITransport(app), base_url=ORIGIN)


async def sign_in(c: httpx.AsyncClient, email: str = "mia@example.test") -> str:
    """Sign in as the page script does (FakeClerk, then the app's cookies); the session token."""
    r = await c.post("/__clerk/v1/client/sign_ins", json={"identifier": email}, headers=SAME_ORIGIN)
    assert r.status_code == 200
    body = r.json()
    (session,) = [
        s for s in body["client"]["sessions"] if s["id"] == body["response"]["created_session_id"]
    ]
    token: str = session["last_active_token"]["jwt"]
    c.cookies.set("__session", token)
    c.cookies.set("__client_uat", str(body["client"]["updated_at"] // 1000))
    return token


def sign_out_cookies(c: httpx.AsyncClient) -> None:
    """What the page script does to the app's cookies after FakeClerk's sign-out."""
    c.cookies.delete("__session")
    c.cookies.set("__client_uat", "0")


def middleware(app: FastAPI) -> list[tuple[object, dict[str, Any]]]:
    """The app's middleware, outermost first: each class and its keywords."""
    return [(m.cls, dict(m.kwargs)) for m in app.user_middleware]


def claims_of(token: str, key: KeyPair) -> dict[str, Any]:
    """The token's claims, its signature checked with ``key`` (times are the fake clock's)."""
    decoded: dict[str, Any] = jwt.decode(
        token,
        key.public_pem,
        algorithms=["RS256"],
        options={
            "verify_aud": False,
            "verify_exp": False,
            "verify_iat": False,
            "verify_nbf": False,
        },
    )
    return decoded


def handshake_location(token: str, path: str = "/dashboard") -> str:
    """The middleware's 307 for an expired token on ``path``: Clerk's parameters, in order."""
    back = quote(ORIGIN + path, safe="")
    return (
        f"{ORIGIN}/__clerk/v1/client/handshake?redirect_url={back}&__clerk_api_version=2026-05-12"
        f"&suffixed_cookies=false&__clerk_hs_reason={EXPIRED}&format=nonce&__session={token}"
    )


async def drive_lifespan(app: FastAPI) -> list[str]:
    """Run the app's lifespan (startup, then shutdown); the message types it sent."""
    incoming: Iterator[Message] = iter(
        [{"type": "lifespan.startup"}, {"type": "lifespan.shutdown"}]
    )
    sent: list[str] = []

    async def receive() -> Message:
        return next(incoming)

    async def send(message: Message) -> None:
        sent.append(message["type"])

    await app({"type": "lifespan", "asgi": {"version": "3.0"}, "state": {}}, receive, send)
    return sent


# --- the module -------------------------------------------------------------------------------


def test_module_exposes_a_fastapi_app_on_fakeclerk(example: ModuleType) -> None:
    """`uvicorn ... app:app` finds the app on FakeClerk: proxy in front, handshake on, real time."""
    app = example.app
    assert isinstance(app, FastAPI)
    (front, front_options), (cls, options) = middleware(app)
    assert (front, cls) == (example.DevelopmentFront, ClerkMiddleware)
    dev = front_options["dev"]
    fake = dev.fake
    config = options["config"]
    assert isinstance(config, ClerkConfig)
    assert fake.instance == "production"
    assert fake.publishable_key.startswith("pk_live_")
    assert fake.proxy_path == "/__clerk"
    assert fake.token_lifetime == 60
    assert config.cookie_suffix == fake.cookie_suffix  # made from FakeClerk's publishable key
    assert config.instance_type == "production"
    assert config.frontend_api == "clerk.example.test"
    assert config.issuer == ISSUER
    assert config.secret_key == fake.secret_key
    assert config.api_url == ISSUER
    assert config.jwt_key is None
    assert config.jwks_url == f"{ISSUER}/v1/jwks"
    assert config.http_client is dev.http
    assert config.proxy_url == "/__clerk"
    assert config.handshake is True
    assert config.rules == tuple(example.RULES)
    assert config.sign_in_url == "/sign-in"
    assert config.authorized_parties == frozenset()
    assert dev.clock is None
    assert app.state.fake_clerk is fake
    users = {u.id: (u.email, u.org_id, u.org_role) for u in fake.users.values()}
    assert users == {
        "user_demo_member": ("mia@example.test", "org_demo_acme", "org:member"),
        "user_demo_admin": ("ada@example.test", "org_demo_acme", "org:admin"),
    }


async def test_the_lifespan_closes_the_backend_api_client(dev_app: FastAPI) -> None:
    """At shutdown, the client the middleware reaches FakeClerk's Backend API with is closed."""
    dev = middleware(dev_app)[0][1]["dev"]
    assert await drive_lifespan(dev_app) == [
        "lifespan.startup.complete",
        "lifespan.shutdown.complete",
    ]
    assert dev.http.is_closed


# --- development mode: the fake clock ------------------------------------------------------------


async def test_the_fake_clock_is_opt_in(
    example: ModuleType, key: KeyPair, monkeypatch: pytest.MonkeyPatch
) -> None:
    """CLERK_EXAMPLE_FAKE_CLOCK=1: one shared FakeClock, moved by POST /__dev/clock, labelled."""
    monkeypatch.setenv("CLERK_EXAMPLE_FAKE_CLOCK", "1")
    app: FastAPI = example.create_app(key=key)
    fake: FakeClerk = app.state.fake_clerk
    config = middleware(app)[1][1]["config"]
    clock = config.clock
    assert isinstance(clock, FakeClock)
    assert fake.clock is clock
    assert clock.now == int(clock.now)
    start = clock.now
    async with client(app) as c:
        r = await c.post("/__dev/clock", params={"advance": "120"})
        assert r.status_code == 200
        assert r.json() == {"now": start + 120, "advanced": 120.0}
        page = await c.get("/", headers=NAVIGATION)
    assert clock.now == start + 120
    assert (
        '<div class="banner clock" id="fake-clock">Fake server clock (CLERK_EXAMPLE_FAKE_CLOCK=1)'
        in (page.text)
    )


@pytest.mark.parametrize("advance", [None, "", "abc", "0", "-5", "nan", "inf", "31536001"])
async def test_the_fake_clock_refuses_bad_steps(
    dev_app: FastAPI, clock: FakeClock, advance: str | None
) -> None:
    """POST /__dev/clock with a missing, non-numeric, non-positive or huge advance: 400."""
    async with client(dev_app) as c:
        r = await c.post("/__dev/clock", params={} if advance is None else {"advance": advance})
    assert r.status_code == 400
    assert r.json() == {"error": "advance must be a number of seconds, more than 0, at most a year"}
    assert clock.now == NOW


async def test_without_the_fake_clock_there_is_no_clock_route(example: ModuleType) -> None:
    """Development mode on real time: POST /__dev/clock is 404, every page without a clock."""
    app: FastAPI = example.create_app()
    async with client(app) as c:
        r = await c.post("/__dev/clock", params={"advance": "120"})
        page = await c.get("/", headers=NAVIGATION)
    assert r.status_code == 404
    assert r.text == "Not Found"
    assert 'id="fake-clock"' not in page.text


# --- development mode: pages --------------------------------------------------------------------


async def test_home_is_public_and_shows_the_signed_out_state(dev_app: FastAPI) -> None:
    """/ answers 200 signed out: the banner, a sign-in link, no external script, no cookie."""
    async with client(dev_app) as c:
        r = await c.get("/", headers=NAVIGATION)
    assert r.status_code == 200
    assert r.headers["content-type"] == "text/html; charset=utf-8"
    assert f'<div class="banner" role="note">{BANNER}</div>' in r.text
    assert "You are signed out." in r.text
    assert 'href="/sign-in?redirect_url=/dashboard"' in r.text
    assert "src=" not in r.text  # no clerk-js, no external assets
    assert "set-cookie" not in r.headers


@pytest.mark.parametrize(
    ("path", "email", "status"),
    [
        ("/", None, 200),
        ("/sign-in", None, 200),
        ("/", "mia@example.test", 200),
        ("/dashboard", "mia@example.test", 200),
        ("/unauthorized", "mia@example.test", 403),
        ("/admin", "ada@example.test", 200),
    ],
)
async def test_every_page_carries_the_dev_banner_and_is_not_cached(
    dev_app: FastAPI, path: str, email: str | None, status: int
) -> None:
    """Every HTML page says FakeClerk is not Clerk and is Cache-Control: no-store."""
    async with client(dev_app) as c:
        if email:
            await sign_in(c, email)
        r = await c.get(path, headers=NAVIGATION)
    assert r.status_code == status
    assert f'<div class="banner" role="note">{BANNER}</div>' in r.text
    assert r.headers["cache-control"] == "no-store"


async def test_dashboard_sends_a_signed_out_browser_to_sign_in(dev_app: FastAPI) -> None:
    """/dashboard, no cookies: 307 to /sign-in with the absolute original URL, no handshake."""
    async with client(dev_app) as c:
        r = await c.get("/dashboard?tab=org", headers=NAVIGATION)
    assert r.status_code == 307
    assert r.headers["location"] == (
        "/sign-in?redirect_url=http%3A%2F%2F127.0.0.1%3A8000%2Fdashboard%3Ftab%3Dorg"
    )
    assert r.headers["x-clerk-auth-reason"] == "session-token-and-uat-missing"


async def test_dashboard_answers_401_to_a_signed_out_fetch(dev_app: FastAPI) -> None:
    """/dashboard, signed out, not a page load: 401 JSON instead of a redirect."""
    async with client(dev_app) as c:
        r = await c.get("/dashboard", headers={"accept": "*/*", "sec-fetch-dest": "empty"})
    assert r.status_code == 401
    assert r.json() == {
        "error": "unauthorized",
        "reason": "session-token-and-uat-missing",
        "message": "Sign in to continue.",
    }


async def test_sign_in_page_offers_the_demo_users(dev_app: FastAPI) -> None:
    """/sign-in lists the member and the admin by identifier, with the checked redirect_url."""
    async with client(dev_app) as c:
        r = await c.get("/sign-in", params={"redirect_url": f"{ORIGIN}/dashboard"})
    assert r.status_code == 200
    assert f'<div class="users" id="sign-in" data-redirect-url="{ORIGIN}/dashboard">' in r.text
    assert '<button type="button" data-identifier="mia@example.test">Sign in as Mia Member' in (
        r.text
    )
    assert '<button type="button" data-identifier="ada@example.test">Sign in as Ada Admin' in (
        r.text
    )
    assert "<code>org:admin</code> in <code>org_demo_acme</code>" in r.text
    assert 'id="signed-out-reason"' not in r.text


@pytest.mark.parametrize(
    ("redirect_url", "target"),
    [
        # same origin: kept
        ("/dashboard", "/dashboard"),
        ("/dashboard?tab=org#top", "/dashboard?tab=org#top"),
        (f"{ORIGIN}/admin", f"{ORIGIN}/admin"),
        ("HTTP://127.0.0.1:8000/admin", "HTTP://127.0.0.1:8000/admin"),
        # anything else: home
        (None, "/"),
        ("", "/"),
        ("//evil.com", "/"),
        ("//evil.com/dashboard", "/"),
        ("https://evil.com", "/"),
        ("https://evil.com/dashboard", "/"),
        ("/\\evil.com", "/"),
        ("\\\\evil.com", "/"),
        ("/\t/evil.com", "/"),
        ("/\n/evil.com", "/"),
        (" https://evil.com", "/"),
        ("javascript:alert(1)", "/"),
        ("JavaScript:alert(1)", "/"),
        ("data:text/html,<script>alert(1)</script>", "/"),
        ("http:evil.com", "/"),
        ("http://127.0.0.1:8000@evil.com/", "/"),
        ("http://evil.com#http://127.0.0.1:8000/", "/"),
        ("http://127.0.0.1:8001/dashboard", "/"),
        ("https://127.0.0.1:8000/dashboard", "/"),
        ("dashboard", "/"),
        ("http://[::1/", "/"),
        ('/"><script>alert(1)</script>', '/"><script>alert(1)</script>'),
    ],
)
async def test_sign_in_returns_only_to_this_origin(
    dev_app: FastAPI, redirect_url: str | None, target: str
) -> None:
    """The sign-in page returns only to same-origin redirect_urls (no open redirect), escaped."""
    params = {} if redirect_url is None else {"redirect_url": redirect_url}
    async with client(dev_app) as c:
        r = await c.get("/sign-in", params=params)
    assert r.status_code == 200
    assert f'id="sign-in" data-redirect-url="{html.escape(target)}">' in r.text
    assert "<script>alert(1)" not in r.text


async def test_sign_in_through_fakeclerk(dev_app: FastAPI, fake: FakeClerk, key: KeyPair) -> None:
    """FakeClerk's sign-in: __client on /__clerk, a 60-second token; with it, the dashboard."""
    async with client(dev_app) as c:
        r = await c.post(
            "/__clerk/v1/client/sign_ins",
            json={"identifier": "ada@example.test"},
            headers=SAME_ORIGIN,
        )
        assert r.status_code == 200
        (set_cookie,) = r.headers.get_list("set-cookie")
        assert re.fullmatch(
            rf"__client=[\w-]+; Path=/__clerk; Max-Age={TEN_YEARS}; HttpOnly; SameSite=Lax",
            set_cookie,
        )
        body = r.json()
        session_id = body["response"]["created_session_id"]
        (session,) = body["client"]["sessions"]
        token = session["last_active_token"]["jwt"]
        assert body["client"]["updated_at"] == NOW * 1000
        c.cookies.set("__session", token)
        c.cookies.set("__client_uat", str(int(NOW)))
        page = await c.get("/dashboard", headers=NAVIGATION)
    claims = claims_of(token, key)
    assert claims["iss"] == ISSUER
    assert claims["sub"] == "user_demo_admin"
    assert claims["sid"] == session_id
    assert claims["o"] == {"id": "org_demo_acme", "rol": "admin"}
    assert (claims["iat"], claims["exp"]) == (NOW, NOW + 60)
    assert fake.sessions[session_id].status == "active"
    assert page.status_code == 200
    assert "set-cookie" not in page.headers
    assert '<dd id="user-id">user_demo_admin</dd>' in page.text


async def test_sign_in_refuses_an_unknown_user(dev_app: FastAPI, fake: FakeClerk) -> None:
    """FakeClerk refuses an identifier that is no demo user: 422 in Clerk's shape, no session."""
    async with client(dev_app) as c:
        r = await c.post(
            "/__clerk/v1/client/sign_ins",
            json={"identifier": "root@example.test"},
            headers=SAME_ORIGIN,
        )
    assert r.status_code == 422
    assert r.json()["errors"][0]["code"] == "form_identifier_not_found"
    assert fake.sessions == {}


async def test_each_sign_in_starts_a_new_session(dev_app: FastAPI, key: KeyPair) -> None:
    """Two sign-ins as the same user get two session ids."""
    async with client(dev_app) as c:
        first = claims_of(await sign_in(c), key)
        second = claims_of(await sign_in(c), key)
    assert first["sid"] != second["sid"]


@pytest.mark.parametrize(
    "headers",
    [
        {"origin": "https://evil.com"},
        {"origin": "null"},
        {"origin": "http://127.0.0.1:8001"},
        {"sec-fetch-site": "cross-site"},
        {"sec-fetch-site": "same-site"},
    ],
)
@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("POST", "/__clerk/v1/client/sign_ins"),
        ("DELETE", "/__clerk/v1/client"),
        ("POST", "/__dev/fakeclerk?failing=1"),
        ("POST", "/__dev/clock?advance=120"),
    ],
)
async def test_the_development_front_refuses_cross_site_changes(
    dev_app: FastAPI, fake: FakeClerk, headers: dict[str, str], method: str, path: str
) -> None:
    """A sign-in, sign-out or switch sent by another site (login CSRF): 403, nothing done."""
    async with client(dev_app) as c:
        r = await c.request(method, path, json={"identifier": "ada@example.test"}, headers=headers)
    assert r.status_code == 403
    assert r.json() == {
        "errors": [
            {
                "message": "cross-site request",
                "long_message": "Requests that change state must come from this site's own pages.",
                "code": "origin_invalid",
            }
        ]
    }
    assert "set-cookie" not in r.headers
    assert fake.sessions == {}
    assert fake.failing is False
    assert fake.requests == []


async def test_dashboard_shows_the_session(dev_app: FastAPI, key: KeyPair) -> None:
    """/dashboard shows the session, token times on the app's clock, sign-out and API buttons."""
    async with client(dev_app) as c:
        claims = claims_of(await sign_in(c), key)
        r = await c.get("/dashboard", headers=NAVIGATION)
    assert r.status_code == 200
    for ident, value in [
        ("user-id", "user_demo_member"),
        ("session-id", claims["sid"]),
        ("org-id", "org_demo_acme"),
        ("org-role", "org:member"),
        ("session-status", "active"),
        ("issued-at", "2027-01-15 08:00:00 UTC (in 0 s)"),
        ("expires-at", "2027-01-15 08:01:00 UTC (in 60 s)"),
    ]:
        assert f'<dd id="{ident}">{value}</dd>' in r.text
    assert '<button id="sign-out" type="button">Sign out</button>' in r.text
    assert '<button class="secondary" id="call-api" type="button">Call /api/me</button>' in r.text
    assert "Signed in as <code>user_demo_member</code>" in r.text


async def test_member_is_sent_from_admin_to_unauthorized(dev_app: FastAPI) -> None:
    """A member opening /admin: 307 to /unauthorized, which explains why (403)."""
    async with client(dev_app) as c:
        await sign_in(c, "mia@example.test")
        r = await c.get("/admin", headers=NAVIGATION)
        assert r.status_code == 307
        assert r.headers["location"] == "/unauthorized"
        page = await c.get("/unauthorized", headers=NAVIGATION)
    assert page.status_code == 403
    assert "needs the\n<code>org:admin</code> role" in page.text


async def test_admin_opens_admin(dev_app: FastAPI) -> None:
    """An org:admin opening /admin gets the page."""
    async with client(dev_app) as c:
        await sign_in(c, "ada@example.test")
        r = await c.get("/admin", headers=NAVIGATION)
    assert r.status_code == 200
    assert "<h1>Admin</h1>" in r.text
    assert "<code>user_demo_admin</code>" in r.text
    assert "<code>org_demo_acme</code>" in r.text


async def test_admin_sends_a_signed_out_browser_to_sign_in(dev_app: FastAPI) -> None:
    """/admin, signed out: sign in first, then come back to /admin."""
    async with client(dev_app) as c:
        r = await c.get("/admin", headers=NAVIGATION)
    assert r.status_code == 307
    assert r.headers["location"] == "/sign-in?redirect_url=http%3A%2F%2F127.0.0.1%3A8000%2Fadmin"


async def test_sign_up_leads_to_sign_in(dev_app: FastAPI) -> None:
    """/sign-up has nothing to create in dev mode: 307 to /sign-in, query kept."""
    async with client(dev_app) as c:
        r = await c.get("/sign-up?redirect_url=%2Fdashboard")
    assert r.status_code == 307
    assert r.headers["location"] == "/sign-in?redirect_url=%2Fdashboard"


async def test_pages_carry_the_dev_script(dev_app: FastAPI) -> None:
    """Development pages play clerk-js's part through /__clerk and define fetchWithAuth."""
    async with client(dev_app) as c:
        r = await c.get("/", headers=NAVIGATION)
    for fragment in [
        'const PROXY = "/__clerk";',
        'frontendApi("POST", "/v1/client/sign_ins", { identifier })',
        'setCookie("__session", session.last_active_token.jwt, YEAR);',
        'setCookie("__client_uat", String(Math.floor(client.updated_at / 1000)), YEAR);',
        'frontendApi("POST", `/v1/client/sessions/${sessionId}/tokens`)',
        'frontendApi("DELETE", "/v1/client")',
        'setCookie("__client_uat", "0", YEAR);',
        "async function fetchWithAuth(input, init = {}, { onRefresh } = {}) {",
        f'const REFRESH_REASONS = ["token-expired", "{EXPIRED}", '
        '"session-token-expired-refresh-non-eligible-non-get", '
        '"client-uat-but-no-session-token", "session-token-iat-before-client-uat"];',
    ]:
        assert fragment in r.text
    assert "window.Clerk" not in r.text


# --- development mode: API ----------------------------------------------------------------------


async def test_api_me_returns_the_auth_and_x_user_id(dev_app: FastAPI, key: KeyPair) -> None:
    """/api/me: the Auth as JSON; x-user-id injected for the handler and echoed, spoofs dropped."""
    async with client(dev_app) as c:
        claims = claims_of(await sign_in(c, "ada@example.test"), key)
        r = await c.get("/api/me", headers={"x-user-id": "user_spoofed"})
    assert r.status_code == 200
    assert r.headers["x-user-id"] == "user_demo_admin"
    body = r.json()
    assert body["claims"] == claims
    del body["claims"]
    assert body == {
        "is_signed_in": True,
        "user_id": "user_demo_admin",
        "session_id": claims["sid"],
        "org_id": "org_demo_acme",
        "org_role": "org:admin",
        "org_slug": None,
        "org_permissions": [],
        "session_status": "active",
        "actor": None,
        "issued_at": NOW,
        "expires_at": NOW + 60,
        "reason": None,
        "x_user_id": "user_demo_admin",
    }


async def test_api_me_answers_401_json_when_signed_out(dev_app: FastAPI) -> None:
    """/api/me without cookies, even from a browser page load: 401 JSON, never a redirect."""
    async with client(dev_app) as c:
        r = await c.get("/api/me", headers=NAVIGATION)
    assert r.status_code == 401
    assert r.json() == {
        "error": "unauthorized",
        "reason": "session-token-and-uat-missing",
        "message": "Sign in to continue.",
    }
    assert r.headers["www-authenticate"] == 'Bearer realm="clerk"'


@pytest.mark.parametrize(
    ("email", "user_id"), [(None, None), ("mia@example.test", "user_demo_member")]
)
async def test_public_ping_answers_everyone(
    dev_app: FastAPI, email: str | None, user_id: str | None
) -> None:
    """/api/public/ping is public: 200 signed out or in, seeing who asks, no x-user-id."""
    async with client(dev_app) as c:
        if email:
            await sign_in(c, email)
        r = await c.get("/api/public/ping")
    assert r.status_code == 200
    assert r.json() == {"ok": True, "user_id": user_id}
    assert "x-user-id" not in r.headers


async def test_a_token_from_another_key_is_refused(dev_app: FastAPI, attacker_key: KeyPair) -> None:
    """Verification is real: a FakeClerk-shaped token signed by another key gets nowhere."""
    token = mint_session_token(
        attacker_key, user_id="user_demo_admin", issuer=ISSUER, azp=ORIGIN, issued_at=NOW
    )
    cookies = f"__session={token}; __client_uat={int(NOW)}"
    async with client(dev_app) as c:
        r = await c.get("/api/me", headers={"cookie": cookies})
    assert r.status_code == 401
    assert r.json()["reason"] == "token-invalid-signature"


# --- development mode: 60-second tokens -----------------------------------------------------------


async def test_an_expired_token_is_renewed_through_the_handshake(
    dev_app: FastAPI, fake: FakeClerk, clock: FakeClock, key: KeyPair
) -> None:
    """Two minutes after sign-in, a page load renews the token through FakeClerk's handshake."""
    async with client(dev_app) as c:
        token = await sign_in(c)
        clock.advance(120)
        r = await c.get("/dashboard", headers=NAVIGATION)
        assert r.status_code == 307
        assert r.headers["location"] == handshake_location(token)
        assert r.headers["x-clerk-auth-status"] == "handshake"
        assert r.headers["x-clerk-auth-reason"] == EXPIRED
        assert r.headers["cache-control"] == "no-store"
        assert r.headers.get_list("set-cookie") == [
            "__clerk_redirect_count=1; SameSite=Lax; HttpOnly; Max-Age=2"
        ]

        back = await c.get(r.headers["location"], headers=NAVIGATION)
        assert back.status_code == 307
        assert back.headers["location"] == f"{ORIGIN}/dashboard"
        (nonce,) = back.headers.get_list("set-cookie")
        assert re.fullmatch(
            r"__clerk_handshake_nonce=[\w-]+; Path=/; Max-Age=60; HttpOnly; SameSite=Lax", nonce
        )

        page = await c.get("/dashboard", headers=NAVIGATION)
    assert page.status_code == 200
    assert '<dd id="user-id">user_demo_member</dd>' in page.text
    directives = page.headers.get_list("set-cookie")
    assert directives[:2] == [
        "__clerk_handshake=; Path=/; Max-Age=0",
        "__clerk_handshake_nonce=; Path=/; Max-Age=0",
    ]
    assert directives[3] == f"__client_uat={int(NOW)}; Path=/; Max-Age={TEN_YEARS}; SameSite=Lax"
    fresh = re.fullmatch(r"__session=([\w.-]+); Path=/; SameSite=Lax", directives[2])
    assert fresh is not None
    assert len(directives) == 4
    old, new = claims_of(token, key), claims_of(fresh.group(1), key)
    assert (new["sid"], new["iat"], new["exp"], new["azp"]) == (
        old["sid"],
        NOW + 120,
        NOW + 180,
        ORIGIN,
    )
    (handshake,) = fake.handshakes
    assert (handshake.reason, handshake.signed_in, handshake.session_id) == (
        EXPIRED,
        True,
        old["sid"],
    )


async def test_a_revoked_session_ends_at_the_next_handshake(
    dev_app: FastAPI, fake: FakeClerk, clock: FakeClock, key: KeyPair
) -> None:
    """A revoked session: once its token expires, the handshake clears the cookies; sign-in."""
    async with client(dev_app) as c:
        token = await sign_in(c)
        fake.revoke(claims_of(token, key)["sid"])
        clock.advance(120)
        r = await c.get("/dashboard", headers=NAVIGATION)
        back = await c.get(r.headers["location"], headers=NAVIGATION)
        page = await c.get(back.headers["location"], headers=NAVIGATION)
    assert page.status_code == 307
    assert page.headers["location"] == SIGN_IN_DASHBOARD
    assert page.headers["x-clerk-auth-reason"] == "session-token-missing"
    assert page.headers.get_list("set-cookie") == [
        "__clerk_handshake=; Path=/; Max-Age=0",
        "__clerk_handshake_nonce=; Path=/; Max-Age=0",
        "__session=; Path=/; Max-Age=0",
        f"__client_uat=0; Path=/; Max-Age={TEN_YEARS}; SameSite=Lax",
    ]
    assert fake.handshakes[-1].signed_in is False


async def test_a_late_fetch_gets_a_401_then_a_fresh_token_works(
    dev_app: FastAPI, clock: FakeClock, key: KeyPair
) -> None:
    """An expired fetch is a 401 fetchWithAuth retries on; a FakeClerk token makes it 200."""
    async with client(dev_app) as c:
        token = await sign_in(c)
        session_id = claims_of(token, key)["sid"]
        clock.advance(120)
        r = await c.get("/api/me")
        assert r.status_code == 401
        assert r.headers["x-clerk-auth-reason"] == EXPIRED
        assert r.json() == {
            "error": "unauthorized",
            "reason": EXPIRED,
            "message": "The session token has expired; reload the page.",
        }
        client_state = await c.get("/__clerk/v1/client")
        assert client_state.json()["response"]["last_active_session_id"] == session_id
        t = await c.post(f"/__clerk/v1/client/sessions/{session_id}/tokens", headers=SAME_ORIGIN)
        assert t.status_code == 200
        assert t.json()["object"] == "token"
        c.cookies.set("__session", t.json()["jwt"])
        retry = await c.get("/api/me")
    assert retry.status_code == 200
    assert retry.json()["session_id"] == session_id
    assert retry.json()["issued_at"] == NOW + 120


async def test_sign_out_through_fakeclerk_signs_the_browser_out(
    dev_app: FastAPI, fake: FakeClerk, clock: FakeClock, key: KeyPair
) -> None:
    """Sign-out through FakeClerk, cookies cleared: signed out now and later, no handshake."""
    async with client(dev_app) as c:
        session_id = claims_of(await sign_in(c), key)["sid"]
        r = await c.delete("/__clerk/v1/client", headers=SAME_ORIGIN)
        assert r.status_code == 200
        assert [s["status"] for s in r.json()["response"]["sessions"]] == ["ended"]
        sign_out_cookies(c)
        now = await c.get("/dashboard", headers=NAVIGATION)
        clock.advance(120)
        later = await c.get("/dashboard", headers=NAVIGATION)
    assert fake.sessions[session_id].status == "ended"
    for r in (now, later):
        assert r.status_code == 307
        assert r.headers["location"] == SIGN_IN_DASHBOARD
        assert r.headers["x-clerk-auth-reason"] == "session-token-and-uat-missing"
    assert fake.handshakes == []


async def test_the_loop_guard_stops_a_failing_handshake(
    dev_app: FastAPI, fake: FakeClerk, clock: FakeClock
) -> None:
    """A failing handshake: three round trips, then signed out; the sign-in page says why."""
    async with client(dev_app) as c:
        token = await sign_in(c)
        switch = await c.post("/__dev/fakeclerk", params={"failing": "1"})
        assert switch.status_code == 200
        assert switch.json() == {"failing": True, "handshakes": []}
        clock.advance(120)
        for count in (1, 2, 3):
            r = await c.get("/dashboard", headers=NAVIGATION)
            assert r.status_code == 307
            assert r.headers["location"] == handshake_location(token)
            assert r.headers.get_list("set-cookie") == [
                f"__clerk_redirect_count={count}; SameSite=Lax; HttpOnly; Max-Age=2"
            ]
            back = await c.get(r.headers["location"], headers=NAVIGATION)
            assert back.status_code == 307
            assert back.headers["location"] == f"{ORIGIN}/dashboard"
            assert "set-cookie" not in back.headers
        stop = await c.get("/dashboard", headers=NAVIGATION)
        page = await c.get(stop.headers["location"], headers=NAVIGATION)
        record = await c.get("/__dev/fakeclerk")
    assert stop.status_code == 307
    assert stop.headers["location"] == SIGN_IN_DASHBOARD
    assert stop.headers["x-clerk-auth-reason"] == EXPIRED
    assert page.status_code == 200
    assert f"x-clerk-auth-reason:\n{EXPIRED}</code>" in page.text
    assert "the handshake's loop guard\ndoes this after three redirects in a row" in page.text
    unresolved = {
        "status": 307,
        "reason": EXPIRED,
        "redirect_url": f"{ORIGIN}/dashboard",
        "signed_in": None,
    }
    assert record.json() == {"failing": True, "handshakes": [unresolved] * 3}


@pytest.mark.parametrize("failing", [None, "", "yes", "2"])
async def test_the_fakeclerk_switch_refuses_other_values(
    dev_app: FastAPI, fake: FakeClerk, failing: str | None
) -> None:
    """POST /__dev/fakeclerk with failing other than 0 or 1: 400, the switch unchanged."""
    async with client(dev_app) as c:
        r = await c.post("/__dev/fakeclerk", params={} if failing is None else {"failing": failing})
    assert r.status_code == 400
    assert r.json() == {"error": "failing must be 0 or 1"}
    assert fake.failing is False


async def test_the_fakeclerk_switch_turns_back(dev_app: FastAPI, fake: FakeClerk) -> None:
    """POST /__dev/fakeclerk?failing=0 makes the handshake work again."""
    fake.failing = True
    async with client(dev_app) as c:
        r = await c.post("/__dev/fakeclerk", params={"failing": "0"}, headers=SAME_ORIGIN)
    assert r.status_code == 200
    assert r.json() == {"failing": False, "handshakes": []}
    assert fake.failing is False


# --- Clerk mode --------------------------------------------------------------------------------


async def test_clerk_sign_in_mounts_clerk_js_from_the_frontend_api(clerk_app: FastAPI) -> None:
    """Clerk mode: /sign-in loads clerk-js from the key's Frontend API and mounts <SignIn/>."""
    async with client(clerk_app) as c:
        r = await c.get("/sign-in", params={"redirect_url": f"{ORIGIN}/dashboard"})
    assert r.status_code == 200
    assert (
        '<script async crossorigin="anonymous" type="text/javascript" '
        f'data-clerk-publishable-key="{PUBLISHABLE_KEY}" src="{CLERK_JS}"></script>'
    ) in r.text
    assert f'<div id="clerk-component" data-redirect-url="{ORIGIN}/dashboard">' in r.text
    assert "if (clerk) { await clerk.load(); }" in r.text
    assert 'clerk.mountSignIn(root, { forceRedirectUrl: target, signUpUrl: "/sign-up" });' in (
        r.text
    )
    assert BANNER not in r.text
    assert "Sign in as" not in r.text
    assert "/__clerk" not in r.text


@pytest.mark.parametrize(
    ("redirect_url", "expected"),
    [
        ("https://evil.com/", "/"),
        ("javascript:alert(1)", "/"),
        ('/"><script>alert(1)</script>', "/&quot;&gt;&lt;script&gt;alert(1)&lt;/script&gt;"),
    ],
)
async def test_clerk_sign_in_checks_and_escapes_redirect_url(
    clerk_app: FastAPI, redirect_url: str, expected: str
) -> None:
    """Clerk mode: the redirect_url handed to clerk-js is same-origin and HTML-escaped."""
    async with client(clerk_app) as c:
        r = await c.get("/sign-in", params={"redirect_url": redirect_url})
    assert f'data-redirect-url="{expected}">' in r.text
    assert "<script>alert(1)" not in r.text


async def test_clerk_sign_up_mounts_sign_up(clerk_app: FastAPI) -> None:
    """Clerk mode: /sign-up mounts <SignUp/>, linking back to /sign-in."""
    async with client(clerk_app) as c:
        r = await c.get("/sign-up")
    assert r.status_code == 200
    assert 'clerk.mountSignUp(root, { forceRedirectUrl: target, signInUrl: "/sign-in" });' in (
        r.text
    )
    assert 'data-redirect-url="/"' in r.text


async def test_clerk_mode_has_no_fakeclerk(clerk_app: FastAPI) -> None:
    """Clerk mode: /__clerk and /__dev are the app's, behind the middleware (401 signed out)."""
    async with client(clerk_app) as c:
        for method, path in [
            ("POST", "/__clerk/v1/client/sign_ins"),
            ("POST", "/__dev/clock?advance=120"),
            ("POST", "/__dev/fakeclerk?failing=1"),
        ]:
            r = await c.request(method, path, json={"identifier": "ada@example.test"})
            assert r.status_code == 401
            assert r.json()["reason"] == "session-token-missing"
            assert "set-cookie" not in r.headers
    assert [cls for cls, _ in middleware(clerk_app)] == [ClerkMiddleware]
    assert not hasattr(clerk_app.state, "fake_clerk")


async def test_clerk_mode_has_no_development_routes_for_signed_in_users(
    clerk_app: FastAPI, key: KeyPair
) -> None:
    """Clerk mode, signed in: /__dev/clock and /__clerk/... are not routes of the app (404)."""
    token = mint_session_token(key, issuer="https://clerk.example.com", azp=ORIGIN)
    async with client(clerk_app) as c:
        clock = await c.post(
            "/__dev/clock?advance=120", headers={"authorization": f"Bearer {token}"}
        )
        proxy = await c.get("/__clerk/v1/client", headers={"authorization": f"Bearer {token}"})
    assert (clock.status_code, clock.json()) == (404, {"detail": "Not Found"})
    assert (proxy.status_code, proxy.json()) == (404, {"detail": "Not Found"})


async def test_clerk_mode_sends_signed_out_browsers_to_the_local_sign_in(
    clerk_app: FastAPI,
) -> None:
    """Clerk mode: sign_in_url stays /sign-in (not the Account Portal)."""
    async with client(clerk_app) as c:
        r = await c.get("/dashboard", headers=NAVIGATION)
    assert r.status_code == 307
    assert r.headers["location"] == SIGN_IN_DASHBOARD


async def test_clerk_mode_verifies_clerk_tokens(clerk_app: FastAPI, key: KeyPair) -> None:
    """Clerk mode: a Clerk session cookie opens the dashboard, which loads and uses clerk-js."""
    token = mint_session_token(
        key, user_id="user_real", issuer="https://clerk.example.com", azp=ORIGIN
    )
    async with client(clerk_app) as c:
        r = await c.get("/dashboard", headers={**NAVIGATION, "cookie": f"__session={token}"})
    assert r.status_code == 200
    assert '<dd id="user-id">user_real</dd>' in r.text
    assert f'src="{CLERK_JS}"' in r.text
    assert '<button id="sign-out" type="button">Sign out</button>' in r.text
    assert 'await clerk.signOut({ redirectUrl: "/" });' in r.text
    assert "clerk.session.getToken({ skipCache: true })" in r.text
    assert "async function fetchWithAuth(input, init = {}, { onRefresh } = {}) {" in r.text
    assert BANNER not in r.text


async def test_clerk_mode_with_a_secret_key_uses_the_handshake(
    example: ModuleType, key: KeyPair, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Clerk mode with both keys: a page load without a dev browser goes to the handshake."""
    monkeypatch.setenv("CLERK_PUBLISHABLE_KEY", PUBLISHABLE_KEY)
    monkeypatch.setenv("CLERK_SECRET_KEY", SECRET_KEY)
    monkeypatch.setenv("CLERK_JWT_KEY", key.public_pem)
    app: FastAPI = example.create_app()
    assert middleware(app)[0][1]["config"].handshake is True
    async with client(app) as c:
        r = await c.get("/dashboard", headers=NAVIGATION)
    assert r.status_code == 307
    assert r.headers["location"] == (
        "https://clerk.example.com/v1/client/handshake"
        "?redirect_url=http%3A%2F%2F127.0.0.1%3A8000%2Fdashboard&__clerk_api_version=2026-05-12"
        "&suffixed_cookies=false&__clerk_hs_reason=dev-browser-missing&format=nonce"
    )
    assert r.headers["x-clerk-auth-reason"] == "dev-browser-missing"


async def test_clerk_mode_refuses_fakeclerk_tokens(clerk_app: FastAPI, key: KeyPair) -> None:
    """Clerk mode: a token with FakeClerk's iss is refused, even with a trusted key."""
    token = mint_session_token(key, issuer=ISSUER, azp=ORIGIN)
    async with client(clerk_app) as c:
        r = await c.get("/api/me", headers={"cookie": f"__session={token}"})
    assert r.status_code == 401
    assert r.json()["reason"] == "token-invalid-issuer"


async def test_clerk_mode_without_publishable_key_explains_sign_in(
    example: ModuleType, key: KeyPair, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Clerk mode from CLERK_JWT_KEY alone: /sign-in says which variable mounts Clerk's UI."""
    monkeypatch.setenv("CLERK_JWT_KEY", key.public_pem)
    app: FastAPI = example.create_app()
    async with client(app) as c:
        r = await c.get("/sign-in")
    assert r.status_code == 200
    assert "Set\n<code>CLERK_PUBLISHABLE_KEY</code> to mount Clerk's sign in here." in r.text
    assert "src=" not in r.text  # no clerk-js to load
    assert BANNER not in r.text


@pytest.mark.parametrize(
    "publishable_key",
    [
        "pk_test_",
        "pk_prod_Y2xlcmsuZXhhbXBsZS5jb20k",
        "pk_test_not*base64",
        "pk_test_Y2xlcmsuZXhhbXBsZS5jb20",  # clerk.example.com without the "$"
        "pk_test_ZXZpbC5jb20vIj48c2NyaXB0PiQ=",  # evil.com/"><script>$
        "sk_test_abc",
    ],
)
def test_a_malformed_publishable_key_fails_at_start_up(
    example: ModuleType, monkeypatch: pytest.MonkeyPatch, publishable_key: str
) -> None:
    """A malformed CLERK_PUBLISHABLE_KEY stops create_app() with a message saying what to copy."""
    monkeypatch.setenv("CLERK_PUBLISHABLE_KEY", publishable_key)
    with pytest.raises(ConfigurationError, match=r"^Malformed Clerk publishable key"):
        example.create_app()


@pytest.mark.parametrize(
    ("variable", "value", "message"),
    [
        ("CLERK_SECRET_KEY", "garbage", "Malformed Clerk secret key"),
        ("CLERK_JWT_KEY", "not a pem", "jwt_key is not a PEM public key"),
        ("CLERK_AUTHORIZED_PARTIES", "127.0.0.1:8000", "Each authorized party must be an origin"),
    ],
)
def test_bad_clerk_settings_fail_at_start_up(
    example: ModuleType, monkeypatch: pytest.MonkeyPatch, variable: str, value: str, message: str
) -> None:
    """A bad CLERK_* value stops create_app() with the middleware's message, not a 500 later."""
    monkeypatch.setenv(variable, value)
    with pytest.raises(ConfigurationError, match=message):
        example.create_app()


def test_the_config_names_the_frontend_api_of_the_publishable_key() -> None:
    """pk_test_<base64("clerk.example.com$")> names the Frontend API clerk.example.com."""
    for key, instance in ((PUBLISHABLE_KEY, "development"), (LIVE_KEY, "production")):
        config = ClerkConfig(publishable_key=key)
        assert (config.frontend_api, config.instance_type) == ("clerk.example.com", instance)
