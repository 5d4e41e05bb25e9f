"""Shared by the end-to-end middleware tests (test_decisions.py, test_redirects.py, ...).

Most of those tests drive a FastAPI app built per test (``make_app``) through
``httpx.ASGITransport``; header spellings a client library would normalise (upper-case names,
``x_user_id``, malformed Host values, raw paths) go through hand-built ASGI scopes
(``http_scope``) and a recording ``Spy`` app instead. Tokens are real, signed by the session
``key`` fixture, and time is the ``FakeClock``. The ``assert_*`` helpers pin the middleware's
answers exactly: status, every relevant header (each at most once) and the body.
"""

from __future__ import annotations

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

from clerk_asgi import Auth, ClerkMiddleware, Rule, current_auth
from clerk_asgi.testing import FakeClock, MockClerk

from .helpers import MESSAGES, ORIGIN

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
    """An httpx client calling ``app`` in process, as a browser on ORIGIN would."""
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


def assert_401(
    r: httpx.Response, reason: str, *, presented: bool, message: str | None = None
) -> None:
    """A 401 sent by the middleware: exact headers and JSON body (the reason's message unless
    ``message`` is given)."""
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
    assert r.json() == {
        "error": "unauthorized",
        "reason": reason,
        "message": MESSAGES[reason] if message is None else message,
    }


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
    """The Location of a sign-in redirect that returns to ``redirect_url``."""
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


def session(token: str) -> dict[str, str]:
    """The ``Cookie`` header of a browser holding ``token`` as its ``__session``."""
    return {"cookie": f"__session={token}"}


def admin_token(clerk: MockClerk, clock: FakeClock, user_id: str = "user_admin") -> str:
    """A valid token of an org:admin of org_1."""
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
    """The headers of the one response start in ``sent``; fails if a name repeats."""
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
    """``ClerkMiddleware`` around ``app``, trusting ``clerk``, with RULES unless told."""
    return ClerkMiddleware(app, **clerk.middleware_options(rules=rules, clock=clock, **options))


#: Client spellings of the identity header (case, '_' for '-'), one a list of two users.
SPOOFS: list[tuple[bytes, bytes]] = [
    (b"x-user-id", b"user_admin"),
    (b"X-User-Id", b"user_admin"),
    (b"X-USER-ID", b"user_admin"),
    (b"x_user_id", b"user_admin"),
    (b"x-user_id", b"user_admin"),
    (b"X_User-Id", b"user_admin"),
    (b"x-user-id", b"user_admin, user_b"),
]
#: Headers whose names only resemble x-user-id: forwarded untouched.
LOOKALIKES: list[tuple[bytes, bytes]] = [
    (b"x-user-ids", b"1"),
    (b"x-userid", b"2"),
    (b"xx-user-id", b"3"),
    (b"x-user-id2", b"4"),
]
