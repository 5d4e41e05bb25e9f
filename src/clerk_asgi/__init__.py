"""Clerk session authentication for Starlette and FastAPI.

One pure-ASGI middleware verifies the Clerk session token of every request and applies a
declarative route table; handlers read the result through one small dependency::

    from clerk_asgi import Auth, ClerkMiddleware, Rule, current_auth

    app.add_middleware(
        ClerkMiddleware,
        rules=[Rule.public("/", "/sign-in(.*)"), Rule.api("/api/(.*)")],
        authorized_parties=["https://app.example.com"],
    )
"""

from ._auth import AUTH_SCOPE_KEY, Auth, ClerkCredentials, ClerkUser, get_auth
from ._config import ClerkConfig
from ._dependencies import current_auth, require_auth
from ._middleware import ClerkMiddleware
from ._responses import Refusal
from ._rules import API_DOCS, STATIC_ASSETS, Rule
from .exceptions import (
    AuthError,
    ClerkError,
    ConfigurationError,
    ForbiddenError,
    MiddlewareNotInstalledError,
    ServiceUnavailableError,
    SignedOutError,
)

__all__ = [
    "API_DOCS",
    "AUTH_SCOPE_KEY",
    "STATIC_ASSETS",
    "Auth",
    "AuthError",
    "ClerkConfig",
    "ClerkCredentials",
    "ClerkError",
    "ClerkMiddleware",
    "ClerkUser",
    "ConfigurationError",
    "ForbiddenError",
    "MiddlewareNotInstalledError",
    "Refusal",
    "Rule",
    "ServiceUnavailableError",
    "SignedOutError",
    "current_auth",
    "get_auth",
    "require_auth",
]
__version__ = "0.1.0"
