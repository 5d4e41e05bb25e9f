"""A real ``redis-server`` on a free loopback port, started and stopped by the tests.

Debian's package (``apt-get install redis-server``) is what CI installs. Without it a test that
needs Redis is skipped with the install command, except under CI (``CI`` set), where a missing
server is a failure: the Redis code paths must run there.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import tempfile
import time
from pathlib import Path

import pytest

START_TIMEOUT = 10.0
INSTALL = "apt-get install redis-server"


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def redis_binary() -> str:
    """The path of ``redis-server``; a skip (or, under CI, a failure) when it is missing."""
    found = shutil.which("redis-server") or (
        "/usr/bin/redis-server" if Path("/usr/bin/redis-server").exists() else None
    )
    if found is None:
        if os.environ.get("CI"):
            pytest.fail(f"redis-server not found, and CI needs it: {INSTALL}")
        pytest.skip(f"redis-server not found: {INSTALL}")
    return found


class RedisServer:
    """One ``redis-server`` process on 127.0.0.1, nothing persisted. ``stop()`` and
    ``start()`` again on the same port simulate an outage."""

    def __init__(self) -> None:
        self.binary = redis_binary()
        self.port = free_port()
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self._dir = tempfile.mkdtemp(prefix="clerk-asgi-redis-")
        self._process: subprocess.Popen[bytes] | None = None

    def start(self) -> RedisServer:
        self._process = subprocess.Popen(  # noqa: S603 (a fixed argument list, no shell)
            [
                self.binary,
                "--bind",
                "127.0.0.1",
                "--port",
                str(self.port),
                "--save",
                "",
                "--appendonly",
                "no",
                "--dir",
                self._dir,
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + START_TIMEOUT
        while time.monotonic() < deadline:
            if self._process.poll() is not None:
                raise RuntimeError(f"redis-server exited with {self._process.returncode}")
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.2) as conn:
                    conn.sendall(b"PING\r\n")
                    if conn.recv(16).startswith(b"+PONG"):
                        return self
            except OSError:
                time.sleep(0.02)
        self.stop()
        raise RuntimeError(f"redis-server did not answer on port {self.port}")

    def stop(self) -> None:
        if self._process is not None and self._process.poll() is None:
            self._process.terminate()
            try:
                self._process.wait(timeout=5)
            except subprocess.TimeoutExpired:  # pragma: no cover - a wedged server
                self._process.kill()
                self._process.wait()
        self._process = None

    def flush(self) -> None:
        """Empty every database (tests sharing one server start clean)."""
        with socket.create_connection(("127.0.0.1", self.port), timeout=2) as conn:
            conn.sendall(b"FLUSHALL\r\n")
            assert conn.recv(16).startswith(b"+OK")

    def close(self) -> None:
        self.stop()
        shutil.rmtree(self._dir, ignore_errors=True)
