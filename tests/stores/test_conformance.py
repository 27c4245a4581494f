"""The conformance suite: every store, through the manager, with an injected clock."""

from __future__ import annotations

import dataclasses
import random
from urllib.parse import urlsplit

import anyio
import pytest

import asyncsess
from asyncsess import SessionConflict, SessionManager
from asyncsess.stores._registry import store_class
from asyncsess.stores.base import Store
from asyncsess.tokens import new_token, token_key
from tests.backends import StoreSpec
from tests.conftest import ABSOLUTE, IDLE, OTHER_SECRET, SECRET, FakeClock

pytestmark = pytest.mark.anyio


async def test_create_then_validate(manager: SessionManager, clock: FakeClock) -> None:
    token = await manager.create("alice", {"role": "admin", "n": [1, 2]})
    session = await manager.validate(token)
    assert session is not None
    assert session.user_id == "alice"
    assert dict(session.data) == {"role": "admin", "n": (1, 2)}  # handed out deeply immutable
    assert session.version == 1
    assert session.created == clock.now
    assert session.created_at.timestamp() == pytest.approx(clock.now)
    assert session.expires_at.timestamp() == pytest.approx(clock.now + IDLE)
    assert session.absolute_expires_at.timestamp() == pytest.approx(clock.now + ABSOLUTE)
    assert session.id == token_key(token)
    with pytest.raises(TypeError):
        session.data["role"] = "user"  # type: ignore[index]
    with pytest.raises(AttributeError):
        session.user_id = "mallory"  # type: ignore[misc]


async def test_data_defaults_to_empty_and_tokens_are_unique(manager: SessionManager) -> None:
    tokens = {await manager.create("alice") for _ in range(20)}
    assert len(tokens) == 20
    for token in tokens:
        session = await manager.validate(token)
        assert session is not None and dict(session.data) == {}


async def test_unknown_and_malformed_tokens(manager: SessionManager) -> None:
    await manager.create("alice")
    for bad in (new_token(), "", "x" * 43, None, 42, b"bytes", "é" * 43):
        assert await manager.validate(bad) is None
        assert await manager.revoke(bad) is False
        assert await manager.rotate(bad) is None
        assert await manager.update(bad, {"a": 1}) is False


async def test_bad_create_arguments(manager: SessionManager) -> None:
    with pytest.raises(ValueError, match="user_id"):
        await manager.create("")
    with pytest.raises(TypeError):
        await manager.create("alice", ["not", "a", "mapping"])  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        await manager.create("alice", {"x": object()})


async def test_revoke(manager: SessionManager) -> None:
    token = await manager.create("alice")
    other = await manager.create("alice")
    assert await manager.revoke(token) is True
    assert await manager.validate(token) is None
    assert await manager.revoke(token) is False
    assert await manager.validate(other) is not None


async def test_revoke_all_and_keep(manager: SessionManager) -> None:
    alice = [await manager.create("alice") for _ in range(3)]
    bob = await manager.create("bob")
    assert await manager.revoke_all("alice", keep=alice[0]) == 2
    assert await manager.validate(alice[0]) is not None
    assert [await manager.validate(t) for t in alice[1:]] == [None, None]
    assert await manager.revoke_all("alice") == 1
    assert await manager.revoke_all("alice") == 0
    assert await manager.validate(alice[0]) is None
    assert await manager.validate(bob) is not None
    assert await manager.revoke_all("nobody") == 0


async def test_sessions_lists_live_sessions_without_tokens(
    manager: SessionManager, clock: FakeClock
) -> None:
    first = await manager.create("alice", {"device": "phone"})
    clock.advance(1)
    second = await manager.create("alice")
    await manager.create("bob")
    infos = await manager.sessions("alice")
    assert [i.id for i in infos] == [token_key(first), token_key(second)]
    assert all(first not in repr(i) and second not in repr(i) for i in infos)
    assert await manager.sessions("nobody") == []
    clock.advance(IDLE - 0.5)
    assert [i.id for i in await manager.sessions("alice")] == [token_key(second)]


async def test_idle_expiry_slides_with_use(manager: SessionManager, clock: FakeClock) -> None:
    token = await manager.create("alice")
    idle_only = await manager.create("alice")
    for _ in range(5):
        clock.advance(IDLE * 0.6)
        assert await manager.validate(token) is not None
    assert await manager.validate(idle_only) is None
    clock.advance(IDLE + 1)
    assert await manager.validate(token) is None


async def test_expired_is_invalid_before_any_sweep(
    manager: SessionManager, clock: FakeClock
) -> None:
    token = await manager.create("alice")
    clock.advance(IDLE)
    assert await manager.validate(token) is None
    assert await manager.rotate(token) is None
    assert await manager.update(token, {"a": 1}) is False


async def test_renewal_is_coalesced(
    manager: SessionManager, store: Store, clock: FakeClock
) -> None:
    token = await manager.create("alice")
    created = await store.get(token_key(token))
    assert created is not None
    clock.advance(IDLE * 0.4)  # more than half the idle time left: no write
    session = await manager.validate(token)
    assert session is not None
    assert session.expires_at.timestamp() == pytest.approx(created.expires_at)
    stored = await store.get(token_key(token))
    assert stored == created
    clock.advance(IDLE * 0.2)  # now less than half left: renewed in the same call
    session = await manager.validate(token)
    assert session is not None
    assert session.expires_at.timestamp() == pytest.approx(clock.now + IDLE)
    stored = await store.get(token_key(token))
    assert stored is not None and stored.expires_at == pytest.approx(clock.now + IDLE)


async def test_absolute_expiry_ends_an_active_session(
    manager: SessionManager, clock: FakeClock
) -> None:
    token = await manager.create("alice")
    start = clock.now
    while clock.now + IDLE * 0.6 < start + ABSOLUTE:
        clock.advance(IDLE * 0.6)
        session = await manager.validate(token)
        assert session is not None
        assert session.expires <= start + ABSOLUTE
    clock.now = start + ABSOLUTE
    assert await manager.validate(token) is None


async def test_rotate(manager: SessionManager, clock: FakeClock) -> None:
    token = await manager.create("alice", {"cart": 3})
    assert await manager.update(token, {"cart": 4})
    clock.advance(5)
    new = await manager.rotate(token)
    assert new is not None and new != token
    assert await manager.validate(token) is None
    session = await manager.validate(new)
    assert session is not None
    assert (session.user_id, dict(session.data), session.version) == ("alice", {"cart": 4}, 2)
    assert session.created_at.timestamp() == pytest.approx(clock.now - 5)
    assert session.absolute_expires_at.timestamp() == pytest.approx(clock.now - 5 + ABSOLUTE)
    assert await manager.rotate(token) is None
    assert [i.id for i in await manager.sessions("alice")] == [token_key(new)]


async def test_update_with_versions(manager: SessionManager) -> None:
    token = await manager.create("alice", {"n": 0})
    assert await manager.update(token, {"n": 1}, version=1) is True
    with pytest.raises(SessionConflict) as info:
        await manager.update(token, {"n": 99}, version=1)
    assert (info.value.expected, info.value.actual) == (1, 2)
    assert await manager.update(token, {"n": 2}) is True
    session = await manager.validate(token)
    assert session is not None and (session.version, dict(session.data)) == (3, {"n": 2})
    with pytest.raises(TypeError):
        await manager.update(token, {"n": object()})
    with pytest.raises(TypeError):
        await manager.update(token, ["not a mapping"])  # type: ignore[arg-type]
    await manager.revoke(token)
    assert await manager.update(token, {"n": 3}, version=3) is False


async def test_secret_rotation(store: Store, clock: FakeClock) -> None:
    old = SessionManager(store, secret=SECRET, clock=clock)
    rotated = SessionManager(store, secret=[OTHER_SECRET, SECRET], clock=clock)
    new_only = SessionManager(store, secret=OTHER_SECRET, clock=clock)
    before = await old.create("alice", {"k": "v"})
    untouched = await old.create("alice", {"k": "u"})
    after = await rotated.create("alice", {"k": "w"})
    session = await rotated.validate(before)  # re-sealed under the newest secret
    assert session is not None and session.data["k"] == "v"
    assert (await rotated.validate(after)) is not None
    assert len(await rotated.sessions("alice")) == 3
    if type(store).persistent:
        # the newest secret seals: without the old one, untouched old sessions do not open
        assert await new_only.validate(untouched) is None
        assert (await new_only.validate(before)) is not None
        assert (await new_only.validate(after)) is not None
        assert await old.validate(after) is None
    assert await rotated.revoke_all("alice") == 3


async def test_sweep_in_batches(store: Store, clock: FakeClock) -> None:
    mgr = SessionManager(store, secret=SECRET, clock=clock, idle_timeout=IDLE, sweep_batch=3)
    doomed = [await mgr.create(f"user{i % 3}") for i in range(10)]
    clock.advance(IDLE / 2)
    keeper = await mgr.create("user0")
    clock.advance(IDLE / 2 + 1)
    assert await mgr.sweep() == 10
    for token in doomed:
        assert await store.get(token_key(token)) is None
    assert await mgr.validate(keeper) is not None
    assert [i.id for i in await mgr.sessions("user0")] == [token_key(keeper)]
    assert await mgr.sweep() == 0


async def test_wipe(manager: SessionManager) -> None:
    tokens = [await manager.create(f"user{i}", {"i": i}) for i in range(7)]
    assert await manager.wipe() == 7
    assert [await manager.validate(t) for t in tokens] == [None] * 7
    assert await manager.sessions("user1") == []
    assert await manager.wipe() == 0


async def test_tampered_record_does_not_validate(manager: SessionManager, store: Store) -> None:
    token = await manager.create("alice", {"role": "user"})
    record = await store.get(token_key(token))
    assert record is not None
    flipped = bytes([record.payload[-1] ^ 1])
    tampered = dataclasses.replace(record, payload=record.payload[:-1] + flipped, version=2)
    assert await store.replace(tampered, expected_version=1)
    assert await manager.validate(token) is None


async def test_background_sweeper(store: Store, clock: FakeClock) -> None:
    mgr = SessionManager(store, secret=SECRET, clock=clock, idle_timeout=IDLE, sweep_interval=0.01)
    async with mgr.running():
        token = await mgr.create("alice")
        clock.advance(IDLE + 1)
        with anyio.fail_after(10):
            while await store.get(token_key(token)) is not None:
                await anyio.sleep(0.01)


async def test_thousand_concurrent_create_validate_revoke(manager: SessionManager) -> None:
    results: dict[str, bool] = {}

    async def one(i: int) -> None:
        token = await manager.create(f"user{i % 50}", {"i": i})
        session = await manager.validate(token)
        assert session is not None and session.data["i"] == i
        revoke = i % 3 == 0
        if revoke:
            assert await manager.revoke(token) is True
        results[token] = revoke

    async with anyio.create_task_group() as tg:
        for i in range(1000):
            tg.start_soon(one, i)
    assert len(results) == 1000
    for token, revoked in results.items():
        assert (await manager.validate(token) is None) is revoked
    live = [len(await manager.sessions(f"user{u}")) for u in range(50)]
    assert sum(live) == sum(not r for r in results.values())


async def test_concurrent_versioned_updates_one_winner_per_version(
    manager: SessionManager,
) -> None:
    token = await manager.create("alice", {"writer": None})
    outcomes: list[bool] = []

    async def contend(i: int) -> None:
        try:
            outcomes.append(await manager.update(token, {"writer": i}, version=1))
        except SessionConflict:
            outcomes.append(False)

    async with anyio.create_task_group() as tg:
        for i in range(100):
            tg.start_soon(contend, i)
    assert outcomes.count(True) == 1 and len(outcomes) == 100

    won: list[int] = []

    async def retry_until_won(i: int) -> None:
        while True:
            session = await manager.validate(token)
            assert session is not None
            try:
                if await manager.update(token, {"writer": i}, version=session.version):
                    won.append(session.version)
                    return
            except SessionConflict:
                await anyio.sleep(random.random() / 1000)

    async with anyio.create_task_group() as tg:
        for i in range(100):
            tg.start_soon(retry_until_won, i)
    assert sorted(won) == list(range(2, 102))
    session = await manager.validate(token)
    assert session is not None and session.version == 102


async def test_store_built_from_url_is_closed_by_manager(store_spec: object) -> None:
    from tests.backends import StoreSpec

    assert isinstance(store_spec, StoreSpec)
    async with SessionManager(
        store_spec.url, secret=SECRET, store_options=store_spec.options
    ) as mgr:
        token = await mgr.create("alice")
        assert (await mgr.validate(token)) is not None
        assert await mgr.revoke(token)


async def test_the_registry_builds_each_store_from_its_url(
    store: Store, store_spec: StoreSpec
) -> None:
    """The store under test came from its URL: the scheme names its class, which says it."""
    scheme = urlsplit(store_spec.url).scheme
    assert store_class(store_spec.url) is type(store)
    assert isinstance(store, asyncsess.Store)
    assert type(store).persistent is (scheme != "memory")


async def test_count(manager: SessionManager, clock: FakeClock) -> None:
    assert await manager.count() == (0, 0)
    for i in range(3):
        await manager.create(f"user{i}")
    clock.advance(IDLE / 2)
    await manager.create("user0")
    clock.advance(IDLE / 2)
    assert await manager.count() == (1, 3)
    await manager.sweep()
    assert await manager.count() == (1, 0)


async def test_wipe_reports_progress_in_batches(store: Store, clock: FakeClock) -> None:
    mgr = SessionManager(store, secret=SECRET, clock=clock, sweep_batch=4)
    for i in range(10):
        await mgr.create(f"user{i % 2}")
    seen: list[int] = []
    assert await mgr.wipe(progress=seen.append) == 10
    assert seen == [4, 8, 10] and await mgr.count() == (0, 0)
