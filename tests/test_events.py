"""Lifecycle events (``mgr.events``) on real stores: every kind with the session and user ids
(never a token), delivered off the request path; a slow subscriber loses events (counted,
logged) without slowing anyone, a raising one is logged and goes on receiving."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from typing import Any

import anyio
import pytest

from asyncsess import Event, LoginThrottled, SessionManager
from asyncsess.accounts import Accounts, LoginLimits, PasswordHasher
from asyncsess.observe import EVENT_KINDS, EventKind
from asyncsess.ratelimit import RateLimiter
from asyncsess.session import thaw
from tests.backends import StoreSpec
from tests.conftest import ABSOLUTE, IDLE, SECRET, FakeClock

pytestmark = pytest.mark.anyio

STORES = ["memory", "file", "sqlite", "redis", "postgresql", "mongodb"]
DATA = {"cart": [{"sku": "A-1", "qty": 2, "options": ["gift", {"wrap": "red"}]}], "prefs": {}}
FAST = PasswordHasher(time_cost=1, memory_cost=8, parallelism=1, max_waiting=64)
PASSWORD = "correct horse battery staple"


@pytest.fixture(params=STORES)
def spec(request: pytest.FixtureRequest) -> StoreSpec:
    found: StoreSpec = request.getfixturevalue(f"{request.param}_store_spec")
    return found


def on(spec: StoreSpec, clock: FakeClock, **options: Any) -> SessionManager:
    """A manager built from the store's URL (so its telemetry names the store kind)."""
    return SessionManager(
        spec.url, store_options=spec.options, secret=SECRET, clock=clock, **options
    )


@pytest.fixture
async def mgr(spec: StoreSpec, clock: FakeClock) -> AsyncIterator[SessionManager]:
    manager = on(spec, clock, idle_timeout=IDLE, absolute_timeout=ABSOLUTE, max_sessions_per_user=3)
    try:
        yield manager
    finally:
        await manager.wipe()
        await manager.aclose()


def fields(event: Event) -> dict[str, Any]:
    found = event.as_dict()
    assert found.pop("occurred") == event.occurred
    return found


async def test_every_session_event_carries_ids_never_tokens(
    mgr: SessionManager, clock: FakeClock
) -> None:
    seen: list[Event] = []
    tokens: list[str] = []
    async with mgr.running():
        mgr.events.subscribe(seen.append)  # a plain function: called on the event loop
        tokens.append(alice := await mgr.create("alice", DATA))
        tokens.append(visitor := await mgr.create(None, DATA))
        first = await mgr.validate(alice)
        assert first is not None and thaw(first.data) == DATA
        assert await mgr.validate(alice) is not None  # not due: no renewal
        clock.advance(IDLE * 0.6)
        renewed = await mgr.validate(alice)
        assert renewed is not None and renewed.expires > first.expires
        assert await mgr.update(alice, {**DATA, "prefs": {"lang": "fr"}})
        tokens.append(rotated := await mgr.rotate(alice) or "")
        new = await mgr.validate(rotated)
        assert new is not None and new.id != first.id
        assert await mgr.revoke(rotated)
        assert not await mgr.revoke(rotated)  # nothing ended: no event
        for _ in range(4):  # the oldest ends
            clock.advance(1)
            tokens.append(await mgr.create("alice", DATA))
        kept = await mgr.sessions("alice")
        assert len(kept) == 3
        assert await mgr.revoke_session(kept[0].id, user_id="alice")
        assert await mgr.revoke_all("alice") == 2
        clock.advance(IDLE + 1)
        swept = await mgr.sweep()  # the visitor's session, expired
        assert await mgr.validate(visitor) is None
    # leaving running() delivered everything queued
    assert all(abs(event.occurred_at.timestamp() - event.occurred) < 1e-5 for event in seen)
    text = repr(seen)
    assert not [t for t in tokens if t in text]
    created = [e for e in seen if e.kind == "created"]
    assert [fields(e) for e in created[:2]] == [
        {"kind": "created", "session_id": first.id, "user_id": "alice"},
        {"kind": "created", "session_id": created[1].session_id},  # anonymous: no user id
    ]
    assert len(created) == 6
    rest = [fields(e) for e in seen if e.kind != "created"]
    trimmed, revoked_one = created[2].session_id, kept[0].id
    expected = [
        {"kind": "renewed", "session_id": first.id, "user_id": "alice"},
        {"kind": "updated", "session_id": first.id, "user_id": "alice"},
        {"kind": "rotated", "session_id": new.id, "previous_id": first.id, "user_id": "alice"},
        {"kind": "revoked", "session_id": new.id, "user_id": "alice"},
        {"kind": "revoked", "session_id": trimmed, "user_id": "alice"},
        {"kind": "revoked", "session_id": revoked_one, "user_id": "alice"},
        {"kind": "revoked_all", "user_id": "alice", "count": 2},
    ]
    if swept:  # Redis and MongoDB drop expired records by the server's clock, not the test's
        expected.append({"kind": "expired", "count": swept})
    assert rest == expected
    assert seen[0].occurred == first.created
    assert next(e for e in seen if e.kind == "renewed").occurred == pytest.approx(
        renewed.expires - IDLE
    )


async def test_login_and_account_events(spec: StoreSpec, clock: FakeClock) -> None:
    seen: list[Event] = []
    limiter = RateLimiter("2/minute", clock=clock)
    async with (
        Accounts("memory://", hasher=FAST, limits=LoginLimits(clock=clock)) as accounts,
        on(spec, clock, accounts=accounts, login_limiter=limiter) as mgr,
    ):

        async def audit(event: Event) -> None:
            seen.append(event)

        kinds: set[EventKind] = {"login_succeeded", "login_failed", "login_throttled",
                                 "password_changed", "user_deleted", "revoked_all"}  # fmt: skip
        mgr.events.subscribe(audit, kinds=kinds)
        user = await accounts.create_user("Alice", PASSWORD)
        token = await mgr.login("ALICE", PASSWORD, client="203.0.113.7", data=DATA)
        assert token is not None
        session = await mgr.validate(token)
        assert session is not None and thaw(session.data) == {**DATA, "username": "alice"}
        assert await mgr.login("alice", "wrong", client="203.0.113.7") is None
        assert await mgr.login("nobody", "wrong") is None
        assert await mgr.login("alice", "wrong") is None
        with pytest.raises(LoginThrottled):
            await mgr.login("alice", PASSWORD, client="203.0.113.7")
        clock.advance(120)
        assert await accounts.change_password("alice", PASSWORD, "a new passphrase here")
        assert await accounts.delete_user("alice")
        await mgr.wipe()
    assert token not in repr(seen)
    assert [fields(e) for e in seen] == [
        {"kind": "login_succeeded", "session_id": session.id, "user_id": user.id,
         "username": "alice", "client": "203.0.113.7"},
        {"kind": "login_failed", "username": "alice", "client": "203.0.113.7"},
        {"kind": "login_failed", "username": "nobody"},
        {"kind": "login_failed", "username": "alice"},
        {"kind": "login_throttled", "username": "alice", "client": "203.0.113.7",
         "scope": "username"},
        {"kind": "password_changed", "user_id": user.id, "username": "alice"},
        {"kind": "revoked_all", "user_id": user.id, "count": 1},
        {"kind": "user_deleted", "user_id": user.id, "username": "alice"},
        {"kind": "revoked_all", "user_id": user.id, "count": 0},
    ]  # fmt: skip


async def test_a_slow_subscriber_loses_events_without_slowing_the_request_path(
    caplog: pytest.LogCaptureFixture,
) -> None:
    release = anyio.Event()
    slow_seen: list[Event] = []
    fast_seen: list[Event] = []

    async def slow(event: Event) -> None:
        await release.wait()  # blocked until the test lets it go
        slow_seen.append(event)

    async with SessionManager("memory://") as mgr:
        slow_sub = mgr.events.subscribe(slow, kinds={"created"}, queue_size=3)
        fast_sub = mgr.events.subscribe(fast_seen.append, kinds={"created"})
        with caplog.at_level(logging.WARNING, logger="asyncsess.events"):
            tokens = [await mgr.create(f"user-{i}", DATA) for i in range(20)]
            await anyio.wait_all_tasks_blocked()
            # every create returned while the slow subscriber sat on its first event
            assert all([await mgr.validate(t) for t in tokens])
            assert slow_seen == []
            assert 20 - 3 - 1 <= slow_sub.dropped <= 20 - 3
            assert mgr.events.dropped == slow_sub.dropped
            assert fast_sub.dropped == 0 and len(fast_seen) == 20
            assert "is behind: dropping events" in caplog.text
            release.set()
    assert len(slow_seen) == 20 - slow_sub.dropped
    assert slow_seen[0].session_id == fast_seen[0].session_id


async def test_a_raising_subscriber_is_logged_and_keeps_receiving(
    caplog: pytest.LogCaptureFixture,
) -> None:
    seen: list[str] = []

    async def failing(event: Event) -> None:
        seen.append(event.kind)
        raise RuntimeError("the audit sink is down")

    async with SessionManager("memory://") as mgr:
        subscription = mgr.events.subscribe(failing)
        with caplog.at_level(logging.ERROR, logger="asyncsess.events"):
            token = await mgr.create("alice", DATA)
            assert await mgr.revoke(token)
            await anyio.wait_all_tasks_blocked()
    assert seen == ["created", "revoked"]
    assert subscription.failed == 2 and subscription.delivered == 2
    assert caplog.text.count("failed on a") == 2 and "the audit sink is down" in caplog.text


async def test_stream_subscribe_before_running_close_and_bad_arguments() -> None:
    mgr = SessionManager("memory://")
    early: list[Event] = []
    subscription = mgr.events.subscribe(early.append, kinds=["created"])
    token = await mgr.create("alice", DATA)  # not running yet: queued
    async with mgr:
        async with mgr.events.stream(kinds={"revoked"}) as events:
            assert await mgr.revoke(token)
            event = await events.__anext__()
        assert (event.kind, event.user_id) == ("revoked", "alice")
        subscription.close()
        await mgr.create("bob")
        assert not mgr.events.wanted
    assert [e.user_id for e in early] == ["alice"]
    with pytest.raises(ValueError, match="unknown event kinds"):
        mgr.events.subscribe(early.append, kinds={"logged_in"})  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        mgr.events.subscribe(early.append, kinds="created")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="queue_size"):
        mgr.events.subscribe(early.append, queue_size=0)
    assert set(EVENT_KINDS) == {
        "created", "renewed", "updated", "rotated", "revoked", "revoked_all", "expired",
        "login_succeeded", "login_failed", "login_throttled", "password_changed", "user_deleted",
    }  # fmt: skip


async def test_accounts_subscribers_choose_what_they_hear_of() -> None:
    heard: list[tuple[str, str]] = []

    async def changed(user: Any) -> None:
        heard.append(("changed", user.username))

    async def deleted(user: Any) -> None:
        heard.append(("deleted", user.username))

    async with Accounts("memory://", hasher=FAST) as accounts:
        accounts.subscribe(changed, on={"password_changed"})
        accounts.subscribe(deleted, on=["user_deleted"])
        with pytest.raises(ValueError):
            accounts.subscribe(deleted, on={"logged_in"})  # type: ignore[arg-type]
        await accounts.create_user("alice", PASSWORD)
        assert await accounts.change_password("alice", PASSWORD, "a new passphrase here")
        assert await accounts.delete_user("alice")
    assert heard == [("changed", "alice"), ("deleted", "alice")]
