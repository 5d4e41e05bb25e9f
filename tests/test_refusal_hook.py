"""``on_refusal``: one hook writes every refusal the library sends (rule refusals, redirects,
503s and ``require_auth``), on HTTP and WebSockets; returning None keeps the default."""

from __future__ import annotations

import json
import warnings
from typing import Any

import httpx
import pytest
from fastapi import Depends, FastAPI, WebSocket
from starlette.requests import HTTPConnection
from starlette.responses import HTMLResponse, JSONResponse, Response

from clerk_asgi import (
    Auth,
    ClerkConfig,
    ClerkMiddleware,
    ConfigurationError,
    Refusal,
    Rule,
    require_auth,
)
from clerk_asgi.testing import FakeClock, MockClerk

from .helpers import bearer

with warnings.catch_warnings():
    # Starlette >= 1.x prefers httpx2 for its TestClient and warns once, at import.
    warnings.simplefilter("ignore")
    from starlette.testclient import TestClient, WebSocketDenialResponse

pytestmark = pytest.mark.anyio

ORIGIN = "https://app.example.com"
RULES = [
    Rule.public("/", "/open"),
    Rule.protect("/admin/:path*", role="org:admin"),
    Rule.api("/api/:path*"),
]
PAGE = {"accept": "text/html", "sec-fetch-dest": "document"}


def company_errors(conn: HTTPConnection, refusal: Refusal) -> Response | None:
    """HTML for browsers, the company's JSON for APIs, the default for redirects."""
    if refusal.location is not None:
        return None
    if "text/html" in conn.headers.get("accept", ""):
        return HTMLResponse(
            f"<h1>{refusal.status}</h1><p>{refusal.message}</p>",
            status_code=refusal.status,
            headers=refusal.headers,
        )
    return JSONResponse(
        {"code": refusal.reason, "detail": refusal.message, "path": conn.url.path},
        status_code=refusal.status,
        headers=refusal.headers,
    )


def make_app(clerk: MockClerk, clock: FakeClock, hook: Any) -> FastAPI:
    app = FastAPI()

    @app.get("/open")
    async def open_(auth: Auth = Depends(require_auth(role="org:admin"))) -> dict[str, Any]:
        return {"ok": True}

    @app.get("/api/data")
    async def data() -> dict[str, Any]:
        return {"ok": True}

    @app.websocket("/api/ws")
    async def ws(websocket: WebSocket) -> None:
        await websocket.accept()
        await websocket.close()

    app.add_middleware(
        ClerkMiddleware,
        config=ClerkConfig(**clerk.middleware_options(rules=RULES, clock=clock, on_refusal=hook)),
    )
    return app


async def get(app: Any, path: str, headers: dict[str, str] | None = None) -> httpx.Response:
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app), base_url=ORIGIN) as c:
        return await c.get(path, headers=headers)


async def test_api_refusals_use_the_hooks_json(clerk: MockClerk, clock: FakeClock) -> None:
    """A rule's 401 is written by the hook, with the refusal's standard headers."""
    response = await get(make_app(clerk, clock, company_errors), "/api/data")
    assert response.status_code == 401
    assert {k: response.headers[k] for k in ("cache-control", "www-authenticate")} == {
        "cache-control": "no-store",
        "www-authenticate": 'Bearer realm="clerk"',
    }
    assert response.headers["x-clerk-auth-reason"] == "session-token-missing"
    assert response.json() == {
        "code": "session-token-missing",
        "detail": "Sign in to continue.",
        "path": "/api/data",
    }


async def test_browsers_get_the_hooks_html_page(clerk: MockClerk, clock: FakeClock) -> None:
    """A signed-in user lacking the role gets the hook's HTML 403 page."""
    token = clerk.token(issued_at=clock.now, org_id="org_1", org_role="org:member")
    app = make_app(clerk, clock, company_errors)
    response = await get(app, "/admin/users", {**PAGE, **bearer(token)})
    assert (response.status_code, response.headers["content-type"], response.text) == (
        403,
        "text/html; charset=utf-8",
        "<h1>403</h1><p>You are signed in but not allowed to access this resource.</p>",
    )


async def test_none_keeps_the_default_redirect(clerk: MockClerk, clock: FakeClock) -> None:
    """A hook returning None sends the library's own response (here the sign-in redirect)."""
    response = await get(make_app(clerk, clock, company_errors), "/admin/users", PAGE)
    assert (response.status_code, response.headers["location"], response.content) == (
        307,
        "/sign-in?redirect_url=https%3A%2F%2Fapp.example.com%2Fadmin%2Fusers",
        b"",
    )


async def test_require_auth_refusals_go_through_the_hook(
    clerk: MockClerk, clock: FakeClock
) -> None:
    """The hook writes require_auth()'s refusal too, with the dependency's reason."""
    token = clerk.token(issued_at=clock.now)
    response = await get(make_app(clerk, clock, company_errors), "/open", bearer(token))
    assert (response.status_code, response.json()) == (
        403,
        {
            "code": "authorization-failed",
            "detail": "You are signed in but not allowed to access this resource.",
            "path": "/open",
        },
    )


async def test_an_async_hook_is_awaited(clerk: MockClerk, clock: FakeClock) -> None:
    """An async on_refusal is awaited; it sees the refusal's fields."""
    seen: list[Refusal] = []

    async def hook(conn: HTTPConnection, refusal: Refusal) -> Response:
        seen.append(refusal)
        return Response("no", status_code=418)

    response = await get(make_app(clerk, clock, hook), "/api/data", bearer("not-a-token"))
    assert (response.status_code, response.text) == (418, "no")
    assert seen == [
        Refusal(
            401,
            "token-invalid",
            token_presented=True,
            message="The session token is malformed.",
        )
    ]


def test_websocket_refusals_use_the_hook_as_the_denial_response(
    clerk: MockClerk, clock: FakeClock
) -> None:
    """On a WebSocket the hook's response is the HTTP denial response, before accept."""
    client = TestClient(make_app(clerk, clock, company_errors), base_url=ORIGIN)
    with pytest.raises(WebSocketDenialResponse) as denied, client.websocket_connect("/api/ws"):
        pass  # pragma: no cover - the handshake is refused
    assert (denied.value.status_code, json.loads(denied.value.content)) == (
        401,
        {"code": "session-token-missing", "detail": "Sign in to continue.", "path": "/api/ws"},
    )


async def test_a_hook_returning_something_else_is_a_clear_error(
    clerk: MockClerk, clock: FakeClock
) -> None:
    """A hook that returns neither a Response nor None raises a TypeError naming the hook."""
    app = make_app(clerk, clock, lambda conn, refusal: {"not": "a response"})
    with pytest.raises(TypeError, match="on_refusal must return a starlette Response or None"):
        await get(app, "/api/data")


def test_a_hook_that_is_not_callable_is_a_configuration_error(clerk: MockClerk) -> None:
    """on_refusal must be callable: refused when the configuration is built."""
    with pytest.raises(ConfigurationError, match="on_refusal must be a callable"):
        ClerkConfig(**clerk.middleware_options(on_refusal="refusal.html"))


def test_the_default_response_matches_what_the_middleware_sends() -> None:
    """Refusal.response() is the library's default answer, headers and JSON body."""
    refusal = Refusal(503, "jwk-remote-failed-to-load", retry_after=30)
    response = refusal.response()
    assert response.status_code == 503
    assert dict(response.headers) == {
        "cache-control": "no-store",
        "x-clerk-auth-status": "signed-out",
        "x-clerk-auth-reason": "jwk-remote-failed-to-load",
        "retry-after": "30",
        "content-length": "133",
        "content-type": "application/json",
    }
    assert json.loads(response.body) == {
        "error": "service_unavailable",
        "reason": "jwk-remote-failed-to-load",
        "message": "Clerk's signing keys are unavailable; retry shortly.",
    }
