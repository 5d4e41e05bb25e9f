"""Configuration parsing: environment fallbacks, Clerk keys, URLs. Every mistake raises here.

Publishable keys are parsed as ``@clerk/shared`` ``keys.ts`` does (reference/clerk-semantics.md
§4): ``pk_(test|live)_<base64 of "<frontend-api-host>$">``.
"""

from __future__ import annotations

import base64
import binascii
import os
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Final
from urllib.parse import urlsplit

from cryptography.hazmat.primitives.asymmetric.rsa import RSAPublicKey
from cryptography.hazmat.primitives.serialization import load_pem_public_key

from .exceptions import ConfigurationError

__all__ = [
    "ENV_VARS",
    "PublishableKey",
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
        port = parts.port
    except ValueError:
        parts, port = None, None
    if (
        parts is None
        or parts.scheme not in ("http", "https")
        or not parts.hostname
        or parts.path
        or parts.query
        or parts.fragment
        or parts.username is not None
        or _UNSAFE.search(value)
        or f"{parts.scheme}://{parts.netloc}" != value
    ):
        raise ConfigurationError(
            f"{what} must be an origin like 'https://app.example.com' (scheme, host and "
            f"optional port; no path or trailing slash), got {value!r}."
        )
    del port
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
