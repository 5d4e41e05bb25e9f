"""``ClerkBackend.sessions``: the Session value, get, list (every page), revoke, "sign out
everywhere", and path segments no id can escape; against FakeClerk's Backend API and, for
shapes FakeClerk never sends, an ``httpx.MockTransport`` script."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import jwt
import pytest
from fastapi import FastAPI
from starlette.applications import Starlette

from clerk_asgi import ClerkMiddleware, Rule
from clerk_asgi.backend import (
    BackendAPIError,
    BackendNotFoundError,
    ClerkBackend,
    RedisRevocationList,
    RevocationList,
    Session,
)
from clerk_asgi.testing import FakeClerk, FakeClock, KeyPair

from ._backend_helpers import (
    MS,
    SESSION,
    Script,
    answer,
    backend,
    clerk_error,
    ids,
    ok,
    on_fake,
    session_json,
)

pytestmark = pytest.mark.anyio


@pytest.fixture
def fake(key: KeyPair, clock: FakeClock) -> FakeClerk:
    return FakeClerk(key=key, clock=clock)


def at(ms: int) -> datetime:
    return datetime.fromtimestamp(ms / 1000, tz=UTC)


# -- the Session value ---------------------------------------------------------------------------


def test_session_from_clerks_json() -> None:
    """Every field of Clerk's Session object, timestamps as aware UTC datetimes."""
    session = Session.from_json(SESSION)
    assert session == Session(
        id="sess_2g7np7Hrk0SN6kj5EDMLDaKNL0S",
        user_id="user_2g7np7Hrk0SN6kj5EDMLDaKNL0S",
        client_id="client_2g7np7Hrk0SN6kj5EDMLDaKNL0S",
        status="active",
        created_at=datetime(2024, 5, 28, 8, 0, tzinfo=UTC),
        updated_at=datetime(2024, 5, 28, 8, 0, 1, 500_000, tzinfo=UTC),
        last_active_at=at(MS),
        expire_at=at(MS + 86_400_000),
        abandon_at=at(MS + 30 * 86_400_000),
        last_active_organization_id="org_2g7np7Hrk0SN6kj5EDMLDaKNL0S",
    )
    assert session.latest_activity == SESSION["latest_activity"]
    assert session.actor == {"sub": "user_impersonator", "iss": "https://dashboard.clerk.com"}
    assert session.raw == SESSION
    assert session.is_active
    assert session.created_at is not None
    assert session.created_at.tzinfo is UTC


def test_session_is_read_only() -> None:
    """The value and its JSON cannot be changed (a copy is kept: the input is not aliased)."""
    data = session_json("sess_1")
    session = Session.from_json(data)
    data["status"] = "revoked"
    data["latest_activity"]["city"] = "Paris"
    assert session.status == "active"
    assert session.raw["status"] == "active"
    assert session.latest_activity is not None
    assert session.latest_activity["city"] == "San Francisco"
    with pytest.raises(AttributeError):
        session.status = "revoked"  # type: ignore[misc]
    with pytest.raises(TypeError):
        session.raw["status"] = "revoked"  # type: ignore[index]
    with pytest.raises(TypeError):
        session.latest_activity["city"] = "Paris"  # type: ignore[index]


def test_unknown_status_new_fields_and_absent_optionals_are_kept() -> None:
    """A status Clerk adds later and fields it adds later are kept; absent times are None."""
    data = {
        "id": "sess_1",
        "user_id": "user_1",
        "client_id": "client_1",
        "status": "quarantined",
        "some_new_field": {"nested": [1, 2]},
    }
    session = Session.from_json(data)
    assert (session.status, session.is_active) == ("quarantined", False)
    assert session.raw["some_new_field"] == {"nested": [1, 2]}
    assert (session.created_at, session.expire_at, session.latest_activity, session.actor) == (
        None,
        None,
        None,
        None,
    )


@pytest.mark.parametrize(
    ("status", "active"),
    [
        ("active", True),
        ("pending", True),
        ("ended", False),
        ("expired", False),
        ("removed", False),
        ("replaced", False),
        ("revoked", False),
        ("abandoned", False),
    ],
)
def test_is_active(status: str, active: bool) -> None:
    """Only active and pending sessions count as still in use."""
    assert Session.from_json(session_json("sess_1", status=status)).is_active is active


MALFORMED_SESSIONS = [
    pytest.param(["sess_1"], "a session is not a JSON object", id="array"),
    pytest.param(None, "a session is not a JSON object", id="null"),
    pytest.param({**SESSION, "id": None}, "a session has no id", id="id-null"),
    pytest.param(
        {k: v for k, v in SESSION.items() if k != "id"}, "a session has no id", id="no-id"
    ),
    pytest.param({**SESSION, "id": ""}, "a session has no id", id="id-empty"),
    pytest.param({**SESSION, "user_id": 7}, "a session has no user_id", id="user-id-number"),
    pytest.param({**SESSION, "client_id": []}, "a session has no client_id", id="client-id-list"),
    pytest.param({**SESSION, "status": None}, "a session has no status", id="status-null"),
    pytest.param(
        {**SESSION, "created_at": "yesterday"},
        "a session's created_at is not a timestamp",
        id="time-string",
    ),
    pytest.param(
        {**SESSION, "expire_at": True}, "a session's expire_at is not a timestamp", id="time-bool"
    ),
    pytest.param(
        {**SESSION, "abandon_at": 10**30}, "a session's abandon_at is out of range", id="time-huge"
    ),
    pytest.param(
        {**SESSION, "updated_at": float("nan")},
        "a session's updated_at is not a timestamp",
        id="time-nan",
    ),
    pytest.param(
        {**SESSION, "latest_activity": "Chrome"},
        "a session's latest_activity is not an object",
        id="activity-string",
    ),
    pytest.param(
        {**SESSION, "actor": ["user_x"]}, "a session's actor is not an object", id="actor-list"
    ),
    pytest.param(
        {**SESSION, "last_active_organization_id": 5},
        "a session's last_active_organization_id is not a string",
        id="org-number",
    ),
]


@pytest.mark.parametrize(("data", "message"), MALFORMED_SESSIONS)
def test_malformed_session_is_invalid_response(data: Any, message: str) -> None:
    """A malformed session object is BackendAPIError invalid-response, never a KeyError."""
    with pytest.raises(BackendAPIError) as raised:
        Session.from_json(data)
    error = raised.value
    assert (type(error), error.status, error.code, error.message) == (
        BackendAPIError,
        200,
        "invalid-response",
        message,
    )


def test_deeply_nested_session_is_invalid_response() -> None:
    """A session whose extra field nests past what can be copied is refused, not a 500."""
    deep: Any = []
    for _ in range(100_000):
        deep = [deep]
    with pytest.raises(BackendAPIError) as raised:
        Session.from_json({**SESSION, "extra": deep})
    assert raised.value.message == "a session is nested too deeply"


# -- get ----------------------------------------------------------------------------------------


async def test_get(fake: FakeClerk, clock: FakeClock) -> None:
    """GET /v1/sessions/{id} on FakeClerk: the Session, as Clerk's milliseconds say."""
    user_id = fake.add_user()
    session_id = fake.sign_in(user_id).session_id
    session = await on_fake(fake).sessions.get(session_id)
    assert (session.id, session.user_id, session.status) == (session_id, user_id, "active")
    assert session.created_at == datetime.fromtimestamp(clock.now, tz=UTC)
    assert session.expire_at == datetime.fromtimestamp(clock.now + 7 * 86_400, tz=UTC)
    assert session.raw["object"] == "session"
    assert ("GET", f"/v1/sessions/{session_id}") in fake.requests


async def test_get_unknown_session_is_not_found(fake: FakeClerk) -> None:
    """An unknown session: BackendNotFoundError with Clerk's code and message."""
    with pytest.raises(BackendNotFoundError) as raised:
        await on_fake(fake).sessions.get("sess_nope")
    error = raised.value
    assert (error.status, error.code, error.message) == (
        404,
        "resource_not_found",
        "No session was found",
    )


async def test_get_malformed_answer() -> None:
    """A 200 that is not a session: invalid-response."""
    with pytest.raises(BackendAPIError) as raised:
        await backend(Script(ok({"object": "session"}))).sessions.get("sess_1")
    assert (raised.value.code, raised.value.message) == ("invalid-response", "a session has no id")


# -- path segments ------------------------------------------------------------------------------

HOSTILE_IDS = [
    ("../users", "/v1/sessions/%2E%2E%2Fusers"),
    ("..", "/v1/sessions/%2E%2E"),
    (".", "/v1/sessions/%2E"),
    ("a/b", "/v1/sessions/a%2Fb"),
    ("?x=1", "/v1/sessions/%3Fx%3D1"),
    ("#top", "/v1/sessions/%23top"),
    ("%2e%2e", "/v1/sessions/%252e%252e"),
    ("sess 1", "/v1/sessions/sess%201"),
    ("sess\r\nX: y", "/v1/sessions/sess%0D%0AX%3A%20y"),
    ("é", "/v1/sessions/%C3%A9"),
]


@pytest.mark.parametrize(("session_id", "path"), HOSTILE_IDS)
async def test_session_ids_never_change_the_endpoint(session_id: str, path: str) -> None:
    """Every id is one percent-encoded path segment (dots too), for every call."""
    jwt = {"object": "token", "jwt": "a.b.c"}
    script = Script(ok(SESSION), ok(SESSION), ok(jwt), ok(jwt))
    sessions = backend(script).sessions
    await sessions.get(session_id)
    await sessions.revoke(session_id)
    await sessions.token(session_id)
    await sessions.token(session_id, template=session_id)
    segment = path.removeprefix("/v1/sessions/")
    assert script.seen == [
        ("GET", path),
        ("POST", path + "/revoke"),
        ("POST", path + "/tokens"),
        ("POST", path + "/tokens/" + segment),
    ]


@pytest.mark.parametrize(
    ("value", "error", "message"),
    [
        pytest.param("", ValueError, "session_id must not be empty", id="empty"),
        pytest.param(None, TypeError, "session_id must be a string, got NoneType", id="none"),
        pytest.param(7, TypeError, "session_id must be a string, got int", id="int"),
    ],
)
async def test_session_id_must_be_a_non_empty_string(
    value: Any, error: type[Exception], message: str
) -> None:
    """An empty or non-string id is refused before any request (``/v1/sessions/`` lists)."""
    script = Script()
    sessions = backend(script).sessions
    for call in (sessions.get, sessions.revoke, sessions.token):
        with pytest.raises(error) as raised:
            await call(value)
        assert str(raised.value) == message
    assert script.requests == []


# -- list ---------------------------------------------------------------------------------------


async def test_list_on_fake_clerk(fake: FakeClerk, clock: FakeClock) -> None:
    """By user, by client, by status; newest first; sessions of others never listed."""
    user_id = fake.add_user()
    first = fake.sign_in(user_id)
    clock.advance(1)
    second = fake.sign_in(user_id)
    clock.advance(1)
    fake.sign_in(fake.add_user())
    fake.revoke(first.session_id)
    sessions = on_fake(fake).sessions
    assert ids(await sessions.list(user_id=user_id)) == [second.session_id, first.session_id]
    assert ids(await sessions.list(user_id=user_id, status="active")) == [second.session_id]
    assert ids(await sessions.list(user_id=user_id, status="revoked")) == [first.session_id]
    assert ids(await sessions.list(client_id=first.id)) == [first.session_id]
    assert await sessions.list(user_id="user_nobody") == []


async def test_list_follows_every_page(fake: FakeClerk, clock: FakeClock) -> None:
    """250 sessions come in three pages of 100, all of them, each once."""
    user_id = fake.add_user()
    expected = []
    for _ in range(250):
        expected.append(fake.sign_in(user_id).session_id)
        clock.advance(1)
    fake.requests.clear()
    found = await on_fake(fake).sessions.list(user_id=user_id)
    assert ids(found) == expected[::-1]
    assert [path for _, path in fake.requests] == ["/v1/sessions"] * 3


async def test_list_query() -> None:
    """paginated=true, limit=100 and offset on every page; the filters as given."""
    page = [session_json(f"sess_{i}") for i in range(100)]
    script = Script(ok({"data": page, "total_count": 101}), ok({"data": [], "total_count": 101}))
    found = await backend(script).sessions.list(user_id="user_1", client_id="client_1")
    assert len(found) == 100
    queries = [dict(r.url.params) for r in script.requests]
    assert queries == [
        {
            "user_id": "user_1",
            "client_id": "client_1",
            "paginated": "true",
            "limit": "100",
            "offset": offset,
        }
        for offset in ("0", "100")
    ]


async def test_list_accepts_a_bare_array() -> None:
    """A server answering the documented bare array is followed while pages are full."""
    full = [session_json(f"sess_{i}") for i in range(100)]
    script = Script(ok(full), ok([session_json("sess_last")]))
    found = await backend(script).sessions.list(user_id="user_1")
    assert ids(found) == [f"sess_{i}" for i in range(100)] + ["sess_last"]
    assert len(script.requests) == 2


async def test_list_stops_at_total_count() -> None:
    """A full page that reaches total_count is the last one asked for."""
    full = [session_json(f"sess_{i}") for i in range(100)]
    script = Script(ok({"data": full, "total_count": 100}))
    assert len(await backend(script).sessions.list(user_id="user_1")) == 100
    assert len(script.requests) == 1


async def test_list_counts_a_shifted_session_once() -> None:
    """A session pushed to the next page by a new one (newest first) is listed once."""
    first = [session_json(f"sess_{i}") for i in range(100)]
    second = [session_json("sess_99"), session_json("sess_100")]
    script = Script(ok({"data": first, "total_count": 102}), ok({"data": second}))
    found = await backend(script).sessions.list(user_id="user_1")
    assert ids(found) == [f"sess_{i}" for i in range(101)]


async def test_list_from_a_server_that_never_ends_is_bounded() -> None:
    """A server whose pages never end is given up after 50 pages: invalid-response."""
    full = [session_json(f"sess_{i}") for i in range(100)]
    calls = 0

    def forever(request: httpx.Request) -> httpx.Response:
        nonlocal calls
        calls += 1
        return ok({"data": full, "total_count": 10**9})

    with pytest.raises(BackendAPIError) as raised:
        await backend(forever).sessions.list(user_id="user_1")
    assert (raised.value.code, raised.value.message) == (
        "invalid-response",
        "the session list goes on past 5000 sessions",
    )
    assert calls == 50


@pytest.mark.parametrize(
    "body",
    [
        pytest.param({"data": "sess_1"}, id="data-string"),
        pytest.param({"total_count": 1}, id="no-data"),
        pytest.param("sess_1", id="string"),
        pytest.param(None, id="null"),
    ],
)
async def test_list_malformed_answer(body: Any) -> None:
    """A listing that is neither an array nor ``{"data": [...]}``: invalid-response."""
    with pytest.raises(BackendAPIError) as raised:
        await backend(Script(ok(body))).sessions.list(user_id="user_1")
    assert (raised.value.code, raised.value.message) == (
        "invalid-response",
        "the session list is malformed",
    )


async def test_list_malformed_item() -> None:
    """A malformed session in a listing: invalid-response, the listing refused."""
    with pytest.raises(BackendAPIError) as raised:
        await backend(Script(ok([SESSION, {"id": 1}]))).sessions.list(user_id="user_1")
    assert raised.value.message == "a session has no id"


async def test_list_pending_and_unknown_statuses_are_filtered_here() -> None:
    """``pending`` (which Clerk's filter refuses) and unknown statuses are filtered locally."""
    listing = [
        session_json("sess_a", status="pending"),
        session_json("sess_b", status="active"),
        session_json("sess_c", status="quarantined"),
    ]
    script = Script(ok(listing), ok(listing))
    sessions = backend(script).sessions
    assert ids(await sessions.list(user_id="user_1", status="pending")) == ["sess_a"]
    assert ids(await sessions.list(user_id="user_1", status="quarantined")) == ["sess_c"]
    assert all("status" not in r.url.params for r in script.requests)


@pytest.mark.parametrize(
    ("options", "error", "message"),
    [
        pytest.param(
            {},
            ValueError,
            "sessions.list() needs user_id= or client_id=: Clerk lists no sessions without one.",
            id="neither",
        ),
        pytest.param({"status": "active"}, ValueError, "sessions.list() needs", id="status-only"),
        pytest.param({"user_id": ""}, ValueError, "user_id must not be empty", id="empty-user"),
        pytest.param(
            {"client_id": 5}, TypeError, "client_id must be a string, got int", id="client-int"
        ),
        pytest.param(
            {"user_id": "user_1", "status": 1},
            TypeError,
            "status must be a string, got int",
            id="status-int",
        ),
    ],
)
async def test_list_arguments(
    options: dict[str, Any], error: type[Exception], message: str
) -> None:
    """Without user_id or client_id, or with non-strings: refused before any request."""
    script = Script()
    with pytest.raises(error) as raised:
        await backend(script).sessions.list(**options)
    assert str(raised.value).startswith(message)
    assert script.requests == []


# -- revoke and the revocation list -------------------------------------------------------------


async def test_revoke_on_fake_clerk(fake: FakeClerk, clock: FakeClock) -> None:
    """POST .../revoke: the session comes back revoked, and is listed as revoked."""
    session_id = fake.sign_in(fake.add_user()).session_id
    revocations = RevocationList(clock=clock)
    clerk = on_fake(fake, revocation_list=revocations)
    assert clerk.revocation_list is revocations
    session = await clerk.sessions.revoke(session_id)
    assert (session.id, session.status) == (session_id, "revoked")
    assert fake.sessions[session_id].status == "revoked"
    assert await revocations.is_revoked(session_id)
    clock.advance(65)
    assert not await revocations.is_revoked(session_id)


async def test_revoke_an_ended_session(fake: FakeClerk, clock: FakeClock) -> None:
    """Revoking a session that already ended answers it as it is; it is listed all the same."""
    session_id = fake.sign_in(fake.add_user()).session_id
    fake.sign_out(session_id)
    revocations = RevocationList(clock=clock)
    session = await on_fake(fake, revocation_list=revocations).sessions.revoke(session_id)
    assert session.status == "ended"
    assert await revocations.is_revoked(session_id)


async def test_a_failed_revoke_is_not_listed(fake: FakeClerk, clock: FakeClock) -> None:
    """An unknown session is BackendNotFoundError, and the list is not fed."""
    revocations = RevocationList(clock=clock)
    with pytest.raises(BackendNotFoundError):
        await on_fake(fake, revocation_list=revocations).sessions.revoke("sess_nope")
    assert not await revocations.is_revoked("sess_nope")


async def test_revoke_without_a_revocation_list(fake: FakeClerk) -> None:
    """Without a list, revoking only asks Clerk."""
    session_id = fake.sign_in(fake.add_user()).session_id
    clerk = on_fake(fake)
    assert clerk.revocation_list is None
    assert (await clerk.sessions.revoke(session_id)).status == "revoked"


async def test_revoke_feeds_a_redis_revocation_list(fake: FakeClerk, redis_url: str) -> None:
    """The Redis list is fed the same way: another process's list sees the revocation."""
    session_id = fake.sign_in(fake.add_user()).session_id
    ours, theirs = RedisRevocationList(redis_url), RedisRevocationList(redis_url)
    try:
        await on_fake(fake, revocation_list=ours).sessions.revoke(session_id)
        assert await theirs.is_revoked(session_id)
    finally:
        await ours.aclose()
        await theirs.aclose()


# -- sign out everywhere ------------------------------------------------------------------------


async def test_revoke_all_keeps_the_current_session(fake: FakeClerk, clock: FakeClock) -> None:
    """Every active session of the user is revoked but ``keep``; others' are untouched."""
    user_id = fake.add_user()
    here, phone, tablet = (fake.sign_in(user_id).session_id for _ in range(3))
    ended = fake.sign_in(user_id).session_id
    fake.sign_out(ended)
    stranger = fake.sign_in(fake.add_user()).session_id
    revocations = RevocationList(clock=clock)
    clerk = on_fake(fake, revocation_list=revocations)
    revoked = await clerk.sessions.revoke_all(user_id=user_id, keep=here)
    assert sorted(ids(revoked)) == sorted([phone, tablet])
    assert all(session.status == "revoked" for session in revoked)
    statuses = {sid: fake.sessions[sid].status for sid in (here, phone, tablet, ended, stranger)}
    assert statuses == {
        here: "active",
        phone: "revoked",
        tablet: "revoked",
        ended: "ended",
        stranger: "active",
    }
    listed = [sid for sid in (here, phone, tablet, ended) if await revocations.is_revoked(sid)]
    assert sorted(listed) == sorted([phone, tablet])


async def test_revoke_all_without_keep(fake: FakeClerk) -> None:
    """``keep=None`` signs the user out everywhere, this device included."""
    user_id = fake.add_user()
    sessions = [fake.sign_in(user_id).session_id for _ in range(2)]
    revoked = await on_fake(fake).sessions.revoke_all(user_id=user_id)
    assert sorted(ids(revoked)) == sorted(sessions)
    assert await on_fake(fake).sessions.list(user_id=user_id, status="active") == []


async def test_revoke_all_revokes_pending_sessions() -> None:
    """Pending sessions (signed in, tasks left) are revoked too; ended ones are not asked for."""
    listing = [
        session_json("sess_p", status="pending"),
        session_json("sess_e", status="expired"),
        session_json("sess_a"),
    ]
    script = Script(
        ok(listing),
        ok(session_json("sess_p", status="revoked")),
        ok(session_json("sess_a", status="revoked")),
    )
    revoked = await backend(script).sessions.revoke_all(user_id="user_1")
    assert ids(revoked) == ["sess_p", "sess_a"]
    assert script.seen[1:] == [
        ("POST", "/v1/sessions/sess_p/revoke"),
        ("POST", "/v1/sessions/sess_a/revoke"),
    ]


async def test_revoke_all_skips_a_session_gone_meanwhile(clock: FakeClock) -> None:
    """A session that vanished between listing and revoking (404) is skipped."""
    gone = answer(404, clerk_error("resource_not_found", "No session was found"))
    script = Script(
        ok([session_json("sess_a"), session_json("sess_b")]),
        gone,
        ok(session_json("sess_b", status="revoked")),
    )
    revocations = RevocationList(clock=clock)
    revoked = await backend(script, revocation_list=revocations).sessions.revoke_all(
        user_id="user_1"
    )
    assert ids(revoked) == ["sess_b"]
    assert not await revocations.is_revoked("sess_a")
    assert await revocations.is_revoked("sess_b")


async def test_revoke_all_tries_every_session_before_failing(clock: FakeClock) -> None:
    """One failed revocation does not stop the others; the first error is raised after."""
    broken = answer(400, clerk_error("session_not_revokable", "The session cannot be revoked"))
    script = Script(
        ok([session_json("sess_a"), session_json("sess_b")]),
        broken,
        ok(session_json("sess_b", status="revoked")),
    )
    revocations = RevocationList(clock=clock)
    with pytest.raises(BackendAPIError) as raised:
        await backend(script, revocation_list=revocations).sessions.revoke_all(user_id="user_1")
    assert (raised.value.status, raised.value.code) == (400, "session_not_revokable")
    assert len(script.requests) == 3
    assert await revocations.is_revoked("sess_b")


@pytest.mark.parametrize(
    ("options", "error", "message"),
    [
        pytest.param({"user_id": ""}, ValueError, "user_id must not be empty", id="empty-user"),
        pytest.param(
            {"user_id": "user_1", "keep": 3}, TypeError, "keep must be a string, got int", id="keep"
        ),
    ],
)
async def test_revoke_all_arguments(
    options: dict[str, Any], error: type[Exception], message: str
) -> None:
    """Bad arguments are refused before any request."""
    script = Script()
    with pytest.raises(error) as raised:
        await backend(script).sessions.revoke_all(**options)
    assert str(raised.value) == message
    assert script.requests == []


def test_reprs() -> None:
    """The resource's repr names the client, never the key."""
    clerk = backend(Script())
    assert repr(clerk.sessions) == "Sessions(ClerkBackend(api_url='https://api.clerk.com'))"


# -- docs/backend.md: its examples run as the page says ------------------------------------------

GUIDE = Path(__file__).resolve().parent.parent / "docs" / "backend.md"
_BLOCK = re.compile(r"^```python\n(.*?)^```$", re.DOTALL | re.MULTILINE)


def guide_blocks() -> list[str]:
    return _BLOCK.findall(GUIDE.read_text(encoding="utf-8"))


def run_guide_block(index: int, fake: FakeClerk, monkeypatch: pytest.MonkeyPatch) -> dict[str, Any]:
    """Execute the page's ``index``-th Python block with the fake's secret key in the
    environment, as a reader's shell would provide CLERK_SECRET_KEY."""
    monkeypatch.setenv("CLERK_SECRET_KEY", fake.secret_key)
    namespace: dict[str, Any] = {"__name__": "guide_example"}
    # S102: executing our own documentation is the point of this test.
    exec(compile(guide_blocks()[index], str(GUIDE), "exec"), namespace)  # noqa: S102
    return namespace


def guide_app(
    fake: FakeClerk, clock: FakeClock, namespace: dict[str, Any], **options: Any
) -> httpx.AsyncClient:
    """The block's router in a FastAPI app behind ClerkMiddleware trusting the fake; the
    block's ``clerk`` rebound to one reaching the fake in process."""
    namespace["clerk"] = on_fake(fake, clock=clock, revocation_list=namespace.get("revocations"))
    app = FastAPI()
    app.include_router(namespace["router"])
    app.add_middleware(
        ClerkMiddleware,
        jwt_key=fake.key.public_pem,
        issuer=fake.issuer,
        clock=clock,
        rules=[Rule.api("/api/:path*")],
        **options,
    )
    return httpx.AsyncClient(transport=httpx.ASGITransport(app), base_url="https://app.test")


def test_the_guide_has_the_blocks_checked_here() -> None:
    """Six Python blocks, in the order the checks below expect."""
    blocks = guide_blocks()
    assert len(blocks) == 6
    assert "def session_info" in blocks[1]
    assert "def sign_out_everywhere" in blocks[2]
    assert "def rows" in blocks[3]
    assert "def install" in blocks[4]
    assert "sdk = Clerk(" in blocks[5]


async def test_guide_setup_and_revocation_blocks(
    fake: FakeClerk, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The opening block and the revocation-list block build what they say."""
    first = run_guide_block(0, fake, monkeypatch)
    assert first["clerk"].revocation_list is first["revocations"]
    assert first["clerk"].api_url == "https://api.clerk.com"
    namespace = run_guide_block(4, fake, monkeypatch)
    assert namespace["clerk"].revocation_list is namespace["revocations"]
    app = Starlette()
    namespace["install"](app)
    assert [m.kwargs["revocation_list"] for m in app.user_middleware] == [namespace["revocations"]]


async def test_guide_session_info(
    fake: FakeClerk, clock: FakeClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    """GET /api/session: the token's times and the session's, from the Backend API."""
    session_id = fake.sign_in(fake.add_user()).session_id
    namespace = run_guide_block(1, fake, monkeypatch)
    token = fake.session_token(session_id)
    async with guide_app(fake, clock, namespace) as c:
        r = await c.get("/api/session", headers={"authorization": f"Bearer {token}"})
    now = datetime.fromtimestamp(clock.now, UTC)
    assert r.status_code == 200, r.text
    assert r.json() == {
        "session_id": session_id,
        "token_issued_at": now.isoformat(),
        "token_expires_at": datetime.fromtimestamp(clock.now + 60, UTC).isoformat(),
        "status": "active",
        "session_expires_at": datetime.fromtimestamp(clock.now + 7 * 86_400, UTC).isoformat(),
        "last_active_at": now.isoformat(),
        "browser": None,
        "city": None,
    }


async def test_guide_devices_and_sign_out_everywhere(
    fake: FakeClerk, clock: FakeClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    """List devices, sign one out (never another user's), sign out everywhere else: the
    revoked sessions' live tokens are refused at once (the same revocation list)."""
    user_id = fake.add_user()
    here, phone, laptop = (fake.sign_in(user_id).session_id for _ in range(3))
    stranger = fake.sign_in(fake.add_user()).session_id
    namespace = run_guide_block(2, fake, monkeypatch)
    tokens = {sid: fake.session_token(sid) for sid in (here, phone, laptop)}

    def as_(sid: str) -> dict[str, str]:
        return {"authorization": f"Bearer {tokens[sid]}"}

    async with guide_app(fake, clock, namespace, revocation_list=namespace["revocations"]) as c:
        listed = await c.get("/api/devices", headers=as_(here))
        foreign = await c.post(f"/api/devices/{stranger}/sign-out", headers=as_(here))
        unknown = await c.post("/api/devices/sess_nope/sign-out", headers=as_(here))
        signed_out = await c.post(f"/api/devices/{phone}/sign-out", headers=as_(here))
        phone_after = await c.get("/api/devices", headers=as_(phone))
        everywhere = await c.post("/api/sign-out-everywhere", headers=as_(here))
        laptop_after = await c.get("/api/devices", headers=as_(laptop))
        here_after = await c.get("/api/devices", headers=as_(here))
    assert listed.status_code == 200
    assert sorted((d["id"], d["current"]) for d in listed.json()) == sorted(
        [(here, True), (phone, False), (laptop, False)]
    )
    assert (foreign.status_code, foreign.json()) == (404, {"detail": "No such device"})
    assert (unknown.status_code, unknown.json()) == (404, {"detail": "No such device"})
    assert fake.sessions[stranger].status == "active"
    assert (signed_out.status_code, signed_out.json()) == (200, {"status": "revoked"})
    assert phone_after.status_code == 401
    assert phone_after.headers["x-clerk-auth-reason"] == "session-revoked"
    assert (everywhere.status_code, everywhere.json()) == (200, {"signed_out": 1})
    assert laptop_after.headers["x-clerk-auth-reason"] == "session-revoked"
    assert [d["id"] for d in here_after.json()] == [here]


async def test_guide_calls_another_api_as_the_user(
    fake: FakeClerk, clock: FakeClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    """/api/rows sends a template token of the session, /api/profile the request's own."""
    fake.add_template("supabase", {"role": "authenticated"})
    user_id = fake.add_user()
    session_id = fake.sign_in(user_id).session_id
    namespace = run_guide_block(3, fake, monkeypatch)
    sent: list[str] = []

    def data_api(request: httpx.Request) -> httpx.Response:
        sent.append(request.headers["authorization"].removeprefix("Bearer "))
        return httpx.Response(200, json={"path": request.url.path})

    namespace["api"] = httpx.AsyncClient(
        transport=httpx.MockTransport(data_api), base_url="https://data.example.com"
    )
    token = fake.session_token(session_id)
    async with guide_app(fake, clock, namespace) as c:
        rows = await c.get("/api/rows", headers={"authorization": f"Bearer {token}"})
        profile = await c.get("/api/profile", headers={"authorization": f"Bearer {token}"})
    assert (rows.json(), profile.json()) == ({"path": "/rows"}, {"path": "/profile"})
    template_token, own = sent
    assert own == token
    header = jwt.get_unverified_header(template_token)
    payload = jwt.decode(
        template_token,
        fake.key.public_pem,
        algorithms=["RS256"],
        options={"verify_iat": False, "verify_exp": False, "verify_nbf": False},
    )
    assert (header["cat"], payload["sub"], payload["role"]) == (
        "cl_B7d4PD222AAA",
        user_id,
        "authenticated",
    )


async def test_guide_official_sdk_block(fake: FakeClerk, monkeypatch: pytest.MonkeyPatch) -> None:
    """The SDK shares the HTTP client and takes the secret from the environment."""
    namespace = run_guide_block(5, fake, monkeypatch)
    assert namespace["sdk"].sdk_configuration.async_client is namespace["http"]
    assert namespace["clerk"]._client is namespace["http"]


async def test_aclose_closes_only_the_client_it_made(fake: FakeClerk) -> None:
    transport = httpx.ASGITransport(fake)
    theirs = httpx.AsyncClient(transport=transport)
    async with ClerkBackend(secret_key=fake.secret_key, api_url=fake.api_url, http_client=theirs):
        pass
    assert not theirs.is_closed  # the caller's client stays open: it is theirs
    await theirs.aclose()

    ours = ClerkBackend(secret_key=fake.secret_key, api_url="http://127.0.0.1:9", max_retries=0)
    await ours.aclose()  # nothing made yet: nothing to close
    with pytest.raises(BackendAPIError) as caught:
        await ours.sessions.get("sess_1")  # makes its own client (nothing listens on port 9)
    assert caught.value.code == "network-error"
    made = ours._client
    assert made is not None
    await ours.aclose()
    assert made.is_closed
    assert ours._client is None
