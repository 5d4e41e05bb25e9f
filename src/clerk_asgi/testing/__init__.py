"""Test your own app without Clerk: keys, Clerk-shaped session tokens, a JWKS to serve or mock.

The quickest way is :class:`MockClerk`, one object holding a key pair and an instance's
identity::

    from clerk_asgi.testing import MockClerk

    clerk = MockClerk()
    app.add_middleware(ClerkMiddleware, **clerk.middleware_options(rules=[...]))

    async with httpx.AsyncClient(transport=httpx.ASGITransport(app), base_url=clerk.origin) as c:
        r = await c.get("/api/me", headers=clerk.auth_headers(user_id="user_123"))

``middleware_options`` configures the PEM key (no network at all). To exercise the JWKS path
instead, pass ``jwks_url=...`` and ``http_client=httpx.AsyncClient(transport=clerk.transport())``
(or mount :meth:`MockClerk.jwks_handler` on a respx route).

For the whole browser round trip (sign-in, the handshake, the Backend API's sessions), use
:class:`FakeClerk`, an in-process ASGI app emulating a Clerk instance's Frontend and Backend API.
"""

from __future__ import annotations

import base64
import json
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import httpx
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from cryptography.hazmat.primitives.hashes import SHA256

__all__ = [
    "FakeClerk",
    "FakeClock",
    "FakeWebhook",
    "JWKSTransport",
    "KeyPair",
    "MockClerk",
    "jwks",
    "jwks_handler",
    "make_webhook_secret",
    "mint_session_token",
    "sign_webhook",
]

SESSION_CATEGORY = "cl_B7d4PD111AAA"


class FakeClock:
    """Wall-clock seconds that only move when a test says so: pass it as ``clock=``.

    Example::

        clock = FakeClock(1_800_000_000)
        app.add_middleware(ClerkMiddleware, clock=clock, **clerk.middleware_options())
        token = clerk.token(issued_at=clock.now, expires_in=60)
        clock.advance(66)  # expired: past exp plus the default 5 s clock skew
    """

    def __init__(self, now: float | None = None) -> None:
        #: The current time, Unix seconds (default: the real time when the clock was made).
        self.now = time.time() if now is None else now

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        """Move the clock forward by ``seconds``."""
        self.now += seconds


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _uint(value: int) -> str:
    return _b64url(value.to_bytes((value.bit_length() + 7) // 8, "big"))


@dataclass(frozen=True)
class KeyPair:
    """An RSA signing key and its ``kid``, as a Clerk instance has."""

    private_key: rsa.RSAPrivateKey
    kid: str = "ins_test"

    @classmethod
    def generate(cls, kid: str = "ins_test", bits: int = 2048) -> KeyPair:
        """A fresh key pair (2048 bits by default, like Clerk's)."""
        return cls(rsa.generate_private_key(public_exponent=65537, key_size=bits), kid)

    @property
    def public_pem(self) -> str:
        """The public key as PEM, what the Dashboard shows for ``CLERK_JWT_KEY``."""
        return (
            self.private_key.public_key()
            .public_bytes(
                serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
            )
            .decode("ascii")
        )

    @property
    def jwk(self) -> dict[str, str]:
        """The public key as a JWK, shaped like Clerk's JWKS entries."""
        numbers = self.private_key.public_key().public_numbers()
        return {
            "use": "sig",
            "kty": "RSA",
            "kid": self.kid,
            "alg": "RS256",
            "n": _uint(numbers.n),
            "e": _uint(numbers.e),
        }

    def sign(self, header: Mapping[str, Any], payload: Mapping[str, Any]) -> str:
        """A compact RS256 JWS of ``header``/``payload`` exactly as given (no defaults)."""
        signing_input = (
            _b64url(json.dumps(header, separators=(",", ":")).encode())
            + "."
            + _b64url(json.dumps(payload, separators=(",", ":")).encode())
        )
        signature = self.private_key.sign(signing_input.encode(), padding.PKCS1v15(), SHA256())
        return signing_input + "." + _b64url(signature)


def jwks(*keys: KeyPair) -> dict[str, Any]:
    """A JWKS document holding ``keys``."""
    return {"keys": [key.jwk for key in keys]}


def mint_session_token(
    key: KeyPair,
    *,
    user_id: str = "user_test",
    session_id: str = "sess_test",
    issuer: str | None = "https://clerk.example.com",
    azp: str | None = "https://app.example.com",
    expires_in: float = 60,
    issued_at: float | None = None,
    version: int = 2,
    org_id: str | None = None,
    org_slug: str | None = None,
    org_role: str | None = None,
    org_permissions: Iterable[str] = (),
    features: str | None = None,
    plan: str | None = None,
    fva: tuple[int, int] | None = None,
    session_status: str | None = "active",
    actor: Mapping[str, Any] | None = None,
    claims: Mapping[str, Any] | None = None,
    headers: Mapping[str, Any] | None = None,
) -> str:
    """A session token shaped like Clerk's, signed by ``key``.

    ``version=2`` (default) writes the org as Clerk's compact ``o`` claim: ``org_role``
    ``"org:admin"`` becomes ``o.rol = "admin"``, and ``org_permissions`` such as
    ``"org:invoices:read"`` are encoded into ``fea``/``o.per``/``o.fpm``. ``version=1`` writes
    the older ``org_*`` claims. ``claims`` are merged last (use ``None`` values to delete);
    ``headers`` likewise for the JOSE header.
    """
    now = time.time() if issued_at is None else issued_at
    payload: dict[str, Any] = {
        "sub": user_id,
        "sid": session_id,
        "iat": int(now),
        "nbf": int(now) - 10,
        "exp": int(now + expires_in),
        "jti": "jti_" + _b64url(session_id.encode())[:12],
    }
    if issuer is not None:
        payload["iss"] = issuer
    if azp is not None:
        payload["azp"] = azp
    if session_status is not None:
        payload["sts"] = session_status
    if fva is not None:
        payload["fva"] = list(fva)
    if actor is not None:
        payload["act"] = dict(actor)
    permissions = list(org_permissions)
    if version == 2:
        payload["v"] = 2
        feature_list = [f for f in (features or "").split(",") if f]
        if org_id is not None:
            org: dict[str, Any] = {"id": org_id}
            if org_slug is not None:
                org["slg"] = org_slug
            if org_role is not None:
                org["rol"] = org_role.removeprefix("org:")
            if permissions:
                org_features, per, masks = _encode_permissions(permissions)
                org["per"], org["fpm"] = ",".join(per), ",".join(masks)
                # The masks pair with the org-scoped features of ``fea``, in order.
                carried = [f"o:{name}" for name in org_features]
                feature_list = carried + [f for f in feature_list if f not in carried]
            payload["o"] = org
        if feature_list:
            payload["fea"] = ",".join(feature_list)
    else:
        for name, value in (("org_id", org_id), ("org_slug", org_slug), ("org_role", org_role)):
            if value is not None:
                payload[name] = value
        if org_id is not None:
            payload["org_permissions"] = permissions
        if features:
            payload["fea"] = features
    if plan is not None:
        payload["pla"] = plan
    for name, value in (claims or {}).items():
        if value is None:
            payload.pop(name, None)
        else:
            payload[name] = value
    header: dict[str, Any] = {"alg": "RS256", "kid": key.kid, "typ": "JWT", "cat": SESSION_CATEGORY}
    for name, value in (headers or {}).items():
        if value is None:
            header.pop(name, None)
        else:
            header[name] = value
    return key.sign(header, payload)


def _encode_permissions(permissions: list[str]) -> tuple[list[str], list[str], list[str]]:
    """``org:<feature>:<perm>`` strings -> (org features, per list, fpm masks), as Clerk encodes."""
    features: list[str] = []
    perms: list[str] = []
    grants: dict[str, set[str]] = {}
    for permission in permissions:
        parts = permission.removeprefix("org:").split(":")
        if len(parts) != 2:
            raise ValueError(
                f"v2 tokens encode permissions as 'org:<feature>:<permission>', got {permission!r}"
            )
        feature, perm = parts
        if feature not in features:
            features.append(feature)
        if perm not in perms:
            perms.append(perm)
        grants.setdefault(feature, set()).add(perm)
    masks = [
        str(sum(1 << j for j, perm in enumerate(perms) if perm in grants[feature]))
        for feature in features
    ]
    return features, perms, masks


def jwks_handler(*keys: KeyPair) -> Callable[[httpx.Request], httpx.Response]:
    """An httpx request handler answering every request with the JWKS of ``keys``.

    Use it with ``httpx.MockTransport(handler)`` or a respx route
    (``respx.get(url).mock(side_effect=handler)``).
    """
    body = jwks(*keys)

    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, json=body)

    return handler


class JWKSTransport(httpx.MockTransport):
    """An ``httpx.MockTransport`` serving a JWKS, recording every request in ``requests``.

    ``keys`` can be replaced between requests to simulate a rotation.
    """

    def __init__(self, *keys: KeyPair) -> None:
        self.keys: list[KeyPair] = list(keys)
        self.requests: list[httpx.Request] = []
        super().__init__(self._handle)

    def _handle(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        return httpx.Response(200, json=jwks(*self.keys))


@dataclass
class MockClerk:
    """A stand-in Clerk instance: one key pair, an issuer and an app origin.

    Example::

        clerk = MockClerk()
        app.add_middleware(ClerkMiddleware, **clerk.middleware_options(rules=rules))
        headers = clerk.auth_headers(user_id="user_1", org_id="org_1", org_role="org:admin")
    """

    key: KeyPair = field(default_factory=KeyPair.generate)
    issuer: str = "https://clerk.example.com"
    origin: str = "https://app.example.com"

    def token(self, **claims: Any) -> str:
        """A valid session token; keywords as :func:`mint_session_token`."""
        claims.setdefault("issuer", self.issuer)
        claims.setdefault("azp", self.origin)
        return mint_session_token(self.key, **claims)

    def auth_headers(self, **claims: Any) -> dict[str, str]:
        """``{"Authorization": "Bearer <token>"}`` for a valid session token."""
        return {"Authorization": f"Bearer {self.token(**claims)}"}

    def cookies(self, **claims: Any) -> dict[str, str]:
        """``{"__session": <token>}``, as clerk-js sets it in a browser."""
        return {"__session": self.token(**claims)}

    def middleware_options(self, **overrides: Any) -> dict[str, Any]:
        """Keyword arguments for ``ClerkMiddleware`` trusting this instance.

        Networkless (``jwt_key``) unless ``overrides`` name another key source such as
        ``jwks_url`` (then pass ``http_client=httpx.AsyncClient(transport=clerk.transport())``).
        """
        options: dict[str, Any] = {
            "issuer": self.issuer,
            "authorized_parties": [self.origin],
            "sign_in_url": "/sign-in",
        }
        if not overrides.keys() & {"jwks_url", "secret_key", "publishable_key"}:
            options["jwt_key"] = self.key.public_pem
        options.update(overrides)
        return options

    def jwks(self) -> dict[str, Any]:
        """This instance's JWKS document."""
        return jwks(self.key)

    def jwks_handler(self) -> Callable[[httpx.Request], httpx.Response]:
        """See :func:`jwks_handler`."""
        return jwks_handler(self.key)

    def transport(self) -> JWKSTransport:
        """A :class:`JWKSTransport` serving this instance's JWKS."""
        return JWKSTransport(self.key)


# Last, as FakeClerk is built from the helpers above (KeyPair, mint_session_token, jwks).
from ._fakeclerk import FakeClerk, FakeWebhook  # noqa: E402
from ._webhooks import make_webhook_secret, sign_webhook  # noqa: E402
