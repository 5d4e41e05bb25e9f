"""Signed webhooks for tests: what Svix sends for Clerk, without Svix.

::

    secret = make_webhook_secret()
    body = b'{"type":"session.revoked","object":"event","data":{"id":"sess_123"}}'
    headers = sign_webhook(body, secret=secret)
    r = await client.post("/api/webhooks/clerk", content=body, headers=headers)
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import math
import secrets
import string
import time
from collections.abc import Iterable, Mapping
from typing import Any

from clerk_asgi.webhooks import _decode_secrets

__all__ = ["make_webhook_secret", "sign_webhook"]

_ID_ALPHABET = string.ascii_letters + string.digits


def make_webhook_secret() -> str:
    """A new signing secret as Clerk's Dashboard shows one: ``whsec_`` and the base64 of 24
    random bytes."""
    return "whsec_" + base64.b64encode(secrets.token_bytes(24)).decode("ascii")


def sign_webhook(
    payload: bytes | str | Mapping[str, Any],
    *,
    secret: str | Iterable[str],
    msg_id: str | None = None,
    timestamp: float | None = None,
) -> dict[str, str]:
    """The ``svix-id``, ``svix-timestamp`` and ``svix-signature`` headers of ``payload``.

    Args:
        payload: the exact body to send (bytes, or text sent as UTF-8), or an event as a dict,
            signed as compact JSON: ``json.dumps(payload, separators=(",", ":"),
            ensure_ascii=False)``, the bytes httpx 0.28 and later sends for ``json=payload``.
        secret: the endpoint's signing secret (``whsec_...``); several (a list) give one
            ``v1`` signature each, as Svix sends while a secret is being rotated.
        msg_id: the message id (default: a new ``msg_...``); a retry repeats it.
        timestamp: Unix seconds of the attempt (default: now), rounded down; pass the fake
            clock's time when the app under test has one.

    Returns:
        The three headers, to send along with the body.

    Raises:
        ConfigurationError: ``secret`` is not a signing secret.
    """
    keys = _decode_secrets(secret)
    if isinstance(payload, Mapping):
        body = json.dumps(payload, separators=(",", ":"), ensure_ascii=False).encode("utf-8")
    elif isinstance(payload, str):
        body = payload.encode("utf-8")
    else:
        body = bytes(payload)
    if msg_id is None:
        msg_id = "msg_" + "".join(secrets.choice(_ID_ALPHABET) for _ in range(27))
    stamp = str(math.floor(time.time() if timestamp is None else timestamp))
    signed = f"{msg_id}.{stamp}.".encode() + body
    signatures = " ".join(
        "v1," + base64.b64encode(hmac.new(key, signed, hashlib.sha256).digest()).decode("ascii")
        for key in keys
    )
    return {"svix-id": msg_id, "svix-timestamp": stamp, "svix-signature": signatures}
