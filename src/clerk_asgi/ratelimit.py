"""Per-user rate limits: Upstash's sliding window, in this process's memory or in Redis.

The seed's ``Ratelimit.slidingWindow(10, "10 s")`` keyed by ``userId`` is, in Python::

    Rule.api("/api/(.*)", rate_limit="10/10s")       # 10 requests per user per 10 seconds

A limit is counted in two fixed windows (buckets): the current one, and the previous one
weighted by how much of it still overlaps the sliding window. With ``W`` the window,
``elapsed`` the time since the current bucket began, a request is refused when::

    floor((1 - elapsed / W) * previous) + current >= amount

which is ``slidingWindowLimitScript`` of ``@upstash/ratelimit`` (``src/lua-scripts/single.ts``).

- Memory (``"memory://"``, the default): buckets aligned to the epoch in whole milliseconds of
  the configured clock, exactly as Upstash's; nothing to install. **Per process**: with N
  workers a user gets N times the limit.
- Redis (``"redis://host:6379/0"``): shared by every worker and host, one atomic Lua script
  per request, through the `limits <https://limits.readthedocs.io>`_ library
  (``SlidingWindowCounterRateLimiter``; ``pip install 'clerk-asgi[ratelimit,redis]'``). Its
  windows start at a key's first request rather than at the epoch, and Redis keeps the time.

Refused requests get 429 with ``Retry-After`` and the IETF ``RateLimit-Policy``/``RateLimit``
fields (draft-ietf-httpapi-ratelimit-headers); see the "Rate limits" guide.
"""

from __future__ import annotations

import ipaddress
import logging
import math
import re
import time
from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Final, Literal, NamedTuple, Protocol, TypeAlias
from urllib.parse import urlsplit

import anyio
from starlette.requests import HTTPConnection
from starlette.types import Scope

from ._auth import Auth, get_auth
from ._reasons import RATE_LIMIT_UNAVAILABLE, RATE_LIMITED, message_for
from ._responses import Refusal
from .exceptions import (
    AuthError,
    ConfigurationError,
    MiddlewareNotInstalledError,
    ServiceUnavailableError,
)

__all__ = [
    "LIMITER_SCOPE_KEY",
    "KeyFunction",
    "RateLimit",
    "RateLimitKey",
    "RateLimitRefusal",
    "RateLimitResult",
    "RateLimitUnavailableError",
    "RateLimitedError",
    "RateLimiter",
    "rate_limit",
]

_logger = logging.getLogger(__name__)

#: ``(connection, auth) -> key``: the bucket a request counts against; ``None``: not limited.
KeyFunction: TypeAlias = Callable[[HTTPConnection, Auth], str | None]
#: Who shares a budget: ``"user"`` (the default), ``"org"``, ``"ip"``, or a :data:`KeyFunction`.
RateLimitKey: TypeAlias = Literal["user", "org", "ip"] | KeyFunction

#: The scope key under which ``ClerkMiddleware`` hands its :class:`RateLimiter` to the app
#: (read by :func:`rate_limit` dependencies).
LIMITER_SCOPE_KEY: Final = "clerk_asgi.rate_limiter"

#: The longest window accepted, in seconds (one day).
_MAX_WINDOW: Final = 86_400
#: The largest amount accepted.
_MAX_AMOUNT: Final = 1_000_000_000
#: Seconds a client is told to wait when the limits cannot be checked (``on_error="refuse"``).
_UNAVAILABLE_RETRY_AFTER: Final = 5
#: An unreachable store is logged at most once per this many seconds.
_LOG_INTERVAL: Final = 60.0

_UNITS: Final = {
    **dict.fromkeys(("s", "sec", "secs", "second", "seconds"), 1),
    **dict.fromkeys(("m", "min", "mins", "minute", "minutes"), 60),
    **dict.fromkeys(("h", "hr", "hrs", "hour", "hours"), 3600),
    **dict.fromkeys(("d", "day", "days"), 86_400),
}
_SPEC = re.compile(
    r"\s*(\d{1,12})\s*(?:/|\s[Pp][Ee][Rr]\s)\s*(\d{1,12})?\s*([A-Za-z]+)\s*", re.ASCII
)
_FORMS: Final = (
    "write '<amount>/<window>': '10/10s', '10/10 s', '100/1m', '5/second', '100/minute', "
    "'1000/hour', '10000/day' (units s, m, h, d or their names; amount 1 to "
    f"{_MAX_AMOUNT:,}, window 1 second to 1 day)"
)
_NAME = re.compile(r"[\x20-\x7e]{1,64}")
_NEEDS_LIMITS: Final = (
    "Redis rate limits need the limits and redis packages: pip install "
    "'clerk-asgi[ratelimit,redis]'. Or use rate_limit_storage='memory://' (one process)."
)


def _check_int(value: object, what: str, low: int, high: int) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or not low <= value <= high:
        raise ConfigurationError(f"Rate limit {what} must be {low} to {high:,}: {_FORMS}.")
    return value


@dataclass(frozen=True, slots=True)
class RateLimit:
    """A limit: ``amount`` requests per ``window`` seconds for each key.

    Build one from a spec with :meth:`parse` (``"10/10s"``), or give ``rate_limit=`` a string.

    Attributes:
        amount: requests allowed per window (1 to one billion).
        window: the window in whole seconds (1 to 86,400).
        name: the policy name sent in ``RateLimit-Policy``; limits with the same name, amount
            and window share a budget. Default: ``"<amount>/<window>s"``.
        key: who shares a budget: ``"user"`` (default), ``"org"`` (the active organization,
            else the user), ``"ip"`` (the client address), or ``(connection, auth) -> str |
            None`` (``None``: this request is not limited). Signed-out requests, which only
            public routes let through, count against their client address.

    Raises:
        ConfigurationError: a value out of range, a name that is not printable ASCII
            (or holds ``"`` or ``\\``), or an unknown key.
    """

    amount: int
    window: int
    name: str = ""
    key: RateLimitKey = "user"
    # Made once, read per request: the memory bucket's prefix, the fields' constant parts.
    _bucket: str = field(init=False, repr=False, compare=False)
    _policy: tuple[bytes, bytes] = field(init=False, repr=False, compare=False)
    _state: str = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        _check_int(self.amount, "amount", 1, _MAX_AMOUNT)
        _check_int(self.window, "window (seconds)", 1, _MAX_WINDOW)
        if not self.name:
            object.__setattr__(self, "name", f"{self.amount}/{self.window}s")
        elif (
            not isinstance(self.name, str)
            or not _NAME.fullmatch(self.name)
            or '"' in self.name
            or "\\" in self.name
        ):
            raise ConfigurationError(
                f"Rate limit name {self.name!r} must be 1 to 64 printable ASCII characters "
                'without " or \\ (it is sent in the RateLimit-Policy header).'
            )
        if self.key not in ("user", "org", "ip") and not callable(self.key):
            raise ConfigurationError(
                f"Rate limit key must be 'user', 'org', 'ip' or a callable (connection, auth) "
                f"-> str | None, got {self.key!r}."
            )
        object.__setattr__(self, "_bucket", f"{self.name}/{self.amount}/{self.window}/")
        object.__setattr__(self, "_policy", (b"ratelimit-policy", self.policy.encode()))
        object.__setattr__(self, "_state", f'"{self.name}";r=')

    @classmethod
    def parse(
        cls, spec: str | RateLimit, *, name: str | None = None, key: RateLimitKey | None = None
    ) -> RateLimit:
        """A limit from ``"<amount>/<window>"``; a :class:`RateLimit` is returned as it is
        (with ``name``/``key`` replaced when given).

        Accepted: ``"10/10s"``, ``"10/10 s"`` (Upstash's duration), ``"100/1m"``,
        ``"5/second"``, ``"100/minute"``, ``"1000/hour"``, ``"10000/day"``, ``"10 per 10
        seconds"``.

        Raises:
            ConfigurationError: the spec is malformed or out of range; the message lists the
                accepted forms.
        """
        if isinstance(spec, RateLimit):
            limit = spec
        else:
            found = _SPEC.fullmatch(spec) if isinstance(spec, str) else None
            unit = _UNITS.get(found.group(3).lower()) if found else None
            if found is None or unit is None:
                raise ConfigurationError(f"Malformed rate limit {spec!r}: {_FORMS}.")
            amount, count = int(found.group(1)), int(found.group(2) or 1)
            if count * unit > _MAX_WINDOW or count < 1 or amount > _MAX_AMOUNT:
                raise ConfigurationError(f"Rate limit {spec!r} is out of range: {_FORMS}.")
            limit = cls(amount, count * unit)
        return cls(limit.amount, limit.window, name or limit.name, key or limit.key)

    @property
    def policy(self) -> str:
        """The ``RateLimit-Policy`` field value: ``"<name>";q=<amount>;w=<window>``."""
        return f'"{self.name}";q={self.amount};w={self.window}'


class RateLimitResult(NamedTuple):
    """One request counted against a limit.

    Attributes:
        allowed: the request may go on.
        remaining: requests left in the window, when the storage tells (memory always;
            Redis only when refusing); None otherwise.
        reset: seconds until more quota is available (at least 1), when known.
    """

    allowed: bool
    remaining: int | None = None
    reset: int | None = None


@dataclass(frozen=True, slots=True)
class RateLimitRefusal(Refusal):
    """A :class:`~clerk_asgi.Refusal` that also carries the ``RateLimit-Policy`` and
    ``RateLimit`` fields (in :attr:`headers`, so an ``on_refusal`` response can keep them)."""

    rate_limit_headers: tuple[tuple[bytes, bytes], ...] = ()

    def raw_headers(self) -> list[tuple[bytes, bytes]]:
        """The refusal's headers, then the rate-limit fields."""
        return [*Refusal.raw_headers(self), *self.rate_limit_headers]


class RateLimitedError(AuthError):
    """Too many requests: raised by a :func:`rate_limit` dependency; ``ClerkMiddleware``
    answers 429 with ``Retry-After`` and the rate-limit fields of :attr:`refusal`."""

    status_code = 429

    def __init__(self, refusal: RateLimitRefusal) -> None:
        super().__init__(refusal.reason, refusal.message)
        self.retry_after = refusal.retry_after
        self.refusal = refusal


class RateLimitUnavailableError(ServiceUnavailableError):
    """The limits cannot be checked (Redis unreachable or too slow) and the policy is
    ``on_error="refuse"``: answered 503 with ``Retry-After`` (``rate-limit-unavailable``)."""

    retry_after = _UNAVAILABLE_RETRY_AFTER

    def __init__(self) -> None:
        super().__init__(RATE_LIMIT_UNAVAILABLE, message_for(RATE_LIMIT_UNAVAILABLE))


def _fields(limit: RateLimit, remaining: int, reset: int | None) -> tuple[tuple[bytes, bytes], ...]:
    """The ``RateLimit-Policy`` and ``RateLimit`` fields (IETF draft), as ASGI headers."""
    state = f"{limit._state}{remaining};t={reset}"
    return limit._policy, (b"ratelimit", state.encode())


#: What a store answers: (allowed, remaining, reset), as :class:`RateLimitResult` (a plain
#: tuple: counted on every request of a limited route).
_Count: TypeAlias = tuple[bool, int | None, int | None]
_ALLOWED: Final[_Count] = (True, None, None)


class _Store(Protocol):
    async def hit(self, limit: RateLimit, key: str) -> _Count: ...

    async def aclose(self) -> None: ...


class _MemoryStore:
    """Upstash's sliding window over this process's memory, in whole milliseconds.

    Each key holds its current bucket's number and the counts of that bucket and the one
    before, which is all the algorithm reads; a hit changes them without awaiting anything,
    so concurrent requests are counted exactly. Keys are kept in the order they were last
    hit: the ones whose buckets are over are dropped from the front, and past ``max_keys``
    the least recently hit go first.
    """

    def __init__(self, clock: Callable[[], float], max_keys: int) -> None:
        self._clock = clock
        self._max_keys = max_keys
        # key -> [bucket number, count in it, count in the bucket before, window in ms]
        self._keys: dict[str, list[int]] = {}

    async def hit(self, limit: RateLimit, key: str) -> _Count:
        now = round(self._clock() * 1000)
        window = limit.window * 1000
        bucket = now // window
        key = limit._bucket + key
        keys = self._keys
        entry = keys.pop(key, None)
        if entry is None:
            self._prune(now)
            current = previous = 0
        elif entry[0] < bucket - 1:
            current = previous = 0
        elif entry[0] == bucket - 1:
            current, previous = 0, entry[1]
        else:  # this bucket (or a later one, if the clock went back: kept as it is)
            bucket, current, previous = entry[0], entry[1], entry[2]
        elapsed = now % window
        # Upstash's arithmetic, in the same floating point as its Lua.
        weighted = math.floor((1 - elapsed / window) * previous) if previous else 0
        amount = limit.amount
        if weighted + current >= amount:
            wait = _wait(amount, current, previous, elapsed, window)
            result: _Count = (False, 0, -(-wait // 1000))  # wait >= 1 ms: >= 1 s
        else:
            current += 1
            left = window - elapsed  # >= 1 ms
            result = (True, amount - current - weighted, -(-left // 1000))
        keys[key] = [bucket, current, previous, window]
        return result

    def _prune(self, now: int) -> None:
        """Before a new key is added: drop up to two whose buckets are over (so they leave as
        fast as new ones come), then the least recently hit beyond ``max_keys``."""
        keys = self._keys
        for _ in range(2):
            oldest = next(iter(keys), None)
            if oldest is None:
                return
            entry = keys[oldest]
            if entry[0] >= now // entry[3] - 1:
                break
            del keys[oldest]
        while len(keys) >= self._max_keys:
            del keys[next(iter(keys))]

    async def aclose(self) -> None:
        self._keys.clear()


def _wait(amount: int, current: int, previous: int, elapsed: int, window: int) -> int:
    """Milliseconds until a refused key's next request is allowed, if none comes before.

    Allowed again once ``(window - elapsed') * previous < (amount - current) * window``:
    later in this bucket while ``current < amount`` (the previous bucket's weight fades),
    else early in the next one, where this bucket's count becomes the previous one.
    """
    if current < amount:
        return window - (((amount - current) * window - 1) // previous) - elapsed
    return window - elapsed + window - ((amount * window - 1) // current)


class _RedisStore:
    """``limits``' sliding-window counter over Redis (redis-py): one Lua script per hit, and
    a second call only when refusing (to tell the client how long to wait)."""

    def __init__(self, url: str, timeout: float) -> None:
        try:
            from limits.aio.strategies import SlidingWindowCounterRateLimiter
            from limits.errors import ConfigurationError as LimitsConfigurationError
            from limits.storage import storage_from_string
            from redis.backoff import NoBackoff
            from redis.retry import Retry
        except ImportError:
            raise ConfigurationError(_NEEDS_LIMITS) from None
        try:
            storage = storage_from_string(
                "async+" + url,
                implementation="redispy",
                wrap_exceptions=True,
                key_prefix="clerk-asgi:ratelimit",
                socket_timeout=timeout,
                socket_connect_timeout=timeout,
                retry=Retry(NoBackoff(), 0),  # type: ignore[arg-type] # passed to redis-py
            )
        except LimitsConfigurationError as error:  # pragma: no cover - both are installed here
            raise ConfigurationError(f"{_NEEDS_LIMITS} ({error})") from None
        self._storage: Any = storage
        self._limiter = SlidingWindowCounterRateLimiter(storage)
        self._items: dict[tuple[int, int], Any] = {}
        self._timeout = timeout * 2  # connect + command, whatever the client does

    def _item(self, limit: RateLimit) -> Any:
        item = self._items.get((limit.amount, limit.window))
        if item is None:
            from limits import RateLimitItemPerSecond

            item = RateLimitItemPerSecond(limit.amount, limit.window, namespace="clerk-asgi")
            self._items[limit.amount, limit.window] = item
        return item

    async def hit(self, limit: RateLimit, key: str) -> _Count:
        item = self._item(limit)
        with anyio.fail_after(self._timeout):
            if await self._limiter.hit(item, limit.name, key):
                return _ALLOWED
        try:
            with anyio.fail_after(self._timeout):
                stats = await self._limiter.get_window_stats(item, limit.name, key)
            wait = math.ceil(stats.reset_time - time.time())
        except Exception:  # refused all the same; without the stats, a whole window
            wait = limit.window
        return False, 0, max(1, min(wait, limit.window))

    async def aclose(self) -> None:
        await self._storage.bridge.get_connection().aclose()


class _Proxies:
    """Trusted proxy addresses and networks (``x in proxies``)."""

    def __init__(self, entries: Iterable[str]) -> None:
        if isinstance(entries, str):
            entries = [entries]
        networks = []
        for entry in entries:
            try:
                networks.append(ipaddress.ip_network(str(entry).strip(), strict=False))
            except ValueError:
                raise ConfigurationError(
                    f"trusted_proxies must hold IP addresses or networks ('10.0.0.1', "
                    f"'10.0.0.0/8', '::1'), got {entry!r}."
                ) from None
        self.networks = tuple(networks)

    def __bool__(self) -> bool:
        return bool(self.networks)

    def __contains__(self, host: str) -> bool:
        try:
            address = ipaddress.ip_address(host)
        except ValueError:
            return False
        return any(address in network for network in self.networks)


def _client_address(scope: Mapping[str, Any], proxies: _Proxies) -> str | None:
    """The client's address: ``scope["client"]``, or, when that is a trusted proxy, the
    rightmost ``X-Forwarded-For`` entry that is not one (as uvicorn's ProxyHeadersMiddleware)."""
    client = scope.get("client")
    host: str | None = client[0] if client else None
    if host is None or not proxies or host not in proxies:
        return host
    hops: list[str] = [
        hop.strip()
        for name, value in scope.get("headers", ())
        if name == b"x-forwarded-for"
        for hop in value.decode("latin-1").split(",")
        if hop.strip()
    ]
    for hop in reversed(hops):
        if hop not in proxies:
            return hop[:64]
    return hops[0][:64] if hops else host


class RateLimiter:
    """Counts requests against :class:`RateLimit` s, in memory or in Redis.

    ``ClerkMiddleware`` builds one from ``rate_limit_storage`` (or takes yours) and applies
    each rule's ``rate_limit``; :func:`rate_limit` dependencies use the same one.

    Args:
        storage: ``"memory://"`` (default: this process only) or ``"redis://host:6379/0"``
            (``rediss://`` for TLS): shared by every process using the same server.
        on_error: when Redis cannot be reached: ``"allow"`` (default) lets requests through
            and logs a warning at most once a minute; ``"refuse"`` answers 503
            (``rate-limit-unavailable``) with ``Retry-After``.
        clock: wall-clock seconds for memory storage (default ``time.time``); inject
            :class:`~clerk_asgi.testing.FakeClock` in tests. Redis keeps its own time.
        timeout: seconds to connect to Redis and for each command (default 0.5), twice that
            in all.
        trusted_proxies: addresses or networks of your reverse proxies: from them, the
            client address is read from ``X-Forwarded-For``; else ``scope["client"]``.
        max_keys: keys remembered in memory storage (default 100,000); past it the least
            recently used are forgotten.

    Raises:
        ConfigurationError: an unknown storage, a missing extra for Redis, or a bad value.
    """

    def __init__(
        self,
        storage: str = "memory://",
        *,
        on_error: Literal["allow", "refuse"] = "allow",
        clock: Callable[[], float] | None = None,
        timeout: float = 0.5,
        trusted_proxies: Iterable[str] = (),
        max_keys: int = 100_000,
    ) -> None:
        if on_error not in ("allow", "refuse"):
            raise ConfigurationError(
                f"rate_limit_on_error must be 'allow' or 'refuse', got {on_error!r}."
            )
        if not isinstance(timeout, int | float) or isinstance(timeout, bool) or not timeout > 0:
            raise ConfigurationError(f"Rate limit timeout must be > 0 seconds, got {timeout!r}.")
        _check_max_keys(max_keys)
        self.on_error = on_error
        self.proxies = _Proxies(trusted_proxies)
        self._logged_at: float | None = None
        try:
            scheme = urlsplit(storage).scheme if isinstance(storage, str) else ""
        except ValueError:  # "redis://[bad"
            scheme = ""
        store: _Store
        if storage == "memory://":
            store = _MemoryStore(clock or time.time, max_keys)
        elif scheme in ("redis", "rediss") and isinstance(storage, str) and storage.isascii():
            store = _RedisStore(storage, float(timeout))
        else:
            raise ConfigurationError(
                f"rate_limit_storage must be 'memory://' or a Redis URL "
                f"('redis://host:6379/0', 'rediss://...'), got {storage!r}."
            )
        self._store = store

    def __repr__(self) -> str:
        storage = "memory://" if isinstance(self._store, _MemoryStore) else "redis"
        return f"RateLimiter({storage!r}, on_error={self.on_error!r})"

    async def hit(self, limit: RateLimit, key: str) -> RateLimitResult:
        """Count one request of ``key`` against ``limit``.

        Raises:
            RateLimitUnavailableError: the storage cannot be reached and ``on_error`` is
                ``"refuse"`` (with ``"allow"``, the request is allowed).
        """
        try:
            return RateLimitResult(*await self._store.hit(limit, key))
        except Exception as error:  # StorageError, OSError, TimeoutError: all "unreachable"
            if self._unavailable(error):
                raise RateLimitUnavailableError() from None
            return RateLimitResult(True)

    def key(self, limit: RateLimit, scope: Scope, auth: Auth) -> str | None:
        """The bucket ``limit`` counts this request in: ``user:<id>``, ``org:<id>``,
        ``ip:<address>``, or ``key:<what the callable returned>``; None: not limited."""
        kind = limit.key
        if kind == "user" and auth.user_id is not None:
            return "user:" + auth.user_id
        if kind == "org" and auth.user_id is not None:
            return "user:" + auth.user_id if auth.org_id is None else "org:" + auth.org_id
        if callable(kind):
            found = kind(HTTPConnection(scope), auth)
            return None if found is None else f"key:{found}"
        return "ip:" + (_client_address(scope, self.proxies) or "unknown")

    async def check(
        self, limit: RateLimit, scope: Scope, auth: Auth
    ) -> tuple[Refusal | None, tuple[tuple[bytes, bytes], ...]]:
        """Count this request: the refusal to send (429, or 503 when the storage cannot be
        reached and ``on_error="refuse"``), else None and the rate-limit fields for the
        response (none when the storage does not tell the remaining quota)."""
        key = self.key(limit, scope, auth)
        if key is None:
            return None, ()
        try:
            allowed, remaining, reset = await self._store.hit(limit, key)
        except Exception as error:  # as in hit(), without its extra await per request
            if self._unavailable(error):
                refusal = Refusal(
                    503, RATE_LIMIT_UNAVAILABLE, _status(auth), retry_after=_UNAVAILABLE_RETRY_AFTER
                )
                return refusal, ()
            return None, ()
        # The fields when the storage told the remaining quota (memory; Redis when refusing).
        headers = () if remaining is None else _fields(limit, remaining, reset)
        if allowed:
            return None, headers
        refusal = RateLimitRefusal(
            429, RATE_LIMITED, _status(auth), retry_after=reset, rate_limit_headers=headers
        )
        return refusal, ()

    async def aclose(self) -> None:
        """Close the Redis connections (memory storage: forget every count)."""
        await self._store.aclose()

    def _unavailable(self, error: Exception) -> bool:
        """Log the storage failure (at most once per interval): whether to refuse."""
        now = time.monotonic()
        if self._logged_at is None or now - self._logged_at >= _LOG_INTERVAL:
            self._logged_at = now
            _logger.warning(
                "Rate-limit storage unreachable (%s); policy on_error=%r.",
                type(error).__name__,
                self.on_error,
            )
        return self.on_error == "refuse"


def _check_max_keys(value: object) -> None:
    if not isinstance(value, int) or isinstance(value, bool) or value < 1:
        raise ConfigurationError(f"max_keys must be a positive integer, got {value!r}.")


def _status(auth: Auth) -> Literal["signed-in", "signed-out"]:
    return "signed-in" if auth.user_id is not None else "signed-out"


def rate_limit(
    spec: str | RateLimit,
    *,
    key: RateLimitKey | None = None,
    name: str | None = None,
    limiter: RateLimiter | None = None,
) -> Callable[[HTTPConnection], Awaitable[None]]:
    """A dependency that counts the request against ``spec`` and refuses it past the limit.

    It runs after the middleware's rule has let the request in, and counts against the
    middleware's storage (its ``rate_limit_storage``) unless ``limiter`` is given. Past the
    limit it raises :class:`RateLimitedError`, which the middleware answers with the same 429
    as a rule's ``rate_limit``.

    Example::

        @app.post("/api/exports", dependencies=[Depends(rate_limit("5/minute", key="org"))])
        async def export(): ...

    Raises:
        ConfigurationError: at once, for a malformed ``spec``, ``key`` or ``name``.
    """
    limit = RateLimit.parse(spec, name=name, key=key)

    async def dependency(conn: HTTPConnection) -> None:
        auth = get_auth(conn)
        active = limiter or conn.scope.get(LIMITER_SCOPE_KEY)
        if active is None:
            raise MiddlewareNotInstalledError()
        refusal, _ = await active.check(limit, conn.scope, auth)
        if refusal is not None:
            raise _error_for(refusal)

    return dependency


def _error_for(refusal: Refusal) -> AuthError:
    """The error a dependency raises for a refusal of :meth:`RateLimiter.check`."""
    if isinstance(refusal, RateLimitRefusal):
        return RateLimitedError(refusal)
    return RateLimitUnavailableError()
