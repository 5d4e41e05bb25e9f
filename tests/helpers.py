"""Small helpers shared by the test modules."""

from __future__ import annotations


def bearer(token: str) -> dict[str, str]:
    """The ``Authorization`` header a client sends with ``token``."""
    return {"authorization": f"Bearer {token}"}
