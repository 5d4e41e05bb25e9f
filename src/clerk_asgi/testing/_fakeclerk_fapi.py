"""FakeClerk's Frontend API: JWKS, dev browser, a one-step sign-in, the client, session tokens,
sign-out, and the handshake."""

from __future__ import annotations

import ipaddress
import json
import re
import secrets
from types import MappingProxyType
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qsl, quote_plus, urlsplit, urlunsplit

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from . import jwks
from ._fakeclerk_models import (
    TEN_YEARS,
    FakeClient,
    FakeHandshake,
    FakeSession,
    add_set_cookies,
    clerk_error,
    cookie,
    invalid_param,
    missing_param,
    ms,
    new_id,
    not_found,
)

if TYPE_CHECKING:
    from ._fakeclerk import FakeClerk, Handler

#: Seconds the production handshake's transport cookie lives.
TRANSPORT_MAX_AGE = 60
#: ``User-Agent`` products and the browser names Clerk shows, the first match wins (Edge and
#: Opera also say Chrome, Chrome also says Safari).
_BROWSERS = (
    ("EdgiOS", "Edge"),
    ("EdgA", "Edge"),
    ("Edg", "Edge"),
    ("OPR", "Opera"),
    ("Firefox", "Firefox"),
    ("FxiOS", "Firefox"),
    ("HeadlessChrome", "Chrome Headless"),
    ("CriOS", "Chrome"),
    ("Chrome", "Chrome"),
    ("Version", "Safari"),
)
#: ``User-Agent`` platform words and the device types Clerk shows, the first match wins.
_DEVICES = (
    ("iPhone", "iPhone"),
    ("iPad", "iPad"),
    ("Android", "Android"),
    ("Macintosh", "Macintosh"),
    ("Windows", "Windows"),
    ("CrOS", "Chromebook"),
    ("Linux", "Linux"),
)


def session_activity(user_agent: str | None, ip_address: str | None) -> dict[str, Any]:
    """Clerk's SessionActivity (a session's ``latest_activity``) for a sign-in from this
    ``User-Agent`` and address: device type, browser and version, whether mobile. FakeClerk
    has no geolocation: ``city`` and ``country`` are None."""
    agent = user_agent or ""
    browser_name = browser_version = None
    for product, name in _BROWSERS:
        found = re.search(rf"\b{product}/([0-9][0-9.]*)", agent)
        if found:
            browser_name, browser_version = name, found.group(1)
            break
    device = next((kind for word, kind in _DEVICES if word in agent), None)
    return {
        "object": "session_activity",
        "id": new_id("sess_activity"),
        "device_type": device,
        "is_mobile": "Mobile" in agent,
        "browser_name": browser_name,
        "browser_version": browser_version,
        "ip_address": ip_address,
        "city": None,
        "country": None,
    }


def _signed_out() -> JSONResponse:
    return clerk_error(401, "signed_out", "Signed out", "You are signed out")


def client_json(fake: FakeClerk, client: FakeClient | None) -> dict[str, Any] | None:
    """The Frontend API's Client object (None for no client)."""
    if client is None:
        return None
    return {
        "object": "client",
        "id": client.id,
        "sessions": [_session_json(fake, fake._known(sid)) for sid in client.session_ids],
        "sign_in": None,
        "sign_up": None,
        "last_active_session_id": client.last_active_session_id,
        "created_at": ms(client.created_at),
        "updated_at": ms(client.updated_at),
    }


def _session_json(fake: FakeClerk, session: FakeSession) -> dict[str, Any]:
    """The Frontend API's Session object; an active one carries a fresh ``last_active_token``."""
    body = session.to_json()
    del body["client_id"], body["latest_activity"]
    user = fake.users[session.user_id]
    emails = [{"object": "email_address", "email_address": user.email}] if user.email else []
    body["user"] = {"object": "user", "id": user.id, "email_addresses": emails}
    body["last_active_token"] = None
    if session.status == "active":
        jwt = fake._token(session, template=None, expires_in=None, azp=fake.origin)
        body["last_active_token"] = {"object": "token", "jwt": jwt}
    return body


def _envelope(fake: FakeClerk, response: Any, client: FakeClient | None) -> JSONResponse:
    """``{"response": ..., "client": ...}``, the Frontend API's envelope."""
    return JSONResponse({"response": response, "client": client_json(fake, client)})


def _client_cookie(fake: FakeClerk, request: Request, client: FakeClient) -> str:
    secure = "Secure" if request.url.scheme == "https" else ""
    path = fake._prefix(request.scope)
    return cookie(
        "__client",
        client.token,
        f"Path={path}",
        f"Max-Age={TEN_YEARS}",
        "HttpOnly",
        secure,
        "SameSite=Lax",
    )


async def get_jwks(fake: FakeClerk, request: Request, params: dict[str, str]) -> Response:
    """``GET /.well-known/jwks.json``: the instance's public keys, no authentication."""
    return JSONResponse(jwks(fake.key))


async def create_dev_browser(fake: FakeClerk, request: Request, params: dict[str, str]) -> Response:
    """``POST /v1/dev_browser``: a new dev-browser token (clerk-js reads ``id``), development
    instances only."""
    if fake.instance != "development":
        return not_found("dev browser (production instances have none)")
    client = fake._new_client()
    return JSONResponse({"object": "dev_browser", "id": client.dev_browser})


async def get_client(fake: FakeClerk, request: Request, params: dict[str, str]) -> Response:
    """``GET /v1/client``: the browser's client, or ``null``."""
    return JSONResponse({"response": client_json(fake, fake._client_of(request)), "client": None})


async def sign_in(fake: FakeClerk, request: Request, params: dict[str, str]) -> Response:
    """``POST /v1/client/sign_ins`` with ``identifier`` (a user id or email), form or JSON:
    signed in at once (no factors), on the browser's client or a new one."""
    body = await request.body()
    fields: dict[str, Any]
    if request.headers.get("content-type", "").startswith("application/json"):
        try:
            fields = json.loads(body or b"{}")
        except ValueError:
            return clerk_error(400, "malformed_request", "malformed request", "Invalid JSON body")
        if not isinstance(fields, dict):
            return clerk_error(400, "malformed_request", "malformed request", "Expected an object")
    else:
        fields = dict(parse_qsl(body.decode("latin-1")))
    identifier = fields.get("identifier")
    if not isinstance(identifier, str) or not identifier:
        return missing_param("identifier", status=422)
    user = fake.find_user(identifier)
    if user is None:
        message = "Couldn't find your account."
        return clerk_error(422, "form_identifier_not_found", message, message)
    client = fake._client_of(request) or fake._new_client()
    address = request.client.host if request.client else None
    activity = session_activity(request.headers.get("user-agent"), address)
    session = fake._start_session(client, user, activity=activity)
    client = fake.clients[client.id]
    attempt = {
        "object": "sign_in_attempt",
        "id": "sia_" + session.id[5:],
        "status": "complete",
        "identifier": identifier,
        "created_session_id": session.id,
    }
    response = _envelope(fake, attempt, client)
    if client.dev_browser is not None:
        response.headers["clerk-db-jwt"] = client.dev_browser
    return add_set_cookies(response, _client_cookie(fake, request, client))


def _owned(
    fake: FakeClerk, request: Request, session_id: str
) -> tuple[FakeClient, FakeSession] | Response:
    """The browser's client and its session ``session_id``, or the Clerk error to answer."""
    client = fake._client_of(request)
    if client is None:
        return _signed_out()
    if session_id not in client.session_ids:
        return not_found("session")
    return client, fake._known(session_id)


async def create_token(fake: FakeClerk, request: Request, params: dict[str, str]) -> Response:
    """``POST /v1/client/sessions/{id}/tokens[/{template}]``: what ``session.getToken()``
    calls; the browser must own the session, and it must be active."""
    owned = _owned(fake, request, params["session_id"])
    if isinstance(owned, Response):
        return owned
    session = owned[1]
    if session.status != "active":
        return _signed_out()
    template = params.get("template")
    if template is not None and template not in fake._templates:
        return not_found("JWT template")
    azp = fake.origin or request.headers.get("origin")
    jwt = fake._token(session, template=template, expires_in=None, azp=azp)
    return JSONResponse({"object": "token", "jwt": jwt})


async def end_session(fake: FakeClerk, request: Request, params: dict[str, str]) -> Response:
    """``POST /v1/client/sessions/{id}/end`` (or ``DELETE /v1/client/sessions/{id}``): sign
    this session out (``ended``); ``.../remove`` marks it ``removed``."""
    owned = _owned(fake, request, params["session_id"])
    if isinstance(owned, Response):
        return owned
    status = "removed" if request.url.path.endswith("/remove") else "ended"
    session = fake._end(owned[1], status)
    return _envelope(fake, _session_json(fake, session), fake.clients[owned[0].id])


async def end_all(fake: FakeClerk, request: Request, params: dict[str, str]) -> Response:
    """``DELETE /v1/client/sessions`` or ``DELETE /v1/client``: sign the browser out of every
    session (``ended``); the client, its cookie and its dev browser stay."""
    client = fake._client_of(request)
    if client is None:
        return _signed_out()
    for session_id in client.session_ids:
        fake._end(fake._known(session_id), "ended")
    client = fake.clients[client.id]
    return _envelope(fake, client_json(fake, client), client)


def _with_query(url: str, name: str, value: str) -> str:
    """``url`` with ``name=value`` appended to its query (the fragment kept)."""
    parts = urlsplit(url)
    pair = f"{quote_plus(name)}={quote_plus(value)}"
    query = f"{parts.query}&{pair}" if parts.query else pair
    return urlunsplit(parts._replace(query=query))


def _shared_domain(fapi_host: str, app_host: str) -> str | None:
    """The ``Domain`` for a cookie the FAPI sets for the app: their common parent domain
    (``clerk.example.com`` and ``app.example.com`` -> ``example.com``), None when the hosts
    are equal, IP addresses, or share less than two labels."""
    if fapi_host == app_host:
        return None
    for host in (fapi_host, app_host):
        try:
            ipaddress.ip_address(host.strip("[]"))
        except ValueError:
            continue
        return None
    common: list[str] = []
    for a, b in zip(reversed(fapi_host.split(".")), reversed(app_host.split(".")), strict=False):
        if a != b:
            break
        common.insert(0, a)
    return ".".join(common) if len(common) >= 2 else None


def directives(
    fake: FakeClerk,
    session: FakeSession | None,
    *,
    secure: bool,
    suffixed: bool,
    azp: str | None,
    domain: str | None = None,
) -> tuple[str, ...]:
    """The ``Set-Cookie`` directives of a handshake, as Clerk's FAPI sends them: a fresh
    ``__session`` and ``__client_uat`` (or their clearing), for the app's host; the transport
    cookies cleared with the ``Domain`` they were set with (a clearing without it would not
    reach them, and the browser would send a used nonce for another minute)."""
    flag = "Secure" if secure else ""
    at = f"Domain={domain}" if domain else ""
    out = [
        cookie("__clerk_handshake", "", "Path=/", at, "Max-Age=0"),
        cookie("__clerk_handshake_nonce", "", "Path=/", at, "Max-Age=0"),
    ]
    jwt = uat = ""
    if session is not None:
        jwt = fake._token(session, template=None, expires_in=None, azp=azp)
        uat = str(int(fake.clients[session.client_id].updated_at))
    for suffix in ["", f"_{fake.cookie_suffix}"] if suffixed else [""]:
        if session is None:
            out.append(cookie(f"__session{suffix}", "", "Path=/", "Max-Age=0"))
        else:
            out.append(cookie(f"__session{suffix}", jwt, "Path=/", flag, "SameSite=Lax"))
        age = f"Max-Age={TEN_YEARS}"
        out.append(cookie(f"__client_uat{suffix}", uat or "0", "Path=/", age, flag, "SameSite=Lax"))
    return tuple(out)


async def handshake(fake: FakeClerk, request: Request, params: dict[str, str]) -> Response:
    """``GET /v1/client/handshake``: resolve the browser's session and send it back to
    ``redirect_url`` with a 307 (the nonce or token in the query on a development instance,
    in a cookie on a production one)."""
    query = MappingProxyType(dict(request.query_params))
    redirect_url = query.get("redirect_url", "")
    target = urlsplit(redirect_url)
    fmt = query.get("format", "token")
    error: Response | None = None
    if not redirect_url:
        error = missing_param("redirect_url")
    elif target.scheme not in ("http", "https") or not target.hostname:
        error = invalid_param("redirect_url", "redirect_url must be an absolute http(s) URL", 400)
    elif fmt not in ("nonce", "token"):
        error = invalid_param("format", "format must be 'nonce' or 'token'", 400)
    if error is not None:
        fake.handshakes.append(FakeHandshake(query, error.status_code))
        return error
    headers = {"location": redirect_url, "cache-control": "no-store"}
    if fake.failing:
        fake.handshakes.append(FakeHandshake(query, 307))
        return Response(status_code=307, headers=headers)
    client = fake._client_of(request)
    session = fake._active_session(client)
    azp = fake.origin or f"{target.scheme}://{target.netloc}"
    # Production: the transport cookie is set for the domain the FAPI and the app share, and
    # the directives carry that Domain. Development: the app sets them itself, host-only.
    production = fake.instance != "development"
    domain = (
        _shared_domain(request.url.hostname or "", target.hostname or "") if production else None
    )
    found = directives(
        fake,
        session,
        secure=target.scheme == "https",
        suffixed=query.get("suffixed_cookies") == "true",
        azp=azp,
        domain=domain,
    )
    if fmt == "nonce":
        name, value = "__clerk_handshake_nonce", secrets.token_urlsafe(24)
        fake._nonces[value] = found
    else:
        name, value = "__clerk_handshake", fake._handshake_token(found)
    fake.handshakes.append(
        FakeHandshake(
            query,
            307,
            signed_in=session is not None,
            client_id=client.id if client else None,
            session_id=session.id if session else None,
            directives=found,
        )
    )
    if fake.instance == "development":
        headers["location"] = _with_query(redirect_url, name, value)
        return Response(status_code=307, headers=headers)
    transport = cookie(
        name,
        value,
        "Path=/",
        f"Domain={domain}" if domain else "",
        f"Max-Age={TRANSPORT_MAX_AGE}",
        "HttpOnly",
        "Secure" if target.scheme == "https" else "",
        "SameSite=Lax",
    )
    return add_set_cookies(Response(status_code=307, headers=headers), transport)


def preflight(request: Request) -> Response:
    """A CORS preflight answer for the Frontend API (clerk-js calls it cross-origin)."""
    requested = request.headers.get("access-control-request-headers", "content-type")
    return Response(
        status_code=204,
        headers={
            "access-control-allow-methods": "GET, POST, PUT, PATCH, DELETE",
            "access-control-allow-headers": requested,
            "access-control-max-age": "600",
        },
    )


def add_cors(request: Request, response: Response) -> Response:
    """Let the requesting origin read the answer, with credentials (cookies)."""
    origin = request.headers.get("origin")
    if origin:
        response.headers["access-control-allow-origin"] = origin
        response.headers["access-control-allow-credentials"] = "true"
        response.headers["vary"] = "Origin"
    return response


FAPI_ROUTES: list[tuple[str, str, Handler]] = [
    ("GET", "/.well-known/jwks.json", get_jwks),
    ("POST", "/v1/dev_browser", create_dev_browser),
    ("GET", "/v1/client", get_client),
    ("DELETE", "/v1/client", end_all),
    ("DELETE", "/v1/client/sessions", end_all),
    ("POST", "/v1/client/sign_ins", sign_in),
    ("GET", "/v1/client/handshake", handshake),
    ("POST", "/v1/client/sessions/{session_id}/tokens", create_token),
    ("POST", "/v1/client/sessions/{session_id}/tokens/{template}", create_token),
    ("POST", "/v1/client/sessions/{session_id}/end", end_session),
    ("POST", "/v1/client/sessions/{session_id}/remove", end_session),
    ("DELETE", "/v1/client/sessions/{session_id}", end_session),
]
