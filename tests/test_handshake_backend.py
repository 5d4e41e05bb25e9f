"""``clerk_asgi.backend.ClerkBackend``: the Backend API client the handshake reads its payload
with. Configuration, what is sent, Clerk's error shape, bounded time and size, and the secret
key kept out of every repr and error. HTTP goes through ``httpx.MockTransport`` handlers.
"""

from __future__ import annotations

import gzip
from collections.abc import AsyncIterator, Callable
from typing import Any

import anyio
import httpx
import pytest

from clerk_asgi import ClerkConfig
from clerk_asgi.backend import API_VERSION, BackendAPIError, ClerkBackend
from clerk_asgi.exceptions import ClerkError, ConfigurationError
from clerk_asgi.testing import FakeClerk, FakeClock, KeyPair

pytestmark = pytest.mark.anyio

SECRET = "sk_test_backendsecret0123456789"
PAYLOAD = "https://api.clerk.com/v1/clients/handshake_payload"
NO_SECRET = "The Backend API needs a secret key: set CLERK_SECRET_KEY or pass secret_key=."

Handler = Callable[[httpx.Request], Any]


def backend(handler: Handler, **options: Any) -> ClerkBackend:
    """A ClerkBackend whose HTTP goes to ``handler``."""
    client = httpx.AsyncClient(transport=httpx.MockTransport(handler))
    return ClerkBackend(secret_key=SECRET, http_client=client, **options)


def answering(status: int, body: Any = None, **options: Any) -> Handler:
    def handle(request: httpx.Request) -> httpx.Response:
        if isinstance(body, bytes):
            return httpx.Response(status, content=body, **options)
        return httpx.Response(status, json=body, **options)

    return handle


async def failure(client: ClerkBackend) -> BackendAPIError:
    with pytest.raises(BackendAPIError) as raised:
        await client.handshake_payload("nonce_1")
    return raised.value


def seen(error: BackendAPIError) -> tuple[int, str, str, float | None]:
    return (error.status, error.code, error.message, error.retry_after)


# -- configuration ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "keyword",
    [
        pytest.param({"secret_key": SECRET}, id="secret_key"),
        pytest.param({"api_url": "https://api.clerk.com"}, id="api_url"),
        pytest.param({"http_client": httpx.AsyncClient()}, id="http_client"),
        pytest.param({"timeout": 1.0}, id="timeout"),
    ],
)
def test_config_and_keywords_not_both(keyword: dict[str, Any]) -> None:
    """``config=`` and a keyword together are refused."""
    with pytest.raises(ConfigurationError) as raised:
        ClerkBackend(ClerkConfig(secret_key=SECRET), **keyword)
    assert str(raised.value) == "Pass either config= or keywords to ClerkBackend, not both."


def test_no_secret_key(key: KeyPair, monkeypatch: pytest.MonkeyPatch) -> None:
    """Without a secret key (nothing, only other keys, or a config without one): refused."""
    with pytest.raises(ConfigurationError) as nothing:
        ClerkBackend()
    assert str(nothing.value) == NO_SECRET
    with pytest.raises(ConfigurationError) as config:
        ClerkBackend(ClerkConfig(jwt_key=key.public_pem))
    assert str(config.value) == NO_SECRET
    monkeypatch.setenv("CLERK_JWT_KEY", key.public_pem)
    with pytest.raises(ConfigurationError) as environment:
        ClerkBackend()
    assert str(environment.value) == NO_SECRET


def test_malformed_secret_key() -> None:
    """A secret key that is not ``sk_test_``/``sk_live_`` is refused, without echoing it."""
    with pytest.raises(ConfigurationError) as raised:
        ClerkBackend(secret_key="pk_test_not-a-secret")
    assert "pk_test_not-a-secret" not in str(raised.value)


def test_repr_never_shows_the_secret() -> None:
    """The repr names the API URL only."""
    client = ClerkBackend(secret_key=SECRET)
    assert repr(client) == "ClerkBackend(api_url='https://api.clerk.com')"
    assert client.api_url == "https://api.clerk.com"


async def test_request_sent(monkeypatch: pytest.MonkeyPatch) -> None:
    """GET .../v1/clients/handshake_payload?nonce= with Bearer secret and Clerk-API-Version."""
    requests: list[httpx.Request] = []

    def handle(request: httpx.Request) -> httpx.Response:
        requests.append(request)
        return httpx.Response(200, json={"directives": ["a=1; Path=/", "b=2"]})

    assert await backend(handle).handshake_payload("n_1") == ["a=1; Path=/", "b=2"]
    [sent] = requests
    assert (sent.method, str(sent.url), sent.content) == ("GET", PAYLOAD + "?nonce=n_1", b"")
    assert sent.headers["authorization"] == f"Bearer {SECRET}"
    assert sent.headers["clerk-api-version"] == API_VERSION == "2026-05-12"
    assert sent.headers["accept"] == "application/json"
    assert sent.headers["accept-encoding"] == "identity"


async def test_environment_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    """CLERK_SECRET_KEY and CLERK_API_URL are read when no keyword is given."""
    monkeypatch.setenv("CLERK_SECRET_KEY", "sk_live_fromenv123")
    monkeypatch.setenv("CLERK_API_URL", "https://bapi.example.test/")
    requests: list[httpx.Request] = []

    def handle(request: httpx.Request) -> httpx.Response:
        requests.append(request)
        return httpx.Response(200, json={"directives": []})

    client = ClerkBackend(http_client=httpx.AsyncClient(transport=httpx.MockTransport(handle)))
    assert repr(client) == "ClerkBackend(api_url='https://bapi.example.test')"
    assert await client.handshake_payload("n") == []
    assert str(requests[0].url) == "https://bapi.example.test/v1/clients/handshake_payload?nonce=n"
    assert requests[0].headers["authorization"] == "Bearer sk_live_fromenv123"


async def test_config_settings(key: KeyPair, clock: FakeClock) -> None:
    """From a ClerkConfig: its secret, API URL, HTTP client; FakeClerk's Backend API answers."""
    fake = FakeClerk(key=key, clock=clock)
    config = ClerkConfig(
        secret_key=fake.secret_key,
        api_url=fake.api_url,
        http_client=httpx.AsyncClient(transport=httpx.ASGITransport(fake)),
        api_timeout=1.0,
    )
    client = ClerkBackend(config)
    error = await failure(client)
    assert seen(error) == (
        404,
        "resource_not_found",
        "No handshake payload for this nonce (unknown or already used) was found",
        None,
    )
    assert fake.last_api_version == API_VERSION


async def test_wrong_secret_is_clerks_401(key: KeyPair, clock: FakeClock) -> None:
    """Another secret key: Clerk's 401 ``authentication_invalid``, the key never echoed."""
    fake = FakeClerk(key=key, clock=clock)
    client = ClerkBackend(
        secret_key="sk_test_wrongwrong",
        api_url=fake.api_url,
        http_client=httpx.AsyncClient(transport=httpx.ASGITransport(fake)),
    )
    error = await failure(client)
    assert (error.status, error.code) == (401, "authentication_invalid")
    assert "sk_test_wrongwrong" not in str(error)


# -- Clerk's errors -----------------------------------------------------------------------------

ERRORS = [
    pytest.param(
        answering(
            404,
            {
                "errors": [
                    {
                        "message": "not found",
                        "long_message": "No payload",
                        "code": "resource_not_found",
                    }
                ],
                "clerk_trace_id": "t",
            },
        ),
        (404, "resource_not_found", "No payload", None),
        id="long_message",
    ),
    pytest.param(
        answering(
            422, {"errors": [{"message": "nonce is invalid", "code": "form_param_value_invalid"}]}
        ),
        (422, "form_param_value_invalid", "nonce is invalid", None),
        id="message",
    ),
    pytest.param(
        answering(429, {"errors": [{"code": "too_many_requests"}]}, headers={"Retry-After": "30"}),
        (429, "too_many_requests", "Too Many Requests", 30.0),
        id="retry-after",
    ),
    pytest.param(
        answering(503, b"", headers={"Retry-After": "Wed, 21 Oct 2026 07:28:00 GMT"}),
        (503, "unexpected-status", "Service Unavailable", None),
        id="retry-after-date",
    ),
    pytest.param(
        answering(500, b"<html>oops</html>"),
        (500, "unexpected-status", "Internal Server Error", None),
        id="not-json",
    ),
    pytest.param(
        answering(401, {"errors": []}), (401, "unexpected-status", "Unauthorized", None), id="empty"
    ),
    pytest.param(
        answering(400, {"errors": "bad"}),
        (400, "unexpected-status", "Bad Request", None),
        id="not-a-list",
    ),
    pytest.param(
        answering(400, {"errors": ["bad"]}),
        (400, "unexpected-status", "Bad Request", None),
        id="not-objects",
    ),
    pytest.param(
        answering(400, {"errors": [{"code": "c" * 300, "long_message": "m" * 900}]}),
        (400, "c" * 100, "m" * 500, None),
        id="truncated",
    ),
    pytest.param(
        answering(599, b""), (599, "unexpected-status", "error", None), id="unknown-status"
    ),
    pytest.param(
        answering(307, b"", headers={"Location": "https://evil.example/steal"}),
        (307, "unexpected-status", "Temporary Redirect", None),
        id="redirect-not-followed",
    ),
]


@pytest.mark.parametrize(("handler", "expected"), ERRORS)
async def test_clerk_error_shape(handler: Handler, expected: tuple[Any, ...]) -> None:
    """Clerk's ``{"errors": [{code, message, long_message}]}`` becomes BackendAPIError fields."""
    error = await failure(backend(handler))
    assert seen(error) == expected
    assert (
        str(error) == f"Clerk Backend API: {expected[2]} (status {expected[0]}, code {expected[1]})"
    )
    assert isinstance(error, ClerkError)


async def test_redirect_is_not_followed_even_by_a_following_client() -> None:
    """A redirect is never followed (the secret key would go with it), whatever the client."""
    requests: list[httpx.Request] = []

    def handle(request: httpx.Request) -> httpx.Response:
        requests.append(request)
        return httpx.Response(307, headers={"Location": "https://evil.example/steal"})

    client = httpx.AsyncClient(transport=httpx.MockTransport(handle), follow_redirects=True)
    error = await failure(ClerkBackend(secret_key=SECRET, http_client=client))
    assert error.status == 307
    assert [str(r.url.host) for r in requests] == ["api.clerk.com"]


# -- bounded time -------------------------------------------------------------------------------


async def test_timeout_when_the_api_never_answers() -> None:
    """A Backend API that never answers is given up after ``timeout`` seconds (status 0)."""

    async def hang(request: httpx.Request) -> httpx.Response:
        await anyio.sleep_forever()
        raise AssertionError("unreachable")  # pragma: no cover

    error = await failure(backend(hang, timeout=0.05))
    assert seen(error) == (0, "timeout", "no answer within 0.05 s", None)


@pytest.mark.parametrize(
    ("exception", "code", "message"),
    [
        pytest.param(httpx.ReadTimeout, "timeout", "no answer within 5.0 s", id="read-timeout"),
        pytest.param(
            httpx.ConnectTimeout, "timeout", "no answer within 5.0 s", id="connect-timeout"
        ),
        pytest.param(httpx.ConnectError, "network-error", "ConnectError", id="connect-error"),
        pytest.param(
            httpx.RemoteProtocolError, "network-error", "RemoteProtocolError", id="protocol"
        ),
        pytest.param(httpx.ReadError, "network-error", "ReadError", id="read-error"),
    ],
)
async def test_network_failures(
    exception: type[httpx.TransportError], code: str, message: str
) -> None:
    """Transport failures are BackendAPIError with status 0, named by type, nothing else."""

    def fail(request: httpx.Request) -> httpx.Response:
        raise exception(f"failed talking to {request.url} with {request.headers}", request=request)

    error = await failure(backend(fail))
    assert seen(error) == (0, code, message, None)
    assert SECRET not in str(error)
    assert error.__cause__ is None


async def test_own_client_when_none_is_given() -> None:
    """Without http_client, one of its own is made on first use (here: nothing listens)."""
    client = ClerkBackend(secret_key=SECRET, api_url="http://127.0.0.1:1", timeout=2)
    error = await failure(client)
    assert (error.status, error.code) == (0, "network-error")


# -- bounded size and malformed answers ----------------------------------------------------------


async def test_too_large_body_is_refused() -> None:
    """An answer over 256 KiB is refused."""
    body = b'{"directives": ["' + b"a" * 300_000 + b'"]}'
    error = await failure(backend(answering(200, body)))
    assert seen(error) == (200, "invalid-response", "answer too large", None)


async def test_endless_body_is_not_read_to_the_end() -> None:
    """An endless answer is refused after at most 256 KiB and a chunk have been read."""
    pulled = 0

    async def endless() -> AsyncIterator[bytes]:
        nonlocal pulled
        for _ in range(160):  # 10 MiB in 64 KiB chunks
            pulled += 1
            yield b"[" * 65_536

    def handle(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, content=endless())

    error = await failure(backend(handle))
    assert seen(error) == (200, "invalid-response", "answer too large", None)
    assert pulled <= 5


async def test_compressed_body_is_refused() -> None:
    """An answer compressed though identity was asked is refused, never inflated."""
    bomb = gzip.compress(b"[" * 10_000_000)

    def handle(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, content=bomb, headers={"Content-Encoding": "gzip"})

    error = await failure(backend(handle))
    assert (error.status, error.code) == (200, "invalid-response")


MALFORMED = [
    pytest.param({"directives": [1]}, id="number"),
    pytest.param({"directives": ["a=1", None]}, id="null"),
    pytest.param({"directives": "a=1"}, id="string"),
    pytest.param({"directives": {"a": 1}}, id="object"),
    pytest.param({}, id="missing"),
    pytest.param(["a=1"], id="list"),
    pytest.param(None, id="null-body"),
    pytest.param(b"not json", id="not-json"),
    pytest.param(b"[" * 100_000, id="nested-past-python-limit"),
    pytest.param(b"\xff\xfe", id="not-utf-8"),
]


@pytest.mark.parametrize("body", MALFORMED)
async def test_malformed_payload(body: Any) -> None:
    """A 2xx that is not ``{"directives": [str, ...]}`` is ``invalid-response``."""
    error = await failure(backend(answering(200, body)))
    assert seen(error) == (200, "invalid-response", "the handshake payload is malformed", None)


async def test_no_content_is_malformed() -> None:
    """A 204 without a body is a malformed payload."""
    error = await failure(backend(answering(204, b"")))
    assert seen(error) == (200, "invalid-response", "the handshake payload is malformed", None)


# -- the secret key -----------------------------------------------------------------------------


async def test_secret_never_in_an_error_even_when_echoed() -> None:
    """An answer echoing the secret key (a broken proxy) never puts it in the error."""
    body = {"errors": [{"code": f"bad_{SECRET}", "long_message": f"Invalid key {SECRET}."}]}
    error = await failure(backend(answering(401, body)))
    for text in (str(error), repr(error), error.message, error.code):
        assert SECRET not in text
    assert error.message == "Invalid key [secret key]."
