"""Where the session token comes from (reference/clerk-semantics.md §1.3-§1.4).

* An ``Authorization`` header that yields a token wins, even when that token is invalid: the
  cookie is then not consulted. ``Bearer <token>`` (exact case) or a bare token yield one; any
  other scheme (``Basic``, lowercase ``bearer``...) is ignored and the cookie is used.
* More than one ``Authorization`` header is ambiguous and counts as an invalid header token.
* The ``__session`` cookie: the raw ``Cookie`` header(s) are split on ``;`` first and each
  value decoded after, so an encoded ``%3B`` can never forge a cookie; the *first*
  ``__session`` wins (Clerk); quoted values are unquoted; malformed neighbours are skipped.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from contextlib import suppress
from typing import Final, Literal
from urllib.parse import unquote

from starlette.types import Scope

__all__ = [
    "AMBIGUOUS",
    "IDENTITY_SPELLINGS",
    "SEVERAL",
    "Carrier",
    "carriers",
    "is_navigation",
    "session_cookie",
    "token_from_authorization",
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
    """The value of the first ``name`` cookie across the raw ``Cookie`` headers (None if empty)."""
    for raw in headers:
        text = raw.decode("latin-1")
        if name not in text:
            continue
        for pair in text.split(";"):
            key, sep, value = pair.partition("=")
            if not sep or key.strip() != name:
                continue
            value = value.strip()
            if len(value) >= 2 and value[0] == value[-1] == '"':
                value = value[1:-1]
            if "%" in value:
                with suppress(UnicodeDecodeError):  # a malformed escape stays as it is
                    value = unquote(value, errors="strict")
            return value or None
    return None


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
SEVERAL: Final = b"\x00several Authorization headers"


def carriers(
    raw_headers: Iterable[tuple[bytes, bytes]],
) -> tuple[dict[bytes, bytes], bytes | None, list[bytes] | None]:
    """When header names repeat: the first value of each name, the Authorization value
    (:data:`SEVERAL` when there are several), and every Cookie header."""
    found: dict[bytes, bytes] = {}
    authorization: bytes | None = None
    cookies: list[bytes] = []
    for name, value in raw_headers:
        if name == b"authorization":
            authorization = value if authorization is None else SEVERAL
        elif name == b"cookie":
            cookies.append(value)
        found.setdefault(name, value)
    return found, authorization, cookies or None


def is_navigation(scope: Scope, found: Mapping[bytes, bytes]) -> bool:
    """A browser page load: GET/HEAD with ``Sec-Fetch-Dest`` document/iframe, or no
    ``Sec-Fetch-Dest`` and ``Accept`` naming text/html (and not an XMLHttpRequest)."""
    if scope["type"] != "http" or scope["method"] not in ("GET", "HEAD"):
        return False
    dest = found.get(b"sec-fetch-dest")
    if dest is not None:
        return dest in (b"document", b"iframe")
    accept = found.get(b"accept")
    return accept is not None and b"text/html" in accept and found.get(b"x-requested-with") is None
