"""The decision: given the rule, the Auth and the request, run the app or refuse. Pure.

======= ====================================== ================================= =======
rule    signed out                             signed in, has() fails            allowed
======= ====================================== ================================= =======
public  run (the app sees the signed-out Auth) -                                 run
protect navigation: 307 to sign-in, else 401   307 to unauthorized_url, else 403 run
api     401                                    403                               run
======= ====================================== ================================= =======

Keys that cannot be loaded at all are not "signed out": protected routes answer 503 with
``Retry-After``. ``require_auth`` refusals are decided by the dependency and written here too.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Literal

from ._auth import Auth
from ._config import ClerkConfig
from ._reasons import (
    AUTHORIZATION_FAILED,
    JWK_REMOTE_FAILED_TO_LOAD,
    REVOCATION_LIST_UNAVAILABLE,
    SESSION_TOKEN_AND_UAT_MISSING,
    SESSION_TOKEN_MISSING,
    message_for,
)
from ._request import Incoming, with_query
from ._responses import Refusal
from ._revocation import RETRY_AFTER as REVOCATION_RETRY_AFTER
from ._rules import Rule
from .exceptions import AuthError
from .ratelimit import RateLimitedError

__all__ = ["decide", "refusal_for_error"]

#: The 401 message when the only credential was an ``Authorization`` header Clerk ignores.
IGNORED_SCHEME_MESSAGE = (
    "The Authorization header was ignored: its scheme is not 'Bearer' (exact case). "
    "Send 'Authorization: Bearer <session token>'."
)


def decide(
    rule: Rule,
    auth: Auth,
    request: Incoming,
    config: ClerkConfig,
    retry_after: Callable[[], int],
) -> Refusal | None:
    """The rule's answer for this request: None to run the app, else the refusal to send.

    ``retry_after`` gives the seconds for ``Retry-After`` when the keys cannot be loaded.
    """
    if rule.kind == "public":
        return None
    if auth.user_id is None:
        reason = auth.reason or SESSION_TOKEN_MISSING
        if reason == JWK_REMOTE_FAILED_TO_LOAD:
            return Refusal(503, reason, retry_after=retry_after())
        if reason == REVOCATION_LIST_UNAVAILABLE:
            return Refusal(503, reason, retry_after=REVOCATION_RETRY_AFTER)
        if rule.kind == "protect" and config.sign_in_url and request.is_navigation():
            target = with_query(
                under_root(request, config.sign_in_url),
                "redirect_url",
                request.url(config.public_origin),
            )
            return Refusal(307, reason, location=target)
        return signed_out(request, reason)
    if not rule.requires_authorization or auth.has(role=rule.role, permission=rule.permission):
        return None
    if rule.unauthorized_url and request.scope["type"] == "http":  # any request (Clerk's protect)
        target = under_root(request, rule.unauthorized_url)
        return Refusal(307, AUTHORIZATION_FAILED, "signed-in", location=target)
    return Refusal(403, AUTHORIZATION_FAILED, "signed-in")


def refusal_for_error(
    error: AuthError, request: Incoming, retry_after: Callable[[], int]
) -> Refusal:
    """The refusal for an ``AuthError`` the app raised (``require_auth``, a webhook that cannot
    be verified, ...): 401, 403, or its own status; a 503 always carries ``Retry-After``. A
    ``rate_limit`` dependency's 429 is its own refusal, rate-limit fields included."""
    if isinstance(error, RateLimitedError):
        return error.refusal
    status = error.status_code
    if status == 401:
        return signed_out(request, error.reason)
    wait = error.retry_after
    if status == 503 and wait is None:
        wait = retry_after()
    signed: Literal["signed-in", "signed-out"] = "signed-in" if status == 403 else "signed-out"
    return Refusal(status, error.reason, signed, retry_after=wait, message=error.message)


def signed_out(request: Incoming, reason: str) -> Refusal:
    """A 401 for ``reason``, saying why when an ``Authorization`` header was ignored."""
    message = message_for(reason)
    # Nothing to go on but a header Clerk ignores (with the handshake on, the cookie flow's
    # "no cookies" code): say so.
    if request.authorization_ignored and reason in _NOTHING_SENT:
        message = IGNORED_SCHEME_MESSAGE
    return Refusal(401, reason, token_presented=request.token is not None, message=message)


_NOTHING_SENT = frozenset({SESSION_TOKEN_MISSING, SESSION_TOKEN_AND_UAT_MISSING})


def under_root(request: Incoming, url: str) -> str:
    """A path-form redirect target is a route of this app: put it under the app's root_path."""
    return request.scope.get("root_path", "") + url if url.startswith("/") else url
