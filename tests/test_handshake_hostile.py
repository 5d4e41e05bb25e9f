"""Hostile inputs to the handshake: forged nonces, a compromised Backend API, spoofed hosts.

Nothing a browser or the Backend API sends may split a header, reach another host, or turn
into a 500: a nonce that is not a short URL-safe string is never sent to the Backend API;
directives that are not plain ``Set-Cookie`` values are refused whole and the cookies are
evaluated as they are; the URLs sent back are built on ``public_origin`` when it is set.
(Clerk sends any nonce on and any directive through; these checks are ours.)
"""

from __future__ import annotations

import json
from typing import Any

import httpx
import pytest

from clerk_asgi.testing import FakeClock, KeyPair

from ._handshake_helpers import (
    FAPI,
    HANDSHAKE,
    NAV,
    ORIGIN,
    answer,
    bapi_calls,
    carried,
    counter,
    fapi_handshake,
    make_fake,
    params,
    ran,
    request,
    session_token,
    site,
)

pytestmark = pytest.mark.anyio

NONCE = "__clerk_handshake_nonce"
REASON = "client-uat-but-no-session-token"


class Recorder:
    """A Backend API answering every call with one body, recording the calls."""

    def __init__(self, body: Any = None, *, status: int = 200, raw: bytes | None = None) -> None:
        self.calls: list[httpx.Request] = []
        self.body, self.status, self.raw = body, status, raw

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.calls.append(request)
        if self.raw is not None:
            return httpx.Response(self.status, content=self.raw)
        return httpx.Response(self.status, json=self.body)

    @property
    def transport(self) -> httpx.MockTransport:
        return httpx.MockTransport(self)


def no_header_splitting(response: httpx.Response) -> bool:
    """Every response header value is printable ASCII (no CR, LF, NUL or other controls)."""
    return all(
        value.isascii() and value.isprintable() for _, value in response.headers.multi_items()
    )


def handed_off(response: httpx.Response, path: str = "/dashboard") -> bool:
    """A plain handshake for ``REASON`` (the cookies evaluated as they are), counter only."""
    return (
        response.status_code == 307
        and response.headers["location"].startswith(HANDSHAKE + "?")
        and params(response.headers["location"])[3] == ("__clerk_hs_reason", REASON)
        and response.headers.get_list("set-cookie") == [counter(1)]
    )


# -- forged nonces ------------------------------------------------------------------------------

QUERY_NONCES = [
    pytest.param("a" * 257, id="257-chars"),
    pytest.param("abc%0d%0aSet-Cookie:%20evil=1", id="crlf"),
    pytest.param("abc%0Aevil", id="lf"),
    pytest.param("abc%00", id="nul"),
    pytest.param("a%20b", id="space"),
    pytest.param("a+b", id="plus-is-space"),
    pytest.param("%22quoted%22", id="quotes"),
    pytest.param("a%3Bb", id="semicolon"),
    pytest.param("a/b", id="slash"),
    pytest.param("caf%C3%A9", id="non-ascii"),
    pytest.param("%3Cscript%3E", id="markup"),
    pytest.param("..%2F..%2Fadmin", id="path-traversal"),
]


@pytest.mark.parametrize("nonce", QUERY_NONCES)
async def test_forged_query_nonce_is_never_sent(key: KeyPair, clock: FakeClock, nonce: str) -> None:
    """A query nonce that is not 1-256 URL-safe characters never reaches the Backend API."""
    fake = make_fake(key, clock)
    bapi = Recorder({"directives": []})
    app = site(fake, clock, bapi=bapi.transport)
    response = await request(app, f"/dashboard?{NONCE}={nonce}", cookies={"__client_uat": "9"})
    assert bapi.calls == []
    assert handed_off(response)
    assert no_header_splitting(response)


COOKIE_NONCES = [
    pytest.param("a" * 257, id="257-chars"),
    pytest.param("abc%0D%0AX-Evil:%201", id="encoded-crlf"),
    pytest.param('"a b"', id="quoted-space"),
    pytest.param("a%22b", id="encoded-quote"),
    pytest.param("a,b", id="comma"),
    pytest.param("\u00e9t\u00e9", id="latin-1"),
]


@pytest.mark.parametrize("nonce", COOKIE_NONCES)
async def test_forged_cookie_nonce_is_never_sent(
    key: KeyPair, clock: FakeClock, nonce: str
) -> None:
    """A nonce cookie that is not 1-256 URL-safe characters never reaches the Backend API."""
    fake = make_fake(key, clock)
    bapi = Recorder({"directives": []})
    cookies = {"__client_uat": "9", NONCE: nonce}
    headers = {**NAV, "cookie": "; ".join(f"{k}={v}" for k, v in cookies.items())}
    app = site(fake, clock, bapi=bapi.transport)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app), base_url=ORIGIN) as client:
        response = await client.get(
            "/dashboard", headers={k.encode(): v.encode("latin-1") for k, v in headers.items()}
        )
    assert bapi.calls == []
    assert handed_off(response)
    assert no_header_splitting(response)


@pytest.mark.parametrize(
    "query", [f"{NONCE}=", "__clerk_handshake=", f"{NONCE}=&__clerk_handshake="]
)
async def test_empty_return_parameters_are_ignored(
    key: KeyPair, clock: FakeClock, query: str
) -> None:
    """An empty nonce or token parameter resolves nothing: the cookies decide as they are."""
    fake = make_fake(key, clock)
    bapi = Recorder({"directives": []})
    app = site(fake, clock, bapi=bapi.transport)
    response = await request(app, f"/dashboard?{query}", cookies={"__client_uat": "9"})
    assert bapi.calls == []
    assert handed_off(response)


async def test_longest_nonce_is_sent(key: KeyPair, clock: FakeClock) -> None:
    """A 256-character URL-safe nonce is sent, URL-encoded as a query parameter."""
    fake = make_fake(key, clock)
    bapi = Recorder({"directives": []})
    nonce = "aZ09-._~" * 32
    await request(site(fake, clock, bapi=bapi.transport), cookies={NONCE: nonce})
    [call] = bapi.calls
    assert call.url.params["nonce"] == nonce


# -- a compromised Backend API ----------------------------------------------------------------

GOOD = "__client_uat=1; Path=/"

DIRECTIVES = [
    pytest.param([GOOD, "__session=x\r\nSet-Cookie: evil=1"], id="crlf"),
    pytest.param([GOOD, "__session=x\nLocation: https://evil.example"], id="lf"),
    pytest.param([GOOD, "__session=x\x00y"], id="nul"),
    pytest.param([GOOD, "__session=x\ty"], id="tab"),
    pytest.param([GOOD, "__session=x\x7fy"], id="del"),
    pytest.param([GOOD] * 33, id="33-directives"),
    pytest.param([GOOD, "a=" + "b" * 4095], id="4097-chars"),
    pytest.param([GOOD, "__session=caf\u00e9"], id="non-ascii-latin-1"),
    pytest.param([GOOD, "__session=\u2603"], id="non-latin-1"),
    pytest.param([GOOD, "no-equals-sign; Path=/"], id="no-name="),
    pytest.param([GOOD, "; __session=x"], id="attribute-first"),
    pytest.param([GOOD, ""], id="empty-string"),
]


@pytest.mark.parametrize("directives", DIRECTIVES)
async def test_compromised_directives_are_refused_whole(
    key: KeyPair, clock: FakeClock, directives: list[str]
) -> None:
    """Directives with a control character, too many, too long, non-ASCII or nameless: refused."""
    fake = make_fake(key, clock)
    bapi = Recorder({"directives": directives})
    cookies = {"__client_uat": "9", NONCE: "nonce_1"}
    response = await request(site(fake, clock, bapi=bapi.transport), cookies=cookies)
    assert len(bapi.calls) == 1
    assert handed_off(response)
    assert no_header_splitting(response)


@pytest.mark.parametrize(
    "count_length",
    [pytest.param((32, 10), id="32-directives"), pytest.param((1, 4096), id="4096-chars")],
)
async def test_directives_at_the_limits_are_sent(
    key: KeyPair, clock: FakeClock, count_length: tuple[int, int]
) -> None:
    """32 directives, or one of 4096 characters, are sent verbatim."""
    count, length = count_length
    fake = make_fake(key, clock)
    directives = [f"c{i}=" + "v" * (length - len(f"c{i}=")) for i in range(count)]
    bapi = Recorder({"directives": directives})
    response = await request(
        site(fake, clock, bapi=bapi.transport), "/public/x", cookies={NONCE: "n"}
    )
    assert answer(response) == ran(None, reason="session-token-missing", cookies=directives)


BODIES = [
    pytest.param({"directives": [1]}, None, id="a-number"),
    pytest.param({"directives": [None]}, None, id="null"),
    pytest.param({"directives": [GOOD, {"name": "x"}]}, None, id="an-object"),
    pytest.param({"directives": GOOD}, None, id="not-a-list"),
    pytest.param({"cookies": [GOOD]}, None, id="no-directives"),
    pytest.param([GOOD], None, id="a-list"),
    pytest.param(None, b"<html>oops</html>", id="not-json"),
    pytest.param(None, b"[" * 100_000 + b"]" * 100_000, id="deeply-nested"),
    pytest.param(None, b'{"directives": ["' + b"a" * 300_000 + b'"]}', id="too-large"),
    pytest.param(None, b"\xff\xfe\x00", id="not-utf-8"),
    pytest.param(None, b"", id="empty"),
]


@pytest.mark.parametrize(("body", "raw"), BODIES)
async def test_malformed_payload_falls_back(
    key: KeyPair, clock: FakeClock, body: Any, raw: bytes | None
) -> None:
    """A payload that is not ``{"directives": [str, ...]}`` falls back, never a 500."""
    fake = make_fake(key, clock)
    bapi = Recorder(body, raw=raw)
    cookies = {"__client_uat": "9", NONCE: "nonce_1"}
    response = await request(site(fake, clock, bapi=bapi.transport), cookies=cookies)
    assert handed_off(response)


async def test_refused_directives_leave_nothing_in_the_answer(
    key: KeyPair, clock: FakeClock
) -> None:
    """Refused whole: not even the good directives or the session among them are used."""
    fake = make_fake(key, clock)
    valid = session_token(key, clock, user_id="user_smuggled")
    directives = [f"__session={valid}; Path=/", "evil=1\r\nX-Evil: 1"]
    bapi = Recorder({"directives": directives})
    cookies = {"__client_uat": "9", NONCE: "nonce_1"}
    response = await request(site(fake, clock, bapi=bapi.transport), "/public/x", cookies=cookies)
    assert response.status_code == 307
    assert "user_smuggled" not in json.dumps(dict(response.headers))
    assert valid not in response.headers["location"]


# -- spoofed hosts ------------------------------------------------------------------------------

HOSTS = [
    pytest.param("evil.example", id="other-host"),
    pytest.param("app.example.test@evil.example", id="userinfo"),
    pytest.param("evil.example/<script>", id="markup"),
    pytest.param("evil.example:99999", id="bad-port"),
    pytest.param("", id="empty"),
]


@pytest.mark.parametrize("host", HOSTS)
async def test_spoofed_host_never_reaches_the_handshake_url(
    key: KeyPair, clock: FakeClock, host: str
) -> None:
    """With public_origin (and a relative proxy), the Host header is never in the Location."""
    fake = make_fake(key, clock)
    app = site(fake, clock, public_origin="https://www.example.test", proxy_url="/__clerk")
    headers = {**NAV, "host": host, "x-forwarded-host": "evil.example"}
    response = await request(app, "/p?x=1", cookies={"__client_uat": "9"}, headers=headers)
    location = response.headers["location"]
    assert location.startswith("https://www.example.test/__clerk/v1/client/handshake?")
    assert params(location)[0] == ("redirect_url", "https://www.example.test/p?x=1")
    assert "evil" not in location


@pytest.mark.parametrize("host", HOSTS)
async def test_spoofed_host_never_reaches_the_development_return(
    key: KeyPair, clock: FakeClock, host: str
) -> None:
    """With public_origin, the development return's clean URL is on it, whatever Host says."""
    fake = make_fake(key, clock, "development")
    client = fake.sign_in(fake.add_user("user_1"))
    nonce = carried(await fapi_handshake(fake, client, ORIGIN + "/p"), NONCE)
    app = site(fake, clock, public_origin="https://www.example.test")
    headers = {**NAV, "host": host}
    cookies = {"__clerk_db_jwt": str(client.dev_browser)}
    response = await request(app, f"/p?{NONCE}={nonce}", cookies=cookies, headers=headers)
    assert response.headers["location"] == "https://www.example.test/p"
    assert len(bapi_calls(fake)) == 1


async def test_malformed_host_falls_back_to_the_server_address(
    key: KeyPair, clock: FakeClock
) -> None:
    """Without public_origin, a malformed Host is replaced by the server's own address."""
    fake = make_fake(key, clock)
    headers = {**NAV, "host": "evil.example/<script>"}
    response = await request(
        site(fake, clock), "/p", cookies={"__client_uat": "9"}, headers=headers
    )
    assert params(response.headers["location"])[0] == ("redirect_url", "https://app.example.test/p")
    assert response.headers["location"].startswith(FAPI + "/v1/client/handshake?")
