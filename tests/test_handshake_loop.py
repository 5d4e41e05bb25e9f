"""The loop guard: ``__clerk_redirect_count`` counts handshakes in a row (the cookie lives 2 s)
and the browser is signed out at three.

Mirrors ``@clerk/backend`` ``handshake.test.ts`` ``checkAndTrackRedirectLoop``. The counter is
read as JS ``Number(value) || 0``; the guard stops at three *or more* (Clerk: exactly three),
and a forged value can only stop the handshake early, never add one: garbage, and anything
below zero, counts as 0.
"""

from __future__ import annotations

import pytest

from clerk_asgi.testing import FakeClock, KeyPair

from ._handshake_helpers import (
    FETCH,
    HANDSHAKE,
    ORIGIN,
    answer,
    counter,
    handshake,
    handshake_params,
    make_fake,
    params,
    ran,
    request,
    site,
    to_sign_in,
    unauthorized,
)

pytestmark = pytest.mark.anyio

REASON = "client-uat-but-no-session-token"
URL = ORIGIN + "/dashboard"

COUNTS = [
    pytest.param(None, 1, id="absent"),
    pytest.param("0", 1, id="0"),
    pytest.param("1", 2, id="1"),
    pytest.param("2", 3, id="2"),
    pytest.param(" 2 ", 3, id="spaces"),
    pytest.param("2.5", 3, id="fraction-below-3"),
    pytest.param("3", None, id="3-stops"),
    pytest.param("4", None, id="4-stops"),
    pytest.param("12.9", None, id="12.9"),
    pytest.param("1e3", None, id="1e3"),
    pytest.param("99999999999999999999999999", None, id="huge"),
    pytest.param("9" * 400, None, id="beyond-float"),
    pytest.param("Infinity", None, id="Infinity"),
    pytest.param("abc", 1, id="garbage"),
    pytest.param("NaN", 1, id="NaN"),
    pytest.param("0x10", 1, id="hex-is-garbage"),
    pytest.param('"1"', 2, id="quoted"),
    pytest.param("-5", 1, id="negative"),
    pytest.param("-1e300", 1, id="very-negative"),
    pytest.param("-inf", 1, id="-inf"),
    pytest.param("-Infinity", 1, id="-Infinity"),
]


@pytest.mark.parametrize(("sent", "next_count"), COUNTS)
async def test_redirect_counter(
    key: KeyPair, clock: FakeClock, sent: str | None, next_count: int | None
) -> None:
    """Each counter value hands off with n+1 or signs out at 3+ (checkAndTrackRedirectLoop)."""
    fake = make_fake(key, clock)
    cookies = {"__client_uat": "12345"}
    if sent is not None:
        cookies["__clerk_redirect_count"] = sent
    response = await request(site(fake, clock), cookies=cookies)
    found = answer(response)
    if next_count is None:
        assert found == to_sign_in(REASON, URL)
    else:
        found["params"] = params(found.pop("location"))
        expected = handshake("", REASON, count=next_count)
        del expected["location"]
        assert found == {**expected, "params": handshake_params(URL, REASON)}


async def test_three_handshakes_in_a_row_then_signed_out(
    key: KeyPair, clock: FakeClock, caplog: pytest.LogCaptureFixture
) -> None:
    """The counter cookie fed back counts 1, 2, 3; the fourth page load is signed out, logged."""
    fake = make_fake(key, clock)
    app = site(fake, clock)
    cookies = {"__client_uat": "12345"}
    seen = []
    for _ in range(4):
        response = await request(app, cookies=cookies)
        seen.append(response.headers.get_list("set-cookie"))
        if response.status_code == 307 and response.headers["location"].startswith(HANDSHAKE):
            value = response.headers["set-cookie"].split(";")[0].partition("=")[2]
            cookies["__clerk_redirect_count"] = value
    assert seen == [[counter(1)], [counter(2)], [counter(3)], []]
    assert answer(response) == to_sign_in(REASON, URL)
    assert [r.getMessage() for r in caplog.records if r.name == "clerk_asgi._handshake"] == [
        f"Clerk: the handshake was tried 3 times in a row ({REASON}); signing the browser out. "
        "Either the Clerk keys of this server are not those of the frontend's instance, or "
        "Clerk's Frontend API or Backend API cannot be reached from here."
    ]


async def test_loop_guard_on_a_public_page_runs_the_app(key: KeyPair, clock: FakeClock) -> None:
    """At three, a public page runs signed out with the handshake's reason."""
    fake = make_fake(key, clock)
    cookies = {"__client_uat": "12345", "__clerk_redirect_count": "3"}
    response = await request(site(fake, clock), "/public/x", cookies=cookies)
    assert answer(response) == ran(None, reason=REASON)


async def test_counter_is_not_read_for_other_requests(key: KeyPair, clock: FakeClock) -> None:
    """A fetch is signed out with the reason whatever the counter, and gets no counter cookie."""
    fake = make_fake(key, clock)
    cookies = {"__client_uat": "12345", "__clerk_redirect_count": "1"}
    response = await request(site(fake, clock), "/api/x", cookies=cookies, headers=FETCH)
    assert answer(response) == unauthorized(REASON)
