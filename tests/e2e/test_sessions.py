"""60-second tokens in a real browser: the handshake, fetchWithAuth, sign-out, the loop guard.

The example runs in development mode with its fake server clock: ``POST /__dev/clock`` moves
FakeClerk's and the middleware's time past a token's 60 seconds and the 5-second skew, so
nothing waits. Every response the page receives is recorded, redirects included. Screenshots
land in test-artifacts/e2e/ (session-*.png, loop-*.png).
"""

from __future__ import annotations

import base64
import json
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote, urlsplit

import pytest
from playwright.sync_api import Page, Response, expect

from .conftest import (
    advance_clock,
    failed_load,
    handshakes,
    screenshot,
    set_fakeclerk_failing,
    watch_for_problems,
)

pytestmark = pytest.mark.e2e

#: Past the token's 60 seconds and the middleware's 5-second clock skew.
TWO_MINUTES = 120
EXPIRED = "session-token-expired-refresh-non-eligible-no-refresh-cookie"
API_401 = failed_load(401, "Unauthorized")


@dataclass(frozen=True)
class Hop:
    """One response the page received: method, status, path and query, two headers."""

    method: str
    status: int
    path: str
    location: str | None = None
    reason: str | None = None


class Traffic:
    """Every response of the page on the example's origin, in order."""

    def __init__(self, page: Page, base: str) -> None:
        self.base = base
        self.hops: list[Hop] = []
        page.on("response", self._record)

    def _record(self, response: Response) -> None:
        if not response.url.startswith(self.base + "/"):
            return
        parts = urlsplit(response.url)
        path = parts.path + ("?" + parts.query if parts.query else "")
        headers = response.headers
        hop = Hop(
            response.request.method,
            response.status,
            path,
            headers.get("location"),
            headers.get("x-clerk-auth-reason"),
        )
        self.hops.append(hop)

    def mark(self) -> int:
        """A position to read :meth:`since` from."""
        return len(self.hops)

    def since(self, mark: int) -> list[Hop]:
        """The responses after ``mark``."""
        return self.hops[mark:]


def cookie(page: Page, name: str) -> str | None:
    """The value of the app's cookie ``name`` (Path=/), if the browser holds it."""
    found = [c["value"] for c in page.context.cookies() if c["name"] == name and c["path"] == "/"]
    return found[0] if found else None


def claims(token: str) -> dict[str, Any]:
    """A JWT's payload, unverified (the middleware verified it)."""
    payload = token.split(".")[1]
    decoded: dict[str, Any] = json.loads(
        base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4))
    )
    return decoded


def quota_loaded(page: Page) -> None:
    """Wait until the dashboard's own call to /api/me (for its rate-limit quota) is answered."""
    expect(page.locator("#quota-remaining")).not_to_have_text("…")


def handshake_url(base: str, token: str, path: str = "/dashboard") -> str:
    """The middleware's 307 for an expired token on ``path``: Clerk's parameters, in order."""
    back = quote(base + path, safe="")
    return (
        f"{base}/__clerk/v1/client/handshake?redirect_url={back}&__clerk_api_version=2026-05-12"
        f"&suffixed_cookies=false&__clerk_hs_reason={EXPIRED}&format=nonce&__session={token}"
    )


def sign_in_as(page: Page, base: str, name: str) -> str:
    """Sign in on /sign-in (through FakeClerk), land on /dashboard; the session token."""
    page.goto(f"{base}/sign-in?redirect_url=/dashboard")
    page.get_by_role("button", name=f"Sign in as {name}").click()
    page.wait_for_url(f"{base}/dashboard")
    token = cookie(page, "__session")
    assert token is not None
    return token


def test_expired_tokens_renew_through_the_handshake_and_fetch_with_auth(
    page: Page, example_url: str
) -> None:
    """Back after two minutes: signed in (handshake); a late fetch retries once; sign-out holds."""
    base = example_url
    problems = watch_for_problems(page, (API_401, f"{base}/api/me"))

    # 1. Sign in: a 60-second token.
    token = sign_in_as(page, base, "Mia Member")
    session_id = claims(token)["sid"]
    expect(page.locator("#session-id")).to_have_text(session_id)
    expect(page.locator("#expires-at")).to_contain_text("(in 60 s)")
    screenshot(page, "session-01-signed-in")

    # 2. Close the tab; two minutes later, open the dashboard in a new one: the token has
    #    expired, the middleware hands the browser to FakeClerk's handshake, which resolves the
    #    session from its __client cookie and sends it back with a nonce; the dashboard opens.
    context = page.context
    page.close()
    advance_clock(base, TWO_MINUTES)
    page = context.new_page()
    problems = watch_for_problems(page, (API_401, f"{base}/api/me"))
    traffic = Traffic(page, base)
    before = len(handshakes(base))
    response = page.goto(f"{base}/dashboard")
    assert response is not None
    assert response.status == 200
    assert page.url == f"{base}/dashboard"
    quota_loaded(page)
    hop = handshake_url(base, token)
    assert traffic.since(0) == [
        Hop("GET", 307, "/dashboard", location=hop, reason=EXPIRED),
        Hop("GET", 307, hop.removeprefix(base), location=f"{base}/dashboard"),
        Hop("GET", 200, "/dashboard"),
        Hop("GET", 200, "/api/me"),  # the dashboard's own call, for its rate-limit quota
    ]
    assert handshakes(base)[before:] == [
        {
            "status": 307,
            "reason": EXPIRED,
            "redirect_url": f"{base}/dashboard",
            "signed_in": True,
        }
    ]
    expect(page.locator("#user-id")).to_have_text("user_demo_member")
    expect(page.locator("#session-id")).to_have_text(session_id)
    expect(page.locator("#expires-at")).to_contain_text("(in 60 s)")
    renewed = cookie(page, "__session")
    assert renewed is not None
    assert claims(renewed)["sid"] == session_id
    assert claims(renewed)["iat"] >= claims(token)["iat"] + TWO_MINUTES
    assert cookie(page, "__clerk_handshake_nonce") is None
    screenshot(page, "session-02-back-after-two-minutes")

    # 3. The page stays open two more minutes; its fetch gets a 401 for the expired token, and
    #    fetchWithAuth gets a fresh one from FakeClerk (what session.getToken() calls), updates
    #    __session and retries once: 200.
    advance_clock(base, TWO_MINUTES)
    mark = traffic.mark()
    page.get_by_role("button", name="Call /api/me").click()
    expect(page.locator("#api-result")).to_contain_text(
        f"HTTP 401 ({EXPIRED}): new token, retried\nHTTP 200\nx-user-id: user_demo_member"
    )
    assert traffic.since(mark) == [
        Hop("GET", 401, "/api/me", reason=EXPIRED),
        Hop("GET", 200, "/__clerk/v1/client"),
        Hop("POST", 200, f"/__clerk/v1/client/sessions/{session_id}/tokens"),
        Hop("GET", 200, "/api/me"),
    ]
    fresh = cookie(page, "__session")
    assert fresh is not None
    assert claims(fresh)["sid"] == session_id
    assert claims(fresh)["iat"] >= claims(renewed)["iat"] + TWO_MINUTES
    screenshot(page, "session-03-fetch-with-auth")

    # 4. Sign out: FakeClerk ends the session, the page clears __session and sets
    #    __client_uat to 0; later page loads are signed out, with no handshake.
    page.get_by_role("button", name="Sign out", exact=True).click()
    page.wait_for_url(f"{base}/")
    expect(page.get_by_text("You are signed out.")).to_be_visible()
    assert cookie(page, "__session") is None
    assert cookie(page, "__client_uat") == "0"
    client: dict[str, Any] = page.evaluate(
        'async () => (await (await fetch("/__clerk/v1/client")).json()).response'
    )
    assert [s["status"] for s in client["sessions"] if s["id"] == session_id] == ["ended"]
    screenshot(page, "session-04-signed-out")
    advance_clock(base, TWO_MINUTES)
    before = len(handshakes(base))
    mark = traffic.mark()
    page.goto(f"{base}/dashboard")
    port = base.rpartition(":")[2]
    sign_in = f"/sign-in?redirect_url=http%3A%2F%2F127.0.0.1%3A{port}%2Fdashboard"
    assert page.url == base + sign_in
    assert traffic.since(mark) == [
        Hop("GET", 307, "/dashboard", location=sign_in, reason="session-token-and-uat-missing"),
        Hop("GET", 200, sign_in),
    ]
    assert len(handshakes(base)) == before
    expect(page.locator("#signed-out-reason")).to_have_count(0)
    screenshot(page, "session-05-sign-in-after-sign-out")

    assert problems == []


def test_the_loop_guard_stops_a_failing_handshake_after_three_redirects(
    page: Page, example_url: str
) -> None:
    """A failing handshake: three round trips, the sign-in page says why; then it recovers."""
    base = example_url
    problems = watch_for_problems(page, (API_401, f"{base}/api/me"))
    token = sign_in_as(page, base, "Ada Admin")
    advance_clock(base, TWO_MINUTES)
    traffic = Traffic(page, base)
    before = len(handshakes(base))
    set_fakeclerk_failing(base, True)
    try:
        page.goto(f"{base}/dashboard")
    finally:
        set_fakeclerk_failing(base, False)

    port = base.rpartition(":")[2]
    sign_in = f"/sign-in?redirect_url=http%3A%2F%2F127.0.0.1%3A{port}%2Fdashboard"
    assert page.url == base + sign_in
    hop = handshake_url(base, token)
    round_trip = [
        Hop("GET", 307, "/dashboard", location=hop, reason=EXPIRED),
        Hop("GET", 307, hop.removeprefix(base), location=f"{base}/dashboard"),
    ]
    assert traffic.since(0) == [
        *round_trip * 3,
        Hop("GET", 307, "/dashboard", location=sign_in, reason=EXPIRED),
        Hop("GET", 200, sign_in),
    ]
    unresolved = {
        "status": 307,
        "reason": EXPIRED,
        "redirect_url": f"{base}/dashboard",
        "signed_in": None,
    }
    assert handshakes(base)[before:] == [unresolved] * 3
    notice = page.locator("#signed-out-reason")
    expect(notice).to_contain_text(f"x-clerk-auth-reason: {EXPIRED}")
    expect(notice).to_contain_text("after three redirects in a row")
    screenshot(page, "loop-01-signed-out-with-reason")

    # FakeClerk works again. The loop guard's counter cookie lives 2 seconds; dropping it stands
    # for those 2 seconds. The next page load goes through the handshake and is signed in.
    page.context.clear_cookies(name="__clerk_redirect_count")
    mark = traffic.mark()
    page.goto(f"{base}/dashboard")
    assert page.url == f"{base}/dashboard"
    quota_loaded(page)
    assert [(h.status, h.path.split("?")[0]) for h in traffic.since(mark)] == [
        (307, "/dashboard"),
        (307, "/__clerk/v1/client/handshake"),
        (200, "/dashboard"),
        (200, "/api/me"),
    ]
    expect(page.locator("#user-id")).to_have_text("user_demo_admin")
    screenshot(page, "loop-02-recovered")

    assert problems == []
