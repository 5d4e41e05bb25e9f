"""FastAPI sugar: ``Annotated`` aliases, OpenAPI documentation helpers (the only module
importing FastAPI).

Example::

    from clerk_asgi.fastapi import CurrentAuth, SignedInAuth, auth_responses

    @app.get("/api/me", responses=auth_responses())
    async def me(auth: SignedInAuth):
        return {"user_id": auth.user_id}

Routes depending on :func:`~clerk_asgi.current_auth` or a :func:`~clerk_asgi.require_auth`
dependency (directly or through these aliases) are documented in ``/openapi.json`` as needing a
Clerk session token: a bearer JWT, or the ``__session`` cookie. Those security schemes are
documentation only: they never read nor refuse anything, ``ClerkMiddleware`` does the checking.
"""

from __future__ import annotations

import inspect
import re
from typing import Annotated, Any, Literal

from fastapi import Depends, FastAPI, Security
from fastapi.openapi.models import APIKey, APIKeyIn, HTTPBearer
from fastapi.security.base import SecurityBase
from pydantic import BaseModel, Field

from ._auth import Auth
from ._dependencies import current_auth, require_auth
from ._reasons import (
    AUTHORIZATION_FAILED,
    SESSION_TOKEN_MISSING,
    message_for,
)
from ._rules import Rule

__all__ = ["AuthErrorBody", "CurrentAuth", "SignedInAuth", "auth_responses", "docs_rule"]


class _SessionTokenScheme(SecurityBase):
    """``Authorization: Bearer <session token>`` in the OpenAPI schema; never checks anything."""

    def __init__(self) -> None:
        self.model = HTTPBearer(
            bearerFormat="JWT",
            description=(
                "A Clerk session token (the JWT clerk-js keeps in the `__session` cookie, or "
                "`await Clerk.session.getToken()`), sent as `Authorization: Bearer <token>`. "
                "Paste the token alone, without `Bearer `. ClerkMiddleware verifies it."
            ),
        )
        self.scheme_name = "ClerkSessionToken"

    async def __call__(self) -> None:
        """Nothing to do: the middleware has already verified the request."""


class _SessionCookieScheme(SecurityBase):
    """The ``__session`` cookie in the OpenAPI schema; never checks anything."""

    def __init__(self) -> None:
        self.model = APIKey(
            **{"in": APIKeyIn.cookie},  # type: ignore[arg-type]  # the field's alias
            name="__session",
            description=(
                "The `__session` cookie clerk-js sets on your app's domain: a browser signed in "
                "to your app sends it by itself on same-origin requests (Swagger UI cannot set "
                "cookies). ClerkMiddleware verifies it."
            ),
        )
        self.scheme_name = "ClerkSessionCookie"

    async def __call__(self) -> None:
        """Nothing to do: the middleware has already verified the request."""


#: The two schemes, listed as alternatives on every route using the dependencies.
_TOKEN_SCHEME = _SessionTokenScheme()
_COOKIE_SCHEME = _SessionCookieScheme()


def _security_parameters() -> list[inspect.Parameter]:
    """The keyword-only parameters the core dependencies declare once FastAPI is imported."""
    keyword = inspect.Parameter.KEYWORD_ONLY
    return [
        inspect.Parameter("clerk_session_token", keyword, default=Security(_TOKEN_SCHEME)),
        inspect.Parameter("clerk_session_cookie", keyword, default=Security(_COOKIE_SCHEME)),
    ]


#: The request's Auth, signed in or not.
CurrentAuth = Annotated[Auth, Depends(current_auth)]

#: The request's Auth; 401 when signed out.
SignedInAuth = Annotated[Auth, Depends(require_auth())]


class AuthErrorBody(BaseModel):
    """The JSON body of the 401, 403 and 503 responses of ClerkMiddleware and require_auth."""

    error: Literal["unauthorized", "forbidden", "service_unavailable"] = Field(
        description="The status, as a word."
    )
    reason: str = Field(description="Why: a reason code such as `session-token-missing`.")
    message: str = Field(description="A human-readable explanation, safe to show to users.")


def _example(error: str, reason: str) -> dict[str, str]:
    return {"error": error, "reason": reason, "message": message_for(reason)}


def auth_responses(*, forbidden: bool = True) -> dict[int | str, dict[str, Any]]:
    """The 401 (and 403) responses of a route that needs a session, for ``responses=``.

    FastAPI documents a route's responses from the route, never from its dependencies, and the
    refusals mostly come from the middleware's rules: say what they are where the route or
    router is declared::

        @app.get("/api/billing", responses=auth_responses())
        router = APIRouter(prefix="/api", responses=auth_responses(forbidden=False))

    ``forbidden=False`` leaves out the 403 (a route that only needs a signed-in user). Returns a
    new dict each call.
    """
    responses: dict[int | str, dict[str, Any]] = {
        401: {
            "model": AuthErrorBody,
            "description": "Signed out: no session token, or one that is not valid.",
            "headers": {
                "WWW-Authenticate": {
                    "description": 'The RFC 6750 challenge, `Bearer realm="clerk"`.',
                    "schema": {"type": "string"},
                }
            },
            "content": {
                "application/json": {"example": _example("unauthorized", SESSION_TOKEN_MISSING)}
            },
        }
    }
    if forbidden:
        responses[403] = {
            "model": AuthErrorBody,
            "description": "Signed in, but the role, permission, feature or plan is missing.",
            "content": {
                "application/json": {"example": _example("forbidden", AUTHORIZATION_FAILED)}
            },
        }
    return responses


def docs_rule(app: FastAPI) -> Rule:
    """A public rule for exactly the documentation routes ``app`` serves.

    Reads ``app.openapi_url``, ``docs_url``, ``swagger_ui_oauth2_redirect_url`` and
    ``redoc_url`` (FastAPI serves none of them without ``openapi_url``), and matches those paths
    alone: no sibling, no sub-path, no trailing slash. With FastAPI's default URLs it is the same
    as ``Rule.public(API_DOCS)``. Put it first in ``rules=``.
    """
    paths: list[str] = []
    if app.openapi_url:
        paths.append(app.openapi_url)
        if app.docs_url:
            paths.append(app.docs_url)
            if app.swagger_ui_oauth2_redirect_url:
                paths.append(app.swagger_ui_oauth2_redirect_url)
        if app.redoc_url:
            paths.append(app.redoc_url)
    if not paths:
        return Rule.public()
    return Rule.public(re.compile("^(?:" + "|".join(map(re.escape, paths)) + r")\Z"))
