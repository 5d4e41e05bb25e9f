"""Token extraction: the Authorization header and the ``__session`` cookie, as Clerk reads them.

Pure functions, so one table per function, grouped by comment headings. End-to-end precedence
(header over cookie, two Authorization headers) is pinned in test_token_sources.py and
test_session_cookie.py.
"""

from __future__ import annotations

import pytest

from clerk_asgi._request import (
    MAX_CACHED_COOKIE_HEADER,
    _parse_cached,
    clerk_cookies,
    session_cookie,
    token_from_authorization,
)

T = "eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJ1c2VyXzEifQ.c2ln"  # a token-shaped string
F = "eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJmb3JnZWQifQ.Zm9yZ2Vk"  # another one, "forged"


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        # Bearer, exact case: the rest of the value is the token
        pytest.param(f"Bearer {T}", T, id="bearer"),
        pytest.param("Bearer abc", "abc", id="bearer-short"),
        # bare token (no space): the whole value is the token
        pytest.param(T, T, id="bare-token"),
        pytest.param("Bearer", "Bearer", id="bearer-alone-is-a-bare-token"),
        pytest.param("Bearer ", "Bearer", id="bearer-trailing-space-is-a-bare-token"),
        pytest.param("Bearer-invalid", "Bearer-invalid", id="bearer-dash-is-a-bare-token"),
        # anything after the first space is kept whole: verification then refuses it
        pytest.param(f"Bearer  {T}", f" {T}", id="two-spaces-keeps-the-space"),
        pytest.param(f"Bearer {T} extra", f"{T} extra", id="trailing-garbage-kept"),
        pytest.param(f"Bearer {T},Bearer {T}", f"{T},Bearer {T}", id="comma-list-kept-whole"),
        # other schemes, including other spellings of Bearer, yield nothing (cookie is used)
        pytest.param(f"bearer {T}", None, id="lowercase-bearer"),
        pytest.param(f"BEARER {T}", None, id="uppercase-bearer"),
        pytest.param(f"BeArEr {T}", None, id="mixed-case-bearer"),
        pytest.param("Basic dXNlcjpwYXNz", None, id="basic"),
        pytest.param(f"Token {T}", None, id="token-scheme"),
        pytest.param(f"Digest {T}", None, id="digest"),
        # empty
        pytest.param("", None, id="empty"),
    ],
)
def test_token_from_authorization(value: str, expected: str | None) -> None:
    """Clerk's parser: exact-case Bearer or a bare token yield one; other schemes yield None."""
    assert token_from_authorization(value) == expected


@pytest.mark.parametrize(
    ("headers", "expected"),
    [
        # plain
        pytest.param([f"__session={T}".encode()], T, id="alone"),
        pytest.param([f"a=1; __session={T}; b=2".encode()], T, id="between-neighbours"),
        pytest.param([f"a=1;__session={T};b=2".encode()], T, id="no-spaces"),
        pytest.param([f"__session = {T}".encode()], T, id="spaces-around-equals"),
        pytest.param([f"  __session={T}  ".encode()], T, id="surrounding-whitespace"),
        # first duplicate wins (Clerk), in both orders and across Cookie headers
        pytest.param([f"__session={T}; __session={F}".encode()], T, id="dup-first-valid"),
        pytest.param([f"__session={F}; __session={T}".encode()], F, id="dup-first-forged"),
        pytest.param(
            [f"__session={T}".encode(), f"__session={F}".encode()], T, id="two-headers-first"
        ),
        pytest.param(
            [f"__session={F}".encode(), f"__session={T}".encode()], F, id="two-headers-reverse"
        ),
        pytest.param(
            [b"a=1", f"b=2; __session={T}".encode()], T, id="second-header-holds-the-cookie"
        ),
        pytest.param(
            [f"__session=; __session={T}".encode()], None, id="empty-first-duplicate-wins"
        ),
        # quoted values are unquoted, then percent-decoded
        pytest.param([f'__session="{T}"'.encode()], T, id="quoted"),
        pytest.param([b'__session="a%3Db"'], "a=b", id="quoted-then-decoded"),
        pytest.param([b'__session="'], '"', id="lone-quote-kept"),
        pytest.param([b'__session="abc'], '"abc', id="unbalanced-quote-kept"),
        pytest.param([b'__session=""'], None, id="empty-quoted"),
        # percent-decoding happens after splitting: %3B cannot forge a cookie
        pytest.param([f"sid=x%3B__session%3D{T}%3B__client_uat%3D1".encode()], None, id="forge"),
        pytest.param([b"__session=a%3Bb"], "a;b", id="encoded-semicolon-stays-in-value"),
        pytest.param([b"__session=a%20b"], "a b", id="decoded"),
        pytest.param([b"__session=a%zzb"], "a%zzb", id="malformed-escape-kept"),
        pytest.param([b"__session=a%C0b"], "a%C0b", id="invalid-utf8-escape-kept"),
        pytest.param([b"__session=a=b=c"], "a=b=c", id="equals-in-value"),
        # malformed neighbours never hide the session cookie
        pytest.param([f"$Version=1; __session={T}".encode()], T, id="version-attribute"),
        pytest.param([f'a="unterminated; __session={T}'.encode()], T, id="unterminated-quote"),
        pytest.param([f"foo=%C0; __session={T}".encode()], T, id="bad-escape-neighbour"),
        pytest.param([f"novalue; __session={T}".encode()], T, id="no-equals-neighbour"),
        pytest.param([f";;; =x; __session={T}".encode()], T, id="empty-pairs"),
        pytest.param([b"\xff\xfe=\x80; __session=" + T.encode()], T, id="non-latin1-neighbour"),
        # empty or absent
        pytest.param([], None, id="no-cookie-header"),
        pytest.param([b""], None, id="empty-header"),
        pytest.param([b"__session="], None, id="empty-value"),
        pytest.param([b"__session=   "], None, id="blank-value"),
        pytest.param([b"__session"], None, id="no-equals"),
        pytest.param([b"other=1"], None, id="other-cookie-only"),
        # only the exact name
        pytest.param([f"__session_abc={T}".encode()], None, id="suffixed-name"),
        pytest.param([f"__sessionX={T}".encode()], None, id="longer-name"),
        pytest.param([f"__Session={T}".encode()], None, id="other-case"),
        pytest.param([f"session={T}".encode()], None, id="no-underscores"),
        pytest.param([f"x__session={T}".encode()], None, id="name-suffix-match"),
        pytest.param([f"__session_abc={F}; __session={T}".encode()], T, id="lookalike-then-real"),
    ],
)
def test_session_cookie(headers: list[bytes], expected: str | None) -> None:
    """The first __session across raw Cookie headers: split on ';' first, then unquote/decode."""
    assert session_cookie(headers) == expected


def test_session_cookie_reads_another_name() -> None:
    """The cookie name is a parameter; other names are then ignored."""
    assert session_cookie([f"__session={F}; __session_Qvf={T}".encode()], "__session_Qvf") == T


def test_a_repeated_cookie_header_is_read_once() -> None:
    """The same header bytes give the same read-only parse, shared between requests."""
    header = f"_ga=GA1.1.1; __session={T}; __client_uat=1700000000".encode()
    first = clerk_cookies([header])
    again = clerk_cookies([bytes(bytearray(header))])  # equal bytes, another object
    assert again is first
    assert dict(first) == {"__session": T, "__client_uat": "1700000000"}


def test_long_or_several_cookie_headers_are_read_every_time() -> None:
    """Headers over 8 KiB, and several Cookie headers, are parsed but never kept."""
    before = _parse_cached.cache_info().currsize
    long = f"pad={'x' * MAX_CACHED_COOKIE_HEADER}; __session={T}".encode()
    assert session_cookie([long]) == T
    assert session_cookie([b"a=1", f"__session={T}".encode()]) == T
    assert clerk_cookies([long]) is not clerk_cookies([long])
    assert _parse_cached.cache_info().currsize == before
