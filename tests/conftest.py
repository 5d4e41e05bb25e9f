"""Shared fixtures: real RSA keys (generated once per run), a fake clock, a clean environment.

Also ``keys`` and ``jwks``, the key trio and the fetch-counting JWKS harness of the
token-verification tests (see _verify_helpers.py).
"""

from __future__ import annotations

import importlib.util
import sys
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from types import ModuleType

import httpx
import pytest
from fastapi import FastAPI

from clerk_asgi.testing import FakeClerk, FakeClock, JWKSTransport, KeyPair, MockClerk

# The shared helper modules assert too: have pytest rewrite their asserts, as it does for tests.
pytest.register_assert_rewrite(
    "tests.helpers",
    "tests._backend_helpers",
    "tests._config_helpers",
    "tests._middleware_helpers",
    "tests._verify_helpers",
)

from ._redis_helpers import RedisServer  # noqa: E402
from ._verify_helpers import Harness, Keys  # noqa: E402
from .helpers import NOW  # noqa: E402

__all__ = ["NOW", "FakeClock"]

CLERK_ENV = (
    "CLERK_PUBLISHABLE_KEY",
    "CLERK_SECRET_KEY",
    "CLERK_JWT_KEY",
    "CLERK_JWKS_URL",
    "CLERK_API_URL",
    "CLERK_AUTHORIZED_PARTIES",
    "CLERK_SIGN_IN_URL",
    "CLERK_PROXY_URL",
    "CLERK_WEBHOOK_SIGNING_SECRET",
)


@pytest.fixture(scope="session")
def key() -> KeyPair:
    """K1: the instance's signing key, published as kid "k1"."""
    return KeyPair.generate("k1")


@pytest.fixture(scope="session")
def attacker_key() -> KeyPair:
    """KX: an attacker's key, never published (kid "k1" to impersonate K1)."""
    return KeyPair.generate("k1")


@pytest.fixture(scope="session")
def second_key() -> KeyPair:
    """K2: a second published key, for rotations."""
    return KeyPair.generate("k2")


@pytest.fixture
def clock() -> FakeClock:
    """A clock standing at NOW until a test advances it."""
    return FakeClock(NOW)


@pytest.fixture
def keys(key: KeyPair, attacker_key: KeyPair, second_key: KeyPair) -> Keys:
    """K1, KX and K2 together, for the token-crafting helpers of _verify_helpers."""
    return Keys(key, attacker_key, second_key)


@pytest.fixture
async def jwks(key: KeyPair, clock: FakeClock) -> AsyncIterator[Harness]:
    """K1 served as the JWKS at _verify_helpers.JWKS_URL; every request recorded."""
    transport = JWKSTransport(key)
    async with httpx.AsyncClient(transport=transport) as client:
        yield Harness(transport, client, clock)


@pytest.fixture
def clerk(key: KeyPair) -> MockClerk:
    """A mock Clerk instance: issuer https://clerk.example.com, app https://app.example.com."""
    return MockClerk(key=key)


@pytest.fixture(autouse=True)
def _clean_clerk_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """No CLERK_* variable of the developer's shell leaks into a test."""
    for name in CLERK_ENV:
        monkeypatch.delenv(name, raising=False)


@pytest.fixture
def anyio_backend() -> str:
    """Async tests run on asyncio."""
    return "asyncio"


@pytest.fixture(scope="session")
def _shared_redis() -> Iterator[RedisServer]:
    server = RedisServer().start()
    yield server
    server.close()


@pytest.fixture
def redis_url(_shared_redis: RedisServer) -> str:
    """The URL of a real redis-server shared by the run, emptied before each test."""
    _shared_redis.flush()
    return _shared_redis.url


@pytest.fixture
def redis_server() -> Iterator[RedisServer]:
    """A redis-server of this test's own, started; the test may ``stop()`` and ``start()`` it."""
    server = RedisServer().start()
    yield server
    server.close()


# -- the example app (tests/test_example*.py) ------------------------------------------------

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"


@pytest.fixture(scope="module")
def example() -> Iterator[ModuleType]:
    """examples/app.py imported as a module, with no CLERK_* variable set."""
    with pytest.MonkeyPatch.context() as mp:
        for name in (*CLERK_ENV, "CLERK_EXAMPLE_FAKE_CLOCK"):
            mp.delenv(name, raising=False)
        spec = importlib.util.spec_from_file_location("clerk_asgi_example", EXAMPLES / "app.py")
        assert spec is not None
        assert spec.loader is not None
        module = importlib.util.module_from_spec(spec)
        mp.setitem(sys.modules, spec.name, module)  # dataclasses look their module up there
        spec.loader.exec_module(module)
        yield module


@pytest.fixture
def dev_app(example: ModuleType, key: KeyPair, clock: FakeClock) -> FastAPI:
    """The app in development mode: FakeClerk signing with the test key, on the fake clock."""
    app: FastAPI = example.create_app(clock=clock, key=key)
    return app


@pytest.fixture
def fake(dev_app: FastAPI) -> FakeClerk:
    """The development app's FakeClerk."""
    found: FakeClerk = dev_app.state.fake_clerk
    return found
