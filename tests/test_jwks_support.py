"""Shared doubles and helpers of the key tests (``test_keys_*.py``, ``test_jwks_*.py``).

Every JWKS request goes through an injected httpx transport that records it, and every
instant through the FakeClock, so the number of JWKS requests is asserted exactly. This
module holds no tests.
"""

from __future__ import annotations

import base64
import json
import secrets
from collections.abc import Callable
from typing import Any

import anyio
import anyio.lowlevel
import httpx
import pytest
from cryptography.hazmat.primitives.asymmetric.rsa import RSAPublicKey
from fastapi import Depends, FastAPI
from starlette.types import ASGIApp

from clerk_asgi import Auth, ClerkMiddleware, Rule, current_auth
from clerk_asgi._keys import KeysUnavailableError, RemoteKeySet, UnknownKeyError
from clerk_asgi._verify import TokenVerifier
from clerk_asgi.testing import FakeClock, KeyPair, mint_session_token

ISS = "https://clerk.example.com"
APP = "https://app.example.com"
JWKS_URL = "https://clerk.example.com/.well-known/jwks.json"
KID_MISMATCH = "jwk-kid-mismatch"
UNAVAILABLE = "jwk-remote-failed-to-load"

#: How long a held JWKS request may wait before the test fails instead of hanging.
SAFETY_NET_SECONDS = 10

Responder = Callable[[httpx.Request], httpx.Response]
JWK = dict[str, Any]


class ScriptedJWKS:
    """A JWKS endpoint double: records every request, answers with ``respond``.

    Each answer passes one checkpoint (like a network round trip), and waits for ``gate``
    when one is set, so tests decide exactly when an in-flight fetch completes.
    """

    def __init__(self, respond: Responder) -> None:
        self.respond = respond
        self.requests: list[httpx.Request] = []
        self.started = anyio.Event()
        self.gate: anyio.Event | None = None

    async def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        self.started.set()
        await anyio.lowlevel.checkpoint()
        if self.gate is not None:
            await hold(self.gate)
        return self.respond(request)

    def client(self, **options: Any) -> httpx.AsyncClient:
        return httpx.AsyncClient(transport=httpx.MockTransport(self), **options)


async def hold(gate: anyio.Event) -> None:
    """Wait for ``gate``; a safety net fails the test instead of hanging it forever when the
    code under test lacks a timeout (the fetch runs in its own task: no outer timeout helps)."""
    with anyio.move_on_after(SAFETY_NET_SECONDS):
        await gate.wait()
        return
    pytest.fail(f"a JWKS request was held for {SAFETY_NET_SECONDS} s: no fetch timeout?")


def serve(*keys: KeyPair | JWK) -> Responder:
    """Answer 200 with a JWKS of ``keys`` (KeyPairs or raw JWK dicts)."""
    body = {"keys": [k.jwk if isinstance(k, KeyPair) else k for k in keys]}
    return lambda request: httpx.Response(200, json=body)


def status(code: int, **headers: str) -> Responder:
    return lambda request: httpx.Response(code, headers=headers, json={"errors": []})


def raw(body: str | bytes, content_type: str = "application/json") -> Responder:
    return lambda request: httpx.Response(200, content=body, headers={"content-type": content_type})


def raising(make: Callable[[httpx.Request], Exception]) -> Responder:
    def respond(request: httpx.Request) -> httpx.Response:
        raise make(request)

    return respond


def redirect(code: int) -> Responder:
    """Answer ``code`` with a Location on another host (which must never be fetched)."""

    def respond(request: httpx.Request) -> httpx.Response:
        if request.url.host == "clerk.example.com":
            return httpx.Response(code, headers={"location": "https://evil.example/jwks.json"})
        return httpx.Response(200, json={"keys": []})  # never reached

    return respond


#: Every way a JWKS fetch can fail: each must be a failed fetch, never an exception.
FAILURES = [
    pytest.param(status(500), id="500"),
    pytest.param(status(404), id="404"),
    pytest.param(status(401), id="401-bad-secret"),
    pytest.param(status(503, **{"retry-after": "5"}), id="503"),
    pytest.param(raw("<!doctype html><title>Login</title>", "text/html"), id="200-text-html"),
    pytest.param(raw("{"), id="200-truncated-json"),
    pytest.param(raw("null"), id="200-null"),
    pytest.param(raw("{}"), id="200-empty-object"),
    pytest.param(raw('{"keys":null}'), id="200-keys-null"),
    pytest.param(raw('{"keys":[null]}'), id="200-keys-[null]"),
    pytest.param(raw('{"keys":[]}'), id="200-zero-keys"),
    pytest.param(raw('{"keys":{}}'), id="200-keys-object"),
    pytest.param(raw(b"\xff\xfe\x00"), id="200-not-utf8"),
    pytest.param(raw("[" * 100_000), id="200-deep-nesting"),
    pytest.param(
        raising(lambda r: httpx.ConnectError("[Errno 111] Connection refused", request=r)),
        id="connection-refused",
    ),
    pytest.param(
        raising(lambda r: httpx.ConnectError("[Errno -2] Name or service not known", request=r)),
        id="dns-failure",
    ),
    pytest.param(
        raising(lambda r: httpx.ConnectError("[SSL: CERTIFICATE_VERIFY_FAILED]", request=r)),
        id="tls-error",
    ),
    pytest.param(raising(lambda r: httpx.ReadTimeout("timed out", request=r)), id="read-timeout"),
    pytest.param(raising(lambda r: RuntimeError("transport bug")), id="arbitrary-exception"),
    pytest.param(redirect(301), id="301-to-other-host"),
    pytest.param(redirect(302), id="302-to-other-host"),
]


def remote(script: ScriptedJWKS, clock: FakeClock, **options: Any) -> RemoteKeySet:
    return RemoteKeySet(JWKS_URL, http_client=script.client(), clock=clock, **options)


def verifier_for(keys: RemoteKeySet, clock: FakeClock, **options: Any) -> TokenVerifier:
    return TokenVerifier(
        keys, clock=clock, issuer=ISS, authorized_parties=frozenset({APP}), **options
    )


def same_key(found: RSAPublicKey, pair: KeyPair) -> bool:
    return found.public_numbers() == pair.private_key.public_key().public_numbers()


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def b64_json(value: object) -> str:
    return b64(json.dumps(value, separators=(",", ":")).encode())


def b64_uint(value: int) -> str:
    return b64(value.to_bytes((value.bit_length() + 7) // 8, "big"))


def random_modulus(bits: int) -> int:
    """Random odd ``bits``-bit integer: the shape of an RSA modulus, without generating a key."""
    return secrets.randbits(bits) | (1 << (bits - 1)) | 1


def forged(
    kid: str,
    now: float,
    *,
    iss: str = ISS,
    exp: float | None = None,
    alg: str = "RS256",
    signature_bytes: int = 256,
) -> str:
    """A Clerk-shaped token naming ``kid`` with a random (never valid) signature."""
    header = {"alg": alg, "kid": kid, "typ": "JWT"}
    payload = {
        "iss": iss,
        "sub": "user_2abc",
        "sid": "sess_1",
        "azp": APP,
        "iat": int(now),
        "nbf": int(now) - 1,
        "exp": int(now) + 60 if exp is None else exp,
    }
    return f"{b64_json(header)}.{b64_json(payload)}.{b64(secrets.token_bytes(signature_bytes))}"


def valid(pair: KeyPair, clock: FakeClock, **claims: Any) -> str:
    return mint_session_token(pair, issued_at=clock.now, **claims)


async def outcome(verifier: TokenVerifier, token: str) -> str:
    """The user id of a signed-in Auth, else its reason."""
    auth = await verifier.authenticate(token)
    return auth.user_id or auth.reason or "?"


async def get_into(keys: RemoteKeySet, kid: str, results: list[RSAPublicKey | Exception]) -> None:
    try:
        results.append(await keys.get(kid))
    except (KeysUnavailableError, UnknownKeyError) as error:
        results.append(error)


def hosts(script: ScriptedJWKS) -> list[str]:
    return [request.url.host for request in script.requests]


# --- through the middleware ------------------------------------------------------------------


def protected_app(clock: FakeClock, **options: Any) -> ClerkMiddleware:
    """A FastAPI app wrapped in ClerkMiddleware; ``/public/...`` public, ``/api/...`` API,
    everything else protected (default). Every route echoes the Auth it saw."""
    app = FastAPI()

    @app.get("/api/me")
    @app.get("/public/whoami")
    @app.get("/dashboard")
    async def whoami(auth: Auth = Depends(current_auth)) -> dict[str, str | None]:
        return {"user_id": auth.user_id, "reason": auth.reason}

    settings: dict[str, Any] = {
        "jwks_url": JWKS_URL,
        "issuer": ISS,
        "authorized_parties": [APP],
        "sign_in_url": "/sign-in",
        "clock": clock,
    }
    settings.update(options)
    return ClerkMiddleware(
        app, rules=[Rule.public("/public(.*)"), Rule.api("/api/(.*)")], **settings
    )


def app_client(app: ASGIApp) -> httpx.AsyncClient:
    return httpx.AsyncClient(transport=httpx.ASGITransport(app), base_url=APP)


UNAVAILABLE_BODY = {
    "error": "service_unavailable",
    "reason": "jwk-remote-failed-to-load",
    "message": "Clerk's signing keys are unavailable; retry shortly.",
}

MESSAGES = {
    "jwk-kid-mismatch": "No signing key matches this session token.",
    "token-invalid-signature": "The session token's signature is invalid.",
    "token-invalid-issuer": "The session token was issued by another Clerk instance (iss).",
}


def assert_503(response: httpx.Response, retry_after: str) -> None:
    """The middleware's 503 for keys that cannot be loaded: exact headers and body."""
    body = json.dumps(UNAVAILABLE_BODY, separators=(",", ":"))
    assert response.status_code == 503
    assert dict(response.headers) == {
        "cache-control": "no-store",
        "x-clerk-auth-status": "signed-out",
        "x-clerk-auth-reason": "jwk-remote-failed-to-load",
        "retry-after": retry_after,
        "content-type": "application/json",
        "content-length": str(len(body)),
    }
    assert response.json() == UNAVAILABLE_BODY


def assert_401(response: httpx.Response, reason: str) -> None:
    """The middleware's 401 for a presented token refused with ``reason``: exact headers, body."""
    document = {"error": "unauthorized", "reason": reason, "message": MESSAGES[reason]}
    body = json.dumps(document, separators=(",", ":"))
    assert response.status_code == 401
    assert dict(response.headers) == {
        "cache-control": "no-store",
        "x-clerk-auth-status": "signed-out",
        "x-clerk-auth-reason": reason,
        "www-authenticate": (
            f'Bearer realm="clerk", error="invalid_token", error_description="{reason}"'
        ),
        "content-type": "application/json",
        "content-length": str(len(body)),
    }
    assert response.json() == document


def assert_200(response: httpx.Response, user_id: str | None, reason: str | None) -> None:
    """The app ran and echoed the Auth it saw: exactly ``user_id`` and ``reason``."""
    assert response.status_code == 200
    assert response.json() == {"user_id": user_id, "reason": reason}
