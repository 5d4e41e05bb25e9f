"""URLs in the configuration: jwks_url, api_url, sign_in_url and unauthorized_url.

Key URLs must be https (plain http only on localhost); redirect targets must be an own-site
ASCII path or an https URL, and may not sit behind a rule that needs what they grant, which
would loop (docs/configuration.md "What is refused at start-up"). Every mistake raises
``ConfigurationError`` at construction, saying how to fix it.
"""

from __future__ import annotations

import re
from typing import Any

import httpx
import pytest

from clerk_asgi import ConfigurationError, Rule
from clerk_asgi.testing import FakeClock, JWKSTransport, KeyPair, MockClerk, mint_session_token

from ._config_helpers import (
    HTML,
    ORIGIN,
    PK,
    build,
    get,
    message,
    pk,
)
from ._middleware_helpers import (
    BROWSER,
    assert_ran,
    assert_redirect,
    client,
    make_app,
    sign_in_location,
)
from .helpers import bearer

# -- jwks_url and api_url: https, or plain http on localhost only ---------------------------------


@pytest.mark.parametrize(
    "url",
    [
        "http://clerk.example.com/.well-known/jwks.json",
        "http://localhost.evil.com/jwks",
        "http://127.0.0.1.evil.com/jwks",
        "ftp://clerk.example.com/jwks.json",
        "file://localhost/etc/passwd",
        "gopher://clerk.example.com/jwks",
    ],
)
def test_jwks_url_must_be_https(url: str) -> None:
    """jwks_url over plain http (outside localhost) or another scheme is refused: use https."""
    with pytest.raises(ConfigurationError) as excinfo:
        build(jwks_url=url)
    text = message(excinfo)
    assert text.startswith("jwks_url must use https://")
    assert "localhost" in text


@pytest.mark.parametrize(
    "url",
    [
        "file:///etc/passwd",
        "https:///jwks.json",
        "https://clerk.example.com/jwks json",
        "https://clerk.example.com\\@evil.com/jwks",
        "not a url",
    ],
)
def test_jwks_url_that_is_not_a_url(url: str) -> None:
    """A jwks_url without a host, or with whitespace or backslashes, is refused."""
    with pytest.raises(ConfigurationError, match="jwks_url"):
        build(jwks_url=url)


@pytest.mark.parametrize("url", ["file:///etc/passwd", "clerk.example.com/.well-known/jwks.json"])
def test_jwks_url_without_host_says_how_to_fix_it(url: str) -> None:
    """Every refused jwks_url says that an https:// URL is expected."""
    with pytest.raises(ConfigurationError, match="https://"):
        build(jwks_url=url)


@pytest.mark.anyio
@pytest.mark.parametrize(
    "url",
    [
        "http://localhost:8080/jwks",
        "http://LOCALHOST/jwks",
        "http://127.0.0.1:9000/.well-known/jwks.json",
        "http://[::1]:8080/jwks",
        "https://clerk.example.com/.well-known/jwks.json",
    ],
)
async def test_jwks_url_accepted(url: str, key: KeyPair, clock: FakeClock) -> None:
    """https anywhere and plain http on localhost are accepted, and fetched as given."""
    transport = JWKSTransport(key)
    async with httpx.AsyncClient(transport=transport) as client:
        app = build(jwks_url=url, http_client=client, clock=clock)
        r = await get(app, token=mint_session_token(key, issued_at=clock.now))
    assert r.status_code == 200
    assert [str(request.url) for request in transport.requests] == [
        str(httpx.URL(url)),
    ]


def test_api_url_must_be_https() -> None:
    """A plain-http Backend API URL is refused (the secret key would travel in clear)."""
    with pytest.raises(ConfigurationError, match="https://"):
        build(secret_key="sk_test_abc123", api_url="http://api.clerk.example.com")


def test_api_url_error_names_api_url() -> None:
    """The error for a bad api_url names api_url (CLERK_API_URL), not jwks_url."""
    with pytest.raises(ConfigurationError, match="api_url"):
        build(secret_key="sk_test_abc123", api_url="http://api.clerk.example.com")


@pytest.mark.parametrize("option", ["jwks_url", "sign_in_url"])
def test_unparseable_url_is_a_configuration_error(option: str) -> None:
    """A URL that urllib cannot even split (a broken IPv6 host) is refused at construction."""
    with pytest.raises(ConfigurationError, match=rf"^{option} must"):
        build(**{"jwks_url": "https://clerk.example.com/jwks", option: "https://[::1/x"})


# -- sign_in_url and unauthorized_url: a path on this site or an https URL ------------------------

#: What is wrong with a refused redirect target, as the start of its error message.
NOT_A_TARGET = "must be a path on this site like '/sign-in' or an https:// URL, got "
WHITESPACE = "'.*' contains whitespace, control characters or '\\\\'"
NON_ASCII = "'.*' must be ASCII: percent-encode it"
OWN_REDIRECT_URL = "'.*' already has a redirect_url parameter"


@pytest.mark.parametrize(
    ("option", "url", "problem"),
    [
        # not an own-site path, not an https URL
        pytest.param("sign_in_url", "javascript:alert(1)", NOT_A_TARGET, id="javascript"),
        pytest.param(
            "sign_in_url", "//accounts.example.com/sign-in", NOT_A_TARGET, id="scheme-less"
        ),
        pytest.param("sign_in_url", "http://accounts.example.com/sign-in", NOT_A_TARGET, id="http"),
        pytest.param("sign_in_url", "ftp://accounts.example.com/sign-in", NOT_A_TARGET, id="ftp"),
        pytest.param(
            "sign_in_url", "data:text/html,<script>alert(1)</script>", NOT_A_TARGET, id="data"
        ),
        pytest.param("sign_in_url", "sign-in", NOT_A_TARGET, id="relative"),
        pytest.param("sign_in_url", "https://", NOT_A_TARGET, id="https-without-host"),
        pytest.param(
            "sign_in_url", "https:accounts.example.com/sign-in", NOT_A_TARGET, id="https-no-slashes"
        ),
        pytest.param("sign_in_url", "accounts.example.com/sign-in", NOT_A_TARGET, id="bare-host"),
        # whitespace, control characters, backslashes
        pytest.param("sign_in_url", "/sign in", WHITESPACE, id="space"),
        pytest.param("sign_in_url", "/sign-in\r\nSet-Cookie: a=b", WHITESPACE, id="crlf"),
        pytest.param("sign_in_url", "/\\evil.com", WHITESPACE, id="backslash"),
        pytest.param("sign_in_url", "\\\\evil.com", WHITESPACE, id="two-backslashes"),
        pytest.param("sign_in_url", "/sign-in\x00", WHITESPACE, id="nul"),
        # refused at construction rather than at request time
        pytest.param("sign_in_url", "/connexion/\u00e9", NON_ASCII, id="non-ascii"),
        pytest.param(
            "sign_in_url",
            "/sign-in?redirect_url=https://evil.example",
            OWN_REDIRECT_URL,
            id="own-redirect-url",
        ),
        # unauthorized_url follows the same rules
        pytest.param("unauthorized_url", "javascript:alert(1)", NOT_A_TARGET, id="u-javascript"),
        pytest.param("unauthorized_url", "//evil.com", NOT_A_TARGET, id="u-scheme-less"),
        pytest.param(
            "unauthorized_url", "http://evil.example.com/denied", NOT_A_TARGET, id="u-http"
        ),
        pytest.param("unauthorized_url", "/a b", WHITESPACE, id="u-space"),
        pytest.param("unauthorized_url", "/connexion/\u00e9", NON_ASCII, id="u-non-ascii"),
    ],
)
def test_unsafe_redirect_target_is_a_configuration_error(
    option: str, url: str, problem: str, key: KeyPair
) -> None:
    """Only an own-site ASCII path or an https URL may be sign_in_url or unauthorized_url."""
    options: dict[str, Any] = (
        {"sign_in_url": url}
        if option == "sign_in_url"
        else {"rules": [Rule.protect("/admin(.*)", role="org:admin", unauthorized_url=url)]}
    )
    with pytest.raises(ConfigurationError, match=f"^{option} {problem}"):
        build(jwt_key=key.public_pem, **options)


def test_sign_in_url_from_the_environment_is_validated(
    monkeypatch: pytest.MonkeyPatch, key: KeyPair
) -> None:
    """CLERK_SIGN_IN_URL goes through the same validation as the parameter."""
    monkeypatch.setenv("CLERK_SIGN_IN_URL", "javascript:alert(1)")
    with pytest.raises(ConfigurationError, match=f"^sign_in_url {NOT_A_TARGET}"):
        build(jwt_key=key.public_pem, sign_in_url=None)


@pytest.mark.anyio
@pytest.mark.parametrize(
    "url",
    [
        "https://accounts.example.com/sign-in",
        "/sign-in",
        "/sign-in?from=app",
        "/auth/sign-in?x=1",
        "http://localhost:3000/sign-in",
    ],
)
async def test_sign_in_url_accepted(url: str, key: KeyPair) -> None:
    """An https URL, an own-site path (query allowed) or a localhost URL is used as given."""
    app = build(jwt_key=key.public_pem, sign_in_url=url, rules=[])
    r = await get(app, "/dashboard", **HTML)
    assert r.status_code == 307
    assert r.headers["location"].startswith(url + ("&" if "?" in url else "?") + "redirect_url=")


# -- Where signed-out navigations go: sign_in_url, CLERK_SIGN_IN_URL, the Account Portal ----------


@pytest.mark.anyio
async def test_env_sign_in_url(monkeypatch: pytest.MonkeyPatch, key: KeyPair) -> None:
    """CLERK_SIGN_IN_URL is where signed-out navigations are sent, and its path is public."""
    monkeypatch.setenv("CLERK_SIGN_IN_URL", "/sign-in")
    app = build(jwt_key=key.public_pem, rules=[])
    r = await get(app, "/dashboard", **HTML)
    assert r.status_code == 307
    assert (
        r.headers["location"] == "/sign-in?redirect_url=https%3A%2F%2Fapp.example.com%2Fdashboard"
    )
    assert (await get(app, "/sign-in", **HTML)).status_code == 200


@pytest.mark.anyio
@pytest.mark.parametrize(
    ("frontend_api", "sign_in_url"),
    [
        ("clerk.example.com", "https://accounts.example.com/sign-in"),
        ("foo-bar-13.clerk.accounts.dev", "https://foo-bar-13.accounts.dev/sign-in"),
    ],
)
async def test_default_sign_in_url_is_the_account_portal(
    key: KeyPair, frontend_api: str, sign_in_url: str
) -> None:
    """Without sign_in_url, signed-out navigations go to the publishable key's Account Portal."""
    transport = JWKSTransport(key)
    async with httpx.AsyncClient(transport=transport) as client:
        app = build(publishable_key=pk(frontend_api), http_client=client, rules=[])
        r = await get(app, "/dashboard", **HTML)
    assert r.status_code == 307
    assert r.headers["location"] == (
        sign_in_url + "?redirect_url=https%3A%2F%2Fapp.example.com%2Fdashboard"
    )
    assert transport.requests == []


@pytest.mark.anyio
async def test_explicit_sign_in_url_wins_over_the_account_portal(key: KeyPair) -> None:
    """sign_in_url= replaces the Account Portal default of the publishable key."""
    app = build(jwt_key=key.public_pem, publishable_key=PK, sign_in_url="/login", rules=[])
    r = await get(app, "/dashboard", **HTML)
    assert r.headers["location"].startswith("/login?redirect_url=")


# -- No redirect loop: a redirect target may not need what it grants ------------------------------


@pytest.mark.parametrize(
    ("sign_in_url", "rules", "public_origin", "path", "kind"),
    [
        ("/account/sign-in", [Rule.protect("/account(.*)")], None, "/account/sign-in", "protect"),
        ("/account/sign-in", [Rule.api("/account/(.*)")], None, "/account/sign-in", "api"),
        ("/account/sign-in?x=1", [Rule.api("/account/(.*)")], None, "/account/sign-in", "api"),
        ("/Account/Sign-In", [Rule.protect("/account(.*)")], None, "/Account/Sign-In", "protect"),
        ("/sign-in", [Rule.protect("/sign-in")], None, "/sign-in", "protect"),
        ("/sign-in?next=1", [Rule.protect("/sign-in")], None, "/sign-in", "protect"),
        ("/sign-in", [Rule.api("/(.*)")], None, "/sign-in", "api"),
        ("/auth/sign-in", [Rule.protect("/auth/:page")], None, "/auth/sign-in", "protect"),
        # an absolute sign_in_url on public_origin is this site too
        (
            ORIGIN + "/account/sign-in",
            [Rule.protect("/account(.*)")],
            ORIGIN,
            "/account/sign-in",
            "protect",
        ),
        (
            ORIGIN + "/account/sign-in",
            [Rule.protect("/account/:path*")],
            ORIGIN,
            "/account/sign-in",
            "protect",
        ),
    ],
)
def test_sign_in_path_covered_by_a_protecting_rule(
    sign_in_url: str,
    rules: list[Rule],
    public_origin: str | None,
    path: str,
    kind: str,
    key: KeyPair,
) -> None:
    """A protect/api rule covering the sign-in path would loop: refused, saying how to fix it."""
    covered = rf"^sign_in_url path '{re.escape(path)}' is covered by a Rule\.{kind}\(\.\.\.\) rule"
    with pytest.raises(ConfigurationError, match=covered) as excinfo:
        build(
            jwt_key=key.public_pem,
            sign_in_url=sign_in_url,
            rules=rules,
            public_origin=public_origin,
        )
    assert "Rule.public(" in message(excinfo)


@pytest.mark.anyio
async def test_sign_in_url_on_another_origin_is_not_checked_against_rules(key: KeyPair) -> None:
    """An https sign_in_url on another site is not this app's path: rules may cover it."""
    sign_in_url = "https://accounts.example.com/account/sign-in"
    app = build(
        jwt_key=key.public_pem, sign_in_url=sign_in_url, rules=[Rule.protect("/account(.*)")]
    )
    r = await get(app, "/account/settings", **HTML)
    assert r.status_code == 307
    assert r.headers["location"] == (
        sign_in_url + "?redirect_url=https%3A%2F%2Fapp.example.com%2Faccount%2Fsettings"
    )


@pytest.mark.anyio
async def test_sign_in_path_made_public_explicitly_is_fine(
    clerk: MockClerk, clock: FakeClock
) -> None:
    """An explicit Rule.public for the sign-in path before a protecting rule is accepted."""
    rules = [Rule.public("/account/sign-in(.*)"), Rule.protect("/account(.*)")]
    app = make_app(clerk, clock, rules=rules, sign_in_url="/account/sign-in")
    async with client(app) as c:
        page = await c.get("/account/sign-in/factor-one", headers=BROWSER)
        settings = await c.get("/account/settings", headers=BROWSER)
    assert_ran(page, None, "session-token-missing")
    assert_redirect(
        settings,
        sign_in_location("https://app.example.com/account/settings", "/account/sign-in"),
        "session-token-missing",
    )


@pytest.mark.parametrize(
    ("rules", "public_origin", "url"),
    [
        pytest.param(
            [Rule.protect("/admin(.*)", role="org:admin", unauthorized_url="/admin/unauthorized")],
            None,
            "/admin/unauthorized",
            id="own-rule",
        ),
        pytest.param(
            [Rule.protect("/admin(.*)", role="org:admin", unauthorized_url="/ADMIN/unauthorized")],
            None,
            "/ADMIN/unauthorized",
            id="own-rule-other-case",
        ),
        pytest.param(
            [
                Rule.protect(
                    "/admin(.*)", role="org:admin", unauthorized_url=ORIGIN + "/admin/unauthorized"
                )
            ],
            ORIGIN,
            ORIGIN + "/admin/unauthorized",
            id="own-rule-absolute-on-public-origin",
        ),
        pytest.param(
            [
                Rule.protect("/billing(.*)", permission="org:billing:manage"),
                Rule.protect("/admin(.*)", role="org:admin", unauthorized_url="/billing/denied"),
            ],
            None,
            "/billing/denied",
            id="other-rule-with-a-permission",
        ),
        pytest.param(
            [
                Rule.protect("/admin(.*)", role="org:admin", unauthorized_url="/billing/denied"),
                Rule.protect("/billing(.*)", role="org:billing", unauthorized_url="/admin/denied"),
            ],
            None,
            "/billing/denied",
            id="redirecting-into-each-other",
        ),
    ],
)
def test_unauthorized_url_needing_a_role_is_a_configuration_error(
    rules: list[Rule], public_origin: str | None, url: str, key: KeyPair
) -> None:
    """An unauthorized_url that itself needs a role or permission could loop: refused."""
    covered = rf"^unauthorized_url '{re.escape(url)}' is covered by a rule that requires a role"
    with pytest.raises(ConfigurationError, match=covered) as excinfo:
        build(jwt_key=key.public_pem, rules=rules, public_origin=public_origin)
    assert "Make it public" in message(excinfo)


@pytest.mark.anyio
async def test_unauthorized_url_under_a_plain_protect_rule_is_fine(
    clerk: MockClerk, clock: FakeClock
) -> None:
    """An unauthorized_url behind sign-in only (no role) is accepted: the refused user gets in."""
    rules = [Rule.protect("/admin(.*)", role="org:admin", unauthorized_url="/unauthorized")]
    member = {**BROWSER, **bearer(clerk.token(issued_at=clock.now))}
    async with client(make_app(clerk, clock, rules=rules)) as c:
        refused = await c.get("/admin/users", headers=member)
        landing = await c.get("/unauthorized", headers=member)
        anonymous = await c.get("/unauthorized", headers=BROWSER)
    assert_redirect(refused, "/unauthorized", "authorization-failed", status="signed-in")
    assert_ran(landing, "user_test")
    assert_redirect(
        anonymous, sign_in_location("https://app.example.com/unauthorized"), "session-token-missing"
    )
