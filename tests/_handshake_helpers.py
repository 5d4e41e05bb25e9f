"""Shared by the handshake tests (tests/test_handshake_*.py): a site behind ClerkMiddleware with
the handshake on, a FakeClerk as its Frontend and Backend API, and exact views of the answers.

Every site verifies with the fake's real RSA key (``jwt_key``, no JWKS fetch) and reaches the
Backend API through ``httpx.ASGITransport(fake)`` (or another httpx transport a test passes).
Time is the test's ``FakeClock``. Nothing here asserts: tests compare the plain values these
helpers return (:func:`answer`, :func:`params`) with what they expect, spelled out.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any
from urllib.parse import parse_qsl, quote, urlsplit

import httpx
from starlette.responses import JSONResponse
from starlette.types import Message, Receive, Scope, Send

from clerk_asgi import ClerkMiddleware, Rule
from clerk_asgi.testing import FakeClerk, FakeClock, KeyPair, mint_session_token
from clerk_asgi.testing._fakeclerk_models import FakeClient

#: The app's origin (the fake's ``origin``: the ``azp`` of its tokens).
ORIGIN = "https://app.example.test"
#: The fake's Frontend API (its default ``frontend_api``), where handshakes go.
FAPI = "https://clerk.example.test"
HANDSHAKE = FAPI + "/v1/client/handshake"
API_VERSION = "2026-05-12"

#: A top-level page load, as a browser sends it.
NAV = {"sec-fetch-dest": "document", "accept": "text/html,application/xhtml+xml,*/*;q=0.8"}
#: A fetch()/XHR call from a page.
FETCH = {"sec-fetch-dest": "empty", "accept": "*/*"}

RULES = [
    Rule.public("/", "/sign-in(.*)", "/public(.*)"),
    Rule.protect("/admin(.*)", role="org:admin"),
    Rule.api("/api/(.*)"),
]

#: The message of each reason code the handshake tests see, spelled out (the contract).
MESSAGES = {
    "session-token-missing": "Sign in to continue.",
    "session-token-and-uat-missing": "Sign in to continue.",
    "session-token-but-no-client-uat": "The session cookie is not backed by a signed-in client.",
    "client-uat-but-no-session-token": "The session cookie is missing; reload the page.",
    "session-token-iat-before-client-uat": "The session cookie is stale; reload the page.",
    "session-token-expired-refresh-non-eligible-no-refresh-cookie": (
        "The session token has expired; reload the page."
    ),
    "session-token-expired-refresh-non-eligible-non-get": (
        "The session token has expired; refresh it and retry."
    ),
    "session-token-nbf": "The session token is not valid yet (nbf).",
    "session-token-iat-in-the-future": "The session token was issued in the future (iat).",
    "dev-browser-missing": "This development instance needs a dev browser; reload the page.",
    "dev-browser-sync": "This development instance is syncing the dev browser; reload the page.",
    "token-type-mismatch": "This token is not a Clerk session token.",
    "session-revoked": "This session was signed out; sign in again.",
    "token-invalid": "The session token is malformed.",
    "token-invalid-signature": "The session token's signature is invalid.",
    "token-verification-failed": "The session token's claims are invalid.",
    "token-expired": "The session token has expired; fetch a fresh one and retry.",
    "token-invalid-issuer": "The session token was issued by another Clerk instance (iss).",
    "authorization-failed": "You are signed in but not allowed to access this resource.",
}

#: ``x-clerk-auth-message`` of an expired cookie token.
EXPIRED_DETAIL = (
    "The session token has expired; fetch a fresh one and retry. "
    "(reason=token-expired, token-carrier=cookie)"
)

#: Response headers the exact comparisons look at (each once, Set-Cookie as a list).
HEADERS = (
    "access-control-allow-origin",
    "cache-control",
    "content-type",
    "location",
    "retry-after",
    "set-cookie",
    "www-authenticate",
    "x-clerk-auth-message",
    "x-clerk-auth-reason",
    "x-clerk-auth-status",
    "x-user-id",
)


async def spy(scope: Scope, receive: Receive, send: Send) -> None:
    """The app: answers 200 with the Auth it was given (and accepts WebSockets)."""
    auth = scope["clerk_asgi.auth"]
    if scope["type"] == "websocket":
        await receive()
        await send({"type": "websocket.accept"})
        await send({"type": "websocket.close", "code": 1000})
        return
    body = {"user_id": auth.user_id, "session_id": auth.session_id, "reason": auth.reason}
    await JSONResponse(body)(scope, receive, send)


def make_fake(
    key: KeyPair, clock: FakeClock, instance: Any = "production", **options: Any
) -> FakeClerk:
    """A FakeClerk signing with the session's test key (no key generation per test)."""
    return FakeClerk(key=key, clock=clock, instance=instance, origin=ORIGIN, **options)


def site(
    fake: FakeClerk,
    clock: FakeClock,
    *,
    bapi: httpx.AsyncBaseTransport | None = None,
    **options: Any,
) -> ClerkMiddleware:
    """The app behind ClerkMiddleware configured for ``fake``, the handshake on."""
    settings: dict[str, Any] = {
        "rules": RULES,
        "publishable_key": fake.publishable_key,
        "secret_key": fake.secret_key,
        "api_url": fake.api_url,
        "jwt_key": fake.key.public_pem,
        "http_client": httpx.AsyncClient(transport=bapi or httpx.ASGITransport(fake)),
        "clock": clock,
        "sign_in_url": "/sign-in",
        "authorized_parties": [ORIGIN],
    }
    settings.update(options)
    return ClerkMiddleware(spy, **settings)


def session_token(
    key: KeyPair,
    clock: FakeClock,
    *,
    issued: float = 0,
    lifetime: float = 60,
    issuer: str | None = FAPI,
    user_id: str = "user_1",
    session_id: str = "sess_1",
    **options: Any,
) -> str:
    """A session token of the fake's instance, issued ``issued`` seconds from now."""
    return mint_session_token(
        key,
        user_id=user_id,
        session_id=session_id,
        issuer=issuer,
        azp=ORIGIN,
        issued_at=clock.now + issued,
        expires_in=lifetime,
        **options,
    )


def cookie_header(cookies: Mapping[str, str] | Iterable[tuple[str, str]]) -> str:
    """A ``Cookie`` header, pairs in order, values as given."""
    pairs = cookies.items() if isinstance(cookies, Mapping) else cookies
    return "; ".join(f"{name}={value}" for name, value in pairs)


async def request(
    app: Any,
    path: str = "/dashboard",
    *,
    cookies: Mapping[str, str] | Iterable[tuple[str, str]] | None = None,
    headers: Mapping[str, str] | None = None,
    method: str = "GET",
    base_url: str = ORIGIN,
) -> httpx.Response:
    """One request to ``app`` (a page load unless ``headers`` say otherwise)."""
    sent = dict(NAV if headers is None else headers)
    if cookies is not None:
        sent["cookie"] = cookie_header(cookies)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app), base_url=base_url) as client:
        return await client.request(method, path, headers=sent)


def answer(response: httpx.Response) -> dict[str, Any]:
    """Status, the :data:`HEADERS` present (Set-Cookie as a list), and the body (JSON or text)."""
    found: dict[str, Any] = {"status": response.status_code}
    for name in HEADERS:
        values = response.headers.get_list(name)
        if values:
            found[name] = values if name == "set-cookie" else ", ".join(values)
    kind = response.headers.get("content-type", "")
    found["body"] = response.json() if kind.startswith("application/json") else response.text
    return found


def observed(response: httpx.Response, base: str = HANDSHAKE) -> dict[str, Any]:
    """:func:`answer`, a handshake's Location (to ``base``) split into ``base?...`` and its
    decoded ``params`` (so tokens compare by value)."""
    found = answer(response)
    location = found.get("location", "")
    if location.startswith(base + "?"):
        found["location"] = f"{base}?..."
        found["params"] = params(location)
    return found


def params(location: str) -> list[tuple[str, str]]:
    """The query parameters of ``location``, decoded, in order."""
    return parse_qsl(urlsplit(location).query, keep_blank_values=True)


def counter(count: int) -> str:
    """The loop guard's ``Set-Cookie`` for the ``count``-th handshake in a row."""
    return f"__clerk_redirect_count={count}; SameSite=Lax; HttpOnly; Max-Age=2"


def handshake(
    location: str, reason: str, *, count: int = 1, detail: str | None = None
) -> dict[str, Any]:
    """What :func:`answer` gives for a handshake 307 to ``location``."""
    expected: dict[str, Any] = {
        "status": 307,
        "cache-control": "no-store",
        "location": location,
        "set-cookie": [counter(count)],
        "x-clerk-auth-reason": reason,
        "x-clerk-auth-status": "handshake",
        "body": "",
    }
    if detail is not None:
        expected["x-clerk-auth-message"] = detail
    return expected


def handshake_params(
    redirect_url: str,
    reason: str,
    *,
    suffixed: bool = False,
    session: str | None = None,
    dev_browser: str | None = None,
) -> list[tuple[str, str]]:
    """The handshake URL's parameters, decoded, in Clerk's order."""
    found = [
        ("redirect_url", redirect_url),
        ("__clerk_api_version", API_VERSION),
        ("suffixed_cookies", "true" if suffixed else "false"),
        ("__clerk_hs_reason", reason),
        ("format", "nonce"),
    ]
    if session is not None:
        found.append(("__session", session))
    if dev_browser is not None:
        found.append(("__clerk_db_jwt", dev_browser))
    return found


def to_sign_in(reason: str, url: str, cookies: list[str] | None = None) -> dict[str, Any]:
    """What :func:`answer` gives for the signed-out page load of a protected page."""
    expected: dict[str, Any] = {
        "status": 307,
        "cache-control": "no-store",
        "location": "/sign-in?redirect_url=" + quote(url, safe=""),
        "x-clerk-auth-reason": reason,
        "x-clerk-auth-status": "signed-out",
        "body": "",
    }
    if cookies:
        expected["set-cookie"] = cookies
    return expected


def unauthorized(reason: str, *, token_presented: bool = False) -> dict[str, Any]:
    """What :func:`answer` gives for a 401 refusal with ``reason``."""
    challenge = 'Bearer realm="clerk"'
    if token_presented:
        challenge += f', error="invalid_token", error_description="{reason}"'
    return {
        "status": 401,
        "cache-control": "no-store",
        "content-type": "application/json",
        "www-authenticate": challenge,
        "x-clerk-auth-reason": reason,
        "x-clerk-auth-status": "signed-out",
        "body": {"error": "unauthorized", "reason": reason, "message": MESSAGES[reason]},
    }


def ran(
    user_id: str | None,
    session_id: str | None = None,
    reason: str | None = None,
    cookies: list[str] | None = None,
) -> dict[str, Any]:
    """What :func:`answer` gives when the app ran (200) with this Auth."""
    expected: dict[str, Any] = {"status": 200, "content-type": "application/json"}
    if cookies:
        expected["set-cookie"] = cookies
    expected["body"] = {"user_id": user_id, "session_id": session_id, "reason": reason}
    return expected


async def websocket(app: Any, cookies: Mapping[str, str], headers: Mapping[str, str]) -> Message:
    """The first message ``app`` sends on a WebSocket (no denial-response extension)."""
    raw = [(k.encode(), v.encode()) for k, v in headers.items()]
    raw.append((b"cookie", cookie_header(cookies).encode()))
    scope: Scope = {
        "type": "websocket",
        "asgi": {"version": "3.0"},
        "scheme": "wss",
        "path": "/dashboard",
        "raw_path": b"/dashboard",
        "query_string": b"",
        "root_path": "",
        "headers": [(b"host", b"app.example.test"), (b"origin", ORIGIN.encode()), *raw],
        "server": ("app.example.test", 443),
        "subprotocols": [],
    }
    sent: list[Message] = []

    async def receive() -> Message:
        return {"type": "websocket.connect"}

    async def send(message: Message) -> None:
        sent.append(message)

    await app(scope, receive, send)
    return sent[0]


def bapi_calls(fake: FakeClerk) -> list[tuple[str, str]]:
    """The Backend API handshake-payload calls the fake received."""
    return [call for call in fake.requests if call[1] == "/v1/clients/handshake_payload"]


async def fapi_handshake(
    fake: FakeClerk,
    client: FakeClient | None,
    redirect_url: str,
    *,
    format: str = "nonce",
    suffixed: bool = False,
) -> httpx.Response:
    """The Frontend API's answer to a browser (``client``'s cookies) sent to its handshake."""
    query = {
        "redirect_url": redirect_url,
        "format": format,
        "suffixed_cookies": "true" if suffixed else "false",
    }
    cookies = client.cookies if client is not None else {}
    if client is not None and client.dev_browser is not None:
        query["__clerk_db_jwt"] = client.dev_browser
    async with httpx.AsyncClient(transport=httpx.ASGITransport(fake), base_url=FAPI) as browser:
        return await browser.get(
            "/v1/client/handshake", params=query, headers={"cookie": cookie_header(cookies)}
        )


def carried(response: httpx.Response, name: str) -> str:
    """The value the Frontend API sent back as ``name``: in the Location's query (development)
    or in a ``Set-Cookie`` (production)."""
    for key, value in params(response.headers["location"]):
        if key == name:
            return value
    for directive in response.headers.get_list("set-cookie"):
        key, _, rest = directive.partition("=")
        if key == name:
            return rest.split(";", 1)[0]
    raise LookupError(name)


def apply(cookies: dict[str, str], directives: Iterable[str]) -> dict[str, str]:
    """``cookies`` after a browser applied the ``Set-Cookie`` ``directives`` (Max-Age=0 or an
    empty value removes a cookie)."""
    jar = dict(cookies)
    for directive in directives:
        pair, *attributes = directive.split(";")
        name, _, value = pair.strip().partition("=")
        if not value or any(a.strip().lower() == "max-age=0" for a in attributes):
            jar.pop(name, None)
        else:
            jar[name] = value
    return jar
