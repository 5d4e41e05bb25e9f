"""The documentation's code runs, so it cannot rot.

How a block is marked as a complete program: an HTML comment on the line right before its fence,

    <!-- test: NAME -->
    ```python
    ...
    ```

(invisible on GitHub and in the mkdocs site). NAME picks the check below that runs the block and
asserts what the page says about it. Several blocks may share a NAME: README.md and
docs/index.md hold the same quickstart. Two kinds of check:

* ``EXEC_CHECKS``: the block is executed in a fresh namespace, with ``CLERK_JWT_KEY`` set to the
  public key of a ``MockClerk`` and no other ``CLERK_*`` variable, as a reader's shell would
  provide; the check then drives what it defined (its module-level ``app``, or the tokens it
  minted) through ``httpx.ASGITransport`` with MockClerk tokens and asserts the exact statuses
  and bodies the page promises.
* ``MODULE_CHECKS``: the block is itself a pytest module (docs/testing.md); it is written to a
  file and run with pytest in a subprocess, and every test in it must pass. Several blocks
  sharing a NAME, each with a ``title="path"`` on its fence, are the files of one small project
  (``myapp.py``, ``tests/conftest.py``, ...), written at those paths and run together.

Every NAME must have a check and every check must be used. Unmarked ``python`` blocks are
fragments: they must still compile, and any block that builds an app must be marked. The
reference pages are checked against the code: every reason code is in the table of
docs/responses.md with its message, every ``ClerkConfig`` keyword is in the table of
docs/configuration.md with its environment variable and default, the attribute tables of
``ClerkConfig``, ``Refusal``, ``MockClerk`` and ``FakeClerk`` name real attributes, and
``FakeClerk``'s arguments are documented with their defaults.
"""

from __future__ import annotations

import inspect
import json
import os
import re
import subprocess
import sys
import textwrap
from collections.abc import Awaitable, Callable
from dataclasses import MISSING, dataclass, fields
from pathlib import Path
from typing import Any
from urllib.parse import quote

import httpx
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from clerk_asgi import ClerkConfig, ClerkMiddleware, ConfigurationError, Refusal, Rule, get_auth
from clerk_asgi import _reasons as reasons
from clerk_asgi._config import ENV_VARS
from clerk_asgi._reasons import message_for
from clerk_asgi.testing import FakeClerk, MockClerk

from .test_webhooks_dependency import WEBHOOK_SECRET, check_webhooks_app

ROOT = Path(__file__).resolve().parent.parent
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
ORIGIN = "https://app.example.com"

_FENCE = re.compile(r"^(?P<indent> *)(?P<fence>`{3,}|~{3,})(?P<info>.*)$")
_MARKER = re.compile(r"<!--\s*test:\s*(?P<name>[\w-]+)\s*-->")
_TITLE = re.compile(r'title="(?P<title>[^"]+)"')


@dataclass(frozen=True)
class Block:
    """One fenced code block of a Markdown page."""

    page: Path
    line: int  # line number of the block's first code line, 1-based
    language: str
    code: str
    marker: str | None
    title: str | None = None  # the fence's title="...", a file name in a multi-file check

    def __str__(self) -> str:
        return f"{self.page.relative_to(ROOT)}:{self.line}"


def read_blocks(page: Path) -> list[Block]:
    lines = page.read_text(encoding="utf-8").splitlines()
    blocks: list[Block] = []
    i = 0
    while i < len(lines):
        opening = _FENCE.match(lines[i])
        if opening is None:
            i += 1
            continue
        fence, indent = opening["fence"], len(opening["indent"])
        end = i + 1
        while end < len(lines) and not (
            lines[end].strip().startswith(fence) and not lines[end].strip().strip(fence[0])
        ):
            end += 1
        marker = _MARKER.fullmatch(lines[i - 1].strip()) if i else None
        info = opening["info"].strip()
        title = _TITLE.search(info)
        blocks.append(
            Block(
                page=page,
                line=i + 2,
                language=info.split()[0].lower() if info else "",
                code=textwrap.dedent("\n".join(x[indent:] for x in lines[i + 1 : end])) + "\n",
                marker=marker["name"] if marker else None,
                title=title["title"] if title else None,
            )
        )
        i = end + 1
    return blocks


BLOCKS = [block for page in PAGES for block in read_blocks(page)]
PYTHON = [block for block in BLOCKS if block.language in ("python", "py")]
MARKED = [block for block in PYTHON if block.marker is not None]


def run_block(block: Block) -> dict[str, Any]:
    """Execute ``block`` as a module; its line numbers in tracebacks are the page's."""
    source = "\n" * (block.line - 1) + block.code
    namespace: dict[str, Any] = {"__name__": "docs_example"}
    # S102: executing our own documentation is the point of this test.
    exec(compile(source, str(block.page), "exec"), namespace)  # noqa: S102
    return namespace


def client_for(app: Any) -> httpx.AsyncClient:
    return httpx.AsyncClient(transport=httpx.ASGITransport(app), base_url=ORIGIN)


NAVIGATION = {"accept": "text/html", "sec-fetch-dest": "document"}
FETCH = {"accept": "application/json", "sec-fetch-dest": "empty"}


def sign_in_location(path: str) -> str:
    return "/sign-in?redirect_url=" + quote(ORIGIN + path, safe="")


def assert_refused(r: httpx.Response, status: int, reason: str) -> None:
    assert r.status_code == status, r.text
    assert r.headers["x-clerk-auth-reason"] == reason
    assert r.headers["cache-control"] == "no-store"
    if status in (401, 403, 503):
        assert r.json() == {
            "error": {401: "unauthorized", 403: "forbidden", 503: "service_unavailable"}[status],
            "reason": reason,
            "message": message_for(reason),
        }


def assert_app_ran(r: httpx.Response) -> None:
    """The middleware let the request through (404: the example has no handler there)."""
    assert "x-clerk-auth-reason" not in r.headers, r.headers
    assert r.status_code in (200, 404), r.text


# ----------------------------------------------------------------------------------------------
# App checks: each gets the block's namespace and the MockClerk whose key is in CLERK_JWT_KEY.

ExecCheck = Callable[[dict[str, Any], MockClerk], Awaitable[None]]


async def check_seed_rules(c: httpx.AsyncClient, clerk: MockClerk) -> None:
    """The route table of the quickstart (and of the seed's Next.js middleware)."""
    member = clerk.auth_headers(user_id="user_m", org_id="org_1", org_role="org:member")
    admin = clerk.auth_headers(user_id="user_a", org_id="org_1", org_role="org:admin")

    # Public: the app runs, signed out or not; the sign-in pages are public.
    for path in ("/", "/sign-in", "/sign-in/factor-one", "/sign-up", "/api/public/ping"):
        assert_app_ran(await c.get(path, headers=NAVIGATION))
    assert_app_ran(await c.post("/api/webhooks/clerk"))

    # api: 401 JSON signed out (even for a page load), the handler with x-user-id signed in.
    r = await c.get("/api/me", headers=NAVIGATION)
    assert_refused(r, 401, "session-token-missing")
    assert r.headers["www-authenticate"] == 'Bearer realm="clerk"'
    r = await c.get("/api/me", headers={**FETCH, **member})
    assert r.status_code == 200
    assert r.json() == {"user_id": "user_m"}
    assert r.headers["x-user-id"] == "user_m"
    r = await c.get("/api/me", headers=clerk.auth_headers(expires_in=-60))
    assert_refused(r, 401, "token-expired")

    # protect with role: sign-in for signed-out page loads, /unauthorized for members.
    r = await c.get("/admin", headers=NAVIGATION)
    assert_refused(r, 307, "session-token-missing")
    assert r.headers["location"] == "/sign-in?redirect_url=https%3A%2F%2Fapp.example.com%2Fadmin"
    assert_refused(await c.get("/admin", headers=FETCH), 401, "session-token-missing")
    r = await c.get("/admin", headers={**NAVIGATION, **member})
    assert_refused(r, 307, "authorization-failed")
    assert r.headers["location"] == "/unauthorized"
    r = await c.get("/admin", headers={**FETCH, **member})
    assert_refused(r, 307, "authorization-failed")
    assert r.headers["location"] == "/unauthorized"
    assert_app_ran(await c.get("/admin/users", headers={**NAVIGATION, **admin}))

    # Unmatched paths are protected.
    r = await c.get("/dashboard", headers=NAVIGATION)
    assert_refused(r, 307, "session-token-missing")
    assert r.headers["location"] == sign_in_location("/dashboard")
    assert_refused(await c.get("/dashboard", headers=FETCH), 401, "session-token-missing")
    assert_app_ran(await c.get("/dashboard", headers={**NAVIGATION, **member}))


async def check_segment_safe_patterns(c: httpx.AsyncClient, clerk: MockClerk) -> None:
    """The quickstart's ':path*' patterns: the bases are covered, the siblings are not public."""
    member = clerk.auth_headers(user_id="user_m", org_id="org_1", org_role="org:member")
    for path in ("/api/public", "/api/webhooks", "/sign-up/verify"):
        assert_app_ran(await c.get(path, headers=NAVIGATION))
    # Siblings of public prefixes fall to the api rule (401 JSON) or to default (sign-in).
    for path in ("/api/publicity", "/api/webhooksecret", "/api/public-keys"):
        assert_refused(await c.get(path, headers=NAVIGATION), 401, "session-token-missing")
    r = await c.get("/sign-inx", headers=NAVIGATION)
    assert_refused(r, 307, "session-token-missing")
    assert r.headers["location"] == sign_in_location("/sign-inx")
    # "/api/:path*" covers "/api" itself; "/admin/:path*" covers "/admin/users".
    assert_refused(await c.get("/api", headers=FETCH), 401, "session-token-missing")
    r = await c.get("/admin/users", headers={**NAVIGATION, **member})
    assert_refused(r, 307, "authorization-failed")
    assert r.headers["location"] == "/unauthorized"


async def check_quickstart(ns: dict[str, Any], clerk: MockClerk) -> None:
    """README and docs/index.md: the table under the quickstart, and its config is eager."""
    assert isinstance(ns["clerk"], ClerkConfig)
    async with client_for(ns["app"]) as c:
        await check_seed_rules(c, clerk)
        await check_segment_safe_patterns(c, clerk)
        r = await c.get("/api/billing", headers=clerk.auth_headers(org_id="org_1"))
        assert_refused(r, 403, "authorization-failed")
        r = await c.get(
            "/api/billing",
            headers=clerk.auth_headers(org_id="org_1", org_permissions=["org:billing:manage"]),
        )
        assert r.status_code == 200
        assert r.json() == {"org_id": "org_1"}
        assert_refused(await c.get("/api/billing"), 401, "session-token-missing")


async def check_nextjs(ns: dict[str, Any], clerk: MockClerk) -> None:
    """docs/nextjs.md: the Python twin of the middleware.ts behaves as described."""
    async with client_for(ns["app"]) as c:
        await check_seed_rules(c, clerk)
        await check_segment_safe_patterns(c, clerk)
        reader = clerk.auth_headers(org_id="org_1", org_permissions=["org:invoices:read"])
        r = await c.get("/api/invoices", headers=reader)
        assert r.status_code == 200
        assert r.json() == {"org_id": "org_1"}
        r = await c.get("/api/invoices", headers=clerk.auth_headers(org_id="org_1"))
        assert_refused(r, 403, "authorization-failed")


async def check_rules(ns: dict[str, Any], clerk: MockClerk) -> None:
    """docs/rules.md: ':path*' keeps /api/publicity protected; "/admin" covers /admin only."""
    member = clerk.auth_headers(user_id="user_m", org_id="org_1", org_role="org:member")
    async with client_for(ns["app"]) as c:
        r = await c.get("/api/public/ping")
        assert r.status_code == 200
        assert r.json() == {"pong": True}
        assert_app_ran(await c.get("/api/public"))
        assert_refused(await c.get("/api/publicity"), 401, "session-token-missing")
        r = await c.get("/api/publicity", headers=clerk.auth_headers(user_id="user_1"))
        assert r.json() == {"user_id": "user_1"}
        assert_app_ran(await c.get("/sign-in"))  # the sign-in path is always public
        assert_refused(await c.get("/api"), 401, "session-token-missing")
        # Rule.protect("/admin", role=...) protects /admin only ...
        assert_refused(await c.get("/admin", headers=member), 403, "authorization-failed")
        # ... /admin/users falls to default: any signed-in user, no role needed.
        r = await c.get("/admin/users", headers=member)
        assert r.status_code == 200
        assert r.json() == {"org_role": "org:member"}
        r = await c.get("/admin/users", headers=NAVIGATION)
        assert_refused(r, 307, "session-token-missing")


async def check_auth_handler(ns: dict[str, Any], clerk: MockClerk) -> None:
    """docs/auth.md: an exception handler for AuthError writes require_auth's refusals."""
    async with client_for(ns["app"]) as c:
        r = await c.get("/reports/export")
        assert r.status_code == 401
        assert r.json() == {"code": "session-token-missing", "detail": "Sign in to continue."}
        assert r.headers["cache-control"] == "no-store"
        r = await c.get("/reports/export", headers=clerk.auth_headers())
        assert r.status_code == 403
        assert r.json()["code"] == "authorization-failed"
        r = await c.get("/reports/export", headers=clerk.auth_headers(features="u:export"))
        assert r.json() == {"user_id": "user_test"}


async def check_starlette_user(ns: dict[str, Any], clerk: MockClerk) -> None:
    """docs/auth.md: request.user, request.auth and Starlette's @requires behind the middleware."""
    biller = clerk.auth_headers(
        user_id="user_b", org_id="org_1", org_permissions=["org:billing:manage"]
    )
    async with client_for(ns["app"]) as c:
        assert (await c.get("/")).json() == {"user": None}
        r = await c.get("/", headers=clerk.auth_headers(user_id="user_1"))
        assert r.json() == {"user": "user_1"}
        r = await c.get("/me")
        assert (r.status_code, r.text) == (403, "Forbidden")  # Starlette's own, not our JSON
        r = await c.get("/me", headers=biller)
        assert r.json() == {"user_id": "user_b", "scopes": ["authenticated", "org:billing:manage"]}
        assert (await c.get("/billing", headers=clerk.auth_headers())).status_code == 403
        assert (await c.get("/billing", headers=biller)).json() == {"org_id": "org_1"}


async def check_on_refusal(ns: dict[str, Any], clerk: MockClerk) -> None:
    """docs/responses.md: the on_refusal example's HTML page, error JSON and default redirect."""
    member = clerk.auth_headers(org_id="org_1", org_role="org:member")
    async with client_for(ns["app"]) as c:
        r = await c.get("/admin", headers={**NAVIGATION, **member})
        assert r.status_code == 403
        assert r.headers["content-type"].startswith("text/html")
        assert r.text == (
            "<h1>Access denied</h1><p>You are signed in but not allowed to access this "
            "resource.</p>"
        )
        assert r.headers["x-clerk-auth-reason"] == "authorization-failed"
        assert r.headers["cache-control"] == "no-store"
        r = await c.get("/admin", headers=NAVIGATION)
        assert_refused(r, 307, "session-token-missing")
        assert r.headers["location"] == sign_in_location("/admin")
        r = await c.get("/api/me", headers=FETCH)
        assert r.status_code == 401
        assert r.json() == {
            "errors": [{"code": "session-token-missing", "detail": "Sign in to continue."}]
        }
        assert r.headers["www-authenticate"] == 'Bearer realm="clerk"'
        assert r.headers["x-clerk-auth-status"] == "signed-out"


async def websocket_handshake(
    app: Any, path: str, headers: dict[str, str], extensions: dict[str, Any] | None = None
) -> list[dict[str, Any]]:
    """Open a WebSocket on ``app`` the way a server would; return what the app sent."""
    scope = {
        "type": "websocket",
        "asgi": {"version": "3.0"},
        "scheme": "wss",
        "server": ("app.example.com", 443),
        "client": ("127.0.0.1", 50000),
        "root_path": "",
        "path": path,
        "raw_path": path.encode(),
        "query_string": b"",
        "headers": [(b"host", b"app.example.com")]
        + [(k.lower().encode(), v.encode()) for k, v in headers.items()],
        "subprotocols": [],
        "extensions": extensions or {},
    }
    incoming = [{"type": "websocket.connect"}]
    sent: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        return incoming.pop(0) if incoming else {"type": "websocket.disconnect", "code": 1000}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    await app(scope, receive, send)
    return sent


async def check_dependencies(ns: dict[str, Any], clerk: MockClerk) -> None:
    """docs/auth.md: the table under the complete example."""
    app = ns["app"]
    admin = {"user_id": "user_a", "org_id": "org_1", "org_role": "org:admin"}
    async with client_for(app) as c:
        r = await c.get("/")
        assert r.json() == {"signed_in": False, "reason": "session-token-missing"}
        r = await c.get("/", headers=clerk.auth_headers())
        assert r.json() == {"signed_in": True, "reason": None}

        assert_refused(await c.get("/api/profile"), 401, "session-token-missing")
        r = await c.get("/api/profile", headers=clerk.auth_headers(**admin))
        assert r.json() == {"user_id": "user_a", "org_role": "org:admin"}

        member = clerk.auth_headers(org_id="org_1", org_role="org:member", fva=(5, 5))
        r = await c.delete("/api/projects/p1", headers=member)
        assert_refused(r, 403, "authorization-failed")
        stale = clerk.auth_headers(**admin, fva=(30, 30))
        assert_refused(
            await c.delete("/api/projects/p1", headers=stale), 403, "reverification-error"
        )
        r = await c.delete("/api/projects/p1", headers=clerk.auth_headers(**admin, fva=(5, 5)))
        assert r.status_code == 200
        assert r.json() == {"deleted": "p1", "by": "user_a"}

        r = await c.get("/api/reports", headers=clerk.auth_headers(features="u:export"))
        assert r.json() == {"can_export": True}
        r = await c.get("/api/reports", headers=clerk.auth_headers())
        assert r.json() == {"can_export": False}

    sent = await websocket_handshake(app, "/api/live", clerk.auth_headers(user_id="user_ws"))
    assert [m["type"] for m in sent] == ["websocket.accept", "websocket.send", "websocket.close"]
    assert json.loads(sent[1]["text"]) == {"user_id": "user_ws"}
    sent = await websocket_handshake(app, "/api/live", {})
    assert sent == [{"type": "websocket.close", "code": 1008, "reason": "session-token-missing"}]
    sent = await websocket_handshake(app, "/api/live", {}, {"websocket.http.response": {}})
    assert sent[0]["type"] == "websocket.http.response.start"
    assert sent[0]["status"] == 401


async def check_testing_mint(ns: dict[str, Any], clerk: MockClerk) -> None:
    """docs/testing.md: the minted tokens are what the page says, as the middleware sees them."""

    async def echo(request: Request) -> JSONResponse:
        auth = get_auth(request)
        return JSONResponse(
            {
                "user_id": auth.user_id,
                "reason": auth.reason,
                "org_role": auth.org_role,
                "org_slug": auth.org_slug,
                "permissions": sorted(auth.org_permissions),
                "has": auth.has(feature="u:export", plan="o:team", reverification="strict"),
            }
        )

    app = Starlette(routes=[Route("/", echo)])
    mock = MockClerk(key=ns["key"])
    app.add_middleware(ClerkMiddleware, **mock.middleware_options(rules=[Rule.public("/")]))

    async def auth_of(token: str) -> dict[str, Any]:
        async with client_for(app) as c:
            r = await c.get("/", headers={"Authorization": f"Bearer {token}"})
        assert r.status_code == 200
        result: dict[str, Any] = r.json()
        return result

    admin = await auth_of(ns["admin"])
    assert admin == {
        "user_id": "user_1",
        "reason": None,
        "org_role": "org:admin",
        "org_slug": "acme",
        "permissions": ["org:billing:manage", "org:billing:read"],
        "has": True,
    }
    assert (await auth_of(ns["member_v1"]))["org_role"] == "org:member"
    assert (await auth_of(ns["expired"]))["reason"] == "token-expired"
    assert (await auth_of(ns["pending"]))["reason"] == "session-pending"
    assert (await auth_of(ns["template"]))["reason"] == "token-type-mismatch"


EXEC_CHECKS: dict[str, ExecCheck] = {
    "quickstart": check_quickstart,
    "nextjs": check_nextjs,
    "rules": check_rules,
    "dependencies": check_dependencies,
    "auth-handler": check_auth_handler,
    "starlette-user": check_starlette_user,
    "on-refusal": check_on_refusal,
    "testing-mint": check_testing_mint,
    "webhooks-fastapi": check_webhooks_app,
    "webhooks-starlette": check_webhooks_app,
}

#: Blocks that are pytest modules (or, with titles, the files of one project): how many tests
#: each must pass.
MODULE_CHECKS: dict[str, int] = {
    "testing-pytest": 4,
    "testing-conftest": 3,
    "testing-overrides": 3,
    "testing-jwks": 3,
    "testing-clock": 1,
    "testing-fakeclerk": 4,
}


# ----------------------------------------------------------------------------------------------
# The blocks.


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.mark.anyio
@pytest.mark.parametrize("block", [b for b in MARKED if b.marker in EXEC_CHECKS], ids=str)
async def test_app_block_behaves_as_documented(
    block: Block, clerk: MockClerk, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A complete program in the docs runs, with keys from the environment, as documented."""
    assert block.marker is not None
    monkeypatch.setenv("CLERK_JWT_KEY", clerk.key.public_pem)
    monkeypatch.setenv("CLERK_WEBHOOK_SIGNING_SECRET", WEBHOOK_SECRET)
    namespace = run_block(block)
    await EXEC_CHECKS[block.marker](namespace, clerk)


@pytest.mark.parametrize("marker", list(MODULE_CHECKS))
def test_test_module_block_passes(marker: str, tmp_path: Path) -> None:
    """A test module (or project) in the docs passes under pytest, strict markers and warnings
    as errors, with no CLERK_* variable in the environment."""
    blocks = [b for b in MARKED if b.marker == marker]
    assert blocks, f"no block marked {marker}"
    (tmp_path / "pytest.ini").write_text(
        "[pytest]\naddopts = --strict-markers -p no:cacheprovider\nfilterwarnings = error\n"
    )
    if len(blocks) == 1 and blocks[0].title is None:
        files = {f"test_{marker.replace('-', '_')}.py": blocks[0].code}
    else:
        assert all(b.title for b in blocks), f"{marker}: every file of a project needs a title"
        files = {b.title: b.code for b in blocks if b.title}
        assert len(files) == len(blocks), f"{marker}: two blocks with the same title"
    for name, code in files.items():
        path = tmp_path / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(code)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("CLERK_", "PYTEST_", "COV_"))}
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "-q"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    output = result.stdout + result.stderr
    assert result.returncode == 0, output
    assert f"{MODULE_CHECKS[marker]} passed" in output, output


def test_every_marker_has_a_check_and_every_check_a_block() -> None:
    """No marked block goes unchecked, and no check lost its block."""
    markers = {block.marker for block in MARKED}
    assert markers == set(EXEC_CHECKS) | set(MODULE_CHECKS)
    assert not set(EXEC_CHECKS) & set(MODULE_CHECKS)


def test_the_readme_quickstart_is_the_first_block_and_is_tested() -> None:
    """The README opens with the quickstart, and it is a checked block, same as docs/index.md."""
    readme = [b for b in PYTHON if b.page.name == "README.md"]
    index = [b for b in PYTHON if b.page.name == "index.md"]
    assert readme[0].marker == "quickstart"
    assert index[0].marker == "quickstart"
    assert readme[0].code == index[0].code


def test_the_readme_try_it_commands_exist() -> None:
    """The README's two commands are tasks that tasks.py knows."""
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    tasks = (ROOT / "tasks.py").read_text(encoding="utf-8")
    for task in ("example", "test"):
        assert f"python3 tasks.py {task}" in readme
        assert f'task == "{task}"' in tasks


@pytest.mark.parametrize("block", PYTHON, ids=str)
def test_python_blocks_compile(block: Block) -> None:
    """Every Python block is valid Python, fragments included."""
    compile(block.code, str(block), "exec")


@pytest.mark.parametrize("block", [b for b in PYTHON if b.marker is None], ids=str)
def test_unmarked_blocks_are_fragments(block: Block) -> None:
    """A block that builds an app is a complete program, so it must be marked and checked."""
    assert "FastAPI()" not in block.code
    assert "Starlette(" not in block.code


# ----------------------------------------------------------------------------------------------
# Reference tables against the code.


def table_rows(page: str, header: str | None = None) -> dict[str, list[str]]:
    """Markdown table rows of docs/<page>, keyed by their first cell (backticks removed); with
    ``header``, only the rows of the table whose header line starts with it."""
    lines = (ROOT / "docs" / page).read_text(encoding="utf-8").splitlines()
    if header is not None:
        start = next(i for i, line in enumerate(lines) if line.startswith(header))
        end = next((i for i in range(start, len(lines)) if not lines[i].strip()), len(lines))
        lines = lines[start:end]
    rows: dict[str, list[str]] = {}
    for line in lines:
        if line.startswith("| `"):
            cells = [cell.strip() for cell in line.strip().strip("|").split(" | ")]
            rows.setdefault(cells[0].strip("`"), cells)
    return rows


REASON_CODES = sorted(
    value for name, value in vars(reasons).items() if name.isupper() and isinstance(value, str)
)


def test_reason_codes_are_all_read_from_the_module() -> None:
    """The reason-code list this file checks is the real one (guards the introspection)."""
    assert {"session-token-missing", "token-expired", "authorization-failed"} < set(REASON_CODES)


@pytest.mark.parametrize("code", REASON_CODES)
def test_every_reason_code_is_in_the_responses_table(code: str) -> None:
    """docs/responses.md lists every reason code with the exact message clients receive."""
    row = table_rows("responses.md", "| reason | when |").get(code)
    assert row is not None, f"{code} missing from the reason-code table"
    assert row[-1] == message_for(code)


def keyword_parameters(function: Callable[..., Any]) -> list[inspect.Parameter]:
    return [
        p
        for p in inspect.signature(function).parameters.values()
        if p.kind is inspect.Parameter.KEYWORD_ONLY
    ]


KEYWORDS = keyword_parameters(ClerkConfig.__init__)
ENV_OF = dict(ENV_VARS)


def test_the_middleware_takes_the_config_keywords_or_config() -> None:
    """docs/configuration.md: ClerkConfig takes every keyword of ClerkMiddleware except app (and
    config), with the same defaults; giving both config= and a keyword is refused."""
    middleware = {p.name: p.default for p in keyword_parameters(ClerkMiddleware.__init__)}
    assert middleware.pop("config") is None
    assert middleware == {p.name: p.default for p in KEYWORDS}
    config = ClerkConfig(jwt_key=MockClerk().key.public_pem)
    with pytest.raises(ConfigurationError, match="not both"):
        ClerkMiddleware(Starlette(), config=config, sign_in_url="/sign-in")


def test_the_clerk_config_attribute_table_names_real_attributes(clerk: MockClerk) -> None:
    """docs/configuration.md: every attribute the ClerkConfig table lists exists, read-only."""
    page = (ROOT / "docs" / "configuration.md").read_text(encoding="utf-8")
    table = page.split("| attribute | value |", 1)[1].split("\n\n", 1)[0]
    names = [
        name
        for line in table.splitlines()[2:]
        for name in re.findall(r"`(\w+)`", line.split(" | ")[0])
    ]
    assert "frontend_api" in names
    assert "sign_in_url" in names
    config = ClerkConfig(**clerk.middleware_options())
    for name in names:
        getattr(config, name)
        with pytest.raises(AttributeError):
            setattr(config, name, None)


def test_the_refusal_attribute_table_names_real_attributes() -> None:
    """docs/responses.md: the on_refusal table lists the attributes a Refusal has."""
    rows = table_rows("responses.md", "| `Refusal` attribute |")
    refusal = Refusal(401, "session-token-missing")
    for name in ("status", "reason", "message", "auth_status", "location", "retry_after"):
        assert name in rows
        getattr(refusal, name)
    assert "headers" in rows
    assert refusal.headers["cache-control"] == "no-store"
    assert refusal.headers["www-authenticate"] == 'Bearer realm="clerk"'
    assert "response()" in rows
    assert refusal.response().status_code == 401


def test_the_mock_clerk_constructor_is_as_documented() -> None:
    """docs/testing.md: MockClerk's arguments, in order, with the documented defaults."""
    rows = table_rows("testing.md", "| argument | default |")
    documented = list(fields(MockClerk))
    assert [f.name for f in documented] == ["key", "issuer", "origin"]
    for field in documented:
        assert field.name in rows
        if field.default is not MISSING:
            assert rows[field.name][1] == f'`"{field.default}"`'


def test_the_fake_clerk_constructor_is_as_documented() -> None:
    """docs/testing.md: every FakeClerk argument, in order, with the documented defaults."""
    rows = table_rows("testing.md", "| FakeClerk argument | default |")
    parameters = keyword_parameters(FakeClerk.__init__)
    assert [p.name for p in parameters] == list(rows)
    for parameter in parameters:
        value = parameter.default
        if isinstance(value, str):
            assert rows[parameter.name][1] == f'`"{value}"`'
        elif isinstance(value, int | float):
            assert rows[parameter.name][1] == f"`{value:g}`"


def test_the_fake_clerk_table_names_real_attributes(clerk: MockClerk) -> None:
    """docs/testing.md: every property, method, switch and record the FakeClerk table lists
    exists."""
    page = (ROOT / "docs" / "testing.md").read_text(encoding="utf-8")
    table = page.split("| name | what it is |", 1)[1].split("\n\n", 1)[0]
    names = [
        name
        for line in table.splitlines()[2:]
        for name in re.findall(r"`(\w+)", line.split(" | ")[0])
    ]
    assert {"sign_in", "session_token", "handshakes", "payload_error"} <= set(names)
    fake = FakeClerk(key=clerk.key)
    for name in names:
        assert hasattr(fake, name), name


@pytest.mark.anyio
async def test_two_mock_clerks_against_one_app_fail_with_the_documented_reason(
    clerk: MockClerk, monkeypatch: pytest.MonkeyPatch
) -> None:
    """docs/testing.md: an app reads CLERK_JWT_KEY once; a second MockClerk's tokens are then
    refused with token-invalid-signature, however the environment changes afterwards."""

    async def me(request: Request) -> JSONResponse:
        return JSONResponse({"user_id": get_auth(request).user_id})

    monkeypatch.setenv("CLERK_JWT_KEY", clerk.key.public_pem)  # what the first module does
    app = Starlette(routes=[Route("/api/me", me)])
    app.add_middleware(ClerkMiddleware, rules=[Rule.api("/api/:path*")])
    other = MockClerk()
    async with client_for(app) as c:
        assert (await c.get("/api/me", headers=clerk.auth_headers())).status_code == 200
        monkeypatch.setenv("CLERK_JWT_KEY", other.key.public_pem)  # the second module
        r = await c.get("/api/me", headers=other.auth_headers())
    assert_refused(r, 401, "token-invalid-signature")


@pytest.mark.parametrize("parameter", KEYWORDS, ids=lambda p: p.name)
def test_every_config_parameter_is_in_the_configuration_table(
    parameter: inspect.Parameter,
) -> None:
    """docs/configuration.md has a row per keyword, with its env var and numeric default."""
    row = table_rows("configuration.md", "| parameter | env var |").get(parameter.name)
    assert row is not None, f"{parameter.name} missing from the configuration table"
    _, env, default, _meaning = row
    assert env.startswith(f"`{ENV_OF[parameter.name]}`" if parameter.name in ENV_OF else "—")
    value = parameter.default
    if isinstance(value, bool):
        assert default == f"`{value}`"
    elif isinstance(value, int | float):
        assert default == f"`{value:g}`"
    elif isinstance(value, str):
        assert default == f'`"{value}"`'


def test_every_environment_variable_is_documented() -> None:
    """Every CLERK_* variable the middleware reads (clerk_asgi._config.ENV_VARS) is documented."""
    page = (ROOT / "docs" / "configuration.md").read_text(encoding="utf-8")
    for variable in ENV_OF.values():
        assert f"| `{variable}` |" in page


def test_mkdocs_nav_lists_every_page() -> None:
    """Every docs page is reachable from the site navigation."""
    config = (ROOT / "mkdocs.yml").read_text(encoding="utf-8")
    for page in (ROOT / "docs").glob("*.md"):
        assert f": {page.name}\n" in config


def test_test_files_named_by_the_docs_exist() -> None:
    """The security model points at the tests that pin each decision; they must exist (the
    titled files of a documented example project are not ours)."""
    named = {
        name
        for page in PAGES
        for name in re.findall(r'(?<!title=")tests/test_\w+\.py', page.read_text(encoding="utf-8"))
    }
    assert named
    for name in sorted(named):
        assert (ROOT / name).is_file(), f"{name} is named in the docs but does not exist"
