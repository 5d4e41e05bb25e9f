"""Shared by the configuration tests (test_config_keys.py, test_config_urls.py, ...).

``build`` wraps a tiny Starlette app in ``ClerkMiddleware`` with the options under test; which
key source is used is observed from the outside: the URL a ``JWKSTransport`` is asked for, or
that no request happens at all for a PEM key.
"""

from __future__ import annotations

import base64
from typing import Any

import httpx
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from clerk_asgi import ClerkMiddleware, ConfigurationError, Rule, get_auth

from .helpers import ORIGIN

ISSUER = "https://clerk.example.com"
FAPI_JWKS = "https://clerk.example.com/.well-known/jwks.json"
EXAMPLE_PK = "pk_live_Y2xlcmsuaW5zcGlyZWQucHVtYS03NC5sY2wuZGV2JA"
HTML = {"accept": "text/html"}


def pk(host: str, *, live: bool = False) -> str:
    """A publishable key for ``host``, built as Clerk's buildPublishableKey does (unpadded)."""
    encoded = base64.b64encode(f"{host}$".encode()).decode().rstrip("=")
    return f"pk_{'live' if live else 'test'}_{encoded}"


PK = pk("clerk.example.com")


def inner_app() -> Starlette:
    """Routes that answer the user id and reason of the Auth they were handed."""

    async def whoami(request: Request) -> JSONResponse:
        auth = get_auth(request)
        return JSONResponse({"user_id": auth.user_id, "reason": auth.reason})

    return Starlette(
        routes=[
            Route("/api/me", whoami),
            Route("/dashboard", whoami),
            Route("/sign-in", whoami),
            Route("/sign-in/factor-one", whoami),
        ]
    )


def build(**options: Any) -> ClerkMiddleware:
    """ClerkMiddleware around a tiny app; rules default to ``Rule.api("/api/(.*)")``."""
    options.setdefault("rules", [Rule.api("/api/(.*)")])
    return ClerkMiddleware(inner_app(), **options)


async def get(
    app: ClerkMiddleware, path: str = "/api/me", *, token: str | None = None, **headers: str
) -> httpx.Response:
    """GET ``path`` from ``app`` as a client on ORIGIN, with ``token`` as a Bearer token."""
    if token is not None:
        headers["authorization"] = f"Bearer {token}"
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app), base_url=ORIGIN) as client:
        return await client.get(path, headers=headers)


def message(excinfo: pytest.ExceptionInfo[ConfigurationError]) -> str:
    """The text of the ConfigurationError that ``excinfo`` caught."""
    return str(excinfo.value)
