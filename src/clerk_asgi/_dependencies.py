"""Reading the Auth in handlers: ``get_auth``, ``current_auth`` and ``require_auth``.

``current_auth`` and the callables ``require_auth`` returns are async callables taking a
Starlette ``HTTPConnection``, so FastAPI's ``Depends`` injects them for HTTP routes and
WebSockets alike; FastAPI also documents them as needing a Clerk session token (see
``_openapi``). ``require_auth`` raises :class:`~clerk_asgi.exceptions.AuthError`, which
``ClerkMiddleware`` answers with the same JSON shape as its own 401/403 responses.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from starlette.requests import HTTPConnection

from ._auth import Auth, Reverification, get_auth
from ._openapi import AuthDependency
from ._reasons import (
    AUTHORIZATION_FAILED,
    JWK_REMOTE_FAILED_TO_LOAD,
    REVERIFICATION_ERROR,
    SESSION_TOKEN_MISSING,
    message_for,
)
from .exceptions import (
    ForbiddenError,
    ServiceUnavailableError,
    SignedOutError,
)

__all__ = ["current_auth", "require_auth"]


@AuthDependency
async def current_auth(conn: HTTPConnection) -> Auth:
    """Dependency form of :func:`get_auth`: ``auth: Auth = Depends(current_auth)``.

    Returns the Auth whether signed in or not; use :func:`require_auth` to insist.
    """
    return get_auth(conn)


def require_auth(
    *,
    role: str | None = None,
    permission: str | None = None,
    feature: str | None = None,
    plan: str | None = None,
    reverification: Reverification | None = None,
) -> Callable[[HTTPConnection], Awaitable[Auth]]:
    """A dependency that returns the Auth, or refuses the request.

    Signed out -> 401 with the Auth's reason (503 when the signing keys cannot be loaded).
    Signed in, but ``auth.has(...)`` with the given conditions fails -> 403
    (``reverification-error`` when a reverification was asked for and is what fails, else
    ``authorization-failed``). With no arguments it only requires a signed-in user.

    Example::

        @app.get("/api/billing")
        async def billing(auth: Auth = Depends(require_auth(permission="org:billing:manage"))):
            ...
    """
    conditions: dict[str, Any] = {
        name: value
        for name, value in (
            ("role", role),
            ("permission", permission),
            ("feature", feature),
            ("plan", plan),
            ("reverification", reverification),
        )
        if value is not None
    }

    @AuthDependency
    async def dependency(conn: HTTPConnection) -> Auth:
        auth = get_auth(conn)
        if not auth.is_signed_in:
            reason = auth.reason or SESSION_TOKEN_MISSING
            if reason == JWK_REMOTE_FAILED_TO_LOAD:  # keys down: not "signed out"
                raise ServiceUnavailableError(reason, message_for(reason))
            raise SignedOutError(reason, message_for(reason))
        if conditions and not auth.has(**conditions):
            if reverification is not None and not auth.has(reverification=reverification):
                reason = REVERIFICATION_ERROR
            else:
                reason = AUTHORIZATION_FAILED
            raise ForbiddenError(reason, message_for(reason))
        return auth

    return dependency
