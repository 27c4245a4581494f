"""The Store protocol itself on every backend, below the manager: a rewrite that changes a
record's user reference moves its index entry, a delete can be conditional on the version,
and a record without a user (``user_ref == ""``) is in no index."""

from __future__ import annotations

import time
from dataclasses import replace

import pytest

from asyncsess.stores.base import Record, Store
from asyncsess.tokens import new_token, token_key

pytestmark = pytest.mark.anyio


def record(user_ref: str, version: int = 1) -> Record:
    """A record live in real time (Redis and MongoDB expire by their own clocks)."""
    now = time.time()
    return Record(token_key(new_token()), user_ref, b"\x00opaque\xff", version, now,
                  now + 600, now + 3600)  # fmt: skip


async def keys_of(store: Store, user_ref: str) -> set[str]:
    return {r.key for r in await store.list_user(user_ref)}


async def test_replace_moves_the_index_entry_with_the_user_ref(store: Store) -> None:
    await store.open()
    old_ref, new_ref = "a" * 64, "b" * 64
    moved, stays = record(old_ref), record(old_ref)
    for rec in (moved, stays):
        await store.insert(rec)
    rewritten = replace(moved, user_ref=new_ref, payload=b"resealed", version=2)
    assert await store.replace(rewritten, expected_version=1)
    assert await keys_of(store, new_ref) == {moved.key}
    assert await keys_of(store, old_ref) == {stays.key}
    assert await store.get(moved.key) == rewritten
    assert await store.delete_user(old_ref) == 1  # the moved record is not the old ref's
    assert await store.get(moved.key) == rewritten
    assert await store.delete_user(new_ref) == 1
    assert await store.get(moved.key) is None
    # a failed compare-and-set moves nothing
    other = record(old_ref)
    await store.insert(other)
    assert not await store.replace(replace(other, user_ref=new_ref, version=5), expected_version=4)
    assert await keys_of(store, old_ref) == {other.key} and await keys_of(store, new_ref) == set()


async def test_delete_can_be_conditional_on_the_version(store: Store) -> None:
    await store.open()
    rec = record("c" * 64, version=3)
    await store.insert(rec)
    assert await store.delete(rec.key, expected_version=2) is False
    assert await store.get(rec.key) == rec
    assert await store.delete(rec.key, expected_version=3) is True
    assert await store.get(rec.key) is None
    assert await store.delete(rec.key, expected_version=3) is False
    assert await keys_of(store, "c" * 64) == set()


async def test_a_record_without_a_user_is_in_no_index(store: Store) -> None:
    await store.open()
    anonymous = [record("") for _ in range(3)]
    for rec in anonymous:
        await store.insert(rec)
    assert await store.list_user("") == [] and await store.delete_user("") == 0
    assert all([await store.get(rec.key) == rec for rec in anonymous])
    # it may become a user's (and back) through a rewrite
    claimed = replace(anonymous[0], user_ref="d" * 64, version=2)
    assert await store.replace(claimed, expected_version=1)
    assert await keys_of(store, "d" * 64) == {claimed.key}
    assert await store.replace(replace(claimed, user_ref="", version=3), expected_version=2)
    assert await keys_of(store, "d" * 64) == set() and await store.list_user("") == []
    assert all([await store.delete(rec.key) for rec in anonymous])
