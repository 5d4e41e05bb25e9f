"""The JWKS body is capped at 512 KiB: a larger or endless body is a failed fetch."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator

import httpx
import pytest

from clerk_asgi._keys import KeysUnavailableError
from clerk_asgi.testing import FakeClock, KeyPair

from .test_jwks_support import ScriptedJWKS, raw, remote, same_key

pytestmark = pytest.mark.anyio

CAP = 512 * 1024


def padded(key: KeyPair, size: int) -> bytes:
    """A JWKS of ``key`` padded with whitespace to exactly ``size`` bytes."""
    document = json.dumps({"keys": [key.jwk]}).encode()
    return document + b" " * (size - len(document))


async def test_body_over_512_kib_is_refused(key: KeyPair, clock: FakeClock) -> None:
    """A JWKS body of 512 KiB + 1 byte is a failed fetch; one of exactly 512 KiB is read."""
    script = ScriptedJWKS(raw(padded(key, CAP + 1)))
    keys = remote(script, clock)
    with pytest.raises(KeysUnavailableError):
        await keys.get("k1")
    clock.advance(30)
    script.respond = raw(padded(key, CAP))
    assert same_key(await keys.get("k1"), key)
    assert len(script.requests) == 2


async def test_endless_body_is_cut_at_the_cap(key: KeyPair, clock: FakeClock) -> None:
    """A 200 whose body never ends (50 MB and more) is read only up to the cap."""
    sent = 0

    async def endless() -> AsyncIterator[bytes]:
        nonlocal sent
        yield b'{"keys":['
        while True:
            sent += 1
            yield b" " * 65536

    script = ScriptedJWKS(lambda request: httpx.Response(200, content=endless()))
    keys = remote(script, clock)
    with pytest.raises(KeysUnavailableError):
        await keys.get("k1")
    assert 8 <= sent <= 9  # 512 KiB is eight chunks of 64 KiB; the ninth crosses the cap
    assert len(script.requests) == 1
