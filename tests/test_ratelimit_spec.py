"""Rate-limit specs: ``"10/10s"`` and its spellings, parsed once, refused at start-up when wrong."""

from __future__ import annotations

from typing import Any

import pytest

from clerk_asgi import Rule
from clerk_asgi.exceptions import ConfigurationError
from clerk_asgi.ratelimit import RateLimit, RateLimiter, rate_limit

FORMS = (
    "write '<amount>/<window>': '10/10s', '10/10 s', '100/1m', '5/second', '100/minute', "
    "'1000/hour', '10000/day' (units s, m, h, d or their names; amount 1 to 1,000,000,000, "
    "window 1 second to 1 day)"
)


@pytest.mark.parametrize(
    ("spec", "amount", "window"),
    [
        # The short forms
        ("10/10s", 10, 10),
        ("10/10 s", 10, 10),  # Upstash's Duration: "10 s"
        ("100/1m", 100, 60),
        ("3/2h", 3, 7200),
        ("1/1d", 1, 86_400),
        # A unit alone: one of it
        ("5/second", 5, 1),
        ("100/minute", 100, 60),
        ("1000/hour", 1000, 3600),
        ("10000/day", 10_000, 86_400),
        ("7/s", 7, 1),
        # Names, plurals, case, spaces, "per"
        ("10/10 seconds", 10, 10),
        ("10 / 30 secs", 10, 30),
        ("2/5 minutes", 2, 300),
        ("2/5MIN", 2, 300),
        ("4/3 hrs", 4, 10_800),
        ("10 per 10 seconds", 10, 10),
        ("10 PER minute", 10, 60),
        ("  10/10s  ", 10, 10),
        # The bounds
        ("1/1s", 1, 1),
        ("1000000000/1s", 1_000_000_000, 1),
        ("5/86400s", 5, 86_400),
        ("5/1440m", 5, 86_400),
        ("5/24h", 5, 86_400),
    ],
)
def test_accepted_specs(spec: str, amount: int, window: int) -> None:
    """Each accepted spelling gives the amount and the window in seconds; the name says both."""
    limit = RateLimit.parse(spec)
    assert limit == RateLimit(amount, window, f"{amount}/{window}s", "user")
    assert limit.policy == f'"{amount}/{window}s";q={amount};w={window}'


@pytest.mark.parametrize(
    ("spec", "problem"),
    [
        # Not the syntax
        ("10", "Malformed"),
        ("10/", "Malformed"),
        ("/10s", "Malformed"),
        ("ten/10s", "Malformed"),
        ("10/10", "Malformed"),  # no unit
        ("10/10x", "Malformed"),
        ("10/10ms", "Malformed"),  # below a second: limits counts whole seconds
        ("10/10 weeks", "Malformed"),
        ("10/-1s", "Malformed"),
        ("-1/10s", "Malformed"),
        ("1.5/10s", "Malformed"),
        ("10/1.5s", "Malformed"),
        ("10//10s", "Malformed"),
        ("10 10s", "Malformed"),
        ("10/10s/10s", "Malformed"),
        ("10/10s\n5/1s", "Malformed"),
        ("\u0661\u0660/10s", "Malformed"),  # Arabic-Indic digits: ASCII only
        ("", "Malformed"),
        ("1" * 13 + "/1s", "Malformed"),  # no 4,300-digit int() either
        # Out of range
        ("0/10s", "Rate limit amount must be 1 to 1,000,000,000"),
        ("1000000001/1s", "out of range"),
        ("10/0s", "out of range"),
        ("10/86401s", "out of range"),
        ("10/25h", "out of range"),
        ("10/2d", "out of range"),
    ],
)
def test_refused_specs_name_the_accepted_forms(spec: str, problem: str) -> None:
    """A malformed or out-of-range spec is a ConfigurationError listing what is accepted."""
    with pytest.raises(ConfigurationError) as caught:
        RateLimit.parse(spec)
    assert problem in str(caught.value)
    assert str(caught.value).endswith(FORMS + ".")


@pytest.mark.parametrize("spec", [None, 10, 10.0, b"10/10s", ["10/10s"]])
def test_a_spec_that_is_not_a_string_is_refused(spec: Any) -> None:
    """Only strings and RateLimit values are specs."""
    with pytest.raises(ConfigurationError, match="Malformed rate limit"):
        RateLimit.parse(spec)


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        ((0, 10), "Rate limit amount must be 1 to 1,000,000,000"),
        ((True, 10), "Rate limit amount must be 1 to 1,000,000,000"),
        ((1.0, 10), "Rate limit amount must be 1 to 1,000,000,000"),
        ((10, 0), "Rate limit window (seconds) must be 1 to 86,400"),
        ((10, 1.5), "Rate limit window (seconds) must be 1 to 86,400"),
        ((10, 86_401), "Rate limit window (seconds) must be 1 to 86,400"),
        ((10, 10, 'a"b'), "Rate limit name 'a\"b' must be 1 to 64 printable ASCII"),
        ((10, 10, "a\\b"), "must be 1 to 64 printable ASCII"),
        ((10, 10, "é"), "must be 1 to 64 printable ASCII"),
        ((10, 10, "a\nb"), "must be 1 to 64 printable ASCII"),
        ((10, 10, "x" * 65), "must be 1 to 64 printable ASCII"),
        ((10, 10, 7), "Rate limit name 7 must be"),
        ((10, 10, "api", "team"), "Rate limit key must be 'user', 'org', 'ip' or a callable"),
        ((10, 10, "api", None), "Rate limit key must be"),
    ],
)
def test_a_rate_limit_value_is_checked(arguments: tuple[Any, ...], message: str) -> None:
    """RateLimit(...) built directly is checked as thoroughly as a parsed spec."""
    with pytest.raises(ConfigurationError) as caught:
        RateLimit(*arguments)
    assert message in str(caught.value)


def test_name_and_key_are_kept_or_replaced() -> None:
    """A name and a key given to parse() replace the defaults, and a RateLimit's own."""
    limit = RateLimit.parse("10/10s", name="api", key="org")
    assert limit == RateLimit(10, 10, "api", "org")
    assert limit.policy == '"api";q=10;w=10'
    assert RateLimit.parse(limit) == limit
    assert RateLimit.parse(limit, key="ip") == RateLimit(10, 10, "api", "ip")
    assert RateLimit.parse(limit, name="other") == RateLimit(10, 10, "other", "org")


def test_a_callable_key_is_accepted() -> None:
    """A key may be any callable (connection, auth) -> str | None."""

    def tenant(conn: Any, auth: Any) -> str:
        return "acme"

    assert RateLimit.parse("1/s", key=tenant).key is tenant


def test_rules_parse_their_rate_limit_at_construction() -> None:
    """Rule.public/protect/api take rate_limit=, parsed into a RateLimit at once."""
    assert Rule.api("/api/(.*)", rate_limit="10/10s").rate_limit == RateLimit(10, 10)
    assert Rule.protect("/app(.*)", rate_limit="100/minute").rate_limit == RateLimit(100, 60)
    assert Rule.public("/", rate_limit=RateLimit(5, 1, "home", "ip")).rate_limit == RateLimit(
        5, 1, "home", "ip"
    )
    assert Rule.api("/api/(.*)").rate_limit is None
    assert Rule("api", ("/x",), rate_limit="5/s").rate_limit == RateLimit(5, 1)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "build",
    [
        lambda: Rule.api("/api/(.*)", rate_limit="10 a minute"),
        lambda: Rule.protect("/app", rate_limit="0/1s"),
        lambda: Rule.public("/", rate_limit="10/10"),
        lambda: rate_limit("5/fortnight"),
    ],
)
def test_a_malformed_rate_limit_fails_at_start_up(build: Any) -> None:
    """A rule or dependency with a malformed spec is refused when it is built, not later."""
    with pytest.raises(ConfigurationError, match=r"Malformed rate limit|must be 1 to"):
        build()


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"storage": "memcached://localhost"}, "rate_limit_storage must be 'memory://' or a Redis"),
        ({"storage": "memory"}, "rate_limit_storage must be 'memory://' or a Redis URL"),
        ({"storage": "redis://hôte:6379"}, "rate_limit_storage must be 'memory://' or a Redis"),
        ({"storage": None}, "rate_limit_storage must be 'memory://' or a Redis URL"),
        ({"storage": "redis://[::1"}, "rate_limit_storage must be 'memory://' or a Redis URL"),
        ({"on_error": "ignore"}, "rate_limit_on_error must be 'allow' or 'refuse', got 'ignore'"),
        ({"timeout": 0}, "Rate limit timeout must be > 0 seconds, got 0"),
        ({"timeout": True}, "Rate limit timeout must be > 0 seconds, got True"),
        ({"max_keys": 0}, "max_keys must be a positive integer, got 0"),
        ({"trusted_proxies": ["10.0.0.300"]}, "trusted_proxies must hold IP addresses or networks"),
        ({"trusted_proxies": ["proxy.internal"]}, "got 'proxy.internal'"),
    ],
)
def test_a_limiter_refuses_what_cannot_work(options: dict[str, Any], message: str) -> None:
    """RateLimiter checks its storage URL, policy, timeout, sizes and proxies at construction."""
    with pytest.raises(ConfigurationError) as caught:
        RateLimiter(**options)
    assert message in str(caught.value)


def test_trusted_proxies_may_be_one_string_or_networks() -> None:
    """A single address, addresses and networks (v4 and v6) are all accepted."""
    assert [str(n) for n in RateLimiter(trusted_proxies="10.0.0.1").proxies.networks] == [
        "10.0.0.1/32"
    ]
    proxies = RateLimiter(trusted_proxies=["10.0.0.0/8", "::1", " 192.168.1.7 "]).proxies
    assert [str(n) for n in proxies.networks] == ["10.0.0.0/8", "::1/128", "192.168.1.7/32"]
    assert repr(RateLimiter()) == "RateLimiter('memory://', on_error='allow')"
