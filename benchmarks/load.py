"""End to end: uvicorn serves the benchmark app on 127.0.0.1, wrk loads it over loopback.

Two servers (no auth; clerk-asgi with the repeated token on ``/api/data``) run side by side,
each ``uvicorn --loop uvloop --http httptools``, one worker, no access log. After a one-second
warm-up of each, wrk runs in pairs, A-B then B-A (``duration`` seconds each, 2 threads,
50 connections, the in-process benchmark's browser headers and the same ``Authorization``
header for both), so that drift hits both alike; the
ratio is the median over pairs of requests/s with the middleware over requests/s without.
Any non-2xx answer or socket error fails the run. Only loopback addresses are used.
"""

from __future__ import annotations

import contextlib
import http.client
import os
import re
import shutil
import socket
import statistics
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import tokens
from apps import API_PATH
from common import BENCH_DIR, log, table
from micro import BROWSER_HEADERS

INSTALL_HINT = (
    "wrk is not installed, so the end-to-end figure is skipped. Install it with:\n"
    "    apt-get update -qq && apt-get install -y -qq wrk\n"
    "then run: python3 benchmarks/run.py --e2e"
)
HOST = "127.0.0.1"
THREADS, CONNECTIONS = 2, 50
VARIANTS = ("baseline", "clerk-asgi")
_TICKS = os.sysconf("SC_CLK_TCK")
#: The in-process benchmark's browser headers, but Host (wrk sends its own).
_BROWSER_HEADERS = [(k.decode(), v.decode()) for k, v in BROWSER_HEADERS if k != b"host"]


def wrk_path() -> str | None:
    return shutil.which("wrk")


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((HOST, 0))
        return int(s.getsockname()[1])


def _get(port: int, token: str) -> tuple[int, bytes]:
    conn = http.client.HTTPConnection(HOST, port, timeout=5)
    try:
        conn.request("GET", API_PATH, headers={"Authorization": f"Bearer {token}"})
        response = conn.getresponse()
        return response.status, response.read()
    finally:
        conn.close()


def _cpu_seconds(pid: int) -> float:
    """User + system CPU time of process ``pid`` (``/proc/<pid>/stat``)."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / _TICKS


@dataclass(frozen=True)
class Server:
    variant: str
    port: int
    pid: int


@contextlib.contextmanager
def serve(variant: str, token: str) -> Iterator[Server]:
    """A uvicorn server for ``variant`` on 127.0.0.1, once it has answered 200."""
    port = _free_port()
    command = [
        sys.executable,
        "-m",
        "uvicorn",
        "apps:e2e_app",
        "--factory",
        "--app-dir",
        str(BENCH_DIR),
        "--host",
        HOST,
        "--port",
        str(port),
        "--loop",
        "uvloop",
        "--http",
        "httptools",
        "--no-access-log",
        "--log-level",
        "warning",
    ]
    env = {**os.environ, "BENCH_E2E_VARIANT": variant}
    process = subprocess.Popen(command, env=env)  # noqa: S603 - our interpreter, fixed arguments
    try:
        deadline = time.monotonic() + 20
        while True:
            if process.poll() is not None:
                raise RuntimeError(f"uvicorn ({variant}) exited with {process.returncode}")
            try:
                status, body = _get(port, token)
                break
            except OSError:
                if time.monotonic() > deadline:
                    raise RuntimeError(f"uvicorn ({variant}) did not start") from None
                time.sleep(0.1)
        if status != 200:
            raise RuntimeError(f"uvicorn ({variant}) answered {status}: {body[:200]!r}")
        yield Server(variant, port, process.pid)
    finally:
        process.terminate()
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


_UNITS = {"us": 1e-3, "ms": 1.0, "s": 1e3}


def _ms(value: str, unit: str) -> float:
    return float(value) * _UNITS[unit]


def wrk(server: Server, token: str, duration: float) -> dict[str, Any]:
    """One wrk run against ``/api/data``, with the server's CPU time; raises on any error."""
    executable = wrk_path()
    assert executable is not None
    command = [
        executable,
        f"-t{THREADS}",
        f"-c{CONNECTIONS}",
        f"-d{max(1, round(duration))}s",
        "--latency",
        *(arg for name, value in _BROWSER_HEADERS for arg in ("-H", f"{name}: {value}")),
        "-H",
        f"Authorization: Bearer {token}",
        f"http://{HOST}:{server.port}{API_PATH}",
    ]
    cpu0 = _cpu_seconds(server.pid)
    out = subprocess.run(command, capture_output=True, text=True, check=True).stdout  # noqa: S603 - wrk at a fixed loopback URL
    cpu = _cpu_seconds(server.pid) - cpu0
    rps = re.search(r"Requests/sec:\s+([\d.]+)", out)
    total = re.search(r"(\d+) requests in", out)
    if rps is None or total is None:
        raise RuntimeError(f"cannot parse wrk output:\n{out}")
    bad = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    errors = re.search(r"Socket errors: (.*)", out)
    if bad or errors:
        raise RuntimeError(f"wrk saw errors:\n{out}")
    latency = {
        f"p{m.group(1)}_ms": round(_ms(m.group(2), m.group(3)), 3)
        for m in re.finditer(r"^\s+(50|90|99)%\s+([\d.]+)(us|ms|s)\s*$", out, re.MULTILINE)
    }
    requests = int(total.group(1))
    return {
        "requests_per_s": float(rps.group(1)),
        "requests": requests,
        "server_cpu_us_per_request": round(cpu / requests * 1e6, 2),
        **latency,
    }


def run(duration: float = 3.0, pairs: int = 6) -> dict[str, Any]:
    tokens.ensure(1)
    token = next(tokens.iter_tokens(1))
    runs: dict[str, list[dict[str, Any]]] = {v: [] for v in VARIANTS}
    rps_ratios: list[float] = []
    cpu_ratios: list[float] = []
    with serve("baseline", token) as base, serve("clerk-asgi", token) as ours:
        servers = {"baseline": base, "clerk-asgi": ours}
        for server in servers.values():
            wrk(server, token, 1)  # warm-up
        for i in range(pairs):
            pair: dict[str, dict[str, Any]] = {}
            for variant in VARIANTS if i % 2 == 0 else VARIANTS[::-1]:
                pair[variant] = result = wrk(servers[variant], token, duration)
                runs[variant].append(result)
                log(
                    f"  wrk {variant:<11} {result['requests_per_s']:>8,.0f} req/s, server "
                    f"{result['server_cpu_us_per_request']:.0f} CPU µs/request"
                )
            b, o = pair["baseline"], pair["clerk-asgi"]
            rps_ratios.append(o["requests_per_s"] / b["requests_per_s"])
            cpu_ratios.append(b["server_cpu_us_per_request"] / o["server_cpu_us_per_request"])

    def mean(variant: str, key: str) -> float:
        return statistics.fmean(r[key] for r in runs[variant])

    return {
        "setup": (
            f"uvicorn (uvloop, httptools, 1 worker) on {HOST}; wrk -t{THREADS} -c{CONNECTIONS} "
            f"-d{round(duration)}s; {pairs} pairs of runs, A-B then B-A; GET {API_PATH} with "
            "the repeated token"
        ),
        "runs": runs,
        "baseline_rps": round(mean("baseline", "requests_per_s"), 1),
        "clerk_asgi_rps": round(mean("clerk-asgi", "requests_per_s"), 1),
        "baseline_server_cpu_us": round(mean("baseline", "server_cpu_us_per_request"), 2),
        "clerk_asgi_server_cpu_us": round(mean("clerk-asgi", "server_cpu_us_per_request"), 2),
        "rps_pair_ratios": [round(r, 4) for r in rps_ratios],
        "rps_ratio": round(statistics.median(rps_ratios), 4),
        "capacity_pair_ratios": [round(r, 4) for r in cpu_ratios],
        "capacity_ratio": round(statistics.median(cpu_ratios), 4),
    }


def target(e2e: dict[str, Any]) -> dict[str, Any]:
    return {
        "target": "uvicorn throughput with clerk-asgi >= 90% of without (repeated token)",
        "met": e2e["capacity_ratio"] >= 0.9,
        "figures": (
            f"capacity {e2e['capacity_ratio']:.1%} (server CPU "
            f"{e2e['baseline_server_cpu_us']:.0f} vs {e2e['clerk_asgi_server_cpu_us']:.0f} "
            f"µs/request); wall req/s {e2e['rps_ratio']:.1%} ({e2e['clerk_asgi_rps']:,.0f} vs "
            f"{e2e['baseline_rps']:,.0f})"
        ),
    }


def render(e2e: dict[str, Any], *, markdown: bool) -> str:
    rows = []
    for variant in VARIANTS:
        for i, r in enumerate(e2e["runs"][variant], 1):
            rows.append(
                [
                    f"{variant} #{i}",
                    f"{r['requests_per_s']:,.0f}",
                    f"{r['server_cpu_us_per_request']:.1f}",
                    f"{r.get('p50_ms', 0):.2f}",
                    f"{r.get('p99_ms', 0):.2f}",
                ]
            )
    headers = ["server", "req/s", "server CPU µs/req", "p50 ms", "p99 ms"]
    body = table(headers, rows, markdown=markdown)
    summary = (
        f"Throughput with/without clerk-asgi, median of pairs: wall req/s {e2e['rps_ratio']:.1%} "
        f"({', '.join(f'{r:.0%}' for r in e2e['rps_pair_ratios'])}); capacity (inverse server CPU "
        f"per request) {e2e['capacity_ratio']:.1%} "
        f"({', '.join(f'{r:.0%}' for r in e2e['capacity_pair_ratios'])})."
    )
    title = "### End to end (uvicorn + wrk)" if markdown else "End to end (uvicorn + wrk):"
    return f"{title}\n\n{e2e['setup']}\n\n{body}\n\n{summary}"
