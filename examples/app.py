"""The clerk-asgi example: a FastAPI app protected like Clerk's Next.js quickstart.

Run it from the repository root (either command; ``PORT=9000`` or ``--port 9000`` to move it)::

    python3 tasks.py example                        # http://127.0.0.1:8000
    .venv/bin/uvicorn --app-dir examples app:app    # the same app, with uvicorn's own options

Two modes, chosen from the environment when the app is created:

* **Development (the default)**: none of ``CLERK_PUBLISHABLE_KEY``, ``CLERK_SECRET_KEY``,
  ``CLERK_JWT_KEY``, ``CLERK_JWKS_URL`` is set. A development issuer (``dev_issuer.py``, not
  Clerk) generates an RSA key at start-up and the middleware verifies its tokens with the public
  half, for real. ``/sign-in`` offers two demo users; choosing one sets the ``__session`` cookie.
* **Clerk**: with your instance's keys in the environment (``CLERK_PUBLISHABLE_KEY`` at least),
  the middleware verifies real Clerk session tokens and every page loads clerk-js from your
  instance's Frontend API; ``/sign-in`` mounts Clerk's ``<SignIn />``.
"""

from __future__ import annotations

import html
import logging
import os
import re
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Final
from urllib.parse import parse_qs, urlsplit

from dev_issuer import DEMO_USERS, DevIssuer
from fastapi import FastAPI, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from clerk_asgi import Auth, ClerkConfig, ClerkMiddleware, Rule
from clerk_asgi.fastapi import CurrentAuth

__all__ = ["KEY_VARIABLES", "RULES", "app", "create_app", "same_origin_target"]

logger = logging.getLogger("clerk_asgi.example")

#: Any of these in the environment switches the example from the dev issuer to real Clerk.
KEY_VARIABLES: Final = (
    "CLERK_PUBLISHABLE_KEY",
    "CLERK_SECRET_KEY",
    "CLERK_JWT_KEY",
    "CLERK_JWKS_URL",
)

#: The route table of Clerk's Next.js quickstart; paths no rule matches require sign-in.
RULES: Final = (
    Rule.public(
        "/", "/sign-in/:path*", "/sign-up/:path*", "/api/webhooks/:path*", "/api/public/:path*"
    ),
    Rule.protect("/admin/:path*", role="org:admin", unauthorized_url="/unauthorized"),
    Rule.api("/api/:path*"),
)
SIGN_IN_URL: Final = "/sign-in"
SESSION_COOKIE: Final = "__session"
CLERK_JS: Final = "https://{host}/npm/@clerk/clerk-js@5/dist/clerk.browser.js"
DEV_BANNER: Final = "development issuer — not Clerk"

_UNSAFE_URL = re.compile(r"[\x00-\x20\x7f\\]")
_HOST = re.compile(r"[a-z0-9](?:[a-z0-9.-]*[a-z0-9])?")


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


def _same_origin_post(request: Request) -> bool:
    """A form posted by one of our own pages (no login CSRF from other sites)."""
    site = request.headers.get("sec-fetch-site")
    if site is not None and site not in ("same-origin", "none"):
        return False
    origin = request.headers.get("origin")
    return origin is None or origin == _origin(request)


def _form_value(body: bytes, name: str) -> str | None:
    values = parse_qs(body.decode("utf-8", "replace"), max_num_fields=20).get(name)
    return values[0] if values else None


# --- HTML -------------------------------------------------------------------------------------

e = html.escape

STYLE: Final = """
:root { --fg: #1f2330; --muted: #5f6677; --line: #e3e6ee; --accent: #6c47ff; --bg: #f7f8fb; }
* { box-sizing: border-box; }
body { margin: 0; font: 16px/1.55 system-ui, -apple-system, "Segoe UI", Roboto, sans-serif;
       color: var(--fg); background: var(--bg); }
.banner { background: #fff4d6; color: #7a4b00; border-bottom: 1px solid #f0d48a;
          padding: .45rem 1rem; text-align: center; font-size: .9rem; }
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
       background: #eef0f6; padding: .1em .35em; border-radius: 4px; }
pre { background: #1f2330; color: #e8eaf2; padding: 1rem; border-radius: 8px; overflow: auto;
      font-size: .82rem; min-height: 2.5rem; }
table { border-collapse: collapse; width: 100%; }
th, td { text-align: left; padding: .45rem .5rem; border-bottom: 1px solid var(--line);
         vertical-align: top; }
button { font: inherit; background: var(--accent); color: #fff; border: 0; border-radius: 8px;
         padding: .5rem 1rem; cursor: pointer; }
button.secondary { background: #fff; color: var(--fg); border: 1px solid var(--line); }
form.inline { display: inline; }
.users { display: grid; grid-template-columns: repeat(auto-fit, minmax(260px, 1fr)); gap: 1rem; }
.users .card { margin: 0; display: flex; flex-direction: column; gap: .6rem; }
.users .card p { margin: 0; }
.users button { margin-top: auto; }
.notice { border-left: 4px solid #d64545; }
"""

# Runs once clerk-js has loaded (Clerk mode only; loading keeps __session fresh); the %s is
# the page's own step (mount a component, sign out) or nothing.
CLERK_BOOT: Final = """<script>
window.addEventListener("load", async () => {
  const clerk = window.Clerk;
  if (!clerk) { return; }
  await clerk.load();
  %s
});
</script>"""

MOUNT: Final = """const root = document.getElementById("clerk-component");
  const target = root.dataset.redirectUrl;
  if (clerk.user) { window.location.assign(target); return; }
  clerk.%s(root, { forceRedirectUrl: target, %s });"""

API_ME_SCRIPT: Final = """<script>
document.getElementById("call-api").addEventListener("click", async () => {
  const out = document.getElementById("api-result");
  const response = await fetch("/api/me");
  const body = await response.json();
  out.textContent = "HTTP " + response.status + "\\nx-user-id: "
    + response.headers.get("x-user-id") + "\\n\\n" + JSON.stringify(body, null, 2);
});
</script>"""


@dataclass(frozen=True, slots=True)
class Site:
    """What every page needs to know about the mode the app runs in."""

    dev: DevIssuer | None
    publishable_key: str | None
    frontend_api: str | None

    def page(
        self,
        title: str,
        content: str,
        auth: Auth,
        *,
        status: int = 200,
        clerk_step: str = "",
        script: str = "",
    ) -> HTMLResponse:
        """A complete page: banner (dev mode), navigation, ``content``; never cached."""
        banner = f'<div class="banner" role="note">{DEV_BANNER}</div>' if self.dev else ""
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
            boot = CLERK_BOOT % clerk_step
            clerk = (
                f'<script async crossorigin="anonymous" type="text/javascript" '
                f'data-clerk-publishable-key="{e(self.publishable_key)}" src="{e(src)}"></script>'
                f"{boot}"
            )
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
{clerk}{script}
</body>
</html>
"""
        return HTMLResponse(body, status_code=status, headers={"Cache-Control": "no-store"})


def _when(timestamp: float | None, now: float) -> str:
    if timestamp is None:
        return "—"
    stamp = datetime.fromtimestamp(timestamp, UTC).strftime("%Y-%m-%d %H:%M:%S UTC")
    seconds = round(timestamp - now)
    span = f"{abs(seconds)} s" if abs(seconds) < 120 else f"{abs(seconds) // 60} min"
    return f"{stamp} ({'in ' + span if seconds >= 0 else span + ' ago'})"


def _session_details(auth: Auth, now: float) -> str:
    rows = [
        ("user-id", "User", auth.user_id),
        ("session-id", "Session", auth.session_id),
        ("org-id", "Organization", auth.org_id),
        ("org-slug", "Org slug", auth.org_slug),
        ("org-role", "Org role", auth.org_role),
        ("session-status", "Session status", auth.session_status),
        ("issued-at", "Token issued", _when(auth.issued_at, now)),
        ("expires-at", "Token expires", _when(auth.expires_at, now)),
    ]
    items = "".join(
        f'<dt>{label}</dt><dd id="{ident}">{e(value or "—")}</dd>' for ident, label, value in rows
    )
    return f"<dl>{items}</dl>"


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
        ("/api/:path*", "API: 401/403 JSON instead of redirects; x-user-id header when signed in"),
        ("everything else", "sign-in required: browsers are sent to /sign-in and back"),
    ]
    body = "".join(f"<tr><td><code>{e(p)}</code></td><td>{e(d)}</td></tr>" for p, d in rows)
    return f"<table><tr><th>paths</th><th>rule</th></tr>{body}</table>"


# --- the app ----------------------------------------------------------------------------------


def create_app(*, dev_issuer: DevIssuer | None = None) -> FastAPI:
    """Build the example app for the current environment (see the module docstring).

    Args:
        dev_issuer: the development issuer to use in development mode (default: a new one,
            with a key generated now). Ignored when Clerk keys are configured.

    Raises:
        ConfigurationError: a ``CLERK_*`` variable is malformed.
    """
    real = any(os.environ.get(name) for name in KEY_VARIABLES)
    issuer = None if real else (dev_issuer or DevIssuer())
    app = FastAPI(title="clerk-asgi example")
    # Built now, at start-up: a bad CLERK_* value stops the server here with the library's own
    # message (Starlette would build the middleware on the first ASGI call, the lifespan,
    # where uvicorn reports a failure as "lifespan unsupported" and carries on).
    clerk = ClerkConfig(
        rules=RULES,
        sign_in_url=SIGN_IN_URL,
        # authorized_parties is left to CLERK_AUTHORIZED_PARTIES (the middleware reads it when
        # this is None). Set it in production, e.g. "https://app.example.com". The development
        # issuer puts the page's origin in azp, but the app cannot know the port uvicorn binds,
        # so it does not guess a list: without one, azp is not checked, and cookie-carried
        # POSTs (sign-out) are still refused when their Origin is not this server's own.
        authorized_parties=None,
        # Dev mode: the issuer's public key (networkless) and its fixed iss. Clerk mode: nothing
        # here, so the config takes CLERK_PUBLISHABLE_KEY & co. from the environment.
        **(issuer.middleware_options() if issuer else {}),
    )
    app.add_middleware(ClerkMiddleware, config=clerk)
    site = Site(
        dev=issuer,
        publishable_key=os.environ.get("CLERK_PUBLISHABLE_KEY") or None,
        frontend_api=clerk.frontend_api,
    )
    if issuer:
        logger.warning(
            "Development issuer active (not Clerk): anyone who can reach this server can sign "
            "in as a demo user. Set CLERK_PUBLISHABLE_KEY to use your Clerk instance."
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
            "<p class='muted'>Tokens come from the development issuer: an RSA key generated when "
            "the server started, verified by the middleware like Clerk's. Set "
            "<code>CLERK_PUBLISHABLE_KEY</code> to use your Clerk instance instead.</p>"
            if site.dev
            else "<p class='muted'>Tokens come from your Clerk instance.</p>"
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
        now = datetime.now(UTC).timestamp()
        content = f"""<h1>Dashboard</h1>
<p class="muted">Only signed-in users get here; everyone else is sent to sign in first.</p>
<div class="card"><h2>Your session</h2>
{_session_details(auth, now)}
<form class="inline" method="post" action="/sign-out"><button type="submit">Sign out</button>
</form></div>
<div class="card"><h2>Call the API</h2>
<p class="muted">A <code>fetch("/api/me")</code> from this page, authenticated by the same
cookie; the middleware adds <code>x-user-id</code>.</p>
<button class="secondary" id="call-api" type="button">Call /api/me</button>
<pre id="api-result" aria-live="polite"></pre></div>"""
        return site.page("Dashboard", content, auth, script=API_ME_SCRIPT)

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

    if issuer is not None:
        _add_dev_sign_in(app, site, issuer)
    else:
        _add_clerk_sign_in(app, site)
    return app


def _add_dev_sign_in(app: FastAPI, site: Site, issuer: DevIssuer) -> None:
    """``/sign-in`` (pick a demo user), ``/sign-up`` (same thing) and ``/sign-out``."""

    def sign_in_page(auth: Auth, target: str, *, status: int = 200, error: str = "") -> Response:
        cards = "".join(
            f"""<form class="card" method="post" action="/sign-in">
<input type="hidden" name="redirect_url" value="{e(target)}">
<h2>{e(user.name)}</h2>
<p><code>{e(user.user_id)}</code><br><code>{e(user.org_role)}</code> in
<code>{e(user.org_slug)}</code></p>
<p class="muted">{e(user.description)}</p>
<button type="submit" name="user" value="{e(user.key)}">Sign in as {e(user.name)}</button>
</form>"""
            for user in DEMO_USERS
        )
        current = (
            f"<p>You are signed in as <code>{e(auth.user_id or '')}</code>; choosing a user "
            "starts a new session.</p>"
            if auth.is_signed_in
            else ""
        )
        notice = f'<div class="card notice"><p>{e(error)}</p></div>' if error else ""
        content = f"""<h1>Sign in</h1>
{notice}<p class="muted">Pick a demo user. The development issuer signs a session token for
them (valid {issuer.lifetime // 60} minutes) and stores it in the <code>__session</code>
cookie, where Clerk keeps its own. Afterwards you return to <code>{e(target)}</code>.</p>
{current}<div class="users">{cards}</div>"""
        return site.page("Sign in", content, auth, status=status)

    @app.get("/sign-in", response_class=HTMLResponse)
    async def sign_in(request: Request, auth: CurrentAuth, redirect_url: str = "/") -> Response:
        return sign_in_page(auth, same_origin_target(redirect_url, _origin(request)))

    @app.post("/sign-in")
    async def sign_in_as(request: Request, auth: CurrentAuth) -> Response:
        origin = _origin(request)
        body = await request.body()
        target = same_origin_target(_form_value(body, "redirect_url"), origin)
        if not _same_origin_post(request):
            return sign_in_page(auth, target, status=403, error="Sign in from this site's page.")
        user = issuer.user(_form_value(body, "user"))
        if user is None:
            return sign_in_page(auth, target, status=400, error="Pick one of the demo users.")
        response = RedirectResponse(target, status_code=303)
        response.set_cookie(
            SESSION_COOKIE,
            issuer.session_token(user, origin=origin),
            max_age=issuer.lifetime,
            path="/",
            samesite="lax",
            httponly=True,  # no clerk-js needs to read it in development mode
            secure=request.url.scheme == "https",
        )
        return response

    @app.get("/sign-up")
    async def sign_up(request: Request) -> Response:
        query = request.url.query
        return RedirectResponse(SIGN_IN_URL + ("?" + query if query else ""), status_code=307)

    # /sign-out matches no rule, so it requires a signed-in session, and the middleware refuses
    # it when the cookie comes with a foreign Origin (no cross-site sign-out).
    @app.post("/sign-out")
    async def sign_out() -> Response:
        response = RedirectResponse("/", status_code=303)
        response.delete_cookie(SESSION_COOKIE, path="/", samesite="lax", httponly=True)
        return response


def _add_clerk_sign_in(app: FastAPI, site: Site) -> None:
    """``/sign-in`` and ``/sign-up`` mount Clerk's components; ``/sign-out`` ends the session."""

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
        return site.page(title, content, auth, clerk_step=MOUNT % (mount, options))

    @app.get("/sign-in", response_class=HTMLResponse)
    async def sign_in(request: Request, auth: CurrentAuth, redirect_url: str = "/") -> Response:
        options = 'signUpUrl: "/sign-up"'
        return mounted(auth, request, "Sign in", "mountSignIn", options, redirect_url)

    @app.get("/sign-up", response_class=HTMLResponse)
    async def sign_up(request: Request, auth: CurrentAuth, redirect_url: str = "/") -> Response:
        options = 'signInUrl: "/sign-in"'
        return mounted(auth, request, "Sign up", "mountSignUp", options, redirect_url)

    @app.post("/sign-out", response_class=HTMLResponse)
    async def sign_out(auth: CurrentAuth) -> Response:
        # Clerk's session lives on its Frontend API: clerk-js ends it, then returns home.
        content = '<h1>Signing out…</h1><p class="muted">Ending your Clerk session.</p>'
        response = site.page(
            "Signing out", content, auth, clerk_step='await clerk.signOut({ redirectUrl: "/" });'
        )
        response.delete_cookie(SESSION_COOKIE, path="/", samesite="lax")
        return response


app = create_app()
