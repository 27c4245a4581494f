"""The manager's decode cache on every store (memory included: one path for all): a
validate always reads the store, and a cached session, nested data or not, is handed out
only for a record byte-for-byte the same as the one it was opened from."""

from __future__ import annotations

import dataclasses

import pytest

import asyncsess
from asyncsess import ConfigurationError, SessionManager
from asyncsess.session import thaw
from asyncsess.stores.base import Store
from asyncsess.tokens import token_key
from tests.conftest import ABSOLUTE, BACKENDS, IDLE, SECRET, FakeClock

pytestmark = pytest.mark.anyio
PERSISTENT = [b for b in BACKENDS if b != "memory"]


NESTED = {"role": "admin", "csrf": "c" * 32, "cart": [1, 2, 3], "prefs": {"theme": "dark"}}


async def test_an_unchanged_session_is_handed_out_again(manager: SessionManager) -> None:
    token = await manager.create("alice", NESTED)
    before = await manager.stats()
    first = await manager.validate(token)
    assert first is not None and thaw(first.data) == NESTED
    assert await manager.validate(token) is first
    after = await manager.stats()
    assert (after.cache_misses - before.cache_misses, after.cache_hits - before.cache_hits) == (
        1,
        1,
    )
    assert after.cache_entries == before.cache_entries + 1 and after.cache_bytes > 0
    assert (after.live, after.expired) == (1, 0)


async def test_changes_are_seen_at_once(manager: SessionManager, clock: FakeClock) -> None:
    token = await manager.create("alice", {"role": "member"})
    first = await manager.validate(token)
    assert first is not None
    assert await manager.update(token, {"role": "admin"})
    updated = await manager.validate(token)
    assert updated is not None and updated.data == {"role": "admin"} and updated.version == 2

    clock.advance(IDLE * 0.6)  # renewal due: the expiry moves, the data stays
    renewed = await manager.validate(token)
    assert renewed is not None and renewed.expires == clock.now + IDLE
    assert renewed.data == {"role": "admin"} and renewed.version == 2
    assert await manager.validate(token) == renewed

    assert await manager.revoke(token)
    assert await manager.validate(token) is None


async def test_revoke_all_and_expiry_are_seen(manager: SessionManager, clock: FakeClock) -> None:
    tokens = [await manager.create("bob", {"i": i}) for i in range(3)]
    assert all([await manager.validate(t) for t in tokens])
    assert await manager.revoke_all("bob", keep=tokens[0]) == 2
    assert [await manager.validate(t) is not None for t in tokens] == [True, False, False]
    clock.advance(ABSOLUTE)
    assert await manager.validate(tokens[0]) is None


async def test_nested_data_is_deeply_immutable_so_no_caller_changes_the_next_ones(
    manager: SessionManager,
) -> None:
    token = await manager.create("alice", {"tags": ["a"], "prefs": {"langs": ["en"]}, "n": 1})
    first = await manager.validate(token)
    assert first is not None
    assert first.data == {"tags": ("a",), "prefs": {"langs": ("en",)}, "n": 1}  # lists: tuples
    with pytest.raises(TypeError):
        first.data["n"] = 2  # type: ignore[index]
    with pytest.raises(TypeError):
        first.data["prefs"]["theme"] = "dark"
    with pytest.raises(AttributeError):
        first.data["tags"].append("mutated by the caller")
    with pytest.raises(dataclasses.FrozenInstanceError):
        first.version = 7  # type: ignore[misc]
    assert await manager.validate(token) is first
    # frozen data goes back in as it is
    assert await manager.update(token, {**first.data, "tags": [*first.data["tags"], "b"]})
    second = await manager.validate(token)
    assert second is not None and second.data["tags"] == ("a", "b") and second.version == 2
    assert thaw(second.data) == {"tags": ["a", "b"], "prefs": {"langs": ["en"]}, "n": 1}


@pytest.mark.parametrize("store_spec", PERSISTENT, indirect=True)
async def test_a_record_changed_at_rest_is_opened_again(
    manager: SessionManager, store: Store
) -> None:
    alice, mallory = [await manager.create(u, {"role": u}) for u in ("alice", "mallory")]
    assert (session := await manager.validate(alice)) is not None
    assert await manager.validate(mallory) is not None
    record, other = [await store.get(token_key(t)) for t in (alice, mallory)]
    assert record is not None and other is not None
    # mallory's sealed payload under alice's key, with mallory's user ref: it does not open
    forged = dataclasses.replace(
        record, payload=other.payload, user_ref=other.user_ref, version=record.version + 1
    )
    assert await store.replace(forged, expected_version=record.version)
    assert await manager.validate(alice) is None
    # the original record back: the session opens again
    assert await store.replace(record, expected_version=record.version + 1)
    again = await manager.validate(alice)
    assert again is not None and again.data == session.data and again.version == record.version
    # the same sealed bytes at another version (bound into the seal): refused, cached or not
    bumped = dataclasses.replace(record, version=record.version + 1)
    assert await store.replace(bumped, expected_version=record.version)
    assert await manager.validate(alice) is None


async def test_size_is_bounded_and_zero_turns_it_off(store: Store, clock: FakeClock) -> None:
    small = SessionManager(store, secret=SECRET, clock=clock, decode_cache=2)
    off = SessionManager(store, secret=SECRET, clock=clock, decode_cache=0)
    tokens = [await small.create(f"user-{i}", {"i": i, "cart": [i]}) for i in range(5)]
    first = [await small.validate(t) for t in tokens]
    again = [await small.validate(t) for t in reversed(tokens)][::-1]  # newest first
    assert [s.data["i"] if s else None for s in again] == list(range(5))
    # the oldest go first: only the newest two of the first pass are handed out again
    assert [a is b for a, b in zip(first, again, strict=True)] == [False] * 3 + [True] * 2
    assert (await small.stats()).cache_entries == 2
    a, b = await off.validate(tokens[0]), await off.validate(tokens[0])
    assert a == b and a is not b


async def test_least_recently_used_goes_first(store: Store, clock: FakeClock) -> None:
    mgr = SessionManager(store, secret=SECRET, clock=clock, decode_cache=2)
    one, two, three = [await mgr.create(f"user-{i}", {"cart": [i]}) for i in range(3)]
    kept_one, kept_two = await mgr.validate(one), await mgr.validate(two)
    assert await mgr.validate(one) is kept_one  # one is now the most recently used
    await mgr.validate(three)  # evicts two, not one
    assert await mgr.validate(one) is kept_one
    assert await mgr.validate(two) is not kept_two


async def test_memory_is_bounded_in_bytes_too(store: Store, clock: FakeClock) -> None:
    """Few large sessions fill the byte bound long before the entry bound."""
    mgr = SessionManager(store, secret=SECRET, clock=clock, decode_cache_bytes=40_000)
    tokens = [await mgr.create(f"user-{i}", {"i": i, "blob": "x" * 8000}) for i in range(5)]
    first = [await mgr.validate(t) for t in tokens]
    again = [await mgr.validate(t) for t in reversed(tokens)][::-1]  # newest first
    assert all(s is not None and s.data["blob"] == "x" * 8000 for s in again)
    kept = [a is b for a, b in zip(first, again, strict=True)]
    assert kept[-1] and not any(kept[:2])  # about two fit in 40 kB: the newest stay
    small = [await mgr.create(f"small-{i}", {"i": i}) for i in range(20)]
    first = [await mgr.validate(t) for t in small]
    assert all([await mgr.validate(t) is s for t, s in zip(small, first, strict=True)])


@pytest.mark.parametrize("size", [-1, 1.5, "10"])
@pytest.mark.parametrize("option", ["decode_cache", "decode_cache_bytes"])
def test_a_bad_size_says_what_to_fix(option: str, size: object) -> None:
    with pytest.raises(ConfigurationError, match=f"{option} must be an int >= 0"):
        asyncsess.SessionManager("memory://", **{option: size})  # type: ignore[arg-type]
