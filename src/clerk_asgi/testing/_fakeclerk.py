"""FakeClerk: an in-process stand-in for a Clerk instance's Frontend API and Backend API, and
the webhooks its sessions send (Clerk sends them through Svix)."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import logging
import re
import secrets
import time
from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass, replace
from types import MappingProxyType
from typing import TYPE_CHECKING, Any, Literal
from urllib.parse import urlsplit

import httpx
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route
from starlette.types import ASGIApp, Receive, Scope, Send

from clerk_asgi._config import parse_publishable_key

from . import SESSION_CATEGORY, KeyPair, _encode_permissions, mint_session_token
from ._fakeclerk_bapi import BAPI_ROUTES
from ._fakeclerk_fapi import FAPI_ROUTES, add_cors, preflight, session_activity
from ._fakeclerk_models import (
    FakeClient,
    FakeHandshake,
    FakeSession,
    FakeUser,
    clerk_error,
    ms,
    new_id,
    not_found,
)
from ._webhooks import make_webhook_secret, sign_webhook

if TYPE_CHECKING:
    import anyio

__all__ = ["FakeClerk", "FakeWebhook"]

logger = logging.getLogger(__name__)

#: The ``cat`` header of a JWT-template token.
TEMPLATE_CATEGORY = "cl_B7d4PD222AAA"
#: Seconds a webhook endpoint has to answer (one attempt; Svix would retry later).
WEBHOOK_TIMEOUT = 5.0
#: The origin a path-only ``webhook_url`` is requested on, in process (``webhook_app``).
IN_PROCESS_ORIGIN = "http://localhost"

Handler = Callable[["FakeClerk", Request, dict[str, str]], Awaitable[Response]]
_METHODS = ["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"]
_SHORTCODE = re.compile(r"\{\{\s*([a-z_.]+)\s*\}\}")


@dataclass(frozen=True)
class FakeWebhook:
    """One webhook FakeClerk sent: the event, the exact body and ``svix-*`` headers, and how
    the endpoint answered."""

    #: Clerk's event: ``{"data": <session>, "object": "event", "type", "timestamp" (ms),
    #: "instance_id"}``.
    event: Mapping[str, Any]
    #: The JSON body, byte for byte as signed.
    body: bytes
    #: ``svix-id``, ``svix-timestamp`` and ``svix-signature``.
    headers: Mapping[str, str]
    #: The endpoint's status, or None when it could not be reached (see :attr:`error`).
    status: int | None
    #: Why the endpoint could not be reached (a connection error, a timeout), else None.
    error: str | None = None

    @property
    def type(self) -> str:
        """The event type, e.g. ``session.revoked``."""
        kind: str = self.event["type"]
        return kind

    @property
    def delivered(self) -> bool:
        """Whether the endpoint accepted it (a 2xx answer), as Svix counts a success."""
        return self.status is not None and 200 <= self.status < 300


@dataclass(frozen=True)
class _SessionWithActivity(FakeSession):
    """A session that knows the device it was signed in from (Clerk's ``latest_activity``)."""

    latest_activity: Mapping[str, Any] | None = None

    def to_json(self) -> dict[str, Any]:
        body = super().to_json()
        activity = self.latest_activity
        body["latest_activity"] = dict(activity) if activity is not None else None
        return body


def _webhook_secret(secret: str | None) -> str:
    """``secret`` checked (``whsec_`` and base64, as the Dashboard shows one), or a new one."""
    if secret is None:
        return make_webhook_secret()
    encoded = secret.removeprefix("whsec_")
    try:
        key = base64.b64decode(encoded + "=" * (-len(encoded) % 4), validate=True)
    except ValueError:
        key = b""
    if not secret.startswith("whsec_") or not key:
        raise ValueError(
            "webhook_secret must be 'whsec_' and base64, as Clerk's Dashboard shows it; leave "
            "it out for a new one"
        )
    return secret


def _webhook_url(url: str | None, app: ASGIApp | None) -> str | None:
    """``url`` checked: an absolute http(s) URL, or a path when ``app`` answers in process."""
    if url is None:
        if app is not None:
            raise ValueError("webhook_app needs webhook_url: the path to POST to, e.g. '/hooks'")
        return None
    parts = urlsplit(url)
    if (app is not None and url.startswith("/") and not url.startswith("//")) or (
        parts.scheme in ("http", "https") and parts.hostname
    ):
        return url
    raise ValueError(
        f"webhook_url must be an http(s) URL (or a path such as '/api/webhooks/clerk' with "
        f"webhook_app), not {url!r}"
    )


def cookie_suffix(publishable_key: str) -> str:
    """The suffix of Clerk's suffixed cookie names (``__session_<suffix>``) for a key."""
    digest = base64.b64encode(hashlib.sha1(publishable_key.encode()).digest()).decode()  # noqa: S324
    return digest.replace("+", "-").replace("/", "_")[:8]


class FakeClerk:
    """A local Clerk instance, as an ASGI app: its Frontend API (FAPI) and Backend API (BAPI),
    signing real RS256 tokens with :attr:`key`, all state in memory.

    Reach it through ``httpx.ASGITransport(fake)``, mount it (``Mount("/__clerk", fake)``, as
    an app's Frontend API proxy), or serve it with uvicorn. Both APIs answer on one host:
    point ``ClerkMiddleware`` at it with ``publishable_key=fake.publishable_key``,
    ``secret_key=fake.secret_key`` and ``api_url=fake.api_url`` (or ``jwt_key=fake.key.public_pem``
    to skip the JWKS).

    Example::

        fake = FakeClerk(clock=clock, origin="https://app.example.test")
        client = fake.sign_in(fake.add_user(email="ada@example.test"))
        token = fake.session_token(client.session_id)
        async with httpx.AsyncClient(
            transport=httpx.ASGITransport(fake), base_url=fake.frontend_api_url
        ) as fapi:
            r = await fapi.get("/v1/client/handshake", params={
                "redirect_url": "https://app.example.test/", "format": "nonce",
                "__clerk_db_jwt": client.dev_browser,
            })  # 307 back to the app, with __clerk_handshake_nonce

    Webhooks: with ``webhook_url``, every session that starts or ends sends Clerk's event
    (``session.created``, ``session.ended`` on sign-out, ``session.revoked``,
    ``session.removed``), signed like Svix with :attr:`webhook_secret`. Events caused by a
    request to the fake are delivered before it answers; those of :meth:`sign_in`,
    :meth:`sign_out` and :meth:`revoke` when it next answers one, or at once with
    ``await fake.deliver_webhooks()``. One attempt each; a failing endpoint is logged and
    recorded, never raised. Clerk's ``event_attributes`` (the request's IP and user agent)
    are not sent.

    Switches for tests: :attr:`failing` (the handshake answers without resolving anything),
    :attr:`payload_gate` and :attr:`payload_error` (the BAPI handshake payload hangs or fails).
    Records: :attr:`handshakes`, :attr:`requests`, :attr:`last_api_version`, :attr:`webhooks`.
    """

    def __init__(
        self,
        *,
        frontend_api: str = "clerk.example.test",
        instance: Literal["development", "production"] = "development",
        key: KeyPair | None = None,
        secret_key: str | None = None,
        token_lifetime: float = 60,
        session_lifetime: float = 7 * 86_400,
        proxy_path: str | None = None,
        clock: Callable[[], float] | None = None,
        origin: str | None = None,
        webhook_url: str | None = None,
        webhook_app: ASGIApp | None = None,
        webhook_secret: str | None = None,
    ) -> None:
        """Args:
        frontend_api: the instance's Frontend API host, encoded in :attr:`publishable_key`.
        instance: ``development`` (``pk_test_``; the handshake answers in the query, browsers
            carry dev-browser tokens) or ``production`` (``pk_live_``; the handshake answers
            in a cookie).
        key: the signing key (default: a fresh 2048-bit key, ``kid`` ``ins_fakeclerk``).
        secret_key: the BAPI secret (default: a random ``sk_test_``/``sk_live_`` key).
        token_lifetime: seconds a session token lives (Clerk's default is 60).
        session_lifetime: seconds until a session expires (Clerk's default is 7 days).
        proxy_path: the path the app proxies to this Frontend API (e.g. ``/__clerk``): the
            prefix is accepted on every path, and FAPI cookies are scoped to it.
        clock: wall-clock seconds (default ``time.time``), e.g. a ``FakeClock``.
        origin: the app's origin, the ``azp`` of the tokens (default: the Origin of the FAPI
            request, or the handshake's redirect origin).
        webhook_url: where session events are POSTed (an http(s) URL; default: none sent).
        webhook_app: an ASGI app that receives them in process (``webhook_url`` may then be a
            path, such as ``/api/webhooks/clerk``).
        webhook_secret: the endpoint's signing secret, ``whsec_`` and base64 (default: a new
            one, read it from :attr:`webhook_secret`).

        Raises:
            ValueError: a bad ``instance``, ``proxy_path``, ``webhook_url`` or
                ``webhook_secret``.
        """
        if instance not in ("development", "production"):
            raise ValueError(f"instance must be 'development' or 'production', not {instance!r}")
        live = "live" if instance == "production" else "test"
        encoded = base64.b64encode(f"{frontend_api}$".encode()).decode().rstrip("=")
        self._publishable_key = f"pk_{live}_{encoded}"
        parse_publishable_key(self._publishable_key)  # ConfigurationError for a bad host
        if proxy_path is not None and (not proxy_path.startswith("/") or proxy_path == "/"):
            raise ValueError(f"proxy_path must be a path such as '/__clerk', not {proxy_path!r}")
        self.frontend_api = frontend_api
        self.instance = instance
        self.key = key if key is not None else KeyPair.generate("ins_fakeclerk")
        self._secret_key = secret_key or f"sk_{live}_fakeclerk{secrets.token_hex(16)}"
        self.token_lifetime = token_lifetime
        self.session_lifetime = session_lifetime
        self.proxy_path = proxy_path.rstrip("/") if proxy_path else None
        self.clock: Callable[[], float] = clock if clock is not None else time.time
        self.origin = origin.rstrip("/") if origin else None
        #: Where session events are POSTed (None: not sent); see :meth:`deliver_webhooks`.
        self.webhook_url = _webhook_url(webhook_url, webhook_app)
        #: The ASGI app that receives them in process, or None (over the network).
        self.webhook_app = webhook_app
        self._webhook_secret = _webhook_secret(webhook_secret)
        #: The instance's id, the ``instance_id`` of its webhook events.
        self.instance_id = new_id("ins")
        #: When true, the handshake answers 307 back to ``redirect_url`` without resolving
        #: anything (no nonce, no token, no cookies): a redirect loop, for loop guards.
        self.failing = False
        #: While set to an ``anyio.Event``, BAPI ``handshake_payload`` waits for it before
        #: answering; never set it to make the call hang (timeout tests).
        self.payload_gate: anyio.Event | None = None
        #: When set to a status (e.g. 500, 503), BAPI ``handshake_payload`` answers it with a
        #: Clerk error instead of the directives (the nonce stays unused).
        self.payload_error: int | None = None
        #: Every handshake call, oldest first.
        self.handshakes: list[FakeHandshake] = []
        #: ``(method, path)`` of every request, the proxy or mount prefix removed.
        self.requests: list[tuple[str, str]] = []
        #: The last ``Clerk-API-Version`` header a BAPI request carried.
        self.last_api_version: str | None = None
        #: Every webhook sent, oldest first.
        self.webhooks: list[FakeWebhook] = []
        self._outbox: list[dict[str, Any]] = []
        self._users: dict[str, FakeUser] = {}
        self._emails: dict[str, str] = {}
        self._templates: dict[str, tuple[dict[str, Any], float]] = {}
        self._clients: dict[str, FakeClient] = {}
        self._client_tokens: dict[str, str] = {}
        self._dev_browsers: dict[str, str] = {}
        self._sessions: dict[str, FakeSession] = {}
        self._nonces: dict[str, tuple[str, ...]] = {}
        self._routes = [(m, tuple(p.split("/")[1:]), h, False) for m, p, h in FAPI_ROUTES]
        self._routes += [(m, tuple(p.split("/")[1:]), h, True) for m, p, h in BAPI_ROUTES]
        self._app = Starlette(routes=[Route("/{path:path}", self._endpoint, methods=_METHODS)])

    # -- identity ------------------------------------------------------------------------------

    @property
    def publishable_key(self) -> str:
        """``pk_test_``/``pk_live_`` + base64 of ``<frontend_api>$``, as the Dashboard shows."""
        return self._publishable_key

    @property
    def secret_key(self) -> str:
        """The BAPI secret key every Backend API request must carry as a Bearer token."""
        return self._secret_key

    @property
    def issuer(self) -> str:
        """The ``iss`` of every token: ``https://<frontend_api>``."""
        return f"https://{self.frontend_api}"

    @property
    def jwks_url(self) -> str:
        """The Frontend API's public JWKS: ``https://<frontend_api>/.well-known/jwks.json``."""
        return f"{self.issuer}/.well-known/jwks.json"

    @property
    def api_url(self) -> str:
        """The Backend API base URL (``api_url=`` of the middleware); BAPI shares the host."""
        return self.issuer

    @property
    def frontend_api_url(self) -> str:
        """Where browsers reach the Frontend API: the proxy (``<origin><proxy_path>``) when
        proxied, else ``https://<frontend_api>``."""
        if self.proxy_path:
            return (self.origin or "") + self.proxy_path
        return self.issuer

    @property
    def webhook_secret(self) -> str:
        """The signing secret of :attr:`webhook_url` (``whsec_...``): what an app verifies
        webhooks with (``CLERK_WEBHOOK_SIGNING_SECRET``)."""
        return self._webhook_secret

    @property
    def cookie_suffix(self) -> str:
        """The suffix of suffixed cookie names (``__session_<suffix>``) for this instance."""
        return cookie_suffix(self._publishable_key)

    # -- what a test sets up --------------------------------------------------------------------

    def add_user(
        self,
        user_id: str | None = None,
        *,
        email: str | None = None,
        org_id: str | None = None,
        org_role: str | None = None,
        org_permissions: Iterable[str] = (),
    ) -> str:
        """Add a user (id generated if None) and return its id.

        ``org_id``/``org_role`` (``"org:admin"``)/``org_permissions`` (``"org:feature:perm"``)
        make it a member of an active organization, carried by its session tokens.
        """
        user_id = user_id or new_id("user")
        if user_id in self._users:
            raise ValueError(f"user {user_id!r} exists")
        if email is not None and email.lower() in self._emails:
            raise ValueError(f"email {email!r} belongs to {self._emails[email.lower()]!r}")
        permissions = tuple(org_permissions)
        _encode_permissions(list(permissions))  # ValueError unless "org:<feature>:<perm>"
        self._users[user_id] = FakeUser(user_id, email, org_id, org_role, permissions)
        if email is not None:
            self._emails[email.lower()] = user_id
        return user_id

    def add_template(self, name: str, claims: Mapping[str, Any], lifetime: float = 60) -> None:
        """Add a JWT template: ``claims`` (shortcodes such as ``"{{user.id}}"``,
        ``"{{user.primary_email_address}}"``, ``"{{org.id}}"``, ``"{{org.role}}"`` and
        ``"{{session.id}}"`` are filled in), tokens living ``lifetime`` seconds."""
        self._templates[name] = (dict(claims), lifetime)

    def sign_in(self, user_id: str, *, user_agent: str | None = None) -> FakeClient:
        """Sign ``user_id`` in on a new browser: a new client with one active session.

        The client's :attr:`~FakeClient.cookies` are what the browser holds for the FAPI;
        on a development instance it has a dev-browser token too. With ``user_agent`` (a
        ``User-Agent`` header), the session's ``latest_activity`` names its device and browser,
        as for a sign-in through the Frontend API.
        """
        user = self.find_user(user_id)
        if user is None:
            raise KeyError(f"no user {user_id!r}: add it with add_user() first")
        client = self._new_client()
        activity = session_activity(user_agent, None) if user_agent is not None else None
        self._start_session(client, user, activity=activity)
        return self._clients[client.id]

    def sign_out(self, session_id: str) -> None:
        """End a session, as the user signing out does (status ``ended``)."""
        self._end(self._known(session_id), "ended")

    def revoke(self, session_id: str) -> None:
        """Revoke a session, as the Backend API does (status ``revoked``)."""
        self._end(self._known(session_id), "revoked")

    def session_token(
        self, session_id: str, *, template: str | None = None, expires_in: float | None = None
    ) -> str:
        """A fresh token for a session, issued now by the fake clock.

        Without ``template``, a session token as Clerk issues it (v2 claims: ``iss``,
        ``sid``, ``sub``, ``azp`` when :attr:`origin` is set, ``iat``/``nbf``/``exp``,
        ``sts``, the user's organization), living :attr:`token_lifetime` seconds (or
        ``expires_in``). Minted whatever the session's status, as a token issued before the
        session ended would be. KeyError for an unknown session or template.
        """
        session = self._known(session_id)
        if template is not None and template not in self._templates:
            raise KeyError(f"no JWT template {template!r}: add it with add_template()")
        return self._token(session, template=template, expires_in=expires_in, azp=self.origin)

    @property
    def sessions(self) -> Mapping[str, FakeSession]:
        """Every session by id (read-only, live)."""
        for session_id in list(self._sessions):
            self._session(session_id)  # an active session past expire_at becomes expired
        return MappingProxyType(self._sessions)

    @property
    def clients(self) -> Mapping[str, FakeClient]:
        """Every client (browser) by id (read-only, live)."""
        return MappingProxyType(self._clients)

    @property
    def users(self) -> Mapping[str, FakeUser]:
        """Every user by id (read-only, live)."""
        return MappingProxyType(self._users)

    def find_user(self, identifier: str) -> FakeUser | None:
        """The user with this id or email address, or None."""
        user_id = self._emails.get(identifier.lower(), identifier)
        return self._users.get(user_id)

    # -- state shared with the handlers ---------------------------------------------------------

    def _now(self) -> float:
        return float(self.clock())

    def _known(self, session_id: str) -> FakeSession:
        session = self._session(session_id)
        if session is None:
            raise KeyError(f"no session {session_id!r}")
        return session

    def _session(self, session_id: str) -> FakeSession | None:
        """The session, turned ``expired`` once the clock passes its ``expire_at``."""
        session = self._sessions.get(session_id)
        if session is not None and session.status == "active" and self._now() >= session.expire_at:
            session = self._sessions[session_id] = replace(session, status="expired")
        return session

    def _new_client(self) -> FakeClient:
        now = self._now()
        dev_browser = "dvb_" + secrets.token_urlsafe(24) if self.instance == "development" else None
        token = secrets.token_urlsafe(32)
        client = FakeClient(new_id("client"), token, dev_browser, (), None, now, now)
        self._clients[client.id] = client
        self._client_tokens[client.token] = client.id
        if dev_browser is not None:
            self._dev_browsers[dev_browser] = client.id
        return client

    def _start_session(
        self, client: FakeClient, user: FakeUser, *, activity: Mapping[str, Any] | None = None
    ) -> FakeSession:
        now = self._now()
        session = _SessionWithActivity(
            id=new_id("sess"),
            client_id=client.id,
            user_id=user.id,
            status="active",
            created_at=now,
            updated_at=now,
            last_active_at=now,
            expire_at=now + self.session_lifetime,
            abandon_at=now + 30 * 86_400,
            last_active_organization_id=user.org_id,
            latest_activity=MappingProxyType(dict(activity)) if activity is not None else None,
        )
        self._sessions[session.id] = session
        self._clients[client.id] = replace(
            self._clients[client.id],
            session_ids=(*self._clients[client.id].session_ids, session.id),
            last_active_session_id=session.id,
            updated_at=now,
        )
        self._emit("session.created", session)
        return session

    def _end(self, session: FakeSession, status: str) -> FakeSession:
        """Move an active session to ``status`` (others are left as they are)."""
        if session.status != "active":
            return session
        now = self._now()
        session = self._sessions[session.id] = replace(session, status=status, updated_at=now)
        self._clients[session.client_id] = replace(self._clients[session.client_id], updated_at=now)
        self._emit(f"session.{status}", session)  # session.ended, .revoked or .removed
        return session

    def _touch(self, session: FakeSession) -> None:
        stored = self._sessions[session.id]  # the current record, never a stale copy
        self._sessions[session.id] = replace(stored, last_active_at=self._now())

    def _client_of(self, request: Request) -> FakeClient | None:
        """The browser's client, as Clerk's FAPI identifies it: the dev-browser token (query,
        then cookie) on a development instance, else the ``__client`` cookie."""
        if self.instance == "development":
            dev_browser = request.query_params.get("__clerk_db_jwt") or request.cookies.get(
                "__clerk_db_jwt"
            )
            if dev_browser in self._dev_browsers:
                return self._clients[self._dev_browsers[dev_browser]]
        client_id = self._client_tokens.get(request.cookies.get("__client", ""))
        return self._clients[client_id] if client_id else None

    def _active_session(self, client: FakeClient | None) -> FakeSession | None:
        """The client's last active session if still active, else its newest active one."""
        if client is None:
            return None
        order = [client.last_active_session_id, *reversed(client.session_ids)]
        for session_id in order:
            session = self._session(session_id) if session_id else None
            if session is not None and session.status == "active":
                return session
        return None

    def _token(
        self,
        session: FakeSession,
        *,
        template: str | None,
        expires_in: float | None,
        azp: str | None,
    ) -> str:
        """A session token, or a template's token (template known to exist)."""
        now = self._now()
        self._touch(session)
        user = self._users[session.user_id]
        jti = new_id("jti")[4:24]
        if template is None:
            return mint_session_token(
                self.key,
                user_id=user.id,
                session_id=session.id,
                issuer=self.issuer,
                azp=azp,
                expires_in=self.token_lifetime if expires_in is None else expires_in,
                issued_at=now,
                org_id=user.org_id,
                org_role=user.org_role,
                org_permissions=user.org_permissions,
                claims={"jti": jti},
            )
        claims, lifetime = self._templates[template]
        values = {
            "user.id": user.id,
            "user.primary_email_address": user.email,
            "org.id": user.org_id,
            "org.role": user.org_role,
            "session.id": session.id,
        }
        payload = _render(claims, values)
        payload.update(iss=self.issuer, sub=user.id, iat=int(now), nbf=int(now) - 10, jti=jti)
        payload["exp"] = int(now + (lifetime if expires_in is None else expires_in))
        if azp is not None:
            payload["azp"] = azp
        header = {"alg": "RS256", "kid": self.key.kid, "typ": "JWT", "cat": TEMPLATE_CATEGORY}
        return self.key.sign(header, payload)

    def _handshake_token(self, directives: Iterable[str]) -> str:
        """The legacy handshake token: ``{"handshake": [directives]}`` signed by the instance."""
        header = {"alg": "RS256", "kid": self.key.kid, "typ": "JWT", "cat": SESSION_CATEGORY}
        return self.key.sign(header, {"handshake": list(directives)})

    # -- webhooks -------------------------------------------------------------------------------

    def _emit(self, kind: str, session: FakeSession) -> None:
        """Queue Clerk's event for ``session`` (as it is now) when webhooks are configured."""
        if self.webhook_url is None:
            return
        event = {
            "data": session.to_json(),
            "object": "event",
            "type": kind,
            "timestamp": ms(self._now()),
            "instance_id": self.instance_id,
        }
        self._outbox.append(event)

    async def deliver_webhooks(self) -> list[FakeWebhook]:
        """Send every pending event now, oldest first, one attempt each.

        Never raises: an endpoint that cannot be reached or answers an error is logged (a
        warning) and recorded in :attr:`webhooks` like a success.

        Returns:
            The deliveries made (also appended to :attr:`webhooks`).
        """
        pending, self._outbox = self._outbox, []
        url = self.webhook_url
        if not pending or url is None:
            return []
        transport: httpx.AsyncBaseTransport | None = None
        if self.webhook_app is not None:
            transport = httpx.ASGITransport(self.webhook_app, raise_app_exceptions=False)
            url = IN_PROCESS_ORIGIN + url if url.startswith("/") else url
        sent: list[FakeWebhook] = []
        # trust_env=False: a local endpoint is never reached through the environment's proxy.
        async with httpx.AsyncClient(
            transport=transport, timeout=WEBHOOK_TIMEOUT, trust_env=False
        ) as client:
            for event in pending:
                body = json.dumps(event, separators=(",", ":")).encode()
                headers = sign_webhook(
                    body,
                    secret=self._webhook_secret,
                    msg_id=new_id("msg"),
                    timestamp=int(self._now()),
                )
                sent.append(await _post(client, url, event, body, headers))
        self.webhooks.extend(sent)
        return sent

    # -- ASGI -----------------------------------------------------------------------------------

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        await self._app(scope, receive, send)

    def _prefix(self, scope: Scope) -> str:
        """The path FAPI cookies are scoped to: the proxy path, else the mount point, else /."""
        return self.proxy_path or scope.get("root_path", "").rstrip("/") or "/"

    def _route_path(self, scope: Scope) -> str:
        """The raw (undecoded) request path, without the mount point and the proxy path."""
        raw: bytes | None = scope.get("raw_path")
        path = raw.split(b"?")[0].decode("latin-1") if raw else scope["path"]
        for prefix in (scope.get("root_path", ""), self.proxy_path):
            if prefix and (path == prefix or path.startswith(prefix + "/")):
                path = path[len(prefix) :]
        return path or "/"

    async def _endpoint(self, request: Request) -> Response:
        path = self._route_path(request.scope)
        self.requests.append((request.method, path))
        segments = tuple(path.split("/")[1:])
        is_bapi = False
        response: Response | None = None
        for method, pattern, handler, bapi in self._routes:
            params = _match(pattern, segments)
            if params is None:
                continue
            is_bapi = bapi
            if method == request.method:
                response = await self._call(handler, request, params, bapi)
                break
        if response is None:
            if not is_bapi and request.method == "OPTIONS":
                response = preflight(request)
            else:
                response = not_found("endpoint")
        if self._outbox:  # the events this request caused reach the app before the answer
            await self.deliver_webhooks()
        return response if is_bapi else add_cors(request, response)

    async def _call(
        self, handler: Handler, request: Request, params: dict[str, str], bapi: bool
    ) -> Response:
        if bapi:
            version = request.headers.get("clerk-api-version")
            if version is not None:
                self.last_api_version = version
            expected = f"Bearer {self._secret_key}".encode()
            if not hmac.compare_digest(request.headers.get("authorization", "").encode(), expected):
                return clerk_error(
                    401,
                    "authentication_invalid",
                    "Invalid authentication",
                    "Unable to authenticate the request, you need to supply an active API key",
                )
        return await handler(self, request, params)


async def _post(
    client: httpx.AsyncClient,
    url: str,
    event: Mapping[str, Any],
    body: bytes,
    headers: Mapping[str, str],
) -> FakeWebhook:
    """POST one signed event; the record of how it went (never raises)."""
    kind, msg_id = event["type"], headers.get("svix-id")
    try:
        response = await client.post(
            url, content=body, headers={**headers, "content-type": "application/json"}
        )
    # A fake's delivery never fails the request that ended the session: anything is recorded.
    except Exception as error:
        reason = f"{type(error).__name__}: {error}".rstrip(": ")
        logger.warning(
            "FakeClerk could not send webhook %s (%s) to %s: %s", msg_id, kind, url, reason
        )
        return FakeWebhook(event, body, headers, None, reason)
    if not response.is_success:
        logger.warning(
            "FakeClerk's webhook %s (%s) to %s was answered %d.",
            msg_id,
            kind,
            url,
            response.status_code,
        )
    return FakeWebhook(event, body, headers, response.status_code)


def _match(pattern: tuple[str, ...], segments: tuple[str, ...]) -> dict[str, str] | None:
    """Path parameters if ``segments`` match ``pattern`` literally (``{name}`` = any segment)."""
    if len(pattern) != len(segments):
        return None
    params: dict[str, str] = {}
    for want, got in zip(pattern, segments, strict=True):
        if want.startswith("{"):
            if not got:
                return None
            params[want[1:-1]] = got
        elif want != got:
            return None
    return params


def _render(claims: Any, values: Mapping[str, Any]) -> Any:
    """``claims`` with every ``"{{shortcode}}"`` string replaced by its value (None if unknown)."""
    if isinstance(claims, dict):
        return {name: _render(value, values) for name, value in claims.items()}
    if isinstance(claims, list):
        return [_render(value, values) for value in claims]
    if isinstance(claims, str) and (shortcode := _SHORTCODE.fullmatch(claims)):
        return values.get(shortcode.group(1))
    return claims
