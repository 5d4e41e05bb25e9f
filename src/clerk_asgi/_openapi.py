"""The dependency wrapper that lets FastAPI document the session-token security schemes.

FastAPI reads a dependency's parameters from ``inspect.signature``, which honours a
``__signature__`` attribute. :class:`AuthDependency` computes that signature when it is read:
``(conn: HTTPConnection) -> Auth`` while FastAPI is not imported (the core never imports it),
plus one keyword-only ``fastapi.Security(...)`` parameter per scheme of
:mod:`clerk_asgi.fastapi` once it is. FastAPI then lists the schemes on the route in
``/openapi.json`` (so Swagger UI shows the lock and an Authorize button). The schemes take no
request, read nothing and refuse nothing: every check stays in ``ClerkMiddleware``.
"""

from __future__ import annotations

import inspect
import sys
from collections.abc import Awaitable, Callable
from typing import Final

from starlette.requests import HTTPConnection

from ._auth import Auth

__all__ = ["AuthDependency"]

_CONN: Final = inspect.Parameter(
    "conn", inspect.Parameter.POSITIONAL_OR_KEYWORD, annotation=HTTPConnection
)
#: What the signature is without FastAPI: real types, so nothing has to evaluate strings.
PLAIN_SIGNATURE: Final = inspect.Signature([_CONN], return_annotation=Auth)


class AuthDependency:
    """An async dependency ``(conn) -> Auth`` that FastAPI documents as needing a session.

    Calling it awaits ``call(conn)``; any keyword argument besides ``conn`` (the security
    schemes' ``None``, passed by FastAPI) is ignored. Use it as a decorator.
    """

    def __init__(self, call: Callable[[HTTPConnection], Awaitable[Auth]]) -> None:
        self._call = call
        self._documented: inspect.Signature | None = None
        self.__name__ = call.__name__
        self.__qualname__ = call.__qualname__
        self.__doc__ = call.__doc__

    async def __call__(self, conn: HTTPConnection, **_schemes: object) -> Auth:
        return await self._call(conn)

    @property
    def __signature__(self) -> inspect.Signature:
        """``(conn)``, plus the security-scheme parameters once FastAPI is imported."""
        if self._documented is not None:
            return self._documented
        if "fastapi" not in sys.modules:
            return PLAIN_SIGNATURE
        from .fastapi import _security_parameters

        self._documented = PLAIN_SIGNATURE.replace(parameters=[_CONN, *_security_parameters()])
        return self._documented

    def __repr__(self) -> str:
        return f"<clerk_asgi dependency {self.__qualname__}>"
