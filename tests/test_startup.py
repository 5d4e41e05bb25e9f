"""The README quickstart, served the way its readers serve it: ``uvicorn app:app``.

docs/configuration.md explains why the quickstart builds its ``ClerkConfig`` at import: a
configuration error must stop the server at start-up. Here the quickstart is extracted from
README.md, written to a temporary directory as ``app.py`` and run by uvicorn in a subprocess:

* with no ``CLERK_*`` variable at all, uvicorn exits non-zero, printing the ConfigurationError;
* with ``CLERK_JWT_KEY`` set, the same file serves (so the exit above is about the keys);
* the keyword form the page warns about (``add_middleware`` with keywords, built lazily) keeps
  serving 500s under uvicorn's default ``--lifespan auto``, and stops with ``--lifespan on``.

Every subprocess is bounded (``TIMEOUT`` seconds) and killed when it outlives its test.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest

from clerk_asgi.testing import MockClerk
from tests.test_docs import ROOT, read_blocks

TIMEOUT = 20.0
NO_KEYS = "ConfigurationError: No Clerk key material"

#: The keyword form: ClerkMiddleware built by Starlette on the first ASGI call, not at import.
LAZY_APP = """\
from fastapi import FastAPI

from clerk_asgi import ClerkMiddleware, Rule

app = FastAPI()
app.add_middleware(ClerkMiddleware, rules=[Rule.public("/")])
"""


def quickstart() -> str:
    blocks = [b for b in read_blocks(ROOT / "README.md") if b.marker == "quickstart"]
    assert len(blocks) == 1, "README.md must hold exactly one quickstart block"
    return blocks[0].code


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def environment(**extra: str) -> dict[str, str]:
    """This process's environment without any CLERK_* variable, plus ``extra``."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("CLERK_")}
    env.update(extra)
    return env


def start(app_dir: Path, port: int, env: dict[str, str], *options: str) -> subprocess.Popen[str]:
    return subprocess.Popen(  # noqa: S603 - this interpreter, fixed arguments, no shell
        [sys.executable, "-m", "uvicorn", "app:app", "--port", str(port), *options],
        cwd=app_dir,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )


def run_to_exit(app_dir: Path, env: dict[str, str], *options: str) -> tuple[int, str]:
    """Run uvicorn until it exits by itself; fail (after killing it) if it is still up."""
    process = start(app_dir, free_port(), env, *options)
    try:
        output, _ = process.communicate(timeout=TIMEOUT)
    except subprocess.TimeoutExpired:
        process.kill()
        output, _ = process.communicate()
        pytest.fail(f"uvicorn was still running after {TIMEOUT:g} s:\n{output}")
    return process.returncode, output


@contextmanager
def serving(
    app_dir: Path, env: dict[str, str], output: list[str] | None = None
) -> Iterator[httpx.Client]:
    """uvicorn serving ``app_dir/app.py``; a client for it. The server is stopped after, and
    what it printed is appended to ``output``."""
    port = free_port()
    process = start(app_dir, port, env)
    try:
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=5) as client:
            deadline = time.monotonic() + TIMEOUT
            while True:
                if process.poll() is not None:
                    printed, _ = process.communicate()
                    pytest.fail(f"uvicorn exited with {process.returncode}:\n{printed}")
                try:
                    client.get("/")
                    break
                except httpx.TransportError:
                    if time.monotonic() > deadline:
                        pytest.fail(f"uvicorn did not serve within {TIMEOUT:g} s")
                    time.sleep(0.1)
            yield client
    finally:
        process.kill()
        printed, _ = process.communicate()
        if output is not None:
            output.append(printed)


@pytest.fixture
def app_dir(tmp_path: Path) -> Path:
    (tmp_path / "app.py").write_text(quickstart(), encoding="utf-8")
    return tmp_path


def test_the_quickstart_exits_at_start_up_without_key_material(app_dir: Path) -> None:
    """No CLERK_* variable: ClerkConfig raises at import, uvicorn exits non-zero with the
    ConfigurationError's message, and never reports that it is serving."""
    code, output = run_to_exit(app_dir, environment())
    assert code != 0, output
    assert NO_KEYS in output, output
    assert "Uvicorn running" not in output, output


def test_the_quickstart_serves_with_a_key(app_dir: Path) -> None:
    """The same file with CLERK_JWT_KEY set starts and enforces its rules."""
    clerk = MockClerk()
    with serving(app_dir, environment(CLERK_JWT_KEY=clerk.key.public_pem)) as client:
        r = client.get("/api/me")
        assert r.status_code == 401
        assert r.headers["x-clerk-auth-reason"] == "session-token-missing"
        r = client.get("/api/me", headers=clerk.auth_headers(user_id="user_1"))
        assert r.json() == {"user_id": "user_1"}


def test_keywords_under_lifespan_auto_serve_500s(tmp_path: Path) -> None:
    """What docs/configuration.md warns about: the lazily built middleware fails during the
    lifespan start-up, uvicorn calls the protocol unsupported, keeps serving, and every
    request answers 500."""
    (tmp_path / "app.py").write_text(LAZY_APP, encoding="utf-8")
    output: list[str] = []
    with serving(tmp_path, environment(), output) as client:
        assert client.get("/").status_code == 500
        assert client.get("/").status_code == 500
    assert "ASGI 'lifespan' protocol appears unsupported" in output[0], output[0]
    assert NO_KEYS in output[0], output[0]


def test_keywords_under_lifespan_on_stop_the_server(tmp_path: Path) -> None:
    """``--lifespan on``: the same error stops uvicorn at start-up (exit status 3)."""
    (tmp_path / "app.py").write_text(LAZY_APP, encoding="utf-8")
    code, output = run_to_exit(tmp_path, environment(), "--lifespan", "on")
    assert code == 3, output
    assert NO_KEYS in output, output
    assert "Application startup failed" in output, output
