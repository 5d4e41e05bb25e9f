"""Route rules: Clerk's ``createRouteMatcher`` pattern syntax, compiled once.

Patterns follow path-to-regexp 6 as vendored by ``@clerk/shared`` (``pathToRegexp.ts``, used by
``createRouteMatcher``): anchored at both ends, case-insensitive, an optional trailing ``/``,
``(.*)`` groups, ``:param`` segments with ``?``/``*``/``+`` modifiers. Examples::

    "/sign-in(.*)"      -> ^/sign-in(.*)[/#?]?$        also matches /sign-inx (sibling!)
    "/api/(.*)"         -> ^/api(?:/(.*))[/#?]?$       /api/ and /api/x, not /api
    "/dashboard/:path*" -> /dashboard, /dashboard/a/b, not /dashboardx
    "/orgs/:slug"       -> /orgs/acme

Compiled ``re.Pattern`` objects are used as they are (with ``search``: anchor them yourself);
callables receive the route path and return a bool.

The matcher classifies exactly the path the router dispatches on: ``scope["path"]`` minus
``root_path`` (Starlette's ``get_route_path``), already percent-decoded by the server.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Final, Literal

from .exceptions import ConfigurationError
from .ratelimit import RateLimit

__all__ = [
    "API_DOCS",
    "STATIC_ASSETS",
    "Pattern",
    "Rule",
    "RuleMatcher",
    "compile_pattern",
    "route_path",
]

Kind = Literal["public", "protect", "api"]
Pattern = str | re.Pattern[str] | Callable[[str], bool]

# One path segment. path-to-regexp stops segments at "#" and "?" too, but the path we match is
# already percent-decoded: a "?" or "#" in it is part of the path Starlette dispatches on.
_SEGMENT: Final = r"[^/]+?"
_ANY_SEGMENT: Final = r"[^/]*?"  # lenient: empty segments too (odd paths, non-public rules)
_FLAGS: Final = re.IGNORECASE | re.DOTALL | re.ASCII
_NAME = re.compile(r"[A-Za-z0-9_]+")

#: Paths ending in a static-file extension (the seed's Next.js matcher list). A routing
#: convenience for ``Rule.public(STATIC_ASSETS)``, never a security boundary: anything whose
#: path ends in ``.css`` becomes public, whatever serves it.
STATIC_ASSETS: Final = re.compile(
    r"^/(?:[^?#]*/)?[^/?#]+\.(?:html?|css|js|mjs|map|jpe?g|webp|avif|png|gif|svg|ttf|otf|woff2?"
    r"|ico|csv|docx?|xlsx?|zip|webmanifest|txt)$",
    re.IGNORECASE,
)

#: FastAPI's default documentation routes and nothing else: ``/docs``, ``/docs/oauth2-redirect``,
#: ``/redoc`` and ``/openapi.json``, exactly (case-sensitive like Starlette's router; no sibling
#: such as ``/docsecret`` or ``/openapi.jsonx``, no sub-path, no trailing slash). Use it as
#: ``Rule.public(API_DOCS)``, like :data:`STATIC_ASSETS`; for an app with other docs URLs,
#: ``clerk_asgi.fastapi.docs_rule(app)``.
API_DOCS: Final = re.compile(r"^/(?:docs(?:/oauth2-redirect)?|redoc|openapi\.json)\Z")


def _group_end(pattern: str, start: int) -> int:
    """Index just past the ``)`` closing the group opened at ``pattern[start]``."""
    depth, i = 0, start
    while i < len(pattern):
        char = pattern[i]
        if char == "\\":
            i += 2
            continue
        if char == "(":
            depth += 1
        elif char == ")":
            depth -= 1
            if depth == 0:
                return i + 1
        i += 1
    raise ConfigurationError(f"Unbalanced '(' in route pattern {pattern!r}.")


def compile_pattern(pattern: str, *, lenient: bool = False) -> str:
    """Translate one Clerk/path-to-regexp-6 pattern into a regular expression source.

    ``lenient`` lets parameters match empty segments (``/admin//x`` under ``/admin/:path*``):
    used only for odd paths against non-public rules, so that ``//`` cannot slip past them.

    Raises:
        ConfigurationError: the pattern does not start with ``/``, is malformed, or puts two
            parameters in one segment (``/:from-:to`` backtracks catastrophically).
    """
    if not pattern.startswith("/"):
        raise ConfigurationError(
            f"Route pattern {pattern!r} must start with '/' (for example '/dashboard(.*)')."
        )
    out: list[str] = []
    i = 0
    params_in_segment = 0
    while i < len(pattern):
        char = pattern[i]
        prefix = ""
        if char == "/" and i + 1 < len(pattern) and pattern[i + 1] in ":(":
            prefix, i = "/", i + 1
            char = pattern[i]
            params_in_segment = 0
        if char == ":" or char == "(":
            params_in_segment += 1
            if params_in_segment > 1:
                raise ConfigurationError(
                    f"Route pattern {pattern!r} has two parameters or groups in one segment, "
                    "which can backtrack catastrophically on hostile paths. Split them into "
                    "segments or pass a compiled regular expression."
                )
            if char == ":":
                name = _NAME.match(pattern, i + 1)
                if name is None:
                    raise ConfigurationError(
                        f"Missing parameter name after ':' in route pattern {pattern!r}."
                    )
                i = name.end()
                body = _ANY_SEGMENT if lenient else _SEGMENT
                if i < len(pattern) and pattern[i] == "(":
                    end = _group_end(pattern, i)
                    body, i = pattern[i + 1 : end - 1], end
            else:
                end = _group_end(pattern, i)
                body, i = pattern[i + 1 : end - 1], end
                if not body:
                    raise ConfigurationError(f"Empty group '()' in route pattern {pattern!r}.")
            modifier = pattern[i] if i < len(pattern) and pattern[i] in "?*+" else ""
            i += len(modifier)
            p = re.escape(prefix)
            if modifier in ("*", "+"):
                repeated = f"(?:{p}((?:{body})(?:{p}(?:{body}))*))"
                out.append(repeated + ("?" if modifier == "*" else ""))
            else:
                out.append(f"(?:{p}({body})){modifier}")
            continue
        if char == "\\" and i + 1 < len(pattern):
            out.append(re.escape(pattern[i + 1]))
            i += 2
            continue
        if char == "/":
            params_in_segment = 0
        out.append(re.escape(char))
        i += 1
    return "".join(out) + "/?"


@dataclass(frozen=True, slots=True)
class Rule:
    """One line of the route table: which paths, and what they require.

    Build rules with :meth:`public`, :meth:`protect` and :meth:`api`; the first rule whose
    pattern matches a request's path decides it.

    Each takes ``rate_limit=``: ``"10/10s"`` (10 requests per 10 seconds for each user), a
    :class:`~clerk_asgi.ratelimit.RateLimit`, or None. It is counted after the rule has let
    the request in (its own 401/403 cost no quota); past it, 429. See "Rate limits".

    Raises:
        ConfigurationError: a malformed ``rate_limit`` (the message lists the accepted forms).
    """

    kind: Kind
    patterns: tuple[Pattern, ...] = ()
    role: str | None = None
    permission: str | None = None
    unauthorized_url: str | None = None
    #: The rule's rate limit (a spec string is parsed at construction), else None.
    rate_limit: RateLimit | None = None
    #: A role or permission is due (read on every request: computed once, not a property).
    requires_authorization: bool = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        due = self.role is not None or self.permission is not None
        object.__setattr__(self, "requires_authorization", due)
        if self.rate_limit is not None:
            object.__setattr__(self, "rate_limit", RateLimit.parse(self.rate_limit))

    @classmethod
    def public(cls, *patterns: Pattern, rate_limit: str | RateLimit | None = None) -> Rule:
        """Paths anyone may open; the handler still sees who is signed in, if anyone.

        A ``rate_limit`` keyed by user counts signed-out visitors by client address.
        """
        return cls("public", patterns, rate_limit=_limit(rate_limit))

    @classmethod
    def protect(
        cls,
        *patterns: Pattern,
        role: str | None = None,
        permission: str | None = None,
        unauthorized_url: str | None = None,
        rate_limit: str | RateLimit | None = None,
    ) -> Rule:
        """Pages that need a signed-in user (and, optionally, an org role or permission).

        Signed-out browser navigations are redirected to the sign-in URL, other requests get
        401; a signed-in user lacking ``role``/``permission`` is sent to ``unauthorized_url``
        (browser navigations) or gets 403.
        """
        return cls("protect", patterns, role, permission, unauthorized_url, _limit(rate_limit))

    @classmethod
    def api(
        cls,
        *patterns: Pattern,
        role: str | None = None,
        permission: str | None = None,
        rate_limit: str | RateLimit | None = None,
    ) -> Rule:
        """API paths: never redirected, 401/403 JSON, ``x-user-id`` injected when allowed."""
        return cls("api", patterns, role, permission, rate_limit=_limit(rate_limit))


def _limit(spec: str | RateLimit | None) -> RateLimit | None:
    return None if spec is None else RateLimit.parse(spec)


def route_path(scope: Mapping[str, Any]) -> str:
    """The path the router dispatches on: ``scope["path"]`` minus ``root_path`` (Starlette)."""
    path: str = scope["path"]
    root: str = scope.get("root_path", "")
    if not root or not path.startswith(root):
        return path
    if path == root:
        return ""
    return path[len(root) :] if path[len(root)] == "/" else path


_ODD = re.compile(r"//|/\.\.?(?:/|$)|[\x00-\x1f\x7f-\x9f\\]")  # C0 and C1 controls


def is_odd_path(path: str) -> bool:
    """Dot segments, ``//``, backslashes or control characters: never allowed to be public."""
    return _ODD.search(path) is not None


def _compile(
    rules: Iterable[Rule], *, lenient: bool = False
) -> list[tuple[Callable[[str], object], list[Rule]]]:
    """Turn rules into match steps; consecutive string patterns share one regex."""
    steps: list[tuple[Callable[[str], object], list[Rule]]] = []
    pending: list[str] = []
    pending_rules: list[Rule] = []

    def flush() -> None:
        if pending:
            combined = re.compile("|".join(pending), _FLAGS)
            steps.append((combined.match, list(pending_rules)))
            pending.clear()
            pending_rules.clear()

    for rule in rules:
        for pattern in rule.patterns:
            if isinstance(pattern, str):
                source = compile_pattern(pattern, lenient=lenient)
                try:
                    re.compile(source, _FLAGS)
                except re.error as exc:
                    raise ConfigurationError(
                        f"Route pattern {pattern!r} holds an invalid regular expression: {exc}."
                    ) from None
                pending.append(f"(?P<r{len(pending)}>{source})\\Z")
                pending_rules.append(rule)
                continue
            flush()
            if isinstance(pattern, re.Pattern):
                steps.append((pattern.search, [rule]))
            elif callable(pattern):
                steps.append((pattern, [rule]))
            else:
                raise ConfigurationError(
                    f"Route pattern {pattern!r} must be a string, a compiled regex or a "
                    "callable taking the path."
                )
    flush()
    return steps


def _first(steps: list[tuple[Callable[[str], object], list[Rule]]], path: str) -> Rule | None:
    for test, rules in steps:
        found = test(path)
        if found:
            if len(rules) == 1:
                return rules[0]
            return rules[int(found.lastgroup[1:])]  # type: ignore[attr-defined]
    return None


class RuleMatcher:
    """First-match-wins lookup from a path to its rule, compiled once.

    Runs of string patterns are merged into one regular expression, so a typical route table
    costs a single ``re.match`` per request. Paths that look odd (see :func:`is_odd_path`) are
    matched against the non-public rules only, so no normalisation trick can make them public.
    """

    __slots__ = ("_default", "_pure", "_steps", "_strict_default", "_strict_steps", "known")

    #: Paths whose rule is remembered (string and regex patterns only: callables may not be pure).
    CACHE_SIZE: Final = 1024

    def __init__(self, rules: Iterable[Rule], default: Rule) -> None:
        rules = tuple(rules)
        self._steps = _compile(rules)
        self._default = default
        self._strict_steps = _compile((r for r in rules if r.kind != "public"), lenient=True)
        self._strict_default = default if default.kind != "public" else Rule.protect()
        self._pure = all(isinstance(p, str | re.Pattern) for r in rules for p in r.patterns)
        #: Paths already matched -> their rule (bounded; stays empty when a pattern is a
        #: callable). Callers may look a path up here before calling :meth:`match`.
        self.known: dict[str, Rule] = {}

    def match(self, path: str) -> Rule:
        """The rule deciding ``path``: the first match, else the default."""
        known = self.known
        rule = known.get(path)
        if rule is None:
            rule = self._match(path)
            if self._pure:
                if len(known) >= self.CACHE_SIZE:
                    known.clear()
                known[path] = rule
        return rule

    def _match(self, path: str) -> Rule:
        if is_odd_path(path):  # never public; empty segments still count for the other rules
            return _first(self._strict_steps, path) or self._strict_default
        return _first(self._steps, path) or self._default
