"""``ClerkConfig``: every setting validated once, frozen, usable without a middleware; the
middleware takes it or keywords, never both; start-up warnings and the messages of the
mistakes a new user makes."""

from __future__ import annotations

import logging
from typing import Any

import httpx
import pytest

from clerk_asgi import Auth, ClerkConfig, ClerkMiddleware, ConfigurationError, Rule
from clerk_asgi.testing import FakeClock, MockClerk

from ._middleware_helpers import Spy, call, http_scope, redirect_url_of, response_headers

pytestmark = pytest.mark.anyio

PK = "pk_test_Y2xlcmsuZXhhbXBsZS5jb20k"  # Frontend API clerk.example.com, development
SECRET = "sk_test_abc123"


def test_a_publishable_key_gives_the_instance(monkeypatch: pytest.MonkeyPatch) -> None:
    """From the publishable key: Frontend API, instance type, issuer, JWKS and sign-in URL."""
    monkeypatch.setenv("CLERK_PUBLISHABLE_KEY", PK)
    config = ClerkConfig()
    assert (
        config.frontend_api,
        config.instance_type,
        config.issuer,
        config.jwks_url,
        config.sign_in_url,
        config.secret_key,
        config.api_url,
    ) == (
        "clerk.example.com",
        "development",
        "https://clerk.example.com",
        "https://clerk.example.com/.well-known/jwks.json",
        "https://accounts.example.com/sign-in",
        None,
        "https://api.clerk.com",
    )


def test_a_secret_key_gives_the_backend_api(monkeypatch: pytest.MonkeyPatch) -> None:
    """From the secret key: the Backend API JWKS, fetched with the key as Bearer."""
    monkeypatch.setenv("CLERK_SECRET_KEY", SECRET)
    monkeypatch.setenv("CLERK_API_URL", "https://api.example.com/")
    config = ClerkConfig()
    assert (config.secret_key, config.api_url, config.jwks_url, dict(config.jwks_headers)) == (
        SECRET,
        "https://api.example.com",
        "https://api.example.com/v1/jwks",
        {"Authorization": f"Bearer {SECRET}"},
    )


def test_the_secret_key_never_shows_in_the_repr() -> None:
    """repr() names the key source, never the secret key."""
    config = ClerkConfig(secret_key=SECRET, publishable_key=PK)
    assert SECRET not in repr(config)
    assert repr(config) == (
        "ClerkConfig(keys='https://api.clerk.com/v1/jwks', issuer='https://clerk.example.com', "
        "authorized_parties=[], sign_in_url='https://accounts.example.com/sign-in', rules=0)"
    )


def test_the_config_is_frozen(clerk: MockClerk) -> None:
    """Setting an attribute raises: build a new config instead."""
    config = ClerkConfig(**clerk.middleware_options())
    with pytest.raises(AttributeError, match="ClerkConfig is frozen"):
        config.sign_in_url = "/elsewhere"  # type: ignore[misc]
    assert config.sign_in_url == "/sign-in"


def test_the_sign_in_path_is_public_in_the_route_rules(clerk: MockClerk) -> None:
    """route_rules puts the sign-in page's implied public rule before the user's rules."""
    rules = [Rule.api("/api/:path*")]
    config = ClerkConfig(**clerk.middleware_options(rules=rules))
    assert config.rules == tuple(rules)
    assert config.route_rules == (Rule.public("/sign-in/:rest*"), *rules)


@pytest.mark.parametrize(
    "extra",
    [{"rules": [Rule.public("/")]}, {"clock_skew": 0}, {"sign_in_url": "/login"}],
)
def test_config_and_keywords_together_are_refused(clerk: MockClerk, extra: dict[str, Any]) -> None:
    """ClerkMiddleware takes a config or keywords, not both: nothing is silently ignored."""
    config = ClerkConfig(**clerk.middleware_options())
    with pytest.raises(ConfigurationError, match="Pass either config= or keywords, not both"):
        ClerkMiddleware(Spy(), config=config, **extra)


def test_config_must_be_a_clerk_config(clerk: MockClerk) -> None:
    """A dict passed as config= is refused with a message naming the type."""
    with pytest.raises(ConfigurationError, match="config must be a ClerkConfig"):
        ClerkMiddleware(Spy(), config=clerk.middleware_options())  # type: ignore[arg-type]


async def test_two_middlewares_share_one_config(clerk: MockClerk, clock: FakeClock) -> None:
    """One config serves several apps; each middleware keeps its own key cache."""
    config = ClerkConfig(**clerk.middleware_options(rules=[Rule.api("/x")], clock=clock))
    first, second = ClerkMiddleware(Spy(), config=config), ClerkMiddleware(Spy(), config=config)
    assert first.config is second.config is config
    assert first.keys is not second.keys
    token = clerk.token(issued_at=clock.now)
    for middleware in (first, second):
        scope = http_scope("/x", [(b"authorization", f"Bearer {token}".encode())])
        sent = await call(middleware, scope)
        assert response_headers(sent).get("x-user-id") == "user_test"


@pytest.mark.parametrize("rules", [Rule.api("/api/:path*"), "/api/(.*)"])
def test_rules_must_be_a_list(clerk: MockClerk, rules: Any) -> None:
    """rules=Rule.api(...) (not a list) is refused with a message saying how to write it."""
    with pytest.raises(ConfigurationError, match=r"rules must be a list of Rule objects"):
        ClerkConfig(**clerk.middleware_options(rules=rules))


def test_sign_in_error_suggests_the_safe_public_pattern(clerk: MockClerk) -> None:
    """A rule protecting the sign-in page is refused, suggesting '/sign-in/:path*' (no siblings)."""
    with pytest.raises(ConfigurationError) as error:
        ClerkConfig(**clerk.middleware_options(rules=[Rule.protect("/:path*")]))
    assert "Make it public (Rule.public('/sign-in/:path*'), which also covers" in str(error.value)


@pytest.mark.parametrize(
    ("options", "expected"),
    [
        ({}, ["Session tokens' iss and azp are not checked"]),
        ({"issuer": "https://clerk.example.com"}, ["Session tokens' azp is not checked"]),
        (
            {"authorized_parties": ["https://app.example.com"]},
            ["Session tokens' iss is not checked"],
        ),
        (
            {"issuer": "https://clerk.example.com", "authorized_parties": ["https://a.example"]},
            [],
        ),
    ],
)
def test_unchecked_claims_are_one_warning_at_start_up(
    clerk: MockClerk, caplog: pytest.LogCaptureFixture, options: dict[str, Any], expected: list[str]
) -> None:
    """Unchecked iss/azp is one WARNING when the middleware is built (uvicorn shows WARNING)."""
    caplog.set_level(logging.DEBUG, logger="clerk_asgi")
    ClerkMiddleware(Spy(), jwt_key=clerk.key.public_pem, **options)
    records = [r for r in caplog.records if r.name.startswith("clerk_asgi")]
    assert [r.levelno for r in records] == [logging.WARNING] * len(expected)
    for record, text in zip(records, expected, strict=True):
        assert text in record.getMessage()


async def test_ipv6_server_address_is_bracketed(clerk: MockClerk, clock: FakeClock) -> None:
    """With no usable Host and an IPv6 server address, redirect_url brackets the address."""
    middleware = ClerkMiddleware(Spy(), **clerk.middleware_options(clock=clock))
    for server, expected in (
        (("::1", 8080), "http://[::1]:8080/dashboard"),
        (("fe80::1%eth0", 80), "http://[fe80::1%25eth0]/dashboard"),
    ):
        scope = http_scope(
            "/dashboard", [(b"sec-fetch-dest", b"document")], host=None, server=server
        )
        scope["scheme"] = "http"
        sent = await call(middleware, scope)
        assert redirect_url_of(response_headers(sent)["location"]) == expected


async def test_a_header_of_another_scheme_is_named_in_the_401(
    clerk: MockClerk, clock: FakeClock
) -> None:
    """'bearer' (lower case) or 'Basic' is ignored as Clerk does; the 401 message says why."""
    middleware = ClerkMiddleware(Spy(), **clerk.middleware_options(clock=clock))
    token = clerk.token(issued_at=clock.now)
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(middleware), base_url="https://app.example.com"
    ) as client:
        for value in (f"bearer {token}", "Basic dXNlcjpwYXNz"):
            response = await client.get("/api/x", headers={"authorization": value})
            assert (response.status_code, response.json()) == (
                401,
                {
                    "error": "unauthorized",
                    "reason": "session-token-missing",
                    "message": "The Authorization header was ignored: its scheme is not "
                    "'Bearer' (exact case). Send 'Authorization: Bearer <session token>'.",
                },
            )
        missing = await client.get("/api/x")
        assert missing.json()["message"] == "Sign in to continue."


def test_the_secret_key_comes_from_the_environment_beside_a_pem_key(
    clerk: MockClerk, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A PEM key in code still verifies tokens; CLERK_SECRET_KEY stays there for the Backend API."""
    monkeypatch.setenv("CLERK_SECRET_KEY", SECRET)
    config = ClerkConfig(jwt_key=clerk.key.public_pem)
    assert (config.secret_key, config.jwt_key is not None, config.jwks_url) == (SECRET, True, None)


@pytest.mark.parametrize("default", [["/api"], "private", None])
def test_a_default_that_is_not_a_rule_names_the_option(clerk: MockClerk, default: Any) -> None:
    """default= must be a kind name or a Rule; the message names default, not rules."""
    with pytest.raises(ConfigurationError, match=r"^default must be 'protect', 'public', 'api' or"):
        ClerkConfig(**clerk.middleware_options(default=default))


def test_attributes_cannot_be_deleted(clerk: MockClerk) -> None:
    """Deleting an attribute raises too: the config stays whole."""
    config = ClerkConfig(**clerk.middleware_options())
    with pytest.raises(AttributeError, match="ClerkConfig is frozen: sign_in_url cannot be"):
        del config.sign_in_url
    assert config.sign_in_url == "/sign-in"


@pytest.mark.parametrize(
    "host", [b"host:99999", b"host:0", b"host:", b"a..b", b"host:\xc2\xb2", b".", b"host:123456"]
)
async def test_a_host_that_is_no_host_falls_back_to_the_server(
    clerk: MockClerk, clock: FakeClock, host: bytes
) -> None:
    """A Host with a port out of range, an empty port or label is refused: the server's
    address builds redirect_url."""
    middleware = ClerkMiddleware(Spy(), **clerk.middleware_options(clock=clock))
    scope = http_scope("/dashboard", [(b"sec-fetch-dest", b"document")], host=host)
    scope["server"] = ("10.0.0.5", 443)
    sent = await call(middleware, scope)
    assert redirect_url_of(response_headers(sent)["location"]) == "https://10.0.0.5/dashboard"


@pytest.mark.parametrize(
    "proxy",
    ["//evil.example/__clerk", "http://proxy.example", "/__clerk?x=1", "/__c lerk", "ftp:x"],
)
def test_a_proxy_url_that_is_neither_https_nor_a_path_is_refused(
    clerk: MockClerk, proxy: str
) -> None:
    """proxy_url must be an https URL or a path of this site, without query or fragment."""
    with pytest.raises(ConfigurationError, match=r"^proxy_url \(CLERK_PROXY_URL\) must be an"):
        ClerkConfig(**clerk.middleware_options(proxy_url=proxy))


@pytest.mark.parametrize("timeout", [0, -1.0, float("nan")])
def test_api_timeout_must_be_positive(clerk: MockClerk, timeout: float) -> None:
    """api_timeout bounds every Backend API call: zero, negative or NaN is refused."""
    with pytest.raises(ConfigurationError, match=r"^api_timeout must be > 0 seconds"):
        ClerkConfig(**clerk.middleware_options(api_timeout=timeout))


def test_the_decision_runs_public_routes_for_everyone() -> None:
    """decide() answers None (run the app) on a public rule, signed in or not."""
    from clerk_asgi._decide import decide
    from clerk_asgi._request import Incoming

    config = ClerkConfig(jwt_key=MockClerk().key.public_pem)
    request = Incoming({"type": "http", "method": "GET", "path": "/", "headers": []})
    for auth in (Auth.signed_out("token-expired"), Auth(user_id="user_1")):
        assert decide(Rule.public("/"), auth, request, config, lambda: 1) is None
