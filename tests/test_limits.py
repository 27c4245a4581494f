"""Bounded growth on every store: session data size (max_data_bytes) and sessions per user
(max_sessions_per_user)."""

from __future__ import annotations

import json

import pytest

from asyncsess import ConfigurationError, SessionManager
from asyncsess.stores.base import Store
from asyncsess.tokens import token_key
from tests.conftest import SECRET, FakeClock

pytestmark = pytest.mark.anyio
LIMIT = 65536


def data_of(size: int) -> dict[str, object]:
    """Nested session data whose JSON is exactly ``size`` bytes."""
    shape: dict[str, object] = {"cart": [{"sku": "a-1", "qty": 2}], "prefs": {"tags": ["x"]}}
    overhead = len(json.dumps({**shape, "blob": ""}, separators=(",", ":")))
    return {**shape, "blob": "x" * (size - overhead)}


async def test_data_over_the_limit_is_refused_before_the_store(
    manager: SessionManager, clock: FakeClock
) -> None:
    assert len(json.dumps(data_of(LIMIT), separators=(",", ":"))) == LIMIT
    token = await manager.create("alice", data_of(LIMIT))
    session = await manager.validate(token)
    assert session is not None and session.data["blob"] == data_of(LIMIT)["blob"]
    for size in (LIMIT + 1, 20 * 2**20):  # 20 MiB: MariaDB would refuse it as "unavailable"
        with pytest.raises(ValueError, match=f"max_data_bytes={LIMIT}"):
            await manager.create("alice", data_of(size))
        with pytest.raises(ValueError, match=f"max_data_bytes={LIMIT}"):
            await manager.update(token, data_of(size))
    assert await manager.count() == (1, 0)
    session = await manager.validate(token)
    assert session is not None and session.version == 1


@pytest.mark.parametrize("store_spec", ["memory", "sqlite"], indirect=True)
async def test_the_data_limit_is_configurable(store: Store) -> None:
    small = SessionManager(store, secret=SECRET, max_data_bytes=100)
    unbounded = SessionManager(store, secret=SECRET, max_data_bytes=None)
    with pytest.raises(ValueError, match="max_data_bytes=100"):
        await small.create("alice", data_of(101))
    assert await small.create("alice", data_of(100))
    assert await unbounded.create("alice", data_of(LIMIT * 2))


async def test_max_sessions_per_user_ends_the_oldest(store: Store, clock: FakeClock) -> None:
    mgr = SessionManager(store, secret=SECRET, clock=clock, max_sessions_per_user=3)
    bob = await mgr.create("bob", {"device": {"name": "desk"}})
    anonymous = [await mgr.create(None, {"cart": [i]}) for i in range(4)]
    tokens = []
    for i in range(5):
        tokens.append(await mgr.create("alice", {"device": {"n": i}, "seen": [i]}))
        clock.advance(1)
    assert [i.id for i in await mgr.sessions("alice")] == [token_key(t) for t in tokens[2:]]
    assert [await mgr.validate(t) is not None for t in tokens] == [False, False, True, True, True]
    assert await mgr.validate(bob) is not None
    assert all([await mgr.validate(t) is not None for t in anonymous])
    unlimited = SessionManager(store, secret=SECRET, clock=clock)
    for _ in range(4):
        await unlimited.create("bob")
    assert len(await unlimited.sessions("bob")) == 5


@pytest.mark.parametrize(
    "kwargs",
    [
        {"max_data_bytes": -1},
        {"max_data_bytes": "64k"},
        {"max_sessions_per_user": 0},
        {"max_sessions_per_user": True},
        {"decode_cache_bytes": -5},
        {"decode_cache_bytes": 1.5},
    ],
)
def test_bad_limits_say_what_to_fix(kwargs: dict[str, object]) -> None:
    name = next(iter(kwargs))
    with pytest.raises(ConfigurationError, match=name):
        SessionManager("memory://", **kwargs)  # type: ignore[arg-type]
