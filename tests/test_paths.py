"""Hostile paths end to end: encodings, slashes, dot segments, prefixes, queries, parsers, methods.

Every test builds the same site: a Starlette app whose routes include ``Mount``s and a catch-all
``/{path:path}``, wrapped in ``ClerkMiddleware`` (public ``/``, ``/health``, ``/sign-in`` and
``/public`` subtrees; admin ``/admin`` and ``/api/admin``; API ``/api``; everything else
protected). Paths a client library would normalise are sent as hand-built ASGI scopes shaped
exactly as uvicorn builds them; parser differentials (obs-fold, fragments, absolute-form
targets) go through uvicorn itself, with both HTTP parsers, over a loopback socket. Rules match
exactly the path the router dispatches on (docs/rules.md "Which path is matched").
"""

from __future__ import annotations

import json
import socket
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import unquote

import anyio
import httpx
import pytest
import uvicorn
from fastapi import FastAPI
from starlette.applications import Starlette
from starlette.middleware.cors import CORSMiddleware
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Mount, Route
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from clerk_asgi import ClerkMiddleware, Rule, get_auth
from clerk_asgi.testing import FakeClock, MockClerk

from .helpers import IGNORED_SCHEME

pytestmark = pytest.mark.anyio

ORIGIN = "https://app.example.com"
SIGN_IN_URL = "https://accounts.example.com/sign-in"

#: The site's rules, in Clerk's pattern syntax (subtrees as ``:path*``).
RULES = (
    Rule.public("/", "/health", "/sign-in/:path*", "/public/:path*"),
    Rule.protect("/admin/:path*", role="org:admin"),
    Rule.api("/api/admin/:path*", role="org:admin"),
    Rule.api("/api/:path*"),
)
#: The same table in the ``(.*)`` form (docs/rules.md "Pattern syntax").
WILDCARD_RULES = (
    Rule.public("/", "/health", "/sign-in/:path*", "/public/:path*"),
    Rule.protect("/admin(.*)", role="org:admin"),
    Rule.api("/api/admin(.*)", role="org:admin"),
    Rule.api("/api/(.*)"),
)

MEMBER = {"user_id": "user_member", "org_id": "org_1", "org_role": "org:member"}
ADMIN = {"user_id": "user_admin", "org_id": "org_1", "org_role": "org:admin"}
NAVIGATION = (("accept", "text/html,application/xhtml+xml"), ("sec-fetch-dest", "document"))


@dataclass(frozen=True)
class Answer:
    """A response as the client got it: status, headers in order (names lowercased), body."""

    status: int
    headers: tuple[tuple[str, str], ...]
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)


def _refusal(
    status: int, auth_status: str, reason: str, message: str, extra: Sequence[tuple[str, str]]
) -> Answer:
    error = {401: "unauthorized", 403: "forbidden"}[status]
    body = json.dumps(
        {"error": error, "reason": reason, "message": message}, separators=(",", ":")
    ).encode()
    headers = (
        ("cache-control", "no-store"),
        ("x-clerk-auth-status", auth_status),
        ("x-clerk-auth-reason", reason),
        *extra,
        ("content-type", "application/json"),
        ("content-length", str(len(body))),
    )
    return Answer(status, headers, body)


#: DENY: the answer to a request without a token that is not a page navigation.
DENY = _refusal(
    401,
    "signed-out",
    "session-token-missing",
    "Sign in to continue.",
    [("www-authenticate", 'Bearer realm="clerk"')],
)
#: DENY, when the only credential was an Authorization header of another scheme.
DENY_IGNORED_SCHEME = _refusal(
    401,
    "signed-out",
    "session-token-missing",
    IGNORED_SCHEME,
    [("www-authenticate", 'Bearer realm="clerk"')],
)
#: FORBID: signed in, without the admin role.
FORBID = _refusal(
    403,
    "signed-in",
    "authorization-failed",
    "You are signed in but not allowed to access this resource.",
    [],
)
#: A header token that is not a compact JWS at all.
MALFORMED_TOKEN = _refusal(
    401,
    "signed-out",
    "token-invalid",
    "The session token is malformed.",
    [
        (
            "www-authenticate",
            'Bearer realm="clerk", error="invalid_token", error_description="token-invalid"',
        )
    ],
)


def sign_in_redirect(redirect_url_param: str) -> Answer:
    """DENY for a page navigation: 307 to the sign-in URL with an encoded ``redirect_url``."""
    return Answer(
        307,
        (
            ("cache-control", "no-store"),
            ("x-clerk-auth-status", "signed-out"),
            ("x-clerk-auth-reason", "session-token-missing"),
            ("location", f"{SIGN_IN_URL}?redirect_url={redirect_url_param}"),
            ("content-length", "0"),
        ),
        b"",
    )


@dataclass
class Site:
    """The site: the ASGI app to call and what reached it."""

    app: ASGIApp
    handled: list[tuple[str, str]] = field(default_factory=list)
    """(handler, scope path) for every request a route handler ran for."""
    arrived: list[Scope] = field(default_factory=list)
    """Every scope that reached the site at all (before the middleware)."""

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        self.arrived.append(scope)
        await self.app(scope, receive, send)


def build_site(clerk: MockClerk, clock: FakeClock, rules: Sequence[Rule] = RULES) -> Site:
    """The site's routes (with Mounts and a catch-all) behind ClerkMiddleware."""
    handled: list[tuple[str, str]] = []

    def handler(name: str) -> Callable[[Request], Awaitable[Response]]:
        async def endpoint(request: Request) -> Response:
            handled.append((name, request.scope["path"]))
            identity = [
                value.decode("latin-1")
                for key, value in request.scope["headers"]
                if key.lower().replace(b"_", b"-") == b"x-user-id"
            ]
            return JSONResponse(
                {"handler": name, "user_id": get_auth(request).user_id, "x_user_id": identity}
            )

        return endpoint

    routes = [
        Route("/", handler("home")),
        Route("/health", handler("health")),
        Route("/sign-in", handler("sign-in")),
        Route("/sign-in/{rest:path}", handler("sign-in")),
        Route("/public/{rest:path}", handler("public")),
        Route("/admin", handler("admin")),
        Mount(
            "/admin",
            routes=[
                Route("/users/{user_id}", handler("admin-user")),
                Route("/{rest:path}", handler("admin")),
            ],
        ),
        Route("/api/me", handler("api-me")),
        Mount(
            "/api/admin",
            routes=[
                Route("/users", handler("api-admin-users")),
                Route("/users/{user_id}", handler("api-admin-user")),
                Route("/{rest:path}", handler("api-admin")),
            ],
        ),
        Route("/{path:path}", handler("catch-all")),
    ]
    options = clerk.middleware_options(
        rules=list(rules), clock=clock, sign_in_url=SIGN_IN_URL, public_origin=ORIGIN
    )
    return Site(ClerkMiddleware(Starlette(routes=routes), **options), handled)


def authorization_for(
    clerk: MockClerk, clock: FakeClock, claims: dict[str, str]
) -> tuple[str, str]:
    """The ``Authorization`` header (name, value) of a user signed in with ``claims``."""
    return ("authorization", f"Bearer {clerk.token(issued_at=clock.now, **claims)}")


async def send_raw(
    app: ASGIApp,
    target: str,
    *,
    method: str = "GET",
    headers: Iterable[tuple[str, str]] = (),
    root_path: str = "",
    path: str | None = None,
) -> Answer:
    """Call ``app`` with the scope uvicorn builds for request-target ``target``.

    Like uvicorn: the query is split off at the first ``?``, the path percent-decoded once,
    ``root_path`` prefixed to both ``path`` and ``raw_path``. ``path`` overrides the decoded path.
    """
    raw_path, _, query = target.partition("?")
    scope: Scope = {
        "type": "http",
        "asgi": {"version": "3.0", "spec_version": "2.4"},
        "http_version": "1.1",
        "method": method,
        "scheme": "https",
        "server": ("app.example.com", 443),
        "client": ("203.0.113.7", 50123),
        "root_path": root_path,
        "path": root_path + unquote(raw_path) if path is None else path,
        "raw_path": (root_path + raw_path).encode("ascii"),
        "query_string": query.encode("ascii"),
        "headers": [
            (b"host", b"app.example.com"),
            *((name.lower().encode("latin-1"), value.encode("latin-1")) for name, value in headers),
        ],
    }
    sent: list[Message] = []
    requested = False

    async def receive() -> Message:
        nonlocal requested
        if requested:
            return {"type": "http.disconnect"}
        requested = True
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: Message) -> None:
        sent.append(message)

    await app(scope, receive, send)
    start, *rest = sent
    assert start["type"] == "http.response.start"
    return Answer(
        start["status"],
        tuple(
            (name.decode("latin-1"), value.decode("latin-1")) for name, value in start["headers"]
        ),
        b"".join(message.get("body", b"") for message in rest),
    )


def answer_of(response: httpx.Response) -> Answer:
    return Answer(response.status_code, tuple(response.headers.multi_items()), response.content)


def client(app: ASGIApp) -> httpx.AsyncClient:
    return httpx.AsyncClient(transport=httpx.ASGITransport(app), base_url=ORIGIN)


async def test_baseline_allowed_requests_reach_the_routed_handler(
    clerk: MockClerk, clock: FakeClock
) -> None:
    """Baseline: allowed requests reach the handler the router picks."""
    site = build_site(clerk, clock)
    admin = [authorization_for(clerk, clock, ADMIN)]
    member = [authorization_for(clerk, clock, MEMBER)]
    expected = [
        ("/", (), "home", None, []),
        ("/public/a/b", (), "public", None, []),
        ("/sign-in/factor-one", (), "sign-in", None, []),
        ("/admin/users/7", admin, "admin-user", "user_admin", []),
        ("/api/admin/users", admin, "api-admin-users", "user_admin", ["user_admin"]),
        ("/api/me", member, "api-me", "user_member", ["user_member"]),
        ("/brand-new-feature", member, "catch-all", "user_member", []),
    ]
    for target, headers, name, user_id, x_user_id in expected:
        answer = await send_raw(site, target, headers=headers)
        assert answer.status == 200, target
        assert answer.json() == {"handler": name, "user_id": user_id, "x_user_id": x_user_id}
    assert [name for name, _ in site.handled] == [row[2] for row in expected]


# ---------------------------------------------------------------------------------------------
# Percent-encoding: the router dispatches on the decoded path, so the middleware does too
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "target", ["/api%2Fadmin/users", "/api%2fadmin%2fusers", "/api%2Fadmin%2Fusers"]
)
async def test_encoded_slash_is_the_admin_area(
    clerk: MockClerk, clock: FakeClock, target: str
) -> None:
    """An encoded '/' is classified as the separator the router decodes it to."""
    site = build_site(clerk, clock)
    async with client(site) as c:
        anonymous = await c.get(target)
        member = await c.get(target, headers=[authorization_for(clerk, clock, MEMBER)])
        admin = await c.get(target, headers=[authorization_for(clerk, clock, ADMIN)])
    assert answer_of(anonymous) == DENY
    assert answer_of(member) == FORBID
    assert admin.status_code == 200
    assert admin.json() == {
        "handler": "api-admin-users",
        "user_id": "user_admin",
        "x_user_id": ["user_admin"],
    }
    assert site.handled == [("api-admin-users", "/api/admin/users")]


@pytest.mark.parametrize(
    "target",
    ["/api/%61dmin/users", "/%61dmin", "/ad%6Din/x", "/%61%64%6d%69%6e/users/1", "/api/a%64min/x"],
)
async def test_encoded_ordinary_characters_are_decoded_once(
    clerk: MockClerk, clock: FakeClock, target: str
) -> None:
    """'/api/%61dmin/users' is '/api/admin/users': DENY anonymous, FORBID a member."""
    site = build_site(clerk, clock)
    assert await send_raw(site, target) == DENY
    assert await send_raw(site, target, headers=[authorization_for(clerk, clock, MEMBER)]) == FORBID
    assert site.handled == []


@pytest.mark.parametrize(
    ("target", "decoded"),
    [("/api/%2561dmin/users", "/api/%61dmin/users"), ("/%2561dmin", "/%61dmin")],
)
async def test_double_encoding_never_reaches_the_admin_handler(
    clerk: MockClerk, clock: FakeClock, target: str, decoded: str
) -> None:
    """'%2561' decodes once to '%61'; DENY anonymous, and no admin handler runs."""
    site = build_site(clerk, clock)
    assert await send_raw(site, target) == DENY
    answer = await send_raw(site, target, headers=[authorization_for(clerk, clock, MEMBER)])
    assert answer.status == 200
    assert answer.json()["handler"] == "catch-all"
    assert site.handled == [("catch-all", decoded)]


# ---------------------------------------------------------------------------------------------
# Repeated slashes and dot segments are never public
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "target",
    [
        "//admin",
        "/admin//x",
        "//api/admin/users",
        "/api//admin/users",
        "///public/../admin",
        "/public//x",
        "//public/x",
        "//",
        "/sign-in//x",
        "//health",
    ],
)
async def test_repeated_slashes_are_denied(clerk: MockClerk, clock: FakeClock, target: str) -> None:
    """Paths with '//' get DENY without a token, catch-all and Mounts included."""
    site = build_site(clerk, clock)
    assert await send_raw(site, target) == DENY
    assert site.handled == []


async def test_repeated_slashes_redirect_navigations_to_their_own_path(
    clerk: MockClerk, clock: FakeClock
) -> None:
    """A navigation to '//admin' is sent to sign-in, coming back to '//admin' here."""
    site = build_site(clerk, clock)
    answer = await send_raw(site, "//admin", headers=NAVIGATION)
    assert answer == sign_in_redirect("https%3A%2F%2Fapp.example.com%2F%2Fadmin")
    assert site.handled == []


@pytest.mark.parametrize("target", ["/admin//x", "/admin/users//1", "/api/admin//users"])
async def test_repeated_slashes_keep_the_admin_role_check(
    clerk: MockClerk, clock: FakeClock, target: str
) -> None:
    """A signed-in member cannot reach an admin Mount through '//'."""
    site = build_site(clerk, clock)
    assert await send_raw(site, target, headers=[authorization_for(clerk, clock, MEMBER)]) == FORBID
    assert site.handled == []


@pytest.mark.parametrize(
    "target",
    [
        "/public/../admin",
        "/public/%2e%2e/admin",
        "/public/.%2e/admin",
        "/public/%2E%2E/admin",
        "/api/./admin/users",
        "/api/%2e/admin/users",
        "/public/..%2fadmin",
        "/public%2f..%2fadmin",
        "/public/./x",
        "/public/..",
        "/sign-in/../admin",
        "/sign-in/%2e%2e/admin",
        "/health/..",
        "/./admin",
    ],
)
async def test_dot_segments_are_never_public(
    clerk: MockClerk, clock: FakeClock, target: str
) -> None:
    """A dot segment (literal or encoded) under a public subtree gets DENY."""
    site = build_site(clerk, clock)
    assert await send_raw(site, target) == DENY
    assert site.handled == []


async def test_dot_segment_navigation_is_redirected_with_the_path_as_received(
    clerk: MockClerk, clock: FakeClock
) -> None:
    """A navigation to '/public/%2e%2e/admin' goes to sign-in; redirect_url keeps it."""
    site = build_site(clerk, clock)
    answer = await send_raw(site, "/public/%2e%2e/admin", headers=NAVIGATION)
    assert answer == sign_in_redirect("https%3A%2F%2Fapp.example.com%2Fpublic%2F%252e%252e%2Fadmin")
    assert site.handled == []


# ---------------------------------------------------------------------------------------------
# Prefix boundaries, precedence, default-deny
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "target",
    [
        "/sign-in-admin",
        "/sign-in.evil",
        "/sign-inx",
        "/publicity/admin-report",
        "/public-admin",
        "/publicx/y",
        "/healthz-admin",
        "/healthz",
        "/health.json",
    ],
)
async def test_siblings_of_public_subtrees_are_denied(
    clerk: MockClerk, clock: FakeClock, target: str
) -> None:
    """'/sign-in-admin', '/publicity/...' are not under '/sign-in' or '/public'."""
    site = build_site(clerk, clock)
    async with client(site) as c:
        assert answer_of(await c.get(target)) == DENY
    assert site.handled == []


@pytest.mark.parametrize(
    ("target", "name"),
    [
        ("/sign-in", "sign-in"),
        ("/sign-in/", "sign-in"),
        ("/sign-in/factor-one", "sign-in"),
        ("/public/report", "public"),
        ("/public/a/b/", "public"),
        ("/health", "health"),
        ("/", "home"),
    ],
)
async def test_public_subtrees_themselves_stay_public(
    clerk: MockClerk, clock: FakeClock, target: str, name: str
) -> None:
    """Control: 'X' and 'X/...' of a public subtree run their handler without a token."""
    site = build_site(clerk, clock)
    async with client(site) as c:
        response = await c.get(target)
    assert response.status_code == 200
    assert response.json() == {"handler": name, "user_id": None, "x_user_id": []}


async def test_first_matching_rule_wins_and_unmatched_paths_are_protected(
    clerk: MockClerk, clock: FakeClock
) -> None:
    """Admin listed before a public '/api/:path*/docs' keeps /api/admin/docs admin."""
    rules = (
        RULES[0],
        RULES[1],
        RULES[2],
        Rule.public("/api/:path*/docs"),
        RULES[3],
    )
    site = build_site(clerk, clock, rules)
    member = [authorization_for(clerk, clock, MEMBER)]
    assert await send_raw(site, "/api/admin/docs") == DENY
    assert await send_raw(site, "/api/admin/docs", headers=member) == FORBID
    assert await send_raw(site, "/brand-new-feature") == DENY
    assert site.handled == []
    # the public docs pattern still works where no earlier rule claims the path
    assert (await send_raw(site, "/api/v1/docs")).json()["handler"] == "catch-all"
    # an unmatched path is protected, not public: a signed-in user gets through
    assert (await send_raw(site, "/brand-new-feature", headers=member)).status == 200
    assert site.handled == [("catch-all", "/api/v1/docs"), ("catch-all", "/brand-new-feature")]


# ---------------------------------------------------------------------------------------------
# The query string never widens; an encoded '?' stays part of the path
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "target",
    [
        "/admin?next=/public",
        "/admin?/public",
        "/admin%3F/public",
        "/admin%3f",
        "/api/admin/users?x=/public",
        "/api/admin/users%3F/public",
        "/brand-new?/public/x",
    ],
)
async def test_query_string_never_makes_a_path_public(
    clerk: MockClerk, clock: FakeClock, target: str
) -> None:
    """Classification uses the path only; '?/public' in query or path opens nothing."""
    site = build_site(clerk, clock)
    assert await send_raw(site, target) == DENY
    assert site.handled == []


async def test_query_string_never_narrows_either(clerk: MockClerk, clock: FakeClock) -> None:
    """'/public?x=/admin' is public; the query is the handler's business."""
    site = build_site(clerk, clock)
    answer = await send_raw(site, "/public/page?x=/admin")
    assert answer.status == 200
    assert answer.json() == {"handler": "public", "user_id": None, "x_user_id": []}


async def test_navigation_redirect_keeps_the_query(clerk: MockClerk, clock: FakeClock) -> None:
    """A navigation to '/admin?next=/public' comes back to exactly that URL."""
    site = build_site(clerk, clock)
    answer = await send_raw(site, "/admin?next=/public", headers=NAVIGATION)
    assert answer == sign_in_redirect("https%3A%2F%2Fapp.example.com%2Fadmin%3Fnext%3D%2Fpublic")


@pytest.mark.parametrize(
    "target",
    ["/admin/users/1%3Fx", "/admin/x%23y", "/api/admin/users/1%3Fx", "/api/admin/x%23y%3F"],
)
async def test_encoded_question_mark_keeps_the_admin_role_check(
    clerk: MockClerk, clock: FakeClock, target: str
) -> None:
    """An encoded '?' or '#' inside the admin subtree still requires the admin role."""
    site = build_site(clerk, clock)
    assert await send_raw(site, target, headers=[authorization_for(clerk, clock, MEMBER)]) == FORBID
    assert site.handled == []


# ---------------------------------------------------------------------------------------------
# Through uvicorn's two HTTP parsers, over a loopback socket
# ---------------------------------------------------------------------------------------------

#: Headers the server adds; not the middleware's business.
SERVER_HEADERS = frozenset({"date", "server", "connection"})


@asynccontextmanager
async def serving(app: ASGIApp, http: str) -> AsyncIterator[int]:
    """Run uvicorn (``--http <http>``) on a free loopback port for the block; yield the port."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen(16)
        config = uvicorn.Config(
            app, http=http, ws="none", lifespan="off", log_config=None, access_log=False
        )
        server = uvicorn.Server(config)
        async with anyio.create_task_group() as tasks:
            tasks.start_soon(server.serve, [sock])
            try:
                yield sock.getsockname()[1]
            finally:
                server.should_exit = True


async def exchange(port: int, request: bytes) -> Answer:
    """Send raw request bytes, read the response to EOF (5 s bound), parse it."""
    chunks: list[bytes] = []
    with anyio.fail_after(5):
        async with await anyio.connect_tcp("127.0.0.1", port) as stream:
            await stream.send(request)
            async for chunk in stream:
                chunks.append(chunk)
    head, _, body = b"".join(chunks).partition(b"\r\n\r\n")
    status_line, *lines = head.decode("latin-1").split("\r\n")
    headers = []
    for line in lines:
        name, _, value = line.partition(":")
        if name.lower() not in SERVER_HEADERS:
            headers.append((name.lower(), value.strip()))
    return Answer(int(status_line.split(" ")[1]), tuple(headers), body)


def raw_get(target: str, *header_lines: bytes) -> bytes:
    return b"\r\n".join(
        [
            b"GET " + target.encode("ascii") + b" HTTP/1.1",
            b"Host: app.example.com",
            *header_lines,
            b"Connection: close",
            b"",
            b"",
        ]
    )


def without_transport_headers(answer: Answer) -> Answer:
    """``answer`` minus ``transfer-encoding``, which only uvicorn's app responses carry."""
    kept = tuple(h for h in answer.headers if h[0] != "transfer-encoding")
    return Answer(answer.status, kept, answer.body)


async def test_h11_merges_an_obs_fold_and_the_merged_token_is_rejected(
    clerk: MockClerk, clock: FakeClock
) -> None:
    """h11 turns 'Bearer <T>\\r\\n BBB' into '<T> BBB', which is refused as malformed."""
    site = build_site(clerk, clock)
    token = clerk.token(issued_at=clock.now, **MEMBER).encode("ascii")
    async with serving(site, "h11") as port:
        folded = await exchange(
            port, raw_get("/api/me", b"Authorization: Bearer " + token, b" BBB")
        )
        genuine = await exchange(port, raw_get("/api/me", b"Authorization: Bearer " + token))
    assert folded == MALFORMED_TOKEN
    assert (b"authorization", b"Bearer " + token + b" BBB") in site.arrived[0]["headers"]
    assert genuine.status == 200
    assert genuine.json() == {
        "handler": "api-me",
        "user_id": "user_member",
        "x_user_id": ["user_member"],
    }
    assert site.handled == [("api-me", "/api/me")]


@pytest.mark.parametrize(
    ("http", "header_lines"),
    [
        ("httptools", (b"Authorization: Bearer AAA", b" BBB")),
        ("h11", (b"Authorization : Bearer AAA",)),
        ("httptools", (b"Authorization : Bearer AAA",)),
        ("h11", (b"Authorization: Bearer A\x00A",)),
        ("httptools", (b"Authorization: Bearer A\x00A",)),
    ],
)
async def test_malformed_header_lines_never_reach_the_middleware(
    clerk: MockClerk, clock: FakeClock, http: str, header_lines: tuple[bytes, ...]
) -> None:
    """Obs-fold (httptools), space before ':' and NUL are a 400 from the server."""
    site = build_site(clerk, clock)
    async with serving(site, http) as port:
        answer = await exchange(port, raw_get("/api/me", *header_lines))
    assert answer.status == 400
    assert site.arrived == []


#: Request-targets with a fragment, or in absolute-form (RFC 9112 section 3.2.2).
FRAGMENT_TARGETS = (
    "/admin#/public",
    "/api/admin/users#x",
    "/admin/users/1#/public",
    "http://app.example.com/api/admin/users",
    "http://evil.example/admin",
    "http://app.example.com/public/../admin",
)


@pytest.mark.parametrize("http", ["h11", "httptools"])
async def test_fragments_and_absolute_form_are_denied_by_both_parsers(
    clerk: MockClerk, clock: FakeClock, http: str
) -> None:
    """'#' fragments and absolute-form targets get DENY, whatever the parser keeps."""
    site = build_site(clerk, clock)
    async with serving(site, http) as port:
        answers = [await exchange(port, raw_get(target)) for target in FRAGMENT_TARGETS]
    assert answers == [DENY] * len(FRAGMENT_TARGETS)
    assert len(site.arrived) == len(FRAGMENT_TARGETS)
    assert site.handled == []


@pytest.mark.parametrize(
    "http",
    [
        "h11",
        "httptools",
    ],
)
async def test_fragment_keeps_the_admin_role_check(
    clerk: MockClerk, clock: FakeClock, http: str
) -> None:
    """A member's 'GET /admin/users/1#x' is refused 403 under either parser."""
    site = build_site(clerk, clock)
    token = clerk.token(issued_at=clock.now, **MEMBER).encode("ascii")
    async with serving(site, http) as port:
        answer = await exchange(
            port, raw_get("/admin/users/1#x", b"Authorization: Bearer " + token)
        )
    assert without_transport_headers(answer) == FORBID
    assert site.handled == []


# ---------------------------------------------------------------------------------------------
# Letter case, trailing slash, ';', odd bytes
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "target",
    [
        "/ADMIN",
        "/Admin/users",
        "/admin/",
        "/admin;jsessionid=1",
        "/admin%3Bx",
        "/admin%00",
        "/admin%20",
        "/admin%09",
        "/admin%0A",
        "/admin%0D%0Ax",
        "/admin\\users",
        "/%EF%BD%81%EF%BD%84%EF%BD%8D%EF%BD%89%EF%BD%8E",
        "/public%00/x",
        "/public/x%00",
        "/health%0A",
        "/sign-in\\..\\admin",
    ],
)
async def test_case_slash_semicolon_and_odd_bytes_are_denied(
    clerk: MockClerk, clock: FakeClock, target: str
) -> None:
    """'/ADMIN', '/admin/', ';', NUL, whitespace, '\\', full-width: DENY, no handler."""
    site = build_site(clerk, clock)
    assert await send_raw(site, target) == DENY
    assert site.handled == []


@pytest.mark.parametrize("target", ["/admin/", "/ADMIN", "/Admin/users/1", "/admin/users/1/"])
async def test_trailing_slash_and_case_variants_keep_the_admin_role_check(
    clerk: MockClerk, clock: FakeClock, target: str
) -> None:
    """'/admin/' (which Mount('/admin') serves) and case variants FORBID a member."""
    site = build_site(clerk, clock)
    assert await send_raw(site, target, headers=[authorization_for(clerk, clock, MEMBER)]) == FORBID
    assert site.handled == []


@pytest.mark.parametrize("target", ["/admin/users/1%0Ax", "/api/admin/users/1%0Ax"])
async def test_newline_keeps_the_admin_role_check(
    clerk: MockClerk, clock: FakeClock, target: str
) -> None:
    """With '/admin(.*)' rules, an encoded newline does not skip the role check."""
    reached: list[str] = []
    app = FastAPI()

    @app.get("/admin/users/{user_id}")
    @app.get("/api/admin/users/{user_id}")
    async def admin_user(user_id: str) -> dict[str, str]:
        reached.append(user_id)
        return {"user_id": user_id}

    options = clerk.middleware_options(
        rules=list(WILDCARD_RULES), clock=clock, sign_in_url=SIGN_IN_URL, public_origin=ORIGIN
    )
    site = ClerkMiddleware(app, **options)
    assert await send_raw(site, target, headers=[authorization_for(clerk, clock, MEMBER)]) == FORBID
    assert reached == []


# ---------------------------------------------------------------------------------------------
# root_path and mounts
# ---------------------------------------------------------------------------------------------


async def test_root_path_is_stripped_like_the_router_does(
    clerk: MockClerk, clock: FakeClock
) -> None:
    """Under --root-path /prefix, '/api/admin/users' is the admin API, as routed."""
    site = build_site(clerk, clock)
    admin = [authorization_for(clerk, clock, ADMIN)]
    assert await send_raw(site, "/api/admin/users", root_path="/prefix") == DENY
    assert await send_raw(site, "/prefix/api/admin/users", root_path="/prefix") == DENY
    assert site.handled == []
    answer = await send_raw(site, "/api/admin/users", root_path="/prefix", headers=admin)
    assert answer.json() == {
        "handler": "api-admin-users",
        "user_id": "user_admin",
        "x_user_id": ["user_admin"],
    }
    assert site.handled == [("api-admin-users", "/prefix/api/admin/users")]


async def test_redirect_url_includes_the_root_path(clerk: MockClerk, clock: FakeClock) -> None:
    """A navigation under root_path returns to the full public URL, prefix included."""
    site = build_site(clerk, clock)
    answer = await send_raw(site, "/admin", root_path="/prefix", headers=NAVIGATION)
    assert answer == sign_in_redirect("https%3A%2F%2Fapp.example.com%2Fprefix%2Fadmin")


async def test_middleware_on_a_mounted_child_app(clerk: MockClerk, clock: FakeClock) -> None:
    """Middleware on a child app mounted at /app sees '/app/admin' as '/admin'."""
    site = build_site(clerk, clock)
    parent = FastAPI()
    parent.mount("/app", site)
    async with client(parent) as c:
        anonymous = await c.get("/app/admin")
        navigation = await c.get("/app/admin/users/1", headers=dict(NAVIGATION))
        member = await c.get(
            "/app/api/admin/users", headers=[authorization_for(clerk, clock, MEMBER)]
        )
        public = await c.get("/app/public/x")
    assert answer_of(anonymous) == DENY
    assert answer_of(navigation) == sign_in_redirect(
        "https%3A%2F%2Fapp.example.com%2Fapp%2Fadmin%2Fusers%2F1"
    )
    assert answer_of(member) == FORBID
    assert public.json() == {"handler": "public", "user_id": None, "x_user_id": []}
    assert site.handled == [("public", "/app/public/x")]


async def test_root_path_without_a_separator_is_not_stripped(
    clerk: MockClerk, clock: FakeClock
) -> None:
    """root_path '/prefix' and path '/prefixadmin' is '/prefixadmin': protected."""
    site = build_site(clerk, clock)
    assert await send_raw(site, "/prefixadmin", root_path="/prefix", path="/prefixadmin") == DENY
    assert site.handled == []
    # classified as an unmatched path (sign-in required), not as /admin (admin role required)
    member = [authorization_for(clerk, clock, MEMBER)]
    answer = await send_raw(
        site, "/prefixadmin", root_path="/prefix", path="/prefixadmin", headers=member
    )
    assert answer.json()["handler"] == "catch-all"
    assert site.handled == [("catch-all", "/prefixadmin")]


# ---------------------------------------------------------------------------------------------
# No header and no method skips the check
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "header",
    [
        ("x-middleware-subrequest", "middleware:middleware:middleware:middleware:middleware"),
        ("x-original-url", "/public"),
        ("x-rewrite-url", "/public"),
        ("x-forwarded-uri", "/public"),
        ("x-forwarded-path", "/public"),
        ("x-forwarded-prefix", "/public"),
        ("user-agent", "kube-probe/1.29"),
        ("user-agent", "GoogleHC/1.0"),
        ("x-clerk-auth-status", "signed-in"),
        ("x-clerk-auth-reason", "none"),
        ("x-user-id", "user_admin"),
        ("x_user_id", "user_admin"),
        ("authorization", "Basic YWRtaW46YWRtaW4="),
    ],
)
@pytest.mark.parametrize("target", ["/admin", "/api/admin/users", "/brand-new"])
async def test_bypass_headers_are_ignored(
    clerk: MockClerk, clock: FakeClock, header: tuple[str, str], target: str
) -> None:
    """No rewrite, probe, debug or identity header skips or re-targets the check."""
    site = build_site(clerk, clock)
    expected = DENY_IGNORED_SCHEME if header[0] == "authorization" else DENY
    assert await send_raw(site, target, headers=[header]) == expected
    assert site.handled == []


async def test_spoofed_identity_never_reaches_a_public_handler(
    clerk: MockClerk, clock: FakeClock
) -> None:
    """'x-user-id: user_admin' on a public route is removed before the handler."""
    site = build_site(clerk, clock)
    spoofed = [("x-user-id", "user_admin"), ("X_User_Id", "user_admin")]
    answer = await send_raw(site, "/public/x", headers=spoofed)
    assert answer.json() == {"handler": "public", "user_id": None, "x_user_id": []}


@pytest.mark.parametrize(
    ("method", "headers"),
    [
        ("HEAD", ()),
        ("OPTIONS", ()),
        ("OPTIONS", (("origin", ORIGIN), ("access-control-request-method", "GET"))),
        ("TRACE", ()),
        ("PROPFIND", ()),
        ("get", NAVIGATION),
        ("POST", (("x-http-method-override", "GET"),)),
        ("POST", (("x-method-override", "GET"), *NAVIGATION)),
        ("PUT", ()),
        ("PATCH", ()),
        ("DELETE", ()),
    ],
)
@pytest.mark.parametrize("target", ["/admin", "/api/admin/users", "/brand-new"])
async def test_every_method_is_checked(
    clerk: MockClerk,
    clock: FakeClock,
    method: str,
    headers: tuple[tuple[str, str], ...],
    target: str,
) -> None:
    """Auth is enforced for every method, odd and lowercase ones included (no redirect)."""
    site = build_site(clerk, clock)
    assert await send_raw(site, target, method=method, headers=headers) == DENY
    assert site.handled == []


async def test_only_a_cors_preflight_outside_the_middleware_is_exempt(
    clerk: MockClerk, clock: FakeClock
) -> None:
    """CORSMiddleware outside answers a real preflight; a bare OPTIONS still gets 401."""
    site = build_site(clerk, clock)
    app = CORSMiddleware(site, allow_origins=[ORIGIN], allow_methods=["GET"])
    preflight = await send_raw(
        app,
        "/api/admin/users",
        method="OPTIONS",
        headers=[("origin", ORIGIN), ("access-control-request-method", "GET")],
    )
    assert preflight.status == 200
    assert preflight.body == b"OK"
    assert site.arrived == []
    bare = await send_raw(app, "/api/admin/users", method="OPTIONS", headers=[("origin", ORIGIN)])
    cors = (("access-control-allow-origin", ORIGIN), ("vary", "Origin"))
    assert bare == Answer(401, DENY.headers + cors, DENY.body)
    assert site.handled == []


# ---------------------------------------------------------------------------------------------
# 8 KiB hostile paths (the answer only; the cost is measured by the benchmark)
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "target",
    [
        "/api/" + "a/" * 4000 + "!",
        "/" + "%2F" * 2730,
        "/public/" + "a/" * 4000 + "..",
        "/sign-in/" + "%2e%2e/" * 1169,
        "/admin/" + "a/" * 4000,
    ],
)
async def test_hostile_long_paths_are_denied(
    clerk: MockClerk, clock: FakeClock, target: str
) -> None:
    """8 KiB paths built to stress the patterns still get DENY, no handler."""
    site = build_site(clerk, clock)
    assert len(target) <= 8 * 1024
    assert await send_raw(site, target) == DENY
    assert site.handled == []
