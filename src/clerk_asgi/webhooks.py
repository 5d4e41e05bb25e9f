"""Verified Clerk webhooks: Svix's signatures, the Standard Webhooks scheme.

Clerk delivers webhooks through Svix: a ``POST`` with a JSON body and three headers,
``svix-id``, ``svix-timestamp`` (Unix seconds) and ``svix-signature``. Svix's scheme is the
`Standard Webhooks <https://www.standardwebhooks.com>`_ one, whose header names
``webhook-id``, ``webhook-timestamp`` and ``webhook-signature`` are accepted too. A message is
authentic when one ``v1,<base64>`` entry of the signature header is
``HMAC-SHA256(key, f"{id}.{timestamp}.{body}")``, where ``key`` is the base64 part of the
endpoint's ``whsec_...`` signing secret, decoded, and ``body`` the raw bytes received.

The checks, in order (each failure is a :class:`WebhookVerificationError` with its reason):

1. one family of headers is complete, its id and timestamp well formed, at most
   ``MAX_SIGNATURES`` signatures in at most ``MAX_SIGNATURE_HEADER`` characters;
2. a ``v1`` signature matches, compared in constant time (other versions are ignored);
3. the timestamp is within ``tolerance`` seconds of now, either way (replays);
4. the body is a UTF-8 JSON object.

Nothing of a message is parsed beyond its headers before its signature is known to be good.

- :func:`verify_webhook` checks a body and its headers you already have;
- :func:`verified_webhook` returns a dependency (FastAPI's ``Depends``, or awaited with a
  Starlette ``Request``) that reads the body (bounded), verifies it, puts the session of a
  ``session.revoked``/``session.ended``/``session.removed`` event on a revocation list, and
  flags a delivery whose ``svix-id`` was seen before;
- :func:`verify_request` is the one-call form of the dependency.

Behind :class:`~clerk_asgi.ClerkMiddleware` (the webhook route public: the signature is the
authentication), a refused webhook is answered by the middleware: ``400`` JSON
``{"error": "bad_request", "reason", "message"}``, through ``on_refusal`` when set.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import logging
import os
import re
import time
from collections.abc import Awaitable, Callable, Iterable, Mapping
from contextlib import aclosing
from typing import Any, Final, Protocol

from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response

from ._auth import AUTH_SCOPE_KEY
from ._responses import Refusal
from .exceptions import AuthError, ConfigurationError

__all__ = [
    "DEFAULT_DEDUPE_TTL",
    "DEFAULT_MAX_BODY",
    "DEFAULT_TOLERANCE",
    "MAX_ID_LENGTH",
    "MAX_SIGNATURES",
    "MAX_SIGNATURE_HEADER",
    "SESSION_END_EVENTS",
    "SIGNING_SECRET_ENV",
    "WEBHOOK_BODY_INVALID",
    "WEBHOOK_BODY_TOO_LARGE",
    "WEBHOOK_HEADERS_INVALID",
    "WEBHOOK_HEADERS_MISSING",
    "WEBHOOK_SIGNATURE_INVALID",
    "WEBHOOK_TIMESTAMP_INVALID",
    "WEBHOOK_TIMESTAMP_TOO_NEW",
    "WEBHOOK_TIMESTAMP_TOO_OLD",
    "DedupeStore",
    "SessionRevoker",
    "WebhookEvent",
    "WebhookVerificationError",
    "verified_webhook",
    "verify_request",
    "verify_webhook",
]

_logger = logging.getLogger(__name__)

#: The environment variable holding the endpoint's signing secret (Clerk's own name).
SIGNING_SECRET_ENV: Final = "CLERK_WEBHOOK_SIGNING_SECRET"  # noqa: S105 - a variable name
#: Seconds a timestamp may be off, either way (Svix's and Clerk's 5 minutes).
DEFAULT_TOLERANCE: Final = 300
#: Bytes of body the dependency reads at most (Clerk's events are a few kilobytes).
DEFAULT_MAX_BODY: Final = 1024 * 1024
#: Seconds a delivery's id is remembered: Svix retries a failed delivery for about 28 hours.
DEFAULT_DEDUPE_TTL: Final = 2 * 24 * 3600
#: Longest message id accepted (Svix's are 31 characters).
MAX_ID_LENGTH: Final = 256
#: Longest signature header accepted, in characters.
MAX_SIGNATURE_HEADER: Final = 4096
#: Most signatures (of any version) one header may carry.
MAX_SIGNATURES: Final = 16
#: Timestamps are Unix seconds: ten digits until the year 2286.
_MAX_TIMESTAMP_DIGITS: Final = 12

#: The events that end a session: its id (``data.id``) goes on the revocation list.
SESSION_END_EVENTS: Final = frozenset({"session.ended", "session.removed", "session.revoked"})

# Reason codes (ours: Clerk has none for webhooks).
WEBHOOK_HEADERS_MISSING: Final = "webhook-headers-missing"
WEBHOOK_HEADERS_INVALID: Final = "webhook-headers-invalid"
WEBHOOK_TIMESTAMP_INVALID: Final = "webhook-timestamp-invalid"
WEBHOOK_SIGNATURE_INVALID: Final = "webhook-signature-invalid"
WEBHOOK_TIMESTAMP_TOO_OLD: Final = "webhook-timestamp-too-old"
WEBHOOK_TIMESTAMP_TOO_NEW: Final = "webhook-timestamp-too-new"
WEBHOOK_BODY_INVALID: Final = "webhook-body-invalid"
WEBHOOK_BODY_TOO_LARGE: Final = "webhook-body-too-large"

_SECRET_PREFIX: Final = "whsec_"  # noqa: S105 - the prefix, not a secret
_BASE64: Final = re.compile(r"[A-Za-z0-9+/]+={0,2}")
_FAMILIES: Final = (
    ("svix-id", "svix-timestamp", "svix-signature"),
    ("webhook-id", "webhook-timestamp", "webhook-signature"),
)
_NAMES: Final = frozenset(name for family in _FAMILIES for name in family)
_NO_SECRET: Final = (
    f"No webhook signing secret: set {SIGNING_SECRET_ENV} to the endpoint's Signing Secret "
    "from the Clerk Dashboard (Webhooks, then the endpoint), or pass secret='whsec_...'."
)


class WebhookVerificationError(AuthError):
    """A webhook that cannot be trusted or read: answered ``400``.

    An :class:`~clerk_asgi.exceptions.AuthError`, so behind ``ClerkMiddleware`` the middleware
    answers it with ``{"error": "bad_request", "reason", "message"}``.

    Attributes:
        reason: one of the ``WEBHOOK_*`` codes of this module.
        message: what is wrong, safe to send back (never a secret or a signature).
    """

    status_code = 400

    def response(self) -> Response:
        """The ``400`` the middleware would send, for apps that answer it themselves::

        @app.exception_handler(WebhookVerificationError)
        async def refused(request: Request, error: WebhookVerificationError) -> Response:
            return error.response()
        """
        return Refusal(self.status_code, self.reason, message=self.message).response()


class _UnansweredWebhookError(WebhookVerificationError, HTTPException):
    """A WebhookVerificationError on an app without ClerkMiddleware: also Starlette's
    HTTPException, so the app's own exception handling answers 400 instead of 500."""

    def __init__(self, error: WebhookVerificationError) -> None:
        # HTTPException's __init__ only (AuthError's would hand the message to it as a status).
        HTTPException.__init__(self, 400, error.message, {"Cache-Control": "no-store"})
        self.reason = error.reason
        self.message = error.message


class WebhookEvent(dict[str, Any]):
    """A verified event: the JSON object Clerk sent, plus what its delivery said.

    Attributes:
        id: the delivery's message id (``svix-id``), the same on every retry.
        timestamp: when this attempt was signed (``svix-timestamp``), Unix seconds.
        duplicate: an event with this id was verified before, within the deduplication time
            (always False without ``dedupe=``). It says the id was seen, not that your
            handler finished with it.
    """

    __slots__ = ("duplicate", "id", "timestamp")

    def __init__(
        self, payload: Mapping[str, Any], *, id: str, timestamp: int, duplicate: bool = False
    ) -> None:
        super().__init__(payload)
        self.id = id
        self.timestamp = timestamp
        self.duplicate = duplicate


class SessionRevoker(Protocol):
    """What the dependency needs of a revocation list (``RevocationList`` is one)."""

    async def revoke(self, session_id: str) -> None:
        """List ``session_id`` until none of its tokens can still be valid."""


class DedupeStore(Protocol):
    """What deduplication needs: ``RevocationList`` and ``RedisRevocationList`` are two."""

    async def remember(self, key: str, ttl: float) -> bool:
        """True the first time ``key`` is seen within ``ttl`` seconds."""


def verify_webhook(
    body: bytes,
    headers: Mapping[str, str],
    *,
    secret: str | Iterable[str] | None = None,
    tolerance: float = DEFAULT_TOLERANCE,
    clock: Callable[[], float] | None = None,
) -> WebhookEvent:
    """Verify one webhook and return its event.

    Args:
        body: the raw request body, exactly as received (never re-serialised JSON).
        headers: the request's headers (a ``dict`` or Starlette's ``Headers``; names in any
            case). When both the ``svix-*`` and the ``webhook-*`` headers are complete, the
            ``svix-*`` ones are verified, as Svix's own library does.
        secret: the signing secret ``whsec_...`` (default: ``CLERK_WEBHOOK_SIGNING_SECRET``);
            several, in a list or separated by spaces or commas, while rotating: a signature
            by any of them is accepted.
        tolerance: seconds the timestamp may be off, in the past or the future (default 300).
        clock: Unix seconds now (default ``time.time``).

    Returns:
        The event, a ``dict`` with ``id`` and ``timestamp`` attributes.

    Raises:
        WebhookVerificationError: the message is not authentic, too old or too new, or its
            body is not a JSON object; ``.reason`` says which.
        ConfigurationError: no secret, or one that is not a signing secret.
        TypeError: ``body`` is not bytes.

    Example::

        event = verify_webhook(await request.body(), request.headers)
        if event["type"] == "user.created":
            ...
    """
    return _Verifier(secret, tolerance, clock).verify(body, headers)


def verified_webhook(
    *,
    secret: str | Iterable[str] | None = None,
    tolerance: float = DEFAULT_TOLERANCE,
    revocation_list: SessionRevoker | None = None,
    dedupe: DedupeStore | bool | None = None,
    dedupe_ttl: float = DEFAULT_DEDUPE_TTL,
    max_body: int = DEFAULT_MAX_BODY,
    clock: Callable[[], float] | None = None,
) -> Callable[[Request], Awaitable[WebhookEvent]]:
    """A dependency that reads, verifies and returns the request's webhook event.

    For FastAPI, ``event: WebhookEvent = Depends(verified_webhook())``; in Starlette, build it
    once and ``event = await webhook(request)``. It reads the body itself, at most
    ``max_body`` bytes (so declare no body parameter on the route), then:

    - refuses what :func:`verify_webhook` refuses, and a larger body
      (``webhook-body-too-large``), with ``400``;
    - for ``session.revoked``, ``session.ended`` and ``session.removed`` events, puts the
      session (``data.id``) on ``revocation_list``, on every delivery (doing it again is
      harmless; a delivery that could not do it is answered ``503`` and retried by Svix);
    - with ``dedupe``, remembers each ``svix-id`` for ``dedupe_ttl`` seconds and sets
      ``event.duplicate`` on a later delivery of the same id (a retry or a replay), which is
      verified and returned all the same.

    Behind ``ClerkMiddleware`` its refusals are the middleware's JSON (and go through
    ``on_refusal``). Without it, each is raised as a Starlette ``HTTPException``: FastAPI answers
    ``{"detail": "<message>"}``, Starlette the message as text, with the same status.

    Args:
        secret: as for :func:`verify_webhook`; checked here, once.
        tolerance: as for :func:`verify_webhook`.
        revocation_list: a :class:`~clerk_asgi.backend.RevocationList` or
            :class:`~clerk_asgi.backend.RedisRevocationList`, the one ``ClerkMiddleware`` has.
        dedupe: a store with ``remember(key, ttl)`` (a ``RevocationList`` in memory, a
            ``RedisRevocationList`` for several processes), or True for ``revocation_list``.
        dedupe_ttl: seconds an id is remembered (default two days: Svix's retries span about
            28 hours); at least twice ``tolerance``.
        max_body: largest body read, in bytes (default 1 MiB).
        clock: Unix seconds now (default ``time.time``).

    Raises:
        ConfigurationError: a missing or malformed secret, or an argument that cannot work.
    """
    verifier = _Verifier(secret, tolerance, clock)
    if revocation_list is not None and not callable(getattr(revocation_list, "revoke", None)):
        raise ConfigurationError(
            f"revocation_list must have an async revoke(session_id), got {revocation_list!r}: "
            "pass a RevocationList or RedisRevocationList."
        )
    store = _dedupe_store(dedupe, revocation_list)
    ttl = _positive("dedupe_ttl", dedupe_ttl)
    if ttl < 2 * verifier.tolerance:
        raise ConfigurationError(
            f"dedupe_ttl ({dedupe_ttl!r}) must be at least twice the tolerance "
            f"({verifier.tolerance:g} s): a replay is accepted that long around its timestamp."
        )
    if not isinstance(max_body, int) or isinstance(max_body, bool) or max_body < 1:
        raise ConfigurationError(f"max_body must be a positive number of bytes, got {max_body!r}.")

    async def dependency(request: Request) -> WebhookEvent:
        """Read, verify, feed the revocation list, mark duplicates; see verified_webhook."""
        try:
            event = verifier.verify(await _read_body(request, max_body), request.headers)
            if revocation_list is not None:
                await _revoke_ended_session(revocation_list, event)
            if store is not None:
                event.duplicate = not await store.remember(f"webhook:{event.id}", ttl)
        except AuthError as error:
            _logger.info("Webhook refused (%s)", error.reason)
            if AUTH_SCOPE_KEY in request.scope:  # ClerkMiddleware answers it
                raise
            raise _unanswered(error) from None
        return event

    return dependency


async def verify_request(
    request: Request,
    *,
    secret: str | Iterable[str] | None = None,
    tolerance: float = DEFAULT_TOLERANCE,
    revocation_list: SessionRevoker | None = None,
    dedupe: DedupeStore | bool | None = None,
    dedupe_ttl: float = DEFAULT_DEDUPE_TTL,
    max_body: int = DEFAULT_MAX_BODY,
    clock: Callable[[], float] | None = None,
) -> WebhookEvent:
    """``await verified_webhook(...)(request)``: the dependency, configured and run at once.

    Its arguments, refusals and errors are those of :func:`verified_webhook`. A configuration
    mistake is then only found on the first webhook: prefer building the dependency at import.
    """
    webhook = verified_webhook(
        secret=secret,
        tolerance=tolerance,
        revocation_list=revocation_list,
        dedupe=dedupe,
        dedupe_ttl=dedupe_ttl,
        max_body=max_body,
        clock=clock,
    )
    return await webhook(request)


class _Verifier:
    """The signing keys, the tolerance and the clock, checked once."""

    __slots__ = ("_clock", "_keys", "tolerance")

    def __init__(
        self,
        secret: str | Iterable[str] | None,
        tolerance: float,
        clock: Callable[[], float] | None,
    ) -> None:
        self._keys = _decode_secrets(secret)
        if (
            not isinstance(tolerance, int | float)
            or isinstance(tolerance, bool)
            or not 0 <= tolerance < float("inf")
        ):
            raise ConfigurationError(
                f"tolerance must be a number of seconds, 0 or more, got {tolerance!r} "
                "(default 300: five minutes either way)."
            )
        self.tolerance = float(tolerance)
        self._clock = clock or time.time

    def verify(self, body: bytes, headers: Mapping[str, str]) -> WebhookEvent:
        if not isinstance(body, bytes | bytearray | memoryview):
            raise TypeError(
                f"body must be the raw request body as bytes, got {type(body).__name__}: "
                "pass await request.body(), never decoded or re-serialised text."
            )
        body = bytes(body)
        names, (msg_id, stamp, signature_header) = _webhook_headers(headers)
        if len(msg_id) > MAX_ID_LENGTH or not _visible_ascii(msg_id):
            raise WebhookVerificationError(
                WEBHOOK_HEADERS_INVALID,
                f"The {names[0]} header is not a message id: 1 to {MAX_ID_LENGTH} visible "
                "ASCII characters.",
            )
        if len(stamp) > _MAX_TIMESTAMP_DIGITS or not (stamp.isascii() and stamp.isdigit()):
            raise WebhookVerificationError(
                WEBHOOK_TIMESTAMP_INVALID,
                f"The {names[1]} header is not a Unix time in seconds.",
            )
        signatures = _v1_signatures(names[2], signature_header)
        signed = f"{msg_id}.{stamp}.".encode("ascii") + body
        expected = [hmac.new(key, signed, hashlib.sha256).digest() for key in self._keys]
        if not any(
            hmac.compare_digest(signature, digest)
            for signature in signatures
            for digest in expected
        ):
            raise WebhookVerificationError(
                WEBHOOK_SIGNATURE_INVALID,
                f"No signature in the {names[2]} header matches the signing secret.",
            )
        timestamp = int(stamp)
        age = self._clock() - timestamp
        if age > self.tolerance:
            raise WebhookVerificationError(
                WEBHOOK_TIMESTAMP_TOO_OLD,
                f"The webhook's timestamp is more than {self.tolerance:g} seconds old.",
            )
        if -age > self.tolerance:
            raise WebhookVerificationError(
                WEBHOOK_TIMESTAMP_TOO_NEW,
                f"The webhook's timestamp is more than {self.tolerance:g} seconds in the future.",
            )
        return WebhookEvent(_json_object(body), id=msg_id, timestamp=timestamp)


def _decode_secrets(secret: str | Iterable[str] | None) -> list[bytes]:
    """The HMAC keys of ``secret`` (default: ``CLERK_WEBHOOK_SIGNING_SECRET``).

    Each secret is ``whsec_`` and the base64 of the key (padding optional; the prefix too, as
    the Standard Webhooks libraries allow). A string may hold several, separated by spaces or
    commas.

    Raises:
        ConfigurationError: no secret at all, or one that is not of that form. The message
            never contains the secret.
    """
    if secret is None:
        secret = os.environ.get(SIGNING_SECRET_ENV, "")
    if isinstance(secret, str):
        values = secret.replace(",", " ").split()
    else:
        values = []
        for value in secret:
            if not isinstance(value, str):
                raise ConfigurationError(
                    f"Webhook signing secrets must be strings, got {type(value).__name__}."
                )
            values.extend(value.replace(",", " ").split())
    if not values:
        raise ConfigurationError(_NO_SECRET)
    return [_decode_secret(value, number) for number, value in enumerate(values, 1)]


def _decode_secret(value: str, number: int) -> bytes:
    encoded = value.removeprefix(_SECRET_PREFIX).rstrip("=")
    key = b""
    if _BASE64.fullmatch(encoded):
        try:
            key = base64.b64decode(encoded + "=" * (-len(encoded) % 4), validate=True)
        except binascii.Error:  # a length no base64 has (one character past a group)
            key = b""
    if not key:
        raise ConfigurationError(
            f"Webhook signing secret #{number} is not a signing secret: it is 'whsec_' followed "
            "by base64. Copy it again from the Clerk Dashboard (Webhooks, then the endpoint)."
        )
    return key


def _webhook_headers(
    headers: Mapping[str, str],
) -> tuple[tuple[str, str, str], tuple[str, str, str]]:
    """The names and values of the first complete family (``svix-*``, then ``webhook-*``).
    A name is matched in any case; of repeated headers the first counts."""
    found: dict[str, str] = {}
    for name, value in headers.items():
        key = name.lower() if isinstance(name, str) else None
        if key in _NAMES and key not in found and isinstance(value, str):
            found[key] = value.strip(" \t")
    for family in _FAMILIES:
        values = tuple(found.get(name, "") for name in family)
        if all(values):
            return family, (values[0], values[1], values[2])
    closest = max(_FAMILIES, key=lambda family: sum(bool(found.get(name)) for name in family))
    missing = [name for name in closest if not found.get(name)]
    raise WebhookVerificationError(
        WEBHOOK_HEADERS_MISSING,
        f"Missing webhook header{'s' if len(missing) > 1 else ''}: {', '.join(missing)}.",
    )


def _visible_ascii(value: str) -> bool:
    return value.isascii() and value.isprintable() and " " not in value


def _v1_signatures(name: str, header: str) -> list[bytes]:
    """The decoded ``v1`` signatures of a signature header; a malformed one matches nothing."""
    if len(header) > MAX_SIGNATURE_HEADER:
        raise WebhookVerificationError(
            WEBHOOK_HEADERS_INVALID,
            f"The {name} header is longer than {MAX_SIGNATURE_HEADER} characters.",
        )
    entries = header.split()
    if len(entries) > MAX_SIGNATURES:
        raise WebhookVerificationError(
            WEBHOOK_HEADERS_INVALID,
            f"The {name} header has more than {MAX_SIGNATURES} signatures.",
        )
    found = False
    signatures: list[bytes] = []
    for entry in entries:
        version, comma, encoded = entry.partition(",")
        if version != "v1" or not comma:
            continue  # another scheme (v1a: asymmetric), or not a signature at all
        found = True
        if _BASE64.fullmatch(encoded):
            try:
                signature = base64.b64decode(encoded, validate=True)
            except binascii.Error:  # bad padding
                continue
            if len(signature) == hashlib.sha256().digest_size:
                signatures.append(signature)
    if not found:
        raise WebhookVerificationError(
            WEBHOOK_SIGNATURE_INVALID, f"The {name} header has no v1 signature."
        )
    return signatures


def _json_object(body: bytes) -> dict[str, Any]:
    if not body:
        raise WebhookVerificationError(WEBHOOK_BODY_INVALID, "The webhook body is empty.")
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError:
        raise WebhookVerificationError(
            WEBHOOK_BODY_INVALID, "The webhook body is not UTF-8."
        ) from None
    try:
        payload = json.loads(text)
    except (ValueError, RecursionError):  # RecursionError: nested past Python's limit
        raise WebhookVerificationError(
            WEBHOOK_BODY_INVALID, "The webhook body is not JSON."
        ) from None
    if not isinstance(payload, dict):
        raise WebhookVerificationError(
            WEBHOOK_BODY_INVALID, "The webhook body is not a JSON object."
        )
    return payload


async def _read_body(request: Request, limit: int) -> bytes:
    """The body, refused as soon as it is known to exceed ``limit`` bytes (never buffered
    past it)."""
    declared = request.headers.get("content-length", "")
    if declared.isascii() and declared.isdigit() and (len(declared) > 18 or int(declared) > limit):
        raise _too_large(limit)
    chunks: list[bytes] = []
    size = 0
    async with aclosing(request.stream()) as stream:
        async for chunk in stream:
            size += len(chunk)
            if size > limit:
                raise _too_large(limit)
            chunks.append(chunk)
    return b"".join(chunks)


def _too_large(limit: int) -> WebhookVerificationError:
    return WebhookVerificationError(
        WEBHOOK_BODY_TOO_LARGE, f"The webhook body is larger than {limit} bytes."
    )


async def _revoke_ended_session(revocation_list: SessionRevoker, event: WebhookEvent) -> None:
    kind = event.get("type")
    if not isinstance(kind, str) or kind not in SESSION_END_EVENTS:
        return
    data = event.get("data")
    session_id = data.get("id") if isinstance(data, dict) else None
    if not isinstance(session_id, str) or not session_id:
        raise WebhookVerificationError(
            WEBHOOK_BODY_INVALID, f"The {kind} event has no data.id (the session id)."
        )
    await revocation_list.revoke(session_id)


def _dedupe_store(
    dedupe: DedupeStore | bool | None, revocation_list: SessionRevoker | None
) -> DedupeStore | None:
    if dedupe is None or dedupe is False:
        return None
    store: object = revocation_list if dedupe is True else dedupe
    if store is None:
        raise ConfigurationError(
            "dedupe=True remembers ids in the revocation list, and there is none: pass "
            "revocation_list=..., or a store as dedupe= (RevocationList() keeps them in memory)."
        )
    if not callable(getattr(store, "remember", None)):
        raise ConfigurationError(
            f"dedupe must have an async remember(key, ttl), got {store!r}: pass a "
            "RevocationList or RedisRevocationList, or True to use revocation_list's."
        )
    return store  # type: ignore[return-value]  # checked above: it has remember()


def _positive(name: str, value: float) -> float:
    if (
        not isinstance(value, int | float)
        or isinstance(value, bool)
        or not 0 < value < float("inf")
    ):
        raise ConfigurationError(f"{name} must be a positive number of seconds, got {value!r}.")
    return float(value)


def _unanswered(error: AuthError) -> HTTPException:
    """The HTTPException that stands for ``error`` where no ClerkMiddleware answers it."""
    if isinstance(error, WebhookVerificationError):
        return _UnansweredWebhookError(error)
    headers = {"Cache-Control": "no-store"}
    if error.retry_after is not None:
        headers["Retry-After"] = str(error.retry_after)
    return HTTPException(error.status_code, error.message, headers)
