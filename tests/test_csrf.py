"""CSRF: a cookie session on an unsafe cross-site request is signed out (origin-not-authorized).

The ``Origin`` check of docs/security.md "CSRF": on unsafe methods (anything but GET, HEAD and
OPTIONS) a ``__session`` cookie is refused when ``Sec-Fetch-Site`` is ``cross-site`` or an
``Origin`` is present and not allowed: not an authorized party or, without any, neither
``public_origin`` nor the request's own origin. Safe methods, requests without ``Origin``
(non-browser clients) and Bearer tokens are not CSRF vectors.
"""

from __future__ import annotations

from typing import Any

import pytest

from clerk_asgi.testing import FakeClock, MockClerk

from ._middleware_helpers import (
    BROWSER,
    assert_401,
    assert_ran,
    client,
    make_app,
    session,
)
from .helpers import bearer

pytestmark = pytest.mark.anyio


@pytest.mark.parametrize(
    "headers",
    [
        pytest.param({"origin": "https://evil.example"}, id="foreign-origin"),
        pytest.param({"origin": "null"}, id="null-origin"),
        pytest.param({"origin": "https://app.example.com.evil.example"}, id="lookalike-origin"),
        pytest.param({"origin": "http://app.example.com"}, id="other-scheme"),
        pytest.param({"sec-fetch-site": "cross-site"}, id="sec-fetch-site-cross-site"),
        pytest.param(
            {"origin": "https://app.example.com", "sec-fetch-site": "cross-site"},
            id="allowed-origin-but-cross-site",
        ),
    ],
)
@pytest.mark.parametrize("method", ["POST", "PUT", "PATCH", "DELETE"])
async def test_cross_site_cookie_on_unsafe_method_is_signed_out(
    clerk: MockClerk, clock: FakeClock, method: str, headers: dict[str, str]
) -> None:
    """A cookie session on an unsafe cross-site request -> 401 origin-not-authorized."""
    token = clerk.token(issued_at=clock.now)
    async with client(make_app(clerk, clock)) as c:
        r = await c.request(method, "/api/things", headers={**headers, **session(token)})
    assert_401(r, "origin-not-authorized", presented=True)


@pytest.mark.parametrize(
    ("method", "headers"),
    [
        pytest.param("POST", {"origin": "https://app.example.com"}, id="post-allowed-origin"),
        pytest.param(
            "POST",
            {"origin": "https://app.example.com", "sec-fetch-site": "same-origin"},
            id="post-same-origin",
        ),
        pytest.param("POST", {}, id="post-without-origin"),
        pytest.param("GET", {"origin": "https://evil.example"}, id="get-foreign-origin"),
        pytest.param("HEAD", {"sec-fetch-site": "cross-site"}, id="head-cross-site"),
        pytest.param("OPTIONS", {"origin": "https://evil.example"}, id="options-foreign"),
    ],
)
async def test_cookie_session_allowed_when_same_site_or_safe_method(
    clerk: MockClerk, clock: FakeClock, method: str, headers: dict[str, str]
) -> None:
    """Allowed Origin, no Origin (non-browser) and safe methods keep the cookie session."""
    token = clerk.token(issued_at=clock.now)
    async with client(make_app(clerk, clock)) as c:
        r = await c.request(method, "/api/things", headers={**headers, **session(token)})
    assert r.status_code == 200
    assert r.headers["x-user-id"] == "user_test"


@pytest.mark.parametrize(
    "headers",
    [{"origin": "https://evil.example"}, {"sec-fetch-site": "cross-site"}],
    ids=["foreign-origin", "cross-site"],
)
async def test_bearer_token_is_unaffected_by_origin(
    clerk: MockClerk, clock: FakeClock, headers: dict[str, str]
) -> None:
    """A Bearer header is not a CSRF vector; cross-site POSTs with it are allowed."""
    async with client(make_app(clerk, clock)) as c:
        r = await c.post(
            "/api/things", headers={**headers, **bearer(clerk.token(issued_at=clock.now))}
        )
    assert_ran(r, "user_test", injected=True)


async def test_cross_site_cookie_post_on_public_route_runs_signed_out(
    clerk: MockClerk, clock: FakeClock
) -> None:
    """On a public route the app runs, but sees signed out (origin-not-authorized)."""
    headers = {"origin": "https://evil.example", **session(clerk.token(issued_at=clock.now))}
    async with client(make_app(clerk, clock)) as c:
        r = await c.post("/public/form", headers=headers)
        protected = await c.post("/dashboard", headers={**BROWSER, **headers})
    assert_ran(r, None, "origin-not-authorized")
    assert_401(protected, "origin-not-authorized", presented=True)


@pytest.mark.parametrize(
    ("options", "origin", "allowed"),
    [
        pytest.param({}, "https://app.example.com", True, id="request-origin"),
        pytest.param({}, "https://evil.example", False, id="foreign"),
        pytest.param(
            {"public_origin": "https://www.example.com"},
            "https://www.example.com",
            True,
            id="public-origin",
        ),
        pytest.param(
            {"public_origin": "https://www.example.com"},
            "https://app.example.com",
            False,
            id="request-origin-ignored-with-public-origin",
        ),
    ],
)
async def test_csrf_origin_check_without_authorized_parties(
    clerk: MockClerk, clock: FakeClock, options: dict[str, Any], origin: str, allowed: bool
) -> None:
    """With no authorized_parties the Origin must equal public_origin or the request's."""
    headers = {"origin": origin, **session(clerk.token(issued_at=clock.now))}
    app = make_app(clerk, clock, authorized_parties=[], **options)
    async with client(app) as c:
        r = await c.post("/api/things", headers=headers)
    if allowed:
        assert_ran(r, "user_test", injected=True)
    else:
        assert_401(r, "origin-not-authorized", presented=True)
