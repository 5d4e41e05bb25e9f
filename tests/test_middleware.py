"""ClerkMiddleware end to end: DESIGN §2's decision table, §6's decisions, security cases.

Most tests drive a FastAPI app built per test through ``httpx.ASGITransport``; header spellings a
client library would normalise (upper-case names, ``x_user_id``, malformed Host values, raw
paths) go through hand-built ASGI scopes and a recording ``Spy`` app instead. Tokens are real,
signed by the session ``key`` fixture, and time is the ``FakeClock``.

Case numbers refer to reference/security-cases.md.
"""

from __future__ import annotations

import base64
import logging
from collections.abc import Sequence
from typing import Any
from urllib.parse import parse_qs, quote, urlsplit

import anyio
import anyio.lowlevel
import httpx
import pytest
from fastapi import Depends, FastAPI, Request
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from clerk_asgi import Auth, ClerkMiddleware, ConfigurationError, Rule, current_auth
from clerk_asgi.testing import JWKSTransport, KeyPair, MockClerk, mint_session_token

from .conftest import FakeClock

pytestmark = pytest.mark.anyio

ORIGIN = "https://app.example.com"
JWKS_URL = "https://clerk.example.com/.well-known/jwks.json"
SIGN_IN = "https://accounts.example.com/sign-in"

RULES = [
    Rule.public("/", "/health", "/sign-in(.*)", "/public(.*)"),
    Rule.protect("/admin(.*)", role="org:admin", unauthorized_url="/unauthorized"),
    Rule.protect("/billing(.*)", permission="org:billing:manage"),
    Rule.api("/api/admin(.*)", role="org:admin"),
    Rule.api("/api/(.*)"),
]

#: A top-level page load, as a browser sends it.
BROWSER = {
    "sec-fetch-dest": "document",
    "sec-fetch-mode": "navigate",
    "accept": "text/html,application/xhtml+xml,*/*;q=0.8",
}
#: A fetch()/XHR call from a page.
FETCH = {"sec-fetch-dest": "empty", "sec-fetch-mode": "cors", "accept": "*/*"}

MESSAGES = {
    "session-token-missing": "Sign in to continue.",
    "token-invalid": "The session token is malformed.",
    "token-invalid-signature": "The session token's signature is invalid.",
    "token-expired": "The session token has expired; fetch a fresh one and retry.",
    "origin-not-authorized": "Cookie-authenticated request from an origin that is not allowed.",
    "jwk-kid-mismatch": "No signing key matches this session token.",
    "authorization-failed": "You are signed in but not allowed to access this resource.",
}

#: Response headers every assertion looks at; each must appear at most once.
RELEVANT = (
    "cache-control",
    "content-type",
    "location",
    "retry-after",
    "www-authenticate",
    "x-clerk-auth-reason",
    "x-clerk-auth-status",
    "x-user-id",
)


# -- helpers ---------------------------------------------------------------------------------


def make_app(
    clerk: MockClerk, clock: FakeClock, *, rules: Sequence[Rule] = RULES, **options: Any
) -> FastAPI:
    """A FastAPI app whose every route reports the Auth and the x-user-id headers it saw."""
    app = FastAPI()

    @app.api_route(
        "/{path:path}", methods=["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"]
    )
    async def spy(request: Request, auth: Auth = Depends(current_auth)) -> dict[str, Any]:
        for _ in range(int(request.query_params.get("checkpoints", "0"))):
            await anyio.lowlevel.checkpoint()
        return {
            "user_id": auth.user_id,
            "reason": auth.reason,
            "x-user-id": request.headers.getlist("x-user-id"),
        }

    app.add_middleware(
        ClerkMiddleware, **clerk.middleware_options(rules=rules, clock=clock, **options)
    )
    return app


def client(app: ASGIApp) -> httpx.AsyncClient:
    return httpx.AsyncClient(transport=httpx.ASGITransport(app), base_url=ORIGIN)


def relevant(r: httpx.Response) -> dict[str, str]:
    """The RELEVANT headers of ``r``; fails if any of them is repeated."""
    found: dict[str, str] = {}
    for name in RELEVANT:
        values = r.headers.get_list(name)
        assert len(values) <= 1, f"{name} sent {len(values)} times: {values}"
        if values:
            found[name] = values[0]
    return found


def assert_401(r: httpx.Response, reason: str, *, presented: bool) -> None:
    """A 401 sent by the middleware: exact headers and JSON body."""
    challenge = 'Bearer realm="clerk"'
    if presented:
        challenge += f', error="invalid_token", error_description="{reason}"'
    assert r.status_code == 401
    assert relevant(r) == {
        "cache-control": "no-store",
        "content-type": "application/json",
        "www-authenticate": challenge,
        "x-clerk-auth-reason": reason,
        "x-clerk-auth-status": "signed-out",
    }
    assert r.json() == {"error": "unauthorized", "reason": reason, "message": MESSAGES[reason]}


def assert_403(r: httpx.Response) -> None:
    """A 403 sent by the middleware: exact headers and JSON body."""
    assert r.status_code == 403
    assert relevant(r) == {
        "cache-control": "no-store",
        "content-type": "application/json",
        "x-clerk-auth-reason": "authorization-failed",
        "x-clerk-auth-status": "signed-in",
    }
    assert r.json() == {
        "error": "forbidden",
        "reason": "authorization-failed",
        "message": MESSAGES["authorization-failed"],
    }


def assert_redirect(
    r: httpx.Response, location: str, reason: str, *, status: str = "signed-out"
) -> None:
    """A 307 sent by the middleware: exact headers, empty body."""
    assert r.status_code == 307
    assert relevant(r) == {
        "cache-control": "no-store",
        "location": location,
        "x-clerk-auth-reason": reason,
        "x-clerk-auth-status": status,
    }
    assert r.content == b""


def redirect_url_of(location: str) -> str:
    """The single redirect_url parameter of a sign-in Location (fails if there are several)."""
    params = parse_qs(urlsplit(location).query, keep_blank_values=True)
    assert list(params) == ["redirect_url"]
    (value,) = params["redirect_url"]
    return value


def sign_in_location(redirect_url: str, sign_in: str = "/sign-in") -> str:
    return f"{sign_in}?redirect_url={quote(redirect_url, safe='')}"


def assert_ran(
    r: httpx.Response,
    user_id: str | None,
    reason: str | None = None,
    *,
    injected: bool = False,
) -> None:
    """The app ran and saw ``user_id``; on API routes (``injected``) one x-user-id both ways."""
    assert r.status_code == 200
    assert r.json() == {
        "user_id": user_id,
        "reason": reason,
        "x-user-id": [user_id] if injected else [],
    }
    expected = {"content-type": "application/json"}
    if injected:
        assert user_id is not None
        expected["x-user-id"] = user_id
    assert relevant(r) == expected


def bearer(token: str) -> dict[str, str]:
    return {"authorization": f"Bearer {token}"}


def session(token: str) -> dict[str, str]:
    return {"cookie": f"__session={token}"}


def admin_token(clerk: MockClerk, clock: FakeClock, user_id: str = "user_admin") -> str:
    return clerk.token(issued_at=clock.now, user_id=user_id, org_id="org_1", org_role="org:admin")


class Spy:
    """A downstream ASGI app that records every scope it is called with and answers 200."""

    def __init__(self) -> None:
        self.scopes: list[Scope] = []

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        self.scopes.append(scope)
        if scope["type"] == "http":
            await send({"type": "http.response.start", "status": 200, "headers": []})
            await send({"type": "http.response.body", "body": b"ok"})


def http_scope(
    path: str,
    headers: Sequence[tuple[bytes, bytes]] = (),
    *,
    method: str = "GET",
    raw_path: bytes | None = None,
    query: bytes = b"",
    root_path: str = "",
    host: bytes | None = b"app.example.com",
    server: tuple[str, int] | None = ("app.example.com", 443),
) -> dict[str, Any]:
    """An HTTP scope as a server would build it (header names as given, not lower-cased)."""
    scope: dict[str, Any] = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": method,
        "scheme": "https",
        "path": path,
        "raw_path": raw_path if raw_path is not None else path.encode("utf-8"),
        "query_string": query,
        "root_path": root_path,
        "headers": ([(b"host", host)] if host is not None else []) + list(headers),
        "client": ("203.0.113.9", 50000),
        "server": server,
    }
    if raw_path is None:
        del scope["raw_path"]
    return scope


async def call(app: ASGIApp, scope: Scope) -> list[Message]:
    """Run one HTTP request through ``app`` and return the messages it sent."""
    sent: list[Message] = []

    async def receive() -> Message:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: Message) -> None:
        sent.append(message)

    await app(scope, receive, send)
    return sent


def response_headers(sent: list[Message]) -> dict[str, str]:
    (start,) = [m for m in sent if m["type"] == "http.response.start"]
    names = [n for n, _ in start["headers"]]
    assert len(names) == len(set(names)), names
    return {n.decode(): v.decode("ascii") for n, v in start["headers"]}


def identity_headers(scope: Scope) -> list[tuple[bytes, bytes]]:
    """Every header of ``scope`` whose name is some spelling of x-user-id."""
    return [(n, v) for n, v in scope["headers"] if n.lower().replace(b"_", b"-") == b"x-user-id"]


def library_records(caplog: pytest.LogCaptureFixture) -> list[logging.LogRecord]:
    """The log records of clerk_asgi (httpx's own client logs the URLs the tests request)."""
    return [r for r in caplog.records if r.name.split(".")[0] == "clerk_asgi"]


def middleware(
    app: ASGIApp,
    clerk: MockClerk,
    clock: FakeClock,
    *,
    rules: Sequence[Rule] = RULES,
    **options: Any,
) -> ClerkMiddleware:
    return ClerkMiddleware(app, **clerk.middleware_options(rules=rules, clock=clock, **options))


# -- DESIGN §2: public rule -------------------------------------------------------------------


async def test_public_route_signed_out_runs_the_app_with_a_signed_out_auth(
    clerk: MockClerk, clock: FakeClock
) -> None:
    """public x signed out: the app runs and sees a signed-out Auth; no auth headers added."""
    async with client(make_app(clerk, clock)) as c:
        r = await c.get("/public/info", headers=BROWSER)
    assert_ran(r, None, "session-token-missing")


async def test_public_route_with_a_bad_token_runs_the_app_with_the_reason(
    clerk: MockClerk, clock: FakeClock, attacker_key: KeyPair
) -> None:
    """public x invalid token: the app runs signed out, Auth.reason says why."""
    forged = mint_session_token(attacker_key, issued_at=clock.now)
    async with client(make_app(clerk, clock)) as c:
        r = await c.get("/", headers=bearer(forged))
    assert_ran(r, None, "token-invalid-signature")


async def test_public_route_signed_in_runs_the_app_without_identity_header(
    clerk: MockClerk, clock: FakeClock
) -> None:
    """public x signed in: the app sees the user in Auth, but no x-user-id (API routes only)."""
    async with client(make_app(clerk, clock)) as c:
        r = await c.get("/public/info", headers=bearer(clerk.token(issued_at=clock.now)))
    assert_ran(r, "user_test")


# -- DESIGN §2: protect rule, signed out ------------------------------------------------------


@pytest.mark.parametrize(
    ("method", "headers"),
    [
        pytest.param("GET", BROWSER, id="get-document"),
        pytest.param("HEAD", BROWSER, id="head-document"),
        pytest.param("GET", {"sec-fetch-dest": "iframe"}, id="get-iframe"),
        pytest.param("GET", {"accept": "text/html"}, id="accept-html-no-fetch-metadata"),
        pytest.param(
            "GET", {"accept": "application/xhtml+xml,text/html;q=0.9"}, id="accept-html-later"
        ),
    ],
)
async def test_protect_signed_out_navigation_redirects_to_sign_in(
    clerk: MockClerk, clock: FakeClock, method: str, headers: dict[str, str]
) -> None:
    """Case 1 (DESIGN §6 redirect status): a GET/HEAD navigation is sent 307 to sign-in."""
    async with client(make_app(clerk, clock)) as c:
        r = await c.request(method, "/dashboard", headers=headers)
    assert_redirect(
        r, sign_in_location("https://app.example.com/dashboard"), "session-token-missing"
    )


@pytest.mark.parametrize(
    ("method", "headers"),
    [
        pytest.param("POST", BROWSER, id="post-form-document"),
        pytest.param("PUT", BROWSER, id="put-document"),
        pytest.param("DELETE", BROWSER, id="delete-document"),
        pytest.param("OPTIONS", BROWSER, id="options-document"),
        pytest.param("GET", FETCH, id="fetch"),
        pytest.param("GET", {**FETCH, "accept": "text/html"}, id="fetch-accepting-html"),
        pytest.param("GET", {"accept": "application/json"}, id="accept-json"),
        pytest.param(
            "GET", {"accept": "text/html", "x-requested-with": "XMLHttpRequest"}, id="xhr"
        ),
        pytest.param("GET", {"sec-fetch-dest": "script", "accept": "text/html"}, id="script"),
        pytest.param("GET", {"sec-fetch-dest": "image", "accept": "*/*"}, id="image"),
        pytest.param("GET", {}, id="no-browser-headers"),
    ],
)
async def test_protect_signed_out_non_navigation_gets_401(
    clerk: MockClerk, clock: FakeClock, method: str, headers: dict[str, str]
) -> None:
    """Case 80: anything but a GET/HEAD navigation gets 401 JSON, never a Location."""
    async with client(make_app(clerk, clock)) as c:
        r = await c.request(method, "/dashboard", headers=headers)
    assert_401(r, "session-token-missing", presented=False)


async def test_protect_signed_out_with_expired_cookie_redirects_with_the_reason(
    clerk: MockClerk, clock: FakeClock
) -> None:
    """A returning visitor's expired __session on a navigation: 307, reason token-expired."""
    token = clerk.token(issued_at=clock.now - 3600)
    async with client(make_app(clerk, clock)) as c:
        r = await c.get("/dashboard", headers={**BROWSER, **session(token)})
    assert_redirect(r, sign_in_location("https://app.example.com/dashboard"), "token-expired")


async def test_protect_signed_out_with_invalid_bearer_gets_401_naming_the_token(
    clerk: MockClerk, clock: FakeClock
) -> None:
    """A presented but invalid token on a fetch: 401 with error="invalid_token" in the challenge."""
    token = clerk.token(issued_at=clock.now - 3600)
    async with client(make_app(clerk, clock)) as c:
        r = await c.get("/dashboard", headers={**FETCH, **bearer(token)})
    assert_401(r, "token-expired", presented=True)


async def test_protect_without_sign_in_url_answers_401_to_navigations(
    clerk: MockClerk, clock: FakeClock
) -> None:
    """No sign_in_url (and no publishable key): browser navigations get 401, not a redirect."""
    async with client(make_app(clerk, clock, sign_in_url=None)) as c:
        r = await c.get("/dashboard", headers=BROWSER)
    assert_401(r, "session-token-missing", presented=False)


async def test_sign_in_url_comes_from_the_environment(
    clerk: MockClerk, clock: FakeClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    """CLERK_SIGN_IN_URL is the fallback for sign_in_url."""
    monkeypatch.setenv("CLERK_SIGN_IN_URL", SIGN_IN)
    async with client(make_app(clerk, clock, sign_in_url=None)) as c:
        r = await c.get("/dashboard", headers=BROWSER)
    assert_redirect(
        r,
        sign_in_location("https://app.example.com/dashboard", SIGN_IN),
        "session-token-missing",
    )


async def test_unmatched_path_gets_the_protect_default(clerk: MockClerk, clock: FakeClock) -> None:
    """A path no rule matches is protected (default-deny), like the seed."""
    async with client(make_app(clerk, clock, rules=[])) as c:
        nav = await c.get("/anything", headers=BROWSER)
        api = await c.get("/api/anything", headers=FETCH)
        ok = await c.get("/anything", headers=bearer(clerk.token(issued_at=clock.now)))
    assert_redirect(
        nav, sign_in_location("https://app.example.com/anything"), "session-token-missing"
    )
    assert_401(api, "session-token-missing", presented=False)
    assert_ran(ok, "user_test")


@pytest.mark.parametrize(
    ("default", "status"),
    [pytest.param("public", 200, id="public"), pytest.param("api", 401, id="api")],
)
async def test_default_rule_is_configurable(
    clerk: MockClerk, clock: FakeClock, default: str, status: int
) -> None:
    """default="public"/"api" applies to unmatched paths (api: never a redirect)."""
    async with client(make_app(clerk, clock, rules=[], default=default)) as c:
        r = await c.get("/anything", headers=BROWSER)
    assert r.status_code == status
    assert "location" not in r.headers


# -- DESIGN §2: protect rule, signed in -------------------------------------------------------


async def test_protect_signed_in_without_role_navigation_goes_to_unauthorized_url(
    clerk: MockClerk, clock: FakeClock
) -> None:
    """Case 81: has() fails on a navigation with unauthorized_url -> 307 there, never sign-in."""
    async with client(make_app(clerk, clock)) as c:
        r = await c.get(
            "/admin/users", headers={**BROWSER, **bearer(clerk.token(issued_at=clock.now))}
        )
    assert_redirect(r, "/unauthorized", "authorization-failed", status="signed-in")


@pytest.mark.parametrize("method", ["GET", "POST"])
async def test_protect_signed_in_without_role_fetch_also_goes_to_unauthorized_url(
    clerk: MockClerk, clock: FakeClock, method: str
) -> None:
    """DESIGN §2: with unauthorized_url, has() failing redirects every HTTP request there (as
    Clerk's protect() does), never to sign-in."""
    async with client(make_app(clerk, clock)) as c:
        r = await c.request(
            method, "/admin/users", headers={**FETCH, **bearer(clerk.token(issued_at=clock.now))}
        )
    assert_redirect(r, "/unauthorized", "authorization-failed", status="signed-in")


@pytest.mark.parametrize("headers", [BROWSER, FETCH], ids=["navigation", "fetch"])
async def test_protect_signed_in_without_permission_and_no_unauthorized_url_gets_403(
    clerk: MockClerk, clock: FakeClock, headers: dict[str, str]
) -> None:
    """has() fails and no unauthorized_url: 403 for navigations and fetches alike."""
    token = clerk.token(
        issued_at=clock.now, org_id="org_1", org_role="org:member", org_permissions=["org:x:y"]
    )
    async with client(make_app(clerk, clock)) as c:
        r = await c.get("/billing", headers={**headers, **bearer(token)})
    assert_403(r)


async def test_protect_signed_in_and_allowed_runs_the_app_without_identity_header(
    clerk: MockClerk, clock: FakeClock
) -> None:
    """protect x allowed: the app runs; x-user-id is injected on API routes only."""
    billing = clerk.token(
        issued_at=clock.now,
        user_id="user_b",
        org_id="org_1",
        org_role="org:member",
        org_permissions=["org:billing:manage"],
    )
    async with client(make_app(clerk, clock)) as c:
        admin = await c.get(
            "/admin/users", headers={**BROWSER, **bearer(admin_token(clerk, clock))}
        )
        paying = await c.get("/billing", headers=bearer(billing))
        plain = await c.get("/dashboard", headers=session(clerk.token(issued_at=clock.now)))
    assert_ran(admin, "user_admin")
    assert_ran(paying, "user_b")
    assert_ran(plain, "user_test")


# -- DESIGN §2: api rule ----------------------------------------------------------------------


@pytest.mark.parametrize(
    "headers",
    [BROWSER, FETCH, {**BROWSER, "accept": "text/html"}],
    ids=["navigation", "fetch", "accept-html"],
)
async def test_api_signed_out_gets_401_json_never_a_redirect(
    clerk: MockClerk, clock: FakeClock, headers: dict[str, str]
) -> None:
    """Cases 1, 80: api x signed out -> 401 JSON, even for a browser navigation."""
    async with client(make_app(clerk, clock)) as c:
        r = await c.get("/api/things", headers=headers)
    assert_401(r, "session-token-missing", presented=False)


@pytest.mark.parametrize("headers", [BROWSER, FETCH], ids=["navigation", "fetch"])
async def test_api_signed_in_without_role_gets_403_json(
    clerk: MockClerk, clock: FakeClock, headers: dict[str, str]
) -> None:
    """Case 81: api x has() fails -> 403 JSON, never a redirect."""
    async with client(make_app(clerk, clock)) as c:
        r = await c.get(
            "/api/admin/x", headers={**headers, **bearer(clerk.token(issued_at=clock.now))}
        )
    assert_403(r)


async def test_api_signed_in_and_allowed_injects_and_echoes_x_user_id(
    clerk: MockClerk, clock: FakeClock
) -> None:
    """api x allowed: the app runs, sees one x-user-id, and the response echoes it."""
    async with client(make_app(clerk, clock)) as c:
        r = await c.get("/api/things", headers=bearer(clerk.token(issued_at=clock.now)))
        admin = await c.get("/api/admin/x", headers=bearer(admin_token(clerk, clock)))
    assert_ran(r, "user_test", injected=True)
    assert_ran(admin, "user_admin", injected=True)


# -- Case 1-4, 12: where the token comes from (DESIGN §6 header vs cookie) --------------------


async def test_no_credentials_never_fetches_keys(clerk: MockClerk, clock: FakeClock) -> None:
    """Case 1: no token at all -> redirect / 401 and not a single JWKS fetch (F=0)."""
    transport = clerk.transport()
    async with httpx.AsyncClient(transport=transport) as http:
        app = make_app(clerk, clock, jwt_key=None, jwks_url=JWKS_URL, http_client=http)
        async with client(app) as c:
            page = await c.get("/dashboard", headers=BROWSER)
            api = await c.get("/api/things", headers=FETCH)
    assert_redirect(
        page, sign_in_location("https://app.example.com/dashboard"), "session-token-missing"
    )
    assert_401(api, "session-token-missing", presented=False)
    assert transport.requests == []


@pytest.mark.parametrize(
    ("value", "reason", "presented"),
    [
        pytest.param("Basic dXNlcjpwYXNz", "session-token-missing", False, id="basic"),
        pytest.param("Token {T}", "session-token-missing", False, id="token-scheme"),
        pytest.param("bearer {T}", "session-token-missing", False, id="lowercase-bearer"),
        pytest.param("BEARER {T}", "session-token-missing", False, id="uppercase-bearer"),
        pytest.param("Bearer", "token-invalid", True, id="bearer-alone"),
        pytest.param("Bearer-invalid", "token-invalid", True, id="bearer-dash"),
        pytest.param("Bearer  {T}", "token-invalid", True, id="two-spaces"),
        pytest.param("Bearer {T} extra", "token-invalid", True, id="trailing-garbage"),
        pytest.param("Bearer {T},Bearer {T}", "token-invalid", True, id="comma-list"),
    ],
)
async def test_odd_authorization_schemes_never_authenticate(
    clerk: MockClerk, clock: FakeClock, value: str, reason: str, presented: bool
) -> None:
    """Case 2: odd schemes and shapes are refused; Bearer is exact-case (Clerk), F=0, no 500."""
    token = clerk.token(issued_at=clock.now)
    transport = clerk.transport()
    async with httpx.AsyncClient(transport=transport) as http:
        app = make_app(clerk, clock, jwt_key=None, jwks_url=JWKS_URL, http_client=http)
        async with client(app) as c:
            r = await c.get("/api/things", headers={"authorization": value.format(T=token)})
    assert_401(r, reason, presented=presented)
    assert transport.requests == []


async def test_bare_token_in_authorization_is_accepted(clerk: MockClerk, clock: FakeClock) -> None:
    """Case 2: a bare token (no scheme) is a token, as in Clerk."""
    async with client(make_app(clerk, clock)) as c:
        r = await c.get("/api/things", headers={"authorization": clerk.token(issued_at=clock.now)})
    assert_ran(r, "user_test", injected=True)


@pytest.mark.parametrize("valid_first", [True, False], ids=["valid-first", "forged-first"])
async def test_two_authorization_headers_are_refused_in_either_order(
    clerk: MockClerk, clock: FakeClock, attacker_key: KeyPair, valid_first: bool
) -> None:
    """Case 3: two Authorization headers -> 401 token-invalid, whatever their order."""
    valid = ("authorization", f"Bearer {clerk.token(issued_at=clock.now)}")
    forged = ("authorization", f"Bearer {mint_session_token(attacker_key, issued_at=clock.now)}")
    headers = [valid, forged] if valid_first else [forged, valid]
    async with client(make_app(clerk, clock)) as c:
        r = await c.get("/api/things", headers=headers)
        twice = await c.get("/api/things", headers=[valid, valid])
        thrice = await c.get("/api/things", headers=[valid, forged, valid])
    assert_401(r, "token-invalid", presented=True)
    assert_401(twice, "token-invalid", presented=True)
    assert_401(thrice, "token-invalid", presented=True)


async def test_one_authorization_among_repeated_headers_is_used(
    clerk: MockClerk, clock: FakeClock
) -> None:
    """Other header names repeating (two Accept, two Cookie) change nothing: the one
    Authorization header still carries the token, and wins over the cookies."""
    headers = [
        ("accept", "application/json"),
        ("cookie", "theme=dark"),
        ("authorization", f"Bearer {clerk.token(issued_at=clock.now)}"),
        ("accept", "text/plain"),
        ("cookie", "__session=not-a-token"),
    ]
    async with client(make_app(clerk, clock)) as c:
        r = await c.get("/api/things", headers=headers)
    assert_ran(r, "user_test", injected=True)


async def test_header_token_wins_over_cookie_even_when_invalid(
    clerk: MockClerk, clock: FakeClock, attacker_key: KeyPair
) -> None:
    """Case 4b, DESIGN §6: a forged header token is refused; the valid cookie is not tried."""
    forged = mint_session_token(attacker_key, issued_at=clock.now)
    headers = {**bearer(forged), **session(clerk.token(issued_at=clock.now))}
    async with client(make_app(clerk, clock)) as c:
        r = await c.get("/api/things", headers=headers)
    assert_401(r, "token-invalid-signature", presented=True)


async def test_valid_header_token_wins_over_a_forged_cookie(
    clerk: MockClerk, clock: FakeClock, attacker_key: KeyPair
) -> None:
    """Case 4a: a valid header token authenticates; a cookie next to it is never looked at."""
    forged = mint_session_token(attacker_key, issued_at=clock.now, user_id="user_evil")
    headers = {**bearer(clerk.token(issued_at=clock.now)), **session(forged)}
    async with client(make_app(clerk, clock)) as c:
        r = await c.get("/api/things", headers=headers)
    assert_ran(r, "user_test", injected=True)


@pytest.mark.parametrize(
    "authorization",
    ["Basic dXNlcjpwYXNz", "bearer {T}", "Token {T}", ""],
    ids=["basic", "lowercase-bearer", "token-scheme", "empty"],
)
async def test_non_bearer_authorization_falls_back_to_the_cookie(
    clerk: MockClerk, clock: FakeClock, attacker_key: KeyPair, authorization: str
) -> None:
    """Case 4c, DESIGN §6: a header that yields no token is ignored; the cookie is used."""
    forged = mint_session_token(attacker_key, issued_at=clock.now)
    headers = {
        "authorization": authorization.format(T=forged),
        **session(clerk.token(issued_at=clock.now, user_id="user_cookie")),
    }
    async with client(make_app(clerk, clock)) as c:
        r = await c.get("/api/things", headers=headers)
    assert_ran(r, "user_cookie", injected=True)


@pytest.mark.parametrize(
    ("url", "headers"),
    [
        pytest.param("/api/things?token={T}", {}, id="query-token"),
        pytest.param("/api/things?__session={T}", {}, id="query-session"),
        pytest.param("/api/things?__clerk_handshake={T}", {}, id="query-handshake"),
        pytest.param("/api/things?__clerk_db_jwt={T}", {}, id="query-db-jwt"),
        pytest.param("/api/things", {"x-auth-token": "{T}"}, id="x-auth-token"),
        pytest.param("/api/things", {"x-clerk-auth-token": "{T}"}, id="x-clerk-auth-token"),
        pytest.param("/api/things", {"cookie": "session={T}"}, id="cookie-session"),
        pytest.param("/api/things", {"cookie": "__Session={T}"}, id="cookie-other-case"),
        pytest.param("/api/things", {"cookie": "__session_abc={T}"}, id="cookie-suffixed"),
        pytest.param("/api/things", {"cookie": "__sessionX={T}"}, id="cookie-longer-name"),
    ],
)
async def test_tokens_in_other_places_are_not_read(
    clerk: MockClerk,
    clock: FakeClock,
    caplog: pytest.LogCaptureFixture,
    url: str,
    headers: dict[str, str],
) -> None:
    """Cases 12, 57: only Authorization and the exact __session cookie carry tokens; F=0."""
    token = clerk.token(issued_at=clock.now)
    transport = clerk.transport()
    caplog.set_level(logging.DEBUG, logger="clerk_asgi")
    async with httpx.AsyncClient(transport=transport) as http:
        app = make_app(clerk, clock, jwt_key=None, jwks_url=JWKS_URL, http_client=http)
        async with client(app) as c:
            r = await c.get(
                url.format(T=token), headers={k: v.format(T=token) for k, v in headers.items()}
            )
    assert_401(r, "session-token-missing", presented=False)
    assert transport.requests == []
    assert all(token not in r.getMessage() for r in library_records(caplog))


# -- Cases 54-57: the __session cookie (DESIGN §6 duplicate cookies) ---------------------------


@pytest.mark.parametrize(
    ("cookies", "user_id"),
    [
        pytest.param(["__session={V}; __session={F}"], "user_test", id="valid-first"),
        pytest.param(["__session={F}; __session={V}"], None, id="forged-first"),
        pytest.param(["__session={V}", "__session={F}"], "user_test", id="two-headers-valid-first"),
        pytest.param(["__session={F}", "__session={V}"], None, id="two-headers-forged-first"),
    ],
)
async def test_first_duplicate_session_cookie_wins(
    clerk: MockClerk,
    clock: FakeClock,
    attacker_key: KeyPair,
    cookies: list[str],
    user_id: str | None,
) -> None:
    """Case 54, DESIGN §6: the first __session wins (Clerk), across one or two Cookie headers."""
    valid = clerk.token(issued_at=clock.now)
    forged = mint_session_token(attacker_key, issued_at=clock.now, user_id="user_evil")
    headers = [("cookie", c.format(V=valid, F=forged)) for c in cookies]
    async with client(make_app(clerk, clock)) as c:
        r = await c.get("/api/things", headers=headers)
    if user_id is None:
        assert_401(r, "token-invalid-signature", presented=True)
    else:
        assert_ran(r, user_id, injected=True)


async def test_percent_encoded_semicolon_cannot_forge_a_session_cookie(
    clerk: MockClerk, clock: FakeClock
) -> None:
    """Case 55: sid=x%3B__session%3D<T> is one cookie named sid -> signed out."""
    token = clerk.token(issued_at=clock.now)
    async with client(make_app(clerk, clock)) as c:
        r = await c.get(
            "/api/things", headers={"cookie": f"sid=x%3B__session%3D{token}%3B__client_uat%3D1"}
        )
    assert_401(r, "session-token-missing", presented=False)


@pytest.mark.parametrize(
    "cookie",
    [
        '__session="{T}"',
        "__session = {T}",
        "$Version=1; __session={T}",
        'a="unterminated; __session={T}',
        "foo=%C0; __session={T}",
        "novalue; __session={T}",
    ],
    ids=["quoted", "spaces", "version", "unterminated-quote", "bad-escape", "no-equals"],
)
async def test_cookie_syntax_oddities_still_find_the_session(
    clerk: MockClerk, clock: FakeClock, cookie: str
) -> None:
    """Case 56: quoted values are unquoted; malformed neighbours do not hide __session."""
    async with client(make_app(clerk, clock)) as c:
        r = await c.get(
            "/api/things", headers={"cookie": cookie.format(T=clerk.token(issued_at=clock.now))}
        )
    assert_ran(r, "user_test", injected=True)


@pytest.mark.parametrize("cookie", ["__session=", "__session", '__session=""', "__session=;a=1"])
async def test_empty_session_cookie_is_no_token(
    clerk: MockClerk, clock: FakeClock, cookie: str
) -> None:
    """Case 56: an empty or value-less __session is no token at all (F=0)."""
    transport = clerk.transport()
    async with httpx.AsyncClient(transport=transport) as http:
        app = make_app(clerk, clock, jwt_key=None, jwks_url=JWKS_URL, http_client=http)
        async with client(app) as c:
            r = await c.get("/api/things", headers={"cookie": cookie})
    assert_401(r, "session-token-missing", presented=False)
    assert transport.requests == []


async def test_non_latin1_bytes_before_the_session_cookie_are_survived(
    clerk: MockClerk, clock: FakeClock
) -> None:
    """Case 56: raw non-ASCII bytes in the Cookie header neither hide __session nor raise."""
    spy = Spy()
    token = clerk.token(issued_at=clock.now).encode()
    sent = await call(
        middleware(spy, clerk, clock),
        http_scope("/api/me", [(b"cookie", b"\xff\xfe=\xc3\xa9; __session=" + token)]),
    )
    assert sent[0]["status"] == 200
    assert identity_headers(spy.scopes[0]) == [(b"x-user-id", b"user_test")]


# -- Case 58: CSRF on cookie-authenticated unsafe methods --------------------------------------


@pytest.mark.parametrize(
    "headers",
    [
        pytest.param({"origin": "https://evil.example"}, id="foreign-origin"),
        pytest.param({"origin": "null"}, id="null-origin"),
        pytest.param({"origin": "https://app.example.com.evil.example"}, id="lookalike-origin"),
        pytest.param({"origin": "http://app.example.com"}, id="other-scheme"),
        pytest.param({"sec-fetch-site": "cross-site"}, id="sec-fetch-site-cross-site"),
        pytest.param(
            {"origin": "https://app.example.com", "sec-fetch-site": "cross-site"},
            id="allowed-origin-but-cross-site",
        ),
    ],
)
@pytest.mark.parametrize("method", ["POST", "PUT", "PATCH", "DELETE"])
async def test_cross_site_cookie_on_unsafe_method_is_signed_out(
    clerk: MockClerk, clock: FakeClock, method: str, headers: dict[str, str]
) -> None:
    """Case 58: a cookie session on an unsafe cross-site request -> 401 origin-not-authorized."""
    token = clerk.token(issued_at=clock.now)
    async with client(make_app(clerk, clock)) as c:
        r = await c.request(method, "/api/things", headers={**headers, **session(token)})
    assert_401(r, "origin-not-authorized", presented=True)


@pytest.mark.parametrize(
    ("method", "headers"),
    [
        pytest.param("POST", {"origin": "https://app.example.com"}, id="post-allowed-origin"),
        pytest.param(
            "POST",
            {"origin": "https://app.example.com", "sec-fetch-site": "same-origin"},
            id="post-same-origin",
        ),
        pytest.param("POST", {}, id="post-without-origin"),
        pytest.param("GET", {"origin": "https://evil.example"}, id="get-foreign-origin"),
        pytest.param("HEAD", {"sec-fetch-site": "cross-site"}, id="head-cross-site"),
        pytest.param("OPTIONS", {"origin": "https://evil.example"}, id="options-foreign"),
    ],
)
async def test_cookie_session_allowed_when_same_site_or_safe_method(
    clerk: MockClerk, clock: FakeClock, method: str, headers: dict[str, str]
) -> None:
    """Case 58: allowed Origin, no Origin (non-browser) and safe methods keep the cookie session."""
    token = clerk.token(issued_at=clock.now)
    async with client(make_app(clerk, clock)) as c:
        r = await c.request(method, "/api/things", headers={**headers, **session(token)})
    assert r.status_code == 200
    assert r.headers["x-user-id"] == "user_test"


@pytest.mark.parametrize(
    "headers",
    [{"origin": "https://evil.example"}, {"sec-fetch-site": "cross-site"}],
    ids=["foreign-origin", "cross-site"],
)
async def test_bearer_token_is_unaffected_by_origin(
    clerk: MockClerk, clock: FakeClock, headers: dict[str, str]
) -> None:
    """Case 58: a Bearer header is not a CSRF vector; cross-site POSTs with it are allowed."""
    async with client(make_app(clerk, clock)) as c:
        r = await c.post(
            "/api/things", headers={**headers, **bearer(clerk.token(issued_at=clock.now))}
        )
    assert_ran(r, "user_test", injected=True)


async def test_cross_site_cookie_post_on_public_route_runs_signed_out(
    clerk: MockClerk, clock: FakeClock
) -> None:
    """Case 58: on a public route the app runs, but sees signed out (origin-not-authorized)."""
    headers = {"origin": "https://evil.example", **session(clerk.token(issued_at=clock.now))}
    async with client(make_app(clerk, clock)) as c:
        r = await c.post("/public/form", headers=headers)
        protected = await c.post("/dashboard", headers={**BROWSER, **headers})
    assert_ran(r, None, "origin-not-authorized")
    assert_401(protected, "origin-not-authorized", presented=True)


@pytest.mark.parametrize(
    ("options", "origin", "allowed"),
    [
        pytest.param({}, "https://app.example.com", True, id="request-origin"),
        pytest.param({}, "https://evil.example", False, id="foreign"),
        pytest.param(
            {"public_origin": "https://www.example.com"},
            "https://www.example.com",
            True,
            id="public-origin",
        ),
        pytest.param(
            {"public_origin": "https://www.example.com"},
            "https://app.example.com",
            False,
            id="request-origin-ignored-with-public-origin",
        ),
    ],
)
async def test_csrf_origin_check_without_authorized_parties(
    clerk: MockClerk, clock: FakeClock, options: dict[str, Any], origin: str, allowed: bool
) -> None:
    """Case 58: with no authorized_parties the Origin must equal public_origin or the request's."""
    headers = {"origin": origin, **session(clerk.token(issued_at=clock.now))}
    app = make_app(clerk, clock, authorized_parties=[], **options)
    async with client(app) as c:
        r = await c.post("/api/things", headers=headers)
    if allowed:
        assert_ran(r, "user_test", injected=True)
    else:
        assert_401(r, "origin-not-authorized", presented=True)


# -- Case 60, 78: Host and forwarding headers --------------------------------------------------


@pytest.mark.parametrize(
    "headers",
    [
        {"host": "evil.example"},
        {"x-forwarded-host": "evil.example"},
        {"x-forwarded-proto": "http"},
        {"x-forwarded-prefix": "/public"},
        {"forwarded": "host=evil.example;proto=http"},
        {"x-original-url": "/public/x", "x-rewrite-url": "/public/x"},
    ],
    ids=["host", "x-forwarded-host", "x-forwarded-proto", "x-forwarded-prefix", "forwarded", "iis"],
)
async def test_forwarding_headers_change_neither_rules_nor_redirect_with_public_origin(
    clerk: MockClerk, clock: FakeClock, headers: dict[str, str]
) -> None:
    """Cases 60, 78: with public_origin, Host/X-Forwarded-* alter neither rules nor redirect_url."""
    app = make_app(clerk, clock, public_origin=ORIGIN, sign_in_url=SIGN_IN)
    async with client(app) as c:
        page = await c.get("/admin?tab=2", headers={**BROWSER, **headers})
        api = await c.get("/api/admin/x", headers={**FETCH, **headers})
    assert_redirect(
        page,
        sign_in_location("https://app.example.com/admin?tab=2", SIGN_IN),
        "session-token-missing",
    )
    assert_401(api, "session-token-missing", presented=False)


@pytest.mark.parametrize(
    ("headers", "redirect_url"),
    [
        pytest.param({}, "https://app.example.com/dashboard", id="own-host"),
        pytest.param({"host": "evil.example"}, "https://evil.example/dashboard", id="host"),
        pytest.param(
            {"host": "app.example.com:8443"}, "https://app.example.com:8443/dashboard", id="port"
        ),
        pytest.param({"host": "[::1]:8000"}, "https://[::1]:8000/dashboard", id="ipv6"),
        pytest.param(
            {"x-forwarded-host": "evil.example"},
            "https://app.example.com/dashboard",
            id="x-forwarded-host-ignored",
        ),
        pytest.param(
            {"x-forwarded-proto": "http"},
            "https://app.example.com/dashboard",
            id="x-forwarded-proto-ignored",
        ),
    ],
)
async def test_redirect_url_without_public_origin_uses_the_request_host(
    clerk: MockClerk, clock: FakeClock, headers: dict[str, str], redirect_url: str
) -> None:
    """Case 78: without public_origin the validated Host header (never X-Forwarded-*) is used."""
    async with client(make_app(clerk, clock)) as c:
        r = await c.get("/dashboard", headers={**BROWSER, **headers})
    assert_redirect(r, sign_in_location(redirect_url), "session-token-missing")
    assert redirect_url_of(r.headers["location"]) == redirect_url


@pytest.mark.parametrize(
    "host",
    [
        b"[::1",
        b"a b",
        b"",
        b"evil.example/x",
        b"user@evil.example",
        b"evil.example:abc",
        b"evil.example\\@app",
        b"\xe9vil.example",
        b"evil.example\r\nx-injected: 1",
        b"a:b:1",
    ],
    ids=[
        "open-bracket",
        "space",
        "empty",
        "path",
        "userinfo",
        "bad-port",
        "backslash",
        "non-ascii",
        "crlf",
        "colons",
    ],
)
async def test_malformed_host_falls_back_to_the_server_address(
    clerk: MockClerk, clock: FakeClock, host: bytes
) -> None:
    """Case 60: a malformed Host never reaches redirect_url; the server address is used, no 500."""
    spy = Spy()
    mw = middleware(spy, clerk, clock)
    nav = [(b"sec-fetch-dest", b"document")]
    sent = await call(mw, http_scope("/dashboard", nav, host=host))
    no_server = await call(mw, http_scope("/dashboard", nav, host=host, server=None))
    assert sent[0]["status"] == 307
    assert redirect_url_of(response_headers(sent)["location"]) == (
        "https://app.example.com/dashboard"
    )
    assert redirect_url_of(response_headers(no_server)["location"]) == (
        "https://localhost/dashboard"
    )
    assert spy.scopes == []


async def test_server_address_keeps_a_non_default_port(clerk: MockClerk, clock: FakeClock) -> None:
    """Case 60: with no usable Host, a non-default server port is kept in redirect_url."""
    sent = await call(
        middleware(Spy(), clerk, clock),
        http_scope(
            "/dashboard",
            [(b"sec-fetch-dest", b"document")],
            host=None,
            server=("10.0.0.5", 8443),
        ),
    )
    assert redirect_url_of(response_headers(sent)["location"]) == "https://10.0.0.5:8443/dashboard"


# -- Cases 75-79: the sign-in redirect (DESIGN §6 redirect_url) --------------------------------


async def test_sign_in_redirect_happy_path_shape(clerk: MockClerk, clock: FakeClock) -> None:
    """Case 75: 307 to sign_in_url with one redirect_url = the absolute original URL."""
    app = make_app(clerk, clock, public_origin=ORIGIN, sign_in_url=SIGN_IN)
    async with client(app) as c:
        r = await c.get("/dashboard?tab=2", headers=BROWSER)
    assert_redirect(
        r,
        "https://accounts.example.com/sign-in"
        "?redirect_url=https%3A%2F%2Fapp.example.com%2Fdashboard%3Ftab%3D2",
        "session-token-missing",
    )
    assert redirect_url_of(r.headers["location"]) == "https://app.example.com/dashboard?tab=2"


async def test_sign_in_redirect_is_built_on_public_origin(
    clerk: MockClerk, clock: FakeClock
) -> None:
    """DESIGN §6: behind a proxy, redirect_url is built on public_origin, not the request's host."""
    app = make_app(clerk, clock, public_origin="https://www.example.com")
    async with client(app) as c:
        r = await c.get("/dashboard/a?b=c", headers=BROWSER)
    assert_redirect(
        r, sign_in_location("https://www.example.com/dashboard/a?b=c"), "session-token-missing"
    )


async def test_sign_in_url_with_a_query_gets_the_parameter_appended(
    clerk: MockClerk, clock: FakeClock
) -> None:
    """A sign_in_url that has a query already gets '&redirect_url=...'."""
    app = make_app(clerk, clock, sign_in_url=SIGN_IN + "?lang=fr")
    async with client(app) as c:
        r = await c.get("/dashboard", headers=BROWSER)
    assert_redirect(
        r,
        SIGN_IN + "?lang=fr&redirect_url=https%3A%2F%2Fapp.example.com%2Fdashboard",
        "session-token-missing",
    )
    assert parse_qs(urlsplit(r.headers["location"]).query) == {
        "lang": ["fr"],
        "redirect_url": ["https://app.example.com/dashboard"],
    }


async def test_sign_in_url_with_a_fragment_keeps_redirect_url_in_the_query(
    clerk: MockClerk, clock: FakeClock
) -> None:
    """DESIGN §6 redirect_url: the parameter goes in the query, before sign_in_url's fragment."""
    app = make_app(clerk, clock, sign_in_url=SIGN_IN + "#/factor-one")
    async with client(app) as c:
        r = await c.get("/dashboard", headers=BROWSER)
    location = r.headers["location"]
    assert urlsplit(location).fragment == "/factor-one"
    assert redirect_url_of(location) == "https://app.example.com/dashboard"


async def test_smuggled_redirect_url_stays_inside_the_one_parameter(
    clerk: MockClerk, clock: FakeClock
) -> None:
    """Case 76: an inner &redirect_url= stays encoded inside the single redirect_url."""
    async with client(make_app(clerk, clock, public_origin=ORIGIN)) as c:
        r = await c.get("/dashboard?x=1&redirect_url=https://evil.com", headers=BROWSER)
    assert_redirect(
        r,
        "/sign-in?redirect_url=https%3A%2F%2Fapp.example.com%2Fdashboard%3Fx%3D1"
        "%26redirect_url%3Dhttps%3A%2F%2Fevil.com",
        "session-token-missing",
    )
    assert redirect_url_of(r.headers["location"]) == (
        "https://app.example.com/dashboard?x=1&redirect_url=https://evil.com"
    )


@pytest.mark.parametrize(
    ("raw_path", "path", "redirect_url"),
    [
        (b"//evil.com/x", "//evil.com/x", "https://app.example.com//evil.com/x"),
        (b"/\\evil.com", "/\\evil.com", "https://app.example.com/%5Cevil.com"),
        (b"/%5Cevil.com", "/\\evil.com", "https://app.example.com/%5Cevil.com"),
        (b"/%2F%2Fevil.com", "///evil.com", "https://app.example.com/%2F%2Fevil.com"),
        (b"/%09/evil.com", "/\t/evil.com", "https://app.example.com/%09/evil.com"),
        (b"/%0a/evil.com", "/\n/evil.com", "https://app.example.com/%0a/evil.com"),
        (b"/%0d/evil.com", "/\r/evil.com", "https://app.example.com/%0d/evil.com"),
        (b"/%0b/evil.com", "/\x0b/evil.com", "https://app.example.com/%0b/evil.com"),
        (b"/./\\evil.com", "/./\\evil.com", "https://app.example.com/./%5Cevil.com"),
        (b"/ /evil.com", "/ /evil.com", "https://app.example.com/%20/evil.com"),
        (None, "//evil.com/x", "https://app.example.com//evil.com/x"),
        (None, "/\t/evil.com", "https://app.example.com/%09/evil.com"),
        (None, "/\\evil.com", "https://app.example.com/%5Cevil.com"),
    ],
)
async def test_protocol_relative_and_backslash_paths_stay_on_the_origin(
    clerk: MockClerk, clock: FakeClock, raw_path: bytes | None, path: str, redirect_url: str
) -> None:
    """Case 77: redirect_url is always absolute on public_origin, path encoded from raw_path."""
    spy = Spy()
    sent = await call(
        middleware(spy, clerk, clock, public_origin=ORIGIN),
        http_scope(path, [(b"sec-fetch-dest", b"document")], raw_path=raw_path),
    )
    assert sent[0]["status"] == 307
    value = redirect_url_of(response_headers(sent)["location"])
    assert value == redirect_url
    assert urlsplit(value)[:2] == ("https", "app.example.com")
    assert spy.scopes == []


@pytest.mark.parametrize(
    ("raw_path", "path", "query", "redirect_url"),
    [
        (
            b"/dash%0d%0aSet-Cookie:%20a=b",
            "/dash\r\nSet-Cookie: a=b",
            b"",
            "https://app.example.com/dash%0d%0aSet-Cookie:%20a=b",
        ),
        (
            None,
            "/dash\r\nSet-Cookie: a=b",
            b"",
            "https://app.example.com/dash%0D%0ASet-Cookie:%20a=b",
        ),
        (b"/caf%C3%A9", "/caf\u00e9", b"", "https://app.example.com/caf%C3%A9"),
        (b"/caf\xc3\xa9", "/caf\u00e9", b"", "https://app.example.com/caf%C3%A9"),
        (b"/%E2%98%83", "/\u2603", b"", "https://app.example.com/%E2%98%83"),
        (None, "/\u2603", b"", "https://app.example.com/%E2%98%83"),
        (b"/%FF", "/\udcff", b"", "https://app.example.com/%FF"),
        (b"/x", "/x", b"q=\xe2\x98\x83 \r\n", "https://app.example.com/x?q=%E2%98%83%20%0D%0A"),
        (b"/x", "/x", b"a=%20&b=c#d", "https://app.example.com/x?a=%20&b=c%23d"),
    ],
    ids=[
        "crlf",
        "crlf-no-raw-path",
        "utf8-escaped",
        "utf8-raw",
        "snowman",
        "snowman-no-raw",
        "invalid-utf8",
        "raw-query",
        "hash-in-query",
    ],
)
async def test_header_injection_and_non_ascii_are_percent_encoded(
    clerk: MockClerk,
    clock: FakeClock,
    raw_path: bytes | None,
    path: str,
    query: bytes,
    redirect_url: str,
) -> None:
    """Case 79: one well-formed ASCII Location; CR/LF and non-ASCII percent-encoded; no 500."""
    sent = await call(
        middleware(Spy(), clerk, clock, public_origin=ORIGIN),
        http_scope(path, [(b"sec-fetch-dest", b"document")], raw_path=raw_path, query=query),
    )
    assert sent[0]["status"] == 307
    location = response_headers(sent)["location"]
    assert location.isascii()
    assert not set(location) & set("\r\n\x00 ")
    assert redirect_url_of(location) == redirect_url


@pytest.mark.parametrize(
    ("path", "root_path", "raw_path", "redirect_url"),
    [
        pytest.param(
            "/prefix/dashboard",
            "/prefix",
            b"/prefix/dashboard",
            "https://app.example.com/prefix/dashboard",
            id="raw-path-includes-root",
        ),
        pytest.param(
            "/prefix/dashboard",
            "/prefix",
            b"/dashboard",
            "https://app.example.com/prefix/dashboard",
            id="raw-path-without-root",
        ),
    ],
)
async def test_redirect_url_keeps_the_root_path(
    clerk: MockClerk,
    clock: FakeClock,
    path: str,
    root_path: str,
    raw_path: bytes,
    redirect_url: str,
) -> None:
    """Under a root_path (mount or --root-path) redirect_url is the full public URL."""
    sent = await call(
        middleware(Spy(), clerk, clock, public_origin=ORIGIN),
        http_scope(
            path, [(b"sec-fetch-dest", b"document")], raw_path=raw_path, root_path=root_path
        ),
    )
    assert redirect_url_of(response_headers(sent)["location"]) == redirect_url


# -- Case 82: loops and growth ----------------------------------------------------------------


async def test_sign_in_path_is_always_public(clerk: MockClerk, clock: FakeClock) -> None:
    """Case 82: the sign-in page and its sub-pages are public under a protect default; no loop."""
    async with client(make_app(clerk, clock, rules=[])) as c:
        page = await c.get("/sign-in", headers=BROWSER)
        sub = await c.get("/sign-in/factor-one?x=1", headers=BROWSER)
        slash = await c.get("/SIGN-IN/", headers=BROWSER)
        sibling = await c.get("/sign-inx", headers=BROWSER)
    assert_ran(page, None, "session-token-missing")
    assert_ran(sub, None, "session-token-missing")
    assert_ran(slash, None, "session-token-missing")
    assert_redirect(
        sibling, sign_in_location("https://app.example.com/sign-inx"), "session-token-missing"
    )


@pytest.mark.parametrize(
    ("options", "rules", "kind"),
    [
        pytest.param(
            {"sign_in_url": "/account/sign-in"},
            [Rule.protect("/account(.*)")],
            "protect",
            id="protect-prefix",
        ),
        pytest.param(
            {"sign_in_url": "/account/sign-in?x=1"},
            [Rule.api("/account/(.*)")],
            "api",
            id="api-rule",
        ),
        pytest.param(
            {"sign_in_url": "https://app.example.com/account/sign-in", "public_origin": ORIGIN},
            [Rule.protect("/account/:path*")],
            "protect",
            id="absolute-on-public-origin",
        ),
    ],
)
def test_sign_in_url_under_a_protecting_rule_is_a_configuration_error(
    clerk: MockClerk, clock: FakeClock, options: dict[str, str], rules: list[Rule], kind: str
) -> None:
    """Case 82: a sign-in page that would itself need sign-in is refused at construction."""
    with pytest.raises(
        ConfigurationError,
        match=rf"^sign_in_url path '/account/sign-in' is covered by a Rule\.{kind}\(\.\.\.\) rule",
    ):
        middleware(Spy(), clerk, clock, rules=rules, **options)


def test_sign_in_url_under_an_explicit_public_rule_is_fine(
    clerk: MockClerk, clock: FakeClock
) -> None:
    """Case 82: a sign-in page made public explicitly, before a protect rule, is accepted."""
    rules = [Rule.public("/account/sign-in(.*)"), Rule.protect("/account(.*)")]
    middleware(Spy(), clerk, clock, rules=rules, sign_in_url="/account/sign-in")


@pytest.mark.parametrize(
    "rules",
    [
        [Rule.protect("/admin(.*)", role="org:admin", unauthorized_url="/admin/denied")],
        [
            Rule.protect("/billing(.*)", permission="org:billing:manage"),
            Rule.protect("/admin(.*)", role="org:admin", unauthorized_url="/billing/denied"),
        ],
    ],
    ids=["own-rule", "other-rule-with-role"],
)
def test_unauthorized_url_needing_a_role_is_a_configuration_error(
    clerk: MockClerk, clock: FakeClock, rules: list[Rule]
) -> None:
    """Case 82: an unauthorized_url that itself needs a role or permission could loop: refused."""
    url = rules[-1].unauthorized_url
    with pytest.raises(ConfigurationError, match=rf"^unauthorized_url '{url}' is covered by"):
        middleware(Spy(), clerk, clock, rules=rules)


def test_unauthorized_url_under_a_plain_protect_rule_is_fine(
    clerk: MockClerk, clock: FakeClock
) -> None:
    """Case 82: an unauthorized_url behind sign-in only (no role) is accepted: it cannot loop."""
    rules = [Rule.protect("/admin(.*)", role="org:admin", unauthorized_url="/denied")]
    assert middleware(Spy(), clerk, clock, rules=rules).sign_in_url == "/sign-in"


@pytest.mark.parametrize(
    ("path_length", "kept"),
    [(2024, True), (2025, False), (7 * 1024, False)],
    ids=["2048-chars-kept", "2049-chars-root", "7-KiB-root"],
)
async def test_long_redirect_url_falls_back_to_the_origin_root(
    clerk: MockClerk, clock: FakeClock, path_length: int, kept: bool
) -> None:
    """Case 82: a redirect_url longer than 2 KiB becomes the origin root."""
    path = "/" + "a" * path_length
    assert (len(ORIGIN + path) <= 2048) is kept
    async with client(make_app(clerk, clock)) as c:
        r = await c.get(path, headers=BROWSER)
    expected = ORIGIN + path if kept else ORIGIN + "/"
    assert_redirect(r, sign_in_location(expected), "session-token-missing")


async def test_nested_redirect_url_is_carried_once_not_reparsed(
    clerk: MockClerk, clock: FakeClock
) -> None:
    """Case 82: a request already carrying nested redirect_urls adds exactly one level."""
    nested = "https://app.example.com/a"
    for _ in range(5):
        nested = "https://app.example.com/sign-in?redirect_url=" + quote(nested, safe="")
    query = "redirect_url=" + quote(nested, safe="")
    async with client(make_app(clerk, clock)) as c:
        r = await c.get("/dashboard?" + query, headers=BROWSER)
    assert r.status_code == 307
    assert redirect_url_of(r.headers["location"]) == "https://app.example.com/dashboard?" + query


# -- Case 83: configuration errors ------------------------------------------------------------


@pytest.mark.parametrize(
    "url",
    [
        "javascript:alert(1)",
        "//accounts.example.com/sign-in",
        "http://accounts.example.com/sign-in",
        "ftp://accounts.example.com/sign-in",
        "data:text/html,hi",
        "sign-in",
        "https://",
        "/sign in",
        "/sign-in\r\nx-injected: 1",
        "/\\evil.com",
        "\\\\evil.com",
    ],
)
def test_unsafe_sign_in_url_is_a_configuration_error(
    clerk: MockClerk, clock: FakeClock, url: str
) -> None:
    """Case 83: only an own-site absolute path or an https URL may be a sign-in URL."""
    with pytest.raises(ConfigurationError, match=r"^sign_in_url "):
        middleware(Spy(), clerk, clock, sign_in_url=url)


def test_unsafe_sign_in_url_from_the_environment_is_a_configuration_error(
    clerk: MockClerk, clock: FakeClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Case 83: CLERK_SIGN_IN_URL is validated the same way."""
    monkeypatch.setenv("CLERK_SIGN_IN_URL", "javascript:alert(1)")
    with pytest.raises(ConfigurationError, match=r"^sign_in_url "):
        middleware(Spy(), clerk, clock, sign_in_url=None)


@pytest.mark.parametrize(
    "url", ["/sign-in", "/auth/sign-in?x=1", SIGN_IN, "http://localhost:3000/sign-in"]
)
def test_safe_sign_in_urls_are_accepted(clerk: MockClerk, clock: FakeClock, url: str) -> None:
    """Case 83: own-site paths, https URLs and http://localhost are accepted."""
    assert middleware(Spy(), clerk, clock, sign_in_url=url).sign_in_url == url


@pytest.mark.parametrize("url", ["javascript:alert(1)", "//evil.com", "/a b"])
def test_unsafe_unauthorized_url_is_a_configuration_error(
    clerk: MockClerk, clock: FakeClock, url: str
) -> None:
    """Case 83: unauthorized_url follows the same rules as sign_in_url."""
    rules = [Rule.protect("/admin(.*)", role="org:admin", unauthorized_url=url)]
    with pytest.raises(ConfigurationError, match=r"^unauthorized_url "):
        middleware(Spy(), clerk, clock, rules=rules)


@pytest.mark.parametrize("option", ["sign_in_url", "unauthorized_url"])
def test_non_ascii_redirect_target_is_a_configuration_error(
    clerk: MockClerk, clock: FakeClock, option: str
) -> None:
    """Cases 79, 83: a non-ASCII redirect target is refused at construction, not at request time."""
    url = "/connexion/\u00e9"
    options: dict[str, Any] = (
        {"sign_in_url": url}
        if option == "sign_in_url"
        else {"rules": [Rule.protect("/admin(.*)", role="org:admin", unauthorized_url=url)]}
    )
    with pytest.raises(ConfigurationError, match=rf"^{option} "):
        middleware(Spy(), clerk, clock, **options)


@pytest.mark.parametrize(
    ("options", "match"),
    [
        pytest.param(
            {"public_origin": "https://app.example.com/"},
            "^public_origin must be",
            id="origin-slash",
        ),
        pytest.param(
            {"public_origin": "app.example.com"}, "^public_origin must be", id="origin-no-scheme"
        ),
        pytest.param(
            {"authorized_parties": ["https://app.example.com/"]},
            "^Each authorized party must be",
            id="party-slash",
        ),
        pytest.param({"default": "private"}, "^default must be", id="default"),
        pytest.param({"rules": ["/admin"]}, "^rules must hold Rule objects", id="rules"),
        pytest.param({"rules": [Rule.public("admin")]}, "must start with '/'", id="pattern"),
        pytest.param({"clock_skew": -1}, "^clock_skew must be", id="skew"),
        pytest.param({"jwks_timeout": 0}, "^jwks_timeout must be", id="timeout"),
        pytest.param({"max_token_age": 0}, "^max_token_age must be", id="max-age"),
        pytest.param({"jwt_key": "not a pem"}, "^jwt_key is not a PEM", id="jwt-key"),
        pytest.param(
            {"jwt_key": None, "jwks_url": "http://clerk.example.com/jwks"},
            "^jwks_url",
            id="jwks-http",
        ),
    ],
)
def test_bad_configuration_is_refused_at_construction(
    clerk: MockClerk, clock: FakeClock, options: dict[str, Any], match: str
) -> None:
    """Case 83: every unusable option raises ConfigurationError (a ValueError) when built."""
    options = {"rules": RULES, **options}
    with pytest.raises(ConfigurationError, match=match):
        ClerkMiddleware(Spy(), **clerk.middleware_options(clock=clock, **options))


def test_missing_key_material_names_the_variables(clock: FakeClock) -> None:
    """Case 83: no key material at all -> an error naming every CLERK_* key variable."""
    with pytest.raises(ConfigurationError) as info:
        ClerkMiddleware(Spy(), rules=RULES, clock=clock)
    message = str(info.value)
    for name in ("CLERK_JWT_KEY", "CLERK_SECRET_KEY", "CLERK_PUBLISHABLE_KEY", "CLERK_JWKS_URL"):
        assert name in message
    assert isinstance(info.value, ValueError)


# -- Cases 84-88: the identity header (DESIGN §6) ----------------------------------------------

SPOOFS: list[tuple[bytes, bytes]] = [
    (b"x-user-id", b"user_admin"),
    (b"X-User-Id", b"user_admin"),
    (b"X-USER-ID", b"user_admin"),
    (b"x_user_id", b"user_admin"),
    (b"x-user_id", b"user_admin"),
    (b"X_User-Id", b"user_admin"),
    (b"x-user-id", b"user_admin, user_b"),
]
LOOKALIKES: list[tuple[bytes, bytes]] = [
    (b"x-user-ids", b"1"),
    (b"x-userid", b"2"),
    (b"xx-user-id", b"3"),
    (b"x-user-id2", b"4"),
]


@pytest.mark.parametrize("path", ["/public/info", "/", "/sign-in"])
async def test_spoofed_identity_is_removed_on_public_routes(
    clerk: MockClerk, clock: FakeClock, path: str
) -> None:
    """Cases 84, 86: every client spelling of x-user-id is removed; the app sees none."""
    spy = Spy()
    sent = await call(middleware(spy, clerk, clock), http_scope(path, SPOOFS))
    assert sent[0]["status"] == 200
    (scope,) = spy.scopes
    assert identity_headers(scope) == []
    assert scope["headers"] == [(b"host", b"app.example.com")]
    assert "x-user-id" not in response_headers(sent)


@pytest.mark.parametrize("path", ["/public/info", "/api/me"])
@pytest.mark.parametrize("spoof", SPOOFS, ids=[n.decode() + "=" + v.decode() for n, v in SPOOFS])
async def test_each_identity_spelling_alone_is_removed(
    clerk: MockClerk, clock: FakeClock, path: str, spoof: tuple[bytes, bytes]
) -> None:
    """Cases 85, 86: any single spelling of x-user-id (case, '_' for '-') is removed by itself."""
    spy = Spy()
    authorization = (b"authorization", f"Bearer {clerk.token(issued_at=clock.now)}".encode())
    await call(middleware(spy, clerk, clock), http_scope(path, [spoof, authorization]))
    (scope,) = spy.scopes
    injected = [(b"x-user-id", b"user_test")] if path.startswith("/api/") else []
    assert scope["headers"] == [(b"host", b"app.example.com"), authorization, *injected]


@pytest.mark.parametrize("auth_first", [True, False], ids=["auth-first", "spoof-first"])
async def test_spoofed_identity_is_replaced_by_exactly_one_on_api_routes(
    clerk: MockClerk, clock: FakeClock, auth_first: bool
) -> None:
    """Cases 85, 86: all client copies removed, then exactly one x-user-id = the verified user."""
    spy = Spy()
    authorization = (b"authorization", f"Bearer {clerk.token(issued_at=clock.now)}".encode())
    headers = [authorization, *SPOOFS] if auth_first else [*SPOOFS, authorization]
    sent = await call(middleware(spy, clerk, clock), http_scope("/api/me", headers + LOOKALIKES))
    (scope,) = spy.scopes
    assert identity_headers(scope) == [(b"x-user-id", b"user_test")]
    assert scope["headers"] == [
        (b"host", b"app.example.com"),
        authorization,
        *LOOKALIKES,
        (b"x-user-id", b"user_test"),
    ]
    assert response_headers(sent)["x-user-id"] == "user_test"


async def test_spoofed_identity_is_removed_on_protect_routes_without_injection(
    clerk: MockClerk, clock: FakeClock
) -> None:
    """Case 85: on protect routes client copies are removed and nothing is injected."""
    spy = Spy()
    authorization = (b"authorization", f"Bearer {clerk.token(issued_at=clock.now)}".encode())
    sent = await call(
        middleware(spy, clerk, clock), http_scope("/dashboard", [*SPOOFS, authorization])
    )
    (scope,) = spy.scopes
    assert identity_headers(scope) == []
    assert "x-user-id" not in response_headers(sent)


async def test_spoofed_identity_through_httpx_never_reaches_the_handler(
    clerk: MockClerk, clock: FakeClock
) -> None:
    """Case 85: x-user-id sent before and after Authorization, twice; the handler sees one."""
    token = clerk.token(issued_at=clock.now)
    headers = [
        ("x-user-id", "user_admin"),
        ("authorization", f"Bearer {token}"),
        ("x-user-id", "user_admin"),
        ("x_user_id", "user_admin"),
    ]
    async with client(make_app(clerk, clock)) as c:
        api = await c.get("/api/me", headers=headers)
        public = await c.get("/public/x", headers=headers)
        anonymous = await c.get("/public/x", headers=[("x-user-id", "user_admin")])
    assert_ran(api, "user_test", injected=True)
    assert_ran(public, "user_test")
    assert_ran(anonymous, None, "session-token-missing")


async def test_only_x_user_id_is_touched_and_auth_never_comes_from_headers(
    clerk: MockClerk, clock: FakeClock
) -> None:
    """Case 87: Clerk-looking request headers neither sign anyone in nor get rewritten."""
    spy = Spy()
    spoofs = [
        (b"x-clerk-auth-status", b"signed-in"),
        (b"x-clerk-auth-token", b"x"),
        (b"x-clerk-user-id", b"user_admin"),
        (b"x-user-email", b"admin@example.com"),
        (b"x-org-id", b"org_1"),
        (b"x-forwarded-user", b"user_admin"),
        (b"remote-user", b"user_admin"),
    ]
    mw = middleware(spy, clerk, clock)
    public = await call(mw, http_scope("/public/x", spoofs))
    api = await call(mw, http_scope("/api/me", spoofs))
    assert public[0]["status"] == 200
    assert spy.scopes[0]["clerk_asgi.auth"] == Auth.signed_out("session-token-missing")
    assert spy.scopes[0]["headers"] == [(b"host", b"app.example.com"), *spoofs]
    assert api[0]["status"] == 401


@pytest.mark.parametrize(
    ("token_kind", "reason"),
    [("forged", "token-invalid-signature"), ("expired", "token-expired")],
)
async def test_failed_token_on_public_route_gives_no_identity_and_no_refetch(
    clerk: MockClerk,
    clock: FakeClock,
    attacker_key: KeyPair,
    second_key: KeyPair,
    token_kind: str,
    reason: str,
) -> None:
    """Case 88: public route + bad token: app runs signed out (user_id None), no refetch storm."""
    transport = clerk.transport()
    tokens = {
        "forged": mint_session_token(attacker_key, issued_at=clock.now),
        "expired": clerk.token(issued_at=clock.now - 3600),
    }
    async with httpx.AsyncClient(transport=transport) as http:
        app = make_app(clerk, clock, jwt_key=None, jwks_url=JWKS_URL, http_client=http)
        async with client(app) as c:
            r = await c.get("/public/x", headers=bearer(tokens[token_kind]))
            expired_unknown_kid = mint_session_token(second_key, issued_at=clock.now - 3600)
            for _ in range(5):
                storm = await c.get("/public/x", headers=bearer(expired_unknown_kid))
    assert_ran(r, None, reason)
    assert_ran(storm, None, "jwk-kid-mismatch")
    assert len(transport.requests) == 1  # the cold load only


# -- Cases 89-90: isolation and forwarding ----------------------------------------------------


async def test_interleaved_requests_each_see_their_own_user(
    clerk: MockClerk, clock: FakeClock
) -> None:
    """Case 89: 1000 interleaved requests from two users each see only their own x-user-id."""
    tokens = {
        "user_a": clerk.token(issued_at=clock.now, user_id="user_a"),
        "user_b": clerk.token(issued_at=clock.now, user_id="user_b"),
    }
    results: list[tuple[str, httpx.Response]] = []

    async def one(c: httpx.AsyncClient, i: int) -> None:
        user = "user_a" if i % 2 else "user_b"
        # A scrambled number of awaits inside the handler interleaves the requests.
        r = await c.get(f"/api/me?checkpoints={(i * 7919) % 11}", headers=bearer(tokens[user]))
        results.append((user, r))

    async with client(make_app(clerk, clock)) as c, anyio.create_task_group() as tg:
        for i in range(1000):
            tg.start_soon(one, c, i)
    assert len(results) == 1000
    for user, r in results:
        assert r.status_code == 200
        assert r.json() == {"user_id": user, "reason": None, "x-user-id": [user]}
        assert r.headers.get_list("x-user-id") == [user]


async def test_the_callers_scope_is_never_mutated(clerk: MockClerk, clock: FakeClock) -> None:
    """Case 89: the middleware hands the app a new scope; the caller's dict and list are intact."""
    spy = Spy()
    token = clerk.token(issued_at=clock.now)
    scope = http_scope("/api/me", [(b"authorization", f"Bearer {token}".encode()), *SPOOFS])
    before = {**scope, "headers": list(scope["headers"])}
    headers_list = scope["headers"]
    await call(middleware(spy, clerk, clock), scope)
    assert scope == before
    assert scope["headers"] is headers_list
    assert spy.scopes[0] is not scope
    assert spy.scopes[0]["headers"] is not headers_list


async def test_authorization_header_and_cookie_are_forwarded_unchanged(
    clerk: MockClerk, clock: FakeClock
) -> None:
    """Case 90: the verified token is forwarded as received (not stripped); Auth.token is it."""
    spy = Spy()
    token = clerk.token(issued_at=clock.now)
    other = clerk.token(issued_at=clock.now, user_id="user_other")
    headers = [
        (b"authorization", f"Bearer {token}".encode()),
        (b"cookie", f"a=1; __session={other}".encode()),
    ]
    await call(middleware(spy, clerk, clock), http_scope("/api/me", headers))
    (scope,) = spy.scopes
    assert scope["headers"] == [
        (b"host", b"app.example.com"),
        *headers,
        (b"x-user-id", b"user_test"),
    ]
    auth = scope["clerk_asgi.auth"]
    assert auth.token == token
    assert auth.user_id == "user_test"


# -- Cases 91, 94: bounded work, quiet logs ---------------------------------------------------


def _nested_header_token() -> str:
    def b64(data: bytes) -> str:
        return base64.urlsafe_b64encode(data).rstrip(b"=").decode()

    header = b'{"alg":"RS256","kid":"k1","x":' + b"[" * 3000 + b"]" * 3000 + b"}"
    return b64(header) + "." + b64(b'{"sub":"user_1"}') + "." + b64(b"sig")


@pytest.mark.parametrize(
    ("headers", "reason", "presented"),
    [
        pytest.param(
            [("authorization", "Bearer " + "A" * 8193)], "token-invalid", True, id="8KiB-token"
        ),
        pytest.param(
            [("authorization", "Bearer " + "A.B." * 2100)], "token-invalid", True, id="8KiB-dots"
        ),
        pytest.param(
            [("authorization", f"Bearer {_nested_header_token()}")],
            "token-invalid",
            True,
            id="nested-header",
        ),
        pytest.param(
            [("cookie", "; ".join(f"c{i}=v" for i in range(500)))],
            "session-token-missing",
            False,
            id="500-cookies",
        ),
        pytest.param(
            [("authorization", f"Bearer {i}") for i in range(100)],
            "token-invalid",
            True,
            id="100-authorization-headers",
        ),
    ],
)
async def test_oversized_inputs_are_rejected_without_fetching_keys(
    clerk: MockClerk,
    clock: FakeClock,
    headers: list[tuple[str, str]],
    reason: str,
    presented: bool,
) -> None:
    """Case 91: hostile sizes are refused up front: a plain 401, F=0, no exception."""
    transport = clerk.transport()
    async with httpx.AsyncClient(transport=transport) as http:
        app = make_app(clerk, clock, jwt_key=None, jwks_url=JWKS_URL, http_client=http)
        async with client(app) as c:
            r = await c.get("/api/things", headers=headers)
    assert_401(r, reason, presented=presented)
    assert transport.requests == []


async def test_failure_storm_never_logs_a_token(
    clerk: MockClerk,
    clock: FakeClock,
    attacker_key: KeyPair,
    second_key: KeyPair,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Case 94: a storm of bad tokens logs no token and no per-request warning or error."""
    caplog.set_level(logging.DEBUG, logger="clerk_asgi")
    now = clock.now
    tokens = [
        mint_session_token(attacker_key, issued_at=now, user_id=f"user_{i}") for i in range(20)
    ]
    tokens += [
        mint_session_token(second_key, issued_at=now, headers={"kid": kid})
        for kid in ("k\nINFO forged log line", "\x1b[31mred\x1b[0m", "k" * 200, "k2")
    ]
    tokens += [clerk.token(issued_at=now - 3600), clerk.token(issued_at=now, azp="https://evil")]
    tokens.append("eyJ" + "A" * 200_000)
    valid = clerk.token(issued_at=now)
    transport = JWKSTransport(clerk.key)
    async with httpx.AsyncClient(transport=transport) as http:
        app = make_app(clerk, clock, jwt_key=None, jwks_url=JWKS_URL, http_client=http)
        async with client(app) as c:
            for _ in range(5):
                for token in tokens:
                    await c.get("/api/things", headers=bearer(token))
                    await c.post(
                        "/api/things", headers={"origin": "https://evil", **session(valid)}
                    )
                    await c.get(f"/api/things?token={token[:100]}")
    logged = [(r.levelno, r.getMessage(), str(r.exc_info)) for r in library_records(caplog)]
    for token in [*tokens, valid]:
        for _, message, exc in logged:
            assert token[:60] not in message
            assert token[:60] not in exc
    assert [m for level, m, _ in logged if level >= logging.WARNING] == []


# -- DESIGN §6: unknown kid, non-canonical paths, pattern syntax -------------------------------


async def test_unknown_kid_refetches_once_per_cooldown(
    clerk: MockClerk, clock: FakeClock, second_key: KeyPair
) -> None:
    """DESIGN §6 unknown kid: one refetch, then none within the cooldown; the cold load is free."""
    transport = clerk.transport()
    async with httpx.AsyncClient(transport=transport) as http:
        app = make_app(clerk, clock, jwt_key=None, jwks_url=JWKS_URL, http_client=http)
        async with client(app) as c:
            ok = await c.get("/api/me", headers=bearer(clerk.token(issued_at=clock.now)))
            cold = len(transport.requests)
            first = await c.get(
                "/api/me", headers=bearer(mint_session_token(second_key, issued_at=clock.now))
            )
            after_first = len(transport.requests)
            second = await c.get(
                "/api/me",
                headers=bearer(mint_session_token(second_key, issued_at=clock.now, user_id="u2")),
            )
            after_second = len(transport.requests)
            clock.advance(31)
            transport.keys.append(second_key)
            rotated = await c.get(
                "/api/me",
                headers=bearer(mint_session_token(second_key, issued_at=clock.now, user_id="u3")),
            )
    assert_ran(ok, "user_test", injected=True)
    assert cold == 1
    assert_401(first, "jwk-kid-mismatch", presented=True)
    assert after_first == 2
    assert_401(second, "jwk-kid-mismatch", presented=True)
    assert after_second == 2
    assert_ran(rotated, "u3", injected=True)
    assert len(transport.requests) == 3


@pytest.mark.parametrize(
    ("path", "root_path", "public"),
    [
        ("/public/x", "", True),
        ("/PUBLIC/x", "", True),
        ("/public/", "", True),
        ("/public/../admin", "", False),
        ("/public/./x", "", False),
        ("/public//x", "", False),
        ("//public/x", "", False),
        ("/public/\\x", "", False),
        ("/public/\x00", "", False),
        ("/public/x\n", "", False),
        ("/public/..", "", False),
        ("/prefix/public/x", "/prefix", True),
        ("/prefix/admin", "/prefix", False),
        ("/prefixpublic/x", "/prefix", False),
    ],
)
async def test_odd_paths_can_never_be_public(
    clerk: MockClerk, clock: FakeClock, path: str, root_path: str, public: bool
) -> None:
    """DESIGN §6 non-canonical paths: the decoded route path decides; odd ones are never public."""
    spy = Spy()
    sent = await call(middleware(spy, clerk, clock), http_scope(path, root_path=root_path))
    if public:
        assert sent[0]["status"] == 200
        assert len(spy.scopes) == 1
    else:
        assert sent[0]["status"] == 401
        assert spy.scopes == []


@pytest.mark.parametrize(
    ("path", "status"),
    [
        ("/ADMIN", 401),
        ("/Admin/users/", 401),
        ("/admin?x=/public", 401),
        ("/API/things", 401),
        ("/healthz", 401),
        ("/Public/x", 200),
        ("/health/", 200),
        ("/SIGN-IN/", 200),
        ("/publicity", 200),
    ],
)
async def test_rule_patterns_are_case_insensitive_and_anchored(
    clerk: MockClerk, clock: FakeClock, path: str, status: int
) -> None:
    """DESIGN §6 pattern syntax: case-insensitive, optional trailing slash, (.*) siblings."""
    async with client(make_app(clerk, clock)) as c:
        r = await c.get(path, headers=FETCH)
    assert r.status_code == status


async def test_redirect_url_without_raw_path_encodes_the_decoded_path(
    clerk: MockClerk, clock: FakeClock
) -> None:
    """Case 79: a scope without raw_path still yields one encoded redirect_url on the origin."""
    app = middleware(Spy(), clerk, clock)
    sent = await call(app, http_scope("/dash board/é", [(b"accept", b"text/html")], query=b"tab=2"))
    assert sent[0]["status"] == 307
    assert redirect_url_of(response_headers(sent)["location"]) == (
        "https://app.example.com/dash%20board/%C3%A9?tab=2"
    )


async def test_absolute_form_target_still_redirects_to_a_url_on_this_origin(
    clerk: MockClerk, clock: FakeClock
) -> None:
    """Cases 69, 77: h11 keeps 'GET http://evil.example/admin' as path; redirect_url stays ours."""
    app = middleware(Spy(), clerk, clock)
    target = "http://evil.example/admin"
    sent = await call(
        app, http_scope(target, [(b"accept", b"text/html")], raw_path=target.encode())
    )
    assert sent[0]["status"] == 307
    assert redirect_url_of(response_headers(sent)["location"]) == (
        "https://app.example.com/http://evil.example/admin"
    )


async def test_path_redirect_targets_are_served_under_the_root_path(
    clerk: MockClerk, clock: FakeClock
) -> None:
    """Under root_path /v1, sign_in_url '/sign-in' and unauthorized_url '/unauthorized' are this
    app's routes: the Location carries the prefix the browser needs."""
    app = middleware(Spy(), clerk, clock)
    signed_out = http_scope("/v1/dashboard", [(b"accept", b"text/html")], root_path="/v1")
    sent = await call(app, signed_out)
    location = response_headers(sent)["location"]
    assert location.startswith("/v1/sign-in?redirect_url=")
    assert redirect_url_of(location) == "https://app.example.com/v1/dashboard"
    member = [(b"authorization", b"Bearer " + clerk.token(issued_at=clock.now).encode())]
    sent = await call(app, http_scope("/v1/admin", member, root_path="/v1"))
    assert response_headers(sent)["location"] == "/v1/unauthorized"


def test_sign_in_url_with_its_own_redirect_url_is_a_configuration_error(
    clerk: MockClerk, clock: FakeClock
) -> None:
    """DESIGN §6 'one redirect_url': a sign_in_url that already has one is refused."""
    with pytest.raises(ConfigurationError, match="already has a redirect_url parameter"):
        middleware(Spy(), clerk, clock, sign_in_url="/sign-in?redirect_url=https://evil.example")
