"""A static PEM key (``jwt_key``): one key for every token, and no network at all."""

from __future__ import annotations

import pytest

from clerk_asgi._keys import StaticKeySet
from clerk_asgi.testing import FakeClock, KeyPair

from .helpers import bearer
from .test_jwks_support import (
    ScriptedJWKS,
    app_client,
    assert_200,
    assert_401,
    protected_app,
    status,
    valid,
)

pytestmark = pytest.mark.anyio


async def test_static_key_set_answers_every_kid_without_io(key: KeyPair) -> None:
    """StaticKeySet returns its one PEM key for any kid, from peek and get alike."""
    public = key.private_key.public_key()
    keys = StaticKeySet(public)
    assert keys.peek("k1") is public
    assert keys.peek("anything") is public
    assert await keys.get("other", may_refetch=False) is public


async def test_jwt_key_source_makes_no_http_request_at_all(
    key: KeyPair, second_key: KeyPair, clock: FakeClock
) -> None:
    """jwt_key wins over jwks_url and secret_key: the injected HTTP client is never called."""
    script = ScriptedJWKS(status(500))
    app = protected_app(
        clock,
        jwt_key=key.public_pem,
        secret_key="sk_test_abc123",
        http_client=script.client(),
    )
    async with app_client(app) as client:
        ok = await client.get("/api/me", headers=bearer(valid(key, clock)))
        foreign = await client.get("/api/me", headers=bearer(valid(second_key, clock)))
        odd_kid = valid(key, clock, headers={"kid": "ins_other"})
        renamed = await client.get("/api/me", headers=bearer(odd_kid))
    assert_200(ok, "user_test", None)
    assert_401(foreign, "token-invalid-signature")
    assert_200(renamed, "user_test", None)  # like Clerk's jwtKey, the kid is not compared
    assert len(script.requests) == 0
