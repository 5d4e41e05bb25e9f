"""Refusals -> ASGI messages: the only place a refusal is written.

A :class:`Refusal` is what the library answers instead of running the app: 401/403/503 JSON,
a 307 redirect, or a WebSocket denial. Every one carries ``Cache-Control: no-store`` and
Clerk's debug headers ``x-clerk-auth-status``/``x-clerk-auth-reason``. Bodies are JSON
``{"error", "reason", "message"}``; 401s add ``WWW-Authenticate: Bearer ...`` (RFC 6750 §3).
WebSockets are refused before ``accept``: with the HTTP denial response when the server
offers the ``websocket.http.response`` extension, else with close code 1008.

An ``on_refusal`` hook may write the response instead (an HTML page, a company's error JSON);
returning ``None`` sends the default.
"""

from __future__ import annotations

import inspect
import json
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Final, Literal, TypeAlias

from starlette.requests import HTTPConnection, Request
from starlette.responses import Response
from starlette.types import Receive, Scope, Send
from starlette.websockets import WebSocket

from ._reasons import message_for

__all__ = ["Refusal", "RefusalHook", "send_refusal"]

_ERRORS: Final = {
    400: "bad_request",
    401: "unauthorized",
    403: "forbidden",
    429: "too_many_requests",
    503: "service_unavailable",
}


@dataclass(frozen=True, slots=True)
class Refusal:
    """What the library answers instead of running the app.

    Attributes:
        status: 401, 403, 429 (a rate limit), 503, or 307 for a redirect.
        reason: the machine-readable reason code (Clerk's where Clerk has one).
        message: a human-readable explanation, safe to show to clients.
        auth_status: ``"signed-in"``, ``"signed-out"`` or ``"handshake"`` (Clerk's
            ``x-clerk-auth-status``).
        location: where a redirect points, else None.
        retry_after: seconds for ``Retry-After`` (429, 503), else None.
        token_presented: a token came with the request (a 401 then says ``invalid_token``).
        cookies: ``Set-Cookie`` values to send with the answer (Clerk's handshake directives,
            its loop-guard counter); added to a custom ``on_refusal`` response too.
        detail: Clerk's ``x-clerk-auth-message`` (why a token failed), empty for none.
    """

    status: int
    reason: str
    auth_status: Literal["signed-in", "signed-out", "handshake"] = "signed-out"
    location: str | None = None
    token_presented: bool = False
    retry_after: int | None = None
    message: str = field(default="")
    cookies: tuple[str, ...] = ()
    detail: str = ""

    def __post_init__(self) -> None:
        if not self.message:
            object.__setattr__(self, "message", message_for(self.reason))

    @property
    def error(self) -> str:
        """The ``error`` member of the JSON body: ``unauthorized``, ``forbidden``, ..."""
        return _ERRORS.get(self.status, "redirect")

    @property
    def headers(self) -> dict[str, str]:
        """The headers every refusal carries (``Set-Cookie`` aside: see :attr:`cookies`);
        start from these in a custom response."""
        return {
            name.decode(): value.decode("latin-1")
            for name, value in self.raw_headers()
            if name != b"set-cookie"
        }

    def raw_headers(self) -> list[tuple[bytes, bytes]]:
        """Every header as ASGI pairs (``Set-Cookie`` included), without ``content-type`` and
        ``content-length``."""
        headers = [(b"cache-control", b"no-store")]
        if self.reason:  # Clerk's debug headers; none on a signed-in handshake return
            headers.append((b"x-clerk-auth-status", self.auth_status.encode()))
            headers.append((b"x-clerk-auth-reason", self.reason.encode()))
            if self.detail and self.detail.isascii() and self.detail.isprintable():
                headers.append((b"x-clerk-auth-message", self.detail.encode()))
        if self.location is not None:
            headers.append((b"location", self.location.encode("ascii")))
        if self.status == 401:
            challenge = 'Bearer realm="clerk"'
            if self.token_presented:
                challenge += f', error="invalid_token", error_description="{self.reason}"'
            headers.append((b"www-authenticate", challenge.encode()))
        if self.retry_after is not None:
            headers.append((b"retry-after", str(self.retry_after).encode()))
        headers.extend((b"set-cookie", cookie.encode("latin-1")) for cookie in self.cookies)
        return headers

    def body(self) -> bytes:
        """The default body: JSON ``{"error", "reason", "message"}``; empty for redirects."""
        if self.location is not None:
            return b""
        document = {"error": self.error, "reason": self.reason, "message": self.message}
        return json.dumps(document, separators=(",", ":")).encode()

    def response(self) -> Response:
        """The default response, as a Starlette :class:`~starlette.responses.Response`."""
        body = self.body()
        response = Response(
            body, status_code=self.status, media_type="application/json" if body else None
        )
        response.raw_headers[:0] = self.raw_headers()
        return response


#: ``on_refusal``: given the connection and the refusal, the response to send (sync or async);
#: ``None`` sends the default.
RefusalHook: TypeAlias = Callable[
    [HTTPConnection, Refusal], Response | Awaitable[Response | None] | None
]


async def send_refusal(
    scope: Scope, receive: Receive, send: Send, refusal: Refusal, hook: RefusalHook | None
) -> None:
    """Send ``refusal`` on an HTTP or (not yet accepted) WebSocket connection."""
    websocket = scope["type"] == "websocket"
    denial = not websocket or "websocket.http.response" in (scope.get("extensions") or {})
    if hook is not None and denial:
        conn = WebSocket(scope, receive, send) if websocket else Request(scope, receive)
        response = hook(conn, refusal)
        if inspect.isawaitable(response):
            response = await response
        if response is not None:
            if not isinstance(response, Response):
                raise TypeError(
                    f"on_refusal must return a starlette Response or None, got {response!r}."
                )
            response.raw_headers.extend(
                (b"set-cookie", cookie.encode("latin-1")) for cookie in refusal.cookies
            )
            await response(scope, receive, send)  # on a WebSocket: the HTTP denial response
            return
    if not denial:  # the server cannot send an HTTP response on a WebSocket
        await send({"type": "websocket.close", "code": 1008, "reason": refusal.reason})
        return
    body = refusal.body()
    headers = refusal.raw_headers()
    if body:
        headers.append((b"content-type", b"application/json"))
    prefix = "websocket." if websocket else ""
    if not websocket:
        headers.append((b"content-length", str(len(body)).encode()))
    await send(
        {"type": f"{prefix}http.response.start", "status": refusal.status, "headers": headers}
    )
    await send({"type": f"{prefix}http.response.body", "body": body})
