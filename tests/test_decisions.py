"""What ClerkMiddleware decides for each kind of rule: public, protect and api, end to end.

Each rule kind meets a signed-out request, a signed-in one that fails ``has()`` and an allowed
one, as a page navigation and as a ``fetch()`` call (docs/rules.md "The three kinds of rule",
docs/security.md "Decisions"). The last section pins which rule a path gets: the default for
unmatched paths, and patterns matched case-insensitively against the decoded route path.
"""

from __future__ import annotations

import pytest

from clerk_asgi.testing import FakeClock, KeyPair, MockClerk, mint_session_token

from ._middleware_helpers import (
    BROWSER,
    FETCH,
    Spy,
    admin_token,
    assert_401,
    assert_403,
    assert_ran,
    assert_redirect,
    call,
    client,
    http_scope,
    make_app,
    middleware,
    session,
    sign_in_location,
)
from .helpers import bearer

pytestmark = pytest.mark.anyio


# -- The public rule: the app always runs, with the Auth the request earned -----------------------


async def test_public_route_signed_out_runs_the_app_with_a_signed_out_auth(
    clerk: MockClerk, clock: FakeClock
) -> None:
    """public x signed out: the app runs and sees a signed-out Auth; no auth headers added."""
    async with client(make_app(clerk, clock)) as c:
        r = await c.get("/public/info", headers=BROWSER)
    assert_ran(r, None, "session-token-missing")


async def test_public_route_with_a_bad_token_runs_the_app_with_the_reason(
    clerk: MockClerk, clock: FakeClock, attacker_key: KeyPair
) -> None:
    """public x invalid token: the app runs signed out, Auth.reason says why."""
    forged = mint_session_token(attacker_key, issued_at=clock.now)
    async with client(make_app(clerk, clock)) as c:
        r = await c.get("/", headers=bearer(forged))
    assert_ran(r, None, "token-invalid-signature")


async def test_public_route_signed_in_runs_the_app_without_identity_header(
    clerk: MockClerk, clock: FakeClock
) -> None:
    """public x signed in: the app sees the user in Auth, but no x-user-id (API routes only)."""
    async with client(make_app(clerk, clock)) as c:
        r = await c.get("/public/info", headers=bearer(clerk.token(issued_at=clock.now)))
    assert_ran(r, "user_test")


# -- The protect rule, signed out: navigations are redirected, everything else gets 401 -----------


@pytest.mark.parametrize(
    ("method", "headers"),
    [
        pytest.param("GET", BROWSER, id="get-document"),
        pytest.param("HEAD", BROWSER, id="head-document"),
        pytest.param("GET", {"sec-fetch-dest": "iframe"}, id="get-iframe"),
        pytest.param("GET", {"accept": "text/html"}, id="accept-html-no-fetch-metadata"),
        pytest.param(
            "GET", {"accept": "application/xhtml+xml,text/html;q=0.9"}, id="accept-html-later"
        ),
    ],
)
async def test_protect_signed_out_navigation_redirects_to_sign_in(
    clerk: MockClerk, clock: FakeClock, method: str, headers: dict[str, str]
) -> None:
    """A signed-out GET/HEAD page navigation is sent 307 to sign-in (method and body kept)."""
    async with client(make_app(clerk, clock)) as c:
        r = await c.request(method, "/dashboard", headers=headers)
    assert_redirect(
        r, sign_in_location("https://app.example.com/dashboard"), "session-token-missing"
    )


@pytest.mark.parametrize(
    ("method", "headers"),
    [
        pytest.param("POST", BROWSER, id="post-form-document"),
        pytest.param("PUT", BROWSER, id="put-document"),
        pytest.param("DELETE", BROWSER, id="delete-document"),
        pytest.param("OPTIONS", BROWSER, id="options-document"),
        pytest.param("GET", FETCH, id="fetch"),
        pytest.param("GET", {**FETCH, "accept": "text/html"}, id="fetch-accepting-html"),
        pytest.param("GET", {"accept": "application/json"}, id="accept-json"),
        pytest.param(
            "GET", {"accept": "text/html", "x-requested-with": "XMLHttpRequest"}, id="xhr"
        ),
        pytest.param("GET", {"sec-fetch-dest": "script", "accept": "text/html"}, id="script"),
        pytest.param("GET", {"sec-fetch-dest": "image", "accept": "*/*"}, id="image"),
        pytest.param("GET", {}, id="no-browser-headers"),
    ],
)
async def test_protect_signed_out_non_navigation_gets_401(
    clerk: MockClerk, clock: FakeClock, method: str, headers: dict[str, str]
) -> None:
    """Anything but a GET/HEAD page navigation gets 401 JSON, never a Location."""
    async with client(make_app(clerk, clock)) as c:
        r = await c.request(method, "/dashboard", headers=headers)
    assert_401(r, "session-token-missing", presented=False)


async def test_protect_signed_out_with_expired_cookie_redirects_with_the_reason(
    clerk: MockClerk, clock: FakeClock
) -> None:
    """A returning visitor's expired __session on a navigation: 307, reason token-expired."""
    token = clerk.token(issued_at=clock.now - 3600)
    async with client(make_app(clerk, clock)) as c:
        r = await c.get("/dashboard", headers={**BROWSER, **session(token)})
    assert_redirect(r, sign_in_location("https://app.example.com/dashboard"), "token-expired")


async def test_protect_signed_out_with_invalid_bearer_gets_401_naming_the_token(
    clerk: MockClerk, clock: FakeClock
) -> None:
    """A presented but invalid token on a fetch: 401 with error="invalid_token" in the challenge."""
    token = clerk.token(issued_at=clock.now - 3600)
    async with client(make_app(clerk, clock)) as c:
        r = await c.get("/dashboard", headers={**FETCH, **bearer(token)})
    assert_401(r, "token-expired", presented=True)


async def test_protect_without_sign_in_url_answers_401_to_navigations(
    clerk: MockClerk, clock: FakeClock
) -> None:
    """No sign_in_url (and no publishable key): browser navigations get 401, not a redirect."""
    async with client(make_app(clerk, clock, sign_in_url=None)) as c:
        r = await c.get("/dashboard", headers=BROWSER)
    assert_401(r, "session-token-missing", presented=False)


# -- The protect rule, signed in: has() decides ---------------------------------------------------


async def test_protect_signed_in_without_role_navigation_goes_to_unauthorized_url(
    clerk: MockClerk, clock: FakeClock
) -> None:
    """has() fails on a navigation with unauthorized_url -> 307 there, never to sign-in."""
    async with client(make_app(clerk, clock)) as c:
        r = await c.get(
            "/admin/users", headers={**BROWSER, **bearer(clerk.token(issued_at=clock.now))}
        )
    assert_redirect(r, "/unauthorized", "authorization-failed", status="signed-in")


@pytest.mark.parametrize("method", ["GET", "POST"])
async def test_protect_signed_in_without_role_fetch_also_goes_to_unauthorized_url(
    clerk: MockClerk, clock: FakeClock, method: str
) -> None:
    """With unauthorized_url, has() failing redirects every HTTP request there, as Clerk's does."""
    async with client(make_app(clerk, clock)) as c:
        r = await c.request(
            method, "/admin/users", headers={**FETCH, **bearer(clerk.token(issued_at=clock.now))}
        )
    assert_redirect(r, "/unauthorized", "authorization-failed", status="signed-in")


@pytest.mark.parametrize("headers", [BROWSER, FETCH], ids=["navigation", "fetch"])
async def test_protect_signed_in_without_permission_and_no_unauthorized_url_gets_403(
    clerk: MockClerk, clock: FakeClock, headers: dict[str, str]
) -> None:
    """has() fails and no unauthorized_url: 403 for navigations and fetches alike."""
    token = clerk.token(
        issued_at=clock.now, org_id="org_1", org_role="org:member", org_permissions=["org:x:y"]
    )
    async with client(make_app(clerk, clock)) as c:
        r = await c.get("/billing", headers={**headers, **bearer(token)})
    assert_403(r)


async def test_protect_signed_in_and_allowed_runs_the_app_without_identity_header(
    clerk: MockClerk, clock: FakeClock
) -> None:
    """protect x allowed: the app runs; x-user-id is injected on API routes only."""
    billing = clerk.token(
        issued_at=clock.now,
        user_id="user_b",
        org_id="org_1",
        org_role="org:member",
        org_permissions=["org:billing:manage"],
    )
    async with client(make_app(clerk, clock)) as c:
        admin = await c.get(
            "/admin/users", headers={**BROWSER, **bearer(admin_token(clerk, clock))}
        )
        paying = await c.get("/billing", headers=bearer(billing))
        plain = await c.get("/dashboard", headers=session(clerk.token(issued_at=clock.now)))
    assert_ran(admin, "user_admin")
    assert_ran(paying, "user_b")
    assert_ran(plain, "user_test")


# -- The api rule: JSON answers, never a redirect -------------------------------------------------


@pytest.mark.parametrize(
    "headers",
    [BROWSER, FETCH, {**BROWSER, "accept": "text/html"}],
    ids=["navigation", "fetch", "accept-html"],
)
async def test_api_signed_out_gets_401_json_never_a_redirect(
    clerk: MockClerk, clock: FakeClock, headers: dict[str, str]
) -> None:
    """api x signed out -> 401 JSON, even for a browser navigation."""
    async with client(make_app(clerk, clock)) as c:
        r = await c.get("/api/things", headers=headers)
    assert_401(r, "session-token-missing", presented=False)


@pytest.mark.parametrize("headers", [BROWSER, FETCH], ids=["navigation", "fetch"])
async def test_api_signed_in_without_role_gets_403_json(
    clerk: MockClerk, clock: FakeClock, headers: dict[str, str]
) -> None:
    """api x has() fails -> 403 JSON, never a redirect."""
    async with client(make_app(clerk, clock)) as c:
        r = await c.get(
            "/api/admin/x", headers={**headers, **bearer(clerk.token(issued_at=clock.now))}
        )
    assert_403(r)


async def test_api_signed_in_and_allowed_injects_and_echoes_x_user_id(
    clerk: MockClerk, clock: FakeClock
) -> None:
    """api x allowed: the app runs, sees one x-user-id, and the response echoes it."""
    async with client(make_app(clerk, clock)) as c:
        r = await c.get("/api/things", headers=bearer(clerk.token(issued_at=clock.now)))
        admin = await c.get("/api/admin/x", headers=bearer(admin_token(clerk, clock)))
    assert_ran(r, "user_test", injected=True)
    assert_ran(admin, "user_admin", injected=True)


# -- Which rule a path gets: the default, the decoded route path, anchored patterns ---------------


async def test_unmatched_path_gets_the_protect_default(clerk: MockClerk, clock: FakeClock) -> None:
    """A path no rule matches gets the protect default (default-deny)."""
    async with client(make_app(clerk, clock, rules=[])) as c:
        nav = await c.get("/anything", headers=BROWSER)
        api = await c.get("/api/anything", headers=FETCH)
        ok = await c.get("/anything", headers=bearer(clerk.token(issued_at=clock.now)))
    assert_redirect(
        nav, sign_in_location("https://app.example.com/anything"), "session-token-missing"
    )
    assert_401(api, "session-token-missing", presented=False)
    assert_ran(ok, "user_test")


@pytest.mark.parametrize(
    ("default", "status"),
    [pytest.param("public", 200, id="public"), pytest.param("api", 401, id="api")],
)
async def test_default_rule_is_configurable(
    clerk: MockClerk, clock: FakeClock, default: str, status: int
) -> None:
    """default="public"/"api" applies to unmatched paths (api: never a redirect)."""
    async with client(make_app(clerk, clock, rules=[], default=default)) as c:
        r = await c.get("/anything", headers=BROWSER)
    assert r.status_code == status
    assert "location" not in r.headers


@pytest.mark.parametrize(
    ("path", "root_path", "public"),
    [
        ("/public/x", "", True),
        ("/PUBLIC/x", "", True),
        ("/public/", "", True),
        ("/public/../admin", "", False),
        ("/public/./x", "", False),
        ("/public//x", "", False),
        ("//public/x", "", False),
        ("/public/\\x", "", False),
        ("/public/\x00", "", False),
        ("/public/x\n", "", False),
        ("/public/..", "", False),
        ("/prefix/public/x", "/prefix", True),
        ("/prefix/admin", "/prefix", False),
        ("/prefixpublic/x", "/prefix", False),
    ],
)
async def test_odd_paths_can_never_be_public(
    clerk: MockClerk, clock: FakeClock, path: str, root_path: str, public: bool
) -> None:
    """The decoded route path decides; non-canonical paths (dot segments, '//') are never public."""
    spy = Spy()
    sent = await call(middleware(spy, clerk, clock), http_scope(path, root_path=root_path))
    if public:
        assert sent[0]["status"] == 200
        assert len(spy.scopes) == 1
    else:
        assert sent[0]["status"] == 401
        assert spy.scopes == []


@pytest.mark.parametrize(
    ("path", "status"),
    [
        ("/ADMIN", 401),
        ("/Admin/users/", 401),
        ("/admin?x=/public", 401),
        ("/API/things", 401),
        ("/healthz", 401),
        ("/Public/x", 200),
        ("/health/", 200),
        ("/SIGN-IN/", 200),
        ("/publicity", 200),
    ],
)
async def test_rule_patterns_are_case_insensitive_and_anchored(
    clerk: MockClerk, clock: FakeClock, path: str, status: int
) -> None:
    """Case-insensitive, anchored: '/health' misses '/healthz', '/public(.*)' hits '/publicity'."""
    async with client(make_app(clerk, clock)) as c:
        r = await c.get(path, headers=FETCH)
    assert r.status_code == status
