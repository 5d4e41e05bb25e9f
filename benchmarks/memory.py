"""``--memory``: push N distinct valid tokens through ClerkMiddleware and watch memory.

The middleware (configured as in the in-process benchmark, publishable key + mocked JWKS)
wraps a minimal ASGI app that answers 200, so every byte that grows belongs to the middleware.
Tokens are streamed from ``benchmarks/tokens.txt`` (minted once, in parallel), each used once,
on the API route; every answer must be 200. At each checkpoint, after ``gc.collect()``: the
current RSS (``/proc/self/statm``), the peak RSS (``getrusage``), Python's allocated block
count, and the verified-token cache's length when the middleware exposes it. With bounded
caches the curves flatten once the token cache is full (4096 entries by default).
"""

from __future__ import annotations

import asyncio
import gc
import os
import resource
import sys
import time
from typing import Any

import httpx
import tokens
from apps import PUBLISHABLE_KEY, RULES
from common import log, table
from micro import BROWSER_HEADERS, _scope

from clerk_asgi import ClerkMiddleware
from clerk_asgi.testing import JWKSTransport

CHECKPOINTS = (1_000, 4_096, 10_000, 25_000, 50_000, 100_000, 150_000, 200_000)
_PAGE = os.sysconf("SC_PAGE_SIZE")
_MiB = 1024 * 1024


def _rss() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * _PAGE


def _peak_rss() -> int:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


async def _ok(scope: Any, receive: Any, send: Any) -> None:
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": b"{}"})


def _cache_len(middleware: ClerkMiddleware) -> int | None:
    """Length of the verified-token cache, if this version keeps it where we look (private)."""
    cache = getattr(getattr(middleware, "verifier", None), "_cache", None)
    return len(cache) if hasattr(cache, "__len__") else None  # type: ignore[arg-type]


async def _push(count: int) -> dict[str, Any]:
    middleware = ClerkMiddleware(
        _ok,
        publishable_key=PUBLISHABLE_KEY,
        authorized_parties=[tokens.ORIGIN],
        rules=RULES,
        http_client=httpx.AsyncClient(
            transport=JWKSTransport(tokens.Header.from_json(_first_line()).key)  # type: ignore[union-attr]
        ),
    )
    template = _scope("/api/data")
    statuses: dict[int, int] = {}

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: Any) -> None:
        if message["type"] == "http.response.start":
            statuses[message["status"]] = statuses.get(message["status"], 0) + 1

    async def one(token: str) -> None:
        scope = template.copy()
        scope["headers"] = [*BROWSER_HEADERS, (b"authorization", b"Bearer " + token.encode())]
        await middleware(scope, receive, send)

    stream = tokens.iter_tokens(count)
    await one(next(stream))  # JWKS fetch, first-call allocations
    gc.collect()
    rss0, peak0, blocks0 = _rss(), _peak_rss(), sys.getallocatedblocks()
    points: list[dict[str, Any]] = []
    marks = [c for c in CHECKPOINTS if c < count] + [count]
    started = time.perf_counter()
    done = 1
    for token in stream:
        await one(token)
        done += 1
        if done == marks[0]:
            marks.pop(0)
            gc.collect()
            points.append(
                {
                    "tokens": done,
                    "rss_growth_mib": round((_rss() - rss0) / _MiB, 2),
                    "peak_rss_growth_mib": round((_peak_rss() - peak0) / _MiB, 2),
                    "allocated_blocks_growth": sys.getallocatedblocks() - blocks0,
                    "token_cache_len": _cache_len(middleware),
                    "seconds": round(time.perf_counter() - started, 1),
                }
            )
            log(f"  {done:>8,} tokens: RSS +{points[-1]['rss_growth_mib']} MiB")
            if not marks:
                break
    if statuses != {200: done}:
        raise RuntimeError(f"expected {done} answers 200, got {statuses}")
    return {
        "tokens": done,
        "rss_at_start_mib": round(rss0 / _MiB, 1),
        "points": points,
        "all_200": True,
    }


def _first_line() -> str:
    with tokens.STORE.open() as f:
        return f.readline()


def run(count: int) -> dict[str, Any]:
    tokens.ensure(count)  # mints (forks) before the event loop starts
    return asyncio.run(_push(count))


def render(result: dict[str, Any], *, markdown: bool) -> str:
    rows = [
        [
            f"{p['tokens']:,}",
            f"{p['rss_growth_mib']:.1f}",
            f"{p['peak_rss_growth_mib']:.1f}",
            f"{p['allocated_blocks_growth']:,}",
            "n/a" if p["token_cache_len"] is None else f"{p['token_cache_len']:,}",
            f"{p['seconds']:.1f}",
        ]
        for p in result["points"]
    ]
    headers = ["tokens", "RSS +MiB", "peak RSS +MiB", "+alloc blocks", "token cache", "s"]
    return (
        f"{result['tokens']:,} distinct valid tokens, each once, all answered 200; "
        f"RSS at start {result['rss_at_start_mib']} MiB.\n\n"
        + table(headers, rows, markdown=markdown)
    )
