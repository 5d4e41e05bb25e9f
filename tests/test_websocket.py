"""WebSockets and other ASGI scope types: refused before accept, never redirected.

A WebSocket is refused before ``accept``: with the HTTP denial response when the server offers
the ASGI ``websocket.http.response`` extension (Starlette's TestClient does), else with close
code 1008, policy violation (RFC 6455 section 7.4.1). Never a redirect (docs/responses.md
"WebSockets"). Tests use ``TestClient`` end to end and hand-built scopes where the exact ASGI
messages matter.
"""

from __future__ import annotations

import logging
import warnings
from collections.abc import Iterator, Sequence
from typing import Any

import pytest
from fastapi import Depends, FastAPI, WebSocket
from starlette.exceptions import StarletteDeprecationWarning
from starlette.middleware.base import BaseHTTPMiddleware
from starlette.types import ASGIApp, Message, Receive, Scope, Send
from starlette.websockets import WebSocketDisconnect

with warnings.catch_warnings():
    # Starlette >= 1.x prefers the httpx2 package for its TestClient and warns once, at import,
    # when only httpx is installed; the TestClient works the same with either.
    warnings.simplefilter("ignore", StarletteDeprecationWarning)
    from starlette.testclient import TestClient, WebSocketDenialResponse

from clerk_asgi import Auth, ClerkMiddleware, Rule, current_auth
from clerk_asgi.testing import FakeClock, MockClerk

from .helpers import bearer

WSS = "wss://app.example.com"
ORIGIN = "https://app.example.com"

RULES = [
    Rule.public("/ws/public(.*)"),
    Rule.protect("/ws/admin(.*)", role="org:admin", unauthorized_url="/unauthorized"),
    Rule.api("/ws/api(.*)"),
]

#: What a browser would send on a page load; a WebSocket must still never be redirected.
BROWSERISH = {"sec-fetch-dest": "document", "accept": "text/html"}

DENIAL_401 = {
    "cache-control": "no-store",
    "content-type": "application/json",
    "www-authenticate": 'Bearer realm="clerk"',
    "x-clerk-auth-reason": "session-token-missing",
    "x-clerk-auth-status": "signed-out",
}
BODY_401 = {
    "error": "unauthorized",
    "reason": "session-token-missing",
    "message": "Sign in to continue.",
}


# -- helpers ---------------------------------------------------------------------------------


def ws_app(clerk: MockClerk, clock: FakeClock, calls: list[str], **options: Any) -> FastAPI:
    """A FastAPI app whose WebSocket echoes the Auth it was given, for every path."""
    app = FastAPI()

    @app.websocket("/{path:path}")
    async def echo(websocket: WebSocket, auth: Auth = Depends(current_auth)) -> None:
        calls.append(websocket.url.path)
        await websocket.accept()
        async for text in websocket.iter_text():
            await websocket.send_json(
                {
                    "echo": text,
                    "user_id": auth.user_id,
                    "reason": auth.reason,
                    "x-user-id": websocket.headers.getlist("x-user-id"),
                }
            )

    app.add_middleware(
        ClerkMiddleware, **clerk.middleware_options(rules=RULES, clock=clock, **options)
    )
    return app


def without_denial_extension(app: ASGIApp) -> ASGIApp:
    """The server of ``app`` does not offer the WebSocket denial-response extension."""

    async def wrapped(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "websocket":
            scope = {**scope, "extensions": {}}
        await app(scope, receive, send)

    return wrapped


@pytest.fixture
def calls() -> list[str]:
    """Paths whose WebSocket handler ran."""
    return []


@pytest.fixture
def ws_client(clerk: MockClerk, clock: FakeClock, calls: list[str]) -> Iterator[TestClient]:
    with TestClient(ws_app(clerk, clock, calls)) as tc:
        yield tc


def denial_headers(response: WebSocketDenialResponse) -> dict[str, str]:
    """The denial's headers (each once), less the content-length httpx computes itself."""
    names = [n for n, _ in response.headers.multi_items()]
    assert len(names) == len(set(names)), names
    return {n: v for n, v in response.headers.items() if n != "content-length"}


def ws_scope(
    path: str,
    headers: Sequence[tuple[bytes, bytes]] = (),
    *,
    denial: bool = True,
    raw_path: bytes | None = None,
) -> dict[str, Any]:
    """A WebSocket scope as a server builds it, optionally offering the denial extension."""
    return {
        "type": "websocket",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "scheme": "wss",
        "path": path,
        "raw_path": raw_path if raw_path is not None else path.encode(),
        "query_string": b"",
        "root_path": "",
        "headers": [(b"host", b"app.example.com"), *headers],
        "client": ("203.0.113.9", 50000),
        "server": ("app.example.com", 443),
        "subprotocols": [],
        "extensions": {"websocket.http.response": {}} if denial else {},
    }


class WSSpy:
    """A downstream ASGI app recording the scopes it sees; accepts, then closes."""

    def __init__(self) -> None:
        self.scopes: list[Scope] = []

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        self.scopes.append(scope)
        if scope["type"] == "websocket":
            await receive()
            await send({"type": "websocket.accept"})
            await send({"type": "websocket.close", "code": 1000})


async def ws_call(app: ASGIApp, scope: Scope) -> list[Message]:
    sent: list[Message] = []
    incoming: Iterator[Message] = iter(
        [{"type": "websocket.connect"}, {"type": "websocket.disconnect", "code": 1000}]
    )

    async def receive() -> Message:
        return next(incoming)

    async def send(message: Message) -> None:
        sent.append(message)

    await app(scope, receive, send)
    return sent


def middleware(app: ASGIApp, clerk: MockClerk, clock: FakeClock) -> ClerkMiddleware:
    return ClerkMiddleware(app, **clerk.middleware_options(rules=RULES, clock=clock))


# -- Refused before accept -----------------------------------------------------------------------


@pytest.mark.parametrize("path", ["/ws/admin", "/ws/api/feed", "/ws/elsewhere"])
def test_signed_out_websocket_gets_a_401_denial_response(
    ws_client: TestClient, calls: list[str], path: str
) -> None:
    """A protect/api/default WebSocket without a token gets an HTTP 401 denial; no app call."""
    with (
        pytest.raises(WebSocketDenialResponse) as info,
        ws_client.websocket_connect(WSS + path, headers=BROWSERISH),
    ):
        pass  # pragma: no cover - the handshake is refused
    assert info.value.status_code == 401
    assert denial_headers(info.value) == DENIAL_401
    assert info.value.json() == BODY_401
    assert calls == []


@pytest.mark.parametrize("path", ["/ws/admin", "/ws/api/feed"])
def test_signed_out_websocket_without_denial_extension_is_closed_with_1008(
    clerk: MockClerk, clock: FakeClock, calls: list[str], path: str
) -> None:
    """Without the denial extension the handshake is closed with 1008 before accept."""
    app = without_denial_extension(ws_app(clerk, clock, calls))
    with (
        pytest.raises(WebSocketDisconnect) as info,
        TestClient(app).websocket_connect(WSS + path, headers=BROWSERISH),
    ):
        pass  # pragma: no cover - the handshake is refused
    assert type(info.value) is WebSocketDisconnect
    assert (info.value.code, info.value.reason) == (1008, "session-token-missing")
    assert calls == []


def test_signed_in_websocket_lacking_the_role_gets_a_403_denial(
    ws_client: TestClient, clerk: MockClerk, clock: FakeClock, calls: list[str]
) -> None:
    """A signed-in user failing has() gets a 403 denial, never the unauthorized_url redirect."""
    token = clerk.token(issued_at=clock.now)
    with (
        pytest.raises(WebSocketDenialResponse) as info,
        ws_client.websocket_connect(WSS + "/ws/admin", headers={**BROWSERISH, **bearer(token)}),
    ):
        pass  # pragma: no cover - the handshake is refused
    assert info.value.status_code == 403
    assert denial_headers(info.value) == {
        "cache-control": "no-store",
        "content-type": "application/json",
        "x-clerk-auth-reason": "authorization-failed",
        "x-clerk-auth-status": "signed-in",
    }
    assert info.value.json() == {
        "error": "forbidden",
        "reason": "authorization-failed",
        "message": "You are signed in but not allowed to access this resource.",
    }
    assert calls == []


def test_middleware_is_not_a_base_http_middleware(ws_client: TestClient, calls: list[str]) -> None:
    """Pure ASGI (BaseHTTPMiddleware lets WebSockets through); protected WS refused."""
    assert not issubclass(ClerkMiddleware, BaseHTTPMiddleware)
    with pytest.raises(WebSocketDisconnect), ws_client.websocket_connect(WSS + "/ws/admin"):
        pass  # pragma: no cover - the handshake is refused
    assert calls == []


@pytest.mark.anyio
@pytest.mark.parametrize(
    ("path", "headers", "status", "reason", "auth_status"),
    [
        ("/ws/api/feed", [], 401, "session-token-missing", "signed-out"),
        ("/ws/admin", [(b"authorization", b"Bearer x.y.z")], 401, "token-invalid", "signed-out"),
    ],
)
async def test_denial_response_messages_are_exact(
    clerk: MockClerk,
    clock: FakeClock,
    path: str,
    headers: list[tuple[bytes, bytes]],
    status: int,
    reason: str,
    auth_status: str,
) -> None:
    """With the extension, exactly a denial start + body; nothing reaches the app."""
    spy = WSSpy()
    sent = await ws_call(middleware(spy, clerk, clock), ws_scope(path, headers))
    challenge = 'Bearer realm="clerk"'
    if headers:
        challenge += f', error="invalid_token", error_description="{reason}"'
    message = {
        "session-token-missing": "Sign in to continue.",
        "token-invalid": "The session token is malformed.",
    }[reason]
    assert sent == [
        {
            "type": "websocket.http.response.start",
            "status": status,
            "headers": [
                (b"cache-control", b"no-store"),
                (b"x-clerk-auth-status", auth_status.encode()),
                (b"x-clerk-auth-reason", reason.encode()),
                (b"www-authenticate", challenge.encode()),
                (b"content-type", b"application/json"),
            ],
        },
        {
            "type": "websocket.http.response.body",
            "body": (
                f'{{"error":"unauthorized","reason":"{reason}","message":"{message}"}}'
            ).encode(),
        },
    ]
    assert spy.scopes == []


@pytest.mark.anyio
async def test_close_without_extension_is_a_single_1008_message(
    clerk: MockClerk, clock: FakeClock
) -> None:
    """Without the extension, exactly one websocket.close 1008 carrying the reason."""
    spy = WSSpy()
    sent = await ws_call(middleware(spy, clerk, clock), ws_scope("/ws/admin", denial=False))
    assert sent == [{"type": "websocket.close", "code": 1008, "reason": "session-token-missing"}]
    assert spy.scopes == []


# -- Signed-in WebSockets ---------------------------------------------------------------------


def test_valid_bearer_websocket_is_accepted_and_sees_its_auth(
    ws_client: TestClient, clerk: MockClerk, clock: FakeClock, calls: list[str]
) -> None:
    """A valid Bearer token: the app accepts and reads Auth via current_auth; x-user-id injected."""
    token = clerk.token(issued_at=clock.now, user_id="user_ws")
    with ws_client.websocket_connect(WSS + "/ws/api/feed", headers=bearer(token)) as ws:
        ws.send_text("hi")
        reply = ws.receive_json()
    assert reply == {"echo": "hi", "user_id": "user_ws", "reason": None, "x-user-id": ["user_ws"]}
    assert calls == ["/ws/api/feed"]


def test_public_websocket_runs_signed_out(ws_client: TestClient, calls: list[str]) -> None:
    """A public WebSocket with no token is accepted and sees a signed-out Auth."""
    with ws_client.websocket_connect(WSS + "/ws/public/chat") as ws:
        ws.send_text("hi")
        reply = ws.receive_json()
    assert reply == {
        "echo": "hi",
        "user_id": None,
        "reason": "session-token-missing",
        "x-user-id": [],
    }


# -- Cross-site WebSocket hijacking: a cookie session needs an allowed Origin ---------------------


@pytest.mark.parametrize(
    "origin",
    [
        pytest.param({"origin": "https://evil.example"}, id="foreign-origin"),
        pytest.param({}, id="no-origin"),
        pytest.param({"origin": "null"}, id="null-origin"),
        pytest.param(
            {"origin": ORIGIN, "sec-fetch-site": "cross-site"}, id="allowed-origin-cross-site"
        ),
    ],
)
def test_cookie_websocket_needs_an_allowed_origin(
    ws_client: TestClient,
    clerk: MockClerk,
    clock: FakeClock,
    calls: list[str],
    origin: dict[str, str],
) -> None:
    """A cookie-carried handshake without an allowed Origin is refused (401)."""
    headers = {"cookie": f"__session={clerk.token(issued_at=clock.now)}", **origin}
    with (
        pytest.raises(WebSocketDenialResponse) as info,
        ws_client.websocket_connect(WSS + "/ws/api/feed", headers=headers),
    ):
        pass  # pragma: no cover - the handshake is refused
    assert info.value.status_code == 401
    assert info.value.headers["x-clerk-auth-reason"] == "origin-not-authorized"
    assert info.value.json()["reason"] == "origin-not-authorized"
    assert calls == []


def test_cookie_websocket_with_an_allowed_origin_is_accepted(
    ws_client: TestClient, clerk: MockClerk, clock: FakeClock
) -> None:
    """Cookie + Origin in authorized_parties -> accepted."""
    headers = {"cookie": f"__session={clerk.token(issued_at=clock.now)}", "origin": ORIGIN}
    with ws_client.websocket_connect(WSS + "/ws/api/feed", headers=headers) as ws:
        ws.send_text("hi")
        assert ws.receive_json()["user_id"] == "user_test"


@pytest.mark.parametrize(
    "origin", [{}, {"origin": "https://evil.example"}], ids=["no-origin", "foreign-origin"]
)
def test_bearer_websocket_needs_no_origin(
    ws_client: TestClient, clerk: MockClerk, clock: FakeClock, origin: dict[str, str]
) -> None:
    """A Bearer handshake (non-browser client) is accepted with any or no Origin."""
    headers = {**bearer(clerk.token(issued_at=clock.now)), **origin}
    with ws_client.websocket_connect(WSS + "/ws/api/feed", headers=headers) as ws:
        ws.send_text("hi")
        assert ws.receive_json()["user_id"] == "user_test"


def test_cross_site_cookie_websocket_on_public_route_runs_signed_out(
    ws_client: TestClient, clerk: MockClerk, clock: FakeClock
) -> None:
    """On a public WebSocket the hijacked cookie session is signed out, not used."""
    headers = {
        "cookie": f"__session={clerk.token(issued_at=clock.now)}",
        "origin": "https://evil.example",
    }
    with ws_client.websocket_connect(WSS + "/ws/public/chat", headers=headers) as ws:
        ws.send_text("hi")
        reply = ws.receive_json()
    assert (reply["user_id"], reply["reason"]) == (None, "origin-not-authorized")


# -- The identity header and path rules on WebSockets --------------------------------------------


@pytest.mark.anyio
@pytest.mark.parametrize(("path", "injected"), [("/ws/api/feed", True), ("/ws/public/x", False)])
async def test_spoofed_identity_is_stripped_on_websockets(
    clerk: MockClerk, clock: FakeClock, path: str, injected: bool
) -> None:
    """Every client spelling of x-user-id is removed; API WebSockets get exactly one."""
    spy = WSSpy()
    authorization = (b"authorization", f"Bearer {clerk.token(issued_at=clock.now)}".encode())
    spoofs = [
        (b"x-user-id", b"user_admin"),
        (b"X-User-Id", b"user_admin"),
        (b"x_user_id", b"user_admin"),
        (b"X-USER_ID", b"user_admin"),
    ]
    sent = await ws_call(middleware(spy, clerk, clock), ws_scope(path, [*spoofs, authorization]))
    (scope,) = spy.scopes
    expected = [(b"host", b"app.example.com"), authorization]
    if injected:
        expected.append((b"x-user-id", b"user_test"))
    assert scope["headers"] == expected
    assert sent == [{"type": "websocket.accept"}, {"type": "websocket.close", "code": 1000}]


@pytest.mark.anyio
@pytest.mark.parametrize(
    ("path", "raw_path"),
    [
        ("/ws/admin", b"/ws%2Fadmin"),
        ("/ws/admin", b"/ws/%61dmin"),
        ("/WS/ADMIN", b"/WS/ADMIN"),
        ("//ws/public/x", b"//ws/public/x"),
        ("/ws/public/../admin", b"/ws/public/../admin"),
        ("/ws/public/../admin", b"/ws/public/%2e%2e/admin"),
        ("/ws/public/\\x", b"/ws/public/%5Cx"),
    ],
)
async def test_path_rules_apply_to_websockets(
    clerk: MockClerk, clock: FakeClock, path: str, raw_path: bytes
) -> None:
    """Encoded, cased and odd WebSocket paths are classified like HTTP ones: refused."""
    spy = WSSpy()
    sent = await ws_call(middleware(spy, clerk, clock), ws_scope(path, raw_path=raw_path))
    assert sent[0]["type"] == "websocket.http.response.start"
    assert sent[0]["status"] == 401
    assert spy.scopes == []


# -- Token expiry is checked at the handshake only -----------------------------------------------


def test_open_websocket_outlives_its_token(
    ws_client: TestClient, clerk: MockClerk, clock: FakeClock
) -> None:
    """Expiry is checked at the handshake only; an open socket keeps going."""
    token = clerk.token(issued_at=clock.now, expires_in=60)
    with ws_client.websocket_connect(WSS + "/ws/api/feed", headers=bearer(token)) as ws:
        ws.send_text("before")
        before = ws.receive_json()
        clock.advance(600)
        ws.send_text("after")
        after = ws.receive_json()
    assert before["user_id"] == after["user_id"] == "user_test"
    assert after["echo"] == "after"
    with (
        pytest.raises(WebSocketDenialResponse) as info,
        ws_client.websocket_connect(WSS + "/ws/api/feed", headers=bearer(token)),
    ):
        pass  # pragma: no cover - the handshake is refused
    assert info.value.status_code == 401
    assert info.value.headers["x-clerk-auth-reason"] == "token-expired"


# -- Lifespan and unknown scope types -------------------------------------------------------------


@pytest.mark.anyio
async def test_lifespan_passes_through_untouched(clerk: MockClerk, clock: FakeClock) -> None:
    """A lifespan scope reaches the app as the very same objects, no auth added."""
    seen: list[tuple[Scope, Receive, Send]] = []

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        seen.append((scope, receive, send))
        await receive()
        await send({"type": "lifespan.startup.complete"})

    sent: list[Message] = []

    async def receive() -> Message:
        return {"type": "lifespan.startup"}

    async def send(message: Message) -> None:
        sent.append(message)

    scope = {"type": "lifespan", "asgi": {"version": "3.0"}, "state": {}}
    before = dict(scope)
    await middleware(app, clerk, clock)(scope, receive, send)
    assert len(seen) == 1
    assert seen[0][0] is scope
    assert seen[0][1] is receive
    assert seen[0][2] is send
    assert scope == before
    assert sent == [{"type": "lifespan.startup.complete"}]


def test_lifespan_runs_through_the_middleware_in_an_app(clerk: MockClerk, clock: FakeClock) -> None:
    """FastAPI startup and shutdown hooks run with the middleware installed."""
    events: list[str] = []
    app = ws_app(clerk, clock, [])
    app.router.on_startup.append(lambda: events.append("startup"))
    app.router.on_shutdown.append(lambda: events.append("shutdown"))
    with TestClient(app):
        assert events == ["startup"]
    assert events == ["startup", "shutdown"]


@pytest.mark.anyio
@pytest.mark.parametrize("kind", ["webtransport", "foo", "HTTP", ""])
async def test_unknown_scope_types_are_refused_without_calling_the_app(
    clerk: MockClerk, clock: FakeClock, caplog: pytest.LogCaptureFixture, kind: str
) -> None:
    """Unknown scope types fail closed: the app is not called, nothing is sent, one warning."""
    called: list[Scope] = []
    received: list[Message] = []
    sent: list[Message] = []

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        called.append(scope)  # pragma: no cover - must not run

    async def receive() -> Message:
        message = {"type": f"{kind}.connect"}
        received.append(message)
        return message

    async def send(message: Message) -> None:
        sent.append(message)  # pragma: no cover - must not run

    caplog.set_level(logging.WARNING, logger="clerk_asgi")
    scope = {"type": kind, "path": "/ws/public/x", "headers": []}
    await middleware(app, clerk, clock)(scope, receive, send)
    assert (called, received, sent) == ([], [], [])
    library = [r for r in caplog.records if r.name.split(".")[0] == "clerk_asgi"]
    assert [(r.levelno, r.getMessage()) for r in library] == [
        (logging.WARNING, f"Refusing ASGI scope of unknown type {kind!r}")
    ]
