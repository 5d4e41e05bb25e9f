"""verified_webhook and verify_request in real apps: FastAPI and Starlette, behind
ClerkMiddleware (its 400 JSON, on_refusal) and without it; the bounded body read; feeding the
revocation list (memory and a real Redis); deduplication on svix-id; docs/webhooks.md's examples.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import Depends, FastAPI
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import Route

from clerk_asgi import ClerkMiddleware, Refusal, Rule
from clerk_asgi._revocation import (
    RedisRevocationList,
    RevocationList,
    RevocationListUnavailableError,
)
from clerk_asgi.exceptions import ConfigurationError, ServiceUnavailableError
from clerk_asgi.testing import FakeClock, MockClerk, sign_webhook
from clerk_asgi.webhooks import (
    WebhookEvent,
    WebhookVerificationError,
    verified_webhook,
    verify_request,
)

from ._redis_helpers import RedisServer
from .helpers import MESSAGES, NOW, ORIGIN, bearer

pytestmark = pytest.mark.anyio

#: The signing secret of every app here (and of the docs' examples when they run).
WEBHOOK_SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
RULES = [Rule.public("/api/webhooks(.*)"), Rule.api("/api/(.*)")]
URL = "/api/webhooks/clerk"
NO_MATCH = "No signature in the svix-signature header matches the signing secret."
NO_HEADERS = "Missing webhook headers: svix-id, svix-timestamp, svix-signature."
TIMESTAMP = "The webhook's timestamp is more than 300 seconds"
Webhook = Callable[[Request], Awaitable[WebhookEvent]]


def event_body(kind: str = "user.created", data: Any = None) -> bytes:
    """A Clerk event as Svix delivers it: compact JSON bytes."""
    document = {
        "type": kind,
        "object": "event",
        "data": {"id": "user_123"} if data is None else data,
        "timestamp": int(NOW * 1000),
        "instance_id": "ins_test",
    }
    return json.dumps(document, separators=(",", ":")).encode()


def signed(body: bytes, clock: FakeClock, msg_id: str = "msg_1") -> dict[str, str]:
    return sign_webhook(body, secret=WEBHOOK_SECRET, msg_id=msg_id, timestamp=clock.now)


def fastapi_app(
    webhook: Webhook, clerk: MockClerk | None, clock: FakeClock, **options: Any
) -> FastAPI:
    """A FastAPI app whose POST /api/webhooks/clerk echoes the event, behind ClerkMiddleware
    when ``clerk`` is given."""
    app = FastAPI()
    if clerk is not None:
        app.add_middleware(
            ClerkMiddleware, **clerk.middleware_options(rules=RULES, clock=clock, **options)
        )

    @app.post(URL)
    async def receive(event: WebhookEvent = Depends(webhook)) -> dict[str, Any]:
        return {"type": event["type"], "id": event.id, "duplicate": event.duplicate}

    return app


def starlette_app(
    receive: Callable[[Request], Awaitable[WebhookEvent]],
    clerk: MockClerk | None,
    clock: FakeClock,
    **options: Any,
) -> Starlette:
    """The same in Starlette: the endpoint awaits ``receive(request)``."""

    async def endpoint(request: Request) -> JSONResponse:
        event = await receive(request)
        return JSONResponse({"type": event["type"], "id": event.id, "duplicate": event.duplicate})

    middleware = []
    if clerk is not None:
        options = clerk.middleware_options(rules=RULES, clock=clock, **options)
        middleware.append(Middleware(ClerkMiddleware, **options))
    return Starlette(routes=[Route(URL, endpoint, methods=["POST"])], middleware=middleware)


async def post(app: Any, body: bytes, headers: dict[str, str], url: str = URL) -> httpx.Response:
    transport = httpx.ASGITransport(app)
    async with httpx.AsyncClient(transport=transport, base_url=ORIGIN) as c:
        return await c.post(url, content=body, headers=headers)


def assert_bad_request(r: httpx.Response, reason: str, message: str) -> None:
    """The middleware's 400: exactly this JSON body and these headers."""
    assert r.status_code == 400, r.text
    assert r.json() == {"error": "bad_request", "reason": reason, "message": message}
    assert dict(r.headers) == {
        "cache-control": "no-store",
        "x-clerk-auth-status": "signed-out",
        "x-clerk-auth-reason": reason,
        "content-type": "application/json",
        "content-length": str(len(r.content)),
    }


def accepted(msg_id: str = "msg_1", duplicate: bool = False) -> dict[str, Any]:
    return {"type": "user.created", "id": msg_id, "duplicate": duplicate}


# ----------------------------------------------------------------------------------------------
# Behind ClerkMiddleware: FastAPI and Starlette answer alike.


@pytest.mark.parametrize("framework", ["fastapi", "starlette"])
async def test_a_signed_webhook_reaches_the_handler(
    framework: str, clerk: MockClerk, clock: FakeClock
) -> None:
    """A signed delivery on the public webhook route runs the handler with the event."""
    webhook = verified_webhook(secret=WEBHOOK_SECRET, clock=clock)
    make = fastapi_app if framework == "fastapi" else starlette_app
    r = await post(make(webhook, clerk, clock), event_body(), signed(event_body(), clock))
    assert r.status_code == 200
    assert r.json() == accepted()


@pytest.mark.parametrize("framework", ["fastapi", "starlette"])
@pytest.mark.parametrize(
    ("change", "reason", "message"),
    [
        ("unsigned", "webhook-headers-missing", NO_HEADERS),
        ("forged", "webhook-signature-invalid", NO_MATCH),
        ("tampered", "webhook-signature-invalid", NO_MATCH),
        ("stale", "webhook-timestamp-too-old", f"{TIMESTAMP} old."),
        ("ahead", "webhook-timestamp-too-new", f"{TIMESTAMP} in the future."),
        ("not-json", "webhook-body-invalid", "The webhook body is not JSON."),
    ],
)  # fmt: skip
async def test_a_refused_webhook_gets_the_middlewares_400(
    framework: str, change: str, reason: str, message: str, clerk: MockClerk, clock: FakeClock
) -> None:
    """Each refusal is ClerkMiddleware's 400 JSON, in FastAPI (not its {"detail"}) and in
    Starlette alike; the handler never runs."""
    webhook = verified_webhook(secret=WEBHOOK_SECRET, clock=clock)
    body = b"<xml/>" if change == "not-json" else event_body()
    headers = signed(body, clock)
    if change == "unsigned":
        headers = {}
    elif change == "forged":
        headers = sign_webhook(body, secret="whsec_" + "A" * 32, msg_id="msg_1", timestamp=NOW)
    elif change == "tampered":
        body = body.replace(b"user_123", b"user_666")
    elif change in ("stale", "ahead"):
        clock.advance(301 if change == "stale" else -301)
    make = fastapi_app if framework == "fastapi" else starlette_app
    assert_bad_request(await post(make(webhook, clerk, clock), body, headers), reason, message)


async def test_a_middleware_wrapping_the_fastapi_app_answers_too(
    clerk: MockClerk, clock: FakeClock
) -> None:
    """ClerkMiddleware(app) around FastAPI (outside its error middleware): the same 400 JSON,
    not FastAPI's 500."""
    inner = fastapi_app(verified_webhook(secret=WEBHOOK_SECRET, clock=clock), None, clock)
    app = ClerkMiddleware(inner, **clerk.middleware_options(rules=RULES, clock=clock))
    body = event_body()
    r = await post(app, body, {**signed(body, clock), "svix-timestamp": "soon"})
    message = "The svix-timestamp header is not a Unix time in seconds."
    assert_bad_request(r, "webhook-timestamp-invalid", message)
    assert (await post(app, body, signed(body, clock))).json() == accepted()


async def test_the_on_refusal_hook_writes_webhook_refusals(
    clerk: MockClerk, clock: FakeClock
) -> None:
    """on_refusal sees the webhook's Refusal (status 400, its reason) and writes the answer."""
    seen: list[Refusal] = []

    def on_refusal(conn: Any, refusal: Refusal) -> Response:
        seen.append(refusal)
        return PlainTextResponse(f"refused: {refusal.reason}", status_code=refusal.status)

    webhook = verified_webhook(secret=WEBHOOK_SECRET, clock=clock)
    app = fastapi_app(webhook, clerk, clock, on_refusal=on_refusal)
    r = await post(app, event_body(), {})
    assert (r.status_code, r.text) == (400, "refused: webhook-headers-missing")
    assert [(x.status, x.reason, x.error) for x in seen] == [
        (400, "webhook-headers-missing", "bad_request")
    ]


async def test_verify_request_in_a_starlette_endpoint(clerk: MockClerk, clock: FakeClock) -> None:
    """verify_request(request, ...) is the one-call form, answered by the middleware too."""

    async def receive(request: Request) -> WebhookEvent:
        return await verify_request(request, secret=WEBHOOK_SECRET, clock=clock)

    app = starlette_app(receive, clerk, clock)
    r = await post(app, event_body(), signed(event_body(), clock))
    assert r.json() == accepted()
    r = await post(app, event_body(), {**signed(event_body(), clock), "svix-id": "msg_2"})
    assert_bad_request(r, "webhook-signature-invalid", NO_MATCH)


async def test_the_route_documents_no_parameter(clerk: MockClerk, clock: FakeClock) -> None:
    """FastAPI sees the request, not a query parameter: the route's OpenAPI has none."""
    app = fastapi_app(verified_webhook(secret=WEBHOOK_SECRET), clerk, clock)
    operation = app.openapi()["paths"][URL]["post"]
    assert "parameters" not in operation
    assert "requestBody" not in operation


# ----------------------------------------------------------------------------------------------
# Without ClerkMiddleware: a clear 400 all the same, never a 500.


async def test_without_the_middleware_fastapi_answers_its_detail_400(clock: FakeClock) -> None:
    """No ClerkMiddleware: the refusal is a Starlette HTTPException, FastAPI's {"detail"}."""
    app = fastapi_app(verified_webhook(secret=WEBHOOK_SECRET, clock=clock), None, clock)
    r = await post(app, event_body(), {})
    assert r.status_code == 400
    assert r.json() == {
        "detail": "Missing webhook headers: svix-id, svix-timestamp, svix-signature."
    }
    assert r.headers["cache-control"] == "no-store"
    r = await post(app, event_body(), signed(event_body(), clock))
    assert r.json() == accepted()


async def test_without_the_middleware_starlette_answers_the_message(clock: FakeClock) -> None:
    """No ClerkMiddleware in Starlette: 400 with the message as text."""
    app = starlette_app(verified_webhook(secret=WEBHOOK_SECRET, clock=clock), None, clock)
    r = await post(app, event_body(), {**signed(event_body(), clock), "svix-id": "msg_2"})
    assert (r.status_code, r.text) == (400, NO_MATCH)
    assert r.headers["content-type"] == "text/plain; charset=utf-8"
    assert r.headers["cache-control"] == "no-store"


async def test_without_the_middleware_a_handler_can_write_the_json(clock: FakeClock) -> None:
    """An exception handler for WebhookVerificationError gets it, and error.response() is
    the middleware's JSON."""
    app = fastapi_app(verified_webhook(secret=WEBHOOK_SECRET, clock=clock), None, clock)
    caught: list[WebhookVerificationError] = []

    async def refused(request: Request, error: Exception) -> Response:
        assert isinstance(error, WebhookVerificationError)
        caught.append(error)
        return error.response()

    app.add_exception_handler(WebhookVerificationError, refused)
    r = await post(app, b"", signed(b"", clock))
    assert_bad_request(r, "webhook-body-invalid", "The webhook body is empty.")
    assert [error.reason for error in caught] == ["webhook-body-invalid"]


# ----------------------------------------------------------------------------------------------
# The body: read in a streaming way, never past max_body.


def raw_request(headers: dict[str, str]) -> dict[str, Any]:
    return {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "POST",
        "scheme": "https",
        "server": ("app.example.com", 443),
        "path": URL,
        "raw_path": URL.encode(),
        "root_path": "",
        "query_string": b"",
        "headers": [(n.lower().encode(), v.encode()) for n, v in headers.items()],
    }


async def call(app: Any, headers: dict[str, str], chunks: list[bytes]) -> tuple[int, Any, int]:
    """(status, JSON body, how many body messages the app read) of one raw ASGI request."""
    pending = list(chunks)
    reads = 0
    sent: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        nonlocal reads
        if not pending:
            return {"type": "http.disconnect"}
        reads += 1
        chunk = pending.pop(0)
        return {"type": "http.request", "body": chunk, "more_body": bool(pending)}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    await app(raw_request(headers), receive, send)
    body = b"".join(m.get("body", b"") for m in sent if m["type"] == "http.response.body")
    return sent[0]["status"], json.loads(body), reads


@pytest.mark.parametrize("framework", ["fastapi", "starlette"])
async def test_a_body_past_max_body_is_refused_before_it_is_all_read(
    framework: str, clerk: MockClerk, clock: FakeClock
) -> None:
    """A streamed body (no Content-Length) is refused at the chunk that passes max_body: the
    rest is never read."""
    webhook = verified_webhook(secret=WEBHOOK_SECRET, max_body=100, clock=clock)
    make = fastapi_app if framework == "fastapi" else starlette_app
    status, body, reads = await call(
        make(webhook, clerk, clock), signed(b"", clock), [b"x" * 40] * 1000
    )
    assert (status, reads) == (400, 3)
    assert body == {
        "error": "bad_request",
        "reason": "webhook-body-too-large",
        "message": "The webhook body is larger than 100 bytes.",
    }


async def test_a_declared_length_past_max_body_is_refused_unread(
    clerk: MockClerk, clock: FakeClock
) -> None:
    """A Content-Length past max_body (even an absurd one) is refused before any read."""
    webhook = verified_webhook(secret=WEBHOOK_SECRET, max_body=100, clock=clock)
    app = fastapi_app(webhook, clerk, clock)
    for length in ("101", "9" * 40):
        headers = {**signed(b"", clock), "content-length": length}
        status, body, reads = await call(app, headers, [b"x" * 101])
        assert (status, body["reason"], reads) == (400, "webhook-body-too-large", 0)


async def test_a_body_of_exactly_max_body_is_read(clerk: MockClerk, clock: FakeClock) -> None:
    """max_body bytes, in several chunks, are read whole and verified."""
    body = event_body()
    webhook = verified_webhook(secret=WEBHOOK_SECRET, max_body=len(body), clock=clock)
    chunks = [body[i : i + 7] for i in range(0, len(body), 7)]
    status, answer, _ = await call(fastapi_app(webhook, clerk, clock), signed(body, clock), chunks)
    assert (status, answer) == (200, accepted())


# ----------------------------------------------------------------------------------------------
# Feeding the revocation list.


@pytest.mark.parametrize("kind", ["session.revoked", "session.ended", "session.removed"])
async def test_a_session_end_event_lists_the_session_and_its_tokens_are_refused(
    kind: str, clerk: MockClerk, clock: FakeClock
) -> None:
    """session.revoked/ended/removed put data.id on the list the middleware checks: that
    session's still-valid token is refused at once (session-revoked), others are not."""
    listed = RevocationList(clock=clock)
    webhook = verified_webhook(secret=WEBHOOK_SECRET, revocation_list=listed, clock=clock)
    app = fastapi_app(webhook, clerk, clock, revocation_list=listed)

    @app.get("/api/me")
    async def me() -> dict[str, str]:
        return {"ok": "yes"}

    token = clerk.token(issued_at=clock.now, session_id="sess_1")
    other = clerk.token(issued_at=clock.now, session_id="sess_2")
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app), base_url=ORIGIN) as c:
        assert (await c.get("/api/me", headers=bearer(token))).status_code == 200
        body = event_body(kind, {"id": "sess_1", "object": "session", "user_id": "user_test"})
        r = await c.post(URL, content=body, headers=signed(body, clock))
        assert r.json() == {"type": kind, "id": "msg_1", "duplicate": False}
        r = await c.get("/api/me", headers=bearer(token))
        assert r.status_code == 401
        assert r.json() == {
            "error": "unauthorized",
            "reason": "session-revoked",
            "message": MESSAGES["session-revoked"],
        }
        assert (await c.get("/api/me", headers=bearer(other))).status_code == 200
    assert await listed.is_revoked("sess_1")


@pytest.mark.parametrize("kind", ["user.created", "session.created", "user.deleted"])
async def test_other_events_list_nothing(kind: str, clock: FakeClock) -> None:
    """Events that do not end a session leave the list alone, whatever their data.id."""
    listed = Recorder()
    webhook = verified_webhook(secret=WEBHOOK_SECRET, revocation_list=listed, clock=clock)
    body = event_body(kind, {"id": "sess_1"})
    r = await post(fastapi_app(webhook, None, clock), body, signed(body, clock))
    assert r.status_code == 200
    assert listed.calls == []


@pytest.mark.parametrize(
    "data",
    [None, "sess_1", {"object": "session"}, {"id": ""}, {"id": 42}],
    ids=["none", "string", "no-id", "empty-id", "number-id"],
)
async def test_a_session_end_event_without_a_session_id_is_refused(
    data: Any, clerk: MockClerk, clock: FakeClock
) -> None:
    """A signed session.ended whose data.id is not a session id is refused (400), not a 500."""
    listed = Recorder()
    webhook = verified_webhook(secret=WEBHOOK_SECRET, revocation_list=listed, clock=clock)
    document = {"type": "session.ended", "object": "event"}
    if data is not None:
        document["data"] = data
    body = json.dumps(document).encode()
    r = await post(fastapi_app(webhook, clerk, clock), body, signed(body, clock))
    message = "The session.ended event has no data.id (the session id)."
    assert_bad_request(r, "webhook-body-invalid", message)
    assert listed.calls == []


async def test_an_event_type_that_is_not_a_string_lists_nothing(clock: FakeClock) -> None:
    """A type of another JSON kind (a list) is just not a session event."""
    listed = Recorder()
    webhook = verified_webhook(secret=WEBHOOK_SECRET, revocation_list=listed, clock=clock)
    app = starlette_app(webhook, None, clock)
    body = json.dumps({"type": ["session.ended"], "data": {"id": "sess_1"}}).encode()
    r = await post(app, body, signed(body, clock))
    assert r.json() == {"type": ["session.ended"], "id": "msg_1", "duplicate": False}
    assert listed.calls == []


class Recorder:
    """A revocation list and dedupe store that records calls, and fails while told to."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, str]] = []
        self.seen: set[str] = set()
        self.failing: Exception | None = None

    async def revoke(self, session_id: str) -> None:
        self.calls.append(("revoke", session_id))
        if self.failing is not None:
            raise self.failing

    async def remember(self, key: str, ttl: float) -> bool:
        self.calls.append(("remember", key))
        first = key not in self.seen
        self.seen.add(key)
        return first


async def test_a_list_that_cannot_be_fed_answers_503_and_the_retry_feeds_it(
    clerk: MockClerk, clock: FakeClock
) -> None:
    """The list down: 503 with Retry-After (Svix retries), the id not remembered; the retry
    feeds the list and is not flagged as a duplicate."""
    store = Recorder()
    webhook = verified_webhook(
        secret=WEBHOOK_SECRET, revocation_list=store, dedupe=True, clock=clock
    )
    app = fastapi_app(webhook, clerk, clock)
    body = event_body("session.revoked", {"id": "sess_1"})
    store.failing = RevocationListUnavailableError()
    r = await post(app, body, signed(body, clock))
    assert r.status_code == 503
    assert r.json() == {
        "error": "service_unavailable",
        "reason": "revocation-list-unavailable",
        "message": MESSAGES["revocation-list-unavailable"],
    }
    assert r.headers["retry-after"] == "5"
    store.failing = None
    clock.advance(5)
    r = await post(app, body, signed(body, clock))
    assert r.json() == {"type": "session.revoked", "id": "msg_1", "duplicate": False}
    assert store.calls == [
        ("revoke", "sess_1"),
        ("revoke", "sess_1"),
        ("remember", "webhook:msg_1"),
    ]


async def test_without_the_middleware_a_list_that_cannot_be_fed_is_a_503(
    clock: FakeClock,
) -> None:
    """No ClerkMiddleware: the store's 503 is an HTTPException, with its Retry-After if any."""
    store = Recorder()
    store.failing = RevocationListUnavailableError()
    webhook = verified_webhook(secret=WEBHOOK_SECRET, revocation_list=store, clock=clock)
    app = fastapi_app(webhook, None, clock)
    body = event_body("session.ended", {"id": "sess_1"})
    r = await post(app, body, signed(body, clock))
    assert r.status_code == 503
    assert r.json() == {"detail": MESSAGES["revocation-list-unavailable"]}
    assert (r.headers["retry-after"], r.headers["cache-control"]) == ("5", "no-store")
    store.failing = ServiceUnavailableError("revocation-list-unavailable", "Down.")
    r = await post(app, body, signed(body, clock))
    assert (r.status_code, r.json()) == (503, {"detail": "Down."})
    assert "retry-after" not in r.headers


# ----------------------------------------------------------------------------------------------
# Deduplication on svix-id.


async def test_a_second_delivery_of_an_id_is_flagged_a_duplicate(
    clerk: MockClerk, clock: FakeClock
) -> None:
    """A retry (same svix-id, signed again later) verifies and is flagged; a new id is not."""
    listed = RevocationList(clock=clock)
    webhook = verified_webhook(
        secret=WEBHOOK_SECRET, revocation_list=listed, dedupe=True, clock=clock
    )
    app = fastapi_app(webhook, clerk, clock)
    body = event_body()
    assert (await post(app, body, signed(body, clock))).json() == accepted()
    clock.advance(5)
    assert (await post(app, body, signed(body, clock))).json() == accepted(duplicate=True)
    assert (await post(app, body, signed(body, clock, "msg_2"))).json() == accepted("msg_2")


async def test_a_forged_delivery_never_marks_an_id(clerk: MockClerk, clock: FakeClock) -> None:
    """Ids are remembered only once verified: a forgery with a real id changes nothing."""
    store = Recorder()
    webhook = verified_webhook(secret=WEBHOOK_SECRET, dedupe=store, clock=clock)
    app = fastapi_app(webhook, clerk, clock)
    body = event_body()
    forged = {**signed(body, clock), "svix-signature": "v1," + "A" * 43 + "="}
    assert_bad_request(await post(app, body, forged), "webhook-signature-invalid", NO_MATCH)
    assert store.calls == []
    assert (await post(app, body, signed(body, clock))).json() == accepted()


async def test_a_duplicate_session_end_feeds_the_list_again(clock: FakeClock) -> None:
    """A duplicate session.revoked is revoked again (harmless: the session is over) and
    flagged; the list is fed before the id is remembered."""
    store = Recorder()
    webhook = verified_webhook(
        secret=WEBHOOK_SECRET, revocation_list=store, dedupe=store, clock=clock
    )
    app = starlette_app(webhook, None, clock)
    body = event_body("session.revoked", {"id": "sess_1"})
    first = await post(app, body, signed(body, clock))
    again = await post(app, body, signed(body, clock))
    assert [first.json()["duplicate"], again.json()["duplicate"]] == [False, True]
    assert store.calls == [("revoke", "sess_1"), ("remember", "webhook:msg_1")] * 2


async def test_ids_are_forgotten_after_dedupe_ttl(clock: FakeClock) -> None:
    """After dedupe_ttl seconds an id is new again."""
    memory = RevocationList(clock=clock)
    webhook = verified_webhook(secret=WEBHOOK_SECRET, dedupe=memory, dedupe_ttl=600, clock=clock)
    app = fastapi_app(webhook, None, clock)
    body = event_body()
    assert (await post(app, body, signed(body, clock))).json()["duplicate"] is False
    clock.advance(599)
    assert (await post(app, body, signed(body, clock))).json()["duplicate"] is True
    clock.advance(2)
    assert (await post(app, body, signed(body, clock))).json()["duplicate"] is False


async def test_redis_feeds_and_dedupes_across_processes(
    redis_url: str, clerk: MockClerk, clock: FakeClock
) -> None:
    """With Redis, two apps (two processes' worth) share the list and the seen ids."""
    first_list = RedisRevocationList(redis_url)
    second_list = RedisRevocationList(redis_url)
    try:
        apps = [
            fastapi_app(
                verified_webhook(
                    secret=WEBHOOK_SECRET, revocation_list=listed, dedupe=True, clock=clock
                ),
                clerk,
                clock,
                revocation_list=listed,
            )
            for listed in (first_list, second_list)
        ]
        body = event_body("session.ended", {"id": "sess_9"})
        r = await post(apps[0], body, signed(body, clock))
        assert r.json() == {"type": "session.ended", "id": "msg_1", "duplicate": False}
        r = await post(apps[1], body, signed(body, clock))
        assert r.json() == {"type": "session.ended", "id": "msg_1", "duplicate": True}
        assert await second_list.is_revoked("sess_9")
    finally:
        await first_list.aclose()
        await second_list.aclose()


async def test_redis_down_answers_503_and_the_retry_succeeds(
    redis_server: RedisServer, clerk: MockClerk, clock: FakeClock
) -> None:
    """Redis unreachable while feeding the list: 503 revocation-list-unavailable; once it is
    back, the retry is accepted and listed."""
    listed = RedisRevocationList(redis_server.url, timeout=0.2)
    try:
        webhook = verified_webhook(
            secret=WEBHOOK_SECRET, revocation_list=listed, dedupe=True, clock=clock
        )
        app = fastapi_app(webhook, clerk, clock)
        body = event_body("session.removed", {"id": "sess_3"})
        redis_server.stop()
        r = await post(app, body, signed(body, clock))
        assert (r.status_code, r.json()["reason"]) == (503, "revocation-list-unavailable")
        redis_server.start()
        r = await post(app, body, signed(body, clock))
        assert r.json() == {"type": "session.removed", "id": "msg_1", "duplicate": False}
        assert await listed.is_revoked("sess_3")
    finally:
        await listed.aclose()


# ----------------------------------------------------------------------------------------------
# Configuration, checked when the dependency is built.


def test_no_secret_fails_when_the_dependency_is_built() -> None:
    """verified_webhook() without a secret raises at import time, not on the first webhook."""
    with pytest.raises(ConfigurationError, match="CLERK_WEBHOOK_SIGNING_SECRET"):
        verified_webhook()


def test_the_secret_is_read_from_the_environment_once(monkeypatch: pytest.MonkeyPatch) -> None:
    """With CLERK_WEBHOOK_SIGNING_SECRET set, verified_webhook() needs no argument."""
    monkeypatch.setenv("CLERK_WEBHOOK_SIGNING_SECRET", WEBHOOK_SECRET)
    assert callable(verified_webhook())


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"dedupe": True}, "dedupe=True remembers ids in the revocation list, and there is none"),
        ({"dedupe": object()}, "dedupe must have an async remember"),
        ({"revocation_list": object()}, "revocation_list must have an async revoke"),
        ({"max_body": 0}, "max_body must be a positive number of bytes, got 0"),
        ({"max_body": True}, "max_body must be a positive number of bytes, got True"),
        ({"max_body": 1.5}, "max_body must be a positive number of bytes, got 1.5"),
        ({"dedupe_ttl": 0}, "dedupe_ttl must be a positive number of seconds, got 0"),
        ({"dedupe_ttl": float("nan")}, "dedupe_ttl must be a positive number of seconds"),
        ({"dedupe_ttl": "1d"}, "dedupe_ttl must be a positive number of seconds, got '1d'"),
        ({"dedupe_ttl": 599}, r"dedupe_ttl \(599\) must be at least twice the tolerance \(300 s\)"),
        ({"tolerance": -5}, "tolerance must be a number of seconds, 0 or more, got -5"),
    ],
)
def test_configuration_mistakes_are_refused(options: dict[str, Any], message: str) -> None:
    """Each argument that cannot work is a ConfigurationError saying how to fix it."""
    with pytest.raises(ConfigurationError, match=message):
        verified_webhook(secret=WEBHOOK_SECRET, **options)


def test_dedupe_false_and_none_are_off() -> None:
    """dedupe=False or None: no store needed."""
    for dedupe in (False, None):
        assert callable(verified_webhook(secret=WEBHOOK_SECRET, dedupe=dedupe))


async def test_verify_request_checks_its_configuration(clock: FakeClock) -> None:
    """verify_request raises the same ConfigurationError, on the call."""
    request = Request(raw_request({}))
    with pytest.raises(ConfigurationError, match="dedupe=True"):
        await verify_request(request, secret=WEBHOOK_SECRET, dedupe=True)


# ----------------------------------------------------------------------------------------------
# docs/webhooks.md: its complete examples run and behave as the page says. The checks are
# also registered with tests/test_docs.py's runner (EXEC_CHECKS).

DOCS = Path(__file__).resolve().parent.parent / "docs" / "webhooks.md"


async def check_webhooks_app(ns: dict[str, Any], clerk: MockClerk) -> None:
    """The FastAPI and Starlette examples: a signed user.created is received; an unsigned
    post gets the 400 JSON; a session.revoked webhook signs that session out at once."""
    app = ns["app"]
    user = b'{"type":"user.created","object":"event","data":{"id":"user_1"}}'
    ended = b'{"type":"session.revoked","object":"event","data":{"id":"sess_docs"}}'
    token = clerk.token(user_id="user_1", session_id="sess_docs")
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app), base_url=ORIGIN) as c:
        r = await c.post(URL, content=user, headers=sign_webhook(user, secret=WEBHOOK_SECRET))
        assert (r.status_code, r.json()) == (200, {"received": "user.created"})
        r = await c.post(URL, content=user)
        assert_bad_request(
            r,
            "webhook-headers-missing",
            "Missing webhook headers: svix-id, svix-timestamp, svix-signature.",
        )
        assert (await c.get("/api/me", headers=bearer(token))).status_code == 200
        r = await c.post(URL, content=ended, headers=sign_webhook(ended, secret=WEBHOOK_SECRET))
        assert r.status_code == 200
        r = await c.get("/api/me", headers=bearer(token))
        assert (r.status_code, r.json()["reason"]) == (401, "session-revoked")
