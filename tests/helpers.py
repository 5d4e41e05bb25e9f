"""Small helpers shared by the test modules."""

from __future__ import annotations

#: A fixed "now" for the fake clock (2027-01-15T08:00:00Z).
NOW = 1_800_000_000.0

#: The app's origin in every end-to-end test (what MockClerk's tokens name as azp).
ORIGIN = "https://app.example.com"

#: The message of every refusal the tests look at, by reason code, spelled out: the strings
#: are the contract clients see, not the library's constants.
MESSAGES = {
    "session-token-missing": "Sign in to continue.",
    "token-invalid": "The session token is malformed.",
    "token-invalid-algorithm": "The session token uses an algorithm other than RS256.",
    "token-invalid-signature": "The session token's signature is invalid.",
    "token-verification-failed": "The session token's claims are invalid.",
    "token-expired": "The session token has expired; fetch a fresh one and retry.",
    "token-invalid-issuer": "The session token was issued by another Clerk instance (iss).",
    "token-invalid-authorized-parties": "The session token was issued for another origin (azp).",
    "token-too-old": "The session token is older than this route allows; refresh it.",
    "token-type-mismatch": "This token is not a Clerk session token.",
    "session-pending": "The session has pending tasks; finish them to continue.",
    "origin-not-authorized": "Cookie-authenticated request from an origin that is not allowed.",
    "jwk-kid-mismatch": "No signing key matches this session token.",
    "authorization-failed": "You are signed in but not allowed to access this resource.",
    "session-revoked": "This session was signed out; sign in again.",
    "revocation-list-unavailable": "Sessions cannot be checked right now; retry shortly.",
    "rate-limited": "Too many requests; retry after the time in Retry-After.",
    "rate-limit-unavailable": "Rate limits cannot be checked right now; retry shortly.",
}


def bearer(token: str) -> dict[str, str]:
    """The ``Authorization`` header a client sends with ``token``."""
    return {"authorization": f"Bearer {token}"}


#: The 401 message when the only credential was an Authorization header of another scheme.
IGNORED_SCHEME = (
    "The Authorization header was ignored: its scheme is not 'Bearer' (exact case). "
    "Send 'Authorization: Bearer <session token>'."
)
