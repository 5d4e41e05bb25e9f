"""Reason codes carried by signed-out Auth objects and error responses.

Where Clerk has a code for the situation (``@clerk/backend`` ``AuthErrorReason`` and
``TokenVerificationErrorReason``), we use Clerk's string; the few that are ours are marked.
"""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType
from typing import Final

# No token, or a token we will not look at.
SESSION_TOKEN_MISSING: Final = "session-token-missing"
TOKEN_TYPE_MISMATCH: Final = "token-type-mismatch"

# The token itself.
TOKEN_INVALID: Final = "token-invalid"
TOKEN_INVALID_ALGORITHM: Final = "token-invalid-algorithm"
TOKEN_INVALID_SIGNATURE: Final = "token-invalid-signature"
TOKEN_VERIFICATION_FAILED: Final = "token-verification-failed"
TOKEN_EXPIRED: Final = "token-expired"
TOKEN_NOT_ACTIVE_YET: Final = "token-not-active-yet"
TOKEN_IAT_IN_THE_FUTURE: Final = "token-iat-in-the-future"
TOKEN_INVALID_AUTHORIZED_PARTIES: Final = "token-invalid-authorized-parties"
TOKEN_INVALID_ISSUER: Final = "token-invalid-issuer"  # older @clerk/backend releases
TOKEN_INVALID_AUDIENCE: Final = "token-invalid-audience"  # clerk-sdk-python
TOKEN_TOO_OLD: Final = "token-too-old"  # ours: max_token_age exceeded
SESSION_PENDING: Final = "session-pending"  # ours: sts == "pending", treated as signed out
ORIGIN_NOT_AUTHORIZED: Final = "origin-not-authorized"  # ours: cross-site cookie use
SESSION_REVOKED: Final = "session-revoked"  # ours: the token's sid is on the revocation list

UNEXPECTED_ERROR: Final = "unexpected-error"

# Keys.
JWK_KID_MISMATCH: Final = "jwk-kid-mismatch"
JWK_REMOTE_FAILED_TO_LOAD: Final = "jwk-remote-failed-to-load"

# Stores shared by several processes (ours): unreachable, with the policy set to refuse.
REVOCATION_LIST_UNAVAILABLE: Final = "revocation-list-unavailable"
RATE_LIMIT_UNAVAILABLE: Final = "rate-limit-unavailable"

# Too many requests (ours): the rule's or dependency's rate limit is used up.
RATE_LIMITED: Final = "rate-limited"

# Authorization (signed in, has() failed).
AUTHORIZATION_FAILED: Final = "authorization-failed"  # ours
REVERIFICATION_ERROR: Final = "reverification-error"


# Clerk's cookie flow for page sessions (``@clerk/backend`` ``AuthErrorReason``), with the
# handshake on: why a browser is handed to Clerk's Frontend API, or signed out when it cannot be.
SESSION_TOKEN_AND_UAT_MISSING: Final = "session-token-and-uat-missing"
SESSION_TOKEN_BUT_NO_CLIENT_UAT: Final = "session-token-but-no-client-uat"
CLIENT_UAT_BUT_NO_SESSION_TOKEN: Final = "client-uat-but-no-session-token"
SESSION_TOKEN_IAT_BEFORE_CLIENT_UAT: Final = "session-token-iat-before-client-uat"
SESSION_TOKEN_EXPIRED_NO_REFRESH_COOKIE: Final = (
    "session-token-expired-refresh-non-eligible-no-refresh-cookie"
)
SESSION_TOKEN_EXPIRED_NON_GET: Final = "session-token-expired-refresh-non-eligible-non-get"
SESSION_TOKEN_NBF: Final = "session-token-nbf"
SESSION_TOKEN_IAT_IN_THE_FUTURE: Final = "session-token-iat-in-the-future"
DEV_BROWSER_MISSING: Final = "dev-browser-missing"
DEV_BROWSER_SYNC: Final = "dev-browser-sync"


#: The human-readable message sent with each reason code (safe to show to clients).
MESSAGES: Final[Mapping[str, str]] = MappingProxyType(
    {
        SESSION_TOKEN_MISSING: "Sign in to continue.",
        TOKEN_TYPE_MISMATCH: "This token is not a Clerk session token.",
        TOKEN_INVALID: "The session token is malformed.",
        TOKEN_INVALID_ALGORITHM: "The session token uses an algorithm other than RS256.",
        TOKEN_INVALID_SIGNATURE: "The session token's signature is invalid.",
        TOKEN_VERIFICATION_FAILED: "The session token's claims are invalid.",
        TOKEN_EXPIRED: "The session token has expired; fetch a fresh one and retry.",
        TOKEN_NOT_ACTIVE_YET: "The session token is not valid yet (nbf).",
        TOKEN_IAT_IN_THE_FUTURE: "The session token was issued in the future (iat).",
        TOKEN_INVALID_AUTHORIZED_PARTIES: "The session token was issued for another origin (azp).",
        TOKEN_INVALID_ISSUER: "The session token was issued by another Clerk instance (iss).",
        TOKEN_INVALID_AUDIENCE: "The session token is for another audience (aud).",
        TOKEN_TOO_OLD: "The session token is older than this route allows; refresh it.",
        SESSION_PENDING: "The session has pending tasks; finish them to continue.",
        ORIGIN_NOT_AUTHORIZED: "Cookie-authenticated request from an origin that is not allowed.",
        SESSION_REVOKED: "This session was signed out; sign in again.",
        REVOCATION_LIST_UNAVAILABLE: "Sessions cannot be checked right now; retry shortly.",
        RATE_LIMIT_UNAVAILABLE: "Rate limits cannot be checked right now; retry shortly.",
        RATE_LIMITED: "Too many requests; retry after the time in Retry-After.",
        UNEXPECTED_ERROR: "The session token could not be verified.",
        JWK_KID_MISMATCH: "No signing key matches this session token.",
        JWK_REMOTE_FAILED_TO_LOAD: "Clerk's signing keys are unavailable; retry shortly.",
        AUTHORIZATION_FAILED: "You are signed in but not allowed to access this resource.",
        REVERIFICATION_ERROR: "Verify your identity again to access this resource.",
        SESSION_TOKEN_AND_UAT_MISSING: "Sign in to continue.",
        SESSION_TOKEN_BUT_NO_CLIENT_UAT: "The session cookie is not backed by a signed-in client.",
        CLIENT_UAT_BUT_NO_SESSION_TOKEN: "The session cookie is missing; reload the page.",
        SESSION_TOKEN_IAT_BEFORE_CLIENT_UAT: "The session cookie is stale; reload the page.",
        SESSION_TOKEN_EXPIRED_NO_REFRESH_COOKIE: "The session token has expired; reload the page.",
        SESSION_TOKEN_EXPIRED_NON_GET: "The session token has expired; refresh it and retry.",
        SESSION_TOKEN_NBF: "The session token is not valid yet (nbf).",
        SESSION_TOKEN_IAT_IN_THE_FUTURE: "The session token was issued in the future (iat).",
        DEV_BROWSER_MISSING: "This development instance needs a dev browser; reload the page.",
        DEV_BROWSER_SYNC: "This development instance is syncing the dev browser; reload the page.",
    }
)


def message_for(reason: str) -> str:
    """The message for ``reason`` (a generic one for codes without their own)."""
    return MESSAGES.get(reason, "Not allowed.")
