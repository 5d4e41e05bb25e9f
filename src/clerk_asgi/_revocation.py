"""Revocation lists: sessions signed out here are refused at once, not up to a minute later.

Clerk's session tokens cannot be revoked: a token minted before a sign-out stays valid until its
``exp``, up to 60 seconds later. A revocation list closes that gap. ``sessions.revoke()`` and
``revoke_all()`` of :class:`~clerk_asgi.backend.ClerkBackend`, and verified ``session.revoked``,
``session.ended`` and ``session.removed`` webhooks, put the session id on it; the middleware
refuses a token whose ``sid`` is listed (reason ``session-revoked``).

An entry lapses ``lifetime`` seconds after it was added: by then no token of that session can
still be valid (Clerk's 60-second token lifetime plus the middleware's clock skew), so the list
stays bounded by the revocations of the last minute.

- :class:`RevocationList` keeps the list in memory: one process only.
- :class:`RedisRevocationList` keeps it in Redis, for several workers or hosts: one round trip
  per call, bounded timeouts, and a policy for an unreachable server (``on_error``).

Both also remember keys for a while (:meth:`~RevocationList.remember`): the storage behind
webhook deduplication on ``svix-id``.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Final, Literal, Protocol

import anyio

from ._reasons import REVOCATION_LIST_UNAVAILABLE, SESSION_REVOKED, message_for
from .exceptions import ConfigurationError, ServiceUnavailableError

if TYPE_CHECKING:
    from redis.asyncio import Redis

__all__ = [
    "RedisRevocationList",
    "RevocationList",
    "RevocationListUnavailableError",
    "RevocationStore",
    "revocation_reason",
]

logger = logging.getLogger(__name__)

#: Clerk's session-token lifetime (60 s) plus the middleware's default clock skew (5 s).
DEFAULT_LIFETIME: Final = 65.0
#: An unreachable Redis is logged at most once per this many seconds.
LOG_INTERVAL: Final = 60.0
#: Seconds a client is told to wait when the list cannot be read (policy ``"refuse"``).
RETRY_AFTER: Final = 5
_NEEDS_REDIS: Final = (
    "RedisRevocationList needs redis-py: pip install 'clerk-asgi[redis]'. "
    "Or use RevocationList() (memory, one process)."
)


class RevocationListUnavailableError(ServiceUnavailableError):
    """The revocation list could not be read or written (Redis unreachable or too slow).

    An :class:`~clerk_asgi.exceptions.AuthError`: raised in a handler, the middleware answers
    503 with ``Retry-After`` (reason ``revocation-list-unavailable``). A webhook that cannot
    feed the list thus fails, and its sender retries.
    """

    retry_after = RETRY_AFTER

    def __init__(self) -> None:
        super().__init__(REVOCATION_LIST_UNAVAILABLE, message_for(REVOCATION_LIST_UNAVAILABLE))


class RevocationStore(Protocol):
    """What the middleware, the Backend API client and the webhook dependency need of a
    revocation list: :class:`RevocationList` and :class:`RedisRevocationList` are two."""

    async def revoke(self, session_id: str) -> None:
        """List ``session_id`` until none of its tokens can still be valid."""

    async def is_revoked(self, session_id: str) -> bool:
        """Whether ``session_id`` is listed; raise :class:`RevocationListUnavailableError`
        when that cannot be told."""

    async def remember(self, key: str, ttl: float) -> bool:
        """True the first time ``key`` is seen within ``ttl`` seconds."""


async def revocation_reason(store: RevocationStore, session_id: str) -> str | None:
    """``session-revoked`` when ``session_id`` is listed, ``revocation-list-unavailable`` when
    that cannot be told (and the store's policy is to refuse), else None. Never raises: a
    store's unexpected error is logged and answered as unavailable, not as a 500."""
    try:
        return SESSION_REVOKED if await store.is_revoked(session_id) else None
    except RevocationListUnavailableError:
        return REVOCATION_LIST_UNAVAILABLE
    except Exception:
        logger.exception("The revocation list failed; answering 503.")
        return REVOCATION_LIST_UNAVAILABLE


def _positive(value: float, message: str) -> float:
    """``value`` as a float when it is a positive number (not a bool), else ``message``."""
    if not isinstance(value, int | float) or isinstance(value, bool) or not value > 0:
        raise ConfigurationError(message)
    return float(value)


def _check_lifetime(lifetime: float) -> float:
    return _positive(
        lifetime,
        f"lifetime must be a positive number of seconds (got {lifetime!r}): at least the "
        "longest session-token lifetime plus clock skew (default 65).",
    )


class RevocationList:
    """Revoked session ids in this process's memory.

    Args:
        clock: seconds since the epoch (default ``time.time``); a fake one in tests.
        lifetime: seconds an entry stays listed (default 65: Clerk's 60-second tokens plus
            5 seconds of clock skew). Raise it if your tokens live longer.

    With several workers or hosts, each has its own list: use :class:`RedisRevocationList`.
    """

    def __init__(
        self, *, clock: Callable[[], float] | None = None, lifetime: float = DEFAULT_LIFETIME
    ) -> None:
        self.lifetime = _check_lifetime(lifetime)
        self._clock = clock or time.time
        # Key -> when it lapses. Insertion order is lapse order for one lifetime (a key added
        # again moves to the end), so lapsed entries are dropped from the front.
        self._revoked: dict[str, float] = {}
        self._remembered: dict[str, float] = {}

    def __repr__(self) -> str:
        return f"RevocationList(lifetime={self.lifetime}, listed={len(self._revoked)})"

    async def revoke(self, session_id: str) -> None:
        """List ``session_id`` for ``lifetime`` seconds."""
        now = self._clock()
        _prune(self._revoked, now)
        self._revoked.pop(session_id, None)
        self._revoked[session_id] = now + self.lifetime

    async def is_revoked(self, session_id: str) -> bool:
        """Whether ``session_id`` is listed."""
        until = self._revoked.get(session_id)
        return until is not None and until > self._clock()

    async def remember(self, key: str, ttl: float) -> bool:
        """Remember ``key`` for ``ttl`` seconds: True the first time, False while remembered."""
        now = self._clock()
        until = self._remembered.get(key)
        if until is not None and until > now:
            return False
        # Keys of different ttls: the front may lapse later than others; pruning stops there,
        # and the rest lapse on a later call.
        _prune(self._remembered, now)
        self._remembered.pop(key, None)
        self._remembered[key] = now + ttl
        return True


def _prune(entries: dict[str, float], now: float) -> None:
    """Drop lapsed entries from the front (the oldest)."""
    while entries:
        key = next(iter(entries))
        if entries[key] > now:
            return
        del entries[key]


class RedisRevocationList:
    """Revoked session ids in Redis, shared by every process that uses the same server.

    Args:
        url: ``redis://host:6379/0`` (``rediss://`` for TLS), unless ``client`` is given.
        client: a ``redis.asyncio.Redis`` of your own (its timeouts are then yours).
        prefix: put before every key (default ``"clerk-asgi:"``).
        lifetime: seconds an entry stays listed (default 65), kept by Redis itself (``PX``).
        timeout: seconds to connect and for each command (default 0.5), and twice that in all.
        on_error: when Redis cannot be reached: ``"allow"`` (default) treats the session as not
            revoked and logs a warning at most once a minute, as Clerk's own tokens would be
            accepted; ``"refuse"`` answers 503 (``revocation-list-unavailable``).
        clock: seconds, for spacing the unreachable-server warning (default
            ``time.monotonic``); entries lapse by Redis's own clock.

    Each call is one round trip: ``SET ... PX`` to revoke, ``EXISTS`` to check, ``SET ... NX PX``
    to remember. Writes (``revoke``, ``remember``) raise :class:`RevocationListUnavailableError`
    whatever the policy: a revocation must not be lost silently.

    Raises:
        ConfigurationError: redis-py is not installed, or an argument is invalid.
    """

    def __init__(
        self,
        url: str | None = None,
        *,
        client: Redis | None = None,
        prefix: str = "clerk-asgi:",
        lifetime: float = DEFAULT_LIFETIME,
        timeout: float = 0.5,
        on_error: Literal["allow", "refuse"] = "allow",
        clock: Callable[[], float] | None = None,
    ) -> None:
        if (url is None) == (client is None):
            raise ConfigurationError(
                "Give RedisRevocationList a url ('redis://host:6379/0') or a client, not both."
            )
        if on_error not in ("allow", "refuse"):
            raise ConfigurationError(f"on_error must be 'allow' or 'refuse', got {on_error!r}.")
        self.timeout = _positive(timeout, f"timeout must be a positive number, got {timeout!r}.")
        self.lifetime = _check_lifetime(lifetime)
        self.prefix = prefix
        self.on_error = on_error
        self._clock = clock or time.monotonic
        self._logged_at: float | None = None
        if client is None:
            client = _client_from_url(str(url), self.timeout)
        self._redis: Any = client

    def __repr__(self) -> str:
        return f"RedisRevocationList(prefix={self.prefix!r}, on_error={self.on_error!r})"

    async def revoke(self, session_id: str) -> None:
        """List ``session_id`` for ``lifetime`` seconds, for every process."""
        ms = round(self.lifetime * 1000)
        await self._call(self._redis.set, f"{self.prefix}revoked:{session_id}", b"1", px=ms)

    async def is_revoked(self, session_id: str) -> bool:
        """Whether ``session_id`` is listed; with Redis unreachable, as ``on_error`` says."""
        try:
            found = await self._call(self._redis.exists, f"{self.prefix}revoked:{session_id}")
        except RevocationListUnavailableError:
            if self.on_error == "refuse":
                raise
            return False
        return bool(found)

    async def remember(self, key: str, ttl: float) -> bool:
        """Remember ``key`` for ``ttl`` seconds: True the first time, False while remembered."""
        ms = max(1, round(ttl * 1000))
        added = await self._call(self._redis.set, f"{self.prefix}seen:{key}", b"1", nx=True, px=ms)
        return bool(added)

    async def aclose(self) -> None:
        """Close the connections (a client passed in is closed too)."""
        await self._redis.aclose()

    async def _call(self, command: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        """One command, bounded in time; any failure becomes RevocationListUnavailableError."""
        try:
            with anyio.fail_after(self.timeout * 2):  # connect + command, whatever the client
                return await command(*args, **kwargs)
        except Exception as error:  # redis.RedisError, OSError, TimeoutError: all "unreachable"
            self._log(error)
            raise RevocationListUnavailableError() from None

    def _log(self, error: Exception) -> None:
        now = self._clock()
        if self._logged_at is None or now - self._logged_at >= LOG_INTERVAL:
            self._logged_at = now
            logger.warning(
                "Redis revocation list unreachable (%s): checks follow on_error=%r, "
                "revocations fail.",
                type(error).__name__,
                self.on_error,
            )


def _client_from_url(url: str, timeout: float) -> Redis:
    try:
        from redis.asyncio import Redis
        from redis.backoff import NoBackoff
        from redis.retry import Retry
    except ImportError:  # pragma: no cover - the extra is installed in the test environment
        raise ConfigurationError(_NEEDS_REDIS) from None
    if not url.startswith(("redis://", "rediss://", "unix://")):
        raise ConfigurationError(
            f"RedisRevocationList url must start with redis://, rediss:// or unix:// (got {url!r})."
        )
    return Redis.from_url(
        url,
        socket_timeout=timeout,
        socket_connect_timeout=timeout,
        retry=Retry(NoBackoff(), 0),  # no hidden retries: one bounded attempt per call
    )
