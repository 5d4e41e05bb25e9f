"""Shared by the FakeClerk tests: a browser on the fake Frontend API, BAPI headers, decoding."""

from __future__ import annotations

import base64
import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import httpx
import jwt

from clerk_asgi.testing import FakeClerk

#: The app's origin, the ``origin=`` of most fakes.
ORIGIN = "https://app.example.test"
#: Where the fake's Frontend API is reached (its default ``frontend_api``).
FAPI = "https://clerk.example.test"
#: A ``redirect_url`` on the app, with a query and a fragment to keep.
REDIRECT = "https://app.example.test/dashboard?tab=1#top"
TEN_YEARS = 315_360_000
#: Two devices' User-Agents (what the fake records as a session's latest activity).
CHROME_MAC = (
    "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/128.0.6613.84 Safari/537.36"
)
SAFARI_IPHONE = (
    "Mozilla/5.0 (iPhone; CPU iPhone OS 17_5 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like "
    "Gecko) Version/17.5 Mobile/15E148 Safari/604.1"
)


@asynccontextmanager
async def browser(
    fake: Any, base_url: str = FAPI, **options: Any
) -> AsyncIterator[httpx.AsyncClient]:
    """An httpx client on the fake (its cookie jar plays the browser's)."""
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(fake), base_url=base_url, **options
    ) as client:
        yield client


def bapi(fake: FakeClerk, **extra: str) -> dict[str, str]:
    """Headers of a Backend API request with the fake's secret key."""
    return {"Authorization": f"Bearer {fake.secret_key}", **extra}


def b64url_decode(segment: str) -> bytes:
    return base64.urlsafe_b64decode(segment + "=" * (-len(segment) % 4))


def decode(token: str) -> tuple[dict[str, Any], dict[str, Any]]:
    """The (unverified) JOSE header and payload of a compact JWS."""
    header, payload, _ = token.split(".")
    return json.loads(b64url_decode(header)), json.loads(b64url_decode(payload))


def verified(fake: FakeClerk, token: str) -> dict[str, Any]:
    """The payload of ``token`` once PyJWT verified its signature with the fake's public key."""
    claims: dict[str, Any] = jwt.decode(
        token,
        fake.key.public_pem,
        algorithms=["RS256"],
        options={"verify_exp": False, "verify_nbf": False, "verify_iat": False},
    )
    return claims


def directive_value(directive: str) -> str:
    """The cookie value of a ``Set-Cookie`` directive."""
    return directive.split(";")[0].split("=", 1)[1]


async def sign_in(client: httpx.AsyncClient, identifier: str, **params: str) -> httpx.Response:
    """Sign in through the fake Frontend API (form-encoded, as clerk-js sends it)."""
    response = await client.post(
        "/v1/client/sign_ins", data={"identifier": identifier}, params=params
    )
    assert response.status_code == 200, response.text
    return response


async def payload(fake: FakeClerk, nonce: str) -> httpx.Response:
    """``GET /v1/clients/handshake_payload`` with the secret key."""
    async with browser(fake) as client:
        return await client.get(
            "/v1/clients/handshake_payload", params={"nonce": nonce}, headers=bapi(fake)
        )
