"""FakeClerk's webhooks: Clerk's ``session.*`` events, signed as Svix signs them, delivered once
before the request that caused them is answered; a failing endpoint is logged, never raised.
Also the device (``latest_activity``) a session records at sign-in."""

from __future__ import annotations

import base64
import json
import logging
import re
import socket
from datetime import UTC, datetime
from typing import Any

import pytest
from standardwebhooks import Webhook
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import Route

from clerk_asgi.testing import FakeClerk, FakeClock, KeyPair
from clerk_asgi.testing._fakeclerk import FakeWebhook
from clerk_asgi.testing._fakeclerk_fapi import session_activity
from clerk_asgi.webhooks import verify_webhook

from ._fakeclerk_helpers import CHROME_MAC, ORIGIN, SAFARI_IPHONE, bapi, browser, sign_in
from .conftest import NOW

pytestmark = pytest.mark.anyio

HOOK_PATH = "/api/webhooks/clerk"
SVIX_ID = re.compile(r"msg_[A-Za-z0-9]{27}")


class Endpoint:
    """A webhook endpoint as an ASGI app: records each request, answers ``status``."""

    def __init__(self, status: int = 200) -> None:
        self.status = status
        self.received: list[tuple[str, bytes, dict[str, str]]] = []
        self.app = Starlette(routes=[Route("/{path:path}", self.receive, methods=["POST"])])

    async def receive(self, request: Request) -> Response:
        self.received.append((str(request.url), await request.body(), dict(request.headers)))
        return PlainTextResponse("ok", status_code=self.status)

    @property
    def events(self) -> list[dict[str, Any]]:
        return [json.loads(body) for _, body, _ in self.received]


class Exploding:
    """An endpoint whose handler raises (an app bug on the receiving side)."""

    def __init__(self) -> None:
        self.app = Starlette(routes=[Route(HOOK_PATH, self.boom, methods=["POST"])])

    async def boom(self, request: Request) -> Response:
        raise RuntimeError("the receiver broke")


@pytest.fixture
def endpoint() -> Endpoint:
    return Endpoint()


@pytest.fixture
def fake(key: KeyPair, clock: FakeClock, endpoint: Endpoint) -> FakeClerk:
    """A FakeClerk posting its webhooks to ``endpoint`` in process."""
    return FakeClerk(
        key=key, clock=clock, origin=ORIGIN, webhook_url=HOOK_PATH, webhook_app=endpoint.app
    )


def expected_event(fake: FakeClerk, kind: str, session_id: str) -> dict[str, Any]:
    """Clerk's event for the session as FakeClerk holds it now."""
    return {
        "data": fake.sessions[session_id].to_json(),
        "object": "event",
        "type": kind,
        "timestamp": int(NOW * 1000),
        "instance_id": fake.instance_id,
    }


# --------------------------------------------------------------------------------------------
# Events and their delivery
# --------------------------------------------------------------------------------------------


async def test_a_sign_in_sends_session_created_before_it_is_answered(
    fake: FakeClerk, endpoint: Endpoint
) -> None:
    """Signing in through the Frontend API: session.created is received before the answer."""
    fake.add_user(email="ada@example.test")
    async with browser(fake) as c:
        r = await sign_in(c, "ada@example.test")
    session_id = r.json()["response"]["created_session_id"]
    assert endpoint.events == [expected_event(fake, "session.created", session_id)]
    url, body, headers = endpoint.received[0]
    assert url == "http://localhost" + HOOK_PATH
    assert headers["content-type"] == "application/json"
    assert body == json.dumps(endpoint.events[0], separators=(",", ":")).encode()
    (sent,) = fake.webhooks
    assert (sent.type, sent.status, sent.error, sent.delivered) == (
        "session.created",
        200,
        None,
        True,
    )
    assert (sent.body, dict(sent.event)) == (body, endpoint.events[0])


async def test_the_headers_are_svix_headers_on_the_fake_clock(
    fake: FakeClerk, endpoint: Endpoint
) -> None:
    """svix-id is a msg_ id, svix-timestamp the fake's time, svix-signature one v1 signature."""
    fake.sign_in(fake.add_user())
    await fake.deliver_webhooks()
    headers = endpoint.received[0][2]
    assert SVIX_ID.fullmatch(headers["svix-id"])
    assert headers["svix-timestamp"] == str(int(NOW))
    assert re.fullmatch(r"v1,[A-Za-z0-9+/]{43}=", headers["svix-signature"])
    assert dict(fake.webhooks[0].headers) == {
        name: headers[name] for name in ("svix-id", "svix-timestamp", "svix-signature")
    }


async def test_the_signature_is_the_standard_webhooks_one(
    fake: FakeClerk, endpoint: Endpoint
) -> None:
    """The standardwebhooks library computes the same signature over the body received."""
    fake.sign_in(fake.add_user())
    await fake.deliver_webhooks()
    _, body, headers = endpoint.received[0]
    oracle = Webhook(fake.webhook_secret).sign(
        headers["svix-id"], datetime.fromtimestamp(NOW, UTC), body.decode()
    )
    assert headers["svix-signature"] == oracle


async def test_the_signature_verifies_with_verify_webhook(key: KeyPair) -> None:
    """On real time, clerk_asgi.webhooks.verify_webhook accepts the event as sent."""
    endpoint = Endpoint()
    fake = FakeClerk(key=key, webhook_url=HOOK_PATH, webhook_app=endpoint.app)
    session_id = fake.sign_in(fake.add_user()).session_id
    await fake.deliver_webhooks()
    _, body, headers = endpoint.received[0]
    event = verify_webhook(body, headers, secret=fake.webhook_secret)
    assert event["type"] == "session.created"
    assert event["data"]["id"] == session_id


async def test_sign_out_through_the_frontend_api_sends_session_ended(
    fake: FakeClerk, endpoint: Endpoint
) -> None:
    """DELETE /v1/client ends every session of the browser: one session.ended each."""
    fake.add_user("user_a")
    async with browser(fake) as c:
        first = (await sign_in(c, "user_a")).json()["response"]["created_session_id"]
        second = (await sign_in(c, "user_a")).json()["response"]["created_session_id"]
        r = await c.delete("/v1/client")
    assert r.status_code == 200
    assert [(e["type"], e["data"]["id"]) for e in endpoint.events] == [
        ("session.created", first),
        ("session.created", second),
        ("session.ended", first),
        ("session.ended", second),
    ]
    assert endpoint.events[2] == expected_event(fake, "session.ended", first)
    assert endpoint.events[2]["data"]["status"] == "ended"


@pytest.mark.parametrize(
    ("method", "path", "kind"),
    [
        ("POST", "/v1/client/sessions/{sid}/end", "session.ended"),
        ("DELETE", "/v1/client/sessions/{sid}", "session.ended"),
        ("POST", "/v1/client/sessions/{sid}/remove", "session.removed"),
    ],
)
async def test_ending_one_session_sends_its_event(
    fake: FakeClerk, endpoint: Endpoint, method: str, path: str, kind: str
) -> None:
    """Ending or removing one session through the Frontend API sends session.ended/removed."""
    fake.add_user("user_a")
    async with browser(fake) as c:
        sid = (await sign_in(c, "user_a")).json()["response"]["created_session_id"]
        r = await c.request(method, path.format(sid=sid))
    assert r.status_code == 200
    assert endpoint.events[1:] == [expected_event(fake, kind, sid)]
    assert endpoint.events[1]["data"]["status"] == kind.removeprefix("session.")


async def test_a_backend_api_revocation_sends_session_revoked(
    fake: FakeClerk, endpoint: Endpoint
) -> None:
    """POST /v1/sessions/{id}/revoke: session.revoked is received before the Session answers."""
    sid = fake.sign_in(fake.add_user()).session_id
    async with browser(fake) as c:
        r = await c.post(f"/v1/sessions/{sid}/revoke", headers=bapi(fake))
    assert r.status_code == 200
    assert r.json()["status"] == "revoked"
    assert [e["type"] for e in endpoint.events] == ["session.created", "session.revoked"]
    assert endpoint.events[1] == expected_event(fake, "session.revoked", sid)


async def test_a_session_that_already_ended_sends_nothing_more(
    fake: FakeClerk, endpoint: Endpoint
) -> None:
    """Revoking an ended session (or ending it twice) changes nothing and sends nothing."""
    sid = fake.sign_in(fake.add_user()).session_id
    fake.sign_out(sid)
    fake.revoke(sid)
    fake.sign_out(sid)
    sent = await fake.deliver_webhooks()
    assert [w.type for w in sent] == ["session.created", "session.ended"]


async def test_events_of_the_python_api_wait_for_deliver_webhooks(
    fake: FakeClerk, endpoint: Endpoint, clock: FakeClock
) -> None:
    """sign_in/sign_out/revoke queue their events; deliver_webhooks() sends them, in order."""
    user = fake.add_user()
    first = fake.sign_in(user).session_id
    clock.advance(5)
    second = fake.sign_in(user).session_id
    fake.revoke(first)
    fake.sign_out(second)
    assert endpoint.received == []
    sent = await fake.deliver_webhooks()
    assert [(w.type, w.event["data"]["id"]) for w in sent] == [
        ("session.created", first),
        ("session.created", second),
        ("session.revoked", first),
        ("session.ended", second),
    ]
    assert [e["timestamp"] for e in endpoint.events] == [int(NOW * 1000)] + [
        int((NOW + 5) * 1000)
    ] * 3
    assert fake.webhooks == sent
    assert await fake.deliver_webhooks() == []
    assert len(endpoint.received) == 4


async def test_queued_events_go_out_with_the_next_request(
    fake: FakeClerk, endpoint: Endpoint
) -> None:
    """An event queued by the Python API is delivered when FakeClerk next answers anything."""
    sid = fake.sign_in(fake.add_user()).session_id
    async with browser(fake) as c:
        r = await c.get("/.well-known/jwks.json")
    assert r.status_code == 200
    assert endpoint.events == [expected_event(fake, "session.created", sid)]


async def test_without_a_webhook_url_nothing_is_queued(key: KeyPair) -> None:
    """No webhook_url: sessions start and end, and no event is kept or sent."""
    fake = FakeClerk(key=key)
    fake.revoke(fake.sign_in(fake.add_user()).session_id)
    assert fake.webhook_url is None
    assert await fake.deliver_webhooks() == []
    assert fake.webhooks == []


async def test_a_full_url_reaches_the_in_process_app_with_its_host(
    key: KeyPair, endpoint: Endpoint
) -> None:
    """webhook_app with an absolute URL: requested as that URL (its host), in process."""
    fake = FakeClerk(
        key=key, webhook_url="https://app.example.test/hooks?x=1", webhook_app=endpoint.app
    )
    fake.sign_in(fake.add_user())
    await fake.deliver_webhooks()
    url, _, headers = endpoint.received[0]
    assert (url, headers["host"]) == ("https://app.example.test/hooks?x=1", "app.example.test")


# --------------------------------------------------------------------------------------------
# A failing endpoint never breaks FakeClerk
# --------------------------------------------------------------------------------------------


async def test_an_endpoint_answering_an_error_is_logged_and_recorded(
    key: KeyPair, caplog: pytest.LogCaptureFixture
) -> None:
    """A 500 from the endpoint: the sign-in still succeeds; one attempt, logged, recorded."""
    endpoint = Endpoint(status=500)
    fake = FakeClerk(key=key, webhook_url=HOOK_PATH, webhook_app=endpoint.app)
    fake.add_user("user_a")
    with caplog.at_level(logging.WARNING, "clerk_asgi.testing._fakeclerk"):
        async with browser(fake) as c:
            r = await sign_in(c, "user_a")
    assert r.status_code == 200
    assert len(endpoint.received) == 1
    (sent,) = fake.webhooks
    assert (sent.status, sent.error, sent.delivered) == (500, None, False)
    (record,) = caplog.records
    assert record.getMessage() == (
        f"FakeClerk's webhook {sent.headers['svix-id']} (session.created) to "
        f"http://localhost{HOOK_PATH} was answered 500."
    )


async def test_an_endpoint_that_raises_is_a_500(key: KeyPair) -> None:
    """The receiving app raises: recorded as its 500, nothing raised into the caller."""
    fake = FakeClerk(key=key, webhook_url=HOOK_PATH, webhook_app=Exploding().app)
    fake.sign_in(fake.add_user())
    (sent,) = await fake.deliver_webhooks()
    assert (sent.status, sent.delivered) == (500, False)


async def test_an_unreachable_endpoint_is_logged_and_recorded(
    key: KeyPair, caplog: pytest.LogCaptureFixture
) -> None:
    """Nothing listens at webhook_url: the revocation still answers 200; the error is recorded."""
    with socket.socket() as closed:  # bound, never listening: connections are refused
        closed.bind(("127.0.0.1", 0))
        url = f"http://127.0.0.1:{closed.getsockname()[1]}/hooks"
        fake = FakeClerk(key=key, webhook_url=url)
        sid = fake.sign_in(fake.add_user()).session_id
        with caplog.at_level(logging.WARNING, "clerk_asgi.testing._fakeclerk"):
            async with browser(fake) as c:
                r = await c.post(f"/v1/sessions/{sid}/revoke", headers=bapi(fake))
    assert r.status_code == 200
    assert [(w.type, w.status, w.delivered) for w in fake.webhooks] == [
        ("session.created", None, False),
        ("session.revoked", None, False),
    ]
    error = fake.webhooks[0].error
    assert error is not None
    assert error.startswith("ConnectError")
    assert [r.getMessage() for r in caplog.records] == [
        f"FakeClerk could not send webhook {w.headers['svix-id']} ({w.type}) to {url}: {w.error}"
        for w in fake.webhooks
    ]


async def test_a_path_without_an_app_is_recorded_as_an_error(key: KeyPair) -> None:
    """webhook_app removed after construction, a path left: an error recorded, not raised."""
    fake = FakeClerk(key=key, webhook_url=HOOK_PATH, webhook_app=Endpoint().app)
    fake.webhook_app = None
    fake.sign_in(fake.add_user())
    (sent,) = await fake.deliver_webhooks()
    assert sent.status is None
    assert sent.error is not None
    assert sent.error.startswith("UnsupportedProtocol")


# --------------------------------------------------------------------------------------------
# Configuration
# --------------------------------------------------------------------------------------------


async def test_the_default_secret_is_a_fresh_whsec_secret(key: KeyPair) -> None:
    """Without webhook_secret: whsec_ and base64 of 24 random bytes, new for each fake."""
    first, second = FakeClerk(key=key), FakeClerk(key=key)
    assert first.webhook_secret != second.webhook_secret
    encoded = first.webhook_secret.removeprefix("whsec_")
    assert first.webhook_secret.startswith("whsec_")
    assert len(base64.b64decode(encoded, validate=True)) == 24


async def test_a_given_secret_signs(key: KeyPair, endpoint: Endpoint) -> None:
    """webhook_secret= (unpadded base64 too) is what the signature is computed with."""
    secret = "whsec_" + base64.b64encode(b"a fixed secret!!").decode().rstrip("=")
    fake = FakeClerk(
        key=key, webhook_url=HOOK_PATH, webhook_app=endpoint.app, webhook_secret=secret
    )
    fake.sign_in(fake.add_user())
    (sent,) = await fake.deliver_webhooks()
    assert fake.webhook_secret == secret
    timestamp = datetime.fromtimestamp(int(sent.headers["svix-timestamp"]), UTC)
    signature = Webhook(secret).sign(sent.headers["svix-id"], timestamp, sent.body.decode())
    assert sent.headers["svix-signature"] == signature


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"webhook_url": "ftp://hooks.example.test/"}, "webhook_url must be an http(s) URL"),
        ({"webhook_url": "hooks.example.test"}, "webhook_url must be an http(s) URL"),
        ({"webhook_url": "/hooks"}, "webhook_url must be an http(s) URL"),
        ({"webhook_url": "https:///hooks"}, "webhook_url must be an http(s) URL"),
        ({"webhook_url": "//evil.test/hooks", "webhook_app": Endpoint().app}, "webhook_url must"),
        ({"webhook_app": Endpoint().app}, "webhook_app needs webhook_url"),
        ({"webhook_secret": "c2VjcmV0"}, "webhook_secret must be 'whsec_' and base64"),
        ({"webhook_secret": "whsec_"}, "webhook_secret must be 'whsec_' and base64"),
        ({"webhook_secret": "whsec_not base64!"}, "webhook_secret must be 'whsec_' and base64"),
    ],
)
async def test_bad_webhook_settings_are_refused(
    key: KeyPair, options: dict[str, Any], message: str
) -> None:
    """A webhook_url or webhook_secret that cannot work is a ValueError saying what to pass."""
    with pytest.raises(ValueError, match=re.escape(message)):
        FakeClerk(key=key, **options)


async def test_a_webhook_record_reads_its_event(endpoint: Endpoint) -> None:
    """FakeWebhook.type is the event's type; delivered means a 2xx answer."""
    event = {"type": "session.created"}
    assert FakeWebhook(event, b"{}", {}, 204).delivered
    assert not FakeWebhook(event, b"{}", {}, 302).delivered
    assert FakeWebhook(event, b"{}", {}, None, "ConnectError").type == "session.created"


# --------------------------------------------------------------------------------------------
# The device a session was signed in from (latest_activity)
# --------------------------------------------------------------------------------------------

EDGE_WINDOWS = (
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/128.0.0.0 Safari/537.36 Edg/128.0.2739.42"
)
FIREFOX_LINUX = "Mozilla/5.0 (X11; Linux x86_64; rv:129.0) Gecko/20100101 Firefox/129.0"
HEADLESS_LINUX = (
    "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) "
    "HeadlessChrome/140.0.7339.185 Safari/537.36"
)
CHROME_ANDROID = (
    "Mozilla/5.0 (Linux; Android 14; Pixel 8) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/128.0.6613.99 Mobile Safari/537.36"
)
OPERA_CHROMEBOOK = (
    "Mozilla/5.0 (X11; CrOS x86_64 14541.0.0) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/128.0.0.0 Safari/537.36 OPR/113.0.0.0"
)
SAFARI_IPAD = (
    "Mozilla/5.0 (iPad; CPU OS 17_5 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) "
    "Version/17.5 Mobile/15E148 Safari/604.1"
)
CHROME_IOS = (
    "Mozilla/5.0 (iPhone; CPU iPhone OS 17_5 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like "
    "Gecko) CriOS/128.0.6613.98 Mobile/15E148 Safari/604.1"
)


@pytest.mark.parametrize(
    ("user_agent", "device", "browser_name", "version", "mobile"),
    [
        # desktop browsers
        (CHROME_MAC, "Macintosh", "Chrome", "128.0.6613.84", False),
        (EDGE_WINDOWS, "Windows", "Edge", "128.0.2739.42", False),
        (FIREFOX_LINUX, "Linux", "Firefox", "129.0", False),
        (HEADLESS_LINUX, "Linux", "Chrome Headless", "140.0.7339.185", False),
        (OPERA_CHROMEBOOK, "Chromebook", "Opera", "113.0.0.0", False),
        # phones and tablets
        (SAFARI_IPHONE, "iPhone", "Safari", "17.5", True),
        (CHROME_IOS, "iPhone", "Chrome", "128.0.6613.98", True),
        (CHROME_ANDROID, "Android", "Chrome", "128.0.6613.99", True),
        (SAFARI_IPAD, "iPad", "Safari", "17.5", True),
        # no browser named
        ("python-httpx/0.28.1", None, None, None, False),
        ("", None, None, None, False),
        (None, None, None, None, False),
    ],
)
def test_the_device_is_read_from_the_user_agent(
    user_agent: str | None,
    device: str | None,
    browser_name: str | None,
    version: str | None,
    mobile: bool,
) -> None:
    """Clerk's SessionActivity fields from a User-Agent: device type, browser, version, mobile."""
    activity = session_activity(user_agent, "203.0.113.7")
    assert re.fullmatch(r"sess_activity_[A-Za-z0-9]{27}", activity.pop("id"))
    assert activity == {
        "object": "session_activity",
        "device_type": device,
        "is_mobile": mobile,
        "browser_name": browser_name,
        "browser_version": version,
        "ip_address": "203.0.113.7",
        "city": None,
        "country": None,
    }


async def test_a_frontend_api_sign_in_records_its_device(fake: FakeClerk) -> None:
    """The Backend API's Session carries the sign-in's User-Agent and address; FAPI's does not."""
    fake.add_user("user_a")
    async with browser(fake, headers={"user-agent": SAFARI_IPHONE}) as c:
        r = await sign_in(c, "user_a")
        sid = r.json()["response"]["created_session_id"]
        listed = await c.get("/v1/sessions", params={"user_id": "user_a"}, headers=bapi(fake))
    (session,) = listed.json()
    activity = session["latest_activity"]
    assert (activity["device_type"], activity["browser_name"], activity["is_mobile"]) == (
        "iPhone",
        "Safari",
        True,
    )
    assert activity["ip_address"] == "127.0.0.1"
    assert session["id"] == sid
    assert "latest_activity" not in r.json()["client"]["sessions"][0]


async def test_the_python_sign_in_takes_a_user_agent(fake: FakeClerk) -> None:
    """sign_in(user_agent=) records the device; without it latest_activity stays null."""
    user = fake.add_user()
    with_agent = fake.sign_in(user, user_agent=CHROME_MAC).session_id
    without = fake.sign_in(user).session_id
    activity = fake.sessions[with_agent].to_json()["latest_activity"]
    assert (activity["device_type"], activity["browser_name"], activity["ip_address"]) == (
        "Macintosh",
        "Chrome",
        None,
    )
    assert fake.sessions[without].to_json()["latest_activity"] is None
    fake.revoke(with_agent)  # ending a session keeps its device
    assert fake.sessions[with_agent].to_json()["latest_activity"] == activity
