"""``ClerkConfig``: every setting, with its ``CLERK_*`` fallback, validated once. Every mistake
raises here, as a :class:`~clerk_asgi.ConfigurationError` that says how to fix it.

Publishable keys are parsed as ``@clerk/shared`` ``keys.ts`` does:
``pk_(test|live)_<base64 of "<frontend-api-host>$">``.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import os
import re
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from functools import partial
from types import MappingProxyType
from typing import Final, Literal, cast
from urllib.parse import parse_qs, urlsplit

import httpx
from cryptography.hazmat.primitives.asymmetric.rsa import RSAPublicKey
from cryptography.hazmat.primitives.serialization import load_pem_public_key

from ._keys import RemoteKeySet, StaticKeySet
from ._responses import RefusalHook
from ._revocation import RevocationStore
from ._rules import Rule, RuleMatcher
from ._verify import KeySet
from .exceptions import ConfigurationError
from .ratelimit import RateLimiter

__all__ = [
    "DEFAULT_API_URL",
    "ENV_VARS",
    "ClerkConfig",
    "PublishableKey",
    "cookie_suffix",
    "env",
    "load_pem_key",
    "parse_authorized_parties",
    "parse_publishable_key",
    "validate_jwks_url",
    "validate_origin",
    "validate_redirect_target",
    "validate_secret_key",
]

_LOCAL_HOSTS = frozenset({"localhost", "127.0.0.1", "::1"})
_HOST = re.compile(r"^[A-Za-z0-9](?:[A-Za-z0-9.-]*[A-Za-z0-9])?$")
_UNSAFE = re.compile(r"[\x00-\x20\x7f\\]")


#: The environment variable each ClerkMiddleware parameter falls back to.
ENV_VARS: Final[Mapping[str, str]] = MappingProxyType(
    {
        "publishable_key": "CLERK_PUBLISHABLE_KEY",
        "secret_key": "CLERK_SECRET_KEY",
        "jwt_key": "CLERK_JWT_KEY",
        "jwks_url": "CLERK_JWKS_URL",
        "api_url": "CLERK_API_URL",
        "authorized_parties": "CLERK_AUTHORIZED_PARTIES",
        "sign_in_url": "CLERK_SIGN_IN_URL",
        "proxy_url": "CLERK_PROXY_URL",
    }
)


def env(value: str | None, parameter: str) -> str | None:
    """``value`` if given, else the parameter's environment variable (empty counts as unset)."""
    if value is not None:
        return value
    return os.environ.get(ENV_VARS[parameter]) or None


@dataclass(frozen=True, slots=True)
class PublishableKey:
    """A parsed publishable key: the Frontend API host and the instance type."""

    frontend_api: str
    is_production: bool

    @property
    def instance_type(self) -> Literal["development", "production"]:
        """``pk_live_`` keys belong to production instances, ``pk_test_`` to development ones."""
        return "production" if self.is_production else "development"

    @property
    def issuer(self) -> str:
        """The ``iss`` Clerk puts in session tokens: ``https://<frontend-api>``."""
        return f"https://{self.frontend_api}"

    @property
    def jwks_url(self) -> str:
        """The Frontend API's public JWKS (no secret needed)."""
        return f"https://{self.frontend_api}/.well-known/jwks.json"

    @property
    def accounts_sign_in_url(self) -> str:
        """Clerk's hosted Account Portal sign-in page (Clerk's default sign-in URL)."""
        host = re.sub(r"^clerk\.(?:accounts\.)?", "accounts.", self.frontend_api, count=1)
        if host == self.frontend_api:  # a dev host like foo-bar-13.clerk.accounts.dev
            host = self.frontend_api.replace(".clerk.accounts.", ".accounts.", 1)
        return f"https://{host}/sign-in"


def parse_publishable_key(key: str) -> PublishableKey:
    """Parse ``pk_test_...``/``pk_live_...`` as Clerk does; ConfigurationError if malformed."""
    hint = (
        "Copy the publishable key (pk_test_... or pk_live_...) from the Clerk Dashboard, "
        "API keys page, into CLERK_PUBLISHABLE_KEY."
    )
    parts = key.strip().split("_")
    if len(parts) != 3 or parts[0] != "pk" or parts[1] not in ("test", "live") or not parts[2]:
        raise ConfigurationError(f"Malformed Clerk publishable key. {hint}")
    encoded = parts[2]
    try:
        decoded = base64.b64decode(encoded + "=" * (-len(encoded) % 4), validate=True).decode(
            "ascii"
        )
    except (binascii.Error, UnicodeDecodeError, ValueError):
        raise ConfigurationError(f"Malformed Clerk publishable key (not base64). {hint}") from None
    host = decoded[:-1]
    if not decoded.endswith("$") or "$" in host or "." not in host or not _HOST.match(host):
        raise ConfigurationError(f"Malformed Clerk publishable key (bad Frontend API). {hint}")
    return PublishableKey(frontend_api=host.lower(), is_production=parts[1] == "live")


def validate_secret_key(key: str) -> str:
    """Check the shape of a secret key (``sk_test_...``/``sk_live_...``)."""
    key = key.strip()
    if not re.fullmatch(r"sk_(?:test|live)_[A-Za-z0-9]+", key):
        raise ConfigurationError(
            "Malformed Clerk secret key: expected sk_test_... or sk_live_... from the Clerk "
            "Dashboard, API keys page (CLERK_SECRET_KEY). Never use it in a browser."
        )
    return key


def load_pem_key(pem: str) -> RSAPublicKey:
    """Load the Dashboard's "PEM public key" (``CLERK_JWT_KEY``); literal ``\\n`` are accepted."""
    text = pem.strip().replace("\\n", "\n")
    hint = (
        "Set jwt_key / CLERK_JWT_KEY to the PEM public key shown in the Clerk Dashboard "
        "(API keys > Show JWT public key > PEM Public Key)."
    )
    try:
        key = load_pem_public_key(text.encode("ascii"))
    except (ValueError, TypeError, UnicodeEncodeError):
        raise ConfigurationError(f"jwt_key is not a PEM public key. {hint}") from None
    if not isinstance(key, RSAPublicKey):
        raise ConfigurationError(f"jwt_key must be an RSA public key. {hint}")
    if not 2048 <= key.key_size <= 4096 or key.public_numbers().e != 65537:
        raise ConfigurationError(
            f"jwt_key must be a 2048- to 4096-bit RSA key with exponent 65537. {hint}"
        )
    return key


def _is_local(host: str | None) -> bool:
    return host is not None and host.lower() in _LOCAL_HOSTS


def validate_origin(value: str, what: str) -> str:
    """An origin: ``scheme://host[:port]``, no path, no trailing slash."""
    try:
        parts = urlsplit(value)
        parts.port  # noqa: B018 - raises ValueError for a port that is not a number
    except ValueError:
        parts = None
    if (
        parts is None
        or parts.scheme not in ("http", "https")
        or not parts.hostname
        or parts.path
        or parts.query
        or parts.fragment
        or parts.username is not None
        or _UNSAFE.search(value)
        or not value.isascii()  # an IDN host goes in as its punycode (xn--...) form
        or f"{parts.scheme}://{parts.netloc}" != value
    ):
        raise ConfigurationError(
            f"{what} must be an origin like 'https://app.example.com' (scheme, host and "
            f"optional port; no path or trailing slash), got {value!r}."
        )
    return value


def parse_authorized_parties(value: Iterable[str] | str | None) -> frozenset[str]:
    """Authorized parties from a list, or a comma-separated ``CLERK_AUTHORIZED_PARTIES``."""
    if value is None:
        return frozenset()
    items = value.split(",") if isinstance(value, str) else list(value)
    if isinstance(value, str):
        items = [item.strip() for item in items if item.strip()]
    return frozenset(validate_origin(item, "Each authorized party") for item in items)


def _is_secure_url(url: str) -> bool:
    """An absolute ``https://`` URL with a host (plain ``http://`` only for localhost)."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return False
    return bool(parts.hostname) and (
        parts.scheme == "https" or (parts.scheme == "http" and _is_local(parts.hostname))
    )


def validate_jwks_url(url: str, what: str = "jwks_url") -> str:
    """A JWKS URL must be https (plain http only on localhost) and fixed at configuration time."""
    if not _UNSAFE.search(url) and _is_secure_url(url):
        return url
    raise ConfigurationError(
        f"{what} must use https:// (plain http:// is only allowed for localhost), got {url!r}."
    )


def cookie_suffix(publishable_key: str) -> str:
    """The suffix of Clerk's suffixed cookie names for ``publishable_key``, as
    ``@clerk/shared`` ``getCookieSuffix``: base64url of SHA-1 of the key, first 8 characters."""
    digest = hashlib.sha1(publishable_key.encode("utf-8"), usedforsecurity=False).digest()
    return base64.b64encode(digest).decode("ascii").replace("+", "-").replace("/", "_")[:8]


def validate_proxy_url(url: str) -> str:
    """Clerk's Frontend API proxy: an https URL (http on localhost) or a path on this site."""
    url = url.rstrip("/")
    plain = not _UNSAFE.search(url) and url.isascii() and "?" not in url and "#" not in url
    if plain and ((url.startswith("/") and not url.startswith("//")) or _is_secure_url(url)):
        return url
    raise ConfigurationError(
        "proxy_url (CLERK_PROXY_URL) must be an https:// URL or a path on this site such as "
        f"'/__clerk', without query or fragment, got {url!r}."
    )


def validate_redirect_target(url: str, what: str) -> str:
    """``sign_in_url``/``unauthorized_url``: an absolute path on this site, or an https URL."""
    if _UNSAFE.search(url):
        raise ConfigurationError(f"{what} {url!r} contains whitespace, control characters or '\\'.")
    if not url.isascii():
        raise ConfigurationError(
            f"{what} {url!r} must be ASCII: percent-encode it (for example '/connexion/%C3%A9')."
        )
    if (url.startswith("/") and not url.startswith("//")) or _is_secure_url(url):
        return url
    raise ConfigurationError(
        f"{what} must be a path on this site like '/sign-in' or an https:// URL, got {url!r}."
    )


DEFAULT_API_URL: Final = "https://api.clerk.com"


class ClerkConfig:
    """Every setting of clerk-asgi, validated once and frozen.

    Each keyword falls back to its ``CLERK_*`` environment variable. Build it once, at import,
    and hand it to :class:`~clerk_asgi.ClerkMiddleware` (and, later, to the Backend API client
    and the webhook verifier)::

        clerk = ClerkConfig(
            rules=[Rule.public("/", "/sign-in/:path*"), Rule.api("/api/:path*")],
            sign_in_url="/sign-in",
            authorized_parties=["https://app.example.com"],
        )  # a ConfigurationError here stops the server before it serves anything
        app.add_middleware(ClerkMiddleware, config=clerk)

    Keys come from the first of ``jwt_key`` (networkless), ``jwks_url``, ``secret_key``
    (Backend API ``/v1/jwks``) and ``publishable_key`` (Frontend API
    ``/.well-known/jwks.json``); the publishable key (or ``issuer``) also fixes the expected
    ``iss``. Key material passed in code wins over the environment as a whole.

    Args:
        rules: :class:`~clerk_asgi.Rule` objects; the first whose pattern matches the path
            decides.
        default: the rule for paths no rule matches (default: ``Rule.protect()``).
        sign_in_url: where signed-out browser navigations to protected pages are sent
            (``CLERK_SIGN_IN_URL``; default: the Account Portal of the publishable key). Its
            path and sub-paths are always public.
        authorized_parties: origins allowed in the token's ``azp`` (``CLERK_AUTHORIZED_PARTIES``,
            comma-separated). Strongly recommended.
        publishable_key: ``pk_test_...``/``pk_live_...`` (``CLERK_PUBLISHABLE_KEY``): the
            instance, its issuer and the Frontend API JWKS.
        secret_key: ``sk_test_...``/``sk_live_...`` (``CLERK_SECRET_KEY``): the Backend API
            JWKS. Never sent to browsers.
        jwt_key: the PEM public key of the Dashboard (``CLERK_JWT_KEY``): no network at all.
        jwks_url: an explicit JWKS URL (``CLERK_JWKS_URL``).
        issuer: expected ``iss`` when no publishable key gives it.
        api_url: Backend API base (``CLERK_API_URL``, default ``https://api.clerk.com``).
        public_origin: the site's public origin (``https://app.example.com``) for building
            ``redirect_url`` behind proxies; default: the request's own origin.
        audience: when set, the token's ``aud`` must contain one of these.
        clock_skew: tolerance in seconds for ``exp``/``nbf``/``iat`` (default 5; 0 honoured).
        treat_pending_as_signed_out: ``sts: pending`` sessions are signed out (default True).
        max_token_age: when set, tokens issued (``iat``) longer ago than this many seconds are
            refused (``token-too-old``).
        http_client: the ``httpx.AsyncClient`` for JWKS fetches (default: one of our own).
        clock: wall-clock seconds (default ``time.time``); inject
            :class:`~clerk_asgi.testing.FakeClock` in tests.
        jwks_cache_ttl: seconds a fetched JWKS is fresh (default 300, as Clerk).
        jwks_cooldown: at most one unknown-``kid`` refetch per this many seconds (default 30).
        jwks_stale_window: seconds the last good keys are served while the JWKS endpoint
            fails (default 3600).
        jwks_timeout: seconds a JWKS fetch may take (default 5).
        token_cache_size: verified tokens remembered until they expire (default 4096; 0: off).
        handshake: Clerk's handshake for page sessions (see "Server-rendered pages"): None (the
            default) turns it on when a publishable key and a secret key are both configured;
            True requires them; False turns it off.
        proxy_url: Clerk's Frontend API proxy (``CLERK_PROXY_URL``), an https URL or a path on
            this site such as ``/__clerk``: where the handshake sends browsers. A path is public
            and never enters the cookie flow: the proxy itself answers there.
        api_timeout: seconds a Backend API call may take (the handshake payload; default 5).
        on_refusal: ``(connection, refusal) -> Response | None`` (sync or async), called for
            every refusal the library writes; ``None`` sends the default response.
        revocation_list: a :class:`~clerk_asgi.backend.RevocationList` (memory) or
            :class:`~clerk_asgi.backend.RedisRevocationList`, the same object given to
            :class:`~clerk_asgi.backend.ClerkBackend` and the webhook dependency: tokens of a
            listed session are refused (``session-revoked``). None (the default): no check.
        rate_limit_storage: where the rules' ``rate_limit`` counts live: ``"memory://"`` (the
            default: this process only) or ``"redis://host:6379/0"`` (every process using
            that server); or a :class:`~clerk_asgi.ratelimit.RateLimiter` of your own.
        rate_limit_on_error: with Redis unreachable, ``"allow"`` (default: let requests
            through, log a warning at most once a minute) or ``"refuse"`` (503
            ``rate-limit-unavailable``). A ``RateLimiter`` passed in keeps its own.

    Raises:
        ConfigurationError: for anything that cannot work, with how to fix it.
    """

    __slots__ = (
        "api_timeout",
        "api_url",
        "audience",
        "authorized_parties",
        "clock",
        "clock_skew",
        "cookie_suffix",
        "default",
        "frontend_api",
        "handshake",
        "http_client",
        "instance_type",
        "issuer",
        "jwks_cache_ttl",
        "jwks_cooldown",
        "jwks_headers",
        "jwks_stale_window",
        "jwks_timeout",
        "jwks_url",
        "jwt_key",
        "max_token_age",
        "on_refusal",
        "proxy_rule",
        "proxy_url",
        "public_origin",
        "rate_limiter",
        "revocation_list",
        "route_rules",
        "rules",
        "secret_key",
        "sign_in_url",
        "token_cache_size",
        "treat_pending_as_signed_out",
    )

    #: Key source: the PEM key (networkless), else the JWKS URL and the headers to fetch it with.
    jwt_key: RSAPublicKey | None
    jwks_url: str | None
    jwks_headers: Mapping[str, str]
    #: The Frontend API host of the publishable key (where clerk-js is served), if any.
    frontend_api: str | None
    #: ``"development"`` (``pk_test_``) or ``"production"`` (``pk_live_``); None without a
    #: publishable key.
    instance_type: Literal["development", "production"] | None
    rules: tuple[Rule, ...]
    default: Rule
    #: The rules as the middleware applies them: the implied public rules of a path-form
    #: ``proxy_url`` and of the sign-in path first.
    route_rules: tuple[Rule, ...]
    #: The public rule of a path-form ``proxy_url`` (Clerk's Frontend API served by this app:
    #: never refused, never handed to the cookie flow), else None.
    proxy_rule: Rule | None
    authorized_parties: frozenset[str]
    audience: frozenset[str]
    issuer: str | None
    secret_key: str | None
    api_url: str
    sign_in_url: str | None
    public_origin: str | None
    clock_skew: float
    treat_pending_as_signed_out: bool
    max_token_age: float | None
    http_client: httpx.AsyncClient | None
    clock: Callable[[], float]
    jwks_cache_ttl: float
    jwks_cooldown: float
    jwks_stale_window: float
    jwks_timeout: float
    token_cache_size: int
    on_refusal: RefusalHook | None
    #: Sessions revoked here, refused before their tokens expire; None: no check.
    revocation_list: RevocationStore | None
    #: Counts the rules' and dependencies' rate limits (memory or Redis).
    rate_limiter: RateLimiter
    #: Clerk's handshake is on: cookie-carried sessions follow Clerk's cookie flow.
    handshake: bool
    #: The Frontend API proxy (absolute URL or path), if any.
    proxy_url: str | None
    api_timeout: float
    #: The suffix of suffixed cookie names (``__session_<suffix>``), from the publishable key.
    cookie_suffix: str | None

    def __init__(
        self,
        *,
        rules: Sequence[Rule] = (),
        default: Rule | Literal["protect", "public", "api"] = "protect",
        sign_in_url: str | None = None,
        authorized_parties: Iterable[str] | None = None,
        publishable_key: str | None = None,
        secret_key: str | None = None,
        jwt_key: str | None = None,
        jwks_url: str | None = None,
        issuer: str | None = None,
        api_url: str | None = None,
        public_origin: str | None = None,
        audience: Iterable[str] | str | None = None,
        clock_skew: float = 5.0,
        treat_pending_as_signed_out: bool = True,
        max_token_age: float | None = None,
        http_client: httpx.AsyncClient | None = None,
        clock: Callable[[], float] | None = None,
        jwks_cache_ttl: float = 300.0,
        jwks_cooldown: float = 30.0,
        jwks_stale_window: float = 3600.0,
        jwks_timeout: float = 5.0,
        token_cache_size: int = 4096,
        on_refusal: RefusalHook | None = None,
        handshake: bool | None = None,
        proxy_url: str | None = None,
        api_timeout: float = 5.0,
        revocation_list: RevocationStore | None = None,
        rate_limit_storage: str | RateLimiter = "memory://",
        rate_limit_on_error: Literal["allow", "refuse"] = "allow",
    ) -> None:
        set_ = partial(object.__setattr__, self)
        for name, value in (
            ("clock_skew", clock_skew),
            ("jwks_cache_ttl", jwks_cache_ttl),
            ("jwks_cooldown", jwks_cooldown),
            ("jwks_stale_window", jwks_stale_window),
        ):
            if not value >= 0:
                raise ConfigurationError(f"{name} must be a number >= 0, got {value!r}.")
            set_(name, value)
        if not jwks_timeout > 0:
            raise ConfigurationError(f"jwks_timeout must be > 0 seconds, got {jwks_timeout!r}.")
        if max_token_age is not None and not max_token_age > 0:
            raise ConfigurationError(f"max_token_age must be > 0 seconds, got {max_token_age!r}.")
        if on_refusal is not None and not callable(on_refusal):
            raise ConfigurationError(
                f"on_refusal must be a callable (connection, refusal) -> Response | None, "
                f"got {on_refusal!r}."
            )
        if not api_timeout > 0:
            raise ConfigurationError(f"api_timeout must be > 0 seconds, got {api_timeout!r}.")
        set_("api_timeout", api_timeout)
        set_("jwks_timeout", jwks_timeout)
        set_("max_token_age", max_token_age)
        set_("treat_pending_as_signed_out", treat_pending_as_signed_out)
        set_("token_cache_size", token_cache_size)
        set_("http_client", http_client)
        set_("clock", clock or time.time)
        set_("on_refusal", on_refusal)
        if revocation_list is not None and not all(
            callable(getattr(revocation_list, name, None)) for name in ("revoke", "is_revoked")
        ):
            raise ConfigurationError(
                "revocation_list must be a RevocationList() or RedisRevocationList(...) from "
                f"clerk_asgi.backend (async revoke() and is_revoked()), got {revocation_list!r}."
            )
        set_("revocation_list", revocation_list)
        if isinstance(rate_limit_storage, RateLimiter):
            if rate_limit_on_error != "allow":
                raise ConfigurationError(
                    "rate_limit_on_error applies to a storage URL: give your RateLimiter its own "
                    "on_error= instead."
                )
            set_("rate_limiter", rate_limit_storage)
        else:
            limiter = RateLimiter(
                rate_limit_storage, on_error=rate_limit_on_error, clock=self.clock
            )
            set_("rate_limiter", limiter)

        publishable = env(publishable_key, "publishable_key")
        pk = parse_publishable_key(publishable) if publishable else None
        set_("frontend_api", pk.frontend_api if pk else None)
        set_("instance_type", None if pk is None else pk.instance_type)
        if issuer is not None:
            validate_origin(issuer, "issuer")
        set_("issuer", issuer or (pk.issuer if pk else None))
        api = env(api_url, "api_url") or DEFAULT_API_URL
        set_("api_url", validate_jwks_url(api, "api_url (CLERK_API_URL)").rstrip("/"))
        # Key material passed in code wins over the environment as a whole.
        secret = env(secret_key, "secret_key")
        set_("secret_key", validate_secret_key(secret) if secret else None)
        in_code = any((jwt_key, jwks_url, secret_key, publishable_key))
        self._choose_keys(
            jwt_key if in_code else env(None, "jwt_key"),
            jwks_url if in_code else env(None, "jwks_url"),
            self.secret_key if secret_key or not in_code else None,
            pk,
        )
        set_(
            "authorized_parties",
            parse_authorized_parties(
                env(None, "authorized_parties")
                if authorized_parties is None
                else authorized_parties
            ),
        )
        set_("audience", frozenset([audience] if isinstance(audience, str) else audience or ()))
        set_(
            "public_origin",
            validate_origin(public_origin, "public_origin") if public_origin else None,
        )

        sign_in = env(sign_in_url, "sign_in_url")
        if sign_in is None and pk is not None:
            sign_in = pk.accounts_sign_in_url
        sign_in = validate_redirect_target(sign_in, "sign_in_url") if sign_in else None
        if sign_in and "redirect_url" in parse_qs(urlsplit(sign_in).query):
            raise ConfigurationError(
                f"sign_in_url {sign_in!r} already has a redirect_url parameter; the "
                "middleware adds it (the URL the user wanted). Remove it from sign_in_url."
            )
        set_("sign_in_url", sign_in)
        proxy = env(proxy_url, "proxy_url")
        set_("proxy_url", validate_proxy_url(proxy) if proxy else None)
        self._set_rules(rules, default)
        set_("cookie_suffix", cookie_suffix(publishable) if publishable else None)
        if handshake and (pk is None or self.secret_key is None):
            raise ConfigurationError(
                "handshake=True needs a publishable key and a secret key (CLERK_PUBLISHABLE_KEY, "
                "CLERK_SECRET_KEY): the handshake sends browsers to the instance's Frontend API "
                "and reads the result back through the Backend API."
            )
        set_("handshake", pk is not None and self.secret_key is not None and handshake is not False)

    def __setattr__(self, name: str, value: object) -> None:
        raise AttributeError(f"ClerkConfig is frozen: build a new one instead of setting {name}.")

    def __delattr__(self, name: str) -> None:
        raise AttributeError(f"ClerkConfig is frozen: {name} cannot be deleted.")

    def __repr__(self) -> str:
        source = "jwt_key" if self.jwt_key is not None else self.jwks_url
        return (
            f"ClerkConfig(keys={source!r}, issuer={self.issuer!r}, "
            f"authorized_parties={sorted(self.authorized_parties)!r}, "
            f"sign_in_url={self.sign_in_url!r}, rules={len(self.rules)})"
        )

    def _choose_keys(
        self,
        jwt_key: str | None,
        jwks_url: str | None,
        secret_key: str | None,
        pk: PublishableKey | None,
    ) -> None:
        set_ = partial(object.__setattr__, self)
        pem, url, headers = None, None, {}
        if jwt_key:
            pem = load_pem_key(jwt_key)
        elif jwks_url:
            url = validate_jwks_url(jwks_url)
        elif secret_key:
            url = self.api_url + "/v1/jwks"
            headers["Authorization"] = f"Bearer {secret_key}"
        elif pk is not None:
            url = pk.jwks_url
        else:
            raise ConfigurationError(
                "No Clerk key material: set one of CLERK_JWT_KEY (PEM public key, networkless), "
                "CLERK_SECRET_KEY, CLERK_PUBLISHABLE_KEY or CLERK_JWKS_URL, or pass jwt_key=, "
                "secret_key=, publishable_key= or jwks_url= to ClerkConfig/ClerkMiddleware."
            )
        set_("jwt_key", pem)
        set_("jwks_url", url)
        set_("jwks_headers", MappingProxyType(headers))

    def _set_rules(
        self, rules: Sequence[Rule], default: Rule | Literal["protect", "public", "api"]
    ) -> None:
        if isinstance(default, str) and default in ("protect", "public", "api"):
            default = Rule(default)
        if not isinstance(default, Rule):
            raise ConfigurationError(
                f"default must be 'protect', 'public', 'api' or a Rule, got {default!r}."
            )
        if isinstance(rules, Rule | str) or not isinstance(rules, Iterable):
            raise ConfigurationError(
                f"rules must be a list of Rule objects, got {rules!r}: write rules=[Rule...(...)]."
            )
        rules = tuple(rules)
        for rule in [*rules, default]:
            if not isinstance(rule, Rule):
                raise ConfigurationError(
                    f"rules must hold Rule objects (Rule.public/protect/api), got {rule!r}."
                )
            if rule.unauthorized_url is not None:
                validate_redirect_target(rule.unauthorized_url, "unauthorized_url")
        object.__setattr__(self, "rules", rules)
        object.__setattr__(self, "default", default)
        proxy = self.proxy_url
        if proxy is not None and proxy.startswith("/"):  # the Frontend API, served here
            object.__setattr__(self, "proxy_rule", Rule.public(proxy, proxy + "/:path*"))
        else:
            object.__setattr__(self, "proxy_rule", None)
        proxied = () if self.proxy_rule is None else (self.proxy_rule,)
        route_rules = (*proxied, *self._sign_in_rules(rules), *rules)
        object.__setattr__(self, "route_rules", route_rules)
        matcher = RuleMatcher(route_rules, default)
        for rule in rules:  # an unauthorized_url that needs a role itself could loop forever
            path = self._own_path(rule.unauthorized_url)
            if path is not None and matcher.match(path).requires_authorization:
                raise ConfigurationError(
                    f"unauthorized_url {rule.unauthorized_url!r} is covered by a rule that "
                    "requires a role or permission, so refused users could be redirected in a "
                    "loop. Make it public or protect it without role/permission."
                )

    def _own_path(self, url: str | None) -> str | None:
        """The path of ``url`` when it points at this site (a path, or on ``public_origin``)."""
        if url is None:
            return None
        if url.startswith("/"):
            return url.split("?", 1)[0].split("#", 1)[0]
        if self.public_origin and url.startswith(self.public_origin + "/"):
            return self._own_path(url[len(self.public_origin) :])
        return None

    def _sign_in_rules(self, rules: tuple[Rule, ...]) -> tuple[Rule, ...]:
        """The sign-in path (and its sub-pages) is public; a rule protecting it is an error."""
        path = self._own_path(self.sign_in_url)
        if path is None:
            return ()
        explicit = RuleMatcher(rules, Rule.public()).match(path)
        base = path.rstrip("/") or "/"
        if explicit.kind != "public":
            safe = base if base == "/" else base + "/:path*"
            raise ConfigurationError(
                f"sign_in_url path {path!r} is covered by a Rule.{explicit.kind}(...) rule, so "
                f"signing in would itself require signing in. Make it public "
                f"(Rule.public({safe!r}), which also covers its sub-pages) or move the rule."
            )
        return (Rule.public(base if base == "/" else base + "/:rest*"),)

    def key_set(self) -> KeySet:
        """A new key cache for this configuration's key source."""
        if self.jwt_key is not None:
            return StaticKeySet(self.jwt_key)
        return RemoteKeySet(
            cast(str, self.jwks_url),  # _choose_keys set either jwt_key or jwks_url
            headers=self.jwks_headers,
            http_client=self.http_client,
            clock=self.clock,
            ttl=self.jwks_cache_ttl,
            cooldown=self.jwks_cooldown,
            stale_window=self.jwks_stale_window,
            timeout=self.jwks_timeout,
        )
