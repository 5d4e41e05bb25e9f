"""The clerk-asgi example: a FastAPI app protected like Clerk's Next.js quickstart.

Run it from the repository root (either command; ``PORT=9000`` or ``--port 9000`` to move it)::

    python3 tasks.py example                        # http://127.0.0.1:8000
    .venv/bin/uvicorn --app-dir examples app:app    # the same app, with uvicorn's own options

Two modes, chosen from the environment when the app is created:

* **Development (the default)**: none of ``CLERK_PUBLISHABLE_KEY``, ``CLERK_SECRET_KEY``,
  ``CLERK_JWT_KEY``, ``CLERK_JWKS_URL`` is set. ``clerk_asgi.testing.FakeClerk`` (not Clerk)
  answers as the app's Frontend API proxy under ``/__clerk`` and as its Backend API, in
  process. Its session tokens live 60 seconds, as Clerk's, and the middleware renews them with
  Clerk's handshake. ``/sign-in`` offers two demo users; the page's script plays clerk-js's
  part (sign-in, the ``__session`` and ``__client_uat`` cookies, ``getToken()``, sign-out).
  ``CLERK_EXAMPLE_FAKE_CLOCK=1`` gives FakeClerk and the middleware one fake clock that
  ``POST /__dev/clock?advance=120`` moves, to see tokens expire without waiting.
* **Clerk**: with your instance's keys in the environment (``CLERK_PUBLISHABLE_KEY`` and
  ``CLERK_SECRET_KEY`` for the handshake), the middleware verifies real Clerk session tokens
  and every page loads clerk-js from your instance's Frontend API; ``/sign-in`` mounts
  Clerk's ``<SignIn />``.

Either way the dashboard lists the user's sessions through the Backend API (``ClerkBackend``)
and ends them: one device, or all of them. One ``RevocationList`` is shared by the middleware,
``ClerkBackend`` and the webhook endpoint ``/api/webhooks/clerk`` (Clerk's ``session.*``
events, verified with ``CLERK_WEBHOOK_SIGNING_SECRET``; FakeClerk sends them in development),
so a revoked session's tokens are refused at once, not up to a minute later.

The API rule limits each signed-in user to 10 requests per 10 seconds (``rate_limit="10/10s"``,
the Next.js seed's ``Ratelimit.slidingWindow(10, "10 s")``): the 11th gets a 429 with
``Retry-After``. The counts live in memory (one process; on the fake clock in development); in
Clerk mode ``CLERK_EXAMPLE_RATE_LIMIT_STORAGE=redis://host:6379/0`` keeps them in Redis. The
dashboard shows what is left and fires a burst of 12 requests.
"""

from __future__ import annotations

import html
import logging
import math
import os
import re
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Final
from urllib.parse import urlsplit

import httpx
from fastapi import Depends, FastAPI, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from starlette.applications import Starlette
from starlette.responses import JSONResponse
from starlette.routing import Route
from starlette.types import ASGIApp, Receive, Scope, Send

from clerk_asgi import Auth, ClerkConfig, ClerkMiddleware, Rule
from clerk_asgi.backend import (
    BackendAPIError,
    BackendNotFoundError,
    ClerkBackend,
    RevocationList,
    Session,
)
from clerk_asgi.fastapi import CurrentAuth
from clerk_asgi.ratelimit import RateLimit
from clerk_asgi.testing import FakeClerk, FakeClock, KeyPair
from clerk_asgi.webhooks import WebhookEvent, verified_webhook

__all__ = [
    "API_RATE_LIMIT",
    "BURST",
    "DEMO_USERS",
    "KEY_VARIABLES",
    "RATE_LIMIT_STORAGE_VARIABLE",
    "RULES",
    "WEBHOOK_PATH",
    "DemoUser",
    "Development",
    "DevelopmentFront",
    "SessionsView",
    "app",
    "create_app",
    "device_of",
    "same_origin_target",
    "session_json",
]

logger = logging.getLogger("clerk_asgi.example")

#: Any of these in the environment switches the example from FakeClerk to real Clerk.
KEY_VARIABLES: Final = (
    "CLERK_PUBLISHABLE_KEY",
    "CLERK_SECRET_KEY",
    "CLERK_JWT_KEY",
    "CLERK_JWKS_URL",
)
#: ``1`` in development mode: one fake clock for FakeClerk and the middleware, and
#: ``POST /__dev/clock?advance=N`` to move it.
FAKE_CLOCK_VARIABLE: Final = "CLERK_EXAMPLE_FAKE_CLOCK"
#: Clerk mode: the signing secret of the webhook endpoint (Dashboard, Webhooks, the endpoint).
WEBHOOK_SECRET_VARIABLE: Final = "CLERK_WEBHOOK_SIGNING_SECRET"
#: Where Clerk's webhooks arrive (public, under the quickstart's ``/api/webhooks(.*)``).
WEBHOOK_PATH: Final = "/api/webhooks/clerk"
#: Clerk mode: where the API's rate-limit counts live (default ``memory://``, this process);
#: ``redis://host:6379/0`` shares them between workers. Development mode always counts in
#: memory, on its clock.
RATE_LIMIT_STORAGE_VARIABLE: Final = "CLERK_EXAMPLE_RATE_LIMIT_STORAGE"
#: Each signed-in user's budget on the API: the seed's ``Ratelimit.slidingWindow(10, "10 s")``.
API_RATE_LIMIT: Final = "10/10s"
#: How many requests the dashboard's "Fire" button sends, one after the other.
BURST: Final = 12

#: The route table of Clerk's Next.js quickstart; paths no rule matches require sign-in.
RULES: Final = (
    Rule.public(
        "/", "/sign-in/:path*", "/sign-up/:path*", "/api/webhooks/:path*", "/api/public/:path*"
    ),
    Rule.protect("/admin/:path*", role="org:admin", unauthorized_url="/unauthorized"),
    Rule.api("/api/:path*", rate_limit=API_RATE_LIMIT),
)
SIGN_IN_URL: Final = "/sign-in"
CLERK_JS: Final = "https://{host}/npm/@clerk/clerk-js@5/dist/clerk.browser.js"
DEV_BANNER: Final = (
    "FakeClerk, not Clerk: anyone who can reach this server can sign in as a demo user"
)
#: Development mode: where FakeClerk answers as the app's Frontend API proxy.
PROXY_PATH: Final = "/__clerk"
#: Development mode: the switches for FakeClerk and the fake clock.
DEV_PATH: Final = "/__dev"
#: Seconds a session token lives, as Clerk's.
TOKEN_LIFETIME: Final = 60
#: Why the dashboard shows no sessions in Clerk mode without a secret key.
NO_BACKEND: Final = (
    "Set CLERK_SECRET_KEY to see and end your sessions: that takes Clerk's Backend API."
)
#: The reasons the middleware's 401 gives when the session cookie only needs a new token.
REFRESH_REASONS: Final = (
    "token-expired",
    "session-token-expired-refresh-non-eligible-no-refresh-cookie",
    "session-token-expired-refresh-non-eligible-non-get",
    "client-uat-but-no-session-token",
    "session-token-iat-before-client-uat",
)
#: A browser without any session cookie: signed out, nothing to explain.
_PLAIN_SIGNED_OUT: Final = frozenset({"session-token-and-uat-missing", "session-token-missing"})

_UNSAFE_URL = re.compile(r"[\x00-\x20\x7f\\]")


@dataclass(frozen=True, slots=True)
class DemoUser:
    """A user of the development sign-in page, member of one organization."""

    name: str
    email: str
    user_id: str
    org_id: str
    org_role: str
    description: str


DEMO_USERS: Final = (
    DemoUser(
        name="Mia Member",
        email="mia@example.test",
        user_id="user_demo_member",
        org_id="org_demo_acme",
        org_role="org:member",
        description="A member of Acme: the dashboard works, /admin does not.",
    ),
    DemoUser(
        name="Ada Admin",
        email="ada@example.test",
        user_id="user_demo_admin",
        org_id="org_demo_acme",
        org_role="org:admin",
        description="An org:admin of Acme: everything, /admin included.",
    ),
)


def same_origin_target(target: str | None, origin: str, fallback: str = "/") -> str:
    """``target`` when it stays on ``origin`` (a local path or a same-origin URL), else
    ``fallback``: the guard against open redirects after sign-in.

    Refused: other origins, scheme-relative ``//host``, ``/\\host`` and any whitespace or
    control character (browsers drop tabs and newlines, turning ``/\\t/host`` into ``//host``),
    and every other scheme (``javascript:``).
    """
    if not target or _UNSAFE_URL.search(target):
        return fallback
    if target.startswith("/"):
        return fallback if target.startswith("//") else target
    try:
        parts = urlsplit(target)
    except ValueError:
        return fallback
    if parts.scheme in ("http", "https") and (
        f"{parts.scheme}://{parts.netloc}".lower() == origin.lower()
    ):
        return target
    return fallback


def _origin(request: Request) -> str:
    return f"{request.url.scheme}://{request.url.netloc}"


def _same_origin_call(request: Request) -> bool:
    """A safe method, or a request from this site's own pages (no cross-site state change)."""
    if request.method in ("GET", "HEAD", "OPTIONS"):
        return True
    site = request.headers.get("sec-fetch-site")
    if site is not None and site not in ("same-origin", "none"):
        return False
    origin = request.headers.get("origin")
    return origin is None or origin == _origin(request)


# --- development mode: FakeClerk and its switches ---------------------------------------------


@dataclass(frozen=True, slots=True)
class Development:
    """Development mode's FakeClerk, the in-process client to its Backend API, the fake clock."""

    fake: FakeClerk
    http: httpx.AsyncClient
    clock: FakeClock | None

    @classmethod
    def start(cls, *, clock: FakeClock | None = None, key: KeyPair | None = None) -> Development:
        """A production-type FakeClerk behind ``/__clerk``, 60-second tokens, the demo users."""
        fake = FakeClerk(
            instance="production",
            proxy_path=PROXY_PATH,
            token_lifetime=TOKEN_LIFETIME,
            clock=clock,
            key=key,
        )
        for user in DEMO_USERS:
            fake.add_user(
                user.user_id, email=user.email, org_id=user.org_id, org_role=user.org_role
            )
        return cls(fake, httpx.AsyncClient(transport=httpx.ASGITransport(fake)), clock)

    def send_webhooks_to(self, app: ASGIApp) -> None:
        """FakeClerk POSTs its ``session.*`` webhooks to ``app``'s :data:`WEBHOOK_PATH`, in
        process, before it answers the request that caused them."""
        self.fake.webhook_url = WEBHOOK_PATH
        self.fake.webhook_app = app

    def middleware_options(self) -> dict[str, Any]:
        """``ClerkConfig`` keywords for FakeClerk: keys, Backend API, proxy, handshake, clock."""
        return {
            "publishable_key": self.fake.publishable_key,
            "secret_key": self.fake.secret_key,
            "api_url": self.fake.api_url,
            "http_client": self.http,
            "proxy_url": PROXY_PATH,
            "handshake": True,
            "clock": self.clock,
        }


def _under(path: str, prefix: str) -> bool:
    return path == prefix or path.startswith(prefix + "/")


def _cross_site() -> JSONResponse:
    """The answer to a cross-site request that would change state, in Clerk's error shape."""
    error = {
        "message": "cross-site request",
        "long_message": "Requests that change state must come from this site's own pages.",
        "code": "origin_invalid",
    }
    return JSONResponse({"errors": [error]}, status_code=403)


def _clock_mover(clock: FakeClock) -> Callable[[Request], Awaitable[Response]]:
    """The endpoint ``POST /__dev/clock?advance=N``: ``clock`` moves N seconds forward."""

    async def move_clock(request: Request) -> Response:
        """Move the fake clock ``advance`` seconds forward (more than 0, at most a year)."""
        try:
            seconds = float(request.query_params.get("advance", ""))
        except ValueError:
            seconds = math.nan
        if not 0 < seconds <= 31_536_000:
            return JSONResponse(
                {"error": "advance must be a number of seconds, more than 0, at most a year"},
                status_code=400,
            )
        clock.advance(seconds)
        logger.warning("Fake clock moved %g s forward, to %s.", seconds, _stamp(clock.now))
        return JSONResponse({"now": clock.now, "advanced": seconds})

    return move_clock


class DevelopmentFront:
    """Ahead of ClerkMiddleware: /__clerk/* to FakeClerk, /__dev/* to the switches, else the app."""

    def __init__(self, app: ASGIApp, *, dev: Development) -> None:
        self.app = app
        self.dev = dev
        routes = [Route(f"{DEV_PATH}/fakeclerk", self.fakeclerk, methods=["GET", "POST"])]
        if dev.clock is not None:
            routes.append(Route(f"{DEV_PATH}/clock", _clock_mover(dev.clock), methods=["POST"]))
        self.switches = Starlette(routes=routes)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        target: ASGIApp = self.app
        if scope["type"] == "http" and _under(scope["path"], PROXY_PATH):
            target = self.dev.fake
        elif scope["type"] == "http" and _under(scope["path"], DEV_PATH):
            target = self.switches
        if target is not self.app and not _same_origin_call(Request(scope)):
            target = _cross_site()
        await target(scope, receive, send)

    async def fakeclerk(self, request: Request) -> Response:
        """FakeClerk's switch and handshakes; ``POST ?failing=1`` or ``0`` flips the switch."""
        fake = self.dev.fake
        if request.method == "POST":
            failing = request.query_params.get("failing")
            if failing not in ("0", "1"):
                return JSONResponse({"error": "failing must be 0 or 1"}, status_code=400)
            fake.failing = failing == "1"
            logger.warning("FakeClerk's handshake %s.", "fails" if fake.failing else "works")
        handshakes = [
            {
                "status": handshake.status,
                "reason": handshake.reason,
                "redirect_url": handshake.redirect_url,
                "signed_in": handshake.signed_in,
            }
            for handshake in fake.handshakes
        ]
        return JSONResponse({"failing": fake.failing, "handshakes": handshakes})


# --- HTML -------------------------------------------------------------------------------------

e = html.escape

STYLE: Final = """
:root { --fg: #1f2330; --muted: #5f6677; --line: #e3e6ee; --accent: #6c47ff; --bg: #f7f8fb; }
* { box-sizing: border-box; }
body { margin: 0; font: 16px/1.55 system-ui, -apple-system, "Segoe UI", Roboto, sans-serif;
       color: var(--fg); background: var(--bg); }
.banner { background: #fff4d6; color: #7a4b00; border-bottom: 1px solid #f0d48a;
          padding: .45rem 1rem; text-align: center; font-size: .9rem; }
.banner.clock { background: #e8f1ff; color: #1d4a8a; border-bottom-color: #b8d0f5; }
header { background: #fff; border-bottom: 1px solid var(--line); }
nav { max-width: 780px; margin: 0 auto; padding: .8rem 1rem; display: flex; gap: 1.1rem;
      align-items: center; flex-wrap: wrap; }
nav a { color: var(--fg); text-decoration: none; }
nav a:hover { color: var(--accent); }
nav .brand { font-weight: 700; }
nav .who { margin-left: auto; color: var(--muted); font-size: .9rem; }
main { max-width: 780px; margin: 2rem auto; padding: 0 1rem; }
h1 { margin: 0 0 .5rem; font-size: 1.7rem; }
h2 { margin: 0 0 .4rem; font-size: 1.15rem; }
.card { background: #fff; border: 1px solid var(--line); border-radius: 12px;
        padding: 1.25rem 1.5rem; margin: 1rem 0; }
.card > :first-child { margin-top: 0; }
.card > :last-child { margin-bottom: 0; }
.muted { color: var(--muted); }
main a { color: var(--accent); }
dl { display: grid; grid-template-columns: max-content 1fr; gap: .35rem 1.5rem; margin: 0 0 1rem; }
dt { color: var(--muted); }
dd { margin: 0; font-family: ui-monospace, SFMono-Regular, Menlo, monospace; font-size: .92rem;
     overflow-wrap: anywhere; }
code { font-family: ui-monospace, SFMono-Regular, Menlo, monospace; font-size: .88em;
       background: #eef0f6; padding: .1em .35em; border-radius: 4px; overflow-wrap: anywhere; }
pre { background: #1f2330; color: #e8eaf2; padding: 1rem; border-radius: 8px; overflow: auto;
      font-size: .82rem; min-height: 2.5rem; white-space: pre-wrap; overflow-wrap: anywhere; }
table { border-collapse: collapse; width: 100%; }
th, td { text-align: left; padding: .45rem .5rem; border-bottom: 1px solid var(--line);
         vertical-align: top; }
button { font: inherit; background: var(--accent); color: #fff; border: 0; border-radius: 8px;
         padding: .5rem 1rem; cursor: pointer; }
button.secondary { background: #fff; color: var(--fg); border: 1px solid var(--line); }
.users { display: grid; grid-template-columns: repeat(auto-fit, minmax(260px, 1fr)); gap: 1rem; }
.users .card { margin: 0; display: flex; flex-direction: column; gap: .6rem; }
.users .card p { margin: 0; }
.users button { margin-top: auto; }
.notice { border-left: 4px solid #d64545; }
p.notice { padding-left: .6rem; }
.actions { display: flex; gap: .6rem; flex-wrap: wrap; }
td.action { text-align: right; white-space: nowrap; }
.current { color: var(--muted); }
"""

# Development mode: the page plays clerk-js's part against FakeClerk, through the proxy. It
# sets the cookies clerk-js sets on the app's domain (Path=/, SameSite=Lax, a year), signs in
# and out through the Frontend API, and gets tokens as session.getToken() does.
DEV_AUTH: Final = """const PROXY = "/__clerk";
const YEAR = 31536000;
function setCookie(name, value, maxAge) {
  const secure = location.protocol === "https:" ? "; Secure" : "";
  document.cookie = `${name}=${value}; Path=/; Max-Age=${maxAge}; SameSite=Lax${secure}`;
}
async function frontendApi(method, path, body) {
  const init = { method, headers: {} };
  if (body !== undefined) {
    init.headers["content-type"] = "application/json";
    init.body = JSON.stringify(body);
  }
  const response = await fetch(PROXY + path, init);
  const json = await response.json();
  if (!response.ok) {
    const error = (json.errors || [])[0];
    throw new Error(error ? error.long_message : "HTTP " + response.status);
  }
  return json;
}
const exampleAuth = {
  async signIn(identifier) {
    const { response, client } = await frontendApi("POST", "/v1/client/sign_ins", { identifier });
    const session = client.sessions.find((s) => s.id === response.created_session_id);
    setCookie("__session", session.last_active_token.jwt, YEAR);
    setCookie("__client_uat", String(Math.floor(client.updated_at / 1000)), YEAR);
  },
  async getToken() {
    const client = (await frontendApi("GET", "/v1/client")).response;
    const sessionId = client && client.last_active_session_id;
    if (!sessionId) { return null; }
    try {
      const { jwt } = await frontendApi("POST", `/v1/client/sessions/${sessionId}/tokens`);
      setCookie("__session", jwt, YEAR);
      return jwt;
    } catch (error) {
      return null;  // the session ended: signed out
    }
  },
  async signOut() {
    await frontendApi("DELETE", "/v1/client").catch(() => null);  // signed out already: fine
    setCookie("__session", "", 0);
    setCookie("__client_uat", "0", YEAR);
    window.location.assign("/");
  },
};
"""

# Clerk mode: clerk-js does it all; it keeps __session fresh and updates it on getToken().
CLERK_AUTH: Final = """const clerkReady = new Promise((resolve) => {
  window.addEventListener("load", async () => {
    const clerk = window.Clerk;
    if (clerk) { await clerk.load(); }
    resolve(clerk || null);
  });
});
const exampleAuth = {
  async getToken() {
    const clerk = await clerkReady;
    return clerk && clerk.session ? clerk.session.getToken({ skipCache: true }) : null;
  },
  async signOut() {
    const clerk = await clerkReady;
    if (clerk) { await clerk.signOut({ redirectUrl: "/" }); return; }
    document.cookie = "__session=; Path=/; Max-Age=0; SameSite=Lax";
    window.location.assign("/");
  },
};
"""

# Both modes: fetchWithAuth (a 401 for an expired token: a fresh token, the cookie updated,
# one retry) and the page's buttons.
PAGE_SCRIPT: Final = """const REFRESH_REASONS = %s;
async function fetchWithAuth(input, init = {}, { onRefresh } = {}) {
  const response = await fetch(input, init);
  const reason = response.headers.get("x-clerk-auth-reason");
  if (response.status !== 401 || !REFRESH_REASONS.includes(reason)) { return response; }
  const token = await exampleAuth.getToken();
  if (!token) { return response; }
  if (onRefresh) { onRefresh(reason); }
  return fetch(input, init);
}
window.exampleAuth = exampleAuth;
window.fetchWithAuth = fetchWithAuth;
const signIn = document.getElementById("sign-in");
if (signIn) {
  signIn.querySelectorAll("button[data-identifier]").forEach((button) => {
    button.addEventListener("click", async () => {
      const failure = document.getElementById("sign-in-error");
      try {
        await exampleAuth.signIn(button.dataset.identifier);
        window.location.assign(signIn.dataset.redirectUrl);
      } catch (error) {
        failure.textContent = "Sign-in failed: " + error.message;
        failure.hidden = false;
      }
    });
  });
}
const signOut = document.getElementById("sign-out");
if (signOut) { signOut.addEventListener("click", () => exampleAuth.signOut()); }
async function endSessions(path, done) {
  const failure = document.getElementById("sessions-error");
  const response = await fetchWithAuth(path, { method: "POST" });
  if (response.ok) { done(); return; }
  const body = await response.json().catch(() => ({}));
  failure.textContent = `HTTP ${response.status}: ${body.message || body.error || ""}`;
  failure.hidden = false;
}
// Signed out everywhere, this browser included: the next page load finds this session revoked.
const signOutAll = document.getElementById("sign-out-all");
if (signOutAll) {
  signOutAll.addEventListener("click", () => endSessions(
    "/api/sessions/revoke-all", () => window.location.assign("/dashboard")));
}
document.querySelectorAll("button[data-revoke]").forEach((button) => {
  button.addEventListener("click", () => endSessions(
    `/api/sessions/${encodeURIComponent(button.dataset.revoke)}/revoke`,
    () => window.location.reload()));
});
const callApi = document.getElementById("call-api");
if (callApi) {
  callApi.addEventListener("click", async () => {
    const out = document.getElementById("api-result");
    const lines = [];
    const onRefresh = (reason) => lines.push(`HTTP 401 (${reason}): new token, retried`);
    const response = await fetchWithAuth("/api/me", {}, { onRefresh });
    const body = await response.json();
    lines.push(`HTTP ${response.status}\\nx-user-id: ${response.headers.get("x-user-id")}`);
    out.textContent = lines.join("\\n") + "\\n\\n" + JSON.stringify(body, null, 2);
    showQuota(response);
  });
}
// The API's rate limit, as the middleware reports it in the IETF draft's fields:
// RateLimit-Policy: "10/10s";q=10;w=10 and RateLimit: "10/10s";r=9;t=10 (r left, t seconds).
function rateLimitParams(value) {
  const params = {};
  const quoted = (value || "").match(/^\\s*"[^"]*"(.*)$/);
  for (const part of (quoted ? quoted[1] : "").split(";")) {
    const [name, number] = part.split("=").map((text) => text.trim());
    if (name && /^\\d+$/.test(number || "")) { params[name] = Number(number); }
  }
  return params;
}
function showQuota(response) {
  const remaining = document.getElementById("quota-remaining");
  if (!remaining) { return; }
  const field = response.headers.get("ratelimit");
  const state = rateLimitParams(field);
  const policy = rateLimitParams(response.headers.get("ratelimit-policy"));
  const detail = document.getElementById("quota-detail");
  if (state.r === undefined) {
    remaining.textContent = "?";
    detail.textContent = response.status === 401
      ? "(HTTP 401: refused before the limit, not counted)"
      : `(HTTP ${response.status} without a RateLimit field: Redis storage sends it on 429s only)`;
    return;
  }
  remaining.textContent = String(state.r);
  if (policy.q !== undefined) {
    document.getElementById("quota-limit").textContent = String(policy.q);
  }
  detail.textContent = `(RateLimit: ${field})`;
}
const quota = document.getElementById("rate-limit");
if (quota) {
  fetchWithAuth("/api/me").then(showQuota);
  const fire = document.getElementById("fire-burst");
  fire.addEventListener("click", async () => {
    const out = document.getElementById("burst-result");
    fire.disabled = true;
    out.textContent = "Firing…";
    const counts = new Map();
    let retryAfter = null;
    let last = null;
    for (let i = 0; i < Number(fire.dataset.count); i += 1) {
      last = await fetchWithAuth("/api/me");
      counts.set(last.status, (counts.get(last.status) || 0) + 1);
      if (last.status === 429 && retryAfter === null) {
        retryAfter = last.headers.get("retry-after");
      }
    }
    showQuota(last);
    out.dataset.ok = String(counts.get(200) || 0);
    out.dataset.limited = String(counts.get(429) || 0);
    const tally = [...counts].map(([status, count]) => `${count} got HTTP ${status}`);
    const wait = retryAfter === null ? "" : `; the first 429 said Retry-After: ${retryAfter} s`;
    out.textContent = `${fire.dataset.count} requests: ${tally.join(", ")}${wait}`;
    fire.disabled = false;
  });
}
""" % ("[" + ", ".join(f'"{reason}"' for reason in REFRESH_REASONS) + "]")

# Clerk mode, /sign-in and /sign-up: mount Clerk's component once clerk-js has loaded.
MOUNT: Final = """<script>
clerkReady.then((clerk) => {
  const root = document.getElementById("clerk-component");
  const target = root.dataset.redirectUrl;
  if (!clerk) { return; }
  if (clerk.user) { window.location.assign(target); return; }
  clerk.%s(root, { forceRedirectUrl: target, %s });
});
</script>"""


def _stamp(timestamp: float) -> str:
    return datetime.fromtimestamp(timestamp, UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


@dataclass(frozen=True, slots=True)
class Site:
    """What every page needs to know about the mode the app runs in."""

    dev: Development | None
    publishable_key: str | None
    frontend_api: str | None
    clock: Callable[[], float]

    def page(
        self, title: str, content: str, auth: Auth, *, status: int = 200, script: str = ""
    ) -> HTMLResponse:
        """A whole page: dev banners, navigation, content, the auth script; never cached."""
        banner = ""
        if self.dev:
            banner = f'<div class="banner" role="note">{DEV_BANNER}</div>'
            if self.dev.clock is not None:
                banner += (
                    f'<div class="banner clock" id="fake-clock">Fake server clock '
                    f"({FAKE_CLOCK_VARIABLE}=1): {_stamp(self.dev.clock.now)}. "
                    f"<code>POST {DEV_PATH}/clock?advance=120</code> moves it.</div>"
                )
        if auth.is_signed_in:
            who = (
                f'<a class="who" href="/dashboard">Signed in as <code>{e(auth.user_id or "")}'
                f"</code></a>"
            )
        else:
            who = '<a class="who" href="/sign-in?redirect_url=/dashboard">Sign in</a>'
        clerk = ""
        if self.publishable_key and self.frontend_api:
            src = CLERK_JS.format(host=self.frontend_api)
            clerk = (
                f'<script async crossorigin="anonymous" type="text/javascript" '
                f'data-clerk-publishable-key="{e(self.publishable_key)}" src="{e(src)}"></script>'
            )
        auth_script = DEV_AUTH if self.dev else CLERK_AUTH
        body = f"""<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<link rel="icon" href="data:,">
<title>{e(title)} · clerk-asgi example</title>
<style>{STYLE}</style>
</head>
<body>
{banner}
<header><nav>
<a class="brand" href="/">clerk-asgi example</a>
<a href="/dashboard">Dashboard</a>
<a href="/admin">Admin</a>
<a href="/api/me">/api/me</a>
{who}
</nav></header>
<main>
{content}
</main>
{clerk}<script>
{auth_script}{PAGE_SCRIPT}</script>{script}
</body>
</html>
"""
        return HTMLResponse(body, status_code=status, headers={"Cache-Control": "no-store"})


def _when(timestamp: float | None, now: float) -> str:
    if timestamp is None:
        return "—"
    seconds = round(timestamp - now)
    span = f"{abs(seconds)} s" if abs(seconds) < 120 else f"{abs(seconds) // 60} min"
    return f"{_stamp(timestamp)} ({'in ' + span if seconds >= 0 else span + ' ago'})"


def _session_details(auth: Auth, now: float) -> str:
    rows = [
        ("user-id", "User", auth.user_id),
        ("session-id", "Session", auth.session_id),
        ("org-id", "Organization", auth.org_id),
        ("org-role", "Org role", auth.org_role),
        ("session-status", "Session status", auth.session_status),
        ("issued-at", "Token issued", _when(auth.issued_at, now)),
        ("expires-at", "Token expires", _when(auth.expires_at, now)),
    ]
    items = "".join(
        f'<dt>{label}</dt><dd id="{ident}">{e(value or "—")}</dd>' for ident, label, value in rows
    )
    return f"<dl>{items}</dl>"


def _at(moment: datetime | None, now: float) -> str:
    return _when(moment.timestamp() if moment is not None else None, now)


def _iso(moment: datetime | None) -> str | None:
    return moment.isoformat() if moment is not None else None


def device_of(session: Session) -> tuple[str, str, str]:
    """The device, the browser and where from, as the session's ``latest_activity`` says."""
    activity = session.latest_activity or {}
    device = str(activity.get("device_type") or "Unknown device")
    if activity.get("is_mobile") is True:
        device += " (mobile)"
    browser = " ".join(
        str(activity[name]) for name in ("browser_name", "browser_version") if activity.get(name)
    )
    place = ", ".join(str(activity[name]) for name in ("city", "country") if activity.get(name))
    where = " · ".join(part for part in (str(activity.get("ip_address") or ""), place) if part)
    return device, browser or "Unknown browser", where or "—"


def session_json(session: Session, current: str | None) -> dict[str, Any]:
    """A session for the example's API: times in ISO 8601, ``current`` for this request's."""
    activity = session.latest_activity
    return {
        "id": session.id,
        "status": session.status,
        "current": session.id == current,
        "created_at": _iso(session.created_at),
        "last_active_at": _iso(session.last_active_at),
        "expire_at": _iso(session.expire_at),
        "latest_activity": dict(activity) if activity is not None else None,
    }


@dataclass(frozen=True, slots=True)
class SessionsView:
    """What the dashboard shows of the user's sessions, from the Backend API."""

    current: Session | None
    active: list[Session]
    #: Why there is nothing to show (no secret key, or the Backend API failed), else None.
    problem: str | None = None

    @classmethod
    async def load(cls, backend: ClerkBackend | None, auth: Auth) -> SessionsView:
        """This session (``sessions.get``) and the user's active ones (``sessions.list``)."""
        if backend is None:
            return cls(None, [], NO_BACKEND)
        if auth.session_id is None or auth.user_id is None:
            return cls(None, [], "This request has no session.")
        try:
            current = await backend.sessions.get(auth.session_id)
            active = await backend.sessions.list(user_id=auth.user_id, status="active")
        except BackendAPIError as error:
            return cls(None, [], f"Clerk's Backend API failed: {error.message}")
        return cls(current, active)

    def manager(self, auth: Auth, now: float, backend: bool) -> str:
        """The session manager: this session, sign out, sign out of all devices."""
        if self.current is not None:
            rows = [
                ("session-created", "Created", _at(self.current.created_at, now)),
                ("session-last-active", "Last active", _at(self.current.last_active_at, now)),
                ("session-expires", "Expires", _at(self.current.expire_at, now)),
            ]
            items = "".join(
                f'<dt>{label}</dt><dd id="{ident}">{e(value)}</dd>' for ident, label, value in rows
            )
            record = f'<dl id="session-record">{items}</dl>'
        else:
            record = f'<p class="muted" id="sessions-unavailable">{e(self.problem or "")}</p>'
        everywhere = (
            '<button class="secondary" id="sign-out-all" type="button">Sign out of all devices'
            "</button>"
            if backend
            else ""
        )
        return f"""<div class="card" id="session-manager"><h2>Your session</h2>
{_session_details(auth, now)}
<p class="muted">The session itself, from <code>clerk.sessions.get(auth.session_id)</code>:</p>
{record}
<p class="actions"><button id="sign-out" type="button">Sign out</button>
{everywhere}</p>
<p class="notice" id="sessions-error" role="alert" hidden></p></div>"""

    def listing(self, auth: Auth, now: float) -> str:
        """The session list: every active session, its device; "Revoke" on the others."""
        if self.problem is not None:
            return ""
        rows = []
        for session in self.active:
            device, browser, where = device_of(session)
            if session.id == auth.session_id:
                action = '<span class="current">(current)</span>'
            else:
                action = (
                    f'<button class="secondary" type="button" data-revoke="{e(session.id)}">'
                    "Revoke</button>"
                )
            rows.append(
                f'<tr data-session-id="{e(session.id)}"><td class="device">{e(device)}</td>'
                f'<td class="browser">{e(browser)}</td><td class="where">{e(where)}</td>'
                f'<td class="last-active">{e(_at(session.last_active_at, now))}</td>'
                f'<td class="action">{action}</td></tr>'
            )
        return f"""<div class="card" id="session-list"><h2>Your active sessions</h2>
<p class="muted">Every device signed in as you (<code>clerk.sessions.list(user_id=...,
status="active")</code>). Revoking one signs it out at once: its next request is refused
(<code>session-revoked</code>), not up to a minute later when its token expires.</p>
<table><tr><th>device</th><th>browser</th><th>from</th><th>last active</th><th></th></tr>
{"".join(rows)}</table></div>"""


def auth_json(auth: Auth) -> dict[str, Any]:
    """The Auth as JSON (everything but the raw token)."""
    return {
        "is_signed_in": auth.is_signed_in,
        "user_id": auth.user_id,
        "session_id": auth.session_id,
        "org_id": auth.org_id,
        "org_role": auth.org_role,
        "org_slug": auth.org_slug,
        "org_permissions": list(auth.org_permissions),
        "session_status": auth.session_status,
        "actor": dict(auth.actor) if auth.actor is not None else None,
        "issued_at": auth.issued_at,
        "expires_at": auth.expires_at,
        "reason": auth.reason,
        "claims": dict(auth.claims),
    }


def _rule_table() -> str:
    rows = [
        (
            "/ · /sign-in/:path* · /sign-up/:path* · /api/webhooks/:path* · /api/public/:path*",
            "public: the page runs, signed in or not",
        ),
        ("/admin/:path*", "sign-in and the org:admin role; other users go to /unauthorized"),
        (
            "/api/:path*",
            "API: 401/403 JSON instead of redirects; x-user-id header when signed in; "
            f"{API_RATE_LIMIT} per user (429 past it)",
        ),
        ("everything else", "sign-in required: browsers are sent to /sign-in and back"),
    ]
    body = "".join(f"<tr><td><code>{e(p)}</code></td><td>{e(d)}</td></tr>" for p, d in rows)
    return f"<table><tr><th>paths</th><th>rule</th></tr>{body}</table>"


def _rate_limit_card() -> str:
    """The dashboard's rate-limit card: what is left (filled in by the page script from its
    own API call) and the "Fire" button."""
    limit = RateLimit.parse(API_RATE_LIMIT)
    return f"""<div class="card" id="rate-limit"><h2>Rate limit</h2>
<p class="muted">The <code>/api/:path*</code> rule allows each user {limit.amount} requests per
{limit.window} seconds (<code>rate_limit="{e(API_RATE_LIMIT)}"</code>, Upstash's sliding
window); past that the answer is <code>429</code> with <code>Retry-After</code>. This page's own
<code>fetchWithAuth("/api/me")</code> reads what is left from the <code>RateLimit</code> header
(<code>r</code> requests left, <code>t</code> seconds until the current window ends). A refused
sign-in (401) costs nothing.</p>
<p id="quota">Remaining: <strong id="quota-remaining">…</strong> of
<span id="quota-limit">{limit.amount}</span> <span class="muted" id="quota-detail"></span></p>
<p class="actions"><button class="secondary" id="fire-burst" type="button"
data-count="{BURST}">Fire {BURST} requests</button></p>
<p id="burst-result" aria-live="polite"></p></div>"""


# --- the app ----------------------------------------------------------------------------------


def create_app(*, clock: FakeClock | None = None, key: KeyPair | None = None) -> FastAPI:
    """Build the example app for the current environment (see the module docstring).

    Args:
        clock: development mode: the fake clock FakeClerk and the middleware share, moved by
            ``POST /__dev/clock`` (default: one when ``CLERK_EXAMPLE_FAKE_CLOCK=1``, else
            real time). Ignored when Clerk keys are configured.
        key: development mode: FakeClerk's signing key (default: a new one).

    Raises:
        ConfigurationError: a ``CLERK_*`` variable is malformed.
    """
    real = any(os.environ.get(name) for name in KEY_VARIABLES)
    dev: Development | None = None
    if not real:
        if clock is None and os.environ.get(FAKE_CLOCK_VARIABLE) == "1":
            clock = FakeClock(math.floor(time.time()))  # whole seconds, as tokens count
        dev = Development.start(clock=clock, key=key)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        yield
        if app.state.clerk_backend is not None:  # its own HTTP client, in Clerk mode
            await app.state.clerk_backend.aclose()
        await app.state.rate_limiter.aclose()  # Redis storage: its connections
        if dev is not None:
            await dev.http.aclose()

    app = FastAPI(title="clerk-asgi example", lifespan=lifespan)
    # One revocation list for the middleware, ClerkBackend and the webhook endpoint: a session
    # revoked through any of them is refused at once. Memory suits one process; with several
    # workers or hosts use RedisRevocationList("redis://...").
    revocations = RevocationList(clock=dev.clock if dev else None)
    # Built now, at start-up: a bad CLERK_* value stops the server here with the library's own
    # message (Starlette would build the middleware on the first ASGI call, the lifespan,
    # where uvicorn reports a failure as "lifespan unsupported" and carries on).
    clerk = ClerkConfig(
        rules=RULES,
        sign_in_url=SIGN_IN_URL,
        # authorized_parties is left to CLERK_AUTHORIZED_PARTIES (the middleware reads it when
        # this is None). Set it in production, e.g. "https://app.example.com". The app cannot
        # know the port uvicorn binds, so it does not guess a list: without one, azp is not
        # checked, and cookie-carried POSTs are still refused when their Origin is not this
        # server's own.
        authorized_parties=None,
        revocation_list=revocations,
        # The API rule's 10/10s: counted in this process's memory (on the fake clock when
        # there is one); in Clerk mode CLERK_EXAMPLE_RATE_LIMIT_STORAGE may name a Redis URL,
        # which every worker shares (memory gives each worker its own budget).
        rate_limit_storage=(
            "memory://" if dev else os.environ.get(RATE_LIMIT_STORAGE_VARIABLE) or "memory://"
        ),
        # Dev mode: FakeClerk's keys, its Backend API in process, the /__clerk proxy and the
        # handshake. Clerk mode: nothing here, so the config takes CLERK_PUBLISHABLE_KEY & co.
        # from the environment (the handshake is on with a publishable and a secret key).
        **(dev.middleware_options() if dev else {}),
    )
    app.add_middleware(ClerkMiddleware, config=clerk)
    # The Backend API client takes the secret key, API URL, HTTP client, clock and revocation
    # list from the same config (dev: FakeClerk in process; Clerk: CLERK_SECRET_KEY).
    backend = ClerkBackend(clerk) if clerk.secret_key else None
    webhook_secret = dev.fake.webhook_secret if dev else os.environ.get(WEBHOOK_SECRET_VARIABLE)
    app.state.revocation_list = revocations
    app.state.rate_limiter = clerk.rate_limiter
    app.state.clerk_backend = backend
    if dev is not None:  # added last, so it runs first: the proxy answers before auth
        app.add_middleware(DevelopmentFront, dev=dev)
        dev.send_webhooks_to(app)
        app.state.fake_clerk = dev.fake
        logger.warning(
            "%s. Set CLERK_PUBLISHABLE_KEY and CLERK_SECRET_KEY to use your Clerk instance.",
            DEV_BANNER,
        )
        if dev.clock is not None:
            logger.warning(
                "Fake clock (%s=1) at %s: POST %s/clock?advance=N moves it.",
                FAKE_CLOCK_VARIABLE,
                _stamp(dev.clock.now),
                DEV_PATH,
            )
    site = Site(
        dev=dev,
        publishable_key=None if dev else os.environ.get("CLERK_PUBLISHABLE_KEY") or None,
        frontend_api=None if dev else clerk.frontend_api,
        clock=clerk.clock,
    )

    @app.get("/", response_class=HTMLResponse)
    async def home(auth: CurrentAuth) -> Response:
        if auth.is_signed_in:
            status = (
                f"<p>You are signed in as <code>{e(auth.user_id or '')}</code>"
                f" ({e(auth.org_role or 'no organization')}). "
                '<a href="/dashboard">Open the dashboard</a>.</p>'
            )
        else:
            status = (
                '<p>You are signed out. <a href="/sign-in?redirect_url=/dashboard">Sign in</a>, '
                'or open the <a href="/dashboard">dashboard</a> and be sent there.</p>'
            )
        mode = (
            "<p class='muted'>Sessions come from FakeClerk (<code>clerk_asgi.testing</code>), "
            "answering at <code>/__clerk</code> as this app's Frontend API proxy: real RS256 "
            "tokens that live 60 seconds, as Clerk's, renewed by Clerk's handshake when a page "
            "loads. Set <code>CLERK_PUBLISHABLE_KEY</code> and <code>CLERK_SECRET_KEY</code> to "
            "use your Clerk instance instead.</p>"
            if site.dev
            else "<p class='muted'>Sessions come from your Clerk instance.</p>"
        )
        content = f"""<h1>clerk-asgi example</h1>
<p>A FastAPI app behind <code>ClerkMiddleware</code>, with the route table of Clerk's Next.js
quickstart. Every request's session token is verified; the first matching rule decides.</p>
<div class="card">{status}{mode}</div>
<div class="card"><h2>Rules</h2>{_rule_table()}</div>
<div class="card"><h2>Try</h2><p><a href="/dashboard">/dashboard</a> ·
<a href="/admin">/admin</a> · <a href="/api/me">/api/me</a> ·
<a href="/api/public/ping">/api/public/ping</a></p></div>"""
        return site.page("Home", content, auth)

    @app.get("/dashboard", response_class=HTMLResponse)
    async def dashboard(auth: CurrentAuth) -> Response:
        view = await SessionsView.load(backend, auth)
        now = site.clock()
        content = f"""<h1>Dashboard</h1>
<p class="muted">Only signed-in users get here; everyone else is sent to sign in first.</p>
{view.manager(auth, now, backend is not None)}
{view.listing(auth, now)}
<div class="card"><h2>Call the API</h2>
<p class="muted"><code>fetchWithAuth("/api/me")</code> from this page, authenticated by the same
cookie; the middleware adds <code>x-user-id</code>. When the token has expired (a 401 saying
so), it gets a fresh one, updates the <code>__session</code> cookie and retries once.</p>
<button class="secondary" id="call-api" type="button">Call /api/me</button>
<pre id="api-result" aria-live="polite"></pre></div>
{_rate_limit_card()}"""
        return site.page("Dashboard", content, auth)

    @app.get("/admin", response_class=HTMLResponse)
    async def admin(auth: CurrentAuth) -> Response:
        # The Rule.protect("/admin/:path*", role="org:admin") above already let only admins in.
        content = f"""<h1>Admin</h1>
<div class="card"><p>Welcome, <code>{e(auth.user_id or "")}</code>: you hold
<code>{e(auth.org_role or "")}</code> in <code>{e(auth.org_slug or auth.org_id or "")}</code>,
so the <code>/admin/:path*</code> rule let you in.</p></div>"""
        return site.page("Admin", content, auth)

    @app.get("/unauthorized", response_class=HTMLResponse)
    async def unauthorized(auth: CurrentAuth) -> Response:
        content = f"""<h1>Not allowed</h1>
<div class="card notice"><p>You are signed in as <code>{e(auth.user_id or "")}</code>
(<code>{e(auth.org_role or "no organization")}</code>), but <code>/admin</code> needs the
<code>org:admin</code> role.</p><p><a href="/dashboard">Back to the dashboard</a></p></div>"""
        return site.page("Not allowed", content, auth, status=403)

    @app.get("/api/me")
    async def me(request: Request, auth: CurrentAuth) -> dict[str, Any]:
        # The middleware injected x-user-id into the request (and echoes it on the response).
        return {**auth_json(auth), "x_user_id": request.headers.get("x-user-id")}

    @app.get("/api/public/ping")
    async def ping(auth: CurrentAuth) -> dict[str, Any]:
        return {"ok": True, "user_id": auth.user_id}

    _add_session_routes(app, backend)
    _add_webhook_route(app, webhook_secret, revocations, clerk.clock)

    if dev is not None:
        _add_dev_sign_in(app, site)
    else:
        _add_clerk_sign_in(app, site)
    return app


def _api_error(status: int, error: str, message: str) -> JSONResponse:
    return JSONResponse({"error": error, "message": message}, status_code=status)


def _backend_failed(error: BackendAPIError) -> JSONResponse:
    """A Backend API failure as the example's API answers it (never a 500)."""
    if isinstance(error, BackendNotFoundError):
        return _api_error(404, "session_not_found", "You have no such session.")
    return _api_error(502, "backend_api_error", f"Clerk's Backend API failed: {error.message}")


def _add_session_routes(app: FastAPI, backend: ClerkBackend | None) -> None:
    """``GET /api/sessions``, ``POST /api/sessions/{id}/revoke``, ``POST
    /api/sessions/revoke-all``: the user's own sessions, through the Backend API."""

    def ready(auth: Auth) -> tuple[ClerkBackend, str] | JSONResponse:
        """The Backend API client and the user's id, or why this cannot go on."""
        if backend is None:
            return _api_error(503, "backend_not_configured", NO_BACKEND)
        if auth.user_id is None:  # the /api rule lets only signed-in users in
            return _api_error(401, "unauthorized", "Sign in first.")
        return backend, auth.user_id

    @app.get("/api/sessions")
    async def list_sessions(auth: CurrentAuth) -> Response:
        """The signed-in user's active sessions, newest first."""
        found = ready(auth)
        if isinstance(found, JSONResponse):
            return found
        clerk, user_id = found
        try:
            active = await clerk.sessions.list(user_id=user_id, status="active")
        except BackendAPIError as error:
            return _backend_failed(error)
        return JSONResponse({"sessions": [session_json(s, auth.session_id) for s in active]})

    @app.post("/api/sessions/revoke-all")
    async def revoke_all(auth: CurrentAuth) -> Response:
        """Sign out of all devices: every active session of the user, this one included."""
        found = ready(auth)
        if isinstance(found, JSONResponse):
            return found
        clerk, user_id = found
        try:
            revoked = await clerk.sessions.revoke_all(user_id=user_id)
        except BackendAPIError as error:
            return _backend_failed(error)
        logger.info("Revoked %d session(s) of %s.", len(revoked), user_id)
        return JSONResponse({"revoked": [s.id for s in revoked]})

    @app.post("/api/sessions/{session_id}/revoke")
    async def revoke(session_id: str, auth: CurrentAuth) -> Response:
        """Revoke one of the user's sessions (another user's is "not found")."""
        found = ready(auth)
        if isinstance(found, JSONResponse):
            return found
        clerk, user_id = found
        try:
            if (await clerk.sessions.get(session_id)).user_id != user_id:
                return _api_error(404, "session_not_found", "You have no such session.")
            session = await clerk.sessions.revoke(session_id)
        except BackendAPIError as error:
            return _backend_failed(error)
        return JSONResponse({"revoked": session_json(session, auth.session_id)})


def _add_webhook_route(
    app: FastAPI, secret: str | None, revocations: RevocationList, clock: Callable[[], float]
) -> None:
    """``POST /api/webhooks/clerk``: Clerk's webhooks, verified; ``session.revoked``,
    ``session.ended`` and ``session.removed`` put the session on the revocation list, and a
    repeated delivery (same ``svix-id``) is only acknowledged."""
    if secret is None:

        @app.post(WEBHOOK_PATH)
        async def webhook_not_configured() -> Response:
            message = (
                f"Set {WEBHOOK_SECRET_VARIABLE} (the endpoint's signing secret) to verify them."
            )
            return _api_error(503, "webhooks_not_configured", message)

        return

    # The app's clock: FakeClerk signs on the fake one when CLERK_EXAMPLE_FAKE_CLOCK=1.
    verified = verified_webhook(
        secret=secret, revocation_list=revocations, dedupe=True, clock=clock
    )

    @app.post(WEBHOOK_PATH)
    async def clerk_webhook(event: WebhookEvent = Depends(verified)) -> dict[str, Any]:
        logger.info("Clerk webhook %s (%s) received.", event.id, event.get("type"))
        return {"received": event.get("type"), "duplicate": event.duplicate}


def _signed_out_notice(auth: Auth) -> str:
    """Why the middleware signed this browser out, when it came with cookies it could not use."""
    if auth.is_signed_in or auth.reason is None or auth.reason in _PLAIN_SIGNED_OUT:
        return ""
    return f"""<div class="card notice" id="signed-out-reason"><p>You were signed out: the
middleware could not use this browser's session cookies (<code>x-clerk-auth-reason:
{e(auth.reason)}</code>). When the Frontend API keeps failing, the handshake's loop guard
does this after three redirects in a row. Sign in again.</p></div>"""


def _add_dev_sign_in(app: FastAPI, site: Site) -> None:
    """``/sign-in`` picks a demo user signed in through FakeClerk; ``/sign-up`` leads there."""

    @app.get("/sign-in", response_class=HTMLResponse)
    async def sign_in(request: Request, auth: CurrentAuth, redirect_url: str = "/") -> Response:
        target = same_origin_target(redirect_url, _origin(request))
        cards = "".join(
            f"""<div class="card">
<h2>{e(user.name)}</h2>
<p><code>{e(user.email)}</code><br><code>{e(user.user_id)}</code>,
<code>{e(user.org_role)}</code> in <code>{e(user.org_id)}</code></p>
<p class="muted">{e(user.description)}</p>
<button type="button" data-identifier="{e(user.email)}">Sign in as {e(user.name)}</button>
</div>"""
            for user in DEMO_USERS
        )
        current = (
            f"<p>You are signed in as <code>{e(auth.user_id or '')}</code>; choosing a user "
            "starts a new session.</p>"
            if auth.is_signed_in
            else ""
        )
        content = f"""<h1>Sign in</h1>
{_signed_out_notice(auth)}<p class="muted">Pick a demo user. This page plays clerk-js's part:
it signs in through FakeClerk's Frontend API (<code>POST /__clerk/v1/client/sign_ins</code>),
then stores the session token in the <code>__session</code> cookie (valid
{TOKEN_LIFETIME} seconds, as Clerk's) and the sign-in time in <code>__client_uat</code>.
Afterwards you return to <code>{e(target)}</code>.</p>
{current}<div class="users" id="sign-in" data-redirect-url="{e(target)}">{cards}</div>
<div class="card notice" id="sign-in-error" role="alert" hidden></div>"""
        return site.page("Sign in", content, auth)

    @app.get("/sign-up")
    async def sign_up(request: Request) -> Response:
        query = request.url.query
        return RedirectResponse(SIGN_IN_URL + ("?" + query if query else ""), status_code=307)


def _add_clerk_sign_in(app: FastAPI, site: Site) -> None:
    """``/sign-in`` and ``/sign-up`` mount Clerk's components."""

    def mounted(
        auth: Auth, request: Request, title: str, mount: str, options: str, target: str | None
    ) -> Response:
        safe = same_origin_target(target, _origin(request))
        if not site.frontend_api:
            content = f"""<h1>{title}</h1><div class="card notice"><p>Set
<code>CLERK_PUBLISHABLE_KEY</code> to mount Clerk's {title.lower()} here.</p></div>"""
            return site.page(title, content, auth)
        content = f"""<h1>{title}</h1>
<div id="clerk-component" data-redirect-url="{e(safe)}"><p class="muted">Loading Clerk from
<code>{e(site.frontend_api)}</code>…</p></div>"""
        return site.page(title, content, auth, script=MOUNT % (mount, options))

    @app.get("/sign-in", response_class=HTMLResponse)
    async def sign_in(request: Request, auth: CurrentAuth, redirect_url: str = "/") -> Response:
        options = 'signUpUrl: "/sign-up"'
        return mounted(auth, request, "Sign in", "mountSignIn", options, redirect_url)

    @app.get("/sign-up", response_class=HTMLResponse)
    async def sign_up(request: Request, auth: CurrentAuth, redirect_url: str = "/") -> Response:
        options = 'signInUrl: "/sign-in"'
        return mounted(auth, request, "Sign up", "mountSignUp", options, redirect_url)


app = create_app()
