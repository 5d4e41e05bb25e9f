"""``require_auth`` and app-raised ``AuthError``s get the middleware's own JSON answer wherever
the middleware sits: added with ``add_middleware``, wrapping the app, above a mounted FastAPI
sub-app, or inside a ``Mount``. A FastAPI app keeps a ``ServerErrorMiddleware`` of its own, which
turns any exception into a 500 before an outer middleware sees it; that 500 must never reach
the client for an ``AuthError``, and every other exception must still give the app's 500."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import httpx
import pytest
from fastapi import Depends, FastAPI
from starlette.applications import Starlette
from starlette.routing import Mount

from clerk_asgi import Auth, ClerkMiddleware, ForbiddenError, Rule, require_auth
from clerk_asgi.testing import FakeClock, MockClerk

from .helpers import bearer

pytestmark = pytest.mark.anyio

ORIGIN = "https://app.example.com"
JWKS_URL = "https://clerk.example.com/.well-known/jwks.json"


def api() -> FastAPI:
    """The app the middleware protects: every route insists through a dependency."""
    app = FastAPI()

    @app.get("/me")
    async def me(auth: Auth = Depends(require_auth())) -> dict[str, Any]:
        return {"user_id": auth.user_id}

    @app.get("/billing")
    async def billing(
        auth: Auth = Depends(require_auth(permission="org:billing:manage")),
    ) -> dict[str, Any]:
        return {"org_id": auth.org_id}

    @app.get("/export")
    async def export(auth: Auth = Depends(require_auth())) -> dict[str, Any]:
        raise ForbiddenError("export-disabled", "Exports are disabled for this workspace.")

    @app.get("/boom")
    async def boom() -> dict[str, Any]:
        raise RuntimeError("a bug in the app")

    return app


def added(options: dict[str, Any]) -> tuple[Any, str]:
    app = api()
    app.add_middleware(ClerkMiddleware, **options)
    return app, ""


def wrapping(options: dict[str, Any]) -> tuple[Any, str]:
    return ClerkMiddleware(api(), **options), ""


def above_a_mounted_sub_app(options: dict[str, Any]) -> tuple[Any, str]:
    parent = FastAPI()
    parent.mount("/v1", api())
    parent.add_middleware(ClerkMiddleware, **options)
    return parent, "/v1"


def inside_a_mount(options: dict[str, Any]) -> tuple[Any, str]:
    return Starlette(routes=[Mount("/v1", ClerkMiddleware(api(), **options))]), "/v1"


PLACEMENTS = [added, wrapping, above_a_mounted_sub_app, inside_a_mount]
Placement = Callable[[dict[str, Any]], tuple[Any, str]]


async def get(app: Any, path: str, headers: dict[str, str] | None = None) -> httpx.Response:
    transport = httpx.ASGITransport(app, raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url=ORIGIN) as client:
        return await client.get(path, headers=headers)


def answer(response: httpx.Response) -> tuple[int, dict[str, str | None], Any]:
    names = ("cache-control", "content-type", "www-authenticate", "retry-after")
    headers = {name: response.headers.get(name) for name in names}
    headers["auth"] = (
        f"{response.headers.get('x-clerk-auth-status')}/{response.headers.get('x-clerk-auth-reason')}"
    )
    return response.status_code, headers, json.loads(response.content)


def options(clerk: MockClerk, clock: FakeClock, **overrides: Any) -> dict[str, Any]:
    return clerk.middleware_options(rules=[], default="public", clock=clock, **overrides)


@pytest.mark.parametrize("place", PLACEMENTS)
async def test_signed_out_is_401_json(clerk: MockClerk, clock: FakeClock, place: Placement) -> None:
    """A signed-out request to a require_auth() route gets the middleware's 401 JSON."""
    app, prefix = place(options(clerk, clock))
    assert answer(await get(app, f"{prefix}/me")) == (
        401,
        {
            "cache-control": "no-store",
            "content-type": "application/json",
            "www-authenticate": 'Bearer realm="clerk"',
            "retry-after": None,
            "auth": "signed-out/session-token-missing",
        },
        {
            "error": "unauthorized",
            "reason": "session-token-missing",
            "message": "Sign in to continue.",
        },
    )


@pytest.mark.parametrize("place", PLACEMENTS)
async def test_missing_permission_is_403_json(
    clerk: MockClerk, clock: FakeClock, place: Placement
) -> None:
    """A signed-in user without the permission gets the middleware's 403 JSON."""
    app, prefix = place(options(clerk, clock))
    token = clerk.token(issued_at=clock.now, org_id="org_1", org_role="org:member")
    assert answer(await get(app, f"{prefix}/billing", bearer(token))) == (
        403,
        {
            "cache-control": "no-store",
            "content-type": "application/json",
            "www-authenticate": None,
            "retry-after": None,
            "auth": "signed-in/authorization-failed",
        },
        {
            "error": "forbidden",
            "reason": "authorization-failed",
            "message": "You are signed in but not allowed to access this resource.",
        },
    )


@pytest.mark.parametrize("place", PLACEMENTS)
async def test_an_error_the_app_raises_keeps_its_reason_and_message(
    clerk: MockClerk, clock: FakeClock, place: Placement
) -> None:
    """An AuthError raised in a handler is answered with its own reason and message."""
    app, prefix = place(options(clerk, clock))
    token = clerk.token(issued_at=clock.now)
    status, headers, body = answer(await get(app, f"{prefix}/export", bearer(token)))
    assert (status, headers["auth"], body) == (
        403,
        "signed-in/export-disabled",
        {
            "error": "forbidden",
            "reason": "export-disabled",
            "message": "Exports are disabled for this workspace.",
        },
    )


@pytest.mark.parametrize("place", PLACEMENTS)
async def test_keys_down_is_503_with_retry_after(
    clerk: MockClerk, clock: FakeClock, place: Placement
) -> None:
    """Signing keys that cannot be loaded give require_auth()'s 503 with Retry-After."""
    down = httpx.AsyncClient(transport=httpx.MockTransport(lambda _: httpx.Response(500)))
    app, prefix = place(options(clerk, clock, jwks_url=JWKS_URL, http_client=down))
    token = clerk.token(issued_at=clock.now)
    status, headers, body = answer(await get(app, f"{prefix}/me", bearer(token)))
    assert (status, headers["retry-after"], headers["auth"], body["reason"]) == (
        503,
        "30",
        "signed-out/jwk-remote-failed-to-load",
        "jwk-remote-failed-to-load",
    )


@pytest.mark.parametrize("place", PLACEMENTS)
async def test_signed_in_runs_the_handler(
    clerk: MockClerk, clock: FakeClock, place: Placement
) -> None:
    """The dependency lets a signed-in user through, wherever the middleware sits."""
    app, prefix = place(options(clerk, clock))
    response = await get(app, f"{prefix}/me", bearer(clerk.token(issued_at=clock.now)))
    assert (response.status_code, response.json()) == (200, {"user_id": "user_test"})


@pytest.mark.parametrize("place", PLACEMENTS)
async def test_other_exceptions_still_give_the_apps_500(
    clerk: MockClerk, clock: FakeClock, place: Placement
) -> None:
    """Only AuthError is answered by the middleware: a bug in the app stays a 500."""
    app, prefix = place(options(clerk, clock))
    response = await get(app, f"{prefix}/boom")
    assert (response.status_code, response.text) == (500, "Internal Server Error")


async def test_a_500_the_app_returns_itself_is_sent_unchanged(
    clerk: MockClerk, clock: FakeClock
) -> None:
    """A 500 response the app sends on purpose reaches the client as it was, body included."""

    async def app(scope: Any, receive: Any, send: Any) -> None:
        await send({"type": "http.response.start", "status": 500, "headers": [(b"x-a", b"1")]})
        await send({"type": "http.response.body", "body": b"part one, ", "more_body": True})
        await send({"type": "http.response.body", "body": b"part two"})

    middleware = ClerkMiddleware(app, **options(clerk, clock))
    response = await get(middleware, "/anything")
    assert (response.status_code, response.headers["x-a"], response.text) == (
        500,
        "1",
        "part one, part two",
    )


async def record(app: Any, path: str) -> list[tuple[str, Any]]:
    """The ASGI messages ``app`` sends for one GET, as (type, status or body)."""
    sent: list[tuple[str, Any]] = []
    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "GET",
        "scheme": "https",
        "path": path,
        "raw_path": path.encode(),
        "root_path": "",
        "query_string": b"",
        "headers": [(b"host", b"app.example.com")],
        "server": ("app.example.com", 443),
    }

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: dict[str, Any]) -> None:
        sent.append((message["type"], message.get("status", message.get("body"))))

    await app(scope, receive, send)
    return sent


@pytest.mark.parametrize("place", PLACEMENTS)
async def test_exactly_one_response_is_sent(
    clerk: MockClerk, clock: FakeClock, place: Placement
) -> None:
    """A refusal replaces the inner app's 500: one response start, one body, nothing after."""
    app, prefix = place(options(clerk, clock))
    sent = await record(app, f"{prefix}/me")
    assert [kind for kind, _ in sent] == ["http.response.start", "http.response.body"]
    assert sent[0] == ("http.response.start", 401)
    assert json.loads(sent[1][1])["reason"] == "session-token-missing"


async def test_a_streaming_500_is_let_through_at_once(clerk: MockClerk, clock: FakeClock) -> None:
    """A 500 that streams (more_body) is the app's own: forwarded chunk by chunk, not held."""
    delivered: list[str] = []

    async def app(scope: Any, receive: Any, send: Any) -> None:
        await send({"type": "http.response.start", "status": 500, "headers": []})
        await send({"type": "http.response.body", "body": b"first", "more_body": True})
        delivered.append(f"after first: {len(forwarded)}")
        await send({"type": "http.response.body", "body": b"second"})

    forwarded: list[Any] = []

    async def send(message: Any) -> None:
        forwarded.append(message["type"])

    async def receive() -> Any:
        return {"type": "http.request", "body": b""}  # pragma: no cover - never read

    middleware = ClerkMiddleware(app, **options(clerk, clock))
    scope = {"type": "http", "method": "GET", "path": "/x", "headers": [], "query_string": b""}
    await middleware(scope, receive, send)
    assert delivered == ["after first: 2"]
    assert forwarded == ["http.response.start", "http.response.body", "http.response.body"]


async def test_the_apps_own_x_user_id_is_replaced_on_api_routes(
    clerk: MockClerk, clock: FakeClock
) -> None:
    """On an API route the response echoes exactly one x-user-id: the verified one."""

    async def app(scope: Any, receive: Any, send: Any) -> None:
        headers = [(b"x-user-id", b"app-set"), (b"x-a", b"1"), (b"x-user-id", b"other")]
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        await send({"type": "http.response.body", "body": b"ok"})

    middleware = ClerkMiddleware(
        app, **clerk.middleware_options(rules=[Rule.api("/api/:path*")], clock=clock)
    )
    response = await get(middleware, "/api/x", bearer(clerk.token(issued_at=clock.now)))
    assert response.headers.get_list("x-user-id") == ["user_test"]
    assert response.headers["x-a"] == "1"


async def test_a_complete_500_the_app_returns_is_sent_when_it_is_done(
    clerk: MockClerk, clock: FakeClock
) -> None:
    """A complete 500 held back is the app's own once the app returns: sent as it was."""

    async def app(scope: Any, receive: Any, send: Any) -> None:
        await send({"type": "http.response.start", "status": 500, "headers": [(b"x-a", b"1")]})
        await send({"type": "http.response.body", "body": b"broken on purpose"})

    response = await get(ClerkMiddleware(app, **options(clerk, clock)), "/anything")
    assert (response.status_code, response.headers["x-a"], response.text) == (
        500,
        "1",
        "broken on purpose",
    )
