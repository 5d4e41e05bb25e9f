"""The other options: origins, durations, the default rule, rules, authorized parties, audience.

Every unusable value raises ``ConfigurationError`` (a ``ValueError``) at construction, its
message starting with the option's name; the last section checks how authorized parties and
the audience, once accepted, are applied to tokens.
"""

from __future__ import annotations

import pytest

from clerk_asgi import ConfigurationError, Rule
from clerk_asgi.testing import FakeClock, KeyPair, mint_session_token

from ._config_helpers import (
    ISSUER,
    ORIGIN,
    build,
    get,
    message,
)

# -- Origins: authorized parties, issuer, public_origin -------------------------------------------


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
    assert text.startswith("Each authorized party must be an origin like 'https://app.example.com'")
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
    [
        ("issuer", "https://clerk.example.com/"),
        ("public_origin", "https://app.example.com/x"),
        ("public_origin", "https://app.example.com/"),
        ("public_origin", "app.example.com"),
    ],
)
def test_issuer_and_public_origin_must_be_origins(name: str, value: str, key: KeyPair) -> None:
    """issuer and public_origin are origins too: scheme and host, no path, no trailing slash."""
    with pytest.raises(ConfigurationError, match=f"^{name} must be an origin"):
        build(jwt_key=key.public_pem, **{name: value})


# -- Durations ------------------------------------------------------------------------------------


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
    with pytest.raises(ConfigurationError, match=f"^{expected}"):
        build(jwt_key=key.public_pem, **{name: value})


@pytest.mark.anyio
async def test_zero_clock_skew_is_allowed(key: KeyPair, clock: FakeClock) -> None:
    """clock_skew=0 is a valid, strict setting: a token is refused from its exp on."""
    app = build(jwt_key=key.public_pem, clock_skew=0, clock=clock)
    fresh = mint_session_token(key, issued_at=clock.now)
    ending_now = mint_session_token(key, issued_at=clock.now - 30, expires_in=30)
    assert (await get(app, token=fresh)).status_code == 200
    refused = await get(app, token=ending_now)
    assert refused.status_code == 401
    assert refused.headers["x-clerk-auth-reason"] == "token-expired"


# -- default and rules ----------------------------------------------------------------------------


@pytest.mark.parametrize("default", ["private", "PROTECT", ""])
def test_bad_default(default: str, key: KeyPair) -> None:
    """default must be 'protect', 'public', 'api' or a Rule."""
    with pytest.raises(ConfigurationError, match=r"^default must be 'protect', 'public', 'api'"):
        build(jwt_key=key.public_pem, default=default)


def test_default_that_is_not_a_rule(key: KeyPair) -> None:
    """A non-Rule default object is refused."""
    with pytest.raises(ConfigurationError, match="Rule"):
        build(jwt_key=key.public_pem, default=["/api"])


def test_rules_must_be_rule_objects(key: KeyPair) -> None:
    """A bare pattern string in rules is refused, pointing at Rule.public/protect/api."""
    with pytest.raises(
        ConfigurationError, match=r"^rules must hold Rule objects \(Rule\.public/protect/api\)"
    ):
        build(jwt_key=key.public_pem, rules=["/api/(.*)"])


def test_pattern_must_start_with_a_slash(key: KeyPair) -> None:
    """A route pattern without a leading '/' is refused at construction."""
    with pytest.raises(
        ConfigurationError, match=r"^Route pattern 'sign-in\(\.\*\)' must start with '/'"
    ):
        build(jwt_key=key.public_pem, rules=[Rule.public("sign-in(.*)")])


def test_invalid_regex_inside_a_pattern_group_is_a_configuration_error(key: KeyPair) -> None:
    """A broken regular expression inside "(...)" is refused at construction, naming it."""
    with pytest.raises(ConfigurationError, match=r"^Route pattern '/a\(\[\)\]' holds an invalid"):
        build(jwt_key=key.public_pem, rules=[Rule.public("/a([)]")])


# -- Authorized parties and audience, as applied to tokens ----------------------------------------


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
async def test_audience_given_as_one_string(key: KeyPair, clock: FakeClock) -> None:
    """audience="api://x" works like ["api://x"]: only tokens whose aud contains it pass."""
    app = build(jwt_key=key.public_pem, audience="api://x", clock=clock, issuer=ISSUER)
    good = mint_session_token(key, issued_at=clock.now, claims={"aud": ["api://x", "other"]})
    bad = mint_session_token(key, issued_at=clock.now, claims={"aud": "other"})
    assert (await get(app, token=good)).status_code == 200
    refused = await get(app, token=bad)
    assert refused.status_code == 401
    assert refused.headers["x-clerk-auth-reason"] == "token-invalid-audience"
