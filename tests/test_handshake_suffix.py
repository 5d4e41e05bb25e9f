"""Suffixed cookies: ``__session_<suffix>`` and ``__client_uat_<suffix>``, when several Clerk
apps share a host (``localhost`` on two ports); and ``__client_uat`` read as JS ``parseInt``.

Mirrors ``@clerk/shared`` ``keys.spec.ts`` and ``@clerk/backend`` ``authenticateContext.test.ts``
(``getCookieSuffix`` and the ``suffixedCookies`` table): which pair is used is seen as which
session signs in, or as ``suffixed_cookies=true|false`` and ``__session`` on the handshake URL.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pytest

from clerk_asgi import ClerkConfig
from clerk_asgi._config import cookie_suffix
from clerk_asgi._handshake import js_parse_int
from clerk_asgi.testing import FakeClerk, FakeClock, KeyPair

from ._handshake_helpers import (
    EXPIRED_DETAIL,
    ORIGIN,
    answer,
    handshake,
    handshake_params,
    observed,
    ran,
    request,
    session_token,
    site,
    to_sign_in,
    unauthorized,
)

pytestmark = pytest.mark.anyio

URL = ORIGIN + "/dashboard"
#: The fixtures of Clerk's tests: both encode clerk.inspired.puma-74.lcl.dev.
PK_LIVE = "pk_live_Y2xlcmsuaW5zcGlyZWQucHVtYS03NC5sY2wuZGV2JA"
PK_TEST = "pk_test_Y2xlcmsuaW5zcGlyZWQucHVtYS03NC5sY2wuZGV2JA"
HOST = "clerk.inspired.puma-74.lcl.dev"
HANDSHAKE = f"https://{HOST}/v1/client/handshake"

VECTORS = [
    pytest.param("pk_test_Y2xlcmsuY2xlcmsuZGV2JA", "QvfNY2dr", id="keys.spec-test"),
    pytest.param("pk_live_Y2xlcmsuY2xlcmsuZGV2JA", "1Z8AzTQD", id="live"),
    pytest.param(
        "pk_live_ZmFrZS1jbGVyay10ZXN0LmNsZXJrLmFjY291bnRzLmRldiQ=", "qReyu04C", id="padded"
    ),
    pytest.param(
        "pk_test_ZW5vdWdoLWFscGFjYS04Mi5jbGVyay5hY2NvdW50cy5sY2xjbGVyay5jb20k",
        "jtYvyt_H",
        id="omits-special-characters-slash",
    ),
    pytest.param(
        "pk_test_eHh4eHh4LXhhYWFhYS1hYS5jbGVyay5hY2NvdW50cy5sY2xjbGVyay5jb20k",
        "tZJdb-5s",
        id="omits-special-characters-plus",
    ),
    pytest.param(PK_LIVE, "MqCvchyS", id="pkLive"),
    pytest.param(PK_TEST, "vWCgMp3A", id="pkTest"),
]


@pytest.mark.parametrize(("publishable_key", "suffix"), VECTORS)
def test_cookie_suffix(publishable_key: str, suffix: str) -> None:
    """The suffix is base64url(SHA-1(key))[:8], the whole key hashed (getCookieSuffix)."""
    assert ClerkConfig(publishable_key=publishable_key).cookie_suffix == suffix
    assert cookie_suffix(publishable_key) == suffix


def test_no_publishable_key_no_suffix(key: KeyPair) -> None:
    """Without a publishable key there is no suffix (and no handshake)."""
    assert ClerkConfig(jwt_key=key.public_pem).cookie_suffix is None


# -- suffixedCookies ----------------------------------------------------------------------------


@dataclass
class Jar:
    """The tokens and values a row's cookies are made of."""

    key: KeyPair
    clock: FakeClock
    fake: FakeClerk

    def token(self, who: str, issued: float = 0, lifetime: float = 60, **options: Any) -> str:
        options.setdefault("issuer", self.fake.issuer)
        return session_token(
            self.key,
            self.clock,
            issued=issued,
            lifetime=lifetime,
            user_id=f"user_{who}",
            session_id=f"sess_{who}",
            **options,
        )

    def values(self) -> dict[str, str]:
        return {
            "{T}": str(int(self.clock.now) - 200),
            "{P}": self.token("plain"),
            "{S}": self.token("sfx"),
            "{S-30}": self.token("sfx", issued=-30),
            "{P-expired}": self.token("plain", issued=-120),
            "{S-expired}": self.token("sfx", issued=-150),
            "{P-http}": self.token("plain", issuer="http:whatever"),
            "{P-123}": self.token("plain", claims={"iss": 123}),
            "{P-foreign}": self.token("plain", issuer="https://clerk.other.test"),
        }

    def cookies(self, row: dict[str, str]) -> dict[str, str]:
        values = self.values()
        suffix = self.fake.cookie_suffix
        return {
            name.replace("{x}", suffix): values.get(value, value) for name, value in row.items()
        }


Expect = Callable[[dict[str, str]], dict[str, Any]]


def signed_in(who: str) -> Expect:
    return lambda cookies: ran(f"user_{who}", f"sess_{who}")


def signed_out(reason: str) -> Expect:
    return lambda cookies: to_sign_in(reason, URL)


def handed_off(
    reason: str, *, suffixed: bool, session: str | None, db: str | None = None, **extra: Any
) -> Expect:
    """A handshake; ``session``/``db`` name the cookie whose value goes on the URL."""

    def expect(cookies: dict[str, str]) -> dict[str, Any]:
        found = handshake(f"{HANDSHAKE}?...", reason, **extra)
        found["params"] = handshake_params(
            URL,
            reason,
            suffixed=suffixed,
            session=cookies[session] if session else None,
            dev_browser=cookies[db] if db else None,
        )
        return found

    return expect


EXPIRED = "session-token-expired-refresh-non-eligible-no-refresh-cookie"
NO_UAT = "session-token-but-no-client-uat"
DB = {"__clerk_db_jwt": "dvb_plain", "__clerk_db_jwt_{x}": "dvb_sfx"}

SELECTION = [
    pytest.param(
        "production",
        {"__client_uat": "{T}", "__session": "{P}"},
        signed_in("plain"),
        id="plain-only",
    ),
    pytest.param(
        "production",
        {"__client_uat": "{T}", "__session": "{P-expired}"},
        handed_off(EXPIRED, suffixed=False, session="__session", detail=EXPIRED_DETAIL),
        id="plain-only-expired-suffixed_cookies=false",
    ),
    pytest.param(
        "production",
        {
            "__client_uat": "{T}",
            "__client_uat_{x}": "{T}",
            "__session": "{P}",
            "__session_{x}": "{S-30}",
            **DB,
        },
        signed_in("plain"),
        id="both-plain-newer",
    ),
    pytest.param(
        "development",
        {
            "__client_uat": "{T}",
            "__client_uat_{x}": "{T}",
            "__session": "{P-expired}",
            "__session_{x}": "{S-expired}",
            **DB,
        },
        handed_off(
            EXPIRED,
            suffixed=False,
            session="__session",
            db="__clerk_db_jwt",
            detail=EXPIRED_DETAIL,
        ),
        id="both-plain-newer-dev-browser-plain",
    ),
    pytest.param(
        "development",
        {
            "__client_uat": "{T}",
            "__client_uat_{x}": "0",
            "__session": "{P}",
            "__clerk_db_jwt": "dvb_plain",
        },
        signed_in("plain"),
        id="suffixed-uat-0-plain-uat-set",
    ),
    pytest.param(
        "production",
        {
            "__client_uat": "0",
            "__client_uat_{x}": "0",
            "__session": "{P}",
            "__session_{x}": "{S}",
        },
        handed_off(NO_UAT, suffixed=True, session="__session_{x}"),
        id="both-uat-0-both-sessions",
    ),
    pytest.param(
        "production",
        {
            "__client_uat": "{T}",
            "__client_uat_{x}": "{T}",
            "__session": "{P}",
            "__session_{x}": "{S}",
        },
        signed_in("sfx"),
        id="both-pairs-valid",
    ),
    pytest.param(
        "production",
        {
            "__client_uat": "{T}",
            "__client_uat_{x}": "{T}",
            "__session": "{P-http}",
            "__session_{x}": "{S}",
        },
        signed_in("sfx"),
        id="plain-iss-http:whatever",
    ),
    pytest.param(
        "production",
        {
            "__client_uat": "{T}",
            "__client_uat_{x}": "{T}",
            "__session": "{P-123}",
            "__session_{x}": "{S}",
        },
        signed_in("sfx"),
        id="plain-iss-not-a-string",
    ),
    pytest.param(
        "development",
        {
            "__client_uat": "{T}",
            "__session": "{P-foreign}",
            "__client_uat_8HKF1r6W": "{T}",
            "__session_8HKF1r6W": "{P-foreign}",
            "__client_uat_Rmi8c5i8": "{T}",
            "__session_Rmi8c5i8": "{P-foreign}",
            "__client_uat_{x}": "{T}",
            "__session_{x}": "{S-expired}",
            **DB,
        },
        handed_off(
            EXPIRED,
            suffixed=True,
            session="__session_{x}",
            db="__clerk_db_jwt_{x}",
            detail=EXPIRED_DETAIL,
        ),
        id="several-apps-ours-picked-dev-browser-suffixed",
    ),
    pytest.param(
        "development",
        {
            "__client_uat": "0",
            "__client_uat_{x}": "0",
            "__session": "{P}",
            "__session_{x}": "{S}",
            **DB,
        },
        handed_off(NO_UAT, suffixed=True, session="__session_{x}", db="__clerk_db_jwt_{x}"),
        id="dev-both-uat-0",
    ),
    pytest.param(
        "production",
        {"__client_uat": "0", "__client_uat_{x}": "0", "__session": "{P}"},
        signed_out("session-token-and-uat-missing"),
        id="prod-both-uat-0-plain-session-only",
    ),
    pytest.param(
        "production",
        {
            "__client_uat": "{T}",
            "__client_uat_{x}": "{T}",
            "__session": "not-a-jwt",
            "__session_{x}": "{S}",
        },
        signed_out("token-invalid"),
        id="plain-undecodable-stays-plain",
    ),
    pytest.param(
        "production",
        {"__client_uat": "{T}", "__session_{x}": "{S}"},
        handed_off("client-uat-but-no-session-token", suffixed=False, session=None),
        id="suffixed-session-without-suffixed-uat",
    ),
    pytest.param(
        "development",
        {
            "__client_uat": "0",
            "__client_uat_{x}": "{T}",
            "__session": "{P}",
            "__session_{x}": "{S-expired}",
            **DB,
        },
        handed_off(NO_UAT, suffixed=False, session="__session", db="__clerk_db_jwt"),
        id="dev-plain-uat-0-suffixed-expired",
    ),
    pytest.param(
        "development",
        {
            "__client_uat": "0",
            "__client_uat_{x}": "{T}",
            "__session": "{P}",
            "__session_{x}": "{S}",
            **DB,
        },
        signed_in("sfx"),
        id="dev-plain-uat-0-suffixed-valid",
    ),
    pytest.param(
        "production",
        {"__session": "{P-foreign}"},
        signed_out("session-token-and-uat-missing"),
        id="another-apps-plain-session-only",
    ),
    pytest.param(
        "production",
        {"__client_uat_{x}": "{T}", "__session_{x}": "{S}"},
        signed_in("sfx"),
        id="suffixed-only",
    ),
    pytest.param(
        "production",
        {
            "__client_uat": "{T}",
            "__client_uat_{x}": "0",
            "__session": "{P}",
            "__session_{x}": "{S}",
        },
        signed_in("plain"),
        id="suffixed-uat-0-wins-nothing",
    ),
]


def make(key: KeyPair, clock: FakeClock, instance: Any) -> FakeClerk:
    """A FakeClerk for Clerk's fixture instance (pkLive/pkTest)."""
    return FakeClerk(key=key, clock=clock, instance=instance, origin=ORIGIN, frontend_api=HOST)


@pytest.mark.parametrize(("instance", "row", "expect"), SELECTION)
async def test_suffixed_cookies_selection(
    key: KeyPair, clock: FakeClock, instance: str, row: dict[str, str], expect: Expect
) -> None:
    """The pair used is usesSuffixedCookies' (authenticateContext.test.ts suffixedCookies)."""
    fake = make(key, clock, instance)
    assert fake.publishable_key == (PK_LIVE if instance == "production" else PK_TEST)
    jar = Jar(key, clock, fake)
    cookies = jar.cookies(row)
    response = await request(site(fake, clock), cookies=cookies)
    by_row_name = {name: cookies[name.replace("{x}", fake.cookie_suffix)] for name in row}
    expected = expect(by_row_name)
    assert observed(response, HANDSHAKE) == expected


async def test_refused_plain_token_does_not_change_the_pair(key: KeyPair, clock: FakeClock) -> None:
    """Another app's plain session refused before (as a Bearer token) still selects ours."""
    fake = make(key, clock, "production")
    jar = Jar(key, clock, fake)
    foreign = jar.token("other", issuer="https://clerk.other.test")
    x = fake.cookie_suffix
    cookies = {
        "__client_uat": str(int(clock.now)),
        "__session": foreign,
        f"__client_uat_{x}": str(int(clock.now) - 20),
        f"__session_{x}": jar.token("sfx", issued=-10),
    }
    app = site(fake, clock)
    fresh = await request(app, cookies=cookies)
    assert answer(fresh) == ran("user_sfx", "sess_sfx")
    bearer = {"authorization": f"Bearer {foreign}"}
    refused = await request(app, "/api/x", headers=bearer)
    assert answer(refused) == unauthorized("token-invalid-issuer", token_presented=True)
    again = await request(app, cookies=cookies)
    assert answer(again) == ran("user_sfx", "sess_sfx")


# -- __client_uat as parseInt -----------------------------------------------------------------

PARSE_INT = [
    pytest.param("1711618859", 1711618859, id="seconds"),
    pytest.param("1711618859abc", 1711618859, id="trailing-garbage"),
    pytest.param("12.9", 12, id="fraction"),
    pytest.param("-5", -5, id="negative-counts-as-set"),
    pytest.param("+7", 7, id="plus"),
    pytest.param("  42", 42, id="leading-space"),
    pytest.param("\t42", 42, id="leading-tab"),
    pytest.param("0x10", 16, id="hex"),
    pytest.param("0X1f", 31, id="hex-upper"),
    pytest.param("-0x10", -16, id="negative-hex"),
    pytest.param("0x", 0, id="hex-no-digits"),
    pytest.param("0", 0, id="zero"),
    pytest.param("007", 7, id="leading-zeros"),
    pytest.param("1e3", 1, id="exponent-not-read"),
    pytest.param("", 0, id="empty"),
    pytest.param("abc", 0, id="letters"),
    pytest.param(None, 0, id="absent"),
    pytest.param("-", 0, id="sign-only"),
    pytest.param("\u0661\u0662", 0, id="arabic-indic-digits"),
    pytest.param("\uff11\uff12", 0, id="fullwidth-digits"),
    pytest.param("\u00b2", 0, id="superscript-two"),
    pytest.param("12\u00b2", 12, id="digits-then-superscript"),
]


@pytest.mark.parametrize(("text", "value"), PARSE_INT)
def test_client_uat_is_read_as_parse_int(text: str | None, value: int) -> None:
    """``Number.parseInt(v) || 0``: leading ASCII digits or 0x hex, a sign; else 0."""
    assert js_parse_int(text) == value


def test_client_uat_long_digit_strings_count_as_set() -> None:
    """25 digits parse as JS does (a large number, so "set"); beyond CPython's 4300: 0."""
    assert js_parse_int("9" * 25) == int("9" * 25)
    assert js_parse_int("9" * 5000) == 0


UAT_FLOW = [
    pytest.param("{iat+10}abc", None, "session-token-iat-before-client-uat", id="garbage-stale"),
    pytest.param("{iat-10}abc", None, None, id="garbage-fresh-signed-in"),
    pytest.param("12.9", None, None, id="fraction-signed-in"),
    pytest.param("-5", "no-session", "client-uat-but-no-session-token", id="negative-is-set"),
    pytest.param("0x10", "no-session", "client-uat-but-no-session-token", id="hex-is-set"),
    pytest.param("abc", "no-session", "session-token-and-uat-missing", id="garbage-is-0"),
    pytest.param("", "no-session", "session-token-and-uat-missing", id="empty-is-0"),
]


@pytest.mark.parametrize(("uat", "session", "reason"), UAT_FLOW)
async def test_client_uat_parse_int_in_the_flow(
    key: KeyPair, clock: FakeClock, uat: str, session: str | None, reason: str | None
) -> None:
    """``__client_uat`` values decide as their parseInt (negative counts as set, garbage as 0)."""
    fake = make(key, clock, "production")
    iat = int(clock.now)
    cookies = {
        "__client_uat": uat.replace("{iat+10}", str(iat + 10)).replace("{iat-10}", str(iat - 10))
    }
    if session is None:
        cookies["__session"] = Jar(key, clock, fake).token("plain")
    response = await request(site(fake, clock), cookies=cookies)
    if reason is None:
        assert answer(response) == ran("user_plain", "sess_plain")
    elif reason == "session-token-and-uat-missing":
        assert answer(response) == to_sign_in(reason, URL)
    else:
        assert response.status_code == 307
        assert response.headers["x-clerk-auth-status"] == "handshake"
        assert response.headers["x-clerk-auth-reason"] == reason
