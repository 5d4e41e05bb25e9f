"""Reason codes carried by signed-out Auth objects and error responses.

Where Clerk has a code for the situation (``@clerk/backend`` ``AuthErrorReason`` and
``TokenVerificationErrorReason``), we use Clerk's string; the few that are ours are marked.
"""

from __future__ import annotations

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

UNEXPECTED_ERROR: Final = "unexpected-error"

# Keys.
JWK_KID_MISMATCH: Final = "jwk-kid-mismatch"
JWK_REMOTE_FAILED_TO_LOAD: Final = "jwk-remote-failed-to-load"

# Authorization (signed in, has() failed).
AUTHORIZATION_FAILED: Final = "authorization-failed"  # ours
REVERIFICATION_ERROR: Final = "reverification-error"
