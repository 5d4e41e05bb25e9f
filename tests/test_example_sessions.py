"""The example's sessions, through httpx.ASGITransport: the dashboard's session manager and
session list, the routes that revoke one session or all of them, and the webhook endpoint that
feeds the same revocation list as ClerkBackend and the middleware.

Development mode runs on FakeClerk (its Backend API in process, its webhooks delivered to the
app in process); Clerk mode reaches Clerk's Backend API at api.clerk.com, mocked with respx.
Two httpx clients with their own cookie jars (and User-Agents) stand for two devices.
"""

from __future__ import annotations

import json
from types import ModuleType
from typing import Any
from urllib.parse import quote

import httpx
import jwt
import pytest
import respx
from fastapi import FastAPI

from clerk_asgi import ClerkConfig
from clerk_asgi.backend import ClerkBackend, RevocationList, Session
from clerk_asgi.testing import FakeClerk, FakeClock, KeyPair, mint_session_token, sign_webhook

from ._fakeclerk_helpers import CHROME_MAC, SAFARI_IPHONE
from .conftest import NOW
from .test_example import (
    NAVIGATION,
    ORIGIN,
    SAME_ORIGIN,
    claims_of,
    middleware,
    sign_in,
)

pytestmark = pytest.mark.anyio

REVOKED = "session-revoked"
REVOKED_401 = {
    "error": "unauthorized",
    "reason": REVOKED,
    "message": "This session was signed out; sign in again.",
}
SIGN_IN_DASHBOARD = "/sign-in?redirect_url=http%3A%2F%2F127.0.0.1%3A8000%2Fdashboard"
SEVEN_DAYS = "2027-01-22 08:00:00 UTC (in 10080 min)"
SIGNED_IN_AT = "2027-01-15 08:00:00 UTC (in 0 s)"
#: pk_live_ + base64("clerk.example.com$") and a secret key: Clerk mode with the Backend API.
LIVE_KEY = "pk_live_Y2xlcmsuZXhhbXBsZS5jb20k"
SECRET_KEY = "sk_live_abcdefghijklmnopqrstuvwxyz0123456789"
CLERK_API = "https://api.clerk.com/v1"
WEBHOOK_SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"


def device(app: FastAPI, user_agent: str = CHROME_MAC) -> httpx.AsyncClient:
    """A browser on the app: its own cookie jar, its own User-Agent."""
    return httpx.AsyncClient(
        transport=httpx.ASGITransport(app), base_url=ORIGIN, headers={"user-agent": user_agent}
    )


async def signed_in(c: httpx.AsyncClient, key: KeyPair, email: str = "mia@example.test") -> str:
    """Sign in through FakeClerk as the page does; the session id."""
    sid: str = claims_of(await sign_in(c, email), key)["sid"]
    return sid


def row(session_id: str, device: str, browser: str, action: str) -> str:
    """One row of the dashboard's session list (signed in from the test client, at NOW)."""
    return (
        f'<tr data-session-id="{session_id}"><td class="device">{device}</td>'
        f'<td class="browser">{browser}</td><td class="where">127.0.0.1</td>'
        f'<td class="last-active">{SIGNED_IN_AT}</td><td class="action">{action}</td></tr>'
    )


def revoke_button(session_id: str) -> str:
    return f'<button class="secondary" type="button" data-revoke="{session_id}">Revoke</button>'


# --- wiring -------------------------------------------------------------------------------------


async def test_one_revocation_list_for_middleware_backend_and_webhooks(
    dev_app: FastAPI, fake: FakeClerk, clock: FakeClock
) -> None:
    """The middleware, ClerkBackend and FakeClerk's webhooks share one list, on the app's clock."""
    config = middleware(dev_app)[1][1]["config"]
    assert isinstance(config, ClerkConfig)
    revocations = dev_app.state.revocation_list
    assert isinstance(revocations, RevocationList)
    assert config.revocation_list is revocations
    backend = dev_app.state.clerk_backend
    assert isinstance(backend, ClerkBackend)
    assert backend.revocation_list is revocations
    assert backend.api_url == fake.api_url
    assert (fake.webhook_url, fake.webhook_app) == ("/api/webhooks/clerk", dev_app)
    await revocations.revoke("sess_x")
    assert await revocations.is_revoked("sess_x")
    clock.advance(66)  # the list runs on the fake clock: past Clerk's 60 s plus the skew
    assert not await revocations.is_revoked("sess_x")


# --- the dashboard ------------------------------------------------------------------------------


async def test_the_session_manager_shows_this_session_from_the_backend_api(
    dev_app: FastAPI, key: KeyPair
) -> None:
    """The dashboard: this session's created/last active/expires, and both sign-out buttons."""
    async with device(dev_app) as c:
        sid = await signed_in(c, key)
        r = await c.get("/dashboard", headers=NAVIGATION)
    assert r.status_code == 200
    assert f'<dd id="session-id">{sid}</dd>' in r.text
    assert (
        '<dl id="session-record">'
        f'<dt>Created</dt><dd id="session-created">{SIGNED_IN_AT}</dd>'
        f'<dt>Last active</dt><dd id="session-last-active">{SIGNED_IN_AT}</dd>'
        f'<dt>Expires</dt><dd id="session-expires">{SEVEN_DAYS}</dd></dl>'
    ) in r.text
    assert (
        '<p class="actions"><button id="sign-out" type="button">Sign out</button>\n'
        '<button class="secondary" id="sign-out-all" type="button">Sign out of all devices'
        "</button></p>"
    ) in r.text
    assert '<p class="notice" id="sessions-error" role="alert" hidden></p>' in r.text


async def test_the_session_list_shows_each_active_device(
    dev_app: FastAPI, fake: FakeClerk, key: KeyPair
) -> None:
    """Mia's active sessions, newest first, with device and browser; "(current)" on this one."""
    async with device(dev_app) as laptop, device(dev_app, SAFARI_IPHONE) as phone:
        async with device(dev_app) as other:
            await signed_in(other, key, "ada@example.test")  # another user: not listed
        ended = fake.sign_in("user_demo_member").session_id
        fake.sign_out(ended)  # no longer active: not listed
        here = await signed_in(laptop, key)
        there = await signed_in(phone, key)
        r = await laptop.get("/dashboard", headers=NAVIGATION)
    assert r.status_code == 200
    table = r.text.split('<div class="card" id="session-list">')[1].split("</table>")[0]
    assert table.endswith(
        "<tr><th>device</th><th>browser</th><th>from</th><th>last active</th><th></th></tr>\n"
        + row(there, "iPhone (mobile)", "Safari 17.5", revoke_button(there))
        + row(here, "Macintosh", "Chrome 128.0.6613.84", '<span class="current">(current)</span>')
    )


async def test_a_failing_backend_api_is_shown_not_raised(dev_app: FastAPI, fake: FakeClerk) -> None:
    """The Backend API refuses the app (a secret key rotated away): the page says so, 200."""
    async with device(dev_app) as c:
        sid = claims_of_unverified(await sign_in(c))
        assert (await c.get("/api/me")).status_code == 200  # the JWKS is cached now
        fake._secret_key = "sk_live_rotated"  # the app's key no longer works
        r = await c.get("/dashboard", headers=NAVIGATION)
    assert r.status_code == 200
    assert f'<dd id="session-id">{sid}</dd>' in r.text
    assert (
        '<p class="muted" id="sessions-unavailable">Clerk&#x27;s Backend API failed: '
        "Unable to authenticate the request, you need to supply an active API key</p>"
    ) in r.text
    assert 'id="session-list"' not in r.text


def claims_of_unverified(token: str) -> str:
    """The sid of a token, unverified."""
    sid: str = jwt.decode(token, options={"verify_signature": False})["sid"]
    return sid


# --- revoking one device ------------------------------------------------------------------------


async def test_revoking_another_device_refuses_its_token_at_once(
    dev_app: FastAPI, fake: FakeClerk, key: KeyPair
) -> None:
    """A revokes B: B's unexpired token gets 401 session-revoked at once; A is untouched."""
    async with device(dev_app) as a, device(dev_app, SAFARI_IPHONE) as b:
        mine = await signed_in(a, key)
        theirs = await signed_in(b, key)
        assert (await b.get("/api/me")).status_code == 200
        r = await a.post(f"/api/sessions/{theirs}/revoke", headers=SAME_ORIGIN)
        b_api = await b.get("/api/me")
        a_api = await a.get("/api/me")
    assert r.status_code == 200
    revoked = r.json()["revoked"]
    assert {k: revoked[k] for k in ("id", "status", "current")} == {
        "id": theirs,
        "status": "revoked",
        "current": False,
    }
    assert revoked["latest_activity"]["device_type"] == "iPhone"
    assert (b_api.status_code, b_api.headers["x-clerk-auth-reason"]) == (401, REVOKED)
    assert b_api.json() == REVOKED_401
    assert a_api.status_code == 200
    assert a_api.json()["session_id"] == mine
    assert fake.sessions[theirs].status == "revoked"
    assert fake.sessions[mine].status == "active"
    (webhook,) = [w for w in fake.webhooks if w.type == "session.revoked"]
    assert (webhook.event["data"]["id"], webhook.status) == (theirs, 200)


async def test_a_revoked_device_is_signed_out_on_its_next_page_load(
    dev_app: FastAPI, fake: FakeClerk, key: KeyPair
) -> None:
    """B's next navigation goes through the handshake, which finds no session: sign-in."""
    async with device(dev_app) as a, device(dev_app, SAFARI_IPHONE) as b:
        await signed_in(a, key)
        theirs = await signed_in(b, key)
        assert (await a.post(f"/api/sessions/{theirs}/revoke", headers=SAME_ORIGIN)).is_success
        r = await b.get("/dashboard", headers=NAVIGATION)
        assert r.status_code == 307
        assert r.headers["x-clerk-auth-reason"] == REVOKED
        location = r.headers["location"]
        back_url = quote(ORIGIN + "/dashboard", safe="")
        assert location.startswith(f"{ORIGIN}/__clerk/v1/client/handshake?redirect_url={back_url}&")
        assert f"&__clerk_hs_reason={REVOKED}&" in location
        back = await b.get(location, headers=NAVIGATION)
        page = await b.get(back.headers["location"], headers=NAVIGATION)
    assert page.status_code == 307
    assert page.headers["location"] == SIGN_IN_DASHBOARD
    assert fake.handshakes[-1].signed_in is False
    assert fake.handshakes[-1].reason == REVOKED


# --- signing out everywhere ---------------------------------------------------------------------


async def test_sign_out_of_all_devices_revokes_this_one_too(
    dev_app: FastAPI, fake: FakeClerk, key: KeyPair
) -> None:
    """revoke-all ends every active session of the user, the caller's included; Ada's stays."""
    async with device(dev_app) as a, device(dev_app, SAFARI_IPHONE) as b, device(dev_app) as ada:
        mine = await signed_in(a, key)
        theirs = await signed_in(b, key)
        hers = await signed_in(ada, key, "ada@example.test")
        r = await a.post("/api/sessions/revoke-all", headers=SAME_ORIGIN)
        after = [await c.get("/api/me") for c in (a, b, ada)]
    assert r.status_code == 200
    assert r.json() == {"revoked": [theirs, mine]}
    assert [x.status_code for x in after] == [401, 401, 200]
    assert [x.json() for x in after[:2]] == [REVOKED_401, REVOKED_401]
    assert [fake.sessions[s].status for s in (mine, theirs, hers)] == [
        "revoked",
        "revoked",
        "active",
    ]


async def test_a_sign_out_elsewhere_reaches_the_list_by_webhook(
    dev_app: FastAPI, fake: FakeClerk, key: KeyPair
) -> None:
    """Signing out through the Frontend API (not ClerkBackend): session.ended, by webhook,
    refuses a copy of that session's token still alive."""
    async with device(dev_app) as c:
        token = await sign_in(c)
        r = await c.delete("/__clerk/v1/client", headers=SAME_ORIGIN)
        assert r.status_code == 200
        copy = await c.get("/api/me", headers={"authorization": f"Bearer {token}"})
    assert (copy.status_code, copy.json()) == (401, REVOKED_401)
    ended = fake.webhooks[-1]
    assert (ended.type, ended.status, ended.event["data"]["id"]) == (
        "session.ended",
        200,
        claims_of(token, key)["sid"],
    )


# --- the routes refuse what is not yours --------------------------------------------------------


async def test_another_users_session_is_not_found(
    dev_app: FastAPI, fake: FakeClerk, key: KeyPair
) -> None:
    """Mia cannot revoke Ada's session (404, as for no session at all); it stays active."""
    async with device(dev_app) as mia, device(dev_app) as ada:
        await signed_in(mia, key)
        hers = await signed_in(ada, key, "ada@example.test")
        r = await mia.post(f"/api/sessions/{hers}/revoke", headers=SAME_ORIGIN)
        unknown = await mia.post("/api/sessions/sess_nope/revoke", headers=SAME_ORIGIN)
        odd = await mia.post("/api/sessions/..%3F%23/revoke", headers=SAME_ORIGIN)
    not_found = {"error": "session_not_found", "message": "You have no such session."}
    for answer in (r, unknown, odd):
        assert (answer.status_code, answer.json()) == (404, not_found)
    assert fake.sessions[hers].status == "active"


async def test_the_session_routes_need_a_signed_in_same_site_caller(
    dev_app: FastAPI, fake: FakeClerk, key: KeyPair
) -> None:
    """Signed out: 401 JSON. Signed in but posted from another site: refused, nothing revoked."""
    async with device(dev_app) as c:
        anonymous = [
            await c.get("/api/sessions"),
            await c.post("/api/sessions/revoke-all", headers=SAME_ORIGIN),
        ]
        sid = await signed_in(c, key)
        cross = await c.post(
            "/api/sessions/revoke-all",
            headers={"origin": "https://evil.example", "sec-fetch-site": "cross-site"},
        )
    for answer in anonymous:
        assert answer.status_code == 401
        assert answer.json()["reason"] == "session-token-and-uat-missing"
    assert cross.status_code == 401
    assert fake.sessions[sid].status == "active"


async def test_the_api_lists_the_active_sessions(
    dev_app: FastAPI, key: KeyPair, fake: FakeClerk
) -> None:
    """GET /api/sessions: the user's active sessions as JSON, this one marked current."""
    async with device(dev_app) as a, device(dev_app, SAFARI_IPHONE) as b:
        mine = await signed_in(a, key)
        theirs = await signed_in(b, key)
        r = await a.get("/api/sessions")
    assert r.status_code == 200
    sessions = r.json()["sessions"]
    assert [(s["id"], s["current"], s["status"]) for s in sessions] == [
        (theirs, False, "active"),
        (mine, True, "active"),
    ]
    assert sessions[1] == {
        "id": mine,
        "status": "active",
        "current": True,
        "created_at": "2027-01-15T08:00:00+00:00",
        "last_active_at": "2027-01-15T08:00:00+00:00",
        "expire_at": "2027-01-22T08:00:00+00:00",
        "latest_activity": fake.sessions[mine].to_json()["latest_activity"],
    }


async def test_a_failing_backend_api_is_a_502(dev_app: FastAPI, fake: FakeClerk) -> None:
    """Every session route answers 502 with Clerk's message when the Backend API fails."""
    async with device(dev_app) as c:
        sid = claims_of_unverified(await sign_in(c))
        assert (await c.get("/api/me")).status_code == 200  # the JWKS is cached now
        fake._secret_key = "sk_live_rotated"
        answers = [
            await c.get("/api/sessions"),
            await c.post(f"/api/sessions/{sid}/revoke", headers=SAME_ORIGIN),
            await c.post("/api/sessions/revoke-all", headers=SAME_ORIGIN),
        ]
    for answer in answers:
        assert (answer.status_code, answer.json()) == (
            502,
            {
                "error": "backend_api_error",
                "message": "Clerk's Backend API failed: Unable to authenticate the request, "
                "you need to supply an active API key",
            },
        )


# --- the webhook endpoint -----------------------------------------------------------------------


async def test_the_webhook_endpoint_feeds_the_revocation_list(
    dev_app: FastAPI, fake: FakeClerk
) -> None:
    """A signed session.revoked event: 200, the session listed; its retry is a duplicate."""
    event = {"data": {"id": "sess_elsewhere", "object": "session"}, "type": "session.revoked"}
    body = json.dumps(event).encode()
    headers = sign_webhook(body, secret=fake.webhook_secret, timestamp=int(NOW))
    async with device(dev_app) as c:
        r = await c.post("/api/webhooks/clerk", content=body, headers=headers)
        again = await c.post("/api/webhooks/clerk", content=body, headers=headers)
    assert (r.status_code, r.json()) == (200, {"received": "session.revoked", "duplicate": False})
    assert (again.status_code, again.json()) == (
        200,
        {"received": "session.revoked", "duplicate": True},
    )
    assert await dev_app.state.revocation_list.is_revoked("sess_elsewhere")


async def test_the_webhook_endpoint_refuses_a_forged_event(
    dev_app: FastAPI, fake: FakeClerk
) -> None:
    """Signed with another secret, or not signed: 400 with the reason, nothing listed."""
    body = json.dumps({"data": {"id": "sess_victim"}, "type": "session.revoked"}).encode()
    headers = sign_webhook(body, secret=WEBHOOK_SECRET, timestamp=int(NOW))
    async with device(dev_app) as c:
        r = await c.post("/api/webhooks/clerk", content=body, headers=headers)
        unsigned = await c.post("/api/webhooks/clerk", content=body)
    assert (r.status_code, r.headers["x-clerk-auth-reason"]) == (400, "webhook-signature-invalid")
    assert r.json() == {
        "error": "bad_request",
        "reason": "webhook-signature-invalid",
        "message": "No signature in the svix-signature header matches the signing secret.",
    }
    assert (unsigned.status_code, unsigned.json()["reason"]) == (400, "webhook-headers-missing")
    assert not await dev_app.state.revocation_list.is_revoked("sess_victim")


# --- Clerk mode: the same code on Clerk's Backend API -------------------------------------------


@pytest.fixture
def live_app(example: ModuleType, key: KeyPair, monkeypatch: pytest.MonkeyPatch) -> FastAPI:
    """Clerk mode with both keys (and a PEM key, so no JWKS is fetched)."""
    monkeypatch.setenv("CLERK_PUBLISHABLE_KEY", LIVE_KEY)
    monkeypatch.setenv("CLERK_SECRET_KEY", SECRET_KEY)
    monkeypatch.setenv("CLERK_JWT_KEY", key.public_pem)
    monkeypatch.setenv("CLERK_WEBHOOK_SIGNING_SECRET", WEBHOOK_SECRET)
    app: FastAPI = example.create_app()
    return app


def clerk_session(session_id: str, **extra: Any) -> dict[str, Any]:
    """A Session as Clerk's Backend API sends it (the fields the example reads)."""
    return {
        "object": "session",
        "id": session_id,
        "client_id": "client_1",
        "user_id": "user_1",
        "status": "active",
        "last_active_at": int(NOW * 1000),
        "expire_at": int((NOW + 7 * 86_400) * 1000),
        "abandon_at": int((NOW + 30 * 86_400) * 1000),
        "created_at": int(NOW * 1000),
        "updated_at": int(NOW * 1000),
        "latest_activity": {
            "object": "session_activity",
            "id": "sess_activity_1",
            "device_type": "Macintosh",
            "is_mobile": False,
            "browser_name": "Chrome",
            "browser_version": "128.0.0.0",
            "ip_address": "203.0.113.7",
            "city": "Paris",
            "country": "FR",
        },
        **extra,
    }


def bearer(key: KeyPair, session_id: str = "sess_1") -> dict[str, str]:
    """A page load with a Clerk session token in the Authorization header (real time)."""
    token = mint_session_token(
        key, user_id="user_1", session_id=session_id, issuer="https://clerk.example.com"
    )
    return {"authorization": f"Bearer {token}", **NAVIGATION}


async def test_clerk_mode_lists_sessions_from_clerks_backend_api(
    live_app: FastAPI, key: KeyPair, example: ModuleType
) -> None:
    """With CLERK_SECRET_KEY, the dashboard reads Clerk's Backend API (secret key, version)."""
    phone = clerk_session("sess_2", latest_activity=None)
    with respx.mock(assert_all_called=True) as clerk:
        one = clerk.get(f"{CLERK_API}/sessions/sess_1").respond(json=clerk_session("sess_1"))
        listing = clerk.get(f"{CLERK_API}/sessions").respond(
            json={"data": [phone, clerk_session("sess_1")], "total_count": 2}
        )
        async with device(live_app) as c:
            r = await c.get("/dashboard", headers=bearer(key))
    assert r.status_code == 200
    sent = one.calls.last.request
    assert sent.headers["authorization"] == f"Bearer {SECRET_KEY}"
    assert listing.calls.last.request.url.params["user_id"] == "user_1"
    assert row_of(r.text, "sess_1") == (
        '<tr data-session-id="sess_1"><td class="device">Macintosh</td>'
        '<td class="browser">Chrome 128.0.0.0</td><td class="where">203.0.113.7 · Paris, FR</td>'
    )
    assert row_of(r.text, "sess_2") == (
        '<tr data-session-id="sess_2"><td class="device">Unknown device</td>'
        '<td class="browser">Unknown browser</td><td class="where">—</td>'
    )
    assert example.device_of(Session.from_json(phone)) == ("Unknown device", "Unknown browser", "—")


def row_of(page: str, session_id: str) -> str:
    """The first three cells of a session's row."""
    start = page.index(f'<tr data-session-id="{session_id}">')
    return page[start : page.index('<td class="last-active">', start)]


async def test_clerk_mode_revokes_through_clerks_backend_api(
    live_app: FastAPI, key: KeyPair
) -> None:
    """Revoking in Clerk mode: POST /v1/sessions/{id}/revoke, then the list refuses its token."""
    with respx.mock(assert_all_called=True) as clerk:
        clerk.get(f"{CLERK_API}/sessions/sess_2").respond(json=clerk_session("sess_2"))
        revoke = clerk.post(f"{CLERK_API}/sessions/sess_2/revoke").respond(
            json=clerk_session("sess_2", status="revoked")
        )
        async with device(live_app) as c:
            r = await c.post("/api/sessions/sess_2/revoke", headers={**bearer(key), **SAME_ORIGIN})
            later = await c.get("/api/me", headers=bearer(key, "sess_2"))
    assert r.status_code == 200
    assert r.json()["revoked"]["status"] == "revoked"
    assert revoke.called
    assert (later.status_code, later.json()) == (401, REVOKED_401)


async def test_clerk_mode_verifies_webhooks_with_the_signing_secret(live_app: FastAPI) -> None:
    """CLERK_WEBHOOK_SIGNING_SECRET verifies Clerk's events (the example's own clock: real)."""
    body = json.dumps({"data": {"id": "sess_9"}, "type": "session.ended"}).encode()
    async with device(live_app) as c:
        r = await c.post(
            "/api/webhooks/clerk", content=body, headers=sign_webhook(body, secret=WEBHOOK_SECRET)
        )
    assert (r.status_code, r.json()) == (200, {"received": "session.ended", "duplicate": False})
    assert await live_app.state.revocation_list.is_revoked("sess_9")


async def test_clerk_mode_without_a_secret_key_explains(
    example: ModuleType, key: KeyPair, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Publishable key only: no Backend API (the page says why; the API answers 503), and no
    webhook secret: the webhook endpoint answers 503 naming the variable."""
    monkeypatch.setenv("CLERK_PUBLISHABLE_KEY", LIVE_KEY)
    monkeypatch.setenv("CLERK_JWT_KEY", key.public_pem)
    app: FastAPI = example.create_app()
    assert app.state.clerk_backend is None
    async with device(app) as c:
        page = await c.get("/dashboard", headers=bearer(key))
        api = await c.get("/api/sessions", headers=bearer(key))
        hook = await c.post("/api/webhooks/clerk", content=b"{}")
    assert page.status_code == 200
    assert (
        '<p class="muted" id="sessions-unavailable">Set CLERK_SECRET_KEY to see and end your '
        "sessions: that takes Clerk&#x27;s Backend API.</p>"
    ) in page.text
    assert 'id="sign-out-all"' not in page.text
    assert '<button id="sign-out" type="button">Sign out</button>' in page.text
    assert (api.status_code, api.json()) == (
        503,
        {
            "error": "backend_not_configured",
            "message": "Set CLERK_SECRET_KEY to see and end your sessions: that takes Clerk's "
            "Backend API.",
        },
    )
    assert (hook.status_code, hook.json()) == (
        503,
        {
            "error": "webhooks_not_configured",
            "message": "Set CLERK_WEBHOOK_SIGNING_SECRET (the endpoint's signing secret) to "
            "verify them.",
        },
    )
