"""verify_webhook: Clerk's (Svix's) webhook signatures, hostile inputs, rotation, tolerance,
the signing secret, and the testing helpers that sign like Svix."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from typing import Any

import httpx
import pytest
from starlette.datastructures import Headers

from clerk_asgi.exceptions import AuthError, ConfigurationError
from clerk_asgi.testing import FakeClock, make_webhook_secret, sign_webhook
from clerk_asgi.webhooks import (
    WebhookEvent,
    WebhookVerificationError,
    verify_webhook,
)

from .helpers import NOW

SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
OTHER_SECRET = "whsec_dGhpcyBpcyBhbm90aGVyIHNlY3JldCBrZXk="
BODY = b'{"type":"user.created","object":"event","data":{"id":"user_123"}}'
EVENT = {"type": "user.created", "object": "event", "data": {"id": "user_123"}}
MSG_ID = "msg_2KWPBgLlAfxdpx2AI54pPJ85f4W"
STAMP = str(int(NOW))
NO_SECRET = (
    "No webhook signing secret: set CLERK_WEBHOOK_SIGNING_SECRET to the endpoint's Signing "
    "Secret from the Clerk Dashboard (Webhooks, then the endpoint), or pass secret='whsec_...'."
)


def signature(body: bytes = BODY, *, secret: str = SECRET, msg_id: str = MSG_ID,
              stamp: str = STAMP) -> str:  # fmt: skip
    """A v1 signature computed here, from the scheme itself (not from the code under test)."""
    key = base64.b64decode(secret.removeprefix("whsec_"))
    digest = hmac.new(key, f"{msg_id}.{stamp}.".encode() + body, hashlib.sha256).digest()
    return "v1," + base64.b64encode(digest).decode()


def svix(body: bytes = BODY, **changes: str) -> dict[str, str]:
    """Svix's three headers for ``body``, then ``changes`` (``svix_id=...``, ...)."""
    headers = {"svix-id": MSG_ID, "svix-timestamp": STAMP, "svix-signature": signature(body)}
    headers.update({name.replace("_", "-"): value for name, value in changes.items()})
    return headers


def verify(body: bytes, headers: Any, **options: Any) -> WebhookEvent:
    options.setdefault("secret", SECRET)
    options.setdefault("clock", FakeClock(NOW))
    return verify_webhook(body, headers, **options)


def refusal(body: bytes, headers: Any, **options: Any) -> tuple[str, str]:
    """(reason, message) of the WebhookVerificationError verify raises."""
    with pytest.raises(WebhookVerificationError) as caught:
        verify(body, headers, **options)
    return caught.value.reason, caught.value.message


def test_a_signed_event_verifies() -> None:
    """A message signed with the secret verifies: its JSON, its id and timestamp."""
    event = verify(BODY, svix())
    assert event == EVENT
    assert type(event) is WebhookEvent
    assert (event.id, event.timestamp, event.duplicate) == (MSG_ID, int(NOW), False)


def test_the_error_is_an_auth_error_answered_400() -> None:
    """WebhookVerificationError is a ClerkError's AuthError with status 400 and a reason."""
    error = WebhookVerificationError("webhook-signature-invalid", "No.")
    assert isinstance(error, AuthError)
    assert (error.status_code, error.reason, error.message, str(error)) == (
        400,
        "webhook-signature-invalid",
        "No.",
        "No.",
    )


def test_the_error_response_is_the_middleware_refusal() -> None:
    """error.response() is the 400 ClerkMiddleware writes: JSON body and headers, exactly."""
    response = WebhookVerificationError(
        "webhook-body-invalid", "The webhook body is empty."
    ).response()
    assert response.status_code == 400
    assert json.loads(response.body) == {
        "error": "bad_request",
        "reason": "webhook-body-invalid",
        "message": "The webhook body is empty.",
    }
    assert dict(response.headers) == {
        "cache-control": "no-store",
        "x-clerk-auth-status": "signed-out",
        "x-clerk-auth-reason": "webhook-body-invalid",
        "content-type": "application/json",
        "content-length": str(len(response.body)),
    }


# ----------------------------------------------------------------------------------------------
# Hostile headers: each refused with its exact reason and message.

LONG_ID = "m" * 257
SIXTEEN = " ".join([signature(secret=OTHER_SECRET)] * 16)
FULLWIDTH_DIGITS = "\uff11\uff18\uff10\uff10"

BAD_ID = (
    "webhook-headers-invalid",
    "The svix-id header is not a message id: 1 to 256 visible ASCII characters.",
)
BAD_STAMP = (
    "webhook-timestamp-invalid",
    "The svix-timestamp header is not a Unix time in seconds.",
)
NO_V1 = ("webhook-signature-invalid", "The svix-signature header has no v1 signature.")
NO_MATCH = (
    "webhook-signature-invalid",
    "No signature in the svix-signature header matches the signing secret.",
)


def missing(*names: str) -> tuple[str, str]:
    plural = "s" if len(names) > 1 else ""
    return ("webhook-headers-missing", f"Missing webhook header{plural}: {', '.join(names)}.")


HOSTILE_HEADERS = [
    # -- missing
    ({}, missing("svix-id", "svix-timestamp", "svix-signature")),
    (svix(svix_id=""), missing("svix-id")),
    (svix(svix_id=" \t "), missing("svix-id")),
    ({"svix-signature": signature()}, missing("svix-id", "svix-timestamp")),
    (
        {"svix-id": MSG_ID, "webhook-timestamp": STAMP, "webhook-signature": signature()},
        missing("webhook-id"),
    ),
    (
        {"svix-id": MSG_ID, "svix-timestamp": STAMP, "svix-signature": b"v1,x"},
        missing("svix-signature"),
    ),
    # -- the id
    (svix(svix_id=LONG_ID), BAD_ID),
    (svix(svix_id="msg 1"), BAD_ID),
    (svix(svix_id="msg_\u00e9"), BAD_ID),
    (svix(svix_id="msg\x00"), BAD_ID),
    # -- the timestamp
    (svix(svix_timestamp="hello"), BAD_STAMP),
    (svix(svix_timestamp="-1"), BAD_STAMP),
    (svix(svix_timestamp="+" + STAMP), BAD_STAMP),
    (svix(svix_timestamp=STAMP + ".0"), BAD_STAMP),
    (svix(svix_timestamp="1e9"), BAD_STAMP),
    (svix(svix_timestamp=FULLWIDTH_DIGITS), BAD_STAMP),
    (svix(svix_timestamp=STAMP + "000"), BAD_STAMP),  # milliseconds
    (svix(svix_timestamp="9" * 5000), BAD_STAMP),
    (svix(webhook_id="x", svix_timestamp="x"), BAD_STAMP),
    # -- the signatures
    (svix(svix_signature="garbage"), NO_V1),
    (svix(svix_signature="v1"), NO_V1),
    (svix(svix_signature="v2," + signature()[3:]), NO_V1),
    (svix(svix_signature="V1," + signature()[3:]), NO_V1),
    (svix(svix_signature="v1a," + "A" * 88), NO_V1),
    (svix(svix_signature="v1,"), NO_MATCH),
    (svix(svix_signature="v1,@@@@"), NO_MATCH),
    (svix(svix_signature=signature() + ",x"), NO_MATCH),
    (svix(svix_signature=signature().rstrip("=")), NO_MATCH),
    (svix(svix_signature=signature()[:-2] + "="), NO_MATCH),
    (svix(svix_signature="v1," + base64.b64encode(b"\0" * 31).decode()), NO_MATCH),
    (svix(svix_signature=signature(secret=OTHER_SECRET)), NO_MATCH),
    (svix(svix_signature=signature(msg_id="msg_other")), NO_MATCH),
    (svix(svix_signature=signature(stamp=str(int(NOW) - 1))), NO_MATCH),
    # -- oversized
    (
        svix(svix_signature="v1," + "A" * 4094),
        ("webhook-headers-invalid", "The svix-signature header is longer than 4096 characters."),
    ),
    (
        svix(svix_signature=SIXTEEN + " " + signature()),
        ("webhook-headers-invalid", "The svix-signature header has more than 16 signatures."),
    ),
]


@pytest.mark.parametrize(("headers", "expected"), HOSTILE_HEADERS)
def test_hostile_headers_are_refused_with_their_reason(
    headers: dict[str, Any], expected: tuple[str, str]
) -> None:
    """Missing, malformed or oversized headers, and signatures that do not match, are each
    refused with one reason and message (never another exception)."""
    assert refusal(BODY, headers) == expected


def test_sixteen_signatures_are_checked() -> None:
    """Up to 16 signatures are read; the good one may be the last."""
    headers = svix(svix_signature=" ".join([signature(secret=OTHER_SECRET)] * 15 + [signature()]))
    assert verify(BODY, headers) == EVENT


def test_a_malformed_entry_does_not_hide_a_good_signature() -> None:
    """Garbage, other versions and bad base64 beside the good signature are skipped."""
    headers = svix(svix_signature=f"garbage v2,abc v1,@@ v1, {signature()} v1a,xyz")
    assert verify(BODY, headers) == EVENT


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (b"", "The webhook body is empty."),
        (b"\xff\xfe{}", "The webhook body is not UTF-8."),
        ('{"a": 1}'.encode("utf-16"), "The webhook body is not UTF-8."),
        (b"not json", "The webhook body is not JSON."),
        (b'\xef\xbb\xbf{"a": 1}', "The webhook body is not JSON."),
        (b'{"a": 1', "The webhook body is not JSON."),
        (b"[" * 100_000 + b"]" * 100_000, "The webhook body is not JSON."),
        (b'{"n": ' + b"1" * 5000 + b"}", "The webhook body is not JSON."),
        (b"[1, 2]", "The webhook body is not a JSON object."),
        (b'"user.created"', "The webhook body is not a JSON object."),
        (b"null", "The webhook body is not a JSON object."),
    ],
    ids=[
        "empty",
        "not-utf8",
        "utf16",
        "not-json",
        "bom",
        "truncated",
        "nested-deep",
        "huge-int",
        "array",
        "string",
        "null",
    ],
)
def test_a_signed_body_that_is_not_a_json_object_is_refused(body: bytes, message: str) -> None:
    """A correctly signed body that is empty, not UTF-8, not JSON or not an object is refused
    (webhook-body-invalid), after its signature is checked."""
    assert refusal(body, svix(body)) == ("webhook-body-invalid", message)


def test_the_signature_is_checked_before_the_body_is_read() -> None:
    """An unsigned bad body is a signature failure: nothing unauthenticated is parsed."""
    assert refusal(b"not json", svix(BODY))[0] == "webhook-signature-invalid"


def test_the_body_must_be_bytes() -> None:
    """Text is refused with a TypeError saying to pass the raw bytes; bytearray/memoryview
    are bytes."""
    with pytest.raises(TypeError, match="raw request body as bytes, got str"):
        verify(BODY.decode(), svix())  # type: ignore[arg-type]
    assert verify(bytearray(BODY), svix()) == EVENT  # type: ignore[arg-type]
    assert verify(memoryview(BODY), svix()) == EVENT  # type: ignore[arg-type]


# ----------------------------------------------------------------------------------------------
# Header families and lookup.


def test_standard_webhooks_headers_verify() -> None:
    """The webhook-* names alone verify as the svix-* ones do."""
    headers = {name.replace("svix-", "webhook-"): value for name, value in svix().items()}
    assert verify(BODY, headers) == EVENT


def test_with_both_families_the_svix_headers_are_verified() -> None:
    """Both families complete: svix-* are verified, webhook-* ignored (as Svix's library)."""
    good = svix()
    bad = {"webhook-id": "msg_x", "webhook-timestamp": "1", "webhook-signature": "v1,AAAA"}
    assert verify(BODY, {**good, **bad}).id == MSG_ID
    swapped = {
        **svix(svix_signature=signature(secret=OTHER_SECRET)),
        **{name.replace("svix-", "webhook-"): value for name, value in good.items()},
    }
    assert refusal(BODY, swapped) == (
        "webhook-signature-invalid",
        "No signature in the svix-signature header matches the signing secret.",
    )


def test_an_incomplete_svix_family_falls_back_to_a_complete_webhook_family() -> None:
    """svix-id alone does not stop a complete webhook-* family from being verified."""
    headers = {name.replace("svix-", "webhook-"): value for name, value in svix().items()}
    assert verify(BODY, {**headers, "svix-id": "msg_other"}) == EVENT


def test_header_names_are_matched_in_any_case_and_values_trimmed() -> None:
    """Svix-Id, SVIX-TIMESTAMP...; surrounding spaces and tabs are not part of a value."""
    headers = {
        "Svix-Id": f" {MSG_ID}\t",
        "SVIX-TIMESTAMP": f"{STAMP} ",
        "svix-Signature": f"  {signature()}  ",
    }
    assert verify(BODY, headers).id == MSG_ID


def test_starlette_headers_are_read_and_the_first_repeated_header_counts() -> None:
    """Starlette's Headers work; of two svix-signature headers, the first is the one used."""
    raw = [(name.encode(), value.encode()) for name, value in svix().items()]
    assert verify(BODY, Headers(raw=raw)) == EVENT
    repeated = [*raw[:2], (b"svix-signature", b"v1,AAAA"), raw[2]]
    assert refusal(BODY, Headers(raw=repeated))[0] == "webhook-signature-invalid"


# ----------------------------------------------------------------------------------------------
# Rotation: several signatures, several secrets.


def test_either_of_two_signatures_verifies() -> None:
    """During a rotation Svix signs with the old and the new secret: either verifies."""
    both = f"{signature(secret=OTHER_SECRET)} {signature(secret=SECRET)}"
    assert verify(BODY, svix(svix_signature=both), secret=SECRET) == EVENT
    assert verify(BODY, svix(svix_signature=both), secret=OTHER_SECRET) == EVENT


def test_several_secrets_accept_a_signature_by_any() -> None:
    """secret= may list several secrets (a list, or spaces/commas in one string)."""
    third = make_webhook_secret()
    headers = svix(svix_signature=signature(secret=OTHER_SECRET))
    assert verify(BODY, headers, secret=[third, OTHER_SECRET]) == EVENT
    assert verify(BODY, headers, secret=f"{third}, {OTHER_SECRET}") == EVENT
    assert refusal(BODY, headers, secret=[third, SECRET])[0] == "webhook-signature-invalid"


def test_the_secret_comes_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """Without secret=, CLERK_WEBHOOK_SIGNING_SECRET is read (several: spaces or commas)."""
    monkeypatch.setenv("CLERK_WEBHOOK_SIGNING_SECRET", f"{OTHER_SECRET} {SECRET}\n")
    assert verify_webhook(BODY, svix(), clock=FakeClock(NOW)) == EVENT


# ----------------------------------------------------------------------------------------------
# Tolerance, both ways, on a fake clock.


@pytest.mark.parametrize(
    ("tolerance", "offset", "reason"),
    [
        (300, 0, None),
        (300, 300, None),
        (300, 300.5, "webhook-timestamp-too-old"),
        (300, 301, "webhook-timestamp-too-old"),
        (300, -300, None),
        (300, -301, "webhook-timestamp-too-new"),
        (10, 10, None),
        (10, 11, "webhook-timestamp-too-old"),
        (10, -11, "webhook-timestamp-too-new"),
        (0, 0, None),
        (0, 1, "webhook-timestamp-too-old"),
        (0, -1, "webhook-timestamp-too-new"),
        (3600, 3600, None),
        (3600, -3601, "webhook-timestamp-too-new"),
    ],
)
def test_the_timestamp_must_be_within_the_tolerance(
    tolerance: float, offset: float, reason: str | None
) -> None:
    """A timestamp at most ``tolerance`` seconds old or ahead verifies; past it, refused."""
    clock = FakeClock(NOW + offset)  # the message is signed at NOW
    if reason is None:
        assert verify(BODY, svix(), tolerance=tolerance, clock=clock) == EVENT
        return
    direction = "old" if reason.endswith("old") else "in the future"
    assert refusal(BODY, svix(), tolerance=tolerance, clock=clock) == (
        reason,
        f"The webhook's timestamp is more than {tolerance:g} seconds {direction}.",
    )


def test_a_replay_verifies_until_the_tolerance_has_passed() -> None:
    """The same delivery verifies again and again, until the clock passes the tolerance."""
    clock = FakeClock(NOW)
    headers = svix()
    assert verify(BODY, headers, clock=clock) == EVENT
    clock.advance(300)
    assert verify(BODY, headers, clock=clock) == EVENT
    clock.advance(1)
    assert refusal(BODY, headers, clock=clock)[0] == "webhook-timestamp-too-old"


@pytest.mark.parametrize("tolerance", [-1, float("nan"), float("inf"), True, "300", None])
def test_a_bad_tolerance_is_a_configuration_error(tolerance: Any) -> None:
    """tolerance must be a finite number of seconds, 0 or more."""
    with pytest.raises(ConfigurationError, match="tolerance must be a number of seconds"):
        verify(BODY, svix(), tolerance=tolerance)


# ----------------------------------------------------------------------------------------------
# The signing secret.


def test_no_secret_is_a_configuration_error() -> None:
    """No secret= and no CLERK_WEBHOOK_SIGNING_SECRET: a ConfigurationError saying where."""
    for secret in (None, "", "  ", [], ["", " , "]):
        with pytest.raises(ConfigurationError) as caught:
            verify_webhook(BODY, svix(), secret=secret)
        assert str(caught.value) == NO_SECRET


@pytest.mark.parametrize(
    "secret",
    [
        "sk_test_abcdefghijklmnopqrstuvwxyz",
        "pk_test_Y2xlcmsuZXhhbXBsZS5jb20k",
        "whsec_!!!!",
        "whsec_A",
        "whsec_====",
        "whsec_MfKQ9r8G-YqrTwjUPD8ILPZIo2LaLaSw",
        "whpk_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw",
    ],
)
def test_a_malformed_secret_is_a_configuration_error_that_never_shows_it(secret: str) -> None:
    """A secret that is not whsec_ + base64 is refused, without echoing it."""
    with pytest.raises(ConfigurationError) as caught:
        verify_webhook(BODY, svix(), secret=[SECRET, secret])
    assert str(caught.value) == (
        "Webhook signing secret #2 is not a signing secret: it is 'whsec_' followed by base64. "
        "Copy it again from the Clerk Dashboard (Webhooks, then the endpoint)."
    )
    assert secret not in str(caught.value)


def test_secrets_must_be_strings() -> None:
    """A list holding something other than a string is a ConfigurationError."""
    with pytest.raises(ConfigurationError, match="must be strings, got bytes"):
        verify_webhook(BODY, svix(), secret=[SECRET.encode()])  # type: ignore[list-item]


# ----------------------------------------------------------------------------------------------
# clerk_asgi.testing: make_webhook_secret and sign_webhook.


def test_make_webhook_secret_is_whsec_and_24_random_bytes() -> None:
    """A new secret each call, 'whsec_' and the base64 of 24 bytes, usable at once."""
    first, second = make_webhook_secret(), make_webhook_secret()
    assert first != second
    assert first.startswith("whsec_")
    assert len(base64.b64decode(first.removeprefix("whsec_"), validate=True)) == 24
    assert verify(BODY, sign_webhook(BODY, secret=first, timestamp=NOW), secret=first) == EVENT


def test_sign_webhook_gives_svix_headers() -> None:
    """sign_webhook returns exactly Svix's three headers, signed over the exact body."""
    headers = sign_webhook(BODY, secret=SECRET, msg_id=MSG_ID, timestamp=NOW + 0.9)
    assert headers == {"svix-id": MSG_ID, "svix-timestamp": STAMP, "svix-signature": signature()}


def test_sign_webhook_defaults_to_a_new_id_and_now() -> None:
    """Without msg_id and timestamp: a new msg_ id each call, and the current time."""
    first = sign_webhook(BODY, secret=SECRET)
    second = sign_webhook(BODY, secret=SECRET)
    assert first["svix-id"] != second["svix-id"]
    assert first["svix-id"].startswith("msg_")
    assert len(first["svix-id"]) == 31
    assert first["svix-id"][4:].isalnum()
    assert verify_webhook(BODY, first, secret=SECRET) == EVENT  # the real clock


def test_sign_webhook_signs_text_and_dicts() -> None:
    """Text is signed as UTF-8; a dict as compact JSON, what httpx sends for json=."""
    text = '{"type":"user.created","name":"Zoë"}'
    headers = sign_webhook(text, secret=SECRET, msg_id=MSG_ID, timestamp=NOW)
    assert verify(text.encode(), headers) == {"type": "user.created", "name": "Zoë"}
    event = {"type": "user.created", "data": {"name": "Zoë", "tags": ["a", "b"]}}
    sent = httpx.Request("POST", "https://app.example.com/api/webhooks", json=event).content
    headers = sign_webhook(event, secret=SECRET, msg_id=MSG_ID, timestamp=NOW)
    assert verify(sent, headers) == event


def test_sign_webhook_with_several_secrets_gives_one_signature_each() -> None:
    """Several secrets (a rotation): one v1 signature per secret, in order."""
    headers = sign_webhook(BODY, secret=[SECRET, OTHER_SECRET], msg_id=MSG_ID, timestamp=NOW)
    assert headers["svix-signature"] == f"{signature()} {signature(secret=OTHER_SECRET)}"


def test_sign_webhook_refuses_a_malformed_secret() -> None:
    """sign_webhook checks the secret as the verifier does."""
    with pytest.raises(ConfigurationError, match="#1 is not a signing secret"):
        sign_webhook(BODY, secret="sk_test_123")
