"""Ending a session fails closed too: a store that cannot delete raises, never answers
``False`` ("there was no such session") for a session that may still be live. And a record
past its absolute expiry is dead even when its sliding expiry says otherwise."""

from __future__ import annotations

import dataclasses

import pytest

from asyncsess import SessionManager, StoreError, StoreUnavailable
from asyncsess.stores.memory import MemoryStore
from asyncsess.tokens import token_key
from tests.conftest import ABSOLUTE, IDLE, SECRET, FakeClock

pytestmark = pytest.mark.anyio
DATA = {"role": "admin", "cart": [{"sku": "A-1", "qty": 2}]}


class DeleteFails(MemoryStore):
    """A store whose deletes fail as a dropped connection would."""

    failure: Exception = ConnectionResetError("connection reset by peer")

    async def delete(self, key: str, *, expected_version: int | None = None) -> bool:
        raise self.failure

    async def delete_user(self, user_ref: str, *, keep: str | None = None) -> int:
        raise self.failure


@pytest.mark.parametrize(
    ("failure", "expected"),
    [(ConnectionResetError("reset"), StoreUnavailable), (RuntimeError("bug"), StoreError)],
)
async def test_revoke_and_logout_raise_when_the_store_fails(
    failure: Exception, expected: type[StoreError]
) -> None:
    store = DeleteFails()
    store.failure = failure
    mgr = SessionManager(store)
    token = await mgr.create("alice", DATA)
    session = await mgr.validate(token)
    assert session is not None
    for end in (mgr.revoke, mgr.logout):
        with pytest.raises(expected) as info:
            await end(token)
        assert info.value.__cause__ is failure and token not in str(info.value)
    with pytest.raises(expected):
        await mgr.revoke_all("alice")
    with pytest.raises(expected):
        await mgr.revoke_session(session.id, user_id="alice")
    assert await mgr.validate(token) is not None  # it was not ended, and nobody was told so


async def test_a_dead_server_is_unavailable_for_revoke_and_logout() -> None:
    """A real client to a port nothing listens on (refused at once)."""
    mgr = SessionManager("redis://127.0.0.1:1/0", secret=SECRET, store_options={"timeout": 2})
    token = "A" * 43
    try:
        for end in (mgr.revoke, mgr.logout):
            with pytest.raises(StoreUnavailable):
                await end(token)
    finally:
        await mgr.aclose()


@pytest.mark.parametrize("seen_before", [False, True], ids=["first read", "cached"])
async def test_absolute_expiry_wins_over_a_later_sliding_expiry(
    clock: FakeClock, seen_before: bool
) -> None:
    store = MemoryStore()
    mgr = SessionManager(store, clock=clock, idle_timeout=IDLE, absolute_timeout=ABSOLUTE)
    token = await mgr.create("alice", DATA)
    if seen_before:
        assert await mgr.validate(token) is not None
    record = await store.get(token_key(token))
    assert record is not None
    late = dataclasses.replace(record, expires_at=record.absolute_at + 10 * IDLE)
    assert await store.replace(late, expected_version=record.version)
    clock.advance(ABSOLUTE - 1)
    assert await mgr.validate(token) is not None  # sliding expiry far off, absolute not yet
    clock.advance(1)
    assert await mgr.validate(token) is None  # absolute expiry reached: dead
    assert await mgr.update(token, {"role": "x"}) is False
    assert await mgr.rotate(token) is None
