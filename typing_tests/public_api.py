"""Static checks of the public API's types, for ``mypy --strict typing_tests`` (see .ci/run).

Nothing here runs: the functions are only type-checked. ``assert_type`` fails the check when an
inferred type changes; a ``# type: ignore[code]`` marks a call that must stay an error, since
``--strict`` (``warn_unused_ignores``) also fails when such a line starts to type-check.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any, assert_type

from starlette.requests import HTTPConnection, Request
from starlette.types import ASGIApp
from starlette.websockets import WebSocket

from clerk_asgi import Auth, ClerkMiddleware, Rule, current_auth, get_auth, require_auth
from clerk_asgi.fastapi import CurrentAuth, SignedInAuth
from clerk_asgi.testing import FakeClock, KeyPair, MockClerk, mint_session_token


def get_auth_returns_an_auth(request: Request, websocket: WebSocket) -> None:
    assert_type(get_auth(request), Auth)
    assert_type(get_auth(websocket), Auth)
    assert_type(get_auth(request.scope), Auth)


async def the_dependencies_give_an_auth(conn: HTTPConnection) -> None:
    assert_type(await current_auth(conn), Auth)
    dependency = require_auth(role="org:admin", permission="org:billing:manage")
    assert_type(dependency, Callable[[HTTPConnection], Awaitable[Auth]])
    assert_type(await dependency(conn), Auth)
    assert_type(await require_auth()(conn), Auth)


def require_auth_takes_its_conditions_by_keyword() -> None:
    require_auth("org:admin")  # type: ignore[call-arg]


def the_fastapi_aliases_are_auth(current: CurrentAuth, signed_in: SignedInAuth) -> None:
    assert_type(current, Auth)
    assert_type(signed_in, Auth)


def rules_are_rules() -> None:
    assert_type(Rule.public("/", "/sign-in(.*)"), Rule)
    assert_type(Rule.protect("/admin(.*)", role="org:admin", unauthorized_url="/denied"), Rule)
    assert_type(Rule.api("/api/(.*)", permission="org:billing:manage"), Rule)


def auth_answers_plain_values(auth: Auth) -> None:
    assert_type(auth.has(role="org:admin"), bool)
    assert_type(auth.has(permission="org:billing:manage", reverification="strict"), bool)
    assert_type(auth.is_signed_in, bool)
    assert_type(auth.user_id, str | None)
    assert_type(auth.reason, str | None)
    assert_type(Auth.signed_out("session-token-missing"), Auth)


def auth_is_read_only(auth: Auth) -> None:
    auth.user_id = "user_other"  # type: ignore[misc]


def the_middleware_is_an_asgi_app(app: ASGIApp, clerk: MockClerk) -> ASGIApp:
    middleware = ClerkMiddleware(app, rules=[Rule.api("/api/(.*)")], **clerk.middleware_options())
    assert_type(middleware, ClerkMiddleware)
    return middleware


def the_testing_helpers_make_tokens(key: KeyPair, clerk: MockClerk) -> None:
    assert_type(mint_session_token(key, user_id="user_1", org_role="org:admin"), str)
    assert_type(KeyPair.generate("k1"), KeyPair)
    assert_type(clerk.token(user_id="user_1"), str)
    assert_type(clerk.auth_headers(), dict[str, str])
    assert_type(clerk.middleware_options(), dict[str, Any])


def fake_clock_is_a_clock() -> None:
    clock = FakeClock(1_800_000_000)
    assert_type(clock(), float)
    as_clock: Callable[[], float] = clock
    assert_type(as_clock, Callable[[], float])
    clock.advance(61)
