"""The one small FastAPI app every variant serves, with and without clerk-asgi.

Two routes with the same tiny async handler: ``/public`` and ``/api/data``. Auth is added the
way each library's docs say; the app itself never changes. ``e2e_app`` is the uvicorn factory
used by the end-to-end load test (``BENCH_E2E_VARIANT`` picks the variant).
"""

from __future__ import annotations

import base64
import os
from collections.abc import Callable
from typing import Any

import httpx
from common import guard_network
from fastapi import Depends, FastAPI
from tokens import ISSUER, ORIGIN, STORE, Header

from clerk_asgi import STATIC_ASSETS, ClerkMiddleware, Rule
from clerk_asgi._config import cookie_suffix
from clerk_asgi.testing import JWKSTransport

PUBLIC_PATH = "/public"
API_PATH = "/api/data"
#: A server-rendered page: protected by the default rule, read with the session cookie.
PAGE_PATH = "/dashboard"

#: A publishable key for the benchmark's made-up instance: issuer https://clerk.bench.example,
#: JWKS https://clerk.bench.example/.well-known/jwks.json (answered by a mock transport).
PUBLISHABLE_KEY = (
    "pk_test_" + base64.b64encode(ISSUER.removeprefix("https://").encode() + b"$").decode()
)

#: The same instance in production, and a secret key: the handshake is on with both.
LIVE_PUBLISHABLE_KEY = PUBLISHABLE_KEY.replace("pk_test_", "pk_live_", 1)
SECRET_KEY = "sk_live_benchNotARealKey"  # noqa: S105 - never sent anywhere
#: The suffix of clerk-js's suffixed cookies (``__session_<suffix>``) for the live key.
COOKIE_SUFFIX = cookie_suffix(LIVE_PUBLISHABLE_KEY)

#: A typical rule table: a few public pages, static files, an API.
RULES = [
    Rule.public("/", "/sign-in(.*)", "/sign-up(.*)", PUBLIC_PATH),
    Rule.public(STATIC_ASSETS),
    Rule.api("/api/(.*)"),
]
#: The same table with a per-user rate limit on the API, so high that it never refuses: what
#: counting costs (``rate_limit_storage`` picks memory or Redis).
LIMITED_RULES = [*RULES[:2], Rule.api("/api/(.*)", rate_limit="1000000000/1s")]


def build_app(dependency: Callable[..., Any] | None = None) -> FastAPI:
    """The benchmark app; ``dependency`` guards the API route (how the peers are wired)."""
    app = FastAPI(openapi_url=None, docs_url=None, redoc_url=None)
    guards = [Depends(dependency)] if dependency is not None else []

    @app.get(PUBLIC_PATH)
    async def public() -> dict[str, bool]:
        return {"ok": True}

    @app.get(API_PATH, dependencies=guards)
    async def data() -> dict[str, bool]:
        return {"ok": True}

    @app.get(PAGE_PATH)
    async def page() -> dict[str, bool]:
        return {"ok": True}

    return app


def with_clerk_asgi(header: Header, **overrides: Any) -> FastAPI:
    """The app behind ``ClerkMiddleware``, configured as the README says (publishable key, so
    keys come from the Frontend API JWKS), with the JWKS served by ``JWKSTransport``."""
    app = build_app()
    options: dict[str, Any] = {
        "publishable_key": PUBLISHABLE_KEY,
        "authorized_parties": [ORIGIN],
        "rules": RULES,
        "http_client": httpx.AsyncClient(transport=JWKSTransport(header.key)),
    }
    options.update(overrides)
    app.add_middleware(ClerkMiddleware, **options)
    return app


def e2e_app() -> FastAPI:
    """uvicorn factory: ``BENCH_E2E_VARIANT`` is ``baseline`` or ``clerk-asgi``."""
    guard_network()
    variant = os.environ.get("BENCH_E2E_VARIANT", "baseline")
    if variant == "baseline":
        return build_app()
    header = Header.from_json(STORE.read_text().split("\n", 1)[0])
    if header is None:
        raise RuntimeError(f"{STORE} has no usable header: run benchmarks/run.py first")
    return with_clerk_asgi(header)
