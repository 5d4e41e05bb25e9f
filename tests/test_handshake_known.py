"""The cookie flow's shortcut: a page load whose session token was verified before is read
with a few dictionary lookups, without Clerk's step-by-step flow. For every combination of
plain and suffixed cookies, the shortcut either declines or reaches exactly the Auth (and the
request's token) that the whole flow reaches, with no handshake and no cookies to set.
"""

from __future__ import annotations

import itertools
from typing import Any

import pytest

from clerk_asgi import Auth
from clerk_asgi._handshake import CookieFlow
from clerk_asgi._request import Incoming
from clerk_asgi.testing import FakeClock, KeyPair

from ._handshake_helpers import NAV, cookie_header, make_fake, session_token, site

pytestmark = pytest.mark.anyio


def scope(cookies: dict[str, str], query: bytes = b"") -> dict[str, Any]:
    headers = [(name.encode(), value.encode()) for name, value in NAV.items()]
    headers += [(b"host", b"app.example.test"), (b"cookie", cookie_header(cookies).encode())]
    return {
        "type": "http",
        "method": "GET",
        "scheme": "https",
        "path": "/dashboard",
        "raw_path": b"/dashboard",
        "root_path": "",
        "query_string": query,
        "headers": headers,
    }


async def flow_for(key: KeyPair, clock: FakeClock, instance: str = "production") -> CookieFlow:
    flow = site(make_fake(key, clock, instance), clock)._cookie_flow
    assert flow is not None
    return flow


async def compare(flow: CookieFlow, cookies: dict[str, str], query: bytes = b"") -> Auth | None:
    """The shortcut's Auth for ``cookies`` (None when it declines), checked against the flow."""
    fast, slow = Incoming(scope(cookies, query), True), Incoming(scope(cookies, query), True)
    known = flow.known(fast)
    if known is None:
        return None
    outcome = await flow._evaluate(slow)
    assert (outcome.auth, outcome.cookies, outcome.redirect) == (known, (), None), cookies
    assert (fast.token, fast.carrier) == (slow.token, slow.carrier) == (fast.token, "cookie")
    return known


async def test_the_shortcut_agrees_with_the_flow_on_every_cookie_combination(
    key: KeyPair, attacker_key: KeyPair, clock: FakeClock
) -> None:
    """Plain and suffixed session cookies (this instance's, another's, expired, garbage, none)
    and client_uat values (0, before, after, hex, none): same Auth, or the flow decides."""
    flow = await flow_for(key, clock)
    suffix = "_" + flow._config.cookie_suffix  # type: ignore[operator]
    iat = int(clock.now)
    tokens = {
        "now": session_token(key, clock),
        "older": session_token(key, clock, issued=-30, session_id="sess_2"),
        "other-instance": session_token(key, clock, issuer="https://clerk.other.test"),
        "attacker": session_token(attacker_key, clock),
        "expired": session_token(key, clock, issued=-120),
        "garbage": "not.a.token",
    }
    for token in tokens.values():  # what earlier requests verified (refusals included)
        await flow._verifier.verify(token)
    sessions = [None, *tokens.values()]
    uats = [None, "0", str(iat - 10), str(iat + 10), "0x10"]
    signed_in = 0
    for plain, suffixed, uat, suffixed_uat in itertools.product(sessions, sessions, uats, uats):
        pairs = {
            "__session": plain,
            f"__session{suffix}": suffixed,
            "__client_uat": uat,
            f"__client_uat{suffix}": suffixed_uat,
        }
        cookies = {name: value for name, value in pairs.items() if value is not None}
        signed_in += await compare(flow, cookies) is not None
    # Signed in by the shortcut: a valid token with a client_uat at or before its iat ("now"
    # with iat-10 or 0x10, "older" with 0x10: 3 pairs), either plain only (3) or suffixed with
    # the plain session absent or the same token, whatever the plain client_uat (3 * 2 * 5).
    assert signed_in == 3 + 3 * 2 * 5


async def test_plain_and_suffixed_shapes_take_the_shortcut(key: KeyPair, clock: FakeClock) -> None:
    """Plain cookies only (older clerk-js, one app per host), and both pairs written alike."""
    flow = await flow_for(key, clock)
    suffix = "_" + flow._config.cookie_suffix  # type: ignore[operator]
    token, uat = session_token(key, clock), str(int(clock.now))
    await flow._verifier.verify(token)
    plain = {"_ga": "GA1.1.1", "__session": token, "__client_uat": uat}
    both = {**plain, f"__session{suffix}": token, f"__client_uat{suffix}": uat}
    for cookies in (plain, both):
        auth = await compare(flow, cookies)
        assert auth is not None
        assert (auth.user_id, auth.session_id) == ("user_1", "sess_1")


@pytest.mark.parametrize(
    ("extra", "query"),
    [
        pytest.param({"__clerk_handshake_nonce": "n0nce"}, b"", id="nonce-cookie"),
        pytest.param({"__clerk_handshake": "x.y.z"}, b"", id="legacy-handshake-cookie"),
        pytest.param({}, b"__clerk_handshake_nonce=n0nce", id="nonce-in-query"),
        pytest.param({}, b"a=1&__clerk_db_jwt=x", id="clerk-parameter-in-query"),
    ],
)
async def test_a_handshake_on_its_way_back_is_left_to_the_flow(
    key: KeyPair, clock: FakeClock, extra: dict[str, str], query: bytes
) -> None:
    """Coming back from the Frontend API, the flow resolves the handshake first."""
    flow = await flow_for(key, clock)
    token = session_token(key, clock)
    await flow._verifier.verify(token)
    cookies = {"__session": token, "__client_uat": str(int(clock.now)), **extra}
    assert flow.known(Incoming(scope(cookies, query), True)) is None


async def test_development_instances_are_left_to_the_flow(key: KeyPair, clock: FakeClock) -> None:
    """Development instances check the dev browser first: no shortcut."""
    flow = await flow_for(key, clock, "development")
    token = session_token(key, clock)
    await flow._verifier.verify(token)
    cookies = {"__session": token, "__client_uat": str(int(clock.now)), "__clerk_db_jwt": "d"}
    assert flow.known(Incoming(scope(cookies), True)) is None
