"""Rate limits through the middleware: counted after the rule's decision, 429 with Retry-After
and the IETF fields, per user (or address, org, key function), the dependency form, WebSockets,
on_refusal, and Redis going away mid-run."""

from __future__ import annotations

from typing import Any

import httpx
import pytest
from fastapi import Depends, FastAPI
from starlette.applications import Starlette
from starlette.requests import HTTPConnection
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import Route
from starlette.types import ASGIApp

from clerk_asgi import Auth, ClerkConfig, ClerkMiddleware, Refusal, Rule, current_auth
from clerk_asgi.exceptions import ConfigurationError
from clerk_asgi.ratelimit import RateLimit, RateLimiter, rate_limit
from clerk_asgi.testing import FakeClerk, FakeClock, MockClerk

from ._middleware_helpers import RULES, assert_401, assert_403, make_app
from ._redis_helpers import RedisServer
from .helpers import MESSAGES, ORIGIN, bearer

pytestmark = pytest.mark.anyio

LIMITED = [
    Rule.public("/", "/sign-in(.*)"),
    Rule.public("/public(.*)", rate_limit="2/minute"),
    Rule.api("/api/admin(.*)", role="org:admin", rate_limit="2/minute"),
    Rule.api("/api/(.*)", rate_limit="10/10s"),
]
START = 1_800_000_000.0  # buckets of every window here start at it


def client(app: ASGIApp, address: str = "203.0.113.7") -> httpx.AsyncClient:
    transport = httpx.ASGITransport(app, client=(address, 50000))
    return httpx.AsyncClient(transport=transport, base_url=ORIGIN)


def rate_headers(r: httpx.Response) -> dict[str, str]:
    """The headers a rate-limited answer is about, each present at most once."""
    names = ("cache-control", "retry-after", "ratelimit-policy", "ratelimit", "x-user-id")
    found = {}
    for name in names:
        values = r.headers.get_list(name)
        assert len(values) <= 1, (name, values)
        if values:
            found[name] = values[0]
    return found


def assert_429(
    r: httpx.Response, wait: int, policy: str, *, status: str = "signed-in", remaining: int = 0
) -> None:
    """The 429 the middleware writes, exactly."""
    name, quota, window = policy.split("|")
    assert r.status_code == 429
    assert dict(r.headers) == {
        "cache-control": "no-store",
        "x-clerk-auth-status": status,
        "x-clerk-auth-reason": "rate-limited",
        "retry-after": str(wait),
        "ratelimit-policy": f'"{name}";q={quota};w={window}',
        "ratelimit": f'"{name}";r={remaining};t={wait}',
        "content-type": "application/json",
        "content-length": str(len(r.content)),
    }
    assert r.json() == {
        "error": "too_many_requests",
        "reason": "rate-limited",
        "message": MESSAGES["rate-limited"],
    }


async def test_ten_requests_of_a_user_pass_then_429(clerk: MockClerk) -> None:
    """The seed's 10/10s per user: ten pass (each saying what remains), the eleventh is 429
    and never reaches the app; another user is unaffected."""
    clock = FakeClock(START + 4)
    app = make_app(clerk, clock, rules=LIMITED)
    alice = bearer(clerk.token(issued_at=clock.now, user_id="user_alice"))
    bob = bearer(clerk.token(issued_at=clock.now, user_id="user_bob"))
    async with client(app) as c:
        for n in range(10):
            r = await c.get("/api/data", headers=alice)
            assert r.status_code == 200
            assert r.json()["user_id"] == "user_alice"
            assert rate_headers(r) == {
                "ratelimit-policy": '"10/10s";q=10;w=10',
                "ratelimit": f'"10/10s";r={9 - n};t=6',
                "x-user-id": "user_alice",
            }
        assert_429(await c.get("/api/data", headers=alice), 7, "10/10s|10|10")
        assert (await c.get("/api/data", headers=bob)).status_code == 200
        clock.advance(20)  # two windows later: a full budget (the token is still valid)
        assert (await c.get("/api/data", headers=alice)).status_code == 200


async def test_the_rules_own_refusals_cost_no_quota(clerk: MockClerk) -> None:
    """401 (no token, bad token) and 403 (role missing) come first and are not counted:
    nobody can spend a user's budget, and a refused user keeps theirs."""
    clock = FakeClock(START)
    app = make_app(clerk, clock, rules=LIMITED)
    member = bearer(clerk.token(issued_at=clock.now, user_id="user_m"))
    async with client(app) as c:
        for _ in range(5):
            assert_401(await c.get("/api/admin/x"), "session-token-missing", presented=False)
            assert_401(
                await c.get("/api/admin/x", headers=bearer("x.y.z")),
                "token-invalid",
                presented=True,
            )
            assert_403(await c.get("/api/admin/x", headers=member))
        admin = clerk.token(
            issued_at=clock.now, user_id="user_m", org_id="org_1", org_role="org:admin"
        )
        for _ in range(2):
            assert (await c.get("/api/admin/x", headers=bearer(admin))).status_code == 200
        assert_429(await c.get("/api/admin/x", headers=bearer(admin)), 61, "2/60s|2|60")


async def test_signed_out_visitors_of_a_limited_public_route_count_by_address(
    clerk: MockClerk,
) -> None:
    """A user-keyed limit on a public route counts anonymous requests per client address
    (signed-out 429); a signed-in visitor counts as themselves."""
    clock = FakeClock(START)
    app = make_app(clerk, clock, rules=LIMITED)
    async with client(app, "198.51.100.1") as first, client(app, "198.51.100.2") as second:
        for _ in range(2):
            r = await first.get("/public/page")
            assert r.status_code == 200
            assert r.json()["reason"] == "session-token-missing"
        assert_429(await first.get("/public/page"), 61, "2/60s|2|60", status="signed-out")
        assert (await second.get("/public/page")).status_code == 200
        token = bearer(clerk.token(issued_at=clock.now))
        assert (await first.get("/public/page", headers=token)).status_code == 200
        assert (await first.get("/", headers=token)).status_code == 200  # no limit there


async def test_routes_without_a_limit_are_never_counted(clerk: MockClerk) -> None:
    """A route whose rule has no rate_limit carries no fields and never answers 429."""
    clock = FakeClock(START)
    app = make_app(clerk, clock)  # RULES: no limits
    async with client(app) as c:
        for _ in range(30):
            r = await c.get("/api/data", headers=bearer(clerk.token(issued_at=clock.now)))
            assert r.status_code == 200
            assert "ratelimit" not in r.headers


async def test_org_keyed_limits_are_shared_by_the_organization(clerk: MockClerk) -> None:
    """key="org": two members of one organization share its budget; a user outside it has
    their own."""
    clock = FakeClock(START)
    rules = [Rule.api("/api/(.*)", rate_limit=RateLimit.parse("2/minute", key="org"))]
    app = make_app(clerk, clock, rules=rules)

    def member(user: str, org: str | None) -> dict[str, str]:
        return bearer(clerk.token(issued_at=clock.now, user_id=user, org_id=org, org_role="x"))

    async with client(app) as c:
        assert (await c.get("/api/a", headers=member("user_1", "org_a"))).status_code == 200
        assert (await c.get("/api/a", headers=member("user_2", "org_a"))).status_code == 200
        assert (await c.get("/api/a", headers=member("user_2", "org_a"))).status_code == 429
        assert (await c.get("/api/a", headers=member("user_3", None))).status_code == 200


async def test_a_key_function_sees_the_apps_scope(clerk: MockClerk) -> None:
    """A key function gets the connection the app gets: the Auth in it, spoofed identity
    headers gone, and may decline (None) to count."""
    seen: list[list[str]] = []

    def tenant(conn: HTTPConnection, auth: Auth) -> str | None:
        seen.append(conn.headers.getlist("x-user-id"))
        return conn.headers.get("x-tenant")

    clock = FakeClock(START)
    rules = [Rule.api("/api/(.*)", rate_limit=RateLimit(1, 60, "tenant", tenant))]
    app = make_app(clerk, clock, rules=rules)
    headers = {**bearer(clerk.token(issued_at=clock.now)), "x-user-id": "user_admin"}
    async with client(app) as c:
        assert (await c.get("/api/a", headers=headers)).status_code == 200
        assert (await c.get("/api/a", headers=headers)).status_code == 200  # declined
        acme = {**headers, "x-tenant": "acme"}
        assert (await c.get("/api/a", headers=acme)).status_code == 200
        assert_429(await c.get("/api/a", headers=acme), 61, "tenant|1|60")
    assert seen == [["user_test"]] * 4


async def test_the_dependency_form_answers_the_same_429(clerk: MockClerk) -> None:
    """Depends(rate_limit(...)) on one handler counts against the middleware's storage, after
    the rule; past it, the middleware answers the same 429."""
    clock = FakeClock(START)
    app = FastAPI()

    @app.post("/api/exports", dependencies=[Depends(rate_limit("2/minute", name="exports"))])
    async def export(auth: Auth = Depends(current_auth)) -> dict[str, Any]:
        return {"user_id": auth.user_id}

    app.add_middleware(ClerkMiddleware, **clerk.middleware_options(rules=RULES, clock=clock))
    token = bearer(clerk.token(issued_at=clock.now))
    async with client(app) as c:
        assert_401(await c.post("/api/exports"), "session-token-missing", presented=False)
        for _ in range(2):
            r = await c.post("/api/exports", headers=token)
            assert r.status_code == 200
            assert "ratelimit" not in r.headers
        assert_429(await c.post("/api/exports", headers=token), 61, "exports|2|60")


async def test_on_refusal_writes_the_429_and_can_keep_the_fields(clerk: MockClerk) -> None:
    """The on_refusal hook is called for the 429 like any refusal; the fields are in
    refusal.headers."""
    seen: list[Refusal] = []

    def hook(conn: HTTPConnection, refusal: Refusal) -> Response:
        seen.append(refusal)
        return JSONResponse({"slow": "down"}, refusal.status, headers=refusal.headers)

    clock = FakeClock(START)
    rules = [Rule.api("/api/(.*)", rate_limit="1/10s")]
    app = make_app(clerk, clock, rules=rules, on_refusal=hook)
    token = bearer(clerk.token(issued_at=clock.now))
    async with client(app) as c:
        await c.get("/api/a", headers=token)
        r = await c.get("/api/a", headers=token)
    assert r.status_code == 429
    assert r.json() == {"slow": "down"}
    assert rate_headers(r) == {
        "cache-control": "no-store",
        "retry-after": "11",
        "ratelimit-policy": '"1/10s";q=1;w=10',
        "ratelimit": '"1/10s";r=0;t=11',
    }
    assert [(s.status, s.reason) for s in seen] == [(429, "rate-limited")]


def ws_scope(token: str, *, denial: bool) -> dict[str, Any]:
    return {
        "type": "websocket",
        "path": "/api/feed",
        "raw_path": b"/api/feed",
        "query_string": b"",
        "root_path": "",
        "scheme": "wss",
        "headers": [(b"host", b"app.example.com"), (b"authorization", f"Bearer {token}".encode())],
        "client": ("203.0.113.9", 50000),
        "server": ("app.example.com", 443),
        "subprotocols": [],
        "extensions": {"websocket.http.response": {}} if denial else {},
    }


async def test_websockets_are_refused_before_accept(clerk: MockClerk) -> None:
    """A WebSocket handshake past the limit gets the 429 denial response (or close 1008
    without the extension); the app never sees it."""
    clock = FakeClock(START)
    reached: list[str] = []

    async def app(scope: Any, receive: Any, send: Any) -> None:
        reached.append(scope["type"])
        await send({"type": "websocket.accept"})

    middleware = ClerkMiddleware(
        app,
        **clerk.middleware_options(rules=[Rule.api("/api/(.*)", rate_limit="1/10s")], clock=clock),
    )
    token = clerk.token(issued_at=clock.now)

    async def connect(denial: bool) -> list[dict[str, Any]]:
        sent: list[dict[str, Any]] = []

        async def receive() -> dict[str, Any]:
            return {"type": "websocket.connect"}

        async def send(message: dict[str, Any]) -> None:
            sent.append(message)

        await middleware(ws_scope(token, denial=denial), receive, send)
        return sent

    assert await connect(True) == [{"type": "websocket.accept"}]
    denied = await connect(True)
    assert denied[0]["type"] == "websocket.http.response.start"
    assert denied[0]["status"] == 429
    assert (b"retry-after", b"11") in denied[0]["headers"]
    assert (b"ratelimit", b'"1/10s";r=0;t=11') in denied[0]["headers"]
    assert await connect(False) == [
        {"type": "websocket.close", "code": 1008, "reason": "rate-limited"}
    ]
    assert reached == ["websocket"]


async def test_config_takes_a_limiter_or_a_storage_url(clerk: MockClerk) -> None:
    """rate_limit_storage is a URL or a RateLimiter (which keeps its own on_error); mistakes
    are refused at construction."""
    own = RateLimiter(clock=FakeClock(START))
    config = ClerkConfig(**clerk.middleware_options(rate_limit_storage=own))
    assert config.rate_limiter is own
    default = ClerkConfig(**clerk.middleware_options())
    assert repr(default.rate_limiter) == "RateLimiter('memory://', on_error='allow')"
    with pytest.raises(ConfigurationError, match="give your RateLimiter its own on_error="):
        ClerkConfig(
            **clerk.middleware_options(rate_limit_storage=own, rate_limit_on_error="refuse")
        )
    with pytest.raises(ConfigurationError, match="rate_limit_storage must be 'memory://' or"):
        ClerkConfig(**clerk.middleware_options(rate_limit_storage="memcached://x"))
    with pytest.raises(ConfigurationError, match="rate_limit_on_error must be 'allow' or"):
        ClerkConfig(**clerk.middleware_options(rate_limit_on_error="maybe"))


async def test_the_memory_limiter_follows_the_configured_clock(clerk: MockClerk) -> None:
    """With the middleware's FakeClock, stepping over windows gives the budget back."""
    clock = FakeClock(START)
    app = make_app(clerk, clock, rules=[Rule.api("/api/(.*)", rate_limit="2/10s")])
    async with client(app) as c:
        statuses = []
        for step in (0, 0, 0, 10, 10, 0):
            clock.advance(step)
            token = bearer(clerk.token(issued_at=clock.now))
            statuses.append((await c.get("/api/a", headers=token)).status_code)
    # t=0: 2 pass; t=10: the full bucket weighs 100 %; t=20: it is gone: 2 pass again
    assert statuses == [200, 200, 429, 429, 200, 200]


async def test_redis_going_away_mid_run_never_gives_a_500(
    clerk: MockClerk, redis_server: RedisServer
) -> None:
    """Redis stopped mid-run: on_error="allow" lets requests through (no fields);
    on_error="refuse" answers 503 rate-limit-unavailable with Retry-After. Routes without a
    limit are not affected either way."""
    clock = FakeClock()  # now: Redis keeps its own time
    rules = [Rule.public("/health"), Rule.api("/api/(.*)", rate_limit="1/10s")]
    allowing = RateLimiter(redis_server.url)
    refusing = RateLimiter(redis_server.url, on_error="refuse")
    allow = make_app(clerk, clock, rules=rules, rate_limit_storage=allowing)
    refuse = make_app(clerk, clock, rules=rules, rate_limit_storage=refusing)
    token = bearer(clerk.token(issued_at=clock.now))
    async with client(allow) as a, client(refuse) as b:
        assert (await a.get("/api/x", headers=token)).status_code == 200
        assert (await a.get("/api/x", headers=token)).status_code == 429
        redis_server.stop()
        r = await a.get("/api/x", headers=token)
        assert r.status_code == 200
        assert "ratelimit" not in r.headers
        r = await b.get("/api/x", headers=token)
        assert r.status_code == 503
        assert r.json() == {
            "error": "service_unavailable",
            "reason": "rate-limit-unavailable",
            "message": MESSAGES["rate-limit-unavailable"],
        }
        assert rate_headers(r) == {"cache-control": "no-store", "retry-after": "5"}
        assert (await b.get("/health")).status_code == 200
    await allowing.aclose()
    await refusing.aclose()


async def test_a_429_after_the_handshakes_way_back_keeps_its_cookies(clock: FakeClock) -> None:
    """Production: the session cookies the handshake sets also ride on a 429 of that page."""
    fake = FakeClerk(instance="production", clock=clock, origin=ORIGIN)
    app = ClerkMiddleware(
        Starlette(routes=[Route("/page", lambda request: PlainTextResponse("page"))]),
        publishable_key=fake.publishable_key,
        secret_key=fake.secret_key,
        api_url=fake.api_url,
        http_client=httpx.AsyncClient(transport=httpx.ASGITransport(fake)),
        clock=clock,
        authorized_parties=[ORIGIN],
        rules=[Rule.public("/page", rate_limit=RateLimit(1, 60, key="ip"))],
    )
    page = {"sec-fetch-dest": "document", "accept": "text/html"}
    async with client(app) as c:
        assert (await c.get("/page", headers=page)).status_code == 200  # the address's one
    session = fake.sign_in(fake.add_user())
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(fake),
        base_url=fake.issuer,
        cookies={"__client": session.token},
    ) as fapi:
        back = await fapi.get(
            "/v1/client/handshake", params={"redirect_url": f"{ORIGIN}/page", "format": "nonce"}
        )
    nonce = back.cookies["__clerk_handshake_nonce"]
    async with client(app) as c:
        c.cookies.set("__clerk_handshake_nonce", nonce)
        r = await c.get("/page", headers=page)
    assert r.status_code == 429
    assert r.headers["x-clerk-auth-status"] == "signed-in"
    names = [cookie.split("=", 1)[0] for cookie in r.headers.get_list("set-cookie")]
    assert "__session" in names
    assert "__client_uat" in names
