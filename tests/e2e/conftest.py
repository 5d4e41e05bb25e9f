"""The example app served by uvicorn on a free loopback port, and headless Chromium (one per
module, a fresh context per test).

The server is started exactly as a developer would (``uvicorn --app-dir examples app:app``),
in development mode (no Clerk key passed on: FakeClerk) with its fake clock on
(``CLERK_EXAMPLE_FAKE_CLOCK=1``), once for the session. The browser is Debian's Chromium
(``apt-get install chromium``); Playwright never downloads one.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from playwright.sync_api import Browser, ConsoleMessage, Error, Page, sync_playwright

ROOT = Path(__file__).resolve().parents[2]
CHROMIUM = Path("/usr/bin/chromium")
#: The flags that work on these machines (no sandbox as root, no background connections).
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
#: Screenshots of each step, kept as test artifacts (test-artifacts/ is gitignored).
ARTIFACTS = ROOT / "test-artifacts" / "e2e"
START_TIMEOUT = 20.0
STOP_TIMEOUT = 10.0
STEP_TIMEOUT_MS = 10_000


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _wait_until_serving(process: subprocess.Popen[bytes], url: str, log: Path) -> None:
    """Poll the public ping endpoint until it answers, the server dies, or time runs out."""
    deadline = time.monotonic() + START_TIMEOUT
    while time.monotonic() < deadline:
        if process.poll() is not None:
            pytest.fail(f"The example server exited ({process.returncode}):\n{log.read_text()}")
        try:
            if httpx.get(f"{url}/api/public/ping", timeout=1.0).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.1)
    pytest.fail(f"The example server did not answer within {START_TIMEOUT} s:\n{log.read_text()}")


@pytest.fixture(scope="session")
def chromium() -> Path:
    """Debian's Chromium, or a skip saying how to install it (a failure under CI)."""
    if not CHROMIUM.exists():
        if os.environ.get("CI"):
            pytest.fail(f"Chromium not found at {CHROMIUM}; CI needs it: apt-get install chromium")
        pytest.skip(f"Chromium not found at {CHROMIUM}: apt-get install chromium")
    return CHROMIUM


@pytest.fixture(scope="session")
def example_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The example (development mode, fake clock) served by uvicorn in a subprocess; its URL."""
    port = _free_port()
    url = f"http://127.0.0.1:{port}"
    env = {name: value for name, value in os.environ.items() if not name.startswith("CLERK_")}
    env["CLERK_EXAMPLE_FAKE_CLOCK"] = "1"
    log = tmp_path_factory.mktemp("example") / "uvicorn.log"
    command = [sys.executable, "-m", "uvicorn", "--app-dir", "examples", "app:app"]
    command += ["--host", "127.0.0.1", "--port", str(port)]
    with log.open("wb") as output:
        # S603: our own interpreter and fixed arguments, no shell.
        process = subprocess.Popen(  # noqa: S603
            command, cwd=ROOT, env=env, stdout=output, stderr=subprocess.STDOUT
        )
        try:
            _wait_until_serving(process, url, log)
            yield url
        finally:
            process.terminate()
            try:
                process.wait(timeout=STOP_TIMEOUT)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(timeout=STOP_TIMEOUT)


@pytest.fixture(scope="module")
def browser(chromium: Path) -> Iterator[Browser]:
    """Headless Chromium for one test module (stopped before the next module runs)."""
    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(
            executable_path=chromium, headless=True, args=CHROMIUM_ARGS
        )
        try:
            yield launched
        finally:
            launched.close()


@pytest.fixture
def page(browser: Browser) -> Iterator[Page]:
    """A page in a fresh browser context: no cookies, storage or cache from other tests."""
    context = browser.new_context(viewport={"width": 1100, "height": 820})
    context.set_default_timeout(STEP_TIMEOUT_MS)
    try:
        yield context.new_page()
    finally:
        context.close()


def screenshot(page: Page, name: str) -> None:
    """Save a full-page screenshot as test-artifacts/e2e/<name>.png."""
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=ARTIFACTS / f"{name}.png", full_page=True)


def advance_clock(base: str, seconds: float) -> None:
    """Move the example's fake server clock ``seconds`` forward (``POST /__dev/clock``)."""
    r = httpx.post(f"{base}/__dev/clock", params={"advance": str(seconds)})
    assert r.status_code == 200, r.text


def set_fakeclerk_failing(base: str, failing: bool) -> None:
    """Make FakeClerk's handshake fail (or work again): ``POST /__dev/fakeclerk?failing=``."""
    r = httpx.post(f"{base}/__dev/fakeclerk", params={"failing": "1" if failing else "0"})
    assert r.status_code == 200, r.text
    assert r.json()["failing"] is failing


def handshakes(base: str) -> list[dict[str, Any]]:
    """FakeClerk's record of every handshake so far, oldest first (``GET /__dev/fakeclerk``)."""
    r = httpx.get(f"{base}/__dev/fakeclerk")
    assert r.status_code == 200, r.text
    found: list[dict[str, Any]] = r.json()["handshakes"]
    return found


def failed_load(status: int, phrase: str) -> str:
    """Chromium's console note on a resource answered with an error status."""
    return f"Failed to load resource: the server responded with a status of {status} ({phrase})"


def watch_for_problems(page: Page, *expected: tuple[str, str]) -> list[str]:
    """Console errors and page errors seen from now on, except the ``(message, url)`` pairs
    expected (Chromium notes every 401/403/429 a page receives, even one it handles)."""
    problems: list[str] = []

    def on_console(message: ConsoleMessage) -> None:
        if message.type == "error" and (message.text, message.location["url"]) not in expected:
            problems.append(message.text)

    def on_page_error(error: Error) -> None:
        problems.append(str(error))

    page.on("console", on_console)
    page.on("pageerror", on_page_error)
    return problems
