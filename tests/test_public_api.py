"""The public surface: exported names, the core's independence from FastAPI, and the
keyword-only signatures the docs promise.

Which names each public module must export is derived from the modules themselves, as httpx's
``tests/test_exported_members.py`` does: adding a public name to the package needs no edit
here, only its place in ``__all__``.
"""

from __future__ import annotations

import ast
import dataclasses
import importlib
import inspect
import pkgutil
import re
import subprocess
import sys
from types import ModuleType

import pytest

import clerk_asgi
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


def public_modules() -> list[ModuleType]:
    """The package and every module of it whose dotted name has no ``_`` component."""
    names = ["clerk_asgi"]
    for info in pkgutil.walk_packages(clerk_asgi.__path__, "clerk_asgi."):
        if not any(part.startswith("_") for part in info.name.split(".")):
            names.append(info.name)
    return [importlib.import_module(name) for name in sorted(names)]


PUBLIC_MODULES = public_modules()


def own_public_names(module: ModuleType) -> set[str]:
    """Public names ``module`` defines, or imports from its own submodules (re-exports).

    Read from the source: a top-level ``def``, ``class`` or assignment, or a
    ``from .sub import name`` of a module below this one. A name imported from elsewhere (the
    standard library, FastAPI, or a sibling such as ``clerk_asgi._auth`` imported by
    ``clerk_asgi.fastapi``) is used there, not offered.
    """
    tree = ast.parse(inspect.getsource(module))
    is_package = hasattr(module, "__path__")
    package = module.__name__ if is_package else module.__name__.rpartition(".")[0]
    names: set[str] = set()
    for node in tree.body:
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
            names.add(node.name)
        elif isinstance(node, ast.Assign):
            names.update(target.id for target in node.targets if isinstance(target, ast.Name))
        elif isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name):
            names.add(node.target.id)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package
                for _ in range(node.level - 1):
                    base = base.rpartition(".")[0]
                source = f"{base}.{node.module}" if node.module else base
            else:
                source = node.module or ""
            if source.startswith(module.__name__ + "."):
                names.update(alias.asname or alias.name for alias in node.names)
    return {name for name in names if not name.startswith("_")}


#: Public-looking names a module defines without exporting them. Keep this empty: each entry is
#: either API (add it to ``__all__``) or private (give it a leading underscore in the source).
NOT_EXPORTED: dict[str, set[str]] = {"clerk_asgi.testing": {"SESSION_CATEGORY"}}


def isort_key(name: str) -> tuple[int, str]:
    """ruff RUF022's order: SCREAMING_CASE constants, then CamelCase classes, then the rest."""
    if name.isupper():
        return (0, name)
    if name[:1].isupper():
        return (1, name)
    return (2, name)


def test_the_public_modules_are_found() -> None:
    """The derivation below sees the package and its public modules, no private one."""
    names = [module.__name__ for module in PUBLIC_MODULES]
    assert {"clerk_asgi", "clerk_asgi.exceptions", "clerk_asgi.fastapi", "clerk_asgi.testing"} <= (
        set(names)
    )
    assert not [name for name in names if "._" in name]


@pytest.mark.parametrize("module", PUBLIC_MODULES, ids=lambda module: module.__name__)
def test_every_public_name_is_in_all(module: ModuleType) -> None:
    """Every public name a module defines or re-exports from its submodules is in __all__."""
    assert own_public_names(module), "nothing found: the derivation is broken"
    missing = own_public_names(module) - set(module.__all__)
    assert missing == NOT_EXPORTED.get(module.__name__, set())


@pytest.mark.parametrize("module", PUBLIC_MODULES, ids=lambda module: module.__name__)
def test_all_is_sorted(module: ModuleType) -> None:
    """Each public module's __all__ is sorted as ruff's RUF022 sorts it, without repeats."""
    assert sorted(module.__all__, key=isort_key) == module.__all__
    assert len(set(module.__all__)) == len(module.__all__)


@pytest.mark.parametrize("module", PUBLIC_MODULES, ids=lambda module: module.__name__)
def test_every_name_in_all_resolves(module: ModuleType) -> None:
    """Each name of a public module's __all__ is an attribute of the module."""
    for name in module.__all__:
        assert getattr(module, name) is not None, name


def test_the_names_every_guide_uses_are_exported() -> None:
    """Auth, ClerkMiddleware, Rule, current_auth, require_auth and get_auth are all exported."""
    contract = {"ClerkMiddleware", "Rule", "Auth", "current_auth", "require_auth", "get_auth"}
    assert contract <= set(clerk_asgi.__all__)


def test_star_import_gives_exactly_all() -> None:
    """``from clerk_asgi import *`` binds exactly the names of __all__."""
    namespace: dict[str, object] = {}
    exec("from clerk_asgi import *", namespace)  # noqa: S102 - a fixed literal, no input
    namespace.pop("__builtins__")
    assert sorted(namespace) == sorted(clerk_asgi.__all__)


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


def test_middleware_signature_has_the_documented_keywords() -> None:
    """The keywords of docs/configuration.md "All parameters" exist with their defaults."""
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


def test_auth_has_the_documented_fields() -> None:
    """Auth exposes every field docs/auth.md lists."""
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
