"""The API's rate limit in Chromium: the dashboard's quota line and its "Fire 12 requests".

The example limits each user to 10 API requests per 10 seconds (``rate_limit="10/10s"``), in
memory on its fake server clock, which stands still while the page fires: all twelve requests
fall in one instant, so ten pass and two are refused, whatever the machine's speed. Moving the
clock 20 seconds (two windows) gives every user a whole budget again. Screenshots land in
test-artifacts/e2e/ (ratelimit-*.png).
"""

from __future__ import annotations

import httpx
import pytest
from playwright.sync_api import Page, expect

from .conftest import failed_load, screenshot, watch_for_problems
from .test_sessions import Hop, Traffic, sign_in_as

pytestmark = pytest.mark.e2e

#: Two windows of 10 seconds: the previous one no longer weighs either.
TWO_WINDOWS = 20
WINDOW = 10
TOO_MANY = failed_load(429, "Too Many Requests")


def move_clock(base: str, seconds: int) -> int:
    """Move the example's fake clock; the new time, in whole seconds."""
    r = httpx.post(f"{base}/__dev/clock", params={"advance": str(seconds)})
    assert r.status_code == 200, r.text
    now: float = r.json()["now"]
    assert now == int(now)
    return int(now)


def test_twelve_requests_ten_pass_two_are_rate_limited(page: Page, example_url: str) -> None:
    """The dashboard reads what is left from its own call's RateLimit field; "Fire 12
    requests" gets ten 200s and two 429s, with the first 429's Retry-After; after that wait
    one more request passes."""
    base = example_url
    problems = watch_for_problems(page, (TOO_MANY, f"{base}/api/me"))
    move_clock(base, TWO_WINDOWS)  # whatever other tests spent: a whole budget

    # 1. Sign in: the dashboard's own fetchWithAuth("/api/me") used one request of ten.
    sign_in_as(page, base, "Mia Member")
    expect(page.locator("#quota-remaining")).to_have_text("9")
    expect(page.locator("#quota-limit")).to_have_text("10")
    expect(page.locator("#quota-detail")).to_contain_text('(RateLimit: "10/10s";r=9;t=')
    screenshot(page, "ratelimit-01-dashboard-quota")

    # 2. Two windows later the budget is whole again; the button fires twelve requests, one
    #    after the other, in one instant of the fake clock: ten pass, two are refused. The
    #    current window alone is full, so the next request passes 1 ms into the next window.
    now = move_clock(base, TWO_WINDOWS)
    retry_after = WINDOW + 1 - now % WINDOW
    traffic = Traffic(page, base)
    page.get_by_role("button", name="Fire 12 requests").click()
    result = page.locator("#burst-result")
    expect(result).to_have_text(
        "12 requests: 10 got HTTP 200, 2 got HTTP 429; "
        f"the first 429 said Retry-After: {retry_after} s"
    )
    expect(result).to_have_attribute("data-ok", "10")
    expect(result).to_have_attribute("data-limited", "2")
    expect(page.locator("#quota-remaining")).to_have_text("0")
    expect(page.locator("#quota-detail")).to_have_text(f'(RateLimit: "10/10s";r=0;t={retry_after})')
    assert (
        traffic.since(0)
        == [Hop("GET", 200, "/api/me")] * 10
        + [Hop("GET", 429, "/api/me", reason="rate-limited")] * 2
    )
    screenshot(page, "ratelimit-02-ten-ok-two-limited")

    # 3. Retry-After later, one request passes: the full window before still weighs 90 %.
    move_clock(base, retry_after)
    page.get_by_role("button", name="Call /api/me").click()
    expect(page.locator("#api-result")).to_contain_text("HTTP 200\nx-user-id: user_demo_member")
    expect(page.locator("#quota-remaining")).to_have_text("0")
    expect(page.locator("#quota-detail")).to_have_text(f'(RateLimit: "10/10s";r=0;t={WINDOW - 1})')
    screenshot(page, "ratelimit-03-after-retry-after")

    assert problems == []
