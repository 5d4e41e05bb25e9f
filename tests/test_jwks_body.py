"""The JWKS body: asked for uncompressed, capped at 512 KiB as decoded, however it is sent.

A server that compresses anyway (gzip or deflate) is inflated a bounded step at a time, so a
compression bomb is refused at the cap instead of being inflated whole in memory.
"""

from __future__ import annotations

import functools
import gzip
import json
import logging
import tracemalloc
import zlib
from collections.abc import AsyncIterator, Callable

import httpx
import pytest

from clerk_asgi._keys import MAX_JWKS_BYTES, KeysUnavailableError
from clerk_asgi.testing import FakeClock, KeyPair

from .test_jwks_support import JWKS_URL, ScriptedJWKS, raw, remote, same_key, serve

pytestmark = pytest.mark.anyio

CAP = 512 * 1024
MIB = 1024 * 1024


class Body:
    """A streamed response body in ``size``-byte chunks that counts the chunks it has sent."""

    def __init__(self, data: bytes, size: int = 64 * 1024) -> None:
        self.chunks = [data[i : i + size] for i in range(0, len(data), size)]
        self.sent = 0

    async def __aiter__(self) -> AsyncIterator[bytes]:
        for chunk in self.chunks:
            self.sent += 1
            yield chunk


def encoded(body: Body, encoding: str) -> ScriptedJWKS:
    """An endpoint answering 200 with ``body`` streamed under ``Content-Encoding: encoding``."""
    headers = {"content-type": "application/json", "content-encoding": encoding}
    return ScriptedJWKS(lambda request: httpx.Response(200, headers=headers, content=body))


@functools.cache
def gzip_bomb(inflated_mib: int = 64) -> bytes:
    """About 64 KiB of gzip (one network read) that inflates to ``inflated_mib`` MiB."""
    packer = zlib.compressobj(9, zlib.DEFLATED, zlib.MAX_WBITS | 16)
    parts = [packer.compress(b'{"keys":[')]
    parts += [packer.compress(b" " * MIB) for _ in range(inflated_mib)]
    return b"".join(parts) + packer.flush()


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


async def test_jwks_is_requested_uncompressed(key: KeyPair, clock: FakeClock) -> None:
    """The request says Accept-Encoding: identity, replacing httpx's default gzip offer."""
    script = ScriptedJWKS(serve(key))
    keys = remote(script, clock)
    await keys.get("k1")
    assert len(script.requests) == 1
    assert script.requests[0].headers.get_list("accept-encoding") == ["identity"]


async def test_gzip_bomb_is_refused_without_being_inflated_in_memory(
    key: KeyPair, clock: FakeClock, caplog: pytest.LogCaptureFixture
) -> None:
    """64 KiB of gzip inflating to 64 MiB: a failed fetch, with memory bounded near the cap."""
    caplog.set_level(logging.WARNING, logger="clerk_asgi")
    bomb = Body(gzip_bomb(), size=len(gzip_bomb()))  # the whole bomb in one chunk
    script = encoded(bomb, "gzip")
    keys = remote(script, clock)
    tracemalloc.start()
    try:
        with pytest.raises(KeysUnavailableError):
            await keys.get("k1")
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert keys.retry_after() == 30
    assert peak < 8 * MAX_JWKS_BYTES  # inflated whole, the one chunk alone would take 64 MiB
    assert bomb.sent == 1
    assert len(script.requests) == 1
    assert [r.getMessage() for r in caplog.records if r.name == "clerk_asgi._keys"] == [
        f"JWKS from {JWKS_URL} exceeds 524288 bytes"
    ]


async def test_gzip_bomb_stops_reading_the_stream_at_the_cap(
    key: KeyPair, clock: FakeClock
) -> None:
    """The same bomb in 1 KiB chunks: reading stops once the inflated body passes the cap."""
    bomb = Body(gzip_bomb(), size=1024)
    script = encoded(bomb, "gzip")
    keys = remote(script, clock)
    with pytest.raises(KeysUnavailableError):
        await keys.get("k1")
    assert bomb.sent == 1 < len(bomb.chunks)  # 1 KiB of this gzip inflates past 512 KiB


@pytest.mark.parametrize(
    ("encoding", "compress"),
    [
        pytest.param("gzip", gzip.compress, id="gzip"),
        pytest.param("deflate", zlib.compress, id="deflate"),
        pytest.param("GZip", gzip.compress, id="gzip-any-case"),
        pytest.param("identity", lambda data: data, id="identity"),
    ],
)
async def test_compressed_jwks_within_the_cap_is_accepted(
    encoding: str, compress: Callable[[bytes], bytes], key: KeyPair, clock: FakeClock
) -> None:
    """A server that compresses anyway, within the cap, still serves its keys (one fetch)."""
    body = Body(compress(json.dumps({"keys": [key.jwk]}).encode()), size=100)
    script = encoded(body, encoding)
    keys = remote(script, clock)
    assert same_key(await keys.get("k1"), key)
    assert body.sent == len(body.chunks) > 1
    assert len(script.requests) == 1


async def test_compressed_jwks_read_in_memory_is_accepted(key: KeyPair, clock: FakeClock) -> None:
    """A gzip response a mock transport built in memory (already decoded) serves its keys."""
    body = gzip.compress(json.dumps({"keys": [key.jwk]}).encode())
    headers = {"content-type": "application/json", "content-encoding": "gzip"}
    script = ScriptedJWKS(lambda request: httpx.Response(200, headers=headers, content=body))
    keys = remote(script, clock)
    assert same_key(await keys.get("k1"), key)
    assert len(script.requests) == 1


async def test_cap_applies_to_the_inflated_size(key: KeyPair, clock: FakeClock) -> None:
    """A gzip JWKS inflating to 512 KiB + 1 byte is refused; to exactly 512 KiB it is read."""
    script = encoded(Body(gzip.compress(padded(key, CAP + 1))), "gzip")
    keys = remote(script, clock)
    with pytest.raises(KeysUnavailableError):
        await keys.get("k1")
    clock.advance(30)
    exact = gzip.compress(padded(key, CAP))
    script.respond = encoded(Body(exact), "gzip").respond
    assert same_key(await keys.get("k1"), key)
    assert len(script.requests) == 2


@pytest.mark.parametrize("encoding", ["br", "zstd", "compress", "gzip, gzip"])
async def test_unsupported_content_encoding_is_a_failed_fetch(
    encoding: str, key: KeyPair, clock: FakeClock, caplog: pytest.LogCaptureFixture
) -> None:
    """A body in an encoding not inflated with a bound is a failed fetch, logged, never read."""
    caplog.set_level(logging.WARNING, logger="clerk_asgi")
    body = Body(json.dumps({"keys": [key.jwk]}).encode())
    script = encoded(body, encoding)
    keys = remote(script, clock)
    with pytest.raises(KeysUnavailableError):
        await keys.get("k1")
    assert keys.retry_after() == 30
    assert body.sent == 0
    assert [r.getMessage() for r in caplog.records if r.name == "clerk_asgi._keys"] == [
        f"JWKS from {JWKS_URL} has an unsupported Content-Encoding: {encoding}"
    ]


async def test_corrupt_gzip_body_is_a_failed_fetch(
    key: KeyPair, clock: FakeClock, caplog: pytest.LogCaptureFixture
) -> None:
    """A body labelled gzip that does not inflate is a failed fetch, logged, not an error."""
    caplog.set_level(logging.WARNING, logger="clerk_asgi")
    script = encoded(Body(b"\x1f\x8b\x08\x00" + b"\xff" * 64), "gzip")
    keys = remote(script, clock)
    with pytest.raises(KeysUnavailableError):
        await keys.get("k1")
    assert [r.getMessage() for r in caplog.records if r.name == "clerk_asgi._keys"] == [
        f"JWKS fetch from {JWKS_URL} failed: DecodingError"
    ]
