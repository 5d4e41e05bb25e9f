"""``ClerkBackend``: a small async client for Clerk's Backend API.

It covers what the middleware needs (the handshake payload) with explicit timeouts, Clerk's
API version header, and one error type that never carries the secret key::

    from clerk_asgi.backend import ClerkBackend

    clerk = ClerkBackend()  # secret_key= / CLERK_SECRET_KEY, api_url= / CLERK_API_URL
    directives = await clerk.handshake_payload(nonce)

Errors::

    ClerkError
    └── BackendAPIError      a Backend API call failed: .status (0 when no answer), .code
                             (Clerk's error code), .message, .retry_after

The official ``clerk-backend-api`` SDK stays usable side by side for everything else.
"""

from __future__ import annotations

import json
from contextlib import suppress
from typing import Any, Final

import anyio
import httpx

from ._config import ClerkConfig, env
from .exceptions import ClerkError, ConfigurationError

__all__ = ["API_VERSION", "BackendAPIError", "ClerkBackend"]


#: The Backend API version this client speaks (``Clerk-API-Version``), as ``@clerk/backend``.
API_VERSION: Final = "2026-05-12"
#: Bodies larger than this are refused (a handshake payload is a few cookies).
_MAX_BODY: Final = 256 * 1024
_NEEDS_KEY: Final = "The Backend API needs a secret key: set CLERK_SECRET_KEY or pass secret_key=."


class BackendAPIError(ClerkError):
    """A Backend API call failed.

    Attributes:
        status: the HTTP status, or 0 when Clerk did not answer (timeout, connection error).
        code: Clerk's error code (``errors[0].code``), or a code of ours (``timeout``,
            ``network-error``, ``invalid-response``).
        message: a human-readable explanation (never the secret key).
        retry_after: seconds from ``Retry-After``, when Clerk sent one.
    """

    def __init__(
        self, status: int, code: str, message: str, retry_after: float | None = None
    ) -> None:
        super().__init__(f"Clerk Backend API: {message} (status {status}, code {code})")
        self.status = status
        self.code = code
        self.message = message
        self.retry_after = retry_after


class ClerkBackend:
    """An async client for Clerk's Backend API, built from keywords or a :class:`ClerkConfig`.

    Args:
        config: a :class:`~clerk_asgi.ClerkConfig` to take the secret key, API URL, HTTP client
            and timeout from (keywords then must not be given).
        secret_key: ``sk_test_...``/``sk_live_...`` (``CLERK_SECRET_KEY``).
        api_url: the Backend API base without ``/v1`` (``CLERK_API_URL``, default
            ``https://api.clerk.com``).
        http_client: the ``httpx.AsyncClient`` to use (default: one of our own).
        timeout: seconds a call may take in all (default 5).

    Raises:
        ConfigurationError: no usable secret key.
    """

    def __init__(
        self,
        config: ClerkConfig | None = None,
        *,
        secret_key: str | None = None,
        api_url: str | None = None,
        http_client: httpx.AsyncClient | None = None,
        timeout: float | None = None,
    ) -> None:
        if config is None:
            if env(secret_key, "secret_key") is None:  # say so, not "no key material" at all
                raise ConfigurationError(_NEEDS_KEY)
            config = ClerkConfig(
                secret_key=secret_key,
                api_url=api_url,
                http_client=http_client,
                api_timeout=5.0 if timeout is None else timeout,
            )
        elif any(v is not None for v in (secret_key, api_url, http_client, timeout)):
            raise ConfigurationError("Pass either config= or keywords to ClerkBackend, not both.")
        if config.secret_key is None:
            raise ConfigurationError(_NEEDS_KEY)
        self._secret = config.secret_key
        self.api_url = config.api_url
        self._client = config.http_client
        self._timeout = config.api_timeout

    def __repr__(self) -> str:
        return f"ClerkBackend(api_url={self.api_url!r})"

    async def handshake_payload(self, nonce: str) -> list[str]:
        """The ``Set-Cookie`` directives Clerk stored for a handshake ``nonce`` (single use).

        Raises:
            BackendAPIError: the call failed or the answer is not a list of strings.
        """
        body = await self._request("GET", "/v1/clients/handshake_payload", {"nonce": nonce})
        directives = body.get("directives") if isinstance(body, dict) else None
        if not isinstance(directives, list) or not all(isinstance(d, str) for d in directives):
            raise BackendAPIError(200, "invalid-response", "the handshake payload is malformed")
        return directives

    async def _request(self, method: str, path: str, params: dict[str, str] | None = None) -> Any:
        """One call; the JSON body of a 2xx answer, else :class:`BackendAPIError`."""
        url = self.api_url + path
        headers = {
            "Authorization": f"Bearer {self._secret}",
            "Clerk-API-Version": API_VERSION,
            "Accept": "application/json",
            "Accept-Encoding": "identity",
        }
        client = self._client
        if client is None:  # made once, on first use (as the key cache does)
            client = self._client = httpx.AsyncClient(follow_redirects=False)
        try:
            with anyio.fail_after(self._timeout):  # in all: a transport may never answer
                request = client.build_request(
                    method, url, params=params, headers=headers, timeout=self._timeout
                )
                # Never a redirect: the secret key goes to the Backend API only. Streamed, so
                # no more than _MAX_BODY bytes are ever read.
                response = await client.send(request, stream=True, follow_redirects=False)
                try:
                    content = await _content(response)
                finally:
                    await response.aclose()
        except (httpx.TimeoutException, TimeoutError):
            raise BackendAPIError(0, "timeout", f"no answer within {self._timeout} s") from None
        except httpx.HTTPError as error:
            raise BackendAPIError(0, "network-error", type(error).__name__) from None
        try:
            body = json.loads(content)
        except (ValueError, RecursionError):  # not JSON, or nested past Python's limit
            body = None
        if response.is_success:
            return body
        raise _error(response, body, self._secret)


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


def _error(response: httpx.Response, body: Any, secret: str) -> BackendAPIError:
    """Clerk's ``{"errors": [{"code", "message", "long_message"}]}`` as a BackendAPIError; the
    secret key removed should an answer echo it (a broken proxy)."""
    code, message = "unexpected-status", response.reason_phrase or "error"
    errors = body.get("errors") if isinstance(body, dict) else None
    if isinstance(errors, list) and errors and isinstance(errors[0], dict):
        first = errors[0]
        code = str(first.get("code") or code).replace(secret, "[secret key]")[:100]
        message = str(first.get("long_message") or first.get("message") or message)
        message = message.replace(secret, "[secret key]")[:500]
    retry_after: float | None = None
    with suppress(KeyError, ValueError):
        retry_after = float(response.headers["retry-after"])
    return BackendAPIError(response.status_code, code, message, retry_after)
