"""``ClerkMiddleware``: authenticate every request, then let the matching rule decide.

One request, start to finish:

1. lifespan passes through; scope types other than http/websocket are refused;
2. the request is read once (:class:`~clerk_asgi._request.Incoming`): headers, the token and
   where it came from, spoofed ``x-user-id`` headers, the route path;
3. the route path picks the first matching rule;
4. the token becomes an :class:`Auth` (verified, or signed out with Clerk's reason code);
5. the rule decides (:func:`~clerk_asgi._decide.decide`): run the app, or a refusal, written
   by :func:`~clerk_asgi._responses.send_refusal`;
6. the rule's ``rate_limit``, if it has one, counts the request (a 429 past it);
7. the app runs with a new scope: the Auth under ``"clerk_asgi.auth"`` (and Starlette's
   ``"user"``/``"auth"``), the rate limiter, spoofed identity headers removed, and on API
   routes exactly one ``x-user-id``. An ``AuthError`` the app raises (``require_auth``,
   ``rate_limit``) is answered here too.
"""

from __future__ import annotations

import inspect
import logging
from collections.abc import Callable, Iterable, Sequence
from dataclasses import replace
from typing import Final, Literal

import httpx
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from ._auth import AUTH_SCOPE_KEY, Auth
from ._config import ClerkConfig
from ._decide import decide, refusal_for_error
from ._handshake import CookieFlow
from ._reasons import ORIGIN_NOT_AUTHORIZED, SESSION_TOKEN_MISSING, TOKEN_INVALID
from ._request import AMBIGUOUS, IDENTITY_SPELLINGS, Incoming
from ._responses import RefusalHook, send_refusal
from ._revocation import RevocationStore, revocation_reason
from ._rules import Rule, RuleMatcher
from ._verify import TokenVerifier
from .backend import ClerkBackend
from .exceptions import AuthError, ConfigurationError
from .ratelimit import LIMITER_SCOPE_KEY, RateLimiter

__all__ = ["ClerkMiddleware"]

logger = logging.getLogger(__name__)

_NO_TOKEN: Final = Auth.signed_out(SESSION_TOKEN_MISSING)
_AMBIGUOUS: Final = Auth.signed_out(TOKEN_INVALID)
_CROSS_SITE: Final = Auth.signed_out(ORIGIN_NOT_AUTHORIZED)


class ClerkMiddleware:
    """Authenticate requests with Clerk session tokens and enforce a route table.

    Pass a :class:`~clerk_asgi.ClerkConfig` as ``config=``, or its keywords directly (each
    falls back to its ``CLERK_*`` environment variable); see :class:`~clerk_asgi.ClerkConfig`
    for what each one means::

        app.add_middleware(ClerkMiddleware, config=ClerkConfig(rules=[...]))
        app.add_middleware(ClerkMiddleware, rules=[...], authorized_parties=[...])

    With ``config=``, give no other keyword: one that differs from its default is refused,
    but one passed with its default value cannot be told from one left out, and is ignored.

    Raises:
        ConfigurationError: at construction, for anything that cannot work, or when both
            ``config`` and other keywords are given.
    """

    def __init__(
        self,
        app: ASGIApp,
        *,
        config: ClerkConfig | None = None,
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
        # Every keyword but app and config, as given (the signature above is the contract).
        options = {name: value for name, value in locals().items() if name in _DEFAULTS}
        if config is None:
            config = ClerkConfig(**options)
        elif not isinstance(config, ClerkConfig):
            raise ConfigurationError(f"config must be a ClerkConfig, got {config!r}.")
        else:
            given = sorted(name for name, value in options.items() if value != _DEFAULTS[name])
            if given:
                raise ConfigurationError(
                    f"Pass either config= or keywords, not both (got config= and {given}): "
                    "put every setting in the ClerkConfig."
                )
        self.app = app
        self.config = config
        self.keys = config.key_set()
        self.verifier = TokenVerifier(
            self.keys,
            clock=config.clock,
            issuer=config.issuer,
            authorized_parties=config.authorized_parties,
            audience=config.audience,
            clock_skew=config.clock_skew,
            treat_pending_as_signed_out=config.treat_pending_as_signed_out,
            max_token_age=config.max_token_age,
            cache_size=config.token_cache_size,
        )
        self._cookie_flow = (
            CookieFlow(config, self.verifier, self.keys, ClerkBackend(config=config))
            if config.handshake
            else None
        )
        self._rules = RuleMatcher(config.route_rules, config.default)
        self._limiter = config.rate_limiter
        self._known_routes = self._rules.known  # read in place: most paths repeat
        unchecked = [
            claim
            for claim, known in (("iss", config.issuer), ("azp", config.authorized_parties))
            if not known
        ]
        if unchecked:
            logger.warning(
                "Session tokens' %s %s not checked: configure %s.",
                " and ".join(unchecked),
                "is" if len(unchecked) == 1 else "are",
                " and ".join(_FIXES[claim] for claim in unchecked),
            )

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        kind = scope["type"]
        if kind != "http" and kind != "websocket":
            if kind == "lifespan":
                await self.app(scope, receive, send)
            else:
                logger.warning("Refusing ASGI scope of unknown type %r", kind)
            return
        flow = self._cookie_flow
        request = Incoming(scope, flow is not None)  # with the flow on, it reads the cookie
        rule = self._known_routes.get(request.path) or self._rules.match(request.path)
        cookies: tuple[str, ...] = ()
        # Clerk's cookie flow: no token in an Authorization header, not the proxied Frontend API.
        if flow is not None and request.token is None and rule is not self.config.proxy_rule:
            known = flow.known(request)  # a verified session, without I/O
            if known is None or self.config.revocation_list is not None:
                known, cookies, handshake = await flow.authenticate(request, known)
                if handshake is not None:  # to Clerk's Frontend API, or back to the clean URL
                    # Protocol redirects, not refusals: no on_refusal hook may replace them.
                    await send_refusal(scope, receive, send, handshake, None)
                    return
            auth = self._same_site(request, known)
        else:
            auth = self._known_auth(request) or await self._authenticate(request)
            if auth.session_id is not None and self.config.revocation_list is not None:
                auth = await self._unless_revoked(auth)
        # Public routes run for everyone; so do signed-in users where no role/permission is due.
        if rule.kind != "public" and (auth.user_id is None or rule.requires_authorization):
            refusal = decide(rule, auth, request, self.config, self.keys.retry_after)
            if refusal is not None:
                if cookies:
                    refusal = replace(refusal, cookies=(*cookies, *refusal.cookies))
                await send_refusal(scope, receive, send, refusal, self.config.on_refusal)
                return
        await self._run(request, rule, auth, receive, send, cookies)

    def _known_auth(self, request: Incoming) -> Auth | None:
        """The request's Auth when no I/O is needed (no token, or one verified before)."""
        token = request.token
        if token is None:
            return _NO_TOKEN
        if token is AMBIGUOUS:
            return _AMBIGUOUS
        auth = self.verifier.cached(token)
        if auth is None or request.carrier == "header":
            return auth
        return self._same_site(request, auth)

    async def _authenticate(self, request: Incoming) -> Auth:
        """The request's Auth, verified from its token (keys fetched when needed); called only
        when :meth:`_known_auth` could not answer, so a token is there."""
        token = request.token
        return self._same_site(request, await self.verifier.verify(token or ""))

    async def _unless_revoked(self, auth: Auth) -> Auth:
        """Signed out (``session-revoked``) when the session is on the revocation list: its
        tokens, cached ones included, are refused until they could no longer be valid."""
        store, session_id = self.config.revocation_list, auth.session_id
        reason = await revocation_reason(store, session_id) if store and session_id else None
        return auth if reason is None else Auth.signed_out(reason)

    def _same_site(self, request: Incoming, auth: Auth) -> Auth:
        """A cookie-carried session used cross-site is signed out (CSRF)."""
        if (
            request.carrier == "cookie"
            and auth.user_id is not None
            and request.is_cross_site(self.config.authorized_parties, self.config.public_origin)
        ):
            return _CROSS_SITE
        return auth

    async def _run(
        self,
        request: Incoming,
        rule: Rule,
        auth: Auth,
        receive: Receive,
        send: Send,
        cookies: tuple[str, ...],
    ) -> None:
        """Count the rule's rate limit, if any; run the app with the Auth in its scope; answer
        an ``AuthError`` it raises. Its response carries ``x-user-id`` on API routes, the
        handshake's cookies and the rate-limit fields, if any."""
        added: list[tuple[bytes, bytes]] = []
        if cookies:
            added.extend((b"set-cookie", c.encode("latin-1")) for c in cookies)
        identity: tuple[bytes, bytes] | None = None
        if rule.kind == "api" and auth.user_id is not None:
            identity = (b"x-user-id", auth.user_id.encode("ascii"))  # ASCII: verified
            added.append(identity)
        scope = {**request.scope, AUTH_SCOPE_KEY: auth, LIMITER_SCOPE_KEY: self._limiter}
        if "user" not in scope and "auth" not in scope:  # another middleware's wins
            # Made once per Auth (verified Auths are cached): read in place when there.
            scope["user"], scope["auth"] = auth._starlette or auth.starlette_identity()
        if request.spoofed:
            scope["headers"] = [(n, v) for n, v in scope["headers"] if n not in IDENTITY_SPELLINGS]
        if identity is not None:
            scope["headers"] = [*scope["headers"], identity]
        if rule.rate_limit is not None:  # after the rule's own decision: its refusals are free
            refusal, fields = await self._limiter.check(rule.rate_limit, scope, auth)
            if refusal is not None:
                if cookies:
                    refusal = replace(refusal, cookies=(*cookies, *refusal.cookies))
                await send_refusal(request.scope, receive, send, refusal, self.config.on_refusal)
                return
            added.extend(fields)
        started = False
        # A complete 500 that opens the response is held back until the app is done: when the
        # app (a FastAPI app this middleware wraps, a mounted sub-app) turned an AuthError into
        # a 500 in its own ServerErrorMiddleware, the error arrives here next and is answered
        # instead. A streaming 500 (more_body) is not that, and is let through at once.
        held: list[Message] = []

        async def watched_send(message: Message) -> None:
            """Note that the response began; echo ``x-user-id``; hold back an opening 500."""
            nonlocal started
            if not started:
                if message["type"] == "http.response.start":
                    if added:
                        headers = message.get("headers", ())
                        if identity is not None:
                            headers = _without_identity(headers)
                        message = {**message, "headers": [*headers, *added]}
                    if message["status"] == 500:
                        held.append(message)
                        return
                elif held and not message.get("more_body"):
                    held.append(message)
                    return
                started = True
                if held:  # a streaming 500: the app's own
                    await _release(held, send)
            await send(message)

        try:
            await self.app(scope, receive, watched_send)
        except AuthError as error:  # raised by require_auth() or the app: answered here
            if not started:
                held.clear()  # an inner ServerErrorMiddleware's 500 for this error: dropped
                await self._refuse(request, error, receive, send, cookies)
            elif request.scope["type"] == "websocket":
                await send({"type": "websocket.close", "code": 1008, "reason": error.reason})
            else:  # the response has begun: too late to answer, let the server see the error
                raise
        except Exception:
            await _release(held, send)
            raise
        if held:  # the app's own 500, not an AuthError
            await _release(held, send)

    async def _refuse(
        self,
        request: Incoming,
        error: AuthError,
        receive: Receive,
        send: Send,
        cookies: tuple[str, ...],
    ) -> None:
        refusal = refusal_for_error(error, request, self.keys.retry_after)
        if cookies:
            refusal = replace(refusal, cookies=cookies)
        await send_refusal(request.scope, receive, send, refusal, self.config.on_refusal)


def _without_identity(headers: Iterable[tuple[bytes, bytes]]) -> Iterable[tuple[bytes, bytes]]:
    """The response's headers minus any ``x-user-id`` of the app's: ours is the one echoed.
    ASGI response header names are lower-case; the headers are copied only when one is there."""
    for name, _ in headers:
        if name == b"x-user-id":
            return [(n, v) for n, v in headers if n != b"x-user-id"]
    return headers


async def _release(held: list[Message], send: Send) -> None:
    """Send the messages held back (a 500 that turned out not to be an AuthError's)."""
    for message in held:
        await send(message)
    held.clear()


_DEFAULTS: Final = {
    name: parameter.default
    for name, parameter in inspect.signature(ClerkMiddleware).parameters.items()
    if name not in ("app", "config")
}
_FIXES: Final = {
    "iss": "publishable_key= (CLERK_PUBLISHABLE_KEY) or issuer=",
    "azp": "authorized_parties= (CLERK_AUTHORIZED_PARTIES)",
}
