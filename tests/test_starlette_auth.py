"""Starlette's authentication convention behind ``ClerkMiddleware``: ``request.user`` and
``request.auth`` are set for every request that reaches the app, ``@requires`` works, and
what another middleware already set is left alone."""

from __future__ import annotations

from typing import Any

import httpx
import pytest
from starlette.applications import Starlette
from starlette.authentication import (
    AuthCredentials,
    AuthenticationBackend,
    BaseUser,
    SimpleUser,
    requires,
)
from starlette.middleware import Middleware
from starlette.middleware.authentication import AuthenticationMiddleware
from starlette.requests import HTTPConnection, Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from clerk_asgi import Auth, ClerkCredentials, ClerkMiddleware, ClerkUser, Rule, get_auth
from clerk_asgi.testing import FakeClock, MockClerk

from .helpers import bearer

pytestmark = pytest.mark.anyio

ORIGIN = "https://app.example.com"


async def whoami(request: Request) -> JSONResponse:
    user: BaseUser = request.user
    return JSONResponse(
        {
            "type": type(user).__name__,
            "is_authenticated": user.is_authenticated,
            "identity": user.identity,
            "display_name": user.display_name,
            "scopes": request.auth.scopes,
            "same_auth": isinstance(user, ClerkUser) and user.auth is get_auth(request),
        }
    )


@requires("authenticated")
async def members(request: Request) -> JSONResponse:
    return JSONResponse({"user": request.user.identity})


@requires("org:billing:manage")
async def billing(request: Request) -> JSONResponse:
    return JSONResponse({"user": request.user.identity})


ROUTES = [Route("/whoami", whoami), Route("/members", members), Route("/billing", billing)]


def make_app(clerk: MockClerk, clock: FakeClock, *inner: Middleware) -> Starlette:
    return Starlette(
        routes=ROUTES,
        middleware=[
            Middleware(
                ClerkMiddleware,
                **clerk.middleware_options(rules=[Rule.public("/:path*")], clock=clock),
            ),
            *inner,
        ],
    )


async def get(app: Any, path: str, headers: dict[str, str] | None = None) -> httpx.Response:
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app), base_url=ORIGIN) as c:
        return await c.get(path, headers=headers)


async def test_signed_in_user_and_scopes(clerk: MockClerk, clock: FakeClock) -> None:
    """Signed in: request.user is a ClerkUser for the user id, scopes hold the permissions."""
    token = clerk.token(
        issued_at=clock.now,
        user_id="user_42",
        org_id="org_1",
        org_role="org:admin",
        org_permissions=["org:billing:manage"],
    )
    response = await get(make_app(clerk, clock), "/whoami", bearer(token))
    assert response.json() == {
        "type": "ClerkUser",
        "is_authenticated": True,
        "identity": "user_42",
        "display_name": "user_42",
        "scopes": ["authenticated", "org:billing:manage"],
        "same_auth": True,
    }


async def test_signed_out_user_is_unauthenticated(clerk: MockClerk, clock: FakeClock) -> None:
    """Signed out: request.user is not authenticated, with empty identity and no scopes."""
    response = await get(make_app(clerk, clock), "/whoami")
    assert response.json() == {
        "type": "ClerkUser",
        "is_authenticated": False,
        "identity": "",
        "display_name": "",
        "scopes": [],
        "same_auth": True,
    }


@pytest.mark.parametrize(
    ("path", "permissions", "status"),
    [
        ("/members", [], 200),
        ("/billing", [], 403),
        ("/billing", ["org:billing:manage"], 200),
    ],
)
async def test_requires_decorator_works(
    clerk: MockClerk, clock: FakeClock, path: str, permissions: list[str], status: int
) -> None:
    """Starlette's @requires reads the scopes: authenticated, and org permissions by name."""
    token = clerk.token(
        issued_at=clock.now, org_id="org_1", org_role="org:member", org_permissions=permissions
    )
    response = await get(make_app(clerk, clock), path, bearer(token))
    assert response.status_code == status


async def test_requires_refuses_signed_out_visitors(clerk: MockClerk, clock: FakeClock) -> None:
    """@requires("authenticated") answers 403 to a signed-out visitor (Starlette's default)."""
    assert (await get(make_app(clerk, clock), "/members")).status_code == 403


class Basic(AuthenticationBackend):
    async def authenticate(self, conn: HTTPConnection) -> tuple[AuthCredentials, BaseUser]:
        return AuthCredentials(["basic"]), SimpleUser("service-account")


async def test_another_middleware_inside_sets_its_own(clerk: MockClerk, clock: FakeClock) -> None:
    """An AuthenticationMiddleware inside ours replaces request.user/auth, as Starlette does."""
    app = make_app(clerk, clock, Middleware(AuthenticationMiddleware, backend=Basic()))
    body = (await get(app, "/whoami")).json()
    assert (body["type"], body["identity"], body["scopes"]) == (
        "SimpleUser",
        "service-account",
        ["basic"],
    )


async def test_what_an_outer_middleware_set_is_kept(clerk: MockClerk, clock: FakeClock) -> None:
    """A user/auth set before ClerkMiddleware runs is never overwritten."""
    app = Starlette(
        routes=ROUTES,
        middleware=[
            Middleware(AuthenticationMiddleware, backend=Basic()),
            Middleware(
                ClerkMiddleware,
                **clerk.middleware_options(rules=[Rule.public("/:path*")], clock=clock),
            ),
        ],
    )
    token = clerk.token(issued_at=clock.now)
    body = (await get(app, "/whoami", bearer(token))).json()
    assert (body["type"], body["identity"], body["scopes"]) == (
        "SimpleUser",
        "service-account",
        ["basic"],
    )


def test_credentials_are_read_only_and_derived() -> None:
    """ClerkCredentials' scopes are computed from the Auth each time: nothing to mutate."""
    credentials = ClerkCredentials(Auth(user_id="user_1", org_id="org_1"))
    credentials.scopes.append("org:admin")
    assert credentials.scopes == ["authenticated"]
    assert repr(ClerkUser(Auth(user_id="user_1"))) == "ClerkUser('user_1')"
