"""Signing keys: a networkless PEM key, or a cached remote JWKS.

``RemoteKeySet`` owns fetching and caching for one key source (one middleware instance, so no
cache is ever shared between Clerk instances). Behaviour, with the defaults:

* keys are fresh for ``ttl`` (300 s, Clerk's figure) after the last successful fetch;
* concurrent callers share one in-flight fetch (single flight), which runs as a task of its
  own, so no caller's cancellation can abort it, and is bounded by ``timeout`` (5 s) overall;
* an unknown ``kid`` triggers one refetch, unless another unknown-kid refetch happened within
  ``cooldown`` (30 s); the cold load and TTL refreshes don't count against it;
* a failed fetch never clears the cache: the last good keys are served for ``stale_window``
  (1 h) past their TTL, and fetch attempts are spaced by ``cooldown``;
* a successful fetch replaces the key set whole, so a removed key is gone at once;
* the decoded body is capped (512 KiB): ``identity`` is asked for, and a gzip or deflate body
  sent anyway is inflated a bounded piece at a time, so a compression bomb stops at the cap;
* keys that are not RSA signature keys of 2048-4096 bits with e = 65537 are ignored; a ``kid``
  listed twice is refused; at most 50 keys are kept.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import json
import logging
import math
import re
import zlib
from collections.abc import AsyncIterator, Callable, Mapping
from typing import Final

import anyio
import httpx
from cryptography.hazmat.primitives.asymmetric.rsa import RSAPublicKey
from jwt.algorithms import RSAAlgorithm

__all__ = [
    "KeyLookupError",
    "KeysUnavailableError",
    "RemoteKeySet",
    "StaticKeySet",
    "UnknownKeyError",
    "rsa_key_from_jwk",
]

logger = logging.getLogger(__name__)

MAX_JWKS_BYTES: Final = 512 * 1024
MAX_KEYS: Final = 50
MAX_KID_LENGTH: Final = 256
#: The most one inflate step may produce: what a compressed body can add past the cap.
_INFLATE_STEP: Final = 64 * 1024
_B64URL = re.compile(r"[A-Za-z0-9_-]+")


class KeyLookupError(Exception):
    """No key for this token."""


class UnknownKeyError(KeyLookupError):
    """The JWKS has no usable key with this ``kid`` (reason ``jwk-kid-mismatch``)."""


class KeysUnavailableError(KeyLookupError):
    """No usable keys: the JWKS cannot be fetched and nothing fresh or stale is cached."""


def _b64url_uint(value: object) -> int | None:
    if not isinstance(value, str) or not _B64URL.fullmatch(value) or len(value) % 4 == 1:
        return None
    try:
        raw = base64.urlsafe_b64decode(value + "=" * (-len(value) % 4))
    except (binascii.Error, ValueError):  # pragma: no cover - excluded by the regex above
        return None
    return int.from_bytes(raw, "big")


def rsa_key_from_jwk(jwk: object) -> RSAPublicKey | None:
    """The RSA public key of a JWK usable for RS256 signatures, or None if it must be ignored.

    Ignored (RFC 7517 §5): non-objects, ``kty`` other than ``RSA``, ``use`` other than
    ``sig``, ``key_ops`` without ``verify``, ``alg`` other than ``RS256``, missing or malformed
    ``n``/``e``, moduli outside 2048-4096 bits, exponents other than 65537.
    """
    if not isinstance(jwk, Mapping) or jwk.get("kty") != "RSA":
        return None
    if jwk.get("use", "sig") != "sig" or jwk.get("alg", "RS256") != "RS256":
        return None
    key_ops = jwk.get("key_ops")
    if key_ops is not None and (not isinstance(key_ops, list) or "verify" not in key_ops):
        return None
    n, e = _b64url_uint(jwk.get("n")), _b64url_uint(jwk.get("e"))
    if n is None or e != 65537 or not 2048 <= n.bit_length() <= 4096:
        return None
    # Only the public members go to PyJWT: a stray "d" must never make a private key.
    key = RSAAlgorithm.from_jwk({"kty": "RSA", "n": jwk["n"], "e": jwk["e"]})
    return key if isinstance(key, RSAPublicKey) else None


def parse_jwks(body: bytes) -> dict[str, RSAPublicKey] | None:
    """Usable keys by ``kid`` from a JWKS body; None when the body is not a JWKS at all."""
    try:
        document = json.loads(body)
    except (ValueError, RecursionError):
        return None
    keys = document.get("keys") if isinstance(document, dict) else None
    if not isinstance(keys, list):
        return None
    found: dict[str, RSAPublicKey] = {}
    duplicates: set[str] = set()
    for jwk in keys:
        kid = jwk.get("kid") if isinstance(jwk, dict) else None
        if not isinstance(kid, str) or not 0 < len(kid) <= MAX_KID_LENGTH:
            continue
        key = rsa_key_from_jwk(jwk)
        if key is None:
            continue
        if kid in found or kid in duplicates:
            duplicates.add(kid)
            found.pop(kid, None)
            continue
        if len(found) < MAX_KEYS:
            found[kid] = key
    if duplicates:
        logger.warning(
            "JWKS lists %d kid(s) more than once; tokens naming them are refused.", len(duplicates)
        )
    return found


class StaticKeySet:
    """One PEM key, no network. Like Clerk's ``jwtKey``, the token's ``kid`` is not compared."""

    __slots__ = ("_key",)

    def __init__(self, key: RSAPublicKey) -> None:
        self._key = key

    def peek(self, kid: str, now: float | None = None) -> RSAPublicKey | None:
        return self._key

    async def get(self, kid: str, *, may_refetch: bool = True) -> RSAPublicKey:
        return self._key

    def retry_after(self) -> int:  # pragma: no cover - a static key is never unavailable
        return 0


class RemoteKeySet:
    """A JWKS fetched with an injected ``httpx.AsyncClient`` and clock (see the module doc)."""

    def __init__(
        self,
        url: str,
        *,
        headers: Mapping[str, str] | None = None,
        http_client: httpx.AsyncClient | None = None,
        clock: Callable[[], float],
        ttl: float = 300.0,
        cooldown: float = 30.0,
        stale_window: float = 3600.0,
        timeout: float = 5.0,
    ) -> None:
        self.url = url
        self._headers = httpx.Headers(headers)
        # Uncompressed, so the body cap measures what was sent (httpx asks for gzip by default).
        self._headers["Accept-Encoding"] = "identity"
        self._client = http_client
        self._clock = clock
        self._ttl = ttl
        self._cooldown = cooldown
        self._stale_window = stale_window
        self._timeout = timeout
        self._keys: dict[str, RSAPublicKey] | None = None
        self._fetched_at = -math.inf
        self._next_attempt_at = -math.inf
        self._last_kid_refetch = -math.inf
        self._in_flight: asyncio.Task[None] | None = None

    def _fresh(self, now: float) -> bool:
        return self._fetched_at <= now < self._fetched_at + self._ttl

    def peek(self, kid: str, now: float | None = None) -> RSAPublicKey | None:
        """The cached key for ``kid`` if the cache is fresh (at ``now``); never does I/O."""
        keys = self._keys
        if keys is None:
            return None
        if now is None:
            now = self._clock()
        return keys.get(kid) if self._fresh(now) else None

    def retry_after(self) -> int:
        """Seconds until the next fetch attempt is allowed (for ``Retry-After``), at least 1."""
        remaining = self._next_attempt_at - self._clock()
        return max(1, math.ceil(remaining)) if remaining > 0 else 1

    async def get(self, kid: str, *, may_refetch: bool = True) -> RSAPublicKey:
        """The key for ``kid``, fetching when the cache is cold, stale or lacks the kid.

        ``may_refetch=False`` forbids the unknown-kid refetch (for tokens that would fail
        anyway). Raises UnknownKeyError or KeysUnavailableError.
        """
        now = self._clock()
        if self._keys is not None and self._fresh(now):
            key = self._keys.get(kid)
            if key is not None:
                return key
            if self._in_flight is not None:  # a fetch is on its way: its keys may hold the kid
                await self._refresh()
            elif may_refetch and now >= self._last_kid_refetch + self._cooldown:
                self._last_kid_refetch = now
                await self._refresh()
            else:
                raise UnknownKeyError(kid)
        elif now >= self._next_attempt_at:
            await self._refresh()
        keys = self._keys
        now = self._clock()
        if keys is None or now >= self._fetched_at + self._ttl + self._stale_window:
            raise KeysUnavailableError
        key = keys.get(kid)
        if key is None:
            raise UnknownKeyError(kid)
        return key

    async def _refresh(self) -> None:
        """Join the fetch in flight, or start one that everyone arriving meanwhile joins.

        The fetch runs as a task of its own because it must outlive the request that started
        it: that request may be cancelled (its client gone, a timeout middleware, the server)
        while others wait for the same keys, and a shielded cancel scope holds off only
        anyio's cancellation, not ``Task.cancel()``. Each caller waits through
        ``asyncio.shield``: a cancelled caller gets its CancelledError, the fetch goes on.
        """
        flight = self._in_flight
        if flight is None:
            flight = self._in_flight = asyncio.get_running_loop().create_task(self._load())
            flight.add_done_callback(self._landed)
        await asyncio.shield(flight)

    def _landed(self, flight: asyncio.Task[None]) -> None:
        # A done callback rather than a ``finally`` in _load: it also runs for a task cancelled
        # before it started, and runs before any waiter resumes.
        self._in_flight = None

    async def _load(self) -> None:
        """One fetch, and the cache updated from it; a failure never clears the cache."""
        keys = await self._fetch()
        now = self._clock()
        if keys:
            self._keys, self._fetched_at = self._keep_known(keys), now
            self._next_attempt_at = now  # the TTL decides when to fetch again
        else:  # failed: the next attempt waits for the cooldown
            self._next_attempt_at = now + self._cooldown

    def _keep_known(self, keys: dict[str, RSAPublicKey]) -> dict[str, RSAPublicKey]:
        """Reuse the cached object of every unchanged key, so tokens it verified stay valid."""
        old = self._keys or {}
        return {
            kid: old[kid]
            if kid in old and old[kid].public_numbers() == key.public_numbers()
            else key
            for kid, key in keys.items()
        }

    async def _fetch(self) -> dict[str, RSAPublicKey] | None:
        client = self._client
        if client is None:
            client = self._client = httpx.AsyncClient(follow_redirects=False)
        try:
            with anyio.fail_after(self._timeout):
                async with client.stream(
                    "GET",
                    self.url,
                    headers=self._headers,
                    timeout=self._timeout,
                    follow_redirects=False,
                ) as response:
                    if response.status_code != 200:
                        logger.warning(
                            "JWKS fetch from %s failed: HTTP %d", self.url, response.status_code
                        )
                        return None
                    body = await self._read_body(response)
        except Exception as exc:  # any transport failure is a failed fetch, never a 500
            logger.warning("JWKS fetch from %s failed: %s", self.url, type(exc).__name__)
            return None
        if body is None:
            return None
        keys = parse_jwks(body)
        if not keys:
            logger.warning("JWKS from %s holds no usable RS256 signing key", self.url)
            return None
        return keys

    async def _read_body(self, response: httpx.Response) -> bytes | None:
        """The decoded body; None (logged) past MAX_JWKS_BYTES or in an encoding not handled.

        httpx inflates each received chunk whole, and 64 KiB of gzip can inflate to 64 MiB,
        so a compressed body is read raw and inflated here, a bounded step at a time. A
        response built in memory (a mock transport's) is already decoded: read as it is.
        """
        codings = [
            coding.strip().lower()
            for coding in response.headers.get_list("content-encoding", split_commas=True)
        ]
        codings = [coding for coding in codings if coding not in ("", "identity")]
        if response.is_stream_consumed or not codings:
            chunks = response.aiter_bytes()
        elif codings in (["gzip"], ["deflate"]):
            chunks = _inflate(response.aiter_raw())
        else:
            logger.warning(
                "JWKS from %s has an unsupported Content-Encoding: %s", self.url, ", ".join(codings)
            )
            return None
        body = bytearray()
        async for chunk in chunks:
            body += chunk
            if len(body) > MAX_JWKS_BYTES:
                logger.warning("JWKS from %s exceeds %d bytes", self.url, MAX_JWKS_BYTES)
                return None
        return bytes(body)


async def _inflate(raw: AsyncIterator[bytes]) -> AsyncIterator[bytes]:
    """A gzip or zlib stream inflated at most ``_INFLATE_STEP`` bytes per step, so a reader
    can stop at its cap before one small compressed chunk has become a huge one."""
    inflater = zlib.decompressobj(zlib.MAX_WBITS | 32)  # gzip or zlib header, detected
    async for chunk in raw:
        pending = chunk
        while pending:
            try:
                piece = inflater.decompress(pending, _INFLATE_STEP)
            except zlib.error as exc:  # reported as httpx reports a body it cannot decode
                raise httpx.DecodingError(str(exc)) from exc
            yield piece
            pending = inflater.unconsumed_tail
