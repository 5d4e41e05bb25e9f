"""The records :class:`~clerk_asgi.testing.FakeClerk` keeps, and the HTTP helpers its handlers
share (Clerk's error shape, ``Set-Cookie`` strings, JSON bodies)."""

from __future__ import annotations

import secrets
import string
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from starlette.responses import JSONResponse, Response

#: Ten years, the ``Max-Age`` Clerk gives its long-lived cookies.
TEN_YEARS = 315_360_000

_ID_ALPHABET = string.ascii_letters + string.digits


def new_id(prefix: str) -> str:
    """A Clerk-looking id: ``<prefix>_`` and 27 random base-62 characters."""
    return prefix + "_" + "".join(secrets.choice(_ID_ALPHABET) for _ in range(27))


def ms(seconds: float) -> int:
    """Unix seconds as the millisecond timestamps of Clerk's JSON."""
    return int(seconds * 1000)


@dataclass(frozen=True)
class FakeUser:
    """A user of the fake instance, with at most one organization membership."""

    id: str
    email: str | None = None
    org_id: str | None = None
    org_role: str | None = None
    org_permissions: tuple[str, ...] = ()


@dataclass(frozen=True)
class FakeSession:
    """A session as the fake instance holds it (times in Unix seconds of the fake's clock)."""

    id: str
    client_id: str
    user_id: str
    #: ``active``, ``ended`` (signed out), ``removed``, ``revoked`` or ``expired``.
    status: str
    created_at: float
    updated_at: float
    last_active_at: float
    expire_at: float
    abandon_at: float
    last_active_organization_id: str | None = None

    def to_json(self) -> dict[str, Any]:
        """The Backend API's Session object (timestamps in milliseconds)."""
        return {
            "object": "session",
            "id": self.id,
            "client_id": self.client_id,
            "user_id": self.user_id,
            "status": self.status,
            "last_active_at": ms(self.last_active_at),
            "last_active_organization_id": self.last_active_organization_id,
            "actor": None,
            "latest_activity": None,
            "expire_at": ms(self.expire_at),
            "abandon_at": ms(self.abandon_at),
            "created_at": ms(self.created_at),
            "updated_at": ms(self.updated_at),
        }


@dataclass(frozen=True)
class FakeClient:
    """A browser known to the fake Frontend API: what its ``__client`` cookie (and, on a
    development instance, its dev-browser token) identify."""

    id: str
    #: The value of the HttpOnly ``__client`` cookie on the Frontend API.
    token: str
    #: The dev-browser token (``__clerk_db_jwt``); ``None`` on a production instance.
    dev_browser: str | None
    session_ids: tuple[str, ...]
    last_active_session_id: str | None
    created_at: float
    updated_at: float

    @property
    def session_id(self) -> str:
        """The last active session's id (the one :meth:`FakeClerk.sign_in` created);
        LookupError for a client that never had a session."""
        if self.last_active_session_id is None:
            raise LookupError(f"client {self.id!r} has no session")
        return self.last_active_session_id

    @property
    def cookies(self) -> dict[str, str]:
        """The cookies this browser holds for the Frontend API (``__client``, plus
        ``__clerk_db_jwt`` on a development instance)."""
        cookies = {"__client": self.token}
        if self.dev_browser is not None:
            cookies["__clerk_db_jwt"] = self.dev_browser
        return cookies


@dataclass(frozen=True)
class FakeHandshake:
    """One call of the Frontend API's ``GET /v1/client/handshake``, as received and answered."""

    #: Every query parameter, first value of each.
    params: Mapping[str, str]
    #: The response status: 307, or 400 for a missing or bad parameter.
    status: int
    #: ``True`` signed in, ``False`` signed out, ``None`` when nothing was resolved (a 400, or
    #: :attr:`FakeClerk.failing`).
    signed_in: bool | None = None
    client_id: str | None = None
    session_id: str | None = None
    #: The ``Set-Cookie`` directives handed back (through the nonce or the token).
    directives: tuple[str, ...] = ()

    @property
    def reason(self) -> str | None:
        """``__clerk_hs_reason``: why the app's middleware asked for a handshake."""
        return self.params.get("__clerk_hs_reason")

    @property
    def format(self) -> str:
        """``nonce`` or ``token`` (the default, as Clerk's Frontend API documents)."""
        return self.params.get("format", "token")

    @property
    def redirect_url(self) -> str | None:
        """Where the browser was sent back."""
        return self.params.get("redirect_url")

    @property
    def suffixed_cookies(self) -> bool:
        """Whether ``suffixed_cookies=true`` asked for ``_<suffix>`` cookies as well."""
        return self.params.get("suffixed_cookies") == "true"

    @property
    def session_token(self) -> str | None:
        """The ``__session`` parameter (the app's expired token), if any; otherwise unused."""
        return self.params.get("__session")


def clerk_error(status: int, code: str, message: str, long_message: str) -> JSONResponse:
    """An error in Clerk's shape: ``{"errors": [{"message", "long_message", "code"}]}``."""
    error = {"message": message, "long_message": long_message, "code": code}
    return JSONResponse({"errors": [error]}, status_code=status)


def not_found(what: str) -> JSONResponse:
    """Clerk's 404 ``resource_not_found``."""
    return clerk_error(404, "resource_not_found", "not found", f"No {what} was found")


def invalid_param(name: str, detail: str, status: int = 422) -> JSONResponse:
    """Clerk's ``form_param_value_invalid`` for parameter ``name``."""
    return clerk_error(status, "form_param_value_invalid", f"{name} is invalid", detail)


def missing_param(name: str, status: int = 400) -> JSONResponse:
    """Clerk's ``form_param_missing`` for parameter ``name``."""
    message = f"{name} must be included"
    return clerk_error(status, "form_param_missing", message, f"{name} is missing")


def cookie(name: str, value: str, *attributes: str) -> str:
    """A ``Set-Cookie`` value: ``name=value`` and each non-empty attribute, ``; ``-separated."""
    return "; ".join([f"{name}={value}", *(a for a in attributes if a)])


def add_set_cookies(response: Response, *cookies: str) -> Response:
    """Append one ``Set-Cookie`` header per string (verbatim), and return ``response``."""
    for value in cookies:
        response.raw_headers.append((b"set-cookie", value.encode("latin-1")))
    return response
