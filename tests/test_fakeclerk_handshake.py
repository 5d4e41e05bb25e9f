"""FakeClerk's handshake: ``GET /v1/client/handshake`` on the Frontend API and the Backend API's
``handshake_payload``, for signed-in and signed-out browsers on both instance types."""

from __future__ import annotations

import re
from typing import Any
from urllib.parse import parse_qs, urlsplit

import anyio
import pytest
from starlette.applications import Starlette
from starlette.routing import Mount

from clerk_asgi.testing import FakeClerk, FakeClock, KeyPair

from ._fakeclerk_helpers import (
    ORIGIN,
    REDIRECT,
    TEN_YEARS,
    bapi,
    browser,
    decode,
    directive_value,
    payload,
    sign_in,
    verified,
)
from .conftest import NOW

pytestmark = pytest.mark.anyio

NONCE = re.compile(r"[A-Za-z0-9_-]{32}")


def signed_out(domain: str = "") -> list[str]:
    """The directives of a signed-out handshake answer (unsuffixed), as :func:`signed_in`."""
    return [
        f"__clerk_handshake=; Path=/{domain}; Max-Age=0",
        f"__clerk_handshake_nonce=; Path=/{domain}; Max-Age=0",
        "__session=; Path=/; Max-Age=0",
        f"__client_uat=0; Path=/; Max-Age={TEN_YEARS}; Secure; SameSite=Lax",
    ]


SIGNED_OUT = signed_out()


def make(
    key: KeyPair, clock: FakeClock, instance: Any = "development", **options: Any
) -> FakeClerk:
    return FakeClerk(key=key, clock=clock, instance=instance, **options)


def signed_in(
    session_jwt: str, uat: int = int(NOW), secure: str = "; Secure", domain: str = ""
) -> list[str]:
    """The directives of a signed-in handshake answer (unsuffixed); in production the transport
    cookies are cleared with the ``Domain`` they were set with (``SHARED``)."""
    return [
        f"__clerk_handshake=; Path=/{domain}; Max-Age=0",
        f"__clerk_handshake_nonce=; Path=/{domain}; Max-Age=0",
        f"__session={session_jwt}; Path=/{secure}; SameSite=Lax",
        f"__client_uat={uat}; Path=/; Max-Age={TEN_YEARS}{secure}; SameSite=Lax",
    ]


#: The Domain a production handshake's directives carry: the app's and the FAPI's parent.
SHARED = "; Domain=example.test"


def nonce_in_query(location: str) -> str:
    return parse_qs(urlsplit(location).query)["__clerk_handshake_nonce"][0]


async def test_dev_signed_in_nonce_comes_back_in_the_query(key: KeyPair, clock: FakeClock) -> None:
    """Development, signed in: 307 to redirect_url + __clerk_handshake_nonce; its directives."""
    fake = make(key, clock, origin=ORIGIN)
    client = fake.sign_in(fake.add_user())
    async with browser(fake) as b:
        r = await b.get(
            "/v1/client/handshake",
            params={
                "redirect_url": REDIRECT,
                "format": "nonce",
                "__clerk_db_jwt": str(client.dev_browser),
            },
        )
    assert r.status_code == 307
    nonce = nonce_in_query(r.headers["location"])
    assert NONCE.fullmatch(nonce)
    assert r.headers["location"] == (
        f"https://app.example.test/dashboard?tab=1&__clerk_handshake_nonce={nonce}#top"
    )
    assert r.headers["cache-control"] == "no-store"
    assert "set-cookie" not in r.headers
    answer = await payload(fake, nonce)
    assert answer.status_code == 200
    directives = answer.json()["directives"]
    session_jwt = directive_value(directives[2])
    assert directives == signed_in(session_jwt)
    claims = verified(fake, session_jwt)
    assert (claims["sid"], claims["azp"], claims["iat"]) == (
        client.last_active_session_id,
        ORIGIN,
        int(NOW),
    )
    call = fake.handshakes[-1]
    assert (call.status, call.signed_in, call.client_id, call.session_id) == (
        307,
        True,
        client.id,
        client.last_active_session_id,
    )
    assert list(call.directives) == directives


async def test_prod_signed_in_nonce_comes_back_in_a_cookie(key: KeyPair, clock: FakeClock) -> None:
    """Production, signed in (the __client cookie): 307 to redirect_url, nonce in a cookie."""
    fake = make(key, clock, "production")
    user_id = fake.add_user(email="ada@example.test")
    async with browser(fake) as b:
        await sign_in(b, "ada@example.test")
        r = await b.get(
            "/v1/client/handshake", params={"redirect_url": REDIRECT, "format": "nonce"}
        )
    assert r.status_code == 307
    assert r.headers["location"] == REDIRECT
    assert r.headers["cache-control"] == "no-store"
    [set_cookie] = r.headers.get_list("set-cookie")
    nonce = directive_value(set_cookie)
    assert NONCE.fullmatch(nonce)
    assert set_cookie == (
        f"__clerk_handshake_nonce={nonce}; Path=/; Domain=example.test; Max-Age=60; HttpOnly; "
        "Secure; SameSite=Lax"
    )
    directives = (await payload(fake, nonce)).json()["directives"]
    session_jwt = directive_value(directives[2])
    assert directives == signed_in(session_jwt, domain=SHARED)
    claims = verified(fake, session_jwt)
    assert (claims["sub"], claims["azp"]) == (user_id, "https://app.example.test")


@pytest.mark.parametrize("instance", ["development", "production"])
async def test_signed_out_browser(key: KeyPair, clock: FakeClock, instance: Any) -> None:
    """No client: directives clear __session and set __client_uat=0."""
    fake = make(key, clock, instance)
    async with browser(fake) as b:
        r = await b.get(
            "/v1/client/handshake", params={"redirect_url": REDIRECT, "format": "nonce"}
        )
    assert r.status_code == 307
    nonce = (
        nonce_in_query(r.headers["location"])
        if instance == "development"
        else directive_value(r.headers["set-cookie"])
    )
    domain = SHARED if instance == "production" else ""
    assert (await payload(fake, nonce)).json() == {"directives": signed_out(domain)}
    call = fake.handshakes[-1]
    assert (call.signed_in, call.client_id, call.session_id) == (False, None, None)


@pytest.mark.parametrize("end", ["sign_out", "revoke"])
@pytest.mark.parametrize("instance", ["development", "production"])
async def test_an_ended_session_signs_the_browser_out(
    key: KeyPair, clock: FakeClock, instance: Any, end: str
) -> None:
    """Once the browser's session ends (signed out or revoked), the handshake signs it out."""
    fake = make(key, clock, instance)
    client = fake.sign_in(fake.add_user())
    getattr(fake, end)(client.session_id)
    async with browser(fake, cookies=client.cookies) as b:
        r = await b.get(
            "/v1/client/handshake", params={"redirect_url": REDIRECT, "format": "nonce"}
        )
    nonce = (
        nonce_in_query(r.headers["location"])
        if instance == "development"
        else directive_value(r.headers["set-cookie"])
    )
    domain = SHARED if instance == "production" else ""
    assert (await payload(fake, nonce)).json() == {"directives": signed_out(domain)}
    assert (fake.handshakes[-1].signed_in, fake.handshakes[-1].client_id) == (False, client.id)


async def test_an_older_active_session_of_the_client_is_used(
    key: KeyPair, clock: FakeClock
) -> None:
    """When the last active session ended, another active session of the client signs in."""
    fake = make(key, clock)
    first, second = fake.add_user(), fake.add_user()
    async with browser(fake) as b:
        await sign_in(b, first)
        await sign_in(b, second)
        [client] = fake.clients.values()
        fake.sign_out(client.session_id)
        await b.get("/v1/client/handshake", params={"redirect_url": REDIRECT})
    assert fake.handshakes[-1].session_id == client.session_ids[0]


async def test_client_uat_is_when_the_client_changed(key: KeyPair, clock: FakeClock) -> None:
    """__client_uat is the client's updated_at (sign-in), the new __session's iat is now."""
    fake = make(key, clock)
    client = fake.sign_in(fake.add_user())
    clock.advance(500)
    async with browser(fake, cookies=client.cookies) as b:
        r = await b.get(
            "/v1/client/handshake", params={"redirect_url": REDIRECT, "format": "nonce"}
        )
    directives = (await payload(fake, nonce_in_query(r.headers["location"]))).json()["directives"]
    session_jwt = directive_value(directives[2])
    assert directives == signed_in(session_jwt, uat=int(NOW))
    assert decode(session_jwt)[1]["iat"] == int(NOW) + 500


async def test_an_http_redirect_gets_no_secure_attribute(key: KeyPair, clock: FakeClock) -> None:
    """For an http:// redirect_url the directives carry no Secure."""
    fake = make(key, clock)
    client = fake.sign_in(fake.add_user())
    async with browser(fake, cookies=client.cookies) as b:
        r = await b.get(
            "/v1/client/handshake",
            params={"redirect_url": "http://localhost:8000/", "format": "nonce"},
        )
    assert r.headers["location"].startswith("http://localhost:8000/?__clerk_handshake_nonce=")
    directives = (await payload(fake, nonce_in_query(r.headers["location"]))).json()["directives"]
    session_jwt = directive_value(directives[2])
    assert directives == signed_in(session_jwt, secure="")
    assert decode(session_jwt)[1]["azp"] == "http://localhost:8000"


async def test_suffixed_cookies_adds_suffixed_directives(key: KeyPair, clock: FakeClock) -> None:
    """suffixed_cookies=true: each cookie also under its _<suffix> name, the same values."""
    fake = make(key, clock, frontend_api="clerk.clerk.dev")
    client = fake.sign_in(fake.add_user())
    async with browser(fake, cookies=client.cookies) as b:
        r = await b.get(
            "/v1/client/handshake",
            params={"redirect_url": REDIRECT, "format": "nonce", "suffixed_cookies": "true"},
        )
    directives = (await payload(fake, nonce_in_query(r.headers["location"]))).json()["directives"]
    session_jwt = directive_value(directives[2])
    uat = int(NOW)
    assert directives == [
        *signed_in(session_jwt),
        f"__session_QvfNY2dr={session_jwt}; Path=/; Secure; SameSite=Lax",
        f"__client_uat_QvfNY2dr={uat}; Path=/; Max-Age={TEN_YEARS}; Secure; SameSite=Lax",
    ]
    assert fake.handshakes[-1].suffixed_cookies is True


async def test_suffixed_signed_out_directives(key: KeyPair, clock: FakeClock) -> None:
    """Signed out with suffixed_cookies=true: the suffixed cookies are cleared too."""
    fake = make(key, clock, frontend_api="clerk.clerk.dev")
    async with browser(fake) as b:
        r = await b.get(
            "/v1/client/handshake",
            params={"redirect_url": REDIRECT, "format": "nonce", "suffixed_cookies": "true"},
        )
    directives = (await payload(fake, nonce_in_query(r.headers["location"]))).json()["directives"]
    assert directives == [
        *SIGNED_OUT,
        "__session_QvfNY2dr=; Path=/; Max-Age=0",
        f"__client_uat_QvfNY2dr=0; Path=/; Max-Age={TEN_YEARS}; Secure; SameSite=Lax",
    ]


@pytest.mark.parametrize("instance", ["development", "production"])
async def test_format_token_carries_a_signed_handshake_jwt(
    key: KeyPair, clock: FakeClock, instance: Any
) -> None:
    """format=token (the default): __clerk_handshake, a JWT of {"handshake": directives}."""
    fake = make(key, clock, instance)
    client = fake.sign_in(fake.add_user())
    async with browser(fake, cookies=client.cookies) as b:
        r = await b.get("/v1/client/handshake", params={"redirect_url": REDIRECT})
    assert r.status_code == 307
    if instance == "development":
        query = parse_qs(urlsplit(r.headers["location"]).query)
        assert sorted(query) == ["__clerk_handshake", "tab"]
        token = query["__clerk_handshake"][0]
    else:
        assert r.headers["location"] == REDIRECT
        set_cookie = r.headers["set-cookie"]
        token = directive_value(set_cookie)
        assert set_cookie == (
            f"__clerk_handshake={token}; Path=/; Domain=example.test; Max-Age=60; HttpOnly; "
            "Secure; SameSite=Lax"
        )
    header, body = decode(token)
    assert header == {"alg": "RS256", "kid": "k1", "typ": "JWT", "cat": "cl_B7d4PD111AAA"}
    assert verified(fake, token) == body
    domain = SHARED if instance == "production" else ""
    session_jwt = directive_value(body["handshake"][2])
    assert body == {"handshake": signed_in(session_jwt, domain=domain)}
    assert fake.handshakes[-1].format == "token"


async def test_a_nonce_works_once(key: KeyPair, clock: FakeClock) -> None:
    """handshake_payload answers a nonce once, then 404 as for an unknown nonce; 400 if none."""
    fake = make(key, clock)
    async with browser(fake) as b:
        r = await b.get(
            "/v1/client/handshake", params={"redirect_url": REDIRECT, "format": "nonce"}
        )
    nonce = nonce_in_query(r.headers["location"])
    assert (await payload(fake, nonce)).status_code == 200
    not_found = {
        "errors": [
            {
                "message": "not found",
                "long_message": "No handshake payload for this nonce (unknown or already used) "
                "was found",
                "code": "resource_not_found",
            }
        ]
    }
    for value in (nonce, "never-issued"):
        again = await payload(fake, value)
        assert (again.status_code, again.json()) == (404, not_found)
    async with browser(fake) as b:
        missing = await b.get("/v1/clients/handshake_payload", headers=bapi(fake))
    assert (missing.status_code, missing.json()) == (
        400,
        {
            "errors": [
                {
                    "message": "nonce must be included",
                    "long_message": "nonce is missing",
                    "code": "form_param_missing",
                }
            ]
        },
    )


async def test_handshake_payload_needs_the_secret_key(key: KeyPair, clock: FakeClock) -> None:
    """handshake_payload is a Backend API call: 401 without the secret key, nonce kept."""
    fake = make(key, clock)
    async with browser(fake) as b:
        r = await b.get(
            "/v1/client/handshake", params={"redirect_url": REDIRECT, "format": "nonce"}
        )
        nonce = nonce_in_query(r.headers["location"])
        refused = await b.get(
            "/v1/clients/handshake_payload",
            params={"nonce": nonce},
            headers={"Authorization": "Bearer sk_test_wrong"},
        )
    assert refused.status_code == 401
    assert refused.json()["errors"][0]["code"] == "authentication_invalid"
    assert (await payload(fake, nonce)).status_code == 200


@pytest.mark.parametrize(
    ("params", "body"),
    [
        (
            {},
            {
                "message": "redirect_url must be included",
                "long_message": "redirect_url is missing",
                "code": "form_param_missing",
            },
        ),
        *(
            (
                {"redirect_url": url},
                {
                    "message": "redirect_url is invalid",
                    "long_message": "redirect_url must be an absolute http(s) URL",
                    "code": "form_param_value_invalid",
                },
            )
            for url in ("/dashboard", "ftp://app.example.test/", "https://", "javascript:x")
        ),
        (
            {"redirect_url": REDIRECT, "format": "cookie"},
            {
                "message": "format is invalid",
                "long_message": "format must be 'nonce' or 'token'",
                "code": "form_param_value_invalid",
            },
        ),
    ],
)
async def test_bad_handshake_parameters_are_400(
    key: KeyPair, clock: FakeClock, params: dict[str, str], body: dict[str, str]
) -> None:
    """A missing or non-absolute redirect_url, an unknown format: 400 with a Clerk error."""
    fake = make(key, clock)
    async with browser(fake) as b:
        r = await b.get("/v1/client/handshake", params=params)
    assert (r.status_code, r.json()) == (400, {"errors": [body]})
    assert (fake.handshakes[-1].status, fake.handshakes[-1].signed_in) == (400, None)


async def test_the_handshake_records_what_it_was_asked(key: KeyPair, clock: FakeClock) -> None:
    """fake.handshakes records the reason, format, redirect_url, api version and __session."""
    fake = make(key, clock)
    params = {
        "redirect_url": REDIRECT,
        "__clerk_api_version": "2026-05-12",
        "suffixed_cookies": "false",
        "__clerk_hs_reason": "session-token-expired-refresh-non-eligible-no-refresh-cookie",
        "format": "nonce",
        "__session": "expired.jwt.value",
    }
    async with browser(fake) as b:
        await b.get("/v1/client/handshake", params=params)
    call = fake.handshakes[-1]
    assert dict(call.params) == params
    assert call.reason == "session-token-expired-refresh-non-eligible-no-refresh-cookie"
    assert (call.format, call.redirect_url, call.suffixed_cookies, call.session_token) == (
        "nonce",
        REDIRECT,
        False,
        "expired.jwt.value",
    )


async def test_failing_redirects_back_without_a_result(key: KeyPair, clock: FakeClock) -> None:
    """fake.failing: 307 straight back to redirect_url, no nonce, no token, no cookie."""
    fake = make(key, clock, "production")
    fake.failing = True
    client = fake.sign_in(fake.add_user())
    async with browser(fake, cookies=client.cookies) as b:
        r = await b.get(
            "/v1/client/handshake", params={"redirect_url": REDIRECT, "format": "nonce"}
        )
    assert (r.status_code, r.headers["location"], r.content) == (307, REDIRECT, b"")
    assert "set-cookie" not in r.headers
    assert (fake.handshakes[-1].status, fake.handshakes[-1].signed_in) == (307, None)
    assert fake.handshakes[-1].directives == ()


async def test_payload_error_answers_the_status(key: KeyPair, clock: FakeClock) -> None:
    """fake.payload_error: handshake_payload answers that status; the nonce stays usable."""
    fake = make(key, clock)
    async with browser(fake) as b:
        r = await b.get(
            "/v1/client/handshake", params={"redirect_url": REDIRECT, "format": "nonce"}
        )
    nonce = nonce_in_query(r.headers["location"])
    fake.payload_error = 503
    failed = await payload(fake, nonce)
    assert (failed.status_code, failed.json()) == (
        503,
        {
            "errors": [
                {
                    "message": "Injected failure",
                    "long_message": "FakeClerk.payload_error is set",
                    "code": "internal_clerk_error",
                }
            ]
        },
    )
    fake.payload_error = None
    assert (await payload(fake, nonce)).json() == {"directives": SIGNED_OUT}


async def test_payload_gate_holds_the_answer(key: KeyPair, clock: FakeClock) -> None:
    """fake.payload_gate: handshake_payload waits until the event is set."""
    fake = make(key, clock)
    async with browser(fake) as b:
        r = await b.get(
            "/v1/client/handshake", params={"redirect_url": REDIRECT, "format": "nonce"}
        )
    nonce = nonce_in_query(r.headers["location"])
    fake.payload_gate = anyio.Event()
    answers: list[int] = []

    async def fetch() -> None:
        answers.append((await payload(fake, nonce)).status_code)

    async with anyio.create_task_group() as tasks:
        tasks.start_soon(fetch)
        await anyio.wait_all_tasks_blocked()
        assert answers == []
        fake.payload_gate.set()
    assert answers == [200]


async def test_dev_browser_cookie_identifies_the_client(key: KeyPair, clock: FakeClock) -> None:
    """Development: a __clerk_db_jwt cookie on the Frontend API identifies the browser too."""
    fake = make(key, clock)
    client = fake.sign_in(fake.add_user())
    async with browser(fake, cookies={"__clerk_db_jwt": str(client.dev_browser)}) as b:
        await b.get("/v1/client/handshake", params={"redirect_url": REDIRECT})
    assert fake.handshakes[-1].client_id == client.id


@pytest.mark.parametrize(
    ("redirect_url", "domain"),
    [
        ("https://app.example.test/", "; Domain=example.test"),
        ("https://example.test/", "; Domain=example.test"),
        ("https://clerk.example.test/", ""),
        ("https://localhost:8000/", ""),
        ("https://127.0.0.1:8000/", ""),
        ("https://app.other.test/", ""),
    ],
)
async def test_transport_cookie_domain(
    key: KeyPair, clock: FakeClock, redirect_url: str, domain: str
) -> None:
    """Production: the transport cookie's Domain is the parent shared with the app, if any."""
    fake = make(key, clock, "production")
    async with browser(fake) as b:
        r = await b.get("/v1/client/handshake", params={"redirect_url": redirect_url})
    token = directive_value(r.headers["set-cookie"])
    assert r.headers["set-cookie"] == (
        f"__clerk_handshake={token}; Path=/{domain}; Max-Age=60; HttpOnly; Secure; SameSite=Lax"
    )


@pytest.mark.parametrize("mounted", [True, False])
async def test_under_a_proxy_path(key: KeyPair, clock: FakeClock, mounted: bool) -> None:
    """Mounted at /__clerk or given proxy_path: FAPI cookies use that path, routes work."""
    if mounted:
        fake = make(key, clock, "production")
        app: Any = Starlette(routes=[Mount("/__clerk", fake)])
    else:
        fake = app = make(key, clock, "production", proxy_path="/__clerk", origin=ORIGIN)
    user_id = fake.add_user()
    async with browser(app, base_url=ORIGIN) as b:
        r = await b.post("/__clerk/v1/client/sign_ins", data={"identifier": user_id})
        [client] = fake.clients.values()
        assert r.headers["set-cookie"] == (
            f"__client={client.token}; Path=/__clerk; Max-Age={TEN_YEARS}; HttpOnly; Secure; "
            "SameSite=Lax"
        )
        r = await b.get("/__clerk/v1/client/handshake", params={"redirect_url": ORIGIN + "/"})
    assert r.status_code == 307
    assert "Domain" not in r.headers["set-cookie"]  # the proxy shares the app's host
    assert fake.handshakes[-1].signed_in is True
    assert fake.requests == [("POST", "/v1/client/sign_ins"), ("GET", "/v1/client/handshake")]


async def test_proxy_path_also_answers_without_the_prefix(key: KeyPair, clock: FakeClock) -> None:
    """With proxy_path, a proxy that strips the prefix reaches the same routes."""
    fake = make(key, clock, proxy_path="/__clerk")
    async with browser(fake) as b:
        with_prefix = await b.get("/__clerk/.well-known/jwks.json")
        without = await b.get("/.well-known/jwks.json")
        bare = await b.get("/__clerk")
    assert with_prefix.json() == without.json() == {"keys": [fake.key.jwk]}
    assert bare.status_code == 404
    assert fake.requests[-1] == ("GET", "/")
