"""The example app (examples/app.py), page by page, through httpx.ASGITransport.

Each test builds its own app with ``create_app()`` under its own environment: development mode
(no Clerk keys: the dev issuer signs the tokens) or Clerk mode (a well-formed fake publishable
key for clerk.example.com, plus a PEM key so nothing ever reaches the network).
"""

from __future__ import annotations

import importlib.util
import sys
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import httpx
import jwt
import pytest
from fastapi import FastAPI

from clerk_asgi import ClerkConfig, ClerkMiddleware, ConfigurationError
from clerk_asgi.testing import KeyPair, mint_session_token

from .conftest import CLERK_ENV

pytestmark = pytest.mark.anyio

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"
ORIGIN = "http://127.0.0.1:8000"
#: A browser page load, as Chromium sends it.
NAVIGATION = {"accept": "text/html,application/xhtml+xml", "sec-fetch-dest": "document"}
BANNER = "development issuer — not Clerk"
#: pk_test_ + base64("clerk.example.com$"): well-formed, for an instance that does not exist.
PUBLISHABLE_KEY = "pk_test_Y2xlcmsuZXhhbXBsZS5jb20k"
LIVE_KEY = "pk_live_Y2xlcmsuZXhhbXBsZS5jb20k"
CLERK_JS = "https://clerk.example.com/npm/@clerk/clerk-js@5/dist/clerk.browser.js"


@pytest.fixture(scope="module")
def example() -> Iterator[ModuleType]:
    """examples/app.py imported as a module (its dev_issuer sibling importable), no CLERK_* set."""
    with pytest.MonkeyPatch.context() as mp:
        for name in CLERK_ENV:
            mp.delenv(name, raising=False)
        mp.syspath_prepend(str(EXAMPLES))
        spec = importlib.util.spec_from_file_location("clerk_asgi_example", EXAMPLES / "app.py")
        assert spec is not None
        assert spec.loader is not None
        module = importlib.util.module_from_spec(spec)
        mp.setitem(sys.modules, spec.name, module)  # dataclasses look their module up there
        spec.loader.exec_module(module)
        yield module


@pytest.fixture
def dev_app(example: ModuleType, key: KeyPair) -> FastAPI:
    """The app in development mode, its dev issuer signing with the session's test key."""
    app: FastAPI = example.create_app(dev_issuer=example.DevIssuer(key))
    return app


@pytest.fixture
def clerk_app(example: ModuleType, key: KeyPair, monkeypatch: pytest.MonkeyPatch) -> FastAPI:
    """The app in Clerk mode: a publishable key, and a PEM key instead of a JWKS fetch."""
    monkeypatch.setenv("CLERK_PUBLISHABLE_KEY", PUBLISHABLE_KEY)
    monkeypatch.setenv("CLERK_JWT_KEY", key.public_pem)
    app: FastAPI = example.create_app()
    return app


def client(app: FastAPI) -> httpx.AsyncClient:
    return httpx.AsyncClient(transport=httpx.ASGITransport(app), base_url=ORIGIN)


async def sign_in(c: httpx.AsyncClient, user: str, redirect_url: str = "/dashboard") -> str:
    """Sign in on the dev sign-in page; returns the session token (the client keeps the cookie)."""
    r = await c.post("/sign-in", data={"user": user, "redirect_url": redirect_url})
    assert r.status_code == 303
    token: str = r.cookies["__session"]
    return token


def claims_of(token: str, key: KeyPair) -> dict[str, Any]:
    decoded: dict[str, Any] = jwt.decode(
        token, key.public_pem, algorithms=["RS256"], options={"verify_aud": False}
    )
    return decoded


def set_cookie_attributes(response: httpx.Response) -> set[str]:
    """The attributes of the response's one Set-Cookie header, value excluded."""
    (header,) = response.headers.get_list("set-cookie")
    return set(header.split("; ")[1:])


# --- the module -------------------------------------------------------------------------------


def test_module_exposes_a_fastapi_app_in_development_mode(example: ModuleType) -> None:
    """`uvicorn --app-dir examples app:app` finds a FastAPI app, in dev mode without keys."""
    assert isinstance(example.app, FastAPI)
    (middleware,) = example.app.user_middleware
    cls: object = middleware.cls
    options: dict[str, Any] = middleware.kwargs
    assert cls is ClerkMiddleware
    config = options["config"]
    assert isinstance(config, ClerkConfig)
    assert config.issuer == "https://dev-issuer.invalid"
    assert config.jwt_key is not None
    assert config.jwks_url is None
    assert config.rules == tuple(example.RULES)
    assert config.sign_in_url == "/sign-in"
    assert config.authorized_parties == frozenset()


# --- development mode: pages --------------------------------------------------------------------


async def test_home_is_public_and_shows_the_signed_out_state(dev_app: FastAPI) -> None:
    """/ answers 200 to a signed-out browser, with the banner and a sign-in link."""
    async with client(dev_app) as c:
        r = await c.get("/", headers=NAVIGATION)
    assert r.status_code == 200
    assert r.headers["content-type"] == "text/html; charset=utf-8"
    assert BANNER in r.text
    assert "You are signed out." in r.text
    assert 'href="/sign-in?redirect_url=/dashboard"' in r.text
    assert "<script" not in r.text  # no clerk-js, no external assets


@pytest.mark.parametrize(
    ("path", "user", "status"),
    [
        ("/", None, 200),
        ("/sign-in", None, 200),
        ("/", "member", 200),
        ("/dashboard", "member", 200),
        ("/unauthorized", "member", 403),
        ("/admin", "admin", 200),
    ],
)
async def test_every_page_carries_the_dev_banner_and_is_not_cached(
    dev_app: FastAPI, path: str, user: str | None, status: int
) -> None:
    """Every HTML page says "development issuer — not Clerk" and is Cache-Control: no-store."""
    async with client(dev_app) as c:
        if user:
            await sign_in(c, user)
        r = await c.get(path, headers=NAVIGATION)
    assert r.status_code == status
    assert f'<div class="banner" role="note">{BANNER}</div>' in r.text
    assert r.headers["cache-control"] == "no-store"


async def test_dashboard_sends_a_signed_out_browser_to_sign_in(dev_app: FastAPI) -> None:
    """/dashboard, signed out: 307 to /sign-in with the absolute original URL as redirect_url."""
    async with client(dev_app) as c:
        r = await c.get("/dashboard?tab=org", headers=NAVIGATION)
    assert r.status_code == 307
    assert r.headers["location"] == (
        "/sign-in?redirect_url=http%3A%2F%2F127.0.0.1%3A8000%2Fdashboard%3Ftab%3Dorg"
    )
    assert r.headers["x-clerk-auth-reason"] == "session-token-missing"


async def test_dashboard_answers_401_to_a_signed_out_fetch(dev_app: FastAPI) -> None:
    """/dashboard, signed out, not a page load: 401 JSON instead of a redirect."""
    async with client(dev_app) as c:
        r = await c.get("/dashboard", headers={"accept": "*/*", "sec-fetch-dest": "empty"})
    assert r.status_code == 401
    assert r.json()["reason"] == "session-token-missing"


async def test_sign_in_page_offers_the_demo_users(dev_app: FastAPI) -> None:
    """/sign-in lists the member and the admin, each form carrying the checked redirect_url."""
    async with client(dev_app) as c:
        r = await c.get("/sign-in", params={"redirect_url": f"{ORIGIN}/dashboard"})
    assert r.status_code == 200
    assert r.text.count('<form class="card" method="post" action="/sign-in">') == 2
    assert r.text.count(f'name="redirect_url" value="{ORIGIN}/dashboard"') == 2
    assert '<button type="submit" name="user" value="member">Sign in as Mia Member' in r.text
    assert '<button type="submit" name="user" value="admin">Sign in as Ada Admin' in r.text
    assert "<code>org:admin</code>" in r.text


async def test_sign_in_page_drops_a_foreign_redirect_url(dev_app: FastAPI) -> None:
    """/sign-in?redirect_url=https://evil.com renders forms that return to / instead."""
    async with client(dev_app) as c:
        r = await c.get("/sign-in", params={"redirect_url": "https://evil.com/x"})
    assert r.status_code == 200
    assert "evil.com" not in r.text
    assert r.text.count('name="redirect_url" value="/"') == 2


async def test_sign_in_sets_a_verifiable_session_cookie(dev_app: FastAPI, key: KeyPair) -> None:
    """Choosing a user: 303 back to redirect_url, __session = a 1-hour token for this origin."""
    async with client(dev_app) as c:
        r = await c.post("/sign-in", data={"user": "admin", "redirect_url": f"{ORIGIN}/admin?x=1"})
    assert r.status_code == 303
    assert r.headers["location"] == f"{ORIGIN}/admin?x=1"
    assert set_cookie_attributes(r) == {"HttpOnly", "Max-Age=3600", "Path=/", "SameSite=lax"}
    claims = claims_of(r.cookies["__session"], key)
    assert claims["iss"] == "https://dev-issuer.invalid"
    assert claims["azp"] == ORIGIN
    assert claims["sub"] == "user_demo_admin"
    assert claims["o"] == {"id": "org_demo_acme", "slg": "acme", "rol": "admin"}
    assert claims["exp"] - claims["iat"] == 3600
    assert claims["sid"].startswith("sess_dev_")


async def test_each_sign_in_starts_a_new_session(dev_app: FastAPI, key: KeyPair) -> None:
    """Two sign-ins as the same user get two session ids."""
    async with client(dev_app) as c:
        first = claims_of(await sign_in(c, "member"), key)
        second = claims_of(await sign_in(c, "member"), key)
    assert first["sid"] != second["sid"]


@pytest.mark.parametrize(
    ("redirect_url", "location"),
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
    ],
)
async def test_sign_in_returns_only_to_this_origin(
    dev_app: FastAPI, redirect_url: str | None, location: str
) -> None:
    """After sign-in, redirect_url is followed only when same-origin: no open redirect."""
    form = {"user": "member"}
    if redirect_url is not None:
        form["redirect_url"] = redirect_url
    async with client(dev_app) as c:
        r = await c.post("/sign-in", data=form)
    assert r.status_code == 303
    assert r.headers["location"] == location


async def test_sign_in_refuses_an_unknown_user(dev_app: FastAPI) -> None:
    """Posting a user that is not a demo user: 400, the page again, no cookie."""
    async with client(dev_app) as c:
        r = await c.post("/sign-in", data={"user": "root", "redirect_url": "/dashboard"})
    assert r.status_code == 400
    assert "Pick one of the demo users." in r.text
    assert "set-cookie" not in r.headers


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
async def test_sign_in_refuses_a_form_posted_by_another_site(
    dev_app: FastAPI, headers: dict[str, str]
) -> None:
    """A sign-in form posted from another origin (login CSRF): 403, no cookie."""
    async with client(dev_app) as c:
        r = await c.post("/sign-in", data={"user": "admin"}, headers=headers)
    assert r.status_code == 403
    assert "set-cookie" not in r.headers


async def test_sign_in_accepts_a_same_origin_browser_post(dev_app: FastAPI) -> None:
    """The browser's own form post (Origin = this site, Sec-Fetch-Site same-origin) signs in."""
    headers = {"origin": ORIGIN, "sec-fetch-site": "same-origin"}
    async with client(dev_app) as c:
        r = await c.post("/sign-in", data={"user": "member"}, headers=headers)
    assert r.status_code == 303
    assert "__session" in r.cookies


async def test_dashboard_shows_the_session(dev_app: FastAPI, key: KeyPair) -> None:
    """/dashboard shows user, session, organization, role, token times and a sign-out button."""
    async with client(dev_app) as c:
        claims = claims_of(await sign_in(c, "member"), key)
        r = await c.get("/dashboard", headers=NAVIGATION)
    assert r.status_code == 200
    for ident, value in [
        ("user-id", "user_demo_member"),
        ("session-id", claims["sid"]),
        ("org-id", "org_demo_acme"),
        ("org-slug", "acme"),
        ("org-role", "org:member"),
        ("session-status", "active"),
    ]:
        assert f'<dd id="{ident}">{value}</dd>' in r.text
    assert '<dd id="issued-at">' in r.text
    assert "UTC (in 59 min)</dd>" in r.text or "UTC (in 60 min)</dd>" in r.text
    assert '<form class="inline" method="post" action="/sign-out">' in r.text
    assert "Signed in as <code>user_demo_member</code>" in r.text


async def test_member_is_sent_from_admin_to_unauthorized(dev_app: FastAPI) -> None:
    """A member opening /admin: 307 to /unauthorized, which explains why (403)."""
    async with client(dev_app) as c:
        await sign_in(c, "member")
        r = await c.get("/admin", headers=NAVIGATION)
        assert r.status_code == 307
        assert r.headers["location"] == "/unauthorized"
        page = await c.get("/unauthorized", headers=NAVIGATION)
    assert page.status_code == 403
    assert "needs the\n<code>org:admin</code> role" in page.text


async def test_admin_opens_admin(dev_app: FastAPI) -> None:
    """An org:admin opening /admin gets the page."""
    async with client(dev_app) as c:
        await sign_in(c, "admin")
        r = await c.get("/admin", headers=NAVIGATION)
    assert r.status_code == 200
    assert "<h1>Admin</h1>" in r.text
    assert "<code>user_demo_admin</code>" in r.text


async def test_admin_sends_a_signed_out_browser_to_sign_in(dev_app: FastAPI) -> None:
    """/admin, signed out: sign in first, then come back to /admin."""
    async with client(dev_app) as c:
        r = await c.get("/admin", headers=NAVIGATION)
    assert r.status_code == 307
    assert r.headers["location"] == "/sign-in?redirect_url=http%3A%2F%2F127.0.0.1%3A8000%2Fadmin"


# --- development mode: API ----------------------------------------------------------------------


async def test_api_me_returns_the_auth_and_x_user_id(dev_app: FastAPI, key: KeyPair) -> None:
    """/api/me: the Auth as JSON; x-user-id injected for the handler and echoed, spoofs dropped."""
    async with client(dev_app) as c:
        claims = claims_of(await sign_in(c, "admin"), key)
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
        "org_slug": "acme",
        "org_permissions": [],
        "session_status": "active",
        "actor": None,
        "issued_at": claims["iat"],
        "expires_at": claims["exp"],
        "reason": None,
        "x_user_id": "user_demo_admin",
    }


async def test_api_me_answers_401_json_when_signed_out(dev_app: FastAPI) -> None:
    """/api/me, signed out, even from a browser page load: 401 JSON, never a redirect."""
    async with client(dev_app) as c:
        r = await c.get("/api/me", headers=NAVIGATION)
    assert r.status_code == 401
    assert r.json() == {
        "error": "unauthorized",
        "reason": "session-token-missing",
        "message": "Sign in to continue.",
    }
    assert r.headers["www-authenticate"] == 'Bearer realm="clerk"'


@pytest.mark.parametrize(("user", "user_id"), [(None, None), ("member", "user_demo_member")])
async def test_public_ping_answers_everyone(
    dev_app: FastAPI, user: str | None, user_id: str | None
) -> None:
    """/api/public/ping is public: 200 signed out or in, seeing who asks, no x-user-id."""
    async with client(dev_app) as c:
        if user:
            await sign_in(c, user)
        r = await c.get("/api/public/ping")
    assert r.status_code == 200
    assert r.json() == {"ok": True, "user_id": user_id}
    assert "x-user-id" not in r.headers


async def test_a_token_from_another_key_is_refused(dev_app: FastAPI, attacker_key: KeyPair) -> None:
    """Verification is real: a dev-shaped token signed by another key gets nowhere."""
    token = mint_session_token(
        attacker_key, user_id="user_demo_admin", issuer="https://dev-issuer.invalid", azp=ORIGIN
    )
    async with client(dev_app) as c:
        r = await c.get("/api/me", headers={"cookie": f"__session={token}"})
    assert r.status_code == 401
    assert r.json()["reason"] == "token-invalid-signature"


# --- development mode: sign-up and sign-out -------------------------------------------------------


async def test_sign_up_leads_to_sign_in(dev_app: FastAPI) -> None:
    """/sign-up has nothing to create in dev mode: 307 to /sign-in, query kept."""
    async with client(dev_app) as c:
        r = await c.get("/sign-up?redirect_url=%2Fdashboard")
    assert r.status_code == 307
    assert r.headers["location"] == "/sign-in?redirect_url=%2Fdashboard"


async def test_sign_out_clears_the_cookie(dev_app: FastAPI) -> None:
    """POST /sign-out: 303 home, __session deleted; /dashboard then redirects to sign-in."""
    async with client(dev_app) as c:
        await sign_in(c, "member")
        r = await c.post("/sign-out", headers={"origin": ORIGIN})
        assert r.status_code == 303
        assert r.headers["location"] == "/"
        assert set_cookie_attributes(r) >= {"Max-Age=0", "Path=/", "SameSite=lax"}
        assert "__session" not in c.cookies
        again = await c.get("/dashboard", headers=NAVIGATION)
    assert again.status_code == 307
    assert again.headers["location"].startswith("/sign-in?redirect_url=")


async def test_sign_out_from_another_origin_is_refused(dev_app: FastAPI) -> None:
    """A cross-site POST /sign-out carrying the cookie: the middleware answers 401."""
    async with client(dev_app) as c:
        await sign_in(c, "member")
        r = await c.post("/sign-out", headers={"origin": "https://evil.com"})
    assert r.status_code == 401
    assert r.json()["reason"] == "origin-not-authorized"
    assert "set-cookie" not in r.headers


async def test_sign_out_needs_a_session(dev_app: FastAPI) -> None:
    """POST /sign-out without a session: 401 (it is protected by the default rule)."""
    async with client(dev_app) as c:
        r = await c.post("/sign-out")
    assert r.status_code == 401


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
    assert "await clerk.load();" in r.text
    assert 'clerk.mountSignIn(root, { forceRedirectUrl: target, signUpUrl: "/sign-up" });' in (
        r.text
    )
    assert BANNER not in r.text
    assert "Sign in as" not in r.text


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


async def test_clerk_mode_has_no_dev_sign_in(clerk_app: FastAPI) -> None:
    """Clerk mode: POST /sign-in does not exist (405): no way to mint a token."""
    async with client(clerk_app) as c:
        r = await c.post("/sign-in", data={"user": "admin"})
    assert r.status_code == 405
    assert "set-cookie" not in r.headers


async def test_clerk_mode_sends_signed_out_browsers_to_the_local_sign_in(
    clerk_app: FastAPI,
) -> None:
    """Clerk mode: sign_in_url stays /sign-in (not the Account Portal)."""
    async with client(clerk_app) as c:
        r = await c.get("/dashboard", headers=NAVIGATION)
    assert r.status_code == 307
    assert r.headers["location"] == (
        "/sign-in?redirect_url=http%3A%2F%2F127.0.0.1%3A8000%2Fdashboard"
    )


async def test_clerk_mode_verifies_clerk_tokens(clerk_app: FastAPI, key: KeyPair) -> None:
    """Clerk mode: a Clerk session cookie opens the dashboard, which loads clerk-js to refresh."""
    token = mint_session_token(
        key, user_id="user_real", issuer="https://clerk.example.com", azp=ORIGIN
    )
    async with client(clerk_app) as c:
        r = await c.get("/dashboard", headers={**NAVIGATION, "cookie": f"__session={token}"})
    assert r.status_code == 200
    assert '<dd id="user-id">user_real</dd>' in r.text
    assert f'src="{CLERK_JS}"' in r.text
    assert BANNER not in r.text


async def test_clerk_mode_refuses_dev_issuer_tokens(clerk_app: FastAPI, key: KeyPair) -> None:
    """Clerk mode: a token with the dev issuer's iss is refused, even with a trusted key."""
    token = mint_session_token(key, issuer="https://dev-issuer.invalid", azp=ORIGIN)
    async with client(clerk_app) as c:
        r = await c.get("/api/me", headers={"cookie": f"__session={token}"})
    assert r.status_code == 401
    assert r.json()["reason"] == "token-invalid-issuer"


async def test_clerk_sign_out_signs_out_through_clerk_js(clerk_app: FastAPI, key: KeyPair) -> None:
    """Clerk mode: POST /sign-out deletes the cookie and lets clerk-js end the Clerk session."""
    token = mint_session_token(key, issuer="https://clerk.example.com", azp=ORIGIN)
    async with client(clerk_app) as c:
        r = await c.post("/sign-out", headers={"origin": ORIGIN, "cookie": f"__session={token}"})
    assert r.status_code == 200
    assert 'await clerk.signOut({ redirectUrl: "/" });' in r.text
    assert set_cookie_attributes(r) >= {"Max-Age=0", "Path=/", "SameSite=lax"}


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
    assert "<script" not in r.text
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
