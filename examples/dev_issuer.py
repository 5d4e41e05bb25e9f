"""A development issuer for the example app. NOT Clerk; never use it outside local development.

It stands in for a Clerk instance so the example runs offline: an RSA key generated at start-up
signs Clerk-shaped session tokens (``clerk_asgi.testing.mint_session_token``) for two demo
users, and its public key is handed to ``ClerkMiddleware(jwt_key=...)``, so every request is
verified exactly as a real Clerk token would be (signature, ``exp``/``nbf``/``iat``, ``iss``).

What differs from Clerk, on purpose:

* The issuer is the fixed string ``https://dev-issuer.invalid``: the ``.invalid`` top-level
  domain can never resolve, so nobody can mistake it for (or fetch keys from) a real instance.
* Tokens live an hour (:data:`TOKEN_LIFETIME`) instead of Clerk's 60 seconds, because no
  clerk-js runs in the browser to refresh them. The cookie expires with the token.
* Anyone who can reach the server can sign in as any demo user. The key lives only in the
  process's memory, so restarting the server signs everyone out.

The dev issuer lives here, in the example, and is never a default of ``ClerkMiddleware``: the
middleware refuses to start without real key material.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from typing import Any, Final

from clerk_asgi.testing import KeyPair, mint_session_token

__all__ = ["DEMO_USERS", "DEV_ISSUER", "TOKEN_LIFETIME", "DemoUser", "DevIssuer"]

#: The ``iss`` of every development token; ``.invalid`` is reserved and never resolves.
DEV_ISSUER: Final = "https://dev-issuer.invalid"

#: Seconds a development token (and its cookie) stays valid: 1 hour, as nothing refreshes it.
TOKEN_LIFETIME: Final = 3600


@dataclass(frozen=True, slots=True)
class DemoUser:
    """A user the development sign-in page offers, with an active organization."""

    key: str
    name: str
    user_id: str
    org_id: str
    org_slug: str
    org_role: str
    description: str


DEMO_USERS: Final = (
    DemoUser(
        key="member",
        name="Mia Member",
        user_id="user_demo_member",
        org_id="org_demo_acme",
        org_slug="acme",
        org_role="org:member",
        description="Signed in to Acme as a member: the dashboard works, /admin does not.",
    ),
    DemoUser(
        key="admin",
        name="Ada Admin",
        user_id="user_demo_admin",
        org_id="org_demo_acme",
        org_slug="acme",
        org_role="org:admin",
        description="Signed in to Acme as an org:admin: everything, /admin included.",
    ),
)


class DevIssuer:
    """Signs session tokens for the demo users with a key that exists only in this process."""

    issuer: Final = DEV_ISSUER

    def __init__(self, key: KeyPair | None = None, *, lifetime: int = TOKEN_LIFETIME) -> None:
        self.key = key or KeyPair.generate(kid="dev_issuer")
        self.lifetime = lifetime

    def middleware_options(self) -> dict[str, Any]:
        """``ClerkMiddleware`` keywords that trust this issuer, with no network at all."""
        return {"jwt_key": self.key.public_pem, "issuer": self.issuer}

    @staticmethod
    def user(key: str | None) -> DemoUser | None:
        """The demo user called ``key`` (``"member"`` or ``"admin"``), if any."""
        return next((user for user in DEMO_USERS if user.key == key), None)

    def session_token(self, user: DemoUser, *, origin: str) -> str:
        """A fresh session (new ``sid``) for ``user``, authorized for the page's ``origin``.

        ``azp`` is the origin the browser signed in on, as clerk-js would put there.
        """
        return mint_session_token(
            self.key,
            user_id=user.user_id,
            session_id="sess_dev_" + secrets.token_hex(8),
            issuer=self.issuer,
            azp=origin,
            expires_in=self.lifetime,
            org_id=user.org_id,
            org_slug=user.org_slug,
            org_role=user.org_role,
        )
