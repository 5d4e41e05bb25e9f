"""What one request carries, read once: the token and where it came from, the cookies, the
spoofed identity headers, and the facts the decision needs (navigation? cross-site? its URL).

Where the session token comes from, as Clerk's ``@clerk/backend`` reads it:

* An ``Authorization`` header that yields a token wins, even when that token is invalid: the
  cookie is then not consulted. ``Bearer <token>`` (exact case) or a bare token yield one; any
  other scheme (``Basic``, lowercase ``bearer``...) is ignored and the cookie is used.
* More than one ``Authorization`` header is ambiguous and counts as an invalid header token.
* The ``__session`` cookie: the raw ``Cookie`` header(s) are split on ``;`` first and each
  value decoded after, so an encoded ``%3B`` can never forge a cookie; the *first*
  ``__session`` wins (Clerk); quoted values are unquoted; malformed neighbours are skipped.

Nothing here is trusted yet: the token is verified by ``_verify``, the rest only steers the
decision (a redirect or a 401) and never grants access.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Mapping
from contextlib import suppress
from functools import lru_cache
from typing import Any, Final, Literal
from urllib.parse import quote, unquote

from starlette.types import Scope

from ._rules import route_path

__all__ = [
    "AMBIGUOUS",
    "IDENTITY_SPELLINGS",
    "Carrier",
    "Incoming",
    "clerk_cookies",
    "request_origin",
    "session_cookie",
    "token_from_authorization",
    "with_query",
]

Carrier = Literal["header", "cookie"]

#: Stands for "several Authorization headers": rejected as an invalid token.
AMBIGUOUS: Final = "\x00ambiguous"


def token_from_authorization(value: str) -> str | None:
    """The token an ``Authorization`` value yields, or None when it yields none.

    >>> token_from_authorization("Bearer abc")
    'abc'
    >>> token_from_authorization("abc")
    'abc'
    >>> token_from_authorization("Basic dXNlcjpwYXNz") is None
    True
    """
    scheme, _, rest = value.partition(" ")
    if not rest:
        return scheme or None
    if scheme == "Bearer":
        return rest
    return None


def session_cookie(headers: list[bytes], name: str = "__session") -> str | None:
    """The value of the first ``name`` cookie (a Clerk name, starting with ``__``) across the
    raw ``Cookie`` headers; None when absent or empty."""
    return clerk_cookies(headers).get(name)


def clerk_cookies(headers: list[bytes]) -> Mapping[str, str]:
    """Every cookie whose name starts with ``__`` (Clerk's), by name, the first of each name
    winning; empty values are left out. Read-only: one request's Cookie header is read once
    per process (see :func:`_parse_cached`)."""
    if len(headers) == 1 and len(headers[0]) <= MAX_CACHED_COOKIE_HEADER:
        return _parse_cached(headers[0])
    return _parse(headers)


def _parse(headers: Iterable[bytes]) -> dict[str, str]:
    """Split each header on ``;`` first and decode each value after (an encoded ``%3B`` never
    forges a cookie); a name is stripped, a pair without ``=`` is skipped."""
    found: dict[str, str] = {}
    for raw in headers:
        for pair in raw.decode("latin-1").split(";"):
            key, sep, value = pair.partition("=")
            key = key.strip()
            if sep and key.startswith("__") and key not in found:
                found[key] = _cookie_value(value)
    return {name: value for name, value in found.items() if value}


#: A browser sends the same Cookie header until a cookie changes (Clerk's session token: every
#: minute or so), so the parse of recent headers is kept: a hash and a lookup instead of
#: splitting a header of several kilobytes. At most this many headers of at most 8 KiB each.
COOKIE_CACHE_SIZE: Final = 1024
MAX_CACHED_COOKIE_HEADER: Final = 8192


@lru_cache(maxsize=COOKIE_CACHE_SIZE)
def _parse_cached(raw: bytes) -> Mapping[str, str]:
    """:func:`_parse` of one header, shared by every request that sends the same one (the
    result is a pure function of the bytes, and never mutated)."""
    return _parse((raw,))


def _cookie_value(value: str) -> str:
    """A raw cookie value, trimmed, one pair of quotes removed, percent-decoded when valid."""
    value = value.strip()
    if len(value) >= 2 and value[0] == value[-1] == '"':
        value = value[1:-1]
    if "%" in value:
        with suppress(UnicodeDecodeError):  # a malformed escape stays as it is
            value = unquote(value, errors="strict")
    return value


def _spellings(name: str) -> frozenset[bytes]:
    """Every spelling of a header name a client could smuggle: any case, ``_`` for ``-``."""
    variants = [""]
    for char in name:
        options = {char.lower(), char.upper()} | ({"_"} if char == "-" else set())
        variants = [v + o for v in variants for o in options]
    return frozenset(v.encode("ascii") for v in variants)


#: The 512 spellings of ``x-user-id`` (case, ``_`` for ``-``): removed from every request.
IDENTITY_SPELLINGS: Final = _spellings("x-user-id")


#: Stands for "several Authorization headers" (compared by identity; NUL is never sent).
_SEVERAL: Final = b"\x00several Authorization headers"
_SAFE_METHODS: Final = frozenset({"GET", "HEAD", "OPTIONS"})
#: Longer redirect URLs fall back to the origin's root (browsers and proxies cut long URLs).
MAX_REDIRECT_URL: Final = 2048


def _first_values(
    raw_headers: Iterable[tuple[bytes, bytes]],
) -> tuple[dict[bytes, bytes], bytes | None, list[bytes] | None]:
    """When header names repeat: the first value of each name, the Authorization value
    (:data:`_SEVERAL` when there are several), and every Cookie header."""
    found: dict[bytes, bytes] = {}
    authorization: bytes | None = None
    cookies: list[bytes] = []
    for name, value in raw_headers:
        if name == b"authorization":
            authorization = value if authorization is None else _SEVERAL
        elif name == b"cookie":
            cookies.append(value)
        found.setdefault(name, value)
    return found, authorization, cookies or None


class Incoming:
    """One request as the middleware sees it, read once from its ASGI scope."""

    __slots__ = (
        "authorization_ignored",
        "carrier",
        "cookies",
        "headers",
        "path",
        "scope",
        "spoofed",
        "token",
    )

    #: The first value of each header name (lower-case names, as ASGI servers send them).
    headers: dict[bytes, bytes]
    #: Every raw ``Cookie`` header, in order, or None.
    cookies: list[bytes] | None
    #: The session token (not yet verified), :data:`AMBIGUOUS`, or None.
    token: str | None
    carrier: Carrier
    #: An ``Authorization`` header was present but ignored (another scheme than ``Bearer``).
    authorization_ignored: bool
    #: The client sent some spelling of ``x-user-id``: it must be removed.
    spoofed: bool
    #: The path the router dispatches on (``scope["path"]`` minus ``root_path``).
    path: str

    def __init__(self, scope: Scope, cookie_flow: bool = False, /) -> None:
        """Read ``scope``; with ``cookie_flow`` (Clerk's handshake on), the session cookie is
        left to the flow, which reads every Clerk cookie at once."""
        self.scope = scope
        raw = scope["headers"]
        headers: dict[bytes, bytes] = dict(raw)  # in C; keeps the last of repeated names
        if len(headers) == len(raw):
            authorization = headers.get(b"authorization")
            cookie = headers.get(b"cookie")
            cookies = None if cookie is None else [cookie]
        else:  # read again in order: first wins, Authorization counted, every Cookie kept
            headers, authorization, cookies = _first_values(raw)
        self.headers = headers
        self.cookies = cookies
        self.spoofed = not IDENTITY_SPELLINGS.isdisjoint(headers)
        self.path = route_path(scope) if scope.get("root_path") else scope["path"]

        token: str | None = None
        self.authorization_ignored = False
        if authorization is not None:
            if authorization.startswith(b"Bearer ") and len(authorization) > 7:  # common case
                token = authorization[7:].decode("latin-1")
            elif authorization is _SEVERAL:
                token = AMBIGUOUS
            else:
                token = token_from_authorization(authorization.decode("latin-1"))
                self.authorization_ignored = token is None
        self.carrier = "header"
        if token is None and cookies is not None and not cookie_flow:
            token, self.carrier = session_cookie(cookies), "cookie"
        self.token = token

    def is_navigation(self) -> bool:
        """A browser page load: GET/HEAD with ``Sec-Fetch-Dest`` document/iframe, or no
        ``Sec-Fetch-Dest`` and ``Accept`` naming text/html (and not an XMLHttpRequest)."""
        scope, headers = self.scope, self.headers
        if scope["type"] != "http" or scope["method"] not in ("GET", "HEAD"):
            return False
        dest = headers.get(b"sec-fetch-dest")
        if dest is not None:
            return dest in (b"document", b"iframe")
        accept = headers.get(b"accept")
        return (
            accept is not None
            and accept.find(b"text/html") >= 0  # cheaper than ``in`` for bytes
            and headers.get(b"x-requested-with") is None
        )

    def is_cross_site(self, authorized_parties: Collection[str], public_origin: str | None) -> bool:
        """A cookie-carried session used cross-site (CSRF / cross-site WebSocket hijacking).

        WebSocket handshakes must send an allowed ``Origin``; state-changing HTTP methods are
        refused when ``Origin`` names another site or ``Sec-Fetch-Site`` says cross-site.
        """
        websocket: bool = self.scope["type"] == "websocket"
        if not websocket and self.scope["method"] in _SAFE_METHODS:
            return False
        if self.headers.get(b"sec-fetch-site") == b"cross-site":
            return True
        origin = self.headers.get(b"origin")
        if origin is None:
            return websocket
        text: str = origin.decode("latin-1")
        if authorized_parties:
            return text not in authorized_parties
        return text != (public_origin or request_origin(self.scope, self.headers.get(b"host")))

    def url(self, public_origin: str | None) -> str:
        """This request's absolute URL, for ``redirect_url`` (see :func:`redirect_url_for`)."""
        return redirect_url_for(self.scope, self.headers.get(b"host"), public_origin)


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
        if ":" in name:  # an IPv6 address, bracketed in URLs (RFC 3986 §3.2.2, RFC 6874)
            name = "[" + name.replace("%", "%25") + "]"
        default = {"http": 80, "https": 443}.get(scheme)
        netloc = name if port in (None, default) else f"{name}:{port}"
        return f"{scheme}://{netloc}"
    return f"{scheme}://localhost"


def _valid_host(text: str) -> bool:
    name, _, port = text.rpartition(":") if not text.endswith("]") else (text, "", "")
    if not name:
        name, port = text, ""
    valid_port = port.isascii() and port.isdigit() and len(port) <= 5 and 0 < int(port) < 65536
    if (port or text.endswith(":")) and not valid_port:
        return False
    if name.startswith("["):
        return name.endswith("]") and all(c in "0123456789abcdefABCDEF:." for c in name[1:-1])
    labels = name.split(".")
    if labels[-1] == "":  # one trailing dot is a fully qualified name
        labels.pop()
    return bool(labels) and all(
        label and all(c.isascii() and (c.isalnum() or c == "-") for c in label) for label in labels
    )


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
