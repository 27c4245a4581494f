"""The near cache on Redis, a Redis Cluster and PostgreSQL, through the public API: hits
counted, this manager's writes seen at once, another's as soon as their invalidation
arrives, a read in flight during a change not kept, expiry and renewal judged on cached
reads, decoding once per version, and the bound on how long an entry lives."""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from typing import Any

import anyio
import pytest

from asyncsess import Session, SessionManager, Store
from asyncsess.session import thaw
from asyncsess.stores._registry import store_class
from asyncsess.stores.base import Record, Renewal
from tests.backends import StoreSpec
from tests.conftest import ABSOLUTE, IDLE, SECRET, FakeClock

from .conftest import eventually, manager
from .fleet import nested

pytestmark = pytest.mark.anyio


async def test_a_validate_answers_from_memory_once_read(near: SessionManager) -> None:
    token = await near.create("alice", nested(1))
    first = await near.validate(token)
    assert first is not None and thaw(first.data) == nested(1)
    assert await near.validate(token) is first
    assert await near.validate(token) is first
    stats = await near.stats()
    assert (stats.near_cache_misses, stats.near_cache_hits, stats.near_cache_entries) == (1, 2, 1)
    assert stats.cache_misses == 1  # opened once
    assert stats.near_cache_resets == 0


async def test_this_managers_writes_are_seen_at_once(near: SessionManager) -> None:
    tokens = [await near.create("alice", nested(i)) for i in range(5)]
    anonymous = await near.create(None, nested(9))
    for token in [*tokens, anonymous]:
        assert await near.validate(token) is not None
        assert await near.validate(token) is not None  # a hit

    assert await near.revoke(tokens[0])
    assert await near.validate(tokens[0]) is None

    assert await near.update(tokens[1], nested(1, round_=1))
    updated = await near.validate(tokens[1])
    assert updated is not None and updated.version == 2
    assert thaw(updated.data) == nested(1, round_=1)

    new = await near.rotate(tokens[2])
    assert new is not None and await near.validate(tokens[2]) is None
    assert await near.validate(new) is not None

    session = await near.validate(tokens[3])
    assert session is not None
    assert await near.revoke_session(session.id, user_id="alice")
    assert await near.validate(tokens[3]) is None

    assert await near.revoke_all("alice", keep=new) == 2  # tokens[1] and [4]
    assert [await near.validate(t) is None for t in (tokens[1], tokens[4])] == [True, True]
    assert await near.validate(new) is not None
    assert await near.validate(anonymous) is not None  # no user: revoke_all spares it

    await near.wipe()
    assert await near.validate(new) is None and await near.validate(anonymous) is None


async def test_trimming_a_users_oldest_is_seen_at_once(
    near_spec: StoreSpec, clock: FakeClock
) -> None:
    async with manager(near_spec, clock, near_cache=100, max_sessions_per_user=2) as mgr:
        first = await mgr.create("alice", nested(1))
        clock.advance(1)
        second = await mgr.create("alice", nested(2))
        for token in (first, second, first, second):
            assert await mgr.validate(token) is not None
        clock.advance(1)
        third = await mgr.create("alice", nested(3))
        assert await mgr.validate(first) is None
        assert await mgr.validate(second) is not None and await mgr.validate(third) is not None


async def test_another_managers_writes_are_heard(
    near: SessionManager, other: SessionManager
) -> None:
    tokens = [await other.create("bob", nested(i)) for i in range(4)]
    for token in tokens:
        await near.validate(token)
        assert await near.validate(token) is not None
    before = await near.stats()

    await other.revoke(tokens[0])
    await eventually(lambda: _none(near, tokens[0]))
    await other.update(tokens[1], nested(1, round_=1))
    await eventually(lambda: _version(near, tokens[1], 2))
    await other.revoke_all("bob")
    for token in tokens[1:]:
        await eventually(lambda t=token: _none(near, t))  # type: ignore[misc]
    after = await near.stats()
    assert after.near_cache_invalidations >= before.near_cache_invalidations + 4
    assert after.near_cache_resets == 0


async def _none(mgr: SessionManager, token: str) -> bool:
    return await mgr.validate(token) is None


async def _version(mgr: SessionManager, token: str, version: int) -> bool:
    session = await mgr.validate(token)
    return session is not None and session.version == version


async def _heard(mgr: SessionManager, least: int) -> bool:
    return (await mgr.stats()).near_cache_invalidations >= least


class _Gate:
    """Holds the store's answer to a read until opened (a slow reply)."""

    def __init__(self) -> None:
        self.closed = False
        self.reading = anyio.Event()
        self.open = anyio.Event()

    async def pass_(self) -> None:
        if self.closed:
            self.reading.set()
            await self.open.wait()


def _gated(spec: StoreSpec) -> tuple[Store, _Gate]:
    """The spec's store (its own subclass), whose reads wait at a gate once answered."""
    gate = _Gate()
    base: Any = store_class(spec.url)

    class Gated(base):  # type: ignore[misc]
        async def get(self, key: str, *, renew: Renewal | None = None) -> Record | None:
            record: Record | None = await super().get(key, renew=renew)
            await gate.pass_()
            return record

        async def get_many(
            self, keys: Sequence[str], *, renew: Renewal | None = None
        ) -> list[Record | None]:
            records: list[Record | None] = await super().get_many(keys, renew=renew)
            await gate.pass_()
            return records

    store: Store = Gated.from_url(spec.url, **spec.options)
    return store, gate


async def test_a_read_in_flight_when_its_key_changes_is_not_kept(
    near_spec: StoreSpec, clock: FakeClock, other: SessionManager
) -> None:
    store, gate = _gated(near_spec)
    settings: dict[str, Any] = {"idle_timeout": IDLE, "absolute_timeout": ABSOLUTE, "clock": clock}
    try:
        async with SessionManager(store, secret=SECRET, near_cache=100, **settings) as mgr:
            token = await other.create("carol", nested(1))
            assert await mgr.validate(token) is not None
            assert await other.update(token, nested(1, round_=1))  # version 2: not kept yet
            await eventually(lambda: _heard(mgr, 1))
            gate.closed = True
            answers: list[Session | None] = []

            async def slow() -> None:
                answers.append(await mgr.validate(token))

            async with anyio.create_task_group() as tg:
                tg.start_soon(slow)
                await gate.reading.wait()  # the store answered version 2; the reply is held
                assert await other.update(token, nested(1, round_=2))  # version 3
                await eventually(lambda: _heard(mgr, 2))  # heard while the read was held
                gate.open.set()
            gate.closed = False
            held = answers[0]
            assert held is not None and held.version == 2  # current when the store answered
            now = await mgr.validate(token)
            assert now is not None and now.version == 3  # version 2 was not kept
            assert await mgr.validate(token) is now
    finally:
        await store.aclose()


async def test_expiry_is_judged_on_every_cached_read(
    near: SessionManager, clock: FakeClock
) -> None:
    token = await near.create("dave", nested(1))
    assert await near.validate(token) is not None
    clock.advance(IDLE * 0.4)  # not yet due for renewal: still a hit
    assert await near.validate(token) is not None
    hits = (await near.stats()).near_cache_hits
    assert hits == 1
    clock.advance(IDLE * 0.6 + 1)  # past its idle expiry
    assert await near.validate(token) is None
    assert (await near.stats()).near_cache_hits == hits


async def test_absolute_expiry_is_judged_on_every_cached_read(
    near_spec: StoreSpec, clock: FakeClock
) -> None:
    async with manager(near_spec, clock, near_cache=10, absolute_timeout=IDLE / 4) as mgr:
        token = await mgr.create("dave", nested(1))
        assert await mgr.validate(token) is not None
        assert await mgr.validate(token) is not None
        clock.advance(IDLE / 4)
        assert await mgr.validate(token) is None


async def test_a_session_due_for_renewal_gets_its_one_write(
    near: SessionManager, other: SessionManager, clock: FakeClock
) -> None:
    token = await near.create("erin", nested(1))
    first = await near.validate(token)
    assert first is not None and await near.validate(token) is first
    await anyio.sleep(0.05)  # the create's own invalidation (Redis tracks inserts) is in
    heard = (await near.stats()).near_cache_invalidations
    clock.advance(IDLE * 0.6)  # less than half the idle time left: due
    renewed = await near.validate(token)
    assert renewed is not None and renewed.expires == clock.now + IDLE
    await eventually(lambda: _heard(near, heard + 1))  # its one write, heard back
    again = [await near.validate(token) for _ in range(20)]
    assert all(s is not None and s.expires == renewed.expires for s in again)
    await anyio.sleep(0.1)
    assert (await near.stats()).near_cache_invalidations == heard + 1  # and no other
    [info] = await other.sessions("erin")
    assert info.expires == renewed.expires  # in the store
    assert await near.validate(token) is again[-1]  # answered from memory again


async def test_a_record_is_opened_once_per_version(
    near: SessionManager, other: SessionManager, clock: FakeClock
) -> None:
    token = await near.create("fay", nested(1))
    assert await near.validate(token) is not None
    await anyio.sleep(0.05)  # the create's own invalidation (Redis tracks inserts) is in
    heard = (await near.stats()).near_cache_invalidations
    clock.advance(IDLE * 0.6)
    assert await other.validate(token) is not None  # another process renews it
    await eventually(lambda: _heard(near, heard + 1))
    renewed = await near.validate(token)  # read again: the same bytes but the expiry
    assert renewed is not None and renewed.expires == clock.now + IDLE
    assert (await near.stats()).cache_misses == 1  # not decrypted again
    assert await other.update(token, nested(1, round_=1))
    await eventually(lambda: _version(near, token, 2))
    assert await near.validate(token) is not None
    assert (await near.stats()).cache_misses == 2  # once per version


async def test_no_entry_is_served_longer_than_the_ttl_after_its_read(
    near_spec: StoreSpec, clock: FakeClock
) -> None:
    async with manager(near_spec, clock, near_cache=10, near_cache_ttl=0.2) as mgr:
        token = await mgr.create("gus", nested(1))
        assert await mgr.validate(token) is not None
        assert await mgr.validate(token) is not None
        assert (await mgr.stats()).near_cache_hits == 1
        await anyio.sleep(0.25)
        assert await mgr.validate(token) is not None  # read again
        stats = await mgr.stats()
        assert (stats.near_cache_hits, stats.near_cache_misses) == (1, 2)


async def test_a_session_in_use_is_read_again_ahead_of_its_ttl(
    near_spec: StoreSpec, clock: FakeClock, other: SessionManager
) -> None:
    async with manager(near_spec, clock, near_cache=10, near_cache_ttl=0.3) as mgr:
        token = await mgr.create("gil", nested(1))
        for _ in range(40):  # 1.2 s: four ttls
            assert await mgr.validate(token) is not None
            await anyio.sleep(0.03)
        stats = await mgr.stats()
        assert stats.near_cache_misses == 1  # refreshed in the background, never missed
        assert await other.update(token, nested(1, round_=1))
        await eventually(lambda: _version(mgr, token, 2))


async def test_without_its_task_group_the_cache_serves_nothing(
    near_spec: StoreSpec, clock: FakeClock
) -> None:
    mgr = manager(near_spec, clock, near_cache=10)  # no ``async with``: no channel
    try:
        token = await mgr.create("hal", nested(1))
        for _ in range(3):
            assert await mgr.validate(token) is not None
        stats = await mgr.stats()
        assert (stats.near_cache_hits, stats.near_cache_entries) == (0, 0)
    finally:
        await mgr.wipe()
        await mgr.aclose()


async def test_stats_are_all_zero_with_the_near_cache_off(other: SessionManager) -> None:
    token = await other.create("ivy", nested(1))
    assert await other.validate(token) is not None
    stats = dataclasses.asdict(await other.stats())
    near = {k: v for k, v in stats.items() if k.startswith("near_cache_")}
    assert len(near) == 5 and not any(near.values())


async def test_the_cache_holds_at_most_its_size(near_spec: StoreSpec, clock: FakeClock) -> None:
    async with manager(near_spec, clock, near_cache=2) as mgr:
        tokens = [await mgr.create("kai", nested(i)) for i in range(3)]
        for token in tokens:
            assert await mgr.validate(token) is not None
        assert (await mgr.stats()).near_cache_entries == 2
        assert await mgr.validate(tokens[2]) is not None  # the last read: kept
        assert await mgr.validate(tokens[0]) is not None  # the first: evicted, read again
        stats = await mgr.stats()
        assert (stats.near_cache_hits, stats.near_cache_misses, stats.near_cache_entries) == (
            1,
            4,
            2,
        )
