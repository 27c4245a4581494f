"""The expiry sweeper in a fleet of processes: each sweeps at a random phase and pace, and
on a store that can hand out the turn (Redis: ``claim_sweep``) the fleet sweeps about once
per interval, not once per process. Stores here are real ones, only counting sweeps."""

from __future__ import annotations

import time
from collections.abc import Sequence
from contextlib import AsyncExitStack

import anyio
import pytest

from asyncsess import SessionManager
from asyncsess.stores.memory import MemoryStore
from asyncsess.stores.redis import RedisStore
from tests.backends import StoreSpec

pytestmark = pytest.mark.anyio

SECRET = "sweeper-secret-0123456789-abcdefghijklmnopqrs"
INTERVAL = 0.1
RUN = 1.2


class CountingMemory(MemoryStore):
    """A memory store that notes when it is swept."""

    def __init__(self) -> None:
        super().__init__()
        self.swept: list[float] = []

    async def sweep(self, now: float, *, limit: int) -> int:
        self.swept.append(time.monotonic())
        return await super().sweep(now, limit=limit)


class CountingRedis(RedisStore):
    """A Redis store that notes in a shared list when it is swept (at the plain interval)."""

    swept: list[float]
    native_expiry = False  # swept at sweep_interval, to count the fleet's turns quickly

    async def sweep(self, now: float, *, limit: int) -> int:
        self.swept.append(time.monotonic())
        return await super().sweep(now, limit=limit)


async def run_fleet(stores: Sequence[object]) -> None:
    async with AsyncExitStack() as stack:
        for store in stores:
            mgr = SessionManager(store, secret=SECRET, sweep_interval=INTERVAL)  # type: ignore[arg-type]
            await stack.enter_async_context(mgr)
        await anyio.sleep(RUN)


async def test_each_process_sweeps_at_its_own_phase_and_pace() -> None:
    stores = [CountingMemory() for _ in range(4)]
    await run_fleet(stores)
    firsts = [store.swept[0] for store in stores]
    assert max(firsts) - min(firsts) > 0.001  # not in step (4 uniform draws over 0.1 s)
    for store in stores:
        gaps = [b - a for a, b in zip(store.swept, store.swept[1:], strict=False)]
        assert len(gaps) >= 3
        assert min(gaps) >= 0.5 * INTERVAL - 0.01  # each pause is 0.5-1.5 x the interval
        assert len(set(round(g, 3) for g in gaps)) > 1  # and not always the same


class NativeMemory(CountingMemory):
    """A store that says it drops expired records itself."""

    native_expiry = True


async def test_a_store_with_native_expiry_is_swept_ten_times_less_often() -> None:
    plain, native = CountingMemory(), NativeMemory()
    await run_fleet([plain, native])
    # RUN / INTERVAL = 12 pauses of 0.5-1.5 x: about 12 sweeps (4 on a very busy machine);
    # at 10 x the interval: a first sweep within 1 s, then pauses of 0.5-1.5 s, so at most
    # 3 in the run (timers only ever fire late)
    assert len(plain.swept) >= 4
    assert len(native.swept) <= 3
    gaps = [b - a for a, b in zip(native.swept, native.swept[1:], strict=False)]
    assert all(gap >= 0.5 * 10 * INTERVAL - 0.01 for gap in gaps)


async def test_a_redis_fleet_sweeps_about_once_per_interval(
    redis_store_spec: StoreSpec,
) -> None:
    swept: list[float] = []
    stores = []
    for _ in range(4):
        store = CountingRedis.from_url(redis_store_spec.url, **redis_store_spec.options)
        store.swept = swept
        stores.append(store)
    try:
        await run_fleet(stores)
    finally:
        for store in stores:
            await store.aclose()
    # alone, each of the 4 would sweep ~RUN / INTERVAL = 12 times: ~48 in all
    assert 3 <= len(swept) <= RUN / INTERVAL + 2


async def test_claim_sweep_is_one_turn_per_interval(redis_store_spec: StoreSpec) -> None:
    one = RedisStore.from_url(redis_store_spec.url, **redis_store_spec.options)
    other = RedisStore.from_url(redis_store_spec.url, **redis_store_spec.options)
    try:
        assert await one.claim_sweep(0.2) is True
        assert await other.claim_sweep(0.2) is False
        assert await one.claim_sweep(0.2) is False
        await anyio.sleep(0.25)
        assert await other.claim_sweep(0.2) is True
    finally:
        await one.aclose()
        await other.aclose()
