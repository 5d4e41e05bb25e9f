"""``--instructions``: machine instructions per request, counted by valgrind's callgrind.

Time on this shared machine moves by ±10 % from run to run; instruction counts do not: the
same code, inputs and interpreter execute the same instructions, whatever else the machine is
doing. This mode counts them for every raw-ASGI variant and floor of ``micro.py``, so that two
revisions of our code can be compared without noise. It does not replace the timed targets:
instructions leave out cache misses, which is exactly where a real app's working set slows the
RSA call and the parser down (see README.md).

Each variant runs in two processes under ``valgrind --tool=callgrind`` (with a fixed
``PYTHONHASHSEED``), both building the variant, checking it, warming it up and preparing a batch
of ``n`` requests, then freezing the garbage collector's view of that heap (so that whether a
full collection of it lands inside the batch cannot move the count); only the second runs the
batch. The difference, divided by ``n``, is the count per request; repeated runs, and runs
with a different warm-up, agree within half a percent.
"""

from __future__ import annotations

import asyncio
import gc
import os
import re
import shutil
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import micro
import tokens
from common import BENCH_DIR, guard_network, log, table

#: Requests per measured batch, and tokens the pool must hold for the token-consuming ones.
REQUESTS = 1000
WARM_UP = 20
POOL = REQUESTS + WARM_UP + 64
INSTALL_HINT = "valgrind not found: apt-get update -qq && apt-get install -y -qq valgrind"
_COLLECTED = re.compile(rb"Collected\s*:\s*([\d,]+)")


def valgrind_path() -> str | None:
    return shutil.which("valgrind")


def baselines() -> dict[str, str | None]:
    """The raw-ASGI variants and the floors (httpx variants would count httpx itself), each
    with the variant its overhead is counted against."""
    return {v.name: v.baseline for v in micro.catalogue() if v.mode != "httpx"}


async def _child(name: str, requests: int, run: bool) -> None:
    header, pool = tokens.load(POOL)
    bench = micro.build(header, pool, only=name)
    try:
        (variant,) = bench.variants
        assert variant.check is not None
        await variant.check()
        await variant.prepare(int(os.environ.get("BENCH_WARM_UP", WARM_UP)))()
        batch = variant.prepare(requests)
        # Whatever the process built so far is never collected again: a full collection of that
        # heap landing inside the batch or not would move the count by thousands per request.
        gc.collect()
        gc.freeze()
        if run:
            await batch()
    finally:
        for client in bench.clients:
            await client.aclose()
        bench.jwks_server.close()


def _count(name: str, requests: int, run: bool) -> int:
    valgrind = valgrind_path()
    assert valgrind is not None
    command = [
        valgrind,
        "--tool=callgrind",
        "--callgrind-out-file=/dev/null",
        sys.executable,
        str(Path(__file__).resolve()),
        name,
        str(requests),
        "run" if run else "prepare",
    ]
    env = {**os.environ, "PYTHONHASHSEED": "0"}  # same dict and set layouts in both runs
    result = subprocess.run(command, capture_output=True, check=False, cwd=BENCH_DIR, env=env)  # noqa: S603 - our own script under valgrind
    found = _COLLECTED.search(result.stderr)
    if result.returncode != 0 or found is None:
        sys.stderr.write(result.stderr.decode(errors="replace")[-2000:])
        raise SystemExit(f"callgrind run of {name!r} failed (exit {result.returncode})")
    return int(found.group(1).replace(b",", b""))


def _per_request(name: str, requests: int) -> float:
    base = _count(name, requests, run=False)
    total = _count(name, requests, run=True)
    per = (total - base) / requests
    log(f"  {name:<18} {per:>12,.0f} instructions per request")
    return per


def run(requests: int = REQUESTS) -> dict[str, Any]:
    tokens.load(POOL)  # mint (in parallel, natively) before anything runs under valgrind
    against = baselines()
    wanted = list(against)
    log(f"callgrind: {len(wanted)} variants x 2 runs, {requests} requests each")
    with ThreadPoolExecutor(max_workers=2) as pool:
        counts = dict(
            zip(wanted, pool.map(lambda n: _per_request(n, requests), wanted), strict=True)
        )
    verify = counts["rsa-verify"]
    rows: dict[str, dict[str, Any]] = {}
    for name, per in counts.items():
        row: dict[str, Any] = {"instructions": round(per)}
        base = against[name]
        if base is not None:
            overhead = per - counts[base]
            row.update(overhead=round(overhead), x_verify=round(overhead / verify, 4))
        elif name in ("rsa-verify", "jwt.decode"):
            row["x_verify"] = round(per / verify, 4)
        rows[name] = row
    return {"requests": requests, "rsa_verify_instructions": round(verify), "variants": rows}


def render(result: dict[str, Any], *, markdown: bool) -> str:
    rows = [
        [
            name,
            f"{r['instructions']:,}",
            f"{r['overhead']:,}" if "overhead" in r else "",
            f"{r['x_verify']:.3f}" if "x_verify" in r else "",
        ]
        for name, r in result["variants"].items()
    ]
    headers = ["variant", "instructions/req", "overhead", "x raw verify"]
    return table(headers, rows, markdown=markdown)


if __name__ == "__main__":  # one callgrind child: NAME REQUESTS run|prepare
    guard_network()
    asyncio.run(_child(sys.argv[1], int(sys.argv[2]), sys.argv[3] == "run"))
