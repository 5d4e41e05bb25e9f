"""Clerk's cookie flow for page requests, and the handshake.

A browser that uses Clerk's frontend keeps a 60-second ``__session`` cookie and a
``__client_uat`` cookie (when the client last signed in or out; ``0``: signed out). When the
session cookie is missing, stale or expired on a page load, Clerk's server SDKs do not sign the
user out: they answer a 307 to the Frontend API's ``/v1/client/handshake``, which sets fresh
cookies and sends the browser back. This module follows ``@clerk/backend`` 3.16's
``authenticateRequest`` for cookie-carried requests, in its order and with its reason codes:

0. coming back from the Frontend API (``__clerk_handshake_nonce``, or the legacy
   ``__clerk_handshake`` token): resolve it, set every directive as its own ``Set-Cookie``;
1. development instances: a dev browser (``__clerk_db_jwt``) must be there, else handshake;
2. ``__client_uat`` 0 and no session: signed out, never a handshake;
3. a session without ``__client_uat``, or ``__client_uat`` without a session: handshake;
4. a session issued before ``__client_uat`` (stale): handshake;
5. the session token verified; expired, or not yet valid: handshake; other failures: signed out.

A handshake is only for GET page loads (``Sec-Fetch-Dest`` document/iframe, or none and an
``Accept`` starting with ``text/html``); every other request is signed out with the same
reason. A ``__clerk_redirect_count`` cookie stops a loop after three handshakes.

Deliberate differences from ``@clerk/backend``: the nonce is resolved only on requests eligible
for a handshake, and a failed resolution falls back to the normal cookie evaluation instead of
signing the user out; ``redirect_url`` is built on ``public_origin`` (forwarded headers are
not trusted); the loop guard stops at three or more (Clerk: exactly three); directives from
the Backend API are checked (count, size, no control characters) and refused whole when one is
not a plain ``Set-Cookie`` value; the production return does not add
``Access-Control-Allow-Origin: null``; satellite domains, organization sync and server-side
refresh (``__refresh_*``) are not implemented.
"""

from __future__ import annotations

import logging
import math
import re
from collections.abc import Mapping
from functools import partial
from typing import Any, Final, NamedTuple
from urllib.parse import parse_qsl, quote_plus

from ._auth import Auth
from ._config import ClerkConfig
from ._reasons import (
    CLIENT_UAT_BUT_NO_SESSION_TOKEN,
    DEV_BROWSER_MISSING,
    DEV_BROWSER_SYNC,
    SESSION_REVOKED,
    SESSION_TOKEN_AND_UAT_MISSING,
    SESSION_TOKEN_BUT_NO_CLIENT_UAT,
    SESSION_TOKEN_EXPIRED_NO_REFRESH_COOKIE,
    SESSION_TOKEN_EXPIRED_NON_GET,
    SESSION_TOKEN_IAT_BEFORE_CLIENT_UAT,
    SESSION_TOKEN_IAT_IN_THE_FUTURE,
    SESSION_TOKEN_MISSING,
    SESSION_TOKEN_NBF,
    TOKEN_EXPIRED,
    TOKEN_IAT_IN_THE_FUTURE,
    TOKEN_NOT_ACTIVE_YET,
    message_for,
)
from ._request import Incoming, clerk_cookies, request_origin
from ._responses import Refusal
from ._revocation import revocation_reason
from ._verify import KeySet, TokenVerifier, unverified_claims, verify_handshake_token
from .backend import API_VERSION, BackendAPIError, ClerkBackend

__all__ = ["CookieFlow", "Outcome"]

logger = logging.getLogger(__name__)

#: After this many handshakes in a row (the counter cookie lives 2 s), the browser is signed out.
MAX_REDIRECTS: Final = 3
#: A handshake payload is a few cookies: more, or longer ones, come from a broken Backend API.
MAX_DIRECTIVES: Final = 32
MAX_DIRECTIVE_LENGTH: Final = 4096
#: Nonces are opaque to us, but never need more than URL-safe characters.
_NONCE: Final = re.compile(r"[A-Za-z0-9._~-]{1,256}")
_DIRECTIVE: Final = re.compile(r"[^\x00-\x1f\x7f]+")
_JS_INT: Final = re.compile(r"\s*([+-]?)(?:0[xX]([0-9a-fA-F]+)|([0-9]+))")  # ASCII digits
#: Query parameters the Frontend API adds on the way back, removed from the URL (development).
_RETURN_PARAMS: Final = frozenset(
    {"__clerk_handshake", "__clerk_help", "__clerk_db_jwt", "__clerk_handshake_nonce"}
)
#: Parameters never sent back in ``redirect_url``: Clerk's development ones, and those of a
#: previous way back (ours resolve-or-fall-back, so a failed nonce must not travel again).
_DEV_PARAMS: Final = frozenset({"__clerk_db_jwt", "__dev_session"}) | _RETURN_PARAMS
_EXPIRED_REASONS: Final = {
    TOKEN_NOT_ACTIVE_YET: SESSION_TOKEN_NBF,
    TOKEN_IAT_IN_THE_FUTURE: SESSION_TOKEN_IAT_IN_THE_FUTURE,
}


class Outcome(NamedTuple):
    """What the cookie flow found: the Auth, ``Set-Cookie`` values for whatever response follows,
    and a 307 to send instead of running the app (a handshake, or a development return)."""

    auth: Auth
    cookies: tuple[str, ...] = ()
    redirect: Refusal | None = None


def js_parse_int(text: str | None) -> int:
    """``Number.parseInt(text) || 0``, as Clerk reads ``__client_uat``: leading digits (or
    ``0x`` hex), an optional sign; anything unparsable is 0."""
    if not text:
        return 0
    sign, hexadecimal, decimal = "", None, text
    if not (text.isascii() and text.isdigit()):  # the common case: plain Unix seconds
        match = _JS_INT.match(text)
        if match is None:
            return 0
        sign, hexadecimal, decimal = match.groups()
    try:
        value = int(hexadecimal, 16) if hexadecimal else int(decimal)
    except ValueError:  # more digits than CPython converts
        return 0
    return -value if sign == "-" else value


def js_number(text: str | None) -> float:
    """``Number(text) || 0``, as Clerk reads ``__clerk_redirect_count``."""
    try:
        value = float((text or "").strip() or 0)
    except ValueError:
        return 0.0
    return 0.0 if math.isnan(value) else value


def form_encode(value: str) -> str:
    """``URLSearchParams`` encoding: space as ``+``; only ``*-._`` and alphanumerics kept."""
    return quote_plus(value, safe="*").replace("~", "%7E")


def without_params(url: str, names: frozenset[str]) -> str:
    """``url`` minus the query parameters ``names``; the query re-serialised as
    ``URLSearchParams`` does (Clerk's ``redirect_url`` and development return)."""
    base, mark, rest = url.partition("?")
    if not mark:
        return url
    query, hash_mark, fragment = rest.partition("#")
    pairs = [(k, v) for k, v in parse_qsl(query, keep_blank_values=True) if k not in names]
    serialised = "&".join(f"{form_encode(k)}={form_encode(v)}" for k, v in pairs)
    return base + ("?" + serialised if serialised else "") + hash_mark + fragment


def _claim(claims: Any, name: str) -> float | None:
    """A numeric claim of (unverified) ``claims``: a JSON number, not a bool; else None."""
    value = claims.get(name) if claims is not None else None
    return value if isinstance(value, int | float) and not isinstance(value, bool) else None


def _iat(claims: Any) -> float:
    return _claim(claims, "iat") or 0


class CookieFlow:
    """Clerk's cookie flow for one configuration (see the module docstring)."""

    def __init__(
        self,
        config: ClerkConfig,
        verifier: TokenVerifier,
        keys: KeySet,
        backend: ClerkBackend,
    ) -> None:
        self._config = config
        self._verifier = verifier
        self._keys = keys
        self._backend = backend
        self._development = config.instance_type == "development"
        self._suffix = f"_{config.cookie_suffix}"
        self._session_name = f"__session{self._suffix}"
        self._client_uat_name = f"__client_uat{self._suffix}"

    async def authenticate(self, request: Incoming, known: Auth | None) -> Outcome:
        """The outcome of the cookie flow for ``request`` (no token in an Authorization header),
        given what :meth:`known` found: that Auth when its session is not revoked, else the
        whole flow."""
        if known is not None and await self._revoked(known) is None:
            return Outcome(known)
        return await self._evaluate(request)

    def known(self, request: Incoming) -> Auth | None:
        """The common case, without I/O: a production instance, no handshake on its way back,
        and this instance's session token verified before and issued at or after its
        ``__client_uat``, in plain cookies or in suffixed ones that match them (as clerk-js
        writes both). None for anything else, which :meth:`authenticate` then decides; it
        reaches the same Auth for these requests. The revocation list is not consulted."""
        # bytes.find, not ``in``: CPython's ``bytes in bytes`` first tries the needle as an
        # integer and raises (and clears) a TypeError, a few thousand instructions each time.
        cookies = request.cookies
        query: bytes = request.scope.get("query_string", b"")
        if self._development or cookies is None or query.find(b"__clerk") >= 0:
            return None
        jar = clerk_cookies(cookies)
        if "__clerk_handshake_nonce" in jar or "__clerk_handshake" in jar:
            return None
        session, client_uat = jar.get("__session"), jar.get("__client_uat")
        suffixed, suffixed_uat = jar.get(self._session_name), jar.get(self._client_uat_name)
        if suffixed or suffixed_uat:  # Clerk's usesSuffixedCookies, when it is plain to see
            if not suffixed or not suffixed_uat or suffixed_uat == "0":
                return None
            if session is not None and session != suffixed:
                return None
            session, client_uat = suffixed, suffixed_uat
        auth = self._verifier.cached(session) if session else None
        if auth is None or not auth.is_signed_in:
            return None
        uat = js_parse_int(client_uat)
        if not uat or 0 < _iat(auth.claims) < uat:
            return None
        request.token, request.carrier = session, "cookie"
        return auth

    async def _evaluate(self, request: Incoming) -> Outcome:
        """Clerk's cookie flow, step by step (see the module docstring)."""
        jar = clerk_cookies(request.cookies) if request.cookies else {}
        query = self._query(request)
        if (
            "__clerk_handshake_nonce" in jar
            or "__clerk_handshake" in jar
            or "__clerk_handshake_nonce" in query
            or "__clerk_handshake" in query
        ) and self._eligible(request):
            back = await self._resolve(request, jar, query)
            if back is not None:
                return back

        plain = jar.get("__session")
        known = self._verifier.cached(plain) if plain else None
        suffixed = self._uses_suffixed(jar, plain, known if known and known.is_signed_in else None)
        suffix = self._suffix if suffixed else ""
        session = jar.get("__session" + suffix)
        if suffixed:
            known = self._verifier.cached(session) if session else None
        if session:  # the request's token, from now on (a 401 then says invalid_token)
            request.token, request.carrier = session, "cookie"
        client_uat = js_parse_int(jar.get("__client_uat" + suffix))
        hand_off = partial(self._hand_off, request, jar, session, suffixed)

        if self._development:
            synced = query.get("__clerk_db_jwt")
            dev_browser = synced or jar.get("__clerk_db_jwt" + suffix)
            hand_off = partial(hand_off, dev_browser=dev_browser)
            if synced:
                return hand_off(DEV_BROWSER_SYNC)
            if not dev_browser:
                return hand_off(DEV_BROWSER_MISSING)
        if not client_uat:
            if not session:
                return Outcome(Auth.signed_out(SESSION_TOKEN_AND_UAT_MISSING))
            return hand_off(SESSION_TOKEN_BUT_NO_CLIENT_UAT)
        if not session:
            return hand_off(CLIENT_UAT_BUT_NO_SESSION_TOKEN)
        # A verified token's claims, else the unverified ones (a refusal remembered by the
        # verifier carries none): staleness is checked before the signature, as in Clerk.
        claims = known.claims if known and known.is_signed_in else unverified_claims(session)
        if claims is not None and 0 < _iat(claims) < client_uat:  # a missing iat passes
            return hand_off(SESSION_TOKEN_IAT_BEFORE_CLIENT_UAT)

        auth = known or await self._verifier.verify(session)
        if auth.is_signed_in:
            revoked = await self._revoked(auth)
            if revoked == SESSION_REVOKED:  # Clerk decides what the browser's session is now
                return hand_off(SESSION_REVOKED)
            return Outcome(auth if revoked is None else Auth.signed_out(revoked))
        reason = auth.reason or SESSION_TOKEN_MISSING
        if reason == TOKEN_EXPIRED:
            get = request.scope["type"] == "http" and request.scope["method"] == "GET"
            why = SESSION_TOKEN_EXPIRED_NO_REFRESH_COOKIE if get else SESSION_TOKEN_EXPIRED_NON_GET
            return hand_off(why, detail=_detail(reason))
        if reason in _EXPIRED_REASONS:
            return hand_off(_EXPIRED_REASONS[reason], detail=_detail(reason))
        return Outcome(auth)

    async def _revoked(self, auth: Auth) -> str | None:
        """Why ``auth``'s session may not be used (the revocation list), or None."""
        store = self._config.revocation_list
        if store is None or auth.session_id is None:
            return None
        return await revocation_reason(store, auth.session_id)

    # -- reading the request ---------------------------------------------------------------------

    @staticmethod
    def _query(request: Incoming) -> dict[str, str]:
        """Clerk's query parameters (the first of each name); empty for most requests."""
        raw: bytes = request.scope.get("query_string", b"")
        if raw.find(b"__clerk") < 0:  # bytes.find: see known()
            return {}
        found: dict[str, str] = {}
        for name, value in parse_qsl(raw.decode("latin-1"), keep_blank_values=True):
            if name.startswith("__clerk"):
                found.setdefault(name, value)
        return found

    @staticmethod
    def _eligible(request: Incoming) -> bool:
        """Clerk's ``isRequestEligibleForHandshake``: a GET page load."""
        scope, headers = request.scope, request.headers
        if scope["type"] != "http" or scope["method"] != "GET":
            return False
        dest = headers.get(b"sec-fetch-dest")
        if dest is not None:
            return dest in (b"document", b"iframe")
        return headers.get(b"accept", b"").startswith(b"text/html")

    def _uses_suffixed(self, jar: Mapping[str, str], plain: str | None, known: Auth | None) -> bool:
        """Clerk's ``usesSuffixedCookies``: whether ``__session_<suffix>`` and
        ``__client_uat_<suffix>`` are the cookies of this instance."""
        ss = jar.get("__session" + self._suffix, "")
        us = jar.get("__client_uat" + self._suffix)
        if not us and not ss:  # the common case: no suffixed cookie at all
            return plain is not None and known is None and not self._belongs(plain)
        s = plain or ""
        if s and known is None:
            claims = unverified_claims(s)
            if claims is None or "iss" not in claims:
                return False
            if not self._belongs(s, claims):
                return True
        u = jar.get("__client_uat")
        if us != "0" and u != "0" and _iat(unverified_claims(s)) > _iat(unverified_claims(ss)):
            return False
        if us == "0" and u != "0":
            return False
        if self._development and us != "0" and u == "0" and self._expired(ss):
            return False
        return not (not us and ss)

    def _belongs(self, token: str, claims: Any = None) -> bool:
        """The token's ``iss`` (minus every ``http(s)://``) is this instance's Frontend API; an
        undecodable token or one without ``iss`` counts as this instance's (plain cookies)."""
        claims = unverified_claims(token) if claims is None else claims
        if claims is None or "iss" not in claims:
            return True
        iss = claims.get("iss")
        return isinstance(iss, str) and re.sub("https?://", "", iss) == self._config.frontend_api

    def _expired(self, token: str) -> bool:
        exp = _claim(unverified_claims(token), "exp")
        return exp is not None and exp <= math.floor(self._config.clock())

    # -- coming back from the Frontend API -------------------------------------------------------

    async def _resolve(
        self, request: Incoming, jar: Mapping[str, str], query: dict[str, str]
    ) -> Outcome | None:
        """The handshake's result, or None to evaluate the cookies as they are."""
        nonce = query.get("__clerk_handshake_nonce") or jar.get("__clerk_handshake_nonce")
        token = query.get("__clerk_handshake") or jar.get("__clerk_handshake")
        directives: list[str] | None = None
        if nonce:  # the nonce wins over a legacy token, as in Clerk
            if not _NONCE.fullmatch(nonce):
                logger.warning("Ignoring a malformed handshake nonce (%d characters).", len(nonce))
                return None
            try:
                directives = await self._backend.handshake_payload(nonce)
            except BackendAPIError as error:
                logger.warning("Clerk handshake payload unavailable (%s): %s", error.code, error)
                return None
        elif token:
            directives = await verify_handshake_token(self._keys, token)
            if directives is None:
                logger.warning("Ignoring a handshake token that does not verify.")
                return None
        if directives is None or not _plain_directives(directives):
            logger.warning("Ignoring a handshake payload that is not plain Set-Cookie values.")
            return None
        cookies = tuple(directives)
        session = ""
        for directive in directives:
            name, _, value = directive.partition(";")[0].partition("=")
            if name.strip().startswith("__session"):
                session = value.strip()  # the last one wins, as in Clerk
        if self._development:  # back to the clean URL, with the cookies (Clerk's dev return)
            origin = self._config.public_origin
            location = without_params(request.url(origin), _RETURN_PARAMS)
            return Outcome(
                Auth.signed_out(SESSION_TOKEN_MISSING),
                redirect=Refusal(
                    307,
                    "",
                    "signed-in",
                    location=location,
                    cookies=cookies,
                    message="Back from Clerk's handshake: reload the page with its cookies.",
                ),
            )
        if not session:
            return Outcome(Auth.signed_out(SESSION_TOKEN_MISSING), cookies=cookies)
        auth = self._verifier.cached(session) or await self._verifier.verify(session)
        if not auth.is_signed_in:
            logger.warning(
                "The session token of a Clerk handshake does not verify (%s): are the Clerk "
                "keys of this server those of the instance?",
                auth.reason,
            )
            return None
        return Outcome(auth, cookies=cookies)

    # -- handing the browser to the Frontend API -------------------------------------------------

    def _hand_off(
        self,
        request: Incoming,
        jar: Mapping[str, str],
        session: str | None,
        suffixed: bool,
        reason: str,
        *,
        dev_browser: str | None = None,
        detail: str = "",
    ) -> Outcome:
        """Clerk's ``maybe_handshake``: a 307 to the Frontend API when the request is eligible
        and the loop guard allows, else signed out with the same reason."""
        signed_out = Auth.signed_out(reason)
        if not self._eligible(request):
            return Outcome(signed_out)
        count = js_number(jar.get("__clerk_redirect_count"))
        if count >= MAX_REDIRECTS:
            logger.warning(
                "Clerk: the handshake was tried %d times in a row (%s); signing the browser out. "
                "Either the Clerk keys of this server are not those of the frontend's instance, "
                "or Clerk's Frontend API or Backend API cannot be reached from here.",
                MAX_REDIRECTS,
                reason,
            )
            return Outcome(signed_out)
        count = max(count, 0)  # a forged negative (or -inf) adds no handshake: it counts as 0
        counter = f"__clerk_redirect_count={int(count) + 1}; SameSite=Lax; HttpOnly; Max-Age=2"
        back = without_params(request.url(self._config.public_origin), _DEV_PARAMS)
        params = [
            ("redirect_url", back),
            ("__clerk_api_version", API_VERSION),
            ("suffixed_cookies", "true" if suffixed else "false"),
            ("__clerk_hs_reason", reason),
            ("format", "nonce"),
        ]
        if session:
            params.append(("__session", session))
        if self._development and dev_browser:
            params.append(("__clerk_db_jwt", dev_browser))
        query = "&".join(f"{name}={form_encode(value)}" for name, value in params)
        location = f"{self.frontend_api(request).rstrip('/')}/v1/client/handshake?{query}"
        redirect = Refusal(
            307, reason, "handshake", location=location, cookies=(counter,), detail=detail
        )
        return Outcome(signed_out, redirect=redirect)

    def frontend_api(self, request: Incoming) -> str:
        """Where the handshake goes: the proxy (made absolute on this site) or the instance's
        Frontend API."""
        proxy = self._config.proxy_url
        if proxy is None:
            return f"https://{self._config.frontend_api}"
        if proxy.startswith("/"):
            origin = self._config.public_origin or request_origin(
                request.scope, request.headers.get(b"host")
            )
            return origin + proxy
        return proxy


def _plain_directives(directives: list[str]) -> bool:
    """Every directive a plain ``Set-Cookie`` value: bounded, no control characters (no header
    splitting), a ``name=`` first, ASCII."""
    if len(directives) > MAX_DIRECTIVES:
        return False
    for directive in directives:
        if not 0 < len(directive) <= MAX_DIRECTIVE_LENGTH or not _DIRECTIVE.fullmatch(directive):
            return False
        if "=" not in directive.partition(";")[0] or not directive.isascii():
            return False
    return True


def _detail(reason: str) -> str:
    """Clerk's ``x-clerk-auth-message``: what failed and where the token was."""
    return f"{message_for(reason)} (reason={reason}, token-carrier=cookie)"
