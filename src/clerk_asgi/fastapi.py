"""FastAPI sugar: ``Annotated`` aliases for the dependencies (the only module importing FastAPI).

Example::

    from clerk_asgi.fastapi import CurrentAuth, SignedInAuth

    @app.get("/api/me")
    async def me(auth: SignedInAuth):
        return {"user_id": auth.user_id}
"""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends

from ._auth import Auth
from ._dependencies import current_auth, require_auth

__all__ = ["CurrentAuth", "SignedInAuth"]

#: The request's Auth, signed in or not.
CurrentAuth = Annotated[Auth, Depends(current_auth)]

#: The request's Auth; 401 when signed out.
SignedInAuth = Annotated[Auth, Depends(require_auth())]
