"""``ClerkBackend``: a small async client for Clerk's Backend API.

It covers what the middleware and a typical app need: the handshake payload, and sessions
(get, list, revoke, "sign out everywhere", tokens), with explicit timeouts, bounded retries,
Clerk's API version header, and errors that never carry the secret key::

    from clerk_asgi.backend import ClerkBackend, RevocationList

    revocations = RevocationList()  # the same object goes to ClerkMiddleware(revocation_list=)
    clerk = ClerkBackend(revocation_list=revocations)  # CLERK_SECRET_KEY, CLERK_API_URL
    session = await clerk.sessions.get(auth.session_id)
    await clerk.sessions.revoke_all(user_id=auth.user_id, keep=auth.session_id)
    async with httpx.AsyncClient(auth=clerk.token_auth(auth, template="supabase")) as api:
        ...

Errors::

    ClerkError
    └── BackendAPIError              a Backend API call failed: .status (0 when no answer),
        │                            .code (Clerk's error code), .message, .retry_after
        ├── BackendUnauthorizedError 401: the secret key is wrong or revoked
        ├── BackendForbiddenError    403: the key may not do this
        ├── BackendNotFoundError     404: no such session (or template, or nonce)
        └── BackendRateLimitError    429: too many calls; .retry_after says how long to wait

The official ``clerk-backend-api`` SDK stays usable side by side for everything else.
"""

from __future__ import annotations

import builtins
import json
import logging
import math
from collections import OrderedDict
from collections.abc import AsyncGenerator, Awaitable, Callable, Generator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from types import MappingProxyType
from typing import Any, Final
from urllib.parse import quote

import anyio
import httpx
import jwt

from ._auth import Auth, _freeze
from ._config import ClerkConfig, env
from ._reasons import SESSION_TOKEN_MISSING, message_for
from ._revocation import (
    RedisRevocationList,
    RevocationList,
    RevocationListUnavailableError,
    RevocationStore,
)
from .exceptions import ClerkError, ConfigurationError, SignedOutError

__all__ = [
    "API_VERSION",
    "BackendAPIError",
    "BackendForbiddenError",
    "BackendNotFoundError",
    "BackendRateLimitError",
    "BackendUnauthorizedError",
    "ClerkBackend",
    "RedisRevocationList",
    "RevocationList",
    "RevocationListUnavailableError",
    "Session",
    "SessionTokenAuth",
    "Sessions",
]

_logger = logging.getLogger(__name__)

#: The Backend API version this client speaks (``Clerk-API-Version``), as ``@clerk/backend``.
API_VERSION: Final = "2026-05-12"
#: Bodies larger than this are refused (a page of 100 sessions is about 70 KB).
#: Clerk's bounds of a token's ``expires_in_seconds``.
_MIN_EXPIRES_IN: Final = 30
_MAX_EXPIRES_IN: Final = 315_360_000
_MAX_BODY: Final = 256 * 1024
#: Retries of an idempotent call, by default.
_DEFAULT_MAX_RETRIES: Final = 2
#: Answers worth retrying: rate limited, or a gateway/upstream that is briefly unavailable.
_RETRY_STATUSES: Final = frozenset({429, 502, 503, 504})
#: Seconds before the first retry when Clerk sends no ``Retry-After`` (doubled each time).
_RETRY_DELAY: Final = 0.5
#: Sessions asked for per page, and the most pages read: a listing of more than
#: 100 x 50 = 5,000 sessions is refused rather than followed forever.
_PAGE_SIZE: Final = 100
_MAX_PAGES: Final = 50
#: A cached template token is used until this many seconds before its ``exp``.
_TOKEN_MARGIN: Final = 10.0
#: Template tokens kept, one per (session, template), least recently used dropped first.
_TOKEN_CACHE_SIZE: Final = 1024
#: ``status`` values Clerk's session listing filters on (``pending`` is filtered here).
_LIST_STATUSES: Final = frozenset(
    {"abandoned", "active", "ended", "expired", "removed", "replaced", "revoked"}
)
_NEEDS_KEY: Final = "The Backend API needs a secret key: set CLERK_SECRET_KEY or pass secret_key=."
_REDACTED: Final = "[secret key]"

_Sleep = Callable[[float], Awaitable[None]]


class BackendAPIError(ClerkError):
    """A Backend API call failed.

    Attributes:
        status: the HTTP status, or 0 when Clerk did not answer (timeout, connection error).
        code: Clerk's error code (``errors[0].code``), or a code of ours (``timeout``,
            ``network-error``, ``invalid-response``).
        message: a human-readable explanation (never the secret key).
        retry_after: seconds from ``Retry-After`` (a number, or an HTTP date still to come),
            when Clerk sent one.
    """

    def __init__(
        self, status: int, code: str, message: str, retry_after: float | None = None
    ) -> None:
        super().__init__(f"Clerk Backend API: {message} (status {status}, code {code})")
        self.status = status
        self.code = code
        self.message = message
        self.retry_after = retry_after


class BackendUnauthorizedError(BackendAPIError):
    """401: Clerk did not accept the secret key (wrong instance, revoked, or mistyped)."""


class BackendForbiddenError(BackendAPIError):
    """403: the secret key may not make this call (e.g. a feature of another plan)."""


class BackendNotFoundError(BackendAPIError):
    """404: no such resource (``resource_not_found``): a session, JWT template or nonce."""


class BackendRateLimitError(BackendAPIError):
    """429: too many Backend API calls; :attr:`retry_after` says how long to wait."""


_ERRORS_BY_STATUS: Final[Mapping[int, type[BackendAPIError]]] = MappingProxyType(
    {
        401: BackendUnauthorizedError,
        403: BackendForbiddenError,
        404: BackendNotFoundError,
        429: BackendRateLimitError,
    }
)


# -- sessions -----------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True, kw_only=True)
class Session:
    """A Clerk session, as the Backend API describes it (read-only).

    Attributes:
        id: ``sess_...``.
        user_id: the signed-in user, ``user_...``.
        client_id: the browser or device, ``client_...``.
        status: ``active``, ``pending``, ``ended``, ``expired``, ``removed``, ``replaced``,
            ``revoked``, ``abandoned``, or a status Clerk adds later (kept as sent).
        created_at: when the session started (aware UTC datetimes; None when absent).
        updated_at: when it last changed.
        last_active_at: when it was last used.
        expire_at: when it expires unless used.
        abandon_at: when it is abandoned whatever happens.
        last_active_organization_id: the organization active in it, if any.
        latest_activity: the device it was last used from: ``device_type``, ``browser_name``,
            ``browser_version``, ``city``, ``country``, ``ip_address``, ``is_mobile``; or None.
        actor: the impersonator (``{"sub": ..., "iss": ...}``) for an impersonation session,
            else None.
        raw: the whole JSON object, fields this class does not name included.
    """

    id: str
    user_id: str
    client_id: str
    status: str
    created_at: datetime | None = None
    updated_at: datetime | None = None
    last_active_at: datetime | None = None
    expire_at: datetime | None = None
    abandon_at: datetime | None = None
    last_active_organization_id: str | None = None
    latest_activity: Mapping[str, Any] | None = field(default=None, hash=False, compare=False)
    actor: Mapping[str, Any] | None = field(default=None, hash=False, compare=False)
    raw: Mapping[str, Any] = field(
        default_factory=lambda: _freeze({}), repr=False, hash=False, compare=False
    )

    @property
    def is_active(self) -> bool:
        """Whether the session can still be used (``active``, or ``pending`` with tasks)."""
        return self.status in ("active", "pending")

    @classmethod
    def from_json(cls, data: Any) -> Session:
        """A Session from the Backend API's JSON object.

        Raises:
            BackendAPIError: ``invalid-response``: not a session object (a required field is
                missing or a field has the wrong type). Unknown fields are kept in :attr:`raw`.
        """
        if not isinstance(data, dict):
            raise _invalid("a session is not a JSON object")
        try:
            raw: Mapping[str, Any] = _freeze(data)
        except RecursionError:
            raise _invalid("a session is nested too deeply") from None
        session_id, user_id, client_id, status = (
            _string(raw, name) for name in ("id", "user_id", "client_id", "status")
        )
        organization = raw.get("last_active_organization_id")
        if organization is not None and not isinstance(organization, str):
            raise _invalid("a session's last_active_organization_id is not a string")
        return cls(
            id=session_id,
            user_id=user_id,
            client_id=client_id,
            status=status,
            created_at=_timestamp(raw, "created_at"),
            updated_at=_timestamp(raw, "updated_at"),
            last_active_at=_timestamp(raw, "last_active_at"),
            expire_at=_timestamp(raw, "expire_at"),
            abandon_at=_timestamp(raw, "abandon_at"),
            last_active_organization_id=organization,
            latest_activity=_object(raw, "latest_activity"),
            actor=_object(raw, "actor"),
            raw=raw,
        )


def _string(data: Mapping[str, Any], name: str) -> str:
    value = data.get(name)
    if not isinstance(value, str) or not value:
        raise _invalid(f"a session has no {name}")
    return value


def _object(data: Mapping[str, Any], name: str) -> Mapping[str, Any] | None:
    value = data.get(name)
    if value is not None and not isinstance(value, Mapping):
        raise _invalid(f"a session's {name} is not an object")
    return value


def _timestamp(data: Mapping[str, Any], name: str) -> datetime | None:
    """Clerk's milliseconds since the epoch as an aware UTC datetime (None when absent)."""
    value = data.get(name)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise _invalid(f"a session's {name} is not a timestamp")
    try:
        return datetime.fromtimestamp(value / 1000, tz=UTC)
    except (OverflowError, OSError, ValueError):  # out of datetime's range
        raise _invalid(f"a session's {name} is out of range") from None


def _invalid(message: str) -> BackendAPIError:
    return BackendAPIError(200, "invalid-response", message)


def _segment(value: object, name: str) -> str:
    """``value`` as one path segment: percent-encoded, dots too, so that no id (``..``,
    ``a/b``, ``?x``) can ever reach another endpoint.

    Raises:
        TypeError: not a string.
        ValueError: an empty string.
    """
    if not isinstance(value, str):
        raise TypeError(f"{name} must be a string, got {type(value).__name__}")
    if not value:
        raise ValueError(f"{name} must not be empty")
    return quote(value, safe="").replace(".", "%2E")


class Sessions:
    """``clerk.sessions``: Clerk's sessions through the Backend API.

    Reads (``get``, ``list``) and revocations are retried on 429/502/503/504 and connection
    errors (revoking twice leaves a session revoked, as once); minting a token is not.
    """

    def __init__(self, backend: ClerkBackend) -> None:
        self._backend = backend

    def __repr__(self) -> str:
        return f"Sessions({self._backend!r})"

    async def get(self, session_id: str) -> Session:
        """The session ``session_id`` (``GET /v1/sessions/{id}``).

        Raises:
            BackendNotFoundError: no such session.
            BackendAPIError: any other failure.
            TypeError, ValueError: ``session_id`` is not a non-empty string.
        """
        path = f"/v1/sessions/{_segment(session_id, 'session_id')}"
        return Session.from_json(await self._backend._request("GET", path))

    async def list(
        self,
        *,
        user_id: str | None = None,
        client_id: str | None = None,
        status: str | None = None,
    ) -> builtins.list[Session]:
        """Every session of a user or a client (browser), newest first, every page read.

        Args:
            user_id: the user's sessions.
            client_id: the client's sessions (with ``user_id``: both must match).
            status: only sessions in this status (``active``, ``revoked``, ...; ``pending``
                is filtered here, as Clerk's listing does not take it).

        Clerk drops old inactive sessions from its listings after a while.

        Raises:
            BackendAPIError: a call failed, an answer is malformed, or the listing goes on
                for more than 50 pages of 100.
            TypeError, ValueError: neither ``user_id`` nor ``client_id``, or not strings.
        """
        params: dict[str, str] = {}
        for name, value in (("user_id", user_id), ("client_id", client_id), ("status", status)):
            if value is not None:
                _segment(value, name)  # the same checks: a non-empty string
                params[name] = value
        if user_id is None and client_id is None:
            raise ValueError(
                "sessions.list() needs user_id= or client_id=: Clerk lists no sessions without one."
            )
        if status == "pending" or (status is not None and status not in _LIST_STATUSES):
            del params["status"]
        found = await self._all_pages(params)
        return found if status is None else [s for s in found if s.status == status]

    async def _all_pages(self, params: dict[str, str]) -> builtins.list[Session]:
        found: dict[str, Session] = {}  # by id: a session shifted by a new one comes once
        for page in range(_MAX_PAGES):
            query = {**params, "paginated": "true", "limit": str(_PAGE_SIZE)}
            query["offset"] = str(page * _PAGE_SIZE)
            body = await self._backend._request("GET", "/v1/sessions", query)
            total: Any = None
            if isinstance(body, dict):  # {"data": [...], "total_count": n}
                total = body.get("total_count")
                body = body.get("data")
            if not isinstance(body, list):  # a bare array is what the spec documents
                raise _invalid("the session list is malformed")
            for item in body:
                session = Session.from_json(item)
                found.setdefault(session.id, session)
            ended = len(body) < _PAGE_SIZE
            if ended or (isinstance(total, int) and (page + 1) * _PAGE_SIZE >= total):
                return builtins.list(found.values())
        raise _invalid(f"the session list goes on past {_MAX_PAGES * _PAGE_SIZE} sessions")

    async def revoke(self, session_id: str) -> Session:
        """Revoke a session (``POST /v1/sessions/{id}/revoke``): sign it out on its device.

        Then, with a ``revocation_list``, list it there, so that its tokens still alive (up
        to a minute) are refused at once.

        Returns:
            The session, ``revoked`` (or as it was, if it had already ended).

        Raises:
            BackendNotFoundError: no such session.
            BackendAPIError: any other failure (the revocation list is then not fed).
            RevocationListUnavailableError: Clerk revoked it, but the list could not be
                written (Redis unreachable).
        """
        path = f"/v1/sessions/{_segment(session_id, 'session_id')}/revoke"
        session = Session.from_json(await self._backend._request("POST", path))
        if self._backend.revocation_list is not None:
            await self._backend.revocation_list.revoke(session_id)
        return session

    async def revoke_all(self, *, user_id: str, keep: str | None = None) -> builtins.list[Session]:
        """ "Sign out of all devices": revoke every active (and pending) session of a user,
        except ``keep`` (e.g. the current one, ``auth.session_id``; None revokes all).

        Each is fed to the revocation list as :meth:`revoke` does. A session that ended in the
        meantime (404) is skipped; if another revocation fails, the rest are still tried and
        the first error is raised afterwards (calling again is safe).

        Returns:
            The sessions revoked.
        """
        if keep is not None:
            _segment(keep, "keep")
        revoked: builtins.list[Session] = []
        failure: BackendAPIError | None = None
        for session in await self.list(user_id=user_id):
            if not session.is_active or session.id == keep:
                continue
            try:
                revoked.append(await self.revoke(session.id))
            except BackendNotFoundError:
                continue
            except BackendAPIError as error:
                failure = failure or error
        if failure is not None:
            raise failure
        return revoked

    async def token(
        self, session_id: str, *, template: str | None = None, expires_in: int | None = None
    ) -> str:
        """A new token for the session: a session token, or one from the JWT template named
        ``template`` (``POST /v1/sessions/{id}/tokens[/{template}]``). Not retried.

        Args:
            session_id: an active session.
            template: a JWT template's name (Dashboard, "JWT templates").
            expires_in: seconds the token lives (Clerk takes 30 to 315,360,000; default: the
                session-token lifetime, or the template's).

        Returns:
            The JWT.

        Raises:
            BackendNotFoundError: no such active session, or no such template.
            BackendAPIError: any other failure.
        """
        path = f"/v1/sessions/{_segment(session_id, 'session_id')}/tokens"
        if template is not None:
            path += "/" + _segment(template, "template")
        body: dict[str, int] | None = None
        if expires_in is not None:
            if isinstance(expires_in, bool) or not isinstance(expires_in, int):
                raise TypeError(f"expires_in must be an int, got {type(expires_in).__name__}")
            if not _MIN_EXPIRES_IN <= expires_in <= _MAX_EXPIRES_IN:  # Clerk's own bounds
                raise ValueError(
                    f"expires_in must be {_MIN_EXPIRES_IN} to {_MAX_EXPIRES_IN:,} seconds "
                    f"(Clerk's bounds), got {expires_in}"
                )
            body = {"expires_in_seconds": expires_in}
        answer = await self._backend._request("POST", path, body=body, retry=False)
        token = answer.get("jwt") if isinstance(answer, dict) else None
        if not isinstance(token, str) or not token:
            raise _invalid("the token answer has no jwt")
        return token


# -- the client ---------------------------------------------------------------------------------


class ClerkBackend:
    """An async client for Clerk's Backend API, built from keywords or a :class:`ClerkConfig`.

    Args:
        config: a :class:`~clerk_asgi.ClerkConfig` to take the secret key, API URL, HTTP client,
            timeout, clock and revocation list from (those keywords then must not be given).
        secret_key: ``sk_test_...``/``sk_live_...`` (``CLERK_SECRET_KEY``).
        api_url: the Backend API base without ``/v1`` (``CLERK_API_URL``, default
            ``https://api.clerk.com``).
        http_client: the ``httpx.AsyncClient`` to use (default: one of our own).
        timeout: seconds a call may take in all, retries and their waits included (default 5).
        revocation_list: a :class:`RevocationList` or :class:`RedisRevocationList`, fed by
            ``sessions.revoke()`` and ``revoke_all()``: the same object as
            ``ClerkMiddleware(revocation_list=...)``.
        clock: wall-clock seconds (default ``time.time``): ``Retry-After`` dates and token
            expiry are read against it.
        max_retries: retries of an idempotent call on 429/502/503/504 or a connection error
            (default 2; 0 turns retries off).
        sleep: how to wait between retries (default ``anyio.sleep``); tests pass one that
            records the delays.

    Raises:
        ConfigurationError: no usable secret key, or an invalid setting.

    Example::

        clerk = ClerkBackend()  # CLERK_SECRET_KEY
        sessions = await clerk.sessions.list(user_id="user_123", status="active")
    """

    def __init__(
        self,
        config: ClerkConfig | None = None,
        *,
        secret_key: str | None = None,
        api_url: str | None = None,
        http_client: httpx.AsyncClient | None = None,
        timeout: float | None = None,
        revocation_list: RevocationStore | None = None,
        clock: Callable[[], float] | None = None,
        max_retries: int = _DEFAULT_MAX_RETRIES,
        sleep: Callable[[float], Awaitable[None]] | None = None,
    ) -> None:
        if config is None:
            if env(secret_key, "secret_key") is None:  # say so, not "no key material" at all
                raise ConfigurationError(_NEEDS_KEY)
            config = ClerkConfig(
                secret_key=secret_key,
                api_url=api_url,
                http_client=http_client,
                api_timeout=5.0 if timeout is None else timeout,
                revocation_list=revocation_list,
                clock=clock,
            )
        elif any(
            v is not None
            for v in (secret_key, api_url, http_client, timeout, revocation_list, clock)
        ):
            raise ConfigurationError("Pass either config= or keywords to ClerkBackend, not both.")
        if config.secret_key is None:
            raise ConfigurationError(_NEEDS_KEY)
        if isinstance(max_retries, bool) or not isinstance(max_retries, int) or max_retries < 0:
            raise ConfigurationError(
                f"max_retries must be an int >= 0 (retries of a call), got {max_retries!r}."
            )
        self._secret = config.secret_key
        self.api_url = config.api_url
        self._client = config.http_client
        self._owns_client = config.http_client is None  # ours to close in aclose()
        self._timeout = config.api_timeout
        self._clock = config.clock
        #: The revocation list ``sessions.revoke()`` feeds, or None.
        self.revocation_list: RevocationStore | None = config.revocation_list
        self.max_retries = max_retries
        self._sleep: _Sleep = sleep or anyio.sleep
        #: Sessions: ``get``, ``list``, ``revoke``, ``revoke_all``, ``token``.
        self.sessions = Sessions(self)
        self._tokens = _TokenCache(self.sessions, self._clock)

    def __repr__(self) -> str:
        return f"ClerkBackend(api_url={self.api_url!r})"

    async def aclose(self) -> None:
        """Close the HTTP client this object made for itself (one passed in stays open: it is
        yours). Call it at shutdown, in the app's lifespan; ``async with`` does it too."""
        if self._owns_client and self._client is not None:
            client, self._client = self._client, None  # a later call makes a new one
            await client.aclose()

    async def __aenter__(self) -> ClerkBackend:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()

    async def handshake_payload(self, nonce: str) -> list[str]:
        """The ``Set-Cookie`` directives Clerk stored for a handshake ``nonce`` (single use).

        Not retried: it is on a page load's path, and the handshake falls back to signed out.

        Raises:
            BackendAPIError: the call failed or the answer is not a list of strings.
        """
        params = {"nonce": nonce}
        body = await self._request("GET", "/v1/clients/handshake_payload", params, retry=False)
        directives = body.get("directives") if isinstance(body, dict) else None
        if not isinstance(directives, list) or not all(isinstance(d, str) for d in directives):
            raise BackendAPIError(200, "invalid-response", "the handshake payload is malformed")
        return directives

    def token_auth(self, auth: Auth, *, template: str | None = None) -> SessionTokenAuth:
        """An ``httpx.Auth`` that calls another API as the signed-in user (``fetchWithAuth``).

        Without ``template``, each request carries the request's own session token
        (``auth.token``). With one, a token from that JWT template, minted for
        ``auth.session_id`` on first use and reused until 10 seconds before it expires;
        concurrent requests share one mint.

        Raises:
            SignedOutError: ``auth`` has no session (answered 401 by the middleware).
        """
        return SessionTokenAuth(self, auth, template=template)

    async def _request(
        self,
        method: str,
        path: str,
        params: dict[str, str] | None = None,
        *,
        body: Any = None,
        retry: bool = True,
    ) -> Any:
        """One call, retried when ``retry`` allows; the JSON body of a 2xx answer, else
        :class:`BackendAPIError` (raised outside any ``except``: no chained exception can
        carry the request, and with it the secret key)."""
        client = self._client
        if client is None:  # made once, on first use (as the key cache does)
            client = self._client = httpx.AsyncClient(follow_redirects=False)
        try:
            with anyio.fail_after(self._timeout):  # in all: a transport may never answer
                return await self._retried(client, method, path, params, body, retry)
        except TimeoutError:
            failure = BackendAPIError(0, "timeout", f"no answer within {self._timeout} s")
        raise failure

    async def _retried(
        self,
        client: httpx.AsyncClient,
        method: str,
        path: str,
        params: dict[str, str] | None,
        body: Any,
        retry: bool,
    ) -> Any:
        """The call, then its retries while they are allowed and their waits fit in time."""
        started, waited, attempt = anyio.current_time(), 0.0, 0
        retries = self.max_retries if retry else 0
        while True:
            failure, result = await self._attempt(client, method, path, params, body)
            if failure is None:
                return result
            delay = failure.retry_after
            if delay is None:
                delay = _RETRY_DELAY * 2**attempt
            # Time spent: with a real sleep the clock shows it, with a test's the sum of waits.
            spent = max(anyio.current_time() - started, waited)
            if attempt == retries or not _retryable(failure) or delay >= self._timeout - spent:
                raise failure  # a wait that would not fit in the timeout: answer now
            attempt += 1
            _logger.info(
                "Clerk Backend API %s %s: %s; retry %d in %.2f s",
                method,
                path,
                failure.code,
                attempt,
                delay,
            )
            waited += delay
            await self._sleep(delay)

    async def _attempt(
        self,
        client: httpx.AsyncClient,
        method: str,
        path: str,
        params: dict[str, str] | None,
        body: Any,
    ) -> tuple[BackendAPIError | None, Any]:
        """One request: ``(None, JSON)`` for a 2xx, else ``(error, None)``."""
        headers = {
            "Authorization": f"Bearer {self._secret}",
            "Clerk-API-Version": API_VERSION,
            "Accept": "application/json",
            "Accept-Encoding": "identity",
        }
        request = client.build_request(
            method,
            self.api_url + path,
            params=params,
            headers=headers,
            json=body,
            timeout=self._timeout,
        )
        try:
            # Never a redirect: the secret key goes to the Backend API only. Streamed, so no
            # more than _MAX_BODY bytes are ever read.
            response = await client.send(request, stream=True, follow_redirects=False)
            try:
                content = await _content(response)
            finally:
                await response.aclose()
        except httpx.TimeoutException:
            return BackendAPIError(0, "timeout", f"no answer within {self._timeout} s"), None
        except httpx.HTTPError as error:
            return BackendAPIError(0, "network-error", type(error).__name__), None
        except BackendAPIError as error:
            return error, None
        try:
            parsed = json.loads(content)
        except (ValueError, RecursionError):  # not JSON, or nested past Python's limit
            parsed = None
        if response.is_success:
            return None, parsed
        return _error(response, parsed, self._secret, self._clock), None


def _retryable(error: BackendAPIError) -> bool:
    return error.status in _RETRY_STATUSES or error.code == "network-error"


async def _content(response: httpx.Response) -> bytes:
    """The body as sent, read up to _MAX_BODY bytes; a compressed one is refused unread (we
    asked for ``identity``: nothing is inflated)."""
    encoding = response.headers.get("content-encoding", "identity").strip().lower()
    if encoding not in ("", "identity"):
        raise BackendAPIError(response.status_code, "invalid-response", "answer compressed")
    content = bytearray()
    if response.is_stream_consumed:  # a response built in memory (a mock transport's)
        content += response.content
    else:
        async for chunk in response.aiter_raw():
            content += chunk
            if len(content) > _MAX_BODY:
                break
    if len(content) > _MAX_BODY:
        raise BackendAPIError(response.status_code, "invalid-response", "answer too large")
    return bytes(content)


def _error(
    response: httpx.Response, body: Any, secret: str, clock: Callable[[], float]
) -> BackendAPIError:
    """Clerk's ``{"errors": [{"code", "message", "long_message"}]}`` as a BackendAPIError of
    the class its status calls for; the secret key removed should an answer echo it (a broken
    proxy)."""
    code, message = "unexpected-status", response.reason_phrase or "error"
    errors = body.get("errors") if isinstance(body, dict) else None
    if isinstance(errors, list) and errors and isinstance(errors[0], dict):
        first = errors[0]
        code = str(first.get("code") or code).replace(secret, _REDACTED)[:100]
        message = str(first.get("long_message") or first.get("message") or message)
        message = message.replace(secret, _REDACTED)[:500]
    retry_after = _retry_after(response.headers.get("retry-after"), clock)
    kind = _ERRORS_BY_STATUS.get(response.status_code, BackendAPIError)
    return kind(response.status_code, code, message, retry_after)


def _retry_after(value: str | None, clock: Callable[[], float]) -> float | None:
    """``Retry-After`` (RFC 9110 §10.2.3) in seconds: a number, or an HTTP date less the
    clock; None when absent, malformed, or a date already past."""
    if value is None:
        return None
    value = value.strip()
    try:
        seconds = float(value)
    except ValueError:
        try:
            date = parsedate_to_datetime(value)
        except (TypeError, ValueError):
            return None
        if date.tzinfo is None:  # "-0000": UTC, as HTTP dates are
            date = date.replace(tzinfo=UTC)
        seconds = date.timestamp() - clock()
        return seconds if seconds > 0 else None
    return seconds if math.isfinite(seconds) and seconds >= 0 else None


# -- calling other APIs as the user -------------------------------------------------------------


class SessionTokenAuth(httpx.Auth):
    """An ``httpx.Auth`` sending ``Authorization: Bearer <token>`` for the user of an
    :class:`~clerk_asgi.Auth`; made by :meth:`ClerkBackend.token_auth`.

    Without a template, the token is the request's own session token, so this also works with
    a sync ``httpx.Client``. With one, tokens are minted through the async Backend API client:
    use an ``httpx.AsyncClient``.
    """

    def __init__(self, backend: ClerkBackend, auth: Auth, *, template: str | None = None) -> None:
        # A template token needs only the session; the request's own token needs the token.
        if not auth.is_signed_in or not auth.session_id or (template is None and not auth.token):
            raise SignedOutError(SESSION_TOKEN_MISSING, message_for(SESSION_TOKEN_MISSING))
        if template is not None:
            _segment(template, "template")
        self._tokens = backend._tokens
        self._session_id = auth.session_id
        self._token = auth.token
        self.template = template

    def __repr__(self) -> str:
        return f"SessionTokenAuth(session_id={self._session_id!r}, template={self.template!r})"

    def sync_auth_flow(self, request: httpx.Request) -> Generator[httpx.Request, Any, None]:
        if self.template is not None:
            raise RuntimeError(
                "SessionTokenAuth mints template tokens through the async Backend API client: "
                "use it with httpx.AsyncClient."
            )
        request.headers["Authorization"] = f"Bearer {self._token}"
        yield request

    async def async_auth_flow(
        self, request: httpx.Request
    ) -> AsyncGenerator[httpx.Request, httpx.Response]:
        token = self._token
        if self.template is not None:
            token = await self._tokens.get(self._session_id, self.template)
        request.headers["Authorization"] = f"Bearer {token}"
        yield request


class _Flight:
    """One mint in progress, awaited by every request that needs the same token."""

    __slots__ = ("done", "error")

    def __init__(self) -> None:
        self.done = anyio.Event()
        self.error: BaseException | None = None


class _TokenCache:
    """Template tokens by (session id, template), until shortly before they expire; one mint
    at a time per key (single flight), the least recently used dropped past the size."""

    def __init__(self, sessions: Sessions, clock: Callable[[], float]) -> None:
        self._sessions = sessions
        self._clock = clock
        self._tokens: OrderedDict[tuple[str, str], tuple[str, float]] = OrderedDict()
        self._flights: dict[tuple[str, str], _Flight] = {}

    async def get(self, session_id: str, template: str) -> str:
        key = (session_id, template)
        while True:
            cached = self._tokens.get(key)
            if cached is not None and cached[1] - _TOKEN_MARGIN > self._clock():
                self._tokens.move_to_end(key)
                return cached[0]
            flight = self._flights.get(key)
            if flight is None:
                return await self._mint(key)
            await flight.done.wait()
            if flight.error is not None:
                raise flight.error
            # The mint ended (or was cancelled): look again.

    async def _mint(self, key: tuple[str, str]) -> str:
        flight = self._flights[key] = _Flight()
        try:
            token = await self._sessions.token(key[0], template=key[1])
        except Exception as error:
            flight.error = error
            raise
        finally:
            del self._flights[key]
            flight.done.set()
        expires = _unverified_exp(token)
        if expires is not None:  # a token without exp is used once, never cached
            self._tokens[key] = (token, expires)
            self._tokens.move_to_end(key)
            while len(self._tokens) > _TOKEN_CACHE_SIZE:
                self._tokens.popitem(last=False)
        return token


def _unverified_exp(token: str) -> float | None:
    """The ``exp`` of a token our own Backend API call just returned (not verified: it is
    only read to know when to mint the next one)."""
    try:
        claims = jwt.decode(token, options={"verify_signature": False})
    except jwt.PyJWTError:
        return None
    exp = claims.get("exp")
    if isinstance(exp, bool) or not isinstance(exp, int | float):
        return None
    return float(exp)
