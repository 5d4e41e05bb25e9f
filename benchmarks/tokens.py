"""Pre-minted session tokens, signed once in parallel and kept in ``benchmarks/tokens.txt``.

Signing (RSA-2048) is what makes tokens expensive, so they are minted once, by all cores, and
reused by every later run. The file (gitignored) holds, on its first line, a JSON header with the
throwaway benchmark key (private PEM: it signs nothing but these tokens), the claims every token
shares (``iss``, ``azp``, ``iat``, ``exp``), then one token per line. Token ``i`` has
``sub = user_bench_<i>`` and ``sid = sess_bench_<i>``, so every token is distinct.

Tokens live 30 days (``exp``) so that a file stays usable; a file within a day of expiry, or of
another format, is replaced.
"""

from __future__ import annotations

import fcntl
import json
import multiprocessing
import os
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

from common import BENCH_DIR, log
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from clerk_asgi.testing import KeyPair, mint_session_token

STORE = BENCH_DIR / "tokens.txt"
FORMAT = 1
KID = "ins_bench"
ISSUER = "https://clerk.bench.example"
ORIGIN = "https://app.bench.example"
LIFETIME = 30 * 86400
_CHUNK = 500


@dataclass(frozen=True)
class Header:
    key: KeyPair
    iat: int
    exp: int

    def to_json(self) -> str:
        pem = self.key.private_key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        ).decode("ascii")
        return json.dumps(
            {
                "format": FORMAT,
                "kid": self.key.kid,
                "issuer": ISSUER,
                "azp": ORIGIN,
                "iat": self.iat,
                "exp": self.exp,
                "private_key": pem,
            }
        )

    @classmethod
    def from_json(cls, line: str) -> Header | None:
        try:
            data = json.loads(line)
            if data.get("format") != FORMAT or data["issuer"] != ISSUER or data["azp"] != ORIGIN:
                return None
            private = serialization.load_pem_private_key(data["private_key"].encode(), None)
        except (ValueError, KeyError, TypeError):
            return None
        if not isinstance(private, rsa.RSAPrivateKey):
            return None
        return cls(KeyPair(private, data["kid"]), int(data["iat"]), int(data["exp"]))

    @classmethod
    def new(cls) -> Header:
        now = int(time.time())
        return cls(KeyPair.generate(KID), now, now + LIFETIME)


def mint(header: Header, index: int) -> str:
    """Token ``index`` of the store: distinct subject and session, shared iat/exp."""
    return mint_session_token(
        header.key,
        user_id=f"user_bench_{index:06d}",
        session_id=f"sess_bench_{index:06d}",
        issuer=ISSUER,
        azp=ORIGIN,
        issued_at=header.iat,
        claims={"exp": header.exp},
    )


_worker_header: Header | None = None


def _init_worker(header_json: str) -> None:
    global _worker_header
    _worker_header = Header.from_json(header_json)


def _mint_range(bounds: tuple[int, int]) -> list[str]:
    assert _worker_header is not None
    return [mint(_worker_header, i) for i in range(*bounds)]


def _read(f: IO[str], enough: int) -> tuple[Header | None, int]:
    """The header of the open store (None if unusable) and how many whole tokens follow it,
    counting no further than ``enough``.

    When fewer follow, a last line without its newline (a run interrupted mid-write) is cut off,
    and the file is left positioned at its end, ready for more.
    """
    f.seek(0)
    header = Header.from_json(f.readline())
    if header is None or header.exp < time.time() + 86400:
        return None, 0
    count, end = 0, f.tell()
    for line in iter(f.readline, ""):
        if not line.endswith("\n"):
            break
        count += 1
        if count >= enough:
            return header, count
        end = f.tell()
    f.seek(end)
    f.truncate()
    return header, count


def ensure(count: int, path: Path = STORE) -> Header:
    """Make ``path`` hold at least ``count`` valid tokens, minting the missing ones in parallel.

    The file is locked meanwhile, so concurrent runs don't interleave their writes.
    """
    path.touch()
    with path.open("r+") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        header, have = _read(f, count)
        if header is None:
            header, have = Header.new(), 0
            f.seek(0)
            f.truncate()
            f.write(header.to_json() + "\n")
            f.flush()
        if have < count:
            _mint_into(f, header, have, count)
    return header


def _mint_into(f: IO[str], header: Header, have: int, count: int) -> None:
    missing = count - have
    workers = os.cpu_count() or 1
    log(f"minting {missing:,} tokens with {workers} processes (cached in {Path(f.name).name}) ...")
    started = time.perf_counter()
    chunks = [(i, min(i + _CHUNK, count)) for i in range(have, count, _CHUNK)]
    done = 0
    f.seek(0, os.SEEK_END)
    ctx = multiprocessing.get_context("fork")
    with ctx.Pool(workers, _init_worker, (header.to_json(),)) as pool:
        for minted in pool.imap(_mint_range, chunks):
            f.write("\n".join(minted) + "\n")
            done += len(minted)
            if done % 20_000 < _CHUNK:
                log(f"  {done:,}/{missing:,} ({time.perf_counter() - started:.0f} s)")
    f.flush()
    log(f"minted {missing:,} tokens in {time.perf_counter() - started:.1f} s")


def load(count: int, path: Path = STORE) -> tuple[Header, list[str]]:
    """The header and the first ``count`` tokens (minting first if needed)."""
    header = ensure(count, path)
    return header, list(iter_tokens(count, path))


def iter_tokens(count: int, path: Path = STORE) -> Iterator[str]:
    """Stream the first ``count`` tokens without holding the file in memory."""
    with path.open() as f:
        f.readline()
        n = 0
        for line in f:
            token = line.strip()
            if not token:
                continue
            if n == count:
                return
            yield token
            n += 1


def forged(token: str, other: str) -> str:
    """``token`` with the signature of ``other``: the benchmark's ``kid`` and claims, a signature
    the right key made over other bytes. It fails like a token re-signed by an impostor (known
    kid, bad signature), and is the same in every run (no key generation: callgrind counts
    stay repeatable)."""
    return token.rsplit(".", 1)[0] + "." + other.rsplit(".", 1)[1]


def claims_of(header: Header) -> dict[str, Any]:
    return {"iss": ISSUER, "azp": ORIGIN, "iat": header.iat, "exp": header.exp}
