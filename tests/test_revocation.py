"""The revocation lists themselves: in memory (a fake clock) and in a real Redis server.

An entry lapses ``lifetime`` seconds after it was added, so the list holds only the last
minute's revocations; ``remember`` is the storage of webhook deduplication. With Redis down,
reads follow ``on_error`` and writes always fail loudly; nothing hangs past the timeout.
"""

from __future__ import annotations

import logging
import socket
from typing import Any

import anyio
import pytest
import redis.asyncio

from clerk_asgi._reasons import REVOCATION_LIST_UNAVAILABLE, SESSION_REVOKED
from clerk_asgi._revocation import (
    RedisRevocationList,
    RevocationList,
    RevocationListUnavailableError,
    revocation_reason,
)
from clerk_asgi.exceptions import ConfigurationError, ServiceUnavailableError
from clerk_asgi.testing import FakeClock

from ._redis_helpers import RedisServer, free_port

pytestmark = pytest.mark.anyio


# -- memory ------------------------------------------------------------------------------------


async def test_a_revoked_session_is_listed_until_its_lifetime_has_passed(clock: FakeClock) -> None:
    listed = RevocationList(clock=clock, lifetime=65)
    await listed.revoke("sess_1")
    assert await listed.is_revoked("sess_1") is True
    assert await listed.is_revoked("sess_2") is False
    clock.advance(64.9)
    assert await listed.is_revoked("sess_1") is True
    clock.advance(0.1)
    assert await listed.is_revoked("sess_1") is False


async def test_revoking_again_restarts_the_lifetime(clock: FakeClock) -> None:
    listed = RevocationList(clock=clock, lifetime=10)
    await listed.revoke("sess_1")
    clock.advance(8)
    await listed.revoke("sess_1")
    clock.advance(8)
    assert await listed.is_revoked("sess_1") is True
    clock.advance(2)
    assert await listed.is_revoked("sess_1") is False


async def test_lapsed_entries_are_dropped_so_the_list_stays_bounded(clock: FakeClock) -> None:
    listed = RevocationList(clock=clock, lifetime=65)
    for n in range(1000):
        await listed.revoke(f"sess_{n}")
        clock.advance(1)
    # Only the sessions revoked in the 65 seconds before the last revocation are still held.
    assert len(listed._revoked) == 65
    assert repr(listed) == "RevocationList(lifetime=65.0, listed=65)"
    assert await listed.is_revoked("sess_999") is True
    assert await listed.is_revoked("sess_935") is False


async def test_remember_is_true_once_per_ttl(clock: FakeClock) -> None:
    listed = RevocationList(clock=clock)
    assert await listed.remember("msg_1", 300) is True
    assert await listed.remember("msg_1", 300) is False
    assert await listed.remember("msg_2", 300) is True
    clock.advance(300)
    assert await listed.remember("msg_1", 300) is True
    assert list(listed._remembered) == ["msg_1"]  # msg_2 lapsed too and was dropped


@pytest.mark.parametrize("lifetime", [0, -1, float("nan"), True, "65"])
def test_a_lifetime_that_cannot_work_is_refused(lifetime: Any) -> None:
    with pytest.raises(ConfigurationError, match="lifetime must be a positive number"):
        RevocationList(lifetime=lifetime)


async def test_revocation_reason_names_the_outcome(clock: FakeClock) -> None:
    listed = RevocationList(clock=clock)
    await listed.revoke("sess_1")
    assert await revocation_reason(listed, "sess_1") == SESSION_REVOKED
    assert await revocation_reason(listed, "sess_2") is None


async def test_a_store_that_fails_unexpectedly_is_unavailable_not_a_crash(
    caplog: pytest.LogCaptureFixture,
) -> None:
    class Broken(RevocationList):
        async def is_revoked(self, session_id: str) -> bool:
            raise RuntimeError("boom")

    with caplog.at_level(logging.ERROR, "clerk_asgi._revocation"):
        assert await revocation_reason(Broken(), "sess_1") == REVOCATION_LIST_UNAVAILABLE
    assert [r.getMessage() for r in caplog.records] == [
        "The revocation list failed; answering 503."
    ]


def test_the_unavailable_error_is_a_503_with_retry_after() -> None:
    error = RevocationListUnavailableError()
    assert isinstance(error, ServiceUnavailableError)
    assert (error.status_code, error.reason, error.retry_after) == (
        503,
        REVOCATION_LIST_UNAVAILABLE,
        5,
    )
    assert error.message == "Sessions cannot be checked right now; retry shortly."


# -- Redis -------------------------------------------------------------------------------------


async def test_redis_lists_a_session_for_every_process_with_the_lifetime_in_redis(
    redis_url: str,
) -> None:
    one = RedisRevocationList(redis_url, lifetime=65)
    other = RedisRevocationList(redis_url)  # another worker, same server
    try:
        await one.revoke("sess_1")
        assert await other.is_revoked("sess_1") is True
        assert await other.is_revoked("sess_2") is False
        raw = redis.asyncio.Redis.from_url(redis_url)
        ttl = await raw.pttl("clerk-asgi:revoked:sess_1")
        assert 64_000 < ttl <= 65_000
        await raw.aclose()
    finally:
        await one.aclose()
        await other.aclose()


async def test_redis_entries_lapse_by_redis_time(redis_url: str) -> None:
    listed = RedisRevocationList(redis_url, lifetime=0.05, prefix="t:")
    try:
        await listed.revoke("sess_1")
        assert await listed.is_revoked("sess_1") is True
        raw = redis.asyncio.Redis.from_url(redis_url)
        # Expiry is Redis's own: wait for the key to go rather than sleeping a fixed time.
        for _ in range(200):
            if not await raw.exists("t:revoked:sess_1"):
                break
            await anyio.sleep(0.01)
        await raw.aclose()
        assert await listed.is_revoked("sess_1") is False
    finally:
        await listed.aclose()


async def test_redis_remember_is_true_once(redis_url: str) -> None:
    client = redis.asyncio.Redis.from_url(redis_url)
    listed = RedisRevocationList(client=client)
    try:
        assert await listed.remember("msg_1", 300) is True
        assert await listed.remember("msg_1", 300) is False
        assert 299_000 < await client.pttl("clerk-asgi:seen:msg_1") <= 300_000
    finally:
        await listed.aclose()


async def test_redis_down_reads_as_not_revoked_by_default_and_logs_once(
    redis_server: RedisServer, caplog: pytest.LogCaptureFixture
) -> None:
    listed = RedisRevocationList(redis_server.url, timeout=0.2)
    try:
        await listed.revoke("sess_1")
        redis_server.stop()
        with caplog.at_level(logging.WARNING, "clerk_asgi._revocation"):
            assert await listed.is_revoked("sess_1") is False
            assert await revocation_reason(listed, "sess_1") is None
        assert [r.getMessage() for r in caplog.records] == [
            "Redis revocation list unreachable (ConnectionError): checks follow on_error='allow', "
            "revocations fail."
        ]
        # Writes fail loudly whatever the policy: a revocation must not be lost silently.
        with pytest.raises(RevocationListUnavailableError):
            await listed.revoke("sess_2")
        with pytest.raises(RevocationListUnavailableError):
            await listed.remember("msg_1", 300)
        redis_server.start()  # back: the same list works again
        assert await listed.is_revoked("sess_1") is False  # nothing was persisted
        await listed.revoke("sess_3")
        assert await listed.is_revoked("sess_3") is True
    finally:
        await listed.aclose()


async def test_redis_down_with_refuse_is_unavailable(redis_server: RedisServer) -> None:
    listed = RedisRevocationList(redis_server.url, timeout=0.2, on_error="refuse")
    redis_server.stop()
    try:
        with pytest.raises(RevocationListUnavailableError):
            await listed.is_revoked("sess_1")
        assert await revocation_reason(listed, "sess_1") == REVOCATION_LIST_UNAVAILABLE
    finally:
        await listed.aclose()


async def test_a_server_that_never_answers_is_bounded_by_the_timeout(
    caplog: pytest.LogCaptureFixture,
) -> None:
    # A listening socket that accepts and never replies: the command times out, no hang.
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", free_port()))
        silent.listen()
        port = silent.getsockname()[1]
        listed = RedisRevocationList(f"redis://127.0.0.1:{port}/0", timeout=0.1, on_error="refuse")
        with caplog.at_level(logging.WARNING, "clerk_asgi._revocation"):
            assert await revocation_reason(listed, "sess_1") == REVOCATION_LIST_UNAVAILABLE
        await listed.aclose()
    (record,) = caplog.records
    assert record.getMessage().startswith("Redis revocation list unreachable (")


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        ({}, "Give RedisRevocationList a url"),
        ({"url": "redis://x", "client": object()}, "Give RedisRevocationList a url"),
        ({"url": "http://localhost:6379"}, "url must start with redis://"),
        ({"url": "redis://x", "on_error": "ignore"}, "on_error must be 'allow' or 'refuse'"),
        ({"url": "redis://x", "timeout": 0}, "timeout must be a positive number"),
        ({"url": "redis://x", "timeout": True}, "timeout must be a positive number"),
        ({"url": "redis://x", "lifetime": 0}, "lifetime must be a positive number"),
    ],
)
def test_redis_configuration_mistakes_are_refused(arguments: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigurationError, match=message):
        RedisRevocationList(**arguments)


def test_redis_repr_names_no_url() -> None:
    listed = RedisRevocationList("redis://:secret@localhost:6379/0", on_error="refuse")
    assert repr(listed) == "RedisRevocationList(prefix='clerk-asgi:', on_error='refuse')"
