"""Errors raised by clerk-asgi.

The tree::

    ClerkError
    ├── ConfigurationError        bad middleware configuration, raised at construction
    ├── MiddlewareNotInstalledError  get_auth() on a connection the middleware never saw
    └── AuthError                 raised by require_auth(); the middleware turns it into a response
        ├── SignedOutError        401: no valid session
        ├── ForbiddenError        403: signed in, but has(...) failed
        └── ServiceUnavailableError  503: the signing keys cannot be loaded (not "signed out")

Token problems are *not* exceptions: a bad token is an ordinary outcome, a signed-out
:class:`~clerk_asgi.Auth` whose ``reason`` carries Clerk's reason code.
"""

from __future__ import annotations

__all__ = [
    "AuthError",
    "ClerkError",
    "ConfigurationError",
    "ForbiddenError",
    "MiddlewareNotInstalledError",
    "ServiceUnavailableError",
    "SignedOutError",
]


class ClerkError(Exception):
    """Base class of every error this library raises."""


class ConfigurationError(ClerkError, ValueError):
    """The middleware was configured in a way that cannot work; the message says how to fix it."""


class MiddlewareNotInstalledError(ClerkError, RuntimeError):
    """The connection carries no Auth: ``ClerkMiddleware`` is not installed in front of this app."""

    def __init__(self) -> None:
        super().__init__(
            "No Clerk auth on this connection: add ClerkMiddleware to the app "
            "(app.add_middleware(ClerkMiddleware, ...)) before reading get_auth()/current_auth."
        )


class AuthError(ClerkError):
    """A request that must be refused; ``ClerkMiddleware`` answers it with a JSON error response
    ``{"error", "reason", "message"}`` built from these attributes.

    Attributes:
        status_code: 401, 403, or 503 when the signing keys cannot be loaded.
        reason: machine-readable reason code (Clerk's where Clerk has one).
        message: human-readable explanation, safe to show to clients.
        retry_after: seconds for ``Retry-After``, when the error has its own (a 503 without
            one gets the key cache's).
    """

    status_code: int = 401
    retry_after: int | None = None

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason
        self.message = message


class SignedOutError(AuthError):
    """No valid session: answered with 401."""

    status_code = 401


class ForbiddenError(AuthError):
    """Signed in, but lacking the role, permission, feature, plan or freshness asked for."""

    status_code = 403


class ServiceUnavailableError(AuthError):
    """Clerk's signing keys cannot be loaded, so nobody can be authenticated: answered with 503
    and ``Retry-After``, never as "signed out"."""

    status_code = 503
