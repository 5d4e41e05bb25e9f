"""Tokens: ``sessions.token()`` (session and JWT-template tokens), and
``ClerkBackend.token_auth()``, the ``httpx.Auth`` that calls another API as the signed-in user:
the request's own token, or a template token minted on demand, cached until shortly before it
expires, one mint for concurrent requests, in a bounded cache."""

from __future__ import annotations

import json
from typing import Any

import anyio
import httpx
import jwt
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from clerk_asgi import Auth, ClerkMiddleware, Rule, SignedOutError, get_auth
from clerk_asgi.backend import (
    BackendAPIError,
    BackendNotFoundError,
    ClerkBackend,
    SessionTokenAuth,
)
from clerk_asgi.testing import FakeClerk, FakeClock, KeyPair

from ._backend_helpers import Script, answer, backend, clerk_error, ok, on_fake

pytestmark = pytest.mark.anyio

ORIGIN = "https://app.example.test"
#: Template tokens a ClerkBackend keeps.
CACHE_SIZE = 1024
API = "https://data.example.test"


@pytest.fixture
def fake(key: KeyPair, clock: FakeClock) -> FakeClerk:
    fake = FakeClerk(key=key, clock=clock, origin=ORIGIN)
    fake.add_template(
        "supabase", {"role": "authenticated", "email": "{{user.primary_email_address}}"}
    )
    return fake


def claims(fake: FakeClerk, token: str) -> dict[str, Any]:
    decoded: dict[str, Any] = jwt.decode(
        token,
        fake.key.public_pem,
        algorithms=["RS256"],
        options={
            "verify_exp": False,
            "verify_nbf": False,
            "verify_iat": False,
            "verify_aud": False,
        },
    )
    return decoded


def auth_for(fake: FakeClerk, session_id: str) -> Auth:
    """The Auth the middleware would give a request carrying a fresh session token."""
    token = fake.session_token(session_id)
    return Auth.from_claims(claims(fake, token), token=token)


class Downstream:
    """Another API: records the Authorization header of each request."""

    def __init__(self) -> None:
        self.authorizations: list[str | None] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.authorizations.append(request.headers.get("authorization"))
        return httpx.Response(200, json={"ok": True})

    def client(self, auth: httpx.Auth) -> httpx.AsyncClient:
        return httpx.AsyncClient(transport=httpx.MockTransport(self), auth=auth, base_url=API)


def bearer_claims(fake: FakeClerk, authorization: str | None) -> dict[str, Any]:
    assert authorization is not None
    scheme, _, token = authorization.partition(" ")
    assert scheme == "Bearer"
    return claims(fake, token)


# -- sessions.token -----------------------------------------------------------------------------


async def test_session_token(fake: FakeClerk, clock: FakeClock) -> None:
    """POST /v1/sessions/{id}/tokens: a session token of that session, by FakeClerk's key."""
    user_id = fake.add_user(email="ada@example.test")
    session_id = fake.sign_in(user_id).session_id
    token = await on_fake(fake).sessions.token(session_id)
    payload = claims(fake, token)
    assert (payload["sid"], payload["sub"], payload["exp"]) == (
        session_id,
        user_id,
        int(clock.now) + 60,
    )


async def test_template_token_with_a_lifetime(fake: FakeClerk, clock: FakeClock) -> None:
    """POST .../tokens/{template} with expires_in_seconds: the template's claims, that long."""
    user_id = fake.add_user(email="ada@example.test")
    session_id = fake.sign_in(user_id).session_id
    token = await on_fake(fake).sessions.token(session_id, template="supabase", expires_in=300)
    payload = claims(fake, token)
    assert (payload["role"], payload["email"], payload["sub"]) == (
        "authenticated",
        "ada@example.test",
        user_id,
    )
    assert payload["exp"] == int(clock.now) + 300


async def test_what_is_sent() -> None:
    """A JSON body only with a lifetime (as @clerk/backend does); no body without one."""
    script = Script(
        ok({"object": "token", "jwt": "a.b.c"}), ok({"object": "token", "jwt": "d.e.f"})
    )
    sessions = backend(script).sessions
    assert await sessions.token("sess_1") == "a.b.c"
    assert await sessions.token("sess_1", template="hasura", expires_in=60) == "d.e.f"
    first, second = script.requests
    assert (first.method, first.url.path, first.content) == (
        "POST",
        "/v1/sessions/sess_1/tokens",
        b"",
    )
    assert (second.url.path, json.loads(second.content)) == (
        "/v1/sessions/sess_1/tokens/hasura",
        {"expires_in_seconds": 60},
    )
    assert second.headers["content-type"] == "application/json"


async def test_unknown_template_and_ended_session_are_not_found(fake: FakeClerk) -> None:
    """An unknown template, or a session no longer active: BackendNotFoundError."""
    session_id = fake.sign_in(fake.add_user()).session_id
    sessions = on_fake(fake).sessions
    with pytest.raises(BackendNotFoundError) as template:
        await sessions.token(session_id, template="nope")
    assert template.value.message == "No JWT template was found"
    fake.sign_out(session_id)
    with pytest.raises(BackendNotFoundError) as ended:
        await sessions.token(session_id)
    assert ended.value.message == "No active session was found"


@pytest.mark.parametrize("value", [29, 0, -1, 315_360_001])
async def test_a_lifetime_clerk_refuses_is_refused_before_any_request(value: int) -> None:
    """Clerk takes 30 s to 10 years: anything else is a ValueError, and nothing is sent."""
    script = Script()
    with pytest.raises(ValueError, match="expires_in must be") as raised:
        await backend(script).sessions.token("sess_1", expires_in=value)
    assert str(raised.value) == (
        f"expires_in must be 30 to 315,360,000 seconds (Clerk's bounds), got {value}"
    )
    assert script.requests == []


@pytest.mark.parametrize("value", [30, 315_360_000])
async def test_the_bounds_themselves_are_sent(fake: FakeClerk, value: int) -> None:
    session_id = fake.sign_in(fake.add_user()).session_id
    token = await on_fake(fake).sessions.token(session_id, expires_in=value)
    claims = jwt.decode(token, options={"verify_signature": False})
    assert claims["exp"] - claims["iat"] == value


@pytest.mark.parametrize("value", [1.5, "60", True])
async def test_expires_in_must_be_an_int(value: Any) -> None:
    """A lifetime that is not an int is refused before any request."""
    script = Script()
    with pytest.raises(TypeError) as raised:
        await backend(script).sessions.token("sess_1", expires_in=value)
    assert str(raised.value) == f"expires_in must be an int, got {type(value).__name__}"
    assert script.requests == []


@pytest.mark.parametrize(
    "body",
    [{"object": "token"}, {"jwt": ""}, {"jwt": 7}, ["a.b.c"], None],
    ids=["no-jwt", "empty", "number", "array", "null"],
)
async def test_a_token_answer_without_a_jwt(body: Any) -> None:
    """A 200 without a JWT string: invalid-response."""
    with pytest.raises(BackendAPIError) as raised:
        await backend(Script(ok(body))).sessions.token("sess_1")
    assert (raised.value.code, raised.value.message) == (
        "invalid-response",
        "the token answer has no jwt",
    )


# -- token_auth without a template: the request's own token -------------------------------------


async def test_the_requests_own_token(fake: FakeClerk) -> None:
    """Without a template, each request carries ``auth.token``; the Backend API is not called."""
    auth = auth_for(fake, fake.sign_in(fake.add_user()).session_id)
    downstream = Downstream()
    fake.requests.clear()
    async with downstream.client(on_fake(fake).token_auth(auth)) as api:
        await api.get("/rows")
        await api.get("/rows")
    assert downstream.authorizations == [f"Bearer {auth.token}"] * 2
    assert fake.requests == []


def test_the_requests_own_token_with_a_sync_client(fake: FakeClerk) -> None:
    """Without a template, a sync httpx.Client works too."""
    auth = auth_for(fake, fake.sign_in(fake.add_user()).session_id)
    downstream = Downstream()
    auth_flow = on_fake(fake).token_auth(auth)
    with httpx.Client(transport=httpx.MockTransport(downstream), auth=auth_flow) as api:
        api.get(API + "/rows")
    assert downstream.authorizations == [f"Bearer {auth.token}"]


def test_a_template_with_a_sync_client_is_refused(fake: FakeClerk) -> None:
    """A template needs the async Backend API: a sync client is told so."""
    auth = auth_for(fake, fake.sign_in(fake.add_user()).session_id)
    auth_flow = on_fake(fake).token_auth(auth, template="supabase")
    with (
        httpx.Client(transport=httpx.MockTransport(Downstream()), auth=auth_flow) as api,
        pytest.raises(RuntimeError) as raised,
    ):
        api.get(API + "/rows")
    assert str(raised.value) == (
        "SessionTokenAuth mints template tokens through the async Backend API client: "
        "use it with httpx.AsyncClient."
    )


@pytest.mark.parametrize("template", [None, "supabase"])
def test_a_signed_out_auth_is_refused(template: str | None) -> None:
    """A signed-out Auth has no token to send: SignedOutError (the middleware's 401)."""
    clerk = backend(Script())
    with pytest.raises(SignedOutError) as raised:
        clerk.token_auth(Auth.signed_out("session-token-missing"), template=template)
    assert (raised.value.status_code, raised.value.reason, raised.value.message) == (
        401,
        "session-token-missing",
        "Sign in to continue.",
    )


async def test_a_template_token_needs_only_the_session(fake: FakeClerk) -> None:
    """An Auth without the raw token (built from claims, as in a dependency override) can
    still have template tokens minted for its session; its own token cannot be sent."""
    session_id = fake.sign_in(fake.add_user()).session_id
    auth = Auth.from_claims({"sub": "user_1", "sid": session_id, "exp": fake._now() + 60})
    assert auth.token is None
    flow = on_fake(fake).token_auth(auth, template="supabase")
    request = httpx.Request("GET", "https://api.example.com/rows")
    sent = await flow.async_auth_flow(request).__anext__()
    assert sent.headers["authorization"].startswith("Bearer ey")
    with pytest.raises(SignedOutError):
        on_fake(fake).token_auth(auth)


def test_a_template_name_is_checked_at_once(fake: FakeClerk) -> None:
    """An empty template name is refused when the Auth is made, not at the first request."""
    auth = auth_for(fake, fake.sign_in(fake.add_user()).session_id)
    with pytest.raises(ValueError, match="template must not be empty"):
        on_fake(fake).token_auth(auth, template="")


def test_repr_shows_no_token(fake: FakeClerk) -> None:
    """The Auth's repr names the session and template, never a token."""
    session_id = fake.sign_in(fake.add_user()).session_id
    auth = auth_for(fake, session_id)
    flow = on_fake(fake).token_auth(auth, template="supabase")
    assert isinstance(flow, SessionTokenAuth)
    assert repr(flow) == f"SessionTokenAuth(session_id={session_id!r}, template='supabase')"


# -- token_auth with a template: minted, cached, single flight ----------------------------------


async def test_template_tokens_are_cached_until_shortly_before_exp(
    fake: FakeClerk, clock: FakeClock
) -> None:
    """Minted once, reused until 10 s before its exp (60 s), then minted again."""
    session_id = fake.sign_in(fake.add_user(email="ada@example.test")).session_id
    auth = auth_for(fake, session_id)
    clerk = on_fake(fake, clock=clock)
    downstream = Downstream()
    fake.requests.clear()
    async with downstream.client(clerk.token_auth(auth, template="supabase")) as api:
        await api.get("/a")
        clock.advance(49)
        await api.get("/b")
        clock.advance(1)  # 10 s left: too close
        await api.get("/c")
    first, second, third = (bearer_claims(fake, a) for a in downstream.authorizations)
    assert first == second
    assert third["iat"] == first["iat"] + 50
    assert first["role"] == "authenticated"
    assert fake.requests == [("POST", f"/v1/sessions/{session_id}/tokens/supabase")] * 2


async def test_the_cache_is_shared_by_every_auth_of_a_client(
    fake: FakeClerk, clock: FakeClock
) -> None:
    """Each request makes its own token_auth(); they share the client's cache, per session
    and per template."""
    fake.add_template("hasura", {"x-hasura-role": "user"})
    user_id = fake.add_user()
    one, two = fake.sign_in(user_id).session_id, fake.sign_in(user_id).session_id
    clerk = on_fake(fake, clock=clock)
    downstream = Downstream()
    fake.requests.clear()
    for session_id, template in [(one, "supabase"), (one, "supabase"), (two, "supabase")]:
        async with downstream.client(
            clerk.token_auth(auth_for(fake, session_id), template=template)
        ) as api:
            await api.get("/")
    async with downstream.client(clerk.token_auth(auth_for(fake, one), template="hasura")) as api:
        await api.get("/")
    assert len(fake.requests) == 3
    sids = [bearer_claims(fake, a)["sub"] for a in downstream.authorizations]
    assert sids == [user_id] * 4


async def test_concurrent_requests_share_one_mint(fake: FakeClerk, clock: FakeClock) -> None:
    """Ten requests needing the same token while it is minted: one Backend API call."""
    session_id = fake.sign_in(fake.add_user()).session_id
    auth = auth_for(fake, session_id)
    gate = anyio.Event()
    mints = 0
    inner = httpx.ASGITransport(fake)

    async def gated(request: httpx.Request) -> httpx.Response:
        nonlocal mints
        mints += 1
        await gate.wait()
        return await inner.handle_async_request(request)

    clerk = ClerkBackend(
        secret_key=fake.secret_key,
        api_url=fake.api_url,
        http_client=httpx.AsyncClient(transport=httpx.MockTransport(gated)),
        clock=clock,
    )
    downstream = Downstream()
    async with (
        downstream.client(clerk.token_auth(auth, template="supabase")) as api,
        anyio.create_task_group() as tasks,
    ):
        for _ in range(10):
            tasks.start_soon(api.get, "/")
        await anyio.wait_all_tasks_blocked()
        gate.set()
    assert mints == 1
    assert len(set(downstream.authorizations)) == 1
    assert len(downstream.authorizations) == 10


async def test_a_failed_mint_fails_every_waiting_request_then_is_tried_again(
    clock: FakeClock, key: KeyPair
) -> None:
    """Waiters of a failed mint get its error; the next request mints anew."""
    gate = anyio.Event()
    token = key.sign({"alg": "RS256", "kid": key.kid, "typ": "JWT"}, {"exp": clock.now + 60})
    answers = [answer(404, clerk_error("resource_not_found", "No JWT template was found"))]
    answers.append(ok({"object": "token", "jwt": token}))
    calls = 0

    async def handler(request: httpx.Request) -> httpx.Response:
        nonlocal calls
        calls += 1
        await gate.wait()
        return answers.pop(0)

    clerk = backend(handler, clock=clock)
    auth = Auth.from_claims({"sub": "user_1", "sid": "sess_1", "exp": clock.now + 60}, token="t")
    errors: list[BaseException] = []

    async def request() -> None:
        try:
            async with Downstream().client(clerk.token_auth(auth, template="x")) as api:
                await api.get("/")
        except BackendNotFoundError as error:
            errors.append(error)

    async with anyio.create_task_group() as tasks:
        for _ in range(3):
            tasks.start_soon(request)
        await anyio.wait_all_tasks_blocked()
        gate.set()
    assert (calls, len(errors)) == (1, 3)
    downstream = Downstream()
    async with downstream.client(clerk.token_auth(auth, template="x")) as api:
        await api.get("/")
    assert downstream.authorizations == [f"Bearer {token}"]
    assert calls == 2


async def test_a_cancelled_mint_lets_a_waiter_mint(clock: FakeClock, key: KeyPair) -> None:
    """When the request minting is cancelled, one that waited for it mints instead."""
    token = key.sign({"alg": "RS256", "kid": key.kid, "typ": "JWT"}, {"exp": clock.now + 60})
    first_gate, calls = anyio.Event(), 0

    async def handler(request: httpx.Request) -> httpx.Response:
        nonlocal calls
        calls += 1
        if calls == 1:
            await first_gate.wait()  # never set: the first mint hangs until cancelled
        return ok({"object": "token", "jwt": token})

    clerk = backend(handler, clock=clock)
    auth = Auth.from_claims({"sub": "user_1", "sid": "sess_1"}, token="t")
    downstream = Downstream()
    async with anyio.create_task_group() as tasks:
        leader = anyio.CancelScope()

        async def lead() -> None:
            with leader:
                async with downstream.client(clerk.token_auth(auth, template="x")) as api:
                    await api.get("/")

        async def follow() -> None:
            async with downstream.client(clerk.token_auth(auth, template="x")) as api:
                await api.get("/")

        tasks.start_soon(lead)
        await anyio.wait_all_tasks_blocked()
        tasks.start_soon(follow)
        await anyio.wait_all_tasks_blocked()
        leader.cancel()
    assert calls == 2
    assert downstream.authorizations == [f"Bearer {token}"]


async def test_a_token_without_exp_is_not_cached(clock: FakeClock, key: KeyPair) -> None:
    """A token whose expiry cannot be read (none, or not a JWT) is used once and not kept."""
    no_exp = key.sign({"alg": "RS256", "kid": key.kid, "typ": "JWT"}, {"sub": "user_1"})
    bad_exp = key.sign({"alg": "RS256", "kid": key.kid, "typ": "JWT"}, {"exp": "tomorrow"})
    tokens = [no_exp, "not-a-jwt", bad_exp, no_exp]
    script = Script(*(ok({"object": "token", "jwt": t}) for t in tokens))
    clerk = backend(script, clock=clock)
    auth = Auth.from_claims({"sub": "user_1", "sid": "sess_1"}, token="t")
    downstream = Downstream()
    async with downstream.client(clerk.token_auth(auth, template="x")) as api:
        for _ in tokens:
            await api.get("/")
    assert downstream.authorizations == [f"Bearer {t}" for t in tokens]
    assert len(script.requests) == 4


async def test_the_cache_is_bounded(clock: FakeClock, key: KeyPair) -> None:
    """Past 1024 sessions, the least recently used token is dropped."""
    token = key.sign({"alg": "RS256", "kid": key.kid, "typ": "JWT"}, {"exp": clock.now + 3600})
    mints: list[str] = []

    def handler(request: httpx.Request) -> httpx.Response:
        mints.append(request.url.path.split("/")[3])
        return ok({"object": "token", "jwt": token})

    clerk = backend(handler, clock=clock)
    downstream = Downstream()

    async def call(session_id: str) -> None:
        auth = Auth.from_claims({"sub": "user_1", "sid": session_id}, token="t")
        async with downstream.client(clerk.token_auth(auth, template="x")) as api:
            await api.get("/")

    for i in range(CACHE_SIZE):
        await call(f"sess_{i}")
    await call("sess_0")  # used again: now the most recent
    await call("sess_new")  # one too many: sess_1, the least recently used, is dropped
    await call("sess_0")
    await call("sess_1")
    assert mints[CACHE_SIZE:] == ["sess_new", "sess_1"]


# -- end to end: a handler calling another API as its user --------------------------------------


async def test_a_handler_calls_another_api_as_its_user(fake: FakeClerk, clock: FakeClock) -> None:
    """Through ClerkMiddleware: the handler's outgoing call carries a template token of the
    request's session."""
    user_id = fake.add_user(email="ada@example.test")
    session_id = fake.sign_in(user_id).session_id
    clerk = on_fake(fake, clock=clock)
    downstream = Downstream()

    async def rows(request: Request) -> JSONResponse:
        auth = get_auth(request)
        async with downstream.client(clerk.token_auth(auth, template="supabase")) as api:
            answer = await api.get("/rows")
        return JSONResponse(answer.json())

    app = Starlette(routes=[Route("/api/rows", rows)])
    app.add_middleware(
        ClerkMiddleware,
        jwt_key=fake.key.public_pem,
        issuer=fake.issuer,
        authorized_parties=[ORIGIN],
        clock=clock,
        rules=[Rule.api("/api/:path*")],
    )
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app), base_url=ORIGIN) as c:
        token = fake.session_token(session_id)
        r = await c.get("/api/rows", headers={"authorization": f"Bearer {token}"})
        signed_out = await c.get("/api/rows")
    assert (r.status_code, r.json()) == (200, {"ok": True})
    payload = bearer_claims(fake, downstream.authorizations[0])
    assert (payload["sub"], payload["email"], payload["role"]) == (
        user_id,
        "ada@example.test",
        "authenticated",
    )
    assert signed_out.status_code == 401
    assert len(downstream.authorizations) == 1
