"""Reading the Auth in handlers: get_auth, current_auth, require_auth and the FastAPI aliases."""

from __future__ import annotations

import warnings
from collections.abc import Awaitable, Callable
from typing import Any, get_args

import httpx
import pytest
from fastapi import Depends, FastAPI, WebSocket
from starlette.applications import Starlette
from starlette.exceptions import StarletteDeprecationWarning
from starlette.requests import HTTPConnection, Request
from starlette.responses import JSONResponse
from starlette.routing import Route
from starlette.types import Message, Receive, Scope, Send
from starlette.websockets import WebSocketDisconnect

from clerk_asgi import (
    Auth,
    AuthError,
    ClerkError,
    ClerkMiddleware,
    ForbiddenError,
    MiddlewareNotInstalledError,
    Rule,
    SignedOutError,
    current_auth,
    get_auth,
    require_auth,
)
from clerk_asgi.fastapi import CurrentAuth, SignedInAuth
from clerk_asgi.testing import FakeClock, MockClerk

from .helpers import bearer

with warnings.catch_warnings():
    # Starlette >= 1.x prefers httpx2 for its TestClient and warns once, at import.
    warnings.simplefilter("ignore", StarletteDeprecationWarning)
    from starlette.testclient import TestClient, WebSocketDenialResponse

ORIGIN = "https://app.example.com"
AUTH_KEY = "clerk_asgi.auth"
NOT_INSTALLED = (
    "No Clerk auth on this connection: add ClerkMiddleware to the app "
    "(app.add_middleware(ClerkMiddleware, ...)) before reading get_auth()/current_auth."
)
SIGNED_IN = Auth(user_id="user_1", session_id="sess_1")

Dependency = Callable[[HTTPConnection], Awaitable[Auth]]


def guarded_app(clerk: MockClerk, clock: FakeClock, dependency: Dependency) -> FastAPI:
    """Every path public at the middleware; the route itself insists through ``dependency``."""
    app = FastAPI()

    @app.get("/guarded")
    async def guarded(auth: Auth = Depends(dependency)) -> dict[str, Any]:
        return {"user_id": auth.user_id}

    app.add_middleware(
        ClerkMiddleware, **clerk.middleware_options(rules=[], default="public", clock=clock)
    )
    return app


async def get(app: Any, path: str, headers: dict[str, str] | None = None) -> httpx.Response:
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app), base_url=ORIGIN) as c:
        return await c.get(path, headers=headers)


def assert_forbidden(r: httpx.Response, reason: str, message: str) -> None:
    assert r.status_code == 403
    assert r.json() == {"error": "forbidden", "reason": reason, "message": message}
    assert r.headers["cache-control"] == "no-store"
    assert r.headers["x-clerk-auth-status"] == "signed-in"
    assert r.headers["x-clerk-auth-reason"] == reason
    assert "www-authenticate" not in r.headers


# -- get_auth ---------------------------------------------------------------------------------


def test_get_auth_reads_a_request_a_websocket_and_a_scope() -> None:
    """get_auth accepts a Request, a WebSocket or the raw scope and returns the stored Auth."""
    scope: dict[str, Any] = {"type": "http", "headers": [], AUTH_KEY: SIGNED_IN}
    ws_scope: dict[str, Any] = {"type": "websocket", "headers": [], AUTH_KEY: SIGNED_IN}

    async def receive() -> Message:  # pragma: no cover - never called
        raise AssertionError

    async def send(message: Message) -> None:  # pragma: no cover - never called
        raise AssertionError

    assert get_auth(Request(scope)) is SIGNED_IN
    assert get_auth(WebSocket(ws_scope, receive, send)) is SIGNED_IN
    assert get_auth(HTTPConnection(scope)) is SIGNED_IN
    assert get_auth(scope) is SIGNED_IN


@pytest.mark.parametrize(
    "scope",
    [
        {"type": "http", "headers": []},
        {"type": "http", "headers": [], AUTH_KEY: None},
        {"type": "http", "headers": [], AUTH_KEY: {"user_id": "user_spoofed"}},
    ],
    ids=["missing", "none", "not-an-auth"],
)
def test_get_auth_without_the_middleware_raises_a_clear_error(scope: dict[str, Any]) -> None:
    """No Auth in the scope (or something else there) -> MiddlewareNotInstalledError."""
    with pytest.raises(MiddlewareNotInstalledError) as info:
        get_auth(Request(scope))
    assert str(info.value) == NOT_INSTALLED
    assert isinstance(info.value, ClerkError)
    assert isinstance(info.value, RuntimeError)
    with pytest.raises(MiddlewareNotInstalledError):
        get_auth(scope)


@pytest.mark.anyio
async def test_current_auth_without_the_middleware_fails_loudly() -> None:
    """A route using current_auth in an app without ClerkMiddleware raises, it never signs out."""
    app = FastAPI()

    @app.get("/me")
    async def me(auth: Auth = Depends(current_auth)) -> dict[str, Any]:  # pragma: no cover
        return {"user_id": auth.user_id}

    with pytest.raises(MiddlewareNotInstalledError, match="add ClerkMiddleware"):
        await get(app, "/me")


@pytest.mark.anyio
async def test_get_auth_in_a_plain_starlette_route(clerk: MockClerk, clock: FakeClock) -> None:
    """get_auth(request) works in a plain Starlette app (no FastAPI involved)."""

    async def me(request: Request) -> JSONResponse:
        auth = get_auth(request)
        return JSONResponse({"user_id": auth.user_id, "org_id": auth.org_id})

    app = Starlette(routes=[Route("/api/me", me)])
    app.add_middleware(
        ClerkMiddleware,
        **clerk.middleware_options(rules=[Rule.api("/api/(.*)")], clock=clock),
    )
    token = clerk.token(issued_at=clock.now, user_id="user_s", org_id="org_9")
    r = await get(app, "/api/me", bearer(token))
    assert r.json() == {"user_id": "user_s", "org_id": "org_9"}


# -- current_auth -----------------------------------------------------------------------------


@pytest.mark.anyio
async def test_current_auth_in_http_routes_signed_in_and_out(
    clerk: MockClerk, clock: FakeClock
) -> None:
    """current_auth hands the route the Auth, signed in or signed out with its reason."""
    app = FastAPI()

    @app.get("/me")
    async def me(auth: Auth = Depends(current_auth)) -> dict[str, Any]:
        return {
            "user_id": auth.user_id,
            "session_id": auth.session_id,
            "org_role": auth.org_role,
            "reason": auth.reason,
            "token_matches": auth.token == r_token,
        }

    app.add_middleware(
        ClerkMiddleware, **clerk.middleware_options(rules=[], default="public", clock=clock)
    )
    r_token = clerk.token(
        issued_at=clock.now, user_id="user_1", org_id="org_1", org_role="org:admin"
    )
    signed_in = await get(app, "/me", bearer(r_token))
    signed_out = await get(app, "/me")
    assert signed_in.json() == {
        "user_id": "user_1",
        "session_id": "sess_test",
        "org_role": "org:admin",
        "reason": None,
        "token_matches": True,
    }
    assert signed_out.json() == {
        "user_id": None,
        "session_id": None,
        "org_role": None,
        "reason": "session-token-missing",
        "token_matches": False,
    }


def test_current_auth_in_websocket_routes(clerk: MockClerk, clock: FakeClock) -> None:
    """current_auth works as a WebSocket dependency too."""
    app = FastAPI()

    @app.websocket("/ws")
    async def hello(websocket: WebSocket, auth: Auth = Depends(current_auth)) -> None:
        await websocket.accept()
        await websocket.send_json({"user_id": auth.user_id, "reason": auth.reason})
        await websocket.close()

    app.add_middleware(
        ClerkMiddleware, **clerk.middleware_options(rules=[], default="public", clock=clock)
    )
    token = clerk.token(issued_at=clock.now, user_id="user_ws")
    client = TestClient(app)
    with client.websocket_connect("wss://app.example.com/ws", headers=bearer(token)) as ws:
        assert ws.receive_json() == {"user_id": "user_ws", "reason": None}
    with client.websocket_connect("wss://app.example.com/ws") as ws:
        assert ws.receive_json() == {"user_id": None, "reason": "session-token-missing"}


# -- require_auth -----------------------------------------------------------------------------


@pytest.mark.anyio
async def test_require_auth_without_arguments_needs_a_signed_in_user(
    clerk: MockClerk, clock: FakeClock
) -> None:
    """require_auth(): signed out -> 401 in the middleware's shape; signed in -> route runs."""
    app = guarded_app(clerk, clock, require_auth())
    missing = await get(app, "/guarded")
    expired = await get(app, "/guarded", bearer(clerk.token(issued_at=clock.now - 3600)))
    ok = await get(app, "/guarded", bearer(clerk.token(issued_at=clock.now)))
    assert missing.status_code == 401
    assert missing.json() == {
        "error": "unauthorized",
        "reason": "session-token-missing",
        "message": "Sign in to continue.",
    }
    assert {k: missing.headers[k] for k in ("cache-control", "www-authenticate")} == {
        "cache-control": "no-store",
        "www-authenticate": 'Bearer realm="clerk"',
    }
    assert missing.headers["x-clerk-auth-status"] == "signed-out"
    assert missing.headers["x-clerk-auth-reason"] == "session-token-missing"
    assert expired.status_code == 401
    assert expired.json() == {
        "error": "unauthorized",
        "reason": "token-expired",
        "message": "The session token has expired; fetch a fresh one and retry.",
    }
    assert expired.headers["www-authenticate"] == (
        'Bearer realm="clerk", error="invalid_token", error_description="token-expired"'
    )
    assert ok.status_code == 200
    assert ok.json() == {"user_id": "user_test"}


AUTHORIZATION_FAILED = "You are signed in but not allowed to access this resource."
REVERIFICATION = "Verify your identity again to access this resource."


@pytest.mark.anyio
@pytest.mark.parametrize(
    ("conditions", "allowed_claims", "refused_claims", "reason"),
    [
        pytest.param(
            {"role": "org:admin"},
            {"org_id": "org_1", "org_role": "org:admin"},
            {"org_id": "org_1", "org_role": "org:member"},
            "authorization-failed",
            id="role",
        ),
        pytest.param(
            {"permission": "org:billing:manage"},
            {"org_id": "org_1", "org_role": "org:x", "org_permissions": ["org:billing:manage"]},
            {"org_id": "org_1", "org_role": "org:x", "org_permissions": ["org:billing:read"]},
            "authorization-failed",
            id="permission",
        ),
        pytest.param(
            {"feature": "export"},
            {"features": "u:export"},
            {"features": "u:import"},
            "authorization-failed",
            id="feature",
        ),
        pytest.param(
            {"plan": "pro"},
            {"plan": "u:pro"},
            {"plan": "u:free"},
            "authorization-failed",
            id="plan",
        ),
        pytest.param(
            {"reverification": "strict"},
            {"fva": (5, 5)},
            {"fva": (5, 30)},
            "reverification-error",
            id="reverification",
        ),
        pytest.param(
            {"reverification": {"level": "first_factor", "after_minutes": 10}},
            {"fva": (9, -1)},
            {"fva": (10, -1)},
            "reverification-error",
            id="reverification-mapping",
        ),
    ],
)
async def test_require_auth_conditions(
    clerk: MockClerk,
    clock: FakeClock,
    conditions: dict[str, Any],
    allowed_claims: dict[str, Any],
    refused_claims: dict[str, Any],
    reason: str,
) -> None:
    """require_auth(role/permission/feature/plan/reverification): 403 with the right reason."""
    app = guarded_app(clerk, clock, require_auth(**conditions))
    ok = await get(app, "/guarded", bearer(clerk.token(issued_at=clock.now, **allowed_claims)))
    refused = await get(app, "/guarded", bearer(clerk.token(issued_at=clock.now, **refused_claims)))
    signed_out = await get(app, "/guarded")
    assert ok.status_code == 200
    assert ok.json() == {"user_id": "user_test"}
    message = REVERIFICATION if reason == "reverification-error" else AUTHORIZATION_FAILED
    assert_forbidden(refused, reason, message)
    assert signed_out.status_code == 401
    assert signed_out.json()["reason"] == "session-token-missing"


@pytest.mark.anyio
@pytest.mark.parametrize(
    ("claims", "reason"),
    [
        pytest.param(
            {"org_id": "org_1", "org_role": "org:member", "fva": (5, 5)},
            "authorization-failed",
            id="fresh-but-not-admin",
        ),
        pytest.param(
            {"org_id": "org_1", "org_role": "org:member", "fva": (500, 500)},
            "reverification-error",
            id="stale-and-not-admin",
        ),
        pytest.param(
            {"org_id": "org_1", "org_role": "org:admin", "fva": (500, 500)},
            "reverification-error",
            id="admin-but-stale",
        ),
    ],
)
async def test_require_auth_reverification_error_wins_when_freshness_fails(
    clerk: MockClerk, clock: FakeClock, claims: dict[str, Any], reason: str
) -> None:
    """With role + reverification, a stale session says reverification-error, else the role."""
    app = guarded_app(clerk, clock, require_auth(role="org:admin", reverification="strict"))
    r = await get(app, "/guarded", bearer(clerk.token(issued_at=clock.now, **claims)))
    message = REVERIFICATION if reason == "reverification-error" else AUTHORIZATION_FAILED
    assert_forbidden(r, reason, message)


@pytest.mark.anyio
async def test_require_auth_dependency_raises_typed_errors_directly() -> None:
    """The dependency itself raises SignedOutError/ForbiddenError carrying status and reason."""
    expired = Auth.signed_out("token-expired")
    member = Auth(user_id="user_1", org_id="org_1", org_role="org:member")
    with pytest.raises(SignedOutError) as signed_out:
        await require_auth()(Request({"type": "http", "headers": [], AUTH_KEY: expired}))
    with pytest.raises(ForbiddenError) as forbidden:
        await require_auth(role="org:admin")(
            Request({"type": "http", "headers": [], AUTH_KEY: member})
        )
    assert (signed_out.value.status_code, signed_out.value.reason) == (401, "token-expired")
    assert (forbidden.value.status_code, forbidden.value.reason) == (403, "authorization-failed")
    assert isinstance(forbidden.value, AuthError)
    assert await require_auth()(Request({"type": "http", "headers": [], AUTH_KEY: member})) is (
        member
    )


def test_require_auth_refuses_a_websocket_before_accept(clerk: MockClerk, clock: FakeClock) -> None:
    """require_auth on a WebSocket route: signed out -> 401 denial, the handler never runs."""
    ran: list[bool] = []
    app = FastAPI()

    @app.websocket("/ws")
    async def ws(  # pragma: no cover - refused before it runs
        websocket: WebSocket, auth: Auth = Depends(require_auth())
    ) -> None:
        ran.append(True)
        await websocket.accept()

    app.add_middleware(
        ClerkMiddleware, **clerk.middleware_options(rules=[], default="public", clock=clock)
    )
    with (
        pytest.raises(WebSocketDenialResponse) as info,
        TestClient(app).websocket_connect("wss://app.example.com/ws"),
    ):
        pass  # pragma: no cover - the handshake is refused
    assert info.value.status_code == 401
    assert info.value.json() == {
        "error": "unauthorized",
        "reason": "session-token-missing",
        "message": "Sign in to continue.",
    }
    assert ran == []


# -- AuthError after the response started ------------------------------------------------------


HTTP_SCOPE: dict[str, Any] = {
    "type": "http",
    "method": "GET",
    "scheme": "https",
    "path": "/x",
    "query_string": b"",
    "root_path": "",
    "headers": [(b"host", b"app.example.com")],
    "server": ("app.example.com", 443),
}


async def late_error_app(scope: Scope, receive: Receive, send: Send) -> None:
    """Starts a 200 response, then raises an AuthError (as a streaming handler might)."""
    await send({"type": "http.response.start", "status": 200, "headers": []})
    raise SignedOutError("session-token-missing", "too late")


async def receive_nothing() -> Message:  # pragma: no cover - nobody reads the body
    return {"type": "http.request", "body": b"", "more_body": False}


@pytest.mark.anyio
async def test_auth_error_after_the_response_started_is_re_raised(
    clerk: MockClerk, clock: FakeClock
) -> None:
    """An AuthError once the response has started cannot become a 401: it propagates as is."""
    sent: list[Message] = []

    async def strict_send(message: Message) -> None:
        # Like uvicorn: a second response start is a protocol error.
        if message["type"] == "http.response.start" and sent:
            raise RuntimeError("Unexpected ASGI message 'http.response.start'")
        sent.append(message)

    mw = ClerkMiddleware(late_error_app, **clerk.middleware_options(default="public", clock=clock))
    with pytest.raises(SignedOutError, match="too late"):
        await mw(dict(HTTP_SCOPE), receive_nothing, strict_send)
    assert sent == [{"type": "http.response.start", "status": 200, "headers": []}]


@pytest.mark.anyio
async def test_late_auth_error_never_sends_a_second_response(
    clerk: MockClerk, clock: FakeClock
) -> None:
    """The middleware itself knows the response started: no second start, the error re-raised."""
    sent: list[Message] = []

    async def lenient_send(message: Message) -> None:
        sent.append(message)

    mw = ClerkMiddleware(late_error_app, **clerk.middleware_options(default="public", clock=clock))
    with pytest.raises(SignedOutError, match="too late"):
        await mw(dict(HTTP_SCOPE), receive_nothing, lenient_send)
    assert sent == [{"type": "http.response.start", "status": 200, "headers": []}]


@pytest.mark.anyio
async def test_auth_error_after_the_response_started_propagates_through_httpx(
    clerk: MockClerk, clock: FakeClock
) -> None:
    """The same through a real client: the error is not swallowed into a second response."""

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        await send({"type": "http.response.start", "status": 200, "headers": []})
        raise ForbiddenError("authorization-failed", "too late")

    mw = ClerkMiddleware(app, **clerk.middleware_options(default="public", clock=clock))
    with pytest.raises(ForbiddenError, match="too late"):
        await get(mw, "/x")


def test_auth_error_after_websocket_accept_closes_with_1008(
    clerk: MockClerk, clock: FakeClock
) -> None:
    """An AuthError after a WebSocket was accepted closes it with 1008 and the reason."""
    app = FastAPI()

    @app.websocket("/ws")
    async def ws(websocket: WebSocket) -> None:
        await websocket.accept()
        await websocket.receive_text()
        raise ForbiddenError("reverification-error", "Reverification required.")

    app.add_middleware(
        ClerkMiddleware, **clerk.middleware_options(rules=[], default="public", clock=clock)
    )
    with TestClient(app).websocket_connect("wss://app.example.com/ws") as session:
        session.send_text("go")
        with pytest.raises(WebSocketDisconnect) as info:
            session.receive_text()
    assert (info.value.code, info.value.reason) == (1008, "reverification-error")


# -- clerk_asgi.fastapi aliases ----------------------------------------------------------------


def test_fastapi_aliases_wrap_the_dependencies() -> None:
    """CurrentAuth and SignedInAuth are Annotated[Auth, Depends(...)] aliases."""
    current_type, current_dep = get_args(CurrentAuth)
    signed_type, signed_dep = get_args(SignedInAuth)
    assert current_type is Auth
    assert signed_type is Auth
    assert current_dep.dependency is current_auth
    assert signed_dep.dependency.__qualname__ == require_auth().__qualname__


@pytest.mark.anyio
async def test_fastapi_aliases_in_routes(clerk: MockClerk, clock: FakeClock) -> None:
    """CurrentAuth gives any Auth; SignedInAuth answers 401 when signed out."""
    app = FastAPI()

    @app.get("/current")
    async def current(auth: CurrentAuth) -> dict[str, Any]:
        return {"user_id": auth.user_id, "reason": auth.reason}

    @app.get("/signed-in")
    async def signed_in(auth: SignedInAuth) -> dict[str, Any]:
        return {"user_id": auth.user_id}

    app.add_middleware(
        ClerkMiddleware, **clerk.middleware_options(rules=[], default="public", clock=clock)
    )
    token = clerk.token(issued_at=clock.now, user_id="user_alias")
    anonymous = await get(app, "/current")
    known = await get(app, "/current", bearer(token))
    refused = await get(app, "/signed-in")
    allowed = await get(app, "/signed-in", bearer(token))
    assert anonymous.json() == {"user_id": None, "reason": "session-token-missing"}
    assert known.json() == {"user_id": "user_alias", "reason": None}
    assert refused.status_code == 401
    assert refused.json()["reason"] == "session-token-missing"
    assert allowed.json() == {"user_id": "user_alias"}


@pytest.mark.anyio
async def test_an_auth_error_raised_by_the_app_keeps_its_message(clerk: MockClerk) -> None:
    """An AuthError raised in a handler is answered with its own reason and message."""
    app = FastAPI()

    @app.get("/api/export")
    async def export() -> None:
        raise ForbiddenError("export-disabled", "Exports are disabled for this workspace.")

    app.add_middleware(ClerkMiddleware, **clerk.middleware_options(rules=[Rule.public("/(.*)")]))
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app), base_url=clerk.origin) as c:
        r = await c.get("/api/export")
    assert r.status_code == 403
    assert r.json() == {
        "error": "forbidden",
        "reason": "export-disabled",
        "message": "Exports are disabled for this workspace.",
    }
    assert r.headers["x-clerk-auth-status"] == "signed-in"
