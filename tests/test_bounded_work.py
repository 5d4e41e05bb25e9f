"""Hostile input costs bounded work: size caps before parsing, no refetch storms, quiet logs.

Oversized tokens, cookies and header lists are refused before any parsing or key lookup
("F=0": not a single JWKS fetch); an unknown ``kid`` earns one refetch per cooldown
(docs/security.md "The key cache"); a storm of bad tokens logs neither a token nor a
per-request warning.
"""

from __future__ import annotations

import base64
import logging

import httpx
import pytest

from clerk_asgi.testing import FakeClock, JWKSTransport, KeyPair, MockClerk, mint_session_token

from ._middleware_helpers import (
    JWKS_URL,
    assert_401,
    assert_ran,
    client,
    library_records,
    make_app,
    session,
)
from .helpers import bearer

pytestmark = pytest.mark.anyio


# -- Hostile sizes are refused up front -----------------------------------------------------------


def _nested_header_token() -> str:
    def b64(data: bytes) -> str:
        return base64.urlsafe_b64encode(data).rstrip(b"=").decode()

    header = b'{"alg":"RS256","kid":"k1","x":' + b"[" * 3000 + b"]" * 3000 + b"}"
    return b64(header) + "." + b64(b'{"sub":"user_1"}') + "." + b64(b"sig")


@pytest.mark.parametrize(
    ("headers", "reason", "presented"),
    [
        pytest.param(
            [("authorization", "Bearer " + "A" * 8193)], "token-invalid", True, id="8KiB-token"
        ),
        pytest.param(
            [("authorization", "Bearer " + "A.B." * 2100)], "token-invalid", True, id="8KiB-dots"
        ),
        pytest.param(
            [("authorization", f"Bearer {_nested_header_token()}")],
            "token-invalid",
            True,
            id="nested-header",
        ),
        pytest.param(
            [("cookie", "; ".join(f"c{i}=v" for i in range(500)))],
            "session-token-missing",
            False,
            id="500-cookies",
        ),
        pytest.param(
            [("authorization", f"Bearer {i}") for i in range(100)],
            "token-invalid",
            True,
            id="100-authorization-headers",
        ),
    ],
)
async def test_oversized_inputs_are_rejected_without_fetching_keys(
    clerk: MockClerk,
    clock: FakeClock,
    headers: list[tuple[str, str]],
    reason: str,
    presented: bool,
) -> None:
    """Hostile sizes are refused up front: a plain 401, F=0, no exception."""
    transport = clerk.transport()
    async with httpx.AsyncClient(transport=transport) as http:
        app = make_app(clerk, clock, jwt_key=None, jwks_url=JWKS_URL, http_client=http)
        async with client(app) as c:
            r = await c.get("/api/things", headers=headers)
    assert_401(r, reason, presented=presented)
    assert transport.requests == []


# -- Unknown kids and failed tokens: no refetch storm ---------------------------------------------


async def test_unknown_kid_refetches_once_per_cooldown(
    clerk: MockClerk, clock: FakeClock, second_key: KeyPair
) -> None:
    """An unknown kid: one refetch, then none within the cooldown; the cold load is free."""
    transport = clerk.transport()
    async with httpx.AsyncClient(transport=transport) as http:
        app = make_app(clerk, clock, jwt_key=None, jwks_url=JWKS_URL, http_client=http)
        async with client(app) as c:
            ok = await c.get("/api/me", headers=bearer(clerk.token(issued_at=clock.now)))
            cold = len(transport.requests)
            first = await c.get(
                "/api/me", headers=bearer(mint_session_token(second_key, issued_at=clock.now))
            )
            after_first = len(transport.requests)
            second = await c.get(
                "/api/me",
                headers=bearer(mint_session_token(second_key, issued_at=clock.now, user_id="u2")),
            )
            after_second = len(transport.requests)
            clock.advance(31)
            transport.keys.append(second_key)
            rotated = await c.get(
                "/api/me",
                headers=bearer(mint_session_token(second_key, issued_at=clock.now, user_id="u3")),
            )
    assert_ran(ok, "user_test", injected=True)
    assert cold == 1
    assert_401(first, "jwk-kid-mismatch", presented=True)
    assert after_first == 2
    assert_401(second, "jwk-kid-mismatch", presented=True)
    assert after_second == 2
    assert_ran(rotated, "u3", injected=True)
    assert len(transport.requests) == 3


@pytest.mark.parametrize(
    ("token_kind", "reason"),
    [("forged", "token-invalid-signature"), ("expired", "token-expired")],
)
async def test_failed_token_on_public_route_gives_no_identity_and_no_refetch(
    clerk: MockClerk,
    clock: FakeClock,
    attacker_key: KeyPair,
    second_key: KeyPair,
    token_kind: str,
    reason: str,
) -> None:
    """Public route + bad token: the app runs signed out (user_id None), no refetch storm."""
    transport = clerk.transport()
    tokens = {
        "forged": mint_session_token(attacker_key, issued_at=clock.now),
        "expired": clerk.token(issued_at=clock.now - 3600),
    }
    async with httpx.AsyncClient(transport=transport) as http:
        app = make_app(clerk, clock, jwt_key=None, jwks_url=JWKS_URL, http_client=http)
        async with client(app) as c:
            r = await c.get("/public/x", headers=bearer(tokens[token_kind]))
            expired_unknown_kid = mint_session_token(second_key, issued_at=clock.now - 3600)
            for _ in range(5):
                storm = await c.get("/public/x", headers=bearer(expired_unknown_kid))
    assert_ran(r, None, reason)
    assert_ran(storm, None, "jwk-kid-mismatch")
    assert len(transport.requests) == 1  # the cold load only


# -- Quiet logs: no token, no per-request warning -------------------------------------------------


async def test_failure_storm_never_logs_a_token(
    clerk: MockClerk,
    clock: FakeClock,
    attacker_key: KeyPair,
    second_key: KeyPair,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """A storm of bad tokens logs no token and no per-request warning or error."""
    caplog.set_level(logging.DEBUG, logger="clerk_asgi")
    now = clock.now
    tokens = [
        mint_session_token(attacker_key, issued_at=now, user_id=f"user_{i}") for i in range(20)
    ]
    tokens += [
        mint_session_token(second_key, issued_at=now, headers={"kid": kid})
        for kid in ("k\nINFO forged log line", "\x1b[31mred\x1b[0m", "k" * 200, "k2")
    ]
    tokens += [clerk.token(issued_at=now - 3600), clerk.token(issued_at=now, azp="https://evil")]
    tokens.append("eyJ" + "A" * 200_000)
    valid = clerk.token(issued_at=now)
    transport = JWKSTransport(clerk.key)
    async with httpx.AsyncClient(transport=transport) as http:
        app = make_app(clerk, clock, jwt_key=None, jwks_url=JWKS_URL, http_client=http)
        async with client(app) as c:
            for _ in range(5):
                for token in tokens:
                    await c.get("/api/things", headers=bearer(token))
                    await c.post(
                        "/api/things", headers={"origin": "https://evil", **session(valid)}
                    )
                    await c.get(f"/api/things?token={token[:100]}")
    logged = [(r.levelno, r.getMessage(), str(r.exc_info)) for r in library_records(caplog)]
    for token in [*tokens, valid]:
        for _, message, exc in logged:
            assert token[:60] not in message
            assert token[:60] not in exc
    assert [m for level, m, _ in logged if level >= logging.WARNING] == []
