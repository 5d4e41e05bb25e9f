"""Session-token verification: structure, then signature, then claims.

Order (``@clerk/backend`` ``verifyJwt``, hardened against the hostile tokens of
``docs/security.md``):

1. size cap and compact form (three canonical base64url segments) -> ``token-invalid``;
2. JOSE header: a JSON object without duplicate members; ``cat`` a session category,
   ``typ`` absent or ``JWT`` -> else ``token-type-mismatch``/``token-invalid``; no ``crit`` or
   ``b64``; ``alg`` exactly ``RS256`` -> else ``token-invalid-algorithm``; ``kid`` a short
   non-empty string. ``jwk``/``jku``/``x5u``/``x5c`` are never read.
3. payload: a JSON object without duplicate members (not yet trusted);
4. key by ``kid`` (``jwk-kid-mismatch``/``jwk-remote-failed-to-load``), then the RSASSA-PKCS1
   v1.5 SHA-256 signature over the exact received bytes -> ``token-invalid-signature``;
5. claims, only now: ``sub`` (printable ASCII, not a machine ``mch_``), ``sid``, ``azp``,
   ``aud`` (when configured), ``exp``/``nbf``/``iat`` (JSON numbers, clock skew), ``iss``
   (when known), token age (when configured), ``sts``.

Verified tokens are remembered until they expire (bounded, first-in first-out), keyed by the
exact token string: any other spelling of the same token is verified from scratch, and the
signature segment must be canonical, so a cache hit is exactly a token that verified.
"""

from __future__ import annotations

import binascii
import json
import logging
import math
import re
import string
from collections import OrderedDict
from collections.abc import Callable
from typing import Any, Final, Protocol

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.padding import PKCS1v15
from cryptography.hazmat.primitives.asymmetric.rsa import RSAPublicKey
from cryptography.hazmat.primitives.hashes import SHA256

from ._auth import Auth, FrozenDict, FrozenList
from ._keys import MAX_KID_LENGTH, KeysUnavailableError, UnknownKeyError
from ._reasons import (
    JWK_KID_MISMATCH,
    JWK_REMOTE_FAILED_TO_LOAD,
    SESSION_PENDING,
    TOKEN_EXPIRED,
    TOKEN_IAT_IN_THE_FUTURE,
    TOKEN_INVALID,
    TOKEN_INVALID_ALGORITHM,
    TOKEN_INVALID_AUDIENCE,
    TOKEN_INVALID_AUTHORIZED_PARTIES,
    TOKEN_INVALID_ISSUER,
    TOKEN_INVALID_SIGNATURE,
    TOKEN_NOT_ACTIVE_YET,
    TOKEN_TOO_OLD,
    TOKEN_TYPE_MISMATCH,
    TOKEN_VERIFICATION_FAILED,
    UNEXPECTED_ERROR,
)

__all__ = [
    "MAX_TOKEN_LENGTH",
    "KeySet",
    "TokenVerifier",
    "unverified_claims",
    "verify_handshake_token",
    "verify_signature",
]

logger = logging.getLogger(__name__)

MAX_TOKEN_LENGTH: Final = 8192
_HEADER_CACHE_SIZE: Final = 64
_SUBJECT = re.compile(r"[\x21-\x7e]{1,256}")
_SESSION_CATEGORIES: Final = frozenset({"cl_B7d4PD111AAA", "cl_I7d4PD111III"})
_MACHINE_PREFIXES: Final = ("mt_", "oat_", "ak_", "m2m_")
_PKCS1V15: Final = PKCS1v15()
_SHA256: Final = SHA256()
_B64URL_AND_DOT: Final = (string.ascii_letters + string.digits + "-_.").encode("ascii")


class KeySet(Protocol):
    def peek(self, kid: str, now: float | None = None) -> RSAPublicKey | None: ...
    async def get(self, kid: str, *, may_refetch: bool = True) -> RSAPublicKey: ...
    def retry_after(self) -> int: ...


class _Entry:
    """A remembered outcome, good while its key is the current key for its kid.

    A slotted class rather than a NamedTuple: the cache-hit path reads it for every repeated
    token, and unpacking a tuple subclass costs about 1,300 more instructions per request
    (callgrind) than reading slots.
    """

    __slots__ = ("auth", "fresh_until", "key", "kid", "valid_before")

    def __init__(
        self, auth: Auth, valid_before: float, fresh_until: float, kid: str, key: RSAPublicKey
    ) -> None:
        self.auth = auth
        self.valid_before = valid_before  # valid while now < this (exp + clock skew)
        self.fresh_until = fresh_until  # and while now <= this (iat + max_token_age)
        self.kid = kid
        self.key = key


#: Refusals that time can undo (the token becomes valid later): never remembered.
_TRANSIENT: Final = frozenset({TOKEN_NOT_ACTIVE_YET, TOKEN_IAT_IN_THE_FUTURE})


class _Rejected(Exception):
    def __init__(self, reason: str) -> None:
        self.reason = reason


def verify_signature(key: RSAPublicKey, signing_input: bytes, signature: bytes) -> bool:
    """RSASSA-PKCS1-v1_5 with SHA-256: the one primitive every token goes through.

    What PyJWT's ``RSAAlgorithm(SHA256).verify`` does, with the padding and hash objects made
    once instead of per call.
    """
    try:
        key.verify(signature, signing_input, _PKCS1V15, _SHA256)
    except InvalidSignature:
        return False
    return True


def _frozen_list(items: list[Any]) -> FrozenList:
    return FrozenList(_frozen_list(item) if type(item) is list else item for item in items)


def _frozen_object(pairs: list[tuple[str, Any]]) -> FrozenDict:
    """Each JSON object, as it is parsed (innermost first): read-only, no duplicate members."""
    result = FrozenDict(
        (name, _frozen_list(value) if type(value) is list else value) for name, value in pairs
    )
    if len(result) != len(pairs):
        raise ValueError("duplicate member name")
    return result


def _reject_constant(name: str) -> None:
    raise ValueError(f"{name} is not JSON")


# Strict JSON, read-only from the start: no duplicate members, no NaN/Infinity, arrays as tuples.
_DECODER: Final = json.JSONDecoder(
    object_pairs_hook=_frozen_object, parse_constant=_reject_constant
)
_URLSAFE_TO_STANDARD: Final = bytes.maketrans(b"-_", b"+/")


def _json_object(segment: bytes) -> FrozenDict:
    """A base64url segment holding exactly one JSON object, nothing before or after it."""
    try:
        # Padding is appended generously: the non-strict decoder ignores what is not needed.
        data = binascii.a2b_base64(segment.translate(_URLSAFE_TO_STANDARD) + b"==")
        text = data.decode("utf-8")
        value, end = _DECODER.raw_decode(text)
    except (ValueError, RecursionError):  # binascii.Error and UnicodeDecodeError included
        raise _Rejected(TOKEN_INVALID) from None
    if end != len(text) or type(value) is not FrozenDict:
        raise _Rejected(TOKEN_INVALID)
    return value


def _number(value: Any) -> float:
    """A NumericDate: a JSON number (not a bool, a string or null), finite, in float range."""
    kind = type(value)
    if kind is int:  # JSON integers are unbounded
        if -(2**63) < value < 2**63:
            return value  # type: ignore[no-any-return]
    elif kind is float and math.isfinite(value):
        return value  # type: ignore[no-any-return]
    raise _Rejected(TOKEN_VERIFICATION_FAILED)


_B64_VALUE: Final = {
    c: i
    for i, c in enumerate(
        (string.ascii_uppercase + string.ascii_lowercase + string.digits + "-_").encode("ascii")
    )
}
# Bits of the last base64url character that must be zero, by segment length modulo 4.
_TAIL_BITS: Final = {0: 0, 2: 0b1111, 3: 0b11}


def _canonical_signature(segment: bytes) -> bytes:
    """Decode the signature segment, refusing non-canonical spellings (non-zero trailing bits).

    The signature covers the header and payload segments as written, so only the signature
    segment itself could be re-spelled without breaking verification.
    """
    unused = _TAIL_BITS.get(len(segment) % 4)
    if unused is None or _B64_VALUE[segment[-1]] & unused:
        raise _Rejected(TOKEN_INVALID)
    return binascii.a2b_base64(segment.translate(_URLSAFE_TO_STANDARD) + b"==")


class TokenVerifier:
    """Turns a token string into an :class:`Auth` (signed in, or signed out with a reason)."""

    def __init__(
        self,
        keys: KeySet,
        *,
        clock: Callable[[], float],
        issuer: str | None = None,
        authorized_parties: frozenset[str] = frozenset(),
        audience: frozenset[str] = frozenset(),
        clock_skew: float = 5.0,
        treat_pending_as_signed_out: bool = True,
        max_token_age: float | None = None,
        cache_size: int = 4096,
    ) -> None:
        self.keys = keys
        self._clock = clock
        self._issuer = issuer
        self._parties = authorized_parties
        self._audience = audience
        self._skew = clock_skew
        self._pending_signed_out = treat_pending_as_signed_out
        self._max_age = max_token_age
        self._cache_size = cache_size
        # Accepted JOSE header segments -> kid: an instance signs with a handful of headers.
        self._headers: dict[bytes, str] = {}
        self._cache: OrderedDict[str, _Entry] = OrderedDict()
        # Tokens whose signature was checked and that can never pass (bad signature for the
        # current key, expired, wrong azp/iss...): a stale tab repeating its expired cookie, or a
        # replayed forgery, costs a lookup instead of an RSA check. Kept apart, and smaller, so
        # rejected tokens can never push valid ones out.
        self._rejected: OrderedDict[str, _Entry] = OrderedDict()

    def cached(self, token: str) -> Auth | None:
        """The Auth of a token verified before and still valid, without any I/O; else None.

        A hit is re-checked every time: ``exp`` (with skew) and ``max_token_age`` against the
        clock, and the key that verified it must still be the current, fresh key for its kid.
        """
        cache = self._cache
        hit = cache.get(token)
        if hit is None:
            cache = self._rejected
            hit = cache.get(token)
            if hit is None:
                return None
        now = self._clock()
        if (
            now < hit.valid_before
            and now <= hit.fresh_until
            and self.keys.peek(hit.kid, now) is hit.key
        ):
            return hit.auth
        del cache[token]
        return None

    async def authenticate(self, token: str) -> Auth:
        """The Auth of ``token``: from the cache, else verified. Never raises for any input."""
        return self.cached(token) or await self.verify(token)

    async def verify(self, token: str) -> Auth:
        """Verify ``token`` from scratch (and remember the outcome when it is final). Never
        raises, whatever the input."""
        try:
            return await self._verify(token)
        except _Rejected as rejected:
            return Auth.signed_out(rejected.reason)
        except KeysUnavailableError:
            return Auth.signed_out(JWK_REMOTE_FAILED_TO_LOAD)
        except UnknownKeyError:
            return Auth.signed_out(JWK_KID_MISMATCH)
        except Exception as exc:  # a safety net: no input may turn into a 500
            logger.error("Unexpected %s while verifying a session token", type(exc).__name__)
            return Auth.signed_out(UNEXPECTED_ERROR)

    async def _verify(self, token: str) -> Auth:
        # Compact form: three non-empty base64url segments, nothing else (bytes.translate
        # deletes every allowed byte: anything left over is a stray character).
        raw = token.encode("ascii", "replace")
        allowed = len(raw) <= MAX_TOKEN_LENGTH and not raw.translate(None, _B64URL_AND_DOT)
        segments = raw.split(b".") if allowed else []
        if len(segments) != 3 or not all(segments):
            if token.startswith(_MACHINE_PREFIXES):
                raise _Rejected(TOKEN_TYPE_MISMATCH)
            raise _Rejected(TOKEN_INVALID)
        header_b64, payload_b64, signature_b64 = segments
        kid = self._headers.get(header_b64)
        if kid is None:
            kid = self._check_header(_json_object(header_b64))
            if len(self._headers) >= _HEADER_CACHE_SIZE:
                self._headers.clear()
            self._headers[header_b64] = kid
        claims = _json_object(payload_b64)
        signature = _canonical_signature(signature_b64)

        key = self.keys.peek(kid)
        if key is None:
            key = await self.keys.get(kid, may_refetch=self._worth_a_refetch(claims))
        signing_input = raw[: len(header_b64) + 1 + len(payload_b64)]
        try:
            if not verify_signature(key, signing_input, signature):
                raise _Rejected(TOKEN_INVALID_SIGNATURE)
            exp, iat = self._check_claims(claims)
        except _Rejected as rejected:
            if rejected.reason in _TRANSIENT:
                raise
            # Final: remember the refusal while this key is current.
            refusal = Auth.signed_out(rejected.reason)
            self._remember(self._rejected, token, _Entry(refusal, math.inf, math.inf, kid, key))
            return refusal
        auth = Auth.from_claims(claims, token)
        if auth.session_status == "pending" and self._pending_signed_out:
            auth = Auth.signed_out(SESSION_PENDING, session_status="pending")
        fresh_until = math.inf if self._max_age is None else iat + self._max_age  # type: ignore[operator]
        self._remember(self._cache, token, _Entry(auth, exp + self._skew, fresh_until, kid, key))
        return auth

    @staticmethod
    def _check_header(header: dict[str, Any]) -> str:
        category = header.get("cat")
        if category is not None and (
            not isinstance(category, str) or category not in _SESSION_CATEGORIES
        ):
            raise _Rejected(TOKEN_TYPE_MISMATCH)
        typ = header.get("typ")
        if typ is not None and typ != "JWT":
            at_jwt = typ in ("at+jwt", "application/at+jwt")
            raise _Rejected(TOKEN_TYPE_MISMATCH if at_jwt else TOKEN_INVALID)
        if "crit" in header or "b64" in header:
            raise _Rejected(TOKEN_INVALID)
        if header.get("alg") != "RS256":
            raise _Rejected(TOKEN_INVALID_ALGORITHM)
        kid = header.get("kid")
        if not isinstance(kid, str) or not 0 < len(kid) <= MAX_KID_LENGTH:
            raise _Rejected(TOKEN_INVALID)
        return kid

    def _worth_a_refetch(self, claims: dict[str, Any]) -> bool:
        """Cheap unverified checks before an unknown-kid refetch; a failure changes no answer."""
        exp = claims.get("exp")
        if not isinstance(exp, int | float) or exp <= self._clock() - self._skew:
            return False
        return self._issuer is None or claims.get("iss") == self._issuer

    def _check_claims(self, claims: dict[str, Any]) -> tuple[float, float | None]:
        sub = claims.get("sub")
        if not isinstance(sub, str) or not _SUBJECT.fullmatch(sub):
            raise _Rejected(TOKEN_VERIFICATION_FAILED)
        if sub.startswith("mch_"):
            raise _Rejected(TOKEN_TYPE_MISMATCH)
        sid = claims.get("sid")
        if not isinstance(sid, str) or not sid:
            raise _Rejected(TOKEN_TYPE_MISMATCH)
        azp = claims.get("azp")
        if self._parties and (not isinstance(azp, str) or azp not in self._parties):
            raise _Rejected(TOKEN_INVALID_AUTHORIZED_PARTIES)
        if self._audience:
            aud = claims.get("aud")
            values = (aud,) if isinstance(aud, str) else aud
            if not isinstance(values, tuple) or self._audience.isdisjoint(
                v for v in values if isinstance(v, str)
            ):
                raise _Rejected(TOKEN_INVALID_AUDIENCE)
        exp = _number(claims.get("exp"))
        nbf = _number(claims["nbf"]) if "nbf" in claims else None
        iat = _number(claims["iat"]) if "iat" in claims else None
        now = self._clock()
        if exp <= now - self._skew:
            raise _Rejected(TOKEN_EXPIRED)
        if nbf is not None and nbf > now + self._skew:
            raise _Rejected(TOKEN_NOT_ACTIVE_YET)
        if iat is not None and iat > now + self._skew:
            raise _Rejected(TOKEN_IAT_IN_THE_FUTURE)
        if self._issuer is not None and claims.get("iss") != self._issuer:
            raise _Rejected(TOKEN_INVALID_ISSUER)
        if self._max_age is not None and (iat is None or now - iat > self._max_age):
            raise _Rejected(TOKEN_TOO_OLD)
        return exp, iat

    def _remember(self, cache: OrderedDict[str, _Entry], token: str, entry: _Entry) -> None:
        size = self._cache_size if cache is self._cache else self._cache_size // 4
        if size <= 0:
            return
        if len(cache) >= size:
            cache.popitem(last=False)  # first in, first out
        cache[token] = entry


def unverified_claims(token: str) -> FrozenDict | None:
    """The payload of a compact JWT, *not verified*: for choices that never grant access (which
    cookie is the session, is it older than ``__client_uat``). None when it is not one."""
    segments = token.encode("ascii", "replace").split(b".")
    if len(segments) != 3 or len(token) > MAX_TOKEN_LENGTH:
        return None
    try:
        return _json_object(segments[1])
    except _Rejected:
        return None


async def verify_handshake_token(keys: KeySet, token: str) -> list[str] | None:
    """The ``handshake`` directives of a legacy ``__clerk_handshake`` token, or None.

    As ``@clerk/backend`` ``verifyHandshakeToken``: the JOSE header is checked like a session
    token's (RS256, ``typ``, and a ``cat`` that is not another token category, so a JWT
    template cannot smuggle directives), then the signature; no time or subject claims.
    """
    raw = token.encode("ascii", "replace")
    segments = raw.split(b".")
    if len(raw) > MAX_TOKEN_LENGTH or len(segments) != 3 or not all(segments):
        return None
    try:
        kid = TokenVerifier._check_header(_json_object(segments[0]))
        claims = _json_object(segments[1])
        signature = _canonical_signature(segments[2])
        key = keys.peek(kid) or await keys.get(kid, may_refetch=True)
    except (_Rejected, KeysUnavailableError, UnknownKeyError):
        return None
    if not verify_signature(key, raw[: len(segments[0]) + 1 + len(segments[1])], signature):
        return None
    directives = claims.get("handshake")
    if not isinstance(directives, tuple) or not all(isinstance(d, str) for d in directives):
        return None
    return list(directives)
