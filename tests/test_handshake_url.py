"""The handshake URL and the URLs back: which requests are handed off, the parameters in Clerk's
order and ``URLSearchParams`` encoding, the proxy, ``public_origin``, and the development return
to the clean URL.

Mirrors ``@clerk/backend`` ``handshake.test.ts``: ``isRequestEligibleForHandshake``,
``buildRedirectToHandshake`` and "Query Parameter Cleanup". Expected URLs are spelled out.
"""

from __future__ import annotations

import pytest

from clerk_asgi._handshake import form_encode, without_params
from clerk_asgi.testing import FakeClock, KeyPair

from ._handshake_helpers import (
    API_VERSION,
    FAPI,
    HANDSHAKE,
    NAV,
    ORIGIN,
    answer,
    bapi_calls,
    carried,
    counter,
    fapi_handshake,
    handshake,
    make_fake,
    params,
    ran,
    request,
    session_token,
    site,
)

pytestmark = pytest.mark.anyio

REASON = "client-uat-but-no-session-token"
EXPIRED = "session-token-expired-refresh-non-eligible-no-refresh-cookie"

# -- isRequestEligibleForHandshake --------------------------------------------------------------

ELIGIBILITY = [
    pytest.param("GET", {"sec-fetch-dest": "document"}, True, id="document"),
    pytest.param("GET", {"sec-fetch-dest": "iframe"}, True, id="iframe"),
    pytest.param("GET", {"accept": "text/html"}, True, id="text/html-without-sec-fetch-dest"),
    pytest.param("GET", {"accept": "text/html,application/xhtml+xml"}, True, id="text/html-first"),
    pytest.param("GET", {"sec-fetch-dest": "image", "accept": "image/png"}, False, id="image"),
    pytest.param("GET", {"accept": "image/png"}, False, id="image-without-sec-fetch-dest"),
    pytest.param(
        "GET", {"sec-fetch-dest": "empty", "accept": "text/html"}, False, id="fetch-asking-html"
    ),
    pytest.param("GET", {"accept": "application/json, text/html"}, False, id="text/html-later"),
    pytest.param("GET", {"accept": "TEXT/HTML"}, False, id="text/html-case-sensitive"),
    pytest.param("GET", {}, False, id="no-hints"),
    pytest.param("POST", {"sec-fetch-dest": "document"}, False, id="POST-document"),
    pytest.param("PUT", {"sec-fetch-dest": "document"}, False, id="PUT-document"),
    pytest.param("POST", {"accept": "text/html"}, False, id="POST-text/html"),
    pytest.param("HEAD", {"sec-fetch-dest": "document"}, False, id="HEAD-document"),
    pytest.param("OPTIONS", {"sec-fetch-dest": "document"}, False, id="OPTIONS-document"),
]


@pytest.mark.parametrize(("method", "headers", "eligible"), ELIGIBILITY)
async def test_eligible_for_handshake(
    key: KeyPair, clock: FakeClock, method: str, headers: dict[str, str], eligible: bool
) -> None:
    """Only GET page loads are handed off; others are signed out (isRequestEligibleForHandshake)."""
    fake = make_fake(key, clock)
    response = await request(
        site(fake, clock),
        "/public/page",
        cookies={"__client_uat": "12345"},
        headers=headers,
        method=method,
    )
    if eligible:
        assert response.status_code == 307
        assert response.headers["location"].startswith(HANDSHAKE + "?redirect_url=")
    elif method == "HEAD":
        assert (response.status_code, response.headers["content-type"]) == (200, "application/json")
    else:
        assert answer(response) == ran(None, reason=REASON)


# -- buildRedirectToHandshake -------------------------------------------------------------------


async def test_worked_example_location(key: KeyPair, clock: FakeClock) -> None:
    """An expired session on a page load: the handshake Location exactly, in Clerk's order."""
    fake = make_fake(key, clock)
    expired = session_token(key, clock, issued=-120)
    response = await request(
        site(fake, clock),
        "/dashboard?tab=1",
        cookies={"__client_uat": "12345", "__session": expired},
    )
    location = (
        "https://clerk.example.test/v1/client/handshake"
        "?redirect_url=https%3A%2F%2Fapp.example.test%2Fdashboard%3Ftab%3D1"
        "&__clerk_api_version=2026-05-12&suffixed_cookies=false"
        f"&__clerk_hs_reason={EXPIRED}&format=nonce&__session={expired}"
    )
    detail = (
        "The session token has expired; fetch a fresh one and retry. "
        "(reason=token-expired, token-carrier=cookie)"
    )
    assert answer(response) == handshake(location, EXPIRED, detail=detail)


async def test_urlsearchparams_encoding(key: KeyPair, clock: FakeClock) -> None:
    """redirect_url re-serialised and encoded as URLSearchParams: space +, ~ %7E, * kept."""
    fake = make_fake(key, clock)
    query = "q=a+b&x=%7E&y=*&z=%20&w=caf%C3%A9&e=&__clerk_db_jwt=old&__dev_session=old2&k"
    response = await request(
        site(fake, clock), f"/caf%C3%A9/a~b*c?{query}", cookies={"__client_uat": "12345"}
    )
    assert response.headers["location"] == (
        f"{HANDSHAKE}?redirect_url=https%3A%2F%2Fapp.example.test%2Fcaf%25C3%25A9%2Fa%7Eb*c"
        "%3Fq%3Da%2Bb%26x%3D%257E%26y%3D*%26z%3D%2B%26w%3Dcaf%25C3%25A9%26e%3D%26k%3D"
        f"&__clerk_api_version={API_VERSION}&suffixed_cookies=false"
        f"&__clerk_hs_reason={REASON}&format=nonce"
    )


async def test_dev_browser_and_session_values_are_form_encoded(
    key: KeyPair, clock: FakeClock
) -> None:
    """__session and __clerk_db_jwt are sent as they are, form-encoded, last, in that order."""
    fake = make_fake(key, clock, "development")
    cookies = {"__clerk_db_jwt": "a b~c*d%2Fe", "__session": "x y~z"}
    response = await request(site(fake, clock), "/", cookies=cookies)
    assert response.headers["location"] == (
        f"{HANDSHAKE}?redirect_url=https%3A%2F%2Fapp.example.test%2F"
        f"&__clerk_api_version={API_VERSION}&suffixed_cookies=false"
        "&__clerk_hs_reason=session-token-but-no-client-uat&format=nonce"
        "&__session=x+y%7Ez&__clerk_db_jwt=a+b%7Ec*d%2Fe"
    )


async def test_dev_browser_only_in_development(key: KeyPair, clock: FakeClock) -> None:
    """A production instance never sends __clerk_db_jwt (handshake.test.ts dev browser case)."""
    fake = make_fake(key, clock)
    cookies = {"__clerk_db_jwt": "dvb_1", "__client_uat": "12345"}
    response = await request(site(fake, clock), "/", cookies=cookies)
    assert [name for name, _ in params(response.headers["location"])] == [
        "redirect_url",
        "__clerk_api_version",
        "suffixed_cookies",
        "__clerk_hs_reason",
        "format",
    ]


async def test_dev_browser_sync_sends_the_query_value(key: KeyPair, clock: FakeClock) -> None:
    """A query __clerk_db_jwt: dev-browser-sync, sent on, not in redirect_url (External visit)."""
    fake = make_fake(key, clock, "development")
    response = await request(
        site(fake, clock),
        "/dashboard?__clerk_db_jwt=asdf&tab=1",
        cookies={"__clerk_db_jwt": "dvb_old", "__client_uat": "0"},
    )
    assert params(response.headers["location"]) == [
        ("redirect_url", ORIGIN + "/dashboard?tab=1"),
        ("__clerk_api_version", API_VERSION),
        ("suffixed_cookies", "false"),
        ("__clerk_hs_reason", "dev-browser-sync"),
        ("format", "nonce"),
        ("__clerk_db_jwt", "asdf"),
    ]
    assert response.headers["x-clerk-auth-reason"] == "dev-browser-sync"


PROXIES = [
    pytest.param(
        "https://proxy.example.test/__clerk",
        None,
        {},
        "https://proxy.example.test/__clerk",
        id="abs",
    ),
    pytest.param(
        "https://proxy.example.test/__clerk/",
        None,
        {},
        "https://proxy.example.test/__clerk",
        id="abs-slash",
    ),
    pytest.param(
        "https://proxy.example.test/__clerk///",
        None,
        {},
        "https://proxy.example.test/__clerk",
        id="abs-slashes",
    ),
    pytest.param(
        "https://proxy.example.test", None, {}, "https://proxy.example.test", id="abs-no-path"
    ),
    pytest.param(
        "http://localhost:3000/clerk", None, {}, "http://localhost:3000/clerk", id="http-localhost"
    ),
    pytest.param("/__clerk", None, {}, "https://app.example.test/__clerk", id="relative"),
    pytest.param("/__clerk/", None, {}, "https://app.example.test/__clerk", id="relative-slash"),
    pytest.param(
        "/__clerk",
        None,
        {"host": "app.example.test:8443"},
        "https://app.example.test:8443/__clerk",
        id="relative-port",
    ),
    pytest.param(
        "/__clerk",
        "https://www.example.test",
        {"host": "evil.example"},
        "https://www.example.test/__clerk",
        id="relative-public-origin",
    ),
    pytest.param(None, None, {}, FAPI, id="no-proxy-frontend-api-made-https"),
]


@pytest.mark.parametrize(("proxy", "public_origin", "headers", "base"), PROXIES)
async def test_proxy_url(
    key: KeyPair,
    clock: FakeClock,
    proxy: str | None,
    public_origin: str | None,
    headers: dict[str, str],
    base: str,
) -> None:
    """The handshake goes to the proxy, kept as a path prefix (handshake.test.ts proxy cases)."""
    fake = make_fake(key, clock)
    app = site(fake, clock, proxy_url=proxy, public_origin=public_origin)
    response = await request(
        app, "/page", cookies={"__client_uat": "12345"}, headers={**NAV, **headers}
    )
    location = response.headers["location"]
    assert location.partition("?")[0] == base + "/v1/client/handshake"
    host = headers.get("host", "app.example.test")
    assert params(location)[0] == ("redirect_url", f"{public_origin or 'https://' + host}/page")


async def test_proxy_url_from_the_environment(
    key: KeyPair, clock: FakeClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    """CLERK_PROXY_URL is where the handshake goes when proxy_url= is not given."""
    monkeypatch.setenv("CLERK_PROXY_URL", "/clerk-proxy")
    fake = make_fake(key, clock)
    response = await request(site(fake, clock), "/", cookies={"__client_uat": "1"})
    assert response.headers["location"].startswith(
        "https://app.example.test/clerk-proxy/v1/client/handshake?"
    )


async def test_redirect_url_on_public_origin(key: KeyPair, clock: FakeClock) -> None:
    """redirect_url is built on public_origin, whatever Host says; dev parameters removed."""
    fake = make_fake(key, clock)
    app = site(fake, clock, public_origin="https://www.example.test")
    response = await request(
        app,
        "/a/b?__dev_session=x&keep=1&__clerk_db_jwt=y",
        cookies={"__client_uat": "12345"},
        headers={**NAV, "host": "attacker.example", "x-forwarded-host": "attacker.example"},
    )
    assert params(response.headers["location"])[0] == (
        "redirect_url",
        "https://www.example.test/a/b?keep=1",
    )


async def test_long_url_goes_back_to_the_root(key: KeyPair, clock: FakeClock) -> None:
    """A request URL over 2 KiB comes back to the origin's root (browsers cut long URLs)."""
    fake = make_fake(key, clock)
    response = await request(
        site(fake, clock), "/p?" + "a" * 3000, cookies={"__client_uat": "12345"}
    )
    assert params(response.headers["location"])[0] == ("redirect_url", ORIGIN + "/")


# -- form_encode and without_params ------------------------------------------------------------

ENCODED = [
    pytest.param("", "", id="empty"),
    pytest.param("a b", "a+b", id="space-plus"),
    pytest.param("~", "%7E", id="tilde"),
    pytest.param("*-._", "*-._", id="kept"),
    pytest.param("AZaz09", "AZaz09", id="alphanumerics"),
    pytest.param("!'()", "%21%27%28%29", id="sub-delims"),
    pytest.param("+&=?#/%", "%2B%26%3D%3F%23%2F%25", id="reserved"),
    pytest.param("é€", "%C3%A9%E2%82%AC", id="utf-8"),
]


@pytest.mark.parametrize(("value", "encoded"), ENCODED)
def test_form_encode(value: str, encoded: str) -> None:
    """Values are encoded as URLSearchParams does (application/x-www-form-urlencoded)."""
    assert form_encode(value) == encoded


CLEANED = [
    pytest.param("https://a.test/p", "https://a.test/p", id="no-query"),
    pytest.param("https://a.test/p?drop=1", "https://a.test/p", id="only-dropped"),
    pytest.param("https://a.test/p?a=1&drop=2&b=3", "https://a.test/p?a=1&b=3", id="kept-order"),
    pytest.param("https://a.test/p?a=%20&b=+", "https://a.test/p?a=+&b=+", id="reserialised"),
    pytest.param("https://a.test/p?a=1&a=2", "https://a.test/p?a=1&a=2", id="repeated"),
    pytest.param("https://a.test/p?a&&b=", "https://a.test/p?a=&b=", id="blank"),
    pytest.param("https://a.test/p?drop=1#top", "https://a.test/p#top", id="fragment"),
    pytest.param("https://a.test/p?x=1&drop=2#t", "https://a.test/p?x=1#t", id="fragment-kept"),
]


@pytest.mark.parametrize(("url", "cleaned"), CLEANED)
def test_without_params(url: str, cleaned: str) -> None:
    """Removing parameters re-serialises the query as URLSearchParams; the fragment is kept."""
    assert without_params(url, frozenset({"drop"})) == cleaned


# -- Query Parameter Cleanup ------------------------------------------------------------------

CLEANUP = [
    pytest.param("/page?{nonce}", "/page", id="only-handshake-params"),
    pytest.param("/page?foo=bar&{nonce}", "/page?foo=bar", id="keeps-others"),
    pytest.param(
        "/page?__clerk_help=1&{nonce}&__clerk_db_jwt=dvb&__clerk_handshake=tok&keep=1",
        "/page?keep=1",
        id="every-handshake-param",
    ),
    pytest.param(
        "/page?q=hello%20world&e=caf%C3%A9&plus=a%2Bb&{nonce}",
        "/page?q=hello+world&e=caf%C3%A9&plus=a%2Bb",
        id="encoded-values",
    ),
    pytest.param("/page?a=1&{nonce}&a=2", "/page?a=1&a=2", id="repeated-keys"),
    pytest.param("/?{nonce}", "/", id="root"),
]


@pytest.mark.parametrize(("path", "clean"), CLEANUP)
async def test_development_return_cleans_the_url(
    key: KeyPair, clock: FakeClock, path: str, clean: str
) -> None:
    """Development: 307 to the URL minus the handshake parameters, with every directive."""
    fake = make_fake(key, clock, "development")
    client = fake.sign_in(fake.add_user("user_1"))
    answered = await fapi_handshake(fake, client, ORIGIN + "/page")
    nonce = carried(answered, "__clerk_handshake_nonce")
    directives = list(fake.handshakes[-1].directives)
    cookies = {"__clerk_db_jwt": str(client.dev_browser)}
    response = await request(
        site(fake, clock),
        path.format(nonce=f"__clerk_handshake_nonce={nonce}"),
        cookies=cookies,
    )
    assert answer(response) == {
        "status": 307,
        "cache-control": "no-store",
        "location": ORIGIN + clean,
        "set-cookie": directives,
        "body": "",
    }
    assert len(bapi_calls(fake)) == 1


async def test_production_return_has_no_location(key: KeyPair, clock: FakeClock) -> None:
    """Production: no Location, no Cache-Control; the app's 200 carries every directive."""
    fake = make_fake(key, clock)
    client = fake.sign_in(fake.add_user("user_1"))
    answered = await fapi_handshake(fake, client, ORIGIN + "/dashboard?tab=1")
    nonce = carried(answered, "__clerk_handshake_nonce")
    directives = list(fake.handshakes[-1].directives)
    response = await request(
        site(fake, clock),
        "/dashboard?tab=1",
        cookies={"__client_uat": "12345", "__clerk_handshake_nonce": nonce},
    )
    assert answer(response) == ran("user_1", client.session_id, cookies=directives)


async def test_counter_cookie_has_no_path_domain_or_secure(key: KeyPair, clock: FakeClock) -> None:
    """The loop guard's cookie is Clerk's exactly: SameSite=Lax; HttpOnly; Max-Age=2 only."""
    fake = make_fake(key, clock)
    response = await request(site(fake, clock), "/", cookies={"__client_uat": "12345"})
    assert response.headers.get_list("set-cookie") == [counter(1)]
