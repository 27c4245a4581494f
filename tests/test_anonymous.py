"""Anonymous sessions on every store: ``create(None, data)`` makes a session without a user
that works like any other, but no user lists or revokes it and no store indexes it."""

from __future__ import annotations

import dataclasses

import pytest

from asyncsess import SessionManager
from asyncsess.session import thaw
from asyncsess.stores.base import Store
from asyncsess.tokens import token_key
from tests.conftest import IDLE, FakeClock

pytestmark = pytest.mark.anyio
CART = {"cart": [{"sku": "fig", "qty": 2}, {"sku": "tea", "qty": 1}], "prefs": {"lang": "en"}}


async def test_an_anonymous_session_works_like_any_other(
    manager: SessionManager, clock: FakeClock
) -> None:
    token = await manager.create(None, CART)
    session = await manager.validate(token)
    assert session is not None and session.user_id is None and thaw(session.data) == CART
    assert await manager.update(token, {**CART, "cart": []}, version=1)
    rotated = await manager.rotate(token)
    assert rotated is not None and await manager.validate(token) is None
    session = await manager.validate(rotated)
    assert session is not None and session.user_id is None and session.data["cart"] == ()
    clock.advance(IDLE * 0.6)
    assert await manager.validate(rotated) is not None  # renewed
    assert await manager.revoke(rotated) is True
    assert await manager.validate(rotated) is None
    expiring = await manager.create(None, CART)
    clock.advance(IDLE + 1)
    assert await manager.validate(expiring) is None


async def test_no_user_lists_or_revokes_it_and_no_index_holds_it(
    manager: SessionManager, store: Store
) -> None:
    visitors = [await manager.create(None, {"visit": i, **CART}) for i in range(3)]
    alice = await manager.create("alice", CART)
    assert [i.id for i in await manager.sessions("alice")] == [token_key(alice)]
    assert await manager.revoke_all("alice") == 1
    assert all([await manager.validate(t) is not None for t in visitors])
    assert await store.list_user("") == []  # not one shared entry piling up per visitor
    assert all([(await store.get(token_key(t))) is not None for t in visitors])
    record = await store.get(token_key(visitors[0]))
    assert record is not None and record.user_ref == ""


@pytest.mark.parametrize(
    "store_spec",
    ["file", "redis", "redis_cluster", "sqlite", "postgresql", "mariadb", "mongodb"],
    indirect=True,
)
async def test_an_anonymous_record_cannot_be_given_to_a_user(
    manager: SessionManager, store: Store
) -> None:
    """The empty user reference is bound into the seal like any other."""
    alice = await manager.create("alice")
    visitor = await manager.create(None, CART)
    alice_ref = (await store.get(token_key(alice))).user_ref  # type: ignore[union-attr]
    record = await store.get(token_key(visitor))
    assert record is not None
    claimed = dataclasses.replace(record, user_ref=alice_ref, version=2)
    assert await store.replace(claimed, expected_version=1)
    assert await manager.validate(visitor) is None
    assert await manager.revoke_all("alice") == 2  # it is in alice's index now: revoked too
