"""The example's whole story in a real browser: sign in, dashboard, admin, API, sign out.

Development mode: the page signs in through FakeClerk at /__clerk, as clerk-js would. A
screenshot of every step lands in test-artifacts/e2e/ (NN-step.png).
"""

from __future__ import annotations

import re
from typing import Any

import pytest
from playwright.sync_api import Page, expect

from .conftest import failed_load, screenshot, watch_for_problems

pytestmark = pytest.mark.e2e

BANNER = "FakeClerk, not Clerk: anyone who can reach this server can sign in as a demo user"
FORBIDDEN = failed_load(403, "Forbidden")
SESSION_ID = re.compile(r"^sess_[A-Za-z0-9]{27}$")

#: Runs in the page: the same-origin fetch a front end would make, cookie included.
FETCH_ME = """async () => {
  const response = await window.fetchWithAuth("/api/me");
  const body = await response.json();
  return { status: response.status, userId: response.headers.get("x-user-id"), body };
}"""


def sign_in_url(base: str) -> str:
    """Where the middleware sends a signed-out browser that asked for /dashboard, spelled out."""
    port = base.rpartition(":")[2]
    return f"{base}/sign-in?redirect_url=http%3A%2F%2F127.0.0.1%3A{port}%2Fdashboard"


def app_cookies(page: Page) -> dict[str, str]:
    """The cookies the browser holds for the app's own paths (Path=/)."""
    return {c["name"]: c["value"] for c in page.context.cookies() if c["path"] == "/"}


def test_sign_in_dashboard_admin_api_and_sign_out(page: Page, example_url: str) -> None:
    """The member is kept out of /admin, the API knows who calls, sign-out ends it all."""
    base = example_url
    problems = watch_for_problems(page, (FORBIDDEN, f"{base}/unauthorized"))

    # 1. A signed-out visit to /dashboard lands on the sign-in page, which knows the way back.
    page.goto(f"{base}/dashboard")
    assert page.url == sign_in_url(base)
    expect(page.get_by_role("heading", name="Sign in", exact=True)).to_be_visible()
    expect(page.get_by_role("note")).to_have_text(BANNER)
    screenshot(page, "01-sign-in")

    # 2. Signing in as the member (through FakeClerk) returns to /dashboard, with the cookies
    #    clerk-js sets: __session (the 60-second token) and __client_uat; __client on /__clerk.
    page.get_by_role("button", name="Sign in as Mia Member").click()
    page.wait_for_url(f"{base}/dashboard")
    expect(page.locator("#user-id")).to_have_text("user_demo_member")
    expect(page.locator("#org-role")).to_have_text("org:member")
    expect(page.locator("#session-id")).to_have_text(SESSION_ID)
    expect(page.locator("#expires-at")).to_contain_text("(in 60 s)")
    expect(page.get_by_role("note")).to_have_text(BANNER)
    assert sorted(app_cookies(page)) == ["__client_uat", "__session"]
    (client,) = [c for c in page.context.cookies() if c["name"] == "__client"]
    assert (client["path"], client["httpOnly"]) == ("/__clerk", True)
    screenshot(page, "02-dashboard-member")

    # 3. /admin needs org:admin: the member ends on /unauthorized.
    response = page.goto(f"{base}/admin")
    assert page.url == f"{base}/unauthorized"
    assert response is not None
    assert response.status == 403
    expect(page.get_by_role("heading", name="Not allowed")).to_be_visible()
    screenshot(page, "03-unauthorized")

    # 4. A fetch from the page is authenticated by the same cookie; x-user-id comes back.
    result: dict[str, Any] = page.evaluate(FETCH_ME)
    assert result["status"] == 200
    assert result["userId"] == "user_demo_member"
    assert result["body"]["user_id"] == "user_demo_member"
    assert result["body"]["org_role"] == "org:member"
    assert result["body"]["x_user_id"] == "user_demo_member"
    page.goto(f"{base}/dashboard")
    page.get_by_role("button", name="Call /api/me").click()
    expect(page.locator("#api-result")).to_contain_text("HTTP 200\nx-user-id: user_demo_member")
    screenshot(page, "04-api-me")

    # 5. Signing out (FakeClerk's DELETE /v1/client) goes home and clears the app's cookies.
    page.get_by_role("button", name="Sign out", exact=True).click()
    page.wait_for_url(f"{base}/")
    expect(page.get_by_text("You are signed out.")).to_be_visible()
    assert app_cookies(page) == {"__client_uat": "0"}
    screenshot(page, "05-signed-out")

    # 6. /dashboard redirects to sign-in again.
    page.goto(f"{base}/dashboard")
    assert page.url == sign_in_url(base)
    screenshot(page, "06-sign-in-again")

    # 7. The admin is let into /admin.
    page.get_by_role("button", name="Sign in as Ada Admin").click()
    page.wait_for_url(f"{base}/dashboard")
    expect(page.locator("#user-id")).to_have_text("user_demo_admin")
    response = page.goto(f"{base}/admin")
    assert page.url == f"{base}/admin"
    assert response is not None
    assert response.status == 200
    expect(page.get_by_role("heading", name="Admin")).to_be_visible()
    expect(page.locator("main")).to_contain_text("user_demo_admin")
    screenshot(page, "07-admin")

    assert problems == []
