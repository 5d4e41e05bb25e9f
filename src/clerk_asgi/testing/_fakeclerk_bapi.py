"""FakeClerk's Backend API (secret key required, checked before these run): JWKS, the
handshake payload, and sessions (get, list, revoke, tokens)."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any
from urllib.parse import unquote

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from . import jwks
from ._fakeclerk_models import clerk_error, invalid_param, missing_param, not_found

if TYPE_CHECKING:
    from ._fakeclerk import FakeClerk, Handler

#: The ``status`` values ``GET /v1/sessions`` filters on.
LIST_STATUSES = ("abandoned", "active", "ended", "expired", "removed", "replaced", "revoked")
#: Bounds of ``expires_in_seconds``, as Clerk documents them.
MIN_EXPIRES_IN, MAX_EXPIRES_IN = 30, 315_360_000


async def get_jwks(fake: FakeClerk, request: Request, params: dict[str, str]) -> Response:
    """``GET /v1/jwks``: the instance's public keys."""
    return JSONResponse(jwks(fake.key))


async def handshake_payload(fake: FakeClerk, request: Request, params: dict[str, str]) -> Response:
    """``GET /v1/clients/handshake_payload?nonce=``: the directives a nonce stands for, once."""
    nonce = request.query_params.get("nonce")
    if not nonce:
        return missing_param("nonce")
    if fake.payload_gate is not None:
        await fake.payload_gate.wait()
    if fake.payload_error is not None:
        return clerk_error(
            fake.payload_error,
            "internal_clerk_error",
            "Injected failure",
            "FakeClerk.payload_error is set",
        )
    found = fake._nonces.pop(nonce, None)
    if found is None:
        return not_found("handshake payload for this nonce (unknown or already used)")
    return JSONResponse({"directives": list(found)})


def _path_param(params: dict[str, str], name: str) -> str:
    """A path parameter as Clerk reads it: percent-decoded (``a%2Fb`` is the id ``a/b``)."""
    return unquote(params[name])


def _int_param(request: Request, name: str, default: int, low: int, high: int) -> int | Response:
    raw = request.query_params.get(name)
    if raw is None:
        return default
    if not raw.isascii() or not raw.isdigit() or not low <= int(raw) <= high:
        return invalid_param(name, f"{name} must be an integer from {low} to {high}")
    return int(raw)


async def list_sessions(fake: FakeClerk, request: Request, params: dict[str, str]) -> Response:
    """``GET /v1/sessions?user_id=|client_id=&status=&limit=&offset=&paginated=``: newest
    first; a bare array, or ``{"data", "total_count"}`` with ``paginated=true``."""
    query = request.query_params
    user_id, client_id, status = query.get("user_id"), query.get("client_id"), query.get("status")
    if not user_id and not client_id:
        return clerk_error(
            400,
            "form_param_missing",
            "user_id or client_id must be included",
            "Provide user_id or client_id to list sessions",
        )
    if status is not None and status not in LIST_STATUSES:
        return invalid_param("status", "status must be one of " + ", ".join(LIST_STATUSES))
    limit = _int_param(request, "limit", 10, 1, 500)
    if isinstance(limit, Response):
        return limit
    offset = _int_param(request, "offset", 0, 0, 2**31)
    if isinstance(offset, Response):
        return offset
    found = [
        session
        for session in list(fake.sessions.values())[::-1]
        if (not user_id or session.user_id == user_id)
        and (not client_id or session.client_id == client_id)
        and (status is None or session.status == status)
    ]
    found.sort(key=lambda session: session.created_at, reverse=True)
    page = [session.to_json() for session in found[offset : offset + limit]]
    if query.get("paginated") == "true":
        return JSONResponse({"data": page, "total_count": len(found)})
    return JSONResponse(page)


async def get_session(fake: FakeClerk, request: Request, params: dict[str, str]) -> Response:
    """``GET /v1/sessions/{id}``: the Session."""
    session = fake._session(_path_param(params, "session_id"))
    if session is None:
        return not_found("session")
    return JSONResponse(session.to_json())


async def revoke_session(fake: FakeClerk, request: Request, params: dict[str, str]) -> Response:
    """``POST /v1/sessions/{id}/revoke``: the Session, ``revoked`` if it was active, else
    unchanged (revoking again, or an ended session, is not an error here)."""
    session = fake._session(_path_param(params, "session_id"))
    if session is None:
        return not_found("session")
    return JSONResponse(fake._end(session, "revoked").to_json())


async def create_token(fake: FakeClerk, request: Request, params: dict[str, str]) -> Response:
    """``POST /v1/sessions/{id}/tokens[/{template}]`` with an optional JSON
    ``{"expires_in_seconds": n}``: ``{"object": "token", "jwt"}`` for an active session."""
    body = await request.body()
    try:
        fields: Any = json.loads(body) if body.strip() else {}
    except ValueError:
        return clerk_error(400, "malformed_request", "malformed request", "Invalid JSON body")
    expires_in = fields.get("expires_in_seconds") if isinstance(fields, dict) else None
    valid = isinstance(expires_in, int) and not isinstance(expires_in, bool)
    if expires_in is not None and not (valid and MIN_EXPIRES_IN <= expires_in <= MAX_EXPIRES_IN):
        detail = f"expires_in_seconds must be an integer from {MIN_EXPIRES_IN} to {MAX_EXPIRES_IN}"
        return invalid_param("expires_in_seconds", detail)
    session = fake._session(_path_param(params, "session_id"))
    if session is None or session.status != "active":
        return not_found("active session")
    template = _path_param(params, "template") if "template" in params else None
    if template is not None and template not in fake._templates:
        return not_found("JWT template")
    jwt = fake._token(session, template=template, expires_in=expires_in, azp=fake.origin)
    return JSONResponse({"object": "token", "jwt": jwt})


BAPI_ROUTES: list[tuple[str, str, Handler]] = [
    ("GET", "/v1/jwks", get_jwks),
    ("GET", "/v1/clients/handshake_payload", handshake_payload),
    ("GET", "/v1/sessions", list_sessions),
    ("GET", "/v1/sessions/{session_id}", get_session),
    ("POST", "/v1/sessions/{session_id}/revoke", revoke_session),
    ("POST", "/v1/sessions/{session_id}/tokens", create_token),
    ("POST", "/v1/sessions/{session_id}/tokens/{template}", create_token),
]
