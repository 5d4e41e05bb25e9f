"""Two processes, one Redis: a user's budget is shared by every worker.

Each worker is a separate Python process running ClerkMiddleware (Redis rate-limit storage)
over an ``httpx.ASGITransport`` client. Both start, say they are ready, and fire their requests
when told, at the same moment: 16 requests of one user in all, of which exactly 10 pass, while
another user's requests all pass. Redis is then stopped and both fire again: nothing breaks
(``on_error="allow"``). No sleeping for the window: the requests are sent well within it, and
the count is read from the answers.
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

from clerk_asgi.testing import MockClerk

from ._redis_helpers import RedisServer

WORKER = textwrap.dedent(
    """
    import asyncio, json, sys

    import httpx
    from starlette.applications import Starlette
    from starlette.responses import PlainTextResponse
    from starlette.routing import Route

    from clerk_asgi import ClerkMiddleware, Rule

    settings = json.loads(open(sys.argv[1]).read())
    app = ClerkMiddleware(
        Starlette(routes=[Route("/api/data", lambda request: PlainTextResponse("ok"))]),
        jwt_key=settings["jwt_key"],
        issuer=settings["issuer"],
        authorized_parties=[settings["origin"]],
        rules=[Rule.api("/api/(.*)", rate_limit="10/10s")],
        rate_limit_storage=settings["redis_url"],
    )

    async def phase(client):
        answers = []
        for user, count in (("alice", 8), ("bob", 2)):
            headers = {"authorization": "Bearer " + settings["tokens"][user]}
            for _ in range(count):
                r = await client.get("/api/data", headers=headers)
                answers.append([user, r.status_code, r.headers.get("retry-after")])
        return answers

    async def main():
        transport = httpx.ASGITransport(app)
        async with httpx.AsyncClient(transport=transport, base_url=settings["origin"]) as c:
            print("ready", flush=True)
            for _ in range(2):
                sys.stdin.readline()  # "go"
                print(json.dumps(await phase(c)), flush=True)
        await app.config.rate_limiter.aclose()

    asyncio.run(main())
    """
)


def start_worker(script: Path, settings: Path) -> subprocess.Popen[str]:
    return subprocess.Popen(  # noqa: S603 - this interpreter, our own script
        [sys.executable, str(script), str(settings)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )


def go(workers: list[subprocess.Popen[str]]) -> list[list[Any]]:
    """Tell every worker to fire at once; gather their answers."""
    for worker in workers:
        assert worker.stdin is not None
        worker.stdin.write("go\n")
        worker.stdin.flush()
    answers = []
    for worker in workers:
        assert worker.stdout is not None
        answers.extend(json.loads(worker.stdout.readline()))
    return answers


def test_two_processes_share_one_users_budget_through_redis(
    clerk: MockClerk, redis_server: RedisServer, tmp_path: Path
) -> None:
    """Exactly 10 of alice's 16 requests pass across both processes, the other 6 get 429 with
    Retry-After; bob is unaffected; with Redis stopped, every request passes, none is a 500."""
    script = tmp_path / "worker.py"
    script.write_text(WORKER)
    settings = tmp_path / "settings.json"
    settings.write_text(
        json.dumps(
            {
                "jwt_key": clerk.key.public_pem,
                "issuer": clerk.issuer,
                "origin": clerk.origin,
                "redis_url": redis_server.url,
                "tokens": {
                    "alice": clerk.token(user_id="user_alice", expires_in=3600),
                    "bob": clerk.token(user_id="user_bob", expires_in=3600),
                },
            }
        )
    )
    workers = [start_worker(script, settings) for _ in range(2)]
    try:
        for worker in workers:
            assert worker.stdout is not None
            assert worker.stdout.readline() == "ready\n"
        answers = go(workers)
        alice = [(status, wait) for user, status, wait in answers if user == "alice"]
        assert len(alice) == 16
        assert sorted(status for status, _ in alice) == [200] * 10 + [429] * 6
        for status, wait in alice:
            assert (wait is None) == (status == 200)
            if wait is not None:
                assert 1 <= int(wait) <= 10
        assert [status for user, status, _ in answers if user == "bob"] == [200] * 4

        redis_server.stop()
        answers = go(workers)
        assert [status for _, status, _ in answers] == [200] * 20  # on_error="allow"
        for worker in workers:
            assert worker.wait(timeout=30) == 0
    finally:
        for worker in workers:
            if worker.poll() is None:
                worker.kill()
                worker.wait()
            for pipe in (worker.stdin, worker.stdout):
                if pipe is not None:
                    pipe.close()
