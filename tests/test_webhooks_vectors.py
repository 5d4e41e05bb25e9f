"""Byte-for-byte parity with Standard Webhooks (the scheme Svix signs Clerk's webhooks with).

Two sources of truth, neither of them our code: the test cases of the Standard Webhooks
libraries, transcribed into ``tests/data/standardwebhooks`` (with their licence and origin), and
the ``standardwebhooks`` package itself, used as an oracle on seeded random messages, valid and
tampered: our verifier must accept exactly what it accepts, where its input is well formed.
"""

from __future__ import annotations

import base64
import json
import random
import string
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import standardwebhooks

from clerk_asgi.exceptions import ConfigurationError
from clerk_asgi.testing import sign_webhook
from clerk_asgi.webhooks import WebhookVerificationError, verify_webhook

DATA = Path(__file__).parent / "data" / "standardwebhooks"
VECTORS: dict[str, Any] = json.loads((DATA / "vectors.json").read_text("utf-8"))


def oracle_signature(secret: str, msg_id: str, timestamp: int, payload: str) -> str:
    """The v1 signature the standardwebhooks package computes."""
    when = datetime.fromtimestamp(timestamp, tz=UTC)
    return standardwebhooks.Webhook(secret).sign(msg_id=msg_id, timestamp=when, data=payload)


def test_the_vectors_name_their_origin_and_licence() -> None:
    """The transcribed vectors carry the upstream commit and the MIT licence they came under."""
    assert (DATA / "SOURCE").read_text("utf-8").startswith("standard-webhooks/standard-webhooks")
    assert "MIT License" in (DATA / "LICENSE").read_text("utf-8")


@pytest.mark.parametrize("vector", VECTORS["sign"], ids=lambda v: v["name"])
def test_sign_webhook_gives_the_upstream_signature(vector: dict[str, Any]) -> None:
    """sign_webhook's svix-signature is the literal signature of the upstream sign test."""
    headers = sign_webhook(
        vector["payload"].encode(),
        secret=vector["secret"],
        msg_id=vector["msg_id"],
        timestamp=vector["timestamp"],
    )
    assert headers == {
        "svix-id": vector["msg_id"],
        "svix-timestamp": str(vector["timestamp"]),
        "svix-signature": vector["signature"],
    }


@pytest.mark.parametrize("vector", VECTORS["sign"], ids=lambda v: v["name"])
def test_the_upstream_signature_verifies(vector: dict[str, Any]) -> None:
    """The upstream vector, as Svix would deliver it, verifies and gives its JSON."""
    headers = {
        "webhook-id": vector["msg_id"],
        "webhook-timestamp": str(vector["timestamp"]),
        "webhook-signature": vector["signature"],
    }
    event = verify_webhook(
        vector["payload"].encode(),
        headers,
        secret=vector["secret"],
        clock=lambda: vector["timestamp"],
    )
    assert event == {"test": 2432232314}
    assert (event.id, event.timestamp, event.duplicate) == (
        vector["msg_id"],
        vector["timestamp"],
        False,
    )


def vector_headers(case: dict[str, Any]) -> dict[str, str]:
    """The headers of a verify case: upstream's valid message, then the case's changes."""
    now = VECTORS["now"]
    timestamp = now + case.get("timestamp_offset", 0)
    valid = oracle_signature(VECTORS["secret"], VECTORS["msg_id"], timestamp, VECTORS["payload"])
    headers = {
        "webhook-id": VECTORS["msg_id"],
        "webhook-timestamp": str(timestamp),
        "webhook-signature": valid,
    }
    if "signature" in case:
        entries = [
            valid if entry == "$valid" else valid[:8] if entry == "$valid[:8]" else entry
            for entry in case["signature"]
        ]
        headers["webhook-signature"] = " ".join(entries)
    headers.update(case.get("set", {}))
    for name in case.get("remove", []):
        del headers[name]
    return headers


@pytest.mark.parametrize("case", VECTORS["verify"], ids=lambda c: c["name"])
def test_upstream_verify_cases(case: dict[str, Any]) -> None:
    """Each upstream verify case is accepted or refused as upstream says, with our reason."""
    headers = vector_headers(case)
    body = VECTORS["payload"].encode()
    now = VECTORS["now"]
    if case["valid"]:
        event = verify_webhook(body, headers, secret=VECTORS["secret"], clock=lambda: now)
        assert event == {"test": 2432232314}
        return
    with pytest.raises(WebhookVerificationError) as caught:
        verify_webhook(body, headers, secret=VECTORS["secret"], clock=lambda: now)
    assert caught.value.reason == case["reason"]


@pytest.mark.parametrize("case", VECTORS["secrets"], ids=lambda c: c["name"])
def test_upstream_secret_forms(case: dict[str, Any]) -> None:
    """A secret with or without whsec_, padded or not, verifies what its padded form signed."""
    now = VECTORS["now"]
    headers = {
        "webhook-id": VECTORS["msg_id"],
        "webhook-timestamp": str(now),
        "webhook-signature": oracle_signature(
            case["signing_secret"], VECTORS["msg_id"], now, VECTORS["payload"]
        ),
    }
    event = verify_webhook(
        VECTORS["payload"].encode(), headers, secret=case["secret"], clock=lambda: now
    )
    assert event == {"test": 2432232314}


@pytest.mark.parametrize("secret", VECTORS["empty_secrets"])
def test_upstream_empty_secrets_are_refused(secret: str) -> None:
    """An empty secret (or the prefix alone) is a configuration error, as upstream's is."""
    with pytest.raises(ConfigurationError):
        verify_webhook(b"{}", {}, secret=secret)


# ----------------------------------------------------------------------------------------------
# The standardwebhooks package as an oracle, on seeded random messages.

ID_ALPHABET = string.ascii_letters + string.digits + "_-"
TAMPERINGS = [
    "none",
    "body",
    "id",
    "timestamp",
    "secret",
    "signature",
    "truncated",
    "other-version",
    "rotation",
    "old",
    "new",
]


def random_message(rng: random.Random, now: int) -> dict[str, Any]:
    """A random message Svix could send: secret, id, timestamp, a JSON object body."""
    document = {
        "type": rng.choice(["user.created", "session.ended", "organization.updated"]),
        "object": "event",
        "data": {
            "id": "".join(rng.choice(ID_ALPHABET) for _ in range(rng.randint(1, 30))),
            "n": rng.randint(-(10**12), 10**12),
            "text": "".join(rng.choice('aé€ 😀"\\/{}') for _ in range(rng.randint(0, 20))),
        },
    }
    return {
        "secret": "whsec_" + base64.b64encode(rng.randbytes(rng.choice([24, 32]))).decode(),
        "id": "msg_" + "".join(rng.choice(ID_ALPHABET) for _ in range(rng.randint(1, 40))),
        "timestamp": now + rng.randint(-290, 290),
        "payload": json.dumps(document, ensure_ascii=rng.random() < 0.5),
    }


def tamper(
    rng: random.Random, message: dict[str, Any], how: str
) -> tuple[str, dict[str, str], str]:
    """(verifying secret, headers, body) of ``message`` changed as ``how`` says."""
    secret, msg_id, payload = message["secret"], message["id"], message["payload"]
    timestamp = message["timestamp"]
    if how == "old":
        timestamp -= rng.randint(311, 10**6)
    elif how == "new":
        timestamp += rng.randint(311, 10**6)
    signature = oracle_signature(secret, msg_id, timestamp, payload)
    headers = {"webhook-id": msg_id, "webhook-timestamp": str(timestamp)}
    if how == "body":
        at = rng.randrange(len(payload))
        payload = payload[:at] + ("x" if payload[at] != "x" else "y") + payload[at + 1 :]
    elif how == "id":
        headers["webhook-id"] = msg_id + rng.choice(ID_ALPHABET)
    elif how == "timestamp":
        headers["webhook-timestamp"] = str(timestamp + rng.choice([-1, 1]))
    elif how == "secret":
        secret = "whsec_" + base64.b64encode(rng.randbytes(24)).decode()
    elif how == "signature":
        raw = bytearray(base64.b64decode(signature[3:]))
        raw[rng.randrange(len(raw))] ^= 1 << rng.randrange(8)
        signature = "v1," + base64.b64encode(bytes(raw)).decode()
    elif how == "truncated":
        signature = "v1," + base64.b64encode(base64.b64decode(signature[3:])[:-1]).decode()
    elif how == "other-version":
        signature = "v2," + signature[3:]
    elif how == "rotation":  # the old secret's signature first, then this one's
        old = "whsec_" + base64.b64encode(rng.randbytes(24)).decode()
        signature = f"{oracle_signature(old, msg_id, timestamp, payload)} {signature}"
    headers["webhook-signature"] = signature
    return secret, headers, payload


def oracle_accepts(secret: str, headers: dict[str, str], payload: str) -> Any:
    """The oracle's parsed JSON, or None when it refuses with its own error (any other
    exception means the generated input is outside what it handles, a bug in this test)."""
    try:
        return standardwebhooks.Webhook(secret).verify(payload, headers)
    except standardwebhooks.WebhookVerificationError:
        return None


@pytest.mark.parametrize("seed", range(12))
def test_we_accept_exactly_what_the_oracle_accepts(seed: int) -> None:
    """On random messages, valid and tampered (body, id, timestamp, secret, signature bits,
    truncation, another version, rotation, too old, too new), we agree with standardwebhooks."""
    rng = random.Random(seed)  # noqa: S311 - reproducible test data, not secrets
    now = int(time.time())  # the oracle reads the real clock; ours is pinned to the same second
    outcomes = set()
    for how in TAMPERINGS:
        message = random_message(rng, now)
        secret, headers, payload = tamper(rng, message, how)
        expected = oracle_accepts(secret, headers, payload)
        try:
            ours: Any = verify_webhook(payload.encode(), headers, secret=secret, clock=lambda: now)
        except WebhookVerificationError:
            ours = None
        assert ours == expected, (how, headers, payload)
        outcomes.add((how, expected is not None))
    accepted = {how for how, ok in outcomes if ok}
    assert accepted == {"none", "rotation"}


@pytest.mark.parametrize("seed", range(4))
def test_the_oracle_verifies_what_sign_webhook_signs(seed: int) -> None:
    """sign_webhook's headers, renamed to webhook-*, verify with standardwebhooks."""
    rng = random.Random(seed)  # noqa: S311 - reproducible test data, not secrets
    message = random_message(rng, int(time.time()))
    headers = sign_webhook(
        message["payload"], secret=message["secret"], msg_id=message["id"], timestamp=None
    )
    renamed = {name.replace("svix-", "webhook-"): value for name, value in headers.items()}
    assert standardwebhooks.Webhook(message["secret"]).verify(
        message["payload"], renamed
    ) == json.loads(message["payload"])
