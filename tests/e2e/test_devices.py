"""Two devices signed in as one user, in Chromium: the dashboard lists both, one revokes the
other, which is refused at once (its token still has most of its minute to live), and "Sign out
of all devices" ends the first one too.

The example runs in development mode (FakeClerk); its fake clock stands still here (moved once,
before anyone signs in), so every refusal below is the revocation list's, not an expired
token's. The phone is a second browser context with an iPhone's User-Agent. Screenshots land in
test-artifacts/e2e/ (devices-*.png).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from urllib.parse import quote

import pytest
from playwright.sync_api import Browser, Page, expect

from .conftest import STEP_TIMEOUT_MS, advance_clock, screenshot, watch_for_problems
from .test_sessions import (
    API_401,
    Hop,
    Traffic,
    claims,
    cookie,
    quota_loaded,
    sign_in_as,
)

pytestmark = pytest.mark.e2e

IPHONE = (
    "Mozilla/5.0 (iPhone; CPU iPhone OS 17_5 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like "
    "Gecko) Version/17.5 Mobile/15E148 Safari/604.1"
)
REVOKED = "session-revoked"


def new_page(browser: Browser, width: int, height: int, user_agent: str | None = None) -> Page:
    """A page in a fresh browser context (its own cookies: another device)."""
    context = browser.new_context(
        viewport={"width": width, "height": height}, user_agent=user_agent
    )
    context.set_default_timeout(STEP_TIMEOUT_MS)
    return context.new_page()


@pytest.fixture
def laptop(browser: Browser) -> Iterator[Page]:
    """The first device: Chromium's own (headless) User-Agent, a desktop window."""
    page = new_page(browser, 1100, 900)
    try:
        yield page
    finally:
        page.context.close()


@pytest.fixture
def phone(browser: Browser) -> Iterator[Page]:
    """The second device: an iPhone's User-Agent and screen."""
    page = new_page(browser, 390, 844, IPHONE)
    try:
        yield page
    finally:
        page.context.close()


def handshake_hops(base: str, location: str, reason: str) -> list[Hop]:
    """A page load of /dashboard whose session is gone: to the handshake, back, to sign-in."""
    port = base.rpartition(":")[2]
    sign_in = f"/sign-in?redirect_url=http%3A%2F%2F127.0.0.1%3A{port}%2Fdashboard"
    return [
        Hop("GET", 307, "/dashboard", location=location, reason=reason),
        Hop("GET", 307, location.removeprefix(base), location=f"{base}/dashboard"),
        Hop("GET", 307, "/dashboard", location=sign_in, reason="session-token-missing"),
        Hop("GET", 200, sign_in),
    ]


def test_one_device_revokes_the_other_then_signs_out_everywhere(
    laptop: Page, phone: Page, example_url: str
) -> None:
    """The laptop lists both sessions and revokes the phone's: the phone's next API call is a
    401 session-revoked, its next page load signed out; then "Sign out of all devices"
    signs the laptop out as well."""
    base = example_url
    laptop_problems = watch_for_problems(laptop, (API_401, f"{base}/api/me"))
    phone_problems = watch_for_problems(phone, (API_401, f"{base}/api/me"))
    # Mia's API budget (10 per 10 s) may be spent by earlier tests on this server, and this
    # one makes six more counted calls as her: two windows on, it is whole again.
    advance_clock(base, 20)

    # 1. Both devices sign in as Mia; the laptop's dashboard lists both sessions.
    here = claims(sign_in_as(laptop, base, "Mia Member"))["sid"]
    phone_token = sign_in_as(phone, base, "Mia Member")
    there = claims(phone_token)["sid"]
    laptop.reload()
    mine = laptop.locator(f'tr[data-session-id="{here}"]')
    theirs = laptop.locator(f'tr[data-session-id="{there}"]')
    expect(mine.locator("td.action")).to_have_text("(current)")
    expect(mine.locator("td.browser")).to_contain_text("Chrome Headless")
    expect(theirs.locator("td.device")).to_have_text("iPhone (mobile)")
    expect(theirs.locator("td.browser")).to_have_text("Safari 17.5")
    expect(theirs.get_by_role("button", name="Revoke")).to_be_visible()
    expect(mine.get_by_role("button", name="Revoke")).to_have_count(0)
    expect(laptop.locator("#session-expires")).to_contain_text("(in 10080 min)")
    screenshot(laptop, "devices-01-laptop-lists-both-sessions")

    # 2. The laptop revokes the phone: the list is reloaded without it.
    laptop_traffic = Traffic(laptop, base)
    theirs.get_by_role("button", name="Revoke").click()
    expect(theirs).to_have_count(0)
    expect(mine).to_have_count(1)
    quota_loaded(laptop)  # the reloaded dashboard's own /api/me call: before the next mark
    assert laptop_traffic.since(0) == [
        Hop("POST", 200, f"/api/sessions/{there}/revoke"),
        Hop("GET", 200, "/dashboard"),
        Hop("GET", 200, "/api/me"),
    ]
    screenshot(laptop, "devices-02-phone-revoked")

    # 3. The phone's open page calls the API with its token, which has not expired: refused
    #    at once, 401 session-revoked, and fetchWithAuth does not retry that reason.
    phone_traffic = Traffic(phone, base)
    phone.get_by_role("button", name="Call /api/me").click()
    expect(phone.locator("#api-result")).to_contain_text("HTTP 401")
    body = json.loads(phone.locator("#api-result").inner_text().split("\n\n", 1)[1])
    assert body == {
        "error": "unauthorized",
        "reason": REVOKED,
        "message": "This session was signed out; sign in again.",
    }
    assert phone_traffic.since(0) == [Hop("GET", 401, "/api/me", reason=REVOKED)]
    assert cookie(phone, "__session") == phone_token
    screenshot(phone, "devices-03-phone-api-refused")

    # 4. The phone's next page load: the middleware hands it to the handshake, FakeClerk finds
    #    no session for this browser and clears its cookies; it ends on the sign-in page.
    mark = phone_traffic.mark()
    phone.goto(f"{base}/dashboard")
    (first, *_) = phone_traffic.since(mark)
    assert first.location is not None
    back = quote(f"{base}/dashboard", safe="")
    assert first.location.startswith(f"{base}/__clerk/v1/client/handshake?redirect_url={back}&")
    assert f"&__clerk_hs_reason={REVOKED}&" in first.location
    assert phone_traffic.since(mark) == handshake_hops(base, first.location, REVOKED)
    assert cookie(phone, "__session") is None
    assert cookie(phone, "__client_uat") == "0"
    expect(phone.get_by_role("heading", name="Sign in")).to_be_visible()
    screenshot(phone, "devices-04-phone-signed-out")

    # 5. "Sign out of all devices" on the laptop revokes its own session too: the page then
    #    opens /dashboard, which goes through the handshake and ends on the sign-in page.
    mark = laptop_traffic.mark()
    laptop.get_by_role("button", name="Sign out of all devices").click()
    laptop.wait_for_url(f"{base}/sign-in?**")
    hops = laptop_traffic.since(mark)
    assert hops[0] == Hop("POST", 200, "/api/sessions/revoke-all")
    assert hops[1].location is not None
    assert hops[1:] == handshake_hops(base, hops[1].location, REVOKED)
    assert cookie(laptop, "__session") is None
    screenshot(laptop, "devices-05-laptop-signed-out-everywhere")

    assert laptop_problems == phone_problems == []
