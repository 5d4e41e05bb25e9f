"""The ``Auth`` value handed to handlers, and Clerk's ``has()`` semantics.

Claims are decoded once, when the Auth is built from a verified token; ``has()`` then only
compares. Semantics follow ``@clerk/shared`` ``authorization.ts`` and ``jwtPayloadParser.ts``:
every requested condition must pass, asking for nothing is ``False``, malformed data fails
closed.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any, Final, NoReturn

from starlette.authentication import AuthCredentials, BaseUser
from starlette.requests import HTTPConnection

from .exceptions import MiddlewareNotInstalledError

__all__ = [
    "AUTH_SCOPE_KEY",
    "Auth",
    "ClerkCredentials",
    "ClerkUser",
    "Reverification",
    "get_auth",
]

#: The scope key under which ``ClerkMiddleware`` stores the request's :class:`Auth`.
AUTH_SCOPE_KEY: Final = "clerk_asgi.auth"

_EMPTY: Final[Mapping[str, Any]] = MappingProxyType({})
_ORG_PREFIX = re.compile(r"^(?:org:)*")

# Clerk's reverification presets: name -> (after_minutes, level).
_PRESETS: Final = {
    "strict_mfa": (10, "multi_factor"),
    "strict": (10, "second_factor"),
    "moderate": (60, "second_factor"),
    "lax": (1440, "second_factor"),
}
_LEVELS: Final = frozenset({"first_factor", "second_factor", "multi_factor"})

#: A reverification requirement: a preset name (``"strict_mfa"``, ``"strict"``, ``"moderate"``,
#: ``"lax"``) or a mapping ``{"level": ..., "after_minutes": ...}`` (``afterMinutes`` accepted).
Reverification = str | Mapping[str, Any]


def _with_org_prefix(value: str) -> str:
    """``admin``, ``org:admin``, ``org:org:admin`` all become ``org:admin`` (prefixWithOrg)."""
    return _ORG_PREFIX.sub("org:", value, count=1)


def _scoped_entries(claim: Any) -> tuple[tuple[str, str], ...] | None:
    """Split a ``fea``/``pla`` claim (``"o:dashboard,u:export"``) into (scope, name) pairs.

    Returns None when the claim is missing, empty or malformed (an entry without ``:``), so
    that every check on it fails closed, as Clerk's ``splitByScope`` throwing does.
    """
    if not isinstance(claim, str) or not claim:
        return None
    entries = []
    for raw in claim.split(","):
        scope, sep, name = raw.strip().partition(":")
        if not sep or not name:
            return None
        entries.append((scope, name))
    return tuple(entries)


def _org_features(claims: Mapping[str, Any]) -> list[str]:
    entries = _scoped_entries(claims.get("fea")) or ()
    return [name for scope, name in entries if "o" in scope]


def _v2_permissions(org: Mapping[str, Any], claims: Mapping[str, Any]) -> tuple[str, ...]:
    """Decode v2 ``o.per`` + ``o.fpm`` against the org-scoped features of ``fea`` (as Clerk JS).

    The i-th ``fpm`` mask belongs to the i-th org-scoped feature; bit j (LSB first) grants the
    j-th permission of ``per``. A mask that is not a plain decimal integer grants nothing.
    """
    per, fpm = org.get("per"), org.get("fpm")
    if not isinstance(per, str) or not isinstance(fpm, str) or not per or not fpm:
        return FrozenList()
    permissions = [p.strip() for p in per.split(",")]
    features = _org_features(claims)
    granted: list[str] = []
    for feature, raw_mask in zip(features, fpm.split(","), strict=False):
        digits = raw_mask.strip()
        if not (digits.isascii() and digits.isdigit()):
            continue
        try:
            mask = int(digits)
        except ValueError:  # more digits than CPython converts (sys.get_int_max_str_digits)
            continue
        granted.extend(
            f"org:{feature}:{perm}" for j, perm in enumerate(permissions) if (mask >> j) & 1
        )
    return FrozenList(granted)


def _str_or_none(value: Any) -> str | None:
    return value if isinstance(value, str) else None


class FrozenList(tuple[Any, ...]):
    """A JSON array, read-only: a tuple that also equals the list with the same items."""

    __slots__ = ()

    def __eq__(self, other: object) -> bool:
        if isinstance(other, list):
            other = tuple(other)
        return tuple.__eq__(self, other)

    def __ne__(self, other: object) -> bool:
        equal = self.__eq__(other)
        return equal if equal is NotImplemented else not equal

    __hash__ = tuple.__hash__


class FrozenDict(dict[str, Any]):
    """A dict that refuses every change; still a dict, so it serialises to JSON as one."""

    __slots__ = ()

    def _read_only(self, *args: Any, **kwargs: Any) -> NoReturn:
        raise TypeError("read-only JSON data (Auth claims, Session.raw)")

    __setitem__ = __delitem__ = _read_only
    update = pop = popitem = clear = setdefault = __ior__ = _read_only


_SCALARS: Final = frozenset({str, int, float, bool, type(None)})


def _freeze(value: Any) -> Any:
    """A read-only deep copy of JSON data: objects become FrozenDicts, arrays FrozenLists."""
    if isinstance(value, Mapping):
        return FrozenDict({k: v if type(v) in _SCALARS else _freeze(v) for k, v in value.items()})
    if isinstance(value, list | tuple):
        return FrozenList(_freeze(v) for v in value)
    return value


@dataclass(frozen=True, slots=True, kw_only=True)
class Auth:
    """Who made the request, as established by ``ClerkMiddleware``. Immutable.

    A signed-out Auth has every identity field ``None`` and ``reason`` set to the
    reason code (``"session-token-missing"``, ``"token-expired"``, ...).

    Example::

        @app.get("/api/me")
        async def me(auth: Auth = Depends(current_auth)):
            if auth.has(role="org:admin"):
                ...
            return {"user_id": auth.user_id}
    """

    user_id: str | None = None
    session_id: str | None = None
    org_id: str | None = None
    org_role: str | None = None
    org_slug: str | None = None
    org_permissions: tuple[str, ...] = FrozenList()
    session_status: str | None = None
    actor: Mapping[str, Any] | None = field(default=None, hash=False)
    claims: Mapping[str, Any] = field(default_factory=lambda: _EMPTY, repr=False, hash=False)
    token: str | None = field(default=None, repr=False)
    reason: str | None = None
    # request.user/request.auth for Starlette, made once per Auth (verified Auths are cached).
    _starlette: tuple[ClerkUser, ClerkCredentials] | None = field(
        default=None, init=False, repr=False, compare=False, hash=False
    )

    def starlette_identity(self) -> tuple[ClerkUser, ClerkCredentials]:
        """``(request.user, request.auth)`` for this Auth, in Starlette's convention."""
        identity = self._starlette
        if identity is None:
            identity = (ClerkUser(self), ClerkCredentials(self))
            object.__setattr__(self, "_starlette", identity)
        return identity

    @property
    def is_signed_in(self) -> bool:
        """True when a valid session token identified a user."""
        return self.user_id is not None

    @property
    def expires_at(self) -> float | None:
        """The token's ``exp`` (Unix seconds), or None when signed out."""
        return self._number("exp")

    @property
    def issued_at(self) -> float | None:
        """The token's ``iat`` (Unix seconds), or None when absent or signed out."""
        return self._number("iat")

    @property
    def factor_verification_age(self) -> tuple[int, int] | None:
        """``fva``: minutes since the first and second factor were verified (-1: never)."""
        fva = self.claims.get("fva")
        if (
            isinstance(fva, tuple | list)
            and len(fva) == 2
            and all(type(x) is int for x in fva)  # bool is not an age
        ):
            return (fva[0], fva[1])
        return None

    def _number(self, name: str) -> float | None:
        value = self.claims.get(name)
        if isinstance(value, int | float) and not isinstance(value, bool):
            return value
        return None

    @classmethod
    def signed_out(cls, reason: str, *, session_status: str | None = None) -> Auth:
        """A signed-out Auth carrying ``reason``."""
        return cls(reason=reason, session_status=session_status)

    @classmethod
    def from_claims(cls, claims: Mapping[str, Any], token: str | None = None) -> Auth:
        """Build a signed-in Auth from verified session claims (v1 or v2 org claims).

        ``claims`` must already be verified; ``sub`` must be a non-empty string. The Auth keeps
        a read-only deep copy of them.
        """
        if type(claims) is not FrozenDict:  # already read-only when parsed from a token
            claims = _freeze(claims)
        org_id = org_slug = org_role = None
        permissions: tuple[str, ...] = FrozenList()
        if claims.get("v") == 2:
            org = claims.get("o")
            if isinstance(org, dict):  # frozen: a FrozenDict
                org_id = _str_or_none(org.get("id"))
                org_slug = _str_or_none(org.get("slg"))
                role = _str_or_none(org.get("rol"))
                org_role = _with_org_prefix(role) if role else None
                permissions = _v2_permissions(org, claims)
        else:
            org_id = _str_or_none(claims.get("org_id"))
            org_slug = _str_or_none(claims.get("org_slug"))
            org_role = _str_or_none(claims.get("org_role"))
            raw = claims.get("org_permissions")
            if isinstance(raw, tuple):
                permissions = FrozenList(p for p in raw if isinstance(p, str))
        actor = claims.get("act")
        return cls(
            user_id=claims["sub"],
            session_id=_str_or_none(claims.get("sid")),
            org_id=org_id,
            org_role=org_role,
            org_slug=org_slug,
            org_permissions=permissions,
            session_status=_str_or_none(claims.get("sts")),
            actor=actor if isinstance(actor, dict) else None,
            claims=claims,
            token=token,
        )

    def has(
        self,
        *,
        role: str | None = None,
        permission: str | None = None,
        feature: str | None = None,
        plan: str | None = None,
        reverification: Reverification | None = None,
    ) -> bool:
        """Clerk's ``has()``: True only if signed in and *every* given condition holds.

        ``role``/``permission`` are checked against the active organization (``admin`` and
        ``org:admin`` are the same role); ``feature``/``plan`` against the ``fea``/``pla``
        claims (``"o:x"``/``"org:x"``, ``"u:x"``/``"user:x"`` or unscoped ``"x"``);
        ``reverification`` against ``fva`` (a preset name or ``{"level", "after_minutes"}``).
        Asking for nothing returns False; missing or malformed data fails closed.
        """
        if self.user_id is None:
            return False
        checks = []
        if role is not None:
            checks.append(self._has_role(role))
        if permission is not None:
            checks.append(self._has_permission(permission))
        if feature is not None:
            checks.append(self._has_billing(feature, "fea"))
        if plan is not None:
            checks.append(self._has_billing(plan, "pla"))
        if reverification is not None:
            checks.append(self._is_fresh(reverification))
        return bool(checks) and all(checks)

    def _has_role(self, role: object) -> bool:
        if not isinstance(role, str) or not self.org_id or not self.org_role:
            return False
        return _with_org_prefix(self.org_role) == _with_org_prefix(role)

    def _has_permission(self, permission: object) -> bool:
        if not isinstance(permission, str) or not self.org_id:
            return False
        return _with_org_prefix(permission) in self.org_permissions

    def _has_billing(self, wanted: object, claim: str) -> bool:
        if not isinstance(wanted, str):
            return False
        entries = _scoped_entries(self.claims.get(claim))
        if entries is None:
            return False
        scope, sep, name = wanted.partition(":")
        if not sep:
            scope, name = "", wanted
        if scope in ("o", "org", "organization"):
            letters = "o"
        elif scope in ("u", "user"):
            letters = "u"
        elif scope == "":
            letters = "ou"
        else:
            return False
        return any(
            entry_name == name and any(letter in entry_scope for letter in letters)
            for entry_scope, entry_name in entries
        )

    def _is_fresh(self, requirement: object) -> bool:
        level: Any
        after: Any
        if isinstance(requirement, str):
            if requirement not in _PRESETS:
                return False
            after, level = _PRESETS[requirement]
        elif isinstance(requirement, Mapping):
            level = requirement.get("level")
            after = requirement.get("after_minutes", requirement.get("afterMinutes"))
            if (
                level not in _LEVELS
                or not isinstance(after, int | float)
                or isinstance(after, bool)
                or after <= 0
            ):
                return False
        else:
            return False
        ages = self.factor_verification_age
        if ages is None:
            return False
        first, second = ages
        if first == -1 and second == -1:
            return False

        def fresh(age: int) -> bool:
            return age != -1 and after > age

        if level == "first_factor":
            return fresh(first)
        if level == "second_factor":
            return fresh(first) if second == -1 else fresh(second)
        # multi_factor
        if first == -1:
            return False
        if second == -1:
            return fresh(first)
        return fresh(first) and fresh(second)


def get_auth(conn: HTTPConnection | Mapping[str, Any]) -> Auth:
    """The :class:`Auth` of a Request, WebSocket or raw ASGI scope.

    Raises:
        MiddlewareNotInstalledError: ``ClerkMiddleware`` did not handle this connection.
    """
    scope = conn.scope if isinstance(conn, HTTPConnection) else conn
    auth = scope.get(AUTH_SCOPE_KEY)
    if not isinstance(auth, Auth):
        raise MiddlewareNotInstalledError
    return auth


class ClerkUser(BaseUser):
    """``request.user`` behind ``ClerkMiddleware``, in Starlette's convention.

    ``is_authenticated`` is True for a signed-in user, whose ``identity`` and ``display_name``
    are the Clerk user id; signed out, it is False and both are empty strings (as Starlette's
    ``UnauthenticatedUser``). ``auth`` is the request's :class:`Auth`.
    """

    __slots__ = ("_auth",)

    def __init__(self, auth: Auth) -> None:
        self._auth = auth

    @property
    def auth(self) -> Auth:
        return self._auth

    @property
    def is_authenticated(self) -> bool:
        return self._auth.user_id is not None

    @property
    def identity(self) -> str:
        return self._auth.user_id or ""

    @property
    def display_name(self) -> str:
        return self._auth.user_id or ""

    def __repr__(self) -> str:
        return f"ClerkUser({self._auth.user_id!r})"


class ClerkCredentials(AuthCredentials):
    """``request.auth`` behind ``ClerkMiddleware``: ``scopes`` are ``"authenticated"`` and the
    active organization's permissions when signed in, nothing when signed out, so Starlette's
    ``@requires("authenticated")`` and ``@requires("org:billing:manage")`` work."""

    __slots__ = ("_auth",)

    def __init__(self, auth: Auth) -> None:  # no super().__init__(): scopes are derived
        self._auth = auth

    @property
    def scopes(self) -> list[str]:  # type: ignore[override]  # read-only: derived from the Auth
        if self._auth.user_id is None:
            return []
        return ["authenticated", *self._auth.org_permissions]
