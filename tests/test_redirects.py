"""The sign-in redirect: one Location on this origin, one redirect_url, whatever the request holds.

A signed-out page navigation gets 307 to ``sign_in_url`` with exactly one ``redirect_url``
parameter: the absolute URL the user asked for, encoded once, built on ``public_origin`` when
set, else on the request's scheme and validated ``Host`` (never ``X-Forwarded-*``), and the
origin root when longer than 2 KiB (docs/security.md "Decisions", docs/faq.md "My app runs
behind a proxy"). Hostile Host values and paths are driven through hand-built ASGI scopes.
"""

from __future__ import annotations

from urllib.parse import parse_qs, quote, urlsplit

import pytest

from clerk_asgi.testing import FakeClock, MockClerk

from ._middleware_helpers import (
    BROWSER,
    FETCH,
    ORIGIN,
    SIGN_IN,
    Spy,
    assert_401,
    assert_ran,
    assert_redirect,
    call,
    client,
    http_scope,
    make_app,
    middleware,
    redirect_url_of,
    response_headers,
    sign_in_location,
)

pytestmark = pytest.mark.anyio


# -- The Location: sign_in_url plus one redirect_url, the absolute original URL -------------------


async def test_sign_in_redirect_happy_path_shape(clerk: MockClerk, clock: FakeClock) -> None:
    """307 to sign_in_url with one redirect_url = the absolute original URL."""
    app = make_app(clerk, clock, public_origin=ORIGIN, sign_in_url=SIGN_IN)
    async with client(app) as c:
        r = await c.get("/dashboard?tab=2", headers=BROWSER)
    assert_redirect(
        r,
        "https://accounts.example.com/sign-in"
        "?redirect_url=https%3A%2F%2Fapp.example.com%2Fdashboard%3Ftab%3D2",
        "session-token-missing",
    )
    assert redirect_url_of(r.headers["location"]) == "https://app.example.com/dashboard?tab=2"


async def test_sign_in_url_comes_from_the_environment(
    clerk: MockClerk, clock: FakeClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    """CLERK_SIGN_IN_URL is the fallback for sign_in_url."""
    monkeypatch.setenv("CLERK_SIGN_IN_URL", SIGN_IN)
    async with client(make_app(clerk, clock, sign_in_url=None)) as c:
        r = await c.get("/dashboard", headers=BROWSER)
    assert_redirect(
        r,
        sign_in_location("https://app.example.com/dashboard", SIGN_IN),
        "session-token-missing",
    )


async def test_sign_in_redirect_is_built_on_public_origin(
    clerk: MockClerk, clock: FakeClock
) -> None:
    """Behind a proxy, redirect_url is built on public_origin, not on the request's host."""
    app = make_app(clerk, clock, public_origin="https://www.example.com")
    async with client(app) as c:
        r = await c.get("/dashboard/a?b=c", headers=BROWSER)
    assert_redirect(
        r, sign_in_location("https://www.example.com/dashboard/a?b=c"), "session-token-missing"
    )


async def test_sign_in_url_with_a_query_gets_the_parameter_appended(
    clerk: MockClerk, clock: FakeClock
) -> None:
    """A sign_in_url that has a query already gets '&redirect_url=...'."""
    app = make_app(clerk, clock, sign_in_url=SIGN_IN + "?lang=fr")
    async with client(app) as c:
        r = await c.get("/dashboard", headers=BROWSER)
    assert_redirect(
        r,
        SIGN_IN + "?lang=fr&redirect_url=https%3A%2F%2Fapp.example.com%2Fdashboard",
        "session-token-missing",
    )
    assert parse_qs(urlsplit(r.headers["location"]).query) == {
        "lang": ["fr"],
        "redirect_url": ["https://app.example.com/dashboard"],
    }


async def test_sign_in_url_with_a_fragment_keeps_redirect_url_in_the_query(
    clerk: MockClerk, clock: FakeClock
) -> None:
    """The redirect_url parameter goes in the query, before sign_in_url's fragment."""
    app = make_app(clerk, clock, sign_in_url=SIGN_IN + "#/factor-one")
    async with client(app) as c:
        r = await c.get("/dashboard", headers=BROWSER)
    location = r.headers["location"]
    assert urlsplit(location).fragment == "/factor-one"
    assert redirect_url_of(location) == "https://app.example.com/dashboard"


async def test_smuggled_redirect_url_stays_inside_the_one_parameter(
    clerk: MockClerk, clock: FakeClock
) -> None:
    """An inner &redirect_url= stays encoded inside the single redirect_url."""
    async with client(make_app(clerk, clock, public_origin=ORIGIN)) as c:
        r = await c.get("/dashboard?x=1&redirect_url=https://evil.com", headers=BROWSER)
    assert_redirect(
        r,
        "/sign-in?redirect_url=https%3A%2F%2Fapp.example.com%2Fdashboard%3Fx%3D1"
        "%26redirect_url%3Dhttps%3A%2F%2Fevil.com",
        "session-token-missing",
    )
    assert redirect_url_of(r.headers["location"]) == (
        "https://app.example.com/dashboard?x=1&redirect_url=https://evil.com"
    )


@pytest.mark.parametrize(
    ("path_length", "kept"),
    [(2024, True), (2025, False), (7 * 1024, False)],
    ids=["2048-chars-kept", "2049-chars-root", "7-KiB-root"],
)
async def test_long_redirect_url_falls_back_to_the_origin_root(
    clerk: MockClerk, clock: FakeClock, path_length: int, kept: bool
) -> None:
    """A redirect_url longer than 2 KiB becomes the origin root (the Location cannot grow)."""
    path = "/" + "a" * path_length
    assert (len(ORIGIN + path) <= 2048) is kept
    async with client(make_app(clerk, clock)) as c:
        r = await c.get(path, headers=BROWSER)
    expected = ORIGIN + path if kept else ORIGIN + "/"
    assert_redirect(r, sign_in_location(expected), "session-token-missing")


async def test_nested_redirect_url_is_carried_once_not_reparsed(
    clerk: MockClerk, clock: FakeClock
) -> None:
    """A request already carrying nested redirect_urls adds exactly one level."""
    nested = "https://app.example.com/a"
    for _ in range(5):
        nested = "https://app.example.com/sign-in?redirect_url=" + quote(nested, safe="")
    query = "redirect_url=" + quote(nested, safe="")
    async with client(make_app(clerk, clock)) as c:
        r = await c.get("/dashboard?" + query, headers=BROWSER)
    assert r.status_code == 307
    assert redirect_url_of(r.headers["location"]) == "https://app.example.com/dashboard?" + query


# -- Host and forwarding headers: public_origin, else the validated Host, never X-Forwarded-* -----


@pytest.mark.parametrize(
    "headers",
    [
        {"host": "evil.example"},
        {"x-forwarded-host": "evil.example"},
        {"x-forwarded-proto": "http"},
        {"x-forwarded-prefix": "/public"},
        {"forwarded": "host=evil.example;proto=http"},
        {"x-original-url": "/public/x", "x-rewrite-url": "/public/x"},
    ],
    ids=["host", "x-forwarded-host", "x-forwarded-proto", "x-forwarded-prefix", "forwarded", "iis"],
)
async def test_forwarding_headers_change_neither_rules_nor_redirect_with_public_origin(
    clerk: MockClerk, clock: FakeClock, headers: dict[str, str]
) -> None:
    """With public_origin, Host/X-Forwarded-* alter neither the rules nor redirect_url."""
    app = make_app(clerk, clock, public_origin=ORIGIN, sign_in_url=SIGN_IN)
    async with client(app) as c:
        page = await c.get("/admin?tab=2", headers={**BROWSER, **headers})
        api = await c.get("/api/admin/x", headers={**FETCH, **headers})
    assert_redirect(
        page,
        sign_in_location("https://app.example.com/admin?tab=2", SIGN_IN),
        "session-token-missing",
    )
    assert_401(api, "session-token-missing", presented=False)


@pytest.mark.parametrize(
    ("headers", "redirect_url"),
    [
        pytest.param({}, "https://app.example.com/dashboard", id="own-host"),
        pytest.param({"host": "evil.example"}, "https://evil.example/dashboard", id="host"),
        pytest.param(
            {"host": "app.example.com:8443"}, "https://app.example.com:8443/dashboard", id="port"
        ),
        pytest.param({"host": "[::1]:8000"}, "https://[::1]:8000/dashboard", id="ipv6"),
        pytest.param(
            {"x-forwarded-host": "evil.example"},
            "https://app.example.com/dashboard",
            id="x-forwarded-host-ignored",
        ),
        pytest.param(
            {"x-forwarded-proto": "http"},
            "https://app.example.com/dashboard",
            id="x-forwarded-proto-ignored",
        ),
    ],
)
async def test_redirect_url_without_public_origin_uses_the_request_host(
    clerk: MockClerk, clock: FakeClock, headers: dict[str, str], redirect_url: str
) -> None:
    """Without public_origin the validated Host header (never X-Forwarded-*) is used."""
    async with client(make_app(clerk, clock)) as c:
        r = await c.get("/dashboard", headers={**BROWSER, **headers})
    assert_redirect(r, sign_in_location(redirect_url), "session-token-missing")
    assert redirect_url_of(r.headers["location"]) == redirect_url


@pytest.mark.parametrize(
    "host",
    [
        b"[::1",
        b"a b",
        b"",
        b"evil.example/x",
        b"user@evil.example",
        b"evil.example:abc",
        b"evil.example\\@app",
        b"\xe9vil.example",
        b"evil.example\r\nx-injected: 1",
        b"a:b:1",
    ],
    ids=[
        "open-bracket",
        "space",
        "empty",
        "path",
        "userinfo",
        "bad-port",
        "backslash",
        "non-ascii",
        "crlf",
        "colons",
    ],
)
async def test_malformed_host_falls_back_to_the_server_address(
    clerk: MockClerk, clock: FakeClock, host: bytes
) -> None:
    """A malformed Host never reaches redirect_url; the server address is used, no 500."""
    spy = Spy()
    mw = middleware(spy, clerk, clock)
    nav = [(b"sec-fetch-dest", b"document")]
    sent = await call(mw, http_scope("/dashboard", nav, host=host))
    no_server = await call(mw, http_scope("/dashboard", nav, host=host, server=None))
    assert sent[0]["status"] == 307
    assert redirect_url_of(response_headers(sent)["location"]) == (
        "https://app.example.com/dashboard"
    )
    assert redirect_url_of(response_headers(no_server)["location"]) == (
        "https://localhost/dashboard"
    )
    assert spy.scopes == []


async def test_server_address_keeps_a_non_default_port(clerk: MockClerk, clock: FakeClock) -> None:
    """With no usable Host, a non-default server port is kept in redirect_url."""
    sent = await call(
        middleware(Spy(), clerk, clock),
        http_scope(
            "/dashboard",
            [(b"sec-fetch-dest", b"document")],
            host=None,
            server=("10.0.0.5", 8443),
        ),
    )
    assert redirect_url_of(response_headers(sent)["location"]) == "https://10.0.0.5:8443/dashboard"


# -- Hostile paths: redirect_url stays on this origin, percent-encoded, ASCII ---------------------


@pytest.mark.parametrize(
    ("raw_path", "path", "redirect_url"),
    [
        (b"//evil.com/x", "//evil.com/x", "https://app.example.com//evil.com/x"),
        (b"/\\evil.com", "/\\evil.com", "https://app.example.com/%5Cevil.com"),
        (b"/%5Cevil.com", "/\\evil.com", "https://app.example.com/%5Cevil.com"),
        (b"/%2F%2Fevil.com", "///evil.com", "https://app.example.com/%2F%2Fevil.com"),
        (b"/%09/evil.com", "/\t/evil.com", "https://app.example.com/%09/evil.com"),
        (b"/%0a/evil.com", "/\n/evil.com", "https://app.example.com/%0a/evil.com"),
        (b"/%0d/evil.com", "/\r/evil.com", "https://app.example.com/%0d/evil.com"),
        (b"/%0b/evil.com", "/\x0b/evil.com", "https://app.example.com/%0b/evil.com"),
        (b"/./\\evil.com", "/./\\evil.com", "https://app.example.com/./%5Cevil.com"),
        (b"/ /evil.com", "/ /evil.com", "https://app.example.com/%20/evil.com"),
        (None, "//evil.com/x", "https://app.example.com//evil.com/x"),
        (None, "/\t/evil.com", "https://app.example.com/%09/evil.com"),
        (None, "/\\evil.com", "https://app.example.com/%5Cevil.com"),
    ],
)
async def test_protocol_relative_and_backslash_paths_stay_on_the_origin(
    clerk: MockClerk, clock: FakeClock, raw_path: bytes | None, path: str, redirect_url: str
) -> None:
    """redirect_url is always absolute on public_origin, the path encoded from raw_path."""
    spy = Spy()
    sent = await call(
        middleware(spy, clerk, clock, public_origin=ORIGIN),
        http_scope(path, [(b"sec-fetch-dest", b"document")], raw_path=raw_path),
    )
    assert sent[0]["status"] == 307
    value = redirect_url_of(response_headers(sent)["location"])
    assert value == redirect_url
    assert urlsplit(value)[:2] == ("https", "app.example.com")
    assert spy.scopes == []


@pytest.mark.parametrize(
    ("raw_path", "path", "query", "redirect_url"),
    [
        (
            b"/dash%0d%0aSet-Cookie:%20a=b",
            "/dash\r\nSet-Cookie: a=b",
            b"",
            "https://app.example.com/dash%0d%0aSet-Cookie:%20a=b",
        ),
        (
            None,
            "/dash\r\nSet-Cookie: a=b",
            b"",
            "https://app.example.com/dash%0D%0ASet-Cookie:%20a=b",
        ),
        (b"/caf%C3%A9", "/caf\u00e9", b"", "https://app.example.com/caf%C3%A9"),
        (b"/caf\xc3\xa9", "/caf\u00e9", b"", "https://app.example.com/caf%C3%A9"),
        (b"/%E2%98%83", "/\u2603", b"", "https://app.example.com/%E2%98%83"),
        (None, "/\u2603", b"", "https://app.example.com/%E2%98%83"),
        (b"/%FF", "/\udcff", b"", "https://app.example.com/%FF"),
        (b"/x", "/x", b"q=\xe2\x98\x83 \r\n", "https://app.example.com/x?q=%E2%98%83%20%0D%0A"),
        (b"/x", "/x", b"a=%20&b=c#d", "https://app.example.com/x?a=%20&b=c%23d"),
    ],
    ids=[
        "crlf",
        "crlf-no-raw-path",
        "utf8-escaped",
        "utf8-raw",
        "snowman",
        "snowman-no-raw",
        "invalid-utf8",
        "raw-query",
        "hash-in-query",
    ],
)
async def test_header_injection_and_non_ascii_are_percent_encoded(
    clerk: MockClerk,
    clock: FakeClock,
    raw_path: bytes | None,
    path: str,
    query: bytes,
    redirect_url: str,
) -> None:
    """One well-formed ASCII Location; CR/LF and non-ASCII are percent-encoded; no 500."""
    sent = await call(
        middleware(Spy(), clerk, clock, public_origin=ORIGIN),
        http_scope(path, [(b"sec-fetch-dest", b"document")], raw_path=raw_path, query=query),
    )
    assert sent[0]["status"] == 307
    location = response_headers(sent)["location"]
    assert location.isascii()
    assert not set(location) & set("\r\n\x00 ")
    assert redirect_url_of(location) == redirect_url


async def test_redirect_url_without_raw_path_encodes_the_decoded_path(
    clerk: MockClerk, clock: FakeClock
) -> None:
    """A scope without raw_path still yields one encoded redirect_url on the origin."""
    app = middleware(Spy(), clerk, clock)
    sent = await call(app, http_scope("/dash board/é", [(b"accept", b"text/html")], query=b"tab=2"))
    assert sent[0]["status"] == 307
    assert redirect_url_of(response_headers(sent)["location"]) == (
        "https://app.example.com/dash%20board/%C3%A9?tab=2"
    )


async def test_absolute_form_target_still_redirects_to_a_url_on_this_origin(
    clerk: MockClerk, clock: FakeClock
) -> None:
    """h11 keeps 'GET http://evil.example/admin' as the path; redirect_url stays on our origin."""
    app = middleware(Spy(), clerk, clock)
    target = "http://evil.example/admin"
    sent = await call(
        app, http_scope(target, [(b"accept", b"text/html")], raw_path=target.encode())
    )
    assert sent[0]["status"] == 307
    assert redirect_url_of(response_headers(sent)["location"]) == (
        "https://app.example.com/http://evil.example/admin"
    )


# -- root_path: the public URL and the redirect targets keep the prefix ---------------------------


@pytest.mark.parametrize(
    ("path", "root_path", "raw_path", "redirect_url"),
    [
        pytest.param(
            "/prefix/dashboard",
            "/prefix",
            b"/prefix/dashboard",
            "https://app.example.com/prefix/dashboard",
            id="raw-path-includes-root",
        ),
        pytest.param(
            "/prefix/dashboard",
            "/prefix",
            b"/dashboard",
            "https://app.example.com/prefix/dashboard",
            id="raw-path-without-root",
        ),
    ],
)
async def test_redirect_url_keeps_the_root_path(
    clerk: MockClerk,
    clock: FakeClock,
    path: str,
    root_path: str,
    raw_path: bytes,
    redirect_url: str,
) -> None:
    """Under a root_path (mount or --root-path) redirect_url is the full public URL."""
    sent = await call(
        middleware(Spy(), clerk, clock, public_origin=ORIGIN),
        http_scope(
            path, [(b"sec-fetch-dest", b"document")], raw_path=raw_path, root_path=root_path
        ),
    )
    assert redirect_url_of(response_headers(sent)["location"]) == redirect_url


async def test_path_redirect_targets_are_served_under_the_root_path(
    clerk: MockClerk, clock: FakeClock
) -> None:
    """Under root_path /v1, path redirect targets (sign-in, unauthorized_url) get the prefix.

    sign_in_url '/sign-in' and unauthorized_url '/unauthorized' are this app's routes: the
    Location carries the prefix the browser needs.
    """
    app = middleware(Spy(), clerk, clock)
    signed_out = http_scope("/v1/dashboard", [(b"accept", b"text/html")], root_path="/v1")
    sent = await call(app, signed_out)
    location = response_headers(sent)["location"]
    assert location.startswith("/v1/sign-in?redirect_url=")
    assert redirect_url_of(location) == "https://app.example.com/v1/dashboard"
    member = [(b"authorization", b"Bearer " + clerk.token(issued_at=clock.now).encode())]
    sent = await call(app, http_scope("/v1/admin", member, root_path="/v1"))
    assert response_headers(sent)["location"] == "/v1/unauthorized"


# -- No redirect loop: the sign-in page is public -------------------------------------------------


async def test_sign_in_path_is_always_public(clerk: MockClerk, clock: FakeClock) -> None:
    """The sign-in page and its sub-pages are public under a protect default; no loop."""
    async with client(make_app(clerk, clock, rules=[])) as c:
        page = await c.get("/sign-in", headers=BROWSER)
        sub = await c.get("/sign-in/factor-one?x=1", headers=BROWSER)
        slash = await c.get("/SIGN-IN/", headers=BROWSER)
        sibling = await c.get("/sign-inx", headers=BROWSER)
    assert_ran(page, None, "session-token-missing")
    assert_ran(sub, None, "session-token-missing")
    assert_ran(slash, None, "session-token-missing")
    assert_redirect(
        sibling, sign_in_location("https://app.example.com/sign-inx"), "session-token-missing"
    )
