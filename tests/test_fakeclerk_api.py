"""FakeClerk's endpoints besides the handshake: the Frontend API a browser (clerk-js) calls, and
the Backend API's sessions, with Clerk's JSON shapes and errors."""

from __future__ import annotations

import json
from typing import Any

import pytest
from starlette.types import Message

from clerk_asgi.testing import FakeClerk, FakeClock, KeyPair

from ._fakeclerk_helpers import (
    ORIGIN,
    REDIRECT,
    TEN_YEARS,
    bapi,
    browser,
    decode,
    sign_in,
    verified,
)
from .conftest import NOW

pytestmark = pytest.mark.anyio

MS = int(NOW * 1000)
SIGNED_OUT = {
    "errors": [
        {"message": "Signed out", "long_message": "You are signed out", "code": "signed_out"}
    ]
}
UNAUTHENTICATED = {
    "errors": [
        {
            "message": "Invalid authentication",
            "long_message": "Unable to authenticate the request, you need to supply an active "
            "API key",
            "code": "authentication_invalid",
        }
    ]
}


def not_found(what: str) -> dict[str, Any]:
    return {
        "errors": [
            {
                "message": "not found",
                "long_message": f"No {what} was found",
                "code": "resource_not_found",
            }
        ]
    }


def invalid(name: str, detail: str) -> dict[str, Any]:
    return {
        "errors": [
            {
                "message": f"{name} is invalid",
                "long_message": detail,
                "code": "form_param_value_invalid",
            }
        ]
    }


@pytest.fixture
def fake(key: KeyPair, clock: FakeClock) -> FakeClerk:
    return FakeClerk(key=key, clock=clock)


async def raw_get(fake: FakeClerk, raw_path: bytes) -> tuple[int, dict[str, Any]]:
    """GET ``raw_path`` exactly as given (httpx would normalise ``..``), with the secret key."""
    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "GET",
        "scheme": "https",
        "path": raw_path.decode(),
        "raw_path": raw_path,
        "query_string": b"",
        "root_path": "",
        "headers": [
            (b"host", b"clerk.example.test"),
            (b"authorization", f"Bearer {fake.secret_key}".encode()),
        ],
        "server": ("clerk.example.test", 443),
        "client": ("127.0.0.1", 50000),
    }
    sent: list[Message] = []

    async def receive() -> Message:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: Message) -> None:
        sent.append(message)

    await fake(scope, receive, send)
    body = b"".join(message.get("body", b"") for message in sent[1:])
    return sent[0]["status"], json.loads(body)


# --------------------------------------------------------------------------------------------
# Frontend API
# --------------------------------------------------------------------------------------------


async def test_sign_in_answers_the_client_and_sets_the_client_cookie(fake: FakeClerk) -> None:
    """POST /v1/client/sign_ins (form): the sign-in and client JSON, an HttpOnly __client."""
    user_id = fake.add_user(email="ada@example.test")
    async with browser(fake) as b:
        r = await sign_in(b, "ada@example.test")
    [client] = fake.clients.values()
    session_id = client.session_id
    assert r.headers.get_list("set-cookie") == [
        f"__client={client.token}; Path=/; Max-Age={TEN_YEARS}; HttpOnly; Secure; SameSite=Lax"
    ]
    assert r.headers["clerk-db-jwt"] == client.dev_browser
    body = r.json()
    jwt = body["client"]["sessions"][0]["last_active_token"]["jwt"]
    assert verified(fake, jwt)["sid"] == session_id
    times = {"created_at": MS, "updated_at": MS}
    assert body == {
        "response": {
            "object": "sign_in_attempt",
            "id": "sia_" + session_id[5:],
            "status": "complete",
            "identifier": "ada@example.test",
            "created_session_id": session_id,
        },
        "client": {
            "object": "client",
            "id": client.id,
            "sessions": [
                {
                    "object": "session",
                    "id": session_id,
                    "user_id": user_id,
                    "status": "active",
                    "last_active_at": MS,
                    "last_active_organization_id": None,
                    "actor": None,
                    "expire_at": MS + 7 * 86_400_000,
                    "abandon_at": MS + 30 * 86_400_000,
                    **times,
                    "user": {
                        "object": "user",
                        "id": user_id,
                        "email_addresses": [
                            {"object": "email_address", "email_address": "ada@example.test"}
                        ],
                    },
                    "last_active_token": {"object": "token", "jwt": jwt},
                }
            ],
            "sign_in": None,
            "sign_up": None,
            "last_active_session_id": session_id,
            **times,
        },
    }


async def test_sign_in_with_json_by_user_id_on_production(key: KeyPair, clock: FakeClock) -> None:
    """A JSON body with a user id signs in too; production sends no dev-browser header."""
    fake = FakeClerk(key=key, clock=clock, instance="production")
    user_id = fake.add_user()
    async with browser(fake, base_url="http://clerk.example.test") as b:
        r = await b.post("/v1/client/sign_ins", json={"identifier": user_id})
    assert r.status_code == 200
    assert "clerk-db-jwt" not in r.headers
    assert "Secure" not in r.headers["set-cookie"]  # plain http
    assert r.json()["client"]["sessions"][0]["user"]["email_addresses"] == []


@pytest.mark.parametrize(
    ("request_options", "status", "body"),
    [
        (
            {"data": {}},
            422,
            {
                "message": "identifier must be included",
                "long_message": "identifier is missing",
                "code": "form_param_missing",
            },
        ),
        (
            {"json": {"identifier": 42}},
            422,
            {
                "message": "identifier must be included",
                "long_message": "identifier is missing",
                "code": "form_param_missing",
            },
        ),
        (
            {"data": {"identifier": "nobody@example.test"}},
            422,
            {
                "message": "Couldn't find your account.",
                "long_message": "Couldn't find your account.",
                "code": "form_identifier_not_found",
            },
        ),
        (
            {"content": b"{", "headers": {"content-type": "application/json"}},
            400,
            {
                "message": "malformed request",
                "long_message": "Invalid JSON body",
                "code": "malformed_request",
            },
        ),
        (
            {"json": ["identifier"]},
            400,
            {
                "message": "malformed request",
                "long_message": "Expected an object",
                "code": "malformed_request",
            },
        ),
    ],
)
async def test_sign_in_errors(
    fake: FakeClerk, request_options: dict[str, Any], status: int, body: dict[str, str]
) -> None:
    """A missing identifier, an unknown account, a bad JSON body: Clerk errors, no client."""
    async with browser(fake) as b:
        r = await b.post("/v1/client/sign_ins", **request_options)
    assert (r.status_code, r.json()) == (status, {"errors": [body]})
    assert fake.clients == {}


async def test_signing_in_again_adds_a_session_to_the_browser_client(fake: FakeClerk) -> None:
    """A browser with a client keeps it: a second sign-in adds a session, now the last active."""
    first, second = fake.add_user(), fake.add_user()
    async with browser(fake) as b:
        await sign_in(b, first)
        r = await sign_in(b, second)
    [client] = fake.clients.values()
    assert len(client.session_ids) == 2
    assert client.last_active_session_id == client.session_ids[1]
    assert r.json()["response"]["created_session_id"] == client.session_ids[1]


async def test_dev_browser(fake: FakeClerk) -> None:
    """POST /v1/dev_browser: a token (in id, as clerk-js reads it) a sign-in then attaches to."""
    async with browser(fake) as b:
        r = await b.post("/v1/dev_browser")
        dev_browser = r.json()["id"]
        assert (r.status_code, r.json()) == (200, {"object": "dev_browser", "id": dev_browser})
        [client] = fake.clients.values()
        assert (client.dev_browser, client.session_ids) == (dev_browser, ())
        await sign_in(b, fake.add_user(), __clerk_db_jwt=dev_browser)
    assert fake.clients[client.id].session_ids != ()
    assert len(fake.clients) == 1


async def test_no_dev_browser_on_production(key: KeyPair) -> None:
    """A production instance has no dev browsers: 404."""
    fake = FakeClerk(key=key, instance="production")
    async with browser(fake) as b:
        r = await b.post("/v1/dev_browser")
    assert (r.status_code, r.json()) == (
        404,
        not_found("dev browser (production instances have none)"),
    )


async def test_get_client(fake: FakeClerk) -> None:
    """GET /v1/client: the browser's client, or null for an unknown browser."""
    client = fake.sign_in(fake.add_user())
    async with browser(fake) as b:
        anonymous = await b.get("/v1/client")
    async with browser(fake, cookies={"__client": client.token}) as b:
        known = await b.get("/v1/client")
    assert anonymous.json() == {"response": None, "client": None}
    assert known.json()["response"]["id"] == client.id
    assert known.json()["client"] is None


async def test_session_tokens_for_the_browser(fake: FakeClerk) -> None:
    """POST .../sessions/{id}/tokens: a fresh token for the browser's session, azp its Origin."""
    client = fake.sign_in(fake.add_user())
    session_id = client.session_id
    fake.add_template("api", {"scope": "all"})
    async with browser(fake, cookies=client.cookies) as b:
        r = await b.post(f"/v1/client/sessions/{session_id}/tokens", headers={"Origin": ORIGIN})
        template = await b.post(f"/v1/client/sessions/{session_id}/tokens/api")
        unknown = await b.post(f"/v1/client/sessions/{session_id}/tokens/nope")
        foreign = await b.post("/v1/client/sessions/sess_other/tokens")
    assert r.status_code == 200
    assert r.json() == {"object": "token", "jwt": r.json()["jwt"]}
    claims = verified(fake, r.json()["jwt"])
    assert (claims["sid"], claims["azp"]) == (session_id, ORIGIN)
    assert r.headers["access-control-allow-origin"] == ORIGIN
    assert r.headers["access-control-allow-credentials"] == "true"
    assert decode(template.json()["jwt"])[1]["scope"] == "all"
    assert "access-control-allow-origin" not in template.headers
    assert (unknown.status_code, unknown.json()) == (404, not_found("JWT template"))
    assert (foreign.status_code, foreign.json()) == (404, not_found("session"))


async def test_session_tokens_need_a_signed_in_browser(fake: FakeClerk) -> None:
    """No client: 401 signed_out; an ended session: 401 signed_out."""
    client = fake.sign_in(fake.add_user())
    session_id = client.session_id
    async with browser(fake) as b:
        anonymous = await b.post(f"/v1/client/sessions/{session_id}/tokens")
    fake.sign_out(session_id)
    async with browser(fake, cookies=client.cookies) as b:
        ended = await b.post(f"/v1/client/sessions/{session_id}/tokens")
    assert (anonymous.status_code, anonymous.json()) == (401, SIGNED_OUT)
    assert (ended.status_code, ended.json()) == (401, SIGNED_OUT)


@pytest.mark.parametrize(
    ("method", "suffix", "status"),
    [("POST", "/end", "ended"), ("DELETE", "", "ended"), ("POST", "/remove", "removed")],
)
async def test_ending_one_session(fake: FakeClerk, method: str, suffix: str, status: str) -> None:
    """Sign-out of one session: the ended session and the client; the next handshake is out."""
    client = fake.sign_in(fake.add_user())
    session_id = client.session_id
    async with browser(fake, cookies=client.cookies) as b:
        r = await b.request(method, f"/v1/client/sessions/{session_id}{suffix}")
        await b.get("/v1/client/handshake", params={"redirect_url": REDIRECT})
    assert r.status_code == 200
    assert (r.json()["response"]["id"], r.json()["response"]["status"]) == (session_id, status)
    assert r.json()["response"]["last_active_token"] is None
    assert r.json()["client"]["sessions"][0]["status"] == status
    assert fake.sessions[session_id].status == status
    assert fake.handshakes[-1].signed_in is False


@pytest.mark.parametrize("path", ["/v1/client/sessions", "/v1/client"])
async def test_ending_every_session(fake: FakeClerk, path: str) -> None:
    """DELETE /v1/client/sessions (or /v1/client) ends every session of the browser."""
    async with browser(fake) as b:
        await sign_in(b, fake.add_user())
        await sign_in(b, fake.add_user())
        r = await b.delete(path)
    [client] = fake.clients.values()
    assert r.status_code == 200
    assert r.json()["response"] == r.json()["client"]
    assert [s["status"] for s in r.json()["client"]["sessions"]] == ["ended", "ended"]
    assert {fake.sessions[sid].status for sid in client.session_ids} == {"ended"}


@pytest.mark.parametrize(
    ("method", "path"),
    [("DELETE", "/v1/client"), ("POST", "/v1/client/sessions/sess_x/end")],
)
async def test_signing_out_needs_a_browser_client(fake: FakeClerk, method: str, path: str) -> None:
    """Sign-out without a client: 401 signed_out."""
    async with browser(fake) as b:
        r = await b.request(method, path)
    assert (r.status_code, r.json()) == (401, SIGNED_OUT)


async def test_cors_preflight(fake: FakeClerk) -> None:
    """OPTIONS on the Frontend API: 204 allowing the origin, credentials, asked headers."""
    async with browser(fake) as b:
        r = await b.options(
            "/v1/client/sign_ins",
            headers={"Origin": ORIGIN, "Access-Control-Request-Headers": "content-type, x-a"},
        )
        bare = await b.options("/v1/client")
    assert r.status_code == 204
    assert {k: v for k, v in r.headers.items() if k.startswith(("access-control", "vary"))} == {
        "access-control-allow-methods": "GET, POST, PUT, PATCH, DELETE",
        "access-control-allow-headers": "content-type, x-a",
        "access-control-max-age": "600",
        "access-control-allow-origin": ORIGIN,
        "access-control-allow-credentials": "true",
        "vary": "Origin",
    }
    assert bare.headers["access-control-allow-headers"] == "content-type"


@pytest.mark.parametrize(
    ("method", "path"),
    [("GET", "/"), ("GET", "/v1/nope"), ("GET", "/v1/client/sign_ins"), ("PUT", "/v1/jwks")],
)
async def test_unknown_endpoints_are_404(fake: FakeClerk, method: str, path: str) -> None:
    """An unknown path or method: 404 with a Clerk error."""
    async with browser(fake) as b:
        r = await b.request(method, path, headers=bapi(fake))
    assert (r.status_code, r.json()) == (404, not_found("endpoint"))


# --------------------------------------------------------------------------------------------
# Backend API
# --------------------------------------------------------------------------------------------

BAPI_ENDPOINTS = [
    ("GET", "/v1/jwks"),
    ("GET", "/v1/clients/handshake_payload?nonce=n"),
    ("GET", "/v1/sessions?user_id=user_x"),
    ("GET", "/v1/sessions/sess_x"),
    ("POST", "/v1/sessions/sess_x/revoke"),
    ("POST", "/v1/sessions/sess_x/tokens"),
    ("POST", "/v1/sessions/sess_x/tokens/tpl"),
]


@pytest.mark.parametrize(("method", "path"), BAPI_ENDPOINTS)
@pytest.mark.parametrize(
    "authorization", [None, "Bearer sk_test_wrong", "Basic c2s6", "sk_test_fakeclerk"]
)
async def test_the_backend_api_needs_the_secret_key(
    fake: FakeClerk, method: str, path: str, authorization: str | None
) -> None:
    """Every Backend API endpoint answers 401 authentication_invalid without the secret key."""
    headers = {"Authorization": authorization} if authorization else {}
    async with browser(fake) as b:
        r = await b.request(method, path, headers=headers)
    assert (r.status_code, r.json()) == (401, UNAUTHENTICATED)
    assert "access-control-allow-origin" not in r.headers


async def test_the_api_version_header_is_recorded(fake: FakeClerk) -> None:
    """The last Clerk-API-Version header a Backend API request carried is kept."""
    assert fake.last_api_version is None
    async with browser(fake) as b:
        await b.get("/v1/jwks", headers=bapi(fake, **{"Clerk-API-Version": "2026-05-12"}))
        await b.get("/v1/jwks", headers=bapi(fake))
    assert fake.last_api_version == "2026-05-12"


async def test_get_session(fake: FakeClerk) -> None:
    """GET /v1/sessions/{id}: the Session object, timestamps in milliseconds."""
    user_id = fake.add_user(org_id="org_1")
    client = fake.sign_in(user_id)
    session_id = client.session_id
    async with browser(fake) as b:
        r = await b.get(f"/v1/sessions/{session_id}", headers=bapi(fake))
    assert (r.status_code, r.json()) == (
        200,
        {
            "object": "session",
            "id": session_id,
            "client_id": client.id,
            "user_id": user_id,
            "status": "active",
            "last_active_at": MS,
            "last_active_organization_id": "org_1",
            "actor": None,
            "latest_activity": None,
            "expire_at": MS + 7 * 86_400_000,
            "abandon_at": MS + 30 * 86_400_000,
            "created_at": MS,
            "updated_at": MS,
        },
    )


@pytest.mark.parametrize(
    "raw_path",
    [b"/v1/sessions/sess_nope", b"/v1/sessions/..", b"/v1/sessions/a%2Fb", b"/v1/sessions/%2E%2E"],
)
async def test_session_ids_are_matched_literally(fake: FakeClerk, raw_path: bytes) -> None:
    """An unknown id, ``..`` or an encoded slash is just an unknown session: 404."""
    fake.sign_in(fake.add_user())
    assert await raw_get(fake, raw_path) == (404, not_found("session"))


async def test_an_empty_id_segment_is_no_route(fake: FakeClerk) -> None:
    """``/v1/sessions/`` (an empty id) matches no endpoint."""
    assert await raw_get(fake, b"/v1/sessions/") == (404, not_found("endpoint"))


async def test_list_sessions(fake: FakeClerk, clock: FakeClock) -> None:
    """GET /v1/sessions: by user or client, status filter, newest first, limit/offset, paginated."""
    ada, bob = fake.add_user(), fake.add_user()
    first = fake.sign_in(ada)
    clock.advance(10)
    second = fake.sign_in(ada)
    clock.advance(10)
    fake.sign_in(bob)
    fake.revoke(first.session_id)
    newest, oldest = second.last_active_session_id, first.last_active_session_id

    async def ids(query: str) -> Any:
        async with browser(fake) as b:
            r = await b.get(f"/v1/sessions?{query}", headers=bapi(fake))
        assert r.status_code == 200
        body = r.json()
        if isinstance(body, dict):
            return [s["id"] for s in body["data"]], body["total_count"]
        return [s["id"] for s in body]

    assert await ids(f"user_id={ada}") == [newest, oldest]
    assert await ids(f"client_id={first.id}") == [oldest]
    assert await ids(f"user_id={ada}&client_id={first.id}") == [oldest]
    assert await ids(f"user_id={ada}&status=active") == [newest]
    assert await ids(f"user_id={ada}&status=revoked") == [oldest]
    assert await ids(f"user_id={ada}&limit=1") == [newest]
    assert await ids(f"user_id={ada}&limit=1&offset=1") == [oldest]
    assert await ids(f"user_id={ada}&offset=2") == []
    assert await ids(f"user_id={ada}&limit=1&paginated=true") == ([newest], 2)
    assert await ids("user_id=user_nobody&paginated=true") == ([], 0)


@pytest.mark.parametrize(
    ("query", "status", "body"),
    [
        (
            "",
            400,
            {
                "errors": [
                    {
                        "message": "user_id or client_id must be included",
                        "long_message": "Provide user_id or client_id to list sessions",
                        "code": "form_param_missing",
                    }
                ]
            },
        ),
        (
            "?user_id=&status=active",
            400,
            {
                "errors": [
                    {
                        "message": "user_id or client_id must be included",
                        "long_message": "Provide user_id or client_id to list sessions",
                        "code": "form_param_missing",
                    }
                ]
            },
        ),
        (
            "?user_id=u&status=pending",
            422,
            invalid(
                "status",
                "status must be one of abandoned, active, ended, expired, removed, replaced, "
                "revoked",
            ),
        ),
        *(
            (
                "?user_id=u&limit=" + value,
                422,
                invalid("limit", "limit must be an integer from 1 to 500"),
            )
            for value in ("0", "501", "ten", "-1", "1.5", "²")
        ),
        (
            "?user_id=u&offset=-1",
            422,
            invalid("offset", f"offset must be an integer from 0 to {2**31}"),
        ),
    ],
)
async def test_list_sessions_errors(
    fake: FakeClerk, query: str, status: int, body: dict[str, Any]
) -> None:
    """Neither user_id nor client_id: 400; a bad status, limit or offset: 422."""
    async with browser(fake) as b:
        r = await b.get(f"/v1/sessions{query}", headers=bapi(fake))
    assert (r.status_code, r.json()) == (status, body)


async def test_revoke_session(fake: FakeClerk, clock: FakeClock) -> None:
    """POST /v1/sessions/{id}/revoke: the revoked Session; the next handshake signs out."""
    client = fake.sign_in(fake.add_user())
    session_id = client.session_id
    clock.advance(5)
    async with browser(fake, cookies=client.cookies) as b:
        r = await b.post(f"/v1/sessions/{session_id}/revoke", headers=bapi(fake))
        again = await b.post(f"/v1/sessions/{session_id}/revoke", headers=bapi(fake))
        unknown = await b.post("/v1/sessions/sess_nope/revoke", headers=bapi(fake))
        await b.get("/v1/client/handshake", params={"redirect_url": REDIRECT})
    assert r.status_code == 200
    assert (r.json()["id"], r.json()["status"], r.json()["updated_at"]) == (
        session_id,
        "revoked",
        MS + 5000,
    )
    assert again.json() == r.json()
    assert (unknown.status_code, unknown.json()) == (404, not_found("session"))
    assert fake.handshakes[-1].signed_in is False


async def test_backend_session_tokens(fake: FakeClerk, clock: FakeClock) -> None:
    """POST /v1/sessions/{id}/tokens[/{template}]: a token, expires_in_seconds overriding."""
    session_id = fake.sign_in(fake.add_user()).session_id
    fake.add_template("long", {"kind": "template"}, lifetime=600)
    clock.advance(7)
    async with browser(fake) as b:
        default = await b.post(f"/v1/sessions/{session_id}/tokens", headers=bapi(fake))
        custom = await b.post(
            f"/v1/sessions/{session_id}/tokens",
            json={"expires_in_seconds": 3600},
            headers=bapi(fake),
        )
        nulled = await b.post(
            f"/v1/sessions/{session_id}/tokens",
            json={"expires_in_seconds": None},
            headers=bapi(fake),
        )
        template = await b.post(f"/v1/sessions/{session_id}/tokens/long", headers=bapi(fake))
        short_template = await b.post(
            f"/v1/sessions/{session_id}/tokens/long",
            json={"expires_in_seconds": 30},
            headers=bapi(fake),
        )
        unknown = await b.post(f"/v1/sessions/{session_id}/tokens/nope", headers=bapi(fake))
    now = int(NOW) + 7
    assert default.json() == {"object": "token", "jwt": default.json()["jwt"]}
    assert verified(fake, default.json()["jwt"])["exp"] == now + 60
    assert decode(custom.json()["jwt"])[1]["exp"] == now + 3600
    assert decode(nulled.json()["jwt"])[1]["exp"] == now + 60
    header, claims = decode(template.json()["jwt"])
    assert (header["cat"], claims["kind"], claims["exp"]) == (
        "cl_B7d4PD222AAA",
        "template",
        now + 600,
    )
    assert "sid" not in claims
    assert decode(short_template.json()["jwt"])[1]["exp"] == now + 30
    assert (unknown.status_code, unknown.json()) == (404, not_found("JWT template"))


@pytest.mark.parametrize("value", [29, 315_360_001, "60", True, 1.5])
async def test_backend_tokens_refuse_bad_lifetimes(fake: FakeClerk, value: Any) -> None:
    """expires_in_seconds must be an integer from 30 to 315360000: 422 otherwise."""
    session_id = fake.sign_in(fake.add_user()).session_id
    async with browser(fake) as b:
        r = await b.post(
            f"/v1/sessions/{session_id}/tokens",
            json={"expires_in_seconds": value},
            headers=bapi(fake),
        )
    assert (r.status_code, r.json()) == (
        422,
        invalid("expires_in_seconds", "expires_in_seconds must be an integer from 30 to 315360000"),
    )


async def test_backend_tokens_body_and_session_errors(fake: FakeClerk) -> None:
    """Malformed JSON: 400; a non-object body is ignored; an unknown or revoked session: 404."""
    session_id = fake.sign_in(fake.add_user()).session_id
    async with browser(fake) as b:
        malformed = await b.post(
            f"/v1/sessions/{session_id}/tokens", content=b"{", headers=bapi(fake)
        )
        listed = await b.post(f"/v1/sessions/{session_id}/tokens", json=[1], headers=bapi(fake))
        unknown = await b.post("/v1/sessions/sess_nope/tokens", headers=bapi(fake))
        fake.revoke(session_id)
        revoked = await b.post(f"/v1/sessions/{session_id}/tokens", headers=bapi(fake))
    assert (malformed.status_code, malformed.json()) == (
        400,
        {
            "errors": [
                {
                    "message": "malformed request",
                    "long_message": "Invalid JSON body",
                    "code": "malformed_request",
                }
            ]
        },
    )
    assert listed.status_code == 200
    assert (unknown.status_code, unknown.json()) == (404, not_found("active session"))
    assert (revoked.status_code, revoked.json()) == (404, not_found("active session"))


async def test_requests_are_recorded(fake: FakeClerk) -> None:
    """fake.requests lists (method, path) of every request, query left out."""
    async with browser(fake) as b:
        await b.get("/.well-known/jwks.json?x=1")
        await b.post("/v1/sessions/sess_x/revoke")
    assert fake.requests == [
        ("GET", "/.well-known/jwks.json"),
        ("POST", "/v1/sessions/sess_x/revoke"),
    ]
