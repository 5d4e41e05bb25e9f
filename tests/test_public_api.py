"""The public surface: exported names, the core's independence from FastAPI, and the
keyword-only signatures DESIGN.md §1 promises."""

from __future__ import annotations

import dataclasses
import inspect
import re
import subprocess
import sys
from types import ModuleType

import pytest

import clerk_asgi
import clerk_asgi.fastapi
import clerk_asgi.testing
from clerk_asgi import (
    Auth,
    AuthError,
    ClerkError,
    ClerkMiddleware,
    ConfigurationError,
    ForbiddenError,
    MiddlewareNotInstalledError,
    Rule,
    SignedOutError,
    require_auth,
)

CORE_NAMES = [
    "API_DOCS",
    "AUTH_SCOPE_KEY",
    "STATIC_ASSETS",
    "Auth",
    "AuthError",
    "ClerkError",
    "ClerkMiddleware",
    "ConfigurationError",
    "ForbiddenError",
    "MiddlewareNotInstalledError",
    "Rule",
    "ServiceUnavailableError",
    "SignedOutError",
    "current_auth",
    "get_auth",
    "require_auth",
]
TESTING_NAMES = [
    "FakeClock",
    "JWKSTransport",
    "KeyPair",
    "MockClerk",
    "jwks",
    "jwks_handler",
    "mint_session_token",
]
FASTAPI_NAMES = ["AuthErrorBody", "CurrentAuth", "SignedInAuth", "auth_responses", "docs_rule"]


def isort_key(name: str) -> tuple[int, str]:
    """ruff RUF022's order: SCREAMING_CASE constants, then CamelCase classes, then the rest."""
    if name.isupper():
        return (0, name)
    if name[:1].isupper():
        return (1, name)
    return (2, name)


@pytest.mark.parametrize(
    ("module", "names"),
    [
        (clerk_asgi, CORE_NAMES),
        (clerk_asgi.testing, TESTING_NAMES),
        (clerk_asgi.fastapi, FASTAPI_NAMES),
    ],
    ids=["clerk_asgi", "testing", "fastapi"],
)
def test_all_is_exact_sorted_and_resolves(module: ModuleType, names: list[str]) -> None:
    """Each public module's __all__ is exactly the promised names, sorted, each importable."""
    assert module.__all__ == names
    assert sorted(module.__all__, key=isort_key) == module.__all__
    for name in module.__all__:
        assert getattr(module, name) is not None, name


def test_design_contract_names_are_exported() -> None:
    """The six names of DESIGN §1's import line are all in clerk_asgi.__all__."""
    contract = {"ClerkMiddleware", "Rule", "Auth", "current_auth", "require_auth", "get_auth"}
    assert contract <= set(clerk_asgi.__all__)


def test_star_import_gives_exactly_all() -> None:
    """``from clerk_asgi import *`` binds exactly the names of __all__."""
    namespace: dict[str, object] = {}
    exec("from clerk_asgi import *", namespace)  # noqa: S102 - a fixed literal, no input
    namespace.pop("__builtins__")
    assert sorted(namespace) == sorted(clerk_asgi.__all__)


def test_every_public_testing_helper_is_exported() -> None:
    """Every public class and function defined in clerk_asgi.testing is listed in __all__."""
    defined = {
        name
        for name, value in vars(clerk_asgi.testing).items()
        if not name.startswith("_")
        and (inspect.isclass(value) or inspect.isfunction(value))
        and value.__module__ == "clerk_asgi.testing"
    }
    assert defined <= set(clerk_asgi.testing.__all__)


def test_version_is_a_string() -> None:
    """clerk_asgi.__version__ is a PEP 440-looking version string."""
    assert re.fullmatch(r"\d+\.\d+\.\d+.*", clerk_asgi.__version__)


def test_exception_hierarchy() -> None:
    """ClerkError is the root of ConfigurationError, MiddlewareNotInstalledError and AuthError."""
    assert issubclass(ConfigurationError, ClerkError)
    assert issubclass(ConfigurationError, ValueError)
    assert issubclass(MiddlewareNotInstalledError, ClerkError)
    assert issubclass(MiddlewareNotInstalledError, RuntimeError)
    assert issubclass(AuthError, ClerkError)
    assert issubclass(SignedOutError, AuthError)
    assert issubclass(ForbiddenError, AuthError)
    assert (SignedOutError.status_code, ForbiddenError.status_code) == (401, 403)


def test_importing_the_core_does_not_import_fastapi() -> None:
    """``import clerk_asgi`` (and clerk_asgi.testing) leaves fastapi unimported."""
    code = (
        "import sys, clerk_asgi, clerk_asgi.testing; "
        "assert 'fastapi' not in sys.modules, sorted(m for m in sys.modules if 'fastapi' in m)"
    )
    # S603: our own interpreter with a fixed argument list, no shell.
    result = subprocess.run(  # noqa: S603
        [sys.executable, "-c", code], capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stderr


def test_middleware_signature_is_keyword_only() -> None:
    """ClerkMiddleware(app, *, ...): everything after app is keyword-only, no *args/**kwargs."""
    parameters = list(inspect.signature(ClerkMiddleware).parameters.values())
    assert parameters[0].name == "app"
    assert parameters[0].kind is inspect.Parameter.POSITIONAL_OR_KEYWORD
    assert all(p.kind is inspect.Parameter.KEYWORD_ONLY for p in parameters[1:])


def test_middleware_signature_has_the_design_keywords() -> None:
    """The DESIGN §1 keywords exist with their documented defaults."""
    parameters = inspect.signature(ClerkMiddleware).parameters
    for name in (
        "rules",
        "default",
        "sign_in_url",
        "authorized_parties",
        "publishable_key",
        "secret_key",
        "jwt_key",
        "jwks_url",
        "issuer",
        "api_url",
        "clock_skew",
        "http_client",
    ):
        assert name in parameters, name
    for name in (
        "sign_in_url",
        "authorized_parties",
        "publishable_key",
        "secret_key",
        "jwt_key",
        "jwks_url",
        "issuer",
        "api_url",
        "http_client",
    ):
        assert parameters[name].default is None, name
    assert parameters["clock_skew"].default == 5
    assert parameters["default"].default == "protect"


def test_middleware_rejects_unknown_keywords() -> None:
    """A misspelt keyword is a TypeError, not silently ignored."""
    with pytest.raises(TypeError):
        ClerkMiddleware(lambda *_: None, jwt_keys="x")  # type: ignore[arg-type, call-arg]


def test_middleware_rejects_positional_options() -> None:
    """Options cannot be passed positionally."""
    with pytest.raises(TypeError):
        ClerkMiddleware(lambda *_: None, [])  # type: ignore[arg-type, call-arg]


@pytest.mark.parametrize(
    ("function", "keywords"),
    [
        (Rule.protect, ["role", "permission", "unauthorized_url"]),
        (Rule.api, ["role", "permission"]),
        (require_auth, ["role", "permission", "feature", "plan", "reverification"]),
        (Auth.has, ["role", "permission", "feature", "plan", "reverification"]),
    ],
    ids=["Rule.protect", "Rule.api", "require_auth", "Auth.has"],
)
def test_authorization_keywords(function: object, keywords: list[str]) -> None:
    """Rule.protect/api, require_auth and Auth.has take their conditions keyword-only."""
    parameters = inspect.signature(function).parameters  # type: ignore[arg-type]
    for name in keywords:
        assert parameters[name].kind is inspect.Parameter.KEYWORD_ONLY, name
        assert parameters[name].default is None, name


def test_rule_constructors_take_patterns_positionally() -> None:
    """Rule.public/protect/api take any number of patterns positionally."""
    for factory in (Rule.public, Rule.protect, Rule.api):
        parameters = list(inspect.signature(factory).parameters.values())
        assert parameters[0].kind is inspect.Parameter.VAR_POSITIONAL


def test_auth_has_the_design_fields() -> None:
    """Auth exposes every field DESIGN §1 names."""
    fields = {field.name for field in dataclasses.fields(Auth)}
    assert {
        "user_id",
        "session_id",
        "org_id",
        "org_role",
        "org_slug",
        "org_permissions",
        "session_status",
        "actor",
        "claims",
        "token",
        "reason",
    } <= fields
    assert isinstance(inspect.getattr_static(Auth, "is_signed_in"), property)
