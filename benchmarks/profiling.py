"""``--profile VARIANT``: pyinstrument on one in-process variant, to see what dominates."""

from __future__ import annotations

import asyncio
import time

import micro
import tokens
from common import log
from pyinstrument import Profiler
from pyinstrument.frame import Frame

FLAT_LINES = 40


def variant_names() -> list[str]:
    return [v.name for v in micro.catalogue()]


async def _profile(name: str, seconds: float, header: tokens.Header, pool: list[str]) -> str:
    bench = micro.build(header, pool, only=name)
    if not bench.variants:
        bench.jwks_server.close()
        raise SystemExit(f"unknown variant {name!r}; try --list")
    variant = bench.variants[0]
    try:
        assert variant.check is not None
        log(f"check: {await variant.check()}")
        await variant.prepare(200 if not variant.consumes_tokens else 50)()  # warm-up
        n = 500 if variant.consumes_tokens else 2000
        profiler = Profiler(interval=0.0002, async_mode="disabled")
        done, started = 0, time.perf_counter()
        profiler.start()
        while time.perf_counter() - started < seconds:
            try:
                batch = variant.prepare(n)
            except RuntimeError:  # token pool used up
                break
            await batch()
            done += n
        profiler.stop()
        elapsed = time.perf_counter() - started
    finally:
        for client in bench.clients:
            await client.aclose()
        bench.jwks_server.close()
    heading = (
        f"{name}: {done:,} requests in {elapsed:.1f} s ({elapsed / done * 1e6:.1f} µs each "
        "under the profiler, which inflates call-heavy code)"
    )
    tree = profiler.output_text(unicode=True, time="percent_of_total")
    session = profiler.last_session
    assert session is not None
    root = session.root_frame()
    ours = _our_costs(root) if root is not None else []
    total = sum(t for t, _ in ours)
    lines = [
        f"{t / done * 1e6:8.2f} µs  {t / elapsed:6.1%}  {label}" for t, label in ours[:FLAT_LINES]
    ]
    return (
        f"{heading}\n{tree}\n"
        f"Spent on behalf of clerk_asgi code: {total / done * 1e6:.2f} µs/request under the "
        f"profiler ({total / elapsed:.1%} of the time). Self time by function, every package "
        "(stdlib, builtins and cryptography called from clerk_asgi count as clerk_asgi's):\n"
        + "\n".join(lines)
        + "\n"
    )


_FRAMEWORK = ("/starlette/", "/fastapi/", "/pydantic", "/anyio/", "/httpx/", "/opentelemetry/")


def _owner(frame: Frame, inherited: str) -> str:
    path = frame.file_path or ""
    if "/clerk_asgi/" in path:
        return "ours"
    if any(part in path for part in _FRAMEWORK) or path.endswith(("micro.py", "profiling.py")):
        return "other"
    return inherited  # stdlib, builtins, cryptography, PyJWT: whoever called them


def _our_costs(root: Frame) -> list[tuple[float, str]]:
    """Self time per function of every frame running on behalf of clerk_asgi code."""
    totals: dict[str, float] = {}
    stack = [(root, "other")]
    while stack:
        frame, inherited = stack.pop()
        owner = _owner(frame, inherited)
        # total_self_time already includes the synthetic "[self]" children: skip those.
        if owner == "ours" and not frame.is_synthetic and frame.total_self_time > 0:
            name = f"{frame.class_name}.{frame.function}" if frame.class_name else frame.function
            label = f"{name}  {frame.file_path_short}:{frame.line_no}"
            totals[label] = totals.get(label, 0.0) + frame.total_self_time
        stack.extend((child, owner) for child in frame.children)
    return sorted(((t, label) for label, t in totals.items()), reverse=True)


def run(name: str, *, seconds: float = 4.0) -> str:
    header, pool = tokens.load(micro.FULL.pool_size)
    return asyncio.run(_profile(name, seconds, header, pool))
