"""OpenAPI: the security schemes and responses of routes using the dependencies, API_DOCS.

The schemes are documentation only: the apps here run the real middleware (MockClerk keys,
httpx.ASGITransport or starlette's TestClient) to show they never refuse nor read anything.
"""

from __future__ import annotations

import inspect
import json
import re
import subprocess
import sys
import warnings
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import APIRouter, Depends, FastAPI, WebSocket
from starlette.exceptions import StarletteDeprecationWarning
from starlette.requests import HTTPConnection

from clerk_asgi import (
    API_DOCS,
    STATIC_ASSETS,
    Auth,
    ClerkMiddleware,
    Rule,
    current_auth,
    require_auth,
)
from clerk_asgi._reasons import message_for
from clerk_asgi.fastapi import (
    AuthErrorBody,
    CurrentAuth,
    SignedInAuth,
    auth_responses,
    docs_rule,
)
from clerk_asgi.testing import MockClerk

from .helpers import bearer

with warnings.catch_warnings():
    # Starlette >= 1.x prefers httpx2 for its TestClient and warns once, at import.
    warnings.simplefilter("ignore", StarletteDeprecationWarning)
    from starlette.testclient import TestClient

ROOT = Path(__file__).resolve().parent.parent
ORIGIN = "https://app.example.com"

SECURITY_SCHEMES = {
    "ClerkSessionToken": {
        "type": "http",
        "scheme": "bearer",
        "bearerFormat": "JWT",
        "description": (
            "A Clerk session token (the JWT clerk-js keeps in the `__session` cookie, or "
            "`await Clerk.session.getToken()`), sent as `Authorization: Bearer <token>`. "
            "Paste the token alone, without `Bearer `. ClerkMiddleware verifies it."
        ),
    },
    "ClerkSessionCookie": {
        "type": "apiKey",
        "in": "cookie",
        "name": "__session",
        "description": (
            "The `__session` cookie clerk-js sets on your app's domain: a browser signed in "
            "to your app sends it by itself on same-origin requests (Swagger UI cannot set "
            "cookies). ClerkMiddleware verifies it."
        ),
    },
}
#: Either scheme will do: two security requirement objects are alternatives in OpenAPI.
SECURITY = [{"ClerkSessionToken": []}, {"ClerkSessionCookie": []}]

ERROR_SCHEMA = {"$ref": "#/components/schemas/AuthErrorBody"}
RESPONSE_401 = {
    "description": "Signed out: no session token, or one that is not valid.",
    "headers": {
        "WWW-Authenticate": {
            "description": 'The RFC 6750 challenge, `Bearer realm="clerk"`.',
            "schema": {"type": "string"},
        }
    },
    "content": {
        "application/json": {
            "schema": ERROR_SCHEMA,
            "example": {
                "error": "unauthorized",
                "reason": "session-token-missing",
                "message": "Sign in to continue.",
            },
        }
    },
}
RESPONSE_403 = {
    "description": "Signed in, but the role, permission, feature or plan is missing.",
    "content": {
        "application/json": {
            "schema": ERROR_SCHEMA,
            "example": {
                "error": "forbidden",
                "reason": "authorization-failed",
                "message": "You are signed in but not allowed to access this resource.",
            },
        }
    },
}

#: The docs routes FastAPI serves by default, and paths next to them that must stay protected.
DOCS_PATHS = ["/docs", "/docs/oauth2-redirect", "/redoc", "/openapi.json"]
DOCS_SIBLINGS = [
    "/docsecret",
    "/docs/",
    "/docs/secret",
    "/docs/oauth2-redirect/x",
    "/docs/oauth2-redirectx",
    "/redocs",
    "/redoc/",
    "/openapi.jsonx",
    "/openapi.json/",
    "/openapi.json.bak",
    "/openapixjson",
    "/DOCS",
    "/api/docs",
    "/x/openapi.json",
    "/docs\n",
    "//docs",
]


def documented_app() -> FastAPI:
    """One route per way of depending on the Auth, and routes using none of them."""
    app = FastAPI()
    guarded = APIRouter(prefix="/router", dependencies=[Depends(current_auth)])

    @app.get("/current")
    async def current(auth: Auth = Depends(current_auth)) -> dict[str, Any]:
        return {"user_id": auth.user_id, "reason": auth.reason}

    @app.get("/signed-in", responses=auth_responses(forbidden=False))
    async def signed_in(auth: Auth = Depends(require_auth())) -> dict[str, Any]:
        return {"user_id": auth.user_id}

    @app.get("/billing", responses=auth_responses())
    async def billing(
        auth: Auth = Depends(require_auth(permission="org:billing:manage")),
    ) -> dict[str, Any]:
        return {"org_id": auth.org_id}

    @app.get("/alias/current")
    async def alias_current(auth: CurrentAuth) -> dict[str, Any]:
        return {"user_id": auth.user_id}

    @app.get("/alias/signed-in", responses=auth_responses(forbidden=False))
    async def alias_signed_in(auth: SignedInAuth) -> dict[str, Any]:
        return {"user_id": auth.user_id}

    @app.get("/both", responses=auth_responses())
    async def both(
        auth: CurrentAuth, admin: Auth = Depends(require_auth(role="org:admin"))
    ) -> dict[str, Any]:
        return {"user_id": admin.user_id}

    @guarded.get("/item")
    async def item() -> dict[str, bool]:
        return {"ok": True}

    @app.get("/plain")
    async def plain() -> dict[str, bool]:
        return {"ok": True}

    @app.get("/items/{item_id}")
    async def items(item_id: int) -> dict[str, int]:
        return {"item_id": item_id}

    app.include_router(guarded)
    return app


def operation(schema: dict[str, Any], path: str) -> dict[str, Any]:
    result: dict[str, Any] = schema["paths"][path]["get"]
    return result


def client_for(app: Any) -> httpx.AsyncClient:
    return httpx.AsyncClient(transport=httpx.ASGITransport(app), base_url=ORIGIN)


# -- the schema --------------------------------------------------------------------------------


def test_components_list_the_two_session_schemes_and_the_error_body() -> None:
    """components: a bearer-JWT scheme, an apiKey scheme for the __session cookie, the body."""
    schema = documented_app().openapi()
    assert schema["components"]["securitySchemes"] == SECURITY_SCHEMES
    assert schema["components"]["schemas"]["AuthErrorBody"] == {
        "title": "AuthErrorBody",
        "description": (
            "The JSON body of the 401, 403 and 503 responses of ClerkMiddleware and require_auth."
        ),
        "type": "object",
        "properties": {
            "error": {
                "title": "Error",
                "description": "The status, as a word.",
                "type": "string",
                "enum": ["unauthorized", "forbidden", "service_unavailable"],
            },
            "reason": {
                "title": "Reason",
                "description": "Why: a reason code such as `session-token-missing`.",
                "type": "string",
            },
            "message": {
                "title": "Message",
                "description": "A human-readable explanation, safe to show to users.",
                "type": "string",
            },
        },
        "required": ["error", "reason", "message"],
    }


@pytest.mark.parametrize(
    "path",
    [
        "/current",
        "/signed-in",
        "/billing",
        "/alias/current",
        "/alias/signed-in",
        "/both",
        "/router/item",
    ],
)
def test_routes_using_the_dependencies_list_either_scheme(path: str) -> None:
    """Every route depending on current_auth/require_auth/the aliases: token OR cookie, once."""
    assert operation(documented_app().openapi(), path)["security"] == SECURITY


@pytest.mark.parametrize("path", ["/plain", "/items/{item_id}"])
def test_routes_without_the_dependencies_have_no_security_and_no_auth_responses(
    path: str,
) -> None:
    """A route that does not depend on the Auth has no lock and no 401/403."""
    documented = operation(documented_app().openapi(), path)
    assert "security" not in documented
    assert not {"401", "403"} & set(documented["responses"])


def test_the_dependencies_add_no_parameters_to_the_operation() -> None:
    """The schemes are not parameters: no Authorization header or cookie parameter appears."""
    assert "parameters" not in operation(documented_app().openapi(), "/current")
    assert operation(documented_app().openapi(), "/items/{item_id}")["parameters"] == [
        {
            "name": "item_id",
            "in": "path",
            "required": True,
            "schema": {"type": "integer", "title": "Item Id"},
        }
    ]


@pytest.mark.parametrize(
    ("path", "statuses"),
    [
        ("/billing", ["200", "401", "403"]),
        ("/both", ["200", "401", "403"]),
        ("/signed-in", ["200", "401"]),
        ("/alias/signed-in", ["200", "401"]),
        ("/current", ["200"]),
        ("/plain", ["200"]),
    ],
)
def test_auth_responses_document_401_and_403_with_the_error_body(
    path: str, statuses: list[str]
) -> None:
    """responses=auth_responses() adds the exact 401 and 403 (forbidden=False: 401 only)."""
    responses = operation(documented_app().openapi(), path)["responses"]
    assert sorted(responses) == statuses
    assert responses["200"]["description"] == "Successful Response"
    if "401" in responses:
        assert responses["401"] == RESPONSE_401
    if "403" in responses:
        assert responses["403"] == RESPONSE_403


def test_auth_responses_examples_are_what_the_middleware_sends() -> None:
    """The documented example bodies validate as AuthErrorBody and carry the real messages."""
    for status, reason in ((401, "session-token-missing"), (403, "authorization-failed")):
        example = auth_responses()[status]["content"]["application/json"]["example"]
        assert AuthErrorBody.model_validate(example).model_dump() == example
        assert example["message"] == message_for(reason)


def test_auth_responses_returns_a_new_dict_each_call() -> None:
    """Mutating one route's responses cannot leak into another's."""
    first = auth_responses()
    first[401]["description"] = "changed"
    assert auth_responses()[401]["description"] == RESPONSE_401["description"]
    assert sorted(auth_responses(forbidden=False)) == [401]


def test_a_router_level_dependency_documents_every_route_of_the_router() -> None:
    """APIRouter(dependencies=[Depends(current_auth)], responses=...) locks all its routes."""
    app = FastAPI()
    router = APIRouter(
        prefix="/api", dependencies=[Depends(current_auth)], responses=auth_responses()
    )

    @router.get("/a")
    async def a() -> None: ...

    @router.post("/b")
    async def b() -> None: ...

    app.include_router(router)
    schema = app.openapi()
    for path, method in (("/api/a", "get"), ("/api/b", "post")):
        documented = schema["paths"][path][method]
        assert documented["security"] == SECURITY
        assert documented["responses"]["401"] == RESPONSE_401
        assert documented["responses"]["403"] == RESPONSE_403


def readme_quickstart() -> str:
    """The README's quickstart block (the one test_docs.py runs)."""
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    found = re.search(r"<!-- test: quickstart -->\n```python\n(.*?)\n```", text, re.DOTALL)
    assert found is not None
    return found.group(1)


def test_the_readme_quickstart_documents_its_guarded_routes(
    clerk: MockClerk, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The README app, as written (no extra step): /api/me and /api/billing carry the lock."""
    monkeypatch.setenv("CLERK_JWT_KEY", clerk.key.public_pem)
    namespace: dict[str, Any] = {"__name__": "readme_quickstart"}
    exec(compile(readme_quickstart(), "README.md", "exec"), namespace)  # noqa: S102
    schema = namespace["app"].openapi()
    assert operation(schema, "/api/me")["security"] == SECURITY
    assert operation(schema, "/api/billing")["security"] == SECURITY
    assert schema["components"]["securitySchemes"] == SECURITY_SCHEMES


# -- the schemes never decide anything ----------------------------------------------------------


def public_app(clerk: MockClerk) -> FastAPI:
    """documented_app behind the middleware with every path public: only the routes decide."""
    app = documented_app()
    app.add_middleware(ClerkMiddleware, **clerk.middleware_options(rules=[], default="public"))
    return app


@pytest.mark.anyio
async def test_the_schemes_never_refuse_a_signed_out_request(clerk: MockClerk) -> None:
    """No token, a broken token, a stray cookie: current_auth routes run, signed out."""
    async with client_for(public_app(clerk)) as c:
        r = await c.get("/current")
        assert r.status_code == 200
        assert r.json() == {"user_id": None, "reason": "session-token-missing"}
        r = await c.get("/current", headers=bearer("not-a-jwt"))
        assert r.status_code == 200
        assert r.json() == {"user_id": None, "reason": "token-invalid"}
        r = await c.get("/router/item")
        assert r.status_code == 200
        assert r.json() == {"ok": True}


@pytest.mark.anyio
async def test_require_auth_still_decides_with_the_schemes_declared(clerk: MockClerk) -> None:
    """require_auth answers 401/403 exactly as before; a valid token gets the route."""
    async with client_for(public_app(clerk)) as c:
        r = await c.get("/billing")
        assert r.status_code == 401
        assert r.json() == {
            "error": "unauthorized",
            "reason": "session-token-missing",
            "message": "Sign in to continue.",
        }
        r = await c.get("/billing", headers=clerk.auth_headers(org_id="org_1"))
        assert r.status_code == 403
        assert r.json() == {
            "error": "forbidden",
            "reason": "authorization-failed",
            "message": "You are signed in but not allowed to access this resource.",
        }
        billing = clerk.auth_headers(org_id="org_1", org_permissions=["org:billing:manage"])
        r = await c.get("/billing", headers=billing)
        assert r.status_code == 200
        assert r.json() == {"org_id": "org_1"}


@pytest.mark.anyio
async def test_the_session_cookie_alternative_works_as_documented(clerk: MockClerk) -> None:
    """A same-origin request carrying only the __session cookie is signed in."""
    transport = httpx.ASGITransport(public_app(clerk))
    cookies = clerk.cookies(user_id="user_cookie")
    async with httpx.AsyncClient(transport=transport, base_url=ORIGIN, cookies=cookies) as c:
        r = await c.get("/alias/signed-in", headers={"origin": ORIGIN})
    assert r.status_code == 200
    assert r.json() == {"user_id": "user_cookie"}


def test_websocket_routes_using_the_dependencies_still_work(clerk: MockClerk) -> None:
    """A WebSocket with current_auth/SignedInAuth gets the Auth of its real session token."""
    app = FastAPI()

    @app.websocket("/ws/current")
    async def ws_current(websocket: WebSocket, auth: Auth = Depends(current_auth)) -> None:
        await websocket.accept()
        await websocket.send_json({"user_id": auth.user_id, "reason": auth.reason})
        await websocket.close()

    @app.websocket("/ws/signed-in")
    async def ws_signed_in(websocket: WebSocket, auth: SignedInAuth) -> None:
        await websocket.accept()
        await websocket.send_json({"user_id": auth.user_id})
        await websocket.close()

    app.add_middleware(ClerkMiddleware, **clerk.middleware_options(rules=[], default="public"))
    client = TestClient(app)
    headers = bearer(clerk.token(user_id="user_ws"))
    with client.websocket_connect("wss://app.example.com/ws/current", headers=headers) as ws:
        assert ws.receive_json() == {"user_id": "user_ws", "reason": None}
    with client.websocket_connect("wss://app.example.com/ws/current") as ws:
        assert ws.receive_json() == {"user_id": None, "reason": "session-token-missing"}
    with client.websocket_connect("wss://app.example.com/ws/signed-in", headers=headers) as ws:
        assert ws.receive_json() == {"user_id": "user_ws"}


@pytest.mark.anyio
async def test_the_dependencies_can_still_be_called_directly() -> None:
    """current_auth(conn) and require_auth()(conn) are still plain awaitable calls."""
    auth = Auth(user_id="user_1", session_id="sess_1")
    conn = HTTPConnection({"type": "http", "headers": [], "clerk_asgi.auth": auth})
    assert await current_auth(conn) is auth
    assert await require_auth()(conn) is auth
    assert repr(current_auth) == "<clerk_asgi dependency current_auth>"
    assert current_auth.__name__ == "current_auth"


@pytest.mark.anyio
async def test_dependency_overrides_still_replace_current_auth(clerk: MockClerk) -> None:
    """app.dependency_overrides[current_auth] replaces it, schemes and all."""
    app = public_app(clerk)
    app.dependency_overrides[current_auth] = lambda: Auth(user_id="user_override")
    async with client_for(app) as c:
        r = await c.get("/current")
    assert r.status_code == 200
    assert r.json() == {"user_id": "user_override", "reason": None}


# -- staying out of FastAPI's way ---------------------------------------------------------------


def test_the_signature_declares_the_schemes_only_once_fastapi_is_imported(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Without fastapi in sys.modules: (conn) -> Auth; with it: plus two keyword-only schemes."""
    with monkeypatch.context() as patch:
        patch.delitem(sys.modules, "fastapi")
        plain = inspect.signature(require_auth())
    assert str(plain) == "(conn: starlette.requests.HTTPConnection) -> clerk_asgi._auth.Auth"
    documented = inspect.signature(require_auth())
    assert list(documented.parameters) == ["conn", "clerk_session_token", "clerk_session_cookie"]
    assert documented.parameters["conn"].annotation is HTTPConnection
    assert documented.return_annotation is Auth
    kinds = {p.kind for name, p in documented.parameters.items() if name != "conn"}
    assert kinds == {inspect.Parameter.KEYWORD_ONLY}
    assert inspect.signature(current_auth) is inspect.signature(current_auth)


def test_the_core_stays_free_of_fastapi_even_when_inspected() -> None:
    """import clerk_asgi, then inspect the dependencies: fastapi is still not imported."""
    code = (
        "import inspect, sys, clerk_asgi; "
        "print(inspect.signature(clerk_asgi.current_auth)); "
        "print(inspect.signature(clerk_asgi.require_auth(role='org:admin'))); "
        "assert 'fastapi' not in sys.modules, sorted(m for m in sys.modules if 'fastapi' in m)"
    )
    # S603: our own interpreter with a fixed argument list, no shell.
    result = subprocess.run(  # noqa: S603
        [sys.executable, "-c", code], capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stderr
    signature = "(conn: starlette.requests.HTTPConnection) -> clerk_asgi._auth.Auth"
    assert result.stdout.splitlines() == [signature, signature]


# -- API_DOCS and docs_rule -------------------------------------------------------------------


def test_api_docs_is_one_compiled_pattern_not_a_list() -> None:
    """Rule.public(API_DOCS) is the one form; Rule.public(*API_DOCS) fails at once."""
    assert isinstance(API_DOCS, re.Pattern)
    with pytest.raises(TypeError):
        Rule.public(*API_DOCS)  # type: ignore[misc]


@pytest.mark.parametrize("path", DOCS_PATHS)
def test_api_docs_matches_each_docs_path(path: str) -> None:
    """API_DOCS matches FastAPI's four default docs paths."""
    assert API_DOCS.search(path) is not None


@pytest.mark.parametrize("path", DOCS_SIBLINGS)
def test_api_docs_matches_no_sibling(path: str) -> None:
    """Siblings, sub-paths, trailing slashes, other cases and newlines do not match."""
    assert API_DOCS.search(path) is None


def docs_app(clerk: MockClerk, rules: list[Rule], **options: Any) -> FastAPI:
    """A FastAPI app with a catch-all route, so a path that gets through answers 200 "app"."""
    app = FastAPI(**options)

    @app.get("/{path:path}", include_in_schema=False)
    async def anything(path: str) -> dict[str, str]:
        return {"app": path}

    app.add_middleware(ClerkMiddleware, **clerk.middleware_options(rules=rules))
    return app


UNAUTHORIZED = {
    "error": "unauthorized",
    "reason": "session-token-missing",
    "message": "Sign in to continue.",
}


@pytest.mark.anyio
async def test_api_docs_makes_exactly_the_docs_routes_public(clerk: MockClerk) -> None:
    """Signed out, /docs, /redoc, /openapi.json and the OAuth2 redirect answer; siblings 401."""
    app = docs_app(clerk, [Rule.public(API_DOCS, STATIC_ASSETS), Rule.api("/api/(.*)")])
    async with client_for(app) as c:
        r = await c.get("/openapi.json")
        assert r.status_code == 200
        assert r.json()["openapi"].startswith("3.")
        for path in ("/docs", "/docs/oauth2-redirect", "/redoc"):
            r = await c.get(path)
            assert r.status_code == 200, path
            assert r.headers["content-type"] == "text/html; charset=utf-8"
        for path in (p for p in DOCS_SIBLINGS if "\n" not in p and "//" not in p):
            r = await c.get(path)
            assert r.status_code == 401, path
            assert r.json() == UNAUTHORIZED
        r = await c.get("/docsecret", headers=clerk.auth_headers())
        assert r.status_code == 200
        assert r.json() == {"app": "docsecret"}


@pytest.mark.anyio
async def test_docs_rule_follows_the_apps_own_docs_urls(clerk: MockClerk) -> None:
    """docs_rule(app) makes the app's custom docs URLs public, and the defaults stay protected."""
    options = {
        "docs_url": "/api-docs",
        "redoc_url": None,
        "openapi_url": "/schema.json",
        "swagger_ui_oauth2_redirect_url": "/api-docs/callback",
    }
    rule = docs_rule(FastAPI(**options))
    app = docs_app(clerk, [rule], **options)
    async with client_for(app) as c:
        assert (await c.get("/schema.json")).status_code == 200
        assert (await c.get("/api-docs")).status_code == 200
        assert (await c.get("/api-docs/callback")).status_code == 200
        for path in ("/docs", "/redoc", "/openapi.json", "/schema.jsonx", "/api-docs/x"):
            r = await c.get(path)
            assert r.status_code == 401, path
            assert r.json() == UNAUTHORIZED


@pytest.mark.parametrize("path", [*DOCS_PATHS, *DOCS_SIBLINGS])
def test_docs_rule_of_a_default_app_matches_what_api_docs_matches(path: str) -> None:
    """With FastAPI's default URLs, docs_rule(app) is API_DOCS."""
    (pattern,) = docs_rule(FastAPI()).patterns
    assert isinstance(pattern, re.Pattern)
    assert (pattern.search(path) is None) is (API_DOCS.search(path) is None)


@pytest.mark.parametrize(
    ("options", "public"),
    [
        ({"openapi_url": None}, []),
        ({"docs_url": None}, ["/openapi.json", "/redoc"]),
        ({"redoc_url": None}, ["/openapi.json", "/docs", "/docs/oauth2-redirect"]),
        ({"swagger_ui_oauth2_redirect_url": None}, ["/openapi.json", "/docs", "/redoc"]),
    ],
    ids=["no-openapi", "no-swagger", "no-redoc", "no-oauth2-redirect"],
)
def test_docs_rule_lists_only_the_routes_fastapi_serves(
    options: dict[str, Any], public: list[str]
) -> None:
    """No openapi_url: nothing is public; a disabled UI's paths are left out."""
    rule = docs_rule(FastAPI(**options))
    assert rule.kind == "public"
    served = [
        path
        for path in DOCS_PATHS
        if any(isinstance(p, re.Pattern) and p.search(path) for p in rule.patterns)
    ]
    assert sorted(served) == sorted(public)


def test_the_schema_is_json_serialisable() -> None:
    """The whole schema, schemes included, dumps to JSON as /openapi.json serves it."""
    assert json.loads(json.dumps(documented_app().openapi()))["openapi"].startswith("3.")
