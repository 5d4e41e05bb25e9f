"""Shared by the ``clerk_asgi.backend`` tests: a ClerkBackend on a MockTransport script or on
FakeClerk, Clerk's session JSON, and a sleep that records its delays instead of waiting."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

import httpx

from clerk_asgi.backend import ClerkBackend
from clerk_asgi.testing import FakeClerk

SECRET = "sk_test_backendsecret0123456789"
API = "https://api.clerk.com"
MS = 1_716_883_200_000

#: A Session as the Backend API sends it (Clerk's spec shape, with an actor and an activity).
SESSION: dict[str, Any] = {
    "object": "session",
    "id": "sess_2g7np7Hrk0SN6kj5EDMLDaKNL0S",
    "user_id": "user_2g7np7Hrk0SN6kj5EDMLDaKNL0S",
    "client_id": "client_2g7np7Hrk0SN6kj5EDMLDaKNL0S",
    "status": "active",
    "last_active_at": MS,
    "expire_at": MS + 86_400_000,
    "abandon_at": MS + 30 * 86_400_000,
    "created_at": MS,
    "updated_at": MS + 1_500,
    "last_active_organization_id": "org_2g7np7Hrk0SN6kj5EDMLDaKNL0S",
    "latest_activity": {
        "object": "session_activity",
        "id": "activity_2g7np7Hrk0SN6kj5EDMLDaKNL0S",
        "device_type": "desktop",
        "is_mobile": False,
        "browser_name": "Chrome",
        "browser_version": "128.0.0.0",
        "ip_address": "192.168.1.100",
        "city": "San Francisco",
        "country": "US",
    },
    "actor": {"sub": "user_impersonator", "iss": "https://dashboard.clerk.com"},
    "tasks": None,
}


def session_json(session_id: str, **fields: Any) -> dict[str, Any]:
    """:data:`SESSION` with another id and any fields replaced."""
    return {**SESSION, "id": session_id, **fields}


def clerk_error(code: str, long_message: str) -> dict[str, Any]:
    """Clerk's error body."""
    return {"errors": [{"message": code, "long_message": long_message, "code": code}]}


class Script:
    """A MockTransport handler answering from a list, in order, and recording every request.

    An answer is an ``httpx.Response``, an exception to raise, or a callable of the request.
    """

    def __init__(self, *answers: Any) -> None:
        self.answers = list(answers)
        self.requests: list[httpx.Request] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        answer = self.answers.pop(0)
        if isinstance(answer, BaseException):
            raise answer
        if callable(answer):
            answer = answer(request)
        assert isinstance(answer, httpx.Response)
        return answer

    @property
    def seen(self) -> list[tuple[str, str]]:
        """``(method, raw path and query)`` of each request."""
        return [(r.method, r.url.raw_path.decode()) for r in self.requests]


def backend(handler: Callable[[httpx.Request], Any], **options: Any) -> ClerkBackend:
    """A ClerkBackend whose HTTP goes to ``handler``."""
    client = httpx.AsyncClient(transport=httpx.MockTransport(handler))
    return ClerkBackend(secret_key=SECRET, http_client=client, **options)


def on_fake(fake: FakeClerk, **options: Any) -> ClerkBackend:
    """A ClerkBackend talking to FakeClerk's Backend API in process."""
    client = httpx.AsyncClient(transport=httpx.ASGITransport(fake))
    return ClerkBackend(
        secret_key=fake.secret_key, api_url=fake.api_url, http_client=client, **options
    )


class Sleeps:
    """A ``sleep=`` that waits for nothing and records each delay."""

    def __init__(self) -> None:
        self.delays: list[float] = []

    async def __call__(self, seconds: float) -> None:
        self.delays.append(seconds)


def ok(body: Any, **options: Any) -> httpx.Response:
    return httpx.Response(200, json=body, **options)


def answer(status: int, body: Any = None, **options: Any) -> httpx.Response:
    if isinstance(body, bytes):
        return httpx.Response(status, content=body, **options)
    return httpx.Response(status, json=body, **options)


def ids(sessions: Iterable[Any]) -> list[str]:
    return [session.id for session in sessions]
