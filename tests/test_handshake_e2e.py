"""End to end: a browser, the app behind ClerkMiddleware, and FakeClerk as Clerk's Frontend API
and Backend API, following every redirect as a browser would.

The browser has one cookie jar (host-only cookies, and ``Domain`` cookies shared by the app and
the Frontend API, as production's nonce cookie is) and reaches each origin through its own
httpx ASGI transport. Mirrors ``integration/tests/handshake.test.ts`` ("expired session token -
prod/dev", "Handshake result - prod/dev - nominal") and the loop guard's end-to-end behaviour.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urljoin, urlsplit

import httpx
import pytest
from starlette.applications import Starlette
from starlette.routing import Mount

from clerk_asgi.testing import FakeClerk, FakeClock, KeyPair

from ._handshake_helpers import FETCH, NAV, ORIGIN, answer, bapi_calls, make_fake, ran, site

pytestmark = pytest.mark.anyio

APP_HOST = "app.example.test"
FAPI_HOST = "clerk.example.test"
EXPIRED = "session-token-expired-refresh-non-eligible-no-refresh-cookie"


class Browser:
    """A browser: one cookie jar, an httpx transport per origin, redirects followed."""

    def __init__(self, transports: dict[str, httpx.AsyncBaseTransport]) -> None:
        self.client = httpx.AsyncClient(mounts=transports)
        #: (domain, host_only, name) -> value
        self.jar: dict[tuple[str, bool, str], str] = {}

    def set(self, host: str, name: str, value: str) -> None:
        self.jar[(host, True, name)] = value

    def cookies(self, host: str) -> dict[str, str]:
        """The cookies sent to ``host``."""
        return {
            name: value
            for (domain, host_only, name), value in self.jar.items()
            if domain == host or (not host_only and host.endswith("." + domain))
        }

    def store(self, host: str, response: httpx.Response) -> None:
        for directive in response.headers.get_list("set-cookie"):
            pair, *attributes = [part.strip() for part in directive.split(";")]
            name, _, value = pair.partition("=")
            options = dict(a.partition("=")[::2] for a in attributes)
            domain = options.get("Domain", "").lstrip(".")
            key = (domain or host, not domain, name)
            if options.get("Max-Age") == "0" or not value:
                self.jar.pop(key, None)
            else:
                self.jar[key] = value

    async def visit(
        self, url: str, headers: dict[str, str] = NAV, limit: int = 12
    ) -> list[httpx.Response]:
        """Load ``url`` and follow the redirects; every response, in order."""
        chain: list[httpx.Response] = []
        for _ in range(limit):
            host = urlsplit(url).hostname or ""
            cookies = "; ".join(f"{k}={v}" for k, v in self.cookies(host).items())
            sent = {**headers, **({"cookie": cookies} if cookies else {})}
            response = await self.client.get(url, headers=sent)
            self.store(host, response)
            chain.append(response)
            if response.status_code not in (301, 302, 303, 307, 308):
                return chain
            url = urljoin(url, response.headers["location"])
        raise AssertionError(f"more than {limit} redirects")

    async def aclose(self) -> None:
        await self.client.aclose()


def hops(chain: list[httpx.Response]) -> list[tuple[int, str]]:
    """Each response's status and where it was served (origin + path)."""
    return [(r.status_code, f"{r.request.url.host}{r.request.url.path}") for r in chain]


async def returning_visitor(
    key: KeyPair, clock: FakeClock, instance: Any, **options: Any
) -> tuple[FakeClerk, Browser, str]:
    """A browser signed in an hour ago whose session token has expired since."""
    fake = make_fake(key, clock, instance)
    client = fake.sign_in(fake.add_user("user_1"))
    browser = Browser(
        {
            f"https://{APP_HOST}": httpx.ASGITransport(site(fake, clock, **options)),
            f"https://{FAPI_HOST}": httpx.ASGITransport(fake),
        }
    )
    browser.set(FAPI_HOST, "__client", client.token)
    browser.set(APP_HOST, "__session", fake.session_token(client.session_id))
    browser.set(APP_HOST, "__client_uat", str(int(clock.now)))
    if client.dev_browser is not None:  # clerk-js keeps the dev browser on the app's host
        browser.set(APP_HOST, "__clerk_db_jwt", client.dev_browser)
    clock.advance(120)
    return fake, browser, client.session_id


async def test_production_expired_session_comes_back_signed_in(
    key: KeyPair, clock: FakeClock
) -> None:
    """Production: expired session, to the Frontend API and back with a nonce cookie, signed in."""
    fake, browser, session_id = await returning_visitor(key, clock, "production")
    chain = await browser.visit(ORIGIN + "/dashboard?tab=1")
    again = await browser.visit(ORIGIN + "/dashboard")
    await browser.aclose()
    assert hops(chain) == [
        (307, f"{APP_HOST}/dashboard"),
        (307, f"{FAPI_HOST}/v1/client/handshake"),
        (200, f"{APP_HOST}/dashboard"),
    ]
    assert chain[-1].request.url == ORIGIN + "/dashboard?tab=1"
    assert chain[-1].json() == {"user_id": "user_1", "session_id": session_id, "reason": None}
    assert [h.reason for h in fake.handshakes] == [EXPIRED]
    cookies = browser.cookies(APP_HOST)
    assert cookies["__client_uat"] == str(int(clock.now) - 120)
    # The nonce cookie (Domain=example.test) is cleared with its Domain: the next page load
    # sends only the fresh session, signed in without a handshake or a Backend API call.
    assert "__clerk_handshake_nonce" not in cookies
    assert hops(again) == [(200, f"{APP_HOST}/dashboard")]
    assert again[0].json()["user_id"] == "user_1"
    assert len(fake.handshakes) == 1
    assert len(bapi_calls(fake)) == 1


async def test_development_expired_session_comes_back_signed_in(
    key: KeyPair, clock: FakeClock
) -> None:
    """Development: back with the nonce in the query, 307 to the clean URL, then signed in."""
    fake, browser, session_id = await returning_visitor(key, clock, "development")
    chain = await browser.visit(ORIGIN + "/dashboard?tab=1")
    await browser.aclose()
    assert hops(chain) == [
        (307, f"{APP_HOST}/dashboard"),
        (307, f"{FAPI_HOST}/v1/client/handshake"),
        (307, f"{APP_HOST}/dashboard"),
        (200, f"{APP_HOST}/dashboard"),
    ]
    assert "__clerk_handshake_nonce=" in str(chain[2].request.url)
    assert chain[-1].request.url == ORIGIN + "/dashboard?tab=1"
    assert answer(chain[-1]) == ran("user_1", session_id)
    assert len(bapi_calls(fake)) == 1


@pytest.mark.parametrize("instance", ["production", "development"])
async def test_signed_out_client_ends_signed_out(
    key: KeyPair, clock: FakeClock, instance: str
) -> None:
    """A client signed out elsewhere comes back with its cookies cleared, to the sign-in page."""
    fake, browser, session_id = await returning_visitor(key, clock, instance)
    fake.sign_out(session_id)
    chain = await browser.visit(ORIGIN + "/dashboard")
    await browser.aclose()
    statuses = [r.status_code for r in chain]
    assert statuses == [307, 307, 307, 200] if instance == "production" else [307] * 4 + [200]
    assert chain[-1].request.url.path == "/sign-in"
    assert chain[-1].json() == {
        "user_id": None,
        "session_id": None,
        "reason": "session-token-and-uat-missing",
    }
    cookies = browser.cookies(APP_HOST)
    assert "__session" not in cookies
    assert cookies["__client_uat"] == "0"
    assert [h.signed_in for h in fake.handshakes] == [False]


@pytest.mark.parametrize("instance", ["production", "development"])
async def test_failing_frontend_api_stops_after_three_handshakes(
    key: KeyPair, clock: FakeClock, instance: str
) -> None:
    """A Frontend API that resolves nothing: three handshakes, then the sign-in page."""
    fake, browser, _ = await returning_visitor(key, clock, instance)
    fake.failing = True
    chain = await browser.visit(ORIGIN + "/dashboard")
    assert hops(chain) == [
        *[(307, f"{APP_HOST}/dashboard"), (307, f"{FAPI_HOST}/v1/client/handshake")] * 3,
        (307, f"{APP_HOST}/dashboard"),
        (200, f"{APP_HOST}/sign-in"),
    ]
    assert chain[-2].headers["x-clerk-auth-status"] == "signed-out"
    assert chain[-2].headers["x-clerk-auth-reason"] == EXPIRED
    assert len(fake.handshakes) == 3
    assert bapi_calls(fake) == []
    api = await browser.visit(ORIGIN + "/api/things", headers=FETCH)
    await browser.aclose()
    assert [r.status_code for r in api] == [401]
    assert api[0].headers["x-clerk-auth-reason"] == EXPIRED
    assert len(fake.handshakes) == 3


async def test_relative_proxy_round_trip(key: KeyPair, clock: FakeClock) -> None:
    """proxy_url='/__clerk': the handshake goes through the app's origin and comes back."""
    fake = FakeClerk(
        key=key, clock=clock, instance="production", origin=ORIGIN, proxy_path="/__clerk"
    )
    client = fake.sign_in(fake.add_user("user_1"))
    app = Starlette(
        routes=[Mount("/__clerk", fake), Mount("/", site(fake, clock, proxy_url="/__clerk"))]
    )
    browser = Browser({f"https://{APP_HOST}": httpx.ASGITransport(app)})
    browser.set(APP_HOST, "__client", client.token)
    browser.set(APP_HOST, "__session", fake.session_token(client.session_id))
    browser.set(APP_HOST, "__client_uat", str(int(clock.now)))
    clock.advance(120)
    chain = await browser.visit(ORIGIN + "/dashboard")
    await browser.aclose()
    assert hops(chain) == [
        (307, f"{APP_HOST}/dashboard"),
        (307, f"{APP_HOST}/__clerk/v1/client/handshake"),
        (200, f"{APP_HOST}/dashboard"),
    ]
    assert answer(chain[-1])["body"]["user_id"] == "user_1"
