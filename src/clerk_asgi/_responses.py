"""The responses the middleware sends itself: 401/403/503 JSON, 307 redirects, WebSocket denials.

Every one carries ``Cache-Control: no-store`` and Clerk's debug headers
``x-clerk-auth-status``/``x-clerk-auth-reason``. Bodies are JSON
``{"error", "reason", "message"}``; 401s add ``WWW-Authenticate: Bearer ...`` (RFC 6750 §3).
WebSockets are refused before ``accept``: with the HTTP denial response when the server
offers the ``websocket.http.response`` extension, else with close code 1008.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any, Final
from urllib.parse import quote

from starlette.types import Scope, Send

from ._reasons import message_for

__all__ = ["Refusal", "redirect_url_for", "request_origin", "send_refusal", "with_query"]

MAX_REDIRECT_URL: Final = 2048


@dataclass(frozen=True, slots=True)
class Refusal:
    """What to answer instead of running the app."""

    status: int
    reason: str
    auth_status: str = "signed-out"
    location: str | None = None
    token_presented: bool = False
    retry_after: int | None = None
    message: str | None = None  # default: the reason's standard message

    @property
    def error(self) -> str:
        return {401: "unauthorized", 403: "forbidden", 503: "service_unavailable"}.get(
            self.status, "redirect"
        )

    def headers(self) -> list[tuple[bytes, bytes]]:
        headers = [
            (b"cache-control", b"no-store"),
            (b"x-clerk-auth-status", self.auth_status.encode()),
            (b"x-clerk-auth-reason", self.reason.encode()),
        ]
        if self.location is not None:
            headers.append((b"location", self.location.encode("ascii")))
        if self.status == 401:
            challenge = 'Bearer realm="clerk"'
            if self.token_presented:
                challenge += f', error="invalid_token", error_description="{self.reason}"'
            headers.append((b"www-authenticate", challenge.encode()))
        if self.retry_after is not None:
            headers.append((b"retry-after", str(self.retry_after).encode()))
        return headers

    def body(self) -> bytes:
        if self.location is not None:
            return b""
        return json.dumps(
            {
                "error": self.error,
                "reason": self.reason,
                "message": self.message or message_for(self.reason),
            },
            separators=(",", ":"),
        ).encode()


async def send_refusal(scope: Scope, send: Send, refusal: Refusal) -> None:
    """Send ``refusal`` on an HTTP or (not yet accepted) WebSocket connection."""
    body = refusal.body()
    headers = refusal.headers()
    if scope["type"] == "websocket":
        # Before accept; WebSocket refusals are never redirects (clients don't follow them).
        if "websocket.http.response" in (scope.get("extensions") or {}):
            headers.append((b"content-type", b"application/json"))
            await send(
                {
                    "type": "websocket.http.response.start",
                    "status": refusal.status,
                    "headers": headers,
                }
            )
            await send({"type": "websocket.http.response.body", "body": body})
        else:
            await send({"type": "websocket.close", "code": 1008, "reason": refusal.reason})
        return
    if body:
        headers.append((b"content-type", b"application/json"))
    headers.append((b"content-length", str(len(body)).encode()))
    await send({"type": "http.response.start", "status": refusal.status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


# Bytes kept as they are when re-encoding the received path and query for redirect_url.
_PATH_SAFE: Final = "/%:@!$&'()*+,;=-._~"
_QUERY_SAFE: Final = _PATH_SAFE + "?"


def request_origin(scope: Scope, host: bytes | None) -> str:
    """The request's own origin: its scheme and ``Host`` header (when well formed), else the
    server address. Behind a proxy this is the proxy's view: configure ``public_origin``."""
    scheme: str = scope.get("scheme") or "http"
    scheme = {"ws": "http", "wss": "https"}.get(scheme, scheme)
    if host is not None:
        text = host.decode("latin-1")
        if _valid_host(text):
            return f"{scheme}://{text}"
    server: Any = scope.get("server")
    if server:
        name, port = server[0], server[1]
        default = {"http": 80, "https": 443}.get(scheme)
        netloc = name if port in (None, default) else f"{name}:{port}"
        return f"{scheme}://{netloc}"
    return f"{scheme}://localhost"


def _valid_host(text: str) -> bool:
    name, _, port = text.rpartition(":") if not text.endswith("]") else (text, "", "")
    if not name:
        name, port = text, ""
    if port and not port.isdigit():
        return False
    if name.startswith("["):
        return name.endswith("]") and all(c in "0123456789abcdefABCDEF:." for c in name[1:-1])
    return bool(name) and all(c.isascii() and (c.isalnum() or c in "-.") for c in name)


def redirect_url_for(scope: Scope, host: bytes | None, public_origin: str | None) -> str:
    """The absolute URL of this request, for ``redirect_url``: origin + received path + query.

    The origin is ``public_origin`` when configured, else the request's own (Host header,
    validated). The path is the raw path as received, percent-encoded where needed, so
    ``//evil.com`` stays a path on this origin. Longer than 2 KiB: the origin's root.
    """
    origin = public_origin or request_origin(scope, host)
    raw: bytes | None = scope.get("raw_path")
    if raw is not None:
        path = quote(raw, safe=_PATH_SAFE)
        root = scope.get("root_path", "")
        if root and not raw.startswith(root.encode("utf-8", "surrogateescape")):
            path = quote(root, safe=_PATH_SAFE) + path
    else:
        path = quote(scope["path"], safe=_PATH_SAFE)
    if not path.startswith("/"):  # an absolute-form request target ("GET http://x/y")
        path = "/" + path
    query: bytes = scope.get("query_string", b"")
    url = origin + path + ("?" + quote(query, safe=_QUERY_SAFE) if query else "")
    if len(url) > MAX_REDIRECT_URL:
        return origin + "/"
    return url


def with_query(url: str, name: str, value: str) -> str:
    """Append one properly encoded query parameter to ``url`` (before any ``#fragment``)."""
    url, hash_mark, fragment = url.partition("#")
    separator = "&" if "?" in url else "?"
    return f"{url}{separator}{name}={quote(value, safe='')}{hash_mark}{fragment}"
