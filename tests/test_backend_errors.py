"""``ClerkBackend`` errors and retries: the error class each status calls for, the secret key
kept out of every message, repr, log and exception chain, and bounded retries (idempotent
calls only, on 429/502/503/504 and connection errors, ``Retry-After`` honoured, all within the
call's timeout). Waits go through a recording ``sleep=``: nothing really sleeps."""

from __future__ import annotations

import logging
import traceback
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from email.utils import format_datetime
from typing import Any

import httpx
import pytest

from clerk_asgi import ClerkConfig
from clerk_asgi.backend import (
    BackendAPIError,
    BackendForbiddenError,
    BackendNotFoundError,
    BackendRateLimitError,
    BackendUnauthorizedError,
    ClerkBackend,
    RevocationList,
)
from clerk_asgi.exceptions import ClerkError, ConfigurationError
from clerk_asgi.testing import FakeClerk, FakeClock, KeyPair

from ._backend_helpers import (
    SECRET,
    SESSION,
    Script,
    Sleeps,
    answer,
    backend,
    clerk_error,
    ok,
)

pytestmark = pytest.mark.anyio

Call = Callable[[ClerkBackend], Awaitable[Any]]


async def get(clerk: ClerkBackend) -> Any:
    return await clerk.sessions.get("sess_1")


async def revoke(clerk: ClerkBackend) -> Any:
    return await clerk.sessions.revoke("sess_1")


async def listing(clerk: ClerkBackend) -> Any:
    return await clerk.sessions.list(user_id="user_1")


async def mint(clerk: ClerkBackend) -> Any:
    return await clerk.sessions.token("sess_1", template="supabase")


async def payload(clerk: ClerkBackend) -> Any:
    return await clerk.handshake_payload("nonce_1")


async def failure(clerk: ClerkBackend, call: Call = get) -> BackendAPIError:
    with pytest.raises(BackendAPIError) as raised:
        await call(clerk)
    return raised.value


def seen(error: BackendAPIError) -> tuple[type[BackendAPIError], int, str, str, float | None]:
    return (type(error), error.status, error.code, error.message, error.retry_after)


# -- the error class by status ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("status", "body", "expected"),
    [
        (
            401,
            clerk_error("authentication_invalid", "Unable to authenticate the request"),
            (BackendUnauthorizedError, 401, "authentication_invalid"),
        ),
        (
            403,
            clerk_error("feature_not_enabled", "Not on this plan"),
            (BackendForbiddenError, 403, "feature_not_enabled"),
        ),
        (
            404,
            clerk_error("resource_not_found", "No session was found"),
            (BackendNotFoundError, 404, "resource_not_found"),
        ),
        (
            429,
            clerk_error("too_many_requests", "Too many requests"),
            (BackendRateLimitError, 429, "too_many_requests"),
        ),
        (
            422,
            clerk_error("form_param_value_invalid", "status is invalid"),
            (BackendAPIError, 422, "form_param_value_invalid"),
        ),
        (500, b"oops", (BackendAPIError, 500, "unexpected-status")),
        (400, None, (BackendAPIError, 400, "unexpected-status")),
    ],
)
async def test_error_class_by_status(status: int, body: Any, expected: tuple[Any, ...]) -> None:
    """401, 403, 404 and 429 have their own classes, all BackendAPIError and ClerkError."""
    error = await failure(backend(Script(answer(status, body)), max_retries=0))
    assert (type(error), error.status, error.code) == expected
    assert isinstance(error, BackendAPIError)
    assert isinstance(error, ClerkError)


async def test_a_wrong_secret_key_is_unauthorized(key: KeyPair, clock: FakeClock) -> None:
    """FakeClerk refusing another secret key: BackendUnauthorizedError, the key not echoed."""
    fake = FakeClerk(key=key, clock=clock)
    clerk = ClerkBackend(
        secret_key="sk_test_wrongwrongwrong",
        api_url=fake.api_url,
        http_client=httpx.AsyncClient(transport=httpx.ASGITransport(fake)),
    )
    error = await failure(clerk)
    assert seen(error) == (
        BackendUnauthorizedError,
        401,
        "authentication_invalid",
        "Unable to authenticate the request, you need to supply an active API key",
        None,
    )
    assert "sk_test_wrongwrongwrong" not in str(error)


# -- the secret key, never shown ----------------------------------------------------------------


def texts_of(error: BaseException) -> list[str]:
    """Every text an error can show: str, repr, message, code, args, the formatted
    traceback, and the same for every exception chained to it."""
    texts = ["".join(traceback.format_exception(error))]
    while error is not None:
        texts += [str(error), repr(error), *map(str, error.args)]
        texts += [str(getattr(error, name, "")) for name in ("message", "code")]
        error = error.__cause__ or error.__context__  # type: ignore[assignment]
    return texts


ECHOES = [
    pytest.param(
        lambda request: answer(401, clerk_error(f"bad_{SECRET}", f"Invalid key {SECRET}.")),
        "Invalid key [secret key].",
        id="echoed-in-the-answer",
    ),
    pytest.param(
        lambda request: (_ for _ in ()).throw(
            httpx.ConnectError(f"cannot reach with {request.headers}", request=request)
        ),
        "ConnectError",
        id="in-a-transport-error",
    ),
    pytest.param(
        lambda request: (_ for _ in ()).throw(
            httpx.ReadTimeout(f"slow with {request.headers}", request=request)
        ),
        "no answer within 5.0 s",
        id="in-a-timeout",
    ),
]


@pytest.mark.parametrize(("handler", "message"), ECHOES)
async def test_the_secret_never_shows(
    handler: Callable[[httpx.Request], httpx.Response],
    message: str,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Not in the message, str, repr, traceback, chained exceptions, nor any log record."""
    caplog.set_level(logging.DEBUG)
    clerk = backend(handler, sleep=Sleeps())
    error = await failure(clerk)
    assert error.message == message
    assert error.__cause__ is None
    assert error.__context__ is None
    for text in texts_of(error):
        assert SECRET not in text
    assert SECRET not in caplog.text
    assert SECRET not in repr(clerk)
    assert SECRET not in repr(clerk.sessions)


async def test_the_secret_never_shows_when_raised_inside_an_except() -> None:
    """Raised while the caller handles another error, the chain holds only the caller's."""
    clerk = backend(Script(answer(401, clerk_error("x", SECRET))))
    try:
        raise KeyError("the caller's")
    except KeyError:
        error = await failure(clerk)
    assert isinstance(error.__context__, KeyError)
    for text in texts_of(error):
        assert SECRET not in text


# -- retries ------------------------------------------------------------------------------------


@pytest.mark.parametrize("status", [429, 502, 503, 504])
@pytest.mark.parametrize("call", [get, revoke, listing], ids=["get", "revoke", "list"])
async def test_idempotent_calls_are_retried(status: int, call: Call) -> None:
    """get, list and revoke are retried on 429/502/503/504 and then succeed."""
    body: Any = [SESSION] if call is listing else SESSION
    script = Script(answer(status, None, headers={"Retry-After": "0"}), ok(body))
    sleeps = Sleeps()
    await call(backend(script, sleep=sleeps))
    assert len(script.requests) == 2
    assert sleeps.delays == [0.0]


@pytest.mark.parametrize(
    "exception",
    [httpx.ConnectError, httpx.ReadError, httpx.RemoteProtocolError, httpx.WriteError],
)
async def test_connection_errors_are_retried(exception: type[httpx.TransportError]) -> None:
    """A connection error is retried after 0.5 s, then 1 s: the default backoff."""
    script = Script(exception("down"), exception("down"), ok(SESSION))
    sleeps = Sleeps()
    session = await get(backend(script, sleep=sleeps))
    assert session.id == SESSION["id"]
    assert sleeps.delays == [0.5, 1.0]


async def test_retries_are_bounded() -> None:
    """Two retries by default: the third 503 is the answer."""
    script = Script(*(answer(503, clerk_error("unavailable", "Try again")) for _ in range(3)))
    sleeps = Sleeps()
    error = await failure(backend(script, sleep=sleeps))
    assert seen(error) == (BackendAPIError, 503, "unavailable", "Try again", None)
    assert len(script.requests) == 3
    assert sleeps.delays == [0.5, 1.0]


@pytest.mark.parametrize(("max_retries", "requests"), [(0, 1), (1, 2), (4, 5)])
async def test_max_retries(max_retries: int, requests: int) -> None:
    """``max_retries=`` sets how many retries follow the first attempt."""
    script = Script(*(answer(502) for _ in range(requests)))
    await failure(backend(script, max_retries=max_retries, sleep=Sleeps(), timeout=60))
    assert len(script.requests) == requests


@pytest.mark.parametrize("value", [-1, 1.5, True, "2", None])
def test_max_retries_must_be_a_count(value: Any) -> None:
    """Anything but an int >= 0 is a ConfigurationError."""
    with pytest.raises(ConfigurationError) as raised:
        ClerkBackend(secret_key=SECRET, max_retries=value)
    assert str(raised.value) == (
        f"max_retries must be an int >= 0 (retries of a call), got {value!r}."
    )


@pytest.mark.parametrize(
    ("status", "kind"),
    [(400, BackendAPIError), (404, BackendNotFoundError), (500, BackendAPIError)],
)
async def test_other_statuses_are_not_retried(status: int, kind: type[BackendAPIError]) -> None:
    """400, 404 and 500 (Clerk did answer, retrying would not help) are the answer at once."""
    script = Script(answer(status, clerk_error("nope", "Nope")))
    sleeps = Sleeps()
    error = await failure(backend(script, sleep=sleeps))
    assert type(error) is kind
    assert len(script.requests) == 1
    assert sleeps.delays == []


async def test_timeouts_are_not_retried() -> None:
    """A timed-out attempt used the call's time: no retry."""
    script = Script(httpx.ReadTimeout("slow"), ok(SESSION))
    error = await failure(backend(script, sleep=Sleeps()))
    assert seen(error) == (BackendAPIError, 0, "timeout", "no answer within 5.0 s", None)
    assert len(script.requests) == 1


@pytest.mark.parametrize("call", [mint, payload], ids=["token", "handshake-payload"])
async def test_minting_and_the_handshake_payload_are_not_retried(call: Call) -> None:
    """A token mint is not idempotent, and the handshake payload is single use: one attempt."""
    script = Script(answer(503, None, headers={"Retry-After": "0"}), ok({"jwt": "a.b.c"}))
    error = await failure(backend(script, sleep=Sleeps()), call)
    assert error.status == 503
    assert len(script.requests) == 1


async def test_retry_after_seconds_are_honoured() -> None:
    """``Retry-After: 2`` waits 2 seconds, whatever the backoff would be."""
    script = Script(
        answer(429, clerk_error("too_many_requests", "Slow down"), headers={"Retry-After": "2"}),
        answer(429, None, headers={"Retry-After": "1.5"}),
        ok(SESSION),
    )
    sleeps = Sleeps()
    await get(backend(script, sleep=sleeps))
    assert sleeps.delays == [2.0, 1.5]


async def test_retry_after_date_is_honoured(clock: FakeClock) -> None:
    """``Retry-After`` as an HTTP date waits until then, by the client's clock."""
    date = format_datetime(datetime.fromtimestamp(clock.now + 3, tz=UTC), usegmt=True)
    script = Script(answer(503, None, headers={"Retry-After": date}), ok(SESSION))
    sleeps = Sleeps()
    await get(backend(script, sleep=sleeps, clock=clock))
    assert sleeps.delays == [3.0]


async def test_a_retry_after_longer_than_the_time_left_is_answered_at_once() -> None:
    """A wait that would not fit in the call's timeout is not waited for: the error at once,
    with its retry_after."""
    script = Script(
        answer(429, clerk_error("too_many_requests", "Slow down"), headers={"Retry-After": "30"})
    )
    sleeps = Sleeps()
    error = await failure(backend(script, sleep=sleeps))
    assert seen(error) == (BackendRateLimitError, 429, "too_many_requests", "Slow down", 30.0)
    assert sleeps.delays == []


async def test_waits_count_against_the_timeout() -> None:
    """The waits already made count: 2 s then 2 s fit in 5 s, a third 2 s does not."""
    script = Script(*(answer(503, None, headers={"Retry-After": "2"}) for _ in range(3)))
    sleeps = Sleeps()
    error = await failure(backend(script, sleep=sleeps, max_retries=5))
    assert (error.status, error.retry_after) == (503, 2.0)
    assert sleeps.delays == [2.0, 2.0]
    assert len(script.requests) == 3


async def test_the_timeout_covers_every_attempt_and_wait() -> None:
    """A real sleep is counted too: after 0.04 s waited, a 1 s backoff no longer fits in a
    1 s timeout."""
    script = Script(answer(503, None, headers={"Retry-After": "0.04"}), answer(503), ok(SESSION))
    error = await failure(backend(script, timeout=1.0))
    assert error.status == 503
    assert len(script.requests) == 2


async def test_retries_are_logged_without_the_secret(caplog: pytest.LogCaptureFixture) -> None:
    """Each retry is logged at INFO with the path and the error code."""
    caplog.set_level(logging.INFO, logger="clerk_asgi.backend")
    script = Script(answer(503, clerk_error("unavailable", "x"), headers={"Retry-After": "0"}))
    script.answers.append(ok(SESSION))
    await get(backend(script, sleep=Sleeps()))
    assert [r.getMessage() for r in caplog.records if r.name == "clerk_asgi.backend"] == [
        "Clerk Backend API GET /v1/sessions/sess_1: unavailable; retry 1 in 0.00 s"
    ]


# -- Retry-After parsing ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        ("30", 30.0),
        (" 7 ", 7.0),
        ("0", 0.0),
        ("-5", None),
        ("inf", None),
        ("nan", None),
        ("soon", None),
        ("Wed, 21 Oct 2015 07:28:00 GMT", None),  # a date already past
        ("Thu, 15 Jan 2027 08:00:10 GMT", 10.0),
        ("Thu, 15 Jan 2027 08:00:10 -0000", 10.0),
        ("Thu, 15 Jan 2027 09:00:10 +0100", 10.0),
    ],
)
async def test_retry_after_values(header: str, expected: float | None, clock: FakeClock) -> None:
    """Seconds, or an HTTP date less the clock; None when malformed, negative or past."""
    script = Script(answer(429, None, headers={"Retry-After": header}))
    error = await failure(backend(script, clock=clock, max_retries=0))
    assert error.retry_after == expected


# -- configuration ------------------------------------------------------------------------------


def test_config_brings_the_clock_and_the_revocation_list(clock: FakeClock) -> None:
    """From a ClerkConfig: its revocation list (and clock); those keywords with config= are
    refused, while max_retries= and sleep= may go with it."""
    revocations = RevocationList(clock=clock)
    config = ClerkConfig(secret_key=SECRET, clock=clock, revocation_list=revocations)
    clerk = ClerkBackend(config, max_retries=0, sleep=Sleeps())
    assert (clerk.revocation_list, clerk.max_retries) == (revocations, 0)
    for keyword in ({"revocation_list": revocations}, {"clock": clock}):
        with pytest.raises(ConfigurationError) as raised:
            ClerkBackend(config, **keyword)
        assert str(raised.value) == "Pass either config= or keywords to ClerkBackend, not both."


def test_a_revocation_list_must_be_one() -> None:
    """Something that is not a revocation list is refused, naming the right classes."""
    with pytest.raises(ConfigurationError) as raised:
        ClerkBackend(secret_key=SECRET, revocation_list=object())  # type: ignore[arg-type]
    assert "RevocationList() or RedisRevocationList(...)" in str(raised.value)
