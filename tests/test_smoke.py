"""The README quickstart, end to end through httpx.ASGITransport."""

from __future__ import annotations

import httpx
import pytest
from fastapi import Depends, FastAPI

from clerk_asgi import Auth, ClerkMiddleware, Rule, current_auth, require_auth
from clerk_asgi.testing import FakeClock, MockClerk

pytestmark = pytest.mark.anyio


def quickstart_app(clerk: MockClerk, clock: FakeClock) -> FastAPI:
    app = FastAPI()

    @app.get("/api/me")
    async def me(auth: Auth = Depends(current_auth)) -> dict[str, str | None]:
        return {"user_id": auth.user_id}

    @app.get("/api/billing")
    async def billing(
        auth: Auth = Depends(require_auth(permission="org:billing:manage")),
    ) -> dict[str, str | None]:
        return {"org_id": auth.org_id}

    app.add_middleware(
        ClerkMiddleware,
        **clerk.middleware_options(
            rules=[
                Rule.public("/", "/sign-in/:path*", "/api/public/:path*"),
                Rule.protect("/admin/:path*", role="org:admin", unauthorized_url="/unauthorized"),
                Rule.api("/api/:path*"),
            ],
            clock=clock,
        ),
    )
    return app


async def test_signed_in_api_request_reaches_the_handler(
    clerk: MockClerk, clock: FakeClock
) -> None:
    """A valid Bearer token on an API route runs the handler and echoes x-user-id."""
    app = quickstart_app(clerk, clock)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app), base_url=clerk.origin) as c:
        r = await c.get(
            "/api/me", headers=clerk.auth_headers(user_id="user_1", issued_at=clock.now)
        )
    assert r.status_code == 200
    assert r.json() == {"user_id": "user_1"}
    assert r.headers["x-user-id"] == "user_1"


async def test_require_auth_answers_403_with_the_middleware_json_shape(
    clerk: MockClerk, clock: FakeClock
) -> None:
    """require_auth(permission=...) refuses a member: 403 with the middleware's JSON shape."""
    app = quickstart_app(clerk, clock)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app), base_url=clerk.origin) as c:
        r = await c.get("/api/billing", headers=clerk.auth_headers(issued_at=clock.now))
    assert r.status_code == 403
    assert r.json() == {
        "error": "forbidden",
        "reason": "authorization-failed",
        "message": "You are signed in but not allowed to access this resource.",
    }
    assert r.headers["cache-control"] == "no-store"
