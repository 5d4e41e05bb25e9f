"""The peers, wired into the same app as their docs say, with their keys served locally.

* fastapi-clerk-auth 0.0.9: ``ClerkHTTPBearer(ClerkConfig(jwks_url=...))`` as a dependency of
  the API route (``add_state=True``, as its docs do for routers). It fetches the JWKS with
  PyJWT's ``PyJWKClient`` (urllib), which keeps the parsed key set for 300 s, so the JWKS is
  served by a real HTTP server on 127.0.0.1; it is fetched during warm-up, never per request.
* clerk-backend-api 7.0: ``Clerk(...).authenticate_request_async(request,
  AuthenticateRequestOptions(jwt_key=PEM, authorized_parties=[...]))`` in a dependency that
  answers 401 when signed out. ``jwt_key`` is its networkless mode; its other mode
  (``secret_key``) would fetch from api.clerk.com (``AuthenticateRequestOptions`` has no API URL
  to point elsewhere) and then does the same per-request work plus a header parse and a SHA-256,
  so ``jwt_key`` is the cheaper, fairer wiring.
"""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from apps import build_app
from fastapi import FastAPI, HTTPException, Request
from tokens import ORIGIN, Header

from clerk_asgi.testing import jwks


class JWKSServer:
    """A JWKS document served over HTTP on 127.0.0.1 (any path), counting the fetches."""

    def __init__(self, header: Header) -> None:
        body = json.dumps(jwks(header.key)).encode()
        server = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                server.fetches += 1
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.fetches = 0
        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._thread = threading.Thread(target=self._httpd.serve_forever, daemon=True)
        self._thread.start()

    @property
    def url(self) -> str:
        host, port = self._httpd.server_address[:2]
        return f"http://{host!s}:{port}/.well-known/jwks.json"

    def close(self) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()


def with_fastapi_clerk_auth(jwks_url: str) -> FastAPI:
    from fastapi_clerk_auth import ClerkConfig, ClerkHTTPBearer

    guard = ClerkHTTPBearer(config=ClerkConfig(jwks_url=jwks_url), add_state=True)
    return build_app(guard)


def with_clerk_backend_api(header: Header) -> FastAPI:
    from clerk_backend_api import Clerk
    from clerk_backend_api.security.types import AuthenticateRequestOptions

    sdk = Clerk(bearer_auth="sk_test_benchmarknotused")
    options = AuthenticateRequestOptions(jwt_key=header.key.public_pem, authorized_parties=[ORIGIN])

    async def clerk_backend_guard(request: Request) -> None:
        state = await sdk.authenticate_request_async(request, options)
        if not state.is_signed_in:
            raise HTTPException(status_code=401, detail=state.message)
        request.state.clerk_auth = state

    return build_app(clerk_backend_guard)
