"""Key material: which source supplies the signing keys, and every way to get one wrong.

The four sources, in precedence order ``jwt_key`` > ``jwks_url`` > ``secret_key`` >
``publishable_key``, each with its ``CLERK_*`` environment fallback (docs/configuration.md
"Key material"). Publishable keys are parsed as ``@clerk/shared``'s ``parsePublishableKey``
(``keys.ts``) does. Which source is used is observed from the outside: the URL a
``JWKSTransport`` is asked for, or that no request happens at all for a PEM key.
"""

from __future__ import annotations

import base64

import httpx
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from clerk_asgi import ConfigurationError
from clerk_asgi._config import parse_publishable_key
from clerk_asgi.testing import FakeClock, JWKSTransport, KeyPair, mint_session_token

from ._config_helpers import (
    EXAMPLE_PK,
    FAPI_JWKS,
    ISSUER,
    PK,
    build,
    get,
    message,
    pk,
)

# -- No key material ------------------------------------------------------------------------------


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


# -- Publishable keys -----------------------------------------------------------------------------


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


# -- Secret keys ----------------------------------------------------------------------------------


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


# -- jwt_key: a PEM RSA public key ----------------------------------------------------------------


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
    assert text.startswith("jwt_key is not a PEM public key")
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


# -- Environment fallbacks and precedence: jwt_key > jwks_url > secret_key > publishable_key ------


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


# -- The expected issuer: from the publishable key, or issuer= ------------------------------------


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
