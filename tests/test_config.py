"""Configuration: every mistake raises ConfigurationError at construction, saying how to fix it;
``CLERK_*`` environment fallbacks; key-source precedence; publishable-key parsing (Clerk §4).

Which key source is used is observed from the outside: the URL a ``JWKSTransport`` is asked
for, or that no request happens at all for a PEM key.
"""

from __future__ import annotations

import base64
from typing import Any

import httpx
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from clerk_asgi import ClerkMiddleware, ConfigurationError, Rule, get_auth
from clerk_asgi._config import parse_publishable_key
from clerk_asgi.testing import JWKSTransport, KeyPair, mint_session_token

from .conftest import FakeClock

ORIGIN = "https://app.example.com"
ISSUER = "https://clerk.example.com"
FAPI_JWKS = "https://clerk.example.com/.well-known/jwks.json"
EXAMPLE_PK = "pk_live_Y2xlcmsuaW5zcGlyZWQucHVtYS03NC5sY2wuZGV2JA"
HTML = {"accept": "text/html"}


def pk(host: str, *, live: bool = False) -> str:
    """A publishable key for ``host``, built as Clerk's buildPublishableKey does (unpadded)."""
    encoded = base64.b64encode(f"{host}$".encode()).decode().rstrip("=")
    return f"pk_{'live' if live else 'test'}_{encoded}"


PK = pk("clerk.example.com")


def inner_app() -> Starlette:
    async def whoami(request: Request) -> JSONResponse:
        auth = get_auth(request)
        return JSONResponse({"user_id": auth.user_id, "reason": auth.reason})

    return Starlette(
        routes=[
            Route("/api/me", whoami),
            Route("/dashboard", whoami),
            Route("/sign-in", whoami),
            Route("/sign-in/factor-one", whoami),
        ]
    )


def build(**options: Any) -> ClerkMiddleware:
    """ClerkMiddleware around a tiny app; rules default to ``Rule.api("/api/(.*)")``."""
    options.setdefault("rules", [Rule.api("/api/(.*)")])
    return ClerkMiddleware(inner_app(), **options)


async def get(
    app: ClerkMiddleware, path: str = "/api/me", *, token: str | None = None, **headers: str
) -> httpx.Response:
    if token is not None:
        headers["authorization"] = f"Bearer {token}"
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app), base_url=ORIGIN) as client:
        return await client.get(path, headers=headers)


def message(excinfo: pytest.ExceptionInfo[ConfigurationError]) -> str:
    return str(excinfo.value)


# --------------------------------------------------------------------------------------------
# No key material
# --------------------------------------------------------------------------------------------


def test_no_key_material_names_every_variable() -> None:
    """Without any key source the error names all four CLERK_* variables and the parameters."""
    with pytest.raises(ConfigurationError) as excinfo:
        build()
    text = message(excinfo)
    for name in ("CLERK_JWT_KEY", "CLERK_SECRET_KEY", "CLERK_PUBLISHABLE_KEY", "CLERK_JWKS_URL"):
        assert name in text
    for name in ("jwt_key=", "secret_key=", "publishable_key=", "jwks_url="):
        assert name in text


@pytest.mark.parametrize(
    "variable", ["CLERK_JWT_KEY", "CLERK_SECRET_KEY", "CLERK_PUBLISHABLE_KEY", "CLERK_JWKS_URL"]
)
def test_an_empty_variable_counts_as_unset(monkeypatch: pytest.MonkeyPatch, variable: str) -> None:
    """CLERK_X="" is no key material: the no-key error, not a parse error of ''."""
    monkeypatch.setenv(variable, "")
    with pytest.raises(ConfigurationError, match="No Clerk key material"):
        build()


def test_configuration_error_is_a_value_error() -> None:
    """ConfigurationError is a ValueError, so generic config handling catches it."""
    with pytest.raises(ValueError, match="No Clerk key material"):
        build()


# --------------------------------------------------------------------------------------------
# Publishable keys (clerk-semantics §4)
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("key", "frontend_api", "production"),
    [
        (EXAMPLE_PK, "clerk.inspired.puma-74.lcl.dev", True),
        (pk("clerk.example.com", live=True), "clerk.example.com", True),
        (pk("foo-bar-13.clerk.accounts.dev"), "foo-bar-13.clerk.accounts.dev", False),
        (pk("Clerk.Example.COM"), "clerk.example.com", False),
        ("  " + PK + "\n", "clerk.example.com", False),
        # Padding is optional: Clerk strips it, a padded key still decodes.
        ("pk_test_" + base64.b64encode(b"clerk.example.co$").decode(), "clerk.example.co", False),
    ],
)
def test_publishable_key_parsing(key: str, frontend_api: str, production: bool) -> None:
    """pk_(test|live)_<base64 of "<frontend api>$"> gives the host, issuer and JWKS URL."""
    parsed = parse_publishable_key(key)
    assert parsed.frontend_api == frontend_api
    assert parsed.is_production is production
    assert parsed.issuer == f"https://{frontend_api}"
    assert parsed.jwks_url == f"https://{frontend_api}/.well-known/jwks.json"


@pytest.mark.parametrize(
    ("frontend_api", "sign_in_url"),
    [
        ("clerk.example.com", "https://accounts.example.com/sign-in"),
        ("foo-bar-13.clerk.accounts.dev", "https://foo-bar-13.accounts.dev/sign-in"),
    ],
)
def test_account_portal_sign_in_url(frontend_api: str, sign_in_url: str) -> None:
    """The Account Portal replaces clerk./clerk.accounts. with accounts. (buildAccountsBaseUrl)."""
    assert parse_publishable_key(pk(frontend_api)).accounts_sign_in_url == sign_in_url


@pytest.mark.parametrize(
    "key",
    [
        # ---- bad prefix / shape ----
        pytest.param("pk_prod_" + PK[8:], id="prefix-prod"),
        pytest.param("sk_test_" + PK[8:], id="prefix-sk"),
        pytest.param("PK_TEST_" + PK[8:], id="prefix-upper"),
        pytest.param("pk_test", id="two-parts"),
        pytest.param("pk_test_", id="empty-body"),
        pytest.param(PK + "_extra", id="four-parts"),
        pytest.param(PK[8:], id="no-prefix"),
        # ---- not base64 ----
        pytest.param("pk_test_!!!!", id="not-base64"),
        pytest.param("pk_test_Y2xlcmsuZXhhbXBsZS5jb20k-", id="urlsafe-char"),
        pytest.param("pk_test_" + base64.b64encode(b"\xff\xfe.com$").decode(), id="not-ascii"),
        # ---- decoded text ----
        pytest.param("pk_test_" + base64.b64encode(b"clerk.example.com").decode(), id="no-dollar"),
        pytest.param(pk("localhost"), id="no-dot"),
        pytest.param(pk("clerk.$example.com"), id="two-dollars"),
        pytest.param(pk("clerk.example.com$"), id="double-dollar-end"),
        pytest.param(pk("clerk.example.com/evil"), id="path-in-host"),
        pytest.param(pk("evil.com@clerk.example.com"), id="userinfo-in-host"),
        pytest.param(pk(".example.com"), id="leading-dot"),
    ],
)
def test_malformed_publishable_key(key: str) -> None:
    """A malformed publishable key is refused, pointing at the Dashboard and the variable."""
    with pytest.raises(ConfigurationError) as excinfo:
        build(publishable_key=key)
    text = message(excinfo)
    assert "publishable key" in text
    assert "pk_test_" in text
    assert "CLERK_PUBLISHABLE_KEY" in text


def test_malformed_publishable_key_is_refused_even_beside_a_pem_key(key: KeyPair) -> None:
    """A broken CLERK_PUBLISHABLE_KEY is an error even when jwt_key supplies the keys."""
    with pytest.raises(ConfigurationError, match="CLERK_PUBLISHABLE_KEY"):
        build(jwt_key=key.public_pem, publishable_key="pk_test_!!!!")


# --------------------------------------------------------------------------------------------
# Secret keys
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "secret",
    ["sk_prod_abc123", "pk_test_abc123", "sk_test_", "sk_test_abc 123", "sk_test_abc/123", "abc"],
)
def test_malformed_secret_key(secret: str) -> None:
    """A secret key that is not sk_test_.../sk_live_... is refused, naming CLERK_SECRET_KEY."""
    with pytest.raises(ConfigurationError) as excinfo:
        build(secret_key=secret)
    text = message(excinfo)
    assert "sk_test_" in text
    assert "CLERK_SECRET_KEY" in text


def test_malformed_secret_key_is_never_echoed() -> None:
    """The error for a malformed secret key does not repeat the secret."""
    with pytest.raises(ConfigurationError) as excinfo:
        build(secret_key="sk_prod_SuperSecretValue42")
    assert "SuperSecretValue42" not in message(excinfo)


# --------------------------------------------------------------------------------------------
# jwt_key (PEM)
# --------------------------------------------------------------------------------------------


def _pem(private_key: rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey) -> str:
    return (
        private_key.public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        .decode()
    )


def test_jwt_key_not_pem() -> None:
    """A jwt_key that is not PEM says where the Dashboard shows the PEM public key."""
    with pytest.raises(ConfigurationError) as excinfo:
        build(jwt_key="not a pem key")
    text = message(excinfo)
    assert "not a PEM public key" in text
    assert "CLERK_JWT_KEY" in text
    assert "PEM Public Key" in text


def test_jwt_key_private_key_pem_is_refused(key: KeyPair) -> None:
    """A private key PEM pasted as jwt_key is refused (only the public key belongs there)."""
    private_pem = key.private_key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    ).decode()
    with pytest.raises(ConfigurationError, match="not a PEM public key"):
        build(jwt_key=private_pem)


def test_jwt_key_not_rsa() -> None:
    """An EC public key is refused: Clerk signs session tokens with RS256."""
    with pytest.raises(ConfigurationError, match="must be an RSA public key") as excinfo:
        build(jwt_key=_pem(ec.generate_private_key(ec.SECP256R1())))
    assert "CLERK_JWT_KEY" in message(excinfo)


def test_jwt_key_too_small() -> None:
    """A 1024-bit RSA key is refused with the accepted sizes."""
    # S505: generating a breakable key is the point of this test.
    small = rsa.generate_private_key(public_exponent=65537, key_size=1024)  # noqa: S505
    with pytest.raises(ConfigurationError, match="2048- to 4096-bit RSA key"):
        build(jwt_key=_pem(small))


def test_jwt_key_with_exponent_3_is_refused() -> None:
    """An RSA key whose public exponent is not 65537 is refused."""
    weak = rsa.generate_private_key(public_exponent=3, key_size=2048)
    with pytest.raises(ConfigurationError, match="exponent 65537"):
        build(jwt_key=_pem(weak))


@pytest.mark.anyio
async def test_jwt_key_with_literal_newline_escapes(key: KeyPair, clock: FakeClock) -> None:
    """A PEM whose newlines are written as literal \\n (as .env files do) is accepted."""
    escaped = key.public_pem.strip().replace("\n", "\\n")
    assert "\n" not in escaped
    app = build(jwt_key=escaped, clock=clock)
    r = await get(app, token=mint_session_token(key, user_id="user_1", issued_at=clock.now))
    assert r.status_code == 200
    assert r.json() == {"user_id": "user_1", "reason": None}


# --------------------------------------------------------------------------------------------
# jwks_url
# --------------------------------------------------------------------------------------------


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
    assert "jwks_url must use https://" in text
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


# --------------------------------------------------------------------------------------------
# sign_in_url and unauthorized_url (security cases 82, 83)
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "url",
    [
        "javascript:alert(1)",
        "//accounts.example.com/sign-in",
        "http://accounts.example.com/sign-in",
        "https:accounts.example.com/sign-in",
        "data:text/html,<script>alert(1)</script>",
        "sign-in",
        "accounts.example.com/sign-in",
    ],
)
def test_sign_in_url_refused(url: str, key: KeyPair) -> None:
    """A sign_in_url that is not an own-origin path or an https URL is refused (case 83)."""
    with pytest.raises(ConfigurationError) as excinfo:
        build(jwt_key=key.public_pem, sign_in_url=url)
    text = message(excinfo)
    assert "sign_in_url must be a path on this site like '/sign-in'" in text
    assert "https://" in text


@pytest.mark.parametrize(
    "url", ["/sign-in\r\nSet-Cookie: a=b", "/\\evil.example.com", "/sign in", "/sign-in\x00"]
)
def test_sign_in_url_with_control_characters_refused(url: str, key: KeyPair) -> None:
    """Whitespace, control characters and backslashes in sign_in_url are refused."""
    with pytest.raises(ConfigurationError, match=r"sign_in_url .* contains whitespace"):
        build(jwt_key=key.public_pem, sign_in_url=url)


def test_sign_in_url_from_the_environment_is_validated(
    monkeypatch: pytest.MonkeyPatch, key: KeyPair
) -> None:
    """CLERK_SIGN_IN_URL goes through the same validation as the parameter."""
    monkeypatch.setenv("CLERK_SIGN_IN_URL", "javascript:alert(1)")
    with pytest.raises(ConfigurationError, match="sign_in_url"):
        build(jwt_key=key.public_pem)


@pytest.mark.anyio
@pytest.mark.parametrize(
    "url",
    [
        "https://accounts.example.com/sign-in",
        "/sign-in",
        "/sign-in?from=app",
        "http://localhost:3000/sign-in",
    ],
)
async def test_sign_in_url_accepted(url: str, key: KeyPair) -> None:
    """An https URL, an own-origin path or a localhost URL is used for the sign-in redirect."""
    app = build(jwt_key=key.public_pem, sign_in_url=url, rules=[])
    r = await get(app, "/dashboard", **HTML)
    assert r.status_code == 307
    assert r.headers["location"].startswith(url + ("&" if "?" in url else "?") + "redirect_url=")


@pytest.mark.parametrize(
    ("sign_in_url", "rules", "kind"),
    [
        ("/account/sign-in", [Rule.protect("/account(.*)")], "protect"),
        ("/account/sign-in", [Rule.api("/account/(.*)")], "api"),
        ("/Account/Sign-In", [Rule.protect("/account(.*)")], "protect"),
        ("/sign-in", [Rule.protect("/sign-in")], "protect"),
        ("/sign-in?next=1", [Rule.protect("/sign-in")], "protect"),
        ("/sign-in", [Rule.api("/(.*)")], "api"),
        ("/auth/sign-in", [Rule.protect("/auth/:page")], "protect"),
    ],
)
def test_sign_in_path_covered_by_an_explicit_rule(
    sign_in_url: str, rules: list[Rule], kind: str, key: KeyPair
) -> None:
    """A protect/api rule covering the sign-in path would loop: refused, saying how (case 82)."""
    with pytest.raises(ConfigurationError) as excinfo:
        build(jwt_key=key.public_pem, sign_in_url=sign_in_url, rules=rules)
    text = message(excinfo)
    assert "sign_in_url path" in text
    assert f"Rule.{kind}(...)" in text
    assert "Rule.public(" in text


def test_absolute_sign_in_url_on_the_public_origin_is_checked_too(key: KeyPair) -> None:
    """An absolute sign_in_url on public_origin is this site: a protecting rule is refused."""
    with pytest.raises(ConfigurationError, match="sign_in_url path '/account/sign-in'"):
        build(
            jwt_key=key.public_pem,
            public_origin=ORIGIN,
            sign_in_url=ORIGIN + "/account/sign-in",
            rules=[Rule.protect("/account(.*)")],
        )


def test_sign_in_url_on_another_origin_is_not_checked_against_rules(key: KeyPair) -> None:
    """An https sign_in_url on another site is not this app's path: rules may cover it."""
    build(
        jwt_key=key.public_pem,
        sign_in_url="https://accounts.example.com/account/sign-in",
        rules=[Rule.protect("/account(.*)")],
    )


@pytest.mark.anyio
async def test_sign_in_path_is_public_under_a_protecting_default(key: KeyPair) -> None:
    """With default=protect and no explicit rule the sign-in page and its sub-pages stay open."""
    app = build(jwt_key=key.public_pem, sign_in_url="/sign-in", rules=[])
    for path in ("/sign-in", "/sign-in/factor-one"):
        r = await get(app, path, **HTML)
        assert r.status_code == 200, path
        assert r.json() == {"user_id": None, "reason": "session-token-missing"}
    r = await get(app, "/dashboard", **HTML)
    assert r.status_code == 307


def test_sign_in_path_made_public_explicitly_is_fine(key: KeyPair) -> None:
    """An explicit Rule.public for the sign-in path before a protecting rule is accepted."""
    build(
        jwt_key=key.public_pem,
        sign_in_url="/account/sign-in",
        rules=[Rule.public("/account/sign-in(.*)"), Rule.protect("/account(.*)")],
    )


@pytest.mark.parametrize(
    "url", ["javascript:alert(1)", "//evil.example.com", "http://evil.example.com/denied"]
)
def test_unauthorized_url_refused(url: str, key: KeyPair) -> None:
    """unauthorized_url is validated like sign_in_url."""
    rule = Rule.protect("/admin(.*)", role="org:admin", unauthorized_url=url)
    with pytest.raises(ConfigurationError, match="unauthorized_url must be a path on this site"):
        build(jwt_key=key.public_pem, rules=[rule])


@pytest.mark.parametrize(
    ("url", "public_origin"),
    [
        ("/admin/unauthorized", None),
        ("/ADMIN/unauthorized", None),
        (ORIGIN + "/admin/unauthorized", ORIGIN),
    ],
)
def test_unauthorized_url_covered_by_its_own_rule(
    url: str, public_origin: str | None, key: KeyPair
) -> None:
    """An unauthorized_url that the redirecting rule itself covers would loop: refused."""
    rule = Rule.protect("/admin(.*)", role="org:admin", unauthorized_url=url)
    with pytest.raises(ConfigurationError) as excinfo:
        build(jwt_key=key.public_pem, rules=[rule], public_origin=public_origin)
    text = message(excinfo)
    assert "covered by a rule that requires a role or permission" in text
    assert "Make it public" in text


def test_unauthorized_url_outside_the_rule_is_fine(key: KeyPair) -> None:
    """An unauthorized_url under the plain default protect rule is accepted."""
    rule = Rule.protect("/admin(.*)", role="org:admin", unauthorized_url="/unauthorized")
    build(jwt_key=key.public_pem, rules=[rule])


def test_unauthorized_urls_redirecting_into_each_other(key: KeyPair) -> None:
    """Two role rules whose unauthorized_url lands on the other rule would loop: refused."""
    rules = [
        Rule.protect("/admin(.*)", role="org:admin", unauthorized_url="/billing/denied"),
        Rule.protect("/billing(.*)", role="org:billing", unauthorized_url="/admin/denied"),
    ]
    with pytest.raises(ConfigurationError, match="unauthorized_url"):
        build(jwt_key=key.public_pem, rules=rules)


# --------------------------------------------------------------------------------------------
# Origins, numbers, rules
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "party",
    [
        "https://app.example.com/",
        "https://app.example.com/path",
        "app.example.com",
        "https://app.example.com?x=1",
        "https://app.example.com#top",
        "https://user@app.example.com",
        "ftp://app.example.com",
        "https://app.example.com:99999",
        "https://app.example.com ",
        "*",
    ],
)
def test_authorized_party_must_be_an_origin(party: str, key: KeyPair) -> None:
    """Each authorized party must be scheme://host[:port], nothing else."""
    with pytest.raises(ConfigurationError) as excinfo:
        build(jwt_key=key.public_pem, authorized_parties=["https://ok.example.com", party])
    text = message(excinfo)
    assert "must be an origin like 'https://app.example.com'" in text
    assert "no path or trailing slash" in text


def test_authorized_parties_from_the_environment_are_validated(
    monkeypatch: pytest.MonkeyPatch, key: KeyPair
) -> None:
    """A path in CLERK_AUTHORIZED_PARTIES is refused like the parameter."""
    monkeypatch.setenv("CLERK_AUTHORIZED_PARTIES", "https://app.example.com/")
    with pytest.raises(ConfigurationError, match="must be an origin"):
        build(jwt_key=key.public_pem)


@pytest.mark.parametrize(
    ("name", "value"),
    [("issuer", "https://clerk.example.com/"), ("public_origin", "https://app.example.com/x")],
)
def test_issuer_and_public_origin_must_be_origins(name: str, value: str, key: KeyPair) -> None:
    """issuer and public_origin are origins too."""
    with pytest.raises(ConfigurationError, match=f"{name} must be an origin"):
        build(jwt_key=key.public_pem, **{name: value})


@pytest.mark.parametrize(
    ("name", "value", "expected"),
    [
        ("clock_skew", -1, "clock_skew must be a number >= 0"),
        ("clock_skew", float("nan"), "clock_skew must be a number >= 0"),
        ("jwks_cache_ttl", -1, "jwks_cache_ttl must be a number >= 0"),
        ("jwks_cooldown", -0.5, "jwks_cooldown must be a number >= 0"),
        ("jwks_stale_window", -1, "jwks_stale_window must be a number >= 0"),
        ("jwks_timeout", 0, "jwks_timeout must be > 0"),
        ("max_token_age", 0, "max_token_age must be > 0"),
    ],
)
def test_bad_numbers(name: str, value: float, expected: str, key: KeyPair) -> None:
    """Negative (or NaN) durations are refused, naming the parameter and the valid range."""
    with pytest.raises(ConfigurationError, match=expected):
        build(jwt_key=key.public_pem, **{name: value})


def test_zero_clock_skew_is_allowed(key: KeyPair) -> None:
    """clock_skew=0 is a valid (strict) setting."""
    build(jwt_key=key.public_pem, clock_skew=0)


@pytest.mark.parametrize("default", ["private", "PROTECT", ""])
def test_bad_default(default: str, key: KeyPair) -> None:
    """default must be 'protect', 'public', 'api' or a Rule."""
    with pytest.raises(ConfigurationError, match="default must be 'protect', 'public', 'api'"):
        build(jwt_key=key.public_pem, default=default)


def test_default_that_is_not_a_rule(key: KeyPair) -> None:
    """A non-Rule default object is refused."""
    with pytest.raises(ConfigurationError, match="Rule"):
        build(jwt_key=key.public_pem, default=["/api"])


def test_rules_must_be_rule_objects(key: KeyPair) -> None:
    """A bare pattern string in rules is refused, pointing at Rule.public/protect/api."""
    with pytest.raises(ConfigurationError, match=r"Rule\.public/protect/api"):
        build(jwt_key=key.public_pem, rules=["/api/(.*)"])


def test_pattern_must_start_with_a_slash(key: KeyPair) -> None:
    """A route pattern without a leading '/' is refused at construction."""
    with pytest.raises(ConfigurationError, match="must start with '/'"):
        build(jwt_key=key.public_pem, rules=[Rule.public("sign-in(.*)")])


# --------------------------------------------------------------------------------------------
# Environment fallbacks
# --------------------------------------------------------------------------------------------


@pytest.mark.anyio
async def test_env_jwt_key_needs_no_network(
    monkeypatch: pytest.MonkeyPatch, key: KeyPair, clock: FakeClock
) -> None:
    """CLERK_JWT_KEY alone verifies tokens without a single HTTP request."""
    monkeypatch.setenv("CLERK_JWT_KEY", key.public_pem)
    transport = JWKSTransport(key)
    async with httpx.AsyncClient(transport=transport) as client:
        app = build(http_client=client, clock=clock)
        r = await get(app, token=mint_session_token(key, user_id="user_env", issued_at=clock.now))
    assert r.status_code == 200
    assert r.json()["user_id"] == "user_env"
    assert transport.requests == []


@pytest.mark.anyio
@pytest.mark.parametrize(
    ("env", "url", "authorization"),
    [
        (
            {"CLERK_JWKS_URL": "https://keys.example.com/jwks.json"},
            "https://keys.example.com/jwks.json",
            None,
        ),
        (
            {"CLERK_SECRET_KEY": "sk_test_abc123"},
            "https://api.clerk.com/v1/jwks",
            "Bearer sk_test_abc123",
        ),
        (
            {"CLERK_SECRET_KEY": "sk_live_abc123", "CLERK_API_URL": "https://api.clerk.dev/"},
            "https://api.clerk.dev/v1/jwks",
            "Bearer sk_live_abc123",
        ),
        ({"CLERK_PUBLISHABLE_KEY": PK}, FAPI_JWKS, None),
    ],
    ids=["jwks-url", "secret-key", "secret-key-api-url", "publishable-key"],
)
async def test_env_key_sources(
    monkeypatch: pytest.MonkeyPatch,
    key: KeyPair,
    clock: FakeClock,
    env: dict[str, str],
    url: str,
    authorization: str | None,
) -> None:
    """Each CLERK_* key variable is used when the parameter is absent: observed by the fetch."""
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    transport = JWKSTransport(key)
    async with httpx.AsyncClient(transport=transport) as client:
        app = build(http_client=client, clock=clock)
        r = await get(app, token=mint_session_token(key, issued_at=clock.now))
    assert r.status_code == 200
    assert [str(request.url) for request in transport.requests] == [url]
    assert transport.requests[0].headers.get("authorization") == authorization


@pytest.mark.anyio
async def test_parameter_wins_over_environment(
    monkeypatch: pytest.MonkeyPatch, key: KeyPair, clock: FakeClock
) -> None:
    """An explicit jwks_url beats CLERK_JWKS_URL."""
    monkeypatch.setenv("CLERK_JWKS_URL", "https://env.example.com/jwks")
    transport = JWKSTransport(key)
    async with httpx.AsyncClient(transport=transport) as client:
        app = build(jwks_url="https://param.example.com/jwks", http_client=client, clock=clock)
        r = await get(app, token=mint_session_token(key, issued_at=clock.now))
    assert r.status_code == 200
    assert [str(request.url) for request in transport.requests] == [
        "https://param.example.com/jwks"
    ]


@pytest.mark.anyio
async def test_env_authorized_parties_comma_separated(
    monkeypatch: pytest.MonkeyPatch, key: KeyPair, clock: FakeClock
) -> None:
    """CLERK_AUTHORIZED_PARTIES is comma-separated, spaces allowed; other azp are refused."""
    monkeypatch.setenv(
        "CLERK_AUTHORIZED_PARTIES", " https://a.example.com , https://b.example.com,"
    )
    app = build(jwt_key=key.public_pem, clock=clock)
    for azp in ("https://a.example.com", "https://b.example.com"):
        r = await get(app, token=mint_session_token(key, azp=azp, issued_at=clock.now))
        assert r.status_code == 200, azp
    for azp in ("https://c.example.com", ORIGIN):
        r = await get(app, token=mint_session_token(key, azp=azp, issued_at=clock.now))
        assert r.status_code == 401, azp
        assert r.headers["x-clerk-auth-reason"] == "token-invalid-authorized-parties"


@pytest.mark.anyio
async def test_explicit_authorized_parties_win_over_environment(
    monkeypatch: pytest.MonkeyPatch, key: KeyPair, clock: FakeClock
) -> None:
    """authorized_parties=[...] replaces CLERK_AUTHORIZED_PARTIES entirely."""
    monkeypatch.setenv("CLERK_AUTHORIZED_PARTIES", "https://env.example.com")
    app = build(jwt_key=key.public_pem, clock=clock, authorized_parties=[ORIGIN])
    r = await get(app, token=mint_session_token(key, azp=ORIGIN, issued_at=clock.now))
    assert r.status_code == 200
    r = await get(
        app, token=mint_session_token(key, azp="https://env.example.com", issued_at=clock.now)
    )
    assert r.status_code == 401
    assert r.headers["x-clerk-auth-reason"] == "token-invalid-authorized-parties"


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


# --------------------------------------------------------------------------------------------
# Precedence: jwt_key > jwks_url > secret_key > publishable_key
# --------------------------------------------------------------------------------------------


@pytest.mark.anyio
@pytest.mark.parametrize(
    ("sources", "url", "authorization"),
    [
        (("jwt_key", "jwks_url", "secret_key", "publishable_key"), None, None),
        (("jwks_url", "secret_key", "publishable_key"), "https://keys.example.com/jwks", None),
        (("secret_key", "publishable_key"), "https://api.clerk.com/v1/jwks", "Bearer sk_test_s1"),
        (("publishable_key",), FAPI_JWKS, None),
    ],
    ids=["jwt_key", "jwks_url", "secret_key", "publishable_key"],
)
async def test_key_source_precedence(
    key: KeyPair,
    clock: FakeClock,
    sources: tuple[str, ...],
    url: str | None,
    authorization: str | None,
) -> None:
    """The first of jwt_key, jwks_url, secret_key, publishable_key supplies the keys."""
    given = {
        "jwt_key": key.public_pem,
        "jwks_url": "https://keys.example.com/jwks",
        "secret_key": "sk_test_s1",
        "publishable_key": PK,
    }
    transport = JWKSTransport(key)
    async with httpx.AsyncClient(transport=transport) as client:
        app = build(http_client=client, clock=clock, **{name: given[name] for name in sources})
        r = await get(app, token=mint_session_token(key, issued_at=clock.now))
    assert r.status_code == 200
    assert [str(request.url) for request in transport.requests] == ([url] if url else [])
    if url:
        assert transport.requests[0].headers.get("authorization") == authorization


@pytest.mark.anyio
async def test_env_precedence_matches_parameter_precedence(
    monkeypatch: pytest.MonkeyPatch, key: KeyPair, clock: FakeClock
) -> None:
    """With every CLERK_* key variable set, CLERK_JWT_KEY wins: no request at all."""
    monkeypatch.setenv("CLERK_JWT_KEY", key.public_pem)
    monkeypatch.setenv("CLERK_JWKS_URL", "https://keys.example.com/jwks")
    monkeypatch.setenv("CLERK_SECRET_KEY", "sk_test_s1")
    monkeypatch.setenv("CLERK_PUBLISHABLE_KEY", PK)
    transport = JWKSTransport(key)
    async with httpx.AsyncClient(transport=transport) as client:
        app = build(http_client=client, clock=clock)
        r = await get(app, token=mint_session_token(key, issued_at=clock.now))
    assert r.status_code == 200
    assert transport.requests == []


@pytest.mark.anyio
async def test_publishable_key_sets_the_issuer_beside_a_pem_key(
    key: KeyPair, clock: FakeClock
) -> None:
    """With jwt_key supplying keys, the publishable key still fixes iss = https://<fapi>."""
    app = build(jwt_key=key.public_pem, publishable_key=PK, clock=clock)
    good = mint_session_token(key, issuer=ISSUER, issued_at=clock.now)
    assert (await get(app, token=good)).status_code == 200
    for issuer in ("https://clerk.other.com", "clerk.example.com", None):
        bad = mint_session_token(key, issuer=issuer, issued_at=clock.now)
        r = await get(app, token=bad)
        assert r.status_code == 401, issuer
        assert r.headers["x-clerk-auth-reason"] == "token-invalid-issuer"


@pytest.mark.anyio
async def test_publishable_key_sets_the_issuer_beside_a_secret_key(
    key: KeyPair, clock: FakeClock
) -> None:
    """With secret_key supplying keys, the publishable key still fixes the expected iss."""
    transport = JWKSTransport(key)
    async with httpx.AsyncClient(transport=transport) as client:
        app = build(secret_key="sk_test_s1", publishable_key=PK, http_client=client, clock=clock)
        ok = await get(app, token=mint_session_token(key, issued_at=clock.now))
        other = mint_session_token(key, issuer="https://clerk.other.com", issued_at=clock.now)
        bad = await get(app, token=other)
    assert ok.status_code == 200
    assert bad.status_code == 401
    assert bad.headers["x-clerk-auth-reason"] == "token-invalid-issuer"


@pytest.mark.anyio
async def test_explicit_issuer_is_used(key: KeyPair, clock: FakeClock) -> None:
    """issuer= fixes the expected iss when no publishable key is given."""
    app = build(jwt_key=key.public_pem, issuer="https://clerk.other.com", clock=clock)
    ok = mint_session_token(key, issuer="https://clerk.other.com", issued_at=clock.now)
    assert (await get(app, token=ok)).status_code == 200
    r = await get(app, token=mint_session_token(key, issuer=ISSUER, issued_at=clock.now))
    assert r.headers["x-clerk-auth-reason"] == "token-invalid-issuer"


@pytest.mark.anyio
async def test_example_publishable_key_end_to_end(key: KeyPair, clock: FakeClock) -> None:
    """The docs' pk_live_ example fetches clerk.inspired.puma-74.lcl.dev and expects its iss."""
    transport = JWKSTransport(key)
    issuer = "https://clerk.inspired.puma-74.lcl.dev"
    async with httpx.AsyncClient(transport=transport) as client:
        app = build(publishable_key=EXAMPLE_PK, http_client=client, clock=clock)
        ok = await get(app, token=mint_session_token(key, issuer=issuer, issued_at=clock.now))
        bad = await get(app, token=mint_session_token(key, issuer=ISSUER, issued_at=clock.now))
    assert ok.status_code == 200
    assert bad.headers["x-clerk-auth-reason"] == "token-invalid-issuer"
    assert [str(request.url) for request in transport.requests] == [
        "https://clerk.inspired.puma-74.lcl.dev/.well-known/jwks.json"
    ]


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


@pytest.mark.anyio
async def test_no_sign_in_url_means_401_not_redirect(key: KeyPair) -> None:
    """Without sign_in_url or publishable key a signed-out navigation gets 401."""
    app = build(jwt_key=key.public_pem, rules=[])
    r = await get(app, "/dashboard", **HTML)
    assert r.status_code == 401
    assert "location" not in r.headers


@pytest.mark.parametrize("option", ["jwks_url", "sign_in_url"])
def test_unparseable_url_is_a_configuration_error(option: str) -> None:
    """A URL that urllib cannot even split (a broken IPv6 host) is refused at construction."""
    with pytest.raises(ConfigurationError, match=rf"^{option} must"):
        build(**{"jwks_url": "https://clerk.example.com/jwks", option: "https://[::1/x"})


@pytest.mark.anyio
async def test_audience_given_as_one_string(key: KeyPair, clock: FakeClock) -> None:
    """audience="api://x" works like ["api://x"]: only tokens whose aud contains it pass."""
    app = build(jwt_key=key.public_pem, audience="api://x", clock=clock, issuer=ISSUER)
    good = mint_session_token(key, issued_at=clock.now, claims={"aud": ["api://x", "other"]})
    bad = mint_session_token(key, issued_at=clock.now, claims={"aud": "other"})
    assert (await get(app, token=good)).status_code == 200
    refused = await get(app, token=bad)
    assert refused.status_code == 401
    assert refused.headers["x-clerk-auth-reason"] == "token-invalid-audience"


@pytest.mark.anyio
async def test_key_material_in_code_beats_the_environment(
    key: KeyPair, second_key: KeyPair, clock: FakeClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A jwks_url passed in code is the key source even when CLERK_JWT_KEY is set."""
    monkeypatch.setenv("CLERK_JWT_KEY", second_key.public_pem)
    transport = JWKSTransport(key)
    app = build(
        jwks_url="https://clerk.example.com/.well-known/jwks.json",
        http_client=httpx.AsyncClient(transport=transport),
        clock=clock,
    )
    assert (await get(app, token=mint_session_token(key, issued_at=clock.now))).status_code == 200
    assert [str(r.url) for r in transport.requests] == [
        "https://clerk.example.com/.well-known/jwks.json"
    ]


def test_invalid_regex_inside_a_pattern_group_is_a_configuration_error(key: KeyPair) -> None:
    """A broken regular expression inside "(...)" is refused at construction, naming it."""
    with pytest.raises(ConfigurationError, match=r"^Route pattern '/a\(\[\)\]' holds an invalid"):
        build(jwt_key=key.public_pem, rules=[Rule.public("/a([)]")])
