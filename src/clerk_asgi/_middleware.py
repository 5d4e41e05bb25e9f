"""``ClerkMiddleware``: authenticate every request, then let the matching rule decide.

One request, start to finish (DESIGN.md §2):

1. lifespan passes through; scope types other than http/websocket are refused;
2. the headers, read once into a dict, give the token carriers and every copy of ``x-user-id``;
3. the route path (``scope["path"]`` minus ``root_path``) picks the first matching rule;
4. the token (Authorization header first, else the ``__session`` cookie) becomes an Auth;
5. the rule decides: run the app, redirect to sign-in, or answer 401/403/503;
6. the app runs with a new scope: the Auth under ``"clerk_asgi.auth"``, spoofed identity
   headers removed, and on API routes exactly one ``x-user-id``.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Final, Literal
from urllib.parse import parse_qs, urlsplit

import httpx
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from . import _config as C
from . import _reasons as R
from ._auth import AUTH_SCOPE_KEY, Auth
from ._keys import RemoteKeySet, StaticKeySet
from ._request import (
    AMBIGUOUS,
    IDENTITY_SPELLINGS,
    SEVERAL,
    Carrier,
    carriers,
    is_navigation,
    session_cookie,
    token_from_authorization,
)
from ._responses import Refusal, redirect_url_for, request_origin, send_refusal, with_query
from ._rules import Rule, RuleMatcher, route_path
from ._verify import KeySet, TokenVerifier
from .exceptions import AuthError, ConfigurationError

__all__ = ["ClerkMiddleware"]

logger = logging.getLogger("clerk_asgi")

DEFAULT_API_URL: Final = "https://api.clerk.com"
_SAFE_METHODS: Final = frozenset({"GET", "HEAD", "OPTIONS"})
_NO_TOKEN: Final = Auth.signed_out(R.SESSION_TOKEN_MISSING)


class ClerkMiddleware:
    """Authenticate requests with Clerk session tokens and enforce a route table.

    Every parameter is keyword-only and falls back to its ``CLERK_*`` environment variable.
    Keys come from the first of ``jwt_key`` (networkless), ``jwks_url``, ``secret_key``
    (Backend API ``/v1/jwks``) and ``publishable_key`` (Frontend API
    ``/.well-known/jwks.json``); the publishable key (or ``issuer``) also fixes the expected
    ``iss``.

    Args:
        app: the ASGI app to protect.
        rules: :class:`Rule` objects; the first whose pattern matches the path decides.
        default: the rule for paths no rule matches (default: ``Rule.protect()``).
        sign_in_url: where signed-out browser navigations to protected pages are sent
            (``CLERK_SIGN_IN_URL``; default: the Account Portal of the publishable key). Its
            path is always public.
        authorized_parties: origins allowed in the token's ``azp`` (``CLERK_AUTHORIZED_PARTIES``,
            comma-separated). Strongly recommended.
        publishable_key, secret_key, jwt_key, jwks_url: key material, see above.
        issuer: expected ``iss`` when no publishable key gives it.
        api_url: Backend API base for ``secret_key`` (``CLERK_API_URL``).
        public_origin: the site's public origin (``https://app.example.com``) for building
            ``redirect_url`` behind proxies; default: the request's own origin.
        audience: when set, the token's ``aud`` must contain one of these.
        clock_skew: tolerance in seconds for ``exp``/``nbf``/``iat`` (default 5; 0 honoured).
        treat_pending_as_signed_out: ``sts: pending`` sessions are signed out (default True).
        max_token_age: when set, tokens issued (``iat``) longer ago than this many seconds are
            refused (``token-too-old``).
        http_client: the ``httpx.AsyncClient`` for JWKS fetches (default: one of our own).
        clock: wall-clock seconds (default ``time.time``); inject a fake one in tests.
        jwks_cache_ttl, jwks_cooldown, jwks_stale_window, jwks_timeout: key-cache tuning
            (300 s, 30 s, 3600 s, 5 s).
        token_cache_size: verified tokens remembered until they expire (default 4096; 0: off).

    Raises:
        ConfigurationError: at construction, for anything that cannot work.
    """

    def __init__(
        self,
        app: ASGIApp,
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
    ) -> None:
        self.app = app
        clock = clock or time.time
        for name, value in (
            ("clock_skew", clock_skew),
            ("jwks_cache_ttl", jwks_cache_ttl),
            ("jwks_cooldown", jwks_cooldown),
            ("jwks_stale_window", jwks_stale_window),
        ):
            if not value >= 0:
                raise ConfigurationError(f"{name} must be a number >= 0, got {value!r}.")
        if not jwks_timeout > 0:
            raise ConfigurationError(f"jwks_timeout must be > 0 seconds, got {jwks_timeout!r}.")
        if max_token_age is not None and not max_token_age > 0:
            raise ConfigurationError(f"max_token_age must be > 0 seconds, got {max_token_age!r}.")

        publishable = C.env(publishable_key, "publishable_key")
        pk = C.parse_publishable_key(publishable) if publishable else None
        #: The Frontend API host of the publishable key (where clerk-js is served), if any.
        self.frontend_api = pk.frontend_api if pk else None
        self.issuer = issuer or (pk.issuer if pk else None)
        if issuer is not None:
            C.validate_origin(issuer, "issuer")
        # Key material passed in code wins over the environment as a whole.
        in_code = any((jwt_key, jwks_url, secret_key, publishable_key))
        self.keys = self._key_set(
            jwt_key=jwt_key if in_code else C.env(None, "jwt_key"),
            jwks_url=jwks_url if in_code else C.env(None, "jwks_url"),
            secret_key=secret_key if in_code else C.env(None, "secret_key"),
            pk=pk,
            api_url=C.env(api_url, "api_url") or DEFAULT_API_URL,
            http_client=http_client,
            clock=clock,
            ttl=jwks_cache_ttl,
            cooldown=jwks_cooldown,
            stale_window=jwks_stale_window,
            timeout=jwks_timeout,
        )
        self.authorized_parties = C.parse_authorized_parties(
            C.env(None, "authorized_parties") if authorized_parties is None else authorized_parties
        )
        if isinstance(audience, str):
            audience = [audience]
        self.public_origin = (
            C.validate_origin(public_origin, "public_origin") if public_origin else None
        )

        sign_in = C.env(sign_in_url, "sign_in_url")
        if sign_in is None and pk is not None:
            sign_in = pk.accounts_sign_in_url
        self.sign_in_url = C.validate_redirect_target(sign_in, "sign_in_url") if sign_in else None
        if self.sign_in_url and "redirect_url" in parse_qs(urlsplit(self.sign_in_url).query):
            raise ConfigurationError(
                f"sign_in_url {self.sign_in_url!r} already has a redirect_url parameter; the "
                "middleware adds it (the URL the user wanted). Remove it from sign_in_url."
            )

        if isinstance(default, str):
            if default not in ("protect", "public", "api"):
                raise ConfigurationError(
                    f"default must be 'protect', 'public', 'api' or a Rule, got {default!r}."
                )
            default = Rule(default)
        rules = list(rules)
        for rule in [*rules, default]:
            if not isinstance(rule, Rule):
                raise ConfigurationError(
                    f"rules must hold Rule objects (Rule.public/protect/api), got {rule!r}."
                )
            if rule.unauthorized_url is not None:
                C.validate_redirect_target(rule.unauthorized_url, "unauthorized_url")
        self._matcher = RuleMatcher(self._sign_in_rules(rules, default), default)
        self._known_routes = self._matcher.known
        self._check_redirect_targets(rules)

        self.verifier = TokenVerifier(
            self.keys,
            clock=clock,
            issuer=self.issuer,
            authorized_parties=self.authorized_parties,
            audience=frozenset(audience or ()),
            clock_skew=clock_skew,
            treat_pending_as_signed_out=treat_pending_as_signed_out,
            max_token_age=max_token_age,
            cache_size=token_cache_size,
        )
        if self.issuer is None:
            logger.info("No publishable key or issuer configured: token 'iss' is not checked.")
        if not self.authorized_parties:
            logger.info("No authorized_parties configured: token 'azp' is not checked.")

    @staticmethod
    def _key_set(
        *,
        jwt_key: str | None,
        jwks_url: str | None,
        secret_key: str | None,
        pk: C.PublishableKey | None,
        api_url: str,
        http_client: httpx.AsyncClient | None,
        clock: Callable[[], float],
        ttl: float,
        cooldown: float,
        stale_window: float,
        timeout: float,
    ) -> KeySet:
        if jwt_key:
            return StaticKeySet(C.load_pem_key(jwt_key))
        headers: dict[str, str] = {}
        if jwks_url:
            url = C.validate_jwks_url(jwks_url)
        elif secret_key:
            secret = C.validate_secret_key(secret_key)
            C.validate_jwks_url(api_url, "api_url (CLERK_API_URL)")
            url = api_url.rstrip("/") + "/v1/jwks"
            headers["Authorization"] = f"Bearer {secret}"
        elif pk is not None:
            url = pk.jwks_url
        else:
            raise ConfigurationError(
                "No Clerk key material: set one of CLERK_JWT_KEY (PEM public key, networkless), "
                "CLERK_SECRET_KEY, CLERK_PUBLISHABLE_KEY or CLERK_JWKS_URL, or pass jwt_key=, "
                "secret_key=, publishable_key= or jwks_url= to ClerkMiddleware."
            )
        return RemoteKeySet(
            url,
            headers=headers,
            http_client=http_client,
            clock=clock,
            ttl=ttl,
            cooldown=cooldown,
            stale_window=stale_window,
            timeout=timeout,
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

    def _sign_in_rules(self, rules: list[Rule], default: Rule) -> list[Rule]:
        """Make the sign-in path (and its sub-pages) public; refuse rules that protect it."""
        path = self._own_path(self.sign_in_url)
        if path is None:
            return rules
        explicit = RuleMatcher(rules, Rule.public()).match(path)
        if explicit.kind != "public":
            raise ConfigurationError(
                f"sign_in_url path {path!r} is covered by a Rule.{explicit.kind}(...) rule, so "
                "signing in would itself require signing in. Make it public "
                f"(Rule.public({path!r} + '(.*)')) or move the rule."
            )
        base = path.rstrip("/") or "/"
        return [Rule.public(base if base == "/" else base + "/:rest*"), *rules]

    def _check_redirect_targets(self, rules: list[Rule]) -> None:
        """An unauthorized_url that itself needs a role or permission could redirect forever."""
        for rule in rules:
            path = self._own_path(rule.unauthorized_url)
            if path is not None and self._matcher.match(path).requires_authorization:
                raise ConfigurationError(
                    f"unauthorized_url {rule.unauthorized_url!r} is covered by a rule that "
                    "requires a role or permission, so refused users could be redirected in a "
                    "loop. Make it public or protect it without role/permission."
                )

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        kind = scope["type"]
        if kind != "http" and kind != "websocket":
            if kind == "lifespan":
                await self.app(scope, receive, send)
            else:
                logger.warning("Refusing ASGI scope of unknown type %r", kind)
            return

        # Headers by name, in C. dict() keeps the last of repeated names: when names repeat,
        # _carriers() reads them again in order (first wins, Authorization counted, every
        # Cookie kept).
        raw_headers = scope["headers"]
        found: dict[bytes, bytes] = dict(raw_headers)
        spoofed = not IDENTITY_SPELLINGS.isdisjoint(found)
        if len(found) == len(raw_headers):
            authorization = found.get(b"authorization")
            cookie = found.get(b"cookie")
            cookies = None if cookie is None else [cookie]
        else:
            found, authorization, cookies = carriers(raw_headers)

        path: str = scope["path"]
        if scope.get("root_path"):
            path = route_path(scope)
        rule = self._known_routes.get(path) or self._matcher.match(path)

        token: str | None = None
        carrier: Carrier = "header"
        if authorization is not None:
            if authorization.startswith(b"Bearer ") and len(authorization) > 7:  # common case
                token = authorization[7:].decode("latin-1")
            elif authorization is SEVERAL:
                token = AMBIGUOUS
            else:
                token = token_from_authorization(authorization.decode("latin-1"))
        if token is None and cookies is not None:
            token, carrier = session_cookie(cookies), "cookie"
        if token is None:
            auth = _NO_TOKEN
        elif token is AMBIGUOUS:
            auth = Auth.signed_out(R.TOKEN_INVALID)
        else:
            auth = self.verifier.cached(token) or await self.verifier.verify(token)
            if carrier == "cookie" and auth.user_id is not None and self._cross_site(scope, found):
                auth = Auth.signed_out(R.ORIGIN_NOT_AUTHORIZED)

        user_id = auth.user_id
        # Public routes run for everyone; so do signed-in users where no role/permission is due.
        if rule.kind != "public" and (user_id is None or rule.requires_authorization):
            refusal = self._refusal(scope, rule, auth, found, token is not None)
            if refusal is not None:
                await send_refusal(scope, send, refusal)
                return

        scope = {**scope, AUTH_SCOPE_KEY: auth}
        identity: tuple[bytes, bytes] | None = None
        if rule.kind == "api" and user_id is not None:
            identity = (b"x-user-id", user_id.encode("ascii"))  # ASCII: checked by the verifier
        if spoofed:
            scope["headers"] = [(n, v) for n, v in scope["headers"] if n not in IDENTITY_SPELLINGS]
        if identity is not None:
            scope["headers"] = [*scope["headers"], identity]
        started = False

        async def watched_send(message: Message) -> None:
            """Note that the response (or WebSocket accept) began; echo ``x-user-id``."""
            nonlocal started
            if not started:
                started = True
                if identity is not None and message["type"] == "http.response.start":
                    message = {**message, "headers": [*message.get("headers", ()), identity]}
            await send(message)

        try:
            await self.app(scope, receive, watched_send)
        except AuthError as error:  # raised by require_auth(): answered here, in one place
            if not started:
                refusal = Refusal(
                    status=error.status_code,
                    reason=error.reason,
                    auth_status="signed-in" if error.status_code == 403 else "signed-out",
                    token_presented=token is not None,
                    retry_after=self.keys.retry_after() if error.status_code == 503 else None,
                    message=error.message,
                )
                await send_refusal(scope, send, refusal)
            elif kind == "websocket":
                await send({"type": "websocket.close", "code": 1008, "reason": error.reason})
            else:  # the response has begun: too late to answer, let the server see the error
                raise

    def _refusal(
        self,
        scope: Scope,
        rule: Rule,
        auth: Auth,
        found: Mapping[bytes, bytes],
        token_presented: bool,
    ) -> Refusal | None:
        """What a protect/api rule answers for ``auth`` (signed out, or signed in where a role or
        permission is required), or None to run the app."""
        if auth.user_id is None:
            reason = auth.reason or R.SESSION_TOKEN_MISSING
            if reason == R.JWK_REMOTE_FAILED_TO_LOAD:
                return Refusal(503, reason, retry_after=self.keys.retry_after())
            if rule.kind == "protect" and self.sign_in_url and is_navigation(scope, found):
                target = with_query(
                    _under_root(scope, self.sign_in_url),
                    "redirect_url",
                    redirect_url_for(scope, found.get(b"host"), self.public_origin),
                )
                return Refusal(307, reason, location=target)
            return Refusal(401, reason, token_presented=token_presented)
        if auth.has(role=rule.role, permission=rule.permission):
            return None
        if rule.unauthorized_url and scope["type"] == "http":  # any request, as Clerk's protect()
            target = _under_root(scope, rule.unauthorized_url)
            return Refusal(307, R.AUTHORIZATION_FAILED, "signed-in", location=target)
        return Refusal(403, R.AUTHORIZATION_FAILED, "signed-in")

    def _cross_site(self, scope: Scope, found: Mapping[bytes, bytes]) -> bool:
        """A cookie-carried session used cross-site (CSRF / cross-site WebSocket hijacking).

        WebSocket handshakes must send an allowed ``Origin``; state-changing HTTP methods are
        refused when ``Origin`` names another site or ``Sec-Fetch-Site`` says cross-site.
        """
        websocket: bool = scope["type"] == "websocket"
        if not websocket and scope["method"] in _SAFE_METHODS:
            return False
        if found.get(b"sec-fetch-site") == b"cross-site":
            return True
        origin = found.get(b"origin")
        if origin is None:
            return websocket
        text: str = origin.decode("latin-1")
        if self.authorized_parties:
            return text not in self.authorized_parties
        return text != (self.public_origin or request_origin(scope, found.get(b"host")))


def _under_root(scope: Scope, url: str) -> str:
    """A path-form redirect target is a route of this app: put it under the app's root_path."""
    return scope.get("root_path", "") + url if url.startswith("/") else url
