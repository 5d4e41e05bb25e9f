"""Clerk's cookie flow, request by request: signed in, signed out or handed to the Frontend API.

Mirrors ``@clerk/backend`` ``request.test.ts`` (the ``cookieToken`` cases by their tags, and
"POST requests with sec-fetch-dest: document"): the same cookies give the same state and the
same reason code. A handshake is a 307 to the Frontend API; a signed-out page load of a
protected page is the 307 to the sign-in page; anything else signed out is a 401.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pytest

from clerk_asgi import ClerkConfig
from clerk_asgi.exceptions import ConfigurationError
from clerk_asgi.testing import FakeClock, KeyPair

from ._handshake_helpers import (
    EXPIRED_DETAIL,
    FETCH,
    HANDSHAKE,
    NAV,
    ORIGIN,
    answer,
    bapi_calls,
    handshake,
    handshake_params,
    make_fake,
    observed,
    params,
    ran,
    request,
    session_token,
    site,
    to_sign_in,
    unauthorized,
    websocket,
)
from .helpers import IGNORED_SCHEME

pytestmark = pytest.mark.anyio

URL = ORIGIN + "/dashboard"
DB = "dvb_browser"


@dataclass
class T:
    """Tokens for one test: valid, expired, and their iat."""

    key: KeyPair
    clock: FakeClock
    other: KeyPair

    @property
    def iat(self) -> int:
        return int(self.clock.now)

    @property
    def valid(self) -> str:
        return session_token(self.key, self.clock)

    @property
    def expired(self) -> str:
        """Issued 120 s ago, lived 60 s: expired past the 5 s clock skew."""
        return session_token(self.key, self.clock, issued=-120)


Cookies = Callable[[T], dict[str, str]]
Expect = Callable[[T, dict[str, str]], dict[str, Any]]


def hs(
    reason: str, *, session: bool = False, db: str | None = None, detail: str | None = None
) -> Expect:
    """A handshake for ``reason`` (the request's session cookie on the URL when ``session``)."""

    def expect(t: T, cookies: dict[str, str]) -> dict[str, Any]:
        found = handshake(f"{HANDSHAKE}?...", reason, detail=detail)
        found["params"] = handshake_params(
            URL, reason, session=cookies["__session"] if session else None, dev_browser=db
        )
        return found

    return expect


def out(reason: str) -> Expect:
    return lambda t, cookies: to_sign_in(reason, URL)


def signed_in(t: T, cookies: dict[str, str]) -> dict[str, Any]:
    return ran("user_1", "sess_1")


NBF_DETAIL = (
    "The session token is not valid yet (nbf). (reason=token-not-active-yet, token-carrier=cookie)"
)
IAT_DETAIL = (
    "The session token was issued in the future (iat). "
    "(reason=token-iat-in-the-future, token-carrier=cookie)"
)

FLOW = [
    pytest.param(
        "production", lambda t: {}, out("session-token-and-uat-missing"), id="4y-no-cookies-prod"
    ),
    pytest.param("development", lambda t: {}, hs("dev-browser-missing"), id="5y-no-cookies-dev"),
    pytest.param(
        "development",
        lambda t: {"__client_uat": str(t.iat - 10), "__session": t.valid},
        hs("dev-browser-missing", session=True),
        id="no-dev-browser-even-signed-in",
    ),
    pytest.param(
        "development",
        lambda t: {"__clerk_db_jwt": DB, "__session": t.valid},
        hs("session-token-but-no-client-uat", session=True, db=DB),
        id="5y-no-client-uat-dev",
    ),
    pytest.param(
        "production",
        lambda t: {"__session": t.valid},
        hs("session-token-but-no-client-uat", session=True),
        id="5y-no-client-uat-prod",
    ),
    pytest.param(
        "production",
        lambda t: {"__client_uat": "12345"},
        hs("client-uat-but-no-session-token"),
        id="8y-client-uat-no-session",
    ),
    pytest.param(
        "production",
        lambda t: {"__client_uat": "0"},
        out("session-token-and-uat-missing"),
        id="9y-client-uat-0-no-session",
    ),
    pytest.param(
        "development",
        lambda t: {"__clerk_db_jwt": DB, "__client_uat": str(t.iat + 10), "__session": t.valid},
        hs("session-token-iat-before-client-uat", session=True, db=DB),
        id="10n-stale",
    ),
    pytest.param(
        "development",
        lambda t: {"__clerk_db_jwt": DB, "__client_uat": str(t.iat - 10), "__session": "a.b.c"},
        out("token-invalid"),
        id="10y.1n-malformed",
    ),
    pytest.param(
        "development",
        lambda t: {
            "__clerk_db_jwt": DB,
            "__client_uat": str(t.iat - 10),
            "__session": session_token(t.key, t.clock, claims={"sub": None}),
        },
        out("token-verification-failed"),
        id="10y.1n-no-sub",
    ),
    pytest.param(
        "development",
        lambda t: {"__clerk_db_jwt": DB, "__client_uat": str(t.iat - 10), "__session": t.valid},
        signed_in,
        id="10y.2y-valid",
    ),
    pytest.param(
        "production",
        lambda t: {"__client_uat": "12345", "__session": t.valid},
        signed_in,
        id="10y.2y-valid-prod",
    ),
    pytest.param(
        "development",
        lambda t: {"__clerk_db_jwt": DB, "__client_uat": str(t.iat - 130), "__session": t.expired},
        hs(
            "session-token-expired-refresh-non-eligible-no-refresh-cookie",
            session=True,
            db=DB,
            detail=EXPIRED_DETAIL,
        ),
        id="10y.2n.1n-expired",
    ),
    pytest.param(
        "production",
        lambda t: {
            "__client_uat": "12345",
            "__session": session_token(t.key, t.clock, user_id="mch_2x", session_id="sess_m2m"),
        },
        out("token-type-mismatch"),
        id="SDK-107-m2m-jwt",
    ),
    pytest.param(
        "production",
        lambda t: {
            "__client_uat": "12345",
            "__session": session_token(t.key, t.clock, headers={"cat": "cl_B7d4PD222AAA"}),
        },
        out("token-type-mismatch"),
        id="SEC-340-jwt-template",
    ),
    pytest.param(
        "production",
        lambda t: {
            "__client_uat": "12345",
            "__session": session_token(t.key, t.clock, headers={"typ": "at+jwt"}),
        },
        out("token-type-mismatch"),
        id="oauth-access-token-jwt",
    ),
    pytest.param(
        "production",
        lambda t: {
            "__client_uat": "12345",
            "__session": session_token(t.other, t.clock),
        },
        out("token-invalid-signature"),
        id="bad-signature-never-a-handshake",
    ),
    pytest.param(
        "production",
        lambda t: {
            "__client_uat": "12345",
            "__session": session_token(t.key, t.clock, issuer="https://clerk.other.test"),
        },
        out("session-token-and-uat-missing"),
        id="other-instance-session-is-not-ours",
    ),
    pytest.param(
        "production",
        lambda t: {"__client_uat": "12345", "__session": session_token(t.key, t.clock, issued=60)},
        hs("session-token-nbf", session=True, detail=NBF_DETAIL),
        id="nbf-in-the-future",
    ),
    pytest.param(
        "production",
        lambda t: {
            "__client_uat": "12345",
            "__session": session_token(t.key, t.clock, issued=60, claims={"nbf": None}),
        },
        hs("session-token-iat-in-the-future", session=True, detail=IAT_DETAIL),
        id="iat-in-the-future",
    ),
]


@pytest.mark.parametrize(("instance", "cookies", "expect"), FLOW)
async def test_cookie_flow(
    key: KeyPair,
    attacker_key: KeyPair,
    clock: FakeClock,
    instance: str,
    cookies: Cookies,
    expect: Expect,
) -> None:
    """Each cookie state gives Clerk's state and reason (request.test.ts cookieToken cases)."""
    t = T(key, clock, attacker_key)
    sent = cookies(t)
    fake = make_fake(key, clock, instance)
    response = await request(site(fake, clock), cookies=sent)
    assert observed(response) == expect(t, sent)
    assert bapi_calls(fake) == []
    assert fake.handshakes == []


NON_ELIGIBLE = [
    pytest.param(
        {"__client_uat": "12345"}, "client-uat-but-no-session-token", False, id="8y-no-session"
    ),
    pytest.param(
        {"__client_uat": "{iat+10}", "__session": "{valid}"},
        "session-token-iat-before-client-uat",
        True,
        id="10n-stale",
    ),
    pytest.param(
        {"__session": "{valid}"}, "session-token-but-no-client-uat", True, id="5y-no-client-uat"
    ),
]


def fill(cookies: dict[str, str], t: T) -> dict[str, str]:
    values = {"{iat+10}": str(t.iat + 10), "{valid}": t.valid, "{expired}": t.expired}
    return {name: values.get(value, value) for name, value in cookies.items()}


@pytest.mark.parametrize(("cookies", "reason", "presented"), NON_ELIGIBLE)
@pytest.mark.parametrize("method", ["POST", "PUT", "PATCH", "DELETE"])
async def test_post_document_is_signed_out_not_handed_off(
    key: KeyPair,
    clock: FakeClock,
    cookies: dict[str, str],
    reason: str,
    presented: bool,
    method: str,
) -> None:
    """Non-GET page loads are signed out with the reason (POST requests with sec-fetch-dest)."""
    fake = make_fake(key, clock)
    headers = {**NAV, "origin": ORIGIN}
    response = await request(
        site(fake, clock), cookies=fill(cookies, T(key, clock, key)), headers=headers, method=method
    )
    assert answer(response) == unauthorized(reason, token_presented=presented)
    assert fake.handshakes == []


@pytest.mark.parametrize(
    "headers",
    [
        pytest.param(FETCH, id="fetch"),
        pytest.param({"sec-fetch-dest": "image", "accept": "image/png"}, id="image"),
        pytest.param({"accept": "application/json"}, id="no-fetch-metadata-json"),
        pytest.param({"accept": "*/*, text/html"}, id="html-not-first"),
    ],
)
async def test_api_call_with_expired_cookie_is_a_401(
    key: KeyPair, clock: FakeClock, headers: dict[str, str]
) -> None:
    """An expired cookie on a non-page GET is a 401 with Clerk's reason, never a handshake."""
    t = T(key, clock, key)
    fake = make_fake(key, clock)
    cookies = {"__client_uat": "12345", "__session": t.expired}
    response = await request(site(fake, clock), "/api/things", cookies=cookies, headers=headers)
    reason = "session-token-expired-refresh-non-eligible-no-refresh-cookie"
    assert answer(response) == unauthorized(reason, token_presented=True)
    assert fake.handshakes == []


async def test_page_load_of_an_api_route_is_handed_off(key: KeyPair, clock: FakeClock) -> None:
    """A page load is handed off whatever the route's rule (Clerk's middleware has no routes)."""
    t = T(key, clock, key)
    fake = make_fake(key, clock)
    expired = t.expired
    response = await request(
        site(fake, clock), "/api/things", cookies={"__client_uat": "12345", "__session": expired}
    )
    reason = "session-token-expired-refresh-non-eligible-no-refresh-cookie"
    assert observed(response) == {
        **handshake(f"{HANDSHAKE}?...", reason, detail=EXPIRED_DETAIL),
        "params": handshake_params(ORIGIN + "/api/things", reason, session=expired),
    }


@pytest.mark.parametrize(
    ("cookies", "reason"),
    [
        pytest.param({"__client_uat": "12345"}, "client-uat-but-no-session-token", id="8y"),
        pytest.param(
            {"__client_uat": "12345", "__session": "{expired}"},
            "session-token-expired-refresh-non-eligible-non-get",
            id="expired",
        ),
    ],
)
async def test_head_page_load_is_never_handed_off(
    key: KeyPair, clock: FakeClock, cookies: dict[str, str], reason: str
) -> None:
    """HEAD is never handed off: the sign-in redirect, an expired token ``...-non-get``."""
    fake = make_fake(key, clock)
    response = await request(
        site(fake, clock), cookies=fill(cookies, T(key, clock, key)), method="HEAD"
    )
    assert answer(response) == to_sign_in(reason, URL)
    assert fake.handshakes == []


async def test_websocket_is_never_handed_off(key: KeyPair, clock: FakeClock) -> None:
    """A WebSocket that a page load would hand off is closed 1008 with the reason instead."""
    fake = make_fake(key, clock)
    message = await websocket(site(fake, clock), {"__client_uat": "12345"}, NAV)
    assert message == {
        "type": "websocket.close",
        "code": 1008,
        "reason": "client-uat-but-no-session-token",
    }


async def test_websocket_with_a_valid_cookie_session_is_accepted(
    key: KeyPair, clock: FakeClock
) -> None:
    """A same-origin WebSocket with a valid cookie session is accepted by the cookie flow."""
    fake = make_fake(key, clock)
    cookies = {"__client_uat": "12345", "__session": T(key, clock, key).valid}
    message = await websocket(site(fake, clock), cookies, {})
    assert message == {"type": "websocket.accept"}


async def test_bearer_token_never_enters_the_cookie_flow(key: KeyPair, clock: FakeClock) -> None:
    """An expired Bearer token is refused ``token-expired`` (deviation: [1y.2n] hands off)."""
    t = T(key, clock, key)
    fake = make_fake(key, clock, "development")
    headers = {**NAV, "authorization": f"Bearer {t.expired}"}
    response = await request(site(fake, clock), cookies={"__client_uat": "12345"}, headers=headers)
    assert answer(response) == to_sign_in("token-expired", URL)
    api = await request(
        site(fake, clock), "/api/x", headers={"authorization": f"Bearer {t.expired}"}
    )
    assert answer(api) == unauthorized("token-expired", token_presented=True)
    assert fake.handshakes == []


async def test_valid_bearer_token_signs_in_without_dev_browser(
    key: KeyPair, clock: FakeClock
) -> None:
    """A valid Bearer token signs in on a development instance without any dev browser."""
    fake = make_fake(key, clock, "development")
    headers = {**NAV, "authorization": f"Bearer {T(key, clock, key).valid}"}
    response = await request(site(fake, clock), headers=headers)
    assert answer(response) == ran("user_1", "sess_1")


async def test_ignored_authorization_scheme_uses_the_cookie_flow(
    key: KeyPair, clock: FakeClock
) -> None:
    """An Authorization header of another scheme yields no token: the cookies decide."""
    fake = make_fake(key, clock)
    headers = {**NAV, "authorization": "Basic dXNlcjpwYXNz"}
    response = await request(site(fake, clock), cookies={"__client_uat": "9"}, headers=headers)
    assert response.status_code == 307
    assert params(response.headers["location"])[3] == (
        "__clerk_hs_reason",
        "client-uat-but-no-session-token",
    )


async def test_an_ignored_authorization_scheme_alone_says_why_in_its_401(
    key: KeyPair, clock: FakeClock
) -> None:
    """No cookies and only a header Clerk ignores: the 401 keeps the cookie flow's reason
    and says that the header was ignored, as it does with the handshake off."""
    fake = make_fake(key, clock)
    headers = {**FETCH, "authorization": "bearer lower-case-scheme"}
    response = await request(site(fake, clock), "/api/me", headers=headers)
    reason = "session-token-and-uat-missing"
    assert answer(response) == {
        **unauthorized(reason),
        "body": {"error": "unauthorized", "reason": reason, "message": IGNORED_SCHEME},
    }


async def test_a_token_refused_before_is_still_checked_for_staleness(
    key: KeyPair, clock: FakeClock
) -> None:
    """A token remembered as refused is still found stale first ([10n] before [10y.2n.1n])."""
    t = T(key, clock, key)
    fake = make_fake(key, clock)
    app = site(fake, clock)
    expired = t.expired
    first = await request(app, cookies={"__client_uat": str(t.iat - 130), "__session": expired})
    assert first.headers["x-clerk-auth-reason"] == (
        "session-token-expired-refresh-non-eligible-no-refresh-cookie"
    )
    again = await request(app, cookies={"__client_uat": str(t.iat), "__session": expired})
    assert again.headers["x-clerk-auth-reason"] == "session-token-iat-before-client-uat"
    assert params(again.headers["location"]) == handshake_params(
        URL, "session-token-iat-before-client-uat", session=expired
    )


# -- handshake=False and the configuration -----------------------------------------------------

OFF = [
    pytest.param({"__client_uat": "12345"}, NAV, "session-token-missing", id="uat-no-session"),
    pytest.param(
        {"__client_uat": "12345", "__session": "{expired}"}, NAV, "token-expired", id="expired"
    ),
    pytest.param({"__client_uat": "0", "__session": "{valid}"}, NAV, None, id="uat-0-valid"),
    pytest.param({"__session": "{valid}"}, NAV, None, id="no-uat-no-dev-browser"),
    pytest.param({"__client_uat": "12345"}, FETCH, "session-token-missing", id="fetch"),
]


@pytest.mark.parametrize(("cookies", "headers", "reason"), OFF)
@pytest.mark.parametrize("instance", ["production", "development"])
async def test_handshake_off_is_todays_behaviour(
    key: KeyPair,
    clock: FakeClock,
    cookies: dict[str, str],
    headers: dict[str, str],
    reason: str | None,
    instance: str,
) -> None:
    """``handshake=False`` answers exactly as a site without a secret key (today's behaviour)."""
    t = T(key, clock, key)
    fake = make_fake(key, clock, instance)
    sent = {**fill(cookies, t), "__clerk_handshake_nonce": "nonce_left_over"}
    off = await request(site(fake, clock, handshake=False), cookies=sent, headers=headers)
    keyless = await request(site(fake, clock, secret_key=None), cookies=sent, headers=headers)
    presented = "__session" in cookies
    if reason is None:
        expected = ran("user_1", "sess_1")
    elif headers == NAV:
        expected = to_sign_in(reason, URL)
    else:
        expected = unauthorized(reason, token_presented=presented)
    assert answer(off) == expected
    assert answer(keyless) == expected
    assert fake.requests == []


def test_handshake_true_needs_a_secret_key(key: KeyPair, clock: FakeClock) -> None:
    """``handshake=True`` without a secret key (or a publishable key) is a ConfigurationError."""
    fake = make_fake(key, clock)
    message = (
        "handshake=True needs a publishable key and a secret key (CLERK_PUBLISHABLE_KEY, "
        "CLERK_SECRET_KEY): the handshake sends browsers to the instance's Frontend API and "
        "reads the result back through the Backend API."
    )
    with pytest.raises(ConfigurationError) as no_secret:
        ClerkConfig(handshake=True, publishable_key=fake.publishable_key)
    assert str(no_secret.value) == message
    with pytest.raises(ConfigurationError) as no_publishable:
        ClerkConfig(handshake=True, secret_key=fake.secret_key)
    assert str(no_publishable.value) == message


def test_handshake_is_on_with_both_keys_unless_turned_off(key: KeyPair, clock: FakeClock) -> None:
    """None turns the handshake on exactly when both keys are there; False keeps it off."""
    fake = make_fake(key, clock)
    pk, sk = fake.publishable_key, fake.secret_key
    assert ClerkConfig(publishable_key=pk, secret_key=sk).handshake is True
    assert ClerkConfig(publishable_key=pk, secret_key=sk, handshake=True).handshake is True
    assert ClerkConfig(publishable_key=pk, secret_key=sk, handshake=False).handshake is False
    assert ClerkConfig(publishable_key=pk).handshake is False
    assert ClerkConfig(secret_key=sk).handshake is False
