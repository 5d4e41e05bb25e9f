"""Swagger UI in real Chromium: the lock, the Authorize dialog and "Try it out" on /api/me.

The app is served by uvicorn on a free loopback port (in a thread of this process, so the test
mints its tokens with the same MockClerk key the middleware trusts). Swagger UI's JavaScript
and CSS come from the swagger-ui-bundle-v2 package through StaticFiles, never from a CDN: the
page may not request anything off this server. Screenshots land in test-artifacts/e2e/.
"""

from __future__ import annotations

import json
import socket
import threading
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
import uvicorn
from fastapi import FastAPI
from fastapi.openapi.docs import get_swagger_ui_html
from fastapi.responses import HTMLResponse
from fastapi.staticfiles import StaticFiles
from playwright.sync_api import Page, Request, expect
from swagger_ui_bundle import swagger_ui_path

from clerk_asgi import API_DOCS, ClerkMiddleware, Rule
from clerk_asgi.fastapi import SignedInAuth, auth_responses
from clerk_asgi.testing import MockClerk

from .conftest import ARTIFACTS, START_TIMEOUT, STOP_TIMEOUT

pytestmark = pytest.mark.e2e

CLERK = MockClerk()
USER_ID = "user_swagger"
ASSETS = "/static/swagger-ui"


def swagger_app() -> FastAPI:
    """FastAPI without its CDN-backed /docs: the same page, with Swagger UI served locally."""
    app = FastAPI(title="Swagger e2e", docs_url=None, redoc_url=None)
    app.mount(ASSETS, StaticFiles(directory=str(swagger_ui_path)), name="swagger-ui")

    @app.get("/docs", include_in_schema=False)
    async def docs() -> HTMLResponse:
        return get_swagger_ui_html(
            openapi_url="/openapi.json",
            title="Swagger e2e - Swagger UI",
            swagger_js_url=f"{ASSETS}/swagger-ui-bundle.js",
            swagger_css_url=f"{ASSETS}/swagger-ui.css",
            swagger_favicon_url=f"{ASSETS}/favicon-32x32.png",
            swagger_ui_parameters={"validatorUrl": None},
        )

    @app.get("/api/me", responses=auth_responses(forbidden=False))
    async def me(auth: SignedInAuth) -> dict[str, Any]:
        return {"user_id": auth.user_id}

    rules = [Rule.public(API_DOCS, f"{ASSETS}/:path*"), Rule.api("/api/:path*")]
    app.add_middleware(ClerkMiddleware, **CLERK.middleware_options(rules=rules))
    return app


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@pytest.fixture(scope="module")
def swagger_url() -> Iterator[str]:
    """The app, served by uvicorn on 127.0.0.1 in a background thread; its base URL."""
    port = _free_port()
    config = uvicorn.Config(swagger_app(), host="127.0.0.1", port=port, log_level="warning")
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, name="uvicorn-swagger", daemon=True)
    thread.start()
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + START_TIMEOUT
        while not server.started:
            if not thread.is_alive() or time.monotonic() > deadline:
                pytest.fail(f"uvicorn did not start on {url} within {START_TIMEOUT} s")
            time.sleep(0.05)
        yield url
    finally:
        server.should_exit = True
        thread.join(STOP_TIMEOUT)


def screenshot(page: Page, name: str) -> None:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=ARTIFACTS / f"{name}.png", full_page=True)


def open_docs(page: Page, base: str) -> list[str]:
    """Open /docs and wait for the /api/me operation; returns the list of off-server requests."""
    elsewhere: list[str] = []

    def on_request(request: Request) -> None:
        if not request.url.startswith(base + "/"):
            elsewhere.append(request.url)

    page.on("request", on_request)
    response = page.goto(f"{base}/docs")
    assert response is not None
    assert response.status == 200
    expect(page.locator("#operations-default-me_api_me_get")).to_be_visible()
    return elsewhere


def execute_me(page: Page) -> tuple[str, str]:
    """Expand GET /api/me, "Try it out", "Execute"; the status and body Swagger UI shows."""
    operation = page.locator("#operations-default-me_api_me_get")
    if "is-open" not in (operation.get_attribute("class") or "").split():
        operation.locator(".opblock-summary").click()
    operation.get_by_role("button", name="Try it out").click()
    operation.get_by_role("button", name="Execute").click()
    live = operation.locator(".live-responses-table .response")
    expect(live).to_be_visible()
    status = live.locator(".response-col_status").inner_text().strip()
    body = live.locator(".response-col_description pre.microlight").first.inner_text()
    return status, body


def test_swagger_ui_authorize_then_try_it_out(page: Page, swagger_url: str) -> None:
    """Signed out, Execute shows 401; after Authorize with a session token it shows 200."""
    base = swagger_url

    # Public docs: /docs and /openapi.json load signed out, with no request off this server.
    elsewhere = open_docs(page, base)
    operation = page.locator("#operations-default-me_api_me_get")
    expect(operation.locator(".authorization__btn")).to_have_attribute(
        "aria-label", "authorization button unlocked"
    )
    expect(page.locator(".auth-wrapper .authorize")).to_be_visible()
    screenshot(page, "swagger-01-docs")

    # Without authorizing: the middleware's 401 JSON, shown by Swagger UI.
    status, body = execute_me(page)
    assert status == "401"
    assert json.loads(body) == {
        "error": "unauthorized",
        "reason": "session-token-missing",
        "message": "Sign in to continue.",
    }
    screenshot(page, "swagger-02-signed-out-401")

    # Authorize: paste a real session token into the bearer scheme, close the dialog.
    page.goto(f"{base}/docs")  # a fresh page: no "Try it out" state, the operation closed
    expect(operation).to_be_visible()
    page.locator(".auth-wrapper .authorize").click()
    dialog = page.locator(".dialog-ux .modal-ux")
    expect(dialog).to_be_visible()
    expect(dialog.locator("h4").nth(0)).to_contain_text("ClerkSessionToken")
    expect(dialog.locator("h4").nth(0)).to_contain_text("(http, Bearer)")
    expect(dialog.locator("h4").nth(1)).to_contain_text("ClerkSessionCookie")
    expect(dialog.locator("h4").nth(1)).to_contain_text("(apiKey)")
    token = CLERK.token(user_id=USER_ID, expires_in=600)
    scheme = dialog.locator(".auth-container").filter(has_text="ClerkSessionToken")
    scheme.get_by_role("textbox").fill(token)
    scheme.locator("button.authorize").click()
    expect(scheme.locator("button", has_text="Logout")).to_be_visible()
    screenshot(page, "swagger-03-authorized")
    scheme.locator("button.btn-done").click()
    expect(dialog).to_be_hidden()
    expect(operation.locator(".authorization__btn")).to_have_attribute(
        "aria-label", "authorization button locked"
    )

    # Try it out again: Swagger UI sends the token, the middleware verifies it, 200.
    status, body = execute_me(page)
    assert status == "200"
    assert json.loads(body) == {"user_id": USER_ID}
    curl = operation.locator(".curl-command").inner_text()
    assert f"Authorization: Bearer {token}" in curl
    screenshot(page, "swagger-04-authorized-200")

    assert elsewhere == []
    # The same token, outside the browser, is what the middleware accepted.
    r = httpx.get(f"{base}/api/me", headers={"authorization": f"Bearer {token}"})
    assert r.status_code == 200
    assert r.json() == {"user_id": USER_ID}
