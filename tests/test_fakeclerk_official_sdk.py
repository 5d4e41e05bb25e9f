"""FakeClerk's Backend API as Clerk's official Python SDK (``clerk-backend-api``) sees it: the
SDK's own strict models parse FakeClerk's sessions, listings, tokens and errors. The SDK is a
test-only oracle here, reaching FakeClerk through ``httpx.ASGITransport``."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest
from clerk_backend_api import Clerk, models

from clerk_asgi.testing import FakeClerk, FakeClock, KeyPair

from ._fakeclerk_helpers import verified

pytestmark = pytest.mark.anyio

MS = 1000


@pytest.fixture
def fake(key: KeyPair, clock: FakeClock) -> FakeClerk:
    fake = FakeClerk(key=key, clock=clock, origin="https://app.example.test")
    fake.add_template(
        "supabase", {"role": "authenticated", "email": "{{user.primary_email_address}}"}
    )
    return fake


@pytest.fixture
async def sdk(fake: FakeClerk) -> AsyncIterator[Clerk]:
    """The official SDK, its async HTTP going to FakeClerk in process."""
    async with httpx.AsyncClient(transport=httpx.ASGITransport(fake)) as client:
        yield Clerk(
            bearer_auth=fake.secret_key, server_url=fake.api_url + "/v1", async_client=client
        )


async def test_get_session(fake: FakeClerk, sdk: Clerk, clock: FakeClock) -> None:
    """sessions.get_async parses FakeClerk's Session into the SDK's model."""
    user_id = fake.add_user(email="ada@example.test")
    session_id = fake.sign_in(user_id).session_id
    session = await sdk.sessions.get_async(session_id=session_id)
    assert isinstance(session, models.Session)
    assert (session.id, session.user_id, session.status) == (
        session_id,
        user_id,
        models.Status.ACTIVE,
    )
    assert session.object == models.SessionObject.SESSION
    assert session.created_at == int(clock.now * MS)
    assert session.expire_at == int((clock.now + 7 * 86_400) * MS)
    assert session.client_id == fake.sessions[session_id].client_id


async def test_list_sessions(fake: FakeClerk, sdk: Clerk, clock: FakeClock) -> None:
    """sessions.list_async (the bare array, newest first, status filter, limit/offset)."""
    user_id = fake.add_user()
    first = fake.sign_in(user_id).session_id
    clock.advance(1)
    second = fake.sign_in(user_id).session_id
    fake.revoke(first)
    everything = await sdk.sessions.list_async(user_id=user_id)
    assert [s.id for s in everything] == [second, first]
    active = await sdk.sessions.list_async(user_id=user_id, status=models.QueryParamStatus.ACTIVE)
    assert [s.id for s in active] == [second]
    page = await sdk.sessions.list_async(user_id=user_id, limit=1, offset=1)
    assert [(s.id, s.status) for s in page] == [(first, models.Status.REVOKED)]


async def test_the_sdk_cannot_read_a_paginated_listing(fake: FakeClerk, sdk: Clerk) -> None:
    """The SDK's known limitation, FakeClerk answering as Clerk does: ``paginated=True`` gets
    ``{"data", "total_count"}``, which the SDK's model refuses (leave paginated unset)."""
    user_id = fake.add_user()
    fake.sign_in(user_id)
    with pytest.raises(models.ResponseValidationError):
        await sdk.sessions.list_async(user_id=user_id, paginated=True)


async def test_revoke_session(fake: FakeClerk, sdk: Clerk) -> None:
    """sessions.revoke_async: the revoked Session; revoking again answers it unchanged."""
    session_id = fake.sign_in(fake.add_user()).session_id
    revoked = await sdk.sessions.revoke_async(session_id=session_id)
    assert (revoked.id, revoked.status) == (session_id, models.Status.REVOKED)
    again = await sdk.sessions.revoke_async(session_id=session_id)
    assert again == revoked
    assert fake.sessions[session_id].status == "revoked"


async def test_create_token(fake: FakeClerk, sdk: Clerk, clock: FakeClock) -> None:
    """sessions.create_token_async (the SDK sends ``{}`` without a lifetime): a session token."""
    user_id = fake.add_user()
    session_id = fake.sign_in(user_id).session_id
    default = await sdk.sessions.create_token_async(session_id=session_id)
    assert default.object == models.CreateSessionTokenObject.TOKEN
    assert default.jwt is not None
    payload = verified(fake, default.jwt)
    assert (payload["sid"], payload["sub"], payload["exp"]) == (
        session_id,
        user_id,
        int(clock.now) + 60,
    )
    longer = await sdk.sessions.create_token_async(session_id=session_id, expires_in_seconds=120)
    assert longer.jwt is not None
    assert verified(fake, longer.jwt)["exp"] == int(clock.now) + 120


async def test_create_token_from_template(fake: FakeClerk, sdk: Clerk, clock: FakeClock) -> None:
    """sessions.create_token_from_template_async: the template's claims."""
    user_id = fake.add_user(email="ada@example.test")
    session_id = fake.sign_in(user_id).session_id
    answer = await sdk.sessions.create_token_from_template_async(
        session_id=session_id, template_name="supabase", expires_in_seconds=300
    )
    assert answer.jwt is not None
    payload = verified(fake, answer.jwt)
    assert (payload["sub"], payload["role"], payload["email"], payload["exp"]) == (
        user_id,
        "authenticated",
        "ada@example.test",
        int(clock.now) + 300,
    )


async def test_not_found_errors(fake: FakeClerk, sdk: Clerk) -> None:
    """Unknown session or template: the SDK's ClerkErrors with Clerk's resource_not_found."""
    session_id = fake.sign_in(fake.add_user()).session_id
    calls = [
        sdk.sessions.get_async(session_id="sess_nope"),
        sdk.sessions.revoke_async(session_id="sess_nope"),
        sdk.sessions.create_token_async(session_id="sess_nope"),
        sdk.sessions.create_token_from_template_async(session_id=session_id, template_name="nope"),
    ]
    for call in calls:
        with pytest.raises(models.ClerkErrors) as raised:
            await call
        error = raised.value
        assert error.raw_response.status_code == 404
        assert [e.code for e in error.data.errors] == ["resource_not_found"]


async def test_a_wrong_secret_key(fake: FakeClerk) -> None:
    """Another secret key: the SDK's ClerkErrors, 401 authentication_invalid."""
    async with httpx.AsyncClient(transport=httpx.ASGITransport(fake)) as client:
        sdk = Clerk(
            bearer_auth="sk_test_wrong", server_url=fake.api_url + "/v1", async_client=client
        )
        with pytest.raises(models.ClerkErrors) as raised:
            await sdk.sessions.get_async(session_id="sess_1")
    assert raised.value.raw_response.status_code == 401
    assert [e.code for e in raised.value.data.errors] == ["authentication_invalid"]
