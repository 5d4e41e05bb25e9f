"""The route-pattern compiler and RuleMatcher: Clerk's createRouteMatcher syntax (docs/rules.md).

Tables, like uvicorn's ``tests/middleware/test_proxy_headers.py``: each row is one input and
the answer the matcher must give. End-to-end path cases through a real app live in
``test_paths.py``.
"""

from __future__ import annotations

import re
from typing import Any

import pytest
from starlette._utils import get_route_path

from clerk_asgi import STATIC_ASSETS, ConfigurationError, Rule
from clerk_asgi._rules import Pattern, RuleMatcher, route_path

# A default that no row of the pattern table uses, so "matched" means "the rule under test".
DEFAULT = Rule.protect()

#: 8 KiB of path, for the hostile long paths.
KIB8 = 8 * 1024


def matches(pattern: Pattern, path: str) -> bool:
    """Whether ``pattern`` (as the only rule, an api rule) decides ``path``."""
    return RuleMatcher([Rule.api(pattern)], DEFAULT).match(path).kind == "api"


# ---------------------------------------------------------------------------------------------
# Pattern syntax: Clerk's createRouteMatcher (path-to-regexp 6: anchored, case-insensitive,
# optional trailing "/")
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("pattern", "path", "expected"),
    [
        # "/sign-in(.*)": a prefix wildcard, which also matches siblings (docs/rules.md)
        ("/sign-in(.*)", "/sign-in", True),
        ("/sign-in(.*)", "/SIGN-IN", True),
        ("/sign-in(.*)", "/sign-in/", True),
        ("/sign-in(.*)", "/sign-in/factor-one", True),
        ("/sign-in(.*)", "/sign-in/factor-one/verify", True),
        ("/sign-in(.*)", "/sign-inx", True),
        ("/sign-in(.*)", "/x/sign-in", False),
        ("/sign-in(.*)", "/sign-i", False),
        ("/sign-in(.*)", "", False),
        # "/api/(.*)": the group takes the "/" as its prefix, so "/api" itself is not matched
        ("/api/(.*)", "/api/", True),
        ("/api/(.*)", "/api/x", True),
        ("/api/(.*)", "/API/x", True),
        ("/api/(.*)", "/api/x/y/z", True),
        ("/api/(.*)", "/api", False),
        ("/api/(.*)", "/apix", False),
        ("/api/(.*)", "/x/api/x", False),
        # "/dashboard/:path*": the segment-safe subtree form
        ("/dashboard/:path*", "/dashboard", True),
        ("/dashboard/:path*", "/dashboard/", True),
        ("/dashboard/:path*", "/dashboard/a", True),
        ("/dashboard/:path*", "/dashboard/a/b", True),
        ("/dashboard/:path*", "/dashboard/a/b/", True),
        ("/dashboard/:path*", "/DASHBOARD/A/B", True),
        ("/dashboard/:path*", "/dashboardx", False),
        ("/dashboard/:path*", "/dashboard-x/a", False),
        ("/dashboard/:path*", "/x/dashboard", False),
        # "/orgs/:slug": exactly one segment
        ("/orgs/:slug", "/orgs/acme", True),
        ("/orgs/:slug", "/orgs/acme/", True),
        ("/orgs/:slug", "/ORGS/Acme", True),
        ("/orgs/:slug", "/orgs", False),
        ("/orgs/:slug", "/orgs/", False),
        ("/orgs/:slug", "/orgs/acme/members", False),
        ("/orgs/:slug/members", "/orgs/acme/members", True),
        ("/orgs/:slug/members", "/orgs/members", False),
        ("/orgs/:org/projects/:id", "/orgs/acme/projects/7", True),
        ("/orgs/:org/projects/:id", "/orgs/acme/projects", False),
        # ":param?": zero or one segment
        ("/orgs/:slug?", "/orgs", True),
        ("/orgs/:slug?", "/orgs/", True),
        ("/orgs/:slug?", "/orgs/acme", True),
        ("/orgs/:slug?", "/orgs/acme/x", False),
        ("/orgs/:slug?", "/orgsx", False),
        # ":param+": one or more segments
        ("/files/:path+", "/files/a", True),
        ("/files/:path+", "/files/a/b/c", True),
        ("/files/:path+", "/files/a/b/c/", True),
        ("/files/:path+", "/files", False),
        ("/files/:path+", "/files/", False),
        # ":param(regex)": a custom segment pattern, with and without a modifier
        (r"/users/:id(\d+)", "/users/42", True),
        (r"/users/:id(\d+)", "/users/42/", True),
        (r"/users/:id(\d+)", "/users/abc", False),
        (r"/users/:id(\d+)", "/users/4a", False),
        (r"/users/:id(\d+)", "/users/", False),
        (r"/users/:id(\d+)", "/users", False),
        (r"/users/:id(\d+)?", "/users", True),
        (r"/users/:id(\d+)?", "/users/7", True),
        (r"/users/:id(\d+)?", "/users/x", False),
        (r"/users/:id(\d+)/edit", "/users/7/edit", True),
        (r"/users/:id(\d+)/edit", "/users/x/edit", False),
        ("/v/:n(1|2)", "/v/2", True),
        ("/v/:n(1|2)", "/v/3", False),
        # unnamed groups
        ("/(.*)", "/", True),
        ("/(.*)", "/anything/at/all", True),
        ("/blog/(\\d+)", "/blog/12", True),
        ("/blog/(\\d+)", "/blog/x", False),
        # literal patterns: the trailing "/" is optional, nothing else is
        ("/", "/", True),
        ("/", "", False),
        ("/", "/x", False),
        ("/health", "/health", True),
        ("/health", "/health/", True),
        ("/health", "/HEALTH", True),
        ("/health", "/healthz", False),
        ("/health", "/health/x", False),
        ("/health", "/health//", False),
        ("/health", "/x/health", False),
        # escaped and regex-special characters are literal
        (r"/a\(b\)", "/a(b)", True),
        (r"/a\(b\)", "/ab", False),
        (r"/v1\:batch", "/v1:batch", True),
        (r"/v1\:batch", "/v1", False),
        (r"/v1\:batch", "/v1/batch", False),
        ("/file.txt", "/file.txt", True),
        ("/file.txt", "/filextxt", False),
        ("/[x]", "/[x]", True),
        ("/[x]", "/x", False),
        ("/a|b", "/a|b", True),
        ("/a|b", "/a", False),
        ("/a|b", "/b", False),
        ("/price$", "/price$", True),
        ("/price$", "/price", False),
        ("/^x", "/^x", True),
    ],
)
def test_string_pattern(pattern: str, path: str, expected: bool) -> None:
    """A string pattern matches exactly the paths Clerk's createRouteMatcher matches."""
    assert matches(pattern, path) is expected


# ---------------------------------------------------------------------------------------------
# Compiled regexes and callables: used as they are
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("pattern", "path", "expected"),
    [
        # a compiled regex is searched with its own flags and anchors
        (re.compile(r"^/reports/\d+$"), "/reports/12", True),
        (re.compile(r"^/reports/\d+$"), "/REPORTS/12", False),
        (re.compile(r"^/reports/\d+$"), "/reports/12/", False),
        (re.compile(r"^/reports/\d+$"), "/x/reports/12", False),
        (re.compile(r"^/reports/\d+$", re.IGNORECASE), "/REPORTS/12", True),
        (re.compile("/secret"), "/x/secret/y", True),
        (re.compile("/secret"), "/public", False),
        # a callable is called with the route path
        (lambda path: path.endswith("/edit"), "/posts/1/edit", True),
        (lambda path: path.endswith("/edit"), "/posts/1", False),
        (lambda path: path == "/exact", "/exact", True),
        (lambda path: path == "/exact", "/EXACT", False),
    ],
)
def test_regex_and_callable_patterns(pattern: Pattern, path: str, expected: bool) -> None:
    """Compiled regexes (searched as given) and callables (called with the path) are accepted."""
    assert matches(pattern, path) is expected


def test_callable_receives_the_route_path() -> None:
    """A callable is called with the route path only when no earlier rule decided it."""
    calls: list[str] = []

    def record(path: str) -> bool:
        calls.append(path)
        return False

    public = Rule.public("/a")
    matcher = RuleMatcher([public, Rule.api(record), Rule.public("/b")], DEFAULT)
    assert matcher.match("/a") is public
    assert calls == []
    assert matcher.match("/x/Y/") is DEFAULT
    assert calls == ["/x/Y/"]


def test_a_table_with_a_callable_is_never_remembered() -> None:
    """A callable is asked on every request and no path is remembered (``known`` stays empty).

    A callable may answer differently next time.
    """
    answers = iter([True, False])
    editor = Rule.protect(lambda path: next(answers), role="org:editor")
    matcher = RuleMatcher([Rule.public("/a"), editor], DEFAULT)
    assert matcher.match("/doc") is editor
    assert matcher.match("/doc") is DEFAULT
    assert matcher.match("/a").kind == "public"
    assert matcher.known == {}


# ---------------------------------------------------------------------------------------------
# First match wins; no match -> the default (protect)
# ---------------------------------------------------------------------------------------------

ACCOUNT = Rule.protect("/account", "/account/settings")
DOCS = Rule.public("/docs/:path*")
VERSIONED = Rule.api(re.compile(r"^/v\d+/"))
EDITOR = Rule.protect(lambda path: path.endswith("/edit"), role="org:editor")
BLOG = Rule.public("/blog/:path*", "/about")
DRAFTS = Rule.api("/blog/drafts/:path*", role="org:admin")
ADMIN = Rule.protect("/admin(.*)", role="org:admin")
API = Rule.api("/api/(.*)")
TABLE = [ACCOUNT, DOCS, VERSIONED, EDITOR, BLOG, DRAFTS, ADMIN, API]


@pytest.mark.parametrize(
    ("path", "expected"),
    [
        # several patterns of one rule
        ("/account", ACCOUNT),
        ("/account/settings", ACCOUNT),
        ("/account/other", DEFAULT),
        # an earlier rule shadows a later one that also matches
        ("/docs/intro", DOCS),
        ("/docs/intro/edit", DOCS),
        ("/blog/drafts/1", BLOG),
        ("/blog/drafts/1/edit", EDITOR),
        # regex and callable rules between runs of string patterns keep their place
        ("/v2/things", VERSIONED),
        ("/v2/docs/edit", VERSIONED),
        ("/posts/1/edit", EDITOR),
        ("/about", BLOG),
        ("/admin", ADMIN),
        ("/admin/users", ADMIN),
        ("/api/x", API),
        ("/api/admin/edit", EDITOR),
        # nothing matches: the default, protect (sign-in required)
        ("/brand-new-feature", DEFAULT),
        ("/", DEFAULT),
        ("", DEFAULT),
        ("/api", DEFAULT),
    ],
)
def test_first_match_wins(path: str, expected: Rule) -> None:
    """The first rule, in list order, with a matching pattern decides; else the default."""
    assert RuleMatcher(TABLE, DEFAULT).match(path) is expected


def test_no_rules_means_everything_gets_the_default() -> None:
    """An empty rule list sends every path to the default rule."""
    matcher = RuleMatcher([], DEFAULT)
    assert matcher.match("/") is DEFAULT
    assert matcher.match("/sign-in") is DEFAULT


def test_a_public_default_applies_to_ordinary_unmatched_paths() -> None:
    """With default=public, an ordinary unmatched path is public; matched ones keep their rule."""
    public = Rule.public()
    matcher = RuleMatcher([ADMIN], public)
    assert matcher.match("/about") is public
    assert matcher.match("/admin/x") is ADMIN


# ---------------------------------------------------------------------------------------------
# Bad configuration: ConfigurationError (a ValueError) with a message that says what is wrong
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("pattern", "message"),
    [
        # no leading "/"
        ("sign-in(.*)", "must start with '/'"),
        ("", "must start with '/'"),
        ("*", "must start with '/'"),
        ("(.*)", "must start with '/'"),
        # unbalanced "("
        ("/a(b", "Unbalanced '\\('"),
        ("/sign-in(.*", "Unbalanced '\\('"),
        (r"/users/:id(\d+", "Unbalanced '\\('"),
        ("/a((b)", "Unbalanced '\\('"),
        (r"/a(\)", "Unbalanced '\\('"),
        # empty group
        ("/a()", "Empty group"),
        ("/()", "Empty group"),
        # ":" without a name
        ("/users/:", "Missing parameter name"),
        ("/users/:/x", "Missing parameter name"),
        ("/users/:-id", "Missing parameter name"),
        ("/:*", "Missing parameter name"),
        # not a pattern at all
        (42, "must be a string, a compiled regex or a callable"),
        (b"/bytes", "must be a string, a compiled regex or a callable"),
        (None, "must be a string, a compiled regex or a callable"),
        (["/a", "/b"], "must be a string, a compiled regex or a callable"),
    ],
)
def test_bad_pattern_is_a_configuration_error(pattern: object, message: str) -> None:
    """A malformed pattern or a non-pattern raises ConfigurationError when the rules compile."""
    with pytest.raises(ConfigurationError, match=message):
        RuleMatcher([Rule.public("/ok"), Rule.protect(pattern)], DEFAULT)  # type: ignore[arg-type]


def test_configuration_error_is_a_value_error() -> None:
    """Pattern errors can be caught as ValueError, as habit 2 of STYLE.md asks."""
    with pytest.raises(ValueError, match="must start with '/'"):
        RuleMatcher([Rule.public("nope")], DEFAULT)


# ---------------------------------------------------------------------------------------------
# STATIC_ASSETS: a routing convenience for paths ending in a static-file extension
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("path", "expected"),
    [
        # matched: a last segment ending in one of the listed extensions, any case
        ("/favicon.ico", True),
        ("/file.js", True),
        ("/app.mjs", True),
        ("/app.js.map", True),
        ("/img.PNG", True),
        ("/photo.jpeg", True),
        ("/photo.jpg", True),
        ("/a/b/c/style.css", True),
        ("/admin/report.docx", True),
        ("/sheet.xlsx", True),
        ("/font.woff2", True),
        ("/font.ttf", True),
        ("/site.webmanifest", True),
        ("/robots.txt", True),
        ("/index.html", True),
        ("/index.htm", True),
        ("/logo.svg", True),
        ("/archive.zip", True),
        # not matched: other extensions, dots elsewhere, nothing after the dot, trailing "/"
        ("/api/data.json", False),
        ("/report.pdf", False),
        ("/feed.xml", False),
        ("/a.b/c", False),
        ("/blog/my.css-tips", False),
        ("/app.jsx", False),
        ("/style.css/", False),
        ("/style.css/x", False),
        ("/stylecss", False),
        ("/static/", False),
        ("/", False),
        ("/x.js;jsessionid=1", False),
        ("/x.js?", False),
        ("/x.css#", False),
        ("/favicon.ico.php", False),
        ("style.css", False),
    ],
)
def test_static_assets(path: str, expected: bool) -> None:
    """STATIC_ASSETS matches paths whose last segment ends in a static-file extension."""
    assert (STATIC_ASSETS.search(path) is not None) is expected
    assert matches(STATIC_ASSETS, path) is expected


def test_static_assets_after_a_protect_rule_does_not_open_files_under_it() -> None:
    """Listed after protect rules, STATIC_ASSETS cannot make a protected subtree public."""
    assets = Rule.public(STATIC_ASSETS)
    admin = Rule.protect("/admin/:path*")
    matcher = RuleMatcher([admin, assets], DEFAULT)
    assert matcher.match("/admin/report.docx") is admin
    assert matcher.match("/admin/app.js") is admin
    assert matcher.match("/static/app.js") is assets


# ---------------------------------------------------------------------------------------------
# Odd paths (dot segments, "//", "\", control characters) are never public
# ---------------------------------------------------------------------------------------------

PUBLIC = Rule.public("/", "/public/:path*", "/sign-in(.*)", "/api/public(.*)", STATIC_ASSETS)
ODD_API = Rule.api("/api/(.*)")
ODD_ADMIN = Rule.protect("/admin(.*)", role="org:admin")
ODD_TABLE = [PUBLIC, ODD_API, ODD_ADMIN]


@pytest.mark.parametrize(
    ("path", "expected"),
    [
        # a public pattern matches, but the path is odd: the default instead
        ("//", DEFAULT),
        ("/public/../admin", DEFAULT),
        ("/public/..", DEFAULT),
        ("/public/./x", DEFAULT),
        ("/public/.", DEFAULT),
        ("/sign-in/../admin", DEFAULT),
        ("/sign-in//x", DEFAULT),
        ("/sign-in/..", DEFAULT),
        ("/sign-in\\..\\admin", DEFAULT),
        ("/sign-in\\x", DEFAULT),
        ("/sign-in\x00", DEFAULT),
        ("/sign-in\x00/x", DEFAULT),
        ("/sign-in\t", DEFAULT),
        ("/sign-in\r", DEFAULT),
        ("/sign-in\x1f", DEFAULT),
        ("/sign-in\x7f", DEFAULT),
        ("/public/a\x00b", DEFAULT),
        ("/public/a\x1bb", DEFAULT),
        ("/app.js\n", DEFAULT),
        ("/public/x.css/../../admin/x.css", DEFAULT),
        # odd paths still hit the non-public rules that match them
        ("/api/public/../admin", ODD_API),
        ("/api/public//x", ODD_API),
        ("/api/public/./x", ODD_API),
        ("/api/public\x00", ODD_API),
        ("/api/public\\x", ODD_API),
        ("/admin/..", ODD_ADMIN),
        ("/admin//x", ODD_ADMIN),
        ("/admin\\x", ODD_ADMIN),
        ("/admin/../public/x", ODD_ADMIN),
        # dots that are not dot segments are ordinary characters
        ("/public/..foo", PUBLIC),
        ("/public/foo..", PUBLIC),
        ("/public/...", PUBLIC),
        ("/public/.well-known", PUBLIC),
        ("/public/a.b", PUBLIC),
        ("/sign-in/.x", PUBLIC),
        ("/", PUBLIC),
    ],
)
def test_odd_paths_are_never_public(path: str, expected: Rule) -> None:
    """An odd path that a public pattern matches falls through to non-public rules or default."""
    assert RuleMatcher(ODD_TABLE, DEFAULT).match(path) is expected


@pytest.mark.parametrize("path", ["/x/../y", "//x", "/x\\y", "/x\x00", "/x\n", "/x/."])
def test_odd_unmatched_path_with_a_public_default_is_protected(path: str) -> None:
    """default=public never applies to odd paths: they get a plain protect rule."""
    rule = RuleMatcher([ODD_API], Rule.public()).match(path)
    assert (rule.kind, rule.patterns, rule.role, rule.permission) == ("protect", (), None, None)


def test_odd_path_with_a_non_public_default_keeps_that_default() -> None:
    """When the default is not public, odd unmatched paths get that very default."""
    api_default = Rule.api()
    assert RuleMatcher([PUBLIC], api_default).match("/public/../x") is api_default


# ---------------------------------------------------------------------------------------------
# Role-restricted rules must not be skipped by characters the router treats as ordinary
# ---------------------------------------------------------------------------------------------

ROLE_ADMIN = Rule.protect("/admin/:path*", role="org:admin")
ROLE_ADMIN_WILDCARD = Rule.protect("/admin(.*)", role="org:admin")


@pytest.mark.parametrize("path", ["/admin/a?b", "/admin/users/1#x", "/admin/a?b/c", "/admin/#/x"])
def test_question_mark_and_hash_inside_a_segment_stay_in_the_subtree(path: str) -> None:
    """'?' and '#' in a decoded path are ordinary segment characters, as Starlette treats them."""
    assert RuleMatcher([ROLE_ADMIN], Rule.public()).match(path) is ROLE_ADMIN


@pytest.mark.parametrize("path", ["/admin/users/1\nx", "/admin\nx", "/admin/\n/x"])
def test_wildcard_group_spans_newlines(path: str) -> None:
    """'(.*)' covers every character of the path, newlines included."""
    assert RuleMatcher([ROLE_ADMIN_WILDCARD], DEFAULT).match(path) is ROLE_ADMIN_WILDCARD


@pytest.mark.parametrize("path", ["/admin//x", "/admin/users//1", "/admin/x//"])
def test_empty_segments_stay_in_the_subtree(path: str) -> None:
    """A '//' inside a ':path*' subtree does not take the path out of that subtree's rule."""
    assert RuleMatcher([ROLE_ADMIN], DEFAULT).match(path) is ROLE_ADMIN


# ---------------------------------------------------------------------------------------------
# route_path(): scope["path"] minus root_path, exactly as Starlette's get_route_path
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("path", "root_path", "expected"),
    [
        # no root_path
        ("/admin", None, "/admin"),
        ("/admin", "", "/admin"),
        # root_path stripped at a segment boundary (uvicorn --root-path, Mount)
        ("/prefix/admin", "/prefix", "/admin"),
        ("/prefix/api/admin/users", "/prefix", "/api/admin/users"),
        ("/prefix/", "/prefix", "/"),
        ("/prefix", "/prefix", ""),
        ("/prefix/prefix/admin", "/prefix", "/prefix/admin"),
        ("/a/b/c", "/a/b", "/c"),
        # not at a segment boundary, so nothing is stripped
        ("/prefixadmin", "/prefix", "/prefixadmin"),
        ("/prefix-admin", "/prefix", "/prefix-admin"),
        # a path outside root_path is used as it is
        ("/admin", "/prefix", "/admin"),
        ("/PREFIX/admin", "/prefix", "/PREFIX/admin"),
    ],
)
def test_route_path(path: str, root_path: str | None, expected: str) -> None:
    """route_path() strips root_path exactly where Starlette's router does."""
    scope: dict[str, Any] = {"type": "http", "path": path}
    if root_path is not None:
        scope["root_path"] = root_path
    assert route_path(scope) == expected
    assert get_route_path(scope) == expected


def test_prefix_without_separator_is_classified_as_it_is() -> None:
    """root_path /prefix and path /prefixadmin match no rule and get the default."""
    home = Rule.public("/")
    matcher = RuleMatcher([home, ADMIN], DEFAULT)
    assert matcher.match(route_path({"path": "/prefixadmin", "root_path": "/prefix"})) is DEFAULT
    assert matcher.match(route_path({"path": "/prefix/admin", "root_path": "/prefix"})) is ADMIN
    assert matcher.match(route_path({"path": "/prefix/", "root_path": "/prefix"})) is home


# ---------------------------------------------------------------------------------------------
# Hostile 8 KiB paths get the right answer for every pattern kind (no timing here;
# the cost is measured by the benchmark)
# ---------------------------------------------------------------------------------------------


def _path(head: str, unit: str, tail: str = "") -> str:
    """``head`` + ``unit`` repeated to make an 8 KiB path + ``tail``."""
    return head + unit * ((KIB8 - len(head) - len(tail)) // len(unit)) + tail


@pytest.mark.parametrize("pattern", ["/:a-:b", "/(.*)-(.*)", "/:from-:to/x", "/files/:name.:ext"])
def test_two_parameters_in_one_segment_are_refused(pattern: str) -> None:
    """'/:a-:b' (the CVE-2024-45296 shape) backtracks on hostile paths: refused."""
    with pytest.raises(ConfigurationError, match="two parameters or groups in one segment"):
        RuleMatcher([Rule.protect(pattern)], DEFAULT)


@pytest.mark.parametrize(
    ("pattern", "path", "expected"),
    [
        # "(.*)" wildcards
        ("/sign-in(.*)", _path("/sign-in", "a"), True),
        ("/sign-in(.*)", _path("/sign-in", "/a"), True),
        ("/sign-in(.*)", _path("/sign-ix", "/a"), False),
        ("/api/(.*)", _path("/api/", "a/", "!"), True),
        ("/api/(.*)", _path("/", "%2F"), False),
        ("/api/(.*)", _path("/", "/"), False),
        ("/api/(.*)", _path("/api", "x/"), False),
        # user-style double wildcards
        ("/(.*)/x/(.*)/y", _path("/", "x/", "!"), False),
        ("/(.*)/x/(.*)/y", _path("/", "x/", "y"), True),
        # ":path*" / ":path+" subtrees
        ("/dashboard/:path*", _path("/dashboard/", "a/", "!"), True),
        ("/dashboard/:path*", _path("/dashboard/", "a/"), True),
        ("/dashboard/:path*", _path("/dashboardx/", "a/"), False),
        ("/files/:path+", _path("/files/", "a/"), True),
        ("/files/:path+", _path("/files", "x/"), False),
        # one segment, optional segment, custom segment
        ("/orgs/:slug", _path("/orgs/", "a"), True),
        ("/orgs/:slug", _path("/orgs/", "a", "/b"), False),
        ("/orgs/:slug?", _path("/orgs/", "a"), True),
        ("/orgs/:slug?", _path("/orgs/", "a/"), False),
        (r"/users/:id(\d+)", _path("/users/", "1"), True),
        (r"/users/:id(\d+)", _path("/users/", "1", "x"), False),
        ("/api/:path*/docs", _path("/api/", "a/", "docs"), True),
        ("/api/:path*/docs", _path("/api/", "a/", "!"), False),
        # literal
        ("/health", _path("/health", "/"), False),
        # regex preset
        (STATIC_ASSETS, _path("/", "a/", "x.css"), True),
        (STATIC_ASSETS, _path("/", "a.", "x"), False),
        (STATIC_ASSETS, _path("/", "a/", "x.jso"), False),
    ],
)
def test_hostile_long_paths_get_the_right_answer(
    pattern: Pattern, path: str, expected: bool
) -> None:
    """An 8 KiB path built against a pattern's structure is still classified right."""
    assert len(path) <= KIB8
    assert len(path) > KIB8 - 8
    assert matches(pattern, path) is expected


@pytest.mark.parametrize(
    ("path", "expected_kind"),
    [
        (_path("/api/", "a/", "!"), "api"),
        (_path("/", "%2F"), "protect"),
        (_path("/", "/"), "protect"),
        (_path("/public/", "a/", "../admin"), "protect"),
        (_path("/sign-in", "/.."), "protect"),
        (_path("/public/", "a/", "x.css"), "public"),
    ],
)
def test_hostile_long_paths_against_the_whole_table(path: str, expected_kind: str) -> None:
    """8 KiB paths through a full table (one combined regex) get the right rule."""
    assert RuleMatcher(ODD_TABLE, DEFAULT).match(path).kind == expected_kind


def test_the_path_cache_stays_bounded_and_answers_stay_right() -> None:
    """Distinct paths beyond the route cache's size still get the right rule (cache refilled)."""
    admin = Rule.protect("/admin/:path*", role="org:admin")
    matcher = RuleMatcher([Rule.public("/public/:path*"), admin], DEFAULT)
    for i in range(RuleMatcher.CACHE_SIZE + 10):
        assert matcher.match(f"/admin/{i}") is admin
        assert matcher.match(f"/public/{i}").kind == "public"
        assert len(matcher.known) <= RuleMatcher.CACHE_SIZE
    assert matcher.match("/elsewhere") is DEFAULT
    assert matcher.known["/elsewhere"] is DEFAULT
    assert matcher.match("/elsewhere") is DEFAULT  # answered from ``known``


@pytest.mark.parametrize("char", ["\x80", "\x85", "\x9b", "\x9f"])
def test_c1_control_characters_are_odd_too(char: str) -> None:
    """A decoded %C2%85 (U+0085) is a control character like %0A: never public."""
    matcher = RuleMatcher([Rule.public("/pub(.*)")], DEFAULT)
    assert matcher.match(f"/pub/{char}x") is DEFAULT
    assert matcher.match("/pub/x").kind == "public"
